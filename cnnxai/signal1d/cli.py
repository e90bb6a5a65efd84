"""The command line of MNIST1D.py: train (or load) the 1-D CNN, explain one test signal per class with every
1-D method, and draw them in one figure with a JSON manifest beside it. Exit status 0, or 2 for a bad option
(one line on stderr naming the problem and the fix; nothing is written)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch

from cnnxai.cli_options import DefaultsHelpFormatter, OneLineParser, int_at_least, name_list, run_main
from cnnxai.devices import resolve_device
from cnnxai.errors import UserInputError
from cnnxai.outputs import atomic_savefig, atomic_write_text, json_fallback, package_versions
from cnnxai.signal1d.data import NUM_CLASSES, SIGNAL_LENGTH, make_mnist1d
from cnnxai.signal1d.explainers import DEFAULT_OPTIONS, HIDE_MODES, METHODS_1D, deletion_curve, explain_1d
from cnnxai.signal1d.figure import draw_mnist1d_figure
from cnnxai.signal1d.model import CAM_LAYERS, DEFAULT_EPOCHS, load_mnist1d_model, torch_threads

STEM = "mnist1d_explanations"
TITLES = {
    "lime": "LIME",
    "gradlime": "GradLIME",
    "gradcam": "Grad-CAM",
    "ig": "Integrated Gradients",
    "input_x_gradient": "Input x Gradient",
    "saliency": "Saliency",
    "rise": "RISE",
}


def method_list(text: str) -> list[str]:
    """Comma-separated names of 1-D explainers (at least one, each known)."""
    return name_list(text, METHODS_1D, "method", f"choose among {','.join(METHODS_1D)} (see --list)")


def build_parser() -> OneLineParser:
    parser = OneLineParser(
        prog="MNIST1D.py",
        description="Explain the seeds' 1-D CNN on MNIST-1D (generated offline from mnist1d's make_dataset, the "
        "published data set's seed 42: 4000 training and 1000 test signals of length 40). The CNN is trained in "
        "seconds on the CPU and cached; one correctly classified test signal per class (drawn from --seed) is "
        "explained by each method. Writes <output-dir>/mnist1d_explanations.png (and .pdf with --pdf) and a .json "
        "manifest beside it (settings, model accuracy, chosen signals, seconds and deletion AUC per method).",
        formatter_class=DefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--list", action="store_true", help="list the methods and what each computes, then exit")
    add("--methods", type=method_list, default=list(METHODS_1D),
        help=f"comma-separated methods, drawn as columns in this order (default: all, {','.join(METHODS_1D)})")  # fmt: skip
    add("--seed", type=int, default=0,
        help="seed of every random draw: the CNN's initial weights and batches, the signals chosen, LIME's and RISE's samples")  # fmt: skip
    add("--data-seed", type=int, default=42, help="mnist1d's generator seed (42 = the published MNIST-1D)")
    add("--num-samples", type=int_at_least(2), default=DEFAULT_OPTIONS["num_samples"],
        help="perturbed signals of the LIME / GradLIME neighbourhood (shared by both)")  # fmt: skip
    add("--window", type=int_at_least(1), default=DEFAULT_OPTIONS["window"],
        help=f"LIME segment length in samples; must divide the signal length {SIGNAL_LENGTH} (1,2,4,5,8,10,20,40)")  # fmt: skip
    add("--hide", choices=HIDE_MODES, default=DEFAULT_OPTIONS["hide"],
        help="what a hidden LIME window shows: zero (the data set's mean; the data are standardised) or mean (the window's own mean)")  # fmt: skip
    add("--cam-layer", choices=CAM_LAYERS, default=DEFAULT_OPTIONS["layer"],
        help="Grad-CAM layer of gradcam and gradlime: reluN = conv block N after its ReLU (Keras' Conv1D output), convN before it")  # fmt: skip
    add(
        "--rise-masks",
        type=int_at_least(1),
        default=DEFAULT_OPTIONS["rise_masks"],
        help="RISE's random masks",
    )
    add("--rise-p1", type=float, default=DEFAULT_OPTIONS["rise_p1"],
        help="RISE's probability of keeping a cell (8 cells along the signal)")  # fmt: skip
    add(
        "--ig-steps",
        type=int_at_least(2),
        default=DEFAULT_OPTIONS["ig_steps"],
        help="Integrated Gradients' steps",
    )
    add("--epochs", type=int_at_least(1), default=DEFAULT_EPOCHS,
        help="training epochs of the CNN (Adam, lr 1e-2, batch 128, cosine schedule); part of the cache key")  # fmt: skip
    add("--cache-dir", default=None,
        help="where trained models are cached; default: $CNNXAI_CACHE, else ~/.cache/cnnxai/models")  # fmt: skip
    add(
        "--retrain",
        action="store_true",
        help="train the CNN again even when a cached one exists (and replace it)",
    )
    add(
        "--output-dir", default="results/mnist1d", help="where mnist1d_explanations.png and .json are written"
    )
    add("--dpi", type=int_at_least(50), default=200, help="PNG resolution")
    add("--pdf", action="store_true", help="also write a PDF of the figure (text and lines as vectors)")
    add("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N")
    add("--threads", type=int_at_least(1), default=1,
        help="CPU threads of torch during the run: this network is too small for more to help, and on shared cores they slow it down")  # fmt: skip
    add("--quiet", action="store_true", help="print only the files written")
    add("--debug", action="store_true", help="show tracebacks")
    return parser


def list_methods() -> str:
    return "\n".join(f"{m.name:<18}{m.description}" for m in METHODS_1D.values())


def check(args: argparse.Namespace) -> None:
    """Every option a parser type cannot check alone, before anything is computed or written."""
    if SIGNAL_LENGTH % args.window:
        divisors = ",".join(str(d) for d in range(1, SIGNAL_LENGTH + 1) if SIGNAL_LENGTH % d == 0)
        raise UserInputError(
            f"--window {args.window}: it must divide the signal length {SIGNAL_LENGTH}; use one of {divisors}"
        )
    if not 0 < args.rise_p1 <= 1:
        raise UserInputError(f"--rise-p1 {args.rise_p1}: a probability in (0, 1] is needed, e.g. 0.5")


def choose_signals(predicted: np.ndarray, labels: np.ndarray, seed: int) -> list[int]:
    """One test index per class 0..9, drawn from ``seed`` among the correctly classified signals of the class."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 1]))
    chosen = []
    for label in range(NUM_CLASSES):
        candidates = np.flatnonzero((labels == label) & (predicted == label))
        if len(candidates) == 0:
            raise UserInputError(
                f"the model classifies no test signal of class {label} correctly; train longer (--epochs) or --retrain"
            )
        chosen.append(int(rng.choice(candidates)))
    return chosen


def explain_all(
    model: torch.nn.Module,
    signals: np.ndarray,
    targets: list[int],
    methods: list[str],
    seed: int,
    options: dict[str, Any],
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Maps {method: (R,L) float32} and seconds per method for all R signals. LIME and GradLIME share one
    neighbourhood per signal: the one that runs first pays for sampling it."""
    maps = {name: np.zeros(signals.shape, dtype=np.float32) for name in methods}
    seconds = dict.fromkeys(methods, 0.0)
    for row, (signal, target) in enumerate(zip(signals, targets, strict=True)):
        shared: dict = {}
        for name in methods:
            start = time.perf_counter()
            maps[name][row] = explain_1d(name, model, signal, target, seed, shared=shared, **options)
            seconds[name] += time.perf_counter() - start
    return maps, seconds


def deletion_scores(
    model: torch.nn.Module, signals: np.ndarray, targets: list[int], maps: dict[str, np.ndarray], seed: int
) -> dict[str, list[float]]:
    """Deletion AUC (lower = better) of each method on each signal, plus 'random': random orders from ``seed``."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 2]))
    scores = {
        name: [
            deletion_curve(model, s, t, m)[1] for s, t, m in zip(signals, targets, maps[name], strict=True)
        ]
        for name in maps
    }
    scores["random"] = [
        deletion_curve(model, s, t, rng.random(len(s)))[1] for s, t in zip(signals, targets, strict=True)
    ]
    return scores


def run(args: argparse.Namespace) -> int:
    if args.list:
        print(list_methods())
        return 0
    check(args)
    device = resolve_device(args.device)
    say = (lambda *_: None) if args.quiet else print
    started = time.perf_counter()
    with torch_threads(args.threads if device.type == "cpu" else None), torch.random.fork_rng(devices=[]):
        model, info = load_mnist1d_model(args.seed, args.epochs, args.cache_dir, args.retrain, args.data_seed)
        how = (
            "loaded from cache" if info["loaded_from_cache"] else f"trained in {info['train_seconds']:.1f} s"
        )
        say(
            f"model: {how}: {info['cache_file']}; test accuracy {info['test_accuracy']:.3f} "
            f"(train {info['train_accuracy']:.3f})"
        )
        model = model.to(device)
        data = make_mnist1d(seed=args.data_seed)
        with torch.no_grad():
            predicted = model(torch.from_numpy(data.x_test).to(device)).argmax(1).cpu().numpy()
            indices = choose_signals(predicted, data.y_test, args.seed)
            signals = data.x_test[indices]
            probabilities = torch.softmax(model(torch.from_numpy(signals).to(device)), 1).cpu().numpy()
        targets = [int(data.y_test[i]) for i in indices]
        options = {
            "num_samples": args.num_samples, "window": args.window, "hide": args.hide, "layer": args.cam_layer,
            "ig_steps": args.ig_steps, "rise_masks": args.rise_masks, "rise_p1": args.rise_p1,
        }  # fmt: skip
        maps, seconds = explain_all(model, signals, targets, args.methods, args.seed, options)
        deletion = deletion_scores(model, signals, targets, maps, args.seed)
    mean_deletion = {name: float(np.mean(values)) for name, values in deletion.items()}
    row_labels = [
        f"digit {t}\n#{i}, p={probabilities[r, t]:.2f}"
        for r, (t, i) in enumerate(zip(targets, indices, strict=True))
    ]
    titles = {name: f"{TITLES.get(name, name)}\ndel. AUC {mean_deletion[name]:.2f}" for name in args.methods}
    signed = {name: METHODS_1D[name].signed for name in args.methods}
    note = (
        f"del. AUC: deletion AUC (P(class) as positions are zeroed in attribution order), mean of the "
        f"{len(indices)} rows, lower is better; random order: {mean_deletion['random']:.2f}"
    )
    fig = draw_mnist1d_figure(signals, row_labels, maps, titles, signed, note)
    manifest = {
        "tool": "MNIST1D.py",
        "command": shlex.join(sys.argv),
        "seed": args.seed,
        "options": {k: v for k, v in vars(args).items() if k not in ("list", "debug", "quiet")},
        "explainer_options": {**DEFAULT_OPTIONS, **options},
        "device": str(device),
        "model": info,
        "data": {
            "generator": "mnist1d.data.make_dataset",
            "seed": args.data_seed,
            "train": len(data.y),
            "test": len(data.y_test),
            "length": data.length,
        },  # fmt: skip
        "signals": [
            {"test_index": i, "class": t, "probability": float(probabilities[r, t])}
            for r, (i, t) in enumerate(zip(indices, targets, strict=True))
        ],
        "methods": {
            name: {
                "description": METHODS_1D[name].description,
                "signed": METHODS_1D[name].signed,
                "seconds_total": seconds[name],
                "seconds_per_signal": seconds[name] / len(indices),
                "deletion_auc_mean": mean_deletion[name],
                "deletion_auc": deletion[name],
            }
            for name in args.methods
        },
        "deletion_auc_random_order": {"mean": mean_deletion["random"], "per_signal": deletion["random"]},
        "deletion_metric": "P(class) while positions are zeroed one at a time in decreasing attribution order; "
        "trapezoid AUC on [0,1], lower is better",
        "seconds": None,
        "versions": package_versions(("captum", "mnist1d")),
    }
    folder = Path(args.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix in (".png", ".pdf") if args.pdf else (".png",):
        atomic_savefig(fig, folder / f"{STEM}{suffix}", args.dpi)
        written.append(folder / f"{STEM}{suffix}")
    plt.close(fig)
    manifest["seconds"] = round(time.perf_counter() - started, 3)
    manifest["files"] = [p.name for p in written]
    atomic_write_text(folder / f"{STEM}.json", json.dumps(manifest, indent=2, default=json_fallback) + "\n")
    written.append(folder / f"{STEM}.json")
    say(f"{'method':<18}{'s/signal':>9}{'deletion AUC':>14}")
    for name in args.methods:
        say(f"{name:<18}{seconds[name] / len(indices):>9.3f}{mean_deletion[name]:>14.3f}")
    say(f"{'random order':<18}{'':>9}{mean_deletion['random']:>14.3f}")
    print(f"wrote {', '.join(str(p) for p in written)} ({manifest['seconds']:.1f} s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of MNIST1D.py."""
    return run_main(build_parser(), run, argv)

"""The command line of MNIST1D.py: parse, make :class:`~cnnxai.signal1d.report.Mnist1DSettings`, run
:func:`~cnnxai.signal1d.report.run_mnist1d`, save (:func:`~cnnxai.figures.signal1d.save_mnist1d`), print. Exit status 0, or 2 for a bad option (one line on
stderr naming the problem and the fix; nothing is written)."""

from __future__ import annotations

import argparse
import time

from cnnxai.cli_options import (
    DefaultsHelpFormatter,
    OneLineParser,
    add_alias_flags,
    add_explainer_option_flag,
    explainer_options,
    int_at_least,
    name_list,
    run_main,
)
from cnnxai.figures.signal1d import DPI, STEM, save_mnist1d
from cnnxai.registry import listing
from cnnxai.signal1d.data import SIGNAL_LENGTH
from cnnxai.signal1d.registry import REGISTRY_1D
from cnnxai.signal1d.report import WINDOWS, Mnist1DSettings, run_mnist1d

# The shared flags of the 1-D explainers' options, made from their declarations (--num-samples sets lime's and
# gradlime's num_samples, --cam-layer their layer, ...).
ALIASES = ("num_samples", "window", "hide", "cam_layer", "rise_masks", "rise_p1", "ig_steps")
HELPS = {
    "num_samples": "perturbed signals of the LIME / GradLIME neighbourhood (shared by both)",
    "window": f"LIME segment length in samples; must divide the signal length {SIGNAL_LENGTH} ({','.join(map(str, WINDOWS))})",
    "cam_layer": "Grad-CAM layer of gradcam and gradlime: reluN = conv block N after its ReLU (Keras' Conv1D "
    "output), convN before it",
    "rise_masks": "RISE's random masks",
    "rise_p1": "RISE's probability of keeping a cell",
    "ig_steps": "Integrated Gradients' steps",
}


def method_list(text: str) -> list[str]:
    """Comma-separated names of 1-D explainers (at least one, each known)."""
    return name_list(text, REGISTRY_1D, "method", f"choose among {','.join(REGISTRY_1D)} (see --list)")


def build_parser(prog: str | None = None) -> OneLineParser:
    parser = OneLineParser(
        prog=prog or "MNIST1D.py",
        description="Explain the 1-D CNN of Siddhantmest/XAI-Methods-for-CNN on MNIST-1D (generated offline with "
        "mnist1d's make_dataset, the published data set's seed 42: 4000 training and 1000 test signals of "
        "length 40). The CNN is trained in seconds on the CPU and cached; one correctly classified test signal "
        f"per class (drawn from --seed) is explained by each method. Writes <output-dir>/{STEM}.png (and .pdf "
        "with --pdf) and a .json manifest beside it (settings, model accuracy, chosen signals, seconds and "
        "deletion AUC per method).",
        formatter_class=DefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--list", action="store_true", help="list the methods, what each computes and its options, then exit")
    add("--methods", type=method_list, default=list(REGISTRY_1D),
        help=f"comma-separated methods, drawn as columns in this order (default: all, {','.join(REGISTRY_1D)})")  # fmt: skip
    add("--seed", type=int, default=Mnist1DSettings.seed,
        help="seed of every random draw: the CNN's initial weights and batches, the signals chosen, LIME's and RISE's samples")  # fmt: skip
    add("--data-seed", type=int, default=Mnist1DSettings.data_seed,
        help="mnist1d's generator seed (42 = the published MNIST-1D)")  # fmt: skip
    add_alias_flags(parser, REGISTRY_1D, ALIASES, HELPS)
    add_explainer_option_flag(parser, "%(prog)s --list")
    add("--epochs", type=int_at_least(1), default=Mnist1DSettings.epochs,
        help="training epochs of the CNN (Adam, lr 1e-2, batch 128, cosine schedule); part of the cache key")  # fmt: skip
    add("--cache-dir", default=None,
        help="where trained models are cached; default: $CNNXAI_CACHE, else ~/.cache/cnnxai/models")  # fmt: skip
    add(
        "--retrain",
        action="store_true",
        help="train the CNN again even when a cached one exists (and replace it)",
    )
    add("--output-dir", default="results/mnist1d", help=f"where {STEM}.png and .json are written")
    add("--dpi", type=int_at_least(50), default=DPI, help="PNG resolution")
    add("--pdf", action="store_true", help="also write a PDF of the figure (text and lines as vectors)")
    add("--device", default=Mnist1DSettings.device, help="auto (CUDA if available), cpu, cuda or cuda:N")
    add("--threads", type=int_at_least(1), default=Mnist1DSettings.threads,
        help="CPU threads of torch during the run: this network is too small for more to help, and on shared cores they slow it down")  # fmt: skip
    add("--quiet", action="store_true", help="print only the files written")
    add("--debug", action="store_true", help="show tracebacks")
    return parser


def settings_of(args: argparse.Namespace) -> Mnist1DSettings:
    """The run's settings from the parsed command line, every option checked (before any work)."""
    return Mnist1DSettings(
        methods=tuple(args.methods),
        seed=args.seed,
        data_seed=args.data_seed,
        epochs=args.epochs,
        explainer_options=explainer_options(REGISTRY_1D, args.methods, args, ALIASES),
        device=args.device,
        threads=args.threads,
        cache_dir=args.cache_dir,
        retrain=args.retrain,
    )


def run(args: argparse.Namespace) -> int:
    if args.list:
        print(listing(REGISTRY_1D))
        return 0
    started = time.perf_counter()
    report = run_mnist1d(settings_of(args))
    written = save_mnist1d(report, args.output_dir, args.dpi, args.pdf)
    if not args.quiet:
        print("\n".join(report.summary()))
    print(f"wrote {', '.join(map(str, written))} ({time.perf_counter() - started:.1f} s)")
    return 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Entry point of MNIST1D.py. ``prog``: the program name shown by --help (default: the script's)."""
    return run_main(build_parser(prog), run, argv)

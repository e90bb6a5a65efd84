"""The command line of Localisation.py: every explainer on test images of the synthetic set, scored against the
ground-truth masks, as a table (printed, and saved as CSV / Markdown / PNG) with example maps and a manifest.
Exit status 0, or 2 for a bad option (one line on stderr naming the problem and the fix; nothing is written)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from cam_ext import CAM_METHODS
from cnnxai.benchmark.runner import ATTRIBUTION_VIEWS
from cnnxai.benchmark.summary import markdown_table, summarise, write_summary
from cnnxai.cli_options import (
    DefaultsHelpFormatter,
    OneLineParser,
    add_budget_options,
    batch_size_option,
    explainer_list_option,
    hide_color_option,
    int_at_least,
    run_main,
)
from cnnxai.devices import resolve_device
from cnnxai.errors import UserInputError
from cnnxai.explainers import REGISTRY
from cnnxai.groundtruth.benchmark import EXCLUDED_BY_DEFAULT, SCORE_COLUMNS, default_methods, run_localisation
from cnnxai.groundtruth.figure import draw_examples
from cnnxai.groundtruth.shapes_model import CAM_LAYER, SISE_LAYERS, load_shapes_model
from cnnxai.groundtruth.synthetic import CLASSES, SyntheticSettings, make_synthetic
from cnnxai.metrics import LOCALISATION_METRICS, METRICS
from cnnxai.metrics.localisation import default_tolerance
from cnnxai.outputs import atomic_folder, atomic_savefig, atomic_write_text, json_fallback, package_versions
from lime_ext import SEGMENTERS

MAX_TEST_IMAGES = 100_000


def build_parser() -> OneLineParser:
    parser = OneLineParser(
        prog="Localisation.py",
        description="A localisation benchmark with ground truth. Procedural 64x64 images (one bright disc, square, "
        "triangle or cross on a textured background, among bright strokes, rings and dark silhouettes of every "
        "shape), generated from --data-seed; a small CNN trained on them in seconds and cached; every explainer "
        "explains each test image's true class, and its map is scored against the object's mask (pointing game, "
        "relevance mass and rank accuracy, top-k intersection, ROC AUC). Writes <output-dir>/scores.csv, "
        "summary.csv/.md/.png, examples.png and manifest.json, and prints the table.",
        formatter_class=DefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--list", action="store_true", help="list the explainers and metrics, then exit")
    add(
        "--num-images",
        type=int_at_least(1),
        default=200,
        help="test images explained (the first N of the test split)",
    )
    add("--methods", type=explainer_list_option, default=None,
        help=f"explainers, comma-separated; default: all but {', '.join(EXCLUDED_BY_DEFAULT)} (their global weights need a reference fit; refused here)")  # fmt: skip
    add("--seed", type=int, default=0, help="seed of the explainers' random draws")
    add("--data-seed", type=int, default=0, help="seed of the image set and of the model's training")
    add("--train-images", type=int_at_least(100), default=4000, help="training images of the model")
    add("--epochs", type=int_at_least(1), default=10, help="training epochs of the model")
    add(
        "--cache-dir",
        default=None,
        help="where trained models are kept (default: $CNNXAI_CACHE or ~/.cache/cnnxai/models)",
    )
    add("--retrain", action="store_true", help="train the model again even if a cached one exists")
    add(
        "--num-samples",
        type=int_at_least(2),
        default=1000,
        help="perturbed images of the LIME family's neighbourhood",
    )
    add("--segmenter", default="slic", choices=list(SEGMENTERS),
        help="superpixels of the LIME family (slic: ~44 per 64x64 image; quickshift's defaults give ~5 at this size)")  # fmt: skip
    add("--hide-color", type=hide_color_option, default=0.0,
        help="colour of hidden superpixels: 0 (black), a grey level, R,G,B, or mean (per-superpixel mean)")  # fmt: skip
    add(
        "--camlime-method",
        default="layercam",
        choices=list(CAM_METHODS),
        help="the CAM method of camlime's prior",
    )
    add_budget_options(parser)
    add("--attribution", default="positive", choices=ATTRIBUTION_VIEWS,
        help="what is scored: the positive part of each map (the evidence for the class), the signed map, or its magnitude")  # fmt: skip
    add(
        "--top-k",
        type=int_at_least(1),
        default=METRICS["TopKIntersection"].params["k"],
        help="pixels of TopKIntersection (the smallest object has ~76)",
    )
    add("--pointing-tolerance", type=int_at_least(0), default=None,
        help="PointingGame's tolerance in pixels (default: Zhang et al.'s 15 px at 224, scaled: 4 at 64); "
        "PointingGameExact has none")  # fmt: skip
    add("--examples", type=int_at_least(0), default=None,
        help="test images drawn in examples.png, one per class in turn (default: 4, or --num-images if fewer)")  # fmt: skip
    add("--dpi", type=int_at_least(30), default=150, help="resolution of the PNG figures")
    add("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N")
    add("--batch-size", type=batch_size_option, default=None, help="images per forward pass; default auto")
    add("--output-dir", default="results/localisation", help="folder of the results (replaced as a whole)")
    add("--quiet", action="store_true", help="no progress bar")
    add(
        "--debug",
        action="store_true",
        help="show tracebacks; an explainer that fails raises instead of giving NaN",
    )
    return parser


def list_all() -> str:
    lines = ["explainers (default: all but " + ", ".join(EXCLUDED_BY_DEFAULT) + "):"]
    lines += [f"  {name:<20}{spec.description}" for name, spec in REGISTRY.items()]
    lines.append("metrics (all higher is better, in [0,1]):")
    lines += [f"  {name:<24}{METRICS[name].description}" for name in LOCALISATION_METRICS]
    return "\n".join(lines)


def check(args: argparse.Namespace) -> None:
    refused = [m for m in args.methods or () if m in EXCLUDED_BY_DEFAULT]
    if refused:
        raise UserInputError(
            f"--methods {','.join(refused)}: NormLIME's global weights need a reference image folder of this "
            "model's images, which this benchmark does not fit; leave it out"
        )
    if args.num_images > MAX_TEST_IMAGES:
        raise UserInputError(f"--num-images {args.num_images}: at most {MAX_TEST_IMAGES}")
    pixels = SyntheticSettings().size ** 2
    if args.top_k > pixels:
        raise UserInputError(
            f"--top-k {args.top_k}: larger than the image's {pixels} pixels; use at most {pixels}"
        )
    if args.examples is None:
        args.examples = min(4, args.num_images)
    if args.examples > args.num_images:
        raise UserInputError(
            f"--examples {args.examples}: more than --num-images {args.num_images}; lower it"
        )
    output = Path(args.output_dir)
    if output.exists() and not output.is_dir():
        raise UserInputError(f"--output-dir {output}: is a file; name a folder")


def example_indices(labels: np.ndarray, count: int) -> list[int]:
    """``count`` images for the figure: the first of each class in class order, then the second of each, ..."""
    by_class = [list(np.flatnonzero(labels == c)) for c in range(len(CLASSES))]
    chosen: list[int] = []
    depth = 0
    while len(chosen) < count and depth < len(labels):
        for members in by_class:
            if depth < len(members) and len(chosen) < count:
                chosen.append(int(members[depth]))
        depth += 1
    return chosen


def scores_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SCORE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "value": repr(float(row["value"]))})
    return buffer.getvalue()


def run(args: argparse.Namespace) -> int:
    if args.list:
        print(list_all())
        return 0
    check(args)
    device = resolve_device(args.device)
    say = (lambda *_: None) if args.quiet else print
    methods = args.methods or default_methods()
    started = time.perf_counter()
    settings = SyntheticSettings(seed=args.data_seed)
    tolerance = (
        default_tolerance(settings.size) if args.pointing_tolerance is None else args.pointing_tolerance
    )
    model, info = load_shapes_model(settings, args.train_images, epochs=args.epochs, cache_dir=args.cache_dir,
                                    retrain=args.retrain)  # fmt: skip
    how = (
        "loaded from the cache" if info["loaded_from_cache"] else f"trained in {info['train_seconds']:.1f} s"
    )
    say(f"model: {how} ({info['cache_file']}); test accuracy {info['test_accuracy']:.4f}")
    model = model.to(device)
    dataset = make_synthetic(settings, "test", args.num_images)
    options = {
        "layers": [CAM_LAYER], "sise_layers": list(SISE_LAYERS), "num_samples": args.num_samples,
        "segmenter": args.segmenter, "hide_color": args.hide_color, "rise_masks": args.rise_masks,
        "ig_steps": args.ig_steps, "cam_method": args.camlime_method,
    }  # fmt: skip
    result = run_localisation(
        model, dataset, methods, options, args.seed, args.attribution, args.top_k, tolerance,
        args.batch_size, progress=not args.quiet, debug=args.debug,
    )  # fmt: skip
    metrics = list(LOCALISATION_METRICS)
    directions = dict.fromkeys(metrics, "higher")
    table = summarise(result.rows, methods, metrics, directions)
    accuracy = float(np.mean(result.predicted == dataset.labels))
    note = (
        f"# Localisation on the synthetic shapes benchmark\n\n{args.num_images} test images (64x64, data seed "
        f"{args.data_seed}), each explained for its true class; model test accuracy {info['test_accuracy']:.4f} "
        f"(on these images {accuracy:.4f}). Scored: the {args.attribution} part of each map. PointingGame "
        f"tolerance {tolerance} px; TopKIntersection k = {args.top_k}; ties averaged (see README)."
    )
    per_method = {
        m: np.array([r["value"] for r in result.rows if r["method"] == m and r["metric"] == "PointingGame"])
        for m in methods
    }
    shown = example_indices(dataset.labels, args.examples)
    titles = [f"#{int(dataset.indices[i])} {CLASSES[int(dataset.labels[i])]}" for i in shown]
    figure = (
        draw_examples(
            dataset.images[shown],
            dataset.masks[shown],
            titles,
            {m: result.maps[m][shown] for m in methods},
            {m: per_method[m][shown] for m in methods},
        )
        if shown
        else None
    )
    manifest = {
        "tool": "Localisation.py",
        "command": shlex.join(sys.argv),
        "seed": args.seed,
        "options": {k: v for k, v in vars(args).items() if k not in ("list", "debug", "quiet")},
        "explainer_options": options,
        "pointing_tolerance": tolerance,
        "device": str(device),
        "data": {**asdict(settings), "classes": list(CLASSES), "test_images": args.num_images},
        "model": info,
        "accuracy_on_explained_images": accuracy,
        "methods": {
            m: {
                "seconds_total": round(result.seconds[m], 3),
                "seconds_per_image": round(result.seconds[m] / len(dataset), 4),
                "failure": result.failures.get(m),
            }
            for m in methods
        },  # fmt: skip
        "metrics": {name: METRICS[name].description for name in LOCALISATION_METRICS},
        "versions": package_versions(("captum", "zennit")),
    }
    final = Path(args.output_dir)
    with atomic_folder(final) as folder:
        atomic_write_text(folder / "scores.csv", scores_csv(result.rows))
        write_summary(folder, table, methods, metrics, note)
        if figure is not None:
            atomic_savefig(figure, folder / "examples.png", args.dpi)
            plt.close(figure)
        manifest["seconds"] = round(time.perf_counter() - started, 2)
        atomic_write_text(
            folder / "manifest.json", json.dumps(manifest, indent=2, default=json_fallback) + "\n"
        )
    say(markdown_table(table, methods, metrics))
    print(
        f"wrote {final}/ (scores.csv, summary.csv/.md/.png, examples.png, manifest.json; {manifest['seconds']:.1f} s)"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of Localisation.py."""
    return run_main(build_parser(), run, argv, interrupted="interrupted: nothing written")

"""The command line of Localisation.py: parse the flags into a :class:`~cnnxai.groundtruth.report.LocalisationRequest`
(its :class:`~cnnxai.groundtruth.report.LocalisationSettings` and how the run is done), call
:func:`cnnxai.reporting.localisation.run_localisation` (its rows appended as computed: an interrupted run resumes;
``--shard i/n`` computes every n-th image; then the summary over every shard present), print. Exit status 0, 2 for
a bad option (one line on stderr naming the problem and the fix; nothing is written), 130 when interrupted (run the
same command again to resume)."""

from __future__ import annotations

import argparse
from pathlib import Path

from cam_ext import CAM_METHODS
from cnnxai.benchmark.cli import add_baseline_option, add_resume_options
from cnnxai.benchmark.data import parse_shard
from cnnxai.benchmark.gallery import DEFAULT_REPORT_IMAGES
from cnnxai.benchmark.runner import ATTRIBUTION_VIEWS
from cnnxai.cli_options import (
    DefaultsHelpFormatter,
    OneLineParser,
    add_alias_flags,
    add_backend_option,
    add_explainer_option_flag,
    add_ray_options,
    add_report_options,
    batch_size_option,
    explainer_list_option,
    explainer_options,
    fill_alias,
    int_at_least,
    ray_settings,
    run_main,
)
from cnnxai.explainers import REGISTRY
from cnnxai.groundtruth.benchmark import EXCLUDED_BY_DEFAULT, TASK_METHODS, default_methods
from cnnxai.groundtruth.report import (
    LOCALISATION_TASKS,
    LocalisationRequest,
    LocalisationSettings,
    model_quality,
    task_layers,
)
from cnnxai.metrics import LOCALISATION_METRICS, METRICS
from cnnxai.reporting.html import write_report
from cnnxai.reporting.localisation import localisation_markdown, run_localisation, summarize_localisation
from cnnxai.synthetic.shapes_model import CAM_LAYER, SISE_LAYERS
from cnnxai.tasks.models import DEFAULT_TASK_MODELS, TASK_CAM_METHODS, TASK_MODELS

# The explainers' shared settings offered as flags (each made from the explainers' declarations).
ALIASES = ("num_samples", "segmenter", "hide_color", "rise_masks", "ig_steps")


def build_parser(prog: str | None = None) -> OneLineParser:
    parser = OneLineParser(
        prog=prog or "Localisation.py",
        description="A localisation benchmark with ground truth. Procedural 64x64 images (one bright disc, square, "
        "triangle or cross on a textured background, among bright strokes, rings and dark silhouettes of every "
        "shape), generated from --data-seed; a small CNN trained on them in seconds and cached; every explainer "
        "explains each test image's true class, and its map is scored against the object's mask (pointing game, "
        "relevance mass and rank accuracy, top-k intersection, ROC AUC). Writes <output-dir>/scores.csv (appended "
        "as computed: an interrupted run resumes), "
        "summary.csv/.md/.png, examples.png, manifest.json and report.html (one self-contained page: the table, "
        "plots and every method's map on a few images, kept in gallery/), and prints the table.",
        formatter_class=DefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--list", action="store_true", help="list the explainers and metrics, then exit")
    add("--task", default="classification", choices=list(LOCALISATION_TASKS),
        help="classification: ShapesNet on the one-object images; detection / segmentation: the boxes of the "
        "synthetic detector, or the class regions of the synthetic segmenter, on 96x96 scenes of several objects "
        "(docs/applications.md#ground-truth)")  # fmt: skip
    add(
        "--num-images",
        type=int_at_least(1),
        default=200,
        help="test images explained (the first N of the test split)",
    )
    add("--methods", type=explainer_list_option, default=None,
        help=f"explainers, comma-separated; default: all but {', '.join(EXCLUDED_BY_DEFAULT)} (their global weights need a reference fit; refused here), "
        f"or for --task detection and segmentation {','.join(TASK_METHODS)}")  # fmt: skip
    add("--seed", type=int, default=0, help="seed of the explainers' random draws")
    add("--data-seed", type=int, default=0, help="seed of the image set and of the model's training")
    add("--train-images", type=int_at_least(100), default=4000,
        help="training images of the classification model (the task models have their own)")  # fmt: skip
    add("--epochs", type=int_at_least(1), default=10,
        help="training epochs of the classification model (the task models have their own)")  # fmt: skip
    add(
        "--cache-dir",
        default=None,
        help="where trained models are kept (default: $CNNXAI_CACHE or ~/.cache/cnnxai/models)",
    )
    add("--retrain", action="store_true", help="train the model again even if a cached one exists")
    add_alias_flags(
        parser, REGISTRY, ALIASES,
        {"num_samples": "perturbed images of the LIME family's neighbourhood",
         "segmenter": "superpixels of the LIME family (slic: ~44 per 64x64 image; quickshift's defaults give ~5 at "
         "this size)"},
        defaults={"segmenter": "slic"},
    )  # fmt: skip
    add(
        "--camlime-method",
        default=None,
        choices=list(CAM_METHODS),
        help="the CAM method of camlime's prior; default: layercam, or for --task detection "
        f"{TASK_CAM_METHODS['detection']} (docs/applications.md#which-cam)",
    )
    add_explainer_option_flag(parser)
    add("--attribution", default="positive", choices=ATTRIBUTION_VIEWS,
        help="what is scored: the positive part of each map (the evidence for the class), the signed map, or its magnitude")  # fmt: skip
    add(
        "--top-k",
        type=int_at_least(1),
        default=None,
        help=f"pixels of TopKIntersection (the smallest object has ~76); default: {METRICS['TopKIntersection'].params['k']}",
    )
    add("--pointing-tolerance", type=int_at_least(0), default=None,
        help="PointingGame's tolerance in pixels (default: Zhang et al.'s 15 px at 224, scaled: 4 at 64); "
        "PointingGameExact has none")  # fmt: skip
    add("--examples", type=int_at_least(0), default=None,
        help="test images drawn in examples.png, one per class in turn (default: 4, or --num-images if fewer)")  # fmt: skip
    add("--dpi", type=int_at_least(30), default=150, help="resolution of the PNG figures")
    add("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N")
    add_backend_option(parser)
    add("--batch-size", type=batch_size_option, default=None, help="images per forward pass; default auto")
    add("--output-dir", default="results/localisation", help="folder of the results")
    add_resume_options(parser, "the summary, examples.png and report.html")
    add_report_options(parser, DEFAULT_REPORT_IMAGES, "K examples, chosen as for examples.png")
    add_baseline_option(parser)
    add_ray_options(parser)
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


def localisation_request(args: argparse.Namespace) -> LocalisationRequest:
    """The run the flags ask for, every option checked before any work (a one-line :class:`UserInputError`)."""
    methods = args.methods or default_methods(args.task)
    camlime_method = args.camlime_method or ("layercam" if args.task == "classification" else
                                             TASK_MODELS[DEFAULT_TASK_MODELS[args.task]].cam_method)  # fmt: skip
    fixed = {("camlime", "method"): camlime_method, ("sise", "layers"): list(SISE_LAYERS)}
    options = explainer_options(REGISTRY, methods, args, ALIASES, fixed)
    fill_alias(
        options, REGISTRY, "layers", [CAM_LAYER] if args.task == "classification" else task_layers(args.task)
    )
    settings = LocalisationSettings(
        methods=tuple(methods), explainer_options=options, num_images=args.num_images, seed=args.seed,
        data_seed=args.data_seed, train_images=args.train_images, epochs=args.epochs, cache_dir=args.cache_dir,
        retrain=args.retrain, attribution=args.attribution, top_k=args.top_k, tolerance=args.pointing_tolerance,
        examples=args.examples, batch_size=args.batch_size, device=args.device, task=args.task,
        baseline=args.baseline,
    )  # fmt: skip
    shard = parse_shard(args.shard) if args.shard else (1, 1)
    ray = ray_settings(args)
    record = {k: v for k, v in vars(args).items() if k not in ("list", "debug", "quiet", "report", "summarize",
                                                               "overwrite", "shard")}  # fmt: skip
    record["examples"] = settings.shown  # the default made explicit
    return LocalisationRequest(
        settings, args.output_dir, shard, ray, args.report_images, args.dpi, args.overwrite, args.debug,
        args.quiet, record,
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    if args.list:
        print(list_all())
        return 0
    folder = Path(args.output_dir)
    if args.report:
        print(f"wrote {write_report(folder, 'Localisation.py', args.report_images)}")
        return 0
    say = (lambda *_: None) if args.quiet else print
    if args.summarize:
        report, files = summarize_localisation(
            folder, args.dpi, args.report_images, args.examples, args.baseline
        )
        say(localisation_markdown(report))
        print(f"wrote {folder}/ ({', '.join(files)})")
        return 0
    request = localisation_request(args)

    def loaded(info: dict) -> None:
        how = (
            "loaded from the cache"
            if info["loaded_from_cache"]
            else f"trained in {info['train_seconds']:.1f} s"
        )
        say(f"model: {how} ({info['cache_file']}); {model_quality(request.settings.task, info)}")

    status = run_localisation(request, loaded)
    say(localisation_markdown(status.report))
    print(f"wrote {folder}/ ({', '.join(status.files)}; {status.seconds:.1f} s)")
    return 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Entry point of Localisation.py. ``prog``: the program name shown by --help (default: the script's)."""
    return run_main(
        build_parser(prog), run, argv,
        interrupted="interrupted: the rows computed so far are kept; run the same command again to resume",
    )  # fmt: skip

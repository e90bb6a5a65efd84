"""The command line of MyFaithfulness.py and MyComplexity.py: parse the flags into a
:class:`~cnnxai.benchmark.request.BenchmarkRequest`, call :func:`cnnxai.reporting.benchmark.run_benchmark`, print.

Exit status: 0 when every image was scored; 1 when some image could not be read (its rows say why, and
failures are listed on stderr); 2 for a bad option or input (one line on stderr naming the problem and the fix);
130 when interrupted (run the same command again to resume).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cnnxai.benchmark.data import parse_shard
from cnnxai.benchmark.gallery import DEFAULT_REPORT_IMAGES
from cnnxai.benchmark.request import BenchmarkRequest, FolderRequest, RunStatus
from cnnxai.benchmark.runner import ATTRIBUTION_VIEWS, TARGETS, BenchmarkSettings
from cnnxai.benchmark.statistics import DEFAULT_BASELINE, choose_baseline
from cnnxai.cli_options import (
    DefaultsHelpFormatter,
    OneLineParser,
    add_alias_flags,
    add_explainer_option_flag,
    add_model_options,
    add_ray_options,
    add_report_options,
    add_run_options,
    assignment_option,
    comma_separated,
    explainer_list_option,
    explainer_options,
    int_at_least,
    model_request,
    ray_settings,
    run_main,
)
from cnnxai.errors import UserInputError
from cnnxai.explainers import REGISTRY
from cnnxai.metrics import (
    COMPLEXITY_METRICS,
    FAITHFULNESS_METRICS,
    FEATURE_UNITS,
    metric_spec,
    resolve_settings,
)
from cnnxai.reporting.benchmark import run_benchmark, summarize_folder
from cnnxai.reporting.html import REPORT_NAME, write_report

# The comparison set of the public CamLIME repository's MyFaithfulness.py (Lime, our, IG, SA, GS, IXG, DeCon, KH,
# LRP, Gradient, CVSF, CVRU), plus three.
DEFAULT_METHODS = (
    "lime", "gradlime", "ig", "saliency", "gradient_shap", "input_x_gradient", "deconvolution", "kernel_shap",
    "lrp", "gradient", "control_sobel", "control_random", "gradcam", "rise", "guided_ig_gnl",
)  # fmt: skip

# The explainers' shared settings these tools offer as flags (each made from the explainers' declarations).
ALIASES = ("num_samples", "max_samples", "top_k", "segmenter", "hide_color", "sampling", "proxy", "exact_samples",
           "rise_masks", "ig_steps")  # fmt: skip

TOOLS = {
    "faithfulness": ("MyFaithfulness", FAITHFULNESS_METRICS, "results/faithfulness"),
    "complexity": ("MyComplexity", COMPLEXITY_METRICS, "results/complexity"),
}


def metric_list_option(family: tuple[str, ...]):
    def parse(text: str) -> list[str]:
        names = list(dict.fromkeys(metric_spec(name).name for name in comma_separated(text)))
        foreign = [name for name in names if name not in family]
        if foreign:
            raise argparse.ArgumentTypeError(
                f"{', '.join(foreign)} not measured by this tool; choose from {', '.join(family)}"
            )
        if not names:
            raise argparse.ArgumentTypeError("expected at least one metric")
        return names

    def checked(text: str) -> list[str]:
        try:
            return parse(text)
        except UserInputError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return checked


def add_folder_options(parser: argparse.ArgumentParser) -> None:
    """--data-dir, --num-classes, --per-class: the images of a benchmark over a folder."""
    add = parser.add_argument
    add("--data-dir", default=None,
        help="an ImageNet-validation folder (class folders named by WordNet id, e.g. n01440764/) or a flat folder "
             "of images; default: the built-in sample photos (chelsea, coffee, rocket)")  # fmt: skip
    add("--num-classes", "--NumFile", type=int_at_least(1), default=None,
        help="classes drawn with the seed (ImageNet layout); default: all")  # fmt: skip
    add("--per-class", "--FileSample", type=int_at_least(1), default=None,
        help="images drawn with the seed from each class (a flat folder counts as one class); default: all")  # fmt: skip


def add_resume_options(parser: argparse.ArgumentParser, summary: str) -> None:
    """--shard, --summarize, --overwrite: the work of a resumable run split and put back together."""
    add = parser.add_argument
    add("--shard", default=None,
        help="i/n: compute only the i-th of n parts of the images (rows in <output-dir>/shards/i-of-n/)")  # fmt: skip
    add("--summarize", action="store_true",
        help=f"compute nothing: rebuild {summary} from the rows in --output-dir")  # fmt: skip
    add("--overwrite", action="store_true",
        help="delete an earlier run's rows and summary in --output-dir first (with --shard: that shard's rows "
             "only)")  # fmt: skip


def add_baseline_option(parser: argparse.ArgumentParser) -> None:
    """--baseline: the method of the summary's paired comparisons (comparison.csv)."""
    parser.add_argument(
        "--baseline", default=None,
        help=f"the method every other is compared with, image by image, in comparison.csv and summary.md; "
        f"default: {DEFAULT_BASELINE}, or the first method when {DEFAULT_BASELINE} is not run (said in summary.md)",
    )  # fmt: skip


def build_parser(tool: str, prog: str | None = None) -> OneLineParser:
    name, family, default_output = TOOLS[tool]
    what = (
        "Faithfulness of explainers over an image folder: "
        + ", ".join(family)
        + ", each per image and explainer."
        if tool == "faithfulness"
        else "Complexity of explainers' maps over an image folder: " + ", ".join(family) + "."
    )
    parser = OneLineParser(
        prog=prog or f"{name}.py",
        description=f"{what} Writes scores.csv (one row per image x explainer x metric, appended as computed: "
        "an interrupted run resumes), summary.csv/.md/.png (means with bootstrap 95% intervals), comparison.csv (each "
        "method against --baseline, paired by image: mean difference, interval, Wilcoxon p, Holm), manifest.json, report.html (one self-contained page: "
        "the table, plots and a gallery of maps kept in gallery/)"
        + (
            ", and curves.csv/curves_mean.csv/curves.png for Deletion and Insertion."
            if tool == "faithfulness"
            else "."
        ),
        formatter_class=DefaultsHelpFormatter,
    )
    add = parser.add_argument
    add_folder_options(parser)
    add(
        "--methods",
        type=explainer_list_option,
        default=list(DEFAULT_METHODS),
        help="explainers, comma-separated (python -m cnnxai.explainers --list); default: "
        + ",".join(DEFAULT_METHODS),
    )
    add(
        "--metrics",
        type=metric_list_option(family),
        default=list(family),
        help="metrics, comma-separated; default: " + ",".join(family),
    )
    add(
        "--set",
        dest="settings",
        type=assignment_option("Deletion.step=448"),
        action="append",
        default=[],
        metavar="METRIC.PARAM=VALUE",
        help="change a metric parameter (repeatable), e.g. --set Deletion.step=448; the defaults are those of the public CamLIME benchmarks (docs/benchmarks.md)",
    )
    add(
        "--attribution",
        default="signed",
        choices=ATTRIBUTION_VIEWS,
        help="the one post-processing of every explainer's map before scoring: as returned, positive part, or magnitude",
    )
    add(
        "--target",
        default="predicted",
        choices=TARGETS,
        help="the class explained and scored: the model's prediction, or the class folder's label",
    )
    if tool == "faithfulness":
        add(
            "--feature-unit",
            default="pixel",
            choices=FEATURE_UNITS,
            help="pixel: a feature is a pixel, all its channels perturbed together (the public CamLIME benchmarks'); element: one colour "
            "value, the map repeated over channels (Quantus 0.6.0's FaithfulnessCorrelation/Estimate/MonotonicityCorrelation)",
        )
        add(
            "--sufficiency-batch",
            type=int_at_least(2),
            default=16,
            help="images per group: Sufficiency compares explanations within a group (with 1 it is always 0, the public CamLIME benchmarks' bug)",
        )
    add_model_options(parser)
    add_alias_flags(parser, REGISTRY, ALIASES, {
        "num_samples": "perturbed images of the LIME family and KernelSHAP (the public CamLIME benchmarks used 8000), "
        "or auto (docs/method.md#adaptive-sampling)",
    })  # fmt: skip
    add_explainer_option_flag(parser)
    add(
        "--tf32",
        action="store_true",
        help="let CUDA run the explainers' and metrics' forwards in TF32 (faster on recent GPUs; logits move by "
        "~1e-3, as much as the changes measured); off: full float32",
    )
    add(
        "--cache",
        type=Path,
        default=None,
        metavar="FOLDER",
        help="keep every map and score in FOLDER by its content and read those an earlier run computed (the same "
        "image, class, explainer settings, model, seed and code), e.g. MyComplexity after MyFaithfulness, or "
        "--target true after --target predicted (docs/benchmarks.md#reusing-results); default: none",
    )
    add_resume_options(parser, "the summary and report.html")
    add_baseline_option(parser)
    add_report_options(parser, DEFAULT_REPORT_IMAGES)
    add_ray_options(parser)
    add_run_options(parser, default_output, "where scores.csv, the summary and the manifest are written")
    return parser


def folder_request(args: argparse.Namespace) -> FolderRequest:
    """The image folder, output folder, shard, model and run flags of a run over an image folder."""
    return FolderRequest(
        output_dir=args.output_dir, data_dir=args.data_dir, num_classes=args.num_classes, per_class=args.per_class,
        shard=parse_shard(args.shard) if args.shard else (1, 1), model=model_request(args), device=args.device,
        batch_size=args.batch_size, overwrite=args.overwrite, debug=args.debug, quiet=args.quiet,
    )  # fmt: skip


def benchmark_request(args: argparse.Namespace, tool: str) -> BenchmarkRequest:
    """The run the flags ask for; a flag that does not fit is a one-line :class:`UserInputError`, before any
    work."""
    name, _, _ = TOOLS[tool]
    overrides = {f"{metric}.{param}": text for metric, param, text in args.settings}
    if len(overrides) != len(args.settings):
        raise UserInputError("--set: a parameter is given twice; give each once")
    metric_settings = resolve_settings(list(args.metrics), overrides)
    choose_baseline(args.methods, args.baseline)  # an unknown --baseline refused before any work
    options = explainer_options(REGISTRY, args.methods, args, ALIASES)
    sufficiency = "Sufficiency" in args.metrics
    settings = BenchmarkSettings(
        tool=name, methods=tuple(args.methods), metrics=tuple(args.metrics), metric_settings=metric_settings,
        feature_unit=getattr(args, "feature_unit", "pixel"), attribution=args.attribution,
        group_size=args.sufficiency_batch if sufficiency else 1, target=args.target, seed=args.seed,
        preprocess=args.preprocess, tf32=args.tf32,
    )  # fmt: skip
    return BenchmarkRequest(
        settings=settings, folder=folder_request(args), explainer_options=options, ray=ray_settings(args),
        cache=args.cache, report_images=args.report_images, baseline=args.baseline,
    )  # fmt: skip


def exit_status(status: RunStatus) -> int:
    """0, or 1 (with a line saying so) when some image could not be read."""
    if status.failures:
        print(
            f"{len(status.failures)} image(s) could not be read; their rows hold NaN and the reason",
            flush=True,
        )
    return status.exit_status


def run(args: argparse.Namespace, tool: str) -> int:
    name, _, _ = TOOLS[tool]
    folder = Path(args.output_dir)
    if args.summarize:
        print(summarize_folder(folder, args.report_images, args.baseline).read_text(), end="")
        return 0
    if args.report:
        print(f"wrote {write_report(folder, f'{name}.py', args.report_images)}")
        return 0
    status = run_benchmark(benchmark_request(args, tool))
    print((folder / "summary.md").read_text(), end="")
    written = "scores.csv, manifest.json" + (
        ", curves.csv" if any(m in ("Deletion", "Insertion") for m in args.metrics) else ""
    )
    print(f"wrote {status.rows_folder}/ ({written}) and {folder}/summary.md, summary.csv, summary.png, "
          f"comparison.csv, comparison.png, {REPORT_NAME}")  # fmt: skip
    return exit_status(status)


def main(tool: str, argv: list[str] | None = None, prog: str | None = None) -> int:
    """Entry point of MyFaithfulness.py (tool 'faithfulness') and MyComplexity.py ('complexity'). ``prog``: the
    program name shown by --help (default: the script's)."""
    return run_main(
        build_parser(tool, prog), lambda args: run(args, tool), argv,
        interrupted="interrupted: the rows computed so far are kept; run the same command again to resume",
    )  # fmt: skip

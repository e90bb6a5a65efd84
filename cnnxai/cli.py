"""The command line of GradLIME.py and CamLIME.py: parse the flags into :class:`~cnnxai.explain_run.ExplainSettings`,
call :func:`cnnxai.reporting.explain.explain_to_folder`, print.

Exit status: 0 when every image was explained, 1 when some image of a folder failed (listed on stderr and
in failures.csv), 2 for bad options or input (one line on stderr naming the problem and the fix).
"""

from __future__ import annotations

import argparse
import sys

from cam_ext import CAM_METHODS, CamSettings
from cnnxai.cli_options import (
    DefaultsHelpFormatter,
    OneLineParser,
    add_alias_flags,
    add_explainer_option_flag,
    add_model_options,
    add_ray_options,
    add_run_options,
    explainer_list_option,
    explainer_options,
    int_at_least,
    model_request,
    ray_settings,
    run_main,
)
from cnnxai.explain_run import ExplainSettings, TaskRequest
from cnnxai.explainers import REGISTRY
from cnnxai.explainers.lime_family import VARIANTS
from cnnxai.images import SAMPLE_IMAGES
from cnnxai.reporting.explain import ImageOutcome, explain_to_folder
from cnnxai.tasks.cli import add_task_options, check_task_flags, task_choice
from cnnxai.tasks.models import TASK_CAM_METHODS, TASK_MODELS, task_model_spec

# The explainers' shared settings that these tools offer as flags (each made from the explainers' declarations).
ALIASES = ("num_samples", "max_samples", "top_k", "segmenter", "hide_color", "cam_mode", "fusion", "aug_smooth",
           "eigen_smooth", "prior_strength", "prior_floor", "normlime_reference", "sampling", "proxy",
           "exact_samples")  # fmt: skip


def build_parser(variant: str, prog: str | None = None) -> OneLineParser:
    title = VARIANTS[variant]
    what = (
        "GradLIME: LIME whose ridge fit takes Grad-CAM maps (one layer or several, fused) as per-superpixel priors."
        if variant == "gradlime"
        else "CamLIME: LIME whose ridge fit takes class-activation maps (11 CAM methods, one layer or several) as per-superpixel priors."
    )
    parser = OneLineParser(
        prog=prog or f"{title}.py",
        description=f"{what} Writes, per image, <output-dir>/<image>/explanation.png (Original | CAM | LIME | {title}, "
        "same perturbations), superpixels.csv, attribution.npy and manifest.json.",
        formatter_class=DefaultsHelpFormatter,
    )
    add = parser.add_argument
    add(
        "--image-path",
        default=None,
        help=f"an image file or a folder (walked recursively); default: the built-in sample photo ({SAMPLE_IMAGES[0]})",
    )
    add_model_options(parser, list(TASK_MODELS))
    if variant == "camlime":
        add("--method", default=None, choices=list(CAM_METHODS),
            help=f"class-activation method for the prior; default: {CamSettings.method}, or for --task detection "
            f"and face {TASK_CAM_METHODS['detection']} (docs/applications.md#which-cam)")  # fmt: skip
    add_alias_flags(parser, REGISTRY, ALIASES, {
        "num_samples": "perturbed images per explanation (the papers use 1000 to 8000), or auto: draw in rounds "
        "until the top-k superpixels are settled (docs/method.md#adaptive-sampling)",
        "normlime_reference": "with --compare normlime: the reference image folder its clusters and global weights "
        "are fitted on (cached); default: the built-in photos",
        "segmenter": "superpixels (quickshift: the papers' setting); default: quickshift, or slic for the synthetic "
        "96x96 scenes of --task detection and segmentation (quickshift finds about a dozen there)",
    }, defaults={"segmenter": None})  # fmt: skip
    add(
        "--num-features", type=int_at_least(1), default=20, help="superpixels shown in the figure and printed"
    )
    add(
        "--target",
        type=int_at_least(0),
        default=None,
        help="class index to explain; default: the top prediction",
    )
    add(
        "--top-labels",
        type=int_at_least(1),
        default=1,
        help="explain the k best predicted classes (ignored with --target)",
    )
    add(
        "--compare",
        type=explainer_list_option,
        default=[],
        help="other explainers to show beside ours, comma-separated (python -m cnnxai.explainers --list); each adds a panel and writes <name>.npy",
    )
    add_explainer_option_flag(parser)
    add_task_options(parser)
    add("--amp", action="store_true", help="float16 autocast for the perturbation forwards (CUDA only)")
    add("--tf32", action="store_true", help="allow TF32 convolutions and matrix products on CUDA (faster, changes "
        "logits by ~1e-3); off: full float32, as in every tool")  # fmt: skip
    add_ray_options(parser)
    add_run_options(parser, "results", "where <image>/ folders are written")
    return parser


def explain_settings(args: argparse.Namespace, variant: str) -> ExplainSettings:
    """The run the flags ask for; a flag that does not fit is a one-line :class:`UserInputError`."""
    check_task_flags(args)
    compare = tuple(args.compare)
    task = None
    if args.task != "classification":
        spec = task_model_spec(args.task, args.model)  # a model that does not serve --task: refused here
        task = TaskRequest(args.task, args.model, task_choice(args, spec.class_names()))
    fixed = {("camlime", "method"): args.method} if variant == "camlime" and args.method else {}
    methods = list(dict.fromkeys([variant, *compare]))
    return ExplainSettings(
        variant=variant, options=explainer_options(REGISTRY, methods, args, ALIASES, fixed), compare=compare,
        image_path=args.image_path, output_dir=args.output_dir, model=model_request(args), task=task,
        device=args.device, preprocess=args.preprocess, target=args.target, top_labels=args.top_labels,
        num_features=args.num_features, seed=args.seed, batch_size=args.batch_size, amp=args.amp, tf32=args.tf32,
        ray=ray_settings(args), quiet=args.quiet, record=dict(vars(args)),
    )  # fmt: skip


def print_outcome(outcome: ImageOutcome) -> None:
    """One image's report on stdout (above any progress bar), its error on stderr."""
    from tqdm.auto import tqdm

    if outcome.text:
        tqdm.write(outcome.text, end="")
    if outcome.error:
        print(f"error: {outcome.error}", file=sys.stderr)


def run(args: argparse.Namespace, variant: str) -> int:
    status = explain_to_folder(explain_settings(args, variant), print_outcome)
    if status.failures:
        print(
            f"{len(status.failures)} of {status.images} image(s) failed; see {status.failures_file}",
            file=sys.stderr,
        )
    return status.exit_status


def main(variant: str, argv: list[str] | None = None, prog: str | None = None) -> int:
    """Entry point of GradLIME.py (variant 'gradlime') and CamLIME.py ('camlime'); returns the exit status.
    ``prog``: the program name shown by --help (default: the script's)."""
    return run_main(build_parser(variant, prog), lambda args: run(args, variant), argv)

"""The command line of MyStability.py: parse the flags into a :class:`~cnnxai.stability.request.StabilityRequest`,
call :func:`cnnxai.reporting.stability.run_stability`, print.

Exit status as MyFaithfulness.py's: 0 when every image was explained; 1 when some image could not be read (its
rows say why); 2 for a bad option or input (one line on stderr, nothing written); 130 when interrupted (run the
same command again to resume).
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

from cnnxai.benchmark.cli import add_folder_options, add_resume_options, exit_status, folder_request
from cnnxai.cli_options import (
    DefaultsHelpFormatter,
    OneLineParser,
    add_alias_flags,
    add_explainer_option_flag,
    add_model_options,
    add_ray_options,
    add_run_options,
    argparse_type,
    explainer_options,
    int_at_least,
    ray_settings,
    run_main,
)
from cnnxai.explainers import REGISTRY
from cnnxai.reporting.stability import run_stability, write_stability_summary
from cnnxai.stability.request import StabilityRequest
from cnnxai.stability.runner import StabilitySettings
from cnnxai.stability.specs import BASELINE, parse_specs, resolve_methods

DEFAULT_METHODS = (
    "lime, gradlime, gradlime[prior_strength=10], gradlime[prior_strength=100], camlime, baylime, "
    "baylime[prior=gradcam], kernel_shap, lime[num_samples=auto], gradlime[num_samples=auto], "
    "kernel_shap[num_samples=auto]"
)
DEFAULT_GRID = (50, 100, 250, 500, 1000, 2000)
# The explainers' shared settings offered as flags (the budget is the grid's, so not --num-samples).
ALIASES = ("segmenter", "hide_color")


def grid_option(text: str) -> list[int]:
    """'50,100,250' -> [50, 100, 250]: sample counts, each at least 2, ascending, each once."""
    values = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        values.append(int_at_least(2)(part))
    if not values:
        raise argparse.ArgumentTypeError("expected sample counts, e.g. 50,100,250")
    return sorted(set(values))


def build_parser(prog: str | None = None) -> OneLineParser:
    parser = OneLineParser(
        prog=prog or "MyStability.py",
        description="How many model forwards does each LIME-family method need for a stable and faithful "
        "explanation? Over an image folder, for each method, each N of --num-samples-grid and each of --seeds "
        "seeds, on one fixed segmentation per image: the per-superpixel attributions, forwards, seconds, weighted "
        "R², superpixel deletion and insertion AUC, and agreement with a reference (plain lime at "
        "--reference-samples, another seed); across seeds, top-k Jaccard stability and Kendall's tau. Writes "
        "rows.csv (appended as computed: an interrupted run resumes), summary.csv/.md, forwards_to_match.csv/.md "
        "(the forwards each method needs to match plain lime at --match-samples), curves.png/.pdf and "
        "manifest.json.",
        formatter_class=DefaultsHelpFormatter,
    )
    add = parser.add_argument
    add_folder_options(parser)
    add("--methods", type=argparse_type(partial(parse_specs, registry=REGISTRY)), default=None, metavar="SPECS",
        help="method specs, comma-separated: a registry name with options in brackets, e.g. "
             "gradlime[prior_strength=10] or lime[num_samples=auto] (the spec is the method's label in every output; "
             "num_samples=auto: the method chooses N and runs once per seed; num_samples=K: at K only); default: "
             + DEFAULT_METHODS.replace(" ", ""))  # fmt: skip
    add("--num-samples-grid", type=grid_option, default=list(DEFAULT_GRID), metavar="N,N,...",
        help="the N (perturbed images per explanation) each method is run at; default: "
             + ",".join(map(str, DEFAULT_GRID)))  # fmt: skip
    add(
        "--seeds",
        type=int_at_least(2),
        default=5,
        help="explanations per image, method and N, with seeds --seed, --seed+1, ...; stability compares them",
    )
    add(
        "--top-k",
        type=int_at_least(1),
        default=5,
        help="size of the top-k superpixel sets (Jaccard); k >= the image's superpixels is a NaN with its reason",
    )
    add(
        "--reference-samples",
        type=int_at_least(2),
        default=8000,
        help="N of the reference: plain lime on the same superpixels with seed --seed+1000, once per image",
    )
    add(
        "--match-samples",
        type=int_at_least(2),
        default=1000,
        help="forwards_to_match compares each method with plain lime at this N (always run)",
    )
    add(
        "--curve-steps",
        type=int_at_least(1),
        default=20,
        help="deletion/insertion curves in at most this many steps (a step hides ceil(M/steps) superpixels)",
    )
    add_model_options(parser)
    add_alias_flags(parser, REGISTRY, ALIASES, {
        "segmenter": "superpixels: one segmentation per image (with --seed), used by every method",
        "hide_color": "colour of hidden superpixels, in the neighbourhoods and the deletion/insertion curves: 0 "
                      "(black), a grey level, R,G,B, or mean",
    })  # fmt: skip
    add_explainer_option_flag(parser)
    add_resume_options(parser, "the summary, forwards_to_match and curves")
    add_run_options(
        parser, "results/stability", "where rows.csv, the summary, the curves and the manifest are written"
    )
    add_ray_options(parser)
    return parser


def stability_request(args: argparse.Namespace) -> StabilityRequest:
    """The run the flags ask for; every spec and option checked before any work (a one-line
    :class:`UserInputError`)."""
    specs = args.methods if args.methods is not None else parse_specs(DEFAULT_METHODS, REGISTRY)
    grid = list(args.num_samples_grid)
    # The options the run's flags and --explainer-option give each explainer name of the run (and lime's).
    names = list(dict.fromkeys([spec.name for spec in specs] + [BASELINE]))
    base = explainer_options(REGISTRY, names, args, ALIASES)
    resolve_methods(specs, base, grid, args.match_samples, REGISTRY)  # every spec and option checked now
    settings = StabilitySettings(
        methods=(), seeds=tuple(args.seed + i for i in range(args.seeds)), grid=tuple(grid), top_k=args.top_k,
        reference_samples=args.reference_samples, reference_options={}, match_samples=args.match_samples,
        curve_steps=args.curve_steps, segmenter=args.segmenter, hide_color=args.hide_color, seed=args.seed,
        preprocess=args.preprocess,
    )  # fmt: skip
    return StabilityRequest(tuple(specs), base, settings, folder_request(args), ray_settings(args))


def run(args: argparse.Namespace) -> int:
    folder = Path(args.output_dir)
    if args.summarize:
        print(write_stability_summary(folder).read_text(), end="")
        print((folder / "forwards_to_match.md").read_text(), end="")
        return 0
    status = run_stability(stability_request(args))
    print((folder / "summary.md").read_text(), end="")
    print()
    print((folder / "forwards_to_match.md").read_text(), end="")
    print(f"wrote {status.rows_folder}/ (rows.csv, manifest.json) and {folder}/summary.md, summary.csv, "
          "comparison.csv, forwards_to_match.md, forwards_to_match.csv, curves.png, curves.pdf")  # fmt: skip
    return exit_status(status)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Entry point of MyStability.py. ``prog``: the program name shown by --help (default: the script's)."""
    return run_main(
        build_parser(prog), run, argv,
        interrupted="interrupted: the rows computed so far are kept; run the same command again to resume",
    )  # fmt: skip

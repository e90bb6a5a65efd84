"""The command line of MyStability.py: options, checks, the run and what it prints.

Exit status as MyFaithfulness.py's: 0 when every image was explained; 1 when some image could not be read (its
rows say why); 2 for a bad option or input (one line on stderr, nothing written); 130 when interrupted (run the
same command again to resume).
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

from cnnxai.benchmark.cli import (
    add_folder_options,
    add_resume_options,
    clear_run,
    exit_status,
    folder_selection,
)
from cnnxai.benchmark.data import discover, parse_shard, select
from cnnxai.cli_options import (
    DefaultsHelpFormatter,
    OneLineParser,
    add_alias_flags,
    add_explainer_option_flag,
    add_model_options,
    add_run_options,
    argparse_type,
    explainer_options,
    fill_alias,
    int_at_least,
    model_request,
    run_main,
    takes_alias,
)
from cnnxai.devices import resolve_device
from cnnxai.errors import UserInputError
from cnnxai.explainers import REGISTRY
from cnnxai.reporting.stability import write_stability_summary
from cnnxai.stability.runner import StabilityRun, StabilitySettings
from cnnxai.stability.specs import MethodSpec, ResolvedMethod, parse_specs, resolve_method
from cnnxai.zoo import load_classifier

DEFAULT_METHODS = (
    "lime, gradlime, gradlime[prior_strength=10], gradlime[prior_strength=100], camlime, baylime, "
    "baylime[prior=gradcam], kernel_shap, lime[num_samples=auto], gradlime[num_samples=auto], "
    "kernel_shap[num_samples=auto]"
)
DEFAULT_GRID = (50, 100, 250, 500, 1000, 2000)
# The explainers' shared settings offered as flags (the budget is the grid's, so not --num-samples).
ALIASES = ("segmenter", "hide_color")
RUN_FILES = ("rows.csv", "manifest.json", "summary.csv", "summary.md", "comparison.csv", "forwards_to_match.csv",
             "forwards_to_match.md", "curves.png", "curves.pdf")  # fmt: skip
BASELINE = "lime"


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
    return parser


def run_options(specs: list[MethodSpec], args: argparse.Namespace) -> dict[str, dict]:
    """The options the run's flags and ``--explainer-option`` give each explainer name of the run (and lime's)."""
    names = list(dict.fromkeys([spec.name for spec in specs] + [BASELINE]))
    return explainer_options(REGISTRY, names, args, ALIASES)


def resolve_methods(
    specs: list[MethodSpec], base: dict[str, dict], grid: list[int], match_samples: int
) -> list[ResolvedMethod]:
    """Every spec resolved (see :func:`resolve_method`), plain lime at ``match_samples`` added as the baseline."""
    methods = [resolve_method(spec, base[spec.name], grid, REGISTRY) for spec in specs]
    labels = [m.label for m in methods]
    if BASELINE in labels:
        lime = methods[labels.index(BASELINE)]
        if lime.auto:
            raise UserInputError(
                "--explainer-option lime.num_samples=auto leaves no plain lime at --match-samples to compare with; "
                "write the auto variant as the spec lime[num_samples=auto]"
            )
        budgets = tuple(sorted({*lime.budgets, match_samples}))
        methods[labels.index(BASELINE)] = ResolvedMethod(lime.label, lime.name, lime.options, budgets)
    else:
        methods.append(
            resolve_method(MethodSpec(BASELINE, BASELINE), base[BASELINE], [match_samples], REGISTRY)
        )
    return methods


def run(args: argparse.Namespace) -> int:
    folder = Path(args.output_dir)
    if args.summarize:
        print(write_stability_summary(folder).read_text(), end="")
        print((folder / "forwards_to_match.md").read_text(), end="")
        return 0
    specs = args.methods if args.methods is not None else parse_specs(DEFAULT_METHODS, REGISTRY)
    grid = list(args.num_samples_grid)
    base = run_options(specs, args)
    resolve_methods(specs, base, grid, args.match_samples)  # every spec and option checked before any work
    shard = parse_shard(args.shard) if args.shard else (1, 1)
    dataset = discover(args.data_dir)
    images = select(dataset, args.num_classes, args.per_class, args.seed)
    if not images:
        raise UserInputError(f"--data-dir {args.data_dir}: no images found")
    device = resolve_device(args.device)
    loaded = load_classifier(model_request(args), device, takes_alias(REGISTRY, list(base), "layers"), not args.quiet)
    fill_alias(base, REGISTRY, "layers", list(loaded.layers))
    methods = resolve_methods(specs, base, grid, args.match_samples)
    reference = REGISTRY.options(BASELINE, {k: v for k, v in base[BASELINE].items() if k != "num_samples"})
    reference.pop("num_samples")
    settings = StabilitySettings(
        methods=tuple(methods), seeds=tuple(args.seed + i for i in range(args.seeds)), grid=tuple(grid),
        top_k=args.top_k, reference_samples=args.reference_samples, reference_options=reference,
        match_samples=args.match_samples, curve_steps=args.curve_steps, segmenter=args.segmenter,
        hide_color=args.hide_color, seed=args.seed, preprocess=args.preprocess,
        frame_size=loaded.info.input_size, resize=loaded.info.resize,
    )  # fmt: skip
    if args.overwrite:
        clear_run(folder, shard, RUN_FILES)
    selection = folder_selection(args, dataset)
    stability = StabilityRun(
        settings, loaded.model, loaded.manifest, dataset, images, folder, shard, args.batch_size, selection,
        progress=not args.quiet, debug=args.debug,
    )  # fmt: skip
    status = stability.run()
    write_stability_summary(folder)
    print((folder / "summary.md").read_text(), end="")
    print()
    print((folder / "forwards_to_match.md").read_text(), end="")
    print(f"wrote {stability.rows_folder}/ (rows.csv, manifest.json) and {folder}/summary.md, summary.csv, "
          "comparison.csv, forwards_to_match.md, forwards_to_match.csv, curves.png, curves.pdf")  # fmt: skip
    return exit_status(status)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Entry point of MyStability.py. ``prog``: the program name shown by --help (default: the script's)."""
    return run_main(
        build_parser(prog), run, argv,
        interrupted="interrupted: the rows computed so far are kept; run the same command again to resume",
    )  # fmt: skip

"""The command line of Figures.py: one command per figure of the GradLIME / CamLIME papers and their public
scripts, written as PNG (and PDF) with a manifest beside it. Exit status 0, or 2 for a bad option or input (one
line on stderr naming the problem)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from cam_ext import CAM_METHODS
from cnnxai.cli_options import (
    DefaultsHelpFormatter,
    OneLineParser,
    add_alias_flags,
    add_explainer_option_flag,
    add_model_options,
    add_run_options,
    comma_separated,
    explainer_options,
    fill_alias,
    int_at_least,
    model_request,
    run_main,
)
from cnnxai.devices import resolve_device
from cnnxai.errors import UserInputError
from cnnxai.explainers import REGISTRY, explain
from cnnxai.figures.catalog import FIGURES, FigureSpec
from cnnxai.figures.context import FigureContext, FigureRun, FigureSettings
from cnnxai.images import SAMPLE_IMAGES, find_images, load_image, sample_image
from cnnxai.outputs import atomic_savefig, build_manifest, write_json
from cnnxai.preprocess import to_model_frame
from cnnxai.targets import TargetScore
from cnnxai.tasks.cli import add_task_options, check_task_flags, task_choice
from cnnxai.tasks.explain import explain_task
from cnnxai.tasks.models import TASK_MODELS, task_frame, task_model_spec, task_sample
from cnnxai.zoo import MODEL_FORMS, MODELS, choose_layers, load_classifier, load_model

DEFAULT_FEATURES = {"weight-feature": 8}  # GradLIME_w_f.py of the public GradLIME repository shows 8; else 20
# The explainers' shared settings offered as flags (each made from the explainers' declarations).
ALIASES = ("num_samples", "segmenter", "hide_color", "rise_masks", "ig_steps", "normlime_reference",
           "normlime_samples", "normlime_clusters")  # fmt: skip


def build_parser(prog: str | None = None) -> OneLineParser:
    parser = OneLineParser(
        prog=prog or "Figures.py",
        description="One command per figure of the GradLIME / CamLIME papers, drawn from this library's explainers "
        "on your image and model: <output-dir>/<figure>_<image>.png (and .pdf with --pdf) and a .json manifest "
        "beside it. %(prog)s --list names them.",
        formatter_class=DefaultsHelpFormatter,
    )
    add = parser.add_argument
    add(
        "figure",
        nargs="?",
        choices=list(FIGURES),
        metavar="NAME",
        help="the figure to draw (see --list)",
    )
    add("--list", action="store_true", help="list the figures and what each shows")
    add(
        "--image-path",
        default=None,
        help=f"an image file, a folder (one figure per image), or a built-in photo: {', '.join('sample:' + n for n in SAMPLE_IMAGES)}; "
        f"default: sample:{SAMPLE_IMAGES[0]}, or for the application figures their task's own sample",
    )
    add_model_options(parser, list(TASK_MODELS))
    add("--models", type=comma_separated, default=list(MODELS),
        help="for 'models': zoo names, comma-separated; those without weights here are skipped with a message")  # fmt: skip
    add("--method", default=None, choices=list(CAM_METHODS),
        help="the CAM method of the prior (default: layercam for layers and fusion-depth, gradcam otherwise)")  # fmt: skip
    add("--methods", type=comma_separated, default=None,
        help="for cam-methods, cam-methods-layers, weight-feature: CAM methods; for compare, deletion-insertion: "
        "explainers (python -m cnnxai.explainers --list); default: each figure's own set (see --list)")  # fmt: skip
    add_alias_flags(parser, REGISTRY, ALIASES, {
        "num_samples": "perturbed images of the LIME neighbourhood (the papers used 1000 to 8000)",
        "normlime_reference": "for 'normlime': the reference folder of its clusters and global weights (cached); "
        "default: the built-in photos",
        "normlime_samples": "for 'normlime': LIME samples per reference image when fitting its global weights "
        "(PaddleX: 3000)",
        "normlime_clusters": "for 'normlime': KMeans clusters of superpixels",
        "segmenter": "superpixels of the LIME family; default: quickshift, or slic for the synthetic 96x96 scenes "
        "of the detection and segmentation figures",
    }, defaults={"segmenter": None})  # fmt: skip
    add_explainer_option_flag(parser)
    add("--num-features", type=int_at_least(1), default=None,
        help="superpixels shown per LIME panel (default: 8 for weight-feature, 20 otherwise)")  # fmt: skip
    add(
        "--target", type=int_at_least(0), default=None, help="class index to explain; default: the prediction"
    )
    add("--samples", type=int_at_least(1), default=12, help="for 'neighbourhood': perturbed samples shown")
    add("--curve-step", type=int_at_least(1), default=224, help="for 'deletion-insertion': pixels per step")
    add("--pdf", action="store_true", help="also write a PDF of each figure (text and lines as vectors)")
    add("--dpi", type=int_at_least(50), default=150,
        help="PNG resolution; a panel is 2.1 in wide, so about 110 shows the 224-pixel frame at its own size")  # fmt: skip
    add_task_options(parser, task_flag=False)
    add_run_options(parser, "DemoImage", "where <figure>_<image>.png and .json are written")
    return parser


def list_figures() -> str:
    lines = []
    for name, spec in FIGURES.items():
        methods = f" [--methods default: {','.join(spec.default_methods)}]" if spec.default_methods else ""
        lines.append(f"{name:<20}{spec.description}{methods}")
    return "\n".join(lines)


def checked_methods(spec: FigureSpec, methods: list[str] | None) -> tuple[str, ...]:
    if methods is None:
        return spec.default_methods
    if not spec.methods:
        raise UserInputError(f"--methods: figure {spec.name} takes none (see Figures.py --list)")
    known = CAM_METHODS if spec.methods == "cam" else REGISTRY
    unknown = [name for name in methods if name not in known]
    if unknown:
        what = "CAM methods" if spec.methods == "cam" else "explainers (python -m cnnxai.explainers --list)"
        raise UserInputError(f"--methods: unknown {', '.join(unknown)} for {spec.name}; it takes {what}")
    if not methods:
        raise UserInputError("--methods: give at least one")
    return tuple(methods)


def images_of(image_path: str) -> list[tuple[str, object]]:
    """(name, loader) of each image: a built-in photo, a file, or every image of a folder."""
    if image_path.startswith("sample:"):
        name = image_path.split(":", 1)[1]
        return [(name, lambda: sample_image(name))]
    path = Path(image_path)
    if path.is_dir():
        return [
            ("__".join(p.relative_to(path).with_suffix("").parts), lambda p=p: load_image(p))
            for p in find_images(path)
        ]
    if not path.exists():
        raise UserInputError(
            f"--image-path {path}: no such file or folder; give an image, a folder or sample:NAME"
        )
    return [(path.stem, lambda: load_image(path))]


def save(fig, folder: Path, stem: str, pdf: bool, manifest: dict, dpi: int = 150) -> list[Path]:
    """The figure as PNG (and PDF) and its manifest, each written to a temporary file and renamed."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix in (".png", ".pdf") if pdf else (".png",):
        atomic_savefig(fig, folder / f"{stem}{suffix}", dpi)
        written.append(folder / f"{stem}{suffix}")
    plt.close(fig)
    final = folder / f"{stem}.json"
    write_json(final, {**manifest, "files": [p.name for p in written]})
    return [*written, final]


def settings_of(args: argparse.Namespace, spec: FigureSpec) -> FigureSettings:
    """The figure's typed settings from the command line."""
    several = args.layers and len([part for item in args.layers for part in item.split(",") if part]) > 1
    return FigureSettings(
        method=args.method, methods=checked_methods(spec, args.methods), models=tuple(args.models),
        multi_layers=None if not several else tuple(part for item in args.layers for part in item.split(",") if part),
        num_features=args.num_features or DEFAULT_FEATURES.get(spec.name, 20), samples=args.samples,
        curve_step=args.curve_step,
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    if args.list:
        print(list_figures())
        return 0
    if args.figure is None:
        raise UserInputError("name a figure (Figures.py NAME); Figures.py --list names them")
    spec = FIGURES.lookup(args.figure)
    if spec.task:
        return run_application(args, spec)
    args.task = "classification"
    check_task_flags(args)
    settings = settings_of(args, spec)
    options = explainer_options(REGISTRY, list(REGISTRY), args, ALIASES)  # any explainer may be drawn
    images = images_of(args.image_path or f"sample:{SAMPLE_IMAGES[0]}")
    device = resolve_device(args.device)
    args.model = args.model or "efficientnet_lite0"
    if args.model in TASK_MODELS:
        raise UserInputError(f"--model {args.model} is a {TASK_MODELS[args.model].task} model: figure {spec.name} "
                             f"explains a classifier: {MODEL_FORMS}")  # fmt: skip
    loaded = load_classifier(model_request(args), device, progress=not args.quiet)
    model, model_info, layers = loaded.model, loaded.manifest, list(loaded.layers)
    class_names = list(loaded.info.class_names)

    def other_model(name: str):
        return load_model(name, None, device)[0], MODELS[name].layers

    for name, load in images:
        frame = to_model_frame(load(), args.preprocess, loaded.info.resize, loaded.info.input_size)
        start = time.perf_counter()
        context = FigureContext(model, args.model, frame, layers, options, class_names, args.seed, args.batch_size,
                                args.target)  # fmt: skip
        figure_run = FigureRun(settings, context, name, other_model)
        with torch.random.fork_rng(devices=[]):  # nothing here may change the caller's global RNG
            fig = spec.draw(figure_run)
        for skipped, reason in figure_run.skipped.items():
            print(f"skipped {skipped}: {reason}", file=sys.stderr)
        manifest = build_manifest(
            "Figures.py", figure=spec.name, description=spec.description, options=vars(args),
            image={"source": args.image_path, "name": name}, model={**model_info, "device": str(device)},
            target={"class": context.target, "name": class_names[context.target]}, methods=list(settings.methods),
            layers=layers, skipped_models=figure_run.skipped, seed=args.seed, seconds=time.perf_counter() - start,
        )  # fmt: skip
        written = save(fig, Path(args.output_dir), f"{spec.name}_{name}", args.pdf, manifest, args.dpi)
        print(f"{spec.name}: wrote {', '.join(str(p) for p in written)}")
    return 0


def run_application(args: argparse.Namespace, figure: FigureSpec) -> int:
    """An application figure: CamLIME (--method; default: the task's, docs/applications.md#which-cam) of a box, a
    region or a face of the task's model, beside LIME and the --methods explainers (default: RISE, i.e. D-RISE for boxes) of the same target."""
    args.task = task = figure.task
    check_task_flags(args)
    spec = task_model_spec(task, args.model)
    methods = list(args.methods) if args.methods is not None else list(figure.default_methods)
    unknown = [name for name in methods if name not in REGISTRY]
    if unknown:
        raise UserInputError(
            f"--methods: unknown {', '.join(unknown)}; python -m cnnxai.explainers --list names them"
        )
    options = explainer_options(REGISTRY, ["camlime", *methods], args, ALIASES,
                                {("camlime", "method"): args.method or spec.cam_method})  # fmt: skip
    device = resolve_device(args.device)
    model, model_info = spec.load(args.weights, device)
    choice = task_choice(args, spec.class_names())
    layers = TargetScore.layer_names(choose_layers(model, args.layers, spec.layers))
    fill_alias(options, REGISTRY, "layers", layers)
    if spec.segmenter is not None:
        fill_alias(options, REGISTRY, "segmenter", spec.segmenter)
    named = (
        [task_sample(spec)]
        if args.image_path is None
        else [(n, load()) for n, load in images_of(args.image_path)]
    )
    for name, image in named:
        start = time.perf_counter()
        frame = task_frame(image, spec.frame)
        with torch.random.fork_rng(devices=[]):
            explained = explain_task("camlime", spec, model, frame, choice, args.seed, device, args.batch_size,
                                     **options["camlime"])  # fmt: skip
            others = {m: explain(m, explained.model, frame, 0, args.seed, device, args.batch_size, explained.session,
                                 **options[m]).map for m in methods}  # fmt: skip
            fig = figure.draw(explained, task, "CamLIME", others)
        manifest = build_manifest(
            "Figures.py", figure=figure.name, description=figure.description, options=vars(args),
            image={"source": args.image_path or "sample", "name": name, "frame_size_wh": [frame.shape[1], frame.shape[0]]},
            model={**model_info, "device": str(device)}, task=explained.selection.record, methods=methods,
            layers=layers, seed=args.seed, seconds=time.perf_counter() - start,
        )  # fmt: skip
        written = save(fig, Path(args.output_dir), f"{task}_{name}", args.pdf, manifest, args.dpi)
        print(f"{task}: wrote {', '.join(str(p) for p in written)}")
    return 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Entry point of Figures.py. ``prog``: the program name shown by --help (default: the script's)."""
    return run_main(build_parser(prog), run, argv)

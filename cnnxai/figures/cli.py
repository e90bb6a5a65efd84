"""The command line of Figures.py: one command per figure of the seeds' papers, written as PNG (and PDF) with a
manifest beside it. Exit status 0, or 2 for a bad option or input (one line on stderr naming the problem)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from cam_ext import CAM_METHODS
from cnnxai.cli_options import (
    DefaultsHelpFormatter,
    OneLineParser,
    add_budget_options,
    add_lime_options,
    add_model_options,
    add_run_options,
    cli_layers,
    comma_separated,
    explainer_settings,
    int_at_least,
    run_main,
)
from cnnxai.devices import resolve_device
from cnnxai.errors import UserInputError
from cnnxai.explainers import REGISTRY
from cnnxai.explainers.sise import block_output_layers
from cnnxai.figures.catalog import FIGURES, FigureSpec
from cnnxai.figures.context import FigureContext
from cnnxai.images import SAMPLE_IMAGES, find_images, load_image, sample_image
from cnnxai.outputs import atomic_savefig, atomic_write_text, package_versions
from cnnxai.preprocess import to_model_frame
from cnnxai.zoo import MODELS, imagenet_class_names, load_model
from lime_ext import CamLimeExplainer, Neighbourhood

DEFAULT_FEATURES = {"weight-feature": 8}  # the seeds' per-figure choices (GradLIME_w_f.py: 8); else 20


def build_parser() -> OneLineParser:
    parser = OneLineParser(
        prog="Figures.py",
        description="One command per figure of the GradLIME / CamLIME papers, drawn from this library's explainers "
        "on your image and model: <output-dir>/<figure>_<image>.png (and .pdf with --pdf) and a .json manifest "
        "beside it. Figures.py --list names them.",
        formatter_class=DefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("figure", nargs="?", choices=list(FIGURES), metavar="NAME", help="the figure to draw (see --list)")
    add("--list", action="store_true", help="list the figures and what each shows")
    add(
        "--image-path",
        default=f"sample:{SAMPLE_IMAGES[0]}",
        help=f"an image file, a folder (one figure per image), or a built-in photo: {', '.join('sample:' + n for n in SAMPLE_IMAGES)}",
    )
    add_model_options(parser)
    add("--models", type=comma_separated, default=list(MODELS),
        help="for 'models': zoo names, comma-separated; those without weights here are skipped with a message")  # fmt: skip
    add("--method", default=None, choices=list(CAM_METHODS),
        help="the CAM method of the prior (default: layercam for layers and fusion-depth, gradcam otherwise)")  # fmt: skip
    add("--methods", type=comma_separated, default=None,
        help="for cam-methods, cam-methods-layers, weight-feature: CAM methods; for compare, deletion-insertion: "
        "explainers (python -m cnnxai.explainers --list); default: the seeds' set of each figure (see --list)")  # fmt: skip
    add_lime_options(parser, "perturbed images of the LIME neighbourhood (the papers used 1000 to 8000)")
    add("--num-features", type=int_at_least(1), default=None,
        help="superpixels shown per LIME panel (default: 8 for weight-feature, 20 otherwise)")  # fmt: skip
    add(
        "--target", type=int_at_least(0), default=None, help="class index to explain; default: the prediction"
    )
    add("--samples", type=int_at_least(1), default=12, help="for 'neighbourhood': perturbed samples shown")
    add("--curve-step", type=int_at_least(1), default=224, help="for 'deletion-insertion': pixels per step")
    add("--normlime-reference", default=None,
        help="for 'normlime': the reference folder of its clusters and global weights (cached); default: the built-in photos")  # fmt: skip
    add("--normlime-samples", type=int_at_least(2), default=3000,
        help="for 'normlime': LIME samples per reference image when fitting its global weights (PaddleX: 3000)")  # fmt: skip
    add(
        "--normlime-clusters",
        type=int_at_least(2),
        default=50,
        help="for 'normlime': KMeans clusters of superpixels",
    )
    add_budget_options(parser)
    add("--pdf", action="store_true", help="also write a PDF of each figure (text and lines as vectors)")
    add("--dpi", type=int_at_least(50), default=150,
        help="PNG resolution; a panel is 2.1 in wide, so about 110 shows the 224-pixel frame at its own size")  # fmt: skip
    add_run_options(parser, "DemoImage", "where <figure>_<image>.png and .json are written")
    return parser


def list_figures() -> str:
    lines = []
    for name, spec in FIGURES.items():
        methods = f" [--methods default: {','.join(spec.default_methods)}]" if spec.default_methods else ""
        lines.append(f"{name:<20}{spec.description}{methods}")
    return "\n".join(lines)


class FigureRun:
    """One figure of one image: the options, the main model's :class:`FigureContext`, and what figures ask."""

    def __init__(
        self, args: argparse.Namespace, spec: FigureSpec, frame, image_key: str, model, device, layers
    ) -> None:
        self.args, self.spec, self.image_key, self.device = args, spec, image_key, device
        self.class_names = imagenet_class_names()
        self.options = {
            **explainer_settings(args), "seed": args.seed, "batch_size": args.batch_size, "target": args.target,
            "layers": layers, "normlime_samples": args.normlime_samples, "normlime_clusters": args.normlime_clusters,
        }  # fmt: skip
        if args.normlime_reference is not None:
            self.options["normlime_reference"] = args.normlime_reference
        self.context = FigureContext(model, args.model, frame, self.options, self.class_names)
        self.model_names = args.models
        self.method = args.method
        self.methods = checked_methods(spec, args.methods)
        self.num_features = args.num_features or DEFAULT_FEATURES.get(spec.name, 20)
        self.samples = args.samples
        self.metric_settings = {"Deletion.step": str(args.curve_step), "Insertion.step": str(args.curve_step)}
        self.skipped: dict[str, str] = {}

    def multi_layers(self, ctx: FigureContext) -> list[str]:
        """--layers when several are given, else one layer per feature-map size, low level first (at most 4)."""
        if self.args.layers and len(self.context.options["layers"]) > 1:
            return list(self.context.options["layers"])
        return block_output_layers(ctx.model, ctx.x)[-4:]

    def context_for_model(self, name: str) -> FigureContext | None:
        """The same image under zoo model ``name``, or None (with a message) when its weights are not here."""
        if name == self.args.model:
            return self.context
        try:
            model, _ = load_model(name, None, self.device)
        except UserInputError as error:
            self.skipped[name] = str(error)
            print(f"skipped {name}: {error}", file=sys.stderr)
            return None
        return FigureContext(model, name, self.context.frame, {**self.options, "layers": list(MODELS[name].layers)},
                             self.class_names)  # fmt: skip

    def channel_neighbourhood(self, ctx: FigureContext, hidden) -> Neighbourhood:
        """The image's neighbourhood (same superpixels and draws) with ``hidden`` shown where superpixels are off."""
        explainer = CamLimeExplainer(
            ctx.classifier, segmenter=self.options["segmenter"], batch_size=self.options["batch_size"]
        )
        return explainer.sample(
            ctx.frame, int(self.options["num_samples"]), ctx.seed, ctx.neighbourhood.segments, hidden=hidden
        )


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
    atomic_write_text(
        final, json.dumps({**manifest, "files": [p.name for p in written]}, indent=2, default=str) + "\n"
    )
    return [*written, final]


def run(args: argparse.Namespace) -> int:
    if args.list:
        print(list_figures())
        return 0
    if args.figure is None:
        raise UserInputError("name a figure (Figures.py NAME); Figures.py --list names them")
    spec = FIGURES[args.figure]
    checked_methods(spec, args.methods)
    if args.normlime_reference is not None and not Path(args.normlime_reference).is_dir():
        raise UserInputError(
            f"--normlime-reference {args.normlime_reference}: no such folder; give a folder of images"
        )
    images = images_of(args.image_path)
    device = resolve_device(args.device)
    model, model_info = load_model(args.model, args.weights, device)
    layers = cli_layers(model, args.layers, args.model)
    for name, load in images:
        frame = to_model_frame(load(), args.preprocess)
        start = time.perf_counter()
        figure_run = FigureRun(args, spec, frame, name, model, device, layers)
        with torch.random.fork_rng(devices=[]):  # nothing here may change the caller's global RNG
            fig = spec.draw(figure_run)
        manifest = {
            "tool": "Figures.py", "figure": spec.name, "description": spec.description, "command": shlex.join(sys.argv),
            "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()},
            "image": {"source": args.image_path, "name": name}, "model": {**model_info, "device": str(device)},
            "target": {"class": figure_run.context.target, "name": figure_run.class_names[figure_run.context.target]},
            "methods": list(figure_run.methods), "layers": layers, "skipped_models": figure_run.skipped,
            "seed": args.seed, "seconds": time.perf_counter() - start, "versions": package_versions(),
        }  # fmt: skip
        written = save(fig, Path(args.output_dir), f"{spec.name}_{name}", args.pdf, manifest, args.dpi)
        print(f"{spec.name}: wrote {', '.join(str(p) for p in written)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of Figures.py."""
    return run_main(build_parser(), run, argv)

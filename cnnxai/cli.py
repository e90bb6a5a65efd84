"""The command line of GradLIME.py and CamLIME.py: parse, explain each image with the library, print.

Exit status: 0 when every image was explained, 1 when some image of a folder failed (listed on stderr and
in failures.csv), 2 for bad options or input (one line on stderr naming the problem and the fix).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

from cam_ext import CAM_METHODS, CamSettings
from cnnxai.cli_options import (
    DefaultsHelpFormatter,
    OneLineParser,
    add_alias_flags,
    add_explainer_option_flag,
    add_model_options,
    add_run_options,
    cli_layers,
    explainer_list_option,
    explainer_options,
    fill_alias,
    int_at_least,
    run_main,
)
from cnnxai.devices import resolve_device
from cnnxai.errors import UserInputError
from cnnxai.explainers import REGISTRY, CamLimeResult, explain, explain_image
from cnnxai.explainers.lime_family import VARIANTS
from cnnxai.images import SAMPLE_IMAGES, find_images, load_image, sample_image
from cnnxai.preprocess import FRAME_SIZE, to_model_frame
from cnnxai.zoo import imagenet_class_names, load_model

# The explainers' shared settings that these tools offer as flags (each made from the explainers' declarations).
ALIASES = ("num_samples", "max_samples", "top_k", "segmenter", "hide_color", "cam_mode", "fusion", "aug_smooth",
           "eigen_smooth", "prior_strength", "prior_floor", "normlime_reference")  # fmt: skip


def build_parser(variant: str) -> OneLineParser:
    title = VARIANTS[variant]
    what = (
        "GradLIME: LIME whose ridge fit takes Grad-CAM maps (one layer or several, fused) as per-superpixel priors."
        if variant == "gradlime"
        else "CamLIME: LIME whose ridge fit takes class-activation maps (11 CAM methods, one layer or several) as per-superpixel priors."
    )
    parser = OneLineParser(
        prog=f"{title}.py",
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
    add_model_options(parser)
    if variant == "camlime":
        add("--method", default=CamSettings.method, choices=list(CAM_METHODS),
            help="class-activation method for the prior")  # fmt: skip
    add_alias_flags(parser, REGISTRY, ALIASES, {
        "num_samples": "perturbed images per explanation (the papers use 1000 to 8000), or auto: draw in rounds "
        "until the top-k superpixels are settled (docs/method.md#adaptive-sampling)",
        "normlime_reference": "with --compare normlime: the reference image folder its clusters and global weights "
        "are fitted on (cached); default: the built-in photos",
    })  # fmt: skip
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
    add("--amp", action="store_true", help="float16 autocast for the perturbation forwards (CUDA only)")
    add_run_options(parser, "results", "where <image>/ folders are written")
    return parser


def output_name(path: Path | None, root: Path | None) -> str:
    """The output folder name: the file stem, or for folders the relative path with '/' -> '__'."""
    if path is None:
        return SAMPLE_IMAGES[0]
    relative = path.relative_to(root) if root is not None else Path(path.name)
    return "__".join(relative.with_suffix("").parts)


class ExplainRun:
    """Everything loaded once for a run over images: the explainers' options, device, model, layers, names."""

    def __init__(self, args: argparse.Namespace, variant: str) -> None:
        self.args, self.variant = args, variant
        self.methods = list(dict.fromkeys([variant, *args.compare]))
        fixed = {("camlime", "method"): args.method} if variant == "camlime" else {}
        self.options = explainer_options(
            REGISTRY, self.methods, args, ALIASES, fixed
        )  # checked before any work
        self.device = resolve_device(args.device)
        self.class_names = imagenet_class_names()
        if args.target is not None and args.target >= len(self.class_names):
            raise UserInputError(
                f"--target {args.target} is out of range: the model has {len(self.class_names)} classes (0..{len(self.class_names) - 1})"
            )
        start = time.perf_counter()
        self.model, self.model_info = load_model(args.model, args.weights, self.device)
        self.load_s = time.perf_counter() - start
        self.layers = cli_layers(self.model, args.layers, args.model)
        fill_alias(self.options, REGISTRY, "layers", self.layers)

    def explain(self, image: np.ndarray, source: str, name: str) -> CamLimeResult:
        """Explain one loaded image and write its outputs."""
        args, title = self.args, VARIANTS[self.variant]
        frame = to_model_frame(image, args.preprocess)
        shared: dict = {}  # this image's neighbourhood and CAMs, reused by the --compare explainers
        start = time.perf_counter()
        result = explain_image(
            self.variant, self.model, frame, args.target, args.top_labels, args.seed, self.device, args.batch_size,
            shared, args.amp, progress=not args.quiet, **self.options[self.variant],
        )  # fmt: skip
        compare = {
            name: explain(name, self.model, frame, result.target, args.seed, self.device, args.batch_size, shared,
                          **self.options[name]).map
            for name in args.compare
        }  # fmt: skip
        explain_s = time.perf_counter() - start
        out = Path(args.output_dir) / name
        result.save(
            out, f"{title}.py", self.class_names, title, args.num_features, compare,
            manifest={
                "options": vars(args), "seed": args.seed,
                "image": {"source": source, "original_size_wh": [int(image.shape[1]), int(image.shape[0])],
                          "preprocess": args.preprocess, "frame_size": FRAME_SIZE},
                "model": {**self.model_info, "device": str(self.device), "amp": bool(args.amp and self.device.type == "cuda")},
                "explainers": {m: REGISTRY.options(m, self.options[m]) for m in self.methods},
                "timings": {"model_load_s": self.load_s, "explain_s": explain_s, **result.timings},
            },
        )  # fmt: skip
        self._report(result, source, out)
        return result

    def _report(self, result: CamLimeResult, source: str, out: Path) -> None:
        args, label = self.args, result.target
        name, probability = self.class_names[label], float(result.probabilities[label])
        if args.quiet:
            print(f"{source}: {name} (class {label}) p={probability:.3f} -> {out}")
            return
        title = VARIANTS[self.variant]
        print(f"{source}: predicted {name} (class {label}), p = {probability:.3f}")
        for tag, exp in ((title, result.ours), ("LIME", result.lime)):
            top = exp.labels[label].local_exp[: args.num_features]
            shown = ", ".join(f"{j}:{w:+.4f}" for j, w in top[:10])
            print(
                f"  {tag} top superpixels (id:attribution, R² {exp.labels[label].score:.3f}): {shown}{' ...' if len(top) > 10 else ''}"
            )
        print(f"  wrote {out}/ (explanation.png, superpixels.csv, attribution.npy, manifest.json)")


def _inputs(image_path: str | None) -> tuple[list[Path | None], Path | None, bool]:
    """(images, root folder or None, is_folder). None stands for the built-in sample photo."""
    if image_path is None:
        return [None], None, False
    path = Path(image_path)
    if path.is_dir():
        return list(find_images(path)), path, True
    if not path.exists():
        raise UserInputError(
            f"--image-path {path}: no such file or folder; give an image file or a folder of images"
        )
    return [path], None, False


def run(args: argparse.Namespace, variant: str) -> int:
    images, root, is_folder = _inputs(args.image_path)
    explain_run = ExplainRun(args, variant)
    failures: list[tuple[str, str]] = []
    failures_file = Path(args.output_dir) / "failures.csv"
    if is_folder and failures_file.exists():
        failures_file.unlink()  # a stale list from an earlier run would mislead
    iterator = images
    if is_folder and not args.quiet and len(images) > 1:
        from tqdm.auto import tqdm

        iterator = tqdm(images, desc="images", unit="image")
    for path in iterator:
        source = str(path) if path is not None else f"sample:{SAMPLE_IMAGES[0]}"
        try:
            image = load_image(path) if path is not None else sample_image(SAMPLE_IMAGES[0])
            explain_run.explain(image, source, output_name(path, root))
        except UserInputError as error:
            if not is_folder:
                raise
            message = str(error) if source in str(error) else f"{source}: {error}"
            failures.append((source, message))
            print(f"error: {message}", file=sys.stderr)
    if failures:
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
        with open(failures_file, "w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["path", "error"])
            writer.writerows(failures)
        print(f"{len(failures)} of {len(images)} image(s) failed; see {failures_file}", file=sys.stderr)
        return 1
    return 0


def main(variant: str, argv: list[str] | None = None) -> int:
    """Entry point of GradLIME.py (variant 'gradlime') and CamLIME.py ('camlime'); returns the exit status."""
    return run_main(build_parser(variant), lambda args: run(args, variant), argv)

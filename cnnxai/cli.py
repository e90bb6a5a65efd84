"""The shared command line of GradLIME.py and CamLIME.py: options, the run over images, errors and exit codes.

Exit status: 0 when every image was explained, 1 when some image of a folder failed (listed on stderr and
in failures.csv), 2 for bad options or input (one line on stderr naming the problem and the fix).
"""

from __future__ import annotations

import argparse
import csv
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from cam_ext import CAM_METHODS
from cnnxai.cli_options import (
    DefaultsHelpFormatter,
    OneLineParser,
    add_lime_options,
    add_model_options,
    add_run_options,
    cli_layers,
    explainer_list_option,
    explainer_settings,
    int_at_least,
    run_main,
)
from cnnxai.devices import resolve_device
from cnnxai.errors import UserInputError
from cnnxai.figures import explanation_figure
from cnnxai.images import SAMPLE_IMAGES, find_images, load_image, sample_image
from cnnxai.outputs import atomic_folder, write_explanation
from cnnxai.pipeline import PRIOR_FUSIONS, explain_with_cam_prior
from cnnxai.preprocess import to_model_frame
from cnnxai.zoo import imagenet_class_names, load_model
from lime_ext import CAM_MODES, TorchClassifier

TITLES = {"gradlime": "GradLIME", "camlime": "CamLIME"}


def build_parser(variant: str) -> OneLineParser:
    title = TITLES[variant]
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
    add(
        "--fusion",
        default="mean",
        choices=PRIOR_FUSIONS,
        help="fusing several layers: mean (CamLIME's pixel-level rule), max, or superpixel (mean of per-layer priors)",
    )
    if variant == "camlime":
        add(
            "--method",
            default="gradcam",
            choices=list(CAM_METHODS),
            help="class-activation method for the prior",
        )
    add_lime_options(parser, "perturbed images per explanation (the papers use 1000 to 8000)")
    add(
        "--cam-mode",
        default="feature",
        choices=list(CAM_MODES),
        help="feature: ridge on Z*a (the paper); importance: LIME re-weighted by a; none: plain LIME; legacy: the public code's bug",
    )
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
        "--aug-smooth",
        action="store_true",
        help="average the CAM over flips and brightness (grad-cam's aug_smooth)",
    )
    add("--eigen-smooth", action="store_true", help="first principal component instead of the channel sum")
    add(
        "--compare",
        type=explainer_list_option,
        default=[],
        help="other explainers to show beside ours, comma-separated (python -m cnnxai.explainers --list); each adds a panel and writes <name>.npy",
    )
    add(
        "--normlime-reference",
        default=None,
        help="with --compare normlime: the reference image folder its clusters and global weights are fitted on (cached); default: the built-in photos",
    )
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
    """Everything that is loaded once for a run over images: device, model, classifier, layers, names."""

    def __init__(self, args: argparse.Namespace, variant: str) -> None:
        self.args, self.variant = args, variant
        self.method = getattr(args, "method", "gradcam")
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
        self.classifier = TorchClassifier(self.model, amp=args.amp)
        if args.normlime_reference is not None and not Path(args.normlime_reference).is_dir():
            raise UserInputError(
                f"--normlime-reference {args.normlime_reference}: no such folder; give a folder of reference images"
            )

    def explain(self, image: np.ndarray, source: str, name: str) -> dict:
        """Explain one loaded image and write its outputs; returns the manifest."""
        args = self.args
        frame = to_model_frame(image, args.preprocess)
        start = time.perf_counter()
        result = explain_with_cam_prior(
            self.model, frame, self.layers, method=self.method, target=args.target, top_labels=args.top_labels,
            num_samples=args.num_samples, seed=args.seed, batch_size=args.batch_size, cam_mode=args.cam_mode,
            fusion=args.fusion, segmenter=args.segmenter, hide_color=args.hide_color, aug_smooth=args.aug_smooth,
            eigen_smooth=args.eigen_smooth, classifier=self.classifier, progress=not args.quiet,
        )  # fmt: skip
        label = result.target
        compare = self._compare(frame, result)
        explain_s = time.perf_counter() - start
        title = TITLES[self.variant]
        manifest = self._manifest(result, source, image, explain_s)
        out = Path(args.output_dir) / name
        start = time.perf_counter()
        with atomic_folder(out) as folder:
            write_explanation(
                folder,
                result,
                manifest,
                lambda path: explanation_figure(
                    path, frame, result.cam_maps[label], result.lime, result.ours, label, self.class_names[label],
                    float(result.probabilities[label]), f"{self._cam_name()} ({', '.join(self.layers)})", title,
                    args.num_features, compare,
                ),
                compare,
            )  # fmt: skip
        manifest["timings"]["write_s"] = time.perf_counter() - start
        self._report(result, source, out)
        return manifest

    def _compare(self, frame: np.ndarray, result) -> dict[str, np.ndarray]:
        """The --compare explainers' maps for the main label; the LIME family reuses the run's perturbations."""
        if not self.args.compare:
            return {}
        from cnnxai.explainers import explain

        args = self.args
        settings = explainer_settings(args)
        if args.normlime_reference is not None:
            settings["normlime_reference"] = args.normlime_reference
        shared = {
            ("segments", args.seed, args.segmenter): result.neighbourhood.segments,
            (
                "neighbourhood",
                args.seed,
                args.num_samples,
                args.segmenter,
                str(args.hide_color),
            ): result.neighbourhood,
        }
        maps = {}
        for name in args.compare:
            attribution = explain(
                name, self.model, frame, result.target, seed=args.seed, device=self.device, batch_size=args.batch_size,
                shared=shared, layers=self.layers, fusion=args.fusion, cam_mode=args.cam_mode, cam_method=self.method,
                aug_smooth=args.aug_smooth, eigen_smooth=args.eigen_smooth, **settings,
            )  # fmt: skip
            maps[name] = attribution.map
        return maps

    def _cam_name(self) -> str:
        return {"gradcam": "Grad-CAM"}.get(self.method, self.method)

    def _manifest(self, result, source: str, image: np.ndarray, explain_s: float) -> dict:
        args, label = self.args, result.target
        options = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()}
        return {
            "tool": f"{TITLES[self.variant]}.py",
            "command": shlex.join(sys.argv),
            "options": options,
            "seed": args.seed,
            "image": {
                "source": source,
                "original_size_wh": [int(image.shape[1]), int(image.shape[0])],
                "preprocess": args.preprocess,
                "frame_size": 224,
            },
            "model": {**self.model_info, "device": str(self.device), "amp": bool(self.classifier.amp)},
            "cam": {
                "method": self.method,
                "layers": self.layers,
                "fusion": args.fusion,
                "aug_smooth": args.aug_smooth,
                "eigen_smooth": args.eigen_smooth,
            },
            "predicted": {
                "class": label,
                "name": self.class_names[label],
                "probability": float(result.probabilities[label]),
            },
            "explained_labels": result.labels,
            "num_segments": result.neighbourhood.num_segments,
            "batch_size": result.neighbourhood.info["batch_size"],
            "fit": {
                str(k): {
                    "r2": result.ours.labels[k].score,
                    "intercept": result.ours.labels[k].intercept,
                    "local_pred": result.ours.labels[k].local_pred,
                    "lime_r2": result.lime.labels[k].score,
                }
                for k in result.labels
            },  # fmt: skip
            "timings": {"model_load_s": self.load_s, "explain_s": explain_s, **result.timings},
        }

    def _report(self, result, source: str, out: Path) -> None:
        args, label = self.args, result.target
        name, probability = self.class_names[label], float(result.probabilities[label])
        if args.quiet:
            print(f"{source}: {name} (class {label}) p={probability:.3f} -> {out}")
            return
        title = TITLES[self.variant]
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

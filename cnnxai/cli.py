"""The command line of GradLIME.py and CamLIME.py: parse, explain each image with the library, print.

Exit status: 0 when every image was explained, 1 when some image of a folder failed (listed on stderr and
in failures.csv), 2 for bad options or input (one line on stderr naming the problem and the fix).
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import time
from collections.abc import Iterator
from contextlib import redirect_stdout
from functools import partial
from pathlib import Path

import numpy as np

from cam_ext import CAM_METHODS, CamSettings, cam_refusal
from cnnxai.cli_options import (
    DefaultsHelpFormatter,
    OneLineParser,
    add_alias_flags,
    add_explainer_option_flag,
    add_model_options,
    add_ray_options,
    add_run_options,
    add_task_options,
    check_task_flags,
    explainer_list_option,
    explainer_options,
    fill_alias,
    int_at_least,
    model_request,
    ray_settings,
    run_main,
    task_choice,
)
from cnnxai.devices import resolve_device
from cnnxai.distributed import LocalPool, WorkFailed, worker_pool
from cnnxai.errors import UserInputError
from cnnxai.explainers import REGISTRY, CamLimeResult, explain, explain_image
from cnnxai.explainers.lime_family import VARIANTS
from cnnxai.figures.explanation import save_explanation
from cnnxai.images import SAMPLE_IMAGES, find_images, load_image, sample_image
from cnnxai.preprocess import to_model_frame
from cnnxai.targets import TargetScore
from cnnxai.tasks.explain import (
    Selection,
    explain_task,
)
from cnnxai.tasks.models import TASK_CAM_METHODS, TASK_MODELS, task_frame, task_model_spec, task_sample
from cnnxai.zoo import MODEL_FORMS, choose_layers, load_classifier

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


def output_name(path: Path, root: Path | None) -> str:
    """The output folder name: the file stem, or for folders the relative path with '/' -> '__'."""
    relative = path.relative_to(root) if root is not None else Path(path.name)
    return "__".join(relative.with_suffix("").parts)


class ExplainRun:
    """Everything loaded once for a run over images: the explainers' options, device, model, layers, names; for
    --task, the task model whose chosen score (a box, a region, a face) each image is explained for."""

    def __init__(self, args: argparse.Namespace, variant: str) -> None:
        self.args, self.variant = args, variant
        check_task_flags(args)
        self.methods = list(dict.fromkeys([variant, *args.compare]))
        self.task = None if args.task == "classification" else task_model_spec(args.task, args.model)
        fixed = {}
        if variant == "camlime":
            default = self.task.cam_method if self.task is not None else CamSettings.method
            fixed = {("camlime", "method"): args.method or default}
        self.options = explainer_options(
            REGISTRY, self.methods, args, ALIASES, fixed
        )  # checked before any work
        self.device = resolve_device(args.device)
        start = time.perf_counter()
        if self.task is None:
            model_name = args.model or "efficientnet_lite0"
            if model_name in TASK_MODELS:
                raise UserInputError(f"--model {model_name} is a {TASK_MODELS[model_name].task} model; add --task "
                                     f"{TASK_MODELS[model_name].task}, or choose a classifier: {MODEL_FORMS}")  # fmt: skip
            loaded = load_classifier(model_request(args), self.device, progress=not args.quiet)
            self.class_names = list(loaded.info.class_names)
            if args.target is not None and args.target >= len(self.class_names):
                raise UserInputError(
                    f"--target {args.target} is out of range: the model has {len(self.class_names)} classes (0..{len(self.class_names) - 1})"
                )
            for method in [fixed.get(("camlime", "method")), *args.compare]:
                reason = cam_refusal(method, loaded.model) if method in CAM_METHODS else None
                if reason:
                    raise UserInputError(reason)
            self.model, self.layers, self.model_info = loaded.model, list(loaded.layers), loaded.manifest
            self.frame_size, self.resize = loaded.info.input_size, loaded.info.resize
        else:
            self.model, self.model_info = self.task.load(args.weights, self.device)
            self.class_names = self.task.class_names()
            self.choice = task_choice(args, self.class_names)
            # The explainers see the task model inside a TargetScore, where its modules live under 'task.'.
            self.layers = TargetScore.layer_names(choose_layers(self.model, args.layers, self.task.layers))
        self.load_s = time.perf_counter() - start
        fill_alias(self.options, REGISTRY, "layers", self.layers)
        if self.task is not None and self.task.segmenter is not None:
            fill_alias(self.options, REGISTRY, "segmenter", self.task.segmenter)

    def sample(self) -> tuple[str, np.ndarray]:
        """(name, image) of the built-in sample: the cat photo, or the task model's own sample."""
        if self.task is None:
            return SAMPLE_IMAGES[0], sample_image(SAMPLE_IMAGES[0])
        return task_sample(self.task)

    def explain(self, image: np.ndarray, source: str, name: str) -> CamLimeResult:
        """Explain one loaded image and write its outputs."""
        args, title = self.args, VARIANTS[self.variant]
        selection = None
        start = time.perf_counter()
        if self.task is None:
            frame = to_model_frame(image, args.preprocess, self.resize, self.frame_size)
            class_names = self.class_names
            framing = {"preprocess": args.preprocess, "frame_size": self.frame_size, "resize": self.resize}
            shared: dict = {}  # this image's neighbourhood and CAMs, reused by the --compare explainers
            model = self.model
            result = explain_image(
                self.variant, model, frame, args.target, args.top_labels, args.seed, self.device, args.batch_size,
                shared, args.amp, progress=not args.quiet, tf32=args.tf32, **self.options[self.variant],
            )  # fmt: skip
        else:
            frame = task_frame(image, self.task.frame)
            explained = explain_task(
                self.variant, self.task, self.model, frame, self.choice, args.seed, self.device, args.batch_size,
                args.amp, progress=not args.quiet, tf32=args.tf32, **self.options[self.variant],
            )  # fmt: skip
            selection, model, result, shared = (
                explained.selection,
                explained.model,
                explained.result,
                explained.shared,
            )
            class_names = [selection.name]
            framing = {"frame_size_wh": [int(frame.shape[1]), int(frame.shape[0])]}
        compare = {
            name: explain(name, model, frame, result.target, args.seed, self.device, args.batch_size, shared,
                          tf32=args.tf32, **self.options[name]).map
            for name in args.compare
        }  # fmt: skip
        explain_s = time.perf_counter() - start
        out = Path(args.output_dir) / name
        task_section = {} if selection is None else {"task": {"task": args.task, **selection.record}}
        save_explanation(
            result, out, f"{title}.py", class_names, title, args.num_features, compare,
            manifest={
                "options": vars(args), "seed": args.seed, **task_section,
                "image": {"source": source, "original_size_wh": [int(image.shape[1]), int(image.shape[0])],
                          **framing},
                "model": {**self.model_info, "device": str(self.device), "amp": bool(args.amp and self.device.type == "cuda"),
                          "tf32": bool(args.tf32 and self.device.type == "cuda")},
                "explainers": {m: REGISTRY.options(m, self.options[m]) for m in self.methods},
                "timings": {"model_load_s": self.load_s, "explain_s": explain_s, **result.timings},
            },
            outline=None if selection is None else (selection.box if selection.box is not None else selection.mask),
        )  # fmt: skip
        self._report(result, source, out, class_names, selection)
        return result

    def _report(
        self,
        result: CamLimeResult,
        source: str,
        out: Path,
        class_names: list[str],
        selection: Selection | None,
    ) -> None:
        args, label = self.args, result.target
        name, probability = class_names[label], float(result.probabilities[label])
        what = (
            f"{name} (class {label}) p={probability:.3f}"
            if selection is None
            else f"{name} score={probability:.3f}"
        )
        if args.quiet:
            print(f"{source}: {what} -> {out}")
            return
        title = VARIANTS[self.variant]
        if selection is None:
            print(f"{source}: predicted {name} (class {label}), p = {probability:.3f}")
        else:
            print(f"{source}: explaining {name}, score = {probability:.3f}")
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


class FolderWork:
    """Explains the images of a folder one file at a time and writes their outputs: the work of a folder run,
    in this process or in a Ray worker. An item is a path; ``compute`` yields ``(source, error message or '',
    what the explanation printed)``, so that the driver prints it."""

    def __init__(self, explain_run: ExplainRun, root: Path) -> None:
        self.explain_run, self.root = explain_run, root

    def load(self, path: Path) -> tuple[Path, np.ndarray | UserInputError]:
        try:
            return path, load_image(path)
        except UserInputError as error:
            return path, error

    def compute(self, loaded: tuple[Path, np.ndarray | UserInputError]) -> Iterator[tuple[str, str, str]]:
        path, image = loaded
        printed = io.StringIO()
        try:
            if isinstance(image, UserInputError):
                raise image
            with redirect_stdout(printed):
                self.explain_run.explain(image, str(path), output_name(path, self.root))
        except UserInputError as error:
            message = str(error) if str(path) in str(error) else f"{path}: {error}"
            yield str(path), message, printed.getvalue()
        else:
            yield str(path), "", printed.getvalue()


def folder_work_in_worker(args: argparse.Namespace, variant: str, root: Path, device: str) -> FolderWork:
    """A :class:`FolderWork` built inside a Ray worker, its model loaded there on ``device``."""
    quiet = argparse.Namespace(**{**vars(args), "device": device, "quiet": True})
    return FolderWork(ExplainRun(quiet, variant), root)


def explain_folder(
    args: argparse.Namespace, variant: str, images: list[Path], root: Path, explain_run: ExplainRun, cluster
) -> list[tuple[str, str]]:
    """Explain every image of a folder, here or (``cluster``, the --ray settings) on Ray workers; returns the
    failures as (source, message)."""
    bar = None
    if not args.quiet and len(images) > 1:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(images), desc="images", unit="image", dynamic_ncols=True)
    failures = []
    with worker_pool(cluster, args.device, ("cnnxai.cli",)) as pool:
        workers = pool.using(partial(folder_work_in_worker, args, variant, root)) if pool else None
        for source, results in (workers or LocalPool(FolderWork(explain_run, root))).map_unordered(
            [(str(path), path, 1) for path in images]
        ):
            if isinstance(results, WorkFailed):
                results = [(source, f"{source}: {results.reason}", "")]
            for source, message, printed in results:
                if printed:
                    (bar.write if bar is not None else print)(printed, end="")
                if message:
                    failures.append((source, message))
                    print(f"error: {message}", file=sys.stderr)
                if bar is not None:
                    bar.update(1)
    if bar is not None:
        bar.close()
    return failures


def run(args: argparse.Namespace, variant: str) -> int:
    images, root, is_folder = _inputs(args.image_path)
    cluster = ray_settings(args)
    if cluster is not None and not is_folder:
        raise UserInputError("--ray runs a folder of images over workers; give --image-path a folder")
    # With --ray the workers load the model on their own devices; here it only checks the options.
    explain_run = ExplainRun(args if cluster is None else argparse.Namespace(**{**vars(args), "device": "cpu"}),
                             variant)  # fmt: skip
    failures_file = Path(args.output_dir) / "failures.csv"
    if not is_folder:
        path = images[0]
        if path is None:
            name, image = explain_run.sample()
            explain_run.explain(image, f"sample:{name}", name)
        else:
            explain_run.explain(load_image(path), str(path), output_name(path, root))
        return 0
    if failures_file.exists():
        failures_file.unlink()  # a stale list from an earlier run would mislead
    failures = explain_folder(args, variant, images, root, explain_run, cluster)
    if failures:
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
        with open(failures_file, "w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["path", "error"])
            writer.writerows(sorted(failures))
        print(f"{len(failures)} of {len(images)} image(s) failed; see {failures_file}", file=sys.stderr)
        return 1
    return 0


def main(variant: str, argv: list[str] | None = None, prog: str | None = None) -> int:
    """Entry point of GradLIME.py (variant 'gradlime') and CamLIME.py ('camlime'); returns the exit status.
    ``prog``: the program name shown by --help (default: the script's)."""
    return run_main(build_parser(variant, prog), lambda args: run(args, variant), argv)

"""Forward passes per second of each backend and precision (lime_ext.backends), with their exactness, in one run.

What it measures: for each model, the classifier's ``forward_prepared`` (what every perturbation loop calls) on
the same ``--images`` LIME-perturbed copies of the sample photo (224x224, random half of its SLIC superpixels
hidden in black), in batches of each ``--batch-sizes``, for each configuration:
  torch/fp32 (eager, channels-last: the reference), torch/bf16 (CPU autocast), onnxruntime/fp32,
  openvino/fp32 (INFERENCE_PRECISION_HINT=f32), openvino/bf16;
and against torch/fp32 on the same images: the largest probability difference max|dp| and the share of images
whose top-1 class agrees, and max|d log p| (the logits' difference up to a shift: what shows on the random-weight
models, whose probabilities are all near 1/1000). Export and compile seconds are printed once per model (untimed in the rates).

Models: EfficientNet-Lite0 (its real weights, embedded) and torchvision's ResNet-18, ResNet-50, MobileNetV2 and
VGG-16 with random weights (seed 0; no download), all in eval mode.

``--gradlime``: instead, ``python GradLIME.py`` end to end (the sample photo, ``--num-samples`` perturbations, default
1000, its other defaults) with
``--backend torch`` and with ``--backend auto``, as separate processes interleaved ``--repeats`` times: the median
wall seconds of each command and of its explaining (the manifest's ``explain_s``), and how far the two agree (the
top-10 superpixels of GradLIME and of LIME, the largest attribution difference).

The machine is shared with other work, so every configuration is warmed up, then the configurations run
``--repeats`` times interleaved (A B C ... A B C ...) and the median rate is reported; the ratios are against the
torch/fp32 median of the same run. The last line printed is one JSON object. Usage:
    python bench/bench_backends.py [--models efficientnet_lite0,resnet18,...] [--batch-sizes 1,8,32]
        [--configs torch/fp32,onnxruntime/fp32,...] [--images 32] [--repeats 3] [--threads N]
    python bench/bench_backends.py --gradlime [--repeats 3] [--num-samples 1000]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cnnxai.images import sample_image  # noqa: E402
from cnnxai.preprocess import to_model_frame  # noqa: E402
from cnnxai.zoo import load_model  # noqa: E402
from lime_ext import PerturbationEngine, TorchClassifier, backends, segment_image  # noqa: E402

MODELS = ("efficientnet_lite0", "mobilenet_v2", "resnet18", "resnet50", "vgg16")
CONFIGS = ("torch/fp32", "torch/bf16", "onnxruntime/fp32", "openvino/fp32", "openvino/bf16")


def build_model(name: str) -> nn.Module:
    if name == "efficientnet_lite0":
        return load_model(name)[0]
    torch.manual_seed(0)
    return getattr(torchvision.models, name)(weights=None).eval()


def perturbed_inputs(classifier: TorchClassifier, count: int) -> torch.Tensor:
    """``count`` normalised (count,3,224,224) NCHW copies of the sample photo with random superpixels hidden."""
    image = to_model_frame(sample_image("chelsea"))
    segments = segment_image(image, "slic", seed=0)
    engine = PerturbationEngine(image, segments, classifier, hide_color=0)
    masks = np.random.default_rng(0).integers(0, 2, (count, engine.num_segments)).astype(np.uint8)
    masks[0] = 1  # the unperturbed image first
    return engine.perturb(torch.from_numpy(masks)).contiguous()


def classifier_for(model: nn.Module, config: str) -> TorchClassifier:
    backend, precision = config.split("/")
    base = TorchClassifier(model, backend=backend)
    return base if precision == "fp32" else base.with_precision(precision)


def run(classifier: TorchClassifier, inputs: torch.Tensor, batch: int) -> tuple[float, torch.Tensor]:
    """Seconds for every input in batches of ``batch``, and the outputs (N,K)."""
    outputs = []
    with classifier.session():
        start = time.perf_counter()
        for begin in range(0, len(inputs), batch):
            outputs.append(classifier.forward_prepared(inputs[begin : begin + batch]).clone())
        seconds = time.perf_counter() - start
    return seconds, torch.cat(outputs)


def superpixel_table(folder: Path) -> dict[str, np.ndarray]:
    """GradLIME.py's superpixels.csv: the attributions and LIME weights (M,) by segment id."""
    with open(folder / "chelsea" / "superpixels.csv") as handle:
        rows = sorted(csv.DictReader(handle), key=lambda row: int(row["segment_id"]))
    return {key: np.array([float(row[key]) for row in rows]) for key in ("attribution", "lime_weight")}


def gradlime_end_to_end(repeats: int, num_samples: int = 1000) -> None:
    """``python GradLIME.py`` with --backend torch and auto, interleaved; medians and agreement (see the module)."""
    root = Path(__file__).resolve().parents[1]
    walls: dict[str, list[float]] = {"torch": [], "auto": []}
    explain: dict[str, list[float]] = {"torch": [], "auto": []}
    tables, manifests = {}, {}
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(repeats + 1):  # run 0 warms the file cache and the exported model's cache
            for backend in walls:
                out = Path(scratch) / f"{backend}{repeat}"
                command = [
                    sys.executable,
                    "GradLIME.py",
                    "--backend",
                    backend,
                    "--output-dir",
                    str(out),
                    "--quiet",
                    "--num-samples",
                    str(num_samples),
                ]
                start = time.perf_counter()
                subprocess.run(command, cwd=root, check=True, capture_output=True)
                if repeat:
                    walls[backend].append(time.perf_counter() - start)
                    manifests[backend] = json.loads((out / "chelsea" / "manifest.json").read_text())
                    explain[backend].append(manifests[backend]["timings"]["explain_s"])
                    tables[backend] = superpixel_table(out)
    print(
        f"python GradLIME.py (chelsea, {num_samples} perturbations), {repeats} interleaved runs after a warm-up"
    )
    for backend in walls:
        used = manifests[backend]["backends"]["sessions"]
        ran = used[-1]["backend"] if used else "torch"
        print(f"  --backend {backend:<5} ({ran}): wall {statistics.median(walls[backend]):.2f} s "
              f"[{' '.join(f'{w:.2f}' for w in walls[backend])}], explaining "
              f"{statistics.median(explain[backend]):.2f} s [{' '.join(f'{w:.2f}' for w in explain[backend])}]")  # fmt: skip
    ratio_wall = statistics.median(walls["torch"]) / statistics.median(walls["auto"])
    ratio_explain = statistics.median(explain["torch"]) / statistics.median(explain["auto"])
    agreement = {}
    for key in ("attribution", "lime_weight"):
        exact, fast = tables["torch"][key], tables["auto"][key]
        same_top = list(np.argsort(-np.abs(exact))[:10]) == list(np.argsort(-np.abs(fast))[:10])
        agreement[key] = {"same_top10": same_top, "max_abs_diff": float(np.max(np.abs(exact - fast)))}
    print(f"  torch / auto: {ratio_wall:.2f}x wall, {ratio_explain:.2f}x explaining; agreement {agreement}")
    print(json.dumps({"gradlime_wall_s": walls, "gradlime_explain_s": explain, "over_wall": round(ratio_wall, 3),
                      "over_explain": round(ratio_explain, 3), "agreement": agreement}))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--batch-sizes", default="1,8,32")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="BACKEND/PRECISION, comma-separated")
    parser.add_argument("--images", type=int, default=32, help="perturbed images per timing")
    parser.add_argument(
        "--repeats", type=int, default=3, help="interleaved repetitions; medians are compared"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch (and runtime) threads; default torch's"
    )
    parser.add_argument("--gradlime", action="store_true", help="GradLIME.py end to end, torch against auto")
    parser.add_argument("--num-samples", type=int, default=1000, help="with --gradlime: its perturbations")
    args = parser.parse_args()
    if args.gradlime:
        gradlime_end_to_end(args.repeats, args.num_samples)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    configs = [c for c in args.configs.split(",") if c]
    usable = []
    for config in configs:
        backend, precision = config.split("/")
        try:
            backends.check_backend(backend)
            backends.check_precision(precision)
            usable.append(config)
        except backends.BackendError as error:
            print(f"skipping {config}: {error}")
    print(
        f"{args.images} perturbed 224x224 images per timing, batches {batch_sizes}, {args.repeats} interleaved "
        f"repeats (medians), torch {torch.__version__} with {torch.get_num_threads()} threads, "
        f"bf16 units: {backends.cpu_has_bf16()}"
    )
    results = []
    for name in args.models.split(","):
        model = build_model(name)
        reference = TorchClassifier(model, backend="torch")
        inputs = perturbed_inputs(reference, args.images)
        classifiers = {config: classifier_for(model, config) for config in usable}
        setup = {}
        for config, classifier in classifiers.items():  # export, compile, warm every batch shape
            start = time.perf_counter()
            for batch in batch_sizes:
                run(classifier, inputs[: batch + (args.images % batch)], batch)
            record = classifier.backend_record
            setup[config] = {"warm_up_s": round(time.perf_counter() - start, 2), "ran": record["backend"],
                             "export_s": record["export_seconds"], "fallback": record["fallback"]}  # fmt: skip
        print(f"\n{name}: set-up (export + compile + warm-up, untimed below): "
              + "; ".join(f"{c} {s['warm_up_s']} s (export {s['export_s']})" for c, s in setup.items()))  # fmt: skip
        for config, info in setup.items():
            if info["fallback"]:
                print(f"  {config} ran {info['ran']}: {info['fallback']}")
        header = f"{'config':<18} {'batch':>5} {'img/s':>8} {'x torch':>8} {'max|dp|':>9} {'max|dlogp|':>10} {'top-1 agree':>11}"
        print(header + "\n" + "-" * len(header))
        for batch in batch_sizes:
            seconds: dict[str, list[float]] = {c: [] for c in usable}
            outputs: dict[str, torch.Tensor] = {}
            for _ in range(args.repeats):
                for config in usable:
                    elapsed, outputs[config] = run(classifiers[config], inputs, batch)
                    seconds[config].append(elapsed)
            exact = outputs.get("torch/fp32")
            base_rate = args.images / statistics.median(seconds["torch/fp32"]) if exact is not None else None
            for config in usable:
                rate = args.images / statistics.median(seconds[config])
                row = {"model": name, "config": config, "batch": batch, "images_per_s": round(rate, 2),
                       "runs_s": [round(s, 3) for s in seconds[config]], **setup[config]}  # fmt: skip
                if exact is not None:
                    row["over_torch_fp32"] = round(rate / base_rate, 3)
                    row["max_abs_dp"] = float((outputs[config] - exact).abs().max())
                    both = (outputs[config] > 0) & (
                        exact > 0
                    )  # probabilities that underflowed to 0: left out
                    dlogp = (outputs[config].log() - exact.log()).abs()
                    row["max_abs_dlogp"] = float(torch.where(both, dlogp, 0).max())
                    row["top1_agreement"] = float(
                        (outputs[config].argmax(1) == exact.argmax(1)).float().mean()
                    )
                results.append(row)
                print(f"{config:<18} {batch:>5} {rate:>8.1f} {row.get('over_torch_fp32', float('nan')):>8.2f} "
                      f"{row.get('max_abs_dp', float('nan')):>9.1e} {row.get('max_abs_dlogp', float('nan')):>10.1e} "
                      f"{row.get('top1_agreement', float('nan')):>11.3f}")  # fmt: skip
    print(json.dumps({"torch_threads": torch.get_num_threads(), "images": args.images, "repeats": args.repeats,
                      "results": results}))  # fmt: skip


if __name__ == "__main__":
    main()

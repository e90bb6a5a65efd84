"""Overhead of the perturbation explainers against the model's own forward time, measured in one run.

For LIME, GradLIME (sharing nothing: each samples its own neighbourhood here), KernelSHAP and RISE on the
sample photo with the embedded EfficientNet-Lite0, each ``explain`` call is timed (wall and process CPU time)
against the forward time of the same number of 224x224 images in batches of the same size. A ratio of 1.00
means the explainer costs nothing but its forward passes. Forward and explainer runs are interleaved
``--repeats`` times and medians compared (the machines are shared and noisy). The last line printed is one
JSON object. Usage:
    python bench/bench_explainers.py [--num-samples 1000] [--batch-size 32] [--repeats 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_lime import Clock, forward_time  # noqa: E402

from cnnxai.explainers import explain  # noqa: E402
from cnnxai.images import sample_image  # noqa: E402
from cnnxai.preprocess import to_model_frame  # noqa: E402
from cnnxai.zoo import MODELS, load_model  # noqa: E402

METHODS = ("lime", "gradlime", "kernel_shap", "rise")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--num-samples", type=int, default=1000, help="perturbations (RISE: masks) per explanation"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    model, _ = load_model("efficientnet_lite0", device=device)
    image = to_model_frame(sample_image("chelsea"))
    n, bs = args.num_samples, args.batch_size
    layers = list(MODELS["efficientnet_lite0"].layers)
    options = {
        "lime": {"num_samples": n},
        "gradlime": {"num_samples": n, "layers": layers},
        "kernel_shap": {"num_samples": n},
        "rise": {"masks": n},
    }
    print(
        f"EfficientNet-Lite0, sample photo, N={n}, batch {bs}, device {device}, torch threads {torch.get_num_threads()}"
    )
    forward_time(model, image, 2 * bs, bs, device)  # warm-up
    figures = {}
    for method in METHODS:
        forward_runs, method_runs = [], []
        for _ in range(args.repeats):
            forward_runs.append(forward_time(model, image, n, bs, device))
            with Clock() as clock:
                explain(method, model, image, 285, 0, device, bs, {}, **options[method])
            method_runs.append(clock)
        wall = statistics.median(r.wall for r in method_runs) / statistics.median(
            r.wall for r in forward_runs
        )
        cpu = statistics.median(r.cpu for r in method_runs) / statistics.median(r.cpu for r in forward_runs)
        walls = " ".join(f"{r.wall:.1f}" for r in method_runs)
        forwards = " ".join(f"{r.wall:.1f}" for r in forward_runs)
        print(f"{method:<12} {walls} s against forward {forwards} s: {wall:.3f}x wall, {cpu:.3f}x CPU time")
        figures[method] = {"over_forward_wall": round(wall, 4), "over_forward_cpu_time": round(cpu, 4)}
    print(
        json.dumps(
            {"num_samples": n, "batch_size": bs, "repeats": args.repeats, "device": str(device), **figures}
        )
    )


if __name__ == "__main__":
    main()

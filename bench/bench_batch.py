"""A batch of images through the captum-style API against the same images one call each, measured in one run.

``cnnxai.GradLIME(model).attribute(x)`` with x a batch of 8 normalised 224x224 photos (the three sample photos,
their mirror images and two crops) against 8 calls on one image each, and against the model's own forward time
on 8 x N images in batches of the same size (the physical limit). The batch predicts every image's perturbations
in one stream of forwards, so it may beat the single calls only where batches are large against N (a GPU); on a
CPU both should cost the model's forwards. The outputs are checked equal (max difference printed). Runs are
interleaved ``--repeats`` times and medians compared. Without ImageNet weights in torch's cache, ResNet-18 runs
with random weights (the same cost; predicted classes differ). The last line printed is one JSON object. Usage:
    python bench/bench_batch.py [--models efficientnet_lite0,resnet18] [--num-samples 1000] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_lime import Clock, forward_time  # noqa: E402

import cnnxai  # noqa: E402
from cnnxai.errors import UserInputError  # noqa: E402
from cnnxai.images import sample_image  # noqa: E402
from cnnxai.preprocess import to_model_frame  # noqa: E402
from cnnxai.zoo import MODELS, load_model  # noqa: E402
from lime_ext import TorchClassifier, auto_batch_size  # noqa: E402


def photos() -> list[np.ndarray]:
    """Eight different 224x224 frames from the three sample photos."""
    base = [sample_image(name) for name in ("chelsea", "coffee", "rocket")]
    crops = [base[0][:200, :300], base[1][100:, 100:]]
    frames = [to_model_frame(image) for image in base + [image[:, ::-1] for image in base] + crops]
    return [np.ascontiguousarray(frame) for frame in frames]


def model_of(name: str, device: torch.device) -> tuple[torch.nn.Module, str]:
    try:
        return load_model(name, device=device)[0], "ImageNet weights"
    except UserInputError:
        from torchvision.models import get_model

        model = get_model(MODELS[name].torchvision_name, weights=None).eval().to(device)
        model.default_layers = MODELS[name].layers
        return model, "random weights (none in torch's cache)"


def one_by_one(explainer: cnnxai.Explainer, inputs: torch.Tensor, seed: int = 0) -> torch.Tensor:
    return torch.cat([explainer.attribute(inputs[i : i + 1], seed=seed) for i in range(len(inputs))])


def timed(fn, device: torch.device, *args, **kwargs) -> tuple[Clock, torch.Tensor]:
    with Clock() as clock:
        result = fn(*args, **kwargs)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return clock, result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="efficientnet_lite0,resnet18")
    parser.add_argument("--num-samples", type=int, default=1000, help="perturbations per image")
    parser.add_argument("--batch-size", type=int, default=None, help="default: chosen for the device")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    frames = photos()
    n, count = args.num_samples, len(frames)
    batch_size = args.batch_size or auto_batch_size(device)
    print(f"{count} photos 224x224, N={n} per image, batch {batch_size}, device {device}, "
          f"torch threads {torch.get_num_threads()}")  # fmt: skip
    figures = {}
    for name in args.models.split(","):
        model, weights = model_of(name, device)
        inputs = torch.stack([TorchClassifier(model).prepare_rgb(frame) for frame in frames])
        explainer = cnnxai.GradLIME(model, num_samples=n, batch_size=batch_size)
        warm = cnnxai.GradLIME(model, num_samples=2 * batch_size, batch_size=batch_size)
        warm.attribute(inputs[:2])  # warm-up: every batch shape once (cuDNN set-up on CUDA)
        forward_time(model, frames[0], 2 * batch_size, batch_size, device)
        runs: dict[str, list[Clock]] = {"batch": [], "singles": [], "forward": []}
        for _ in range(args.repeats):
            clock, batched = timed(explainer.attribute, device, inputs, seed=0)
            runs["batch"].append(clock)
            clock, singles = timed(one_by_one, device, explainer, inputs)
            runs["singles"].append(clock)
            runs["forward"].append(forward_time(model, frames[0], count * n, batch_size, device))
        wall = {key: statistics.median(clock.wall for clock in clocks) for key, clocks in runs.items()}
        difference = float((batched - singles).abs().max())
        print(f"{name} ({weights}): batch of {count} {wall['batch']:.2f} s ({wall['batch'] / count:.3f} s per "
              f"image), {count} single calls {wall['singles']:.2f} s, model forwards alone {wall['forward']:.2f} s")  # fmt: skip
        print(f"  batch / singles {wall['batch'] / wall['singles']:.3f}x, batch / forwards "
              f"{wall['batch'] / wall['forward']:.3f}x, singles / forwards {wall['singles'] / wall['forward']:.3f}x; "
              f"largest difference between the two outputs {difference:.2e}")  # fmt: skip
        figures[name] = {
            "weights": weights,
            "batch_s": round(wall["batch"], 3),
            "per_image_s": round(wall["batch"] / count, 4),
            "singles_s": round(wall["singles"], 3),
            "forward_s": round(wall["forward"], 3),
            "batch_over_singles": round(wall["batch"] / wall["singles"], 4),
            "batch_over_forward": round(wall["batch"] / wall["forward"], 4),
            "max_difference": difference,
        }
    print(json.dumps({"images": count, "num_samples": n, "batch_size": batch_size, "device": str(device),
                      "repeats": args.repeats, **figures}))  # fmt: skip


if __name__ == "__main__":
    main()

"""Our LIME side by side with its peers, end to end on one photo, all figures measured in one run.

What it measures: the wall-clock seconds of one explanation of the sample photo (``chelsea`` in the model-input
frame, 224x224) by
  (a) ours: the registry's ``lime``, and ``gradlime`` (Grad-CAM of the model's default layers, one forward and
      backward more, then the prior-aware fit and LIME beside it), each with a fresh image session, so each
      draws and predicts its own N perturbations;
  (b) lime 0.2.0.1: ``LimeImageExplainer().explain_instance`` with its defaults (cosine kernel of width 0.25,
      ridge), the classifier function written as a lime user writes it (each uint8 numpy batch converted to a
      normalised torch batch on the device, softmax, back to numpy); its tqdm bar over the samples (on stderr,
      always on in 0.2.0.1) is part of its cost;
  (c) captum 0.9.0: ``captum.attr.Lime`` with its defaults (cosine distance in input space, exponential kernel of
      width 1, Lasso alpha 0.01) on the normalised input tensor, the superpixels as ``feature_mask``;
and, as the physical limit, the model's own forward passes on N images in batches of the same size.
Ours runs its forwards on ``--backend`` (default ``auto``, what the command lines use: lime_ext.backends); with a
backend other than torch, ours on torch is timed too ("ours lime (torch)"), so the backend's share of the lead is
measured in the same run. lime and captum call the torch model, as their users do.

Why: a user choosing a LIME implementation pays for it in seconds per image. All three get the same work: the
same model and preprocessing, the same superpixels (quickshift, computed once, outside the timings), the same
N, the same batch size, the same target class and the same hidden colour. The hidden colour is lime's default,
each superpixel's mean colour truncated to uint8 (lime ``hide_color=None``, ours ``hide_color='mean'``, captum
``baselines`` = that hidden image, normalised), so that every perturbed image the model sees is the same picture
in all three (checked against lime's own loop below); the batches reach the model channels-last in all three
(lime's by its NHWC numpy batches, captum's because its input tensor is given channels-last), so the memory
layout, which alone changes these CNNs' forward time by 26-41% on CPU, is not what is compared.

The machines are shared and noisy, so after one untimed warm-up of every method (which also warms the model, and
on CUDA every batch shape), the methods run ``--repeats`` times interleaved (ours, lime, captum, forward, ours,
...) and medians are compared. The samples are not the same ones (each library draws its own), so the weights
differ by sampling noise (and captum's by its other kernel and Lasso too): their Spearman correlations are
reported, not asserted. The last line printed is one JSON object. Usage:
    python bench/bench_peers.py [--device cpu|cuda] [--num-samples 1000] [--batch-size B] [--repeats 3]
                                [--model efficientnet_lite0] [--backend auto|torch|onnxruntime|openvino]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from captum.attr import Lime as CaptumLime
from lime import lime_image
from scipy.stats import spearmanr
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_lime import Clock, forward_time  # noqa: E402

from cnnxai.explainers import explain  # noqa: E402
from cnnxai.images import sample_image  # noqa: E402
from cnnxai.preprocess import to_model_frame  # noqa: E402
from cnnxai.session import ImageSession  # noqa: E402
from cnnxai.zoo import MODELS, load_model  # noqa: E402
from lime_ext import auto_batch_size, hidden_image, segment_image  # noqa: E402
from lime_ext.backends import BACKENDS, resolve_backend  # noqa: E402
from lime_ext.classifier import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402

SEED = 0
HIDE_COLOR = "mean"  # lime's default (hide_color=None): each superpixel's mean colour, truncated to uint8
METHODS = ("ours lime", "ours gradlime", "lime 0.2.0.1", "captum 0.9.0 Lime")
TORCH_OURS = "ours lime (torch)"  # timed as well when --backend is not torch


def superpixel_weights(attribution: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """Per-superpixel values (M,) of a map (H,W) that is constant on each superpixel (its mean there)."""
    flat = segments.ravel()
    counts = np.bincount(flat)
    return np.bincount(flat, weights=attribution.ravel().astype(np.float64)) / counts


def lime_fudged_image(image: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """lime 0.2.0.1's hidden image for ``hide_color=None``, with its own loop (explain_instance, verbatim)."""
    fudged = image.copy()
    for x in np.unique(segments):
        fudged[segments == x] = (
            np.mean(image[segments == x][:, 0]),
            np.mean(image[segments == x][:, 1]),
            np.mean(image[segments == x][:, 2]),
        )
    return fudged


class Peers:
    """One image, its superpixels and target, explained by each method; each call returns the weights (M,)."""

    def __init__(
        self,
        model: nn.Module,
        model_name: str,
        image: np.ndarray,
        segments: np.ndarray,
        device: torch.device,
        batch_size: int,
        backend: str = "auto",
    ) -> None:
        self.model, self.image, self.segments, self.backend = model, image, segments, backend
        self.device, self.batch_size = device, batch_size
        self.layers = list(MODELS[model_name].layers)
        self.mean = torch.tensor(IMAGENET_MEAN, device=device)[:, None, None]
        self.std = torch.tensor(IMAGENET_STD, device=device)[:, None, None]
        # captum's inputs, as a captum user prepares them (ToTensor + Normalize), channels-last (see the docstring).
        self.input = self.to_model_input(image[None]).contiguous(memory_format=torch.channels_last)
        hidden = hidden_image(image, segments, HIDE_COLOR)
        self.baselines = self.to_model_input(hidden[None]).contiguous(memory_format=torch.channels_last)
        self.feature_mask = torch.from_numpy(segments).to(device)[None, None]
        with torch.no_grad():
            self.target = int(model(self.input).argmax(dim=1))
        self.layouts: dict[str, set[str]] = {"lime 0.2.0.1": set(), "captum 0.9.0 Lime": set()}

    def to_model_input(self, images: np.ndarray) -> torch.Tensor:
        """RGB uint8 (B,H,W,3) numpy -> normalised (B,3,H,W) float32 on the device (NHWC memory, as permuted)."""
        batch = (
            torch.from_numpy(np.ascontiguousarray(images)).to(self.device).permute(0, 3, 1, 2).float() / 255.0
        )
        return (batch - self.mean) / self.std

    def note_layout(self, method: str, batch: torch.Tensor) -> None:
        channels_last = batch.is_contiguous(memory_format=torch.channels_last)
        self.layouts[method].add("channels-last" if channels_last else "NCHW")

    def ours(self, name: str, num_samples: int, backend: str | None = None) -> np.ndarray:
        session = ImageSession(self.model, self.image)
        session.fix_segments(self.segments)
        options = {"layers": self.layers} if name == "gradlime" else {}
        result = explain(
            name,
            self.model,
            self.image,
            self.target,
            seed=SEED,
            device=self.device,
            batch_size=self.batch_size,
            session=session,
            num_samples=num_samples,
            hide_color=HIDE_COLOR,
            backend=backend or self.backend,
            **options,
        )
        return superpixel_weights(result.map, self.segments)

    def lime(self, num_samples: int) -> np.ndarray:
        def classifier_fn(images: np.ndarray) -> np.ndarray:
            batch = self.to_model_input(images)
            self.note_layout("lime 0.2.0.1", batch)
            with torch.no_grad():
                return torch.softmax(self.model(batch), dim=1).cpu().numpy()

        explainer = lime_image.LimeImageExplainer(random_state=SEED)
        explanation = explainer.explain_instance(
            self.image,
            classifier_fn,
            labels=(self.target,),
            top_labels=None,  # explain the target itself (top_labels=1 gives the same one fit on the argmax)
            hide_color=None,
            num_samples=num_samples,
            batch_size=self.batch_size,
            segmentation_fn=lambda _: self.segments,
        )
        weights = np.zeros(int(self.segments.max()) + 1)
        for segment, weight in explanation.local_exp[self.target]:
            weights[segment] = weight
        return weights

    def captum(self, num_samples: int) -> np.ndarray:
        def forward_func(batch: torch.Tensor) -> torch.Tensor:
            self.note_layout("captum 0.9.0 Lime", batch)
            return torch.softmax(self.model(batch), dim=1)

        torch.manual_seed(SEED)  # captum draws from torch's global generator
        attribution = CaptumLime(forward_func).attribute(
            self.input,
            target=self.target,
            feature_mask=self.feature_mask,
            baselines=self.baselines,
            n_samples=num_samples,
            perturbations_per_eval=self.batch_size,
        )
        return superpixel_weights(attribution[0, 0].cpu().numpy(), self.segments)

    def method(self, name: str) -> Callable[[int], np.ndarray]:
        return {
            "ours lime": lambda n: self.ours("lime", n),
            "ours gradlime": lambda n: self.ours("gradlime", n),
            "lime 0.2.0.1": self.lime,
            "captum 0.9.0 Lime": self.captum,
            TORCH_OURS: lambda n: self.ours("lime", n, "torch"),
        }[name]


def timed(fn: Callable[[], np.ndarray], device: torch.device) -> tuple[Clock, np.ndarray]:
    """Wall and process CPU time of ``fn()``, the device synchronised on both sides."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    with Clock() as clock:
        result = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return clock, result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="for all three (default: ours for the device, auto_batch_size)",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="interleaved repetitions; medians are compared"
    )
    parser.add_argument("--model", default="efficientnet_lite0", choices=tuple(MODELS))
    parser.add_argument("--backend", default="auto", choices=BACKENDS, help="what runs our forwards")
    args = parser.parse_args()
    device = torch.device(args.device)
    n = args.num_samples
    bs = args.batch_size or auto_batch_size(device)
    model, _ = load_model(args.model, device=device)
    image = to_model_frame(sample_image("chelsea"))
    segments = segment_image(image, "quickshift", seed=SEED)
    peers = Peers(model, args.model, image, segments, device, bs, args.backend)
    methods = METHODS if resolve_backend(args.backend, device) == "torch" else (*METHODS, TORCH_OURS)
    same_hidden = np.array_equal(
        hidden_image(image, segments, HIDE_COLOR), lime_fudged_image(image, segments)
    )
    print(
        f"{args.model}, sample photo 224x224, {segments.max() + 1} quickshift superpixels, target class "
        f"{peers.target}, N={n}, batch {bs}, device {device}, torch threads {torch.get_num_threads()}, "
        f"our backend {args.backend} ({resolve_backend(args.backend, device)})"
    )
    print(f"hidden colour: each superpixel's mean (lime's default); ours identical to lime's: {same_hidden}")

    # Untimed warm-up of every method and of the model: one full batch and one of the last, partial size (on
    # CUDA each new batch shape costs its set-up on its first call).
    warm_n = bs + (n % bs or bs)
    forward_time(model, image, warm_n, bs, device)
    for name in methods:
        peers.method(name)(warm_n)

    runs: dict[str, list[Clock]] = {name: [] for name in (*methods, "forward")}
    weights: dict[str, np.ndarray] = {}
    for _ in range(args.repeats):
        for name in methods:
            clock, weights[name] = timed(lambda name=name: peers.method(name)(n), device)
            runs[name].append(clock)
        runs["forward"].append(forward_time(model, image, n, bs, device))  # synchronises on CUDA itself

    def median(name: str, attr: str = "wall") -> float:
        return statistics.median(getattr(r, attr) for r in runs[name])

    ours, forward = median("ours lime"), median("forward")
    forward_cpu = median("forward", "cpu")
    print(f"\nseconds per explanation, median of {args.repeats} interleaved runs")
    header = (
        f"{'method':<28} {'median s':>9} {'runs s':<24} {'x ours lime':>11} {'x forward':>9} {'x fwd CPU':>9}"
    )
    print(header)
    print("-" * len(header))
    figures = {}
    for name in (*methods, "forward"):
        wall = median(name)
        label = f"model forward, {n} images" if name == "forward" else name
        walls = " ".join(f"{r.wall:.2f}" for r in runs[name])
        cpu_ratio = median(name, "cpu") / forward_cpu
        print(
            f"{label:<28} {wall:>9.3f} {walls:<24} {wall / ours:>11.2f} {wall / forward:>9.3f} {cpu_ratio:>9.3f}"
        )
        figures[name] = {
            "seconds": round(wall, 4),
            "over_ours_lime": round(wall / ours, 4),
            "over_forward": round(wall / forward, 4),
            "over_forward_cpu_time": round(cpu_ratio, 4),
        }
    layouts = "; ".join(f"{k}: {', '.join(sorted(v))}" for k, v in peers.layouts.items())
    ours_layout = (
        "channels-last (the engine's)"
        if resolve_backend(peers.backend, device) == "torch"
        else "NCHW (a runtime)"
    )
    print(f"batches as they reach the model: ours {ours_layout}; {layouts}")

    pairs = (
        ("ours lime", "lime 0.2.0.1"),
        ("ours lime", "captum 0.9.0 Lime"),
        ("lime 0.2.0.1", "captum 0.9.0 Lime"),
    )
    print(
        "\nagreement of the superpixel weights (last run; different samples, so sampling noise; not asserted)"
    )
    agreement = {}
    for a, b in pairs:
        rho = float(spearmanr(weights[a], weights[b]).statistic)
        agreement[f"{a} / {b}"] = round(rho, 4)
        print(f"  Spearman {a} vs {b}: {rho:.3f}")
    zeros = int(np.sum(weights["captum 0.9.0 Lime"] == 0))
    print(f"  captum's Lasso (alpha 0.01) set {zeros} of {segments.max() + 1} weights to exactly 0")

    print(
        json.dumps(
            {
                "model": args.model,
                "num_samples": n,
                "batch_size": bs,
                "repeats": args.repeats,
                "device": str(device),
                "backend": args.backend,
                "backend_used": resolve_backend(args.backend, device),
                "torch_threads": torch.get_num_threads(),
                "hide_color": HIDE_COLOR,
                "hidden_identical_to_lime": same_hidden,
                **figures,
                "spearman": agreement,
                "captum_zero_weights": zeros,
            }
        )
    )


if __name__ == "__main__":
    main()

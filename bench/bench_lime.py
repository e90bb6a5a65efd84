"""Benchmark of the LIME core, all figures measured in one run (never a timed test: machines are noisy).

(a) Overhead per sample (everything but the model's forward) of our engine against lime 0.2.0.1's
    ``explain_instance``, both on the same 224x224 image and segments, N samples, the same batch size and
    the same near-free classifier (a linear layer on the mean colour). The time inside that classifier is
    measured and subtracted for both; what is left is sampling, masking, data conversion, distances and
    the fit. lime's numpy->torch conversion of each batch counts as its overhead: its API hands the
    classifier uint8 numpy images, which any torch model must convert.
(b) Our GradLIME end to end (segmentation, Grad-CAM, N perturbations and predictions, GradLIME and LIME
    fits) with the embedded EfficientNet-Lite0, against the model's own forward time on N images of the
    same size in batches of the same size (the physical limit). Model loading is excluded.
(c) The same for ``GradLIME.py --num-samples N --batch-size B`` on the sample photo: one image of the library's
    explain-to-folder run (what GradLIME.py calls: :class:`cnnxai.explain_run.ExplainRun`, then
    :func:`cnnxai.reporting.explain.explain_and_save`), model loaded beforehand, figure and files written.

The machines are shared and noisy (two forward-only timings of the same work differ by up to 15%), so each
figure is measured ``--repeats`` times, ours and the reference interleaved, and the medians are compared.
(b) and (c) also report the ratio of process CPU time (all threads), which other tenants of a shared
machine disturb less than wall time.
The last line printed is one JSON object with the figures. Usage:
    python bench/bench_lime.py [--num-samples 1000] [--batch-size 32] [--repeats 3] [--device cpu] [--only-overhead]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cnnxai.explain_run import ExplainRun, ExplainSettings  # noqa: E402
from cnnxai.explainers import explain_image  # noqa: E402
from cnnxai.images import sample_image  # noqa: E402
from cnnxai.preprocess import to_model_frame  # noqa: E402
from cnnxai.reporting.explain import explain_and_save  # noqa: E402
from cnnxai.zoo import MODELS, load_model  # noqa: E402
from lime_ext import CamLimeExplainer, LimeSettings, TorchClassifier, segment_image  # noqa: E402


class TimedModule(nn.Module):
    """Wraps a model and accumulates the wall time of its forward passes."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.seconds = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        start = time.perf_counter()
        out = self.inner(x)
        if out.is_cuda:
            torch.cuda.synchronize()
        self.seconds += time.perf_counter() - start
        return out


class MeanColourClassifier(nn.Module):
    """A near-free classifier: a fixed linear map of the per-channel mean to 5 logits."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 5)
        with torch.no_grad():
            self.fc.weight.copy_(
                torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, -1.0, 0], [0, 1.0, -1.0]])
            )
            self.fc.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(2, 3)))


def overhead_ours(image, segments, num_samples, batch_size, device) -> float:
    model = TimedModule(MeanColourClassifier()).to(device)
    # NCHW for both sides: a mean-colour classifier gains nothing from channels-last batches.
    explainer = CamLimeExplainer(
        TorchClassifier(model, channels_last=False), LimeSettings(num_samples=num_samples), batch_size
    )
    start = time.perf_counter()
    explainer.explain(image, segments=segments, seed=0, cam_mode="none", top_labels=1)
    return time.perf_counter() - start - model.seconds


def overhead_lime(image, segments, num_samples, batch_size, device) -> float:
    from lime import lime_image

    model = TimedModule(MeanColourClassifier()).to(device)
    classifier = TorchClassifier(model, channels_last=False)

    def classifier_fn(images: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float() / 255.0
        return classifier(batch).cpu().numpy()

    explainer = lime_image.LimeImageExplainer(random_state=0)
    start = time.perf_counter()
    explainer.explain_instance(
        image,
        classifier_fn,
        hide_color=0,
        top_labels=1,
        num_samples=num_samples,
        batch_size=batch_size,
        segmentation_fn=lambda _: segments,
    )
    return time.perf_counter() - start - model.seconds


class Clock:
    """Wall and process CPU time of a block."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def forward_time(model: nn.Module, image: np.ndarray, num_samples: int, batch_size: int, device) -> Clock:
    """The model alone: N normalised 224x224 images, in batches of ``batch_size``, inference mode, in the memory
    layout the classifier prefers (channels-last by default: the fastest way to run these CNNs, so the ratios
    against it are strict)."""
    classifier = TorchClassifier(model)
    x = classifier.prepare_rgb(image)
    batch = x[None].repeat(batch_size, 1, 1, 1)
    if classifier.channels_last:
        batch = batch.contiguous(memory_format=torch.channels_last)
    with Clock() as clock, torch.inference_mode():
        for begin in range(0, num_samples, batch_size):
            out = model(batch[: min(batch_size, num_samples - begin)])
            torch.softmax(out, dim=-1)
        if batch.is_cuda:
            torch.cuda.synchronize()
    return clock


def _fmt(values: list[float]) -> str:
    return " ".join(f"{v:.3f}" if v < 10 else f"{v:.1f}" for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--repeats", type=int, default=3, help="interleaved repetitions; medians are compared"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--only-overhead", action="store_true", help="measure (a) only (seconds instead of minutes)"
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    from skimage import data

    image = to_model_frame(data.chelsea())
    segments = segment_image(image, "quickshift", seed=0)
    n, bs = args.num_samples, args.batch_size
    print(
        f"image 224x224, {segments.max() + 1} quickshift superpixels, N={n}, batch {bs}, device {device}, torch threads {torch.get_num_threads()}"
    )

    overhead_ours(image, segments, 50, bs, device)  # warm-up
    ours_runs, lime_runs = [], []
    for _ in range(args.repeats):
        ours_runs.append(overhead_ours(image, segments, n, bs, device))
        lime_runs.append(overhead_lime(image, segments, n, bs, device))
    ours, theirs = statistics.median(ours_runs), statistics.median(lime_runs)
    print(
        f"(a) overhead per sample (median of {args.repeats}): ours {ours / n * 1e3:.3f} ms, lime 0.2.0.1 {theirs / n * 1e3:.3f} ms -> {theirs / ours:.1f}x"
    )
    print(
        f"    runs, ms/sample: ours {_fmt([t / n * 1e3 for t in ours_runs])}; lime {_fmt([t / n * 1e3 for t in lime_runs])}"
    )

    if args.only_overhead:
        print(
            json.dumps(
                {
                    "overhead_speedup_vs_lime": round(theirs / ours, 2),
                    "repeats": args.repeats,
                    "num_samples": n,
                }
            )
        )
        return
    model, _ = load_model("efficientnet_lite0", device=device)
    layers = MODELS["efficientnet_lite0"].layers
    with tempfile.TemporaryDirectory() as output_dir:
        settings = ExplainSettings(
            "gradlime", {"gradlime": {"num_samples": n}}, output_dir=output_dir, device=str(device),
            batch_size=bs, quiet=True,
        )  # fmt: skip
        cli_run = ExplainRun(settings)  # loads its own copy of the model: excluded from the timing
        photo = sample_image("chelsea")
        forward_time(model, image, 2 * bs, bs, device)  # warm-up
        forward_runs, e2e_runs, cli_runs = [], [], []
        for _ in range(args.repeats):
            forward_runs.append(forward_time(model, image, n, bs, device))
            with Clock() as clock:
                result = explain_image(
                    "gradlime", model, image, seed=0, batch_size=bs, num_samples=n, layers=list(layers)
                )
            e2e_runs.append(clock)
            with Clock() as clock:
                explain_and_save(cli_run, photo, "sample:chelsea", "chelsea")
            cli_runs.append(clock)

    def median(runs: list[Clock], attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in runs)

    forward, end_to_end, cli = (median(r, "wall") for r in (forward_runs, e2e_runs, cli_runs))
    forward_cpu, end_to_end_cpu, cli_cpu = (median(r, "cpu") for r in (forward_runs, e2e_runs, cli_runs))
    stages = ", ".join(f"{k[:-2]} {v:.2f}s" for k, v in result.timings.items())
    walls = {
        name: _fmt([r.wall for r in runs])
        for name, runs in (("forward", forward_runs), ("e2e", e2e_runs), ("cli", cli_runs))
    }
    print(
        f"(b) EfficientNet-Lite0, {n} images, wall s: forward {walls['forward']}; GradLIME end to end {walls['e2e']}"
    )
    print(f"    last run's stages: {stages}")
    print(
        f"    median end to end / median forward: wall {end_to_end:.2f}s / {forward:.2f}s = {end_to_end / forward:.3f}x; CPU time {end_to_end_cpu / forward_cpu:.3f}x"
    )
    print(f"(c) GradLIME.py (files and figure written), wall s: {walls['cli']}")
    print(
        f"    median / median forward: wall {cli:.2f}s / {forward:.2f}s = {cli / forward:.3f}x; CPU time {cli_cpu / forward_cpu:.3f}x"
    )
    print(
        json.dumps(
            {
                "overhead_speedup_vs_lime": round(theirs / ours, 2),
                "overhead_ms_per_sample_ours": round(ours / n * 1e3, 4),
                "overhead_ms_per_sample_lime": round(theirs / n * 1e3, 4),
                "end_to_end_over_forward": round(end_to_end / forward, 4),
                "end_to_end_over_forward_cpu_time": round(end_to_end_cpu / forward_cpu, 4),
                "end_to_end_s": round(end_to_end, 3),
                "cli_end_to_end_over_forward": round(cli / forward, 4),
                "cli_end_to_end_over_forward_cpu_time": round(cli_cpu / forward_cpu, 4),
                "cli_end_to_end_s": round(cli, 3),
                "forward_s": round(forward, 3),
                "repeats": args.repeats,
                "num_samples": n,
                "batch_size": bs,
                "device": str(device),
            }
        )
    )


if __name__ == "__main__":
    main()

"""Every metric of MyFaithfulness.py and MyComplexity.py for one image and one explainer: ours against the
reference way, with identical values, all measured in one run (never a timed test: machines are noisy).

The reference way is that of the public CamLIME repository's MyFaithfulness.py and MyComplexity.py: one
Quantus 0.6.0 call per metric on one image (their parameters, with baselines valid in the normalised input
space), plus RISE's deletion/insertion loop (one forward per step, edits in place on a CPU copy) restated here.
Ours is :class:`cnnxai.metrics.ImageMetrics`: every perturbed copy built on the device in batches, the
unperturbed forward shared. To compare values one for one, ours runs with ``feature_unit='element'`` (what
Quantus 0.6.0 does on RGB input; the suite's default 'pixel' is the CamLIME repository's own definition and
needs a third of the forwards for FaithfulnessEstimate and MonotonicityCorrelation, timed on a line of its own) and
replays the random draws Quantus made. Two Quantus breakages are patched for the reference: ``np.trapz``
(gone in numpy 2.4) and IROF's mask, which does not broadcast over RGB channels. Sufficiency needs several
images: it is scored on the three sample photos, with the same explainer.

Each repeat runs the reference and ours back to back; medians over ``--repeats`` are compared, wall time and
process CPU time. The model's own forward time on as many inputs (in batches) is the physical limit. The last
line printed is one JSON object. Usage:
    python bench/bench_metrics.py [--method saliency] [--repeats 3] [--device cpu] [--batch-size 32]
(needs Quantus 0.6.0: pip install --no-deps quantus==0.6.0, as the README's test command does)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_lime import Clock, forward_time  # noqa: E402

from cnnxai.explainers import explain, get_explainer  # noqa: E402
from cnnxai.images import SAMPLE_IMAGES, sample_image  # noqa: E402
from cnnxai.metrics import (  # noqa: E402
    COMPLEXITY_METRICS,
    FAITHFULNESS_METRICS,
    METRICS,
    ImageMetrics,
    resolve_settings,
    sufficiency,
)
from cnnxai.metrics.causal import blurred  # noqa: E402
from cnnxai.preprocess import to_model_frame  # noqa: E402
from cnnxai.zoo import MODELS, load_model  # noqa: E402
from lime_ext import TorchClassifier, auto_batch_size  # noqa: E402

PER_IMAGE = [name for name in FAITHFULNESS_METRICS + COMPLEXITY_METRICS if not METRICS[name].batch_level]


def quantus_metrics(low: float, high: float) -> dict:
    """The CamLIME repository's metric objects (Quantus 0.6.0), 'uniform' drawn in the image's value range."""
    import quantus
    from quantus.functions.perturb_func import baseline_replacement_by_mask

    def broadcast_mask(arr, mask, **kwargs):
        return baseline_replacement_by_mask(arr, np.broadcast_to(mask, arr.shape), **kwargs)

    uniform = {"uniform_low": low, "uniform_high": high}
    quiet = {"disable_warnings": True}
    return {
        "FaithfulnessCorrelation": quantus.FaithfulnessCorrelation(
            nr_runs=100, subset_size=224, perturb_baseline="black", return_aggregate=False, **quiet
        ),
        "FaithfulnessEstimate": quantus.FaithfulnessEstimate(
            features_in_step=224, perturb_baseline="black", **quiet
        ),
        "MonotonicityCorrelation": quantus.MonotonicityCorrelation(
            nr_samples=10,
            features_in_step=3136,
            perturb_baseline="uniform",
            perturb_func_kwargs=uniform,
            **quiet,
        ),
        "IROF": quantus.IROF(
            segmentation_method="slic",
            perturb_baseline="mean",
            perturb_func=broadcast_mask,
            return_aggregate=False,
            **quiet,
        ),  # fmt: skip
        "RegionPerturbation": quantus.RegionPerturbation(
            patch_size=14,
            regions_evaluation=1,
            perturb_baseline="uniform",
            perturb_func_kwargs=uniform,
            **quiet,
        ),
        "Sparseness": quantus.Sparseness(**quiet),
        "Complexity": quantus.Complexity(**quiet),
        "EffectiveComplexity": quantus.EffectiveComplexity(**quiet),
    }


class Recorder:
    """Records numpy's global choice/uniform draws (Quantus's randomness) so ours can replay them."""

    def __enter__(self) -> Recorder:
        self.choice, self.uniform = [], []
        self._originals = np.random.choice, np.random.uniform

        def choice(*args, **kwargs):
            self.choice.append(self._originals[0](*args, **kwargs))
            return self.choice[-1]

        def uniform(*args, **kwargs):
            self.uniform.append(np.atleast_1d(self._originals[1](*args, **kwargs)))
            return self.uniform[-1]

        np.random.choice, np.random.uniform = choice, uniform
        return self

    def __exit__(self, *exc) -> None:
        np.random.choice, np.random.uniform = self._originals


def rise_causal(model, x: torch.Tensor, saliency: np.ndarray, target: int, deleting: bool, step: int = 224):
    """RISE's single-image deletion/insertion, as its evaluation code runs it: one forward per step, the next
    pixels copied from the finishing image into a CPU copy, which is moved to the device for each forward."""
    height, width = saliency.shape
    steps = (height * width + step - 1) // step
    substrate = torch.zeros_like(x) if deleting else blurred(x[0])[None]
    start, finish = (x, substrate) if deleting else (substrate, x)
    current, finish = start.detach().cpu().clone(), finish.detach().cpu()
    order = np.argsort(-saliency.reshape(-1), kind="stable")
    scores = np.empty(steps + 1)
    with torch.no_grad():
        for i in range(steps + 1):
            scores[i] = float(torch.softmax(model(current.to(x.device)), dim=-1)[0, target])
            if i < steps:
                rows, cols = np.unravel_index(order[i * step : (i + 1) * step], (height, width))
                current[0, :, rows, cols] = finish[0, :, rows, cols]
    return float((scores.sum() - scores[0] / 2 - scores[-1] / 2) / steps)


class CountingModel(torch.nn.Module):
    """Counts the inputs the model sees."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner, self.seen = inner, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen += len(x)
        return self.inner(x)


def reference(model, x, xs, maps, target, predicted_all, quantus_objects, device):
    """The reference way: (values, per-metric Clock, forwards) with Quantus's draws recorded."""
    values, clocks, draws = {}, {}, {}
    a = maps[0][None, None]
    counting = CountingModel(model).eval()
    for name, metric in quantus_objects.items():
        with Recorder() as recorder, Clock() as clock:
            values[name] = float(np.ravel(metric(model=counting, x_batch=x.cpu().numpy(), y_batch=np.array([target]),
                                                 a_batch=a, device=str(device)))[0])  # fmt: skip
        clocks[name] = clock
        if name == "FaithfulnessCorrelation":
            draws["FaithfulnessCorrelation.subsets"] = np.stack(recorder.choice)
        if name in ("MonotonicityCorrelation", "RegionPerturbation"):
            draws[f"{name}.fills"] = np.concatenate(recorder.uniform)
    for name, deleting in (("Deletion", True), ("Insertion", False)):
        with Clock() as clock:
            values[name] = rise_causal(counting, x, maps[0], target, deleting)
        clocks[name] = clock
    import quantus

    with Clock() as clock:
        values["Sufficiency"] = float(quantus.Sufficiency(threshold=0.6, return_aggregate=False, disable_warnings=True)(
            model=counting, x_batch=xs.cpu().numpy(), y_batch=np.asarray(predicted_all), a_batch=np.stack(maps)[:, None],
            device=str(device))[0])  # fmt: skip
    clocks["Sufficiency"] = clock
    return values, clocks, draws, counting.seen


def ours(model, x, xs, maps, target, settings, unit, draws, batch_size):
    """Ours: (values, per-metric Clock, forwards); the shared per-image work is counted in 'shared'."""
    counting = CountingModel(model).eval()
    clocks = {}
    with Clock() as clock:
        image = ImageMetrics(
            counting, x, target, settings, feature_unit=unit, batch_size=batch_size, draws=draws
        )
    clocks["shared"] = clock
    values = {}
    for name in PER_IMAGE:
        with Clock() as clock:
            values[name] = image.score(maps[0], [name])[name].value
        clocks[name] = clock
    with Clock() as clock:
        classifier = TorchClassifier(counting)
        with classifier.session():
            predicted = classifier.forward_prepared(xs).argmax(dim=1).tolist()
        values["Sufficiency"] = sufficiency(maps, predicted, 0.6)[0].value
    clocks["Sufficiency"] = clock
    return values, clocks, counting.seen


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--method", default="saliency", help="the explainer whose map is scored")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="ours: inputs per forward (default: auto)"
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    np.trapz = np.trapezoid  # Quantus's AUC helper still calls it
    # Full float32 for both (ours sets it itself; Quantus would inherit PyTorch's TF32 convolutions on CUDA).
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    device = torch.device(args.device)
    model, _ = load_model("efficientnet_lite0", device=device)
    frames = [to_model_frame(sample_image(name)) for name in SAMPLE_IMAGES]
    classifier = TorchClassifier(model)
    xs = torch.stack([classifier.prepare_rgb(f) for f in frames])
    with torch.no_grad():
        predicted_all = model(xs).argmax(dim=1).tolist()
    target = predicted_all[0]
    declared = {option.name for option in get_explainer(args.method).options}
    layers = {"layers": list(MODELS["efficientnet_lite0"].layers)} if "layers" in declared else {}
    maps = [
        explain(args.method, model, f, t, device=device, **layers).map
        for f, t in zip(frames, predicted_all, strict=True)
    ]
    x = xs[:1]
    low, high = float(x.min()), float(x.max())
    settings = resolve_settings(list(METRICS))
    names = PER_IMAGE + ["Sufficiency"]
    print(f"EfficientNet-Lite0, {SAMPLE_IMAGES[0]} (class {target}), {args.method} map, device {device}, "
          f"torch threads {torch.get_num_threads()}, repeats {args.repeats}")  # fmt: skip
    runs: dict[str, list] = {"reference": [], "ours": [], "ours_pixel": [], "forward": []}
    differences: dict[str, float] = {}
    for repeat in range(args.repeats):
        ref_values, ref_clocks, draws, ref_forwards = reference(
            model, x, xs, maps, target, predicted_all, quantus_metrics(low, high), device
        )
        our_values, our_clocks, our_forwards = ours(
            model, x, xs, maps, target, settings, "element", draws, args.batch_size
        )
        pixel_values, pixel_clocks, pixel_forwards = ours(
            model, x, xs, maps, target, settings, "pixel", None, args.batch_size
        )
        forward = forward_time(
            model, frames[0], our_forwards, args.batch_size or auto_batch_size(device), device
        )
        runs["reference"].append(ref_clocks)
        runs["ours"].append(our_clocks)
        runs["ours_pixel"].append(pixel_clocks)
        runs["forward"].append(forward)
        for name in names:
            if np.isnan(our_values[name]) and name == "Sufficiency" and ref_values[name] == 0:
                differences[name] = float(
                    "nan"
                )  # no neighbour within the threshold: Quantus says 0, we say NaN
                continue
            differences[name] = max(differences.get(name, 0.0), abs(our_values[name] - ref_values[name]))
        if repeat == 0:
            counts = {"reference": ref_forwards, "ours": our_forwards, "ours_pixel": pixel_forwards}
            values = {"reference": ref_values, "ours": our_values, "ours_pixel": pixel_values}

    def median(kind: str, name: str, what: str = "wall") -> float:
        return statistics.median(getattr(clocks[name], what) for clocks in runs[kind])

    def total(kind: str, what: str = "wall") -> float:
        return statistics.median(sum(getattr(c, what) for c in clocks.values()) for clocks in runs[kind])

    print(
        f"{'metric':<25}{'per call s':>12}{'ours s':>9}{'ratio':>8}{'|difference|':>14}  values (per call, ours)"
    )
    for name in names:
        ref, our = median("reference", name), median("ours", name)
        difference = "undefined" if np.isnan(differences[name]) else f"{differences[name]:.2e}"
        print(f"{name:<25}{ref:>12.3f}{our:>9.3f}{ref / our:>7.1f}x{difference:>14}  "
              f"{values['reference'][name]:.6g}, {values['ours'][name]:.6g}")  # fmt: skip
    print(f"{'ours: shared per image':<25}{'':>12}{median('ours', 'shared'):>9.3f}")
    forward_wall = statistics.median(c.wall for c in runs["forward"])
    figures = {
        "per_call_s": total("reference"), "ours_s": total("ours"), "ours_pixel_s": total("ours_pixel"),
        "speedup_wall": total("reference") / total("ours"), "speedup_cpu_time": total("reference", "cpu") / total("ours", "cpu"),
        "ours_over_forward_time": total("ours") / forward_wall, "forwards": counts,
        "max_abs_difference": float(np.nanmax(list(differences.values()))),
    }  # fmt: skip
    print(f"all metrics: one Quantus call per metric and image {figures['per_call_s']:.2f} s ({counts['reference']} forwards), ours "
          f"{figures['ours_s']:.2f} s ({counts['ours']} forwards): {figures['speedup_wall']:.2f}x wall, "
          f"{figures['speedup_cpu_time']:.2f}x CPU time; ours / model forward time on as many inputs: "
          f"{figures['ours_over_forward_time']:.2f}x ({forward_wall:.2f} s)")  # fmt: skip
    print(f"ours with pixel features (the public CamLIME benchmarks' definition, the suite's default): {figures['ours_pixel_s']:.2f} s, "
          f"{counts['ours_pixel']} forwards: {figures['per_call_s'] / figures['ours_pixel_s']:.2f}x faster than the "
          "per-call way on Quantus 0.6.0 (values differ by definition)")  # fmt: skip
    print(f"largest |difference| between the per-call values and ours: {figures['max_abs_difference']:.2e}")
    print(json.dumps({"device": str(device), "method": args.method, "repeats": args.repeats,
                      **{k: (float(f"{v:.4g}") if isinstance(v, float) else v) for k, v in figures.items()}}))  # fmt: skip


if __name__ == "__main__":
    main()

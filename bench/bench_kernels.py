"""Kernels that build the metrics' perturbed copies: ``torch.where`` on a boolean mask against exact float kernels.

Every perturbation metric of ``cnnxai.metrics`` builds a batch of copies of one input, each with some features
taken from a replacement: ``out[i] = where(mask[i], fill, base)``. The LIME engine (``lime_ext.engine``) uses a
float mask and one ``addcmul`` instead, ``hidden + keep * (image - hidden)``; that form rounds (``b + (f - b)``
need not be ``f``), so the metrics, whose values must not change, may only use a float kernel that is exact for a
0/1 mask and finite values (a -0.0 of ``base`` may come out +0.0, the same number):

- ``addcmul``: ``base * (1 - m) + m * f`` (``base * 1``, ``m * f`` and the sums with 0 are exact);
- ``lerp``: ``torch.lerp(base, f, m)``, which PyTorch evaluates as ``base + m * (f - base)`` for m < 0.5 and as
  ``f - (f - base) * (1 - m)`` otherwise: exactly ``base`` at 0 and ``f`` at 1.

Three metric-shaped workloads on a 3x224x224 input, batches of 8 and 32 copies: FeatureView.replace (random
pixel subsets, one fill per copy: FaithfulnessCorrelation, FaithfulnessEstimate, MonotonicityCorrelation), the
cumulative builds of IROF / RegionPerturbation (a pixel is filled from its step on, one fill per pixel), and
causal_curve's builds (the first k ranked pixels from a substrate image: Deletion, Insertion). Each kernel is
timed from the boolean masks the metrics make (the float kernels convert them). Every repeat times all kernels
in turn (interleaved), and the medians are compared; each float kernel's output is checked bit for bit against
``where``'s. On a shared machine with few cores, every multi-threaded op can wait for a descheduled thread,
which favours the kernel with the fewest ops; ``--threads 1`` times the kernels' own work. Usage:
    python bench/bench_kernels.py [--repeats 15] [--device cpu] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch

Kernel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def where(base: torch.Tensor, masks: torch.Tensor, replacement: torch.Tensor) -> torch.Tensor:
    """``base`` (K,F) where ``masks`` (b,F) is False, ``replacement`` (broadcast to (b,K,F)) where True."""
    return torch.where(masks[:, None, :], replacement, base[None])


def addcmul(base: torch.Tensor, masks: torch.Tensor, replacement: torch.Tensor) -> torch.Tensor:
    m = masks[:, None, :].to(base.dtype)
    return (base[None] * (1 - m)).addcmul_(m, replacement)  # in place on the fresh product: one allocation


def lerp(base: torch.Tensor, masks: torch.Tensor, replacement: torch.Tensor) -> torch.Tensor:
    m = masks[:, None, :].to(base.dtype)
    shape = torch.broadcast_shapes(base[None].shape, m.shape, replacement.shape)
    return torch.lerp(base[None].expand(shape), replacement.expand(shape), m.expand(shape))


KERNELS: dict[str, Kernel] = {"where": where, "addcmul": addcmul, "lerp": lerp}


def workloads(batch: int, device: torch.device) -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(base (3,F), masks (b,F) bool, replacement) of each workload, F = 224*224, on normalised-looking values."""
    generator = torch.Generator().manual_seed(0)
    channels, pixels = 3, 224 * 224
    base = (torch.rand((channels, pixels), generator=generator) * 4.5 - 2.1).to(device)
    subsets = torch.rand((batch, pixels), generator=generator).argsort(dim=1)[:, :224]
    feature_masks = torch.zeros((batch, pixels), dtype=torch.bool).scatter_(1, subsets, True).to(device)
    fills = (torch.rand(batch, generator=generator) * 4.5 - 2.1).to(device)[:, None, None]
    step_of = torch.randint(0, 100, (pixels,), generator=generator).to(device)
    cumulative = step_of[None, :] <= torch.arange(40, 40 + batch, device=device)[:, None]
    fill_of = (torch.rand(pixels, generator=generator) * 4.5 - 2.1).to(device)
    rank = torch.randperm(pixels, generator=generator).to(device)
    causal = rank[None, :] < (torch.arange(1, batch + 1, device=device) * 224 * 3)[:, None]
    substrate = (torch.rand((channels, pixels), generator=generator) * 4.5 - 2.1).to(device)[None]
    return {
        "FeatureView.replace": (base, feature_masks, fills),
        "cumulative (IROF, RegionPerturbation)": (base, cumulative, fill_of),
        "causal_curve (Deletion, Insertion)": (base, causal, substrate),
    }


def timed(kernel: Kernel, inputs: tuple[torch.Tensor, ...], calls: int, device: torch.device) -> float:
    """Seconds per call, over ``calls`` calls."""
    start = time.perf_counter()
    for _ in range(calls):
        kernel(*inputs)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--calls", type=int, default=5, help="calls per timing")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch's CPU threads (default: torch's own)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"repeats {args.repeats} x {args.calls} calls, medians")  # fmt: skip
    print(f"{'workload':<40}{'batch':>6}" + "".join(f"{name + ' ms':>12}" for name in KERNELS)
          + "".join(f"{'where/' + name:>15}" for name in KERNELS if name != "where") + "  bit-identical")  # fmt: skip
    figures = {}
    for batch in (8, 32):
        for name, inputs in workloads(batch, device).items():
            expected = where(*inputs)
            identical = {
                kernel: bool(
                    torch.equal(expected.view(torch.int32), KERNELS[kernel](*inputs).view(torch.int32))
                )
                for kernel in KERNELS
            }
            for kernel in KERNELS.values():
                kernel(*inputs)  # warm up
            times: dict[str, list[float]] = {kernel: [] for kernel in KERNELS}
            for _ in range(args.repeats):
                for kernel, fn in KERNELS.items():
                    times[kernel].append(timed(fn, inputs, args.calls, device))
            medians = {kernel: statistics.median(values) for kernel, values in times.items()}
            ratios = {kernel: medians["where"] / medians[kernel] for kernel in KERNELS if kernel != "where"}
            print(f"{name:<40}{batch:>6}" + "".join(f"{medians[k] * 1e3:>12.2f}" for k in KERNELS)
                  + "".join(f"{r:>14.2f}x" for r in ratios.values())
                  + "  " + ", ".join(k for k, same in identical.items() if same))  # fmt: skip
            figures[f"{name} b={batch}"] = {
                "ms": {k: round(v * 1e3, 3) for k, v in medians.items()},
                "where_over": {k: round(v, 3) for k, v in ratios.items()},
                "bit_identical": identical,
            }
    print(json.dumps({"device": str(device), "figures": figures}))


if __name__ == "__main__":
    main()

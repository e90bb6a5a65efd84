"""The CUDA path end to end, in one run of under 10 minutes on one GPU (CI has none: run it whenever a GPU is lent).

    python bench/gpu_smoke.py                      # on cuda; results in results/gpu_smoke/
    python bench/gpu_smoke.py --out "$OUT"         # e.g. on a lent machine
    python bench/gpu_smoke.py --device cpu         # a dry run of the script itself (slower; no CPU-CUDA check)

Checks, each PASS or FAIL with its seconds (the run goes on after a failure and exits 1 at the end):

- every registry explainer through the batch API (``cnnxai.Explainer(model, name, mean=..., std=...)``) with a
  non-ImageNet normalisation: maps finite, on the inputs' device, and no hook left on the model;
- ``GradLIME.py --amp`` and ``CamLIME.py --amp --method layercam``: the four outputs of an explanation;
- the three tasks (``CamLIME.py --task detection|segmentation|face``);
- ``Localisation.py --task detection`` on a few scenes;
- ``MyFaithfulness.py`` and ``MyStability.py`` on the sample photos, with small budgets;
- CPU against CUDA for the same seed (GradLIME, N = 500): the top-10 superpixels equal and the maps within
  ``--tolerance`` of the map's largest magnitude;
- the peak GPU memory of this process (``torch.cuda.max_memory_allocated``).

Writes ``smoke.json`` (every check, its seconds, the error of a failed one, the device and versions) and prints
a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

# Small budgets: the point is that every path runs on the device, not the explanations' quality.
CHEAP = {
    "num_samples": 300, "masks": 500, "steps": 16, "samples": 8, "window": 32, "stride": 32,
}  # fmt: skip
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)  # a normalisation that is not ImageNet's
TOP = 10


def cheap_options(name: str, cache: Path) -> dict:
    from cnnxai.explainers import REGISTRY

    declared = {option.name for option in REGISTRY[name].options}
    options = {key: value for key, value in CHEAP.items() if key in declared}
    if name.startswith("normlime"):
        options.update(samples=100, clusters=4, cache=str(cache))
    return options


def hooks_left(model: torch.nn.Module) -> int:
    return sum(
        len(m._forward_hooks)
        + len(m._forward_pre_hooks)
        + len(m._backward_hooks)
        + len(m._backward_pre_hooks)
        for m in model.modules()
    )


def photos(names: tuple[str, ...]) -> np.ndarray:
    from cnnxai.images import sample_image
    from cnnxai.preprocess import to_model_frame

    return np.stack([to_model_frame(sample_image(name)) for name in names])


def check_batch_api(device: torch.device, work: Path, names: list[str]) -> str:
    """Every registry explainer on two photos through the batch API, with a non-ImageNet mean/std."""
    import cnnxai
    from cnnxai.explainers import REGISTRY
    from cnnxai.zoo import load_model

    model, _ = load_model("efficientnet_lite0", device=device)
    frames = photos(("chelsea", "coffee"))
    x = torch.from_numpy(frames).to(device).permute(0, 3, 1, 2).float().div(255)
    inputs = (x - torch.tensor(MEAN, device=device)[:, None, None]) / torch.tensor(STD, device=device)[
        :, None, None
    ]
    # A user's model that takes inputs normalised with MEAN/STD (the explainers then renormalise for it).
    model = _ImagenetTo(model, device)
    failures, times = [], {}
    for name in names or list(REGISTRY):
        start = time.perf_counter()
        try:
            explainer = cnnxai.Explainer(model, name, mean=MEAN, std=STD, **cheap_options(name, work))
            maps = explainer.attribute(inputs, target=None, seed=0)
            if maps.device.type != device.type or maps.shape != (2, 1, 224, 224):
                failures.append(f"{name}: maps {tuple(maps.shape)} on {maps.device}")
            elif not bool(torch.isfinite(maps).all()):
                failures.append(f"{name}: non-finite values")
            if hooks_left(model):
                failures.append(f"{name}: {hooks_left(model)} hook(s) left on the model")
        except Exception as error:  # noqa: BLE001 (a smoke test reports every failure, then goes on)
            failures.append(
                f"{name}: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            )
        times[name] = round(time.perf_counter() - start, 2)
    if failures:
        raise AssertionError("; ".join(failures))
    return f"{len(times)} explainers; slowest " + ", ".join(
        f"{n} {s}s" for n, s in sorted(times.items(), key=lambda kv: -kv[1])[:3]
    )


class _ImagenetTo(torch.nn.Module):
    """The ImageNet model seen by a user whose own normalisation is MEAN/STD: it takes MEAN/STD inputs."""

    def __init__(self, model: torch.nn.Module, device: torch.device) -> None:
        super().__init__()
        from lime_ext import IMAGENET_MEAN, IMAGENET_STD

        self.model = model
        self.register_buffer("mean", torch.tensor(MEAN, device=device)[:, None, None])
        self.register_buffer("std", torch.tensor(STD, device=device)[:, None, None])
        self.register_buffer("imagenet_mean", torch.tensor(IMAGENET_MEAN, device=device)[:, None, None])
        self.register_buffer("imagenet_std", torch.tensor(IMAGENET_STD, device=device)[:, None, None])
        self.default_layers = tuple("model." + layer for layer in getattr(model, "default_layers", ()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x * self.std + self.mean - self.imagenet_mean) / self.imagenet_std)


def run_tool(script: str, args: list[str], work: Path, timeout: int = 300) -> str:
    """Run one of the root scripts; raise with its last stderr line when it fails."""
    command = [sys.executable, str(ROOT / script), *args]
    done = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise AssertionError(f"{script} exited {done.returncode}: {last}")
    return " ".join(args[:6])


def explanation_written(folder: Path) -> None:
    expected = ("explanation.png", "superpixels.csv", "attribution.npy", "manifest.json")
    missing = [name for name in expected if not (folder / name).is_file()]
    if missing:
        raise AssertionError(f"{folder} lacks {', '.join(missing)}")


def check_cli_amp(device: torch.device, work: Path) -> str:
    amp = ["--amp"] if device.type == "cuda" else []
    out = work / "cli"
    run_tool(
        "GradLIME.py",
        ["--device", str(device), *amp, "--num-samples", "500", "--output-dir", str(out / "g"), "--quiet"],
        work,
    )
    explanation_written(out / "g" / "chelsea")
    run_tool("CamLIME.py", ["--device", str(device), *amp, "--method", "layercam", "--num-samples", "500",
                            "--output-dir", str(out / "c"), "--quiet"], work)  # fmt: skip
    explanation_written(out / "c" / "chelsea")
    manifest = json.loads((out / "g" / "chelsea" / "manifest.json").read_text())
    return f"amp={manifest['model'].get('amp')}, batch sizes {manifest['process'].get('auto_batch_sizes')}"


def check_tasks(device: torch.device, work: Path) -> str:
    for task in ("detection", "segmentation", "face"):
        out = work / "tasks" / task
        run_tool("CamLIME.py", ["--task", task, "--device", str(device), "--num-samples", "300",
                                "--output-dir", str(out), "--quiet"], work)  # fmt: skip
        folders = [p for p in out.iterdir() if p.is_dir()]
        if not folders:
            raise AssertionError(f"--task {task} wrote no explanation folder")
        explanation_written(folders[0])
    return "detection, segmentation, face"


def check_localisation(device: torch.device, work: Path) -> str:
    out = work / "localisation"
    run_tool("Localisation.py", ["--task", "detection", "--device", str(device), "--num-images", "4",
                                 "--methods", "gradlime,gradcam,rise", "--num-samples", "300", "--rise-masks", "500",
                                 "--output-dir", str(out), "--quiet"], work, timeout=400)  # fmt: skip
    return _nan_share(out / "scores.csv")


def _nan_share(path: Path) -> str:
    """The rows of a scores.csv and how many have no value; raises when an explainer failed (an exception's name in
    a row's reason: a NaN the device caused, not an undefined score)."""
    import csv

    rows = list(csv.DictReader(open(path)))
    values = [r.get("value", r.get("score", "")) for r in rows]
    nan = sum(1 for v in values if v in ("", "nan", "NaN"))
    failed = sorted({r.get("note") or r.get("reason") or "" for r in rows} - {""})
    failed = [reason for reason in failed if "Error" in reason]
    if failed:
        raise AssertionError(f"{path.parent.name}: explainers failed: {'; '.join(failed)[:400]}")
    return f"{len(rows)} rows, {nan} without a value"


def check_benchmarks(device: torch.device, work: Path) -> str:
    faith = work / "faithfulness"
    run_tool("MyFaithfulness.py", ["--device", str(device), "--methods", "lime,gradlime,gradcam",
                                   "--num-samples", "300", "--output-dir", str(faith), "--quiet"], work, 400)  # fmt: skip
    stability = work / "stability"
    run_tool("MyStability.py", ["--device", str(device), "--methods", "lime,gradlime", "--num-samples-grid", "100,200",
                                "--seeds", "2", "--reference-samples", "400", "--match-samples", "200",
                                "--output-dir", str(stability), "--quiet"], work, 400)  # fmt: skip
    return "faithfulness " + _nan_share(faith / "scores.csv")


def check_cpu_against_cuda(device: torch.device, tolerance: float) -> str:
    from cnnxai.explainers import explain_image
    from cnnxai.zoo import load_model

    if device.type != "cuda":
        return "skipped (no CUDA device)"
    frame = photos(("chelsea",))[0]
    maps, rankings = {}, {}
    for where in ("cpu", str(device)):
        model, info = load_model("efficientnet_lite0", device=where)
        result = explain_image("gradlime", model, frame, num_samples=500, seed=0, layers=model.default_layers)
        label = result.ours.labels[result.target]
        maps[where], rankings[where] = result.ours.attribution_map(result.target), label.ranking[:TOP]
    cpu, gpu = maps["cpu"], maps[str(device)]
    difference = float(np.abs(cpu - gpu).max() / max(np.abs(cpu).max(), 1e-12))
    same_top = list(rankings["cpu"]) == list(rankings[str(device)])
    if not same_top or difference > tolerance:
        raise AssertionError(
            f"top-{TOP} equal: {same_top} ({list(rankings['cpu'])} vs {list(rankings[str(device)])}); "
            f"max |map difference| / max |map| = {difference:.2e} (tolerance {tolerance:.0e})"
        )
    return f"top-{TOP} equal, max |map difference| / max |map| = {difference:.2e}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu (a dry run)")
    parser.add_argument(
        "--out", default=os.environ.get("OUT") or "results/gpu_smoke", help="folder for smoke.json"
    )
    parser.add_argument("--tolerance", type=float, default=1e-3,
                        help="CPU vs CUDA: largest map difference allowed, relative to the map's largest magnitude")  # fmt: skip
    parser.add_argument("--only", default="", help="comma-separated check names to run (default: all)")
    parser.add_argument(
        "--explainers", default="", help="the batch API check's explainers (default: every one)"
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    explainers = [n for n in args.explainers.split(",") if n]
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: no CUDA device here; use --device cpu for a dry run", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    checks: dict[str, Callable[[], str]] = {}
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        checks = {
            "batch_api_every_explainer": lambda: check_batch_api(device, work, explainers),
            "cli_amp": lambda: check_cli_amp(device, work),
            "tasks": lambda: check_tasks(device, work),
            "localisation_detection": lambda: check_localisation(device, work),
            "faithfulness_stability": lambda: check_benchmarks(device, work),
            "cpu_against_cuda": lambda: check_cpu_against_cuda(device, args.tolerance),
        }
        wanted = [n for n in args.only.split(",") if n] or list(checks)
        results = []
        for name in wanted:
            start = time.perf_counter()
            try:
                detail, ok = checks[name](), True
            except Exception as error:  # noqa: BLE001 (report and go on)
                detail, ok = f"{type(error).__name__}: {error}", False
                traceback.print_exc()
            results.append(
                {"check": name, "ok": ok, "seconds": round(time.perf_counter() - start, 1), "detail": detail}
            )
            print(
                f"{'PASS' if ok else 'FAIL'}  {name:28s} {results[-1]['seconds']:7.1f} s  {detail}",
                flush=True,
            )
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    record = {
        "date": time.strftime("%Y-%m-%d"),
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "peak_gpu_memory_mib": peak,
        "checks": results,
    }
    (out / "smoke.json").write_text(json.dumps(record, indent=2))
    if peak is not None:
        print(f"peak GPU memory of this process: {peak:.0f} MiB")
    failed = [r["check"] for r in results if not r["ok"]]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

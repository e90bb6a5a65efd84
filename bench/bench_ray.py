"""A benchmark run in one process against the same run on local Ray workers, measured in one run.

MyFaithfulness.py scores ``--images`` photos (crops of scikit-image's sample photos, written to a temporary
folder) with a few explainers and metrics on the embedded EfficientNet-Lite0: once in one process (torch
using every core) and once with ``--ray`` (one worker per ``--cpus-per-worker`` cores, each with that many
torch threads). Each is the whole command, timed from outside, as a user runs it; the two are interleaved
``--repeats`` times, and their rows are compared. The Ray figure includes starting Ray and its workers (each
importing torch and the suite and loading the model); that start-up alone is timed too, so the steady rate is
shown. The last line printed is one JSON object. Usage:
    python bench/bench_ray.py [--images 16] [--repeats 1] [--device cpu] [--ray-workers N]
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
from PIL import Image
from skimage import data

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cnnxai.distributed import RaySettings, WorkerPool  # noqa: E402

PHOTOS = ("chelsea", "coffee", "rocket", "astronaut", "cat", "hubble_deep_field", "immunohistochemistry")
RUN = [
    "--methods", "lime,gradlime,saliency", "--metrics", "FaithfulnessCorrelation,Deletion,Insertion",
    "--num-samples", "300", "--set", "Deletion.step=1792", "--set", "Insertion.step=1792", "--quiet",
]  # fmt: skip
TIMING = ("seconds", "explain_seconds")


def write_photos(folder: Path, count: int) -> None:
    """``count`` different crops of the sample photos, as PNG files."""
    for i in range(count):
        photo = getattr(data, PHOTOS[i % len(PHOTOS)])()
        h, w = photo.shape[:2]
        side = min(h, w) * 3 // 4
        top, left = (i * 37) % (h - side + 1), (i * 53) % (w - side + 1)
        Image.fromarray(np.ascontiguousarray(photo[top : top + side, left : left + side])).save(
            folder / f"{i:03d}.png"
        )


def rows(folder: Path) -> list[dict]:
    found = [
        {k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(open(folder / "scores.csv"))
    ]
    return sorted(found, key=lambda r: (r["image"], r["method"], r["metric"]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--ray-workers", default=None, help="default: one per core (CPU) or per GPU")
    parser.add_argument("--cpus-per-worker", default="1")
    parser.add_argument("--gpus-per-worker", default="1")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_ray_"))
    (work / "images").mkdir()
    write_photos(work / "images", args.images)
    common = ["--data-dir", str(work / "images"), "--device", args.device, *RUN]
    ray_flags = [
        "--ray",
        "--ray-cpus-per-worker",
        args.cpus_per_worker,
        "--ray-gpus-per-worker",
        args.gpus_per_worker,
    ]
    if args.ray_workers:
        ray_flags += ["--ray-workers", args.ray_workers]
    seconds: dict[str, list[float]] = {"one process": [], "ray": [], "ray start-up": []}
    outputs = {}
    for repeat in range(args.repeats):
        for name, extra in (("one process", []), ("ray", ray_flags)):
            out = work / f"{name.replace(' ', '_')}{repeat}"
            start = time.perf_counter()
            command = [
                sys.executable,
                str(ROOT / "MyFaithfulness.py"),
                *common,
                *extra,
                "--output-dir",
                str(out),
            ]
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            seconds[name].append(time.perf_counter() - start)
            outputs[name] = out
        settings = RaySettings(cpus_per_worker=float(args.cpus_per_worker))
        start = time.perf_counter()
        with WorkerPool(settings, "cpu", ("cnnxai.benchmark.runner",)) as pool:
            pool.pids()
        seconds["ray start-up"].append(time.perf_counter() - start)
    one_rows, ray_rows = rows(outputs["one process"]), rows(outputs["ray"])
    same = one_rows == ray_rows
    differ = max(abs(float(a["value"]) - float(b["value"])) for a, b in zip(one_rows, ray_rows, strict=True))
    manifest = json.loads((outputs["ray"] / "manifest.json").read_text())
    cluster = manifest["cluster"]
    maps = args.images * 3
    one, ray, startup = (statistics.median(seconds[k]) for k in ("one process", "ray", "ray start-up"))
    print(f"{args.images} images x 3 explainers x 3 metrics, EfficientNet-Lite0, device {args.device}; "
          f"Ray {cluster['ray_version']}: {cluster['workers']} workers x {cluster['cpus_per_worker']} CPU "
          f"on {cluster['cpus']:.0f} CPUs, {cluster['gpus']:.0f} GPUs")  # fmt: skip
    print(f"one process:        {one:7.1f} s  {maps / one:6.3f} maps/s")
    print(f"ray (with start-up):{ray:7.1f} s  {maps / ray:6.3f} maps/s  speed-up x{one / ray:.2f}")
    print(f"ray start-up alone: {startup:7.1f} s")
    print(
        f"ray steady:         {ray - startup:7.1f} s  {maps / (ray - startup):6.3f} maps/s  speed-up x{one / (ray - startup):.2f}"
    )
    print(f"rows equal: {same} (largest difference of a value: {differ:.2g}; torch threads 1 per worker against "
          f"{torch.get_num_threads()} in one process round float32 differently)")  # fmt: skip
    for worker in cluster["per_worker"]:
        print(
            f"  worker {worker['pid']}: {worker['maps']} maps, {worker['maps_per_s']} maps/s while computing"
        )
    print(json.dumps({"images": args.images, "device": args.device, "one_process_s": one, "ray_s": ray,
                      "ray_startup_s": startup, "speedup": one / ray, "steady_speedup": one / (ray - startup),
                      "rows_equal": same, "largest_difference": differ, "cluster": cluster}))  # fmt: skip


if __name__ == "__main__":
    main()

"""Benchmark of the malloc tuning (cnnxai.system.tune_malloc), all figures measured in one run (never a timed test).

mallopt changes the whole process, so every measurement is a separate child process of this script that
calls ``tune_malloc()`` first, with ``CNNXAI_MALLOC_TUNING`` unset (tuned) or ``off`` (untuned); otherwise
the children inherit this environment (OMP_* included). Each pair runs tuned and untuned back to back, in
alternating order, ``--repeats`` times; medians are compared. Other processes on the machine change these
timings (OpenMP threads spin while they wait for a core), so the load average is printed.
Per child: the whole process's wall time (measured here) and its user and system CPU time, peak RSS and
minor page faults (``os.wait4``), plus the wall time of the timed section inside it.

(a) forward only: model loaded, one warm-up forward, then 40 forwards (``--quick``: 10) of one batch of 8
    224x224 images, channels-last, inference mode, softmax; as TorchClassifier feeds the model on CPU.
(b) GradLIME end to end (explain_with_cam_prior: segmentation, Grad-CAM, ``--num-samples`` perturbations
    and predictions in CPU batches of 8, both fits) on the sample photo; the timed section excludes imports
    and model loading. The tuned and untuned attributions, priors and predictions must be identical.

Models: the embedded EfficientNet-Lite0 (CAM layer ``_swish``) and torchvision's ResNet-18 with random
weights (seed 0; timing does not depend on the weights; CAM layer ``layer4``). CPU only.
The last line printed is one JSON object with the figures. Usage:
    python bench/bench_system.py [--repeats 3] [--num-samples 300] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cnnxai.system import ENV_VAR, tune_malloc  # noqa: E402

MODELS = {"efficientnet_lite0": ["_swish"], "resnet18": ["layer4"]}
BATCH = 8


def _load(name: str):
    import torch
    import torchvision

    if name == "resnet18":
        torch.manual_seed(0)
        return torchvision.models.resnet18(weights=None).eval()
    from cnnxai.zoo import load_model

    return load_model(name)[0]


def child(kind: str, model_name: str, forwards: int, num_samples: int, out: str) -> None:
    """One measurement in this process: prints a JSON line with the timed section's wall time and the
    malloc record; (b) also saves the results to compare in ``out`` (.npz)."""
    tuning = tune_malloc()
    import numpy as np
    import torch

    from cnnxai.explainers.lime_family import explain_image
    from cnnxai.images import sample_image
    from cnnxai.preprocess import to_model_frame
    from lime_ext import TorchClassifier

    model = _load(model_name)
    image = to_model_frame(sample_image("chelsea"))
    if kind == "forward":
        classifier = TorchClassifier(model)
        x = classifier.prepare_rgb(image)
        batch = x[None].repeat(BATCH, 1, 1, 1)
        with classifier.session():
            classifier.forward_prepared(batch)  # warm-up
            start = time.perf_counter()
            for _ in range(forwards):
                classifier.forward_prepared(batch)
            seconds = time.perf_counter() - start
    else:
        start = time.perf_counter()
        result = explain_image(
            "gradlime",
            model,
            image,
            seed=0,
            batch_size=BATCH,
            num_samples=num_samples,
            layers=MODELS[model_name],
        )
        seconds = time.perf_counter() - start
        arrays = {"probabilities": result.probabilities, "predictions": result.neighbourhood.predictions}
        for label in result.labels:
            arrays[f"ours_{label}"] = result.ours.labels[label].attributions
            arrays[f"lime_{label}"] = result.lime.labels[label].attributions
            arrays[f"prior_{label}"] = result.priors[label]
        np.savez(out, **arrays)
    print(json.dumps({"seconds": seconds, "malloc": tuning.as_dict(), "threads": torch.get_num_threads()}))


def run_child(kind: str, model_name: str, tuned: bool, args, out: str) -> dict:
    """Spawns one child, malloc tuned or not; its figures: wall (whole process), user, sys (s), maxrss (MB),
    minflt, inner (s)."""
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    if not tuned:
        env[ENV_VAR] = "off"
    cmd = [sys.executable, __file__, "--child", kind, "--model", model_name, "--out", out]
    cmd += ["--forwards", str(args.forwards), "--num-samples", str(args.num_samples)]
    with tempfile.TemporaryFile("w+") as stdout:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=stdout, stderr=subprocess.PIPE, text=True)
        stderr = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        proc.stderr.close()
        if proc.returncode != 0:
            raise RuntimeError(f"child {cmd} failed ({proc.returncode}):\n{stderr}")
        stdout.seek(0)
        report = json.loads(stdout.read().strip().splitlines()[-1])
    if report["malloc"]["applied"] != tuned:
        raise RuntimeError(f"child tuned={tuned} reported {report['malloc']}")
    return {
        "wall": wall,
        "user": usage.ru_utime,
        "sys": usage.ru_stime,
        "maxrss_mb": usage.ru_maxrss / 1024,
        "minflt": usage.ru_minflt,
        "inner": report["seconds"],
    }


def same_outputs(a: str, b: str) -> bool:
    import numpy as np

    with np.load(a) as x, np.load(b) as y:
        return sorted(x.files) == sorted(y.files) and all(np.array_equal(x[k], y[k]) for k in x.files)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="interleaved tuned/untuned pairs; medians are compared"
    )
    parser.add_argument("--num-samples", type=int, default=300, help="GradLIME perturbations in (b)")
    parser.add_argument("--quick", action="store_true", help="1 pair, 10 forwards, 50 samples (a smoke run)")
    parser.add_argument("--child", choices=("forward", "gradlime"), help=argparse.SUPPRESS)
    parser.add_argument("--model", choices=tuple(MODELS), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--forwards", type=int, default=40, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.model, args.forwards, args.num_samples, args.out)
        return
    if args.quick:
        args.repeats, args.forwards, args.num_samples = 1, 10, 50

    begin, load = time.perf_counter(), os.getloadavg()
    print(
        f"CPU, {os.cpu_count()} cores, load average {load[0]:.1f}; {args.repeats} pairs per row, "
        f"(a) {args.forwards} forwards of {BATCH}x3x224x224 channels-last, (b) GradLIME N={args.num_samples} "
        f"batch {BATCH}"
    )
    print(
        f"{'':30} {'wall s':>13} {'ratio':>6} {'user s':>13} {'sys s':>13} {'peak RSS MB':>13} "
        f"{'faults k':>13} {'inner s':>13} {'ratio':>6}"
    )
    figures: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for section, kind in (("a", "forward"), ("b", "gradlime")):
            for model_name in MODELS:
                runs: dict[bool, list[dict]] = {True: [], False: []}
                identical = True
                for r in range(args.repeats):
                    outs = {}
                    for tuned in (True, False) if r % 2 else (False, True):
                        outs[tuned] = str(Path(tmp) / f"{kind}_{model_name}_{tuned}.npz")
                        runs[tuned].append(run_child(kind, model_name, tuned, args, outs[tuned]))
                    if kind == "gradlime":
                        identical &= same_outputs(outs[True], outs[False])
                med = {
                    tuned: {k: statistics.median(run[k] for run in runs[tuned]) for k in runs[tuned][0]}
                    for tuned in runs
                }
                off, on = med[False], med[True]
                row = {
                    "wall_ratio": round(on["wall"] / off["wall"], 3),
                    "inner_ratio": round(on["inner"] / off["inner"], 3),
                    "cpu_ratio": round((on["user"] + on["sys"]) / (off["user"] + off["sys"]), 3),
                    "untuned": {k: round(v, 3) for k, v in off.items()},
                    "tuned": {k: round(v, 3) for k, v in on.items()},
                    "peak_rss_mb_delta": round(on["maxrss_mb"] - off["maxrss_mb"], 1),
                }
                if kind == "gradlime":
                    row["identical_outputs"] = identical
                figures[f"{kind}_{model_name}"] = row

                def cell(key: str, scale: float = 1.0, off=off, on=on) -> str:
                    return f"{off[key] * scale:6.2f}>{on[key] * scale:6.2f}"

                label = f"({section}) {kind} {model_name}"
                check = "" if kind == "forward" else f"  identical outputs: {identical}"
                print(
                    f"{label:30} {cell('wall')} {row['wall_ratio']:6.3f} {cell('user')} {cell('sys')} "
                    f"{off['maxrss_mb']:6.0f}>{on['maxrss_mb']:6.0f} {cell('minflt', 1e-3)} {cell('inner')} "
                    f"{row['inner_ratio']:6.3f}{check}",
                    flush=True,
                )
    seconds = time.perf_counter() - begin
    print(
        f"columns: median untuned>tuned; ratio = tuned/untuned; inner = the timed section; took {seconds:.0f} s; "
        f"load average {load[0]:.1f} at start, {os.getloadavg()[0]:.1f} at end"
    )
    figures.update(
        repeats=args.repeats, forwards=args.forwards, num_samples=args.num_samples, batch_size=BATCH,
        bench_seconds=round(seconds, 1), load_average=[round(load[0], 2), round(os.getloadavg()[0], 2)],
    )  # fmt: skip
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

"""--ray on a local Ray (CPU, a tiny model, a few synthetic images): the same rows as one process, a worker
killed mid-run replaced, the driver killed and run again resumed, bad addresses and a missing Ray refused."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnxai.benchmark.cli import main
from cnnxai.cli import main as explain_main
from cnnxai.errors import UserInputError
from cnnxai.groundtruth.cli import main as localisation_main
from cnnxai.stability.cli import main as stability_main
from tests.helpers import TINY_IMAGENET_MODEL, small_photo

ray = pytest.importorskip("ray")
from cnnxai.distributed import RaySettings, WorkerPool, WorkFailed, check_address  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TIMING = ("seconds", "explain_seconds")
ARGS = [
    *TINY_IMAGENET_MODEL, "--sufficiency-batch", "2", "--methods", "saliency,control_random,lime", "--layers", "4",
    "--num-samples", "24", "--segmenter", "slic", "--device", "cpu", "--quiet",
    "--set", "FaithfulnessCorrelation.nr_runs=8", "--set", "FaithfulnessEstimate.features_in_step=12544",
    "--set", "MonotonicityCorrelation.features_in_step=12544", "--set", "MonotonicityCorrelation.nr_samples=2",
    "--set", "IROF.n_segments=6", "--set", "Deletion.step=12544", "--set", "Insertion.step=12544",
]  # fmt: skip
# Two workers whatever the machine's cores (the tests count on it).
RAY = ["--ray", "--ray-workers", "2"]
# The driver of a subprocess run: MyFaithfulness.py.
DRIVER = "import sys; import cnnxai.benchmark.cli as cli; sys.exit(cli.main('faithfulness', sys.argv[1:]))"


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    for i in range(8):
        Image.fromarray(np.roll(small_photo(72), 9 * i, axis=1)).save(folder / f"img{i}.png")
    return folder


@contextmanager
def threads(count: int):
    """torch's threads here set to ``count`` (float32 kernels round differently with another thread count)."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def one_process(images, tmp_path_factory) -> list[dict]:
    """The rows of the run in one process, without Ray, with 1 torch thread as each worker: what every --ray
    run must equal."""
    out = tmp_path_factory.mktemp("one")
    with threads(1):
        assert main("faithfulness", ["--data-dir", str(images), "--output-dir", str(out), *ARGS]) == 0
    return rows(out)


def rows(folder: Path) -> list[dict]:
    """scores.csv without the timing columns, sorted (units finish in any order)."""
    found = [
        {k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(open(folder / "scores.csv"))
    ]
    return sorted(found, key=lambda r: (r["image"], r["method"], r["metric"]))


def test_ray_rows_equal_one_process(images, one_process, tmp_path, capsys):
    out = tmp_path / "ray"
    assert main("faithfulness", ["--data-dir", str(images), "--output-dir", str(out), *RAY, *ARGS]) == 0
    assert rows(out) == one_process
    cluster = json.loads((out / "manifest.json").read_text())["cluster"]
    assert cluster["workers"] == 2 and cluster["cpus"] >= 2 and cluster["ray_version"] == ray.__version__
    assert sum(worker["maps"] for worker in cluster["per_worker"]) == 8 * 3
    assert not ray.is_initialized()  # the local Ray this run started is shut down


class KillingPool(WorkerPool):
    """Kills one worker (SIGKILL) as soon as the first unit comes back: its other unit is still running."""

    killed: list[int] = []

    def map_unordered(self, items):
        for n, (key, result) in enumerate(super().map_unordered(items)):
            if n == 0:
                pid = self.ray.get(self.actors[0].pid.remote())
                os.kill(pid, signal.SIGKILL)
                KillingPool.killed.append(pid)
            yield key, result


def test_a_killed_worker_is_replaced_and_the_rows_are_unchanged(
    images, one_process, tmp_path, monkeypatch
):
    monkeypatch.setattr("cnnxai.distributed.WorkerPool", KillingPool)
    out = tmp_path / "ray"
    assert main("faithfulness", ["--data-dir", str(images), "--output-dir", str(out), *RAY, *ARGS]) == 0
    assert rows(out) == one_process
    workers = json.loads((out / "manifest.json").read_text())["cluster"]["per_worker"]
    assert len(KillingPool.killed) == 1
    assert len({w["pid"] for w in workers} - set(KillingPool.killed)) == 2  # both workers alive at the end


def test_the_driver_killed_mid_run_resumes_to_the_same_rows(images, one_process, tmp_path):
    out = tmp_path / "ray"
    command = [
        sys.executable,
        "-c",
        DRIVER,
        "--data-dir",
        str(images),
        "--output-dir",
        str(out),
        *RAY,
        *ARGS,
    ]
    driver = subprocess.Popen(command, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (out / "scores.csv").exists() or (out / "scores.csv").stat().st_size == 0:
            assert driver.poll() is None and time.monotonic() < deadline, "the run ended before any row"
            time.sleep(0.02)
        driver.kill()  # SIGKILL: no cleanup at all
        driver.wait()
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the local Ray's processes it had started
    written = (out / "scores.csv").read_text().count("\n") - 1
    assert 0 < written < len(one_process)  # killed mid-run
    again = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=300, start_new_session=True
    )
    assert again.returncode == 0, again.stderr
    assert rows(out) == one_process
    assert json.loads((out / "manifest.json").read_text())["units_resumed"] > 0


def test_localisation_with_ray_equals_one_process(tmp_path, capsys):
    args = ["--num-images", "5", "--methods", "gradcam,lime,control_random", "--num-samples", "40",
            "--train-images", "100", "--epochs", "1", "--cache-dir", str(tmp_path / "cache"), "--quiet",
            "--device", "cpu", "--dpi", "30"]  # fmt: skip
    with threads(1):
        assert localisation_main([*args, "--output-dir", str(tmp_path / "one")]) == 0
    assert localisation_main([*args, "--output-dir", str(tmp_path / "ray"), *RAY]) == 0
    one, ray_run = (list(csv.DictReader(open(tmp_path / name / "scores.csv"))) for name in ("one", "ray"))
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in one] == [
        {k: v for k, v in r.items() if k != "seconds"} for r in ray_run
    ]  # in the same order: the driver puts the images back in order
    cluster = json.loads((tmp_path / "ray" / "manifest.json").read_text())["cluster"]
    assert sum(worker["maps"] for worker in cluster["per_worker"]) == 5 * 3


def test_stability_with_ray_equals_one_process(images, tmp_path):
    """MyStability.py --ray: the same rows as one process (the reference of each image computed in the worker
    that explains the image), every explanation counted in the cluster's record."""
    args = [*TINY_IMAGENET_MODEL, "--data-dir", str(images), "--per-class", "3", "--methods", "lime,gradlime",
            "--layers", "4", "--num-samples-grid", "20,40", "--seeds", "2", "--reference-samples", "60",
            "--match-samples", "40", "--curve-steps", "5", "--segmenter", "slic", "--device", "cpu", "--quiet"]  # fmt: skip
    with threads(1):
        assert stability_main([*args, "--output-dir", str(tmp_path / "one")]) == 0
    assert stability_main([*args, "--output-dir", str(tmp_path / "ray"), *RAY]) == 0

    def rows_of(name: str) -> list[dict]:
        found = [{k: v for k, v in r.items() if k != "seconds"}
                 for r in csv.DictReader(open(tmp_path / name / "rows.csv"))]  # fmt: skip
        return sorted(found, key=lambda r: (r["image"], r["method"], r["budget"], r["seed"]))

    one = rows_of("one")
    assert len(one) == 3 * (1 + 2 * 2 + 2 * 2) and all(r["reason"] != "" or r["r2"] != "nan" for r in one)
    assert rows_of("ray") == one
    cluster = json.loads((tmp_path / "ray" / "manifest.json").read_text())["cluster"]
    assert sum(worker["explanations"] for worker in cluster["per_worker"]) == len(one)


def test_a_folder_run_with_ray_writes_what_one_process_writes(images, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        (folder / f"img{i}.png").write_bytes((images / f"img{i}.png").read_bytes())
    (folder / "broken.png").write_bytes(b"not an image")
    args = ["--image-path", str(folder), "--num-samples", "40", "--segmenter", "slic", "--device", "cpu",
            "--quiet"]  # fmt: skip
    with threads(1):
        assert (
            explain_main("gradlime", [*args, "--output-dir", str(tmp_path / "one")]) == 1
        )  # the broken file
    assert explain_main("gradlime", [*args, "--output-dir", str(tmp_path / "ray"), *RAY]) == 1
    one, ray_run = ((tmp_path / name / "failures.csv").read_text() for name in ("one", "ray"))
    assert one == ray_run and "broken.png" in one
    printed = capsys.readouterr().out
    for i in range(3):
        one, ray_run = (np.load(tmp_path / name / f"img{i}" / "attribution.npy") for name in ("one", "ray"))
        assert np.array_equal(one, ray_run)
        assert f"img{i}.png: " in printed
    assert explain_main("gradlime", ["--ray", "--output-dir", str(tmp_path / "x"), "--quiet"]) == 2
    assert "--ray runs a folder" in capsys.readouterr().err


class Suicidal:
    """A work object: item 'die' kills its worker every time; item 'once' only on its first attempt."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def load(self, item: str) -> str:
        return item

    def compute(self, item: str):
        if item == "die" or (item == "once" and not self.marker.exists()):
            self.marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        yield item.upper()


def suicidal(marker: Path, device: str) -> Suicidal:
    return Suicidal(marker)


def test_a_unit_is_retried_a_bounded_number_of_times_then_given_up(tmp_path):
    settings = RaySettings(workers=1, retries=1)
    with WorkerPool(settings, "cpu") as started:
        pool = started.using(partial(suicidal, tmp_path / "marker"))
        # One item at a time: a worker that dies takes every unit it was running with it.
        assert list(pool.map_unordered([("a", "once", 1)])) == [("a", ["ONCE"])]  # died once, run again
        [(key, failed)] = pool.map_unordered([("b", "die", 1)])
        assert list(pool.map_unordered([("c", "fine", 1)])) == [("c", ["FINE"])]  # the worker came back
    assert key == "b" and isinstance(failed, WorkFailed) and "died 2 times" in failed.reason


@pytest.mark.parametrize("address", ["127.0.0.1:1", "nowhere", "ray://127.0.0.1:1"])
def test_a_bad_address_is_one_line_and_exit_2(images, address, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        "faithfulness", ["--data-dir", str(images), "--output-dir", str(out), "--ray", address, *ARGS]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith(f"error: --ray {address}:"), err
    assert not (out / "scores.csv").exists()
    with pytest.raises(UserInputError, match="no Ray cluster answers"):
        check_address("127.0.0.1:1", timeout=1)


def test_ray_missing_is_one_line_and_exit_2(images, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails
    code = main(
        "faithfulness", ["--data-dir", str(images), "--output-dir", str(tmp_path / "o"), "--ray", *ARGS]
    )
    err = capsys.readouterr().err
    assert (
        code == 2
        and err
        == "error: --ray needs Ray, an optional extra: pip install -r requirements-ray.txt (or pip install '.[ray]')\n"
    )

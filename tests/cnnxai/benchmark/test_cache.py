"""The benchmarks' result cache: a run with a filled cache writes the rows of a run without one, explaining
nothing it holds; its keys change with every input a result depends on."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import cnnxai.benchmark.runner as runner
from cnnxai.benchmark.cache import ResultCache, source_digest
from cnnxai.metrics import MetricResult
from tests.cnnxai.benchmark.test_benchmark import CHEAP, METHODS, imagenet_folder, run, tiny_model  # noqa: F401
from tests.helpers import make_tiny_cnn

TIMING = ("seconds",)  # a metric's seconds differ between runs; explain_seconds come from the cache


def all_rows(folder: Path) -> list[dict]:
    found = [
        {k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(open(folder / "scores.csv"))
    ]
    return sorted(found, key=lambda r: (r["image"], r["method"], r["metric"]))


@pytest.fixture
def explains(monkeypatch) -> list[str]:
    """The methods the benchmark explained with, one entry per call."""
    calls: list[str] = []
    real = runner.explain

    def counted(method, *args, **kwargs):
        calls.append(method)
        return real(method, *args, **kwargs)

    monkeypatch.setattr(runner, "explain", counted)
    return calls


def test_a_filled_cache_gives_the_same_rows_without_explaining(
    tmp_path, imagenet_folder, capsys, explains  # noqa: F811
):
    cache = tmp_path / "cache"
    args = ["--data-dir", str(imagenet_folder), "--sufficiency-batch", "2", *METHODS, *CHEAP]

    def faithfulness(name: str, *extra: str) -> list[dict]:
        code, _, stderr = run("faithfulness", [*args, *extra, "--output-dir", str(tmp_path / name)], capsys)
        assert code == 0, stderr
        return all_rows(tmp_path / name)

    def untimed(rows: list[dict]) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "explain_seconds"} for r in rows]

    plain = faithfulness("plain")
    explains.clear()
    first = faithfulness("first", "--cache", str(cache))
    assert untimed(first) == untimed(plain)  # the cache changes nothing
    assert len(explains) == 6 * 3
    explains.clear()

    # Every map and score read, with the explainer seconds of the run that computed it.
    assert faithfulness("second", "--cache", str(cache)) == first and explains == []
    curves = [(tmp_path / name / "curves.csv").read_text().splitlines() for name in ("first", "second")]
    assert sorted(curves[0]) == sorted(curves[1])
    manifest = json.loads((tmp_path / "second" / "manifest.json").read_text())
    assert manifest["cache"]["maps_read"] == 6 * 3
    assert manifest["cache"]["scores_read"] == 6 * 3 * 7  # every metric but Sufficiency

    # Half the scores gone: they are computed again, to the same values.
    scores = sorted((cache / "scores").rglob("*.json"))
    for path in scores[::2]:
        path.unlink()
    assert faithfulness("third", "--cache", str(cache)) == first and explains == []
    assert len(list((cache / "scores").rglob("*.json"))) == len(scores)

    # MyComplexity reads the same maps.
    complexity = ["--data-dir", str(imagenet_folder), *METHODS, *CHEAP[:8], "--quiet"]
    code, _, stderr = run("complexity", [*complexity, "--output-dir", str(tmp_path / "cx"), "--cache", str(cache)],
                          capsys)  # fmt: skip
    assert code == 0 and explains == [], stderr


def test_keys_follow_every_input(tmp_path):
    model = make_tiny_cnn(num_classes=10)
    cache = ResultCache(tmp_path, model)
    frame = np.zeros((32, 32, 3), np.uint8)
    key = cache.map_key(frame, 3, 0, "lime", {"num_samples": 24})
    assert key == ResultCache(tmp_path / "other", make_tiny_cnn(num_classes=10)).map_key(
        frame.copy(), 3, 0, "lime", {"num_samples": 24}
    )
    changed = [
        cache.map_key(frame + 1, 3, 0, "lime", {"num_samples": 24}),
        cache.map_key(frame, 4, 0, "lime", {"num_samples": 24}),
        cache.map_key(frame, 3, 1, "lime", {"num_samples": 24}),
        cache.map_key(frame, 3, 0, "gradlime", {"num_samples": 24}),
        cache.map_key(frame, 3, 0, "lime", {"num_samples": 25}),
        ResultCache(tmp_path, make_tiny_cnn(num_classes=10, seed=1)).map_key(
            frame, 3, 0, "lime", {"num_samples": 24}
        ),
        ResultCache(tmp_path, model, tf32=True).map_key(frame, 3, 0, "lime", {"num_samples": 24}),
    ]
    assert len({key, *changed}) == len(changed) + 1
    assert cache.get_map(key) is None
    attribution = np.random.default_rng(0).normal(size=(32, 32)).astype(np.float32)
    cache.put_map(key, attribution, 1.5, None)
    stored, seconds, forwards = cache.get_map(key)
    assert np.array_equal(stored, attribution) and seconds == 1.5 and forwards is None

    scored = np.maximum(attribution, 0)
    keys = {m: cache.score_key(key, scored, "img", m, {"settings": {}}) for m in ("Deletion", "IROF")}
    assert (
        keys["Deletion"] != keys["IROF"] != cache.score_key(key, attribution, "img", "IROF", {"settings": {}})
    )
    assert keys["IROF"] != cache.score_key(key, scored, "img2", "IROF", {"settings": {}})
    results = {"Deletion": MetricResult(0.1 + 0.2, curve=np.array([0.9, 0.5, 0.25])),
               "IROF": MetricResult(float("nan"), "the map is constant")}  # fmt: skip
    cache.put_scores(keys, results)
    found = cache.get_scores(keys)
    assert found["Deletion"].value == 0.1 + 0.2 and found["Deletion"].curve.tolist() == [0.9, 0.5, 0.25]
    assert np.isnan(found["IROF"].value) and found["IROF"].reason == "the map is constant"
    assert len(source_digest()) == 32 and torch.__version__ in json.dumps(cache.common)

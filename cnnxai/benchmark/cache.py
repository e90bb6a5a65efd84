"""Explanations and their scores kept by content, so that a benchmark run reuses what an earlier run computed
(``--cache FOLDER`` of MyFaithfulness.py and MyComplexity.py).

An explanation is a function of the model, the image's model-input frame, the class explained, the seed, the
explainer and its resolved options, and the code; a per-image metric's value is a function of those and of the
map as scored, the metric and its settings, and the image's key (the metrics draw from the seed and the key).
Each is stored under the SHA-256 of a canonical JSON of exactly these, so a hit is a result this code computed
for these inputs. That makes the usual follow-up runs cheap: MyComplexity after MyFaithfulness on the same photos
reads every map instead of explaining again, and a ``--target true`` run after a ``--target predicted`` one
computes only the photos whose label is not the prediction.

What the key holds besides the inputs: the model's structure and every weight (:func:`lime_ext.backends.
model_digest`), a digest of the suite's own source files (any change of the code starts a fresh cache), torch's
version, the device type, TF32 and the forward backend. The batch size is not in it: it may change a float in the
last place, as it may between a run and its resumption. Entries are written atomically, so runs and Ray workers
on one file system can share a folder. Sufficiency is scored over a group of maps and costs no model pass, so
it is always computed.
"""

from __future__ import annotations

import hashlib
import io
import json
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnxai.metrics import MetricResult
from cnnxai.outputs import atomic_write_bytes, json_fallback
from lime_ext.backends import current_backend, model_digest, resolve_backend

SOURCE_PACKAGES = ("cnnxai", "lime_ext", "cam_ext")


@cache
def source_digest() -> str:
    """A hex digest of every .py file of the suite's packages (relative path and bytes), as installed."""
    digest = hashlib.sha256()
    for package in SOURCE_PACKAGES:
        root = Path(__import__(package).__file__).parent
        for path in sorted(root.rglob("*.py")):
            digest.update(str(path.relative_to(root.parent)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:32]


def _digest(fields: dict[str, Any]) -> str:
    text = json.dumps(fields, sort_keys=True, default=json_fallback)
    return hashlib.sha256(text.encode()).hexdigest()


def _array_digest(array: np.ndarray) -> str:
    array = np.ascontiguousarray(array)
    return hashlib.sha256(f"{array.dtype}:{array.shape}".encode() + array.tobytes()).hexdigest()


class ResultCache:
    """The entries in ``folder`` (``maps/`` and ``scores/``, two-character subfolders) for one model on one
    device: ``model`` the classifier as it runs, ``tf32`` whether its CUDA forwards may use TF32."""

    def __init__(self, folder: Path, model: nn.Module, tf32: bool = False) -> None:
        self.folder, self.model, self.tf32 = Path(folder), model, bool(tf32)
        self.reused = {"maps": 0, "scores": 0}

    @cached_property
    def common(self) -> dict[str, Any]:
        """What every key holds (found at the first key, when the run's forward backend is in force)."""
        device = next(iter(self.model.parameters())).device
        return {
            "code": source_digest(),
            "torch": torch.__version__,
            "model": model_digest(self.model),
            "device": device.type,
            "backend": resolve_backend(current_backend(), device),
            "tf32": self.tf32,
        }

    def _path(self, kind: str, key: str, suffix: str) -> Path:
        return self.folder / kind / key[:2] / f"{key}{suffix}"

    def map_key(self, frame: np.ndarray, target: int, seed: int, method: str, options: dict[str, Any]) -> str:
        """The key of ``method``'s explanation (with resolved ``options``) of the frame (H,W,3) for class
        ``target`` with ``seed``."""
        return _digest({**self.common, "frame": _array_digest(frame), "target": int(target), "seed": int(seed),
                        "method": method, "options": options})  # fmt: skip

    def get_map(self, key: str) -> tuple[np.ndarray, float, int | None] | None:
        """The stored (map (H,W) float32, the seconds it took, the forwards it used or None), or None."""
        path = self._path("maps", key, ".npz")
        if not path.exists():
            return None
        with np.load(path) as stored:
            forwards = int(stored["forwards"])
            found = stored["map"], float(stored["seconds"]), None if forwards < 0 else forwards
        self.reused["maps"] += 1
        return found

    def put_map(self, key: str, attribution: np.ndarray, seconds: float, forwards: int | None) -> None:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, map=np.asarray(attribution, dtype=np.float32), seconds=seconds,
                            forwards=-1 if forwards is None else int(forwards))  # fmt: skip
        path = self._path("maps", key, ".npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buffer.getvalue())

    def score_key(self, map_key: str, scored: np.ndarray, image_key: str, metric: str, context: dict) -> str:
        """The key of ``metric``'s value on ``scored`` (the map as scored, (H,W)) of the explanation
        ``map_key`` of image ``image_key``; ``context`` the rest it depends on (settings, feature unit)."""
        return _digest({"map": map_key, "scored": _array_digest(scored), "image": image_key, "metric": metric,
                        **context})  # fmt: skip

    def get_scores(self, keys: dict[str, str]) -> dict[str, MetricResult]:
        """The stored results of the metrics in ``keys`` (metric -> key) that have one."""
        found = {}
        for metric, key in keys.items():
            path = self._path("scores", key, ".json")
            if path.exists():
                entry = json.loads(path.read_text())
                curve = None if entry["curve"] is None else np.asarray(entry["curve"], dtype=np.float64)
                found[metric] = MetricResult(entry["value"], entry["reason"], curve, entry["seconds"])
        self.reused["scores"] += len(found)
        return found

    def put_scores(self, keys: dict[str, str], results: dict[str, MetricResult]) -> None:
        for metric, result in results.items():
            curve = None if result.curve is None else [float(v) for v in np.asarray(result.curve).ravel()]
            entry = {"value": float(result.value), "reason": result.reason, "curve": curve,
                     "seconds": float(result.seconds)}  # fmt: skip
            path = self._path("scores", keys[metric], ".json")
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, json.dumps(entry).encode())

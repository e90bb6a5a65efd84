"""MNIST-1D (Greydanus 2020), generated offline from a seed with ``mnist1d``'s own ``make_dataset``.

Never ``get_dataset``: its default downloads a pickle, and nothing may be downloaded at run time
(docs/method.md#mnist-1d). ``make_dataset`` seeds numpy's and Python's *global* generators; both are saved and
restored around it, so generating the data leaves a caller's random state untouched.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

SIGNAL_LENGTH = 40  # mnist1d's final_seq_length
NUM_CLASSES = 10


@dataclass(frozen=True)
class MNIST1D:
    """One generated MNIST-1D split.

    Attributes:
        x: float32 (N_train, L) training signals, standardised over the whole data set (mean 0, std 1).
        y: int64 (N_train,) digit labels 0..9.
        x_test: float32 (N_test, L); y_test: int64 (N_test,).
        t: float64 (L,) the sample positions of the final signals (for plotting, as mnist1d uses them).
        templates: float64 (10, 12) the digit templates every signal is drawn from.
        settings: the generator's arguments, seed included (JSON-able).
    """

    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    t: np.ndarray
    templates: np.ndarray
    settings: dict

    @property
    def length(self) -> int:
        return int(self.x.shape[1])


def mnist1d_settings(seed: int = 42, num_samples: int = 5000, train_split: float = 0.8, **overrides) -> dict:
    """mnist1d's default generator arguments (``get_dataset_args``) with ``seed``, ``num_samples``,
    ``train_split`` and any other of its keys overridden; the download URL dropped (never used)."""
    from mnist1d.data import get_dataset_args

    settings = get_dataset_args(as_dict=True)
    settings.pop("url", None)
    unknown = sorted(set(overrides) - set(settings))
    if unknown:
        raise ValueError(
            f"unknown MNIST-1D setting(s) {', '.join(unknown)}; known: {', '.join(sorted(settings))}"
        )
    settings.update(overrides, seed=int(seed), num_samples=int(num_samples), train_split=float(train_split))
    if settings["num_samples"] < NUM_CLASSES:
        raise ValueError(
            f"num_samples must be at least {NUM_CLASSES} (one signal per class), got {num_samples}"
        )
    return settings


def generate_mnist1d(settings: dict) -> MNIST1D:
    """Run ``mnist1d.data.make_dataset`` with ``settings`` (from :func:`mnist1d_settings`), restoring the
    global numpy and ``random`` states it reseeds. Uncached: about 2.5 s for 5000 signals on one core."""
    from mnist1d.data import make_dataset
    from mnist1d.utils import ObjectView

    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(ObjectView(dict(settings)))
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
    return MNIST1D(
        x=np.ascontiguousarray(data["x"], dtype=np.float32),
        y=np.asarray(data["y"], dtype=np.int64),
        x_test=np.ascontiguousarray(data["x_test"], dtype=np.float32),
        y_test=np.asarray(data["y_test"], dtype=np.int64),
        t=np.asarray(data["t"], dtype=np.float64),
        templates=np.asarray(data["templates"]["x"], dtype=np.float64),
        settings=dict(settings),
    )


@lru_cache(maxsize=4)
def _cached(key: tuple) -> MNIST1D:
    return generate_mnist1d(dict(key))


def make_mnist1d(seed: int = 42, num_samples: int = 5000, train_split: float = 0.8, **overrides) -> MNIST1D:
    """The MNIST-1D data set of ``seed`` (default 42 = the published data set's seed; 4000 train, 1000 test).

    Deterministic: the same arguments give the same arrays. Generated once per process and arguments (kept in
    memory; each call returns its own copies, so a caller may modify them).
    """
    settings = mnist1d_settings(seed, num_samples, train_split, **overrides)
    key = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in settings.items()))
    data = _cached(key)
    return MNIST1D(
        x=data.x.copy(),
        y=data.y.copy(),
        x_test=data.x_test.copy(),
        y_test=data.y_test.copy(),
        t=data.t.copy(),
        templates=data.templates.copy(),
        settings={k: (list(v) if isinstance(v, tuple) else v) for k, v in data.settings.items()},
    )

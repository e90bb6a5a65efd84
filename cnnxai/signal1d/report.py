"""The run behind MNIST1D.py as a library call: train (or load) the 1-D CNN, explain one correctly classified
test signal per class with each chosen 1-D method, score every map by deletion, and save the figure and its
manifest.

``run_mnist1d(Mnist1DSettings(...))`` returns a :class:`Mnist1DReport`, which holds the data; its writer is
:func:`cnnxai.figures.signal1d.save_mnist1d` (mnist1d_explanations.png, .pdf and the .json manifest beside it).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from cnnxai.devices import resolve_device
from cnnxai.errors import UserInputError
from cnnxai.outputs import build_manifest
from cnnxai.signal1d.data import NUM_CLASSES, SIGNAL_LENGTH, make_mnist1d
from cnnxai.signal1d.deletion import deletion_scores
from cnnxai.signal1d.model import DEFAULT_EPOCHS, load_mnist1d_model, torch_threads
from cnnxai.signal1d.registry import BATCH_SIZE, REGISTRY_1D, explain_1d

TOOL = "MNIST1D.py"
# The windows a run accepts: those that tile a signal into equal windows (explain_1d takes any window, the
# last one then shorter).
WINDOWS = tuple(d for d in range(1, SIGNAL_LENGTH + 1) if SIGNAL_LENGTH % d == 0)
DELETION_METRIC = (
    "P(class) while positions are zeroed one at a time in decreasing attribution order; "
    "trapezoid AUC on [0,1], lower is better"
)


@dataclass(frozen=True)
class Mnist1DSettings:
    """Everything a run depends on. ``methods``: registered 1-D explainers, drawn as columns in this order;
    ``seed``: every random draw (the CNN's initial weights and batches, the signals chosen, LIME's and RISE's
    samples); ``data_seed``: mnist1d's generator seed (42 = the published MNIST-1D); ``explainer_options``:
    method -> the options given to it (the rest keep their declared defaults); ``batch_size``: signals per
    forward; ``threads``: torch's CPU threads during the run (this network is too small for more to help).
    Checked when made: an unknown method or option, or a window that does not divide the signal length, is a
    one-line :class:`UserInputError`."""

    methods: tuple[str, ...] = tuple(REGISTRY_1D)
    seed: int = 0
    data_seed: int = 42
    epochs: int = DEFAULT_EPOCHS
    explainer_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    batch_size: int = BATCH_SIZE
    device: str = "auto"
    threads: int = 1
    cache_dir: str | None = None
    retrain: bool = False

    def __post_init__(self) -> None:
        methods = tuple(REGISTRY_1D.lookup(name).name for name in self.methods)
        if not methods:
            raise UserInputError(f"no 1-D explainer chosen; {REGISTRY_1D.hint}")
        object.__setattr__(self, "methods", methods)
        unused = [name for name in self.explainer_options if name not in methods]
        if unused:
            raise UserInputError(
                f"options given to {', '.join(unused)}, which is not among the methods of this run"
            )
        for name, options in self.resolved_options().items():
            window = options.get("window")
            if window is not None and window not in WINDOWS:
                raise UserInputError(
                    f"{name}.window={window}: it must divide the signal length {SIGNAL_LENGTH}; use one of "
                    f"{','.join(map(str, WINDOWS))}"
                )

    def resolved_options(self) -> dict[str, dict[str, Any]]:
        """Every option of every method of the run: the given ones checked, the rest their defaults."""
        return {
            name: REGISTRY_1D.options(name, self.explainer_options.get(name, {})) for name in self.methods
        }


def choose_signals(predicted: np.ndarray, labels: np.ndarray, seed: int) -> list[int]:
    """One test index per class 0..9, drawn from ``seed`` among the correctly classified signals of the class."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 1]))
    chosen = []
    for label in range(NUM_CLASSES):
        candidates = np.flatnonzero((labels == label) & (predicted == label))
        if len(candidates) == 0:
            raise UserInputError(
                f"the model classifies no test signal of class {label} correctly; train longer (--epochs) or --retrain"
            )
        chosen.append(int(rng.choice(candidates)))
    return chosen


def explain_all(
    model: torch.nn.Module,
    signals: np.ndarray,
    targets: list[int],
    options: Mapping[str, Mapping[str, Any]],
    seed: int,
    batch_size: int = BATCH_SIZE,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Maps {method: (R,L) float32} and seconds per method for all R signals, each method of ``options`` (method
    -> its options) in order. LIME and GradLIME share one neighbourhood per signal: the one that runs first pays
    for sampling it."""
    maps = {name: np.zeros(signals.shape, dtype=np.float32) for name in options}
    seconds = dict.fromkeys(options, 0.0)
    for row, (signal, target) in enumerate(zip(signals, targets, strict=True)):
        shared: dict = {}
        for name, given in options.items():
            start = time.perf_counter()
            maps[name][row] = explain_1d(name, model, signal, target, seed, shared, batch_size, **given)
            seconds[name] += time.perf_counter() - start
    return maps, seconds


@dataclass(frozen=True)
class Mnist1DReport:
    """One run's results: the settings and device, the model's info (accuracies, cache file), the data set's
    summary, the chosen test signals (R,L) with their indices, classes and P(class), the maps per method (R,L),
    the seconds per method, the deletion AUC per method and signal (plus 'random'), every method's resolved
    options, and the run's seconds."""

    settings: Mnist1DSettings
    device: str
    model: dict[str, Any]
    data: dict[str, Any]
    indices: list[int]
    targets: list[int]
    signals: np.ndarray
    probabilities: list[float]
    maps: dict[str, np.ndarray]
    seconds: dict[str, float]
    deletion: dict[str, list[float]]
    explainer_options: dict[str, dict[str, Any]]
    run_seconds: float

    @property
    def mean_deletion(self) -> dict[str, float]:
        return {name: float(np.mean(values)) for name, values in self.deletion.items()}

    def manifest(self, output: Mapping[str, Any], files: list[str], seconds: float) -> dict[str, Any]:
        """The JSON manifest (:func:`cnnxai.outputs.build_manifest`): settings and ``output`` (folder, dpi, pdf),
        every method's options, the model, the data, the signals, per method its seconds and deletion AUC, the
        random order's AUC, the total ``seconds`` and the ``files`` written beside it."""
        mean = self.mean_deletion
        count = len(self.indices)
        run_options = {
            k: v for k, v in asdict(self.settings).items() if k != "explainer_options"
        }  # resolved below
        return build_manifest(
            TOOL,
            ("captum", "mnist1d"),
            seed=self.settings.seed,
            options={**run_options, **output},
            explainer_options=self.explainer_options,
            device=self.device,
            model=self.model,
            data=self.data,
            signals=[
                {"test_index": i, "class": t, "probability": p}
                for i, t, p in zip(self.indices, self.targets, self.probabilities, strict=True)
            ],
            methods={
                name: {
                    "description": REGISTRY_1D[name].description,
                    "signed": REGISTRY_1D[name].signed,
                    "seconds_total": self.seconds[name],
                    "seconds_per_signal": self.seconds[name] / count,
                    "deletion_auc_mean": mean[name],
                    "deletion_auc": self.deletion[name],
                }
                for name in self.maps
            },
            deletion_auc_random_order={"mean": mean["random"], "per_signal": self.deletion["random"]},
            deletion_metric=DELETION_METRIC,
            seconds=round(seconds, 3),
            files=files,
        )

    def summary(self) -> list[str]:
        """The lines MNIST1D.py prints: the model (loaded or trained, accuracies), then seconds per signal and
        mean deletion AUC per method, and the random order's."""
        info = self.model
        how = (
            "loaded from cache" if info["loaded_from_cache"] else f"trained in {info['train_seconds']:.1f} s"
        )
        mean = self.mean_deletion
        count = len(self.indices)
        return [
            f"model: {how}: {info['cache_file']}; test accuracy {info['test_accuracy']:.3f} "
            f"(train {info['train_accuracy']:.3f})",
            f"{'method':<18}{'s/signal':>9}{'deletion AUC':>14}",
            *(f"{name:<18}{self.seconds[name] / count:>9.3f}{mean[name]:>14.3f}" for name in self.maps),
            f"{'random order':<18}{'':>9}{mean['random']:>14.3f}",
        ]


def run_mnist1d(settings: Mnist1DSettings) -> Mnist1DReport:
    """Train (or load from the cache) the CNN, choose one correctly classified test signal per class, explain each
    with every method of ``settings`` and score the maps by deletion. Torch's global random state and thread
    count are restored afterwards."""
    started = time.perf_counter()
    device = resolve_device(settings.device)
    options = settings.resolved_options()
    with torch_threads(settings.threads if device.type == "cpu" else None), torch.random.fork_rng(devices=[]):
        model, info = load_mnist1d_model(
            settings.seed, settings.epochs, settings.cache_dir, settings.retrain, settings.data_seed
        )
        model = model.to(device)
        data = make_mnist1d(seed=settings.data_seed)
        with torch.no_grad():
            predicted = model(torch.from_numpy(data.x_test).to(device)).argmax(1).cpu().numpy()
            indices = choose_signals(predicted, data.y_test, settings.seed)
            signals = data.x_test[indices]
            probabilities = torch.softmax(model(torch.from_numpy(signals).to(device)), 1).cpu().numpy()
        targets = [int(data.y_test[i]) for i in indices]
        maps, seconds = explain_all(model, signals, targets, options, settings.seed, settings.batch_size)
        deletion = deletion_scores(model, signals, targets, maps, settings.seed, settings.batch_size)
    summary = {
        "generator": "mnist1d.data.make_dataset",
        "seed": settings.data_seed,
        "train": len(data.y),
        "test": len(data.y_test),
        "length": data.length,
    }
    return Mnist1DReport(
        settings=settings,
        device=str(device),
        model=info,
        data=summary,
        indices=indices,
        targets=targets,
        signals=signals,
        probabilities=[float(probabilities[row, t]) for row, t in enumerate(targets)],
        maps=maps,
        seconds=seconds,
        deletion=deletion,
        explainer_options=options,
        run_seconds=time.perf_counter() - started,
    )

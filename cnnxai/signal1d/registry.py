"""The registry of 1-D explainers: one vocabulary, ``explain_1d(name, model, signal, target, seed)``.

The pattern of the image explainers (:mod:`cnnxai.explainers.registry`) on signals: each method is a frozen
spec that declares its options (:class:`~cnnxai.options.Option`: name, default, type, meaning); ``explain_1d``
fills in the defaults and refuses an option the method does not declare, naming the close matches. Every method
returns a float32 map of the signal's length L, signed where the spec says so. The model maps (B,L) float
signals to (B,C) logits; every forward of many perturbed signals goes through the suite's one batch loop,
:func:`lime_ext.forward_batches`, with a softmax :class:`lime_ext.TorchClassifier` and no normalisation (the
signals are standardised already).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnxai.options import Option, SettingsT, settings_from
from cnnxai.registry import Registry
from lime_ext import TorchClassifier, evaluation_mode, forward_batches

# Signals per forward, a run setting rather than a method's option: 1024 x 40 floats is nothing, and one call
# beats many on a CPU.
BATCH_SIZE = 1024

Build = Callable[[int, int], torch.Tensor]


@dataclass
class Signal1DContext:
    """The arguments every 1-D explainer receives: the model, the signal (L,) float32, the class, the seed, the
    signals per forward, the method's declared options (every one present, defaults filled in) and ``shared``,
    per-signal state that methods compared on one signal share (the LIME family's neighbourhood)."""

    model: nn.Module
    signal: np.ndarray
    target: int
    seed: int = 0
    batch_size: int = BATCH_SIZE
    options: dict[str, Any] = field(default_factory=dict)
    shared: dict[Any, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.classifier = TorchClassifier(self.model, mean=None, std=None)

    @property
    def device(self) -> torch.device:
        return self.classifier.device

    @property
    def length(self) -> int:
        return int(self.signal.shape[0])

    @property
    def x(self) -> torch.Tensor:
        """The signal as a (1,L) float32 tensor on the model's device (a fresh tensor each call)."""
        return torch.from_numpy(np.ascontiguousarray(self.signal, dtype=np.float32)).to(self.device)[None]

    def option(self, name: str) -> Any:
        """A declared option's value (the default when it was not given)."""
        return self.options[name]

    def settings(self, kind: type[SettingsT], **values: Any) -> SettingsT:
        """A frozen settings object from the options named as its fields, ``values`` overriding."""
        return settings_from(kind, self.options, **values)

    def probabilities(self, count: int, build: Build) -> torch.Tensor:
        """softmax(model(inputs)) (count,C) float32 of the inputs ``build(start, stop)`` makes, a batch at a time."""
        return softmax_batches(self.classifier, count, build, self.batch_size)


def softmax_batches(classifier: TorchClassifier, count: int, build: Build, batch_size: int) -> torch.Tensor:
    """The outputs of inputs ``0..count-1`` (made by ``build(start, stop)``) through ``lime_ext.forward_batches``,
    concatenated in order: (count,C) on the classifier's device."""
    return torch.cat([outputs for _, _, outputs in forward_batches(classifier, count, build, batch_size)])


ExplainFn1D = Callable[[Signal1DContext], np.ndarray]


@dataclass(frozen=True)
class Explainer1DSpec:
    """A registered 1-D explainer: its function (context -> (L,) map), a one-line description, its declared
    options, whether it draws random numbers (so its determinism under a seed is tested), and whether its values
    can be negative (``signed``: the figure's diverging colour scale, or min-max for unsigned maps)."""

    name: str
    fn: ExplainFn1D
    description: str
    options: tuple[Option, ...] = ()
    random: bool = False
    signed: bool = True


REGISTRY_1D: Registry[Explainer1DSpec] = Registry("1-D explainer", "list them with: python MNIST1D.py --list")


def register_1d(
    name: str, description: str, options: Sequence[Option] = (), random: bool = False, signed: bool = True
) -> Callable[[ExplainFn1D], ExplainFn1D]:
    def decorate(fn: ExplainFn1D) -> ExplainFn1D:
        REGISTRY_1D.add(Explainer1DSpec(name, fn, description, tuple(options), random, signed))
        return fn

    return decorate


def explain_1d(
    name: str,
    model: nn.Module,
    signal: np.ndarray,
    target: int,
    seed: int = 0,
    shared: dict | None = None,
    batch_size: int = BATCH_SIZE,
    **options: Any,
) -> np.ndarray:
    """The attribution map of ``signal`` (L,) for class ``target`` by method ``name``: float32 (L,).

    ``options`` are the method's declared options (``python MNIST1D.py --list``); an unknown method or option is
    a one-line :class:`~cnnxai.errors.UserInputError` naming the close matches. ``shared`` (a dict kept by the
    caller for one signal) lets LIME and GradLIME fit the same neighbourhood. The model runs in eval mode, every
    module's own flag restored afterwards, and no hook is left behind. Random methods give identical maps for the
    same seed, signal and options, whatever ``batch_size``.
    """
    spec = REGISTRY_1D.lookup(name)
    resolved = REGISTRY_1D.options(name, options)
    signal = np.asarray(signal, dtype=np.float32)
    if signal.ndim != 1:
        raise ValueError(f"a 1-D explainer takes one signal of shape (L,), got shape {signal.shape}")
    context = Signal1DContext(
        model, signal, int(target), int(seed), int(batch_size), resolved, {} if shared is None else shared
    )
    with evaluation_mode(model):
        result = spec.fn(context)
    result = np.asarray(result, dtype=np.float32).reshape(-1)
    if result.shape != signal.shape:
        raise RuntimeError(f"{name} returned shape {result.shape} for a signal of shape {signal.shape}")
    return result

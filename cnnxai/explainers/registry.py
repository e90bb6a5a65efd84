"""One vocabulary for every explainer: the same arguments in, a signed (H,W) attribution map out.

Each explainer declares its options (:class:`~cnnxai.options.Option`: name, default, type, meaning); ``explain``
fills in the defaults and refuses an option the explainer does not declare, naming the close matches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnxai.errors import UserInputError
from cnnxai.options import Option, SettingsT, settings_from
from cnnxai.registry import Registry
from cnnxai.session import ImageSession
from cnnxai.system import tune_malloc
from lime_ext import TorchClassifier, auto_batch_size, full_float32, module_device
from lime_ext.backends import BackendError


@contextmanager
def as_user_errors() -> Iterator[None]:
    """What the device cannot run (lime_ext's :class:`~lime_ext.backends.BackendError`: a backend, a precision, a
    proxy) as the suite's one-line :class:`~cnnxai.errors.UserInputError` (exit status 2 on the command lines)."""
    try:
        yield
    except BackendError as error:
        raise UserInputError(str(error)) from None


# Where a caller's ``shared`` dict (the earlier form of ``session``) keeps the image's session.
SESSION_KEY = ("session",)


@dataclass
class ExplainContext:
    """The arguments every explainer receives.

    ``image`` is the prepared RGB uint8 image (H,W,3) in the model-input frame; ``target`` the class;
    ``seed`` seeds every random draw; ``options`` holds the explainer's declared options, every one present
    (defaults filled in); ``session`` is the image's :class:`~cnnxai.session.ImageSession` (of ``model`` and
    ``image``): the per-image state that explainers compared on one image share (the LIME family's single
    perturbation set, the CAMs, the prediction); ``amp`` runs the classifier's forwards in float16 autocast on
    CUDA; ``tf32`` allows TF32 on CUDA (off: every computation in full float32, whatever the tool). A model with ``output_activation = 'identity'`` (a :class:`~cnnxai.targets.TargetScore`) is
    explained on its raw output, not on its softmax. ``backend`` runs the classifier's forward-only passes
    (:class:`~lime_ext.classifier.TorchClassifier`: 'torch', 'onnxruntime', 'openvino', 'auto'; None: the
    process default, :func:`lime_ext.backends.default_backend`); gradients always run in the torch module.
    """

    model: nn.Module
    image: np.ndarray
    target: int
    seed: int = 0
    device: torch.device | None = None
    batch_size: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    session: ImageSession | None = None
    amp: bool = False
    tf32: bool = False
    backend: str | None = None

    def __post_init__(self) -> None:
        if self.device is None:
            self.device = module_device(self.model)
        if self.session is None:
            self.session = ImageSession(self.model, self.image, self.amp, self.tf32, self.backend)
        elif not self.session.serves(self.model, self.image):
            raise ValueError("the session is of another model or image than the one explained")
        # A model whose output is already the explained score (a task target) declares it: no softmax.
        output = getattr(self.model, "output_activation", "softmax")
        with as_user_errors():
            self.classifier = TorchClassifier(
                self.model, output=output, amp=self.amp, tf32=self.tf32, backend=self.backend
            )

    def precision(self) -> AbstractContextManager:
        """The numerics every computation of the explanation runs in: full float32 on CUDA unless ``tf32``."""
        return full_float32(not self.tf32)

    @property
    def input_tensor(self) -> torch.Tensor:
        """The normalised model input (1,3,H,W) on the device (a fresh tensor each call)."""
        return self.classifier.prepare_rgb(self.image)[None]

    @property
    def forward_batch(self) -> int:
        """Inputs per forward-only pass: the caller's batch size, or the device's (see ``auto_batch_size``)."""
        return self.batch_size or auto_batch_size(self.device, *self.image.shape[:2])

    @property
    def gradient_batch(self) -> int:
        """Inputs per forward+backward pass: as ``forward_batch``, at most 32 unless set (backward keeps
        every activation, which the inference budget of ``auto_batch_size`` does not count)."""
        return self.batch_size or min(auto_batch_size(self.device, *self.image.shape[:2]), 32)

    def option(self, name: str) -> Any:
        """A declared option's value (the default when it was not given)."""
        return self.options[name]

    def settings(self, kind: type[SettingsT], **values: Any) -> SettingsT:
        """A frozen settings object (``LimeSettings``, ``CamSettings``) from the options named as its fields,
        ``values`` overriding."""
        return settings_from(kind, self.options, **values)


@dataclass(frozen=True)
class Attribution:
    """``map`` float32 (H,W), signed, in the model-input frame; ``extras`` e.g. 'per_channel' (3,H,W)."""

    map: np.ndarray
    extras: dict[str, Any] = field(default_factory=dict)


ExplainFn = Callable[[ExplainContext], Attribution]


@dataclass(frozen=True)
class ExplainerSpec:
    """A registered explainer: its function, a one-line description, its declared options, whether it draws
    random numbers (so its determinism under a seed is tested), and whether it fits the image's shared LIME
    neighbourhood of ``num_samples`` samples (so the images of a batch can predict theirs together:
    :mod:`cnnxai.attribute`)."""

    name: str
    fn: ExplainFn
    description: str
    options: tuple[Option, ...] = ()
    random: bool = False
    neighbourhood: bool = False


REGISTRY: Registry[ExplainerSpec] = Registry(
    "explainer", "list them with: python -m cnnxai.explainers --list"
)


def register(
    name: str,
    description: str,
    options: Sequence[Option] = (),
    random: bool = False,
    neighbourhood: bool = False,
) -> Callable[[ExplainFn], ExplainFn]:
    def decorate(fn: ExplainFn) -> ExplainFn:
        REGISTRY.add(ExplainerSpec(name, fn, description, tuple(options), random, neighbourhood))
        return fn

    return decorate


def get_explainer(name: str) -> ExplainerSpec:
    """The spec of ``name``; an unknown name is a one-line :class:`~cnnxai.errors.UserInputError`."""
    return REGISTRY.lookup(name)


def channel_sum(per_channel: torch.Tensor) -> Attribution:
    """(1,3,H,W) attributions -> Attribution with the signed channel sum as map and the channels as extras."""
    per_channel = per_channel.detach().float()[0]
    return Attribution(
        per_channel.sum(0).cpu().numpy().astype(np.float32), {"per_channel": per_channel.cpu().numpy()}
    )


def class_index(target: Any) -> int:
    """A class given as an int, or as a classifier target object with an integer ``category``
    (pytorch-grad-cam's ``ClassifierOutputTarget``, or :class:`cnnxai.targets.ClassifierOutputTarget`)."""
    category = getattr(target, "category", target)
    if isinstance(category, (int, np.integer)) and not isinstance(category, bool):
        return int(category)
    raise UserInputError(
        f"target {target!r} is not a class index or a classifier target (ClassifierOutputTarget)"
    )


def make_context(
    name: str,
    model: nn.Module,
    image: np.ndarray,
    target: int,
    seed: int = 0,
    device: torch.device | None = None,
    batch_size: int | None = None,
    session: ImageSession | None = None,
    amp: bool = False,
    tf32: bool = False,
    backend: str | None = None,
    shared: dict | None = None,
    **options: Any,
) -> ExplainContext:
    """The context explainer ``name`` runs in: its options resolved (defaults filled, unknown ones refused).
    Without a ``session``, a new one of ``model`` and ``image`` with this call's numerics (nothing shared).
    ``shared``, the earlier form of ``session`` (also taken in its place), is a dict kept by the caller for one
    image: it holds the image's session under :data:`SESSION_KEY` (made by the first call given it).
    The library's entry points pass through here, so the process is tuned here once (see :mod:`cnnxai.system`)."""
    tune_malloc()
    resolved = REGISTRY.options(name, options)
    if isinstance(session, dict):  # the earlier form given in session's place
        session, shared = None, session
    if session is None and shared is not None:
        session = shared.get(SESSION_KEY)
    context = ExplainContext(
        model, image, class_index(target), int(seed), device, batch_size, resolved, session, amp, tf32, backend
    )
    if shared is not None:
        shared.setdefault(SESSION_KEY, context.session)
    return context


def explain(
    name: str,
    model: nn.Module,
    image: np.ndarray,
    target: int,
    seed: int = 0,
    device: torch.device | None = None,
    batch_size: int | None = None,
    session: ImageSession | None = None,
    shared: dict | None = None,
    **options: Any,
) -> Attribution:
    """Run explainer ``name`` on one prepared image (RGB uint8 (H,W,3)) for class ``target``.

    ``options`` are the explainer's declared options (``python -m cnnxai.explainers --list``); an unknown one is
    a :class:`~cnnxai.errors.UserInputError` naming the close matches. ``session`` (the caller's
    :class:`~cnnxai.session.ImageSession` of ``model`` and ``image``) lets explainers reuse one another's work on
    that image: the LIME neighbourhood, the CAMs, the prediction (``shared``: its earlier form, see
    :func:`make_context`).
    """
    spec = get_explainer(name)
    context = make_context(name, model, image, target, seed, device, batch_size, session, shared=shared, **options)
    with context.precision(), as_user_errors():
        result = spec.fn(context)
    if result.map.shape != image.shape[:2] or result.map.dtype != np.float32:
        raise RuntimeError(
            f"explainer {name} returned {result.map.dtype} {result.map.shape}, not float32 {image.shape[:2]}"
        )
    return result

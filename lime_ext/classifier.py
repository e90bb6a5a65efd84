"""The black box as the perturbation engine sees it: a batch of RGB images in [0,1] -> class probabilities."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext

import numpy as np
import torch
from torch import nn

from lime_ext import backends
from lime_ext.model_state import evaluation_mode, full_float32, module_device

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class TorchClassifier:
    """A torch model with its input normalisation and output activation.

    ``prepare`` maps images (B,3,H,W) in [0,1] to model inputs (``mean``/``std`` None: no normalisation, e.g. for
    signals that are standardised already); ``forward_prepared`` returns (B,C) float32 probabilities
    (``output='softmax'``), or logits (``'logits'``) or the raw output (``'identity'``).
    The perturbation engine normalises the image and the hidden colour once and combines them already
    normalised, which is exact because the normalisation is per-pixel affine.

    ``tf32`` allows TF32 convolutions and matrix products on CUDA in :meth:`session` (off: full float32, as every
    tool of the suite computes unless asked otherwise).

    ``channels_last`` (default on) feeds the model NHWC-strided batches: measured on this project's CPU
    machine, the same forward passes take 26-41% less time for EfficientNet-Lite0, ResNet-18, MobileNetV2,
    VGG-16 and DenseNet-121 (outputs equal to float rounding). The engine builds its batches in that layout.

    ``backend`` chooses what runs :meth:`forward_prepared`, the one forward-only call of the suite (every
    perturbation loop goes through it via :func:`~lime_ext.engine.forward_batches`): ``'torch'`` (the module
    itself), ``'onnxruntime'`` or ``'openvino'`` (the module exported once per process and input size, see
    :mod:`lime_ext.backends`), or ``'auto'`` (:func:`~lime_ext.backends.resolve_backend`: torch on CUDA, a
    runtime on a CPU when one is installed, torch for a raw-output task target); None takes :func:`~lime_ext.backends.current_backend` ('torch' unless
    a caller set another with :func:`~lime_ext.backends.default_backend`, as the command lines do). The module itself stays untouched and serves every gradient. A
    runtime's first input of each size is also run by torch; if their probabilities differ by more than 1e-4
    (or the model does not export) the classifier runs torch from then on and :attr:`backend_record` says why.
    ``precision`` (default 'fp32') may ask for reduced-precision forwards: see :meth:`with_precision`.
    """

    EXACT_TOLERANCE = 1e-4  # the largest probability difference from torch a runtime may show

    def __init__(
        self,
        model: nn.Module,
        mean: Sequence[float] | None = IMAGENET_MEAN,
        std: Sequence[float] | None = IMAGENET_STD,
        output: str = "softmax",
        amp: bool = False,
        channels_last: bool = True,
        tf32: bool = False,
        backend: str | None = None,
        precision: str = "fp32",
    ) -> None:
        if output not in ("softmax", "logits", "identity"):
            raise ValueError(f"output must be 'softmax', 'logits' or 'identity', got {output!r}")
        self.model = model
        self.device = module_device(model)
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither (no normalisation)")
        self.mean = (
            None
            if mean is None
            else torch.tensor(mean, dtype=torch.float32, device=self.device)[:, None, None]
        )
        self.std = (
            None if std is None else torch.tensor(std, dtype=torch.float32, device=self.device)[:, None, None]
        )
        self.output = output
        self.amp = bool(amp) and self.device.type == "cuda"
        self.tf32 = bool(tf32)
        backend = backends.current_backend() if backend is None else backend
        self.backend_requested = backends.check_backend(backend, self.device)
        self.backend = backends.resolve_backend(backend, self.device)
        if backend == "auto" and "identity" in (output, getattr(model, "output_activation", None)):
            # A raw-output model is a task target (a detector's or segmenter's score of one explained box or
            # region): a new module for every target, which would be exported anew each time. 'auto' keeps torch.
            self.backend = "torch"
        self.precision = backends.check_precision("fp16" if self.amp else precision, self.device)
        self.amp = self.precision == "fp16"
        # onnxruntime's CPU provider computes float32 only: reduced precision runs in torch autocast.
        self._runtime = self.backend if self.backend != "torch" and (
            self.precision == "fp32" or self.backend == "openvino") else None  # fmt: skip
        # The engine builds NHWC batches for torch; the runtimes take NCHW.
        self._channels_last_asked = channels_last
        self.channels_last = channels_last and self._runtime is None
        # The input sizes whose runtime output was compared with torch's.
        self._checked: set[tuple[int, ...]] = set()
        self._record: backends.BackendRecord | None = None

    def with_precision(self, precision: str) -> TorchClassifier:
        """A classifier sharing this one's model, normalisation, output, backend and exported session whose
        forwards run in ``precision``: 'fp32', 'bf16' or 'fp16'.

        bf16 runs in OpenVINO with ``INFERENCE_PRECISION_HINT=bf16`` when this classifier's backend is OpenVINO,
        else in torch autocast (bfloat16 on the CPU or CUDA; onnxruntime's CPU provider has no bf16); fp16 is
        torch's float16 autocast on CUDA. Reduced precision is not exact (it moves probabilities by a few hundredths,
        docs/performance.md), so its outputs are not compared with torch's fp32 and never fall back. A CPU
        without bf16 units asked for bf16, or fp16 off CUDA, is a :class:`~lime_ext.backends.BackendError`.
        """
        mean = None if self.mean is None else self.mean.flatten().tolist()
        std = None if self.std is None else self.std.flatten().tolist()
        return TorchClassifier(
            self.model, mean, std, self.output, channels_last=self._channels_last_asked,
            tf32=self.tf32, backend=self.backend, precision=precision,
        )  # fmt: skip

    @property
    def backend_record(self) -> dict:
        """What ran (or runs) the forwards, for the manifest: the backend asked for and used, the precision, the
        export and compile seconds, the cached ONNX file and whether it was found, the runtime version, and why
        torch ran instead of the runtime (None when it did not). See :class:`lime_ext.backends.BackendRecord`."""
        record = self._record or backends.BackendRecord(
            self.backend, self.backend if self._runtime is None else "not yet used", self.precision
        )
        if self._runtime is None and self.backend != "torch":
            record.backend, record.fallback = (
                "torch",
                f"{self.backend} has no {self.precision}; torch autocast",
            )
        return {**record.as_dict(), "requested": self.backend_requested}

    def _compiled(self, batch: torch.Tensor) -> backends.CompiledModel | None:
        """The runtime session for this batch's input size, checked against torch on its first input the first
        time this classifier meets that size (None: run torch)."""
        shape = tuple(batch.shape[1:])
        compiled, self._record = backends.compiled_model(self.model, self._runtime, shape, self.precision)
        if compiled is None or shape in self._checked or self.precision != "fp32":
            return compiled
        self._checked.add(shape)
        first = batch[:1].contiguous()
        difference = backends.probabilities_differ(
            self._torch_forward(first), compiled.run(first), self.output
        )
        if difference > self.EXACT_TOLERANCE:
            backends.mark_fallback(self.model, self._runtime, shape, self.precision,
                f"{self._runtime} differs from torch by {difference:.2g} > {self.EXACT_TOLERANCE:g} on the first "
                f"input of {type(self.model).__name__}")  # fmt: skip
            return None
        return compiled

    def _torch_forward(self, batch: torch.Tensor) -> torch.Tensor:
        """The module's raw output (B,K) float32, in the asked layout (also when torch runs for a runtime) and this
        classifier's precision."""
        if self._channels_last_asked and batch.ndim == 4:
            batch = batch.contiguous(memory_format=torch.channels_last)
        if self.precision == "fp32":
            autocast = nullcontext()
        else:
            dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
            autocast = torch.autocast(self.device.type, dtype=dtype)
        with autocast:
            return self.model(batch).float()

    def prepare(self, images01: torch.Tensor) -> torch.Tensor:
        """(…,3,H,W) in [0,1] -> normalised model input (unchanged without a normalisation)."""
        if self.mean is None:
            return images01
        return (images01 - self.mean) / self.std

    def prepare_rgb(self, image: np.ndarray) -> torch.Tensor:
        """An RGB uint8 image (H,W,3) -> the normalised model input (3,H,W) on the classifier's device."""
        pixels = (
            torch.from_numpy(np.ascontiguousarray(image)).to(self.device).permute(2, 0, 1).float() / 255.0
        )
        return self.prepare(pixels)

    @contextmanager
    def session(self) -> Iterator[None]:
        """Eval mode for a whole prediction loop, restoring the model's own flags afterwards; full float32 on
        CUDA unless ``tf32`` (see :func:`~lime_ext.model_state.full_float32`)."""
        with evaluation_mode(self.model), full_float32(not self.tf32):
            yield

    @torch.inference_mode()
    def forward_raw(self, batch: torch.Tensor) -> torch.Tensor:
        """Normalised model inputs (B,C,H,W) -> the model's own output (B,K) float32 (no activation), run by the
        backend: for forward-only callers that want the logits whatever ``output`` says (captum's Occlusion)."""
        compiled = self._compiled(batch) if self._runtime is not None and batch.ndim == 4 else None
        return self._torch_forward(batch) if compiled is None else compiled.run(batch)

    @torch.inference_mode()
    def forward_prepared(self, batch: torch.Tensor) -> torch.Tensor:
        """Normalised model inputs (B,C,H,W) -> (B,K) float32 outputs (see the class), run by the backend."""
        return self.activate(self.forward_raw(batch))

    def activate(self, out: torch.Tensor) -> torch.Tensor:
        """The model's own output (B,K) (:meth:`forward_raw`) -> this classifier's output: its softmax for
        ``output='softmax'``, else the output itself."""
        if self.output == "softmax":
            return torch.softmax(out, dim=-1)
        return out

    def __call__(self, images01: torch.Tensor) -> torch.Tensor:
        with self.session():
            return self.forward_prepared(self.prepare(images01.to(self.device)))


class NumpyClassifier:
    """Adapter for a lime-style ``classifier_fn``: (N,H,W,3) float images in 0..255 -> (N,C) array."""

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], device: str | torch.device = "cpu") -> None:
        self.fn = fn
        self.device = torch.device(device)

    def prepare(self, images01: torch.Tensor) -> torch.Tensor:
        return images01

    def session(self) -> AbstractContextManager:
        return nullcontext()

    def forward_prepared(self, batch: torch.Tensor) -> torch.Tensor:
        images = (batch * 255.0).round().permute(0, 2, 3, 1).cpu().numpy()
        return torch.as_tensor(np.asarray(self.fn(images)), dtype=torch.float32, device=self.device)

    def __call__(self, images01: torch.Tensor) -> torch.Tensor:
        return self.forward_prepared(images01)

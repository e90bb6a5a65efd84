"""Where forward-only model calls run: torch, or the model exported once to ONNX and run by ONNX Runtime or OpenVINO.

Perturbation explainers and metrics spend their time in forward passes that need no gradient. On a CPU those run
markedly faster in an inference runtime than in eager torch (the ratios: docs/performance.md, "Backends"). This
module is the seam's back half: :class:`~lime_ext.classifier.TorchClassifier` asks :func:`compiled_model` for a
runtime session of its model and feeds it batches; gradients (CAMs, IG, LRP) never come here.

- Export: the model (eval mode) is exported once per process with the legacy TorchScript ONNX exporter, at a fixed
  (C,H,W) with a dynamic batch, and cached on disk (``$CNNXAI_CACHE`` or ``~/.cache/cnnxai``, folder ``onnx``)
  under a key of the weights' hash, the module structure, the input size, the opset, the torch version and the
  runtime's version. A second process finds the file and skips the export.
- Exactness: fp32 only unless asked: ONNX Runtime's CPU provider computes in float32, OpenVINO is pinned to
  ``INFERENCE_PRECISION_HINT=f32`` (its default on a CPU with bf16 units is bf16, which moves probabilities by
  ~0.03). The classifier also compares each session with torch on its first input and falls back to torch
  above 1e-4 (see :class:`~lime_ext.classifier.TorchClassifier`).
- A model that does not export (or a runtime that refuses it) is remembered for the process as a fallback
  reason; the caller prints it once and runs torch.
"""

from __future__ import annotations

import contextvars
import hashlib
import importlib
import importlib.util
import os
import sys
import tempfile
import threading
import time
import warnings
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lime_ext.model_state import evaluation_mode, module_device

BACKENDS = ("auto", "torch", "onnxruntime", "openvino")
PRECISIONS = ("fp32", "bf16", "fp16")
OPSET = 17
# The pip package that provides each runtime, for the refusal's hint.
PACKAGES = {"onnxruntime": "onnxruntime", "openvino": "openvino"}
# 'auto' on a CPU: the first installed of these. Measured on this project's shared CPU machine (bench/bench_backends.py,
# docs/performance.md): both exact to ~2e-6 in probability; ONNX Runtime as fast as OpenVINO or faster in most
# rows, steadier under load, and ready in ~0.1 s against OpenVINO's ~0.5 s plus ~0.2 s per new batch size.
AUTO_CPU_ORDER = ("onnxruntime", "openvino")


class BackendError(ValueError):
    """A backend or precision that cannot run here: unknown, not installed, or not for this device. One line that
    names the fix; the suite's entry points turn it into :class:`cnnxai.errors.UserInputError` (exit status 2)."""


# The backend of a classifier made without one (``TorchClassifier(backend=None)``): 'torch' unless a caller set
# another for a block (:func:`default_backend`), as the command lines do with --backend around their whole run, so
# that every forward-only path (explainers, metrics, NormLIME, stability) takes it without an argument each.
_DEFAULT_BACKEND: contextvars.ContextVar[str] = contextvars.ContextVar("cnnxai_backend", default="torch")


def current_backend() -> str:
    """The backend a classifier made without one uses (see :func:`default_backend`)."""
    return _DEFAULT_BACKEND.get()


@contextmanager
def default_backend(backend: str | None) -> Iterator[None]:
    """Classifiers made in this block (this thread or task) without a backend use ``backend`` (checked first;
    None: leave the default as it is)."""
    if backend is None:
        yield
        return
    if backend not in BACKENDS:
        check_backend(backend)
    token = _DEFAULT_BACKEND.set(backend)
    try:
        yield
    finally:
        _DEFAULT_BACKEND.reset(token)


@dataclass
class BackendRecord:
    """What ran the forwards, for the manifest: the backend asked for and the one used, the precision, the
    export and compile seconds (0 when cached / None when nothing was exported), the ONNX file, whether it was
    found in the cache, the runtime's version and, if torch ran instead of the runtime, why."""

    requested: str
    backend: str
    precision: str = "fp32"
    export_seconds: float | None = None
    compile_seconds: float | None = None
    cache_path: str | None = None
    cache_hit: bool | None = None
    runtime_version: str | None = None
    fallback: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def installed(backend: str) -> bool:
    """Whether a runtime's package and ``onnx`` (which torch's exporter needs) can be imported ('torch' always)."""
    if backend == "torch":
        return True
    return all(importlib.util.find_spec(name) is not None for name in (PACKAGES[backend], "onnx"))


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX); without it bf16 is emulated, slow."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def check_backend(backend: str, device: torch.device | str = "cpu") -> str:
    """``backend`` checked: known, installed, and able to run on ``device``; a :class:`BackendError` (one line
    naming the fix) otherwise. Returns it unchanged ('auto' stays 'auto': see :func:`resolve_backend`)."""
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend in ("auto", "torch"):
        return backend
    if not installed(backend):
        raise BackendError(
            f"backend {backend} is not installed; pip install onnx {PACKAGES[backend]} (or use --backend torch)"
        )
    if torch.device(device).type != "cpu":
        raise BackendError(
            f"backend {backend} runs on the CPU here, not on {torch.device(device)}; use --backend torch or auto"
        )
    return backend


def check_precision(precision: str, device: torch.device | str = "cpu") -> str:
    """``precision`` checked against the device: bf16 on a CPU needs native bf16 units, fp16 needs CUDA."""
    if precision not in PRECISIONS:
        raise BackendError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    kind = torch.device(device).type
    if precision == "bf16" and kind == "cpu" and not cpu_has_bf16():
        raise BackendError("precision bf16: this CPU has no bf16 units (avx512_bf16/amx); use fp32")
    if precision == "fp16" and kind != "cuda":
        raise BackendError(
            f"precision fp16 needs CUDA, not {kind}; use bf16 on a CPU with bf16 units, or fp32"
        )
    return precision


def resolve_backend(backend: str, device: torch.device | str = "cpu") -> str:
    """The backend that runs: ``backend`` itself, or for 'auto' torch on CUDA (and any non-CPU device) and the
    first installed of :data:`AUTO_CPU_ORDER` on a CPU (torch when none is). (The classifier also keeps 'auto'
    in torch for a raw-output task target.)"""
    check_backend(backend, device)
    if backend != "auto":
        return backend
    if torch.device(device).type != "cpu":
        return "torch"
    return next((name for name in AUTO_CPU_ORDER if installed(name)), "torch")


def runtime_version(backend: str) -> str:
    module = importlib.import_module(PACKAGES[backend])
    return str(getattr(module, "__version__", getattr(module, "get_version", lambda: "?")()))


def cache_dir() -> Path:
    """Where exported models are kept: ``$CNNXAI_CACHE/onnx``, by default ``~/.cache/cnnxai/onnx``."""
    root = os.environ.get("CNNXAI_CACHE") or Path.home() / ".cache" / "cnnxai"
    return Path(root) / "onnx"


def model_digest(model: nn.Module, *header: Any) -> str:
    """A hex key of a module: its structure (its repr), every parameter and buffer (names, dtypes, shapes, bytes),
    and ``header`` (what else the caller's result depends on)."""
    digest = hashlib.sha256()
    digest.update(repr((repr(model), *header)).encode())
    for name, tensor in model.state_dict().items():
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{data.dtype}:{tuple(data.shape)}".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())  # device-ok: copied to the host above
    return digest.hexdigest()[:32]


def model_key(model: nn.Module, shape: tuple[int, ...], backend: str) -> str:
    """A hex key of everything the exported file depends on: the module (:func:`model_digest`), the input size
    (C,H,W), the opset, torch's and the runtime's versions."""
    return model_digest(model, tuple(shape), OPSET, torch.__version__, backend, runtime_version(backend))


@contextmanager
def quiet_stdout() -> Iterator[None]:
    """File descriptor 1 to /dev/null for the block: the exporter prints the whole traced graph on stdout (from
    C++) when an operator has no ONNX form, which is not for the user's terminal (the fallback line says why)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def export_onnx(model: nn.Module, shape: tuple[int, ...], path: Path) -> None:
    """Export ``model`` for inputs (B,*shape) float32, batch dynamic, to ``path`` (written whole or not at all).

    The legacy TorchScript exporter (``dynamo=False``): one self-contained file in ~1 s for EfficientNet-Lite0,
    against ~6 s and a weights side-file for the dynamo exporter."""
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros((1, *shape), dtype=torch.float32, device=module_device(model))
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".onnx.part", delete=False) as handle:
        partial = Path(handle.name)
    try:
        # Inference tensors cannot be traced: leave the caller's inference mode for the export.
        with evaluation_mode(model), torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings(), \
                quiet_stdout():  # fmt: skip
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model, (example,), str(partial), dynamo=False, opset_version=OPSET,
                input_names=["input"], output_names=["output"],
                dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
            )  # fmt: skip
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


class CompiledModel:
    """A runtime session of an exported model: ``run`` maps a float32 (B,*shape) CPU tensor to (B,K) float32."""

    backend = ""

    def __init__(self, path: Path, shape: tuple[int, ...], precision: str) -> None:
        self.path, self.shape, self.precision = path, tuple(shape), precision

    def run(self, batch: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class OnnxRuntimeModel(CompiledModel):
    """ONNX Runtime's CPU provider, as many intra-op threads as torch uses, full float32."""

    backend = "onnxruntime"

    def __init__(self, path: Path, shape: tuple[int, ...], precision: str) -> None:
        if precision != "fp32":
            raise ValueError("onnxruntime runs fp32 here")
        import onnxruntime

        super().__init__(path, shape, precision)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def run(self, batch: torch.Tensor) -> torch.Tensor:
        array = batch.detach().contiguous().numpy()  # device-ok: the runtimes run on the CPU only (check_backend)
        return torch.from_numpy(self.session.run(None, {self.input: array})[0])  # device-ok: CPU, as the batch


class OpenVinoModel(CompiledModel):
    """OpenVINO on the CPU with an explicit inference precision (f32 unless asked: its CPU default may be bf16),
    latency hint, as many threads as torch uses. A static-shape model is compiled for each batch size on its first
    use (~0.2 s; measured ~1.5x faster than one dynamic-batch model on EfficientNet-Lite0)."""

    backend = "openvino"
    HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}

    def __init__(self, path: Path, shape: tuple[int, ...], precision: str) -> None:
        import openvino

        super().__init__(path, shape, precision)
        self.core = openvino.Core()
        self.config = {
            "INFERENCE_NUM_THREADS": torch.get_num_threads(),
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": self.HINTS[precision],
        }
        self.requests: dict[int, Any] = {}
        self.lock = threading.Lock()
        self._request(1)  # compile now, so a model OpenVINO refuses fails here, not mid-run

    def _request(self, size: int):
        if size not in self.requests:
            model = self.core.read_model(str(self.path))
            model.reshape([size, *self.shape])
            self.requests[size] = self.core.compile_model(model, "CPU", self.config).create_infer_request()
        return self.requests[size]

    def run(self, batch: torch.Tensor) -> torch.Tensor:
        array = batch.detach().contiguous().numpy()  # device-ok: the runtimes run on the CPU only (check_backend)
        with self.lock:  # an infer request is not re-entrant
            request = self._request(len(array))
            request.infer({0: array})
            return torch.from_numpy(request.get_output_tensor(0).data.copy())  # device-ok: CPU, as the batch


RUNTIMES: dict[str, type[CompiledModel]] = {"onnxruntime": OnnxRuntimeModel, "openvino": OpenVinoModel}


@dataclass
class _Built:
    compiled: CompiledModel | None
    record: BackendRecord


# model -> {(backend, shape, precision): _Built}: one export and compile per process; dropped with the model.
_SESSIONS: weakref.WeakKeyDictionary[nn.Module, dict[tuple, _Built]] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()
_RECORDS: list[BackendRecord] = []  # every session built in this process, for the manifest


def process_record() -> dict[str, Any]:
    """For manifests: the process's default backend and the record of every runtime session built in it (export
    and compile seconds, cached file, fallback reason), in the order they were built."""
    with _LOCK:
        return {"default": current_backend(), "sessions": [record.as_dict() for record in _RECORDS]}


def compiled_model(
    model: nn.Module, backend: str, shape: tuple[int, ...], precision: str = "fp32"
) -> tuple[CompiledModel | None, BackendRecord]:
    """The runtime session of ``model`` for inputs (B,*shape) and its record, made once per process.

    ``backend`` is 'onnxruntime' or 'openvino'. When the model does not export or the runtime refuses it, the
    session is None and the record's ``fallback`` says why; one line says so on stderr (once per model and
    size)."""
    key = (backend, tuple(shape), precision)
    with _LOCK:
        built = _SESSIONS.setdefault(model, {}).get(key)
        if built is None:
            built = _build(model, backend, tuple(shape), precision)
            _SESSIONS[model][key] = built
            _RECORDS.append(built.record)
            if built.compiled is None:
                print(f"note: {built.record.fallback}; running torch", file=sys.stderr)
    return built.compiled, built.record


def mark_fallback(
    model: nn.Module, backend: str, shape: tuple[int, ...], precision: str, reason: str
) -> None:
    """Drop a session that disagreed with torch, for the rest of the process (the record keeps ``reason``)."""
    with _LOCK:
        built = _SESSIONS.get(model, {}).get((backend, tuple(shape), precision))
        if built is not None and built.compiled is not None:
            built.compiled = None
            built.record.fallback = reason
            built.record.backend = "torch"
            print(f"note: {reason}; running torch", file=sys.stderr)


def _build(model: nn.Module, backend: str, shape: tuple[int, ...], precision: str) -> _Built:
    record = BackendRecord(requested=backend, backend=backend, precision=precision)
    try:
        record.runtime_version = runtime_version(backend)
        path = cache_dir() / f"{type(model).__name__}-{model_key(model, shape, backend)}.onnx"
        record.cache_path, record.cache_hit = str(path), path.exists()
        start = time.perf_counter()
        if not record.cache_hit:
            export_onnx(model, shape, path)
        record.export_seconds = round(time.perf_counter() - start, 3)
        start = time.perf_counter()
        compiled = RUNTIMES[backend](path, shape, precision)
        record.compile_seconds = round(time.perf_counter() - start, 3)
        return _Built(compiled, record)
    except Exception as error:  # noqa: BLE001 - any failure to export or compile means: run torch
        message = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        record.backend = "torch"
        record.fallback = f"{backend} could not run {type(model).__name__}: {type(error).__name__}: {message}"
        return _Built(None, record)


def probabilities_differ(reference: torch.Tensor, other: torch.Tensor, output: str) -> float:
    """The largest difference between two outputs (B,K) as the classifier reports them: in softmax probability
    for 'softmax' and 'logits' outputs, in raw value relative to max(1, |value|) for 'identity'."""
    reference, other = reference.float().cpu(), other.float().cpu()
    if output == "identity":
        return float(((reference - other).abs() / reference.abs().clamp(min=1.0)).max())
    return float((torch.softmax(reference, -1) - torch.softmax(other, -1)).abs().max())

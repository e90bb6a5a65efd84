"""Choosing the torch device from ``--device``."""

from __future__ import annotations

import torch

from cnnxai.errors import UserInputError


def resolve_device(name: str) -> torch.device:
    """'auto' (CUDA when available, else CPU), 'cpu', 'cuda' or 'cuda:N'; CUDA without a GPU is an error."""
    name = name.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UserInputError(
                f"--device {name}: CUDA is not available on this machine; use --device cpu (or auto)"
            )
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserInputError(
                f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s); use cuda:0.."
            )
        return device
    raise UserInputError(f"--device {name}: unknown device; use auto, cpu, cuda or cuda:N")


# Words of the CUDA errors after which the process's CUDA context is broken: every later call fails with the same
# error, so a run of many units must stop (its rows so far are kept, and it resumes) instead of recording NaN for
# every remaining unit. torch raises them as ``torch.AcceleratorError`` (a RuntimeError) since 2.8, as plain
# RuntimeErrors before.
STICKY_CUDA_ERRORS = (
    "CUDA error",
    "device-side assert",
    "illegal memory access",
    "CUBLAS_STATUS",
    "cuDNN error",
)


def recover_from(error: BaseException) -> bool:
    """Whether a run of many units may go on after ``error`` in one unit (which then gets a NaN row with the
    reason): yes for a bad input or an explainer that fails on this image, and for an out-of-memory error, after
    freeing the memory the caching allocator holds (the next unit starts from an emptied cache); no for a CUDA
    error that breaks the process's CUDA context (a device-side assert, an illegal address)."""
    if isinstance(error, torch.cuda.OutOfMemoryError):
        torch.cuda.empty_cache()
        return True
    accelerator_error = getattr(torch, "AcceleratorError", ())
    if isinstance(error, accelerator_error):
        return False
    return not any(words in str(error) for words in STICKY_CUDA_ERRORS)

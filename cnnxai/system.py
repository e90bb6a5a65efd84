"""Process-wide system settings that make CPU forward passes cheaper, and a record of them for manifests.

glibc's malloc serves large blocks (above a dynamic threshold that starts at 128 KiB) with ``mmap`` and
hands them back with ``munmap``, and returns the free top of its heaps to the kernel when it exceeds the trim
threshold. A CNN forward pass allocates and frees activation buffers of megabytes every layer, so the pages
are unmapped and faulted in (zeroed by the kernel) again and again: system time, not computation.
:func:`tune_malloc` raises both thresholds once per process with ``mallopt``, so that freed activations
stay in the heap and are reused. It does not change any result. It is a no-op elsewhere than Linux with
glibc, and when the environment variable ``CNNXAI_MALLOC_TUNING`` is ``0`` or ``off``.

The OpenMP settings that matter for torch's CPU threads (OMP_WAIT_POLICY, OMP_NUM_THREADS, ...) are not
changed here, only recorded by :func:`system_record`: they change timings markedly on a shared machine.

This module imports nothing of the rest of the package, nor torch, so entry points can call it first.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from dataclasses import asdict, dataclass

ENV_VAR = "CNNXAI_MALLOC_TUNING"
DISABLED_VALUES = ("0", "off")
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "MKL_NUM_THREADS")

# glibc's malloc.h parameter numbers for mallopt.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

# Blocks up to this size come from the heap (and are reused) instead of mmap. It must exceed the largest
# activation of a forward pass: at 224x224 in CPU batches of 8, EfficientNet-Lite0's expanded 112x112 layers
# take 8 x 96 x 112 x 112 floats = 37 MiB and VGG-16's first layers 98 MiB; 256 MiB also covers batches of 32.
# mallopt(3) documents 32 MiB (HEAP_MAX_SIZE / 2 on 64-bit) as the upper limit, and older glibc releases
# refuse larger values (mallopt returns 0 and changes nothing), but recent ones (2.36 included) accept and
# honour them: that limit now only bounds glibc's own dynamic threshold. Where larger values are refused, the
# documented maximum is used instead.
MMAP_THRESHOLD = 256 * 1024 * 1024
MMAP_THRESHOLD_DOCUMENTED_MAX = 4 * 1024 * 1024 * ctypes.sizeof(ctypes.c_long)
# Free memory at the top of a heap is returned to the kernel only beyond this size. It must exceed what one
# forward pass frees at once (all its activation buffers), or the heap shrinks and regrows every batch; the
# price is that the process keeps up to this much freed memory mapped (its RSS stays near its peak).
TRIM_THRESHOLD = 1024 * 1024 * 1024


@dataclass(frozen=True)
class MallocTuning:
    """The outcome of :func:`tune_malloc`: ``applied``, the thresholds set (bytes, None when not applied),
    and ``reason`` when not applied (another platform or C library, turned off, or a mallopt failure)."""

    applied: bool
    mmap_threshold: int | None = None
    trim_threshold: int | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


_lock = threading.Lock()
_outcome: MallocTuning | None = None


def _libc() -> ctypes.CDLL | None:
    """The process's C library when it is glibc (it has ``gnu_get_libc_version``), else None."""
    libc = ctypes.CDLL(None)
    return libc if hasattr(libc, "gnu_get_libc_version") else None


def glibc_version() -> str | None:
    """glibc's version string ('2.36'), or None on other platforms and C libraries (musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = _libc()
        if libc is None:
            return None
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        return libc.gnu_get_libc_version().decode()
    except Exception:
        return None


def _disabled(variable: str) -> bool:
    """True when the environment variable is ``0`` or ``off`` (case and surrounding spaces ignored)."""
    return os.environ.get(variable, "").strip().lower() in DISABLED_VALUES


def _apply() -> MallocTuning:
    if _disabled(ENV_VAR):
        return MallocTuning(False, reason=f"turned off by {ENV_VAR}={os.environ[ENV_VAR]}")
    if not sys.platform.startswith("linux"):
        return MallocTuning(False, reason=f"not Linux ({sys.platform})")
    libc = _libc()
    if libc is None:
        return MallocTuning(False, reason="the C library is not glibc")
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    # Setting either parameter also stops glibc from adjusting both dynamically.
    if libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) != 1:
        return MallocTuning(False, reason=f"mallopt(M_TRIM_THRESHOLD, {TRIM_THRESHOLD}) failed")
    for mmap_threshold in (MMAP_THRESHOLD, MMAP_THRESHOLD_DOCUMENTED_MAX):
        if libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1:
            return MallocTuning(True, mmap_threshold, TRIM_THRESHOLD)
    return MallocTuning(False, reason=f"mallopt(M_MMAP_THRESHOLD, {MMAP_THRESHOLD}) failed")


def tune_malloc() -> MallocTuning:
    """Raise glibc malloc's mmap and trim thresholds for this process, once; later calls return the first
    outcome. Never raises: any failure is reported in the returned record."""
    global _outcome
    with _lock:
        if _outcome is None:
            try:
                _outcome = _apply()
            except Exception as error:  # a broken or unusual C library must not stop a tool
                _outcome = MallocTuning(False, reason=f"{type(error).__name__}: {error}")
        return _outcome


def system_record() -> dict[str, object]:
    """A JSON-able record for manifests: the malloc tuning (``applied``, thresholds, ``reason``; not applied
    when :func:`tune_malloc` was never called), the glibc version, the thread-related environment variables
    (None when unset), torch's intra- and inter-op thread counts (None when torch is not imported: this
    function does not import it), and the batch sizes chosen for the devices (``lime_ext.chosen_batch_sizes``;
    empty when no engine ran)."""
    record: dict[str, object] = {
        "malloc_tuning": (_outcome or MallocTuning(False, reason="tune_malloc was not called")).as_dict(),
        "glibc": glibc_version(),
        "env": {name: os.environ.get(name) for name in THREAD_ENV_VARS},
        "torch_threads": None,
        "torch_interop_threads": None,
    }
    engine = sys.modules.get("lime_ext.engine")  # the batch sizes chosen for the devices, when it was used
    record["auto_batch_sizes"] = engine.chosen_batch_sizes() if engine is not None else {}
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            record["torch_threads"] = torch.get_num_threads()
            record["torch_interop_threads"] = torch.get_num_interop_threads()
        except Exception:
            pass
    return record

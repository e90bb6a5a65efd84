"""The batched perturbation engine: binary masks over superpixels -> perturbed images -> predictions.

Everything happens on the classifier's device, a batch at a time: ``keep = Z[:, segments]`` (one
``index_select`` of a float mask), then ``hidden + keep * (image - hidden)`` (one ``addcmul``) on tensors
normalised once. No per-sample Python loop, no PIL. (``torch.where`` with a broadcast boolean mask was
4x slower on CPU for the same result; see bench/bench_lime.py.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

HideColor = float | int | Sequence[float] | str | None


CPU_BATCH_SIZE = 8
# The inference budget per input element of an ImageNet CNN (activations and workspace), and the share of the
# device's memory the batch may take: the rest is for the model, the caching allocator's slack and other work.
CUDA_BYTES_PER_ELEMENT = 200
CUDA_MEMORY_SHARE = 0.5
_gpu_share = 1.0  # the share of each GPU this process has (Ray workers that share a GPU: gpus_per_worker)
_chosen: dict[tuple[str, int, int], int] = {}  # (device, height, width) -> the batch size chosen for them


def set_gpu_share(share: float) -> None:
    """Tell the batch-size choice that this process has ``share`` (0 < share <= 1) of each GPU: e.g. one of two
    Ray workers on one GPU has 0.5. Call it before the first choice (it is made once per process)."""
    global _gpu_share
    if not 0 < share <= 1:
        raise ValueError(f"a GPU share must be in (0, 1], got {share}")
    _gpu_share = float(share)


def auto_batch_size(device: torch.device | str, height: int = 224, width: int = 224) -> int:
    """A batch size that keeps the device busy without running out of memory, for inputs (3,height,width);
    chosen once per process for each device and input size, and recorded (:func:`chosen_batch_sizes`).

    CPU: 8. Measured on this project's 2-core machine (224x224, channels-last, per image): EfficientNet-Lite0
    14.8 ms at 8 against 35.4 ms at 32, MobileNetV2 14.3 against 21.2, DenseNet-121 61 against 83, ResNet-18
    30 against 32, VGG-16 even; activations of small batches stay in the caches. CUDA: half of this process's
    share of the device's *total* memory (not of the free memory, which shrinks once the caching allocator holds
    some: the batch would shrink image after image, cuDNN would tune every new shape, and results would depend in
    their last bits on the order of the images) at ``CUDA_BYTES_PER_ELEMENT`` per input element, rounded down to
    a power of two between 16 and 512.
    """
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    key = (str(device), int(height), int(width))
    if key not in _chosen:
        if device.type != "cuda":
            _chosen[key] = CPU_BATCH_SIZE
        else:
            total = torch.cuda.get_device_properties(device).total_memory
            per_input = 3 * height * width * 4 * CUDA_BYTES_PER_ELEMENT
            fitting = max(1, int(total * _gpu_share * CUDA_MEMORY_SHARE) // per_input)
            _chosen[key] = int(max(16, min(512, 2 ** (fitting.bit_length() - 1))))
    return _chosen[key]


def chosen_batch_sizes() -> dict[str, int]:
    """The batch sizes :func:`auto_batch_size` chose in this process: ``{'cuda:0 224x224': 512, ...}`` (for
    manifests: the batch changes results in their last bits)."""
    return {f"{device} {height}x{width}": size for (device, height, width), size in _chosen.items()}


def check_hide_color(hide_color: HideColor) -> None:
    """Refuse a hide colour that is not 'mean' (or None), a number or an RGB triple in 0..255."""
    if hide_color is None or (isinstance(hide_color, str) and hide_color == "mean"):
        return
    if isinstance(hide_color, str):
        raise ValueError(
            f"hide colour must be 'mean', a number or an RGB triple in 0..255, got {hide_color!r}"
        )
    colour = np.asarray(hide_color, dtype=np.float64)
    if colour.ndim > 1 or colour.size not in (1, 3):
        raise ValueError(f"hide colour must be a number or an RGB triple, got {hide_color!r}")
    if np.any(colour < 0) or np.any(colour > 255):
        raise ValueError(f"hide colour {hide_color!r} is outside 0..255")


def hidden_image(image: np.ndarray, segments: np.ndarray, hide_color: HideColor) -> np.ndarray:
    """The image shown where a superpixel is switched off, uint8 (H,W,3).

    ``'mean'`` (or None, lime's meaning) paints each superpixel with its mean colour, truncated to uint8 as
    lime does; a number or an RGB triple in 0..255 paints a constant colour (0 = black, the default of the
    public GradLIME and CamLIME scripts).
    """
    check_hide_color(hide_color)
    if hide_color is None or isinstance(hide_color, str):
        num = int(segments.max()) + 1
        flat = segments.ravel()
        counts = np.bincount(flat, minlength=num).astype(np.float64)
        means = (
            np.stack(
                [
                    np.bincount(flat, weights=image[..., c].ravel().astype(np.float64), minlength=num)
                    for c in range(3)
                ],
                axis=1,
            )
            / np.maximum(counts, 1)[:, None]
        )
        return means.astype(np.uint8)[segments]
    colour = np.broadcast_to(np.asarray(hide_color, dtype=np.float64), (3,))
    return np.broadcast_to(colour.astype(np.uint8), image.shape).copy()


def forward_batches(
    classifier,
    count: int,
    build: Callable[[int, int], torch.Tensor],
    batch_size: int,
    progress: bool = False,
    desc: str = "forward passes",
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """The one batch-and-forward loop of the suite: inputs ``start..stop-1`` made by ``build(start, stop)`` as
    (b,...) model inputs, run through ``classifier.forward_prepared`` a batch at a time inside the classifier's
    session (eval mode, flags restored). Yields ``(start, stop, outputs (b,C))``; outputs may live in buffers the
    next ``build`` reuses, so a caller that keeps them copies them.
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    starts = range(0, count, batch_size)
    with classifier.session():
        for start in tqdm(starts, desc=desc, unit="batch", disable=not progress, leave=False):
            stop = min(count, start + batch_size)
            yield start, stop, classifier.forward_prepared(build(start, stop))


class PerturbationEngine:
    """Predictions for perturbed copies of one image.

    Args:
        image: RGB uint8 (H,W,3), the model-input frame.
        segments: int (H,W) superpixel ids 0..M-1.
        classifier: a :class:`~lime_ext.classifier.TorchClassifier` (or anything with ``prepare``,
            ``forward_prepared``, ``session`` and ``device``).
        hide_color: see :func:`hidden_image`.
        batch_size: images per forward pass; ``None`` picks :func:`auto_batch_size` for the device.
        hidden: the image shown where superpixels are off, RGB uint8 (H,W,3), instead of one made from
            ``hide_color`` (e.g. the image with one colour channel blacked out, to attribute per channel).
    """

    def __init__(
        self,
        image: np.ndarray,
        segments: np.ndarray,
        classifier,
        hide_color: HideColor = 0,
        batch_size: int | None = None,
        hidden: np.ndarray | None = None,
    ) -> None:
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image must be RGB uint8 (H,W,3), got {image.dtype} {image.shape}")
        if segments.shape != image.shape[:2]:
            raise ValueError(f"segments {segments.shape} do not match the image {image.shape[:2]}")
        if batch_size is not None and int(batch_size) < 1:
            raise ValueError(f"batch size must be at least 1, got {batch_size}")
        self.classifier = classifier
        self.device = torch.device(classifier.device)
        self.num_segments = int(segments.max()) + 1
        self.batch_size = int(batch_size) if batch_size else auto_batch_size(self.device, *image.shape[:2])
        if hidden is None:
            hidden = hidden_image(image, segments, hide_color)
        elif hidden.shape != image.shape or hidden.dtype != np.uint8:
            raise ValueError(f"hidden must be RGB uint8 {image.shape}, got {hidden.dtype} {hidden.shape}")
        # The batch layout the classifier prefers: NHWC strides run most CNNs markedly faster (see TorchClassifier).
        self._layout = (
            torch.channels_last if getattr(classifier, "channels_last", False) else torch.contiguous_format
        )
        self._hidden = self._prepared(hidden)
        self._difference = (self._prepared(image) - self._hidden).contiguous(memory_format=self._layout)
        self._segments = (
            torch.from_numpy(np.ascontiguousarray(segments, dtype=np.int64)).to(self.device).reshape(-1)
        )

    def _prepared(self, rgb: np.ndarray) -> torch.Tensor:
        """(1,3,H,W) normalised, in the classifier's preferred memory layout."""
        tensor = (
            torch.from_numpy(np.ascontiguousarray(rgb)).to(self.device).permute(2, 0, 1).float().div_(255.0)
        )
        return self.classifier.prepare(tensor)[None].contiguous(memory_format=self._layout)

    def perturb(
        self, masks: torch.Tensor, out: torch.Tensor | None = None, keep: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Model inputs for masks (B,M) in {0,1} on the device: (B,3,H,W), superpixel j kept where mask[:, j] = 1.

        ``out`` (B,3,H,W) and ``keep`` (B,H*W) are optional float buffers to write into (reused across
        batches by :meth:`predict`, which saves the page faults of a fresh 19 MB tensor per batch of 32).
        """
        height, width = self._hidden.shape[-2:]
        keep = torch.index_select(masks.to(self._hidden.dtype), 1, self._segments, out=keep)
        return torch.addcmul(self._hidden, keep.view(-1, 1, height, width), self._difference, out=out)

    def timing_batch(self) -> torch.Tensor:
        """A full batch (batch_size,3,H,W) of model inputs as the engine builds them (the hidden image, in the
        classifier's layout), for timing the model's forwards (``proxy='auto'``, :mod:`lime_ext.multifidelity`).
        Made on demand: on a GPU a batch of 512 is 300 MB."""
        return self._hidden.expand(self.batch_size, -1, -1, -1).contiguous(memory_format=self._layout)

    def predict(self, masks: np.ndarray, progress: bool = False) -> np.ndarray:
        """Classifier outputs for every row of ``masks`` (N,M): float32 (N,C), in row order."""
        return predict_engines([self], [masks], progress)[0]


def predict_engines(
    engines: Sequence[PerturbationEngine], masks: Sequence[np.ndarray], progress: bool = False
) -> list[np.ndarray]:
    """Classifier outputs of ``masks[i]`` (N_i,M_i) on ``engines[i]``: float32 (N_i,C) each, in row order, from one
    stream of forwards of the first engine's batch size.

    The rows of every engine, one engine after the other, are cut into batches, so a batch may hold perturbations
    of two images: B images of N rows cost ceil(B*N / batch) forwards instead of B*ceil(N / batch), which matters
    where a batch is large against N (a GPU). The engines must share one classifier's model, device and image
    size; each gets the outputs it would get alone, up to the float rounding of a different batch.
    """
    first = engines[0]
    for engine, rows in zip(engines, masks, strict=True):
        if engine is not first:
            model = getattr(engine.classifier, "model", engine.classifier)
            if (
                model is not getattr(first.classifier, "model", first.classifier)
                or engine.device != first.device
            ):
                raise ValueError("engines predicted together must share one model on one device")
            if engine._hidden.shape != first._hidden.shape:
                raise ValueError(
                    f"images of different sizes: {engine._hidden.shape} and {first._hidden.shape}"
                )
        if rows.ndim != 2 or rows.shape[1] != engine.num_segments:
            raise ValueError(f"masks must be (N,{engine.num_segments}), got {rows.shape}")
    z = [torch.from_numpy(np.ascontiguousarray(rows, dtype=np.uint8)).to(first.device) for rows in masks]
    offsets = np.cumsum([0] + [len(rows) for rows in z])
    size = min(first.batch_size, int(offsets[-1]))
    out = torch.empty(
        (size, *first._hidden.shape[1:]),
        dtype=first._hidden.dtype,
        device=first.device,
        memory_format=first._layout,
    )
    keep = first._hidden.new_empty((size, first._segments.numel()))

    def build(start: int, stop: int) -> torch.Tensor:
        for i, engine in enumerate(engines):
            low, high = max(start, offsets[i]), min(stop, offsets[i + 1])
            if low < high:
                rows = slice(low - start, high - start)
                engine.perturb(z[i][low - offsets[i] : high - offsets[i]], out[rows], keep[rows])
        return out[: stop - start]

    # The buffers are rewritten next batch: the classifier's output must not alias them.
    outputs = [
        batch.float().clone()
        for _, _, batch in forward_batches(
            first.classifier, int(offsets[-1]), build, first.batch_size, progress, "perturbations"
        )
    ]
    predictions = torch.cat(outputs).cpu().numpy()
    return [predictions[offsets[i] : offsets[i + 1]] for i in range(len(engines))]

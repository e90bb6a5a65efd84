"""One image on one model: its model input, its one prediction and what every explainer and metric computes once
for it (:class:`ImageSession`).

Explainers compared on one image share their work through the session: the LIME family one segmentation and one
lazily drawn neighbourhood per seed (so comparisons are paired and a smaller sample count is the first rows of a
larger one), the CAM maps one pass per method, and the classifier's output on the unperturbed image one forward.
Whoever holds the image (a benchmark's prepared image, a stability unit, a figure, an image of the batch API, a
command line's explained image) makes one session and hands it to every :func:`cnnxai.explainers.explain` and to
the image's :class:`cnnxai.metrics.ImageMetrics`.

What belongs to the session and what to one explainer call: the session is the model, the frame and the numerics of
its one prediction (``amp``, ``tf32``, ``backend``: they decide the probabilities' last bits). The seed, the batch
size and the explainer's options belong to the call; the caches that depend on them are keyed by them (the segments
and neighbourhoods by seed, segmenter and hide colour), and a neighbourhood keeps the batch size and numerics of the
call that drew it first, so later calls on the same samples predict nothing again.
"""

from __future__ import annotations

from collections.abc import Hashable
from functools import cached_property
from typing import Any

import numpy as np
import torch
from torch import nn

from cam_ext import LayerCams
from lime_ext import NeighbourhoodSampler, TorchClassifier, module_device
from lime_ext.backends import current_backend


class ImageSession:
    """One image (RGB uint8 (H,W,3), the model-input frame) on one model, and its per-image state.

    Args:
        model: the classifier (or a one-output :class:`~cnnxai.targets.TargetScore`) on its device; a model
            with ``output_activation = 'identity'`` is predicted on its raw output, not its softmax.
        frame: the prepared image, RGB uint8 (H,W,3).
        amp, tf32, backend: the numerics of the prediction (see :class:`lime_ext.TorchClassifier`; ``backend``
            None: the process default when the session is made).

    The typed caches, filled by the explainers and metrics that own their keys:

    - ``segments``: (seed, segmenter) -> superpixels (H,W), ids 0..M-1; ``fixed_segments`` (set by
      :meth:`fix_segments`) overrides them for every seed and segmenter;
    - ``samplers``: (seed, segmenter, hide colour, id of the segments) -> the lazily drawn
      :class:`~lime_ext.NeighbourhoodSampler`;
    - ``cams``: (method, aug_smooth, eigen_smooth, targets) -> the passes made, each (its layers, its
      :class:`~cam_ext.LayerCams`);
    - ``memo``: any other per-image (or per-model) result by a key its owner chooses, a tuple led by the owner's
      name (NormLIME's fitted model, the metrics' superpixels and substrates).
    """

    def __init__(
        self,
        model: nn.Module,
        frame: np.ndarray,
        amp: bool = False,
        tf32: bool = False,
        backend: str | None = None,
    ) -> None:
        self.model, self.frame = model, frame
        self.amp, self.tf32 = bool(amp), bool(tf32)
        # The process default is read now, where the session is made (a thread of a pool may have another).
        self.backend = current_backend() if backend is None else backend
        self.device: torch.device = module_device(model)
        self.segments: dict[tuple, np.ndarray] = {}
        self.fixed_segments: np.ndarray | None = None
        self.samplers: dict[tuple, NeighbourhoodSampler] = {}
        self.cams: dict[tuple, list[tuple[tuple[str, ...], LayerCams]]] = {}
        self.memo: dict[Hashable, Any] = {}

    def serves(self, model: nn.Module, frame: np.ndarray) -> bool:
        """Whether this session is of ``model`` and of an image equal to ``frame``."""
        return model is self.model and (frame is self.frame or np.array_equal(frame, self.frame))

    def fix_segments(self, segments: np.ndarray) -> None:
        """Make every LIME-family explainer (and KernelSHAP) of this session use ``segments`` (H,W), ids 0..M-1,
        whatever its seed or segmenter: one segmentation per image across seeds (``MyStability.py``)."""
        segments = np.asarray(segments)
        if segments.ndim != 2 or segments.min() < 0:
            raise ValueError(f"segments must be (H,W) with ids 0..M-1, got shape {segments.shape}")
        self.fixed_segments = segments

    @cached_property
    def classifier(self) -> TorchClassifier:
        """The model as the prediction runs it (made at first use: a backend the device cannot run is a
        :class:`~lime_ext.backends.BackendError` there, inside the explainers' one-line errors)."""
        output = getattr(self.model, "output_activation", "softmax")
        return TorchClassifier(self.model, output=output, amp=self.amp, tf32=self.tf32, backend=self.backend)

    @cached_property
    def x(self) -> torch.Tensor:
        """The normalised model input (1,3,H,W) on the model's device (one tensor: read it, do not modify it)."""
        return self.classifier.prepare_rgb(self.frame)[None]

    @cached_property
    def output(self) -> torch.Tensor:
        """The model's own output (1,K) float32 on the unperturbed image, on the device (a classifier's logits):
        the session's one forward, in eval mode (the model's modes restored after) and full float32 on CUDA unless
        ``tf32``. Read it, do not modify it."""
        with self.classifier.session():
            return self.classifier.forward_raw(self.x)

    @cached_property
    def probabilities(self) -> np.ndarray:
        """The classifier's output (C,) float32 on the unperturbed image (the softmax of :attr:`output`, or the
        output itself for a raw-output model), as every perturbation loop computes it."""
        return self.classifier.activate(self.output)[0].cpu().numpy()

    @property
    def predicted(self) -> int:
        """The predicted class: the argmax of :attr:`probabilities`."""
        return int(np.argmax(self.probabilities))

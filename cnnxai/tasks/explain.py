"""Choose what is explained on a task model's prediction (a box, a class region, a face) and explain it with the
one GradLIME / CamLIME composition, through a :class:`~cnnxai.targets.TargetScore`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from cnnxai.errors import UserInputError
from cnnxai.explainers import CamLimeResult, explain_image
from cnnxai.session import ImageSession
from cnnxai.targets import DetectionBoxTarget, SegmentationTarget, TargetScore, box_iou, per_image
from lime_ext import IMAGENET_MEAN, IMAGENET_STD, TorchClassifier

if TYPE_CHECKING:
    from cnnxai.tasks.models import TaskModelSpec

DEFAULT_SCORE_THRESHOLD = 0.5  # detections and faces below this score are not offered for explanation


@dataclass(frozen=True)
class Choice:
    """What the user asks to explain (None: the default). Detection: the ``box_index``-th detection by score, or
    a given ``box`` (x1,y1,x2,y2); ``category``: the class of the box, or of the segmentation region; face: the
    ``face_index``-th face. Detections and faces below ``score_threshold`` are not offered."""

    box_index: int | None = None
    box: tuple[float, float, float, float] | None = None
    category: int | None = None
    face_index: int | None = None
    score_threshold: float = DEFAULT_SCORE_THRESHOLD


@dataclass(frozen=True)
class Selection:
    """What is explained: ``target`` (a callable on one image's model output), ``name`` (for titles and the
    manifest), ``score`` (the target on the unperturbed image), ``box`` (x1,y1,x2,y2) or ``mask`` (H,W) bool to
    draw, and ``record`` (JSON-able: what was chosen and from what)."""

    target: Any
    name: str
    score: float
    box: tuple[float, float, float, float] | None = None
    mask: np.ndarray | None = None
    record: dict = field(default_factory=dict)


def predict(model: nn.Module, image: np.ndarray, input_space: str) -> Any:
    """The task model's output on one image, RGB uint8 (H,W,3) fed as the model takes it (see ``input_space`` of
    :class:`TargetScore`): a detection dict, or logits (K,H,W). In eval mode (every module's mode restored after),
    without gradients."""
    normalise = input_space == "imagenet"
    classifier = TorchClassifier(model, *((IMAGENET_MEAN, IMAGENET_STD) if normalise else (None, None)))
    with classifier.session(), torch.no_grad():
        return per_image(model(classifier.prepare_rgb(image)[None]), 1)[0]


def parse_box(text: str) -> tuple[float, float, float, float]:
    """'x1,y1,x2,y2' (pixels of the frame) -> a box; a malformed one is a one-line error."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or not values[0] < values[2] or not values[1] < values[3]:
        raise UserInputError(
            f"--box {text!r}: give x1,y1,x2,y2 in pixels of the frame, with x1 < x2 and y1 < y2"
        )
    return values  # type: ignore[return-value]


def class_index(value: str | int | None, names: Sequence[str]) -> int | None:
    """A class given by index or by name (case-insensitive) -> its index; unknown is a one-line error."""
    if value is None:
        return None
    text = str(value).strip()
    if text.isdigit() and int(text) < len(names):
        return int(text)
    lowered = [n.lower() for n in names]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    raise UserInputError(f"--class {text!r}: not a class of this model; give an index 0..{len(names) - 1} or one of: "
                         f"{', '.join(n for n in names if n and n != 'N/A')}")  # fmt: skip


def _box_text(box: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.0f}" for v in box) + ")"


def select_detection(
    detection: dict[str, torch.Tensor],
    names: Sequence[str],
    image_shape: tuple[int, int],
    box_index: int | None = None,
    box: tuple[float, float, float, float] | None = None,
    category: int | None = None,
    threshold: float = DEFAULT_SCORE_THRESHOLD,
    what: str = "detection",
) -> Selection:
    """The box to explain among ``detection`` (one image's output): the ``box_index``-th detection at or above
    ``threshold`` (by score; of class ``category`` if given), or a given ``box`` (of class ``category``, else of
    the detection that matches it best). Errors (one line): nothing above the threshold, index out of range,
    box outside the image, class absent."""
    scores = detection["scores"].detach().cpu().numpy()
    labels = detection["labels"].detach().cpu().numpy()
    boxes = detection["boxes"].detach().cpu().numpy()
    height, width = image_shape
    if box is not None:
        x1, y1, x2, y2 = box
        if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
            raise UserInputError(f"--box {_box_text(box)} is outside the image (its frame is {width}x{height} pixels); "
                                 "give a box inside it")  # fmt: skip
        if category is None:
            # The detections were copied to the host above: the best match is found there.
            reference = torch.tensor(box, dtype=torch.float32, device="cpu")
            ious = box_iou(torch.from_numpy(boxes).to("cpu", torch.float32).reshape(-1, 4), reference)
            ious = ious.cpu().numpy() * scores
            if ious.size == 0 or ious.max() <= 0:  # the class of the detection that matches the box best
                raise UserInputError(
                    f"--box {_box_text(box)} overlaps no {what}; give --class too, or another box"
                )
            category = int(labels[int(ious.argmax())])
        target = DetectionBoxTarget(tuple(float(v) for v in box), int(category))
        chosen = {"box": list(box), "label": int(category), "given": "box"}
    else:
        keep = scores >= threshold
        if category is not None:
            keep &= labels == category
        order = np.flatnonzero(keep)[np.argsort(-scores[keep], kind="stable")]
        if len(order) == 0:
            of = f" of class {names[category]}" if category is not None else ""
            raise UserInputError(f"no {what}{of} with a score of at least {threshold} (best: "
                                 f"{scores.max() if scores.size else 0:.3f}); lower --score-threshold or pick another image")  # fmt: skip
        index = 0 if box_index is None else int(box_index)
        if index >= len(order):
            flag = "--face-index" if what == "face" else "--box-index"
            raise UserInputError(f"{flag} {index}: only {len(order)} {what}(s) at or above the score threshold "
                                 f"{threshold}; give 0..{len(order) - 1}")  # fmt: skip
        row = int(order[index])
        box = tuple(float(v) for v in boxes[row])
        category = int(labels[row])
        target = DetectionBoxTarget(box, category)
        chosen = {"box": list(box), "label": int(category), "detection_score": float(scores[row]),
                  "index": index, "given": "index"}  # fmt: skip
    score = float(target({k: v.detach().cpu() for k, v in detection.items()}))
    name = f"{names[category]} {_box_text(box)}"
    return Selection(
        target, name, score, box=box, record={**chosen, "class_name": names[category], "score": score}
    )


def select_region(logits: torch.Tensor, names: Sequence[str], category: int | None = None) -> Selection:
    """The region to explain on one image's segmentation logits (K,H,W): the pixels predicted as ``category``
    (default: the largest predicted class other than background, class 0). A class absent from the prediction
    is a one-line error."""
    predicted = logits.detach().argmax(0).cpu().numpy()
    counts = np.bincount(predicted.ravel(), minlength=logits.shape[0])
    if category is None:
        foreground = counts.copy()
        foreground[0] = 0
        if foreground.max() == 0:
            raise UserInputError(
                "the model predicts only background on this image; give --class to explain a class"
            )
        category = int(foreground.argmax())
    if not 0 <= category < logits.shape[0]:
        raise UserInputError(f"--class {category} is out of range: the model has {logits.shape[0]} classes")
    if counts[category] == 0:
        present = ", ".join(names[c] for c in np.flatnonzero(counts))
        raise UserInputError(f"class {names[category]} is absent from the prediction on this image (predicted: "
                             f"{present}); give one of those with --class")  # fmt: skip
    mask = predicted == category
    target = SegmentationTarget(category, mask)
    score = float(target(logits.detach().cpu()))
    name = f"{names[category]} region ({int(mask.sum())} px)"
    record = {"label": category, "class_name": names[category], "pixels": int(mask.sum()), "score": score}
    return Selection(target, name, score, mask=mask, record=record)


def select_target(
    spec: TaskModelSpec, model: nn.Module, frame: np.ndarray, names: Sequence[str], choice: Choice
) -> Selection:
    """What ``choice`` picks on the task model's prediction for ``frame`` (a one-line error when it is not there)."""
    output = predict(model, frame, spec.input_space)
    if spec.task == "segmentation":
        return select_region(output, names, choice.category)
    if spec.task == "face":
        return select_detection(output, names, frame.shape[:2], choice.face_index, None, None,
                                choice.score_threshold, "face")  # fmt: skip
    return select_detection(output, names, frame.shape[:2], choice.box_index, choice.box, choice.category,
                            choice.score_threshold)  # fmt: skip


def task_score_model(
    model: nn.Module, spec: TaskModelSpec, selection: Selection, image: np.ndarray
) -> TargetScore:
    """The model the explainers see: ImageNet-normalised images -> the selection's score (B,1). For faces the
    CAMs come from the cascade's image-aligned first stage at the face's own scale (:mod:`cnnxai.tasks.face`)."""
    cam_model = None
    if spec.task == "face":
        from cnnxai.tasks.face import PNetFaces, face_scale

        scale = face_scale(selection.box, image.shape[:2])
        cam_model = TargetScore(PNetFaces(model.pnet, scale), selection.target, spec.input_space)
    return TargetScore(model, selection.target, spec.input_space, cam_model)


@dataclass(frozen=True)
class TaskExplanation:
    """``selection`` (what was explained), ``model`` (the :class:`TargetScore` the explainers saw; reuse it with
    ``session``, the frame on it, for other explainers of the same image) and ``result`` (GradLIME / CamLIME with
    plain LIME on the same samples; its class 0 is the selection's score)."""

    selection: Selection
    model: TargetScore
    result: CamLimeResult
    session: ImageSession


def explain_task(
    variant: str,
    spec: TaskModelSpec,
    model: nn.Module,
    frame: np.ndarray,
    choice: Choice = Choice(),
    seed: int = 0,
    device: torch.device | None = None,
    batch_size: int | None = None,
    amp: bool = False,
    progress: bool = False,
    tf32: bool = False,
    **options: Any,
) -> TaskExplanation:
    """GradLIME (``variant='gradlime'``) or CamLIME (``'camlime'``) of what ``choice`` picks on the task model's
    prediction for ``frame`` (RGB uint8 (H,W,3), see :func:`cnnxai.tasks.models.task_frame`). ``options`` are the
    explainer's declared options; ``layers`` are module paths of the TargetScore (``task.<path in the model>``)."""
    selection = select_target(spec, model, frame, spec.class_names(), choice)
    wrapped = task_score_model(model, spec, selection, frame)
    session = ImageSession(wrapped, frame, amp, tf32)
    result = explain_image(
        variant, wrapped, frame, 0, 1, seed, device, batch_size, session, amp, progress, tf32, **options
    )
    return TaskExplanation(selection, wrapped, result, session)

"""The command-line flags of the applications (``--task`` and what it explains: a box, a class region, a face),
for GradLIME.py, CamLIME.py and Figures.py: the group of flags, their check against ``--task`` and the
:class:`~cnnxai.tasks.explain.Choice` they make (docs/applications.md)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from cnnxai.cli_options import argparse_type, int_at_least
from cnnxai.errors import UserInputError
from cnnxai.tasks.explain import DEFAULT_SCORE_THRESHOLD, Choice, class_index, parse_box
from cnnxai.tasks.models import TASKS


def add_task_options(parser: argparse.ArgumentParser, task_flag: bool = True) -> None:
    """--task (unless ``task_flag`` is False: the tool names the task otherwise) and what it explains:
    --box-index, --box, --class, --face-index, --score-threshold."""
    group = parser.add_argument_group(
        "applications: what a detection, segmentation or face model is explained for"
    )
    add = group.add_argument
    if task_flag:
        add(
            "--task",
            default="classification",
            choices=list(TASKS),
            help="classification (a class of an ImageNet classifier), detection (one detected box), segmentation "
            "(the region of one class) or face (one face's detection confidence); without --image-path each task "
            "explains its own sample (docs/applications.md)",
        )
    add(
        "--box-index",
        type=int_at_least(0),
        default=None,
        help="detection: the detection to explain, 0 = the highest score (default 0)",
    )
    add(
        "--box",
        type=argparse_type(parse_box),
        default=None,
        metavar="X1,Y1,X2,Y2",
        help="detection: explain this box (pixels of the frame) instead of a detection's",
    )
    add(
        "--class",
        dest="task_class",
        default=None,
        metavar="CLASS",
        help="detection: the class of the box; segmentation: the class whose region is explained (default: the "
        "largest predicted one); a name or an index",
    )
    add(
        "--face-index",
        type=int_at_least(0),
        default=None,
        help="face: the face to explain, 0 = the most confident (default 0)",
    )
    add("--score-threshold", type=float, default=DEFAULT_SCORE_THRESHOLD,
        help="detection and face: the least score of a detection offered for explanation")  # fmt: skip


TASK_FLAGS = {"box_index": ("--box-index", ("detection",)), "box": ("--box", ("detection",)),
              "task_class": ("--class", ("detection", "segmentation")), "face_index": ("--face-index", ("face",))}  # fmt: skip


def check_task_flags(args: argparse.Namespace) -> None:
    """Refuse a flag of :func:`add_task_options` that does not belong to --task (before any work)."""
    for attr, (flag, tasks) in TASK_FLAGS.items():
        if getattr(args, attr) is not None and args.task not in tasks:
            raise UserInputError(f"{flag} applies to --task {' or '.join(tasks)}, not {args.task}; drop it or change --task")  # fmt: skip
    if args.task != "classification" and (args.target is not None or getattr(args, "top_labels", 1) != 1):
        raise UserInputError(f"--target and --top-labels choose ImageNet classes; with --task {args.task} use "
                             "--box-index, --box, --class or --face-index")  # fmt: skip
    if args.box is not None and args.box_index is not None:
        raise UserInputError("give --box or --box-index, not both")


def task_choice(args: argparse.Namespace, class_names: Sequence[str]) -> Choice:
    """What the flags of :func:`add_task_options` ask to explain (--class resolved against ``class_names``)."""
    category = class_index(args.task_class, class_names)
    return Choice(args.box_index, args.box, category, args.face_index, args.score_threshold)

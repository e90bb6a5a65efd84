"""The rows of a benchmark run on disk: appended as they are computed, recovered after any interruption.

The unit of work is one group of images scored with one explainer. A finished unit's rows are appended to
``curves.csv`` and then ``scores.csv``, each in a single write that is flushed and synced before the next unit
starts. A run killed at any moment leaves at most one unfinished unit: a cut line, or some of its rows. On the
next start, :meth:`ResultStore.recover` keeps exactly the rows of finished units (rewriting the files
atomically if anything else was there) and the run skips those units, so nothing is duplicated or missing.
"""

from __future__ import annotations

import csv
import io
import os
import socket
from collections import defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from cnnxai.errors import UserInputError

SCORE_COLUMNS = (
    "image", "group", "true_class", "predicted_class", "target_class", "method", "metric", "value", "reason",
    "seed", "seconds", "explain_seconds",
)  # fmt: skip
CURVE_COLUMNS = ("image", "group", "method", "curve", "auc", "values")

Unit = tuple[int, str]  # (group index, method)


def read_rows(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    """Rows of a CSV file written by this module; a cut last line (an interrupted write) is left out."""
    if not path.exists():
        return []
    text = path.read_text()
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    if not text:
        return []
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != columns:
        raise UserInputError(
            f"{path} has columns {', '.join(reader.fieldnames or [])}, not those of this version "
            f"({', '.join(columns)}); use another --output-dir"
        )
    return list(reader)


def _write_rows(path: Path, columns: tuple[str, ...], rows: list[dict], header: bool) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows(rows)
    with open(path, "a", newline="") as handle:
        handle.write(buffer.getvalue())
        handle.flush()
        os.fsync(handle.fileno())


def _rewrite(path: Path, columns: tuple[str, ...], rows: list[dict]) -> None:
    temporary = path.with_name(f".{path.name}.rewrite")
    temporary.unlink(missing_ok=True)
    _write_rows(temporary, columns, rows, header=True)
    os.replace(temporary, path)


class ResultStore:
    """``scores.csv`` (one row per image x method x metric) and ``curves.csv`` (one row per image x method x
    curve: Deletion and Insertion's p(target) per step, space-separated) in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.scores_path = self.folder / "scores.csv"
        self.curves_path = self.folder / "curves.csv"

    def recover(self, expected: Mapping[Unit, int]) -> set[Unit]:
        """The finished units, given how many score rows each unit of this run has (images x metrics).

        Rows of unfinished units (and anything not belonging to this run's units) are removed from both files.
        """
        scores = read_rows(self.scores_path, SCORE_COLUMNS)
        curves = read_rows(self.curves_path, CURVE_COLUMNS)
        by_unit: dict[Unit, list[dict]] = defaultdict(list)
        for row in scores:
            by_unit[(int(row["group"]), row["method"])].append(row)
        done = set()
        for unit, rows in by_unit.items():
            pairs = {(row["image"], row["metric"]) for row in rows}
            if unit in expected and len(rows) == expected[unit] == len(pairs):
                done.add(unit)
        kept_scores = [row for row in scores if (int(row["group"]), row["method"]) in done]
        kept_curves = [row for row in curves if (int(row["group"]), row["method"]) in done]
        for path, columns, rows, kept in (
            (self.scores_path, SCORE_COLUMNS, scores, kept_scores),
            (self.curves_path, CURVE_COLUMNS, curves, kept_curves),
        ):
            if path.exists() and (len(kept) != len(rows) or not path.read_text().endswith("\n")):
                _rewrite(path, columns, kept)
        return done

    def append(self, scores: list[dict], curves: list[dict]) -> None:
        """Append one finished unit: its curves first, then its scores (the rows that mark it finished)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if curves:
            _write_rows(self.curves_path, CURVE_COLUMNS, curves, header=_is_empty(self.curves_path))
        _write_rows(self.scores_path, SCORE_COLUMNS, scores, header=_is_empty(self.scores_path))


def _is_empty(path: Path) -> bool:
    return not path.exists() or path.stat().st_size == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def run_lock(folder: Path) -> Iterator[None]:
    """Refuse a second run writing the same folder at the same time; a lock left by a killed run is taken over."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ".lock"
    me = f"{socket.gethostname()} {os.getpid()}"
    for attempt in range(2):
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            holder = path.read_text().strip()
            host, _, pid = holder.partition(" ")
            stale = host == socket.gethostname() and pid.isdigit() and not _alive(int(pid))
            if not stale or attempt:
                raise UserInputError(
                    f"{folder} is being written by another run ({holder}); wait for it, or delete {path} if it is gone"
                ) from None
            path.unlink(missing_ok=True)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(me + "\n")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)

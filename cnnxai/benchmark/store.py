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
import json
import os
import shutil
import socket
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from cnnxai.benchmark.gallery import GALLERY_FOLDER
from cnnxai.errors import UserInputError

SCORE_COLUMNS = (
    "image", "group", "true_class", "predicted_class", "target_class", "method", "metric", "value", "reason",
    "seed", "seconds", "explain_seconds", "samples",
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


def _benchmark_unit(row: Mapping[str, str]) -> Unit:
    return int(row["group"]), row["method"]


def _benchmark_key(row: Mapping[str, str]) -> tuple[str, ...]:
    return row["image"], row["metric"]


class ResultStore:
    """``scores.csv`` (one row per image x method x metric) and ``curves.csv`` (one row per image x method x
    curve: Deletion and Insertion's p(target) per step, space-separated) in ``folder``.

    Another tool keeps its own rows the same way: ``rows`` names its file and columns, ``curves`` its second
    file (None: none), ``unit`` gives the unit a row belongs to and ``key`` what makes a row unique in its unit
    (None: nothing does, as for two boxes of one class in one scene; a unit's rows are then only counted).
    """

    def __init__(
        self,
        folder: Path,
        rows: tuple[str, tuple[str, ...]] = ("scores.csv", SCORE_COLUMNS),
        curves: tuple[str, tuple[str, ...]] | None = ("curves.csv", CURVE_COLUMNS),
        unit: Callable[[Mapping[str, str]], Hashable] = _benchmark_unit,
        key: Callable[[Mapping[str, str]], Hashable] | None = _benchmark_key,
    ) -> None:
        self.folder = Path(folder)
        self.scores_path, self.score_columns = self.folder / rows[0], rows[1]
        self.curves_path = self.folder / curves[0] if curves else None
        self.curve_columns = curves[1] if curves else ()
        self.unit, self.key = unit, key

    def recover(self, expected: Mapping[Hashable, int]) -> set:
        """The finished units, given how many score rows each unit of this run has (images x metrics).

        Rows of unfinished units (and anything not belonging to this run's units) are removed from both files.
        """
        files = [(self.scores_path, self.score_columns)]
        if self.curves_path is not None:
            files.append((self.curves_path, self.curve_columns))
        contents = [read_rows(path, columns) for path, columns in files]
        by_unit: dict[Hashable, list[Mapping[str, str]]] = defaultdict(list)
        for row in contents[0]:
            by_unit[self.unit(row)].append(row)
        done = set()
        for unit, rows in by_unit.items():
            unique = self.key is None or len({self.key(row) for row in rows}) == len(rows)
            if unit in expected and len(rows) == expected[unit] and unique:
                done.add(unit)
        for (path, columns), rows in zip(files, contents, strict=True):
            kept = [row for row in rows if self.unit(row) in done]
            if path.exists() and (len(kept) != len(rows) or not path.read_text().endswith("\n")):
                _rewrite(path, columns, kept)
        return done

    def append(self, scores: list[dict], curves: list[dict] = ()) -> None:
        """Append one finished unit: its curves first, then its scores (the rows that mark it finished)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if curves and self.curves_path is not None:
            _write_rows(
                self.curves_path, self.curve_columns, list(curves), header=_is_empty(self.curves_path)
            )
        _write_rows(self.scores_path, self.score_columns, scores, header=_is_empty(self.scores_path))


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


def run_manifests(folder: Path) -> list[Path]:
    """The manifest.json files of a run in ``folder``: its own and each shard's (those that exist)."""
    found = [folder / "manifest.json", *sorted((folder / "shards").glob("*/manifest.json"))]
    return [path for path in found if path.exists()]


def check_identity(folder: Path, identity: dict) -> None:
    """Refuse to add rows to ``folder`` when a manifest there records a run with another ``identity``."""
    for path in run_manifests(folder):
        theirs = json.loads(path.read_text()).get("identity")
        if theirs != identity:
            differ = [k for k in identity if (theirs or {}).get(k) != identity[k]]
            raise UserInputError(
                f"{folder} holds a run with other settings ({', '.join(differ) or 'unknown'} differ, see {path}); "
                "use another --output-dir, or --overwrite to replace it"
            )


def stored_identity(folder: Path) -> dict:
    """The identity shared by every manifest of the run in ``folder`` (for ``--summarize``)."""
    identities = [json.loads(path.read_text())["identity"] for path in run_manifests(folder)]
    if not identities:
        raise UserInputError(
            f"--summarize: {folder} holds no manifest.json of a run; run the benchmark first"
        )
    if any(identity != identities[0] for identity in identities):
        raise UserInputError(f"--summarize: the shards in {folder} come from runs with different settings")
    return identities[0]


def result_folders(folder: Path, rows: str = "scores.csv") -> list[Path]:
    """The folders holding rows (file ``rows``) of one run: ``folder`` itself and each ``folder/shards/*``."""
    found = [folder] if (folder / rows).exists() else []
    shards = folder / "shards"
    if shards.is_dir():
        found += sorted(p for p in shards.iterdir() if (p / rows).exists())
    return found


def load_rows(folders: Sequence[Path]) -> tuple[list[dict], list[dict]]:
    """The score rows and curve rows of every folder of ``folders`` (:func:`result_folders`), in order."""
    scores, curves = [], []
    for folder in folders:
        scores += read_rows(folder / "scores.csv", SCORE_COLUMNS)
        curves += read_rows(folder / "curves.csv", CURVE_COLUMNS)
    return scores, curves


def clear_run(folder: Path, shard: tuple[int, int], files: Sequence[str]) -> None:
    """Remove what a run writes (``files``, and only that) from ``folder``; for a shard, only that shard's rows
    (``--overwrite``)."""
    for name in files:
        (folder / name).unlink(missing_ok=True)
    if shard == (1, 1):
        shutil.rmtree(folder / "shards", ignore_errors=True)
        shutil.rmtree(folder / GALLERY_FOLDER, ignore_errors=True)
    else:
        shutil.rmtree(folder / "shards" / f"{shard[0]}-of-{shard[1]}", ignore_errors=True)

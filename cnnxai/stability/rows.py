"""The rows of a stability run on disk (rows.csv: one row per image x method x budget x seed) and their reading."""

from __future__ import annotations

from pathlib import Path

from cnnxai.benchmark.store import read_rows, result_folders

REFERENCE = "reference"  # the method label of the reference rows (plain lime at --reference-samples)
UNREADABLE = "image could not be read"
ROWS_FILE = "rows.csv"
ROW_COLUMNS = (
    "image", "group", "true_class", "target_class", "method", "budget", "seed", "forwards", "seconds", "r2",
    "deletion_auc", "insertion_auc", "jaccard_vs_reference", "kendall_vs_reference", "superpixels", "reason",
    "attributions",
)  # fmt: skip


def load_rows(folder: Path) -> list[dict[str, str]]:
    """Every row of the run in ``folder``: its own rows.csv and each shard's."""
    rows: list[dict[str, str]] = []
    for place in result_folders(folder, ROWS_FILE):
        rows += read_rows(place / ROWS_FILE, ROW_COLUMNS)
    return rows

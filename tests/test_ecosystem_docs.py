"""docs/ecosystem.md runs as written: its Python snippets, in order, in one namespace, and what they print holds."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

PAGE = Path(__file__).resolve().parents[1] / "docs" / "ecosystem.md"


def snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)


def test_the_ecosystem_page_runs_and_its_results_hold(capsys):
    namespace: dict = {}
    for code in snippets():
        exec(compile(code, str(PAGE), "exec"), namespace)  # noqa: S102 (our own documentation)
    assert len(snippets()) == 5
    attributions = namespace["attributions"]
    assert attributions.shape == (2, 1, 224, 224) and attributions.dtype == torch.float32
    assert torch.equal(namespace["by_object"], attributions)
    for name in ("rise", "layercam", "ig"):
        assert namespace[name].shape == (2, 1, 224, 224)
    assert namespace["margin"].shape == (1, 1, 224, 224) and bool(namespace["margin"].abs().sum() > 0)
    scores = np.asarray(namespace["scores"])
    assert scores.shape == (2,) and np.all(np.abs(scores) <= 1)
    printed = capsys.readouterr().out
    assert "torch.Size([2, 1, 224, 224]) torch.float32" in printed and "True" in printed

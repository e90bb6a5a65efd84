"""Same seed, same inputs: identical explanations, call after call and process after process."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np

from lime_ext import CamLimeExplainer, LimeSettings, TorchClassifier
from tests.helpers import make_tiny_cnn, small_photo

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import hashlib
from lime_ext import CamLimeExplainer, LimeSettings, TorchClassifier
from tests.helpers import make_tiny_cnn, small_photo
exp = CamLimeExplainer(TorchClassifier(make_tiny_cnn()), LimeSettings(120)).explain(small_photo(), seed=11, cam_mode="none")
label = exp.labels[exp.top_labels[0]]
print(hashlib.sha256(exp.segments.tobytes() + label.weights.tobytes() + label.attributions.tobytes()).hexdigest())
"""


def digest(explainer, seed):
    exp = explainer.explain(small_photo(), seed=seed, cam_mode="none")
    label = exp.labels[exp.top_labels[0]]
    return hashlib.sha256(
        exp.segments.tobytes() + label.weights.tobytes() + label.attributions.tobytes()
    ).hexdigest()


def test_same_seed_same_explanation_on_one_explainer_object():
    explainer = CamLimeExplainer(TorchClassifier(make_tiny_cnn()), LimeSettings(120))
    first, second = explainer.sample(small_photo(), seed=7), explainer.sample(small_photo(), seed=7)
    np.testing.assert_array_equal(first.segments, second.segments)
    np.testing.assert_array_equal(first.masks, second.masks)
    np.testing.assert_array_equal(first.predictions, second.predictions)
    assert digest(explainer, 7) == digest(explainer, 7)
    assert not np.array_equal(first.masks, explainer.sample(small_photo(), seed=8).masks)


def test_same_seed_same_explanation_across_processes():
    explainer = CamLimeExplainer(TorchClassifier(make_tiny_cnn()), LimeSettings(120))
    here = digest(explainer, 11)
    outputs = {
        subprocess.run(
            [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(2)
    }
    assert outputs == {here}

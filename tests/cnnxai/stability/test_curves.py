"""Superpixel deletion / insertion curves on a tiny model: the areas by hand, and every perturbed image once."""

from __future__ import annotations

import numpy as np
import pytest

from cnnxai.stability.curves import SuperpixelCurves
from cnnxai.stability.measures import normalised_auc
from lime_ext import PerturbationEngine, TorchClassifier, segment_image
from tests.helpers import make_tiny_cnn, small_photo


@pytest.fixture(scope="module")
def setting():
    model, image = make_tiny_cnn(num_classes=4), small_photo(48)
    segments = segment_image(image, "slic", seed=0)
    return model, image, segments


def test_the_areas_follow_the_ranking_as_computed_by_hand(setting):
    model, image, segments = setting
    num = int(segments.max()) + 1
    curves = SuperpixelCurves(model, image, segments, target=2, hide_color=0, steps=3)
    attributions = np.random.default_rng(0).normal(size=num)
    deletion, insertion = curves.areas(attributions)
    order, size = np.argsort(-attributions), -(-num // 3)
    counts = [min(i * size, num) for i in range(4)]
    hide = np.ones((4, num), dtype=np.uint8)
    for i, count in enumerate(counts):
        hide[i, order[:count]] = 0
    engine = PerturbationEngine(image, segments, TorchClassifier(model), 0, None)
    fractions = np.array(counts) / num
    assert deletion == pytest.approx(normalised_auc(fractions, engine.predict(hide)[:, 2]), abs=1e-6)
    assert insertion == pytest.approx(normalised_auc(fractions, engine.predict(1 - hide)[:, 2]), abs=1e-6)
    assert hide[0].all() and not hide[-1].any()  # from the image itself to everything hidden


def test_identical_rankings_cost_no_forward(setting):
    model, image, segments = setting
    num = int(segments.max()) + 1
    curves = SuperpixelCurves(model, image, segments, target=1, hide_color="mean", steps=4)
    first = curves.areas(np.arange(num, dtype=float))
    spent = curves.forwards
    assert spent <= 2 * 5  # deletion and insertion, 5 points each (the full and empty masks shared)
    assert curves.areas(np.arange(num, dtype=float) * 3 + 1) == first  # same ranking
    assert curves.forwards == spent
    swapped = np.arange(num, dtype=float)
    swapped[[num - 1, num - 2]] = swapped[[num - 2, num - 1]]  # the first two swap: the same set at each step
    curves.areas(swapped)
    assert curves.forwards == spent

"""Fixtures of the whole suite; the tiny models and images themselves live in tests/helpers.py."""

from __future__ import annotations

import numpy as np
import pytest
from torch import nn

from tests.helpers import make_tiny_cnn, small_photo


@pytest.fixture
def tiny_cnn() -> nn.Module:
    return make_tiny_cnn()


@pytest.fixture
def photo() -> np.ndarray:
    return small_photo()

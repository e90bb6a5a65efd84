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


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", help="also run the tests marked slow (minutes each)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: minutes of CPU (training a model at its default settings); run with --runslow"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Plain ``python -m pytest`` (the CI's command) skips the tests marked slow; ``--runslow`` runs them."""
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)

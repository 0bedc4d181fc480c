"""Shared fixtures. The real data (../shared/data) is found once, here, and only here."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from funfusean_tf.data.pairs import DATA_ENV_VAR, find_data_root  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real-data folder (holding aanlib/ and reference/), or a skip saying why it is absent."""
    root = find_data_root(REPO_ROOT)
    if root is None:
        pytest.skip(
            f"real data not found: set ${DATA_ENV_VAR} or place shared/data beside the checkout "
            f"(looked above {REPO_ROOT})"
        )
    return root


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)

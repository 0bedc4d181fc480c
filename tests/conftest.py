"""Shared fixtures. The real data (../shared/data) is found once, here, and only here.

Under CI (the environment variable CI set to anything but "", "0", "false", "no" or "off"; .ci/run
sets CI=true) what would be a skip for a user is an error: missing real data fails every test that
needs it, and Hypothesis runs derandomized (the same examples on every run, with the blob to
reproduce a failure printed)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from funfusean_tf.data.pairs import DATA_ENV_VAR, find_data_root  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]


def running_in_ci() -> bool:
    """True when the environment variable CI is set to a true-ish value (CI=true, CI=1)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no", "off")


try:
    from hypothesis import settings as _hypothesis_settings
except ImportError:  # hypothesis comes with the test extra; without it its tests cannot run anyway
    pass
else:
    # Loaded before the test modules are imported, so their own @settings(...) (max_examples,
    # deadline) inherit derandomize and print_blob from it.
    _hypothesis_settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
    if running_in_ci():
        _hypothesis_settings.load_profile("ci")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real-data folder (holding aanlib/ and reference/); without it a skip saying why, or,
    under CI, a failure with the same message."""
    root = find_data_root(REPO_ROOT)
    if root is None:
        message = (
            f"real data not found: set ${DATA_ENV_VAR} or place shared/data beside the checkout "
            f"(looked above {REPO_ROOT})"
        )
        if running_in_ci():
            pytest.fail(f"CI: {message}", pytrace=False)
        pytest.skip(message)
    return root


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)

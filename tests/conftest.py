"""Shared fixtures: the per-dtype tolerance (tests/_helpers.py) and a seeded random generator."""

import numpy as np
import pytest
from _helpers import tolerance


@pytest.fixture
def tol():
    """``tol(dtype, scale=1.0) -> dict(rtol=..., atol=...)``."""
    return tolerance


@pytest.fixture
def rng():
    return np.random.default_rng(12345)

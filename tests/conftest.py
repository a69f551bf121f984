"""Shared fixtures: a per-dtype tolerance table and a seeded random generator."""

import numpy as np
import pytest

# Relative tolerance per training dtype; the absolute tolerance is the same number
# times the magnitude ("scale") of the quantities being compared.
RTOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}


def tolerance(dtype, scale=1.0):
    """``dict(rtol=..., atol=...)`` for ``numpy.testing.assert_allclose``."""
    rtol = RTOL[np.dtype(dtype)]
    return {"rtol": rtol, "atol": rtol * float(scale)}


@pytest.fixture
def tol():
    """``tol(dtype, scale=1.0) -> dict(rtol=..., atol=...)``."""
    return tolerance


@pytest.fixture
def rng():
    return np.random.default_rng(12345)

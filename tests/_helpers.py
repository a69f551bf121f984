"""Helpers shared by test modules (tests/ is on pytest's pythonpath): the tolerance table,
the problem generators and the model comparison."""

import os
import pathlib

import numpy as np
import pytest

# Relative tolerance per training dtype for one step or kernel; the absolute tolerance
# is the same number times the magnitude ("scale") of the quantities being compared.
RTOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}
# A whole epoch compounds the rounding of many steps: float32 is compared looser.
EPOCH_RTOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-4}

NAMES = ("W1", "b1", "W2", "b2")


def tolerance(dtype, scale=1.0, table=RTOL):
    """``dict(rtol=..., atol=...)`` for ``numpy.testing.assert_allclose``."""
    rtol = table[np.dtype(dtype)]
    return {"rtol": rtol, "atol": rtol * float(scale)}


def random_problem(rng, N, D, H, C, dtype):
    """Data ``(X, y)`` and He-scaled starting weights ``(W1, b1, W2, b2)`` with small random biases."""
    X = rng.standard_normal((N, D)).astype(dtype)
    y = rng.integers(0, C, size=N).astype(np.int64)
    params = (rng.standard_normal((D, H)) * np.sqrt(2 / D), 0.1 * rng.standard_normal(H),
              rng.standard_normal((H, C)) * np.sqrt(2 / H), 0.1 * rng.standard_normal(C))
    return X, y, tuple(p.astype(dtype) for p in params)


def labelled_data(n=40, d=5, c=3, seed=3, dtype=np.float64):
    """Standard-normal ``X`` (n, d) and labels ``0..c-1``, each class present (so n_classes = c)."""
    X, y, _ = random_problem(np.random.default_rng(seed), n, d, 1, c, dtype)
    y[:c] = np.arange(c)
    return X, y


def assert_same_model(a, b):
    """Bitwise the same weights (dtype included, all finite) and the same history."""
    for name in NAMES:
        wa, wb = getattr(a, name), getattr(b, name)
        assert wa.dtype == wb.dtype, name
        assert np.array_equal(wa, wb), f"{name} differs"
        assert np.isfinite(wa).all(), name
    assert a.history == b.history


def mnist_dir():
    """The folder holding MNIST's test set (``$FASTMLP_MNIST_DIR`` or ../shared/data/mnist);
    skips the calling test when it is absent."""
    env = os.environ.get("FASTMLP_MNIST_DIR")
    candidates = ([pathlib.Path(env)] if env else []) + \
        [pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"]
    for folder in candidates:
        if (folder / "t10k-images-idx3-ubyte.gz").is_file() and (folder / "t10k-labels-idx1-ubyte.gz").is_file():
            return folder
    pytest.skip(f"MNIST test set not found in {[str(c) for c in candidates]}; set FASTMLP_MNIST_DIR")

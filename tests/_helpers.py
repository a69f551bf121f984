"""Helpers shared by test modules (tests/ is on pytest's pythonpath)."""

import numpy as np


def random_problem(rng, N, D, H, C, dtype):
    """Data ``(X, y)`` and He-scaled starting weights ``(W1, b1, W2, b2)`` with small random biases."""
    X = rng.standard_normal((N, D)).astype(dtype)
    y = rng.integers(0, C, size=N).astype(np.int64)
    params = (rng.standard_normal((D, H)) * np.sqrt(2 / D), 0.1 * rng.standard_normal(H),
              rng.standard_normal((H, C)) * np.sqrt(2 / H), 0.1 * rng.standard_normal(C))
    return X, y, tuple(p.astype(dtype) for p in params)

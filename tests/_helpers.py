"""Helpers shared by test modules (tests/ is on pytest's pythonpath)."""

import os
import pathlib

import numpy as np
import pytest


def random_problem(rng, N, D, H, C, dtype):
    """Data ``(X, y)`` and He-scaled starting weights ``(W1, b1, W2, b2)`` with small random biases."""
    X = rng.standard_normal((N, D)).astype(dtype)
    y = rng.integers(0, C, size=N).astype(np.int64)
    params = (rng.standard_normal((D, H)) * np.sqrt(2 / D), 0.1 * rng.standard_normal(H),
              rng.standard_normal((H, C)) * np.sqrt(2 / H), 0.1 * rng.standard_normal(C))
    return X, y, tuple(p.astype(dtype) for p in params)


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

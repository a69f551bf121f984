"""Data sets for fastmlp: scikit-learn's bundled digits, scaled the seed's way."""

import numpy as np


def scale_pixels(images, max_value):
    """Map pixel intensities ``0..max_value`` linearly onto ``[-1, 1]`` (the seed's range), as float64."""
    return np.asarray(images, dtype=np.float64) * (2.0 / max_value) - 1.0


def load_digits_split(test_fraction=0.25, seed=0):
    """scikit-learn's bundled 8x8 digits (1,797 images), scaled to [-1, 1] and split.

    The split is fixed by ``seed``: a permutation from
    ``numpy.random.default_rng(seed)``; the first ``1 - test_fraction`` of it is
    the training set.

    Returns
    -------
    X_train, y_train, X_test, y_test : ndarrays
        X as float64 (n, 64) in [-1, 1]; y as int64 labels 0..9.
    """
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = scale_pixels(X, 16)
    y = y.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(X))
    n_train = int(round(len(X) * (1 - test_fraction)))
    train, test = order[:n_train], order[n_train:]
    return X[train], y[train], X[test], y[test]

"""The compiled epoch (``fastmlp._sgd``) against the NumPy reference, and fit's two backends."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

import fastmlp
from fastmlp import _sgd, reference
from _helpers import random_problem

# (N, D, H, C, batch)
CASES = [
    (40, 5, 8, 3, 10),    # whole batches
    (37, 5, 8, 3, 10),    # partial last batch
    (13, 4, 6, 3, 1),     # batch 1
    (25, 6, 1, 4, 7),     # hidden 1, partial last batch
    (30, 7, 9, 2, 8),     # two classes
    (12, 3, 5, 4, 12),    # one batch of everything
    (64, 20, 33, 10, 30),
]
NAMES = ("W1", "b1", "W2", "b2")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "N{}-D{}-H{}-C{}-b{}".format(*c))
@pytest.mark.parametrize("shuffled", [True, False], ids=["shuffled", "in-order"])
def test_compiled_epoch_matches_reference(dtype, case, shuffled, rng, tol):
    N, D, H, C, batch = case
    X, y, init = random_problem(rng, N, D, H, C, dtype)
    order = rng.permutation(N).astype(np.int64) if shuffled else np.arange(N, dtype=np.int64)
    lr, reg = 0.01, 0.05

    ref = tuple(p.copy() for p in init)
    ref_loss, ref_correct = reference.sgd_epoch(X, y, order, ref, lr, reg, batch)

    got = tuple(p.copy() for p in init)
    X_before, y_before, order_before = X.copy(), y.copy(), order.copy()
    ws = _sgd.Workspace(batch, D, H, C, dtype)
    loss, correct = _sgd.sgd_epoch(X, y, order, *got, ws, lr, reg)

    assert isinstance(correct, int) and correct == ref_correct
    assert_allclose(loss, ref_loss, **tol(dtype, max(1.0, abs(ref_loss))))
    for name, g, r, p0 in zip(NAMES, got, ref, init):
        assert g.dtype == dtype
        assert_allclose(g, r, **tol(dtype, max(1.0, np.max(np.abs(r)))), err_msg=name)
        assert not np.array_equal(g, p0), f"{name} was not updated"
    assert np.array_equal(X, X_before) and np.array_equal(y, y_before)
    assert np.array_equal(order, order_before)


def test_compiled_epoch_repeated_rows_and_subset(rng, tol):
    """``order`` may repeat rows and skip others; the batches follow it exactly."""
    X, y, init = random_problem(rng, 20, 4, 5, 3, np.float64)
    order = np.array([3, 3, 0, 19, 7, 7, 7, 1], dtype=np.int64)
    ref = tuple(p.copy() for p in init)
    ref_loss, ref_correct = reference.sgd_epoch(X, y, order, ref, 0.02, 0.01, 3)
    got = tuple(p.copy() for p in init)
    loss, correct = _sgd.sgd_epoch(X, y, order, *got, _sgd.Workspace(3, 4, 5, 3, np.float64), 0.02, 0.01)
    assert correct == ref_correct
    assert_allclose(loss, ref_loss, **tol(np.float64, abs(ref_loss)))
    for g, r in zip(got, ref):
        assert_allclose(g, r, **tol(np.float64, np.max(np.abs(r))))


def test_compiled_epoch_refuses_bad_indices(rng):
    X, y, init = random_problem(rng, 10, 3, 4, 2, np.float64)
    ws = _sgd.Workspace(4, 3, 4, 2, np.float64)
    with pytest.raises(IndexError):
        _sgd.sgd_epoch(X, y, np.array([0, 10], dtype=np.int64), *init, ws, 0.1, 0.0)
    with pytest.raises(IndexError):
        _sgd.sgd_epoch(X, y, np.array([-1, 2], dtype=np.int64), *init, ws, 0.1, 0.0)
    bad_y = y.copy()
    bad_y[0] = 2
    with pytest.raises(ValueError):
        _sgd.sgd_epoch(X, bad_y, np.arange(10, dtype=np.int64), *init, ws, 0.1, 0.0)
    with pytest.raises(ValueError):  # workspace of another width
        _sgd.sgd_epoch(X, y, np.arange(10, dtype=np.int64), *init,
                       _sgd.Workspace(4, 3, 5, 2, np.float64), 0.1, 0.0)


# ---------------------------------------------------------------- fit: cython vs numpy

FIT_TOL = {"rtol": 1e-10, "atol": 1e-10}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    N, D, C = 53, 6, 3
    X = rng.standard_normal((N, D))
    y = rng.integers(0, C, size=N)
    X_test = rng.standard_normal((17, D))
    y_test = rng.integers(0, C, size=17)
    return X, y, X_test, y_test


def _assert_models_agree(a, b):
    for name in NAMES:
        wa, wb = getattr(a, name), getattr(b, name)
        assert wa.dtype == wb.dtype == np.float64
        assert_allclose(wa, wb, err_msg=name, **FIT_TOL)
    assert set(a.history) == set(b.history)
    for key in a.history:
        assert len(a.history[key]) == len(b.history[key]), key
        assert_allclose(a.history[key], b.history[key], err_msg=key, **FIT_TOL)


@pytest.mark.parametrize("shuffle", [True, False])
def test_fit_backends_agree(data, shuffle):
    X, y, X_test, y_test = data
    copies = [a.copy() for a in data]
    kw = dict(hidden=9, epochs=3, batch_size=8, lr=0.01, reg=0.02, seed=3, shuffle=shuffle,
              X_test=X_test, y_test=y_test, dtype=np.float64)
    a = fastmlp.fit(X, y, backend="cython", **kw)
    b = fastmlp.fit(X, y, backend="numpy", **kw)
    _assert_models_agree(a, b)
    assert len(a.history["loss"]) == 3 and len(a.history["test_acc"]) == 3
    for orig, copy in zip(data, copies):
        assert np.array_equal(orig, copy)


def test_fit_backends_agree_with_init(data):
    X, y, _, _ = data
    rng = np.random.default_rng(11)
    D, H, C = X.shape[1], 4, 3
    init = (rng.standard_normal((D, H)), rng.standard_normal(H),
            rng.standard_normal((H, C)), rng.standard_normal(C))
    init_copies = tuple(p.copy() for p in init)
    X_copy, y_copy = X.copy(), y.copy()
    kw = dict(hidden=H, epochs=3, batch_size=10, lr=0.005, reg=0.01, seed=5, init=init)
    a = fastmlp.fit(X, y, backend="cython", **kw)
    b = fastmlp.fit(X, y, backend="numpy", **kw)
    _assert_models_agree(a, b)
    for p, c in zip(init, init_copies):
        assert np.array_equal(p, c)
    for name, p in zip(NAMES, init):
        assert getattr(a, name) is not p
        assert not np.array_equal(getattr(a, name), p)  # training moved away from init
    assert np.array_equal(X, X_copy) and np.array_equal(y, y_copy)


def test_fit_float32_inputs_not_mutated(data):
    """float32 X is used without a copy by fit; it must still not be written."""
    X, y, _, _ = data
    X32 = X.astype(np.float32)
    X32_copy, y_copy = X32.copy(), y.copy()
    m = fastmlp.fit(X32, y, hidden=5, epochs=2, batch_size=7, lr=0.01, seed=1)
    assert m.W1.dtype == np.float32
    assert np.array_equal(X32, X32_copy) and np.array_equal(y, y_copy)


def test_fit_matches_manual_reference_loop(data):
    """fit(backend="cython") equals a hand-written loop over reference.sgd_epoch with the
    documented seeding: He-normal init from default_rng(seed), then one permutation per epoch."""
    X, y, _, _ = data
    N, D = X.shape
    H, C, batch, lr, reg, seed = 6, 3, 9, 0.01, 0.03, 42
    rng = np.random.default_rng(seed)
    W1 = rng.standard_normal((D, H)) * np.sqrt(2.0 / D)
    W2 = rng.standard_normal((H, C)) * np.sqrt(2.0 / H)
    params = (W1, np.zeros(H), W2, np.zeros(C))
    losses, accs = [], []
    for _ in range(3):
        order = rng.permutation(N)
        loss, correct = reference.sgd_epoch(X, y, order, params, lr, reg, batch)
        losses.append(loss / N)
        accs.append(correct / N)
    m = fastmlp.fit(X, y, hidden=H, epochs=3, batch_size=batch, lr=lr, reg=reg, seed=seed)
    for name, p in zip(NAMES, params):
        assert_allclose(getattr(m, name), p, err_msg=name, **FIT_TOL)
    assert_allclose(m.history["loss"], losses, **FIT_TOL)
    assert m.history["train_acc"] == pytest.approx(accs, abs=1e-15)
    assert m.history["test_acc"] == []

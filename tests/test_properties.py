"""Property-based tests (hypothesis): the compiled kernels and the compiled epoch
against independent NumPy computations, over random shapes, both dtypes and
extreme logits."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.testing import assert_allclose

from _helpers import EPOCH_RTOL
from _helpers import tolerance as tol  # the conftest fixture is function-scoped: not for @given
from fastmlp import _sgd, kernels, reference

# Largest logit magnitude per dtype: exp(80) is close to the float32 range.
LOGIT_BOUND = {np.dtype(np.float64): 1e4, np.dtype(np.float32): 80.0}

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

DTYPES = st.sampled_from([np.dtype(np.float32), np.dtype(np.float64)])
BATCH = st.integers(1, 40)
FEATURES = st.integers(1, 30)
HIDDEN = st.integers(1, 20)
CLASSES = st.integers(2, 6)


def _scale(*arrays):
    return max([1.0] + [float(np.max(np.abs(a))) for a in arrays if np.size(a)])


def _floats(dtype, bound):
    width = 32 if np.dtype(dtype) == np.float32 else 64
    return st.floats(-bound, bound, allow_nan=False, allow_infinity=False, width=width)


def _array(draw, dtype, shape, bound):
    return draw(hnp.arrays(dtype, shape, elements=_floats(dtype, bound)))


def _logits(draw, dtype, shape):
    """Logits up to the dtype's bound: a random scale times values in [-1, 1], and
    sometimes entries pinned at -bound, 0 or +bound (the extremes)."""
    L = LOGIT_BOUND[np.dtype(dtype)]
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from([1e-3, 1.0, 10.0, L / 4, L]))
    Z = rng.uniform(-1, 1, size=shape) * scale
    if draw(st.booleans()):
        pinned = rng.random(shape) < 0.3
        Z[pinned] = rng.choice([-L, 0.0, L], size=int(pinned.sum()))
    return np.clip(Z, -L, L).astype(dtype)


# ----------------------------------------------------------------- kernel twins

@st.composite
def bias_relu_case(draw):
    dtype = draw(DTYPES)
    B, H = draw(BATCH), draw(HIDDEN)
    bound = LOGIT_BOUND[dtype]
    return _array(draw, dtype, (B, H), bound), _array(draw, dtype, (H,), bound)


@SETTINGS
@given(bias_relu_case())
def test_bias_relu_matches_numpy(case):
    Z, b = case
    dtype = Z.dtype
    expected = np.maximum(Z.astype(np.float64) + b.astype(np.float64), 0.0)
    out = kernels.bias_relu(Z, b)
    assert out is Z and Z.dtype == dtype
    assert_allclose(Z, expected, **tol(dtype, _scale(expected)))
    assert np.all(Z >= 0)
    # the sign of a correctly rounded sum is exact: same units active
    assert np.array_equal(Z > 0, expected > 0)


@st.composite
def relu_backward_case(draw):
    dtype = draw(DTYPES)
    B, H = draw(BATCH), draw(HIDDEN)
    bound = LOGIT_BOUND[dtype]
    R = np.maximum(_array(draw, dtype, (B, H), bound), 0).astype(dtype)
    dR = _array(draw, dtype, (B, H), bound)
    return dR, R


@SETTINGS
@given(relu_backward_case())
def test_relu_backward_matches_numpy(case):
    dR, R = case
    dtype = dR.dtype
    R_before = R.copy()
    expected = np.where(R > 0, dR.astype(np.float64), 0.0)
    out = kernels.relu_backward(dR, R)
    assert out is dR and dR.dtype == dtype
    assert_allclose(dR, expected, **tol(dtype, _scale(expected)))
    assert np.array_equal(dR, expected.astype(dtype))  # masking is exact
    assert np.array_equal(R, R_before)


@st.composite
def softmax_case(draw):
    dtype = draw(DTYPES)
    B, C = draw(BATCH), draw(CLASSES)
    Z = _logits(draw, dtype, (B, C))
    y = draw(hnp.arrays(np.int64, (B,), elements=st.integers(0, C - 1)))
    return Z, y


def _softmax_xent_numpy(Z, y):
    """Loss and gradient in float64 from the given logits, by log-sum-exp."""
    Z = Z.astype(np.float64)
    shifted = Z - Z.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    s = e.sum(axis=1, keepdims=True)
    rows = np.arange(len(y))
    loss = float(np.sum(np.log(s[:, 0]) - shifted[rows, y]))
    grad = e / s
    grad[rows, y] -= 1.0
    return loss, grad


@SETTINGS
@given(softmax_case())
def test_softmax_xent_grad_matches_numpy(case):
    Z, y = case
    dtype = Z.dtype
    expected_loss, expected_grad = _softmax_xent_numpy(Z, y)
    loss = kernels.softmax_xent_grad(Z, y)
    assert Z.dtype == dtype
    # the loss is a sum of B non-negative terms, each of the size of a logit gap
    assert_allclose(loss, expected_loss, **tol(dtype, len(y) * (1.0 + _scale(expected_loss / len(y)))))
    assert_allclose(Z, expected_grad, **tol(dtype, 1.0))


@SETTINGS
@given(softmax_case())
def test_softmax_xent_grad_finite_for_extreme_logits(case):
    Z, y = case
    dtype = Z.dtype
    loss = kernels.softmax_xent_grad(Z, y)
    assert np.isfinite(loss) and loss >= -tol(dtype)["rtol"] * len(y)
    assert np.isfinite(Z).all()
    # G = P - onehot(y): every entry in [-1, 1], rows sum to 0, label column <= 0
    eps = 4 * np.finfo(dtype).eps * Z.shape[1]
    assert np.all(Z >= -1 - eps) and np.all(Z <= 1 + eps)
    assert_allclose(Z.astype(np.float64).sum(axis=1), 0.0, atol=eps)
    assert np.all(Z[np.arange(len(y)), y] <= eps)


@st.composite
def l2_case(draw):
    dtype = draw(DTYPES)
    shape = draw(st.sampled_from(["1d", "2d"]))
    D, H = draw(FEATURES), draw(HIDDEN)
    shape = (D * H,) if shape == "1d" else (D, H)
    W = _array(draw, dtype, shape, 1e3)
    G = _array(draw, dtype, shape, 1e3)
    lr = draw(st.floats(0.0, 1.0))
    reg = draw(st.floats(0.0, 10.0))
    return W, G, lr, reg


@SETTINGS
@given(l2_case())
def test_l2_sgd_update_matches_numpy(case):
    W, G, lr, reg = case
    dtype = W.dtype
    W64, G64 = W.astype(np.float64), G.astype(np.float64)
    G_before = G.copy()
    expected = W64 - lr * (G64 + 2.0 * reg * W64)
    magnitude = np.abs(W64) + lr * (np.abs(G64) + 2.0 * reg * np.abs(W64))
    out = kernels.l2_sgd_update(W, G, lr, reg)
    assert out is W and W.dtype == dtype
    assert_allclose(W, expected, **tol(dtype, _scale(magnitude)))
    assert np.array_equal(G, G_before)


# --------------------------------------------------------------- compiled epoch

LR_REG = [
    (1e-2, 1e-2),   # moderate, as in training
    (1e-2, 0.0),    # no decay at all
    (5e-3, 30.0),   # strong decay: the lazy scale is written back within the epoch
]


@st.composite
def epoch_case(draw):
    dtype = draw(DTYPES)
    B, D, H, C = draw(BATCH), draw(FEATURES), draw(HIDDEN), draw(CLASSES)
    N = draw(st.integers(1, 60))
    lr, reg = draw(st.sampled_from(LR_REG))
    slices = [1]
    if H % 2 == 0:
        slices.append(2)
    columns = draw(st.one_of(st.none(), st.integers(1, H)))
    seed = draw(st.integers(0, 2**32 - 1))
    return dtype, B, D, H, C, N, lr, reg, slices, columns, seed


def _epoch_data(dtype, D, H, C, N, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, D)).astype(dtype)
    y = rng.integers(0, C, size=N).astype(np.int64)
    order = rng.permutation(N).astype(np.int64)
    # continuous random weights and biases: exact logit ties have probability zero
    params = (rng.standard_normal((D, H)) * np.sqrt(2.0 / D), rng.standard_normal(H) * 0.1,
              rng.standard_normal((H, C)) * np.sqrt(2.0 / H), rng.standard_normal(C) * 0.1)
    return X, y, order, tuple(p.astype(dtype) for p in params)


@SETTINGS
@given(epoch_case())
def test_compiled_epoch_matches_reference(case):
    dtype, B, D, H, C, N, lr, reg, slices, columns, seed = case
    X, y, order, params = _epoch_data(dtype, D, H, C, N, seed)
    X_before, y_before, order_before = X.copy(), y.copy(), order.copy()

    ref_params = tuple(p.copy() for p in params)
    ref_loss, ref_correct = reference.sgd_epoch(X, y, order, ref_params, lr, reg, B)
    assert np.isfinite(ref_loss)

    for n_slices in slices:
        got_params = tuple(p.copy() for p in params)
        cols = None if columns is None else max(1, min(columns, H // n_slices))
        ws = _sgd.Workspace(B, D, H, C, dtype, n_slices, cols)
        loss, n_correct = _sgd.sgd_epoch(X, y, order, *got_params, ws, lr, reg)

        label = f"n_slices={n_slices}, gemm_columns={cols}"
        assert n_correct == ref_correct, label
        assert_allclose(loss, ref_loss, **tol(dtype, N, EPOCH_RTOL), err_msg=label)
        for name, got, want in zip(("W1", "b1", "W2", "b2"), got_params, ref_params):
            assert got.dtype == dtype
            assert_allclose(got, want, **tol(dtype, _scale(want), EPOCH_RTOL), err_msg=f"{name}, {label}")
    assert np.array_equal(X, X_before) and np.array_equal(y, y_before) and np.array_equal(order, order_before)


@SETTINGS
@given(epoch_case())
def test_compiled_epoch_deterministic(case):
    # Same inputs, same workspace sizes: bitwise the same weights, loss and count.
    dtype, B, D, H, C, N, lr, reg, slices, columns, seed = case
    X, y, order, params = _epoch_data(dtype, D, H, C, N, seed)
    for n_slices in slices:
        runs = []
        for _ in range(2):
            p = tuple(a.copy() for a in params)
            ws = _sgd.Workspace(B, D, H, C, dtype, n_slices)
            out = _sgd.sgd_epoch(X, y, order, *p, ws, lr, reg)
            runs.append((out, p))
        (out_a, p_a), (out_b, p_b) = runs
        assert out_a == out_b
        for a, b in zip(p_a, p_b):
            assert np.array_equal(a, b)

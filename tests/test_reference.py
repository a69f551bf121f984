"""The NumPy reference: gradient check, one SGD step worked by hand, softmax."""

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from fastmlp import _sgd, reference

# ------------------------------------------------------------ (a) finite-difference check

B, D, H, C, REG = 5, 4, 3, 3, 0.1
EPS = 1e-6
KINK_MARGIN = 0.05  # |pre-activation| must exceed this, far more than EPS * |X| moves it


def _tiny_problem():
    """A random tiny net whose hidden pre-activations stay away from the ReLU kink,
    with both active and inactive units (so the mask is exercised)."""
    rng = np.random.default_rng(2024)
    for _ in range(1000):
        X = rng.standard_normal((B, D))
        y = rng.integers(0, C, size=B)
        params = (rng.standard_normal((D, H)), 0.3 * rng.standard_normal(H),
                  rng.standard_normal((H, C)), 0.3 * rng.standard_normal(C))
        A1 = X @ params[0] + params[1]
        if np.min(np.abs(A1)) > KINK_MARGIN and (A1 > 0).any() and (A1 < 0).any():
            return X, y, params
    raise AssertionError("could not draw a net away from the ReLU kink")


def test_gradient_matches_central_differences():
    X, y, params = _tiny_problem()
    cost, data_loss, n_correct, grads = reference.cost_and_grads(X, y, params, REG)

    # the cost is the data loss plus the L2 penalty on the two weight matrices only
    W1, b1, W2, b2 = params
    assert cost == pytest.approx(data_loss + REG * (np.sum(W1**2) + np.sum(W2**2)), rel=1e-14)

    for name, p, g in zip(("W1", "b1", "W2", "b2"), params, grads):
        assert g.shape == p.shape, name
        numeric = np.empty_like(p)
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + EPS
            plus = reference.cost_and_grads(X, y, params, REG)[0]
            p[idx] = old - EPS
            minus = reference.cost_and_grads(X, y, params, REG)[0]
            p[idx] = old
            numeric[idx] = (plus - minus) / (2 * EPS)
        assert_allclose(g, numeric, rtol=1e-6, atol=1e-7, err_msg=name)
    # the derivative with respect to an inactive unit's incoming weights is the L2 term alone
    inactive = (X @ W1 + b1 < 0).all(axis=0)
    if inactive.any():
        assert_allclose(grads[0][:, inactive], 2 * REG * W1[:, inactive], rtol=1e-12)


# ------------------------------------------------------------- (b) one step worked by hand

LR, REG_HAND = 0.1, 0.05
X_HAND = [[1.0, 2.0], [0.0, 1.0]]
Y_HAND = [1, 0]
W1_HAND = [[1.0, 1.0], [0.5, -1.0]]
B1_HAND = [0.5, 0.0]
W2_HAND = [[1.0, -1.0], [2.0, 0.5]]
B2_HAND = [0.0, 0.5]


def _hand_step():
    """The step on (X_HAND, Y_HAND) worked out with plain floats.

    Sample 1: A1 = [1*1 + 2*0.5 + 0.5, 1*1 + 2*(-1) + 0] = [2.5, -1] -> R = [2.5, 0]
              A2 = [2.5*1 + 0, 2.5*(-1) + 0.5] = [2.5, -2.0], label 1 (predicted 0: wrong)
              p0 = softmax(A2)[0] = 1 / (1 + exp(-4.5));  G1 = [p0, p1 - 1] = [p0, -p0]
              loss = -log p1 = log(1 + exp(4.5))
    Sample 2: A1 = [0 + 0.5 + 0.5, 0 - 1 + 0] = [1, -1] -> R = [1, 0]
              A2 = [1, -1 + 0.5] = [1, -0.5], label 0 (predicted 0: right)
              q1 = softmax(A2)[1] = 1 / (1 + exp(1.5));   G2 = [q0 - 1, q1] = [-q1, q1]
              loss = -log q0 = log(1 + exp(-1.5))
    The second hidden unit is inactive for both, so only column 0 of dA1 is nonzero:
      dR = G @ W2.T: sample 1 [p0*1 + (-p0)(-1), ...] = [2 p0, .], sample 2 [-2 q1, .]
    """
    p0 = 1.0 / (1.0 + math.exp(-4.5))
    q1 = 1.0 / (1.0 + math.exp(1.5))
    data_loss = math.log(1.0 + math.exp(4.5)) + math.log(1.0 + math.exp(-1.5))
    n_correct = 1

    # data-term gradients
    g = 2.5 * p0 - q1                      # R.T @ G, row 0 (row 1 of R.T is all zeros)
    dW2 = [[g, -g], [0.0, 0.0]]
    db2 = [p0 - q1, q1 - p0]
    dA1 = [[2 * p0, 0.0], [-2 * q1, 0.0]]  # rows: samples; unit 2 masked out
    dW1 = [[1.0 * dA1[0][0] + 0.0 * dA1[1][0], 0.0],
           [2.0 * dA1[0][0] + 1.0 * dA1[1][0], 0.0]]
    db1 = [dA1[0][0] + dA1[1][0], 0.0]

    def step_w(W, dW):
        return [[W[i][j] - LR * (dW[i][j] + 2 * REG_HAND * W[i][j]) for j in range(2)] for i in range(2)]

    def step_b(b, db):
        return [b[j] - LR * db[j] for j in range(2)]   # biases are not regularized

    new = (step_w(W1_HAND, dW1), step_b(B1_HAND, db1), step_w(W2_HAND, dW2), step_b(B2_HAND, db2))
    return data_loss, n_correct, new


def _hand_params():
    return tuple(np.array(a, dtype=np.float64) for a in (W1_HAND, B1_HAND, W2_HAND, B2_HAND))


def test_hand_step_numbers_are_what_we_think():
    # a guard on the worked example itself: the numbers above, spelled out
    data_loss, n_correct, (W1, b1, W2, b2) = _hand_step()
    assert data_loss == pytest.approx(4.511048 + 0.201413, abs=1e-5)
    assert W1[1][1] == pytest.approx(-1.0 * (1 - 2 * LR * REG_HAND))  # inactive column: decay only
    assert b1[1] == 0.0 and W2[1][0] == pytest.approx(2.0 * 0.99)


def test_reference_sgd_step_by_hand():
    data_loss, n_correct, expected = _hand_step()
    params = _hand_params()
    X, y = np.array(X_HAND), np.array(Y_HAND)
    loss, correct = reference.sgd_step(X, y, params, LR, REG_HAND)
    assert loss == pytest.approx(data_loss, rel=1e-13)
    assert correct == n_correct
    for name, p, e in zip(("W1", "b1", "W2", "b2"), params, expected):
        assert_allclose(p, np.array(e), rtol=1e-13, atol=1e-14, err_msg=name)


def test_compiled_sgd_epoch_by_hand():
    data_loss, n_correct, expected = _hand_step()
    W1, b1, W2, b2 = _hand_params()
    X = np.array(X_HAND, dtype=np.float64)
    y = np.array(Y_HAND, dtype=np.int64)
    ws = _sgd.Workspace(2, 2, 2, 2, np.float64)
    loss, correct = _sgd.sgd_epoch(X, y, np.arange(2, dtype=np.int64), W1, b1, W2, b2, ws, LR, REG_HAND)
    assert loss == pytest.approx(data_loss, rel=1e-13)
    assert correct == n_correct
    for name, p, e in zip(("W1", "b1", "W2", "b2"), (W1, b1, W2, b2), expected):
        assert_allclose(p, np.array(e), rtol=1e-13, atol=1e-14, err_msg=name)


def test_hand_step_single_sample_batches():
    """batch 1: the second step sees the weights after the first; compiled == reference."""
    X = np.array(X_HAND, dtype=np.float64)
    y = np.array(Y_HAND, dtype=np.int64)
    ref = _hand_params()
    ref_loss, ref_correct = reference.sgd_epoch(X, y, np.arange(2), ref, LR, REG_HAND, 1)
    W1, b1, W2, b2 = _hand_params()
    ws = _sgd.Workspace(1, 2, 2, 2, np.float64)
    loss, correct = _sgd.sgd_epoch(X, y, np.arange(2, dtype=np.int64), W1, b1, W2, b2, ws, LR, REG_HAND)
    # the first sample's loss is the hand value; the second one differs from the one-batch step
    assert ref_loss > math.log(1.0 + math.exp(4.5))
    assert loss == pytest.approx(ref_loss, rel=1e-13)
    assert correct == ref_correct
    for p, e in zip((W1, b1, W2, b2), ref):
        assert_allclose(p, e, rtol=1e-13, atol=1e-14)


# --------------------------------------------------------------------------- (c) softmax

def test_softmax_rows_sum_to_one(rng):
    Z = 5 * rng.standard_normal((10, 7))
    P = reference.softmax(Z)
    assert P.shape == Z.shape
    assert np.all(P > 0)
    assert_allclose(P.sum(axis=1), 1.0, rtol=1e-14)
    E = np.exp(Z)
    assert_allclose(P, E / E.sum(axis=1, keepdims=True), rtol=1e-13)


def test_softmax_stable_for_huge_logits():
    Z = np.array([[1e4, -1e4, 0.0], [1e4, 1e4, 1e4], [-1e4, -1e4 + 1.0, -1e4]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        P = reference.softmax(Z)
        logP = reference.log_softmax(Z)
    assert np.all(np.isfinite(P)) and np.all(np.isfinite(logP))
    assert_allclose(P.sum(axis=1), 1.0, rtol=1e-14)
    assert_allclose(P[0], [1.0, 0.0, 0.0], atol=1e-300)
    assert_allclose(P[1], [1 / 3] * 3, rtol=1e-14)
    e = math.e
    assert_allclose(P[2], [1 / (2 + e), e / (2 + e), 1 / (2 + e)], rtol=1e-14)
    assert logP[0, 1] == pytest.approx(-2e4, rel=1e-15)

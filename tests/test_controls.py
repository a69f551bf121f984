"""Training controls: momentum and Nesterov, lr schedules, early stopping, sample and class
weights, sparse input. Each is checked against an independent expectation: scikit-learn's
own MLPClassifier, a hand-written loop, repeated or removed rows, or the reference."""

import hashlib
import warnings

import numpy as np
import pytest
import scipy.sparse
from conftest import tolerance
from numpy.testing import assert_allclose, assert_array_equal

import fastmlp
from fastmlp import kernels, reference

NAMES = ("W1", "b1", "W2", "b2")


def _weights(model):
    return (model.W1, model.b1, model.W2, model.b2)


def _assert_same(a, b):
    for name, x, z in zip(NAMES, _weights(a), _weights(b)):
        assert_array_equal(x, z, err_msg=name)


def _problem(N=60, D=7, C=4, seed=5):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, D))
    y = rng.integers(0, C, N)
    y[:C] = np.arange(C)  # every class present
    return X, y


# ------------------------------------------------------------------ the default is unchanged

def _seed_plain_sgd(X, y, hidden, epochs, batch_size, lr, reg, seed):
    """The seed's fit before the controls existed, written out independently: He init from
    one generator, a permutation per epoch, W -= lr * dW with the reference's gradients."""
    rng = np.random.default_rng(seed)
    D, C = X.shape[1], int(y.max()) + 1
    params = [rng.standard_normal((D, hidden)) * np.sqrt(2.0 / D), np.zeros(hidden),
              rng.standard_normal((hidden, C)) * np.sqrt(2.0 / hidden), np.zeros(C)]
    for _ in range(epochs):
        order = rng.permutation(len(y))
        for start in range(0, len(y), batch_size):
            rows = order[start:start + batch_size]
            grads = reference.cost_and_grads(X[rows], y[rows], params, reg)[3]
            for p, g in zip(params, grads):
                p -= lr * g
    return params


def test_default_reference_fit_is_the_seeds_plain_sgd_bitwise():
    X, y = _problem(N=47)
    model = fastmlp.fit(X, y, hidden=8, epochs=3, batch_size=10, lr=1e-2, reg=1e-3, backend="numpy")
    for name, ours, seed in zip(NAMES, _weights(model), _seed_plain_sgd(X, y, 8, 3, 10, 1e-2, 1e-3, 0)):
        assert_array_equal(ours, seed, err_msg=name)


# sha256 of the weights and history of small default fits, computed with the code from
# before the training controls existed. Results depend on the BLAS kernels (SciPy's for the
# compiled step, NumPy's for the reference), so the checksums are compared only on the BLAS
# they were recorded with (CI's run at the oldest declared versions has older ones).
CHECKSUM_BLAS = ("openblas", "0.3.30", "SkylakeX")
CHECKSUMS = {
    ("numpy", None, "float64"): "7522dfaed2479ce8979d821db5d1cea053c4fb21eda42c7395cb04800f5307e0",
    ("numpy", None, "float32"): "07bad8caf5557252a97c41184eb6daabe08af36f73cb40b0b739e81965d2f11f",
    ("cython", 1, "float64"): "b146cef3c7eaa03b2f5366ed0bf669e8537c6537a04aaeef7d38de86cc933fa4",
    ("cython", 2, "float64"): "16ddf034e47b11532156f4b2da864404ad16b26fed954785cc474302795bb730",
    ("cython", 1, "float32"): "415f59c09a14f169aea0d8c74826521793f05f100a3fdd549327ec9b39fce433",
    ("cython", 2, "float32"): "3217daf09ccbe9c9f0f4f24e341dbba137a24a9330744fa6cfbb92795ae402f6",
}


def _blas_of_scipy():
    from threadpoolctl import threadpool_info
    import scipy.linalg  # noqa: F401  (loads the BLAS the compiled step calls)
    return {(i["internal_api"], i.get("version"), i.get("architecture")) for i in threadpool_info()}


@pytest.mark.parametrize("backend, threads, dtype", sorted(CHECKSUMS, key=str))
def test_default_fit_bitwise_as_before_the_controls(backend, threads, dtype):
    if CHECKSUM_BLAS not in _blas_of_scipy():
        pytest.skip(f"checksums were recorded with {CHECKSUM_BLAS}")
    rng = np.random.default_rng(2024)
    X, y = rng.standard_normal((97, 13)), rng.integers(0, 5, 97)
    m = fastmlp.fit(X, y, hidden=16, epochs=3, batch_size=10, lr=1e-2, reg=1e-3, seed=0,
                    dtype=dtype, backend=backend, n_threads=threads)
    digest = hashlib.sha256()
    for w in _weights(m):
        digest.update(np.ascontiguousarray(w).tobytes())
    digest.update(np.array(m.history["loss"] + m.history["train_acc"]).tobytes())
    assert digest.hexdigest() == CHECKSUMS[backend, threads, dtype]


@pytest.mark.parametrize("backend", ["numpy", "cython"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_all_ones_sample_weight_is_the_unweighted_fit_bitwise(backend, dtype):
    X, y = _problem(N=53)
    kw = dict(hidden=16, epochs=2, batch_size=10, lr=1e-2, reg=1e-3, backend=backend, dtype=dtype)
    plain = fastmlp.fit(X, y, **kw)
    ones = fastmlp.fit(X, y, sample_weight=np.ones(len(y)), **kw)
    _assert_same(plain, ones)
    assert plain.history["loss"] == ones.history["loss"]
    assert plain.history["train_acc"] == ones.history["train_acc"]


# ----------------------------------------------------------------- equal to scikit-learn

def _sklearn_fit(X, y, init, epochs, batch_size, lr, reg, **controls):
    """scikit-learn's MLPClassifier(solver="sgd") from the weights ``init``, unshuffled, mapped
    as the README says: learning_rate_init = lr * batch_size, alpha = 2 * reg."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier as SklearnMLP

    sk = SklearnMLP(hidden_layer_sizes=(init[0].shape[1],), solver="sgd", batch_size=batch_size,
                    learning_rate_init=lr * batch_size, alpha=2 * reg, shuffle=False,
                    momentum=controls.get("momentum", 0.0),
                    nesterovs_momentum=controls.get("nesterov", False),
                    learning_rate=controls.get("lr_schedule", "constant"),
                    power_t=controls.get("power_t", 0.5), tol=controls.get("tol", 1e-4),
                    n_iter_no_change=controls.get("n_iter_no_change", 10**6),
                    max_iter=1, warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk.fit(X, y, sample_weight=controls.get("sample_weight"))   # sets up the fitted attributes
        sk.coefs_ = [init[0].copy(), init[2].copy()]                  # then start from our weights
        sk.intercepts_ = [init[1].copy(), init[3].copy()]
        sk.t_, sk.loss_curve_, sk.best_loss_, sk._no_improvement_count = 0, [], np.inf, 0
        sk.max_iter = epochs
        sk.fit(X, y, sample_weight=controls.get("sample_weight"))   # a new optimizer: zero velocities
    return sk.coefs_[0], sk.intercepts_[0], sk.coefs_[1], sk.intercepts_[1]


@pytest.mark.parametrize("backend", ["numpy", "cython"])
@pytest.mark.parametrize("controls, epochs", [
    (dict(momentum=0.9), 3),
    (dict(momentum=0.9, nesterov=True), 3),
    (dict(lr_schedule="invscaling"), 3),
    (dict(lr_schedule="invscaling", power_t=0.3, momentum=0.9, nesterov=True), 3),
    # a tol no epoch can meet: the rate drops after epochs 3 and 5
    (dict(lr_schedule="adaptive", tol=100.0, n_iter_no_change=1), 6),
], ids=["momentum", "nesterov", "invscaling", "invscaling-nesterov", "adaptive"])
def test_equals_sklearn_sgd(controls, epochs, backend):
    X, y = _problem(N=60)
    B, lr, reg = 10, 0.01, 0.05
    start = fastmlp.fit(X, y, hidden=6, epochs=0, seed=1)
    init = (start.W1, start.b1 + 0.1, start.W2, start.b2 - 0.1)
    ours = fastmlp.fit(X, y, hidden=6, epochs=epochs, batch_size=B, lr=lr, reg=reg, shuffle=False,
                       init=init, backend=backend, n_threads=1, **controls)
    theirs = _sklearn_fit(X, y, init, epochs, B, lr, reg, **controls)
    for name, a, b in zip(NAMES, _weights(ours), theirs):
        assert_allclose(a, b, rtol=0, atol=1e-10, err_msg=name)
    if controls.get("lr_schedule") == "adaptive":
        assert ours.history["lr"] == [lr] * 3 + [lr / 5] * 2 + [lr / 25]


def test_weights_equal_sklearn_when_each_batch_sums_to_its_size():
    X, y = _problem(N=60)
    B = 10
    w = np.random.default_rng(0).uniform(0.2, 2.0, len(y))
    w = (w.reshape(-1, B) / w.reshape(-1, B).sum(axis=1, keepdims=True) * B).ravel()
    start = fastmlp.fit(X, y, hidden=6, epochs=0, seed=1)
    init = _weights(start)
    ours = fastmlp.fit(X, y, hidden=6, epochs=3, batch_size=B, lr=0.01, reg=0.05, shuffle=False,
                       init=init, backend="numpy", sample_weight=w, momentum=0.5)
    theirs = _sklearn_fit(X, y, init, 3, B, 0.01, 0.05, sample_weight=w, momentum=0.5)
    for name, a, b in zip(NAMES, _weights(ours), theirs):
        assert_allclose(a, b, rtol=0, atol=1e-10, err_msg=name)


# ------------------------------------------------------ compiled path == extended reference

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("controls", [
    dict(momentum=0.9),
    dict(momentum=0.8, nesterov=True),
    dict(sample_weight="random"),
    dict(sample_weight="random", momentum=0.9, nesterov=True, lr_schedule="invscaling"),
    dict(class_weight="balanced", momentum=0.7, lr_schedule="adaptive", tol=10.0, n_iter_no_change=1),
    dict(early_stopping=True, momentum=0.9, sample_weight="random"),
], ids=["momentum", "nesterov", "weights", "weights-nesterov-invscaling", "balanced-adaptive",
        "early-stopping"])
def test_compiled_equals_reference(controls, threads, dtype):
    # odd sizes, a partial last batch (N = 4 * 11 + 5), three hidden slices of 8
    X, y = _problem(N=49, D=13, C=5, seed=11)
    if controls.get("sample_weight") == "random":
        controls = dict(controls, sample_weight=np.random.default_rng(1).uniform(0, 2, len(y)))
    kw = dict(hidden=24, epochs=4, batch_size=11, lr=0.01, reg=0.01, seed=3, dtype=dtype, **controls)
    ref = fastmlp.fit(X, y, backend="numpy", **kw)
    fast = fastmlp.fit(X, y, backend="cython", n_threads=threads, **kw)
    for name, a, b in zip(NAMES, _weights(fast), _weights(ref)):
        assert_allclose(a, b, **tolerance(dtype, np.max(np.abs(b))), err_msg=name)
    for key in ("loss", "train_acc", "lr", "val_acc"):
        assert_allclose(fast.history[key], ref.history[key], rtol=100 * tolerance(dtype)["rtol"], err_msg=key)
    assert fast.best_epoch == ref.best_epoch


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("threads, slices, columns, small_gemm, fused", [
    (1, 4, None, False, True), (4, 4, None, False, True), (4, 4, 3, False, True), (2, 4, 5, False, True),
    (2, 2, None, True, True), (2, 2, None, True, False), (1, 1, None, False, True), (1, 1, 16, False, False),
    (2, 2, 5, False, True), (2, 2, None, 1, 1)])
@pytest.mark.parametrize("momentum, nesterov, weighted", [
    (0.9, False, False), (0.9, True, False), (0.0, False, True), (0.6, True, True)])
def test_compiled_step_with_controls_on_the_whole_team(momentum, nesterov, weighted, threads, slices,
                                                       columns, small_gemm, fused, dtype):
    """sgd_epoch itself, every segment on exactly `threads` members (so each member
    updates the velocities of its own slices), several slices, optional column blocks
    of the big products or fastmlp's unpacked kernels (where the CPU has them), W1's
    momentum update fused into the unpacked kernel or as BLAS and a pass, a partial
    last batch, 3 epochs: equal to the reference. small_gemm=1 and fused_momentum=1 ask
    for the AVX2 kernels, which an AVX-512 CPU would not run otherwise."""
    from _helpers import random_problem
    from fastmlp import _sgd
    rng = np.random.default_rng(7)
    X, y, init = random_problem(rng, 43, 11, 32, 5, dtype)
    w = rng.uniform(0, 2, 43).astype(dtype) if weighted else None
    fast = tuple(p.copy() for p in init)
    ref = tuple(p.copy() for p in init)
    v_fast = tuple(np.zeros_like(p) for p in init)
    v_ref = tuple(np.zeros_like(p) for p in init)
    ws = _sgd.Workspace(9, 11, 32, 5, dtype, slices, columns, max_threads=threads, adaptive=False,
                        small_gemm=small_gemm, fused_momentum=fused)
    best = kernels.small_gemm_isa()    # 0 without kernels
    isa = 0 if not fused else best if fused is True else min(best, fused)
    width = kernels.small_gemm_width(dtype, isa) if isa else 0
    assert ws.momentum_isa == (isa if width and (32 // slices) % width == 0 else 0)
    if small_gemm is not True and small_gemm == 1 and best:
        assert ws.small_gemm_isa == 1
    for epoch in range(3):
        order = rng.permutation(43)
        lr = 0.02 / (epoch + 1)
        got = _sgd.sgd_epoch(X, y, order, *fast, ws, lr, 0.05, sample_weight=w,
                             velocities=v_fast if momentum else None, momentum=momentum, nesterov=nesterov)
        want = reference.sgd_epoch(X, y, order, ref, lr, 0.05, 9, velocities=v_ref, momentum=momentum,
                                   nesterov=nesterov, sample_weight=w)
        assert_allclose(got, want, rtol=10 * tolerance(dtype)["rtol"])
        assert isinstance(got[1], float if weighted else int)
    for name, a, b in zip(NAMES, fast + v_fast, ref + v_ref):
        assert_allclose(a, b, **tolerance(dtype, np.max(np.abs(b))), err_msg=name)


def test_compiled_step_checks_its_controls():
    from fastmlp import _sgd
    X, y = _problem(N=20, D=4, C=3)
    params = tuple(np.ascontiguousarray(p) for p in _weights(fastmlp.fit(X, y, hidden=8, epochs=0)))
    ws = _sgd.Workspace(5, 4, 8, 3, np.float64)
    order = np.arange(20)
    with pytest.raises(ValueError, match="velocities"):
        _sgd.sgd_epoch(X, y, order, *params, ws, 0.1, 0.0, momentum=0.9)
    with pytest.raises(ValueError, match="velocities"):
        _sgd.sgd_epoch(X, y, order, *params, ws, 0.1, 0.0, momentum=0.9,
                       velocities=tuple(np.zeros(3) for _ in params))
    with pytest.raises(ValueError, match="momentum"):
        _sgd.sgd_epoch(X, y, order, *params, ws, 0.1, 0.0, momentum=1.0,
                       velocities=tuple(np.zeros_like(p) for p in params))
    with pytest.raises(ValueError, match="sample_weight"):
        _sgd.sgd_epoch(X, y, order, *params, ws, 0.1, 0.0, sample_weight=np.ones(3))


def test_weighted_kernels_equal_numpy():
    from fastmlp import kernels
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((6, 4)) * 3
    y = rng.integers(0, 4, 6)
    w = rng.uniform(0, 2, 6)
    G = Z.copy()
    loss = kernels.softmax_xent_grad(G, y, w)
    P = reference.softmax(Z)
    assert loss == pytest.approx(-np.sum(w * np.log(P[np.arange(6), y])), rel=1e-13)
    assert_allclose(G, w[:, None] * (P - reference.onehot(y, 4)), rtol=1e-13, atol=1e-15)
    assert kernels.count_correct(Z, y, w) == pytest.approx(np.sum(w[np.argmax(Z, axis=1) == y]), rel=1e-15)
    W, V, Gw = rng.standard_normal((3, 5)), rng.standard_normal((3, 5)), rng.standard_normal((3, 5))
    for nesterov in (False, True):
        W_ref, V_ref = [W.copy()], [V.copy()]
        reference.sgd_update(W_ref, [Gw + 2 * 0.1 * W], 0.05, V_ref, 0.9, nesterov)
        W_k, V_k = W.copy(), V.copy()
        kernels.momentum_update(W_k, V_k, Gw, 0.05, 0.1, 0.9, nesterov)
        assert_allclose(W_k, W_ref[0], rtol=1e-14)
        assert_allclose(V_k, V_ref[0], rtol=1e-14)


# --------------------------------------------------------------------------- properties

@pytest.mark.parametrize("backend", ["numpy", "cython"])
@pytest.mark.parametrize("controls", [
    dict(momentum=0.9, nesterov=True, lr_schedule="invscaling"),
    dict(momentum=0.5, lr_schedule="adaptive", tol=10.0, n_iter_no_change=1),
    dict(lr_schedule="adaptive", tol=10.0, n_iter_no_change=1, sample_weight="random"),
])
def test_a_scheduled_fit_equals_a_chain_of_one_epoch_fits(controls, backend):
    X, y = _problem(N=50)
    if controls.get("sample_weight") == "random":
        controls = dict(controls, sample_weight=np.random.default_rng(2).uniform(0, 2, len(y)))
    kw = dict(hidden=8, batch_size=10, lr=0.02, reg=0.01, backend=backend, n_threads=1, **controls)
    whole = fastmlp.fit(X, y, epochs=5, seed=np.random.default_rng(4), **kw)
    stream = np.random.default_rng(4)
    chain = fastmlp.fit(X, y, epochs=1, seed=stream, **kw)
    history = {k: list(v) for k, v in chain.history.items()}
    for _ in range(4):
        chain = fastmlp.fit(X, y, epochs=1, seed=stream, init=chain, **kw)
        for k, v in chain.history.items():
            history[k] += v
    _assert_same(whole, chain)
    assert history == whole.history
    assert len(set(whole.history["lr"])) > 1   # the schedule did change the rate


def test_integer_weights_in_one_full_batch_equal_repeated_rows():
    X, y = _problem(N=20)
    counts = np.random.default_rng(3).integers(0, 4, len(y))
    counts[:4] = 1  # every class keeps a row
    kw = dict(hidden=8, epochs=4, lr=0.01, reg=0.01, shuffle=False, backend="numpy", momentum=0.9)
    weighted = fastmlp.fit(X, y, batch_size=len(y), sample_weight=counts, **kw)
    repeated = fastmlp.fit(np.repeat(X, counts, axis=0), np.repeat(y, counts),
                           batch_size=int(counts.sum()), **kw)
    for name, a, b in zip(NAMES, _weights(weighted), _weights(repeated)):
        assert_allclose(a, b, rtol=1e-12, atol=1e-13, err_msg=name)
    assert_allclose(weighted.history["loss"], repeated.history["loss"], rtol=1e-12)
    assert_allclose(weighted.history["train_acc"], repeated.history["train_acc"], rtol=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "cython"])
def test_zero_weights_equal_removing_the_rows(backend):
    X, y = _problem(N=30)
    keep = np.ones(len(y), bool)
    keep[[5, 9, 17, 22, 29]] = False
    kw = dict(hidden=8, epochs=3, lr=0.01, reg=0.01, shuffle=False, backend=backend, momentum=0.9)
    weighted = fastmlp.fit(X, y, batch_size=len(y), sample_weight=keep.astype(float), **kw)
    removed = fastmlp.fit(X[keep], y[keep], batch_size=int(keep.sum()), **kw)
    for name, a, b in zip(NAMES, _weights(weighted), _weights(removed)):
        assert_allclose(a, b, rtol=1e-12, atol=1e-13, err_msg=name)


@pytest.mark.parametrize("backend", ["numpy", "cython"])
def test_early_stopping_returns_the_best_epoch_and_is_deterministic(backend):
    X, y = _problem(N=200, D=6, C=3, seed=8)
    kw = dict(hidden=16, epochs=40, batch_size=20, lr=0.05, reg=1e-3, backend=backend,
              early_stopping=True, n_iter_no_change=3, validation_fraction=0.2, seed=6)
    model = fastmlp.fit(X, y, **kw)
    val = model.history["val_acc"]
    n = len(val)
    assert n < 40                                  # it stopped
    best = model.best_epoch
    assert val[best - 1] == max(val) and best == val.index(max(val)) + 1
    assert n - best == 4                           # > 3 epochs without improvement by tol
    # the returned weights are the best epoch's: retrain that many epochs without the rule
    # (with a huge patience, so the same hold-out is kept and nothing stops it)
    again = fastmlp.fit(X, y, **dict(kw, epochs=best, n_iter_no_change=10**6))
    _assert_same(model, again)
    _assert_same(model, fastmlp.fit(X, y, **kw))  # deterministic
    # the hold-out is stratified: 0.2 of each class, give or take one row
    from fastmlp._controls import validation_split
    train, held = validation_split(y, 0.2, np.random.default_rng(0), 3)
    assert len(held) == 40 and len(np.intersect1d(train, held)) == 0 and len(train) + 40 == 200
    for c in range(3):
        assert abs(np.sum(y[held] == c) - 0.2 * np.sum(y == c)) < 1


def test_early_stopping_leaves_the_training_stream_alone():
    X, y = _problem(N=80)
    kw = dict(hidden=8, epochs=2, batch_size=10, lr=0.01, backend="numpy")
    # the initial weights come from the seed's stream before any split is drawn
    a = fastmlp.fit(X, y, epochs=0, **{k: v for k, v in kw.items() if k != "epochs"})
    b = fastmlp.fit(X, y, epochs=0, early_stopping=True, **{k: v for k, v in kw.items() if k != "epochs"})
    _assert_same(a, b)
    # and a fit without it is the default fit
    _assert_same(fastmlp.fit(X, y, **kw), fastmlp.fit(X, y, early_stopping=False, **kw))


def test_loss_stopping_only_when_asked():
    X, y = _problem(N=40)
    kw = dict(hidden=8, epochs=30, batch_size=10, lr=1e-3, backend="numpy")
    assert len(fastmlp.fit(X, y, tol=10.0, **kw).history["loss"]) == 30  # None: all epochs
    # a tol no epoch meets: epoch 1 sets the best, epochs 2..4 stall, 4 > 2 stops
    assert len(fastmlp.fit(X, y, tol=10.0, n_iter_no_change=2, **kw).history["loss"]) == 4


def test_adaptive_stops_once_the_rate_is_tiny():
    X, y = _problem(N=40)
    model = fastmlp.fit(X, y, hidden=8, epochs=100, batch_size=10, lr=1e-5, backend="numpy",
                        lr_schedule="adaptive", tol=10.0, n_iter_no_change=1)
    lrs = model.history["lr"]
    # 1e-5 -> 2e-6 -> 4e-7 (<= 1e-6), and the stall after that stops training
    assert lrs == [1e-5] * 3 + [1e-5 / 5] * 2 + [1e-5 / 5 / 5] * 2


def test_class_weight_balanced_and_dict():
    X, y = _problem(N=40, C=3)
    y = np.where(np.arange(40) < 30, 0, np.where(np.arange(40) < 36, 1, 2))
    kw = dict(hidden=8, epochs=2, batch_size=10, lr=0.01, backend="numpy")
    counts = np.bincount(y)
    balanced = fastmlp.fit(X, y, class_weight="balanced", **kw)
    by_hand = fastmlp.fit(X, y, sample_weight=(40 / (3 * counts))[y], **kw)
    _assert_same(balanced, by_hand)
    both = fastmlp.fit(X, y, class_weight={1: 3.0}, sample_weight=np.full(40, 0.5), **kw)
    _assert_same(both, fastmlp.fit(X, y, sample_weight=np.where(y == 1, 1.5, 0.5), **kw))
    # sklearn's definition of "balanced"
    from sklearn.utils.class_weight import compute_class_weight
    from fastmlp._controls import class_weights
    assert_allclose(class_weights("balanced", y, 3), compute_class_weight("balanced", classes=np.arange(3), y=y))


def test_weighted_history_and_validation_accuracy():
    X, y = _problem(N=40)
    w = np.random.default_rng(0).uniform(0.5, 3, 40)
    m = fastmlp.fit(X, y, hidden=8, epochs=1, batch_size=40, lr=0.01, shuffle=False, backend="numpy",
                    sample_weight=w, momentum=0.5)
    start = fastmlp.fit(X, y, hidden=8, epochs=0, batch_size=40)
    _, data_loss, correct, _ = reference.cost_and_grads(X, y, _weights(start), 0.01, w)
    assert m.history["loss"] == [pytest.approx(data_loss / w.sum(), rel=1e-14)]
    assert m.history["train_acc"] == [pytest.approx(correct / w.sum(), rel=1e-14)]


@pytest.mark.parametrize("backend", ["numpy", "cython"])
@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_input_equals_dense(fmt, backend):
    rng = np.random.default_rng(0)
    X = scipy.sparse.random(45, 20, density=0.2, format=fmt, random_state=1) * 3
    y = rng.integers(0, 3, 45)
    X_before = X.copy()
    kw = dict(hidden=8, epochs=2, batch_size=10, lr=0.01, backend=backend, n_threads=1, momentum=0.9)
    sparse = fastmlp.fit(X, y, X_test=X, y_test=y, **kw)
    dense = fastmlp.fit(X.toarray(), y, X_test=X.toarray(), y_test=y, **kw)
    _assert_same(sparse, dense)
    assert sparse.history == dense.history
    assert_array_equal(sparse.predict(X), dense.predict(X.toarray()))
    assert_array_equal(sparse.predict_proba(X), dense.predict_proba(X.toarray()))
    assert (X != X_before).nnz == 0 and X.format == fmt


def test_sparse_input_in_several_blocks_equals_the_reference(monkeypatch):
    from fastmlp import _fit
    monkeypatch.setattr(_fit, "SPARSE_BLOCK_ROWS", 20)  # blocks of 2 batches of 10, then a partial one
    X = scipy.sparse.random(47, 12, density=0.3, format="csr", random_state=2)
    y = np.random.default_rng(1).integers(0, 3, 47)
    kw = dict(hidden=16, epochs=2, batch_size=10, lr=0.05, seed=2, momentum=0.9,
              sample_weight=np.linspace(0.5, 1.5, 47))
    fast = fastmlp.fit(X, y, backend="cython", n_threads=2, **kw)
    ref = fastmlp.fit(X, y, backend="numpy", **kw)
    for name, a, b in zip(NAMES, _weights(fast), _weights(ref)):
        assert_allclose(a, b, **tolerance(np.float64, np.max(np.abs(b))), err_msg=name)


# ---------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("kwargs, error, match", [
    (dict(momentum=1.0), ValueError, "momentum"),
    (dict(momentum=-0.1), ValueError, "momentum"),
    (dict(momentum="0.9"), TypeError, "momentum"),
    (dict(nesterov=1), TypeError, "nesterov"),
    (dict(lr_schedule="optimal"), ValueError, "lr_schedule"),
    (dict(power_t=-1), ValueError, "power_t"),
    (dict(early_stopping="yes"), TypeError, "early_stopping"),
    (dict(validation_fraction=1.0), ValueError, "validation_fraction"),
    (dict(validation_fraction=0), ValueError, "validation_fraction"),
    (dict(n_iter_no_change=0), ValueError, "n_iter_no_change"),
    (dict(n_iter_no_change=2.0), TypeError, "n_iter_no_change"),
    (dict(tol=-1), ValueError, "tol"),
    (dict(tol=float("nan")), ValueError, "tol"),
    (dict(sample_weight=np.ones(3)), ValueError, "sample_weight"),
    (dict(sample_weight=-np.ones(40)), ValueError, "sample_weight"),
    (dict(sample_weight=np.zeros(40)), ValueError, "sum to 0"),
    (dict(sample_weight=np.full(40, np.nan)), ValueError, "sample_weight"),
    (dict(sample_weight=np.array(["a"] * 40)), TypeError, "sample_weight"),
    (dict(class_weight="auto"), ValueError, "class_weight"),
    (dict(class_weight={7: 1.0}), ValueError, "class_weight"),
    (dict(class_weight={0: -1.0}), ValueError, "class_weight"),
    (dict(class_weight=[1, 2]), TypeError, "class_weight"),
    (dict(early_stopping=True, validation_fraction=0.01), ValueError, "validation"),
])
def test_bad_controls_are_named(kwargs, error, match):
    X, y = _problem(N=40)
    weights_before = None if "sample_weight" not in kwargs else np.array(kwargs["sample_weight"], copy=True)
    with pytest.raises(error, match=match):
        fastmlp.fit(X, y, hidden=4, epochs=1, backend="numpy", **kwargs)
    if weights_before is not None and weights_before.dtype.kind == "f":
        assert_array_equal(kwargs["sample_weight"], weights_before)


def test_sample_weight_is_never_modified():
    X, y = _problem(N=40)
    w = np.linspace(0.1, 2, 40)
    w.setflags(write=False)
    fastmlp.fit(X, y, hidden=4, epochs=1, sample_weight=w, class_weight="balanced")
    assert_array_equal(w, np.linspace(0.1, 2, 40))


# ------------------------------------------------------------------------- estimator, CLI

def test_estimator_partial_fit_chain_keeps_velocities_and_t():
    from fastmlp import MLPClassifier
    X, y = _problem(N=50)
    kw = dict(hidden=8, batch_size=10, lr=0.02, random_state=3, backend="numpy", momentum=0.9,
              nesterov=True, lr_schedule="invscaling")
    w = np.random.default_rng(0).uniform(0.5, 2, len(y))
    full = MLPClassifier(epochs=3, **kw).fit(X, y, sample_weight=w)
    chained = MLPClassifier(**kw)
    for _ in range(3):
        chained.partial_fit(X, y, classes=np.arange(4), sample_weight=w)
    _assert_same_estimators(full, chained)
    assert chained.history_["lr"] == full.history_["lr"] and len(set(full.history_["lr"])) == 3
    # warm_start continues the velocities and t too (scikit-learn resets its velocities; we do not)
    warm = MLPClassifier(epochs=1, warm_start=True, **kw)
    warm.fit(X, y, sample_weight=w)
    model = fastmlp.fit(X, y, hidden=8, epochs=1, batch_size=10, lr=0.02, seed=3, backend="numpy",
                        momentum=0.9, nesterov=True, lr_schedule="invscaling", sample_weight=w)
    warm.fit(X, y, sample_weight=w)
    # the second fit: a fresh random_state stream for its shuffle, but the first fit's state
    expected = fastmlp.fit(X, y, hidden=8, epochs=1, batch_size=10, lr=0.02, seed=3, backend="numpy",
                           momentum=0.9, nesterov=True, lr_schedule="invscaling", sample_weight=w,
                           init=model)
    for name, a, b in zip(NAMES, (warm.W1_, warm.b1_, warm.W2_, warm.b2_), _weights(expected)):
        assert_array_equal(a, b, err_msg=name)
    with pytest.raises(ValueError, match="early_stopping"):
        MLPClassifier(early_stopping=True).partial_fit(X, y, classes=np.arange(4))


def _assert_same_estimators(a, b):
    for name in ("W1_", "b1_", "W2_", "b2_"):
        assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_estimator_class_weight_with_string_labels_and_early_stopping():
    from fastmlp import MLPClassifier
    X, y = _problem(N=80, C=3)
    names = np.array(["ant", "bee", "cat"])
    kw = dict(hidden=8, epochs=30, batch_size=10, lr=0.02, random_state=0, backend="numpy")
    by_label = MLPClassifier(class_weight={"bee": 3.0}, **kw).fit(X, names[y])
    by_weight = MLPClassifier(**kw).fit(X, names[y], sample_weight=np.where(y == 1, 3.0, 1.0))
    _assert_same_estimators(by_label, by_weight)
    with pytest.raises(ValueError, match="class_weight"):
        MLPClassifier(class_weight={"owl": 2.0}, **kw).fit(X, names[y])
    stopped = MLPClassifier(early_stopping=True, n_iter_no_change=2, **kw).fit(X, names[y])
    assert stopped.best_epoch_ == 1 + int(np.argmax(stopped.history_["val_acc"]))
    assert stopped.to_model().best_epoch == stopped.best_epoch_


def test_estimator_sparse_input():
    from fastmlp import MLPClassifier
    X = scipy.sparse.random(40, 10, density=0.3, format="csc", random_state=0)
    y = np.random.default_rng(0).integers(0, 3, 40)
    kw = dict(hidden=8, epochs=3, batch_size=10, lr=0.05, random_state=0)
    sparse = MLPClassifier(**kw).fit(X, y)
    dense = MLPClassifier(**kw).fit(X.toarray(), y)
    _assert_same_estimators(sparse, dense)
    assert_array_equal(sparse.predict_proba(X.tocsr()), dense.predict_proba(X.toarray()))


def test_cli_train_with_controls(tmp_path, capsys):
    import csv
    from fastmlp.__main__ import main
    X, y = _problem(N=120, C=3)
    np.savez(tmp_path / "train.npz", X=X, y=y)
    out = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "train.npz"), "--out", str(out), "--quiet",
                 "--hidden", "8", "--epochs", "40", "--lr", "1e-2", "--momentum", "0.9", "--nesterov",
                 "--lr-schedule", "adaptive", "--early-stopping", "--validation-fraction", "0.25",
                 "--n-iter-no-change", "3", "--tol", "0.01", "--class-weight", "balanced"]) == 0
    printed = capsys.readouterr().out
    with open(out / "history.csv") as f:
        rows = list(csv.DictReader(f))
    model = fastmlp.load(out / "model.npz")
    assert model.params["momentum"] == 0.9 and model.params["nesterov"] is True
    assert model.params["early_stopping"] and model.params["class_weight"] == "balanced"
    assert len(rows) < 40 and all(r["val_acc"] and r["lr"] for r in rows)
    assert f"kept epoch {model.best_epoch} of {len(rows)}" in printed
    assert main(["train", "--data", str(tmp_path / "train.npz"), "--out", str(out), "--quiet",
                 "--momentum", "1.5"]) == 1
    assert "momentum" in capsys.readouterr().err


def test_an_early_stop_scores_the_test_set_too():
    X, y = _problem(N=120, C=3)
    model = fastmlp.fit(X, y, hidden=8, epochs=50, batch_size=10, lr=0.02, backend="numpy", X_test=X[:30],
                        y_test=y[:30], eval_every=7, early_stopping=True, n_iter_no_change=2)
    n = len(model.history["loss"])
    assert n < 50 and model.history["test_epoch"][-1] == n
    assert model.history["test_epoch"][:-1] == list(range(7, n, 7))

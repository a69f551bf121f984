"""Threads in the compiled step: hidden-unit slices on OpenMP threads, GEMM column blocks,
the lazy L2 decay, bitwise reproducibility, the slice count, BLAS thread limits and memory."""

import os
import subprocess
import sys
import textwrap
import threading
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose
from threadpoolctl import threadpool_info, threadpool_limits

import fastmlp
from fastmlp import _sgd, _threads, reference
from _helpers import random_problem

NAMES = ("W1", "b1", "W2", "b2")
REPO = Path(fastmlp.__file__).resolve().parent.parent

needs_openmp = pytest.mark.skipif(not _sgd.OPENMP, reason="build without OpenMP: one slice only")


def _compiled(X, y, order, init, batch, lr, reg, n_slices=1, gemm_columns=None, epochs=1):
    """Copies of ``init`` after ``epochs`` compiled epochs; returns (params, [(loss, correct)...])."""
    params = tuple(p.copy() for p in init)
    D, H = params[0].shape
    C = params[2].shape[1]
    ws = _sgd.Workspace(batch, D, H, C, X.dtype, n_slices, gemm_columns)
    results = [_sgd.sgd_epoch(X, y, order, *params, ws, lr, reg) for _ in range(epochs)]
    return params, results


def _reference(X, y, order, init, batch, lr, reg):
    params = tuple(p.copy() for p in init)
    loss, correct = reference.sgd_epoch(X, y, order, params, lr, reg, batch)
    return params, loss, correct


def _assert_matches_reference(got, loss, correct, ref, ref_loss, ref_correct, dtype, tol):
    assert isinstance(correct, int) and correct == ref_correct
    assert_allclose(loss, ref_loss, **tol(dtype, max(1.0, abs(ref_loss))))
    for name, g, r in zip(NAMES, got, ref):
        assert g.dtype == dtype
        assert_allclose(g, r, **tol(dtype, max(1.0, np.max(np.abs(r)))), err_msg=name)


def _skip_unless_runnable(n_slices, H):
    if n_slices > 1 and not _sgd.OPENMP:
        pytest.skip("build without OpenMP")
    if H % n_slices:
        pytest.skip(f"{n_slices} slices do not divide H={H}")


# ------------------------------------------------------------- 1. slices and column blocks

# (N, D, H, C, batch)
CASES = [
    (40, 5, 8, 3, 10),     # H=8: 2 slices of 4, 4 slices of 2 (blocks clipped to the slice)
    (37, 6, 16, 3, 10),    # partial last batch
    (13, 4, 8, 3, 1),      # batch 1
    (30, 7, 32, 2, 8),     # two classes, partial last batch
    (50, 9, 40, 4, 7),     # slices of 40/20/10: blocks of 8 and 16 leave a partial block
    (64, 20, 48, 10, 30),  # 48 = 6 blocks of 8 / 3 of 16 with one slice
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "N{}-D{}-H{}-C{}-b{}".format(*c))
@pytest.mark.parametrize("gemm_columns", [None, 8, 16], ids=["cols-all", "cols8", "cols16"])
@pytest.mark.parametrize("n_slices", [1, 2, 4], ids=["S1", "S2", "S4"])
def test_sliced_epoch_matches_reference(n_slices, gemm_columns, case, dtype, rng, tol):
    N, D, H, C, batch = case
    _skip_unless_runnable(n_slices, H)
    X, y, init = random_problem(rng, N, D, H, C, dtype)
    order = rng.permutation(N).astype(np.int64)
    lr, reg = 0.01, 0.05
    ref, ref_loss, ref_correct = _reference(X, y, order, init, batch, lr, reg)

    X_before, y_before, order_before = X.copy(), y.copy(), order.copy()
    got, [(loss, correct)] = _compiled(X, y, order, init, batch, lr, reg, n_slices, gemm_columns)
    _assert_matches_reference(got, loss, correct, ref, ref_loss, ref_correct, dtype, tol)
    for name, g, p0 in zip(NAMES, got, init):
        assert not np.array_equal(g, p0), f"{name} was not updated"
    assert np.array_equal(X, X_before) and np.array_equal(y, y_before)
    assert np.array_equal(order, order_before)


@pytest.mark.parametrize("n_slices", [1, 2, 4])
def test_sliced_epochs_chain_and_repeat_rows(n_slices, rng, tol):
    """Several epochs on one workspace (its buffers reused), ``order`` repeating rows."""
    _skip_unless_runnable(n_slices, 16)
    X, y, init = random_problem(rng, 23, 6, 16, 3, np.float64)
    order = np.concatenate([rng.permutation(23), rng.integers(0, 23, size=11)]).astype(np.int64)
    ref = tuple(p.copy() for p in init)
    ref_results = [reference.sgd_epoch(X, y, order, ref, 0.02, 0.1, 5) for _ in range(3)]
    got, results = _compiled(X, y, order, init, 5, 0.02, 0.1, n_slices, 8, epochs=3)
    for (loss, correct), (ref_loss, ref_correct) in zip(results, ref_results):
        assert correct == ref_correct
        assert_allclose(loss, ref_loss, **tol(np.float64, abs(ref_loss)))
    for name, g, r in zip(NAMES, got, ref):
        assert_allclose(g, r, **tol(np.float64, max(1.0, np.max(np.abs(r)))), err_msg=name)


# ------------------------------------------------------------------ 2. lazy decay rescale

@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("lr,reg", [
    (0.1, 1.0),    # decay 0.8 per step: s < 1/2 after 4 steps, so rescales mid-epoch
    (0.1, 0.0),    # no decay: s stays 1
    (0.2, 2.4),    # decay 0.04: a rescale after every step
    (0.05, 1.0),   # decay 0.9: s < 1/2 after 7 steps
], ids=["decay0.8", "nodecay", "decay0.04", "decay0.9"])
@pytest.mark.parametrize("n_slices", [1, 2], ids=["S1", "S2"])
@pytest.mark.parametrize("N", [60, 24], ids=["10steps", "4steps"])
def test_lazy_decay_rescale_matches_reference(N, n_slices, lr, reg, dtype, rng, tol):
    _skip_unless_runnable(n_slices, 16)
    D, H, C, batch = 7, 16, 4, 6
    X, y, init = random_problem(rng, N, D, H, C, dtype)
    X *= dtype(0.3)  # keep lr=0.1 on summed losses from blowing the weights up
    order = rng.permutation(N).astype(np.int64)
    ref, ref_loss, ref_correct = _reference(X, y, order, init, batch, lr, reg)
    assert all(np.isfinite(r).all() for r in ref)
    got, [(loss, correct)] = _compiled(X, y, order, init, batch, lr, reg, n_slices)
    _assert_matches_reference(got, loss, correct, ref, ref_loss, ref_correct, dtype, tol)
    if reg:  # the decay is really in the written-back weights
        for name in ("W1", "W2"):
            i = NAMES.index(name)
            assert np.max(np.abs(got[i])) < np.max(np.abs(init[i])), name


def test_lazy_decay_two_epochs_match_reference(rng, tol):
    """The scale starts again at 1 in the next epoch on the written-back weights."""
    X, y, init = random_problem(rng, 45, 5, 16, 3, np.float64)
    X *= 0.3
    order = rng.permutation(45).astype(np.int64)
    ref = tuple(p.copy() for p in init)
    for _ in range(2):
        reference.sgd_epoch(X, y, order, ref, 0.1, 1.0, 5)
    S = 2 if _sgd.OPENMP else 1
    got, _ = _compiled(X, y, order, init, 5, 0.1, 1.0, S, epochs=2)
    for name, g, r in zip(NAMES, got, ref):
        assert_allclose(g, r, **tol(np.float64, max(1.0, np.max(np.abs(r)))), err_msg=name)


@pytest.mark.parametrize("lr,reg", [(0.5, 1.0), (1.0, 0.75), (0.25, 4.0)])
def test_decay_factor_not_positive_raises_in_sgd_epoch(lr, reg, rng):
    X, y, init = random_problem(rng, 12, 3, 8, 2, np.float64)
    params = tuple(p.copy() for p in init)
    ws = _sgd.Workspace(4, 3, 8, 2, np.float64)
    with pytest.raises(ValueError, match=r"lr") as info:
        _sgd.sgd_epoch(X, y, np.arange(12, dtype=np.int64), *params, ws, lr, reg)
    assert "reg" in str(info.value)
    for name, p, p0 in zip(NAMES, params, init):  # refused before touching the weights
        assert np.array_equal(p, p0), name


@pytest.mark.parametrize("lr,reg", [(0.5, 1.0), (1.0, 0.75), (0.25, 4.0)])
@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_decay_factor_not_positive_raises_in_fit(lr, reg, backend, rng):
    X = rng.standard_normal((12, 3))
    y = rng.integers(0, 2, size=12)
    with pytest.raises(ValueError, match=r"lr") as info:
        fastmlp.fit(X, y, hidden=8, epochs=1, batch_size=4, lr=lr, reg=reg, backend=backend)
    assert "reg" in str(info.value)


# ------------------------------------------------------------------------- 3. determinism

def _determinism_problem(dtype=np.float64):
    rng = np.random.default_rng(2024)
    X, y, init = random_problem(rng, 97, 13, 32, 5, dtype)
    order = rng.permutation(97).astype(np.int64)
    return X, y, order, init


# Decay 0.9 over 10 steps: the mid-epoch rescale is part of what must be reproducible.
DET_ARGS = dict(batch=10, lr=0.05, reg=1.0)


@needs_openmp
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("gemm_columns", [None, 8])
def test_two_slices_bitwise_reproducible(dtype, gemm_columns):
    X, y, order, init = _determinism_problem(dtype)
    a, ra = _compiled(X, y, order, init, n_slices=2, gemm_columns=gemm_columns, epochs=2, **DET_ARGS)
    b, rb = _compiled(X, y, order, init, n_slices=2, gemm_columns=gemm_columns, epochs=2, **DET_ARGS)
    assert ra == rb
    for name, pa, pb in zip(NAMES, a, b):
        assert np.array_equal(pa, pb), name


def test_fit_n_threads_bitwise_reproducible():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((120, 10))
    y = rng.integers(0, 4, size=120)
    assert _threads.n_slices(2, 32, _sgd.OPENMP) == (2 if _sgd.OPENMP else 1)
    kw = dict(hidden=32, epochs=3, batch_size=16, lr=0.01, reg=0.05, seed=9, n_threads=2)
    a = fastmlp.fit(X, y, **kw)
    b = fastmlp.fit(X, y, **kw)
    for name in NAMES:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.history == b.history


_SUBPROCESS_SCRIPT = textwrap.dedent("""
    import ctypes
    import sys
    import numpy as np
    from threadpoolctl import threadpool_info
    from fastmlp import _sgd
    from fastmlp._threads import BlasThreads

    # The limit must really be in force in this process (libgomp / libomp read it at start).
    for lib in threadpool_info():
        if lib["user_api"] == "openmp":
            limit = ctypes.CDLL(lib["filepath"]).omp_get_thread_limit()
            assert limit == int(sys.argv[3]), (lib["filepath"], limit)

    rng = np.random.default_rng(2024)
    N, D, H, C = 97, 13, 32, 5
    X = rng.standard_normal((N, D))
    y = rng.integers(0, C, size=N).astype(np.int64)
    params = (rng.standard_normal((D, H)) * np.sqrt(2 / D), 0.1 * rng.standard_normal(H),
              rng.standard_normal((H, C)) * np.sqrt(2 / H), 0.1 * rng.standard_normal(C))
    order = rng.permutation(N).astype(np.int64)
    ws = _sgd.Workspace(10, D, H, C, np.float64, int(sys.argv[2]))
    with BlasThreads().single():
        losses = [_sgd.sgd_epoch(X, y, order, *params, ws, 0.05, 1.0) for _ in range(2)]
    np.savez(sys.argv[1], W1=params[0], b1=params[1], W2=params[2], b2=params[3],
             losses=np.array(losses, dtype=np.float64))
""")


@needs_openmp
@pytest.mark.parametrize("thread_limit,n_slices", [(1, 2), (1, 4), (3, 4), (2, 4)],
                         ids=["limit1-S2", "limit1-S4", "limit3-S4", "limit2-S4"])
def test_slices_on_a_smaller_team_bitwise_equal(thread_limit, n_slices, tmp_path):
    """Under OMP_THREAD_LIMIT a thread runs several slices (with a team of 3 for 4 slices,
    unevenly); the weights must not change by a bit from those of the full team."""
    out = tmp_path / "weights.npz"
    script = tmp_path / "run.py"
    script.write_text(_SUBPROCESS_SCRIPT)
    env = dict(os.environ)
    env["OMP_THREAD_LIMIT"] = str(thread_limit)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, str(script), str(out), str(n_slices), str(thread_limit)],
                          env=env, cwd=str(REPO), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr

    X, y, order, init = _determinism_problem(np.float64)
    with _threads.BlasThreads().single():
        here, results = _compiled(X, y, order, init, n_slices=n_slices, epochs=2, **DET_ARGS)
    with np.load(out) as there:
        for name, p in zip(NAMES, here):
            assert np.array_equal(there[name], p), name
        assert np.array_equal(there["losses"], np.array(results, dtype=np.float64))


@needs_openmp
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_concurrent_python_threads_bitwise_equal_to_sequential(dtype):
    """Two Python threads each run sliced epochs at the same time (the GIL is released)."""
    problems = []
    for seed in (1, 2):
        rng = np.random.default_rng(seed)
        X, y, init = random_problem(rng, 600, 20, 32, 5, dtype)
        problems.append((X, y, rng.permutation(600).astype(np.int64), init))
    kw = dict(batch=12, lr=0.01, reg=0.2, n_slices=2, epochs=4)
    sequential = [_compiled(X, y, o, init, **kw) for X, y, o, init in problems]

    concurrent = [None, None]
    errors = []
    start = threading.Barrier(2)

    def work(i):
        try:
            X, y, o, init = problems[i]
            start.wait()
            concurrent[i] = _compiled(X, y, o, init, **kw)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    assert not any(w.is_alive() for w in workers), "a worker thread hangs"
    assert not errors, errors
    for (seq, seq_res), (con, con_res) in zip(sequential, concurrent):
        assert seq_res == con_res
        for name, a, b in zip(NAMES, seq, con):
            assert np.array_equal(a, b), name


# -------------------------------------------------------------------- 4. the slice count

@pytest.mark.parametrize("n_threads,hidden,openmp,expected", [
    (2, 128, True, 2),
    (3, 128, True, 2),     # 3 does not divide 128
    (2, 7, True, 1),       # hidden // 8 == 0: one slice
    (2, 15, True, 1),      # two slices would have 7 units (< 8)
    (2, 16, True, 2),      # exactly 8 units each
    (4, 16, True, 2),      # capped by hidden // 8
    (4, 24, True, 3),
    (8, 8, True, 1),
    (1, 128, True, 1),
    (64, 128, True, 16),   # 16 slices of 8
    (6, 40, True, 5),      # capped by 40 // 8 == 5, which divides 40
    (7, 56, True, 7),
    (2, 128, False, 1),    # no OpenMP
    (16, 128, False, 1),
])
def test_n_slices(n_threads, hidden, openmp, expected):
    assert _threads.n_slices(n_threads, hidden, openmp) == expected


def test_n_slices_rule_exhaustive():
    """The documented rule: the largest count <= n_threads dividing hidden with >= 8 units each."""
    for n_threads in range(1, 10):
        for hidden in range(1, 130):
            got = _threads.n_slices(n_threads, hidden, True)
            ok = [c for c in range(1, n_threads + 1) if hidden % c == 0 and hidden // c >= 8]
            assert got == (max(ok) if ok else 1), (n_threads, hidden)
            assert type(got) is int


def test_n_slices_default_uses_available_cores():
    cores = _threads.available_cores()
    assert cores >= 1
    assert _threads.n_slices(None, 8 * 64, True) == _threads.n_slices(cores, 8 * 64, True)
    assert _threads.n_slices(None, 8 * 64, False) == 1


@pytest.mark.parametrize("openmp", [True, False])
def test_n_slices_rejects_bad_n_threads(openmp):
    with pytest.raises(ValueError, match="n_threads"):
        _threads.n_slices(0, 128, openmp)
    with pytest.raises(ValueError, match="n_threads"):
        _threads.n_slices(-2, 128, openmp)
    with pytest.raises(TypeError, match="n_threads"):
        _threads.n_slices("2", 128, openmp)
    with pytest.raises(TypeError, match="n_threads"):
        _threads.n_slices(2.0, 128, openmp)
    with pytest.raises(TypeError, match="n_threads"):
        _threads.n_slices(True, 128, openmp)


@pytest.mark.parametrize("n_threads,exc", [(0, ValueError), ("2", TypeError)])
def test_fit_rejects_bad_n_threads(n_threads, exc):
    X = np.random.default_rng(0).standard_normal((10, 3))
    y = np.arange(10) % 2
    with pytest.raises(exc, match="n_threads"):
        fastmlp.fit(X, y, hidden=8, epochs=1, n_threads=n_threads)


# ----------------------------------------------------------------- 5. BLAS thread limits

def _blas_threads():
    return {lib["filepath"]: lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}


@pytest.fixture
def blas_at_two():
    """Every BLAS at 2 threads (where it can), so that holding it at 1 is visible."""
    assert _blas_threads(), "no BLAS library found by threadpoolctl"
    with threadpool_limits(limits=2, user_api="blas"):
        yield _blas_threads()


def test_blas_single_holds_one_thread_and_restores(blas_at_two):
    before = blas_at_two
    with _threads.BlasThreads().single():
        inside = _blas_threads()
        assert set(inside) == set(before)
        assert all(n == 1 for n in inside.values()), inside
    assert _blas_threads() == before


def test_blas_single_restores_after_an_exception(blas_at_two):
    before = blas_at_two
    with pytest.raises(RuntimeError, match="boom"):
        with _threads.BlasThreads().single():
            assert all(n == 1 for n in _blas_threads().values())
            raise RuntimeError("boom")
    assert _blas_threads() == before


def test_blas_single_nested_restores_each_level(blas_at_two):
    before = blas_at_two
    blas = _threads.BlasThreads()
    with blas.single():
        with blas.single():
            assert all(n == 1 for n in _blas_threads().values())
        assert all(n == 1 for n in _blas_threads().values())
    assert _blas_threads() == before


@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_fit_leaves_blas_threads_unchanged(backend, blas_at_two):
    before = blas_at_two
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((50, 6)), rng.integers(0, 3, size=50)
    fastmlp.fit(X, y, X_test=X[:10], y_test=y[:10], hidden=16, epochs=2, batch_size=8,
                lr=0.01, backend=backend)
    assert _blas_threads() == before


def test_fit_restores_blas_threads_when_training_diverges(blas_at_two):
    before = blas_at_two
    rng = np.random.default_rng(1)
    X, y = 1e3 * rng.standard_normal((50, 6)), rng.integers(0, 3, size=50)
    with pytest.raises(FloatingPointError):
        fastmlp.fit(X, y, hidden=16, epochs=50, batch_size=8, lr=10.0, reg=0.0)
    assert _blas_threads() == before


# ------------------------------------------------------------------------------ 6. memory

def _traced_peak(fn):
    """Peak traced memory above the level at the call, while ``fn()`` runs."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("n_slices", [1, 2], ids=["S1", "S2"])
def test_compiled_epoch_allocates_nothing_per_batch(n_slices):
    _skip_unless_runnable(n_slices, 32)
    peaks = {}
    for N in (300, 3000):
        rng = np.random.default_rng(N)
        X, y, init = random_problem(rng, N, 50, 32, 10, np.float64)
        params = tuple(p.copy() for p in init)
        order = rng.permutation(N).astype(np.int64)
        ws = _sgd.Workspace(30, 50, 32, 10, np.float64, n_slices)
        _sgd.sgd_epoch(X, y, order, *params, ws, 1e-3, 1e-2)  # warm-up
        peaks[N] = _traced_peak(lambda: _sgd.sgd_epoch(X, y, order, *params, ws, 1e-3, 1e-2))
    assert peaks[300] < 64 * 1024, peaks
    assert peaks[3000] < 64 * 1024, peaks
    assert abs(peaks[3000] - peaks[300]) < 16 * 1024, peaks


def test_tracemalloc_sees_array_copies():
    """Control for the test below: a copy of an array shows up in the traced peak."""
    X = np.ones((1000, 100))
    assert _traced_peak(lambda: X.copy()) >= X.nbytes


def test_fit_does_not_copy_contiguous_float64_X():
    rng = np.random.default_rng(0)
    N, D = 100_000, 100
    X = rng.standard_normal((N, D))
    y = rng.integers(0, 3, size=N)
    assert X.flags.c_contiguous and X.dtype == np.float64 and X.nbytes >= 80e6
    peak = _traced_peak(lambda: fastmlp.fit(X, y, epochs=1, hidden=8, batch_size=256,
                                            n_threads=1, lr=1e-4))
    # beyond X: the labels as int64, one permutation of the rows, weights and scratch
    assert peak < 0.05 * X.nbytes, (peak, X.nbytes)


# -------------------------------------------------------------------- 7. Workspace checks

@pytest.mark.parametrize("n_hidden,n_slices", [(12, 5), (8, 3), (7, 2), (8, 16)])
def test_workspace_slices_must_divide_hidden(n_hidden, n_slices):
    with pytest.raises(ValueError, match="n_slices"):
        _sgd.Workspace(10, 5, n_hidden, 3, np.float64, n_slices)


@pytest.mark.parametrize("n_slices", [0, -1])
def test_workspace_slices_must_be_positive(n_slices):
    with pytest.raises(ValueError, match="n_slices"):
        _sgd.Workspace(10, 5, 8, 3, np.float64, n_slices)


@pytest.mark.parametrize("n_slices,gemm_columns,expected", [
    (1, None, 24), (1, 8, 8), (1, 100, 24), (1, 0, 1),
    (2, None, 12), (2, 8, 8), (2, 12, 12), (2, 100, 12), (2, 5, 5), (2, 0, 1),
])
def test_workspace_gemm_columns_clipped_to_slice(n_slices, gemm_columns, expected):
    _skip_unless_runnable(n_slices, 24)
    ws = _sgd.Workspace(10, 5, 24, 3, np.float32, n_slices, gemm_columns)
    assert ws.n_slices == n_slices
    assert ws.gemm_columns == expected
    assert ws.batch_size == 10


@needs_openmp
def test_workspace_with_slices_sizes():
    ws = _sgd.Workspace(10, 5, 24, 3, np.float64, 4)
    assert ws.n_slices == 4 and ws.gemm_columns == 6
    assert ws.hidden.shape == (4, 10, 6) and ws.d_hidden.shape == (4, 10, 6)
    assert ws.logits.shape == (2, 4, 10, 3) and ws.grad.shape == (4, 10, 3)


def test_sgd_epoch_with_slices_refused_without_openmp(rng):
    if _sgd.OPENMP:
        pytest.skip("this build has OpenMP: several slices are allowed")
    X, y, init = random_problem(rng, 10, 3, 8, 2, np.float64)
    ws = _sgd.Workspace(4, 3, 8, 2, np.float64, 2)
    with pytest.raises(ValueError, match="OpenMP"):
        _sgd.sgd_epoch(X, y, np.arange(10, dtype=np.int64), *init, ws, 0.1, 0.0)


@pytest.mark.parametrize("B,D,Hs,expected", [
    (30, 64, 128, 128),   # 10**6 // 1920 = 520 -> 512 >= 128: no blocking
    (30, 784, 128, 32),   # 10**6 // 23520 = 42 -> 32
    (256, 784, 64, 64),   # no block of 16 fits: all the columns
    (30, 100, 400, 320),  # 333 -> 320
])
def test_gemm_columns_heuristic(B, D, Hs, expected):
    got = _sgd.gemm_columns(B, D, Hs)
    assert got == expected
    assert got == Hs or (got % 16 == 0 and B * D * got <= _sgd.SMALL_GEMM_VOLUME)


def test_overlapping_single_blas_restores_counts_once_all_leave():
    """Two fits in two threads: the BLAS thread counts come back when the last one ends."""
    import threading as _threading

    from threadpoolctl import threadpool_info, threadpool_limits

    from fastmlp._threads import BlasThreads

    with threadpool_limits(2, user_api="blas"):
        before = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
        first, second = BlasThreads(), BlasThreads()
        entered, release = _threading.Event(), _threading.Event()

        def hold():
            with first.single():
                entered.set()
                release.wait(10)

        worker = _threading.Thread(target=hold)
        worker.start()
        entered.wait(10)
        with second.single():
            pass
        # the first holder is still inside: BLAS must still be single-threaded
        assert all(lib["num_threads"] == 1 for lib in threadpool_info() if lib["user_api"] == "blas")
        release.set()
        worker.join(10)
        after = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    assert after == before


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("n_slices,gemm_columns", [(1, None), (2, None), (2, 8), (4, 4)])
@pytest.mark.parametrize("n_rows", [1, 29, 30, 101])
def test_forward_logits_matches_reference(dtype, n_slices, gemm_columns, n_rows, tol):
    _skip_unless_runnable(n_slices, 16)
    rng = np.random.default_rng(n_rows)
    D, H, C = 20, 16, 3
    X = rng.standard_normal((n_rows, D)).astype(dtype)
    weights = (rng.standard_normal((D, H)).astype(dtype), rng.standard_normal(H).astype(dtype),
               rng.standard_normal((H, C)).astype(dtype), rng.standard_normal(C).astype(dtype))
    ws = _sgd.Workspace(30, D, H, C, dtype, n_slices, gemm_columns)
    out = np.full((n_rows, C), np.nan, dtype=dtype)
    result = _sgd.forward_logits(X, *weights, ws, out)
    expected = reference.forward(X.astype(np.float64), tuple(w.astype(np.float64) for w in weights))[2]
    assert np.shares_memory(result, out)
    np.testing.assert_allclose(out, expected, **tol(dtype, np.abs(expected).max()))


def test_forward_logits_checks_shapes():
    ws = _sgd.Workspace(30, 4, 8, 2, np.float64)
    X, W1, b1, W2, b2 = np.ones((5, 4)), np.ones((4, 8)), np.ones(8), np.ones((8, 2)), np.ones(2)
    with pytest.raises(ValueError, match="out"):
        _sgd.forward_logits(X, W1, b1, W2, b2, ws, np.empty((4, 2)))
    with pytest.raises(ValueError, match="workspace"):
        _sgd.forward_logits(np.ones((5, 3)), np.ones((3, 8)), b1, W2, b2, ws, np.empty((5, 2)))


def test_default_thread_count_follows_openmp_limits():
    """n_threads=None respects OMP_NUM_THREADS-style limits (joblib's workers set them)."""
    assert _threads.n_slices(None, 128, True, openmp_limit=1) == 1
    assert _threads.n_slices(None, 128, True, openmp_limit=64) == min(_threads.available_cores(), 64)
    assert _threads.n_slices(2, 128, True, openmp_limit=1) == 2  # an explicit count wins
    if not _sgd.OPENMP:
        pytest.skip("build without OpenMP")
    from fastmlp._fit import Trainer

    def slices():
        return Trainer("cython", 30, 20, 64, 3, np.float64, None).workspace.n_slices

    with threadpool_limits(1, user_api="openmp"):
        assert _sgd.max_threads() == 1
        assert slices() == 1
    assert slices() == _threads.n_slices(None, 64, True, _sgd.max_threads())

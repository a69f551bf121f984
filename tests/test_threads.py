"""Threads in the compiled step: hidden-unit slices on fastmlp's thread team, GEMM column
blocks, the lazy L2 decay, bitwise reproducibility whatever the threads, the slice count,
thread and BLAS limits, fork, interpreter exit, Ctrl-C and memory."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose
from threadpoolctl import threadpool_info, threadpool_limits

import fastmlp
from fastmlp import _blas, _sgd, _threads, benchmark, reference
from _helpers import random_problem

NAMES = ("W1", "b1", "W2", "b2")
REPO = Path(fastmlp.__file__).resolve().parent.parent

def _compiled(X, y, order, init, batch, lr, reg, n_slices=1, gemm_columns=None, epochs=1,
              threads=None):
    """Copies of ``init`` after ``epochs`` compiled epochs; returns (params, [(loss, correct)...]).

    ``threads=None`` lets the workspace choose its threads (adaptive); an int runs every
    segment on exactly that many (the whole team when it equals ``n_slices``)."""
    params = tuple(p.copy() for p in init)
    D, H = params[0].shape
    C = params[2].shape[1]
    ws = _sgd.Workspace(batch, D, H, C, X.dtype, n_slices, gemm_columns,
                        max_threads=threads, adaptive=threads is None)
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


@pytest.mark.parametrize("n_slices, gemm_columns, width", [
    (2, 16, 16),      # blocks of the products' columns
    (2, 24, 32),      # 24 does not divide a slice of 32: blocks of a slice
    (1, 16, 16),      # one slice, several blocks
    (1, None, None),  # one block: no copy
])
def test_w1_is_held_in_blocks_of_the_product_columns(n_slices, gemm_columns, width, rng):
    """During an epoch W1 lives in the workspace's block-major copy, one block per column
    block that a product takes; the copy goes back exactly (a step of 1e-300 leaves
    the weights as they were)."""
    _skip_unless_runnable(n_slices, 64)
    # (without the fused momentum kernel, whose tile may be wider than these blocks)
    ws = _sgd.Workspace(10, 7, 64, 3, np.float64, n_slices, gemm_columns, fused_momentum=False)
    if width is None:
        assert ws.W1_blocks is None and ws.block_width == 64
    else:
        assert ws.block_width == width and ws.W1_blocks.shape == (64 // width, 7, width)
    X, y, init = random_problem(rng, 25, 7, 64, 3, np.float64)
    params = [p.copy() for p in init]
    order = rng.permutation(25).astype(np.int64)
    _sgd.sgd_epoch(X, y, order, *params, ws, 1e-300, 0.0)
    assert np.array_equal(params[0], init[0]) and np.array_equal(params[2], init[2])
    if width is not None:   # and the copy holds W1 block by block
        blocks = np.stack([init[0][:, b * width:(b + 1) * width] for b in range(64 // width)])
        assert np.array_equal(ws.W1_blocks, blocks)


@pytest.mark.parametrize("small_gemm, limit, in_place", [
    (False, None, False), (True, None, True), (True, 37 * 6 * 8, True), (True, 37 * 6 * 8 - 1, False)],
    ids=["blas", "unpacked", "unpacked-X-fits", "unpacked-X-too-large"])
def test_unpacked_kernels_read_the_batch_rows_in_place(small_gemm, limit, in_place, rng, tol):
    """fastmlp's unpacked kernels read the batch's rows of X through the order, with no
    copy into the batch buffers (left as they were), for an X of at most
    ``rows_in_place_bytes``; else, and with BLAS, the products take copies. All equal
    the reference."""
    from fastmlp import kernels
    if small_gemm and not kernels.small_gemm_isa():
        pytest.skip("no AVX2/AVX-512 kernels on this CPU or build")
    X, y, init = random_problem(rng, 37, 6, 64, 3, np.float64)
    order = np.concatenate([rng.permutation(37), rng.integers(0, 37, size=9)]).astype(np.int64)
    ws = _sgd.Workspace(8, 6, 64, 3, np.float64, 2, small_gemm=small_gemm, rows_in_place_bytes=limit)
    assert (ws.small_gemm_isa != 0) == small_gemm
    ws.X_batch[...] = np.nan
    got = [p.copy() for p in init]
    loss, correct = _sgd.sgd_epoch(X, y, order, *got, ws, 0.01, 0.05)
    ref, ref_loss, ref_correct = _reference(X, y, order, init, 8, 0.01, 0.05)
    _assert_matches_reference(got, loss, correct, ref, ref_loss, ref_correct, np.float64, tol)
    assert np.isnan(ws.X_batch).all() == in_place
    if not in_place:   # each member's buffer holds its last batch's rows
        assert not np.isnan(ws.X_batch).any()


def test_rows_in_place_up_to_the_last_level_cache(tmp_path):
    """The largest X read in place is the size of the highest cache level Linux lists,
    or a laptop-sized default where none is listed."""
    for index, level, size in ((0, 1, "48K"), (2, 2, "2048K"), (3, 3, "105M"), (1, 1, "32K")):
        folder = tmp_path / f"index{index}"
        folder.mkdir()
        (folder / "level").write_text(f"{level}\n")
        (folder / "size").write_text(f"{size}\n")
    assert _blas.rows_in_place_bytes(str(tmp_path)) == 105 * 2**20
    assert _blas.rows_in_place_bytes(str(tmp_path / "none")) == _blas.DEFAULT_CACHE_BYTES
    assert _blas.rows_in_place_bytes() > 0


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
    got, _ = _compiled(X, y, order, init, 5, 0.1, 1.0, 2, epochs=2)
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
    assert _threads.n_slices(2, 32) == 2
    kw = dict(hidden=32, epochs=3, batch_size=16, lr=0.01, reg=0.05, seed=9, n_threads=2)
    a = fastmlp.fit(X, y, **kw)
    b = fastmlp.fit(X, y, **kw)
    for name in NAMES:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.history == b.history


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("n_slices,threads", [(2, 1), (4, 1), (4, 2), (4, 3), (3, 2)])
def test_slices_on_fewer_threads_bitwise_equal(n_slices, threads, dtype):
    """One thread running every slice (as on a busy machine, or in a build without
    threads), or a team smaller than the slice count (3 threads for 4 slices: unevenly),
    gives the weights of the full team to the bit, and so does the adaptive choice."""
    X, y, order, init = _determinism_problem(dtype)
    X = np.ascontiguousarray(X[:, :12])
    init = tuple(np.ascontiguousarray(p) for p in (init[0][:12, :24], init[1][:24], init[2][:24], init[3]))
    team, team_results = _compiled(X, y, order, init, n_slices=n_slices, epochs=2,
                                   threads=n_slices, **DET_ARGS)
    for threads_used in (threads, None):
        fewer, results = _compiled(X, y, order, init, n_slices=n_slices, epochs=2,
                                   threads=threads_used, **DET_ARGS)
        assert results == team_results
        for name, a, b in zip(NAMES, team, fewer):
            assert np.array_equal(a, b), (name, threads_used)


def test_adaptive_choice_measures_both_modes():
    """The adaptive workspace times a segment on one thread and on the team, then keeps
    the faster (on a machine with threads)."""
    X, y, order, init = _determinism_problem()
    ws = _sgd.Workspace(10, 13, 32, 5, np.float64, 2)
    params = tuple(p.copy() for p in init)
    for _ in range(3):
        _sgd.sgd_epoch(X, y, order, *params, ws, 0.05, 1.0)
    choice = ws.thread_choice
    if not _sgd.THREADS:
        assert choice["threads"] == 1 and ws.threads == 1
        return
    per_step = choice["seconds_per_step"]
    assert set(per_step) == {1, 2} and all(t > 0 for t in per_step.values()), choice
    faster = min(per_step, key=per_step.get)
    assert choice["threads"] in (1, 2)
    assert ws.steps == 10


def test_segment_log_records_every_step_of_the_epochs():
    """``log_segments`` records each segment's thread count and steps: together they
    are every step of the epochs, in segments of one thread or of the whole team, in
    time order; the record stops at its capacity and starts afresh when asked."""
    X, y, order, init = _determinism_problem()
    ws = _sgd.Workspace(7, 13, 32, 5, np.float64, 2)
    params = tuple(p.copy() for p in init)
    n_batches = -(-len(order) // 7)
    assert ws.segments.shape == (0, 4)
    ws.log_segments(10_000)
    for _ in range(3):
        _sgd.sgd_epoch(X, y, order, *params, ws, 0.05, 1.0)
    seg = ws.segments
    assert seg.shape[1] == 4 and seg[:, 1].sum() == 3 * n_batches
    assert set(seg[:, 0]) <= {1.0, float(ws.threads)} and np.all(seg[:, 1] >= 1)
    assert np.all(seg[:, 2] > 0) and np.all(np.diff(seg[:, 3]) > 0)
    ws.log_segments(2)
    _sgd.sgd_epoch(X, y, order, *params, ws, 0.05, 1.0)
    seg = ws.segments      # full, or the whole epoch fitted in fewer segments
    assert len(seg) == 2 or (len(seg) == 1 and seg[0, 1] == n_batches)
    ws.log_segments(0)
    _sgd.sgd_epoch(X, y, order, *params, ws, 0.05, 1.0)
    assert ws.segments.shape == (0, 4)
    with pytest.raises(ValueError, match="capacity"):
        ws.log_segments(-1)


def _modes(seconds_per_step, segments=300):
    return "".join(str(m) for m in _sgd.simulate_thread_choice(seconds_per_step, segments))


def test_thread_choice_settles_on_a_faster_team():
    modes = _modes(lambda i, threads: 200e-6 if threads == 2 else 300e-6)
    assert modes[10:].count("2") >= 0.95 * len(modes[10:]), modes
    # probes of one thread back off: after 4, 8 and 16 segments, then every 32 at most
    assert modes[10:].count("1") <= 3 + 290 // 32, modes


def test_thread_choice_keeps_one_thread_when_the_team_is_slower():
    modes = _modes(lambda i, threads: 500e-6 if threads == 2 else 300e-6)
    assert modes[0] == "2", modes        # the first segment warms the team, untimed
    modes = modes[1:]
    assert modes.count("2") <= 1 + 3 + 300 // 32, modes   # the first timed, backed-off probes
    assert "22" not in modes, modes


def test_thread_choice_does_not_time_the_cold_first_segment():
    """The first segment starts the threads and finds the weights in no cache: here it
    takes 10x a warm step. It only sizes the next segment, so the team (faster once
    warm) runs from the start, probes of one thread aside."""
    modes = _modes(lambda i, threads: (200e-6 if threads == 2 else 300e-6) * (10 if i == 0 else 1), 40)
    assert modes[:12].count("1") <= 2, modes      # without: 6 (a switch to one thread)
    assert modes[12:].count("1") <= 2, modes


def test_thread_choice_keeps_the_team_through_one_slow_segment():
    """One segment of the team runs 2.5x slower (a noisy moment on an idle machine). The
    probe of one thread it prompts beats the team's estimate, raised by that segment;
    one fresh segment of the team then decides, and it wins: no switch. (Switching on
    the probe alone ran one thread for 6 segments here.)"""
    modes = _modes(lambda i, threads: (200e-6 if threads == 2 else 300e-6) * (2.5 if i == 50 and threads == 2 else 1),
                   90)
    assert modes[50:70].count("1") <= 1, modes


def test_thread_choice_tries_the_team_afresh_when_one_thread_slows_down():
    """One thread's segments are 3x slower now and then (the OS took its core): that
    prompts probes of the team, which must win twice before it runs; it never does here."""
    modes = _modes(lambda i, threads: 500e-6 if threads == 2 else (900e-6 if i % 10 == 0 else 300e-6))[1:]
    assert "22" not in modes, modes
    assert modes.count("2") <= 0.25 * len(modes), modes


def test_thread_choice_probes_run_as_long_as_the_segments_around_them():
    """A probe of the mode not in use takes about 8 ms of the mode in use's steps, as
    every segment does: on a busy machine the OS runs each thread a few milliseconds
    at a time, and a shorter probe would time where in that cycle it fell."""
    runs = _sgd.simulate_thread_choice(lambda i, threads: 200e-6 if threads == 2 else 300e-6, 200,
                                       with_steps=True)
    in_use = int(8e-3 / 200e-6)                       # the team's segments: 40 steps
    probes = [steps for threads, steps in runs[10:] if threads == 1]
    assert len(probes) >= 3, runs
    assert all(abs(steps - in_use) <= 1 for steps in probes), runs
    assert all(abs(steps - in_use) <= 1 for threads, steps in runs[10:] if threads == 2), runs


def test_thread_choice_rides_out_a_moment_when_everything_is_slow():
    """For three segments the whole machine runs 4x slower (a neighbour, the hypervisor):
    the team's own time then passes one thread's old estimate, which is no reason to
    switch. One thread is tried afresh instead, loses, and the team runs on. When only
    the team slows down, the same probe wins and one thread takes over."""
    def everything_slow(i, threads):
        return (200e-6 if threads == 2 else 300e-6) * (4 if 64 <= i < 67 else 1)

    def team_slow(i, threads):
        return (200e-6 if threads == 2 else 300e-6) * (4 if 64 <= i < 67 and threads == 2 else 1)

    modes = _modes(everything_slow, 100)
    assert modes[30:64].count("1") <= 3, modes          # the team before, probes aside
    assert modes[64:84].count("1") <= 1, modes          # one probe, no switch
    modes = _modes(team_slow, 100)
    assert modes[65:68].count("1") >= 2, modes          # one thread while the team is slow


def test_thread_choice_keeps_trying_a_team_that_loses_narrowly():
    """A team that loses by less than 25% (a noisy moment on an idle machine) is tried
    again at the same pace, not less and less often: once it is faster again it is back
    within a few segments."""
    modes = _modes(lambda i, threads: (330e-6 if 10 <= i < 100 else 200e-6) if threads == 2 else 300e-6, 130)
    assert modes[20:100].count("2") <= 0.4 * 80, modes        # mostly one thread meanwhile
    assert modes[100:112].count("2") >= 6 and modes[112:].count("1") <= 2, modes


def test_thread_choice_follows_a_change_of_load():
    modes = _modes(lambda i, threads: (200e-6 if i < 100 else 600e-6) if threads == 2 else 300e-6)
    assert modes[10:100].count("2") >= 0.9 * 90, modes
    assert modes[105:].count("1") >= 0.95 * len(modes[105:]), modes


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

@pytest.mark.parametrize("n_threads,hidden,expected", [
    (2, 128, 2),
    (3, 128, 2),     # 3 does not divide 128
    (2, 7, 1),       # hidden // 8 == 0: one slice
    (2, 15, 1),      # two slices would have 7 units (< 8)
    (2, 16, 2),      # exactly 8 units each
    (4, 16, 2),      # capped by hidden // 8
    (4, 24, 3),
    (8, 8, 1),
    (1, 128, 1),
    (64, 128, 16),   # 16 slices of 8
    (6, 40, 5),      # capped by 40 // 8 == 5, which divides 40
    (7, 56, 7),
])
def test_n_slices(n_threads, hidden, expected):
    assert _threads.n_slices(n_threads, hidden) == expected


def _rule(n_threads, hidden):
    """The documented rule: the largest count <= n_threads dividing hidden with >= 8 units each."""
    ok = [c for c in range(1, n_threads + 1) if hidden % c == 0 and hidden // c >= 8]
    return max(ok) if ok else 1


def test_n_slices_rule_exhaustive():
    for n_threads in range(1, 10):
        for hidden in range(1, 130):
            got = _threads.n_slices(n_threads, hidden)
            assert got == _rule(n_threads, hidden), (n_threads, hidden)
            assert type(got) is int


def test_n_slices_default_uses_available_cores(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("FASTMLP_NUM_THREADS", raising=False)
    cores = _threads.available_cores()
    assert cores >= 1
    assert _threads.default_threads() == min(cores, _sgd.thread_limit() or cores)
    for hidden in (8 * 64, 128, 24):
        assert _threads.n_slices(None, hidden) == _rule(_threads.default_threads(), hidden)


def test_n_slices_rejects_bad_n_threads():
    with pytest.raises(ValueError, match="n_threads"):
        _threads.n_slices(0, 128)
    with pytest.raises(ValueError, match="n_threads"):
        _threads.n_slices(-2, 128)
    with pytest.raises(TypeError, match="n_threads"):
        _threads.n_slices("2", 128)
    with pytest.raises(TypeError, match="n_threads"):
        _threads.n_slices(2.0, 128)
    with pytest.raises(TypeError, match="n_threads"):
        _threads.n_slices(True, 128)


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
    with _blas.BlasThreads().single():
        inside = _blas_threads()
        assert set(inside) == set(before)
        assert all(n == 1 for n in inside.values()), inside
    assert _blas_threads() == before


def test_blas_single_restores_after_an_exception(blas_at_two):
    before = blas_at_two
    with pytest.raises(RuntimeError, match="boom"):
        with _blas.BlasThreads().single():
            assert all(n == 1 for n in _blas_threads().values())
            raise RuntimeError("boom")
    assert _blas_threads() == before


def test_blas_single_nested_restores_each_level(blas_at_two):
    before = blas_at_two
    blas = _blas.BlasThreads()
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


def test_fit_multiplies_with_numpy_only_while_blas_holds_one_thread(blas_at_two, monkeypatch):
    # Besides the compiled step, a fit on the compiled backend multiplies with NumPy in
    # its divergence check's set-up (a sample of X by W1, and the dead-layer scan)
    # just before the first epoch. BLAS on several threads there would leave its idle
    # workers spinning on the cores while the team starts: 20-epoch fits on MNIST at
    # the seed shape took 14-27% longer so, MLPClassifier.partial_fit about 15%.
    from fastmlp import _divergence
    seen = []

    def recording(function):
        def wrapper(*args, **kwargs):
            seen.append((function.__name__, _blas_threads()))
            return function(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(_divergence.reference, "forward", recording(reference.forward))
    monkeypatch.setattr(_divergence, "hidden_layer_dead", recording(_divergence.hidden_layer_dead))
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((300, 6)), rng.integers(0, 3, size=300)
    X[:100] = 0   # no hidden unit positive on the check's sample rows: the scan runs too
    fastmlp.fit(X, y, hidden=16, epochs=2, batch_size=32, lr=0.01)
    assert [name for name, _ in seen] == ["forward", "hidden_layer_dead"]
    assert all(n == 1 for _, threads in seen for n in threads.values()), seen
    assert _blas_threads() == blas_at_two


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
    # beyond X: the labels copied as int64 (always: the step indexes with them without
    # the GIL), one permutation of the rows, weights and scratch; a copy of X is 1.0
    assert peak < 0.1 * X.nbytes, (peak, X.nbytes)


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


def test_workspace_with_slices_sizes():
    ws = _sgd.Workspace(10, 5, 24, 3, np.float64, 4)
    assert ws.n_slices == 4 and ws.gemm_columns == 6
    assert ws.hidden.shape == (4, 10, 6) and ws.d_hidden.shape == (4, 10, 6)
    assert ws.logits.shape == (2, 4, 10, 3) and ws.grad.shape == (4, 10, 3)


def test_workspace_nbytes_counts_every_array_it_holds():
    """fit keeps a trainer only when its workspace's nbytes is small: every array the
    workspace holds must count, the momentum buffers and the private indices too."""
    def held(ws):
        values = (getattr(ws, name) for name in dir(ws) if not name.startswith("_"))
        return sum(v.nbytes for v in values if isinstance(v, np.ndarray))

    ws = _sgd.Workspace(10, 5, 24, 3, np.float64, 2, gemm_columns=6)
    assert ws.W1_blocks is not None and ws.nbytes == held(ws) > 0
    ws.momentum_buffers()
    ws.private_indices(np.zeros(50, dtype=np.int64), np.arange(50))
    assert ws.V1_blocks is not None and ws.labels.nbytes == 400
    assert ws.nbytes == held(ws)


@pytest.mark.parametrize("B,D,Hs,expected", [
    (30, 64, 128, 128),   # 10**6 // 1920 = 520 -> 512 >= 128: no blocking
    (30, 784, 128, 32),   # 10**6 // 23520 = 42 -> 32
    (256, 784, 64, 64),   # no block of 16 fits: all the columns
    (30, 100, 400, 320),  # 333 -> 320
])
def test_gemm_columns_heuristic(B, D, Hs, expected):
    got = _blas.gemm_columns(B, D, Hs)
    assert got == expected
    assert got == Hs or (got % 16 == 0 and B * D * got <= _blas.SMALL_GEMM_VOLUME)


def test_overlapping_single_blas_restores_counts_once_all_leave():
    """Two fits in two threads: the BLAS thread counts come back when the last one ends."""
    import threading as _threading

    from threadpoolctl import threadpool_info, threadpool_limits

    from fastmlp._blas import BlasThreads

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


def _trainer_slices(hidden=64):
    from fastmlp._fit import Trainer
    return Trainer("cython", 30, 20, hidden, 3, np.float64, None).workspace.n_slices


@pytest.mark.parametrize("variable", ["OMP_NUM_THREADS", "FASTMLP_NUM_THREADS"])
def test_default_thread_count_follows_environment(variable, monkeypatch):
    """n_threads=None respects OMP_NUM_THREADS (joblib's and Dask's workers set it) and
    FASTMLP_NUM_THREADS; an explicit n_threads wins."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("FASTMLP_NUM_THREADS", raising=False)
    monkeypatch.setenv(variable, "1")
    assert _threads.default_threads() == 1
    assert _trainer_slices() == 1
    assert _threads.n_slices(2, 128) == 2
    monkeypatch.setenv(variable, "3,2")   # OpenMP's nested form: the first level counts
    assert _threads.default_threads() == min(3, _threads.available_cores(), _sgd.thread_limit() or 3)
    monkeypatch.setenv(variable, "not a number")
    assert _threads.default_threads() == min(_threads.available_cores(), _sgd.thread_limit() or 10**9)


def test_threadpoolctl_sees_and_limits_the_team(monkeypatch):
    """threadpoolctl lists fastmlp's team and threadpool_limits limits it, like OpenMP's."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("FASTMLP_NUM_THREADS", raising=False)
    ours = [lib for lib in threadpool_info() if lib["user_api"] == "fastmlp"]
    assert len(ours) == 1 and ours[0]["version"] == fastmlp.__version__
    with threadpool_limits(1):
        assert _sgd.thread_limit() == 1
        assert _trainer_slices() == 1
        ws = _sgd.Workspace(10, 13, 32, 5, np.float64, 2, adaptive=False)
        X, y, order, init = _determinism_problem()
        _sgd.sgd_epoch(X, y, order, *(p.copy() for p in init), ws, 0.05, 1.0)
        if _sgd.THREADS:  # a serial build (FASTMLP_THREADS=0) has no team mode
            assert ws.thread_choice["seconds_per_step"][2] > 0   # the team mode ran, on one thread
    assert _sgd.thread_limit() in (0, _threads.available_cores())
    assert _trainer_slices() == _rule(_threads.default_threads(), 64)


def test_step_products_policy(monkeypatch):
    """fastmlp's unpacked kernels wherever the CPU has them and the slice is a whole
    number of their tiles; else OpenBLAS's small-matrix path where the products fit it
    in blocks of 16 columns or more; else BLAS as it is."""
    for tile in (0, 8, 32, 64):
        monkeypatch.setattr(_blas, "_unpacked_tile", lambda itemsize, t=tile: t)
        for has_small_path in (True, False):
            monkeypatch.setattr(_blas.BlasThreads, "has_small_gemm", lambda self, v=has_small_path: v)
            # 30 rows x 784 features: 1e6 / (30 * 784) = 42.5 columns fit, so blocks of 32
            small_path = (32, False) if has_small_path else (None, False)
            assert _blas.step_products(30, 784, 64) == ((None, True) if tile else small_path)
            small_path = (16, False) if has_small_path else (None, False)
            assert _blas.step_products(30, 784, 16) == ((None, True) if tile == 8 else small_path)
            # 80 x 784 x 16 > 1e6: OpenBLAS would pack
            assert _blas.step_products(80, 784, 64) == ((None, True) if tile else (None, False))
    # fastmlp's kernels take a slice with rows over 1 KB in blocks of at most 512 bytes
    # per row, a multiple of 64 columns that divides the slice
    monkeypatch.setattr(_blas, "_unpacked_tile", lambda itemsize: 64 // itemsize * 4)
    assert _blas.step_products(256, 784, 128) == (None, True)       # 1 KB rows
    assert _blas.step_products(256, 784, 256, 4) == (None, True)
    assert _blas.step_products(256, 784, 256) == (64, True)
    assert _blas.step_products(256, 784, 512, 4) == (128, True)
    assert _blas.step_products(256, 784, 384, 4) == (128, True)
    assert _blas.step_products(256, 784, 320, 4) == (64, True)
    assert _blas.step_products(256, 784, 160) == (None, True)       # no multiple of 64 divides


def test_unpacked_kernel_tiles():
    """A tile is 2 vectors of 32 bytes (AVX2) or 4 of 64 bytes (AVX-512) wide."""
    from fastmlp import kernels
    best = kernels.small_gemm_isa()
    for isa, f64, f32 in ((1, 8, 16), (2, 32, 64)):
        if isa <= best:
            assert kernels.small_gemm_width(np.float64, isa) == f64
            assert kernels.small_gemm_width("float32", isa) == f32
    assert kernels.small_gemm_width(np.float64, 0) == 0
    with pytest.raises(ValueError, match="isa"):
        kernels.small_gemm_width(np.float64, best + 1)
    with pytest.raises(TypeError, match="dtype"):
        kernels.small_gemm_width(np.int32)


def test_fit_weights_start_on_a_cache_line():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 5))
    y = np.arange(40) % 3
    model = fastmlp.fit(X, y, hidden=16, epochs=1)
    for name in NAMES:
        assert getattr(model, name).ctypes.data % 64 == 0, name
    ws = _sgd.Workspace(10, 5, 16, 3, np.float32, 2)
    for buffer in (ws.X_batch, ws.hidden, ws.d_hidden, ws.logits, ws.grad, ws.W1_blocks):
        assert buffer.ctypes.data % 64 == 0
    # each member's batch rows and labels start on a line of their own (no line shared)
    for buffer in (ws.X_batch, ws.y_batch, ws.w_batch):
        assert buffer.shape[0] == ws.threads
        assert all(buffer[m].ctypes.data % 64 == 0 for m in range(ws.threads)), buffer.strides
    # and so does every slice's block of the step's buffers, written by one member each:
    # blocks of 10 x 9 and 10 x 3 float32 (360 and 120 bytes) packed would share lines
    ws = _sgd.Workspace(10, 5, 18, 3, np.float32, 2)
    for buffer in (ws.hidden, ws.d_hidden, ws.grad, ws.logits[0], ws.logits[1]):
        assert buffer.shape[:2] == (2, 10)
        assert all(buffer[s].ctypes.data % 64 == 0 for s in range(2)), buffer.strides
    # and so do the weights that benchmarks and fits start from (timings depend on it)
    from fastmlp._fit import init_params
    for p in init_params(rng, 5, 16, 3, np.float32):
        assert p.ctypes.data % 64 == 0
    # weights from init= and the velocities of momentum, too
    warm = fastmlp.fit(X, y, hidden=16, epochs=1, momentum=0.9, init=(model.W1, model.b1, model.W2, model.b2))
    for name in NAMES:
        assert getattr(warm, name).ctypes.data % 64 == 0, name
    assert all(v.ctypes.data % 64 == 0 for v in warm.state.velocities)


# ---------------------------------------------------- 8. fork, interpreter exit and Ctrl-C

def _run_python(code, timeout=120, **kwargs):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=str(REPO),
                          capture_output=True, text=True, timeout=timeout, **kwargs)


def test_team_threads_stop_using_the_cpu_after_an_epoch():
    """A team's waiting threads spin, then sleep (``src_c/_team.h``): a few milliseconds
    after a threaded epoch the process uses no CPU while it sleeps. A wait that kept
    spinning would burn a core for as long as the process lives."""
    X, y, order, init = _determinism_problem()
    ws = _sgd.Workspace(10, 13, 32, 5, np.float64, 2, max_threads=2, adaptive=False)
    params = tuple(p.copy() for p in init)
    _sgd.sgd_epoch(X, y, order, *params, ws, 0.05, 1.0)
    assert ws.thread_choice["threads"] == (2 if _sgd.THREADS else 1)
    time.sleep(0.3)   # the team's waits end within milliseconds; BLAS's within 0.3 s
    before = time.process_time()
    time.sleep(0.5)
    assert time.process_time() - before < 0.05


@pytest.mark.skipif(not _sgd.THREADS, reason="a build without threads never waits")
def test_team_waits_spin_briefly_while_other_processes_want_a_core():
    """Waiting members spin for milliseconds only while no other thread is ready to
    run (a sleeping thread's core is then idle anyway, and in a virtual machine waking
    it can take milliseconds); with busy processes beside the team, one more than the
    cores, they spin for microseconds and then give the core away."""
    assert _sgd.wait_spin_microseconds(1) in (30, 3000)
    with benchmark.CompetingLoad(n_processes=(os.cpu_count() or 1) + 1):
        time.sleep(0.2)
        assert _sgd.wait_spin_microseconds(1) == 30
        assert _sgd.wait_spin_microseconds(2) == 30


def test_fit_in_a_fork_child_after_a_threaded_fit():
    """GNU OpenMP hangs here; fastmlp's team starts afresh in the child, with the
    parent's result (the slice count, not the threads, fixes it)."""
    proc = _run_python("""
        import multiprocessing as mp, numpy as np, fastmlp
        from concurrent.futures import ProcessPoolExecutor

        def job(seed):
            rng = np.random.default_rng(seed)
            X = rng.standard_normal((300, 20)); y = rng.integers(0, 3, 300)
            m = fastmlp.fit(X, y, hidden=32, epochs=3, n_threads=2, seed=seed, lr=1e-3)
            return m.W1

        parent = job(1)                       # the parent's team exists now
        with ProcessPoolExecutor(2, mp_context=mp.get_context("fork")) as pool:
            children = list(pool.map(job, [1, 1, 2]))
        assert np.array_equal(children[0], parent) and np.array_equal(children[1], parent)
        assert not np.array_equal(children[2], parent)
        print("ok")
    """, timeout=60)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr


def test_grid_search_on_joblib_multiprocessing_after_a_threaded_fit():
    """joblib's "multiprocessing" backend forks workers: GridSearchCV must complete, with
    the scores of a sequential run."""
    proc = _run_python("""
        import joblib, numpy as np, fastmlp
        from sklearn.model_selection import GridSearchCV
        rng = np.random.default_rng(0)
        X = rng.standard_normal((240, 12)); y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)
        fastmlp.fit(X, y, hidden=32, epochs=2, n_threads=2)          # the parent's team
        grid = {"lr": [1e-3, 3e-3]}
        est = fastmlp.MLPClassifier(hidden=32, epochs=5, random_state=0)
        with joblib.parallel_backend("multiprocessing", n_jobs=2):
            forked = GridSearchCV(est, grid, cv=2).fit(X, y)
        local = GridSearchCV(est, grid, cv=2, n_jobs=1).fit(X, y)
        assert np.array_equal(forked.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"])
        print("ok")
    """, timeout=120)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr


@pytest.mark.parametrize("run", range(3))
def test_interpreter_exit_during_a_fit_in_a_daemon_thread(run):
    """The main thread returns while a daemon thread trains: exit must be clean, with
    the main thread's status (fastmlp stops the step before libraries unload)."""
    proc = _run_python("""
        import sys, threading, time, numpy as np, fastmlp
        rng = np.random.default_rng(0)
        X = rng.standard_normal((20000, 200)); y = rng.integers(0, 10, 20000)
        started = threading.Event()
        def train():
            started.set()
            fastmlp.fit(X, y, hidden=256, epochs=1000, n_threads=2)
        threading.Thread(target=train, daemon=True).start()
        started.wait(); time.sleep(0.3 + 0.1 * %d)
        sys.exit(3)
    """ % run, timeout=60)
    assert proc.returncode == 3, (proc.returncode, proc.stderr[-2000:])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_ctrl_c_stops_an_epoch_after_a_complete_step(dtype, tmp_path):
    """SIGINT during a long epoch: KeyboardInterrupt reaches the caller before the epoch
    ends, and the weights are those after a whole number of steps (finite, not torn)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    code = textwrap.dedent("""
        import signal
        import numpy as np, fastmlp
        from fastmlp import _sgd
        # Python leaves SIGINT ignored when it starts ignored (a job started with `&`
        # by a shell without job control): take Python's handler back.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from fastmlp._fit import init_params
        rng = np.random.default_rng(0)
        N, D, H, C, B = 6000, 100, 64, 10, 30
        X = rng.standard_normal((N, D)).astype("%s"); y = rng.integers(0, C, N)
        init = init_params(rng, D, H, C, X.dtype)
        params = tuple(p.copy() for p in init)
        ws = _sgd.Workspace(B, D, H, C, X.dtype, 2)
        order = np.tile(np.arange(N), 400)     # one epoch of 80,000 steps: seconds
        print("ready", flush=True)
        try:
            _sgd.sgd_epoch(X, y, order, *params, ws, 1e-4, 1e-2, main_thread=True)
            print("never interrupted")
        except KeyboardInterrupt:
            np.savez(%r, ws.steps, *params)
            print("interrupted", flush=True)
    """)
    out = tmp_path / "interrupted.npz"
    child = subprocess.Popen([sys.executable, "-c", code % (dtype, str(out))], env=env,
                             cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    assert child.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    child.send_signal(signal.SIGINT)
    stdout, stderr = child.communicate(timeout=60)
    assert child.returncode == 0 and stdout.split() == ["interrupted"], (stdout, stderr)
    with np.load(out) as saved:
        steps = int(saved["arr_0"])
        got = [saved[f"arr_{i}"] for i in range(1, 5)]
    assert 0 < steps < 80_000
    # The weights are exactly those after `steps` whole steps.
    rng = np.random.default_rng(0)
    N, D, H, C, B = 6000, 100, 64, 10, 30
    X = rng.standard_normal((N, D)).astype(dtype)
    y = rng.integers(0, C, N)
    from fastmlp._fit import init_params
    params = tuple(p.copy() for p in init_params(rng, D, H, C, X.dtype))
    ws = _sgd.Workspace(B, D, H, C, X.dtype, 2)
    _sgd.sgd_epoch(X, y, np.tile(np.arange(N), 400)[:steps * B], *params, ws, 1e-4, 1e-2)
    for name, a, b in zip(NAMES, got, params):
        assert np.array_equal(a, b), name


# ------------------------------------------- 9. fastmlp's unpacked kernels in the step

@pytest.mark.skipif(fastmlp.kernels.small_gemm_isa() == 0, reason="no AVX2/AVX-512 on this CPU")
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("isa", [1, 2], ids=["avx2", "avx512"])
@pytest.mark.parametrize("n_slices", [1, 2])
@pytest.mark.parametrize("case", [(70, 23, 64, 5, 13), (45, 9, 128, 3, 30), (31, 784, 64, 10, 6)],
                         ids=lambda c: "N{}-D{}-H{}-C{}-b{}".format(*c))
def test_step_with_small_gemm_matches_reference(case, n_slices, isa, dtype, tol):
    if isa > fastmlp.kernels.small_gemm_isa():
        pytest.skip("no AVX-512 on this CPU")
    N, D, H, C, batch = case
    rng = np.random.default_rng(N + D)
    X, y, init = random_problem(rng, N, D, H, C, dtype)
    order = rng.permutation(N).astype(np.int64)
    ref = tuple(p.copy() for p in init)
    ref_results = [reference.sgd_epoch(X, y, order, ref, 0.01, 0.05, batch) for _ in range(2)]
    results = {}
    for threads in (1, n_slices):
        got = tuple(p.copy() for p in init)
        ws = _sgd.Workspace(batch, D, H, C, dtype, n_slices, max_threads=threads, adaptive=False,
                            small_gemm=isa)
        width = fastmlp.kernels.small_gemm_width(dtype, isa)
        assert ws.small_gemm_isa == (isa if (H // n_slices) % width == 0 else 0)
        results[threads] = ([_sgd.sgd_epoch(X, y, order, *got, ws, 0.01, 0.05) for _ in range(2)], got)
        for (loss, correct), (ref_loss, ref_correct) in zip(results[threads][0], ref_results):
            assert correct == ref_correct
            assert_allclose(loss, ref_loss, **tol(dtype, abs(ref_loss)))
        for name, g, r in zip(NAMES, got, ref):
            assert_allclose(g, r, **tol(dtype, max(1.0, np.max(np.abs(r)))), err_msg=name)
    # the threads that run the slices do not change a bit
    assert results[1][0] == results[n_slices][0]
    for name, a, b in zip(NAMES, results[1][1], results[n_slices][1]):
        assert np.array_equal(a, b), name


# --------------------------------------------------------------- 10. pooled trainers

@pytest.fixture
def empty_pool():
    """No pooled trainers before or after the test."""
    fastmlp._fit.release_trainers()
    yield fastmlp._fit._pooled
    fastmlp._fit.release_trainers()


def _small_fit(seed=0, **kwargs):
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((120, 9)), rng.integers(0, 3, size=120)
    options = dict(hidden=16, epochs=3, batch_size=10, lr=0.01, seed=seed)
    options.update(kwargs)
    model = fastmlp.fit(X, y, **options)
    return model.W1, model.b1, model.W2, model.b2


def test_a_fit_takes_the_pooled_trainer_of_its_shape_and_trains_as_a_new_one(empty_pool, monkeypatch):
    first = _small_fit(n_threads=2)
    assert len(empty_pool) == 1
    (key, trainer), = empty_pool.items()
    assert key == (10, 9, 16, 3, "float64", 2)
    again = _small_fit(n_threads=2)
    assert list(empty_pool.items()) == [(key, trainer)]   # the same trainer, back again
    monkeypatch.setattr(fastmlp._fit, "POOLED_TRAINERS", 0)
    fastmlp._fit.release_trainers()
    fresh = _small_fit(n_threads=2)
    assert not empty_pool
    for a, b, c in zip(first, again, fresh):
        assert np.array_equal(a, b) and np.array_equal(a, c)


def test_the_pool_keys_on_the_slice_count_not_on_n_threads(empty_pool, monkeypatch):
    # n_threads=None resolves from the environment at each fit; the slice count fixes
    # the result, so a trainer made for one count must not serve a fit of another.
    expected = {}
    monkeypatch.setattr(_threads, "available_cores", lambda: 4)   # any machine: 2 may be used
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)          # (a Dask test may have set it)
    monkeypatch.setattr(fastmlp._fit, "POOLED_TRAINERS", 0)
    for threads in ("1", "2"):
        monkeypatch.setenv("FASTMLP_NUM_THREADS", threads)
        expected[threads] = _small_fit()
    monkeypatch.setattr(fastmlp._fit, "POOLED_TRAINERS", 4)
    for threads in ("1", "2", "1"):
        monkeypatch.setenv("FASTMLP_NUM_THREADS", threads)
        for a, b in zip(_small_fit(), expected[threads]):
            assert np.array_equal(a, b), threads
    assert sorted(key[-1] for key in empty_pool) == [1, 2]
    assert not np.array_equal(expected["1"][0], expected["2"][0])


def test_the_pool_keeps_the_last_few_small_trainers(empty_pool, monkeypatch):
    for hidden in (8, 16, 24, 32, 40, 48):
        _small_fit(hidden=hidden, n_threads=1)
    assert [key[2] for key in empty_pool] == [16, 24, 32, 40, 48][-fastmlp._fit.POOLED_TRAINERS:]
    trainer = next(iter(empty_pool.values()))
    assert 0 < trainer.workspace.nbytes <= fastmlp._fit.POOLED_TRAINER_BYTES
    fastmlp._fit.release_trainers()
    monkeypatch.setattr(fastmlp._fit, "POOLED_TRAINER_BYTES", trainer.workspace.nbytes - 1)
    _small_fit(hidden=trainer.workspace.d_b1.shape[0], n_threads=1)
    assert not empty_pool          # too big to keep
    _small_fit(backend="numpy")
    assert not empty_pool          # nothing to keep


def test_fits_at_once_never_share_a_trainer(empty_pool, monkeypatch):
    """Two fits of one shape in two Python threads, both inside their epochs at once:
    each has its own trainer (the step indexes with its workspace's private copies of y
    and the order), and each trains as it would alone."""
    alone = _small_fit(n_threads=2)
    both_in = threading.Barrier(2, timeout=30)
    used, original = [], fastmlp._fit.Trainer.epoch

    def epoch(self, *args, **kwargs):
        if len([t for t in used if t is self]) == 0:
            used.append(self)
            both_in.wait()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(fastmlp._fit.Trainer, "epoch", epoch)
    results = [None, None]

    def run(i):
        results[i] = _small_fit(n_threads=2)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(used) == 2 and used[0] is not used[1]
    for result in results:
        for a, b in zip(result, alone):
            assert np.array_equal(a, b)
    assert len(empty_pool) == 1     # one of the two kept


def test_a_fork_child_fits_while_the_parent_holds_the_pool_lock():
    """The pool's lock is made anew in a forked child: a fork while another thread held
    it must not leave the child's fits waiting for ever."""
    proc = _run_python("""
        import multiprocessing as mp, numpy as np, fastmlp
        from fastmlp import _fit

        def job(seed):
            rng = np.random.default_rng(seed)
            X = rng.standard_normal((200, 10)); y = rng.integers(0, 3, 200)
            return fastmlp.fit(X, y, hidden=16, epochs=2, n_threads=2, seed=seed, lr=1e-3).W1

        parent = job(1)                       # a pooled trainer, with its team
        with _fit._pool_lock:                 # held at the fork, as by another thread
            with mp.get_context("fork").Pool(1) as pool:
                child = pool.apply_async(job, (1,)).get(timeout=60)
        assert np.array_equal(child, parent)
        print("ok")
    """, timeout=90)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr

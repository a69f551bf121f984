"""The benchmark suite's plumbing and its peer mapping (no timing is asserted here)."""

import csv
import os
import pathlib

import numpy as np
import pytest
from numpy.testing import assert_allclose

from fastmlp import benchmark, reference
from fastmlp.__main__ import main


def test_sklearn_mapping_takes_our_sgd_step():
    """learning_rate_init = lr * B and alpha = 2 * reg make MLPClassifier take the seed's step."""
    from sklearn.neural_network import MLPClassifier

    rng = np.random.default_rng(0)
    N, D, H, C, lr, reg = 12, 5, 4, 3, 1e-2, 0.3
    X = rng.standard_normal((N, D))
    y = np.arange(N) % C
    clf = MLPClassifier(hidden_layer_sizes=(H,), solver="sgd", momentum=0.0, nesterovs_momentum=False,
                        learning_rate="constant", learning_rate_init=lr * N, alpha=2 * reg,
                        batch_size=N, shuffle=False, random_state=0)
    clf.partial_fit(X, y, classes=np.arange(C))          # sets up the network
    params = (rng.standard_normal((D, H)), rng.standard_normal(H),
              rng.standard_normal((H, C)), rng.standard_normal(C))
    clf.coefs_ = [params[0].copy(), params[2].copy()]
    clf.intercepts_ = [params[1].copy(), params[3].copy()]
    clf.partial_fit(X, y)                                 # one step on the whole batch

    reference.sgd_step(X, y, params, lr, reg)
    for ours, theirs in zip(params, (clf.coefs_[0], clf.intercepts_[0], clf.coefs_[1], clf.intercepts_[1])):
        assert_allclose(theirs, ours, rtol=1e-12, atol=1e-14)


def test_steal_share_of_cpu_time():
    """The hypervisor's share of the CPU time between two readings of /proc/stat's
    counters (user, nice, system, idle, iowait, irq, softirq, steal)."""
    before = [100, 0, 10, 500, 0, 0, 0, 20]
    after = [160, 0, 20, 620, 0, 0, 0, 40]     # 60 + 10 + 120 + 20 = 210 ticks, 20 stolen
    assert benchmark.steal_share(before, after) == pytest.approx(20 / 210)
    assert benchmark.steal_share(before, before) == 0.0
    assert benchmark.steal_share(None, after) is None
    now = benchmark.cpu_times()
    if pathlib.Path("/proc/stat").exists():
        assert len(now) == 8 and all(isinstance(v, int) and v >= 0 for v in now)
    else:
        assert now is None


def test_shapes_and_flop_count():
    seed = benchmark.default_shapes(quick=True)[0]
    assert (seed.n_samples, seed.hidden, seed.batch_size, seed.n_features) == (2580, 128, 30, 784)
    assert seed.flops == 2580 * (4 * 784 * 128 + 6 * 128 * 10)
    labels = [s.label for s in benchmark.default_shapes()]
    assert {"H=64", "H=512", "B=256", "N=60000"} <= set(labels)


def _row(shape, peer, ms, gflops):
    return {"shape": shape, "n_samples": 10, "hidden": 4, "batch_size": 2, "peer": peer,
            "dtype": "float64", "ms": ms, "gflops": gflops, "pct_peak": gflops}


def test_tables_and_files(tmp_path):
    rows = [_row("s", "fastmlp-f64", 2.0, 50.0), _row("s", "pytorch", 7.0, 14.3),
            _row("s, busy", "fastmlp-f64", 4.0, 25.0), _row("s, busy", "pytorch", 40.0, 2.5)]
    peaks = {"float64": 100.0, "float32": 200.0}
    assert benchmark.ratios(rows) == {("s", "fastmlp-f64"): 1.0, ("s", "pytorch"): 3.5,
                                      ("s, busy", "fastmlp-f64"): 1.0, ("s, busy", "pytorch"): 10.0}
    md, csv_path, png = benchmark.write_results(rows, peaks, tmp_path / "out", ["CPU: test"])
    text = open(md).read()
    # a row per shape and peer, idle and busy side by side
    assert "| s | pytorch | 7.00 | 14.3 | 14% | 3.50 | 40.00 | 10.00 |" in text and "- CPU: test" in text
    assert "s, busy" not in text
    # the same columns as the README's table
    readme = pathlib.Path(__file__).resolve().parents[1] / "README.md"
    if readme.exists():
        header = next(line for line in text.splitlines() if line.startswith("| shape"))
        assert header in readme.read_text().splitlines()
    with open(csv_path) as f:
        table = list(csv.DictReader(f))
    assert [(r["shape"], r["peer"]) for r in table] == [("s", "fastmlp-f64"), ("s", "pytorch"),
                                                        ("s, busy", "fastmlp-f64"), ("s, busy", "pytorch")]
    assert [float(r["time_over_fastmlp_float64"]) for r in table] == pytest.approx([1, 3.5, 1, 10])
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    # one load alone: its columns only
    idle = benchmark.markdown_table(rows[:2], peaks)
    assert "| shape | peer | ms/epoch | GFLOP/s | % of peak | × fastmlp |" in idle
    assert "| s | pytorch | 7.00 | 14.3 | 14% | 3.50 |" in idle
    busy = benchmark.markdown_table(rows[2:], peaks)
    assert "| shape | peer | busy ms/epoch | × fastmlp |" in busy
    assert "| s | pytorch | 40.00 | 10.00 |" in busy


def test_peers_take_turns_on_shared_data(monkeypatch):
    """Every round times each peer's epoch once, in a shuffled order, so the peers'
    epochs interleave; a timed epoch follows untimed ones of the same peer where an
    epoch is short (warm, as in a training loop), judged by a warm epoch, not by a
    first one that compiles (JAX's jit); the peers of a shape read one copy of its
    data; a peer's time is the median of its own timed epochs."""
    class Clock:                                # the suite's clock, driven by the epochs
        now = 0.0

        def perf_counter(self):
            return self.now

        def sleep(self, seconds):
            self.now += seconds

    clock = Clock()
    monkeypatch.setattr(benchmark, "time", clock)
    tick = 2.0 ** -9                           # seconds, exact in binary: the clock adds exactly
    monkeypatch.setattr(benchmark, "WARM_UP_SECONDS", tick)   # one untimed epoch each, then a timed one
    monkeypatch.setattr(benchmark, "ROUND_WARM_UP_SECONDS", 5 * tick)   # 5 of a's epochs before each
    shape = benchmark.Shape("tiny", 60, 8, 30, n_features=5)
    calls, data = [], {}

    def maker(name, seconds, first_seconds):
        def make(s):
            data[name] = benchmark.synthetic_data(s, np.float64)[0]

            def epoch():
                clock.now += seconds if name in calls else first_seconds
                calls.append(name)
            return epoch
        return make

    # a's first epoch compiles: longer than b's, and than the rounds' warm-up
    monkeypatch.setattr(benchmark, "MAKERS", {"a": maker("a", tick, 64 * tick),
                                              "b": maker("b", 8 * tick, 8 * tick)})
    rows, skipped = [], {}
    benchmark._time_peers(shape, ["a", "b"], 9, {"float64": 1.0}, rows, skipped, lambda line: None)
    assert calls[:2] == ["a", "a"] and calls[2:4] == ["b", "b"]   # the warm-ups: two epochs each
    runs = "".join(calls[4:]).replace("aaaaaa", "A")   # A: 5 untimed epochs of a, then its timed one
    assert runs.count("A") == runs.count("b") == 9 and set(runs) == {"A", "b"}, runs
    rounds = [runs[i:i + 2] for i in range(0, 18, 2)]
    assert "Ab" in rounds and "bA" in rounds, rounds               # the order is shuffled
    assert data["a"] is data["b"]               # one copy, shared
    assert benchmark._shared is None            # and released after the shape
    assert {r["peer"]: r["ms"] for r in rows} == {"a": 1e3 * tick, "b": 8e3 * tick}


def test_bench_command_runs_and_reports_missing_peers(tmp_path, capsys, monkeypatch):
    small = benchmark.Shape("tiny", 90, 16, 30, n_features=20)
    monkeypatch.setattr(benchmark, "default_shapes", lambda quick=False: [small])
    monkeypatch.setattr(benchmark, "gemm_peak", lambda dtype, n=2048, repeat=5: 1.0)

    def missing(shape):
        raise ImportError("no module named 'torch'", name="torch")
    monkeypatch.setitem(benchmark.MAKERS, "pytorch", missing)
    out = tmp_path / "results"
    assert main(["bench", "--quick", "--repeat", "1", "--out", str(out),
                 "--peers", "fastmlp-f64", "numpy", "pytorch"]) == 0
    printed = capsys.readouterr().out
    assert "pytorch: skipped, not installed (torch)" in printed
    with open(out / "results.csv") as f:
        table = [(r["shape"], r["peer"]) for r in csv.DictReader(f)]
    # by default each peer is timed idle, then again beside one busy process per core
    assert table == [("tiny", "fastmlp-f64"), ("tiny", "numpy"),
                     ("tiny, busy", "fastmlp-f64"), ("tiny, busy", "numpy")]

    # without --out: the table on stdout, no file anywhere
    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    assert main(["bench", "--quick", "--repeat", "1", "--peers", "fastmlp-f64", "--load", "idle"]) == 0
    printed = capsys.readouterr().out
    assert "| tiny | fastmlp-f64 |" in printed and "busy" not in printed
    assert sorted(tmp_path.rglob("*")) == before


def test_bench_rejects_unknown_peer(tmp_path, capsys):
    assert main(["bench", "--peers", "tensorflow", "--out", str(tmp_path)]) == 1
    assert "--peers" in capsys.readouterr().err


def test_competing_load_runs_one_busy_process_per_core_and_stops_them():
    load = benchmark.CompetingLoad(n_processes=2)
    with load:
        procs = list(load._procs)
        assert len(procs) == 2 and all(p.poll() is None for p in procs)
    assert all(p.poll() is not None for p in procs) and load._procs == []
    assert benchmark.CompetingLoad().n_processes == benchmark.available_cores()


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="the OS does not let a process choose its CPUs")
def test_competing_load_holds_each_process_to_its_own_core():
    cores = sorted(os.sched_getaffinity(0))
    n = len(cores) + 1                  # one more than the cores: the extra one shares the first
    with benchmark.CompetingLoad(n_processes=n) as load:
        held = [os.sched_getaffinity(p.pid) for p in load._procs]
    assert held == [{c} for c in cores] + [{cores[0]}]
    with benchmark.CompetingLoad(n_processes=2, pin=False) as load:
        assert all(os.sched_getaffinity(p.pid) == set(cores) for p in load._procs)


@pytest.mark.parametrize("threads", [1, 2])
def test_fixed_step_trains_as_the_reference_on_the_threads_asked(threads):
    """The benchmarks' pinned step: fit's slice count, the thread count asked for (no
    thread choice), BLAS for the products when asked (small_gemm=0); its epoch is the
    reference's, to rounding."""
    from fastmlp import _sgd
    from fastmlp._threads import n_slices

    shape = benchmark.Shape("t", 40, 16, 8, n_features=6, n_classes=3)
    ws, params = benchmark.fixed_step(shape, np.float64, threads, 0, seed=3)
    assert ws.n_slices == n_slices(None, shape.hidden)
    assert ws.threads == (min(threads, ws.n_slices) if _sgd.THREADS else 1)   # serial build: one
    assert ws.small_gemm_isa == 0
    assert [p.shape for p in params] == [(6, 16), (16,), (16, 3), (3,)]
    X, y = benchmark.synthetic_data(shape, np.float64)
    order = np.random.default_rng(0).permutation(shape.n_samples)
    expected = [p.copy() for p in params]
    _sgd.sgd_epoch(X, y, order, *params, ws, 0.05, 0.01)
    assert ws.thread_choice["threads"] == ws.threads
    reference.sgd_epoch(X, y, order, expected, 0.05, 0.01, shape.batch_size)
    for got, want in zip(params, expected):
        assert_allclose(got, want, rtol=1e-12, atol=1e-14)

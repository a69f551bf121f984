"""The benchmark suite: one training epoch, fastmlp against its peers, side by side.

Every peer trains the same network on the same data in this one process:
Linear(D, H) -> ReLU -> Linear(H, C), softmax cross-entropy summed over the batch,
``reg * (||W1||^2 + ||W2||^2)``, plain SGD with learning rate ``lr``, a fresh shuffle
per epoch. The peers:

``fastmlp-f64`` / ``fastmlp-f32``
    The compiled path, as :func:`fastmlp.fit` runs it, in float64 / float32.
``numpy``
    The pure-NumPy reference (:mod:`fastmlp.reference`), the seed's loop.
``pytorch``
    ``nn.Linear``/``ReLU``/``nn.Linear``, ``cross_entropy(reduction="sum")`` plus the
    same L2 term, ``torch.optim.SGD(lr)`` (no momentum), on the CPU.
``sklearn``
    ``MLPClassifier(solver="sgd", momentum=0)``, one ``partial_fit`` per epoch. It
    averages the loss over the batch and uses the penalty ``alpha/2 * ||W||^2 / B``,
    so its step is ``W -= lr_sk / B * (grad + alpha W)``: ``learning_rate_init =
    lr * B`` and ``alpha = 2 * reg`` give our step exactly (the short last batch
    of an epoch is the one exception, since it divides by its own size).
``jax``
    ``jax.jit`` of one epoch: a gather of the shuffled rows, then ``lax.scan`` of
    the SGD step over the full batches (a partial last batch is left out and the
    time scaled up to the whole epoch).

On each shape the peers take turns: after a warm-up of at least 0.3 s each, ``repeat``
rounds (half as many, at least 3, at N > 10,000) in which every peer trains a timed
epoch, in a new random order each round. Each timed epoch follows 0.1 s of the same
peer's untimed epochs (for a peer whose epoch is shorter), so that, as in a training
loop, it starts with warm caches and awake threads; after it, a pause lets the peer's
thread pool stop spinning. A peer's time is the median of its timed epochs. So a spell of
load on a shared machine falls on epochs of every peer, not only on the peer being
timed at that moment. The peers of a shape share one copy of the data per dtype.

GFLOP/s count ``N * (4 D H + 6 H C)`` floating-point operations per epoch (the forward
and backward products), and "% of peak" divides by a large GEMM's GFLOP/s measured in
this process in the same dtype. The "× fastmlp" column is each peer's time over
fastmlp-f64's on the same row and load (2.00: the peer takes twice as long; for
``fastmlp-f32`` it is the float32/float64 time ratio). The table puts each peer's
epoch idle and busy side by side (see ``run_suite``'s ``loads``).

Run it with ``fastmlp bench`` or ``python benchmarks/run_suite.py``. PyTorch
and JAX are optional (``pip install torch jax``); a missing one is
skipped. Where ``OPENBLAS_CORETYPE``/``OPENBLAS_L2_SIZE`` are set in the
environment they hold OpenBLAS to slower kernels; to measure without them, unset
both in the command: ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE fastmlp bench``.
"""

import contextlib
import csv
import os
import platform
import random
import statistics
import time
from dataclasses import dataclass, replace

import numpy as np

from ._fit import Trainer, init_params
from ._threads import available_cores

LR, REG, N_CLASSES, N_FEATURES = 1e-4, 1e-2, 10, 784
PEERS = ("fastmlp-f64", "fastmlp-f32", "numpy", "pytorch", "sklearn", "jax")


@dataclass(frozen=True)
class Shape:
    """One row of the table: the data and network sizes of an epoch."""
    label: str
    n_samples: int
    hidden: int
    batch_size: int
    n_features: int = N_FEATURES
    n_classes: int = N_CLASSES

    @property
    def flops(self):
        """Floating-point operations of one epoch's products: N (4 D H + 6 H C)."""
        return self.n_samples * (4 * self.n_features * self.hidden + 6 * self.hidden * self.n_classes)


def default_shapes(quick=False):
    """The seed's shape, H in {64, 128, 512}, batch in {30, 256}, and N = 60,000."""
    seed = Shape("seed (N=2580, H=128, B=30)", 2580, 128, 30)
    if quick:
        return [seed]
    return [
        seed,
        Shape("H=64", 2580, 64, 30),
        Shape("H=512", 2580, 512, 30),
        Shape("B=256", 2580, 128, 256),
        Shape("N=60000", 60000, 128, 30),
    ]


def synthetic_data(shape, dtype, seed=0):
    """Pixels uniform in [-1, 1] (the seed's range) and uniform labels: timing data.

    Inside ``shared_data()`` every call with the same arguments returns the same two
    arrays (the peers only read them)."""
    key = (shape, np.dtype(dtype).str, seed)
    if _shared is not None and key in _shared:
        return _shared[key]
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, size=(shape.n_samples, shape.n_features)).astype(dtype)
    y = rng.integers(0, shape.n_classes, size=shape.n_samples).astype(np.int64)
    if _shared is not None:
        _shared[key] = X, y
    return X, y


_shared = None   # see shared_data


@contextlib.contextmanager
def shared_data():
    """Within: one copy of each shape's data for all peers (at N=60,000 one float64 X
    is 376 MB, and the peers of a row are alive together while they take turns)."""
    global _shared
    _shared = {}
    try:
        yield
    finally:
        _shared = None


WARM_UP_SECONDS = 0.3
# In the suite's rounds, each timed epoch follows this much of the same peer's epochs
# (where one epoch is shorter): its caches and threads warm, as in a training loop.
ROUND_WARM_UP_SECONDS = 0.1
# OpenBLAS's threads spin for about 0.13 s after a product (measured: the process's
# CPU time during a sleep after one), which would slow the next contender's threads:
# a benchmark that times a product between epochs pauses this long after it, and the
# suite after every peer's epoch (PyTorch's OpenMP and JAX's pools spin too).
BLAS_SPIN_SECONDS = 0.25


def run_for(epoch, seconds):
    """Run ``epoch`` at least once, and again until ``seconds`` have passed; the
    seconds its last run took (warm-ups: caches, threads, thread choice)."""
    start = last = time.perf_counter()
    epoch()
    while (now := time.perf_counter()) - start < seconds:
        last = now
        epoch()
    return now - last


def time_warm(epoch, warm_up=ROUND_WARM_UP_SECONDS):
    """Seconds one call of ``epoch`` takes right after ``warm_up`` seconds of untimed
    calls (at least one; none for ``warm_up=0``).

    For benchmarks whose contenders take turns: a training loop runs its epochs back to
    back, so an epoch timed cold, right after another contender's, measures the turn
    taking: the caches hold the other's data, fastmlp's team threads are asleep, and on
    a virtual machine a CPU that was idle (the other contender's one thread, a pause)
    runs slow for about 10 ms after it wakes. Measured at the seed's shape on two vCPUs
    of an AMD EPYC, epochs back to back after a 0.25 s pause: the team's first epochs
    took 1.6-1.8x the time of the fifth and later, one thread's 1.2x."""
    if warm_up > 0:
        run_for(epoch, warm_up)
    start = time.perf_counter()
    epoch()
    return time.perf_counter() - start


def median_time(run_epoch, repeat):
    """Median wall time of ``repeat`` calls, in seconds, after warm-up calls.

    The warm-up lasts at least ``WARM_UP_SECONDS``: besides filling caches, it lets
    the thread pools of whatever ran before (BLAS workers spin for tens of
    milliseconds after their last call) go idle, so they do not steal the cores
    from the measured peer.
    """
    run_for(run_epoch, WARM_UP_SECONDS)
    return statistics.median(time_warm(run_epoch, 0) for _ in range(repeat))


# ----------------------------------------------------------------------------- peers
# Each maker takes (shape, dtype) and returns a zero-argument function that trains
# one epoch, or raises ImportError when its library is missing.

def make_fastmlp(shape, dtype, backend="cython", n_threads=None, adaptive_threads=True):
    """An epoch of fastmlp as ``fit`` runs it (``n_threads``: as in ``fit``;
    ``adaptive_threads=False`` always runs the whole team, for comparison)."""
    X, y = synthetic_data(shape, dtype)
    rng = np.random.default_rng(1)
    params = init_params(rng, shape.n_features, shape.hidden, shape.n_classes, np.dtype(dtype))
    trainer = Trainer(backend, shape.batch_size, shape.n_features, shape.hidden,
                      shape.n_classes, np.dtype(dtype), n_threads, adaptive_threads)

    def epoch():
        order = rng.permutation(shape.n_samples)
        with trainer.running():
            trainer.epoch(X, y, order, params, LR, REG)
    return epoch


def fixed_step(shape, dtype, threads, small_gemm, seed=0):
    """The compiled step for ``shape`` with its choices pinned, for the benchmarks that
    compare kernels or thread counts: a workspace split into slices and column blocks as
    ``fit`` splits it, always on ``threads`` threads (no thread choice), its big products
    by fastmlp's kernels ``small_gemm`` (0: BLAS, 1: AVX2, 2: AVX-512; its
    ``small_gemm_isa`` is 0 where the slices are not a whole number of their tiles), and
    initial weights from ``seed``. Returns ``(workspace, params)``."""
    dtype = np.dtype(dtype)
    trainer = Trainer("cython", shape.batch_size, shape.n_features, shape.hidden, shape.n_classes, dtype,
                      None, adaptive_threads=False, max_threads=threads, small_gemm=small_gemm)
    params = init_params(np.random.default_rng(seed), shape.n_features, shape.hidden, shape.n_classes, dtype)
    return trainer.workspace, params


def add_shape_arguments(parser):
    """``--n``, ``--hidden``, ``--batch-size`` (the seed's shape by default) and
    ``--dtypes`` for a benchmark script; :func:`parsed_shape` makes their Shape."""
    parser.add_argument("--n", type=int, default=2580)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=30)
    parser.add_argument("--dtypes", nargs="+", default=["float64", "float32"], choices=["float32", "float64"])


def parsed_shape(args):
    """The Shape of the arguments that :func:`add_shape_arguments` added."""
    return Shape("custom", args.n, args.hidden, args.batch_size)


class CompetingLoad:
    """One CPU-bound process per available core, for timing on a busy machine.

    ``with CompetingLoad():`` starts them (busy loops in subprocesses, as a browser,
    a CI neighbour or another job would be) and stops them on exit.

    ``pin=True`` (the default, where the OS lets a process choose its CPUs) holds
    process i to the i-th available core, so every core has exactly one competitor.
    Left to the OS, two competitors often share a core for seconds while fastmlp's
    thread has the other to itself, and which contender gets that core is luck: on
    2 cores, one thread's epoch at H=512 took 65 or 120 ms by placement, and two
    identical contenders timed in turns differed by 9-14% over 15 rounds (pinned:
    0-1%). ``pin=False`` gives that OS placement.
    """

    def __init__(self, n_processes=None, pin=True):
        self.n_processes = n_processes or available_cores()
        self.pin = pin and hasattr(os, "sched_setaffinity")
        self._procs = []

    def __enter__(self):
        import subprocess
        import sys
        cores = sorted(os.sched_getaffinity(0)) if self.pin else []
        for i in range(self.n_processes):
            proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            self._procs.append(proc)
            if cores:
                os.sched_setaffinity(proc.pid, {cores[i % len(cores)]})
        time.sleep(0.2)   # let them start spinning
        return self

    def __exit__(self, *exc):
        for proc in self._procs:
            proc.kill()
        for proc in self._procs:
            proc.wait()
        self._procs = []


def make_pytorch(shape, dtype):
    import torch

    torch_dtype = {np.float64: torch.float64, np.float32: torch.float32}[np.dtype(dtype).type]
    X, y = synthetic_data(shape, dtype)
    X, y = torch.from_numpy(X), torch.from_numpy(y)
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(shape.n_features, shape.hidden), torch.nn.ReLU(),
        torch.nn.Linear(shape.hidden, shape.n_classes)).to(torch_dtype)
    W1, W2 = model[0].weight, model[2].weight
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.0)

    def epoch():
        order = torch.randperm(shape.n_samples)
        for start in range(0, shape.n_samples, shape.batch_size):
            rows = order[start:start + shape.batch_size]
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(X[rows]), y[rows], reduction="sum")
            loss = loss + REG * (W1.pow(2).sum() + W2.pow(2).sum())
            loss.backward()
            opt.step()
    return epoch


def make_sklearn(shape, dtype):
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    X, y = synthetic_data(shape, dtype)
    clf = MLPClassifier(hidden_layer_sizes=(shape.hidden,), solver="sgd", momentum=0.0,
                        nesterovs_momentum=False, learning_rate="constant",
                        learning_rate_init=LR * shape.batch_size, alpha=2 * REG,
                        batch_size=shape.batch_size, shuffle=True, random_state=0)
    classes = np.arange(shape.n_classes)

    def epoch():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.partial_fit(X, y, classes=classes)
    return epoch


def make_jax(shape, dtype):
    import jax
    import jax.numpy as jnp

    if np.dtype(dtype) == np.float64:
        jax.config.update("jax_enable_x64", True)
    X, y = synthetic_data(shape, dtype)
    X, y = jnp.asarray(X), jnp.asarray(y)
    B = shape.batch_size
    n_batches = shape.n_samples // B
    rng = np.random.default_rng(1)
    params = tuple(jnp.asarray(p) for p in init_params(
        rng, shape.n_features, shape.hidden, shape.n_classes, np.dtype(dtype)))

    def cost(params, Xb, yb):
        W1, b1, W2, b2 = params
        logits = jnp.maximum(Xb @ W1 + b1, 0) @ W2 + b2
        logp = jax.nn.log_softmax(logits)
        data = -jnp.take_along_axis(logp, yb[:, None], axis=1).sum()
        return data + REG * (jnp.sum(W1 * W1) + jnp.sum(W2 * W2))

    def step(params, batch):
        grads = jax.grad(cost)(params, *batch)
        return tuple(p - LR * g for p, g in zip(params, grads)), None

    @jax.jit
    def run_epoch(params, perm):
        rows = perm[:n_batches * B]
        Xs = X[rows].reshape(n_batches, B, shape.n_features)
        ys = y[rows].reshape(n_batches, B)
        params, _ = jax.lax.scan(step, params, (Xs, ys))
        return params

    state = {"params": params}
    key = {"k": jax.random.PRNGKey(0)}

    def epoch():
        key["k"], sub = jax.random.split(key["k"])
        perm = jax.random.permutation(sub, shape.n_samples)
        state["params"] = run_epoch(state["params"], perm)
        jax.block_until_ready(state["params"])
    epoch.scale = shape.n_samples / (n_batches * B)  # time for the full epoch
    return epoch


MAKERS = {
    "fastmlp-f64": lambda s: make_fastmlp(s, np.float64),
    "fastmlp-f32": lambda s: make_fastmlp(s, np.float32),
    "numpy": lambda s: make_fastmlp(s, np.float64, backend="numpy"),
    "pytorch": lambda s: make_pytorch(s, np.float64),
    "sklearn": lambda s: make_sklearn(s, np.float64),
    "jax": lambda s: make_jax(s, np.float64),
}


def gemm_product(dtype, n=2048):
    """``(product, flops)``: a function that computes one (n x n) @ (n x n) product in
    ``dtype`` with SciPy's BLAS (the library fastmlp's compiled step calls), on its
    default threads, and the floating-point operations it does."""
    from scipy.linalg import blas

    rng = np.random.default_rng(0)
    a = np.asfortranarray(rng.standard_normal((n, n)).astype(dtype))
    b = np.asfortranarray(rng.standard_normal((n, n)).astype(dtype))
    gemm = blas.dgemm if np.dtype(dtype) == np.float64 else blas.sgemm
    return (lambda: gemm(1.0, a, b)), 2 * n ** 3


def gemm_peak(dtype, n=2048, repeat=5):
    """GFLOP/s of the best of ``repeat`` (n x n) @ (n x n) products in ``dtype``.

    Measured with SciPy's BLAS (``gemm_product``) and with NumPy's; the higher figure
    counts, so "% of peak" is not flattered.
    """
    scipy_product, flops = gemm_product(dtype, n)
    a = np.ones((n, n), dtype=dtype)
    best = np.inf
    for product in (scipy_product, lambda: a @ a):
        product()
        best = min(best, fastest_time(product, repeat))
    return flops / best / 1e9


def fastest_time(run, repeat):
    """Wall time of the fastest of ``repeat`` calls of ``run``, in seconds."""
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def cpu_times():
    """The machine's CPU time counters (Linux's /proc/stat "cpu" line: user, nice,
    system, idle, iowait, irq, softirq, steal, ...), or None where there are none."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 9:
        return None
    return [int(x) for x in fields[1:9]]


def steal_share(before, after):
    """The share of CPU time between two ``cpu_times()`` readings that the hypervisor gave
    to other guests ("steal"): on a shared virtual machine, how far an idle machine
    was from idle. None without both readings."""
    if before is None or after is None:
        return None
    spent = [b - a for a, b in zip(before, after)]
    total = sum(spent)
    return spent[7] / total if total > 0 else 0.0


def machine_description():
    """CPU model, cores and BLAS libraries, for labelling the results."""
    from threadpoolctl import threadpool_info

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    lines = [f"CPU: {cpu}, {available_cores()} cores available"]
    for lib in threadpool_info():
        lines.append(f"{lib['user_api']}: {lib['internal_api']} {lib.get('version')} "
                     f"({lib.get('architecture', '?')}), {lib['num_threads']} threads, "
                     f"{os.path.basename(lib['filepath'])}")
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            lines.append(f"{var}={os.environ[var]} (set in the environment)")
    return lines


LOADS = ("idle", "busy")
BUSY_LABEL = ", busy"    # ends the shape label of a row timed busy


def run_suite(shapes=None, peers=PEERS, repeat=5, log=print, loads=LOADS):
    """Time every peer on every shape, for each load. Returns ``(rows, peaks, skipped)``.

    ``loads``: ``"idle"`` times the machine as it is; ``"busy"`` times every peer
    again with one CPU-bound competitor process per core running beside it, each
    held to its core (:class:`CompetingLoad`), as on a laptop with a browser or a
    shared CI runner;
    those rows' shape labels end in ", busy".
    ``rows``: one dict per (shape, peer) with ``ms`` (median ms/epoch), ``gflops``
    and ``pct_peak``; ``peaks``: GFLOP/s of a large GEMM by dtype name (idle);
    ``skipped``: peer name -> why (a library that is not installed).
    """
    shapes = default_shapes() if shapes is None else shapes
    peaks = {name: gemm_peak(dt) for name, dt in (("float64", np.float64), ("float32", np.float32))}
    log(f"large GEMM peak: float64 {peaks['float64']:.1f} GFLOP/s, float32 {peaks['float32']:.1f} GFLOP/s")
    rows, skipped = [], {}
    for load in loads:
        if load not in LOADS:
            raise ValueError(f"loads: each must be one of {LOADS}, got {load!r}")
        busy = load == "busy"
        with CompetingLoad() if busy else contextlib.nullcontext():
            for shape in shapes:
                if busy:
                    shape = replace(shape, label=shape.label + BUSY_LABEL)
                _time_peers(shape, peers, repeat, peaks, rows, skipped, log)
    return rows, peaks, skipped


def _time_peers(shape, peers, repeat, peaks, rows, skipped, log):
    """Time the peers on ``shape`` taking turns (see the module's docstring); append
    their rows to ``rows`` (a missing library goes to ``skipped``)."""
    epochs = {}
    with shared_data():
        for peer in peers:
            if peer in skipped:
                continue
            try:
                epochs[peer] = MAKERS[peer](shape)
            except ImportError as exc:
                skipped[peer] = f"not installed ({exc.name or exc})"
                log(f"  {peer}: skipped, {skipped[peer]}")
        times = {peer: [] for peer in epochs}
        one_epoch = {}    # seconds, from the warm-up
        for peer, epoch in epochs.items():
            one_epoch[peer] = time_warm(epoch, WARM_UP_SECONDS)   # a warm epoch: not a compile
            time.sleep(BLAS_SPIN_SECONDS)
        # Few rounds on big rows, where the slow peers take seconds an epoch.
        n_rounds = repeat if shape.n_samples <= 10_000 else max(3, repeat // 2)
        turns = random.Random(0)
        for _ in range(n_rounds):
            order = list(epochs)
            turns.shuffle(order)
            for peer in order:
                # untimed epochs first, where one is short (see time_warm)
                warm_up = ROUND_WARM_UP_SECONDS if one_epoch[peer] < ROUND_WARM_UP_SECONDS else 0
                times[peer].append(time_warm(epochs[peer], warm_up))
                # its thread pool (BLAS's, OpenMP's, XLA's) spins for a while after the
                # epoch: let it stop before the next peer starts
                time.sleep(BLAS_SPIN_SECONDS)
    for peer, epoch in epochs.items():
        seconds = statistics.median(times[peer]) * getattr(epoch, "scale", 1.0)
        dtype = "float32" if peer == "fastmlp-f32" else "float64"
        gflops = shape.flops / seconds / 1e9
        rows.append({"shape": shape.label, "n_samples": shape.n_samples, "hidden": shape.hidden,
                     "batch_size": shape.batch_size, "peer": peer, "dtype": dtype,
                     "ms": seconds * 1e3, "gflops": gflops, "pct_peak": 100 * gflops / peaks[dtype]})
        log(f"  {shape.label:<28} {peer:<16} {seconds * 1e3:9.2f} ms/epoch {gflops:7.1f} GFLOP/s")


def ratios(rows):
    """Per shape: each peer's time over fastmlp-f64's (how many times slower the peer is)."""
    base = {r["shape"]: r["ms"] for r in rows if r["peer"] == "fastmlp-f64"}
    return {(r["shape"], r["peer"]): r["ms"] / base[r["shape"]] for r in rows if r["shape"] in base}


def markdown_table(rows, peaks, header_lines=()):
    """The results as a Markdown table, one row per shape and peer: its epoch on the
    machine as it is (ms/epoch, GFLOP/s, % of peak, × fastmlp) and, where the suite ran
    both loads, beside it the same epoch busy (ms/epoch, × fastmlp)."""
    ratio = ratios(rows)
    cells = {}   # (shape, peer) -> {load: its cells}
    for r in rows:
        busy = r["shape"].endswith(BUSY_LABEL)
        shape = r["shape"][:-len(BUSY_LABEL)] if busy else r["shape"]
        ms = f"{r['ms']:.2f}"
        over = f"{ratio.get((r['shape'], r['peer']), float('nan')):.2f}"
        cells.setdefault((shape, r["peer"]), {})["busy" if busy else "idle"] = (
            [ms, over] if busy else [ms, f"{r['gflops']:.1f}", f"{r['pct_peak']:.0f}%", over])
    loads = [load for load in LOADS if any(load in by_load for by_load in cells.values())]
    columns = {"idle": ["ms/epoch", "GFLOP/s", "% of peak", "× fastmlp"], "busy": ["ms/epoch", "× fastmlp"]}
    head = ["shape", "peer"]
    for load in loads:
        names = columns[load]
        head += [f"{load} {names[0]}" if len(loads) > 1 or load == "busy" else names[0]] + names[1:]
    out = [f"- {line}" for line in header_lines]
    out.append(f"- large GEMM peak: float64 {peaks['float64']:.1f} GFLOP/s, "
               f"float32 {peaks['float32']:.1f} GFLOP/s")
    out += ["", "| " + " | ".join(head) + " |",
            "|---|---|" + "".join("---:|" * len(columns[load]) for load in loads)]
    for (shape, peer), by_load in cells.items():
        row = [shape, peer]
        for load in loads:
            row += by_load.get(load, ["-"] * len(columns[load]))
        out.append("| " + " | ".join(row) + " |")
    return "\n".join(out) + "\n"


def write_results(rows, peaks, folder, header_lines=()):
    """Write ``results.md``, ``results.csv`` and ``results.png`` into ``folder``; return their paths."""
    os.makedirs(folder, exist_ok=True)
    md = os.path.join(folder, "results.md")
    with open(md, "w") as f:
        f.write(markdown_table(rows, peaks, header_lines))
    csv_path = os.path.join(folder, "results.csv")
    ratio = ratios(rows)
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["shape", "n_samples", "hidden", "batch_size", "peer", "dtype",
                         "ms_per_epoch", "gflops", "pct_of_peak", "time_over_fastmlp_float64"])
        for r in rows:
            writer.writerow([r["shape"], r["n_samples"], r["hidden"], r["batch_size"], r["peer"],
                             r["dtype"], f"{r['ms']:.4f}", f"{r['gflops']:.3f}", f"{r['pct_peak']:.2f}",
                             f"{ratio.get((r['shape'], r['peer']), float('nan')):.4f}"])
    png = os.path.join(folder, "results.png")
    _chart(rows, png)
    return md, csv_path, png


def _chart(rows, path):
    """Grouped bars of GFLOP/s per shape and peer (object API; pyplot untouched)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    shapes = list(dict.fromkeys(r["shape"] for r in rows))
    peers = list(dict.fromkeys(r["peer"] for r in rows))
    value = {(r["shape"], r["peer"]): r["gflops"] for r in rows}
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    width = 0.8 / max(1, len(peers))
    for i, peer in enumerate(peers):
        xs = [j + i * width for j in range(len(shapes))]
        ax.bar(xs, [value.get((s, peer), 0.0) for s in shapes], width, label=peer)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(shapes))], shapes, fontsize=8)
    ax.set_ylabel("GFLOP/s (higher is faster)")
    ax.set_title("one training epoch, Linear-ReLU-Linear, SGD")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.savefig(path, format="png", dpi=100)


def main(quick=False, repeat=5, out=None, peers=PEERS, log=print, loads=LOADS):
    """Run the suite and print the table; with ``out``, a folder, also write the files. Returns the rows."""
    header = machine_description()
    for line in header:
        log(f"# {line}")
    rows, peaks, skipped = run_suite(default_shapes(quick), peers, repeat, log, loads)
    header += [f"{peer}: {why}" for peer, why in skipped.items()]
    log("")
    log(markdown_table(rows, peaks, header))
    for path in write_results(rows, peaks, out, header) if out is not None else ():
        log(f"wrote {path}")
    return rows

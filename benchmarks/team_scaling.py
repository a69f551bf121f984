"""How much of what the team loses against one thread is the machine's, and how much the team's.

On two threads a step of fastmlp runs slower than half of one thread's step: the two
cores slow each other down (a shared cache, memory, the clock, on a virtual machine
the host), and the team itself costs something (each member's share of the work
is smaller while its fixed part is not; the members meet once per step). This
script separates the two, in one process, at the seed's shape by default:

- "alone": one thread trains on its own, the other core idle;
- "two at once": two independent trainings (each its own data, weights and
  one-thread workspace) run at the same time on two Python threads (the step
  releases the GIL): what the machine costs when both cores are busy;
- "team": one training on a team of two threads (always the team).

Each round runs every contender for a few epochs, one after the other, so a drift
of the host's speed hits them alike; every ratio is taken within a round and the
row shows its median over the rounds. "team / half of slower pair" compares the
team's epoch with half of the slower of the two independent trainings' epochs: a
team is as slow as its slower member, so this is what the team loses beyond the
machine.

    python benchmarks/team_scaling.py
    env -u OPENBLAS_L2_SIZE OPENBLAS_CORETYPE=Haswell python benchmarks/team_scaling.py --small-gemm 1
"""
import argparse
import threading
import time

import numpy as np

from fastmlp import _sgd, benchmark, kernels
from fastmlp._blas import BlasThreads
from fastmlp._threads import available_cores


def training(shape, dtype, threads, small_gemm, seed):
    """One training: (epochs, its workspace), where epochs(k) runs k epochs and returns
    their median time."""
    X, y = benchmark.synthetic_data(shape, dtype)
    ws, params = benchmark.fixed_step(shape, dtype, threads, small_gemm, seed)
    rng = np.random.default_rng(seed)

    def epochs(k):
        times = []
        for _ in range(k):
            order = rng.permutation(shape.n_samples)
            start = time.perf_counter()
            _sgd.sgd_epoch(X, y, order, *params, ws, benchmark.LR, benchmark.REG)
            times.append(time.perf_counter() - start)
        return float(np.median(times))
    return epochs, ws


def at_once(a, b, k):
    """Run trainings a and b for k epochs each at the same time; their median epochs."""
    out = {}

    def run(name, epochs):
        out[name] = epochs(k)
    workers = [threading.Thread(target=run, args=item) for item in (("a", a), ("b", b))]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return out["a"], out["b"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    benchmark.add_shape_arguments(parser)
    parser.add_argument("--small-gemm", type=int, default=None,
                        help="fastmlp's kernels: 0 BLAS, 1 AVX2, 2 AVX-512 (default: this CPU's best)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--epochs-per-turn", type=int, default=5)
    args = parser.parse_args(argv)

    for line in benchmark.machine_description():
        print(f"# {line}")
    if available_cores() < 2 or not _sgd.THREADS or 0 < _sgd.thread_limit() < 2:
        print("fastmlp runs one thread here (one core, or a build without threads): no team to measure.")
        return
    small_gemm = kernels.small_gemm_isa() if args.small_gemm is None else args.small_gemm
    shape = benchmark.parsed_shape(args)
    k = args.epochs_per_turn
    print(f"# N={shape.n_samples} D={shape.n_features} H={shape.hidden} batch={shape.batch_size}, "
          f"kernels {kernels.ISA_NAMES.get(small_gemm, small_gemm)}; {args.rounds} rounds of {k} epochs "
          "per contender; medians over the rounds of ratios taken within a round")
    print("dtype    alone ms  two at once / alone  slower of two / alone  team ms  one thread / team  "
          "team / half of slower pair")
    for dtype in map(np.dtype, args.dtypes):
        (a, ws), (b, _), (team, _) = (training(shape, dtype, threads, small_gemm, seed)
                                      for threads, seed in ((1, 0), (1, 1), (2, 2)))
        if ws.small_gemm_isa != small_gemm:
            print(f"{dtype.name:8s} kernels {small_gemm} cannot take this shape's slices: skipped")
            continue
        rows = []
        with BlasThreads.shared().single():
            for run in (a, b, team):                  # warm-up: threads, caches
                run(1)
            for _ in range(args.rounds):
                alone = (a(k) + b(k)) / 2
                team_time = team(k)
                pair = at_once(a, b, k)
                rows.append((alone, sum(pair) / 2 / alone, max(pair) / alone, team_time,
                             alone / team_time, team_time / (max(pair) / 2)))
        med = np.median(np.array(rows), axis=0)
        print(f"{dtype.name:8s} {med[0] * 1e3:8.2f}  {med[1]:19.3f}  {med[2]:21.3f}  {med[3] * 1e3:7.2f}  "
              f"{med[4]:17.2f}  {med[5]:26.3f}")


if __name__ == "__main__":
    main()

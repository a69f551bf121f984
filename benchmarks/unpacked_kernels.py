"""Epoch time with fastmlp's AVX2 kernels against its AVX-512 kernels, on one CPU.

A CPU without AVX-512 (most laptops and desktops: Intel's client cores, AMD before
Zen 4) runs fastmlp's AVX2 kernels for the two big products of a step
(``src_c/_small_gemm.h``), and OpenBLAS's packed Haswell kernels for everything
else. On an AVX-512 CPU this script forces the AVX2 kernels
(``Workspace(small_gemm=1)``) and times them beside the AVX-512 ones, epochs taking
turns in this one process (each timed epoch after 0.1 s of the same contender's
untimed ones, as in a training loop: ``benchmark.time_warm``), on one thread and on
the team (two or more threads, always the team), at the seed's shape by default. "% of peak" is against the GEMM
peak of the BLAS as configured, on as many threads as the row (one, or all the
cores): with ``OPENBLAS_CORETYPE=Haswell`` in the command, OpenBLAS's AVX2 kernels,
the peak such a CPU has. On a shared machine the peak moves with the host as much as
the epochs do, so it is measured in every round too (the best of two 2048 x 2048
products on each thread count). Each ratio (an epoch's speed over the peak, two
threads' epoch over one thread's, the GEMM on all threads over one) is taken within a
round, beside each other, and the row shows its median over the rounds.

    env -u OPENBLAS_L2_SIZE OPENBLAS_CORETYPE=Haswell python benchmarks/unpacked_kernels.py

The forced-AVX2 rows are what a CPU without AVX-512 can expect at this clock; they
do not emulate its caches or its number of FMA units.
"""
import argparse
import functools
import time

import numpy as np

from fastmlp import _sgd, benchmark, kernels
from fastmlp._blas import BlasThreads
from fastmlp._threads import n_slices


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    benchmark.add_shape_arguments(parser)
    parser.add_argument("--rounds", type=int, default=21, help="epochs per contender, taking turns")
    args = parser.parse_args(argv)

    for line in benchmark.machine_description():
        print(f"# {line}")
    best = kernels.small_gemm_isa()
    if best == 0:
        print("This CPU has neither AVX2 nor AVX-512: fastmlp uses BLAS for every product.")
        return
    shape = benchmark.parsed_shape(args)
    slices = n_slices(None, shape.hidden)
    print(f"# N={shape.n_samples} D={shape.n_features} H={shape.hidden} batch={shape.batch_size}, "
          f"{slices} slices; median of {args.rounds} epochs each, taking turns")
    print("dtype    kernels  threads  ms/epoch  GFLOP/s  % of peak")
    for dtype in map(np.dtype, args.dtypes):
        X, y = benchmark.synthetic_data(shape, dtype)
        contenders = {}
        for isa in range(1, best + 1):
            for threads in sorted({1, slices}):
                ws, params = benchmark.fixed_step(shape, dtype, threads, isa)
                if ws.small_gemm_isa != isa:   # slices not a whole number of this kernel's tiles
                    continue
                contenders[isa, threads] = (ws, params)
        times = {key: [] for key in contenders}
        product, flops = benchmark.gemm_product(dtype)
        peaks = {"one": [], "all": []}    # GFLOP/s of a GEMM on one thread, on all
        rng = np.random.default_rng(1)
        steal_before = benchmark.cpu_times()
        for _ in range(args.rounds + 1):          # the first round warms up: [1:] drops it
            with BlasThreads.shared().single():
                keys = list(contenders)
                rng.shuffle(keys)
                for key in keys:
                    ws, params = contenders[key]
                    order = rng.permutation(shape.n_samples)
                    epoch = functools.partial(_sgd.sgd_epoch, X, y, order, *params, ws,
                                              benchmark.LR, benchmark.REG)
                    times[key].append(benchmark.time_warm(epoch))
                peaks["one"].append(flops / benchmark.fastest_time(product, 2) / 1e9)
            peaks["all"].append(flops / benchmark.fastest_time(product, 2) / 1e9)
            time.sleep(benchmark.BLAS_SPIN_SECONDS)   # BLAS's pool stops spinning
        steal = benchmark.steal_share(steal_before, benchmark.cpu_times())
        # Every ratio is taken within a round, then the median over the rounds: the
        # host's speed drifts over seconds, and a round's epochs and products share it.
        peak_of = {key: peaks["one" if key[1] == 1 else "all"] for key in contenders}
        for (isa, threads), t in times.items():
            seconds = float(np.median(t[1:]))
            of_peak = np.median([shape.flops / d / 1e9 / p for d, p in zip(t[1:], peak_of[isa, threads][1:])])
            speedup = ""
            if threads > 1 and (isa, 1) in times:
                speedup = f"  {np.median([o / d for o, d in zip(times[isa, 1][1:], t[1:])]):.2f}x one thread"
            print(f"{dtype.name:8s} {kernels.ISA_NAMES[isa]:8s} {threads:7d}  {seconds * 1e3:8.2f}  "
                  f"{shape.flops / seconds / 1e9:7.1f}  {100 * of_peak:8.0f}%{speedup}")
        peak, peak_one = (float(np.median(peaks[k][1:])) for k in ("all", "one"))
        scaling = np.median([a / o for a, o in zip(peaks["all"][1:], peaks["one"][1:])])
        print(f"# {dtype.name}: GEMM peak (median of the rounds) {peak:.1f} GFLOP/s, one thread {peak_one:.1f}"
              f" ({scaling:.2f}x)" + ("" if steal is None else f"; steal {100 * steal:.1f}% of CPU time"))


if __name__ == "__main__":
    main()

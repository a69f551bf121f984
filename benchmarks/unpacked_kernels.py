"""Epoch time with fastmlp's AVX2 kernels against its AVX-512 kernels, on one CPU.

A CPU without AVX-512 (most laptops and desktops: Intel's client cores, AMD before
Zen 4) runs fastmlp's AVX2 kernels for the two big products of a step
(``src_c/_small_gemm.h``), and OpenBLAS's packed Haswell kernels for everything
else. On an AVX-512 CPU this script forces the AVX2 kernels
(``Workspace(small_gemm=1)``) and times them beside the AVX-512 ones, epochs taking
turns in this one process (each timed epoch after 0.1 s of the same contender's
untimed ones, as in a training loop: ``benchmark.time_warm``), on one thread and on
the team (two or more threads, always the team), at the seed's shape by default.
"% of peak" is against the GEMM peak of the BLAS as configured, on as many threads
as the row (one, or all the cores): with ``OPENBLAS_CORETYPE=Haswell`` in the
command, OpenBLAS's AVX2 kernels, the peak such a CPU has. On a shared machine the
peak moves with the host as much as the epochs do, so it is measured in every round
too (the best of two 2048 x 2048 products on each thread count). Each ratio (an
epoch's speed over the peak, two threads' epoch over one thread's, the GEMM on all
threads over one) is taken within a round, beside each other, and the row shows its
median over the rounds. The forced-AVX2 rows are what a CPU without AVX-512 can
expect at this clock; they do not emulate its caches or its number of FMA units.

    env -u OPENBLAS_L2_SIZE OPENBLAS_CORETYPE=Haswell python benchmarks/unpacked_kernels.py

With ``--jax`` JAX's epoch (``fastmlp bench``'s, a ``jit`` of ``lax.scan``) takes its
turns too, on all the cores, and its row gives its time over the AVX2 kernels' on the
team. That is JAX as it runs on this CPU, not on one without AVX-512: neither
``OPENBLAS_CORETYPE`` nor ``XLA_FLAGS=--xla_cpu_max_isa=AVX2`` holds XLA's matrix
products to AVX2 (with JAX 0.10.2 on an AVX-512 CPU its 2048 x 2048 float64 product
ran at 193-213 GFLOP/s with and without that flag, where OpenBLAS's AVX2 kernels
peak at 124-132; with its matrix libraries off as well, ``--xla_cpu_use_xnnpack=false
--xla_cpu_experimental_ynn_fusion_type=``, it ran at 113 in float64, but that is
another, slower path than such a CPU takes, and float32 stayed above the peak). So
the header prints JAX's large product beside the BLAS's peak: where JAX's is faster,
its row is not what an AVX2-only CPU would give it.
"""
import argparse
import functools
import os
import time

import numpy as np

from fastmlp import _sgd, benchmark, kernels
from fastmlp._blas import BlasThreads
from fastmlp._threads import available_cores, n_slices

JAX = "jax"    # the key of JAX's contender (--jax)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    benchmark.add_shape_arguments(parser)
    parser.add_argument("--rounds", type=int, default=21, help="epochs per contender, taking turns")
    parser.add_argument("--jax", action="store_true",
                        help="time JAX's epoch (as fastmlp bench does) in the same rounds, on all "
                             "the cores, against the AVX2 kernels on the team")
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
    if args.jax:
        import jax
        print(f"# jax {jax.__version__}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
        for dtype in map(np.dtype, args.dtypes):
            print(f"# {dtype.name} 2048 x 2048 product on all cores: JAX {jax_gemm_gflops(dtype):.1f} "
                  f"GFLOP/s, the BLAS {benchmark.gemm_peak(dtype):.1f}")
    print("dtype    kernels  threads  ms/epoch  GFLOP/s  % of peak")
    for dtype in map(np.dtype, args.dtypes):
        X, y = benchmark.synthetic_data(shape, dtype)
        epochs = {}    # (isa, threads) or (JAX, threads) -> epoch(order)
        for isa in range(1, best + 1):
            for threads in sorted({1, slices}):
                ws, params = benchmark.fixed_step(shape, dtype, threads, isa)
                if ws.small_gemm_isa != isa:   # slices not a whole number of this kernel's tiles
                    continue
                epochs[isa, threads] = functools.partial(fastmlp_epoch, X, y, ws, params)
        scale = {}     # key -> factor from the timed epoch to a whole epoch (JAX's leaves a part out)
        if args.jax:
            jax_epoch = benchmark.make_jax(shape, dtype)   # its own random order, on its threads
            jax_key = JAX, available_cores()
            epochs[jax_key] = lambda order, run=jax_epoch: run()
            scale[jax_key] = jax_epoch.scale
        times = {key: [] for key in epochs}
        product, flops = benchmark.gemm_product(dtype)
        peaks = {"one": [], "all": []}    # GFLOP/s of a GEMM on one thread, on all
        rng = np.random.default_rng(1)
        steal_before = benchmark.cpu_times()
        for _ in range(args.rounds + 1):          # the first round warms up: [1:] drops it
            with BlasThreads.shared().single():
                keys = list(epochs)
                rng.shuffle(keys)
                for key in keys:
                    epoch = functools.partial(epochs[key], rng.permutation(shape.n_samples))
                    times[key].append(benchmark.time_warm(epoch) * scale.get(key, 1.0))
                peaks["one"].append(flops / benchmark.fastest_time(product, 2) / 1e9)
            peaks["all"].append(flops / benchmark.fastest_time(product, 2) / 1e9)
            time.sleep(benchmark.BLAS_SPIN_SECONDS)   # BLAS's (and XLA's) pool stops spinning
        steal = benchmark.steal_share(steal_before, benchmark.cpu_times())
        # Every ratio is taken within a round, then the median over the rounds: the
        # host's speed drifts over seconds, and a round's epochs and products share it.
        peak_of = {key: peaks["one" if key[1] == 1 else "all"] for key in epochs}
        for (isa, threads), t in times.items():
            seconds = float(np.median(t[1:]))
            of_peak = np.median([shape.flops / d / 1e9 / p for d, p in zip(t[1:], peak_of[isa, threads][1:])])
            versus = ""
            if isa == JAX and (1, slices) in times:
                versus = f"  {np.median([j / a for j, a in zip(t[1:], times[1, slices][1:])]):.2f}x AVX2's time"
            elif threads > 1 and (isa, 1) in times:
                versus = f"  {np.median([o / d for o, d in zip(times[isa, 1][1:], t[1:])]):.2f}x one thread"
            name = "JAX" if isa == JAX else kernels.ISA_NAMES[isa]
            print(f"{dtype.name:8s} {name:8s} {threads:7d}  {seconds * 1e3:8.2f}  "
                  f"{shape.flops / seconds / 1e9:7.1f}  {100 * of_peak:8.0f}%{versus}")
        peak, peak_one = (float(np.median(peaks[k][1:])) for k in ("all", "one"))
        scaling = np.median([a / o for a, o in zip(peaks["all"][1:], peaks["one"][1:])])
        print(f"# {dtype.name}: GEMM peak (median of the rounds) {peak:.1f} GFLOP/s, one thread {peak_one:.1f}"
              f" ({scaling:.2f}x)" + ("" if steal is None else f"; steal {100 * steal:.1f}% of CPU time"))


def jax_gemm_gflops(dtype, n=2048, repeat=5):
    """GFLOP/s of JAX's fastest of ``repeat`` (n x n) @ (n x n) products in ``dtype``."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)).astype(dtype))
    product = jax.jit(lambda m: m @ m)
    product(a).block_until_ready()
    return 2 * n ** 3 / benchmark.fastest_time(lambda: product(a).block_until_ready(), repeat) / 1e9


def fastmlp_epoch(X, y, workspace, params, order):
    """One epoch of the compiled step on a pinned workspace (benchmark.fixed_step)."""
    _sgd.sgd_epoch(X, y, order, *params, workspace, benchmark.LR, benchmark.REG)


if __name__ == "__main__":
    main()

"""fastmlp's threads on an idle and on a busy machine, side by side in one process.

For each shape and dtype, one epoch of:

  default        fit's default: n_threads=None, the thread choice adaptive
  1 thread       n_threads=1
  team always    the default slices, always on the whole team (what a fixed
                 thread count, as with OpenMP, would do)
  numpy          the NumPy reference (float64 only)

first on the machine as it is ("idle"), then with one CPU-bound competitor process
per core running beside it ("busy"), started and stopped by this script, each held
to its own core; with --unpinned, once more with the competitors placed by the OS
("busy, OS-placed": two of them often share a core for seconds and leave fastmlp one
to itself, so each epoch runs at one of two speeds, by luck). Each figure is the
median of --repeat epochs, the contenders taking turns epoch by epoch, in a new
random order each round: whoever runs right after a contender that used both threads
starts with its thread parked beside a competitor on a busy machine, so a fixed order
would charge that to one contender. Each timed epoch of a contender (and each timed
product, below) follows 0.1 s of its untimed ones (``benchmark.time_warm``), as in a
training loop, whose epochs run back to back: timed cold, right after another
contender's epoch, the team's epoch was up to 1.8x slower on an idle virtual machine,
from the turn taking alone (caches, sleeping threads, CPUs waking up). The ratios printed are
default / 1 thread (target: <= 1.15 when busy; also as the median of each round's
ratio, "paired", the steadier figure on a busy machine), numpy / default (target:
>= 1 when busy, >= 2.5 at the seed shape when idle) and the default's share of the
large-GEMM peak (target when idle: >= 75% at the seed shape, >= 65% elsewhere). On a
shared machine that peak moves by a factor 1.5 within seconds, so when idle a large
product is timed in every round, beside the epochs (followed by a pause while BLAS's
threads stop spinning), and the share is the median over rounds of the default's
speed over that round's peak; "% of best peak" is the same over the best product of
the whole run (the header's figure), the harsher reading. "steal" is the share of
the CPU time that the hypervisor of a virtual machine gave to other guests meanwhile
(Linux only): where it is more than a few percent, "idle" was not idle.

    python benchmarks/busy_machine.py [--quick] [--repeat 7] [--unpinned]
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/busy_machine.py
    OPENBLAS_CORETYPE=Haswell python benchmarks/busy_machine.py    # AVX2 kernels
"""

import argparse
import contextlib
import functools

import numpy as np

from fastmlp import benchmark
from fastmlp.benchmark import (BLAS_SPIN_SECONDS, CompetingLoad, Shape, gemm_peak, gemm_product,
                               make_fastmlp)

SHAPES = [
    Shape("seed (N=2580, H=128, B=30)", 2580, 128, 30),
    Shape("H=512", 2580, 512, 30),
    Shape("B=256", 2580, 128, 256),
]


def contenders(shape, dtype):
    made = {
        "default": make_fastmlp(shape, dtype),
        "1 thread": make_fastmlp(shape, dtype, n_threads=1),
        "team always": make_fastmlp(shape, dtype, adaptive_threads=False),
    }
    if np.dtype(dtype) == np.float64:
        made["numpy"] = make_fastmlp(shape, dtype, backend="numpy")
    return made


def measure(shapes, dtypes, repeat, load, time_peak=False):
    """Median seconds per epoch of every contender; the median over rounds of the
    default's epoch over one thread's in the same round; and, with ``time_peak``, the
    median over rounds of the default's GFLOP/s over a large product's timed in the
    same round. Within a shape and dtype the fastmlp contenders (and that product)
    take turns, epoch by epoch, in a random order each round, so a change of load
    hits them alike; the NumPy reference is timed after them, on its own, since its
    BLAS threads keep spinning for a while after each call and would slow whichever
    contender came next.

    The paired ratio is the robust one on a busy machine: there, with the competitors
    placed by the OS, fastmlp often runs at two speeds a factor 2 apart (sharing a
    core with one competitor or not) and switches between them every few epochs, so
    the medians of two contenders can land in different modes while a round's two
    epochs mostly share one. Competitors held to their cores leave less of that."""
    import random
    import statistics
    import time

    times, paired, of_peak, steal = {}, {}, {}, {}
    order = random.Random(0)
    for shape in shapes:
        for dtype in dtypes:
            made = contenders(shape, dtype)
            fastmlp_names = [name for name in made if name != "numpy"]
            if time_peak:
                product, flops = gemm_product(dtype)
                made["peak"] = product
            with load():
                before = benchmark.cpu_times()
                for name in fastmlp_names:
                    benchmark.run_for(made[name], benchmark.WARM_UP_SECONDS)
                samples = {name: [] for name in made}
                rounds = []
                for _ in range(repeat):
                    names = fastmlp_names + (["peak"] if time_peak else [])
                    order.shuffle(names)
                    rounds.append(names)
                rounds += [["numpy"]] * repeat if "numpy" in made else []
                for names in rounds:
                    for name in names:
                        # a contender taking turns first runs untimed epochs (see
                        # time_warm); the NumPy reference's run back to back anyway
                        warm_up = 0 if name == "numpy" else benchmark.ROUND_WARM_UP_SECONDS
                        samples[name].append(benchmark.time_warm(made[name], warm_up))
                        if name == "peak":
                            time.sleep(BLAS_SPIN_SECONDS)
                steal[shape.label, np.dtype(dtype).name] = benchmark.steal_share(before, benchmark.cpu_times())
            key = shape.label, np.dtype(dtype).name
            for name, values in samples.items():
                times[key + (name,)] = statistics.median(values)
            paired[key] = statistics.median(
                d / o for d, o in zip(samples["default"], samples["1 thread"]))
            if time_peak:
                of_peak[key] = statistics.median(
                    (shape.flops / d) / (flops / p) for d, p in zip(samples["default"], samples["peak"]))
    return times, paired, of_peak, steal


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the seed shape only")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--unpinned", action="store_true",
                        help="also time the busy rows with the competitors placed by the OS")
    args = parser.parse_args(argv)
    shapes = SHAPES[:1] if args.quick else SHAPES
    dtypes = (np.float64, np.float32)
    for line in benchmark.machine_description():
        print(f"# {line}")
    peaks = {np.dtype(dt).name: gemm_peak(dt) for dt in dtypes}
    print(f"# large GEMM peak: float64 {peaks['float64']:.1f}, float32 {peaks['float32']:.1f} GFLOP/s")
    loads = {"idle": measure(shapes, dtypes, args.repeat, contextlib.nullcontext, time_peak=True),
             "busy": measure(shapes, dtypes, args.repeat, CompetingLoad)}
    if args.unpinned:
        loads["busy, OS-placed"] = measure(shapes, dtypes, args.repeat,
                                           functools.partial(CompetingLoad, pin=False))
    print()
    print("| shape | dtype | load | default ms | 1 thread ms | team always ms | numpy ms "
          "| default / 1 thread | same, paired | numpy / default | default % of peak | % of best peak "
          "| steal |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for shape in shapes:
        for dtype in dtypes:
            name = np.dtype(dtype).name
            for load, (times, paired, of_peak, steal) in loads.items():
                t = {c: times.get((shape.label, name, c)) for c in ("default", "1 thread", "team always", "numpy")}
                best = 100 * shape.flops / t["default"] / 1e9 / peaks[name]
                share = of_peak.get((shape.label, name))
                pct = f"{100 * share:.0f}%" if share else "-"
                stolen = steal[shape.label, name]
                stolen = f"{100 * stolen:.1f}%" if stolen is not None else "-"
                numpy_ms = f"{t['numpy'] * 1e3:.2f}" if t["numpy"] else "-"
                numpy_ratio = f"{t['numpy'] / t['default']:.2f}" if t["numpy"] else "-"
                print(f"| {shape.label} | {name} | {load} | {t['default'] * 1e3:.2f} | "
                      f"{t['1 thread'] * 1e3:.2f} | {t['team always'] * 1e3:.2f} | {numpy_ms} | "
                      f"{t['default'] / t['1 thread']:.2f} | {paired[shape.label, name]:.2f} | {numpy_ratio} "
                      f"| {pct} | {best:.0f}% | {stolen} |")


if __name__ == "__main__":
    main()

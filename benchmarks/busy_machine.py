"""fastmlp's threads on an idle and on a busy machine, side by side in one process.

For each shape and dtype, one epoch of:

  default        fit's default: n_threads=None, the thread choice adaptive
  1 thread       n_threads=1
  team always    the default slices, always on the whole team (what a fixed
                 thread count, as with OpenMP, would do)
  numpy          the NumPy reference (float64 only)

first on the machine as it is ("idle"), then with one CPU-bound competitor process
per core running beside it ("busy"), started and stopped by this script. Each
figure is the median of --repeat epochs after a warm-up, the contenders taking
turns epoch by epoch; the ratios printed are
default / 1 thread (target: <= 1.15 when busy; also as the median of each round's
ratio, "paired", the steadier figure on a busy machine), numpy / default (target: >= 1
when busy, >= 2.5 at the seed shape when idle) and the default's share of the
large-GEMM peak measured in the same process (target when idle: >= 75% at the
seed shape, >= 65% elsewhere).

    python benchmarks/busy_machine.py [--quick] [--repeat 7]
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/busy_machine.py
    OPENBLAS_CORETYPE=Haswell python benchmarks/busy_machine.py    # AVX2 kernels
"""

import argparse
import contextlib

import numpy as np

from fastmlp import benchmark
from fastmlp.benchmark import CompetingLoad, Shape, gemm_peak, make_fastmlp

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


def measure(shapes, dtypes, repeat, load):
    """Median seconds per epoch of every contender, and the median over rounds of the
    default's epoch over one thread's in the same round. Within a shape and dtype the
    fastmlp contenders take turns, epoch by epoch, so a change of load hits them
    alike; the NumPy reference is timed after them, on its own, since its BLAS
    threads keep spinning for a while after each call and would slow whichever
    contender came next.

    The paired ratio is the robust one on a busy machine: there the OS often runs
    fastmlp at two speeds a factor 2 apart (sharing a core with one competitor or
    not) and switches between them every few epochs, so the medians of two
    contenders can land in different modes while a round's two epochs mostly share
    one."""
    import statistics
    import time

    times, paired = {}, {}
    for shape in shapes:
        for dtype in dtypes:
            made = contenders(shape, dtype)
            with load():
                for name, epoch in made.items():  # warm-up: caches, threads, thread choice
                    if name == "numpy":
                        continue
                    start = time.perf_counter()
                    while time.perf_counter() - start < benchmark.WARM_UP_SECONDS:
                        epoch()
                samples = {name: [] for name in made}
                rounds = [[name for name in made if name != "numpy"]] * repeat
                rounds += [["numpy"]] * repeat if "numpy" in made else []
                for names in rounds:
                    for name in names:
                        start = time.perf_counter()
                        made[name]()
                        samples[name].append(time.perf_counter() - start)
            for name, values in samples.items():
                times[shape.label, np.dtype(dtype).name, name] = statistics.median(values)
            paired[shape.label, np.dtype(dtype).name] = statistics.median(
                d / o for d, o in zip(samples["default"], samples["1 thread"]))
    return times, paired


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the seed shape only")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    shapes = SHAPES[:1] if args.quick else SHAPES
    dtypes = (np.float64, np.float32)
    for line in benchmark.machine_description():
        print(f"# {line}")
    peaks = {np.dtype(dt).name: gemm_peak(dt) for dt in dtypes}
    print(f"# large GEMM peak: float64 {peaks['float64']:.1f}, float32 {peaks['float32']:.1f} GFLOP/s")
    idle = measure(shapes, dtypes, args.repeat, contextlib.nullcontext)
    busy = measure(shapes, dtypes, args.repeat, CompetingLoad)
    print()
    print("| shape | dtype | load | default ms | 1 thread ms | team always ms | numpy ms "
          "| default / 1 thread | same, paired | numpy / default | default % of peak |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for shape in shapes:
        for dtype in dtypes:
            name = np.dtype(dtype).name
            for load, (times, paired) in (("idle", idle), ("busy", busy)):
                t = {c: times.get((shape.label, name, c)) for c in ("default", "1 thread", "team always", "numpy")}
                pct = 100 * shape.flops / t["default"] / 1e9 / peaks[name]
                numpy_ms = f"{t['numpy'] * 1e3:.2f}" if t["numpy"] else "-"
                numpy_ratio = f"{t['numpy'] / t['default']:.2f}" if t["numpy"] else "-"
                print(f"| {shape.label} | {name} | {load} | {t['default'] * 1e3:.2f} | "
                      f"{t['1 thread'] * 1e3:.2f} | {t['team always'] * 1e3:.2f} | {numpy_ms} | "
                      f"{t['default'] / t['1 thread']:.2f} | {paired[shape.label, name]:.2f} | {numpy_ratio} "
                      f"| {pct:.0f}% |")


if __name__ == "__main__":
    main()

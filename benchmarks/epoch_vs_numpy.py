"""Time one training epoch: fastmlp's compiled step against its NumPy reference.

Seed shape by default: N=2580, D=784, H=128, C=10, batch 30, float64. Both run in
this one process on the same data and the same starting weights; the script
prints the median ms/epoch of each after a warm-up, and their ratio.

    python benchmarks/epoch_vs_numpy.py [--repeat 7] [--dtype float64]

Where OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are set in the environment, they slow a
current OpenBLAS; to measure without them: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python ...
"""

import argparse
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_info

from fastmlp import _sgd, reference
from fastmlp._fit import init_params


def time_epochs(run, repeat):
    run()  # warm-up: page in the weights, spin up BLAS threads
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2580)
    parser.add_argument("--features", type=int, default=784)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=30)
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)

    for lib in threadpool_info():
        print(f"# {lib['internal_api']} {lib.get('version')} {lib.get('architecture')} "
              f"threads={lib['num_threads']} ({lib['filepath'].split('/site-packages/')[-1]})")

    rng = np.random.default_rng(0)
    dtype = np.dtype(args.dtype)
    X = rng.uniform(-1, 1, size=(args.n, args.features)).astype(dtype)
    y = rng.integers(0, args.classes, size=args.n).astype(np.int64)
    order = rng.permutation(args.n)
    params0 = init_params(rng, args.features, args.hidden, args.classes, dtype)
    lr, reg = 1e-4, 1e-2

    compiled_params = tuple(p.copy() for p in params0)
    workspace = _sgd.Workspace(args.batch_size, args.features, args.hidden, args.classes, dtype)
    t_compiled = time_epochs(
        lambda: _sgd.sgd_epoch(X, y, order, *compiled_params, workspace, lr, reg), args.repeat)

    numpy_params = tuple(p.copy() for p in params0)
    t_numpy = time_epochs(
        lambda: reference.sgd_epoch(X, y, order, numpy_params, lr, reg, args.batch_size), args.repeat)

    print(f"shape N={args.n} D={args.features} H={args.hidden} C={args.classes} "
          f"batch={args.batch_size} {dtype.name}, median of {args.repeat} epochs")
    print(f"fastmlp compiled : {t_compiled * 1e3:8.2f} ms/epoch")
    print(f"NumPy reference  : {t_numpy * 1e3:8.2f} ms/epoch")
    print(f"speed-up         : {t_numpy / t_compiled:8.2f}x")


if __name__ == "__main__":
    main()

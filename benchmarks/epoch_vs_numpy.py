"""Time one training epoch: fastmlp's compiled path against its NumPy reference.

Seed shape by default: N=2580, D=784, H=128, C=10, batch 30, float64. Both run in
this one process, on the same data, as fastmlp.fit runs them; the script prints
the median ms/epoch of each after a warm-up, and their ratio. The full suite,
with PyTorch, scikit-learn and JAX, is `fastmlp bench`.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/epoch_vs_numpy.py
"""

import argparse

import numpy as np

from fastmlp import benchmark


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2580)
    parser.add_argument("--features", type=int, default=784)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=30)
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)

    for line in benchmark.machine_description():
        print(f"# {line}")
    shape = benchmark.Shape("custom", args.n, args.hidden, args.batch_size, n_features=args.features)
    dtype = np.dtype(args.dtype)
    t_compiled = benchmark.median_time(benchmark.make_fastmlp(shape, dtype), args.repeat)
    t_numpy = benchmark.median_time(benchmark.make_fastmlp(shape, dtype, backend="numpy"), args.repeat)

    print(f"shape N={args.n} D={args.features} H={args.hidden} batch={args.batch_size} "
          f"{dtype.name}, median of {args.repeat} epochs")
    print(f"fastmlp compiled : {t_compiled * 1e3:8.2f} ms/epoch")
    print(f"NumPy reference  : {t_numpy * 1e3:8.2f} ms/epoch")
    print(f"speed-up         : {t_numpy / t_compiled:8.2f}x")


if __name__ == "__main__":
    main()

"""The ``fastmlp`` command line (also ``python -m fastmlp``): ``demo`` and ``bench``."""

import argparse
import os
import sys
import time


def _describe(name, X):
    return f"{name} shape, type, min, max {X.shape} {X.dtype} {X.min()} {X.max()}"


def demo(args):
    """Train on scikit-learn's digits with the seed's hyperparameters; print accuracies; plot."""
    import fastmlp
    from fastmlp.data import load_digits_split

    X_train, y_train, X_test, y_test = load_digits_split(seed=0)
    print(_describe("data", X_train))
    print(f"labels shape and type {y_train.shape} {y_train.dtype} {y_train.min()} {y_train.max()}")
    print(f"training on {len(X_train)} images, testing on {len(X_test)}: hidden={args.hidden} "
          f"epochs={args.epochs} batch_size={args.batch_size} lr={args.lr} reg={args.reg} seed={args.seed}")
    os.makedirs(args.out, exist_ok=True)
    plot_path = os.path.join(args.out, "epoch_plots.png")
    start = time.perf_counter()
    model = fastmlp.fit(X_train, y_train, hidden=args.hidden, epochs=args.epochs,
                        batch_size=args.batch_size, lr=args.lr, reg=args.reg, seed=args.seed,
                        X_test=X_test, y_test=y_test, plot=plot_path, progress=args.progress)
    elapsed = time.perf_counter() - start
    print(f"in sample accuracy {model.score(X_train, y_train)}")
    print(f"test sample accuracy {model.score(X_test, y_test)}")
    print(f"trained in {elapsed:.2f} s")
    print(f"outputting to file {plot_path}")
    return 0


def bench(args):
    """Run the benchmark suite (fastmlp.benchmark): print the table, write md/csv/png."""
    from fastmlp import benchmark

    peers = benchmark.PEERS if not args.peers else tuple(args.peers)
    unknown = sorted(set(peers) - set(benchmark.PEERS))
    if unknown:
        raise ValueError(f"--peers: unknown {unknown}; choose from {list(benchmark.PEERS)}")
    benchmark.main(quick=args.quick, repeat=args.repeat, out=args.out, peers=peers)
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="fastmlp", description="Fast two-layer neural networks on the CPU.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="train on scikit-learn's 8x8 digits with the seed's settings")
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=30)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--reg", type=float, default=1e-2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=".", help="folder for epoch_plots.png (default: current folder)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=sys.stderr.isatty(),
                   help="show a progress bar (default: on a terminal)")
    p.set_defaults(func=demo)

    p = sub.add_parser("bench", help="time an epoch against NumPy, PyTorch, scikit-learn and JAX",
                       description="Time one training epoch for fastmlp and its peers in this process. "
                                   "Unset OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE in the command to measure "
                                   "OpenBLAS's best kernels: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "
                                   "fastmlp bench")
    p.add_argument("--quick", action="store_true", help="only the seed's shape")
    p.add_argument("--repeat", type=int, default=5, help="timed epochs per measurement (median)")
    p.add_argument("--out", default="benchmarks/results", help="folder for results.md/.csv/.png")
    p.add_argument("--peers", nargs="+", metavar="PEER",
                   help="a subset of: " + ", ".join(repr(p) for p in (
                       "fastmlp float64", "fastmlp float32", "fastmlp numpy", "pytorch", "sklearn", "jax")))
    p.set_defaults(func=bench)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError, FloatingPointError) as exc:
        print(f"fastmlp {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""The ``fastmlp`` command line: ``fastmlp demo`` (also ``python -m fastmlp demo``)."""

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

"""What the training controls cost and what they buy.

1. Time per epoch at a shape (default the seed's: N=2580, D=784, H=128, C=10, batch 30,
   float64) for plain SGD, momentum, Nesterov and sample weights, on the compiled path.
   The variants take turns epoch by epoch (so a noisy neighbour hits them alike) and
   each gets the median of its epochs.
2. Accuracy and fit time on scikit-learn's digits (75/25 split, the demo's) and on
   MNIST (2,580 training and 2,580 held-out images of the test set, as in the README),
   seed hyperparameters, for plain SGD next to momentum and early stopping.

    python benchmarks/controls.py [--mnist-dir DIR] [--rounds 15] [--threads T] [--skip-accuracy]
"""

import argparse
import os
import pathlib
import statistics
import time

import numpy as np

import fastmlp
from fastmlp import benchmark
from fastmlp._fit import Trainer, init_params
from fastmlp._threads import aligned_copy

SEED = dict(hidden=128, epochs=200, batch_size=30, lr=1e-4, reg=1e-2, seed=0)
VARIANTS = {
    "plain SGD": {},
    "momentum 0.9": dict(momentum=0.9),
    "Nesterov 0.9": dict(momentum=0.9, nesterov=True),
    "sample weights": dict(sample_weight=True),
}
FITS = {
    "plain SGD (seed)": {},
    "momentum 0.9": dict(momentum=0.9),
    "Nesterov 0.9": dict(momentum=0.9, nesterov=True),
    "plain + early stopping": dict(early_stopping=True),
    "momentum 0.9 + early stopping": dict(momentum=0.9, early_stopping=True),
}


def epoch_times(n, features, hidden, batch_size, dtype, rounds, threads=None):
    """Seconds per epoch of each variant, taking turns: {name: (median wall, median CPU, fastest wall)}."""
    shape = benchmark.Shape("controls", n, hidden, batch_size, n_features=features)
    X, y = benchmark.synthetic_data(shape, dtype)
    weights = np.random.default_rng(2).uniform(0.5, 1.5, n).astype(dtype)
    rng = np.random.default_rng(1)
    trainer = Trainer("cython", batch_size, features, hidden, shape.n_classes, np.dtype(dtype), threads)
    runs = {}
    for name, controls in VARIANTS.items():
        params = init_params(np.random.default_rng(0), features, hidden, shape.n_classes, np.dtype(dtype))
        velocities = (tuple(aligned_copy(np.zeros_like(p)) for p in params)   # as fit makes them
                      if controls.get("momentum") else None)
        runs[name] = (params, velocities, controls)

    def run(name):
        params, velocities, controls = runs[name]
        start, cpu = time.perf_counter(), time.process_time()
        trainer.epoch(X, y, rng.permutation(n), params, 1e-4, 1e-2,
                      weights if controls.get("sample_weight") else None, velocities,
                      controls.get("momentum", 0.0), controls.get("nesterov", False))
        return time.perf_counter() - start, time.process_time() - cpu

    times = {name: [] for name in runs}
    with trainer.running():
        for name in runs:                                    # warm-up
            run(name)
        for _ in range(rounds):
            for name in runs:
                times[name].append(run(name))
    # median wall, median CPU, fastest wall: the fastest epoch is the one least disturbed
    # by other work on the machine, so it estimates the cost best on a busy one.
    return {name: (statistics.median(w for w, _ in t), statistics.median(c for _, c in t), min(w for w, _ in t))
            for name, t in times.items()}


def mnist_split(folder):
    """2,580 training and 2,580 held-out images of the MNIST test set (tests/test_data.py's draw)."""
    from fastmlp.data import load_idx
    X, y = load_idx(folder / "t10k-images-idx3-ubyte.gz", folder / "t10k-labels-idx1-ubyte.gz")
    order = np.random.default_rng(0).permutation(len(X))
    train, held_out = order[:2580], order[2580:5160]
    return X[train], y[train], X[held_out], y[held_out]


def accuracy_table(name, data):
    X, y, X_test, y_test = data
    print(f"\n{name}: {len(X)} training, {len(X_test)} held-out samples, seed hyperparameters "
          f"(200 epochs at most; early stopping: 10% validation, patience 10)")
    print(f"| {'fit':<30} | held-out acc | epochs | best epoch | time (s) |")
    print(f"|{'-' * 32}|-------------:|-------:|-----------:|---------:|")
    for label, controls in FITS.items():
        start = time.perf_counter()
        model = fastmlp.fit(X, y, **SEED, **controls)
        elapsed = time.perf_counter() - start
        print(f"| {label:<30} | {model.score(X_test, y_test):12.4f} | {len(model.history['loss']):6d} | "
              f"{model.best_epoch if model.best_epoch else '':>10} | {elapsed:8.2f} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", type=int, nargs=4, default=(2580, 784, 128, 30), metavar=("N", "D", "H", "B"),
                        help="samples, features, hidden units, batch size (default: the seed's)")
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    parser.add_argument("--rounds", type=int, default=15, help="timed epochs per variant")
    parser.add_argument("--threads", type=int, default=None, help="threads (default: the available cores)")
    parser.add_argument("--mnist-dir", default=os.environ.get("FASTMLP_MNIST_DIR"),
                        help="folder with t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz")
    parser.add_argument("--skip-accuracy", action="store_true", help="only the per-epoch times")
    args = parser.parse_args(argv)

    for line in benchmark.machine_description():
        print(f"# {line}")
    n, features, hidden, batch_size = args.shape
    times = epoch_times(n, features, hidden, batch_size, args.dtype, args.rounds, args.threads)
    plain, plain_cpu, plain_min = times["plain SGD"]
    print(f"\nN={n} D={features} H={hidden} batch={batch_size} {args.dtype}, "
          f"{args.threads or 'all'} threads, "
          f"median of {args.rounds} epochs each, taking turns")
    print("| variant | ms/epoch (median) | vs plain | CPU ms/epoch (median, all threads) | vs plain "
          "| fastest epoch, ms | vs plain |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, (seconds, cpu, fastest) in times.items():
        print(f"| {name} | {seconds * 1e3:.2f} | {seconds / plain:.2f}x | {cpu * 1e3:.2f} | {cpu / plain_cpu:.2f}x "
              f"| {fastest * 1e3:.2f} | {fastest / plain_min:.2f}x |")
    if args.skip_accuracy:
        return

    from fastmlp.data import load_digits_split
    accuracy_table("digits", load_digits_split(seed=0))
    if args.mnist_dir and pathlib.Path(args.mnist_dir, "t10k-images-idx3-ubyte.gz").is_file():
        accuracy_table("MNIST", mnist_split(pathlib.Path(args.mnist_dir)))
    else:
        print("\nMNIST: pass --mnist-dir (or set FASTMLP_MNIST_DIR) to include it")


if __name__ == "__main__":
    main()

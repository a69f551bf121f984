"""The ``fastmlp`` command line (also ``python -m fastmlp``): demo, train, predict, export, bench.

A usage error (an unknown option, a value of the wrong kind) prints the usage and exits
with status 2, as argparse does; any other error is one line on stderr, naming the
option or file, and exit status 1.
"""

import argparse
import csv
import os
import sys
import time

import numpy as np

from fastmlp._files import write_atomically
from fastmlp._model import json_classes
from fastmlp._plot import plot_history, plot_title
from fastmlp._validation import matching_labels
from fastmlp._version import __version__

HYPERPARAMETERS = ("hidden", "epochs", "batch_size", "lr", "reg", "seed", "eval_every")


def _describe(name, X):
    return f"{name} shape, type, min, max {X.shape} {X.dtype} {X.min()} {X.max()}"


def _progress(args):
    """A progress bar on a terminal unless --quiet."""
    return sys.stderr.isatty() and not args.quiet


CONTROLS = ("momentum", "nesterov", "lr_schedule", "power_t", "early_stopping", "validation_fraction",
            "n_iter_no_change", "tol", "class_weight")


def _fit_kwargs(args):
    return {name: getattr(args, name) for name in HYPERPARAMETERS + CONTROLS if hasattr(args, name)}


def _make_out_folder(path):
    """Create the --out folder (and its parents); a clear error when it names a file."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"--out {path!r} is a file; give a folder (it is created if missing)")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"--out {path!r}: cannot create the output folder ({exc})") from None


def demo(args):
    """Train on scikit-learn's digits with the seed's hyperparameters; print accuracies; plot."""
    import fastmlp
    from fastmlp.data import load_digits_split

    X_train, y_train, X_test, y_test = load_digits_split(seed=0)
    print(_describe("data", X_train))
    print(f"labels shape and type {y_train.shape} {y_train.dtype} {y_train.min()} {y_train.max()}")
    print(f"training on {len(X_train)} images, testing on {len(X_test)}: hidden={args.hidden} "
          f"epochs={args.epochs} batch_size={args.batch_size} lr={args.lr} reg={args.reg} seed={args.seed}")
    _make_out_folder(args.out)
    plot_path = os.path.join(args.out, "epoch_plots.png")
    start = time.perf_counter()
    model = fastmlp.fit(X_train, y_train, X_test=X_test, y_test=y_test, plot=plot_path,
                        progress=_progress(args), **_fit_kwargs(args))
    elapsed = time.perf_counter() - start
    print(f"in sample accuracy {model.score(X_train, y_train)}")
    print(f"test sample accuracy {model.score(X_test, y_test)}")
    print(f"trained in {elapsed:.2f} s")
    print(f"outputting to file {plot_path}")
    return 0


DATA_HELP = ("one .npz (arrays X, y), .csv or .tsv file, or two IDX files: images, then labels "
             "(gzip or raw)")
TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".txt")


def load_data(paths, label_column, option="--data", delimiter=None, require_labels=True):
    """``(X, y)`` from one ``.npz``, ``.csv`` or ``.tsv`` file, or IDX files (images, then labels).

    ``y`` is None when the data has no labels (a CSV read with ``label_column=None``,
    an ``.npz`` without ``y`` when ``require_labels`` is False, or IDX images
    without their label file).
    """
    from fastmlp import data

    names = [os.path.basename(path).lower() for path in paths]
    if len(paths) > 2 or (len(paths) == 2 and any(n.endswith((".npz", *TABLE_SUFFIXES)) for n in names)):
        raise ValueError(f"{option} takes {DATA_HELP}; got {len(paths)} files ({' '.join(paths)}). "
                         f"Join several CSV files into one first")
    if len(paths) == 2:
        return data.load_idx(paths[0], paths[1])
    path, name = paths[0], names[0]
    if name.endswith(".npz"):
        return data.load_npz(path, require_labels=require_labels)
    if name.endswith(TABLE_SUFFIXES):
        try:
            return data.load_csv(path, label_column=label_column, delimiter=delimiter)
        except ValueError as exc:
            if "is not a number" not in str(exc) and "not integers" not in str(exc):
                raise
            if label_column is None:
                hint = "if the file has a label column, pass --label-column"
            elif label_column == 0:
                hint = "if the labels are in the last column, pass --label-column -1"
            else:
                hint = "check --label-column"
            raise ValueError(f"{exc} ({hint})") from None
    if "idx" in name or name.endswith("ubyte") or name.endswith("ubyte.gz"):
        return data.load_idx(path)
    raise ValueError(f"{option} {path!r}: give {DATA_HELP}")


def _label_column(text):
    """--label-column: a column index, a name from the header row, or 'none' for no labels."""
    if text.lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        return text


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _delimiter(text):
    text = {"tab": "\t", "\\t": "\t"}.get(text, text)
    if len(text) != 1:
        raise argparse.ArgumentTypeError(f"expected one character (or 'tab'), got {text!r}")
    return text


def write_history_csv(history, path):
    """One row per epoch: ``epoch, loss, train_acc, test_acc, val_acc, lr`` (test_acc empty
    where the test data was not scored, val_acc without early stopping)."""
    def write(f):
        out = csv.writer(f)
        out.writerow(["epoch", "loss", "train_acc", "test_acc", "val_acc", "lr"])
        test_acc = history.get("test_acc") or []
        test = dict(zip(history.get("test_epoch") or range(1, len(test_acc) + 1), test_acc))
        val, lrs = history.get("val_acc") or [], history.get("lr") or []
        for epoch, (loss, acc) in enumerate(zip(history["loss"], history["train_acc"]), start=1):
            out.writerow([epoch, repr(loss), repr(acc), repr(test[epoch]) if epoch in test else "",
                          repr(val[epoch - 1]) if epoch <= len(val) else "",
                          repr(lrs[epoch - 1]) if epoch <= len(lrs) else ""])
    write_atomically(path, write)


def train(args):
    """Train on a data file; write model.npz, epoch_plots.png and history.csv into --out."""
    import fastmlp

    label_column = 0 if args.label_column is DEFAULT_LABEL_COLUMN else args.label_column
    X, y = load_data(args.data, label_column, delimiter=args.delimiter)
    if y is None:
        raise ValueError("--data has no labels: training needs them (an IDX label file, a CSV label "
                         "column, or y in the .npz)")
    classes, y_index = np.unique(y, return_inverse=True)
    if args.test_data:
        X_test, y_test = load_data(args.test_data, label_column, option="--test-data", delimiter=args.delimiter)
        if y_test is None:
            raise ValueError("--test-data has no labels: they are needed to measure test accuracy")
        unknown = np.setdiff1d(y_test, classes)
        if unknown.size:
            raise ValueError(f"--test-data has labels the training data lacks: {unknown[:5].tolist()}")
        y_test_index = np.searchsorted(classes, y_test)
    elif args.test_split != 0:
        if not 0 < args.test_split < 1:  # (NaN fails this too)
            raise ValueError(f"--test-split must be a fraction in [0, 1), got {args.test_split}")
        order = np.random.default_rng(args.seed).permutation(len(X))
        n_test = int(round(len(X) * args.test_split))
        if n_test == 0 or n_test == len(X):
            raise ValueError(f"--test-split {args.test_split} of {len(X)} samples leaves no "
                             f"{'test' if n_test == 0 else 'training'} data")
        test, keep = order[:n_test], order[n_test:]
        X, X_test, y_index, y_test_index = X[keep], X[test], y_index[keep], y_index[test]
    else:
        X_test = y_test_index = None

    try:
        json_classes(classes)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"--data: its labels cannot be stored in a model file ({exc})") from None
    paths = _output_paths(args.out, ("model.npz", "epoch_plots.png", "history.csv"))

    print(_describe("data", X))
    print(f"{len(classes)} classes, {len(X)} training samples"
          + (f", {len(X_test)} test samples" if X_test is not None else ""))
    start = time.perf_counter()
    model = fastmlp.fit(X, y_index, X_test=X_test, y_test=y_test_index, n_classes=len(classes),
                        dtype=args.dtype, n_threads=args.threads,
                        progress=_progress(args), **_fit_kwargs(args))
    elapsed = time.perf_counter() - start
    model.classes = classes
    # The model first, the accessories after: a failing plot must not cost the run.
    model.save(paths["model.npz"])
    write_history_csv(model.history, paths["history.csv"])
    print(f"training accuracy {model.score(X, classes[y_index])}")
    if model.best_epoch is not None:
        print(f"early stopping: kept epoch {model.best_epoch} of {len(model.history['loss'])} "
              f"(validation accuracy {model.history['val_acc'][model.best_epoch - 1]})")
    if X_test is not None:
        print(f"test accuracy {model.score(X_test, classes[y_test_index])}")
    print(f"trained in {elapsed:.2f} s; wrote {paths['model.npz']}, {paths['history.csv']}")
    try:
        plot_history(model.history, paths["epoch_plots.png"],
                     plot_title(len(X), X.shape[1], len(classes), None if X_test is None else len(X_test),
                                model.params))
    except Exception as exc:
        raise OSError(f"could not write {paths['epoch_plots.png']!r} ({type(exc).__name__}: {exc}); "
                      f"the model and history were written") from None
    print(f"wrote {paths['epoch_plots.png']}")
    return 0


def _load_for_model(args, n_features):
    """``predict``'s data. Without --label-column, a CSV with one column more than the
    model's features has its labels in column 0 (as ``train`` reads it), and one with
    exactly the model's features has none."""
    if args.label_column is not DEFAULT_LABEL_COLUMN:
        return load_data(args.data, args.label_column, delimiter=args.delimiter, require_labels=False)
    if os.path.basename(args.data[0]).lower().endswith(TABLE_SUFFIXES) and len(args.data) == 1:
        try:
            X, y = load_data(args.data, None, delimiter=args.delimiter)
        except ValueError:  # a column that is not numbers: labels
            X = None
        if X is not None and X.shape[1] != n_features + 1:
            return X, y
    return load_data(args.data, 0, delimiter=args.delimiter, require_labels=False)


def _output_paths(folder, names):
    """``{name: path}`` in ``folder`` (created if missing), checked before any work: none
    of the paths may be a folder."""
    _make_out_folder(folder)
    paths = {name: os.path.join(folder, name) for name in names}
    for path in paths.values():
        if os.path.isdir(path):
            raise ValueError(f"--out {folder!r}: {path!r} is a folder, so the output cannot be "
                             f"written there; remove it or choose another --out")
    return paths


def predict(args):
    """Predict labels for a data file with a saved model: one label per line."""
    import fastmlp

    model = fastmlp.load(args.model)
    X, y = _load_for_model(args, model.n_features)
    if X.shape[1] != model.n_features:
        hint = (" (does the CSV hold a label column? pass --label-column)"
                if X.shape[1] == model.n_features + 1 else "")
        raise ValueError(f"--data has {X.shape[1]} features per sample but the model expects "
                         f"{model.n_features}{hint}")
    labels = model.predict(X)
    lines = "".join(f"{label}\n" for label in labels.tolist())
    correct = None if y is None else matching_labels(labels, y, "--data labels")
    if args.out:
        write_atomically(args.out, lambda f: f.write(lines))
    else:
        sys.stdout.write(lines)
    if correct is not None:
        print(f"accuracy {float(np.mean(correct))} on {len(y)} labelled samples", file=sys.stderr)
    return 0


def export(args):
    """Write a saved model as an ONNX file (MLPModel.to_onnx)."""
    import fastmlp

    model = fastmlp.load(args.model)
    model.to_onnx(args.out, dtype=args.dtype)
    dtype = args.dtype or model.dtype.name
    labels = "0..C-1" if model.classes is None else f"classes {model.classes.tolist()[:5]}" + (
        " ..." if model.n_classes > 5 else "")
    print(f"wrote {args.out}: input X ({dtype}, N x {model.n_features}), outputs label ({labels}) "
          f"and probabilities (N x {model.n_classes})")
    return 0


def bench(args):
    """Run the benchmark suite (fastmlp.benchmark): print the table, write md/csv/png."""
    from fastmlp import benchmark

    if args.repeat < 1:
        raise ValueError(f"--repeat must be at least 1 (rounds of timed epochs), got {args.repeat}")
    peers = benchmark.PEERS if not args.peers else tuple(args.peers)
    unknown = sorted(set(peers) - set(benchmark.PEERS))
    if unknown:
        raise ValueError(f"--peers: unknown {unknown}; choose from {list(benchmark.PEERS)}")
    loads = benchmark.LOADS if args.load == "both" else (args.load,)
    benchmark.main(quick=args.quick, repeat=args.repeat, out=args.out, peers=peers, loads=loads)
    return 0


def _add_hyperparameters(p):
    p.add_argument("--hidden", type=_positive_int, default=128, help="hidden units (default 128)")
    p.add_argument("--epochs", type=_positive_int, default=200, help="passes over the data (default 200)")
    p.add_argument("--batch-size", type=_positive_int, default=30, help="rows per SGD step (default 30)")
    p.add_argument("--lr", type=float, default=1e-4, help="learning rate (default 1e-4)")
    p.add_argument("--reg", type=float, default=1e-2, help="L2 strength (default 1e-2)")
    p.add_argument("--seed", type=int, default=0, help="seed of weights, shuffling and split (default 0)")
    p.add_argument("--eval-every", type=int, default=1, metavar="K",
                   help="score the test data every K epochs and after the last (default 1)")
    p.add_argument("--quiet", action="store_true", help="no progress bar (shown by default on a terminal)")


DEFAULT_LABEL_COLUMN = object()  # --label-column not given: 0, or (predict) none if the file has no labels


def _add_table_options(p, predict=False):
    more = (" for a file with one column more than the model's features, else none"
            if predict else "")
    p.add_argument("--label-column", type=_label_column, default=DEFAULT_LABEL_COLUMN, metavar="COLUMN",
                   help=f"CSV/TSV label column: an index (-1 for the last), a name from the header, "
                        f"or 'none' (default 0{more})")
    p.add_argument("--delimiter", type=_delimiter, default=None,
                   help="CSV cell separator (default ',', or tab for .tsv files; 'tab' for a tab)")


def _add_controls(p):
    """The training controls of fastmlp.fit, with its defaults (the seed's plain SGD)."""
    g = p.add_argument_group("training controls (see fastmlp.fit)")
    g.add_argument("--momentum", type=float, default=0.0, help="momentum in [0, 1) (default 0: plain SGD)")
    g.add_argument("--nesterov", action="store_true", help="Nesterov's momentum")
    g.add_argument("--lr-schedule", choices=["constant", "invscaling", "adaptive"], default="constant",
                   help="learning-rate schedule (default constant)")
    g.add_argument("--power-t", type=float, default=0.5, help="exponent of invscaling (default 0.5)")
    g.add_argument("--early-stopping", action="store_true",
                   help="hold out --validation-fraction, stop when its accuracy stalls, keep the best epoch")
    g.add_argument("--validation-fraction", type=float, default=0.1,
                   help="share of the training data held out by --early-stopping (default 0.1)")
    g.add_argument("--n-iter-no-change", type=int, default=None,
                   help="epochs without improvement by --tol before stopping (default: 10 with "
                        "--early-stopping or adaptive, else never stop on the training loss)")
    g.add_argument("--tol", type=float, default=1e-4, help="smallest improvement that counts (default 1e-4)")
    g.add_argument("--class-weight", choices=["balanced"], default=None,
                   help="weigh classes by n_samples / (n_classes * count)")


def build_parser():
    parser = argparse.ArgumentParser(prog="fastmlp", description="Fast two-layer neural networks on the CPU.")
    parser.add_argument("--version", action="version", version=f"fastmlp {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="train on scikit-learn's 8x8 digits with the seed's settings",
                       description="Train on scikit-learn's bundled 8x8 digits (1,348 training and 449 "
                                   "test images) with the seed's settings; print the accuracies and "
                                   "write epoch_plots.png into --out.")
    _add_hyperparameters(p)
    p.add_argument("--out", default=".", help="folder for epoch_plots.png (default: current folder)")
    p.set_defaults(func=demo)

    p = sub.add_parser("train", help="train on an IDX pair, .npz or .csv; write model, plots, history",
                       description="Train a network on a data file and write model.npz, epoch_plots.png "
                                   "and history.csv into --out.")
    p.add_argument("--data", nargs="+", required=True, metavar="PATH", help=DATA_HELP)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--test-split", type=float, default=0.0, metavar="FRACTION",
                       help="hold out this fraction of --data for testing (default 0: none)")
    group.add_argument("--test-data", nargs="+", metavar="PATH", help="held-out data, as --data")
    _add_table_options(p)
    _add_hyperparameters(p)
    p.add_argument("--dtype", choices=["float32", "float64"], default=None,
                   help="training dtype (default float64)")
    p.add_argument("--threads", type=_positive_int, default=None, help="threads (default: the available cores)")
    _add_controls(p)
    p.add_argument("--out", default=".", help="folder for the outputs (default: current folder)")
    p.set_defaults(func=train)

    p = sub.add_parser("predict", help="predict labels with a saved model",
                       description="Print one predicted label per line (or write them to --out). When "
                                   "the data has labels, its accuracy goes to stderr.")
    p.add_argument("--model", required=True, help="a model file written by train or MLPModel.save")
    p.add_argument("--data", nargs="+", required=True, metavar="PATH",
                   help=DATA_HELP + "; labels are optional (IDX images alone, an .npz without y)")
    _add_table_options(p, predict=True)
    p.add_argument("--out", help="write the labels to this file instead of stdout")
    p.set_defaults(func=predict)

    p = sub.add_parser("export", help="write a saved model as an ONNX file",
                       description="Write a model file as ONNX (input X; outputs label and "
                                   "probabilities) for ONNX Runtime. Needs the ONNX extra: "
                                   'pip install "fastmlp[onnx]".')
    p.add_argument("--model", required=True, help="a model file written by train or MLPModel.save")
    p.add_argument("--out", required=True, help="the ONNX file to write (e.g. model.onnx)")
    p.add_argument("--dtype", choices=["float32", "float64"], default=None,
                   help="element type of X and the weights (default: the model's)")
    p.set_defaults(func=export)

    p = sub.add_parser("bench", help="time an epoch against NumPy, PyTorch, scikit-learn and JAX",
                       description="Time one training epoch for fastmlp and its peers in this process, "
                                   "the peers taking turns epoch by epoch. "
                                   "Unset OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE in the command to measure "
                                   "OpenBLAS's best kernels: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "
                                   "fastmlp bench")
    p.add_argument("--quick", action="store_true", help="only the seed's shape")
    p.add_argument("--load", choices=["idle", "busy", "both"], default="both",
                   help="time on the machine as it is (idle), with one CPU-bound process per core "
                        "beside it, each held to its core (busy), or both (default)")
    p.add_argument("--repeat", type=int, default=5,
                   help="rounds of one epoch per peer (half as many at N=60000); the median counts")
    p.add_argument("--out", metavar="FOLDER",
                   help="also write results.md, results.csv and results.png into this folder")
    p.add_argument("--peers", nargs="+", metavar="PEER",
                   help="a subset of: fastmlp-f64, fastmlp-f32, numpy (fastmlp's reference), pytorch, "
                        "sklearn, jax (default: all)")
    p.set_defaults(func=bench)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError, FloatingPointError, ImportError) as exc:
        print(f"fastmlp {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"fastmlp {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

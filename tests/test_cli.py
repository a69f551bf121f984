"""The command line: ``fastmlp demo`` and ``python -m fastmlp``."""

import argparse
import csv
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

import fastmlp
from fastmlp.__main__ import build_parser, main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_demo_prints_accuracies_and_writes_plot(tmp_path, capsys):
    out_dir = tmp_path / "new" / "folder"
    assert main(["demo", "--epochs", "20", "--hidden", "32", "--lr", "1e-3", "--seed", "3",
                 "--out", str(out_dir), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "data shape, type, min, max (1348, 64) float64 -1.0 1.0" in out
    assert "hidden=32 epochs=20 batch_size=30 lr=0.001 reg=0.01 seed=3" in out
    test_line = next(line for line in out.splitlines() if line.startswith("test sample accuracy"))
    assert float(test_line.split()[-1]) > 0.9
    assert (out_dir / "epoch_plots.png").read_bytes()[:8] == PNG_SIGNATURE


def test_demo_defaults_are_the_seed_settings():
    # the seed's settings themselves reach > 0.95 on digits in test_fit.py::test_digits_accuracy
    args = build_parser().parse_args(["demo"])
    assert (args.hidden, args.epochs, args.batch_size, args.lr, args.reg, args.seed, args.out) == \
        (128, 200, 30, 1e-4, 1e-2, 0, ".")


def test_module_entry_and_version(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "fastmlp", "--version"], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path,
                          # the fastmlp this test imported, wherever it is installed
                          env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(fastmlp.__file__))})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"fastmlp {fastmlp.__version__}"


@pytest.mark.parametrize("option", ["--batch-size", "--epochs", "--hidden", "--threads"])
def test_usage_error_names_the_option_and_exits_2(tmp_path, capsys, option):
    command = "train" if option == "--threads" else "demo"
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--data", "d.npz", option, "0", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: fastmlp") and "Traceback" not in err
    assert err.strip().splitlines()[-1].endswith(f"error: argument {option}: expected a positive integer, got 0")


def test_bad_value_is_one_line_and_status_1(tmp_path, capsys):
    assert main(["demo", "--lr", "-1", "--out", str(tmp_path), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fastmlp demo: error:") and "lr" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def _blobs(n=240, seed=0):
    """Three well-separated clusters in 6 dimensions, labelled with strings."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4, size=(3, 6))
    which = rng.integers(0, 3, size=n)
    X = centers[which] + rng.normal(size=(n, 6))
    return X, np.array(["cat", "dog", "emu"])[which]


TRAIN_OPTIONS = ["--hidden", "16", "--epochs", "30", "--lr", "1e-3", "--quiet"]
QUICK_OPTIONS = ["--hidden", "8", "--epochs", "2", "--quiet"]  # where only the reading of the data matters


def test_train_npz_then_predict(tmp_path, capsys):
    X, y = _blobs()
    np.savez(tmp_path / "train.npz", X=X[:200], y=y[:200])
    np.savez(tmp_path / "test.npz", X=X[200:], y=y[200:])
    out = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "train.npz"), "--test-data", str(tmp_path / "test.npz"),
                 "--out", str(out), *TRAIN_OPTIONS]) == 0
    printed = capsys.readouterr().out
    assert "3 classes, 200 training samples, 40 test samples" in printed
    for name in ("model.npz", "epoch_plots.png", "history.csv"):
        assert (out / name).exists(), name

    model = fastmlp.load(out / "model.npz")
    assert model.classes.tolist() == ["cat", "dog", "emu"]
    with open(out / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 30 and [r["epoch"] for r in rows[:2]] == ["1", "2"]
    assert float(rows[-1]["test_acc"]) == model.history["test_acc"][-1]

    assert main(["predict", "--model", str(out / "model.npz"), "--data", str(tmp_path / "test.npz")]) == 0
    captured = capsys.readouterr()
    predicted = captured.out.split()
    assert predicted == model.predict(X[200:]).tolist()
    assert np.mean(np.array(predicted) == y[200:]) > 0.9
    assert "accuracy" in captured.err

    labels_file = tmp_path / "labels.txt"
    assert main(["predict", "--model", str(out / "model.npz"), "--data", str(tmp_path / "test.npz"),
                 "--out", str(labels_file)]) == 0
    assert labels_file.read_text().split() == predicted


def test_train_csv_with_split_and_predict_csv_without_labels(tmp_path, capsys):
    X, y = _blobs()
    lines = ["label," + ",".join(f"f{i}" for i in range(6))]
    lines += [",".join([label, *(repr(float(v)) for v in row)]) for label, row in zip(y, X)]
    (tmp_path / "data.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "new.csv").write_text("\n".join(",".join(repr(float(v)) for v in row) for row in X[:5]) + "\n")
    out = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "data.csv"), "--test-split", "0.25",
                 "--out", str(out), *TRAIN_OPTIONS]) == 0
    assert "180 training samples, 60 test samples" in capsys.readouterr().out
    assert main(["predict", "--model", str(out / "model.npz"), "--data", str(tmp_path / "new.csv")]) == 0
    assert capsys.readouterr().out.split() == fastmlp.load(out / "model.npz").predict(X[:5]).tolist()
    # the training file, label column and all, is read as train reads it (the same default column)
    assert main(["predict", "--model", str(out / "model.npz"), "--data", str(tmp_path / "data.csv")]) == 0
    captured = capsys.readouterr()
    assert captured.out.split() == fastmlp.load(out / "model.npz").predict(X).tolist()
    assert "on 240 labelled samples" in captured.err
    # told there are no labels, the extra column is a clear hint, not a traceback
    assert main(["predict", "--model", str(out / "model.npz"), "--data", str(tmp_path / "data.csv"),
                 "--label-column", "none"]) == 1
    assert "--label-column" in capsys.readouterr().err


def test_train_idx_pair(tmp_path, capsys):
    rng = np.random.default_rng(1)
    n, rows, cols = 60, 3, 4
    labels = rng.integers(0, 3, size=n).astype(np.uint8)
    pixels = (labels[:, None] * 100 + rng.integers(0, 20, size=(n, rows * cols))).astype(np.uint8)
    (tmp_path / "img.idx").write_bytes(struct.pack(">IIII", 0x803, n, rows, cols) + pixels.tobytes())
    (tmp_path / "lab.idx").write_bytes(struct.pack(">II", 0x801, n) + labels.tobytes())
    out = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "img.idx"), str(tmp_path / "lab.idx"),
                 "--out", str(out), "--dtype", "float32", *TRAIN_OPTIONS, "--epochs", "200"]) == 0
    capsys.readouterr()
    model = fastmlp.load(out / "model.npz")
    assert model.dtype == np.float32 and model.classes.tolist() == [0, 1, 2]
    assert main(["predict", "--model", str(out / "model.npz"), "--data", str(tmp_path / "img.idx")]) == 0
    assert np.mean(np.array(capsys.readouterr().out.split(), dtype=int) == labels) > 0.9


@pytest.mark.parametrize("argv, words", [
    (["train", "--data", "missing.npz"], ["missing.npz", "does not exist"]),
    (["train", "--data", "x.parquet"], ["--data", ".npz", ".csv or .tsv", "two IDX files"]),
    (["train", "--data", "a.csv", "a.csv", "a.csv"], ["--data takes one", "got 3 files", "Join"]),
    (["train", "--data", "a.csv", "b.csv"], ["--data takes one", "two IDX files: images, then labels"]),
    (["predict", "--model", "nope.npz", "--data", "x.npz"], ["nope.npz", "does not exist"]),
])
def test_errors_are_one_line(tmp_path, capsys, monkeypatch, argv, words):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    for word in words:
        assert word in err


def test_train_refuses_bad_split_and_unlabelled_data(tmp_path, capsys):
    X, y = _blobs(40)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    (tmp_path / "f.csv").write_text("1,2\n3,4\n")
    assert main(["train", "--data", str(tmp_path / "d.npz"), "--test-split", "1.5", "--quiet"]) == 1
    assert "--test-split" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path / "f.csv"), "--label-column", "none", "--quiet"]) == 1
    assert "no labels" in capsys.readouterr().err


def test_written_files_get_the_usual_mode(tmp_path, capsys):
    X, y = _blobs(40)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    out = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "d.npz"), "--out", str(out), "--epochs", "1", "--quiet"]) == 0
    assert main(["predict", "--model", str(out / "model.npz"), "--data", str(tmp_path / "d.npz"),
                 "--out", str(out / "labels.txt")]) == 0
    (tmp_path / "plain.txt").write_text("x")
    usual = (tmp_path / "plain.txt").stat().st_mode & 0o777
    for name in ("model.npz", "history.csv", "labels.txt"):
        assert (out / name).stat().st_mode & 0o777 == usual, name
    assert not [p for p in out.iterdir() if p.name.startswith(".fastmlp-")]


def _write_blobs_csv(path, X, y, label_last=False, sep=","):
    rows = [[*map(repr, map(float, row)), label] if label_last else [label, *map(repr, map(float, row))]
            for label, row in zip(y, X)]
    path.write_text("\n".join(sep.join(row) for row in rows) + "\n")


def test_predict_npz_without_labels(tmp_path, capsys):
    X, y = _blobs(60)
    np.savez(tmp_path / "train.npz", X=X, y=y)
    np.savez(tmp_path / "new.npz", X=X[:7])
    out = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "train.npz"), "--out", str(out), *QUICK_OPTIONS]) == 0
    capsys.readouterr()
    assert main(["predict", "--model", str(out / "model.npz"), "--data", str(tmp_path / "new.npz")]) == 0
    captured = capsys.readouterr()
    assert captured.out.split() == fastmlp.load(out / "model.npz").predict(X[:7]).tolist()
    assert "accuracy" not in captured.err


def test_labels_in_the_last_column_hint_and_header_name(tmp_path, capsys):
    X, y = _blobs(60)
    _write_blobs_csv(tmp_path / "last.csv", X, y, label_last=True)
    out = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "last.csv"), "--out", str(out), *QUICK_OPTIONS]) == 1
    err = capsys.readouterr().err
    assert "'cat'" in err and "pass --label-column -1" in err and len(err.strip().splitlines()) == 1
    assert main(["train", "--data", str(tmp_path / "last.csv"), "--label-column", "-1",
                 "--out", str(out), *QUICK_OPTIONS]) == 0
    capsys.readouterr()
    # a header names the label column; a .tsv file is split at tabs
    (tmp_path / "named.tsv").write_text("\t".join([f"f{i}" for i in range(6)] + ["animal"]) + "\n"
                                        + (tmp_path / "last.csv").read_text().replace(",", "\t"))
    assert main(["train", "--data", str(tmp_path / "named.tsv"), "--label-column", "animal",
                 "--out", str(out), *QUICK_OPTIONS]) == 0
    assert "3 classes, 60 training samples" in capsys.readouterr().out
    assert fastmlp.load(out / "model.npz").classes.tolist() == ["cat", "dog", "emu"]
    _write_blobs_csv(tmp_path / "semi.txt", X, y, sep=";")
    assert main(["train", "--data", str(tmp_path / "semi.txt"), "--delimiter", ";",
                 "--out", str(out), *QUICK_OPTIONS]) == 0


def test_out_that_is_a_file_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "taken").write_text("x")
    assert main(["demo", "--epochs", "1", "--out", str(tmp_path / "taken"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "--out" in err and "is a file; give a folder" in err and "Errno" not in err


def test_every_command_has_a_description():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert {"demo", "train", "predict", "bench"} <= set(sub.choices)
    for command, subparser in sub.choices.items():
        assert subparser.description, command

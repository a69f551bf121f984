"""The command line: ``fastmlp demo`` and ``python -m fastmlp``."""

import os
import subprocess
import sys

import fastmlp
from fastmlp.__main__ import main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_demo_prints_accuracies_and_writes_plot(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "data shape, type, min, max (1348, 64) float64 -1.0 1.0" in out
    test_line = next(line for line in out.splitlines() if line.startswith("test sample accuracy"))
    assert float(test_line.split()[-1]) > 0.95
    assert (tmp_path / "epoch_plots.png").read_bytes()[:8] == PNG_SIGNATURE


def test_demo_options_and_module_entry(tmp_path):
    out_dir = tmp_path / "new" / "folder"
    proc = subprocess.run(
        [sys.executable, "-m", "fastmlp", "demo", "--epochs", "2", "--hidden", "8",
         "--batch-size", "64", "--lr", "1e-3", "--reg", "0", "--seed", "3", "--out", str(out_dir)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        # the fastmlp this test imported, wherever it is installed
        env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(fastmlp.__file__))})
    assert proc.returncode == 0, proc.stderr
    assert "hidden=8 epochs=2 batch_size=64 lr=0.001 reg=0.0 seed=3" in proc.stdout
    assert (out_dir / "epoch_plots.png").exists()


def test_bad_option_is_one_line_and_nonzero(tmp_path, capsys):
    assert main(["demo", "--batch-size", "0", "--out", str(tmp_path)]) != 0
    err = capsys.readouterr().err
    assert "batch_size" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1

"""The README's code does what the README says (skipped where the README is not beside the tests)."""

import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import fastmlp

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def readme_block(marker):
    """The fenced code block right after ``<!-- marker -->`` in the README."""
    if not README.exists():
        pytest.skip("README.md is not beside the tests")
    match = re.search(rf"<!-- {marker} -->\n```\w*\n(.*?)```", README.read_text(), re.S)
    assert match, f"README.md has no block after <!-- {marker} -->"
    return match.group(1)


@pytest.mark.slow  # 200 epochs and a plot in a fresh interpreter
def test_runnable_example_runs(tmp_path):
    proc = subprocess.run([sys.executable, "-c", readme_block("runnable-example")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(fastmlp.__file__))})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert float(lines[0]) > 0.95                      # "accuracy, about 0.98"
    assert (tmp_path / "model.npz").exists() and (tmp_path / "epoch_plots.png").exists()


def test_folding_the_scaler_into_the_model_keeps_the_pipelines_predictions(tmp_path):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from fastmlp.data import load_digits_split

    X, y, X_test, _ = load_digits_split(seed=0)
    search_best = make_pipeline(StandardScaler(), fastmlp.MLPClassifier(hidden=32, epochs=20, lr=1e-3,
                                                                        random_state=0)).fit(X, y)
    code = readme_block("fold-scaler").replace('"model.npz"', repr(str(tmp_path / "model.npz")))
    namespace = {"search": type("Search", (), {"best_estimator_": search_best})()}
    exec(code, namespace)
    folded = fastmlp.load(tmp_path / "model.npz")
    assert_array_equal(folded.predict(X_test), search_best.predict(X_test))
    np.testing.assert_allclose(folded.predict_proba(X_test), search_best.predict_proba(X_test),
                               rtol=1e-9, atol=1e-12)
    # the unfolded network on raw input is what the README warns about
    raw = search_best[-1].to_model()
    assert np.mean(raw.predict(X_test) == search_best.predict(X_test)) < 0.9

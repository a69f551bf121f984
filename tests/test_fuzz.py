"""Damaged files thrown at every reader (issue 9): a correct result or a clear error.

Hypothesis (derandomized, so every run tries the same cases) flips bits, overwrites,
inserts, deletes and truncates bytes of a good model file and of good data files,
then hands them to ``fastmlp.load``, ``load_npz``, ``load_idx``, ``load_csv`` and
the CLI. Accepted outcomes: a result equal to what an independent reading of the
damaged bytes gives (for zip archives, whose members are CRC-checked: the original
itself), or a ValueError / TypeError whose message names the file. Anything else
fails: another exception (MemoryError included), a traceback from the CLI, or more
than 64 MiB of memory for files of a few kilobytes.
"""

import gzip
import io
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastmlp
from fastmlp.__main__ import main
from fastmlp.data import load_csv, load_idx, load_npz

FUZZ = settings(derandomize=True, max_examples=40, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
MEMORY_LIMIT = 64 * 2**20


# ----------------------------------------------------------------- good files

def _model_bytes(tmp_path_factory):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 4))
    y = np.arange(30) % 3
    model = fastmlp.fit(X, y, hidden=4, epochs=2, lr=1e-2, backend="numpy")
    model.classes = np.array([10, 20, 30])
    path = tmp_path_factory.mktemp("good") / "model.npz"
    model.save(path)
    return model, path.read_bytes()


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    model, model_bytes = _model_bytes(tmp_path_factory)
    rng = np.random.default_rng(1)
    X = rng.integers(0, 10, size=(6, 4)).astype(np.float64)
    y = np.array([0, 1, 2, 0, 1, 2])
    npz, npz_compressed = io.BytesIO(), io.BytesIO()
    np.savez(npz, X=X, y=y)
    np.savez_compressed(npz_compressed, X=X, y=y)
    pixels = rng.integers(0, 256, size=(5, 2, 2), dtype=np.uint8)  # 4 features, as the model's
    images = struct.pack(">IIII", 0x803, 5, 2, 2) + pixels.tobytes()
    text = "".join(f"{label},{','.join(str(int(v)) for v in row)}\n" for label, row in zip(y, X))
    return _Files({"model": model, "model.npz": model_bytes, "data.npz": npz.getvalue(), "deflated.npz": npz_compressed.getvalue(),
            "images.idx": images, "images.idx.gz": gzip.compress(images, mtime=0),
            "data.csv": text.encode(), "X": X, "y": y})


class _Files(dict):
    """The good files by name (with a short repr for hypothesis's reports)."""

    def __repr__(self):
        return f"<good files {sorted(self)}>"


# ----------------------------------------------------------------- damage

@st.composite
def damage(draw, blob):
    """``blob`` with one to three random edits."""
    data = bytearray(blob)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[at] = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF, ord(","), ord('"'), ord("\n")]))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[at:at + draw(st.integers(1, 16))]
        else:
            del data[at:]
    return bytes(data)


def _outcome(call, path):
    """``call()``'s result, or None after a ValueError/TypeError naming ``path``;
    any other exception, or too much memory, fails the test."""
    tracemalloc.start()
    try:
        result = call()
    except (ValueError, TypeError) as exc:
        assert path.name in str(exc), f"{type(exc).__name__} does not name the file: {exc}"
        result = None
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < MEMORY_LIMIT, f"{peak / 2**20:.0f} MiB for a file of {path.stat().st_size} bytes"
    return result


def _write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


# ----------------------------------------------------------------- readers

@FUZZ
@given(data=st.data())
def test_damaged_model_file(good, tmp_path, data):
    path = _write(tmp_path, "model.npz", data.draw(damage(good["model.npz"])))
    model = _outcome(lambda: fastmlp.load(path), path)
    if model is not None:  # every member is CRC-checked: what loads is the original
        original = good["model"]
        for name in ("W1", "b1", "W2", "b2"):
            assert np.array_equal(getattr(model, name), getattr(original, name))
        assert model.classes.tolist() == original.classes.tolist()
        assert model.history == original.history


@FUZZ
@given(data=st.data(), name=st.sampled_from(["data.npz", "deflated.npz"]))
def test_damaged_npz_data(good, tmp_path, data, name):
    path = _write(tmp_path, name, data.draw(damage(good[name])))
    result = _outcome(lambda: load_npz(path), path)
    if result is not None:
        assert np.array_equal(result[0], good["X"]) and np.array_equal(result[1], good["y"])


def _reference_idx(raw):
    """An independent reading of IDX image bytes: the expected X, or None if invalid."""
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error):
            return None
    if len(raw) < 16:
        return None
    magic, n, rows, cols = struct.unpack(">IIII", raw[:16])
    if magic != 0x803 or n * rows * cols == 0 or len(raw) != 16 + n * rows * cols:
        return None
    return np.frombuffer(raw[16:], dtype=np.uint8).reshape(n, rows * cols) / 127.5 - 1.0


@FUZZ
@given(data=st.data(), compressed=st.booleans())
def test_damaged_idx(good, tmp_path, data, compressed):
    name = "images.idx.gz" if compressed else "images.idx"
    raw = data.draw(damage(good[name]))
    path = _write(tmp_path, name, raw)
    result = _outcome(lambda: load_idx(path), path)
    expected = _reference_idx(raw)
    if expected is None:
        assert result is None, "a damaged IDX file was accepted"
    else:
        assert result is not None and result[1] is None
        np.testing.assert_allclose(result[0], expected, rtol=0, atol=1e-15)


def _reference_csv(raw):
    """An independent reading of a CSV of numbers without quotes: (X, y), or None when
    the file is not that simple (then any clean outcome is accepted)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    rows = [line.split(",") for line in text.replace("\r\n", "\n").split("\n") if line.strip()]
    if not rows or '"' in text or "\r" in text.replace("\r\n", "") or len({len(r) for r in rows}) != 1:
        return None
    try:
        values = np.array([[float(cell) for cell in row] for row in rows])
    except ValueError:
        return None
    if values.shape[1] < 2 or not np.isfinite(values).all() or (values[:, 0] != np.round(values[:, 0])).any():
        return None
    if any("_" in cell for row in rows for cell in row) or np.abs(values[:, 0]).max() >= 2**53:
        return None
    return values[:, 1:], values[:, 0].astype(np.int64)


@FUZZ
@given(data=st.data())
def test_damaged_csv(good, tmp_path, data):
    raw = data.draw(damage(good["data.csv"]))
    path = _write(tmp_path, "data.csv", raw)
    result = _outcome(lambda: load_csv(path), path)
    if result is not None:
        X, y = result
        assert X.dtype == np.float64 and X.ndim == 2 and np.isfinite(X).all() and len(y) == len(X)
    expected = _reference_csv(raw)
    if expected is not None:
        assert result is not None, "a plain numeric CSV was refused"
        np.testing.assert_array_equal(result[0], expected[0])
        np.testing.assert_array_equal(result[1], expected[1])


# ----------------------------------------------------------------- the command line

@FUZZ
@given(data=st.data(), target=st.sampled_from(["model.npz", "data.npz", "data.csv", "images.idx.gz"]))
def test_cli_on_damaged_files(good, tmp_path, capsys, data, target):
    files = {name: _write(tmp_path, name, good[name])
             for name in ("model.npz", "data.npz", "data.csv", "images.idx.gz")}
    _write(tmp_path, target, data.draw(damage(good[target])))
    model = files["model.npz"]
    if target == "model.npz":
        argv = ["predict", "--model", str(model), "--data", str(files["data.csv"]), "--label-column", "0"]
    else:
        argv = ["predict", "--model", str(model), "--data", str(files[target])]
        if target == "data.csv":
            argv += ["--label-column", "0"]
    status = main(argv)
    captured = capsys.readouterr()
    assert status in (0, 1) and "Traceback" not in captured.err
    if status == 1:
        # one line, naming the damaged file (or --data, for readable data that does
        # not fit the model: another width, or labels of another kind)
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1, captured.err
        assert target in lines[0] or (target != "model.npz" and "--data" in lines[0]), captured.err

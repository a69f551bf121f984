"""Data larger than memory: fastmlp.data.iter_chunks and MLPClassifier.partial_fit."""

import tracemalloc

import numpy as np
import pytest

from fastmlp import MLPClassifier
from fastmlp.data import iter_chunks, load_digits_split


def rows_of(chunks):
    """All yielded X rows stacked, and the labels, for checking a pass's contents."""
    chunks = list(chunks)
    return np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks])


def sorted_rows(X):
    return X[np.lexsort(X.T[::-1])]


def test_each_pass_visits_every_row_once(rng):
    X = rng.standard_normal((103, 3))
    y = np.arange(103)  # the label names the row
    X_in_order, y_in_order = rows_of(iter_chunks(X, y, chunk_size=10, shuffle=False))
    np.testing.assert_array_equal(X_in_order, X)
    np.testing.assert_array_equal(y_in_order, y)

    passes = list(iter_chunks(X, y, chunk_size=10, epochs=2, seed=0))
    assert len(passes) == 22 and [len(c[0]) for c in passes].count(3) == 2
    for chunks in (passes[:11], passes[11:]):
        X_seen, y_seen = rows_of(chunks)
        np.testing.assert_array_equal(X_seen, X[y_seen])  # rows keep their labels
        np.testing.assert_array_equal(np.sort(y_seen), y)  # every row exactly once
        # rows stay within their chunk of 10 consecutive rows
        assert all(np.ptp(c[1] // 10) == 0 for c in chunks)
    assert not np.array_equal(rows_of(passes[:11])[1], rows_of(passes[11:])[1])  # reshuffled
    again = list(iter_chunks(X, y, chunk_size=10, epochs=2, seed=0))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(passes, again))  # seeded


def test_chunks_are_copies_never_views(rng):
    X = rng.standard_normal((20, 2))
    original = X.copy()
    for shuffle in (False, True):
        for X_chunk in iter_chunks(X, chunk_size=7, shuffle=shuffle, seed=1):  # y=None: X alone
            assert type(X_chunk) is np.ndarray and not np.shares_memory(X_chunk, X)
            X_chunk[:] = 0
    np.testing.assert_array_equal(X, original)


def test_npy_path_dask_array_and_files(tmp_path, rng):
    X = rng.standard_normal((50, 4))
    y = np.arange(50)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    X_seen, y_seen = rows_of(iter_chunks(tmp_path / "X.npy", tmp_path / "y.npy", chunk_size=16, seed=2))
    np.testing.assert_array_equal(X_seen, X[y_seen])
    np.testing.assert_array_equal(np.sort(y_seen), y)

    da = pytest.importorskip("dask.array")
    dX, dy = da.from_array(X, chunks=(12, 2)), da.from_array(y, chunks=12)
    chunks = list(iter_chunks(dX, dy, seed=3))
    assert sorted(len(c[0]) for c in chunks) == [2, 12, 12, 12, 12]  # the row blocks
    X_seen, y_seen = rows_of(chunks)
    np.testing.assert_array_equal(X_seen, X[y_seen])
    np.testing.assert_array_equal(np.sort(y_seen), y)

    paths = []
    for i, part in enumerate(np.array_split(np.arange(50), 3)):
        paths.append(tmp_path / f"part{i}.npz")
        np.savez(paths[-1], X=X[part], y=y[part])
    X_seen, y_seen = rows_of(iter_chunks(paths, epochs=1, seed=4))
    np.testing.assert_array_equal(X_seen, X[y_seen])
    np.testing.assert_array_equal(np.sort(y_seen), y)


def test_bad_arguments(tmp_path, rng):
    X, y = rng.standard_normal((10, 2)), np.zeros(10)
    cases = [
        (ValueError, "chunk_size must be a positive integer", dict(X=X, y=y, chunk_size=0)),
        (TypeError, "chunk_size must be a positive integer", dict(X=X, y=y, chunk_size=2.5)),
        (ValueError, "epochs", dict(X=X, y=y, epochs=0)),
        (ValueError, "one label per row of X", dict(X=X, y=y[:9])),
        (ValueError, "X must be a 2-D array", dict(X=y, y=y)),
        (ValueError, "y must be None when X is a list of .npz files", dict(X=[tmp_path / "a.npz"], y=y)),
        (ValueError, "give a .npy file", dict(X=tmp_path / "X.csv", y=y)),
    ]
    for exc, message, kwargs in cases:
        with pytest.raises(exc, match=message):
            next(iter_chunks(kwargs.pop("X"), kwargs.pop("y"), **kwargs))


def test_stream_memmap_larger_than_budget(tmp_path):
    """An on-disk array 4x the memory budget trains by partial_fit over chunks to the
    accuracy of an in-memory fit, with traced memory bounded by the chunk size."""
    X_train, y_train, X_test, y_test = load_digits_split(seed=0)
    # 8 noisy copies of the 1,348 training digits: 10,784 x 64 float64 = 5.5 MB on disk
    noise = np.random.default_rng(0)
    X_big = np.concatenate([X_train + 0.1 * noise.standard_normal(X_train.shape) for _ in range(8)])
    y_big = np.tile(y_train, 8)
    X_disk = np.lib.format.open_memmap(tmp_path / "X.npy", mode="w+", dtype=np.float64, shape=X_big.shape)
    X_disk[:] = X_big
    X_disk.flush()
    del X_disk, X_big
    budget = 1 << 20  # 1 MiB: 4 chunks
    file_bytes = (tmp_path / "X.npy").stat().st_size
    assert file_bytes > 4 * budget

    params = dict(hidden=32, batch_size=30, lr=3e-4, reg=1e-2, random_state=0, n_threads=1)
    epochs, chunk_rows = 5, 500  # 500 x 64 float64 = 250 KiB per chunk
    classes = np.unique(y_big)
    X_mm = np.load(tmp_path / "X.npy", mmap_mode="r")
    streamed = MLPClassifier(**params)
    tracemalloc.start()
    for X_chunk, y_chunk in iter_chunks(X_mm, y_big, chunk_size=chunk_rows, epochs=epochs, seed=0):
        streamed.partial_fit(X_chunk, y_chunk, classes=classes)
    stream_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del X_mm

    tracemalloc.start()
    X_loaded = np.load(tmp_path / "X.npy")  # the whole array in memory
    in_memory = MLPClassifier(epochs=epochs, **params).fit(X_loaded, y_big)
    memory_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    chunk_bytes = chunk_rows * 64 * 8
    acc_stream, acc_memory = streamed.score(X_test, y_test), in_memory.score(X_test, y_test)
    print(f"file {file_bytes / 2**20:.2f} MiB, chunk {chunk_bytes / 2**20:.2f} MiB: traced peak "
          f"streaming {stream_peak / 2**20:.2f} MiB vs in-memory fit {memory_peak / 2**20:.2f} MiB; "
          f"test accuracy streaming {acc_stream:.4f} vs in-memory {acc_memory:.4f}")
    assert stream_peak < budget
    # two chunks (the loop variable holds the last one while the next is read), their
    # labels, and partial_fit's own ~150 KiB (weights, buffers, checks): a bound set by
    # the chunk size, not by the file's
    assert stream_peak < 4 * chunk_bytes
    assert memory_peak > file_bytes
    assert len(streamed.history_["loss"]) == epochs * 22  # one entry per partial_fit call
    assert acc_memory > 0.9 and abs(acc_stream - acc_memory) <= 0.02

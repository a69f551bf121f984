"""Streaming data larger than memory: shuffled chunks for ``MLPClassifier.partial_fit``.

Re-exported as :func:`fastmlp.data.iter_chunks`.
"""

import numbers
import os

import numpy as np

#: Default chunk: about this many bytes of X.
DEFAULT_CHUNK_BYTES = 64 << 20


def iter_chunks(X, y=None, *, chunk_size=None, epochs=1, shuffle=True, seed=None):
    """Yield ``(X_chunk, y_chunk)`` pairs, in-memory NumPy copies, pass after pass over the data.

    One pass (epoch) visits every row exactly once. With ``shuffle`` each pass
    visits the chunks in a new random order and the rows of each chunk in a new
    random order; rows never move between chunks, so reads stay sequential. Only
    one chunk (and its shuffled copy) is in memory at a time.

    Parameters
    ----------
    X : array-like, Dask array, path, or sequence of paths
        * An array with ``shape`` and row slicing (``numpy.ndarray``, ``numpy.memmap``,
          an HDF5 or Zarr dataset): chunks of ``chunk_size`` consecutive rows.
        * The path of a ``.npy`` file: opened as a read-only ``numpy.memmap``.
        * A Dask array: one chunk per block of rows (``X.chunks[0]``); ``y`` may be
          a Dask array too. Only the current block is computed.
        * A list or tuple of ``.npz`` file paths, each holding ``X`` and ``y``
          (read with :func:`fastmlp.data.load_npz`): one chunk per file; ``y`` must
          be None.
    y : array-like, path of a ``.npy`` file, Dask array or None
        Labels, one per row of X (not with files). None with an array X: only the
        X chunks are yielded.
    chunk_size : int, optional
        Rows per chunk, for array X; default about 64 MiB of rows. Dask arrays and
        files bring their own chunks.
    epochs : int, default 1
        Passes over the data.
    shuffle : bool, default True
        Shuffle the order of the chunks and the rows within each chunk, anew for
        each pass; False: the rows in order.
    seed : int, numpy.random.Generator or None
        Seeds the shuffling.

    Yields
    ------
    (X_chunk, y_chunk) : tuple of ndarray, or X_chunk alone when ``y`` is None

    Examples
    --------
    >>> X = np.load("X.npy", mmap_mode="r"); y = np.load("y.npy")          # doctest: +SKIP
    >>> clf = fastmlp.MLPClassifier(random_state=0)                         # doctest: +SKIP
    >>> for X_chunk, y_chunk in iter_chunks(X, y, chunk_size=10_000, epochs=20, seed=0):
    ...     clf.partial_fit(X_chunk, y_chunk, classes=np.unique(y))         # doctest: +SKIP
    """
    from ._fit import _generator
    from ._validation import check_int

    epochs = check_int(epochs, "epochs", minimum=1)
    rng = _generator(seed)
    read, n_chunks, pairs = _chunk_reader(X, y, chunk_size)
    for _ in range(epochs):
        for index in (rng.permutation(n_chunks) if shuffle else range(n_chunks)):
            parts = read(int(index), rng if shuffle else None)
            yield parts if pairs else parts[0]


def _chunk_reader(X, y, chunk_size):
    """``(read, n_chunks, pairs)``: ``read(i, rng)`` returns chunk ``i`` as a tuple of
    in-memory arrays, its rows permuted by ``rng`` (in order when None); ``pairs``
    says whether the tuple holds labels."""
    if isinstance(X, (list, tuple)) and X and all(isinstance(p, (str, os.PathLike)) for p in X):
        if y is not None:
            raise ValueError("y must be None when X is a list of .npz files: each file holds its X and y")
        if chunk_size is not None:
            raise ValueError("chunk_size does not apply to files: each file is one chunk")
        from .data import load_npz
        paths = list(X)

        def read_file(i, rng):
            parts = load_npz(paths[i])
            return parts if rng is None else _permuted(parts, rng)
        return read_file, len(paths), True

    X = _open_npy(X, "X")
    y = None if y is None else _open_npy(y, "y")
    if getattr(X, "ndim", None) != 2:
        raise ValueError(f"X must be a 2-D array (n_samples, n_features), got "
                         f"{type(X).__name__} with shape {getattr(X, 'shape', None)}")
    n_rows = X.shape[0]
    if y is not None and (getattr(y, "ndim", None) != 1 or y.shape[0] != n_rows):
        raise ValueError(f"y must be 1-D with one label per row of X ({n_rows}), "
                         f"got shape {getattr(y, 'shape', None)}")

    if _is_dask(X):
        if chunk_size is not None:
            raise ValueError("chunk_size does not apply to a Dask array: its row blocks are the "
                             "chunks (use X.rechunk to change them)")
        bounds = np.concatenate([[0], np.cumsum(X.chunks[0])]).astype(np.int64)
    else:
        if chunk_size is None:
            row_bytes = max(1, X.shape[1] * np.dtype(X.dtype).itemsize)
            chunk_size = max(1, DEFAULT_CHUNK_BYTES // row_bytes)
        elif isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral):
            raise TypeError(f"chunk_size must be a positive integer (rows per chunk), got {chunk_size!r}")
        elif chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer (rows per chunk), got {chunk_size}")
        bounds = np.append(np.arange(0, n_rows, int(chunk_size)), n_rows)

    def read(i, rng):
        start, stop = int(bounds[i]), int(bounds[i + 1])
        parts = (X[start:stop],) if y is None else (X[start:stop], y[start:stop])
        parts = tuple(np.asarray(p.compute()) if _is_dask(p) else p for p in parts)
        # one copy of the chunk: a permuted one, or a plain one (never a view of the caller's data)
        return (_permuted(parts, rng) if rng is not None
                else tuple(np.array(p, copy=True) for p in parts))

    return read, len(bounds) - 1, y is not None


def _open_npy(a, name):
    """A ``.npy`` path opened as a read-only memmap; anything else as it is."""
    if isinstance(a, (str, os.PathLike)):
        path = os.fspath(a)
        if not path.endswith(".npy"):
            raise ValueError(f"{name} {path!r}: give a .npy file (or an array); for .npz files pass "
                             f"a list of them as X")
        return np.load(path, mmap_mode="r", allow_pickle=False)
    if hasattr(a, "shape") and hasattr(a, "dtype"):
        return a
    return np.asarray(a)


def _is_dask(a):
    return type(a).__module__.split(".")[0] == "dask" and hasattr(a, "compute")


def _permuted(parts, rng):
    """The arrays' rows in one random order (new arrays; fancy indexing copies)."""
    rows = rng.permutation(len(parts[0]))
    return tuple(np.asarray(p)[rows] for p in parts)

"""Checks of user input. Each failure names the argument and says how to fix it."""

import numbers

import numpy as np
import scipy.sparse

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def resolve_dtype(dtype, X):
    """The training dtype: ``dtype`` if given, else float32 for float32 ``X``, else float64."""
    if dtype is None:
        return np.dtype(np.float32) if getattr(X, "dtype", None) == np.float32 else np.dtype(np.float64)
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved not in FLOAT_DTYPES:
        raise ValueError(f"dtype must be float32 or float64 (or None to follow X), got {dtype!r}")
    return resolved


def check_features(X, name, dtype, n_features=None, accept_sparse=False):
    """``X`` as a finite, non-empty, C-contiguous 2-D array of ``dtype``.

    No copy is made when ``X`` already is such an array; otherwise the result is a
    new array and the caller's data is left as it was. With ``accept_sparse``, a
    scipy.sparse matrix or array is returned as CSR of ``dtype`` instead (see
    :func:`check_sparse_features`).
    """
    if scipy.sparse.issparse(X):
        if not accept_sparse:
            raise TypeError(f"{name} is a scipy.sparse matrix; pass a dense array ({name}.toarray())")
        return check_sparse_features(X, name, dtype, n_features)
    try:
        arr = np.asarray(X)
    except ValueError as exc:  # ragged nested lists
        raise ValueError(f"{name} must be a 2-D array of numbers; {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}; "
                        f"convert it with numpy.asarray({name}, dtype=float)")
    if arr.ndim != 2:
        hint = f"; use {name}.reshape(len({name}), -1)" if arr.ndim > 2 else \
            f"; use {name}.reshape(-1, 1) for a single feature" if arr.ndim == 1 else ""
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {arr.shape}{hint}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must have at least one sample and one feature, got shape {arr.shape}")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(f"{name} has {arr.shape[1]} features but the model expects {n_features}")
    given = arr
    with np.errstate(over="ignore"):
        arr = np.ascontiguousarray(arr, dtype=dtype)
    if not all_finite(arr):
        if arr is not given and given.dtype.kind == "f" and all_finite(given):
            raise ValueError(f"{name} holds values too large for {np.dtype(dtype).name} "
                             f"(|x| > {np.finfo(dtype).max:.3g}); use dtype=float64 or rescale {name}")
        raise ValueError(f"{name} contains NaN or infinity; remove or impute those values "
                         f"(e.g. sklearn.impute.SimpleImputer) before fitting")
    return arr


def check_sparse_features(X, name, dtype, n_features=None):
    """A scipy.sparse ``X`` as a finite, non-empty 2-D CSR matrix of ``dtype``.

    ``X`` itself is returned when it already is one (with sorted indices); otherwise a
    new CSR matrix, never a dense copy. The caller's matrix is not modified.
    """
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {X.shape}")
    if X.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {X.dtype}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{name} must have at least one sample and one feature, got shape {X.shape}")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"{name} has {X.shape[1]} features but the model expects {n_features}")
    csr = X if X.format == "csr" else X.tocsr()
    if csr.dtype != dtype:
        with np.errstate(over="ignore"):
            csr = csr.astype(dtype)
    if not csr.has_sorted_indices:
        csr = csr.sorted_indices()  # a copy: the caller's matrix stays as it was
    if not np.isfinite(csr.data).all():
        raise ValueError(f"{name} contains NaN or infinity (or values too large for "
                         f"{np.dtype(dtype).name}); remove or impute those values before fitting")
    return csr


def all_finite(arr, block_rows=4096):
    """Whether a float array holds no NaN or infinity, without an array-sized temporary.

    Its sum is finite exactly when every entry is, unless the sum overflows; only
    then are the rows checked, a block at a time.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.sum(arr, dtype=np.float64)):
            return True
    rows = arr.reshape(len(arr), -1) if arr.ndim else arr.reshape(1, 1)
    return all(np.isfinite(rows[i:i + block_rows]).all() for i in range(0, len(rows), block_rows))


def check_labels(y, name, n_samples, n_classes=None):
    """``y`` as an int64 array of ``n_samples`` labels in ``[0, C)``; returns ``(y, C)``.

    ``C`` is ``n_classes`` when given, else ``max(y) + 1``.
    """
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one label per sample), got shape {arr.shape}")
    if arr.shape[0] != n_samples:
        raise ValueError(f"{name} has {arr.shape[0]} labels but X has {n_samples} samples; "
                         f"pass one label per row of X")
    if arr.dtype.kind == "b" or arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold integer class labels 0..C-1, got dtype {arr.dtype}; "
                        f"encode other labels with sklearn.preprocessing.LabelEncoder")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or infinity; labels must be integers 0..C-1")
        if (arr != np.round(arr)).any():
            raise ValueError(f"{name} contains fractional values; labels must be integers 0..C-1")
    labels = np.ascontiguousarray(arr, dtype=np.int64)
    if labels.min() < 0:
        raise ValueError(f"{name} contains negative labels ({labels.min()}); labels must be 0..C-1, "
                         f"encode others with sklearn.preprocessing.LabelEncoder")
    if n_classes is None:
        n_classes = int(labels.max()) + 1
    else:
        n_classes = check_int(n_classes, "n_classes", minimum=1)
        if labels.max() >= n_classes:
            raise ValueError(f"{name} contains label {labels.max()} but n_classes={n_classes}; "
                             f"labels must be 0..{n_classes - 1}, or raise n_classes")
    return labels, n_classes


def check_int(value, name, minimum):
    """``value`` as a Python int >= ``minimum`` (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def check_float(value, name, *, positive):
    """``value`` as a finite float, > 0 when ``positive`` else >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    bad = not np.isfinite(value) or (value <= 0 if positive else value < 0)
    if bad:
        kind = "a positive finite number" if positive else "a finite number >= 0"
        raise ValueError(f"{name} must be {kind}, got {value}")
    return value

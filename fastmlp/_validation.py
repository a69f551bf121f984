"""Checks of user input. Each failure names the argument and says how to fix it."""

import numbers
import sys

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))



def issparse(x):
    """``scipy.sparse.issparse(x)`` without importing SciPy: a sparse matrix or array can
    exist only once ``scipy.sparse`` is imported (``import fastmlp`` stays fast)."""
    sparse = sys.modules.get("scipy.sparse")
    return sparse is not None and sparse.issparse(x)

def resolve_dtype(dtype, X):
    """The training dtype: ``dtype`` if given, else float32 for float32 ``X``, else float64."""
    if dtype is None:
        return np.dtype(np.float32) if getattr(X, "dtype", None) == np.float32 else np.dtype(np.float64)
    try:
        resolved = np.dtype(dtype)
    except (TypeError, ValueError, SyntaxError):
        resolved = None
    # (compare by identity of the two choices: ``np.dtype(...) == None`` is true for float64)
    if resolved is None or not any(resolved == d for d in FLOAT_DTYPES):
        raise ValueError(f"dtype must be float32 or float64 (or None to follow X), got {dtype!r}")
    return resolved


def check_features(X, name, dtype, n_features=None, accept_sparse=False):
    """``X`` as a finite, non-empty, C-contiguous 2-D array of ``dtype``.

    No copy is made when ``X`` already is such an array; otherwise the result is a
    new array and the caller's data is left as it was. With ``accept_sparse``, a
    scipy.sparse matrix or array is returned as CSR of ``dtype`` instead (see
    :func:`check_sparse_features`).
    """
    if issparse(X):
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
        hint = f"; use {name}.reshape(len({name}), -1)" if arr.ndim > 2 else ""
        if arr.ndim == 1 and n_features not in (None, 1) and arr.shape[0] == n_features:
            hint = f"; use {name}.reshape(1, -1) for a single sample"
        elif arr.ndim == 1:
            hint = f"; use {name}.reshape(-1, 1) for a single feature"
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {arr.shape}{hint}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must have at least one sample and one feature, got shape {arr.shape}")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(f"{name} has {arr.shape[1]} features but the model expects {n_features}")
    given = arr
    with np.errstate(over="ignore"):
        arr = np.ascontiguousarray(arr, dtype=dtype)
    if not all_finite(arr):
        refuse_non_finite(name, dtype, given if arr is not given else None)
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
    csr = given = X if X.format == "csr" else X.tocsr()
    if csr.dtype != dtype:
        with np.errstate(over="ignore"):
            csr = csr.astype(dtype)
    if not csr.has_sorted_indices:
        csr = csr.sorted_indices()  # a copy: the caller's matrix stays as it was
    if not np.isfinite(csr.data).all():
        refuse_non_finite(name, dtype, given.data if csr.dtype != given.dtype else None)
    return csr


def refuse_non_finite(name, dtype, given=None):
    """Raise the ValueError for features ``name`` that hold NaN or infinity as ``dtype``.

    ``given``: their values before this check converted them to ``dtype`` (None when it
    did not). If those are finite, the conversion overflowed, and the message says so.
    """
    dtype = np.dtype(dtype)
    if given is not None and given.dtype.kind == "f" and all_finite(given):
        raise ValueError(f"{name} holds values too large for {dtype.name} "
                         f"(|x| > {np.finfo(dtype).max:.3g}); use dtype=float64 or rescale {name}")
    raise ValueError(f"{name} contains NaN or infinity; remove or impute those values "
                     f"(e.g. sklearn.impute.SimpleImputer)")


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


def label_values(y, name, n_samples):
    """``y`` as a fresh int64 array of ``n_samples`` integer labels >= 0.

    Always a new array, never the caller's: the compiled step indexes with it
    without the GIL or bounds checks, so nobody else may change it meanwhile.
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
    if n_samples == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or infinity; labels must be integers 0..C-1")
        if (arr != np.round(arr)).any():
            raise ValueError(f"{name} contains fractional values; labels must be integers 0..C-1")
    # Range checks on the values as given, before a cast to int64 could wrap them.
    low, high = arr.min(), arr.max()
    if low < 0:
        raise ValueError(f"{name} contains negative labels ({low}); labels must be 0..C-1, "
                         f"encode others with sklearn.preprocessing.LabelEncoder")
    if high >= _MAX_LABEL:
        raise ValueError(f"{name} contains the label {high}, too large for a class index; labels "
                         f"must be 0..C-1, encode others with sklearn.preprocessing.LabelEncoder")
    return np.array(arr, dtype=np.int64, order="C", copy=True)


_MAX_LABEL = 2**62
# n_classes inferred as max(y) + 1 is refused above this many classes when more
# than half of them would have no sample: a stray label, not a class count.
_SPARSE_CLASSES = 1024


def check_labels(y, name, n_samples, n_classes=None):
    """``y`` as a fresh int64 array of ``n_samples`` labels in ``[0, C)``; returns ``(y, C)``.

    ``C`` is ``n_classes`` when given, else ``max(y) + 1``; an inferred ``C`` above
    1024 with fewer than ``C / 2`` distinct labels present is refused (a stray
    label would otherwise size the network). The array is always a copy
    (see :func:`label_values`).
    """
    labels = label_values(y, name, n_samples)
    if n_classes is None:
        n_classes = int(labels.max()) + 1
        if n_classes > _SPARSE_CLASSES:
            n_present = len(np.unique(labels))
            if 2 * n_present < n_classes:
                raise ValueError(
                    f"{name} holds {n_present} distinct labels, but its largest, {n_classes - 1}, "
                    f"would make n_classes = max({name}) + 1 = {n_classes}; labels must be "
                    f"0..C-1: pass n_classes= if you mean that many classes, or use "
                    f"fastmlp.MLPClassifier (or sklearn.preprocessing.LabelEncoder) for arbitrary labels")
    else:
        n_classes = check_int(n_classes, "n_classes", minimum=1)
        if labels.max() >= n_classes:
            raise ValueError(f"{name} contains label {labels.max()} but n_classes={n_classes}; "
                             f"labels must be 0..{n_classes - 1}, or raise n_classes")
    return labels, n_classes


def check_bool(value, name):
    """``value`` as a bool; only True and False (Python or NumPy) are accepted.

    Truthiness would take ``"no"`` (or ``[]``, ``2``) silently as a choice.
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {value!r}")


def label_kind(labels):
    """What ``labels`` hold: ``"numbers"``, ``"strings"``, ``"bytes"``, or the dtype's name."""
    kind = labels.dtype.kind
    if kind in "biuf":
        return "numbers"
    if kind in "US":
        return "strings" if kind == "U" else "bytes"
    if kind == "O":
        kinds = {"numbers" if isinstance(v, numbers.Real) else "strings" if isinstance(v, str)
                 else type(v).__name__ for v in labels.tolist()}
        return kinds.pop() if len(kinds) == 1 else "mixed " + "/".join(sorted(kinds))
    return str(labels.dtype)


def matching_labels(predicted, y, name, classes_name="the model's classes"):
    """Boolean array: which entries of ``y`` equal ``predicted``, compared as values
    (``1 == 1.0``), as scikit-learn does; labels of kinds that cannot be compared
    (strings against numbers, say) raise ValueError instead of silently never matching.
    """
    y = np.asarray(y)
    if y.shape != predicted.shape:
        raise ValueError(f"{name} must hold one label per row of X ({predicted.shape[0]}), "
                         f"got shape {y.shape}")
    kinds = label_kind(predicted), label_kind(y)
    if kinds[0] != kinds[1] or kinds[0] not in ("numbers", "strings", "bytes"):
        raise ValueError(f"{name} holds {kinds[1]} but {classes_name} are {kinds[0]}; labels of "
                         f"different kinds cannot be compared: pass {name} with labels like the "
                         f"model's ({predicted[:3].tolist()}...)")
    if kinds[0] == "numbers":
        return np.asarray(predicted == y, dtype=bool)
    return np.asarray(predicted.astype(object) == y.astype(object), dtype=bool)


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

"""Data sets and file loaders for fastmlp.

* :func:`load_digits_split` -- scikit-learn's bundled 8x8 digits, scaled the
  seed's way (pixels onto ``[-1, 1]``) and split into training and test sets.
* :func:`load_idx` -- MNIST's IDX files (raw or gzip-compressed), scaled the same way.
* :func:`load_npz` -- ``X`` and ``y`` from a NumPy ``.npz`` archive (never unpickles).
* :func:`load_csv` -- a numeric CSV file with one sample per row and a label column.
* :func:`scale_pixels` -- map intensities ``0..max_value`` onto ``[-1, 1]``.
* :func:`iter_chunks` -- shuffled chunks of data larger than memory (a memmap, a
  Dask array, ``.npz`` files) for ``MLPClassifier.partial_fit``.

Every loader checks its file and raises ``FileNotFoundError`` for a missing file
and ``ValueError`` for a damaged or malformed one, with a message that names the
file, says what is wrong and how to fix it.
"""

import csv
import gzip
import math
import numbers
import os
import struct
import zlib

import numpy as np

from ._chunks import iter_chunks
from ._files import check_regular_file
from ._npz import NpzArchive
from ._validation import all_finite

__all__ = ["scale_pixels", "load_digits_split", "load_idx", "load_npz", "load_csv", "iter_chunks"]


def scale_pixels(images, max_value):
    """Map pixel intensities ``0..max_value`` linearly onto ``[-1, 1]`` (the seed's range).

    Parameters
    ----------
    images : array-like
        Pixel intensities in ``0..max_value``, any shape.
    max_value : float
        The intensity that maps to 1 (0 maps to -1).

    Returns
    -------
    ndarray of float64
        ``images * (2 / max_value) - 1``, same shape as ``images``.

    Raises
    ------
    ValueError
        When ``max_value`` is not a positive finite number.
    """
    if isinstance(max_value, bool) or not isinstance(max_value, numbers.Real):
        raise TypeError(f"max_value must be a positive number (the brightest intensity), got {max_value!r}")
    if not (math.isfinite(max_value) and max_value > 0):
        raise ValueError(f"max_value must be a positive finite number (the brightest intensity, "
                         f"e.g. 255), got {max_value}")
    return np.asarray(images, dtype=np.float64) * (2.0 / max_value) - 1.0


def load_digits_split(test_fraction=0.25, seed=0):
    """scikit-learn's bundled 8x8 digits (1,797 images), scaled to [-1, 1] and split.

    The split is fixed by ``seed``: a permutation from
    ``numpy.random.default_rng(seed)``; the first ``1 - test_fraction`` of it is
    the training set.

    Parameters
    ----------
    test_fraction : float, default 0.25
        Fraction of the images held out as the test set.
    seed : int, default 0
        Seed of the permutation that splits the images.

    Returns
    -------
    X_train, y_train, X_test, y_test : ndarrays
        X as float64 (n, 64) in [-1, 1]; y as int64 labels 0..9.
    """
    from sklearn.datasets import load_digits

    if (isinstance(test_fraction, bool) or not isinstance(test_fraction, numbers.Real)
            or not 0 < test_fraction < 1):
        raise ValueError(f"test_fraction must be a number strictly between 0 and 1, got {test_fraction!r}")
    X, y = load_digits(return_X_y=True)
    X = scale_pixels(X, 16)
    y = y.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(X))
    n_train = int(round(len(X) * (1 - test_fraction)))
    if not 0 < n_train < len(X):
        raise ValueError(f"test_fraction={test_fraction} of {len(X)} images leaves no "
                         f"{'training' if n_train == 0 else 'test'} images")
    train, test = order[:n_train], order[n_train:]
    return X[train], y[train], X[test], y[test]


def _fspath(path, name):
    """``path`` as a str or bytes file system path; TypeError naming ``name`` otherwise."""
    try:
        return os.fspath(path)
    except TypeError:
        raise TypeError(f"{name} must be a file path (str or os.PathLike), "
                        f"got {type(path).__name__}") from None


# ---------------------------------------------------------------------------- IDX

_GZIP_MAGIC = b"\x1f\x8b"
_IDX_TYPES = {0x08: "unsigned bytes", 0x09: "signed bytes", 0x0B: "int16", 0x0C: "int32",
              0x0D: "float32", 0x0E: "float64"}
_IDX_IMAGES = 0x00000803  # unsigned bytes, 3 dimensions: n, rows, cols
_IDX_LABELS = 0x00000801  # unsigned bytes, 1 dimension: n


def _describe_idx_magic(magic):
    """What a 4-byte IDX magic number says about the file, for error messages."""
    if magic == _IDX_IMAGES:
        return "an IDX image file (magic 0x00000803)"
    if magic == _IDX_LABELS:
        return "an IDX label file (magic 0x00000801)"
    kind, ndim = (magic >> 8) & 0xFF, magic & 0xFF
    if magic >> 16 == 0 and kind in _IDX_TYPES:
        return f"an IDX file of {_IDX_TYPES[kind]} with {ndim} dimension(s) (magic 0x{magic:08X})"
    return f"not an IDX file (its first 4 bytes are 0x{magic:08X})"


def _read_idx_bytes(path, name, n_dims):
    """The bytes of the IDX file ``path`` (decompressed when it starts with the gzip
    magic ``1f 8b``): ``(data, length, compressed)``.

    The file is read once. Of a gzip stream, only the header (4 + 4 * ``n_dims``
    bytes) and the data bytes it announces are kept; the rest is counted in
    ``length`` but not stored, so a small damaged file cannot fill the memory. A
    damaged gzip stream raises ValueError naming the file.
    """
    check_regular_file(path, f"{name} file")
    with open(path, "rb") as f:
        compressed = f.read(2) == _GZIP_MAGIC
        f.seek(0)
        if not compressed:
            data = f.read()
            return data, len(data), False
        header_size = 4 * (1 + n_dims)
        try:
            with gzip.GzipFile(fileobj=f, mode="rb") as stream:
                head = stream.read(header_size)
                keep = header_size
                if len(head) == header_size:
                    keep += math.prod(struct.unpack_from(">" + "I" * n_dims, head, 4))
                chunks, length = [head], len(head)
                while chunk := stream.read(_GZIP_CHUNK):
                    if length < keep:
                        chunks.append(chunk[:keep - length])
                    length += len(chunk)
        except (gzip.BadGzipFile, EOFError, zlib.error, OSError) as exc:
            raise ValueError(f"{name} file {path!r} is a damaged gzip file ({exc}); "
                             f"it is truncated or corrupt, download it again") from None
    return b"".join(chunks), length, True


_GZIP_CHUNK = 1 << 20


def _parse_idx(data, length, compressed, path, name, magic, dims_names):
    """The uint8 array (a view of ``data``) and dimensions of an IDX file of ``length``
    bytes (``data`` may hold only its first ones), fully checked."""
    where = " after decompression" if compressed else ""
    expected = _describe_idx_magic(magic)
    if length == 0:
        raise ValueError(f"{name} file {path!r} is empty{where}; expected {expected}")
    if length < 4:
        raise ValueError(f"{name} file {path!r} is too short ({length} bytes{where}) to hold an "
                         f"IDX magic number; expected {expected}")
    (found,) = struct.unpack_from(">I", data)
    if found != magic:
        hint = ""
        if {found, magic} == {_IDX_IMAGES, _IDX_LABELS}:
            hint = "; did you swap the images and labels arguments?"
        raise ValueError(f"{name} file {path!r} is {_describe_idx_magic(found)}, expected {expected}{hint}")
    header_size = 4 * (1 + len(dims_names))
    if length < header_size:
        raise ValueError(f"{name} file {path!r} is truncated: {length} bytes{where}, shorter than "
                         f"its {header_size}-byte header; download it again")
    dims = struct.unpack_from(">" + "I" * len(dims_names), data, 4)
    n_bytes = math.prod(dims)
    held = length - header_size
    shape = " x ".join(f"{d} {dim_name}" for d, dim_name in zip(dims, dims_names))
    if held < n_bytes:
        raise ValueError(f"{name} file {path!r} is truncated: its header announces {shape} = "
                         f"{n_bytes} data bytes but only {held} follow{where}; download it again")
    if held > n_bytes:
        raise ValueError(f"{name} file {path!r} has {held - n_bytes} unexpected trailing byte(s){where}: "
                         f"its header announces {shape} = {n_bytes} data bytes but {held} follow; "
                         f"the file is damaged or not an IDX file, download it again")
    return np.frombuffer(data, dtype=np.uint8, count=n_bytes, offset=header_size), dims


def load_idx(images, labels=None):
    """Read a pair of MNIST IDX files: images as features in ``[-1, 1]``, and their labels.

    The layout is that of http://yann.lecun.com/exdb/mnist/: big-endian int32
    magic ``0x00000803`` then the counts ``n, rows, cols`` and ``n * rows * cols``
    unsigned bytes for images; magic ``0x00000801``, ``n`` and ``n`` unsigned bytes
    for labels. Each file may be raw or gzip-compressed (recognised by its first
    two bytes ``1f 8b``, whatever its name) and is read once.

    Parameters
    ----------
    images : str or os.PathLike
        The image file, e.g. ``t10k-images-idx3-ubyte.gz``.
    labels : str or os.PathLike, optional
        The matching label file, e.g. ``t10k-labels-idx1-ubyte.gz``; without it
        only the images are read and ``y`` is None.

    Returns
    -------
    X : ndarray of float64, shape (n, rows * cols)
        One flattened image per row (row-major pixels), intensities ``0..255``
        mapped onto ``[-1, 1]`` with :func:`scale_pixels`.
    y : ndarray of int64, shape (n,), or None
        The label bytes, as stored (any value 0..255 is accepted).

    Raises
    ------
    FileNotFoundError
        When a file does not exist.
    ValueError
        When a file is empty, not an IDX file of the expected kind (e.g. images
        and labels swapped), shorter or longer than its header says, a damaged
        gzip stream, or not a regular file (a folder or FIFO); when the images
        file holds no images (or images of 0 pixels); or when the two files hold
        different numbers of samples.
    """
    images = _fspath(images, "images")
    pixels, (n_images, rows, cols) = _parse_idx(*_read_idx_bytes(images, "images", 3), images, "images",
                                                _IDX_IMAGES, ("images", "rows", "columns"))
    if n_images == 0 or rows * cols == 0:
        raise ValueError(f"images file {images!r} holds {n_images} images of {rows} x {cols} pixels; "
                         f"it needs at least one image of at least one pixel")
    X = scale_pixels(pixels.reshape(n_images, rows * cols), 255)
    if labels is None:
        return X, None
    labels = _fspath(labels, "labels")
    label_bytes, (n_labels,) = _parse_idx(*_read_idx_bytes(labels, "labels", 1), labels, "labels",
                                          _IDX_LABELS, ("labels",))
    if n_images != n_labels:
        raise ValueError(f"images file {images!r} holds {n_images} images but labels file {labels!r} "
                         f"holds {n_labels} labels; pass the label file that belongs to these images")
    return X, label_bytes.astype(np.int64)


# ---------------------------------------------------------------------------- NPZ

def load_npz(path, require_labels=True):
    """Read features ``X`` and labels ``y`` from a NumPy ``.npz`` archive.

    The archive is opened with ``allow_pickle=False``: object arrays are refused,
    so loading can never run code. Arrays other than ``X`` and ``y`` are ignored.

    Parameters
    ----------
    path : str or os.PathLike
        An archive written e.g. by ``numpy.savez(path, X=X, y=y)``.
    require_labels : bool, default True
        False: an archive without ``y`` is fine (for prediction), and ``y`` is None.

    Returns
    -------
    X : ndarray of float64, shape (n_samples, n_features)
        ``X`` as stored (no scaling), converted to float64.
    y : ndarray, shape (n_samples,), or None
        ``y`` as stored, in its own dtype (integers, or e.g. strings); None when the
        archive has no ``y`` and ``require_labels`` is False.

    Raises
    ------
    FileNotFoundError
        When the file does not exist.
    ValueError
        When the file is not an ``.npz`` archive or is damaged; when ``X`` or ``y``
        is missing or an object array; when ``X`` is not a non-empty 2-D array of
        real numbers, or holds NaN or infinity; when ``y`` is not 1-D with one
        label per row of ``X``. Names, shapes and dtypes are checked from the
        archive's headers before any array is read, so a small damaged file
        cannot demand a large allocation.
    """
    path = _fspath(path, "path")
    with NpzArchive(path, "npz file", "an .npz archive", "write one with numpy.savez(path, X=X, y=y)") as npz:
        wanted = ("X", "y") if require_labels or "y" in npz.names else ("X",)
        missing = [name for name in wanted if name not in npz.names]
        if missing:
            raise ValueError(f"npz file {path!r} has no array {' or '.join(map(repr, missing))} "
                             f"(it holds {sorted(npz.names)}); {npz.fix}")
        X = npz.read("X", _check_npz_X)
        y = (npz.read("y", lambda shape, dtype: _check_npz_y(shape, dtype, X.shape[0]))
             if "y" in wanted else None)
    X = np.ascontiguousarray(X, dtype=np.float64)
    if not all_finite(X):
        raise ValueError(f"npz file {path!r}: X contains NaN or infinity; remove or impute those "
                         f"values before saving")
    return X, y


def _check_npz_X(shape, dtype):
    """Why the header of an npz file's ``X`` is refused, or None (see :meth:`NpzArchive.read`)."""
    if len(shape) != 2:
        return f"X must be 2-D (n_samples, n_features), got shape {shape}; save X.reshape(len(X), -1) instead"
    if dtype.kind not in "biuf":
        return f"X must hold real numbers, got dtype {dtype}; save numpy.asarray(X, dtype=float) instead"
    if shape[0] == 0 or shape[1] == 0:
        return f"X must have at least one sample and one feature, got shape {shape}"
    return None


def _check_npz_y(shape, dtype, n_samples):
    """Why the header of an npz file's ``y`` is refused, or None."""
    if len(shape) != 1:
        return f"y must be 1-D (one label per sample), got shape {shape}"
    if shape[0] != n_samples:
        return f"y has {shape[0]} labels but X has {n_samples} samples; save one label per row of X"
    if dtype.kind == "V":
        return f"y has the structured dtype {dtype}; save a plain array of labels (numbers or strings)"
    return None


# ---------------------------------------------------------------------------- CSV

_CSV_BLOCK = 4096  # rows converted to float64 at a time


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _blank(row):
    return not row or (len(row) == 1 and not row[0].strip())


def _csv_features(rows, lines, feature_columns, path, first_line):
    """The feature cells of ``rows`` as a float64 array; ValueError at the first bad cell.

    ``first_line`` is the file's first row's line number: a bad cell there may
    mean an undetected header, and the message says so.
    """
    cells = np.array(rows, dtype=str)[:, feature_columns]
    try:
        values = cells.astype(np.float64)
    except ValueError:
        values = None
    if values is None or not np.isfinite(values).all():
        for r, row in enumerate(rows):
            for c in feature_columns:
                text = row[c]
                try:
                    ok = math.isfinite(float(text))
                except ValueError:
                    hint = (f"; if line {first_line} is a header, pass skip_header=True"
                            if lines[r] == first_line else "")
                    what = "is empty" if not text.strip() else "is not a number"
                    raise ValueError(f"CSV file {path!r}, line {lines[r]}, column {c + 1}: the feature "
                                     f"cell {text!r} {what}; every column other than the label must "
                                     f"hold numbers{hint}") from None
                if not ok:
                    raise ValueError(f"CSV file {path!r}, line {lines[r]}, column {c + 1}: the feature "
                                     f"{text!r} is not finite; remove or impute NaN and infinity")
    return values


def _csv_labels(labels):
    """int64 when every label is an integral number (in int64 range), else a str array."""
    ints = []
    for text in labels:
        try:
            value = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                return np.array(labels, dtype=str)
            if not (math.isfinite(number) and number.is_integer()):
                return np.array(labels, dtype=str)
            value = int(number)
        ints.append(value)
    if ints and not (-2**63 <= min(ints) and max(ints) < 2**63):
        return np.array(labels, dtype=str)
    return np.array(ints, dtype=np.int64)


def load_csv(path, label_column=0, skip_header=None, delimiter=None):
    """Read a numeric CSV (or TSV) file: one sample per row, its label in ``label_column``.

    Cells are separated by commas, or by tabs in a ``.tsv``/``.tab`` file (quoted
    cells are allowed, surrounding spaces are ignored); blank lines are skipped. Every row must have the same number of
    columns. In error messages, lines and columns count from 1.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file (UTF-8, with or without a byte-order mark).
    label_column : int, str or None, default 0
        Index of the label column; negative values count from the end
        (``-1`` is the last column); or its name in the file's header row (which
        is then skipped). All other columns are features. None: the file has no
        labels, every column is a feature, and ``y`` is None. A label column of
        numbers that are not integers is refused: it is most likely a feature.
    skip_header : bool or None, default None
        True: the first row is a header and is skipped; False: it is data.
        None: detect a header -- the first row is a header when none of its
        feature cells is a number, or when its label is not a number while every
        other row's label is. (A header whose feature names are numbers, e.g.
        ``label,0,1,2``, with non-numeric labels below it is not detected; pass
        ``skip_header=True``.)

    Returns
    -------
    X : ndarray of float64, shape (n_samples, n_columns - 1)
        The feature columns, in file order.
    y : ndarray, shape (n_samples,)
        int64 when every label is an integral number (``3``, ``3.0``), otherwise
        the labels as strings (a numpy ``str`` array, stripped of spaces).

    Raises
    ------
    FileNotFoundError
        When the file does not exist.
    ValueError
        When the file is empty or has no data rows, has fewer than two columns, a
        quoted cell that is never closed, is not a regular file (a folder, FIFO),
        rows of different lengths (naming the line), a feature cell that is not a
        finite number or an empty label (naming line and column), or is not
        UTF-8 text; when ``label_column`` is out of range.
    TypeError
        When ``label_column`` is not an integer, a str or None, ``skip_header`` not a
        bool or None, or ``delimiter`` not a one-character str or None.
    """
    path = _fspath(path, "path")
    if label_column is not None and not isinstance(label_column, str) and (
            isinstance(label_column, bool) or not isinstance(label_column, numbers.Integral)):
        raise TypeError(f"label_column must be an integer column index (e.g. 0 or -1), a column name "
                        f"from the header, or None, got {label_column!r}")
    if delimiter is None:
        delimiter = "\t" if str(path).lower().endswith((".tsv", ".tab")) else ","
    if not (isinstance(delimiter, str) and len(delimiter) == 1):
        raise TypeError(f"delimiter must be one character (e.g. ',' or '\\t') or None, got {delimiter!r}")
    if not (skip_header is None or isinstance(skip_header, (bool, np.bool_))):
        raise TypeError(f"skip_header must be True, False or None (detect), got {skip_header!r}")
    check_regular_file(path, "CSV file")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f, delimiter=delimiter, strict=True)
        if label_column is not None and not isinstance(label_column, str):
            label_column = int(label_column)
        try:
            return _read_csv(reader, path, label_column, skip_header)
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                raise ValueError(f"CSV file {path!r} ends inside a quoted cell (at line {reader.line_num}): "
                                 f"a quote (\") is never closed; close or remove it") from None
            raise ValueError(f"CSV file {path!r}, line {reader.line_num}: {exc}") from None
        except UnicodeDecodeError as exc:
            raise ValueError(f"CSV file {path!r} is not UTF-8 text ({exc}); "
                             f"save it as UTF-8 (or plain ASCII)") from None


def _read_csv(reader, path, label_column, skip_header):
    n_columns = None
    header_line = None
    maybe_header = False  # first row kept as data but its label is not a number
    blocks, labels = [], []
    rows, lines = [], []
    first_line = None
    for row in reader:
        if _blank(row):
            continue
        line = reader.line_num
        if n_columns is None:
            n_columns = len(row)
            if isinstance(label_column, str):  # a name from the header row
                names = [cell.strip() for cell in row]
                if label_column.strip() not in names:
                    raise ValueError(f"CSV file {path!r} has no column named {label_column!r} in its "
                                     f"header (line {line}: {', '.join(map(repr, names[:8]))}"
                                     f"{', ...' if len(names) > 8 else ''}); give a name from it or a "
                                     f"column index")
                label_column, skip_header = names.index(label_column.strip()), True
            if label_column is None:
                label_index = None
            elif n_columns < 2:
                raise ValueError(f"CSV file {path!r}, line {line}: has {n_columns} column; it needs a "
                                 f"label column and at least one feature column, separated by commas")
            elif not -n_columns <= label_column < n_columns:
                raise ValueError(f"label_column={label_column} is out of range for CSV file {path!r}, "
                                 f"which has {n_columns} columns; use 0..{n_columns - 1} "
                                 f"or -{n_columns}..-1")
            else:
                label_index = label_column % n_columns
            feature_columns = [c for c in range(n_columns) if c != label_index]
            first_line = line
            if skip_header is None:
                if not any(_is_number(row[c]) for c in feature_columns):
                    header_line = line
                    continue
                maybe_header = label_index is not None and not _is_number(row[label_index])
            elif skip_header:
                header_line = line
                continue
        elif len(row) != n_columns:
            raise ValueError(f"CSV file {path!r}, line {line}: has {len(row)} columns but the first "
                             f"row has {n_columns}; every row needs the same number of columns")
        if label_index is not None:
            label = row[label_index].strip()
            if not label:
                raise ValueError(f"CSV file {path!r}, line {line}, column {label_index + 1}: the label "
                                 f"cell is empty; give every row a label")
            labels.append(label)
        rows.append(row)
        lines.append(line)
        if len(rows) == _CSV_BLOCK:
            blocks.append(_csv_features(rows, lines, feature_columns, path, first_line))
            rows, lines = [], []
    if rows:
        blocks.append(_csv_features(rows, lines, feature_columns, path, first_line))

    if n_columns is None:
        raise ValueError(f"CSV file {path!r} is empty; it needs one row per sample "
                         f"(label and features separated by commas)")
    X = np.concatenate(blocks) if blocks else None
    if maybe_header and len(labels) > 1 and all(_is_number(label) for label in labels[1:]):
        X, labels = X[1:], labels[1:]  # the first row was a header with numeric feature names
    if X is None or len(X) == 0:
        raise ValueError(f"CSV file {path!r} has a header (line {header_line}) but no data rows")
    if label_index is None:
        return np.ascontiguousarray(X), None
    y = _csv_labels(labels)
    if y.dtype.kind == "U":
        fraction = next((label for label in labels if _is_number(label) and not float(label).is_integer()),
                        None)
        if fraction is not None and all(_is_number(label) for label in labels):
            raise ValueError(f"CSV file {path!r}: the label column (column {label_index + 1}) holds "
                             f"numbers that are not integers (e.g. {fraction!r}), so it looks like a "
                             f"feature; for a file without labels pass label_column=None, otherwise "
                             f"the label column's index or name")
    return np.ascontiguousarray(X), y

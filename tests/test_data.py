"""fastmlp.data: the IDX, NPZ and CSV loaders, on files written here and on real MNIST."""

import gzip
import os
import struct
import time

import numpy as np
import pytest

import fastmlp
from fastmlp.data import load_csv, load_idx, load_npz, scale_pixels
from _helpers import mnist_dir


def raises(exc_type, path, *fragments, call):
    """Run ``call()``; assert it raises ``exc_type`` whose message names ``path``'s
    basename and contains every fragment (case-insensitive)."""
    with pytest.raises(exc_type) as info:
        call()
    message = str(info.value)
    assert os.path.basename(str(path)) in message, message
    for fragment in fragments:
        assert fragment.lower() in message.lower(), (fragment, message)
    return message


# ---------------------------------------------------------------------------- IDX

def idx_images(pixels, magic=0x803, count=None):
    """The bytes of an IDX image file for a uint8 array of shape (n, rows, cols)."""
    n, rows, cols = pixels.shape
    return struct.pack(">IIII", magic, n if count is None else count, rows, cols) + pixels.astype(np.uint8).tobytes()


def idx_labels(labels, magic=0x801):
    return struct.pack(">II", magic, len(labels)) + bytes(bytearray(labels))


PIXELS = np.array([[[0, 51, 255], [1, 254, 128]],
                   [[255, 0, 51], [10, 20, 30]],
                   [[7, 7, 7], [0, 0, 255]]], dtype=np.uint8)  # 3 images of 2 x 3
LABELS = [7, 0, 200]  # any byte is a valid label


def write(path, data, gz=False):
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.fixture
def idx_pair(tmp_path):
    return (write(tmp_path / "img.idx", idx_images(PIXELS)), write(tmp_path / "lab.idx", idx_labels(LABELS)))


@pytest.mark.parametrize("gz_images, gz_labels", [(False, False), (True, True), (True, False), (False, True)])
def test_idx_values_raw_and_gzip(tmp_path, gz_images, gz_labels):
    images = write(tmp_path / "images.bin", idx_images(PIXELS), gz_images)
    labels = write(tmp_path / "labels.bin", idx_labels(LABELS), gz_labels)
    X, y = load_idx(images, labels)
    assert X.dtype == np.float64 and X.shape == (3, 6)
    assert y.dtype == np.int64 and y.tolist() == [7, 0, 200]
    # Independent expectation: v -> v / 127.5 - 1, rows are the images flattened row-major.
    np.testing.assert_allclose(X, PIXELS.reshape(3, 6) / 127.5 - 1.0, rtol=0, atol=1e-15)
    assert X[0, 0] == -1.0 and X[0, 2] == 1.0 and X[1, 0] == 1.0
    assert X[0, 1] == pytest.approx(-0.6, abs=1e-15) and X[1, 2] == pytest.approx(-0.6, abs=1e-15)
    assert X[0, 3:].tolist() == pytest.approx([1 / 127.5 - 1, 254 / 127.5 - 1, 128 / 127.5 - 1], abs=1e-15)


def test_idx_gzip_detected_by_content_not_name(tmp_path):
    # gzip data under a raw name, raw data under a .gz name
    images = write(tmp_path / "images-idx3-ubyte", idx_images(PIXELS), gz=True)
    labels = write(tmp_path / "labels-idx1-ubyte.gz", idx_labels(LABELS), gz=False)
    X, y = load_idx(str(images), str(labels))  # str paths too
    np.testing.assert_array_equal(X, scale_pixels(PIXELS.reshape(3, 6), 255))
    assert y.tolist() == LABELS


def test_idx_single_image_shape(tmp_path):
    pixels = np.arange(28 * 28, dtype=np.int64).reshape(1, 28, 28) % 256
    X, y = load_idx(write(tmp_path / "i", idx_images(pixels)), write(tmp_path / "l", idx_labels([3])))
    assert X.shape == (1, 784) and y.shape == (1,)
    np.testing.assert_allclose(X[0], pixels.ravel() / 127.5 - 1, rtol=0, atol=1e-15)


def test_idx_swapped_files(idx_pair):
    images, labels = idx_pair
    raises(ValueError, labels, "images file", "label file", "swap", call=lambda: load_idx(labels, images))


def test_idx_wrong_magic_labels(tmp_path, idx_pair):
    images, _ = idx_pair
    other = write(tmp_path / "other.idx", idx_images(PIXELS))  # an image file given as labels
    raises(ValueError, other, "labels file", "swap", call=lambda: load_idx(images, other))
    html = write(tmp_path / "download.html", b"<html>not found</html>")
    raises(ValueError, html, "labels file", "not an IDX file", call=lambda: load_idx(images, html))
    floats = write(tmp_path / "floats.idx", struct.pack(">IIII", 0x0D03, 1, 1, 1) + b"\0" * 4)
    raises(ValueError, floats, "images file", "float32", call=lambda: load_idx(floats, images))


def test_idx_count_mismatch(tmp_path, idx_pair):
    images, _ = idx_pair
    labels = write(tmp_path / "two-labels.idx", idx_labels([1, 2]))
    message = raises(ValueError, labels, "3 images", "2 labels", call=lambda: load_idx(images, labels))
    assert "img.idx" in message


@pytest.mark.parametrize("gz", [False, True])
def test_idx_short_read(tmp_path, idx_pair, gz):
    images, labels = idx_pair
    short = write(tmp_path / "short-images", idx_images(PIXELS)[:-1], gz)
    message = raises(ValueError, short, "truncated", "18 data bytes", "only 17",
                     call=lambda: load_idx(short, labels))
    assert ("after decompression" in message) == gz
    # more images announced than stored
    lying = write(tmp_path / "lying-images", idx_images(PIXELS, count=4), gz)
    raises(ValueError, lying, "truncated", "4 images", call=lambda: load_idx(lying, labels))
    short_labels = write(tmp_path / "short-labels", idx_labels(LABELS)[:-2], gz)
    raises(ValueError, short_labels, "labels file", "truncated", call=lambda: load_idx(images, short_labels))


def test_idx_short_header(tmp_path, idx_pair):
    images, labels = idx_pair
    stub = write(tmp_path / "stub", idx_images(PIXELS)[:10])
    raises(ValueError, stub, "truncated", "header", call=lambda: load_idx(stub, labels))
    tiny = write(tmp_path / "tiny", b"\0\0")
    raises(ValueError, tiny, "too short", call=lambda: load_idx(images, tiny))


@pytest.mark.parametrize("gz", [False, True])
def test_idx_trailing_bytes(tmp_path, idx_pair, gz):
    images, labels = idx_pair
    long_images = write(tmp_path / "long-images", idx_images(PIXELS) + b"\x00\x01", gz)
    raises(ValueError, long_images, "2 unexpected trailing byte", call=lambda: load_idx(long_images, labels))
    long_labels = write(tmp_path / "long-labels", idx_labels(LABELS) + b"x", gz)
    raises(ValueError, long_labels, "labels file", "trailing", call=lambda: load_idx(images, long_labels))


def test_idx_damaged_gzip(tmp_path, idx_pair):
    images, labels = idx_pair
    data = gzip.compress(idx_images(PIXELS))
    for name, damaged in [("cut-end.gz", data[:-6]),          # the CRC/size trailer cut off
                          ("cut-middle.gz", data[:len(data) // 2]),
                          ("header-only.gz", data[:10]),
                          ("magic-only.gz", data[:2])]:
        path = write(tmp_path / name, damaged)
        raises(ValueError, path, "damaged gzip", call=lambda: load_idx(path, labels))
    corrupt = bytearray(data)
    corrupt[-8] ^= 0xFF  # CRC mismatch
    path = write(tmp_path / "bad-crc.gz", bytes(corrupt))
    raises(ValueError, path, "damaged gzip", call=lambda: load_idx(path, labels))
    corrupt = bytearray(data)
    corrupt[12:20] = b"\xff" * 8  # garbage in the deflate stream
    path = write(tmp_path / "bad-stream.gz", bytes(corrupt))
    raises(ValueError, path, "images file", call=lambda: load_idx(path, labels))
    label_data = gzip.compress(idx_labels(LABELS))
    path = write(tmp_path / "labels-cut.gz", label_data[:-3])
    raises(ValueError, path, "labels file", "damaged gzip", call=lambda: load_idx(images, path))


def test_idx_empty_file(tmp_path, idx_pair):
    images, labels = idx_pair
    empty = write(tmp_path / "empty-images", b"")
    raises(ValueError, empty, "images file", "empty", call=lambda: load_idx(empty, labels))
    empty_labels = write(tmp_path / "empty-labels", b"")
    raises(ValueError, empty_labels, "labels file", "empty", call=lambda: load_idx(images, empty_labels))
    empty_gz = write(tmp_path / "empty.gz", b"", gz=True)  # a valid gzip of nothing
    raises(ValueError, empty_gz, "empty", "after decompression", call=lambda: load_idx(empty_gz, labels))


def test_idx_missing_file(tmp_path, idx_pair):
    images, labels = idx_pair
    missing = tmp_path / "no-such-images.gz"
    raises(FileNotFoundError, missing, "does not exist", call=lambda: load_idx(missing, labels))
    missing = tmp_path / "no-such-labels.gz"
    raises(FileNotFoundError, missing, "labels file", call=lambda: load_idx(images, missing))
    with pytest.raises(TypeError, match="images must be a file path"):
        load_idx(123, labels)


# ---------------------------------------------------------------------------- real MNIST

@pytest.fixture(scope="module")
def mnist():
    folder = mnist_dir()
    images, labels = folder / "t10k-images-idx3-ubyte.gz", folder / "t10k-labels-idx1-ubyte.gz"
    X, y = load_idx(images, labels)
    return X, y, images, labels


def test_mnist_test_set(mnist):
    X, y, images, labels = mnist
    assert X.shape == (10_000, 784) and X.dtype == np.float64
    assert y.shape == (10_000,) and y.dtype == np.int64
    assert X.min() == -1.0 and X.max() == 1.0
    assert np.array_equal(np.unique(y), np.arange(10))
    assert y[0] == 7  # the well-known first test label

    # Independent reading of the raw bytes with gzip + struct
    raw_labels = gzip.open(labels).read()
    assert struct.unpack(">II", raw_labels[:8]) == (0x801, 10_000)
    expected_counts = np.bincount(np.frombuffer(raw_labels[8:], dtype=np.uint8), minlength=10)
    np.testing.assert_array_equal(np.bincount(y, minlength=10), expected_counts)
    np.testing.assert_array_equal(expected_counts, [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])

    raw_images = gzip.open(images).read()
    assert struct.unpack(">IIII", raw_images[:16]) == (0x803, 10_000, 28, 28)
    first = np.frombuffer(raw_images, dtype=np.uint8, count=784, offset=16)
    np.testing.assert_allclose(X[0], first / 127.5 - 1.0, rtol=0, atol=1e-15)


@pytest.mark.slow
def test_mnist_seed_hyperparameters(mnist):
    X, y, _, _ = mnist
    order = np.random.default_rng(0).permutation(len(X))
    train, held_out = order[:2580], order[2580:5160]
    start = time.perf_counter()
    model = fastmlp.fit(X[train], y[train], hidden=128, epochs=200, batch_size=30, lr=1e-4, reg=1e-2, seed=0)
    elapsed = time.perf_counter() - start
    accuracy = model.score(X[held_out], y[held_out])
    print(f"MNIST held-out accuracy {accuracy:.4f} (2,580 train / 2,580 held out), fit {elapsed:.1f} s")
    assert accuracy > 0.89  # measured 0.9140


# ---------------------------------------------------------------------------- NPZ

def test_npz_round_trip(tmp_path, rng):
    X = rng.standard_normal((5, 3))
    y = np.array([0, 2, 1, 1, 0])
    path = tmp_path / "data.npz"
    np.savez(path, X=X, y=y, notes=np.array("extra arrays are ignored"))
    X2, y2 = load_npz(path)
    assert X2.dtype == np.float64 and X2.shape == (5, 3)
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(y2, y)
    assert y2.dtype == y.dtype

    # integer X becomes float64 unscaled; string labels stay strings; compressed archives work
    path = tmp_path / "strings.npz"
    np.savez_compressed(path, X=np.array([[0, 255], [3, 4]], dtype=np.uint8), y=np.array(["cat", "dog"]))
    X2, y2 = load_npz(str(path))
    assert X2.dtype == np.float64 and X2.tolist() == [[0.0, 255.0], [3.0, 4.0]]
    assert y2.dtype.kind == "U" and y2.tolist() == ["cat", "dog"]


def test_npz_object_arrays_refused(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, X=np.array([{"a": 1}], dtype=object), y=np.array([0]))
    raises(ValueError, path, "'X'", "object array", call=lambda: load_npz(path))
    path = tmp_path / "object-labels.npz"
    np.savez(path, X=np.zeros((2, 2)), y=np.array(["a", None], dtype=object))
    raises(ValueError, path, "'y'", "object array", call=lambda: load_npz(path))


def test_npz_missing_arrays(tmp_path):
    path = tmp_path / "no-y.npz"
    np.savez(path, X=np.zeros((2, 2)), labels=np.zeros(2))
    raises(ValueError, path, "'y'", "labels", "numpy.savez", call=lambda: load_npz(path))
    # for prediction, labels may be absent (and are still checked when present)
    X, y = load_npz(path, require_labels=False)
    assert X.shape == (2, 2) and y is None
    np.savez(path, X=np.zeros((2, 2)), y=np.zeros(3))
    raises(ValueError, path, "3 labels", call=lambda: load_npz(path, require_labels=False))
    path = tmp_path / "unnamed.npz"
    np.savez(path, np.zeros((2, 2)), np.zeros(2))
    raises(ValueError, path, "'X' or 'y'", call=lambda: load_npz(path))
    raises(ValueError, path, "'X'", call=lambda: load_npz(path, require_labels=False))


def test_npz_bad_shapes_and_values(tmp_path):
    cases = {
        "x-1d.npz": (dict(X=np.zeros(4), y=np.zeros(4)), ["X must be 2-D", "(4,)"]),
        "x-3d.npz": (dict(X=np.zeros((2, 2, 2)), y=np.zeros(2)), ["X must be 2-D"]),
        "x-empty.npz": (dict(X=np.zeros((0, 3)), y=np.zeros(0)), ["at least one sample"]),
        "x-strings.npz": (dict(X=np.array([["1", "2"]]), y=np.zeros(1)), ["real numbers"]),
        "x-complex.npz": (dict(X=np.ones((1, 2), dtype=complex), y=np.zeros(1)), ["real numbers"]),
        "mismatch.npz": (dict(X=np.zeros((3, 2)), y=np.zeros(2)), ["2 labels", "3 samples"]),
        "y-2d.npz": (dict(X=np.zeros((3, 2)), y=np.zeros((3, 1))), ["y must be 1-D"]),
        "nan.npz": (dict(X=np.array([[0.0, np.nan]]), y=np.zeros(1)), ["NaN or infinity"]),
        "inf.npz": (dict(X=np.array([[np.inf, 0.0]], dtype=np.float32), y=np.zeros(1)), ["NaN or infinity"]),
    }
    for name, (arrays, fragments) in cases.items():
        path = tmp_path / name
        np.savez(path, **arrays)
        raises(ValueError, path, *fragments, call=lambda: load_npz(path))


def test_npz_not_an_archive(tmp_path):
    text = write(tmp_path / "data.npz", b"X,y\n1,2\n")
    raises(ValueError, text, "not an .npz archive", call=lambda: load_npz(text))
    empty = write(tmp_path / "empty.npz", b"")
    raises(ValueError, empty, "empty", call=lambda: load_npz(empty))
    npy = tmp_path / "single.npy"
    np.save(npy, np.zeros((2, 2)))
    raises(ValueError, npy, ".npy", "not an .npz archive", call=lambda: load_npz(npy))
    good = tmp_path / "good.npz"
    np.savez(good, X=np.zeros((2, 2)), y=np.zeros(2))
    cut = write(tmp_path / "cut.npz", good.read_bytes()[:-30])
    with pytest.raises(ValueError, match="cut.npz"):
        load_npz(cut)


def test_npz_missing_file(tmp_path):
    missing = tmp_path / "absent.npz"
    raises(FileNotFoundError, missing, "does not exist", call=lambda: load_npz(missing))


# ---------------------------------------------------------------------------- CSV

def csv_file(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_without_header(tmp_path):
    X, y = load_csv(csv_file(tmp_path, "1,0.5,2\n0,-1,3e2\n2, 4 ,5\n"))
    assert X.dtype == np.float64 and X.tolist() == [[0.5, 2.0], [-1.0, 300.0], [4.0, 5.0]]
    assert y.dtype == np.int64 and y.tolist() == [1, 0, 2]


def test_csv_with_header_detected_and_forced(tmp_path):
    path = csv_file(tmp_path, "label,a,b\n1,0.5,2\n0,-1,3\n")
    for skip in (None, True):
        X, y = load_csv(path, skip_header=skip)
        assert X.tolist() == [[0.5, 2.0], [-1.0, 3.0]] and y.tolist() == [1, 0]
    raises(ValueError, path, "line 1, column 2", "'a'", "not a number", "skip_header=True",
           call=lambda: load_csv(path, skip_header=False))
    # numeric feature names: detected because the label 'label' is not a number but the others are
    path = csv_file(tmp_path, "label,0,1\n3,5,6\n4,7,8\n", "numbered.csv")
    X, y = load_csv(path)
    assert X.tolist() == [[5.0, 6.0], [7.0, 8.0]] and y.tolist() == [3, 4]
    # a numeric first row is data unless told otherwise
    path = csv_file(tmp_path, "9,1,2\n3,5,6\n", "numeric.csv")
    assert load_csv(path)[1].tolist() == [9, 3]
    assert load_csv(path, skip_header=True)[1].tolist() == [3]


def test_csv_label_column_last(tmp_path):
    path = csv_file(tmp_path, "f1,f2,target\n0.5,2,1\n-1,3,0\n")
    X, y = load_csv(path, label_column=-1)
    assert X.tolist() == [[0.5, 2.0], [-1.0, 3.0]] and y.tolist() == [1, 0]
    X, y = load_csv(path, label_column=2)
    assert X.tolist() == [[0.5, 2.0], [-1.0, 3.0]] and y.tolist() == [1, 0]
    X, y = load_csv(path, label_column=1, skip_header=True)  # middle column
    assert X.tolist() == [[0.5, 1.0], [-1.0, 0.0]] and y.tolist() == [2, 3]


def test_csv_labels_int_or_str(tmp_path):
    X, y = load_csv(csv_file(tmp_path, "cat,1,2\ndog,3,4\n cat ,5,6\n"))
    assert y.dtype.kind == "U" and y.tolist() == ["cat", "dog", "cat"]
    assert X.tolist() == [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]
    _, y = load_csv(csv_file(tmp_path, "3.0,1\n-2,1\n1e1,1\n", "integral.csv"))
    assert y.dtype == np.int64 and y.tolist() == [3, -2, 10]
    # a label column of fractions is a feature column: a file without labels, read as if it had some
    path = csv_file(tmp_path, "1.5,1\n2,1\n", "fractional.csv")
    raises(ValueError, path, "column 1", "not integers", "'1.5'", "label_column=None",
           call=lambda: load_csv(path))
    _, y = load_csv(csv_file(tmp_path, '"a,b",1\n"c",2\n', "quoted.csv"))
    assert y.tolist() == ["a,b", "c"]


def test_csv_blank_lines_and_bom(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufefflabel,x\n\n1,2\n\n0,3\n\n".encode("utf-8"))
    X, y = load_csv(path)
    assert X.tolist() == [[2.0], [3.0]] and y.tolist() == [1, 0]


def test_csv_ragged_row(tmp_path):
    path = csv_file(tmp_path, "1,2,3\n\n4,5,6\n7,8\n")  # the short row is on line 4
    raises(ValueError, path, "line 4", "2 columns", "3", call=lambda: load_csv(path))
    path = csv_file(tmp_path, "label,a,b\n1,2,3,4\n", "long-row.csv")
    raises(ValueError, path, "line 2", "4 columns", call=lambda: load_csv(path))


def test_csv_bad_cells(tmp_path):
    path = csv_file(tmp_path, "1,2,3\n4,x5,6\n")
    message = raises(ValueError, path, "line 2, column 2", "'x5'", "not a number", call=lambda: load_csv(path))
    assert "skip_header" not in message
    path = csv_file(tmp_path, "1,2,3\n4,5,\n", "empty-cell.csv")
    raises(ValueError, path, "line 2, column 3", "empty", call=lambda: load_csv(path))
    path = csv_file(tmp_path, "1,2,3\n4,nan,6\n", "nan.csv")
    raises(ValueError, path, "line 2, column 2", "not finite", call=lambda: load_csv(path))
    path = csv_file(tmp_path, "1,2,3\n,5,6\n", "no-label.csv")
    raises(ValueError, path, "line 2, column 1", "label", "empty", call=lambda: load_csv(path))


def test_csv_bad_cell_in_later_block(tmp_path):
    rows = [f"{i % 3},{i},{i * 2}" for i in range(5000)]
    rows[4500] = "1,2,oops"
    path = csv_file(tmp_path, "\n".join(rows) + "\n", "big.csv")
    raises(ValueError, path, "line 4501, column 3", "'oops'", call=lambda: load_csv(path))
    rows[4500] = "1,2,3"
    X, y = load_csv(csv_file(tmp_path, "\n".join(rows) + "\n", "big-ok.csv"))
    assert X.shape == (5000, 2) and X[4999].tolist() == [4999.0, 9998.0] and y[:4].tolist() == [0, 1, 2, 0]


def test_csv_empty(tmp_path):
    for name, text in [("empty.csv", ""), ("blank.csv", "\n  \n\n")]:
        path = csv_file(tmp_path, text, name)
        raises(ValueError, path, "is empty", call=lambda: load_csv(path))
    path = csv_file(tmp_path, "label,a,b\n", "header-only.csv")
    raises(ValueError, path, "header", "no data rows", call=lambda: load_csv(path))
    path = csv_file(tmp_path, "1\n2\n", "one-column.csv")
    raises(ValueError, path, "line 1", "1 column", "feature", call=lambda: load_csv(path))


def test_csv_label_column_out_of_range(tmp_path):
    path = csv_file(tmp_path, "1,2,3\n")
    for column in (3, -4, 10):
        raises(ValueError, path, f"label_column={column}", "3 columns", "0..2", "-3..-1",
               call=lambda: load_csv(path, label_column=column))
    raises(ValueError, path, "no column named '0'", "'1', '2', '3'", call=lambda: load_csv(path, label_column="0"))
    with pytest.raises(TypeError, match="label_column"):
        load_csv(path, label_column=True)
    with pytest.raises(TypeError, match="label_column"):
        load_csv(path, label_column=1.0)
    with pytest.raises(TypeError, match="delimiter"):
        load_csv(path, delimiter=";;")
    with pytest.raises(TypeError, match="skip_header"):
        load_csv(path, skip_header="yes")


def test_csv_not_utf8(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("é,1\n".encode("latin-1"))
    raises(ValueError, path, "UTF-8", call=lambda: load_csv(path))


def test_csv_missing_file(tmp_path):
    missing = tmp_path / "absent.csv"
    raises(FileNotFoundError, missing, "does not exist", call=lambda: load_csv(missing))


def test_loaders_agree(tmp_path):
    """The same data through IDX, NPZ and CSV gives the same X (up to scaling) and y."""
    X, y = load_idx(write(tmp_path / "i", idx_images(PIXELS)), write(tmp_path / "l", idx_labels(LABELS)))
    np.savez(tmp_path / "d.npz", X=X, y=y)
    X2, y2 = load_npz(tmp_path / "d.npz")
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(y2, y)
    lines = [",".join([str(label)] + [str(v) for v in img.ravel()]) for img, label in zip(PIXELS, LABELS)]
    X3, y3 = load_csv(csv_file(tmp_path, "\n".join(lines)))
    np.testing.assert_array_equal(scale_pixels(X3, 255), X)
    np.testing.assert_array_equal(y3, y)


def test_digits_split_still_works():
    X_train, y_train, X_test, y_test = fastmlp.data.load_digits_split(seed=0)
    assert X_train.shape == (1348, 64) and X_test.shape == (449, 64)
    assert X_train.min() == -1.0 and X_train.max() == 1.0 and y_train.dtype == np.int64


def test_csv_without_labels(tmp_path):
    path = tmp_path / "features.csv"
    path.write_text("a,b,c\n1,2,3\n4,5,6.5\n")
    X, y = load_csv(path, label_column=None)
    assert y is None
    np.testing.assert_array_equal(X, [[1, 2, 3], [4, 5, 6.5]])
    path.write_text("1\n2\n")
    X, y = load_csv(path, label_column=None)
    assert X.shape == (2, 1) and y is None
    with pytest.raises(ValueError, match="no column named 'first'"):
        load_csv(path, label_column="first")


def test_csv_label_column_by_header_name_and_tsv(tmp_path):
    path = csv_file(tmp_path, "width, species ,height\n1,cat,2\n3,dog,4\n")
    X, y = load_csv(path, label_column="species")
    assert X.tolist() == [[1.0, 2.0], [3.0, 4.0]] and y.tolist() == ["cat", "dog"]
    tsv = tmp_path / "data.tsv"
    tsv.write_text("species\twidth\theight\ncat\t1\t2\ndog\t3.5\t4\n")
    X, y = load_csv(tsv)
    assert X.tolist() == [[1.0, 2.0], [3.5, 4.0]] and y.tolist() == ["cat", "dog"]
    semicolons = csv_file(tmp_path, "0;1;2\n1;3;4\n", "semi.txt")
    X, y = load_csv(semicolons, delimiter=";")
    assert X.tolist() == [[1.0, 2.0], [3.0, 4.0]] and y.tolist() == [0, 1]


def test_idx_images_alone(tmp_path):
    images = tmp_path / "images.idx"
    images.write_bytes(struct.pack(">IIII", 0x803, 2, 1, 2) + bytes([0, 255, 51, 0]))
    X, y = load_idx(images)
    assert y is None
    np.testing.assert_allclose(X, [[-1.0, 1.0], [-0.6, -1.0]])

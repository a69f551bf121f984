"""Each Python twin in ``fastmlp.kernels`` against an independent NumPy computation."""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.special import log_softmax

from fastmlp import kernels

DTYPES = [np.float32, np.float64]
# (rows, columns): batch 1, hidden/one column 1, two classes, odd sizes, a realistic size.
SHAPES = [(1, 5), (6, 1), (9, 2), (7, 13), (30, 128)]

dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
shapes = pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))


def _scale(a):
    return max(1.0, float(np.max(np.abs(a)))) if np.size(a) else 1.0


# ----------------------------------------------------------------------------- bias_relu

@dtypes
@shapes
def test_bias_relu(dtype, shape, rng, tol):
    Z = rng.standard_normal(shape).astype(dtype)
    b = rng.standard_normal(shape[1]).astype(dtype)
    expected = np.maximum(Z.astype(np.float64) + b.astype(np.float64), 0.0)
    out = kernels.bias_relu(Z, b)
    assert out is Z
    assert Z.dtype == dtype
    assert_allclose(Z, expected, **tol(dtype, _scale(expected)))
    # negative sums are clamped to exactly 0, never left slightly negative
    assert np.all(Z >= 0)
    assert np.array_equal(Z == 0, expected == 0)


@dtypes
def test_bias_relu_keeps_nan(dtype):
    Z = np.array([[np.nan, -1.0, 2.0]], dtype=dtype)
    b = np.zeros(3, dtype=dtype)
    kernels.bias_relu(Z, b)
    assert np.isnan(Z[0, 0])
    assert Z[0, 1] == 0 and Z[0, 2] == 2


# ------------------------------------------------------------------------- relu_backward

@dtypes
@shapes
def test_relu_backward(dtype, shape, rng, tol):
    R = np.maximum(rng.standard_normal(shape), 0).astype(dtype)
    dR = rng.standard_normal(shape).astype(dtype)
    expected = np.where(R > 0, dR, 0).astype(np.float64)
    out = kernels.relu_backward(dR, R)
    assert out is dR
    # masking is exact: kept entries unchanged, masked ones exactly zero
    assert np.array_equal(dR, expected.astype(dtype))
    assert_allclose(dR, expected, **tol(dtype, _scale(expected)))


# --------------------------------------------------------------------- softmax_xent_grad

def _xent_expected(Z, y):
    """Loss and gradient in float64 with SciPy's log_softmax."""
    Z64 = np.asarray(Z, dtype=np.float64)
    logp = log_softmax(Z64, axis=1)
    loss = -float(np.sum(logp[np.arange(len(y)), y]))
    grad = np.exp(logp)
    grad[np.arange(len(y)), y] -= 1.0
    return loss, grad


@dtypes
@shapes
def test_softmax_xent_grad(dtype, shape, rng, tol):
    Z = (3 * rng.standard_normal(shape)).astype(dtype)
    y = rng.integers(0, shape[1], size=shape[0])
    exp_loss, exp_grad = _xent_expected(Z, y)
    loss = kernels.softmax_xent_grad(Z, y)
    assert isinstance(loss, float)
    assert Z.dtype == dtype
    assert_allclose(loss, exp_loss, **tol(dtype, max(1.0, abs(exp_loss))))
    assert_allclose(Z, exp_grad, **tol(dtype))
    # each gradient row of softmax - onehot sums to 0
    assert_allclose(Z.astype(np.float64).sum(axis=1), 0.0, atol=10 * tol(dtype)["rtol"] * shape[1])


@pytest.mark.parametrize("dtype, big", [(np.float64, 1e4), (np.float32, 80.0)], ids=["f64", "f32"])
def test_softmax_xent_grad_extreme_logits(dtype, big, tol):
    Z = np.array([[big, -big, 0.0],
                  [-big, -big, -big],
                  [big, big, -big],
                  [0.0, -big, big]], dtype=dtype)
    y = np.array([1, 2, 0, 2])
    exp_loss, exp_grad = _xent_expected(Z, y)
    # worked values: row 0 loses 2*big, row 1 log 3, row 2 log 2, row 3 ~0
    assert_allclose(exp_loss, 2 * big + np.log(3) + np.log(2), rtol=1e-12)
    loss = kernels.softmax_xent_grad(Z, y)
    assert np.isfinite(loss)
    assert np.all(np.isfinite(Z))
    assert_allclose(loss, exp_loss, **tol(dtype, exp_loss))
    assert_allclose(Z, exp_grad, **tol(dtype))


@pytest.mark.parametrize("dtype, big", [(np.float64, 1e4), (np.float32, 80.0)], ids=["f64", "f32"])
def test_softmax_xent_grad_single_extreme_row(dtype, big):
    Z = np.array([[big, -big, 0.0]], dtype=dtype)
    loss = kernels.softmax_xent_grad(Z, np.array([1]))
    assert loss == pytest.approx(2 * big, rel=1e-6)
    assert_allclose(Z, [[1.0, -1.0, 0.0]], atol=1e-6)


@dtypes
def test_softmax_xent_grad_random_extreme(dtype, rng, tol):
    big = 1e4 if dtype == np.float64 else 80.0
    Z = rng.uniform(-big, big, size=(20, 7)).astype(dtype)
    y = rng.integers(0, 7, size=20)
    exp_loss, exp_grad = _xent_expected(Z, y)
    loss = kernels.softmax_xent_grad(Z, y)
    assert np.isfinite(loss) and np.all(np.isfinite(Z))
    assert_allclose(loss, exp_loss, **tol(dtype, exp_loss))
    assert_allclose(Z, exp_grad, **tol(dtype))


@pytest.mark.parametrize("bad", [[0, 3], [-1, 0], [0, 100]])
def test_softmax_xent_grad_refuses_labels_out_of_range(bad):
    Z = np.zeros((2, 3))
    before = Z.copy()
    with pytest.raises(ValueError, match="y"):
        kernels.softmax_xent_grad(Z, np.array(bad))
    assert np.array_equal(Z, before)


def test_softmax_xent_grad_accepts_other_integer_labels(tol):
    for y in ([2, 0], np.array([2, 0], dtype=np.int32), np.array([9, 2, 9, 0], dtype=np.int64)[1::2]):
        Z = np.array([[1.0, 2.0, 3.0], [0.5, -0.5, 0.0]])
        exp_loss, exp_grad = _xent_expected(Z, np.asarray(y))
        assert_allclose(kernels.softmax_xent_grad(Z, y), exp_loss, **tol(np.float64, exp_loss))
        assert_allclose(Z, exp_grad, **tol(np.float64))


def test_softmax_xent_grad_refuses_bad_labels():
    Z = np.zeros((2, 3))
    with pytest.raises(TypeError):
        kernels.softmax_xent_grad(Z, np.array([0.0, 1.0]))
    with pytest.raises(ValueError):
        kernels.softmax_xent_grad(Z, np.array([0, 1, 2]))  # one label too many


# ------------------------------------------------------------------------- l2_sgd_update

@dtypes
@pytest.mark.parametrize("shape", SHAPES + [(7,), (1,)], ids=lambda s: "x".join(map(str, s)))
def test_l2_sgd_update(dtype, shape, rng, tol):
    W = rng.standard_normal(shape).astype(dtype)
    G = rng.standard_normal(shape).astype(dtype)
    lr, reg = 0.03, 0.7
    W64, G64 = W.astype(np.float64), G.astype(np.float64)
    expected = W64 - lr * (G64 + 2 * reg * W64)
    G_before = G.copy()
    out = kernels.l2_sgd_update(W, G, lr, reg)
    assert out is W
    assert W.shape == shape and W.dtype == dtype
    assert_allclose(W, expected, **tol(dtype, _scale(expected)))
    assert np.array_equal(G, G_before)


# ------------------------------------------------------------------------- count_correct

@dtypes
@shapes
def test_count_correct(dtype, shape, rng):
    # small integers: plenty of ties, where the first maximum must win (as np.argmax)
    Z = rng.integers(-2, 3, size=shape).astype(dtype)
    y = rng.integers(0, shape[1], size=shape[0])
    y[: shape[0] // 2] = np.argmax(Z[: shape[0] // 2], axis=1)  # make some rows correct
    expected = int(np.count_nonzero(np.argmax(Z, axis=1) == y))
    Z_before = Z.copy()
    assert kernels.count_correct(Z, y) == expected
    assert np.array_equal(Z, Z_before)


def test_count_correct_ties_first_wins():
    Z = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0], [5.0, 5.0, 5.0]])
    assert kernels.count_correct(Z, np.array([0, 1, 0])) == 3
    assert kernels.count_correct(Z, np.array([1, 2, 2])) == 0


# --------------------------------------------------------------------------- column_sums

@dtypes
@shapes
def test_column_sums(dtype, shape, rng, tol):
    G = rng.standard_normal(shape).astype(dtype)
    out = np.full(shape[1], 123.0, dtype=dtype)  # stale contents must be overwritten
    expected = G.astype(np.float64).sum(axis=0)
    res = kernels.column_sums(G, out)
    assert res is out
    assert_allclose(out, expected, **tol(dtype, _scale(np.abs(G).sum(axis=0))))


# ---------------------------------------------------------------------------------- gemm

GEMM_SIZES = [(1, 1, 1), (7, 13, 5), (2, 9, 1), (30, 128, 17)]  # (m, n, k)


@dtypes
@pytest.mark.parametrize("mnk", GEMM_SIZES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("trans_a", [False, True], ids=["N", "T"])
@pytest.mark.parametrize("trans_b", [False, True], ids=["N", "T"])
def test_gemm(dtype, mnk, trans_a, trans_b, rng, tol):
    m, n, k = mnk
    A = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    B = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    C = rng.standard_normal((m, n)).astype(dtype)
    alpha, beta = 0.7, -1.3
    opA = (A.T if trans_a else A).astype(np.float64)
    opB = (B.T if trans_b else B).astype(np.float64)
    expected = alpha * opA @ opB + beta * C.astype(np.float64)
    scale = np.max(abs(alpha) * np.abs(opA) @ np.abs(opB) + abs(beta) * np.abs(C))
    A_before, B_before = A.copy(), B.copy()
    out = kernels.gemm(alpha, A, B, beta, C, trans_a=trans_a, trans_b=trans_b)
    assert out is C
    assert_allclose(C, expected, **tol(dtype, scale))
    assert np.array_equal(A, A_before) and np.array_equal(B, B_before)


@dtypes
def test_gemm_beta_zero_ignores_c(dtype, rng, tol):
    A = rng.standard_normal((4, 3)).astype(dtype)
    B = rng.standard_normal((3, 5)).astype(dtype)
    C = np.full((4, 5), 7.0, dtype=dtype)
    kernels.gemm(1.0, A, B, 0.0, C)
    expected = A.astype(np.float64) @ B.astype(np.float64)
    assert_allclose(C, expected, **tol(dtype, 10))


def test_gemm_refuses_bad_shapes():
    A, B = np.ones((3, 4)), np.ones((4, 5))
    with pytest.raises(ValueError):
        kernels.gemm(1.0, A, B, 0.0, np.zeros((3, 4)))
    with pytest.raises(ValueError):
        kernels.gemm(1.0, A, B, 0.0, np.zeros((3, 5)), trans_a=True)


# --------------------------------------------------- refusal of bad output / input arrays

def _calls(out_factory):
    """For each twin: a function calling it with the changed array produced by
    ``out_factory(shape, dtype)`` and every other argument valid float64."""
    f = out_factory
    return {
        "bias_relu": lambda: kernels.bias_relu(f((3, 4)), np.zeros(4)),
        "relu_backward": lambda: kernels.relu_backward(f((3, 4)), np.ones((3, 4))),
        "softmax_xent_grad": lambda: kernels.softmax_xent_grad(f((3, 4)), np.array([0, 1, 2])),
        "l2_sgd_update": lambda: kernels.l2_sgd_update(f((3, 4)), np.ones((3, 4)), 0.1, 0.1),
        "column_sums": lambda: kernels.column_sums(np.ones((3, 4)), f((4,))),
        "gemm": lambda: kernels.gemm(1.0, np.ones((3, 2)), np.ones((2, 4)), 0.0, f((3, 4))),
    }


def _wrong_dtype(shape):
    return np.zeros(shape, dtype=np.int64)


def _float16(shape):
    return np.zeros(shape, dtype=np.float16)


def _other_float(shape):
    # float32 output with float64 companions (float32 is fine on its own, not mixed)
    return np.zeros(shape, dtype=np.float32)


def _non_contiguous(shape):
    big = np.zeros(shape[:-1] + (2 * shape[-1],))
    return big[..., ::2]


def _fortran(shape):
    a = np.asfortranarray(np.zeros(shape[::-1]).T)  # C-contiguous only when 1-D
    return a if a.ndim > 1 else _non_contiguous(shape)


def _read_only(shape):
    a = np.zeros(shape)
    a.flags.writeable = False
    return a


TWINS = list(_calls(np.zeros))


@pytest.mark.parametrize("name", TWINS)
@pytest.mark.parametrize("factory", [_wrong_dtype, _float16], ids=["int64", "float16"])
def test_refuses_wrong_dtype_output(name, factory):
    with pytest.raises(TypeError):
        _calls(factory)[name]()


@pytest.mark.parametrize("name", ["bias_relu", "relu_backward", "l2_sgd_update", "column_sums", "gemm"])
def test_refuses_mixed_dtypes(name):
    with pytest.raises(TypeError):
        _calls(_other_float)[name]()


@pytest.mark.parametrize("name", TWINS)
@pytest.mark.parametrize("factory", [_non_contiguous, _fortran], ids=["strided", "fortran"])
def test_refuses_non_contiguous_output(name, factory):
    with pytest.raises(ValueError, match="contiguous"):
        _calls(factory)[name]()


@pytest.mark.parametrize("name", TWINS)
def test_refuses_read_only_output(name):
    with pytest.raises(ValueError, match="read-only"):
        _calls(_read_only)[name]()


def test_refuses_non_array_and_bad_inputs():
    with pytest.raises(TypeError):
        kernels.bias_relu([[1.0, 2.0]], np.zeros(2))
    with pytest.raises(TypeError):
        kernels.count_correct(np.zeros((2, 3), dtype=np.int32), np.array([0, 1]))
    with pytest.raises(ValueError):
        kernels.count_correct(np.zeros((2, 3))[:, ::2], np.array([0, 1]))
    with pytest.raises(ValueError):
        kernels.count_correct(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError):
        kernels.bias_relu(np.zeros((2, 3)), np.zeros(4))  # b of the wrong length
    with pytest.raises(ValueError):
        kernels.relu_backward(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(TypeError):  # non-contiguous *input* of the wrong dtype still a TypeError
        kernels.relu_backward(np.zeros((2, 3)), np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(ValueError):  # non-contiguous input array
        kernels.relu_backward(np.zeros((2, 3)), np.zeros((2, 6))[:, ::2])


# ------------------------------------------------------- fastmlp's unpacked GEMM kernels

needs_small_gemm = pytest.mark.skipif(kernels.small_gemm_isa() == 0, reason="no AVX2/AVX-512 on this CPU")


@needs_small_gemm
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("isa", [1, 2], ids=["avx2", "avx512"])
@pytest.mark.parametrize("m,k,n", [(30, 784, 64), (1, 5, 64), (7, 13, 192), (13, 1, 128)])
def test_small_gemm_matches_numpy(m, k, n, isa, dtype):
    if isa > kernels.small_gemm_isa():
        pytest.skip("no AVX-512 on this CPU")
    rng = np.random.default_rng(m * k + n)
    A = rng.standard_normal((m, k)).astype(dtype)
    B = rng.standard_normal((k, n)).astype(dtype)
    C = np.full((m, n), np.nan, dtype)
    kernels.small_gemm(0.5, A, B, C, isa=isa)
    expected = 0.5 * (A.astype(np.float64) @ B.astype(np.float64))
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(C, expected, rtol=rtol, atol=rtol * np.abs(expected).max() * np.sqrt(k))
    # C += alpha A.T @ B, with A now (k2, m) and B (k2, n): the W1 update's shape
    A2 = rng.standard_normal((k, m)).astype(dtype)
    C0 = rng.standard_normal((m, n)).astype(dtype)
    C2 = C0.copy()
    kernels.small_gemm(-0.25, A2, B, C2, trans_a=True, isa=isa)
    expected = C0 - 0.25 * (A2.astype(np.float64).T @ B.astype(np.float64))
    np.testing.assert_allclose(C2, expected, rtol=rtol, atol=rtol * np.abs(expected).max() * np.sqrt(k))


@needs_small_gemm
def test_small_gemm_checks_arguments():
    A, B = np.ones((3, 4)), np.ones((4, 32))
    with pytest.raises(ValueError, match="multiple"):
        kernels.small_gemm(1.0, A, np.ones((4, 12)), np.empty((3, 12)))
    with pytest.raises(ValueError, match="isa"):
        kernels.small_gemm(1.0, A, B, np.empty((3, 32)), isa=3)
    with pytest.raises(ValueError, match="shapes"):
        kernels.small_gemm(1.0, A, B, np.empty((4, 32)))
    # the same operand checks as gemm: flags, scalars, overlap
    with pytest.raises(TypeError, match="trans_a"):
        kernels.small_gemm(1.0, A, B, np.empty((3, 32)), trans_a="yes")
    with pytest.raises(ValueError, match="alpha"):
        kernels.small_gemm(float("nan"), A, B, np.empty((3, 32)))
    C = np.zeros((4, 32))
    with pytest.raises(ValueError, match="overlap"):
        kernels.small_gemm(1.0, C[:, :4].copy(), C, C, trans_a=True)


def _libxsmm_harness():
    """benchmarks/libxsmm_products.py as a module, or a skip (no source tree, no libxsmm)."""
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parent.parent / "benchmarks" / "libxsmm_products.py"
    if not path.exists():
        pytest.skip("benchmarks/ is not beside the tests")
    spec = importlib.util.spec_from_file_location("libxsmm_products", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if module.libxsmm_flags() is None:
        pytest.skip("libxsmm is not installed")
    return module


@needs_small_gemm
@pytest.mark.parametrize("real", ["double", "float"])
def test_small_gemm_steps_agree_with_libxsmm(real, tmp_path):
    """The benchmark's harness takes the same steps (forward product, then W1's update)
    with fastmlp's kernels, each instruction set it has, and libxsmm's JIT code (an
    independent implementation): the W1s they leave agree to rounding. (fastmlp's
    AVX-512 and AVX2 kernels sum in the same order, so they agree to the bit where the
    compiler fuses every multiply-add, as GCC does at -O3; not asserted, since that is
    the compiler's choice.) D = 37 leaves a short tile of rows."""
    harness = _libxsmm_harness()
    try:
        binary = harness.build(str(tmp_path), real, *harness.libxsmm_flags())
    except (OSError, harness.subprocess.CalledProcessError) as error:
        pytest.skip(f"cannot build against libxsmm here: {error}")
    isas = list(range(kernels.small_gemm_isa(), 0, -1))
    fastmlp, theirs, copies, _ = harness.run(binary, [120, 37, 30, 64, 1, *isas])
    if theirs is None:
        pytest.skip("libxsmm has no kernel for this shape")
    assert set(fastmlp) == set(isas)
    for name, (us, gflops, diff) in [("libxsmm", theirs), *fastmlp.items()]:
        assert us > 0 and gflops > 0
        assert 0 <= diff < (1e-5 if real == "float" else 1e-12), name
    assert copies > 0

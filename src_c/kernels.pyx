"""Python-callable twins of the compiled kernels, for tests and experiments.

Each function checks its arguments, then runs the same ``noexcept nogil`` kernel
the training step inlines (``src_c/_kernels.pxd``), in place, with the GIL
released. The arrays must be C-contiguous float32 or float64 NumPy arrays of one
dtype; the array that is changed is also returned (``softmax_xent_grad`` returns
the loss instead) and must not overlap the inputs. Labels are copied before the
kernels index with them, so no other thread can change them meanwhile.
"""
from cython cimport floating
from libc.stdint cimport int64_t

import math
import numbers

import numpy as np

from _blas cimport gemm as _gemm
from _blas cimport small_gemm_isa as _small_gemm_isa
from _blas cimport small_gemm_nn as _small_gemm_nn
from _blas cimport small_gemm_tn as _small_gemm_tn
from _blas cimport small_gemm_width as _small_gemm_width
from _kernels cimport (
    bias_relu as _bias_relu,
    column_sums as _column_sums,
    count_correct as _count_correct,
    l2_sgd_update as _l2_sgd_update,
    momentum_update as _momentum_update,
    relu_backward as _relu_backward,
    softmax_xent_grad as _softmax_xent_grad,
)

__all__ = [
    "bias_relu",
    "relu_backward",
    "softmax_xent_grad",
    "l2_sgd_update",
    "momentum_update",
    "count_correct",
    "column_sums",
    "gemm",
    "small_gemm",
    "small_gemm_isa",
    "small_gemm_width",
    "ISA_NAMES",
]


def _float_array(a, name, ndim, writeable=False, dtype=None):
    """Check that `a` is a C-contiguous float32/float64 ndarray of `ndim` dimensions
    (any number of dimensions when `ndim` is None)."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}; "
                        f"use numpy.ascontiguousarray({name}, dtype=numpy.float64)")
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must have dtype float32 or float64, got {a.dtype}; "
                        f"convert it with {name}.astype(numpy.float64)")
    if dtype is not None and a.dtype != dtype:
        raise TypeError(f"{name} has dtype {a.dtype} but the other arrays are {dtype}; "
                        f"use one dtype for all arguments")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous; pass numpy.ascontiguousarray({name})")
    if writeable and not a.flags.writeable:
        raise ValueError(f"{name} is read-only but is updated in place; pass a writeable copy")
    return a


def _labels(y, n_rows, n_classes):
    """`y` as a fresh int64 array of length n_rows with values in [0, n_classes).

    Always a copy: the kernels index with it without the GIL or bounds checks, so
    no other thread may change it between this check and its use.
    """
    y_arr = np.asarray(y)
    if y_arr.ndim != 1 or y_arr.shape[0] != n_rows:
        raise ValueError(f"y must be 1-D with one label per row ({n_rows}), got shape {y_arr.shape}")
    if n_rows and not np.issubdtype(y_arr.dtype, np.integer):
        raise TypeError(f"y must hold integer class labels, got dtype {y_arr.dtype}")
    if n_rows and y_arr.dtype.kind == "u" and y_arr.max() >= 2**63:
        raise ValueError(f"y must hold labels in [0, {n_classes}), got {y_arr.max()}")
    y_arr = np.array(y_arr, dtype=np.int64, order="C", copy=True)
    if n_rows and (y_arr.min() < 0 or y_arr.max() >= n_classes):
        raise ValueError(f"y must hold labels in [0, {n_classes}), "
                         f"got values from {y_arr.min()} to {y_arr.max()}")
    return y_arr


def _apart(out, out_name, *inputs):
    """Raise ValueError if the output array ``out`` shares memory with an input: the
    kernels read their inputs while they write ``out``, so an overlap gives wrong results."""
    for a, name in inputs:
        if np.may_share_memory(out, a):
            raise ValueError(f"{out_name} and {name} overlap in memory; the result would be wrong: "
                             f"pass a copy, e.g. {name}.copy()")


def _scalar(value, name, dtype):
    """``value`` as a float that is finite in ``dtype`` (bools and non-numbers refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or abs(value) > float(np.finfo(dtype).max):
        raise ValueError(f"{name} must be a finite number representable in {np.dtype(dtype).name}, "
                         f"got {value}")
    return value


def _flag(value, name):
    """``value`` as a bool; only True/False (Python or NumPy) are accepted."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _bias_relu_mv(floating[:, ::1] Z, const floating[::1] b):
    if Z.shape[0] and Z.shape[1]:
        with nogil:
            _bias_relu(&Z[0, 0], &b[0], Z.shape[0], Z.shape[1])


def bias_relu(Z, b):
    """Fused bias add and ReLU, in place: ``Z := max(Z + b, 0)``.

    Parameters
    ----------
    Z : ndarray of shape (B, H), float32 or float64, C-contiguous, writeable
    b : ndarray of shape (H,), same dtype

    Returns
    -------
    Z : ndarray
        The same array, changed.
    """
    _float_array(Z, "Z", 2, writeable=True)
    _float_array(b, "b", 1, dtype=Z.dtype)
    if b.shape[0] != Z.shape[1]:
        raise ValueError(f"b must have one entry per column of Z ({Z.shape[1]}), got {b.shape[0]}")
    _apart(Z, "Z", (b, "b"))
    _bias_relu_mv(Z, b)
    return Z


def _relu_backward_mv(floating[:, ::1] dR, const floating[:, ::1] R):
    if dR.shape[0] and dR.shape[1]:
        with nogil:
            _relu_backward(&dR[0, 0], &R[0, 0], dR.shape[0] * dR.shape[1])


def relu_backward(dR, R):
    """ReLU backward with the output as mask, in place: ``dR := dR * [R > 0]``.

    Parameters
    ----------
    dR : ndarray of shape (B, H), float32 or float64, C-contiguous, writeable
        Gradient with respect to the ReLU output.
    R : ndarray of shape (B, H), same dtype
        The ReLU output of the forward pass (positive exactly where its input was).

    Returns
    -------
    dR : ndarray
        The same array, now the gradient with respect to the ReLU input.
    """
    _float_array(dR, "dR", 2, writeable=True)
    _float_array(R, "R", 2, dtype=dR.dtype)
    if R.shape != dR.shape:
        raise ValueError(f"R must have the shape of dR {dR.shape}, got {R.shape}")
    if R is not dR:  # entry by entry, dR := dR * [dR > 0] is right in place; a shifted view is not
        _apart(dR, "dR", (R, "R"))
    _relu_backward_mv(dR, R)
    return dR


def _softmax_xent_grad_mv(floating[:, ::1] Z, const int64_t[::1] y, w):
    cdef const floating[::1] weights = w
    cdef const floating* w_ptr = NULL
    cdef double loss = 0
    if Z.shape[0]:
        if w is not None:
            w_ptr = &weights[0]
        with nogil:
            loss = _softmax_xent_grad(&Z[0, 0], &y[0], Z.shape[0], Z.shape[1], w_ptr)
    return loss


def _row_weights(w, Z):
    """Sample weights ``w`` (one per row of Z) as a fresh array of Z's dtype, or None."""
    if w is None:
        return None
    w_arr = np.array(w, dtype=Z.dtype, order="C", copy=True)
    if w_arr.shape != (Z.shape[0],):
        raise ValueError(f"w must hold one weight per row of Z ({Z.shape[0]}), got shape {w_arr.shape}")
    return w_arr


def softmax_xent_grad(Z, y, w=None):
    """Softmax cross-entropy and its gradient, in place: ``Z := softmax(Z) - onehot(y)``.

    Stable for any finite logits: the row maximum is subtracted before ``exp``.

    Parameters
    ----------
    Z : ndarray of shape (B, C), float32 or float64, C-contiguous, writeable
        Logits; overwritten by the gradient of the loss with respect to them.
    y : array-like of int, shape (B,)
        Class labels in ``[0, C)``.
    w : array-like of shape (B,), optional
        Sample weights: row i's loss and gradient are multiplied by ``w[i]``.

    Returns
    -------
    loss : float
        ``sum_i w_i * -log softmax(Z)[i, y_i]`` (``w_i = 1`` without ``w``),
        accumulated in float64.
    """
    _float_array(Z, "Z", 2, writeable=True)
    if Z.shape[1] < 1:
        raise ValueError("Z must have at least one column (class)")
    y_arr = _labels(y, Z.shape[0], Z.shape[1])
    return _softmax_xent_grad_mv(Z, y_arr, _row_weights(w, Z))


def _momentum_update_mv(floating[::1] W, floating[::1] V, const floating[::1] G, double lr,
                        double reg, double momentum, bint nesterov):
    if W.shape[0]:
        with nogil:
            _momentum_update(&W[0], &V[0], &G[0], 1, W.shape[0], W.shape[0], <floating> lr,
                             <floating> reg, <floating> momentum, nesterov)


def momentum_update(W, V, G, lr, reg, momentum, nesterov=False):
    """SGD step with momentum and L2 decay, in place on ``W`` and ``V``. With
    ``g = G + 2 * reg * W``: ``V := momentum * V - lr * g``, then ``W := W + V``, or
    with ``nesterov`` ``W := W + momentum * V - lr * g`` (scikit-learn's rule).

    Parameters
    ----------
    W, V : ndarray, float32 or float64, C-contiguous, writeable, same shape
        Weights and their velocity.
    G : ndarray of W's shape and dtype
        Gradient of the data term of the cost.
    lr, reg, momentum : float
    nesterov : bool, default False

    Returns
    -------
    W : ndarray
        The same array, changed (and ``V`` too).
    """
    _float_array(W, "W", None, writeable=True)
    _float_array(V, "V", W.ndim, writeable=True, dtype=W.dtype)
    _float_array(G, "G", W.ndim, dtype=W.dtype)
    if V.shape != W.shape or G.shape != W.shape:
        raise ValueError(f"V and G must have the shape of W {W.shape}, got {V.shape} and {G.shape}")
    _momentum_update_mv(W.reshape(-1), V.reshape(-1), G.reshape(-1), float(lr), float(reg),
                        float(momentum), bool(nesterov))
    return W


def _l2_sgd_update_mv(floating[::1] W, const floating[::1] G, double lr, double reg):
    if W.shape[0]:
        with nogil:
            _l2_sgd_update(&W[0], &G[0], W.shape[0], <floating> lr, <floating> reg)


def l2_sgd_update(W, G, lr, reg):
    """SGD step with L2 decay, in place: ``W := W - lr * (G + 2 * reg * W)``.

    Parameters
    ----------
    W : ndarray, float32 or float64, C-contiguous, writeable (any number of dimensions)
    G : ndarray of W's shape and dtype
        Gradient of the data term of the cost.
    lr, reg : float
        Learning rate and L2 strength (the penalty is ``reg * ||W||^2``); finite,
        and representable in W's dtype.

    Returns
    -------
    W : ndarray
        The same array, changed.
    """
    _float_array(W, "W", None, writeable=True)
    _float_array(G, "G", W.ndim, dtype=W.dtype)
    if G.shape != W.shape:
        raise ValueError(f"G must have the shape of W {W.shape}, got {G.shape}")
    _apart(W, "W", (G, "G"))
    lr = _scalar(lr, "lr", W.dtype)
    reg = _scalar(reg, "reg", W.dtype)
    _l2_sgd_update_mv(W.reshape(-1), G.reshape(-1), lr, reg)
    return W


def _count_correct_mv(const floating[:, ::1] Z, const int64_t[::1] y, w):
    cdef const floating[::1] weights = w
    cdef const floating* w_ptr = NULL
    cdef double n = 0
    if Z.shape[0]:
        if w is not None:
            w_ptr = &weights[0]
        with nogil:
            n = _count_correct(&Z[0, 0], &y[0], Z.shape[0], Z.shape[1], w_ptr)
    return int(n) if w is None else n


def count_correct(Z, y, w=None):
    """Number of rows whose largest entry is at column ``y[i]`` (ties: the first wins).

    Parameters
    ----------
    Z : ndarray of shape (B, C), float32 or float64, C-contiguous
    y : array-like of int, shape (B,)
    w : array-like of shape (B,), optional
        Sample weights: then the total weight of those rows.

    Returns
    -------
    int (float with ``w``)
    """
    _float_array(Z, "Z", 2)
    if Z.shape[1] < 1:
        raise ValueError("Z must have at least one column (class)")
    return _count_correct_mv(Z, _labels(y, Z.shape[0], Z.shape[1]), _row_weights(w, Z))


def _column_sums_mv(const floating[:, ::1] G, floating[::1] out):
    if G.shape[1]:
        with nogil:
            _column_sums(&G[0, 0], G.shape[0], G.shape[1], &out[0])


def column_sums(G, out):
    """Column sums into ``out``: ``out := G.sum(axis=0)``.

    Parameters
    ----------
    G : ndarray of shape (B, H), B >= 1, float32 or float64, C-contiguous
    out : ndarray of shape (H,), same dtype, writeable

    Returns
    -------
    out : ndarray
    """
    _float_array(G, "G", 2)
    _float_array(out, "out", 1, writeable=True, dtype=G.dtype)
    if G.shape[0] < 1:
        raise ValueError("G must have at least one row")
    if out.shape[0] != G.shape[1]:
        raise ValueError(f"out must have one entry per column of G ({G.shape[1]}), got {out.shape[0]}")
    _apart(out, "out", (G, "G"))
    _column_sums_mv(G, out)
    return out


def _gemm_mv(bint trans_a, bint trans_b, double alpha, const floating[:, ::1] A,
             const floating[:, ::1] B, double beta, floating[:, ::1] C):
    cdef int m = C.shape[0], n = C.shape[1]
    cdef int k = A.shape[0] if trans_a else A.shape[1]
    with nogil:
        _gemm(trans_a, trans_b, m, n, k, <floating> alpha, &A[0, 0], <int> A.shape[1],
              &B[0, 0], <int> B.shape[1], <floating> beta, &C[0, 0], <int> C.shape[1])


def gemm(alpha, A, B, beta, C, trans_a=False, trans_b=False):
    """Row-major BLAS matrix product, in place: ``C := alpha * op(A) @ op(B) + beta * C``.

    The Python face of the wrapper in ``src_c/_blas.pxd`` that every matrix
    product of the training step goes through; ``op(X)`` is ``X.T`` when
    ``trans_X`` is true.

    Parameters
    ----------
    alpha, beta : float
        Finite, and representable in the arrays' dtype.
    A, B : ndarray, 2-D, float32 or float64, C-contiguous, non-empty, dimensions < 2**31
    C : ndarray of shape (op(A).shape[0], op(B).shape[1]), same dtype, writeable
        Must not overlap A or B.
    trans_a, trans_b : bool

    Returns
    -------
    C : ndarray
    """
    trans_a, trans_b, alpha = _product_operands(alpha, A, B, C, trans_a, trans_b)
    beta = _scalar(beta, "beta", C.dtype)
    _gemm_mv(trans_a, trans_b, alpha, A, B, beta, C)
    return C


def _product_operands(alpha, A, B, C, trans_a, trans_b):
    """Check the operands of ``C := alpha * op(A) @ op(B) (+ ...)``, as gemm and small_gemm
    take them; return ``(trans_a, trans_b, alpha)`` as bools and a float."""
    _float_array(C, "C", 2, writeable=True)
    _float_array(A, "A", 2, dtype=C.dtype)
    _float_array(B, "B", 2, dtype=C.dtype)
    trans_a = _flag(trans_a, "trans_a")
    trans_b = _flag(trans_b, "trans_b")
    alpha = _scalar(alpha, "alpha", C.dtype)
    opA = A.T if trans_a else A
    opB = B.T if trans_b else B
    if opA.shape[1] != opB.shape[0] or C.shape != (opA.shape[0], opB.shape[1]):
        raise ValueError(f"shapes do not fit: op(A) {opA.shape} @ op(B) {opB.shape} into C {C.shape}")
    if 0 in A.shape or 0 in B.shape:
        raise ValueError("A and B must be non-empty")
    for name, X in (("A", A), ("B", B), ("C", C)):
        if max(X.shape) >= 2**31:  # the kernels take C int dimensions
            raise ValueError(f"{name} has shape {X.shape}; BLAS takes dimensions below 2**31, "
                             f"multiply in blocks of rows")
    _apart(C, "C", (A, "A"), (B, "B"))
    return trans_a, trans_b, alpha


def small_gemm_isa():
    """The instruction set of fastmlp's unpacked GEMM kernels on this CPU: 2 (AVX-512),
    1 (AVX2 with FMA) or 0 (none: the training step uses BLAS)."""
    return _small_gemm_isa()


#: The instruction sets of ``small_gemm_isa`` by number.
ISA_NAMES = {0: "none", 1: "AVX2", 2: "AVX-512"}


def _kernel_isa(isa, allowed):
    """``isa`` (default: the best this CPU has) as an int, checked to be one of ``allowed``
    and at most the best this CPU has."""
    best = _small_gemm_isa()
    isa = best if isa is None else int(isa)
    if isa not in allowed or isa > best:
        names = " or ".join(f"{i} ({ISA_NAMES[i]})" for i in allowed)
        raise ValueError(f"isa must be {names} and at most {best} here, got {isa}")
    return isa


def small_gemm_width(dtype, isa=None):
    """Columns of a tile of fastmlp's unpacked kernels for ``dtype`` (float32 or float64):
    the number of columns of their products must be a multiple of it. 0 where the CPU
    (or build) has no such kernels. ``isa``: 1 (AVX2) or 2 (AVX-512), default the best
    this CPU has."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    return _small_gemm_width(_kernel_isa(isa, (0, 1, 2)), dtype.itemsize)


def _small_gemm_mv(int isa, bint trans_a, double alpha, const floating[:, ::1] A,
                   const floating[:, ::1] B, floating[:, ::1] C):
    cdef int m = C.shape[0], n = C.shape[1]
    cdef int k = A.shape[0] if trans_a else A.shape[1]
    with nogil:
        if trans_a:
            _small_gemm_tn(isa, m, n, k, <floating> alpha, &A[0, 0], <int> A.shape[1], NULL,
                           &B[0, 0], <int> B.shape[1], &C[0, 0], <int> C.shape[1])
        else:
            _small_gemm_nn(isa, m, n, k, <floating> alpha, &A[0, 0], <int> A.shape[1], NULL,
                           &B[0, 0], <int> B.shape[1], &C[0, 0], <int> C.shape[1])


def small_gemm(alpha, A, B, C, trans_a=False, isa=None):
    """fastmlp's unpacked product (``src_c/_small_gemm.h``), in place:
    ``C := alpha * A @ B``, or with ``trans_a`` ``C := C + alpha * A.T @ B``.

    The two big products of a training step where the BLAS has no small-matrix
    path. The number of columns must be a multiple of the kernel's tile width.

    Parameters
    ----------
    alpha : float
        Finite, and representable in the arrays' dtype.
    A, B : ndarray, 2-D, float32 or float64, C-contiguous, non-empty, dimensions < 2**31
    C : ndarray, same dtype, writeable
        Must not overlap A or B.
    trans_a : bool, default False
    isa : {1, 2}, optional
        1 for the AVX2 kernels, 2 for AVX-512 (default: the best this CPU has).

    Returns
    -------
    C : ndarray
    """
    if _small_gemm_isa() == 0:
        raise RuntimeError("this CPU (or build) has no AVX2/AVX-512 kernels: use gemm")
    isa = _kernel_isa(isa, (1, 2))
    trans_a, _, alpha = _product_operands(alpha, A, B, C, trans_a, False)
    width = _small_gemm_width(isa, C.dtype.itemsize)
    if C.shape[1] % width:
        raise ValueError(f"C must have a multiple of {width} columns for these kernels, got {C.shape[1]}")
    _small_gemm_mv(isa, trans_a, alpha, A, B, C)
    return C

# BLAS for row-major (C-order) arrays, over scipy.linalg.cython_blas.
#
# This is the one place that knows Fortran BLAS is column-major. A row-major
# (m, n) matrix with row stride ld is, to Fortran, the column-major (n, m)
# matrix of its transpose with the same leading dimension. So
#     C = alpha * op(A) @ op(B) + beta * C          (row-major)
# is  C.T = alpha * op(B).T @ op(A).T + beta * C.T  (column-major),
# which is the Fortran call with A and B swapped, and m and n swapped.
from cython cimport floating
from libc.stdint cimport int64_t
from scipy.linalg.cython_blas cimport dgemm, sgemm


cdef inline void gemm(bint trans_a, bint trans_b, int m, int n, int k,
                      floating alpha, const floating* A, int lda,
                      const floating* B, int ldb,
                      floating beta, floating* C, int ldc) noexcept nogil:
    """C := alpha * op(A) @ op(B) + beta * C for row-major A, B, C.

    op(A) is (m, k), op(B) is (k, n), C is (m, n); op(X) is X.T when trans_X.
    lda, ldb, ldc are the row strides (in elements) of A, B, C as stored.
    """
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    if floating is double:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*> B, &ldb,
              <double*> A, &lda, &beta, C, &ldc)
    else:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*> B, &ldb,
              <float*> A, &lda, &beta, C, &ldc)


# Unpacked products for the step's two big GEMMs where BLAS packs every operand
# (see _small_gemm.h); `isa` is small_gemm_isa() (never 0 here: callers use gemm then).
# Row r of A is at A + r * lda, or with an index `rows` (not NULL) at A + rows[r] * lda.
cdef extern from "_small_gemm.h" nogil:
    int small_gemm_isa()
    int small_gemm_width(int isa, int element_size)
    void small_gemm_nn_d(int isa, int m, int n, int k, double alpha, const double* A, int lda,
                         const int64_t* rows, const double* B, int ldb, double* C, int ldc)
    void small_gemm_nn_s(int isa, int m, int n, int k, float alpha, const float* A, int lda,
                         const int64_t* rows, const float* B, int ldb, float* C, int ldc)
    void small_gemm_tn_d(int isa, int m, int n, int k, double alpha, const double* A, int lda,
                         const int64_t* rows, const double* B, int ldb, double* C, int ldc)
    void small_gemm_tn_s(int isa, int m, int n, int k, float alpha, const float* A, int lda,
                         const int64_t* rows, const float* B, int ldb, float* C, int ldc)
    void small_gemm_tn_momentum_d(int isa, int m, int n, int k, const double* A, int lda,
                                  const int64_t* rows, const double* B, int ldb, double* W,
                                  double* V, int ldc, double lr, double reg2, double momentum,
                                  int nesterov)
    void small_gemm_tn_momentum_s(int isa, int m, int n, int k, const float* A, int lda,
                                  const int64_t* rows, const float* B, int ldb, float* W,
                                  float* V, int ldc, float lr, float reg2, float momentum,
                                  int nesterov)


cdef inline void small_gemm_nn(int isa, int m, int n, int k, floating alpha,
                               const floating* A, int lda, const int64_t* rows,
                               const floating* B, int ldb, floating* C, int ldc) noexcept nogil:
    """C := alpha * A @ B, row-major, unpacked (n a multiple of small_gemm_width)."""
    if floating is double:
        small_gemm_nn_d(isa, m, n, k, alpha, A, lda, rows, B, ldb, C, ldc)
    else:
        small_gemm_nn_s(isa, m, n, k, alpha, A, lda, rows, B, ldb, C, ldc)


cdef inline void small_gemm_tn(int isa, int m, int n, int k, floating alpha,
                               const floating* A, int lda, const int64_t* rows,
                               const floating* B, int ldb, floating* C, int ldc) noexcept nogil:
    """C := C + alpha * A.T @ B, row-major, unpacked (n a multiple of small_gemm_width)."""
    if floating is double:
        small_gemm_tn_d(isa, m, n, k, alpha, A, lda, rows, B, ldb, C, ldc)
    else:
        small_gemm_tn_s(isa, m, n, k, alpha, A, lda, rows, B, ldb, C, ldc)


cdef inline void small_gemm_tn_momentum(int isa, int m, int n, int k, const floating* A, int lda,
                                        const int64_t* rows, const floating* B, int ldb,
                                        floating* W, floating* V, int ldc, floating lr,
                                        floating reg2, floating momentum,
                                        bint nesterov) noexcept nogil:
    """The momentum step on W (m x n, row stride ldc; velocity V alike) with the data
    gradient A.T @ B, in one pass (n a multiple of small_gemm_width):
    g := A.T @ B + reg2 W;  V := momentum V - lr g;  W := W + V  (nesterov: W + momentum V - lr g)."""
    if floating is double:
        small_gemm_tn_momentum_d(isa, m, n, k, A, lda, rows, B, ldb, W, V, ldc, lr, reg2, momentum,
                                 nesterov)
    else:
        small_gemm_tn_momentum_s(isa, m, n, k, A, lda, rows, B, ldb, W, V, ldc, lr, reg2, momentum,
                                 nesterov)

/* Unpacked matrix products for the two big products of a training step, for CPUs
 * whose BLAS packs every operand first.
 *
 * A step multiplies a batch (B x D, B about 30) by a slice of W1 (D x Hs), and
 * adds the batch's transpose times dA1 (B x Hs) into that slice. For such small,
 * skinny products a GEMM that first copies (packs) both operands into its own
 * layout spends a good part of its time copying: OpenBLAS skips that only on
 * AVX-512 cores (its "small matrix" kernels, 0.3.16+). Here the register tile
 * reads the operands where they lie:
 *
 *   small_gemm_nn:  C  = alpha * A @ B        A (m x k), B (k x n), C (m x n)
 *   small_gemm_tn:  C += alpha * A.T @ B      A (k x m), B (k x n), C (m x n)
 *   small_gemm_tn_momentum: the momentum step with the data gradient A.T @ B, fused
 *                   into the write-back (one pass over W and its velocity)
 *
 * all row-major with leading dimensions lda, ldb, ldc. Row r of A is at A + r * lda
 * or, with an index `rows` (not NULL), at A + rows[r] * lda: the step reads the
 * batch's rows of X where they lie, through the shuffled order, with no copy.
 *
 * A tile is MR rows of C by NV vectors of its columns, held in registers while the
 * sum over k runs; n must be a multiple of the tile width (small_gemm_width), m and k
 * are any size (a short last tile of rows re-reads a valid row and discards its
 * result). The sum over k runs in order p = 0 .. k-1 for every entry, so results are
 * deterministic, and do not depend on the tile's shape as long as the compiler fuses
 * each multiply-add (GCC does at -O3 with the scalars passed at run time; given a
 * constant alpha it may form a write-back as a product and a sum instead).
 *
 * The same source is compiled for AVX2+FMA and for AVX-512 with GCC/Clang vector
 * extensions and `target` attributes; small_gemm_isa() picks one at run time
 * (0: none, so the caller uses BLAS). Elsewhere (other compilers or CPUs) it is 0. */
#ifndef FASTMLP_SMALL_GEMM_H
#define FASTMLP_SMALL_GEMM_H

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__)) \
    && !defined(FASTMLP_NO_SMALL_GEMM)
#define FASTMLP_SMALL_GEMM 1
#else
#define FASTMLP_SMALL_GEMM 0
#endif

#include <stddef.h>
#include <stdint.h>

/* Row r of a matrix at A with leading dimension lda, through the index rows if any. */
#define SG_ROW(A, rows, r, lda) ((A) + ((rows) ? (rows)[r] : (int64_t)(r)) * (long)(lda))

#if FASTMLP_SMALL_GEMM

#define SG_MR 6    /* rows of a tile */
/* Vectors of columns in a tile: 6 x NV accumulators, NV vectors of B and a broadcast of A
 * must fit the registers (16 with AVX2, 32 with AVX-512). Twice as wide a tile halves
 * the broadcasts of A per multiply-add; measured at the seed's step (batch 30, D=784,
 * H=128 on two threads, AVX-512 Xeon) 4 vectors made the step 5-10% faster than 2. */
#define SG_NV_AVX2 2
#define SG_NV_AVX512 4

/* arow[p]: where row p of A starts (SG_ROW), for p < min(k, SG_TABLE_ROWS), made once
 * per call of a tn kernel (k is a batch's size; rows past the table are found as
 * they are read). With it the inner loop finds a row with one load, where it loaded
 * rows[p] and multiplied by lda in every tile: the AVX2 kernels' epochs at the
 * seed's shape took 6-9% less time (float64 and float32, one and two threads), the
 * AVX-512 ones the same. */
#define SG_TABLE_ROWS 256
#define SG_ROW_TABLE(T, arow, A, rows, k, lda)                                           \
    const T *arow[SG_TABLE_ROWS];                                                        \
    for (int p_ = 0; p_ < (k) && p_ < SG_TABLE_ROWS; p_++)                               \
        arow[p_] = SG_ROW(A, rows, p_, lda);

/* The columns of A that a tile of rows i0 .. i0 + MR of C reads in small_gemm_tn (the
 * last row again past m). */
static inline void sg_tile_columns(int i0, int m, int col[SG_MR]) {
    for (int i = 0; i < SG_MR; i++)
        col[i] = i0 + i < m ? i0 + i : m - 1;
}

/* One variant: element type T, vector type V of W elements, target string TGT. */
#define SG_DEFINE(SUFFIX, T, W, NV, TGT)                                                 \
typedef T sg_vec_##SUFFIX __attribute__((vector_size(sizeof(T) * W), aligned(sizeof(T)))); \
                                                                                         \
__attribute__((target(TGT))) static void                                                 \
small_gemm_nn_##SUFFIX(int m, int n, int k, T alpha, const T *A, int lda,                \
                       const int64_t *rows, const T *B, int ldb, T *C, int ldc) {        \
    typedef sg_vec_##SUFFIX V;                                                           \
    for (int i0 = 0; i0 < m; i0 += SG_MR) {                                              \
        const T *a[SG_MR];                                                               \
        for (int i = 0; i < SG_MR; i++)                                                  \
            a[i] = SG_ROW(A, rows, i0 + i < m ? i0 + i : m - 1, lda);                    \
        for (int j = 0; j < n; j += NV * W) {                                            \
            V acc[SG_MR][NV];                                                            \
            for (int i = 0; i < SG_MR; i++)                                              \
                for (int v = 0; v < NV; v++)                                             \
                    acc[i][v] = (V){0};                                                  \
            const T *b = B + j;                                                          \
            for (int p = 0; p < k; p++, b += ldb) {                                      \
                V bv[NV];                                                                \
                for (int v = 0; v < NV; v++)                                             \
                    bv[v] = *(const V *)(b + v * W);                                     \
                for (int i = 0; i < SG_MR; i++) {                                        \
                    V av = a[i][p] - (V){0};                                             \
                    for (int v = 0; v < NV; v++)                                         \
                        acc[i][v] += av * bv[v];                                         \
                }                                                                        \
            }                                                                            \
            for (int i = 0; i < SG_MR && i0 + i < m; i++)                                \
                for (int v = 0; v < NV; v++)                                             \
                    *(V *)(C + (i0 + i) * (long)ldc + j + v * W) = alpha * acc[i][v];    \
        }                                                                                \
    }                                                                                    \
}                                                                                        \
                                                                                         \
/* acc := A[:, cols].T @ B[:, j .. j + NV W], the sum over p in order, for columns       \
 * offset .. offset + MR - 1 of A or, with col, col[0 .. MR - 1]; row p of A at arow[p]  \
 * (SG_ROW_TABLE). Without col the MR broadcasts of a row are at fixed offsets from     \
 * one pointer. */                                                                       \
__attribute__((target(TGT), always_inline)) static inline void                           \
sg_tile_tn_cols_##SUFFIX(sg_vec_##SUFFIX acc[SG_MR][NV], int k, const T *const *arow,   \
                         const T *A, int lda, const int64_t *rows, int offset,           \
                         const int *col, const T *B, int ldb) {                          \
    typedef sg_vec_##SUFFIX V;                                                           \
    for (int i = 0; i < SG_MR; i++)                                                      \
        for (int v = 0; v < NV; v++)                                                     \
            acc[i][v] = (V){0};                                                          \
    for (int p = 0; p < k; p++, B += ldb) {                                              \
        const T *a = (p < SG_TABLE_ROWS ? arow[p] : SG_ROW(A, rows, p, lda)) + offset;   \
        V bv[NV];                                                                        \
        for (int v = 0; v < NV; v++)                                                     \
            bv[v] = *(const V *)(B + v * W);                                             \
        for (int i = 0; i < SG_MR; i++) {                                                \
            V av = (col ? a[col[i]] : a[i]) - (V){0};                                    \
            for (int v = 0; v < NV; v++)                                                 \
                acc[i][v] += av * bv[v];                                                 \
        }                                                                                \
    }                                                                                    \
}                                                                                        \
                                                                                         \
/* acc := A[:, i0 .. i0 + MR - 1].T @ B[:, j .. j + NV W] for the tile of rows i0 of C   \
 * (m rows in all); a short last tile re-reads column m - 1 of A. */                     \
__attribute__((target(TGT), always_inline)) static inline void                           \
sg_tile_tn_##SUFFIX(sg_vec_##SUFFIX acc[SG_MR][NV], int k, const T *const *arow,       \
                    const T *A, int lda, const int64_t *rows, int i0, int m,             \
                    const T *B, int ldb) {                                               \
    if (i0 + SG_MR <= m) {                                                               \
        sg_tile_tn_cols_##SUFFIX(acc, k, arow, A, lda, rows, i0, NULL, B, ldb);          \
    } else {                                                                             \
        int col[SG_MR];                                                                  \
        sg_tile_columns(i0, m, col);                                                     \
        sg_tile_tn_cols_##SUFFIX(acc, k, arow, A, lda, rows, 0, col, B, ldb);            \
    }                                                                                    \
}                                                                                        \
                                                                                         \
__attribute__((target(TGT))) static void                                                 \
small_gemm_tn_##SUFFIX(int m, int n, int k, T alpha, const T *A, int lda,                \
                       const int64_t *rows, const T *B, int ldb, T *C, int ldc) {        \
    typedef sg_vec_##SUFFIX V;                                                           \
    SG_ROW_TABLE(T, arow, A, rows, k, lda)                                               \
    for (int i0 = 0; i0 < m; i0 += SG_MR) {                                              \
        for (int j = 0; j < n; j += NV * W) {                                            \
            V acc[SG_MR][NV];                                                            \
            sg_tile_tn_##SUFFIX(acc, k, arow, A, lda, rows, i0, m, B + j, ldb);          \
            for (int i = 0; i < SG_MR && i0 + i < m; i++)                                \
                for (int v = 0; v < NV; v++) {                                           \
                    V *c = (V *)(C + (i0 + i) * (long)ldc + j + v * W);                  \
                    *c = *c + alpha * acc[i][v];                                         \
                }                                                                        \
        }                                                                                \
    }                                                                                    \
}                                                                                        \
                                                                                         \
/* The momentum step on W with the data gradient A.T @ B, in the tile's write-back       \
 * (one pass over W and its velocity Vel, both m x n with row stride ldc):               \
 *     g := A.T @ B + reg2 W;   Vel := momentum Vel - lr g;                              \
 *     W := W + Vel   or, nesterov,   W := W + momentum Vel - lr g */                    \
__attribute__((target(TGT))) static void                                                 \
small_gemm_tn_momentum_##SUFFIX(int m, int n, int k, const T *A, int lda,                \
                                const int64_t *rows, const T *B, int ldb, T *Wt, T *Vel, \
                                int ldc, T lr, T reg2, T momentum, int nesterov) {       \
    typedef sg_vec_##SUFFIX V;                                                           \
    SG_ROW_TABLE(T, arow, A, rows, k, lda)                                               \
    for (int i0 = 0; i0 < m; i0 += SG_MR) {                                              \
        for (int j = 0; j < n; j += NV * W) {                                            \
            /* W and Vel of the next tile, on their way while this one sums */           \
            int jn = j + NV * W < n ? j + NV * W : 0;                                    \
            int in = j + NV * W < n ? i0 : i0 + SG_MR;                                   \
            for (int i = 0; i < SG_MR && in + i < m; i++)                                \
                for (int v = 0; v < NV * W; v += 64 / (int)sizeof(T)) {                  \
                    __builtin_prefetch(Wt + (in + i) * (long)ldc + jn + v, 1);           \
                    __builtin_prefetch(Vel + (in + i) * (long)ldc + jn + v, 1);          \
                }                                                                        \
            V acc[SG_MR][NV];                                                            \
            sg_tile_tn_##SUFFIX(acc, k, arow, A, lda, rows, i0, m, B + j, ldb);          \
            for (int i = 0; i < SG_MR && i0 + i < m; i++)                                \
                for (int v = 0; v < NV; v++) {                                           \
                    long at = (i0 + i) * (long)ldc + j + v * W;                          \
                    V w = *(V *)(Wt + at);                                               \
                    V g = acc[i][v] + reg2 * w;                                          \
                    V vel = momentum * *(V *)(Vel + at) - lr * g;                        \
                    *(V *)(Vel + at) = vel;                                              \
                    *(V *)(Wt + at) = nesterov ? w + (momentum * vel - lr * g) : w + vel;\
                }                                                                        \
        }                                                                                \
    }                                                                                    \
}

SG_DEFINE(d_avx2, double, 4, SG_NV_AVX2, "avx2,fma")
SG_DEFINE(s_avx2, float, 8, SG_NV_AVX2, "avx2,fma")
SG_DEFINE(d_avx512, double, 8, SG_NV_AVX512, "avx512f")
SG_DEFINE(s_avx512, float, 16, SG_NV_AVX512, "avx512f")

/* 2: AVX-512F, 1: AVX2 with FMA, 0: neither (use BLAS). */
static int small_gemm_isa(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return 1;
    return 0;
}

/* Columns of a tile for this ISA and element size (n must be a multiple of it). */
static int small_gemm_width(int isa, int element_size) {
    int lanes = (isa == 2 ? 64 : 32) / element_size;
    return isa ? (isa == 2 ? SG_NV_AVX512 : SG_NV_AVX2) * lanes : 0;
}

/* small_gemm_nn_d(isa, ...) etc.: the AVX-512 variant for isa 2, else AVX2. */
#define SG_DISPATCH(NAME, T)                                                             \
static void NAME(int isa, int m, int n, int k, T alpha, const T *A, int lda,             \
                 const int64_t *rows, const T *B, int ldb, T *C, int ldc) {              \
    if (isa == 2)                                                                        \
        NAME##_avx512(m, n, k, alpha, A, lda, rows, B, ldb, C, ldc);                     \
    else                                                                                 \
        NAME##_avx2(m, n, k, alpha, A, lda, rows, B, ldb, C, ldc);                       \
}

SG_DISPATCH(small_gemm_nn_d, double)
SG_DISPATCH(small_gemm_nn_s, float)
SG_DISPATCH(small_gemm_tn_d, double)
SG_DISPATCH(small_gemm_tn_s, float)

#define SG_DISPATCH_MOMENTUM(NAME, T)                                                    \
static void NAME(int isa, int m, int n, int k, const T *A, int lda, const int64_t *rows, \
                 const T *B, int ldb, T *Wt, T *Vel, int ldc, T lr, T reg2, T momentum,  \
                 int nesterov) {                                                         \
    if (isa == 2)                                                                        \
        NAME##_avx512(m, n, k, A, lda, rows, B, ldb, Wt, Vel, ldc, lr, reg2, momentum,   \
                      nesterov);                                                         \
    else                                                                                 \
        NAME##_avx2(m, n, k, A, lda, rows, B, ldb, Wt, Vel, ldc, lr, reg2, momentum,     \
                    nesterov);                                                           \
}

SG_DISPATCH_MOMENTUM(small_gemm_tn_momentum_d, double)
SG_DISPATCH_MOMENTUM(small_gemm_tn_momentum_s, float)

#else  /* no vector kernels here: callers use BLAS, never these */

static int small_gemm_isa(void) { return 0; }
static int small_gemm_width(int isa, int element_size) { (void)isa; (void)element_size; return 0; }
#define SG_NONE(NAME, T)                                                                 \
static void NAME(int isa, int m, int n, int k, T alpha, const T *A, int lda,             \
                 const int64_t *rows, const T *B, int ldb, T *C, int ldc) { }
SG_NONE(small_gemm_nn_d, double)
SG_NONE(small_gemm_nn_s, float)
SG_NONE(small_gemm_tn_d, double)
SG_NONE(small_gemm_tn_s, float)
#define SG_NONE_MOMENTUM(NAME, T)                                                        \
static void NAME(int isa, int m, int n, int k, const T *A, int lda, const int64_t *rows, \
                 const T *B, int ldb, T *Wt, T *Vel, int ldc, T lr, T reg2, T momentum,  \
                 int nesterov) { }
SG_NONE_MOMENTUM(small_gemm_tn_momentum_d, double)
SG_NONE_MOMENTUM(small_gemm_tn_momentum_s, float)

#endif
#endif

/* The two big products of a training step, by fastmlp's kernels and by libxsmm's JIT
 * kernels, in one process, taking turns. Built and run by libxsmm_products.py (which
 * passes -DREAL=double or -DREAL=float); see there.
 *
 * A step of one thread's slice (n hidden units) on a batch of B rows of X (N x D):
 *     R := Xb @ W1_s                 (B x n)      the forward product
 *     W1_s += step * Xb.T @ dA1      (D x n)      W1's update
 * fastmlp reads Xb's rows in place through the shuffled order (src_c/_small_gemm.h).
 * libxsmm's kernels take contiguous, column-major operands, so its contender first
 * gathers the batch (Xb, B x D, which in column-major terms is Xb.T; the update reads
 * it transposed); its kernels take alpha = 1 only, so step scales dA1 (B x n) first.
 * Both copies are counted in its time, and printed apart.
 *
 * Output, one line per contender ("fastmlp" and the isa asked, or "libxsmm"):
 * microseconds per step (median of the rounds), GFLOP/s, and how far its W1 ended from
 * the first contender's (max |difference| / max |W1|); then "copies" and the mean
 * microseconds per step of libxsmm's copies. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libxsmm.h>

#include "_small_gemm.h"

#ifndef REAL
#define REAL double
#endif
typedef REAL T;
#define IS_DOUBLE (sizeof(T) == 8)

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void *alloc(size_t bytes) {
    void *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (p == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

static void nn(int isa, int m, int n, int k, const T *A, int lda, const int64_t *rows, const T *B,
               int ldb, T *C, int ldc) {
    if (IS_DOUBLE)
        small_gemm_nn_d(isa, m, n, k, 1.0, (const double *)A, lda, rows, (const double *)B, ldb,
                        (double *)C, ldc);
    else
        small_gemm_nn_s(isa, m, n, k, 1.0f, (const float *)A, lda, rows, (const float *)B, ldb,
                        (float *)C, ldc);
}

static void tn(int isa, int m, int n, int k, T alpha, const T *A, int lda, const int64_t *rows,
               const T *B, int ldb, T *C, int ldc) {
    if (IS_DOUBLE)
        small_gemm_tn_d(isa, m, n, k, (double)alpha, (const double *)A, lda, rows,
                        (const double *)B, ldb, (double *)C, ldc);
    else
        small_gemm_tn_s(isa, m, n, k, (float)alpha, (const float *)A, lda, rows,
                        (const float *)B, ldb, (float *)C, ldc);
}

static volatile T step_size = (T)-1e-4;

typedef void (*xsmm_kernel)(const T *a, const T *b, T *c, ...);

/* libxsmm's kernel for column-major C (m x n) := A (m x k) @ op(B) (+ C if
 * accumulate; op(B) = B (k x n), or with LIBXSMM_GEMM_FLAG_TRANS_B the transpose of
 * the n x k matrix at B), or NULL where it has none. */
static xsmm_kernel xsmm_dispatch(int m, int n, int k, int lda, int ldb, int ldc, int accumulate,
                                 int flags) {
    libxsmm_blasint M = m, N = n, K = k, LDA = lda, LDB = ldb, LDC = ldc;
    int prefetch = LIBXSMM_GEMM_PREFETCH_NONE;
    if (IS_DOUBLE) {
        double alpha = 1, beta = accumulate ? 1 : 0;
        return (xsmm_kernel)libxsmm_dmmdispatch(M, N, K, &LDA, &LDB, &LDC, &alpha, &beta, &flags,
                                                &prefetch);
    }
    float alpha = 1, beta = accumulate ? 1 : 0;
    return (xsmm_kernel)libxsmm_smmdispatch(M, N, K, &LDA, &LDB, &LDC, &alpha, &beta, &flags,
                                            &prefetch);
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: %s N D B n rounds [isa ...]\n", argv[0]);
        return 2;
    }
    int N = atoi(argv[1]), D = atoi(argv[2]), B = atoi(argv[3]), n = atoi(argv[4]);
    int rounds = atoi(argv[5]);
    int n_isa = argc - 6 < 4 ? argc - 6 : 4, isas[4];
    for (int i = 0; i < n_isa; i++)
        isas[i] = atoi(argv[6 + i]);
    int steps = N / B;
    /* read at run time, as the training step's is: with a constant, GCC specializes the
     * kernels for it (and then forms some write-backs as a product and a sum, not one
     * fused multiply-add), so they would not be the code that fastmlp runs */
    const T step = step_size;

    libxsmm_init();
    /* Row-major R (B x n) = Xb (B x D) @ W1 (D x n) is column-major R.T = W1.T @ Xb.T:
     * m = n, n = B, k = D, A = W1 (ld n), B = the gathered Xb (ld D). */
    xsmm_kernel forward = xsmm_dispatch(n, B, D, n, D, n, 0, LIBXSMM_GEMM_FLAG_NONE);
    /* W1 (D x n, row-major) += Xb.T @ dA1 is column-major W1.T += dA1.T @ Xb: m = n,
     * n = D, k = B, A = dA1 scaled (ld n), B = the transpose of the gathered Xb, which
     * is column-major D x B (ld D). */
    xsmm_kernel update = xsmm_dispatch(n, D, B, n, D, n, 1, LIBXSMM_GEMM_FLAG_TRANS_B);
    printf("# libxsmm %s, target %s\n", LIBXSMM_VERSION, libxsmm_get_target_arch());
    if (forward == NULL || update == NULL) {
        printf("# libxsmm has no JIT kernel for these shapes\n");
        return 0;
    }

    T *X = alloc(sizeof(T) * (size_t)N * D), *dA = alloc(sizeof(T) * B * n);
    T *Xb = alloc(sizeof(T) * B * D), *dAs = alloc(sizeof(T) * B * n);
    int64_t *order = alloc(sizeof(int64_t) * N);
    srand(1);
    for (size_t i = 0; i < (size_t)N * D; i++)
        X[i] = (T)((rand() % 2001) / 1000.0 - 1);
    for (int i = 0; i < B * n; i++)
        dA[i] = (T)((rand() % 2001) / 1000.0 - 1);
    for (int i = 0; i < N; i++)
        order[i] = i;
    for (int i = N - 1; i > 0; i--) {
        int j = rand() % (i + 1);
        int64_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    /* contenders: fastmlp's kernels for each isa asked, then libxsmm */
    int n_contenders = n_isa + 1;
    T *W[5], *R[5];
    double median_step[5], gather_time = 0;
    T *W0 = alloc(sizeof(T) * D * n);
    for (int i = 0; i < D * n; i++)
        W0[i] = (T)((rand() % 2001) / 10000.0 - 0.1);
    for (int c = 0; c < n_contenders; c++) {
        W[c] = alloc(sizeof(T) * D * n);
        R[c] = alloc(sizeof(T) * B * n);
        memcpy(W[c], W0, sizeof(T) * D * n);
    }
    double *times = calloc((size_t)rounds * n_contenders, sizeof(double));
    for (int round = 0; round <= rounds; round++) {   /* round 0 warms up */
        for (int turn = 0; turn < n_contenders; turn++) {
            int c = (turn + round) % n_contenders;
            double t0 = now(), gathered = 0;
            for (int s = 0; s < steps; s++) {
                const int64_t *rows = order + (size_t)s * B;
                if (c < n_isa) {
                    nn(isas[c], B, n, D, X, D, rows, W[c], n, R[c], n);
                    tn(isas[c], D, n, B, step, X, D, rows, dA, n, W[c], n);
                } else {
                    double g0 = now();
                    for (int r = 0; r < B; r++)
                        memcpy(Xb + (size_t)r * D, X + rows[r] * (size_t)D, sizeof(T) * D);
                    for (int i = 0; i < B * n; i++)
                        dAs[i] = step * dA[i];
                    gathered += now() - g0;
                    forward(W[c], Xb, R[c]);
                    update(dAs, Xb, W[c]);
                }
            }
            double t = (now() - t0) / steps;
            if (round > 0) {
                times[(round - 1) * n_contenders + c] = t;
                if (c == n_isa)
                    gather_time += gathered / steps;
            }
        }
    }
    /* median per contender */
    for (int c = 0; c < n_contenders; c++) {
        double *v = malloc(sizeof(double) * rounds);
        for (int r = 0; r < rounds; r++)
            v[r] = times[r * n_contenders + c];
        for (int i = 1; i < rounds; i++)
            for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
                double t = v[j];
                v[j] = v[j - 1];
                v[j - 1] = t;
            }
        median_step[c] = v[rounds / 2];
        free(v);
    }
    /* every contender made the same steps on the same start: compare with the first */
    for (int c = 0; c < n_contenders; c++) {
        double worst = 0, largest = 0;     /* max |W_c - W_0| / max |W_0| */
        for (int i = 0; i < D * n; i++) {
            double ref = W[0][i], d = W[c][i] - ref;
            if ((d < 0 ? -d : d) > worst)
                worst = d < 0 ? -d : d;
            if ((ref < 0 ? -ref : ref) > largest)
                largest = ref < 0 ? -ref : ref;
        }
        worst /= largest > 0 ? largest : 1;
        if (c < n_isa)
            printf("fastmlp %d ", isas[c]);
        else
            printf("libxsmm ");
        printf("%.3f %.2f %.3g\n", 1e6 * median_step[c], 4.0 * B * n * D / median_step[c] / 1e9, worst);
    }
    printf("copies %.3f\n", 1e6 * gather_time / rounds);
    return 0;
}

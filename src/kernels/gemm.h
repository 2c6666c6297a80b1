/* Matrix multiplication used by the layers: C = alpha * op(A) op(B) + beta * C,
 * row-major. It wraps OpenBLAS's sgemm, which the layers call from inside
 * OpenMP regions with OpenBLAS itself kept single-threaded. */
#ifndef RN_KERNELS_GEMM_H
#define RN_KERNELS_GEMM_H

void rn_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha,
              const float *a, int lda, const float *b, int ldb, float beta,
              float *c, int ldc);

/* Set the number of OpenMP threads the library uses (0: all cores) and keep
 * OpenBLAS single-threaded, because the library calls it from its own
 * threads. Returns the thread count in effect. */
int rn_threads_set(int threads);
int rn_threads_get(void);

#endif

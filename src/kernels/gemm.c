#include "kernels/gemm.h"

#include <cblas.h>
#include <omp.h>

/* Declared by OpenBLAS's cblas.h on most systems, but not by every cblas.h
 * that the alternatives system may select. */
void openblas_set_num_threads(int num_threads);

void rn_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha,
              const float *a, int lda, const float *b, int ldb, float beta,
              float *c, int ldc)
{
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b,
                ldb, beta, c, ldc);
}

int rn_threads_set(int threads)
{
    if (threads <= 0)
        threads = omp_get_num_procs();
    /* Teams must get exactly the threads requested: OpenBLAS's OpenMP build
     * takes omp_get_max_threads() threads for a GEMM called from a team of
     * one, and waits forever for threads that OMP_THREAD_LIMIT or dynamic
     * adjustment withheld. */
    if (threads > omp_get_thread_limit())
        threads = omp_get_thread_limit();
    omp_set_dynamic(0);
    /* OpenBLAS's OpenMP build sets the OpenMP thread count too, so it goes
     * first and ours overrides it. */
    openblas_set_num_threads(1);
    omp_set_num_threads(threads);
    return threads;
}

int rn_threads_get(void)
{
    return omp_get_max_threads();
}

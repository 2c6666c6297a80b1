/* The machine's FP32 peak, measured: every thread runs independent chains
 * of vector FMAs, enough of them to hide the FMA latency, on registers only.
 * Benchmarks divide achieved GFLOP/s by it, so that a percentage of peak is
 * honest on any machine. */
#include <immintrin.h>
#include <omp.h>

#include "core/cpu.h"
#include "kernels/peak.h"

enum {
    CHAINS = 12,             /* independent accumulators per thread */
    ITERATIONS = 20000000,   /* FMAs per chain: an estimated 0.07 s at 3.7 GHz, one AVX-512 FMA per cycle */
};

#if defined(__x86_64__) && defined(__GNUC__)

/* Each function returns the sum of its accumulators, so that the compiler
 * cannot drop the loop. */
__attribute__((target("avx512f"))) static float fma_loop_avx512(long n)
{
    __m512 acc[CHAINS];
    __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < CHAINS; i++)
        acc[i] = _mm512_set1_ps((float)i);
    for (long k = 0; k < n; k++)
        for (int i = 0; i < CHAINS; i++)
            acc[i] = _mm512_fmadd_ps(acc[i], a, b);
    __m512 sum = acc[0];
    for (int i = 1; i < CHAINS; i++)
        sum = _mm512_add_ps(sum, acc[i]);
    return _mm512_reduce_add_ps(sum);
}

__attribute__((target("avx2,fma"))) static float fma_loop_avx2(long n)
{
    __m256 acc[CHAINS];
    __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < CHAINS; i++)
        acc[i] = _mm256_set1_ps((float)i);
    for (long k = 0; k < n; k++)
        for (int i = 0; i < CHAINS; i++)
            acc[i] = _mm256_fmadd_ps(acc[i], a, b);
    float lanes[8];
    __m256 sum = acc[0];
    for (int i = 1; i < CHAINS; i++)
        sum = _mm256_add_ps(sum, acc[i]);
    _mm256_storeu_ps(lanes, sum);
    return lanes[0] + lanes[1] + lanes[2] + lanes[3] + lanes[4] + lanes[5] + lanes[6] + lanes[7];
}

#endif

/* The portable fallback: 4 multiply-adds per chain, which the compiler may
 * vectorize for the baseline ISA. */
static float mul_add_loop(long n)
{
    float acc[CHAINS * 4];
    for (int i = 0; i < CHAINS * 4; i++)
        acc[i] = (float)i;
    for (long k = 0; k < n; k++)
        for (int i = 0; i < CHAINS * 4; i++)
            acc[i] = acc[i] * 0.999999f + 1e-7f;
    float sum = 0.0f;
    for (int i = 0; i < CHAINS * 4; i++)
        sum += acc[i];
    return sum;
}

double rn_peak_gflops(int threads, const char **isa)
{
    int lanes = 4;
    const char *name = "portable C";
#if defined(__x86_64__) && defined(__GNUC__)
    /* The widest loop that this build's kernels may use (see rn_cpu_avx512). */
    if (rn_cpu_avx512()) {
        lanes = 16;
        name = "AVX-512 FMA";
    } else if (!RN_ISA_BASELINE_ONLY && __builtin_cpu_supports("avx2") &&
               __builtin_cpu_supports("fma")) {
        lanes = 8;
        name = "AVX2 FMA";
    }
#endif
    volatile float sink = 0.0f;
    double start = 0.0, seconds = 0.0;
#pragma omp parallel num_threads(threads)
    {
        /* A short untimed run first brings the cores to their clock. */
        for (int pass = 0; pass < 2; pass++) {
            long n = pass == 0 ? ITERATIONS / 10 : ITERATIONS;
#pragma omp barrier
#pragma omp single
            start = omp_get_wtime();
            float r;
#if defined(__x86_64__) && defined(__GNUC__)
            if (lanes == 16)
                r = fma_loop_avx512(n);
            else if (lanes == 8)
                r = fma_loop_avx2(n);
            else
#endif
                r = mul_add_loop(n);
#pragma omp barrier
#pragma omp single
            seconds = omp_get_wtime() - start;
#pragma omp atomic
            sink += r;
        }
    }
    (void)sink;
    if (isa)
        *isa = name;
    return 2.0 * CHAINS * lanes * (double)ITERATIONS * threads / seconds / 1e9;
}

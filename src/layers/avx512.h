/* Small AVX-512 helpers shared by the convolution and pooling kernels. Each
 * is inline and compiled for AVX-512F only, so callers must have checked
 * rn_cpu_avx512() (core/cpu.h) before reaching it. */
#ifndef RN_LAYERS_AVX512_H
#define RN_LAYERS_AVX512_H

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#include <stddef.h>

/* Return the mask of the first n lanes of 16, all of them for n >= 16. */
static inline __attribute__((target("avx512f"), always_inline)) __mmask16
rn_first_lanes(size_t n)
{
    return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);
}

/* Copy n floats from src to dst, or zero them where src is NULL, with
 * masked vector loads and stores. On rows of a few dozen floats, memcpy and
 * memset cost more than the copy itself. */
static inline __attribute__((target("avx512f"), always_inline)) void
rn_copy_or_zero(float *dst, const float *src, size_t n)
{
    for (size_t x = 0; x < n; x += 16) {
        __mmask16 mask = rn_first_lanes(n - x);
        __m512 v = src ? _mm512_maskz_loadu_ps(mask, src + x) : _mm512_setzero_ps();
        _mm512_mask_storeu_ps(dst + x, mask, v);
    }
}
#endif

#endif

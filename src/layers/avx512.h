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

#define RN_TARGET_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

/* Round rows a and b (16 floats each) to BF16 and interleave them: lane
 * pair t of the result is (a[t], b[t]), the operand order of vdpbf16ps,
 * which multiplies and sums such pairs. Rounds to nearest even.
 * NOTE: floats from about 3.4e38 up round to Inf, and vdpbf16ps flushes
 * subnormal inputs to zero, so such extreme inputs can give NaN (Inf x 0)
 * where the FP32 paths give a finite result. */
static inline RN_TARGET_BF16 __attribute__((always_inline)) __m512bh
rn_bf16_pairs(__m512 a, __m512 b)
{
    const __m512i order = _mm512_setr_epi32(0x00100000, 0x00110001, 0x00120002, 0x00130003,
                                            0x00140004, 0x00150005, 0x00160006, 0x00170007,
                                            0x00180008, 0x00190009, 0x001a000a, 0x001b000b,
                                            0x001c000c, 0x001d000d, 0x001e000e, 0x001f000f);
    __m512i packed = (__m512i)_mm512_cvtne2ps_pbh(b, a); /* a in 0..15, b in 16..31 */
    return (__m512bh)_mm512_permutexvar_epi16(order, packed);
}

/* Replace rows 2q and 2q + 1 of a matrix by their BF16 pairs, written over
 * row 2q: column x of the pair is at halves 2x and 2x + 1 of row 2q. The
 * matrix has `rows` rows of `width` floats (a multiple of 16), `stride`
 * floats apart. A missing last odd row counts as zeros. */
static inline RN_TARGET_BF16 void
rn_bf16_pair_rows(float *m, size_t stride, int rows, int width)
{
    for (int r = 0; r < rows; r += 2) {
        float *r0 = m + (size_t)r * stride;
        const float *r1 = r + 1 < rows ? r0 + stride : NULL;
        for (int x = 0; x < width; x += 16) {
            __m512 a = _mm512_loadu_ps(r0 + x);
            __m512 b = r1 ? _mm512_loadu_ps(r1 + x) : _mm512_setzero_ps();
            _mm512_storeu_ps(r0 + x, (__m512)rn_bf16_pairs(a, b));
        }
    }
}

/* Replace row[0, n) by its BF16 rounding, n halves from the row's start,
 * with a zero after an odd n so that the last pair is complete. */
static inline RN_TARGET_BF16 void
rn_bf16_row(float *row, size_t n)
{
    for (size_t x = 0; x < n; x += 16) {
        __m512 a = _mm512_maskz_loadu_ps(rn_first_lanes(n - x), row + x);
        _mm256_storeu_si256((__m256i *)((char *)row + 2 * x), (__m256i)_mm512_cvtneps_pbh(a));
    }
}
#endif

#endif

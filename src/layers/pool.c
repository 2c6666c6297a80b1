/* Max pooling and global average pooling over NCHW. */
#include <math.h>

#include "core/cpu.h"
#include "layers/layers.h"

void rn_pool_shape_infer(rn_pool_shape *s)
{
    s->oh = (s->ih + 2 * s->ph - s->kh) / s->sh + 1;
    s->ow = (s->iw + 2 * s->pw - s->kw) / s->sw + 1;
}

/* The larger of a and v, or the NaN when either is one: PyTorch's max
 * propagates NaN. A select on loaded values, so loops of it vectorize. */
static inline float max_nan(float a, float v)
{
    return v > a || v != v ? v : a;
}

/* Output columns [*begin, *end) whose window column kj falls inside the
 * image; the others fall on padding. */
static void tap_columns(const rn_pool_shape *s, int kj, int *begin, int *end)
{
    int offset = kj - s->pw; /* ix = ox * sw + offset */
    int first = offset >= 0 ? 0 : (-offset + s->sw - 1) / s->sw;
    int last = (s->iw - offset + s->sw - 1) / s->sw;
    *begin = first;
    *end = last > s->ow ? s->ow : last;
}

/* One output plane without indices, for evaluation: every tap of the
 * window as a pass over the output row, which vectorizes. Padding never
 * wins, so the taps that fall on it are skipped. */
RN_CLONES static void maxpool_plane(float *y, const float *x, const rn_pool_shape *s)
{
    for (int oy = 0; oy < s->oh; oy++) {
        float *out = y + (size_t)oy * s->ow;
        for (int ox = 0; ox < s->ow; ox++)
            out[ox] = -INFINITY;
        for (int ki = 0; ki < s->kh; ki++) {
            int iy = oy * s->sh - s->ph + ki;
            if (iy < 0 || iy >= s->ih)
                continue;
            for (int kj = 0; kj < s->kw; kj++) {
                int begin, end;
                tap_columns(s, kj, &begin, &end);
                const float *in = x + (size_t)iy * s->iw + kj - s->pw;
                if (s->sw == 2) {
                    for (int ox = begin; ox < end; ox++)
                        out[ox] = max_nan(out[ox], in[2 * ox]);
                } else {
                    for (int ox = begin; ox < end; ox++)
                        out[ox] = max_nan(out[ox], in[ox * s->sw]);
                }
            }
        }
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include "layers/avx512.h"

enum { ROW_MAX = 4096 }; /* widest plane the 3x3 stride-2 path takes */

/* max_nan on 16 lanes: b where b > a or b is NaN, else a. */
static inline __attribute__((target("avx512f"), always_inline)) __m512
max_nan16(__m512 a, __m512 b)
{
    __mmask16 take = _mm512_cmp_ps_mask(b, a, _CMP_GT_OQ) | _mm512_cmp_ps_mask(b, b, _CMP_UNORD_Q);
    return _mm512_mask_blend_ps(take, a, b);
}

/* The 3x3 window at stride 2 with padding 1 of ResNet's stem, without
 * indices: per output row, the maximum of the three input rows, then of
 * three neighbours in it, with the even and odd columns split by permutes.
 * Values match maxpool_plane's, NaN included; among equal zeros a different
 * sign may win, because the taps are visited column by column. */
__attribute__((target("avx512f"))) static void maxpool_plane_3x3s2(float *y, const float *x,
                                                                    const rn_pool_shape *s)
{
    /* rows[1 + i] is column i of the rows' maximum; -inf around it. */
    float rows[ROW_MAX + 80] __attribute__((aligned(64)));
    const __m512 low = _mm512_set1_ps(-INFINITY);
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                           28, 30);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27,
                                          29, 31);
    int iw = s->iw;
    rows[0] = -INFINITY;
    for (int i = iw + 1; i < iw + 80; i++)
        rows[i] = -INFINITY;
    for (int oy = 0; oy < s->oh; oy++) {
        int first = 2 * oy - 1 < 0 ? 0 : 2 * oy - 1;
        int last = 2 * oy + 1 < s->ih ? 2 * oy + 1 : s->ih - 1;
        for (int i = 0; i < iw; i += 16) {
            __mmask16 mask = rn_first_lanes(iw - i);
            __m512 m = low;
            for (int iy = first; iy <= last; iy++)
                m = max_nan16(m, _mm512_mask_loadu_ps(low, mask, x + (size_t)iy * iw + i));
            _mm512_mask_storeu_ps(rows + 1 + i, mask, m);
        }
        float *out = y + (size_t)oy * s->ow;
        for (int ox = 0; ox < s->ow; ox += 16) {
            /* Output ox reads rows[2 ox], rows[2 ox + 1], rows[2 ox + 2]. */
            const float *r = rows + 2 * ox;
            __m512 a = _mm512_loadu_ps(r), b = _mm512_loadu_ps(r + 16);
            __m512 c = _mm512_loadu_ps(r + 2), d = _mm512_loadu_ps(r + 18);
            __m512 m = max_nan16(low, _mm512_permutex2var_ps(a, even, b));
            m = max_nan16(m, _mm512_permutex2var_ps(a, odd, b));
            m = max_nan16(m, _mm512_permutex2var_ps(c, even, d));
            int n = s->ow - ox;
            __mmask16 mask = rn_first_lanes(n);
            _mm512_mask_storeu_ps(out + ox, mask, m);
        }
    }
}

static int takes_3x3s2(const rn_pool_shape *s)
{
    return rn_cpu_avx512() && s->kh == 3 && s->kw == 3 && s->sh == 2 &&
           s->sw == 2 && s->ph == 1 && s->pw == 1 && s->iw <= ROW_MAX;
}
#else
static int takes_3x3s2(const rn_pool_shape *s)
{
    (void)s;
    return 0;
}

static void maxpool_plane_3x3s2(float *y, const float *x, const rn_pool_shape *s)
{
    (void)y, (void)x, (void)s;
}
#endif

/* One output plane with the index of each maximum, for training, as
 * passes over output rows like maxpool_plane. Taps come in the window's
 * row-major order, so the first maximum wins. The first tap of each window
 * is always taken, and after it the first NaN. */
RN_CLONES static void maxpool_plane_indices(float *y, int32_t *arg, const float *x,
                                            const rn_pool_shape *s)
{
    for (int oy = 0; oy < s->oh; oy++) {
        float *out = y + (size_t)oy * s->ow;
        int32_t *index = arg + (size_t)oy * s->ow;
        for (int ox = 0; ox < s->ow; ox++) {
            out[ox] = -INFINITY;
            index[ox] = -1;
        }
        for (int ki = 0; ki < s->kh; ki++) {
            int iy = oy * s->sh - s->ph + ki;
            if (iy < 0 || iy >= s->ih)
                continue;
            for (int kj = 0; kj < s->kw; kj++) {
                int begin, end;
                tap_columns(s, kj, &begin, &end);
                int32_t base = iy * s->iw + kj - s->pw; /* ix = ox * sw + kj - pw */
                const float *in = x + base;
                int sw = s->sw;
                for (int ox = begin; ox < end; ox++) {
                    float v = in[ox * sw], best = out[ox];
                    int take = (v > best) | ((v != v) & (best == best)) | (index[ox] < 0);
                    out[ox] = take ? v : best;
                    index[ox] = take ? base + ox * sw : index[ox];
                }
            }
        }
    }
}

void rn_maxpool_forward(float *dst, int32_t *argmax, const float *src,
                        const rn_pool_shape *s)
{
    if (!argmax) {
        size_t in_plane = (size_t)s->ih * s->iw, out_plane = (size_t)s->oh * s->ow;
        int fast = takes_3x3s2(s);
#pragma omp parallel for schedule(static)
        for (long plane = 0; plane < (long)s->mb * s->c; plane++) {
            if (fast)
                maxpool_plane_3x3s2(dst + plane * out_plane, src + plane * in_plane, s);
            else
                maxpool_plane(dst + plane * out_plane, src + plane * in_plane, s);
        }
        return;
    }
    size_t in_plane = (size_t)s->ih * s->iw;
    size_t out_plane = (size_t)s->oh * s->ow;
#pragma omp parallel for schedule(static)
    for (long plane = 0; plane < (long)s->mb * s->c; plane++)
        maxpool_plane_indices(dst + plane * out_plane, argmax + plane * out_plane,
                              src + plane * in_plane, s);
}

void rn_maxpool_backward(float *diff_src, const float *diff_dst,
                         const int32_t *argmax, const rn_pool_shape *s)
{
    size_t in_plane = (size_t)s->ih * s->iw;
    size_t out_plane = (size_t)s->oh * s->ow;

#pragma omp parallel for schedule(static)
    for (long plane = 0; plane < (long)s->mb * s->c; plane++) {
        float *dx = diff_src + plane * in_plane;
        const float *dy = diff_dst + plane * out_plane;
        const int32_t *arg = argmax + plane * out_plane;
        for (size_t i = 0; i < out_plane; i++)
            if (arg[i] >= 0)
                dx[arg[i]] += dy[i];
    }
}

void rn_avgpool_global_forward(float *dst, const float *src, int mb, int c,
                               int hw)
{
#pragma omp parallel for schedule(static)
    for (long plane = 0; plane < (long)mb * c; plane++) {
        const float *x = src + plane * hw;
        float sum = 0.0f;
        for (int i = 0; i < hw; i++)
            sum += x[i];
        dst[plane] = sum / hw;
    }
}

void rn_avgpool_global_backward(float *diff_src, const float *diff_dst, int mb,
                                int c, int hw)
{
#pragma omp parallel for schedule(static)
    for (long plane = 0; plane < (long)mb * c; plane++) {
        float g = diff_dst[plane] / hw;
        float *dx = diff_src + plane * hw;
        for (int i = 0; i < hw; i++)
            dx[i] += g;
    }
}

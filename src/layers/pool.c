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
#pragma omp parallel for schedule(static)
        for (long plane = 0; plane < (long)s->mb * s->c; plane++)
            maxpool_plane(dst + plane * out_plane, src + plane * in_plane, s);
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

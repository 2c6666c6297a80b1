/* Max pooling and global average pooling over NCHW. */
#include <float.h>

#include "layers/layers.h"

void rn_pool_shape_infer(rn_pool_shape *s)
{
    s->oh = (s->ih + 2 * s->ph - s->kh) / s->sh + 1;
    s->ow = (s->iw + 2 * s->pw - s->kw) / s->sw + 1;
}

void rn_maxpool_forward(float *dst, int32_t *argmax, const float *src,
                        const rn_pool_shape *s)
{
    size_t in_plane = (size_t)s->ih * s->iw;
    size_t out_plane = (size_t)s->oh * s->ow;

#pragma omp parallel for schedule(static)
    for (long plane = 0; plane < (long)s->mb * s->c; plane++) {
        const float *x = src + plane * in_plane;
        float *y = dst + plane * out_plane;
        int32_t *arg = argmax + plane * out_plane;
        for (int oy = 0; oy < s->oh; oy++) {
            for (int ox = 0; ox < s->ow; ox++) {
                float best = -FLT_MAX;
                int32_t best_index = -1;
                for (int ki = 0; ki < s->kh; ki++) {
                    int iy = oy * s->sh - s->ph + ki;
                    if (iy < 0 || iy >= s->ih)
                        continue;
                    for (int kj = 0; kj < s->kw; kj++) {
                        int ix = ox * s->sw - s->pw + kj;
                        if (ix < 0 || ix >= s->iw)
                            continue;
                        float v = x[iy * s->iw + ix];
                        /* The first maximum wins, and NaN propagates. */
                        if (best_index < 0 || v > best || v != v) {
                            best = v;
                            best_index = iy * s->iw + ix;
                            if (v != v)
                                goto found;
                        }
                    }
                }
            found:
                y[oy * s->ow + ox] = best;
                arg[oy * s->ow + ox] = best_index;
            }
        }
    }
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

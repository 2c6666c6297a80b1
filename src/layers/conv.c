/* 2-D convolution as im2col + GEMM, one image per OpenMP thread.
 *
 * For image n: dst_n (oc, oh*ow) = weights (oc, K) x col_n (K, oh*ow), where
 * K = ic*kh*kw and col_n is the im2col copy of src_n. A grouped convolution
 * runs one such product per group on its slice of rows: group g multiplies
 * weight rows [g*oc/G, (g+1)*oc/G) by column rows [g*K/G, (g+1)*K/G), because
 * im2col lays the rows out channel by channel. A 1x1 convolution with
 * stride 1 and no padding uses src_n directly. Each thread owns a slice of
 * the scratch memory: a column buffer, a column-gradient buffer and a private
 * weight-gradient accumulator that is summed after the loop, so threads never
 * write the same memory. */
#include <omp.h>
#include <string.h>

#include "core/cpu.h"
#include "core/status.h"
#include "kernels/gemm.h"
#include "layers/conv_direct.h"
#include "layers/layers.h"

void rn_conv_shape_infer(rn_conv_shape *s)
{
    s->oh = (s->ih + 2 * s->ph - s->kh) / s->sh + 1;
    s->ow = (s->iw + 2 * s->pw - s->kw) / s->sw + 1;
}

static int is_pointwise(const rn_conv_shape *s)
{
    return s->kh == 1 && s->kw == 1 && s->sh == 1 && s->sw == 1 &&
           s->ph == 0 && s->pw == 0;
}

static int group_count(const rn_conv_shape *s)
{
    return s->groups > 1 ? s->groups : 1;
}

static size_t col_numel(const rn_conv_shape *s)
{
    return (size_t)s->ic * s->kh * s->kw * s->oh * s->ow;
}

static size_t thread_scratch_numel(const rn_conv_shape *s)
{
    size_t weights = (size_t)s->oc * (s->ic / group_count(s)) * s->kh * s->kw;
    /* Column buffer, column-gradient buffer, weight-gradient accumulator;
     * each rounded to 16 floats to keep 64-byte alignment. */
    return 2 * ((col_numel(s) + 15) & ~(size_t)15) + ((weights + 15) & ~(size_t)15);
}

size_t rn_conv2d_scratch_numel(const rn_conv_shape *s, int threads)
{
    size_t im2col_numel = thread_scratch_numel(s) * (size_t)threads;
    size_t direct_numel = rn_conv_direct_applies(s) ? rn_conv_direct_scratch_numel(s, threads) : 0;
    return im2col_numel > direct_numel ? im2col_numel : direct_numel;
}

/* Output columns [*x_begin, *x_end) read input columns inside the image for
 * kernel column kj; the others read padding. */
static void valid_columns(const rn_conv_shape *s, int kj, int *x_begin, int *x_end)
{
    int offset = kj - s->pw; /* ix = x * sw + offset */
    int begin = offset >= 0 ? 0 : (-offset + s->sw - 1) / s->sw;
    int end = (s->iw - offset + s->sw - 1) / s->sw; /* first x with ix >= iw */
    if (end > s->ow)
        end = s->ow;
    if (begin > end)
        begin = end;
    *x_begin = begin;
    *x_end = end;
}

/* col (ic*kh*kw, oh*ow) from one image (ic, ih, iw). */
RN_CLONES static void im2col(float *col, const float *src, const rn_conv_shape *s)
{
    int ohw = s->oh * s->ow;
    for (int c = 0; c < s->ic; c++) {
        const float *plane = src + (size_t)c * s->ih * s->iw;
        for (int ki = 0; ki < s->kh; ki++) {
            for (int kj = 0; kj < s->kw; kj++) {
                float *row = col + ((size_t)(c * s->kh + ki) * s->kw + kj) * ohw;
                int x_begin, x_end;
                valid_columns(s, kj, &x_begin, &x_end);
                for (int y = 0; y < s->oh; y++) {
                    int iy = y * s->sh - s->ph + ki;
                    float *out = row + y * s->ow;
                    if (iy < 0 || iy >= s->ih) {
                        memset(out, 0, sizeof(float) * s->ow);
                        continue;
                    }
                    const float *in = plane + (size_t)iy * s->iw + kj - s->pw;
                    for (int x = 0; x < x_begin; x++)
                        out[x] = 0.0f;
                    if (s->sw == 1) {
                        memcpy(out + x_begin, in + x_begin, sizeof(float) * (x_end - x_begin));
                    } else {
                        for (int x = x_begin; x < x_end; x++)
                            out[x] = in[x * s->sw];
                    }
                    for (int x = x_end; x < s->ow; x++)
                        out[x] = 0.0f;
                }
            }
        }
    }
}

/* diff_src (ic, ih, iw) += the scatter of diff_col (ic*kh*kw, oh*ow). */
RN_CLONES static void col2im_add(float *diff_src, const float *diff_col,
                       const rn_conv_shape *s)
{
    int ohw = s->oh * s->ow;
    for (int c = 0; c < s->ic; c++) {
        float *plane = diff_src + (size_t)c * s->ih * s->iw;
        for (int ki = 0; ki < s->kh; ki++) {
            for (int kj = 0; kj < s->kw; kj++) {
                const float *row =
                    diff_col + ((size_t)(c * s->kh + ki) * s->kw + kj) * ohw;
                int x_begin, x_end;
                valid_columns(s, kj, &x_begin, &x_end);
                for (int y = 0; y < s->oh; y++) {
                    int iy = y * s->sh - s->ph + ki;
                    if (iy < 0 || iy >= s->ih)
                        continue;
                    float *out = plane + (size_t)iy * s->iw + kj - s->pw;
                    const float *in = row + y * s->ow;
                    if (s->sw == 1) {
                        for (int x = x_begin; x < x_end; x++)
                            out[x] += in[x];
                    } else {
                        for (int x = x_begin; x < x_end; x++)
                            out[x * s->sw] += in[x];
                    }
                }
            }
        }
    }
}

void rn_conv2d_forward(float *dst, const float *src, const float *weights,
                       const float *bias, const rn_conv_shape *s, float *scratch)
{
    int groups = group_count(s);
    int k = s->ic / groups * s->kh * s->kw; /* reduction length of one group */
    int ocg = s->oc / groups;
    int ohw = s->oh * s->ow;
    size_t src_stride = (size_t)s->ic * s->ih * s->iw;
    size_t dst_stride = (size_t)s->oc * ohw;
    size_t per_thread = thread_scratch_numel(s);

    RN_ASSERT(s->ic % groups == 0 && s->oc % groups == 0);
    if (rn_conv_direct_applies(s)) {
        rn_conv_direct_forward(dst, src, weights, bias, s, scratch);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int n = 0; n < s->mb; n++) {
        float *col = scratch + per_thread * omp_get_thread_num();
        const float *src_n = src + n * src_stride;
        float *dst_n = dst + n * dst_stride;

        if (is_pointwise(s)) {
            col = (float *)src_n;
        } else {
            im2col(col, src_n, s);
        }
        for (int g = 0; g < groups; g++)
            rn_sgemm(0, 0, ocg, ohw, k, 1.0f, weights + (size_t)g * ocg * k, k,
                     col + (size_t)g * k * ohw, ohw, 0.0f,
                     dst_n + (size_t)g * ocg * ohw, ohw);
        if (bias) {
            for (int o = 0; o < s->oc; o++) {
                float *row = dst_n + (size_t)o * ohw;
                for (int p = 0; p < ohw; p++)
                    row[p] += bias[o];
            }
        }
    }
}

void rn_conv2d_backward(float *diff_src, float *diff_weights, float *diff_bias,
                        const float *diff_dst, const float *src,
                        const float *weights, const rn_conv_shape *s,
                        float *scratch, rn_grad_mode mode)
{
    int groups = group_count(s);
    int k = s->ic / groups * s->kh * s->kw; /* reduction length of one group */
    int ocg = s->oc / groups;
    int ohw = s->oh * s->ow;
    size_t src_stride = (size_t)s->ic * s->ih * s->iw;
    size_t dst_stride = (size_t)s->oc * ohw;
    size_t per_thread = thread_scratch_numel(s);
    size_t col_size = (col_numel(s) + 15) & ~(size_t)15;
    size_t weights_numel = (size_t)s->oc * k;
    int threads = omp_get_max_threads();
    int pointwise = is_pointwise(s);

    if (rn_conv_direct_applies(s)) {
        rn_conv_direct_backward(diff_src, diff_weights, diff_dst, src, weights, s, scratch,
                                mode == RN_GRAD_OVERWRITE);
        goto bias;
    }
#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num();
        float *col = scratch + per_thread * t;
        float *diff_col = col + col_size;
        float *diff_weights_t = diff_col + col_size;

        if (diff_weights)
            memset(diff_weights_t, 0, sizeof(float) * weights_numel);

#pragma omp for schedule(static)
        for (int n = 0; n < s->mb; n++) {
            const float *src_n = src + n * src_stride;
            const float *diff_dst_n = diff_dst + n * dst_stride;

            if (diff_weights) {
                const float *col_n = src_n;
                if (!pointwise) {
                    im2col(col, src_n, s);
                    col_n = col;
                }
                /* diff_weights (oc, K) += diff_dst_n (oc, ohw) col_n^T */
                for (int g = 0; g < groups; g++)
                    rn_sgemm(0, 1, ocg, k, ohw, 1.0f,
                             diff_dst_n + (size_t)g * ocg * ohw, ohw,
                             col_n + (size_t)g * k * ohw, ohw, 1.0f,
                             diff_weights_t + (size_t)g * ocg * k, k);
            }
            if (diff_src) {
                float *diff_src_n = diff_src + n * src_stride;
                int overwrite = mode == RN_GRAD_OVERWRITE;
                /* diff_col (K, ohw) = weights^T (K, oc) diff_dst_n, written
                 * straight into diff_src_n for a pointwise convolution. */
                float *out = pointwise ? diff_src_n : diff_col;
                float beta = pointwise && !overwrite ? 1.0f : 0.0f;
                for (int g = 0; g < groups; g++)
                    rn_sgemm(1, 0, k, ohw, ocg, 1.0f,
                             weights + (size_t)g * ocg * k, k,
                             diff_dst_n + (size_t)g * ocg * ohw, ohw, beta,
                             out + (size_t)g * k * ohw, ohw);
                if (!pointwise) {
                    if (overwrite)
                        memset(diff_src_n, 0, sizeof(float) * src_stride);
                    col2im_add(diff_src_n, diff_col, s);
                }
            }
        }

        /* Sum the private accumulators, each thread a slice of the weights. */
        if (diff_weights) {
#pragma omp barrier
            int nthreads = omp_get_num_threads();
#pragma omp for schedule(static)
            for (size_t i = 0; i < weights_numel; i++) {
                float sum = 0.0f;
                for (int j = 0; j < nthreads; j++)
                    sum += scratch[per_thread * j + 2 * col_size + i];
                diff_weights[i] += sum;
            }
        }
    }

bias:
    if (diff_bias) {
#pragma omp parallel for schedule(static)
        for (int o = 0; o < s->oc; o++) {
            double sum = 0.0;
            for (int n = 0; n < s->mb; n++) {
                const float *row = diff_dst + n * dst_stride + (size_t)o * ohw;
                for (int p = 0; p < ohw; p++)
                    sum += row[p];
            }
            diff_bias[o] += (float)sum;
        }
    }
}

/* 2-D convolution as im2col + GEMM, for what the paths of our own leave:
 * the shapes and gradients that the direct kernel and Winograd
 * (conv_direct.c) and the implicit GEMM (conv_implicit.c) do not take.
 *
 * Images are processed in chunks of nb, one chunk per OpenMP thread at a
 * time. For a chunk, col (K, nb * ohw) contains the im2col copies of its images
 * side by side, with K = ic * kh * kw, and one product
 * weights (oc, K) x col gives the outputs of all nb images. Small images
 * share a GEMM this way: a 3x3 output plane alone would give the GEMM 9
 * columns. With nb = 1 the product is written straight into dst. A grouped
 * convolution runs one product per group on its slice of rows: group g
 * multiplies weight rows [g*oc/G, (g+1)*oc/G) by column rows
 * [g*K/G, (g+1)*K/G), because im2col lays the rows out channel by channel. A
 * 1x1 convolution with stride 1 and no padding and nb = 1 uses src_n
 * directly. Each thread owns a slice of the scratch memory: a column
 * buffer, a column-gradient buffer, an output buffer and a private
 * weight-gradient accumulator that is summed after the loop, so threads
 * never write the same memory. */
#include <omp.h>
#include <string.h>

#include "core/cpu.h"
#include "core/status.h"
#include "kernels/gemm.h"
#include "layers/conv_direct.h"
#include "layers/conv_implicit.h"
#include "layers/conv_winograd.h"
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

enum {
    /* Columns that a GEMM should get at least, where the batch allows. */
    GEMM_MIN_COLUMNS = 256,
};

/* Images per chunk: enough for GEMM_MIN_COLUMNS output columns, and chunks
 * spread evenly over the threads. */
static int chunk_images(const rn_conv_shape *s, int threads)
{
    int ohw = s->oh * s->ow;
    int nb = (GEMM_MIN_COLUMNS + ohw - 1) / ohw;
    if (nb <= 1)
        return 1;
    int chunks = (s->mb + nb - 1) / nb;
    chunks = (chunks + threads - 1) / threads * threads;
    nb = (s->mb + chunks - 1) / chunks;
    return nb < 1 ? 1 : nb;
}

static size_t round16(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

/* Per-thread scratch: column buffer, column-gradient buffer, output (or
 * output-gradient) buffer for nb > 1, and the weight-gradient accumulator,
 * each rounded to 16 floats to keep 64-byte alignment. */
typedef struct thread_scratch {
    size_t col, out, weights;
} thread_scratch;

static thread_scratch thread_scratch_of(const rn_conv_shape *s, int nb)
{
    size_t columns = (size_t)nb * s->oh * s->ow;
    thread_scratch t;
    t.col = round16((size_t)s->ic * s->kh * s->kw * columns);
    t.out = nb > 1 ? round16((size_t)s->oc * columns) : 0;
    t.weights = round16((size_t)s->oc * (s->ic / group_count(s)) * s->kh * s->kw);
    return t;
}

static size_t thread_scratch_numel(const rn_conv_shape *s, int threads)
{
    thread_scratch t = thread_scratch_of(s, chunk_images(s, threads));
    return 2 * t.col + t.out + t.weights;
}

size_t rn_conv2d_scratch_numel(const rn_conv_shape *s, int threads)
{
    size_t im2col_numel = thread_scratch_numel(s, threads) * (size_t)threads;
    /* The paths of our own, 0 where they never apply. */
    size_t own_numel = rn_conv_direct_scratch_numel(s, threads);
    size_t implicit_numel = rn_conv_implicit_scratch_numel(s, threads);
    size_t strided_numel = rn_conv_direct_strided_scratch_numel(s, threads);
    if (own_numel < implicit_numel)
        own_numel = implicit_numel;
    if (own_numel < strided_numel)
        own_numel = strided_numel;
    return im2col_numel > own_numel ? im2col_numel : own_numel;
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

/* Rows of channels [c_begin, c_end) of col (ic*kh*kw, oh*ow) from one image
 * (ic, ih, iw); rows are ld floats apart. */
RN_CLONES static void im2col_channels(float *col, size_t ld, const float *src,
                                      const rn_conv_shape *s, int c_begin, int c_end)
{
    for (int c = c_begin; c < c_end; c++) {
        const float *plane = src + (size_t)c * s->ih * s->iw;
        for (int ki = 0; ki < s->kh; ki++) {
            for (int kj = 0; kj < s->kw; kj++) {
                float *row = col + ((size_t)(c * s->kh + ki) * s->kw + kj) * ld;
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

static void im2col(float *col, size_t ld, const float *src, const rn_conv_shape *s)
{
    im2col_channels(col, ld, src, s, 0, s->ic);
}

/* diff_src (ic, ih, iw) += the scatter of diff_col (ic*kh*kw, oh*ow), whose
 * rows are ld floats apart. */
RN_CLONES static void col2im_add(float *diff_src, const float *diff_col, size_t ld,
                                 const rn_conv_shape *s)
{
    for (int c = 0; c < s->ic; c++) {
        float *plane = diff_src + (size_t)c * s->ih * s->iw;
        for (int ki = 0; ki < s->kh; ki++) {
            for (int kj = 0; kj < s->kw; kj++) {
                const float *row =
                    diff_col + ((size_t)(c * s->kh + ki) * s->kw + kj) * ld;
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

/* Copy rows (rows, ohw) of image j out of, or into, a chunk buffer whose
 * rows are width floats apart. */
static void chunk_gather(float *chunk, size_t width, const float *image, int rows, int ohw)
{
    for (int r = 0; r < rows; r++)
        memcpy(chunk + r * width, image + (size_t)r * ohw, sizeof(float) * ohw);
}

static void chunk_scatter(float *image, const float *chunk, size_t width, int rows, int ohw)
{
    for (int r = 0; r < rows; r++)
        memcpy(image + (size_t)r * ohw, chunk + r * width, sizeof(float) * ohw);
}

/* Each step rounds as the separate layers do (BN's x * scale + shift, then
 * the addition, then ReLU), so an inference plan that folds them gives the
 * same bits as one that runs them. */
RN_CLONES void rn_conv_finish(float *dst, const float *bias, const rn_conv_post *post,
                              const rn_conv_shape *s, int n, int o0, int o1)
{
    size_t ohw = (size_t)s->oh * s->ow;
    size_t image = (size_t)n * s->oc * ohw;
    for (int o = o0; o < o1; o++) {
        float *row = dst + image + (size_t)o * ohw;
        float b = bias ? bias[o] : 0.0f;
        if (!post) {
            for (size_t p = 0; p < ohw && bias; p++)
                row[p] += b;
            continue;
        }
        float scale = post->scale[o], shift = post->shift[o];
        const float *res = post->residual ? post->residual + image + (size_t)o * ohw : NULL;
        int relu = post->relu;
        /* One pass; the loop-invariant tests leave the rounding of each step
         * as it is. */
        for (size_t p = 0; p < ohw; p++) {
            float v = row[p];
            if (bias)
                v += b;
            v = v * scale + shift;
            if (res)
                v += res[p];
            row[p] = relu && v < 0.0f ? 0.0f : v; /* NaN and -0 stay, as in rn_relu_forward */
        }
    }
}

/* Fewer images than threads, as in inference on one image: for each image
 * the threads split im2col by channels and the product by columns. The
 * column buffer of one image fits the scratch, which has room for one per thread. */
static void forward_shared(float *dst, const float *src, const float *weights,
                           const float *bias, const rn_conv_shape *s, float *scratch,
                           const rn_conv_post *post)
{
    int groups = group_count(s);
    int k = s->ic / groups * s->kh * s->kw;
    int ocg = s->oc / groups;
    int ohw = s->oh * s->ow;
    size_t src_stride = (size_t)s->ic * s->ih * s->iw;
    size_t dst_stride = (size_t)s->oc * ohw;

    for (int n = 0; n < s->mb; n++) {
        const float *col = is_pointwise(s) ? src + n * src_stride : scratch;
#pragma omp parallel
        {
            int t = omp_get_thread_num(), nthreads = omp_get_num_threads();
            if (!is_pointwise(s)) {
                int c0 = (int)((long)s->ic * t / nthreads);
                int c1 = (int)((long)s->ic * (t + 1) / nthreads);
                im2col_channels(scratch, ohw, src + n * src_stride, s, c0, c1);
#pragma omp barrier
            }
            float *dst_n = dst + n * dst_stride;
            if (ohw >= 64 * nthreads) {
                /* Columns in multiples of 16 per thread. */
                int step = (ohw + 16 * nthreads - 1) / (16 * nthreads) * 16;
                int p0 = step * t, p1 = p0 + step < ohw ? p0 + step : ohw;
                for (int g = 0; p0 < p1 && g < groups; g++)
                    rn_sgemm(0, 0, ocg, p1 - p0, k, 1.0f, weights + (size_t)g * ocg * k, k,
                             col + (size_t)g * k * ohw + p0, ohw, 0.0f,
                             dst_n + (size_t)g * ocg * ohw + p0, ohw);
            } else {
                /* Small planes, such as 7x7: rows of output channels. */
                int o0 = (int)((long)ocg * t / nthreads), o1 = (int)((long)ocg * (t + 1) / nthreads);
                for (int g = 0; o0 < o1 && g < groups; g++)
                    rn_sgemm(0, 0, o1 - o0, ohw, k, 1.0f, weights + ((size_t)g * ocg + o0) * k, k,
                             col + (size_t)g * k * ohw, ohw, 0.0f,
                             dst_n + ((size_t)g * ocg + o0) * ohw, ohw);
            }
        }
        if (bias || post) {
#pragma omp parallel for schedule(static)
            for (int o = 0; o < s->oc; o++)
                rn_conv_finish(dst, bias, post, s, n, o, o + 1);
        }
    }
}

void rn_conv2d_forward(float *dst, const float *src, const float *weights,
                       const float *bias, const rn_conv_shape *s, float *scratch)
{
    rn_conv2d_forward_post(dst, src, weights, bias, s, scratch, NULL);
}

static rn_precision precision_setting = RN_PRECISION_FP32;

rn_precision rn_conv_set_precision(rn_precision precision)
{
    rn_precision was = precision_setting;
    RN_ASSERT(precision == RN_PRECISION_FP32 || rn_cpu_avx512_bf16());
    precision_setting = precision;
    return was;
}

rn_precision rn_conv_precision(void)
{
    return precision_setting;
}

size_t rn_conv2d_prepared_numel(const rn_conv_shape *s)
{
    if (!rn_conv_direct_applies_prepared(s) || !rn_winograd_enabled() ||
        !rn_winograd_suits_prepared(s))
        return 0;
    if (rn_winograd4_suits(s))
        return rn_winograd4_weights_numel(s->oc, s->ic);
    return rn_winograd_weights_numel(s->oc, s->ic);
}

void rn_conv2d_prepare_weights(float *prepared, const float *weights, const rn_conv_shape *s)
{
    RN_ASSERT(rn_winograd_suits_prepared(s));
    if (rn_winograd4_suits(s))
        rn_winograd4_transform_weights(prepared, weights, s->oc, s->ic, 0);
    else
        rn_winograd_transform_weights(prepared, weights, s->oc, s->ic, 0);
}

int rn_conv2d_prepared_serves(const rn_conv_shape *prepared, const rn_conv_shape *s)
{
    return rn_winograd4_suits(prepared) == rn_winograd4_suits(s);
}

void rn_conv2d_forward_post(float *dst, const float *src, const float *weights,
                            const float *bias, const rn_conv_shape *s, float *scratch,
                            const rn_conv_post *post)
{
    rn_conv2d_forward_prepared(dst, src, weights, NULL, bias, s, scratch, post);
}

void rn_conv2d_forward_prepared(float *dst, const float *src, const float *weights,
                                const float *prepared, const float *bias,
                                const rn_conv_shape *s, float *scratch,
                                const rn_conv_post *post)
{
    int groups = group_count(s);
    int k = s->ic / groups * s->kh * s->kw; /* reduction length of one group */
    int ocg = s->oc / groups;
    int ohw = s->oh * s->ow;
    size_t src_stride = (size_t)s->ic * s->ih * s->iw;
    size_t dst_stride = (size_t)s->oc * ohw;

    RN_ASSERT(s->ic % groups == 0 && s->oc % groups == 0);
    if (prepared ? rn_conv_direct_applies_prepared(s) : rn_conv_direct_applies(s)) {
        rn_conv_direct_forward(dst, src, weights, prepared, bias, s, scratch, post);
        return;
    }
    if (rn_conv_implicit_applies(s)) {
        rn_conv_implicit_forward(dst, src, weights, bias, s, scratch, post);
        return;
    }
    int threads = omp_get_max_threads();
    int nb = chunk_images(s, threads);
    int chunks = (s->mb + nb - 1) / nb;
    thread_scratch sizes = thread_scratch_of(s, nb);
    size_t per_thread = thread_scratch_numel(s, threads);

    if (s->mb < threads) {
        forward_shared(dst, src, weights, bias, s, scratch, post);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int chunk = 0; chunk < chunks; chunk++) {
        float *col = scratch + per_thread * omp_get_thread_num();
        float *out = col + 2 * sizes.col;
        int n0 = chunk * nb;
        int count = s->mb - n0 < nb ? s->mb - n0 : nb;
        size_t width = (size_t)count * ohw;

        if (count == 1 && is_pointwise(s)) {
            col = (float *)(src + n0 * src_stride);
        } else {
            for (int j = 0; j < count; j++)
                im2col(col + (size_t)j * ohw, width, src + (n0 + j) * src_stride, s);
        }
        if (count == 1)
            out = dst + n0 * dst_stride;
        for (int g = 0; g < groups; g++)
            rn_sgemm(0, 0, ocg, (int)width, k, 1.0f, weights + (size_t)g * ocg * k, k,
                     col + (size_t)g * k * width, (int)width, 0.0f,
                     out + (size_t)g * ocg * width, (int)width);
        if (count > 1) {
            for (int j = 0; j < count; j++)
                chunk_scatter(dst + (n0 + j) * dst_stride, out + (size_t)j * ohw, width,
                              s->oc, ohw);
        }
        if (bias || post) {
            for (int j = 0; j < count; j++)
                rn_conv_finish(dst, bias, post, s, n0 + j, 0, s->oc);
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
    size_t weights_numel = (size_t)s->oc * k;
    int pointwise = is_pointwise(s);

    if (rn_conv_direct_applies(s)) {
        int weights_too = rn_conv_direct_weights_apply(s);
        rn_conv_direct_backward(diff_src, weights_too ? diff_weights : NULL, diff_dst, src,
                                weights, s, scratch, mode == RN_GRAD_OVERWRITE);
        if (weights_too || !diff_weights)
            goto bias;
        diff_src = NULL; /* im2col adds the weight gradient */
    } else if (diff_src && rn_conv_implicit_backward_applies(s)) {
        rn_conv_implicit_backward_data(diff_src, diff_dst, weights, s, scratch,
                                        mode == RN_GRAD_OVERWRITE);
        if (!diff_weights)
            goto bias;
        diff_src = NULL; /* im2col adds the weight gradient */
    }
    if (diff_weights && rn_conv_direct_strided_weights_apply(s)) {
        rn_conv_direct_strided_weights(diff_weights, diff_dst, src, s, scratch);
        diff_weights = NULL;
        if (!diff_src)
            goto bias;
    }
    int threads = omp_get_max_threads();
    int nb = chunk_images(s, threads);
    int chunks = (s->mb + nb - 1) / nb;
    thread_scratch sizes = thread_scratch_of(s, nb);
    size_t per_thread = thread_scratch_numel(s, threads);
    size_t weights_offset = 2 * sizes.col + sizes.out;

#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num();
        float *col = scratch + per_thread * t;
        float *diff_col = col + sizes.col;
        float *dy_chunk = diff_col + sizes.col;
        float *diff_weights_t = scratch + per_thread * t + weights_offset;

        if (diff_weights)
            memset(diff_weights_t, 0, sizeof(float) * weights_numel);

#pragma omp for schedule(static)
        for (int chunk = 0; chunk < chunks; chunk++) {
            int n0 = chunk * nb;
            int count = s->mb - n0 < nb ? s->mb - n0 : nb;
            size_t width = (size_t)count * ohw;
            const float *dy = diff_dst + n0 * dst_stride;
            int direct = count == 1 && pointwise; /* src and diff_src are the columns */

            if (count > 1) {
                for (int j = 0; j < count; j++)
                    chunk_gather(dy_chunk + (size_t)j * ohw, width,
                                 diff_dst + (n0 + j) * dst_stride, s->oc, ohw);
                dy = dy_chunk;
            }
            if (diff_weights) {
                const float *col_n = src + n0 * src_stride;
                if (!direct) {
                    for (int j = 0; j < count; j++)
                        im2col(col + (size_t)j * ohw, width, src + (n0 + j) * src_stride, s);
                    col_n = col;
                }
                /* diff_weights (oc, K) += dy (oc, width) col_n^T */
                for (int g = 0; g < groups; g++)
                    rn_sgemm(0, 1, ocg, k, (int)width, 1.0f, dy + (size_t)g * ocg * width,
                             (int)width, col_n + (size_t)g * k * width, (int)width, 1.0f,
                             diff_weights_t + (size_t)g * ocg * k, k);
            }
            if (diff_src) {
                int overwrite = mode == RN_GRAD_OVERWRITE;
                /* diff_col (K, width) = weights^T (K, oc) dy, written straight
                 * into diff_src for a pointwise convolution of one image. */
                float *out = direct ? diff_src + n0 * src_stride : diff_col;
                float beta = direct && !overwrite ? 1.0f : 0.0f;
                for (int g = 0; g < groups; g++)
                    rn_sgemm(1, 0, k, (int)width, ocg, 1.0f, weights + (size_t)g * ocg * k, k,
                             dy + (size_t)g * ocg * width, (int)width, beta,
                             out + (size_t)g * k * width, (int)width);
                if (!direct) {
                    for (int j = 0; j < count; j++) {
                        float *diff_src_n = diff_src + (n0 + j) * src_stride;
                        if (overwrite)
                            memset(diff_src_n, 0, sizeof(float) * src_stride);
                        col2im_add(diff_src_n, diff_col + (size_t)j * ohw, width, s);
                    }
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
                    sum += scratch[per_thread * j + weights_offset + i];
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

/* Batch normalization over (mb, c, h, w) with PyTorch's BatchNorm2d
 * semantics. Channels are independent, so OpenMP splits the channels;
 * per-channel sums are taken in double to keep large batches accurate. */
#include <math.h>

#include "core/cpu.h"
#include "layers/layers.h"

/* Per-plane kernels, compiled for each vector width (core/cpu.h). */

RN_CLONES static float plane_sum(const float *x, size_t n)
{
    float acc[RN_LANES] = {0};
    size_t i = 0;
    for (; i + RN_LANES <= n; i += RN_LANES)
        for (int j = 0; j < RN_LANES; j++)
            acc[j] += x[i + j];
    float sum = 0.0f;
    for (; i < n; i++)
        sum += x[i];
    for (int j = 0; j < RN_LANES; j++)
        sum += acc[j];
    return sum;
}

RN_CLONES static float plane_sum_sq_centered(const float *x, size_t n, float mean)
{
    float acc[RN_LANES] = {0};
    size_t i = 0;
    for (; i + RN_LANES <= n; i += RN_LANES)
        for (int j = 0; j < RN_LANES; j++) {
            float d = x[i + j] - mean;
            acc[j] += d * d;
        }
    float sum = 0.0f;
    for (; i < n; i++)
        sum += (x[i] - mean) * (x[i] - mean);
    for (int j = 0; j < RN_LANES; j++)
        sum += acc[j];
    return sum;
}

/* y = x * scale + shift, then max(0, y) when relu (NaN stays NaN). */
RN_CLONES static void plane_affine(float *y, const float *x, size_t n, float scale,
                                   float shift, int relu)
{
    if (relu) {
        for (size_t i = 0; i < n; i++) {
            float v = x[i] * scale + shift;
            y[i] = v < 0.0f ? 0.0f : v;
        }
    } else {
        for (size_t i = 0; i < n; i++)
            y[i] = x[i] * scale + shift;
    }
}

/* Sums of g and g * (x - mean), where g = dy, masked by relu_out > 0 when
 * relu_out is not NULL. */
RN_CLONES static void plane_grad_sums(const float *x, const float *dy, const float *relu_out,
                                      size_t n, float mean, float *sum_g, float *sum_gx)
{
    /* Vector types rather than lane arrays: GCC turned the arrays into
     * permutes here. Each lane still sums its own elements in order. */
    rn_vf16 acc_g = {0}, acc_gx = {0}, mean_v = (rn_vf16){0} + mean;
    size_t i = 0;
    if (relu_out) {
        for (; i + RN_LANES <= n; i += RN_LANES) {
            rn_vf16 g = RN_VF16_WHERE_POSITIVE(RN_VF16_LOAD(relu_out + i), RN_VF16_LOAD(dy + i));
            acc_g += g;
            acc_gx += g * (RN_VF16_LOAD(x + i) - mean_v);
        }
    } else {
        for (; i + RN_LANES <= n; i += RN_LANES) {
            rn_vf16 d = RN_VF16_LOAD(dy + i);
            acc_g += d;
            acc_gx += d * (RN_VF16_LOAD(x + i) - mean_v);
        }
    }
    float g_total = 0.0f, gx_total = 0.0f;
    for (; i < n; i++) {
        float g = !relu_out || relu_out[i] > 0.0f ? dy[i] : 0.0f;
        g_total += g;
        gx_total += g * (x[i] - mean);
    }
    for (int j = 0; j < RN_LANES; j++) {
        g_total += acc_g[j];
        gx_total += acc_gx[j];
    }
    *sum_g = g_total;
    *sum_gx = gx_total;
}

/* dx (+)= k * (g - mean_g - (x - mean) * invstd * mean_gxhat) */
RN_CLONES static void plane_grad_src(float *dx, const float *x, const float *dy,
                                     const float *relu_out, size_t n, float mean,
                                     float invstd, float k, float mean_g,
                                     float mean_gxhat, int overwrite)
{
    for (size_t i = 0; i < n; i++) {
        float g = !relu_out || relu_out[i] > 0.0f ? dy[i] : 0.0f;
        float xhat = (x[i] - mean) * invstd;
        float value = k * (g - mean_g - xhat * mean_gxhat);
        dx[i] = overwrite ? value : dx[i] + value;
    }
}

void rn_bn_forward_train(float *dst, float *save_mean, float *save_invstd,
                         float *running_mean, float *running_var,
                         const float *src, const float *gamma,
                         const float *beta, const rn_bn_shape *s,
                         rn_activation activation)
{
    size_t hw = (size_t)s->h * s->w;
    size_t count = hw * s->mb;
    int relu = activation == RN_ACTIVATION_RELU;
    size_t batch_stride = (size_t)s->c * hw;

#pragma omp parallel for schedule(static)
    for (int c = 0; c < s->c; c++) {
        double sum = 0.0, sum_sq = 0.0;
        for (int n = 0; n < s->mb; n++)
            sum += plane_sum(src + n * batch_stride + c * hw, hw);
        double mean = sum / count;
        /* Two passes: the variance from centred values, which stays
         * accurate when the mean is large relative to the spread. */
        for (int n = 0; n < s->mb; n++)
            sum_sq += plane_sum_sq_centered(src + n * batch_stride + c * hw, hw, (float)mean);
        double var = sum_sq / count;
        float invstd = (float)(1.0 / sqrt(var + RN_BN_EPS));
        float scale = gamma[c] * invstd;
        float shift = beta[c] - (float)mean * scale;

        for (int n = 0; n < s->mb; n++) {
            size_t base = n * batch_stride + c * hw;
            plane_affine(dst + base, src + base, hw, scale, shift, relu);
        }
        save_mean[c] = (float)mean;
        save_invstd[c] = invstd;
        if (running_mean && running_var) {
            double unbiased = count > 1 ? var * count / (count - 1) : var;
            running_mean[c] = (1.0f - RN_BN_MOMENTUM) * running_mean[c] +
                              RN_BN_MOMENTUM * (float)mean;
            running_var[c] = (1.0f - RN_BN_MOMENTUM) * running_var[c] +
                             RN_BN_MOMENTUM * (float)unbiased;
        }
    }
}

void rn_bn_eval_coefficients(float *scale, float *shift, const float *gamma,
                             const float *beta, const float *running_mean,
                             const float *running_var, int c)
{
    for (int k = 0; k < c; k++) {
        scale[k] = gamma[k] / sqrtf(running_var[k] + RN_BN_EPS);
        shift[k] = beta[k] - running_mean[k] * scale[k];
    }
}

void rn_bn_forward_eval(float *dst, const float *src, const float *gamma,
                        const float *beta, const float *running_mean,
                        const float *running_var, const rn_bn_shape *s,
                        rn_activation activation)
{
    size_t hw = (size_t)s->h * s->w;
    size_t batch_stride = (size_t)s->c * hw;
    int relu = activation == RN_ACTIVATION_RELU;

#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < s->mb; n++) {
        for (int c = 0; c < s->c; c++) {
            float scale, shift;
            rn_bn_eval_coefficients(&scale, &shift, gamma + c, beta + c, running_mean + c,
                                    running_var + c, 1);
            const float *x = src + n * batch_stride + c * hw;
            float *y = dst + n * batch_stride + c * hw;
            for (size_t i = 0; i < hw; i++) {
                float v = x[i] * scale + shift;
                y[i] = relu && v < 0.0f ? 0.0f : v; /* NaN and -0 stay, as in rn_relu_forward */
            }
        }
    }
}

void rn_bn_backward_train(float *diff_src, float *diff_gamma, float *diff_beta,
                          const float *diff_dst, const float *relu_dst,
                          const float *src, const float *save_mean,
                          const float *save_invstd, const float *gamma,
                          const rn_bn_shape *s, rn_grad_mode mode)
{
    size_t hw = (size_t)s->h * s->w;
    size_t count = hw * s->mb;
    size_t batch_stride = (size_t)s->c * hw;

#pragma omp parallel for schedule(static)
    for (int c = 0; c < s->c; c++) {
        float mean = save_mean[c], invstd = save_invstd[c];
        double sum_dy = 0.0, sum_dy_xhat = 0.0;

        /* With a fused ReLU, the gradient reaching BN is diff_dst where the
         * ReLU output is positive and 0 elsewhere. */
        for (int n = 0; n < s->mb; n++) {
            size_t base = n * batch_stride + c * hw;
            float partial_dy, partial_dy_xhat;
            plane_grad_sums(src + base, diff_dst + base, relu_dst ? relu_dst + base : NULL, hw,
                            mean, &partial_dy, &partial_dy_xhat);
            sum_dy += partial_dy;
            sum_dy_xhat += partial_dy_xhat;
        }
        sum_dy_xhat *= invstd;
        if (diff_gamma)
            diff_gamma[c] += (float)sum_dy_xhat;
        if (diff_beta)
            diff_beta[c] += (float)sum_dy;
        if (!diff_src)
            continue;

        /* dx = gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)) */
        float k = gamma[c] * invstd;
        float mean_dy = (float)(sum_dy / count);
        float mean_dy_xhat = (float)(sum_dy_xhat / count);
        for (int n = 0; n < s->mb; n++) {
            size_t base = n * batch_stride + c * hw;
            plane_grad_src(diff_src + base, src + base, diff_dst + base,
                           relu_dst ? relu_dst + base : NULL, hw, mean, invstd, k, mean_dy,
                           mean_dy_xhat, mode == RN_GRAD_OVERWRITE);
        }
    }
}

void rn_bn_backward_eval(float *diff_src, float *diff_gamma, float *diff_beta,
                         const float *diff_dst, const float *src,
                         const float *gamma, const float *running_mean,
                         const float *running_var, const rn_bn_shape *s)
{
    size_t hw = (size_t)s->h * s->w;
    size_t batch_stride = (size_t)s->c * hw;

#pragma omp parallel for schedule(static)
    for (int c = 0; c < s->c; c++) {
        float invstd = 1.0f / sqrtf(running_var[c] + RN_BN_EPS);
        double sum_dy = 0.0, sum_dy_xhat = 0.0;
        for (int n = 0; n < s->mb; n++) {
            const float *x = src + n * batch_stride + c * hw;
            const float *dy = diff_dst + n * batch_stride + c * hw;
            float *dx = diff_src ? diff_src + n * batch_stride + c * hw : NULL;
            for (size_t i = 0; i < hw; i++) {
                sum_dy += dy[i];
                sum_dy_xhat += dy[i] * (x[i] - running_mean[c]) * invstd;
                if (dx)
                    dx[i] += dy[i] * gamma[c] * invstd;
            }
        }
        if (diff_gamma)
            diff_gamma[c] += (float)sum_dy_xhat;
        if (diff_beta)
            diff_beta[c] += (float)sum_dy;
    }
}

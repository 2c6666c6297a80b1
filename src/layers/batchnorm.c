/* Batch normalization over (mb, c, h, w) with PyTorch's BatchNorm2d
 * semantics. Channels are independent, so OpenMP splits the channels;
 * per-channel sums are taken in double to keep large batches accurate. */
#include <math.h>

#include "layers/layers.h"

void rn_bn_forward_train(float *dst, float *save_mean, float *save_invstd,
                         float *running_mean, float *running_var,
                         const float *src, const float *gamma,
                         const float *beta, const rn_bn_shape *s)
{
    size_t hw = (size_t)s->h * s->w;
    size_t count = hw * s->mb;
    size_t batch_stride = (size_t)s->c * hw;

#pragma omp parallel for schedule(static)
    for (int c = 0; c < s->c; c++) {
        double sum = 0.0, sum_sq = 0.0;
        for (int n = 0; n < s->mb; n++) {
            const float *x = src + n * batch_stride + c * hw;
            float partial = 0.0f;
            for (size_t i = 0; i < hw; i++)
                partial += x[i];
            sum += partial;
        }
        double mean = sum / count;
        /* Two passes: the variance from centred values, which stays
         * accurate when the mean is large relative to the spread. */
        for (int n = 0; n < s->mb; n++) {
            const float *x = src + n * batch_stride + c * hw;
            float partial = 0.0f;
            for (size_t i = 0; i < hw; i++) {
                float d = x[i] - (float)mean;
                partial += d * d;
            }
            sum_sq += partial;
        }
        double var = sum_sq / count;
        float invstd = (float)(1.0 / sqrt(var + RN_BN_EPS));
        float scale = gamma[c] * invstd;
        float shift = beta[c] - (float)mean * scale;

        for (int n = 0; n < s->mb; n++) {
            const float *x = src + n * batch_stride + c * hw;
            float *y = dst + n * batch_stride + c * hw;
            for (size_t i = 0; i < hw; i++)
                y[i] = x[i] * scale + shift;
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

void rn_bn_forward_eval(float *dst, const float *src, const float *gamma,
                        const float *beta, const float *running_mean,
                        const float *running_var, const rn_bn_shape *s)
{
    size_t hw = (size_t)s->h * s->w;
    size_t batch_stride = (size_t)s->c * hw;

#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < s->mb; n++) {
        for (int c = 0; c < s->c; c++) {
            float scale = gamma[c] / sqrtf(running_var[c] + RN_BN_EPS);
            float shift = beta[c] - running_mean[c] * scale;
            const float *x = src + n * batch_stride + c * hw;
            float *y = dst + n * batch_stride + c * hw;
            for (size_t i = 0; i < hw; i++)
                y[i] = x[i] * scale + shift;
        }
    }
}

void rn_bn_backward_train(float *diff_src, float *diff_gamma, float *diff_beta,
                          const float *diff_dst, const float *src,
                          const float *save_mean, const float *save_invstd,
                          const float *gamma, const rn_bn_shape *s)
{
    size_t hw = (size_t)s->h * s->w;
    size_t count = hw * s->mb;
    size_t batch_stride = (size_t)s->c * hw;

#pragma omp parallel for schedule(static)
    for (int c = 0; c < s->c; c++) {
        float mean = save_mean[c], invstd = save_invstd[c];
        double sum_dy = 0.0, sum_dy_xhat = 0.0;

        for (int n = 0; n < s->mb; n++) {
            const float *x = src + n * batch_stride + c * hw;
            const float *dy = diff_dst + n * batch_stride + c * hw;
            float partial_dy = 0.0f, partial_dy_xhat = 0.0f;
            for (size_t i = 0; i < hw; i++) {
                partial_dy += dy[i];
                partial_dy_xhat += dy[i] * (x[i] - mean);
            }
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
            const float *x = src + n * batch_stride + c * hw;
            const float *dy = diff_dst + n * batch_stride + c * hw;
            float *dx = diff_src + n * batch_stride + c * hw;
            for (size_t i = 0; i < hw; i++) {
                float xhat = (x[i] - mean) * invstd;
                dx[i] += k * (dy[i] - mean_dy - xhat * mean_dy_xhat);
            }
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

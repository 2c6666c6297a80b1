#include "reference.h"

#include <math.h>

void ref_conv2d(double *dst, const double *src, const double *weights,
                const double *bias, const rn_conv_shape *s)
{
    int groups = s->groups > 1 ? s->groups : 1;
    int icg = s->ic / groups, ocg = s->oc / groups;
    for (int n = 0; n < s->mb; n++)
        for (int o = 0; o < s->oc; o++)
            for (int y = 0; y < s->oh; y++)
                for (int x = 0; x < s->ow; x++) {
                    double sum = bias ? bias[o] : 0.0;
                    int first = o / ocg * icg; /* first input channel of o's group */
                    for (int c = first; c < first + icg; c++)
                        for (int i = 0; i < s->kh; i++)
                            for (int j = 0; j < s->kw; j++) {
                                int iy = y * s->sh - s->ph + i;
                                int ix = x * s->sw - s->pw + j;
                                if (iy < 0 || iy >= s->ih || ix < 0 || ix >= s->iw)
                                    continue;
                                sum += src[((n * s->ic + c) * s->ih + iy) * s->iw + ix] *
                                       weights[((o * icg + c - first) * s->kh + i) * s->kw + j];
                            }
                    dst[((n * s->oc + o) * s->oh + y) * s->ow + x] = sum;
                }
}

void ref_bn_train(double *dst, double *mean, double *var, const double *src,
                  const double *gamma, const double *beta, const rn_bn_shape *s)
{
    int hw = s->h * s->w, count = s->mb * hw;
    for (int c = 0; c < s->c; c++) {
        double sum = 0.0, sum_sq = 0.0;
        for (int n = 0; n < s->mb; n++)
            for (int i = 0; i < hw; i++)
                sum += src[(n * s->c + c) * hw + i];
        double m = sum / count;
        for (int n = 0; n < s->mb; n++)
            for (int i = 0; i < hw; i++) {
                double d = src[(n * s->c + c) * hw + i] - m;
                sum_sq += d * d;
            }
        double v = sum_sq / count;
        for (int n = 0; n < s->mb; n++)
            for (int i = 0; i < hw; i++) {
                int k = (n * s->c + c) * hw + i;
                dst[k] = (src[k] - m) / sqrt(v + RN_BN_EPS) * gamma[c] + beta[c];
            }
        if (mean)
            mean[c] = m;
        if (var)
            var[c] = v;
    }
}

void ref_bn_eval(double *dst, const double *src, const double *gamma,
                 const double *beta, const double *running_mean,
                 const double *running_var, const rn_bn_shape *s)
{
    int hw = s->h * s->w;
    for (int n = 0; n < s->mb; n++)
        for (int c = 0; c < s->c; c++)
            for (int i = 0; i < hw; i++) {
                int k = (n * s->c + c) * hw + i;
                dst[k] = (src[k] - running_mean[c]) /
                             sqrt(running_var[c] + RN_BN_EPS) * gamma[c] + beta[c];
            }
}

void ref_maxpool(double *dst, const double *src, const rn_pool_shape *s)
{
    for (int p = 0; p < s->mb * s->c; p++)
        for (int y = 0; y < s->oh; y++)
            for (int x = 0; x < s->ow; x++) {
                double best = -INFINITY;
                for (int i = 0; i < s->kh; i++)
                    for (int j = 0; j < s->kw; j++) {
                        int iy = y * s->sh - s->ph + i, ix = x * s->sw - s->pw + j;
                        if (iy >= 0 && iy < s->ih && ix >= 0 && ix < s->iw &&
                            src[(p * s->ih + iy) * s->iw + ix] > best)
                            best = src[(p * s->ih + iy) * s->iw + ix];
                    }
                dst[(p * s->oh + y) * s->ow + x] = best;
            }
}

void ref_linear(double *dst, const double *src, const double *weights,
                const double *bias, int mb, int in, int out)
{
    for (int n = 0; n < mb; n++)
        for (int o = 0; o < out; o++) {
            double sum = bias ? bias[o] : 0.0;
            for (int i = 0; i < in; i++)
                sum += src[n * in + i] * weights[o * in + i];
            dst[n * out + o] = sum;
        }
}

double ref_cross_entropy(const double *logits, const int32_t *labels, int mb,
                         int classes, double smoothing)
{
    double total = 0.0;
    for (int n = 0; n < mb; n++) {
        const double *z = logits + n * classes;
        double sum_exp = 0.0;
        for (int k = 0; k < classes; k++)
            sum_exp += exp(z[k]);
        for (int k = 0; k < classes; k++) {
            double q = smoothing / classes + (k == labels[n] ? 1.0 - smoothing : 0.0);
            total -= q * (z[k] - log(sum_exp));
        }
    }
    return total / mb;
}

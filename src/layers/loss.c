/* Softmax cross-entropy fused with its gradient. */
#include <math.h>

#include "layers/layers.h"

double rn_cross_entropy(float *diff_logits, int *correct, const float *logits,
                        const int32_t *labels, int mb, int classes,
                        float smoothing)
{
    double total = 0.0;
    int hits = 0;

    for (int n = 0; n < mb; n++) {
        const float *z = logits + (size_t)n * classes;
        int label = labels[n];
        int best = 0;
        double max = z[0];
        for (int k = 1; k < classes; k++) {
            if (z[k] > max) {
                max = z[k];
                best = k;
            }
        }
        hits += best == label;

        double sum_exp = 0.0, sum_z = 0.0;
        for (int k = 0; k < classes; k++) {
            sum_exp += exp(z[k] - max);
            sum_z += z[k];
        }
        double log_sum_exp = max + log(sum_exp);
        /* -sum_k q_k log p_k with q = (1 - s) onehot + s / classes */
        double nll = log_sum_exp - z[label];
        double smooth = log_sum_exp - sum_z / classes;
        total += (1.0 - smoothing) * nll + smoothing * smooth;

        if (diff_logits) {
            float *g = diff_logits + (size_t)n * classes;
            for (int k = 0; k < classes; k++) {
                double p = exp(z[k] - log_sum_exp);
                double q = smoothing / classes + (k == label ? 1.0 - smoothing : 0.0);
                g[k] = (float)((p - q) / mb);
            }
        }
    }
    if (correct)
        *correct = hits;
    return total / mb;
}

/* Fully connected layer with PyTorch's (out, in) weight layout. */
#include "kernels/gemm.h"
#include "layers/layers.h"

void rn_linear_forward(float *dst, const float *src, const float *weights,
                       const float *bias, int mb, int in, int out)
{
    rn_sgemm(0, 1, mb, out, in, 1.0f, src, in, weights, in, 0.0f, dst, out);
    if (bias) {
        for (int n = 0; n < mb; n++)
            for (int o = 0; o < out; o++)
                dst[(size_t)n * out + o] += bias[o];
    }
}

void rn_linear_backward(float *diff_src, float *diff_weights, float *diff_bias,
                        const float *diff_dst, const float *src,
                        const float *weights, int mb, int in, int out)
{
    if (diff_weights) /* (out, in) += diff_dst^T (out, mb) src (mb, in) */
        rn_sgemm(1, 0, out, in, mb, 1.0f, diff_dst, out, src, in, 1.0f,
                 diff_weights, in);
    if (diff_src) /* (mb, in) += diff_dst (mb, out) weights (out, in) */
        rn_sgemm(0, 0, mb, in, out, 1.0f, diff_dst, out, weights, in, 1.0f,
                 diff_src, in);
    if (diff_bias) {
        for (int o = 0; o < out; o++) {
            double sum = 0.0;
            for (int n = 0; n < mb; n++)
                sum += diff_dst[(size_t)n * out + o];
            diff_bias[o] += (float)sum;
        }
    }
}

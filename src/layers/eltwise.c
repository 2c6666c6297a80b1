/* ReLU and the residual addition: memory-bound loops split across threads. */
#include "core/cpu.h"
#include "layers/layers.h"

RN_CLONES void rn_relu_forward(float *dst, const float *src, size_t numel)
{
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < numel; i++)
        dst[i] = src[i] < 0.0f ? 0.0f : src[i]; /* NaN stays NaN, as in PyTorch */
}

RN_CLONES void rn_relu_backward(float *diff_src, const float *diff_dst, const float *dst,
                      size_t numel, rn_grad_mode mode)
{
    if (mode == RN_GRAD_OVERWRITE) {
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < numel; i++)
            diff_src[i] = dst[i] > 0.0f ? diff_dst[i] : 0.0f;
    } else {
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < numel; i++)
            diff_src[i] += dst[i] > 0.0f ? diff_dst[i] : 0.0f;
    }
}

RN_CLONES void rn_add_forward(float *dst, const float *a, const float *b, size_t numel)
{
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < numel; i++)
        dst[i] = a[i] + b[i];
}

RN_CLONES void rn_accumulate(float *diff, const float *diff_dst, size_t numel)
{
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < numel; i++)
        diff[i] += diff_dst[i];
}

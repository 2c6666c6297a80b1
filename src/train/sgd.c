#include "train/sgd.h"

#include "core/cpu.h"
#include "core/status.h"

int rn_sgd_init(rn_sgd *sgd, const rn_sgd_config *config, size_t numel)
{
    sgd->config = *config;
    sgd->numel = numel;
    sgd->momentum_initialized = 0;
    sgd->momentum_buffer = NULL;
    if (config->momentum != 0.0f) {
        sgd->momentum_buffer = rn_alloc_aligned(numel * sizeof(float));
        if (!sgd->momentum_buffer)
            return 0;
    }
    return 1;
}

void rn_sgd_free(rn_sgd *sgd)
{
    rn_free_aligned(sgd->momentum_buffer);
    sgd->momentum_buffer = NULL;
}

RN_CLONES void rn_sgd_step(rn_sgd *sgd, float *params, const float *grads, float lr)
{
    const float momentum = sgd->config.momentum;
    const float wd = sgd->config.weight_decay;
    const int nesterov = sgd->config.nesterov;
    const int first = !sgd->momentum_initialized;
    float *v = sgd->momentum_buffer;

#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < sgd->numel; i++) {
        float g = grads[i] + wd * params[i];
        if (v) {
            v[i] = first ? g : momentum * v[i] + g;
            g = nesterov ? g + momentum * v[i] : v[i];
        }
        params[i] -= lr * g;
    }
    if (v)
        sgd->momentum_initialized = 1;
}

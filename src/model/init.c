/* Parameter initialization matching torch.nn.init. */
#include <math.h>
#include <string.h>

#include "core/rng.h"
#include "model/model.h"

static void fill_uniform(float *x, size_t n, double bound, rn_rng *rng)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((2.0 * rn_rng_uniform(rng) - 1.0) * bound);
}

static void fill_normal(float *x, size_t n, double std, rn_rng *rng)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(rn_rng_normal(rng) * std);
}

static void fill_constant(float *x, size_t n, float value)
{
    for (size_t i = 0; i < n; i++)
        x[i] = value;
}

void rn_model_init(rn_model *model, rn_init init, int zero_init_residual,
                   uint64_t seed)
{
    rn_rng rng;
    rn_rng_seed(&rng, seed);
    rn_model_weights_changed(model);

    for (int p = 0; p < model->param_count; p++) {
        const rn_tensor_entry *e = &model->params[p];
        float *x = model->param_data + e->offset;
        int is_weight = e->role == RN_ROLE_CONV_WEIGHT || e->role == RN_ROLE_LINEAR_WEIGHT;

        if (is_weight && init == RN_INIT_XAVIER) {
            /* xavier_uniform_: U(-a, a), a = sqrt(6 / (fan_in + fan_out)) */
            fill_uniform(x, e->numel, sqrt(6.0 / (e->fan_in + e->fan_out)), &rng);
        } else if (e->role == RN_ROLE_CONV_WEIGHT && init == RN_INIT_KAIMING_FAN_IN) {
            /* kaiming_normal_(mode="fan_in", nonlinearity="relu") */
            fill_normal(x, e->numel, sqrt(2.0 / e->fan_in), &rng);
        } else if (e->role == RN_ROLE_CONV_WEIGHT) {
            /* kaiming_normal_(mode="fan_out", nonlinearity="relu") */
            fill_normal(x, e->numel, sqrt(2.0 / e->fan_out), &rng);
        } else if (is_weight || e->role == RN_ROLE_CONV_BIAS ||
                   e->role == RN_ROLE_LINEAR_BIAS) {
            /* PyTorch's default for Linear and Conv2d: kaiming_uniform_ with
             * a = sqrt(5) on weights, which is U(-1/sqrt(fan_in), ...), and
             * the same bound on biases. */
            fill_uniform(x, e->numel, 1.0 / sqrt(e->fan_in), &rng);
        } else if (e->role == RN_ROLE_BN_WEIGHT) {
            fill_constant(x, e->numel, 1.0f);
        } else {
            fill_constant(x, e->numel, 0.0f);
        }
    }

    if (zero_init_residual) {
        for (int i = 0; i < model->node_count; i++) {
            const rn_node *node = &model->nodes[i];
            if (node->kind == RN_NODE_BN && node->last_bn_of_residual) {
                const rn_tensor_entry *gamma = &model->params[node->weights];
                fill_constant(model->param_data + gamma->offset, gamma->numel, 0.0f);
            }
        }
    }

    for (int b = 0; b < model->buffer_count; b++) {
        const rn_tensor_entry *e = &model->buffers[b];
        fill_constant(model->buffer_data + e->offset, e->numel,
                      e->role == RN_ROLE_BN_RUNNING_VAR ? 1.0f : 0.0f);
    }
    memset(model->num_batches_tracked, 0, sizeof(int64_t) * model->bn_count);
    memset(model->grad_data, 0, sizeof(float) * model->param_numel);
}

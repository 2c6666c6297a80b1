/* Stochastic gradient descent with PyTorch's torch.optim.SGD update rule. */
#ifndef RN_TRAIN_SGD_H
#define RN_TRAIN_SGD_H

#include <stddef.h>

typedef struct rn_sgd_config {
    float momentum;     /* 0 disables the momentum buffer */
    float weight_decay; /* L2 penalty added to the gradient */
    int nesterov;
} rn_sgd_config;

typedef struct rn_sgd {
    rn_sgd_config config;
    float *momentum_buffer; /* (numel), allocated when momentum != 0 */
    size_t numel;
    /* PyTorch starts the buffer at the first gradient rather than at zero. */
    int momentum_initialized;
} rn_sgd;

/* Returns 0 on allocation failure. */
int rn_sgd_init(rn_sgd *sgd, const rn_sgd_config *config, size_t numel);
void rn_sgd_free(rn_sgd *sgd);

/* One update of `params` from `grads` at learning rate lr:
 *   g = grad + wd * p
 *   v = g on the first step, else momentum * v + g
 *   g = g + momentum * v if nesterov, else v
 *   p = p - lr * g */
void rn_sgd_step(rn_sgd *sgd, float *params, const float *grads, float lr);

#endif

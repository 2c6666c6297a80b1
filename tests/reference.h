/* Naive double-precision forward passes: the oracle that the float layers
 * and their gradients are tested against. Written for clarity, not speed. */
#ifndef RN_TEST_REFERENCE_H
#define RN_TEST_REFERENCE_H

#include <stdint.h>

#include "layers/layers.h"

void ref_conv2d(double *dst, const double *src, const double *weights,
                const double *bias, const rn_conv_shape *s);
/* Training-mode batch norm; writes the batch mean and biased variance. */
void ref_bn_train(double *dst, double *mean, double *var, const double *src,
                  const double *gamma, const double *beta, const rn_bn_shape *s);
void ref_bn_eval(double *dst, const double *src, const double *gamma,
                 const double *beta, const double *running_mean,
                 const double *running_var, const rn_bn_shape *s);
void ref_maxpool(double *dst, const double *src, const rn_pool_shape *s);
void ref_linear(double *dst, const double *src, const double *weights,
                const double *bias, int mb, int in, int out);
double ref_cross_entropy(const double *logits, const int32_t *labels, int mb,
                         int classes, double smoothing);

#endif

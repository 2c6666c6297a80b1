/* Forward and backward passes of every layer, over NCHW float32 buffers.
 *
 * Argument order is fixed: outputs, saved state, inputs, weights, shape.
 * Backward functions ACCUMULATE into diff_src and into parameter gradients,
 * so a tensor read by both branches of a residual block needs no special
 * case. Callers zero gradient buffers before the backward pass, or pass
 * RN_GRAD_OVERWRITE where a function offers it.
 *
 * Vocabulary (oneDNN's): src/dst are a layer's input/output, diff_* their
 * gradients; mb = batch size, ic/oc = input/output channels, ih/iw/oh/ow =
 * spatial sizes, kh/kw = kernel, sh/sw = stride, ph/pw = padding. */
#ifndef RN_LAYERS_H
#define RN_LAYERS_H

#include <stddef.h>
#include <stdint.h>

/* Whether a backward pass adds to the gradient buffer or replaces it. The
 * caller may replace when nothing has written the buffer yet in this pass,
 * which saves zeroing it and reading it back. */
typedef enum rn_grad_mode {
    RN_GRAD_ACCUMULATE,
    RN_GRAD_OVERWRITE,
} rn_grad_mode;

/* An activation fused into the layer before it. */
typedef enum rn_activation {
    RN_ACTIVATION_NONE,
    RN_ACTIVATION_RELU,
} rn_activation;

/* ---------------------------------------------------------------- conv2d */

typedef struct rn_conv_shape {
    int mb, ic, ih, iw;
    int oc, oh, ow;
    int kh, kw, sh, sw, ph, pw;
    /* Channel groups as in PyTorch's Conv2d: 0 or 1 for an ordinary
     * convolution; otherwise ic and oc are multiples of it and output
     * channel o sees only the ic/groups input channels of its group. */
    int groups;
} rn_conv_shape;

/* Fill oh/ow from the other fields (PyTorch's floor rule, dilation 1). */
void rn_conv_shape_infer(rn_conv_shape *s);

/* Floats of scratch memory that forward and backward need with `threads`
 * OpenMP threads. */
size_t rn_conv2d_scratch_numel(const rn_conv_shape *s, int threads);

/* dst (mb, oc, oh, ow) = conv(src (mb, ic, ih, iw),
 * weights (oc, ic/groups, kh, kw)) + bias (oc), bias may be NULL. */
void rn_conv2d_forward(float *dst, const float *src, const float *weights,
                       const float *bias, const rn_conv_shape *s, float *scratch);

/* Work that an inference plan folds into a convolution, applied to each
 * image's output while it is still in cache: y = y * scale[o] + shift[o]
 * (an evaluation-mode BN), then + residual (a tensor of the output's
 * shape, or NULL), then ReLU if relu is set. */
typedef struct rn_conv_post {
    const float *scale, *shift;
    const float *residual;
    int relu;
} rn_conv_post;

/* rn_conv2d_forward followed by post (NULL: nothing). */
void rn_conv2d_forward_post(float *dst, const float *src, const float *weights,
                            const float *bias, const rn_conv_shape *s, float *scratch,
                            const rn_conv_post *post);

/* Precision of the convolutions' matrix products. BF16 rounds the inputs of
 * the Winograd products and of the implicit GEMM's forward pass to BF16,
 * and vdpbf16ps sums them in FP32. The other paths stay FP32. */
typedef enum rn_precision {
    RN_PRECISION_FP32,
    RN_PRECISION_BF16, /* needs rn_cpu_avx512_bf16() */
} rn_precision;

/* Set the precision for this process; return the previous one. */
rn_precision rn_conv_set_precision(rn_precision precision);
rn_precision rn_conv_precision(void);

/* Weights transformed once for many forward passes, as an inference plan
 * keeps them: Winograd transforms each call's weights otherwise, which at
 * batch 1 costs more than the convolution on small planes.
 * rn_conv2d_prepared_numel() returns the floats they take for this shape,
 * or 0 where the forward pass would not use them. */
size_t rn_conv2d_prepared_numel(const rn_conv_shape *s);
void rn_conv2d_prepare_weights(float *prepared, const float *weights, const rn_conv_shape *s);

/* Whether weights prepared for shape `prepared` serve shape s, the same
 * convolution on fewer images: the Winograd variant depends on the batch. */
int rn_conv2d_prepared_serves(const rn_conv_shape *prepared, const rn_conv_shape *s);

/* rn_conv2d_forward_post with weights that rn_conv2d_prepare_weights()
 * transformed into `prepared` (NULL: none) from the same `weights`. */
void rn_conv2d_forward_prepared(float *dst, const float *src, const float *weights,
                                const float *prepared, const float *bias,
                                const rn_conv_shape *s, float *scratch,
                                const rn_conv_post *post);

/* Apply bias (may be NULL) and post (may be NULL) to output channels
 * [o0, o1) of image n of dst. */
void rn_conv_finish(float *dst, const float *bias, const rn_conv_post *post,
                    const rn_conv_shape *s, int n, int o0, int o1);

/* Any of diff_src, diff_weights, diff_bias may be NULL to skip it.
 * diff_src follows `mode`; parameter gradients always accumulate. */
void rn_conv2d_backward(float *diff_src, float *diff_weights, float *diff_bias,
                        const float *diff_dst, const float *src,
                        const float *weights, const rn_conv_shape *s,
                        float *scratch, rn_grad_mode mode);

/* ------------------------------------------------------------- batchnorm */

/* PyTorch's BatchNorm2d constants. */
#define RN_BN_EPS 1e-5f
#define RN_BN_MOMENTUM 0.1f

typedef struct rn_bn_shape {
    int mb, c, h, w;
} rn_bn_shape;

/* Training mode: normalise with the batch mean and biased variance, save
 * mean and 1/sqrt(var + eps) per channel for backward, and update the
 * running statistics with momentum (running_var takes the unbiased
 * variance). running_mean/running_var may be NULL to skip the update.
 * With RN_ACTIVATION_RELU, dst is max(0, BN(src)). */
void rn_bn_forward_train(float *dst, float *save_mean, float *save_invstd,
                         float *running_mean, float *running_var,
                         const float *src, const float *gamma,
                         const float *beta, const rn_bn_shape *s,
                         rn_activation activation);

/* Evaluation mode as y = x * scale + shift: the coefficients of c
 * channels from the parameters and running statistics. */
void rn_bn_eval_coefficients(float *scale, float *shift, const float *gamma,
                             const float *beta, const float *running_mean,
                             const float *running_var, int c);

/* Evaluation mode: normalise with the running statistics. */
void rn_bn_forward_eval(float *dst, const float *src, const float *gamma,
                        const float *beta, const float *running_mean,
                        const float *running_var, const rn_bn_shape *s,
                        rn_activation activation);

/* Backward of training mode, from the saved mean and invstd. When relu_dst
 * is not NULL, the forward pass had a fused ReLU whose output was relu_dst,
 * and diff_dst is the gradient of that output. diff_src follows `mode`;
 * parameter gradients always accumulate. */
void rn_bn_backward_train(float *diff_src, float *diff_gamma, float *diff_beta,
                          const float *diff_dst, const float *relu_dst,
                          const float *src, const float *save_mean,
                          const float *save_invstd, const float *gamma,
                          const rn_bn_shape *s, rn_grad_mode mode);

/* Backward of evaluation mode (the statistics are constants). */
void rn_bn_backward_eval(float *diff_src, float *diff_gamma, float *diff_beta,
                         const float *diff_dst, const float *src,
                         const float *gamma, const float *running_mean,
                         const float *running_var, const rn_bn_shape *s);

/* ------------------------------------------------------ elementwise ops */

void rn_relu_forward(float *dst, const float *src, size_t numel);
/* Uses the output: diff_src (+)= diff_dst where dst > 0. */
void rn_relu_backward(float *diff_src, const float *diff_dst, const float *dst,
                      size_t numel, rn_grad_mode mode);

/* dst = a + b, the residual addition. */
void rn_add_forward(float *dst, const float *a, const float *b, size_t numel);
/* diff += diff_dst (used once per input of the addition). */
void rn_accumulate(float *diff, const float *diff_dst, size_t numel);

/* --------------------------------------------------------------- pooling */

typedef struct rn_pool_shape {
    int mb, c, ih, iw, oh, ow;
    int kh, kw, sh, sw, ph, pw;
} rn_pool_shape;

void rn_pool_shape_infer(rn_pool_shape *s);

/* Max pooling; padding counts as -infinity, as in PyTorch. argmax (same
 * size as dst) saves the flat index within the input plane for backward;
 * NULL skips it, for evaluation, and takes a faster vectorized path. */
void rn_maxpool_forward(float *dst, int32_t *argmax, const float *src,
                        const rn_pool_shape *s);
void rn_maxpool_backward(float *diff_src, const float *diff_dst,
                         const int32_t *argmax, const rn_pool_shape *s);

/* Global average pooling: (mb, c, h, w) -> (mb, c). */
void rn_avgpool_global_forward(float *dst, const float *src, int mb, int c,
                               int hw);
void rn_avgpool_global_backward(float *diff_src, const float *diff_dst, int mb,
                                int c, int hw);

/* ---------------------------------------------------------------- linear */

/* dst (mb, out) = src (mb, in) weights^T + bias, weights (out, in). */
void rn_linear_forward(float *dst, const float *src, const float *weights,
                       const float *bias, int mb, int in, int out);
void rn_linear_backward(float *diff_src, float *diff_weights, float *diff_bias,
                        const float *diff_dst, const float *src,
                        const float *weights, int mb, int in, int out);

/* ------------------------------------------- option-A identity shortcut */

/* He et al. (2015) option A: subsample by `stride` and pad channels with
 * zeros, (oc - ic) / 2 on each side, so dst channel c + (oc - ic) / 2 is src
 * channel c. This is the layout of the widely used CIFAR ResNet reference
 * (x[:, :, ::2, ::2] padded by planes / 4 on each side). */
void rn_shortcut_a_forward(float *dst, const float *src, int mb, int ic,
                           int ih, int iw, int oc, int stride);
void rn_shortcut_a_backward(float *diff_src, const float *diff_dst, int mb,
                            int ic, int ih, int iw, int oc, int stride);

/* ------------------------------------------------- softmax cross-entropy */

/* Mean over the batch of the cross-entropy between softmax(logits) and the
 * labels smoothed by `smoothing` (PyTorch's label_smoothing: target
 * (1 - s) * onehot + s / classes). Computed with a stable log-sum-exp.
 * Writes d(loss)/d(logits) into diff_logits when it is not NULL, and the
 * number of rows whose arg-max equals the label into *correct. */
double rn_cross_entropy(float *diff_logits, int *correct, const float *logits,
                        const int32_t *labels, int mb, int classes,
                        float smoothing);

#endif

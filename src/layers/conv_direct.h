/* Direct convolution for stride 1 and "same" padding on CPUs with AVX-512
 * (conv_direct.c). conv.c uses it where rn_conv_direct_applies(), and the
 * implicit GEMM (conv_implicit.h) or im2col and GEMM elsewhere. */
#ifndef RN_LAYERS_CONV_DIRECT_H
#define RN_LAYERS_CONV_DIRECT_H

#include "layers/layers.h"

/* Whether the shape has stride 1, kh = 2 ph + 1, kw = 2 pw + 1, no groups,
 * a kernel larger than 1x1, and the CPU has AVX-512. */
int rn_conv_direct_applies(const rn_conv_shape *s);

/* The same for a forward pass given Winograd weights transformed once
 * (rn_conv2d_prepare_weights), which Winograd takes on smaller batches. */
int rn_conv_direct_applies_prepared(const rn_conv_shape *s);

/* Turn the paths of our own (direct, Winograd, implicit GEMM) off (0) or
 * back on (1) for this process, so that tests and benchmarks can compare
 * them with im2col. Returns the previous setting. The environment variable
 * RESNET_CONV=im2col turns them off at start-up. */
int rn_conv_direct_set_enabled(int enabled);

/* Whether the paths of our own (direct, Winograd, implicit GEMM) are on. */
int rn_conv_direct_enabled(void);

/* Floats of scratch the direct path needs for this shape, whether it is
 * turned on or not; 0 where it never applies. */
size_t rn_conv_direct_scratch_numel(const rn_conv_shape *s, int threads);

/* post may be NULL (see rn_conv2d_forward_post). prepared, when not NULL,
 * is rn_conv2d_prepare_weights()'s transform of weights. */
void rn_conv_direct_forward(float *dst, const float *src, const float *weights,
                            const float *prepared, const float *bias,
                            const rn_conv_shape *s, float *scratch, const rn_conv_post *post);

/* Whether rn_conv_direct_backward computes this shape's weight gradient
 * well; where it does not, conv.c computes it with im2col. */
int rn_conv_direct_weights_apply(const rn_conv_shape *s);

/* diff_src follows overwrite (1: replace, 0: add); diff_weights adds. Either
 * may be NULL, and diff_weights must be NULL where
 * rn_conv_direct_weights_apply() is false. */
void rn_conv_direct_backward(float *diff_src, float *diff_weights,
                             const float *diff_dst, const float *src,
                             const float *weights, const rn_conv_shape *s,
                             float *scratch, int overwrite);

/* Weight gradient of 3x3 convolutions at stride 2 with padding 1 and at
 * least 8 input channels, where rn_conv_direct_strided_weights_apply():
 * adds to diff_weights. The scratch takes
 * rn_conv_direct_strided_scratch_numel() floats. */
int rn_conv_direct_strided_weights_apply(const rn_conv_shape *s);
size_t rn_conv_direct_strided_scratch_numel(const rn_conv_shape *s, int threads);
void rn_conv_direct_strided_weights(float *diff_weights, const float *diff_dst,
                                    const float *src, const rn_conv_shape *s, float *scratch);

#endif

/* 1x1 convolutions without padding as a GEMM of our own over the whole
 * batch, on CPUs with AVX-512 (conv_pointwise.c). conv.c uses it where
 * rn_conv_pointwise_applies(); the weight gradient stays with im2col and
 * OpenBLAS. */
#ifndef RN_LAYERS_CONV_POINTWISE_H
#define RN_LAYERS_CONV_POINTWISE_H

#include "layers/layers.h"

/* Whether the shape is a 1x1 convolution without padding or groups, with at
 * least 8 input and output channels, the CPU has AVX-512 and
 * RESNET_CONV is not im2col. */
int rn_conv_pointwise_applies(const rn_conv_shape *s);

/* Whether rn_conv_pointwise_backward_data takes the shape: it also needs
 * stride 1. */
int rn_conv_pointwise_backward_applies(const rn_conv_shape *s);

/* Floats of scratch for this shape whether the path is on or not; 0 where it
 * never applies. */
size_t rn_conv_pointwise_scratch_numel(const rn_conv_shape *s, int threads);

/* post may be NULL (see rn_conv2d_forward_post). */
void rn_conv_pointwise_forward(float *dst, const float *src, const float *weights,
                               const float *bias, const rn_conv_shape *s, float *scratch,
                               const rn_conv_post *post);

/* diff_src follows overwrite (1: replace, 0: add). */
void rn_conv_pointwise_backward_data(float *diff_src, const float *diff_dst,
                                     const float *weights, const rn_conv_shape *s,
                                     float *scratch, int overwrite);

#endif

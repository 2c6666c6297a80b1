/* Convolutions as a GEMM of our own over the whole batch, with the im2col
 * columns packed on the fly (implicit GEMM), on CPUs with AVX-512
 * (conv_implicit.c). conv.c uses it for the forward pass of the shapes that
 * the direct and Winograd paths do not take, and for the data gradient of
 * 1x1 convolutions. Other gradients stay with im2col and OpenBLAS. */
#ifndef RN_LAYERS_CONV_IMPLICIT_H
#define RN_LAYERS_CONV_IMPLICIT_H

#include "layers/layers.h"

/* Whether rn_conv_implicit_forward takes the shape: no groups, kernels up to
 * 16 columns wide, at least 8 output channels, products at least 16 deep
 * (input channels x kernel taps), a CPU with AVX-512, and RESNET_CONV not
 * im2col. */
int rn_conv_implicit_applies(const rn_conv_shape *s);

/* Whether rn_conv_implicit_backward_data takes the shape: as above, and a
 * 1x1 kernel with stride 1, no padding and at least 8 input channels. */
int rn_conv_implicit_backward_applies(const rn_conv_shape *s);

/* Floats of scratch for this shape whether the path is on or not; 0 where it
 * never applies. */
size_t rn_conv_implicit_scratch_numel(const rn_conv_shape *s, int threads);

/* post may be NULL (see rn_conv2d_forward_post). */
void rn_conv_implicit_forward(float *dst, const float *src, const float *weights,
                              const float *bias, const rn_conv_shape *s, float *scratch,
                              const rn_conv_post *post);

/* diff_src follows overwrite (1: replace, 0: add). */
void rn_conv_implicit_backward_data(float *diff_src, const float *diff_dst,
                                    const float *weights, const rn_conv_shape *s,
                                    float *scratch, int overwrite);

#endif

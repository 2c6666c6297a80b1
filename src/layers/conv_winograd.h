/* Winograd F(2x2, 3x3) and F(4x4, 3x3) convolution for the 3x3, stride 1,
 * padding 1 convolutions, on CPUs with AVX-512 (conv_winograd.c).
 * conv_direct.c owns the scratch and calls these where rn_winograd_suits(). */
#ifndef RN_LAYERS_CONV_WINOGRAD_H
#define RN_LAYERS_CONV_WINOGRAD_H

#include <stddef.h>

#include "layers/layers.h"

enum {
    RN_WINO_TILES = 48,     /* 2x2 output tiles per block: 3 vectors of 16 */
    RN_WINO_OC = 8,         /* output channels per register block */
    RN_WINO_GROUP_MAX = 16, /* images per weight-gradient call, at most */
};

/* Where the planes of one image are: channel c's plane starts at
 * c * plane, oh rows of ow floats, the size of the output planes. The
 * padding is not stored: the transforms read zeros around each plane. */
typedef struct rn_wino_planes {
    size_t plane;
    int oh, ow;
    int vectors; /* vectors of 16 tiles per forward block: 3, or 1 for finer blocks */
} rn_wino_planes;

/* Return whether Winograd takes the shape when its weights come already
 * transformed: 3x3 kernel, stride 1, padding 1, no groups, and a plane
 * with at least 8 tiles of which at least half the outputs are kept. */
int rn_winograd_suits_prepared(const rn_conv_shape *s);

/* Return whether Winograd takes the shape when each call transforms the
 * weights: as rn_winograd_suits_prepared(), with enough tiles in the batch
 * to repay the transform. */
int rn_winograd_suits(const rn_conv_shape *s);

/* Turn Winograd off (0), leaving the direct kernel, or back on (1).
 * Returns the previous setting. RESNET_CONV=direct turns it off at
 * start-up. */
int rn_winograd_set_enabled(int enabled);
int rn_winograd_enabled(void);

/* Floats of transformed weights for cout x cin. */
size_t rn_winograd_weights_numel(int cout, int cin);

/* Transform weights (cout, cin, 3, 3) for rn_winograd_block. With flip,
 * transform the backward-data convolution's weights instead: weights is
 * (cin, cout, 3, 3), transposed and rotated by 180 degrees. */
void rn_winograd_transform_weights(float *u, const float *weights, int cout, int cin,
                                   int flip);

/* Round transformed weights to BF16 in place for rn_winograd_block's bf16
 * mode: pairs of input channels, as vdpbf16ps reads them. */
void rn_winograd_weights_to_bf16(float *u, int cout, int cin);

/* Tile blocks of one image. */
int rn_winograd_blocks(const rn_wino_planes *p);

/* Per-thread scratch floats of rn_winograd_block. */
size_t rn_winograd_block_numel(int cin);

/* Output block `block` of one image: channels [o0, o1) of dst (cout, oh,
 * ow) over the block's tiles, plus bias (may be NULL), replacing dst or
 * adding to it. o0 is a multiple of RN_WINO_OC. With bf16, u comes from
 * rn_winograd_weights_to_bf16 and the products take BF16 inputs with FP32
 * sums. */
void rn_winograd_block(float *dst, const float *src, const float *u, int cin, int cout,
                       const rn_wino_planes *p, const float *bias, int accumulate, int block,
                       int o0, int o1, int bf16, float *scratch);

/* F(4x4, 3x3) for planes whose tile rows (4x4 outputs each) fill most of
 * a vector: rows of 2 to 7 tiles, as 7x7, 14x14 and 28x28 planes. It takes
 * at least 8 channels in and out and a batch of at least 64 tiles. It needs
 * fewer products than F(2x2), with dearer transforms. Its blocks are tile
 * rows of the whole batch, several rows (of one image or more) to a
 * vector. FP32 only: conv_direct.c keeps F(2x2) for --precision bf16. */
int rn_winograd4_suits(const rn_conv_shape *s);
size_t rn_winograd4_weights_numel(int cout, int cin);
void rn_winograd4_transform_weights(float *u, const float *weights, int cout, int cin,
                                    int flip);
size_t rn_winograd4_block_numel(int cin);

/* Tile rows per block for a batch of mb images on `threads` threads; the
 * batch has mb * ceil(oh / 4) tile rows. */
int rn_winograd4_block_rows(const rn_wino_planes *p, int mb, int threads);

/* Tile rows [r0, r1) of a batch: dst (cout, oh, ow) from src (cin, oh,
 * ow), the images' planes dst_image and src_image floats apart, plus bias
 * (may be NULL), replacing dst or adding to it. r0 is a multiple of
 * rn_winograd4_block_rows() and r1 - r0 at most that. */
void rn_winograd4_block(float *dst, size_t dst_image, const float *src, size_t src_image,
                        long r0, long r1, const float *u, int cin, int cout,
                        const rn_wino_planes *p, const float *bias, int accumulate,
                        float *scratch);

/* Weight gradient (with bf16, from BF16 inputs with FP32 sums). The
 * threads add into per-thread accumulators of
 * rn_winograd_grad_numel() floats, zeroed by the caller. Each call sums
 * `images` images, at most rn_winograd_grad_group() of them: src[j] are
 * their inputs and dyt[j] their output gradients transposed to
 * (oh * ow, ocp), ocp = cout rounded up to 16, as conv_direct.c makes them.
 * rn_winograd_grad_finish() adds the sum of `count` accumulators, `stride`
 * floats apart, to diff_weights. */
size_t rn_winograd_grad_numel(int cin, int cout);
int rn_winograd_grad_group(const rn_wino_planes *p);
size_t rn_winograd_grad_block_numel(int cin, int cout, const rn_wino_planes *p);
void rn_winograd_grad_images(float *acc, const float *const *src, const float *const *dyt,
                             int images, int cin, int cout, const rn_wino_planes *p, int bf16,
                             float *scratch);
void rn_winograd_grad_finish(float *diff_weights, const float *acc, size_t stride, int count,
                             int cin, int cout);

#endif

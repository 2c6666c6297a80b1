/* Per-image preprocessing and random augmentation, from 8-bit pixels to the
 * float input of the network.
 *
 * The steps run in this order, matching the usual torchvision pipeline
 * Resize -> RandomCrop(padding) -> RandomHorizontalFlip -> ToTensor -> Normalize:
 *   1. scale to [0, 1] as x / 255;
 *   2. bilinear resize to (resize_h, resize_w), if set. In training with a
 *      random resized crop, a random box of the image is resized to that
 *      size (or to the input size without a resize) instead, as
 *      torchvision's RandomResizedCrop does: its area is a uniform fraction
 *      in [crop_scale_min, crop_scale_max] of the image's, its aspect ratio
 *      log-uniform in [3/4, 4/3], with 10 tries before falling back to the
 *      largest centred box of an aspect ratio in that range;
 *   3. training only: pad each side with `pad` zeros, then crop back to the
 *      size at offsets drawn uniformly from [0, 2 * pad];
 *   4. training only: mirror left-right with probability 0.5, if flip is set;
 *   5. (x - mean[c]) / std[c], if normalize is set.
 * Padding happens before normalization, so the padded pixels become
 * -mean[c] / std[c], as they do in torchvision.
 *
 * NOTE: step 2 samples bilinearly without an antialiasing filter, like
 * PyTorch's interpolate with antialias=False. Downscaled images therefore
 * differ from those of a torchvision Resize that antialiases. */
#ifndef RN_DATA_AUGMENT_H
#define RN_DATA_AUGMENT_H

#include <stdint.h>

#include "core/rng.h"
#include "resnet.h"

enum { RN_AUGMENT_MAX_CHANNELS = 3 };

typedef struct rn_augment {
    int pad;                /* zero padding in pixels before the random crop; 0 = off */
    int flip;               /* random horizontal flip with p = 0.5; 0 = off */
    int resize_h, resize_w; /* bilinear resize target; both 0 = off */
    float crop_scale_min, crop_scale_max; /* random resized crop area fractions; 0 = off */
    int normalize;          /* apply mean and std; 0 = off */
    float mean[RN_AUGMENT_MAX_CHANNELS], std[RN_AUGMENT_MAX_CHANNELS]; /* per channel, in [0, 1] units */
} rn_augment;

/* Checks that aug is usable for images with the given channel count.
 * Returns RN_ERR_INVALID with a message naming the field otherwise. */
rn_status rn_augment_check(const rn_augment *aug, int channels);

/* Returns the output size for height x width input: the resize target if set,
 * else the input size (padding and cropping keep the size). */
void rn_augment_output_size(const rn_augment *aug, int height, int width,
                            int *out_height, int *out_width);

/* Converts src (channels, height, width) to dst (channels, out_height,
 * out_width) as the header describes. The random steps run only when train
 * is nonzero and draw from rng in this order: the random resized crop's
 * box when crop_scale_max > 0, the two crop offsets when pad > 0, then one
 * uniform number when flip is set. aug must pass rn_augment_check. */
void rn_augment_image(const rn_augment *aug, int train, const uint8_t *src,
                      int channels, int height, int width, float *dst, rn_rng *rng);

#endif

/* Inference preprocessing of a decoded image, as a weights file's metadata
 * describes it.
 *
 * Three cases, tried in order:
 *   1. The file records a resize (`resize` = HxW, from `resnet train
 *      --resize`): the image is stretched to HxW with the training pipeline's
 *      bilinear resize, then normalized. An image of the training size
 *      therefore gives exactly the tensor that `resnet eval` and training
 *      see.
 *   2. A torchvision ImageNet architecture (resnet18 ... resnet152,
 *      resnext50_32x4d, wide_resnet50_2) whose file has no `normalize`
 *      metadata, as when exported from PyTorch: torchvision's ImageNet
 *      evaluation transform, an antialiased resize of the shorter side to
 *      256 (scaled as 256/224 of the input size), a centre crop to the
 *      input size, and ImageNet's mean 0.485,0.456,0.406 and std
 *      0.229,0.224,0.225.
 *   3. Otherwise an image of the input size is used as it is, and any other
 *      size is resized (antialiased) so that it just covers the input size,
 *      keeping its aspect ratio, and centre-cropped. Normalization comes
 *      from the `normalize` metadata, or none. */
#ifndef RN_DATA_PREPROCESS_H
#define RN_DATA_PREPROCESS_H

#include "data/augment.h"
#include "data/image.h"
#include "io/safetensors.h"
#include "model/model.h"

typedef struct rn_preprocess {
    int channels, height, width; /* the network's input */
    rn_augment augment;          /* resize of case 1 and the normalization */
    int resize_shorter;          /* case 2: shorter side before the centre crop; 0 = off */
} rn_preprocess;

/* Returns 1 for the names of torchvision's ImageNet ResNets. */
int rn_is_torchvision_arch(const char *arch);

/* Fills out for a model whose configuration is config, from the
 * `normalize` and `resize` metadata of file. Returns RN_ERR_FORMAT naming
 * the file for malformed values. */
rn_status rn_preprocess_from_metadata(const rn_safetensors *file, const rn_model_config *config,
                                      rn_preprocess *out);

/* Converts image, which must have p->channels channels, into dst
 * (channels, height, width) floats. Returns RN_ERR_NOMEM. */
rn_status rn_preprocess_image(const rn_preprocess *p, const rn_image *image, float *dst);

#endif

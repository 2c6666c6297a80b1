#include "data/augment.h"

#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>

#include "core/status.h"

/* Bounds that keep index arithmetic inside int. Real inputs are far smaller. */
enum { MAX_PAD = 1 << 20, MAX_RESIZE = 1 << 16 };

rn_status rn_augment_check(const rn_augment *aug, int channels)
{
    if (channels < 1)
        return rn_error(RN_ERR_INVALID, "invalid image channel count %d; expected at least 1",
                        channels);
    if (aug->pad < 0 || aug->pad > MAX_PAD)
        return rn_error(RN_ERR_INVALID, "invalid augmentation pad %d; expected 0 to %d",
                        aug->pad, MAX_PAD);

    int resize_on = aug->resize_h != 0 || aug->resize_w != 0;
    if (resize_on && (aug->resize_h < 1 || aug->resize_w < 1 ||
                      aug->resize_h > MAX_RESIZE || aug->resize_w > MAX_RESIZE))
        return rn_error(RN_ERR_INVALID,
                        "invalid resize %dx%d; set both height and width to 1 to %d, "
                        "or both to 0 to keep the input size",
                        aug->resize_h, aug->resize_w, MAX_RESIZE);

    if (!aug->normalize)
        return RN_OK;
    if (channels > RN_AUGMENT_MAX_CHANNELS)
        return rn_error(RN_ERR_INVALID,
                        "cannot normalize %d-channel images: mean and std hold at most %d channels",
                        channels, RN_AUGMENT_MAX_CHANNELS);
    for (int c = 0; c < channels; c++) {
        if (!isfinite(aug->mean[c]))
            return rn_error(RN_ERR_INVALID, "invalid normalization mean[%d] = %g; expected a finite value",
                            c, aug->mean[c]);
        if (!(aug->std[c] > 0.0f) || !isfinite(aug->std[c]))
            return rn_error(RN_ERR_INVALID, "invalid normalization std[%d] = %g; expected a positive finite value",
                            c, aug->std[c]);
    }
    return RN_OK;
}

void rn_augment_output_size(const rn_augment *aug, int height, int width,
                            int *out_height, int *out_width)
{
    *out_height = aug->resize_h > 0 ? aug->resize_h : height;
    *out_width = aug->resize_w > 0 ? aug->resize_w : width;
}

/* The two source neighbours and the weight of the second one for output
 * coordinate dst of a bilinear resize from in_size to out_size. */
typedef struct bilinear_tap {
    int index0, index1;
    float lambda;
} bilinear_tap;

/* Maps dst as PyTorch's bilinear upsampling does with align_corners=False.
 * The source coordinate (dst + 0.5) * in_size / out_size - 0.5 is clamped at
 * 0, and the second neighbour at in_size - 1. */
static bilinear_tap bilinear_source(int dst, int in_size, int out_size)
{
    float scale = (float)in_size / (float)out_size;
    float coordinate = scale * ((float)dst + 0.5f) - 0.5f;
    if (coordinate < 0.0f)
        coordinate = 0.0f;

    int index0 = (int)coordinate;
    if (index0 > in_size - 1)
        index0 = in_size - 1;
    bilinear_tap tap = {
        .index0 = index0,
        .index1 = index0 < in_size - 1 ? index0 + 1 : index0,
        .lambda = coordinate - (float)index0,
    };
    return tap;
}

/* unit_scale[v] = v / 255.0f, computed by division as torchvision's
 * to_tensor does, so that results match x / 255 exactly. A table lookup
 * is faster than four divisions per resized pixel. */
static float unit_scale[256];
static pthread_once_t unit_scale_once = PTHREAD_ONCE_INIT;

static void init_unit_scale(void)
{
    for (int v = 0; v < 256; v++)
        unit_scale[v] = (float)v / 255.0f;
}

/* Writes one output row of a channel plane: resized row ry (steps 1 and 2)
 * read at column x' + shift_x for output column x, where x' is x mirrored
 * if mirror is set. Columns that fall outside are the zero padding. */
static void write_row(const uint8_t *plane, int height, int width, int out_height,
                      int out_width, int ry, int shift_x, int mirror, float *out_row)
{
    int resizing = out_height != height || out_width != width;
    bilinear_tap ty = {.index0 = ry, .index1 = ry};
    if (resizing)
        ty = bilinear_source(ry, height, out_height);
    const uint8_t *row0 = plane + (size_t)ty.index0 * width;
    const uint8_t *row1 = plane + (size_t)ty.index1 * width;

    for (int x = 0; x < out_width; x++) {
        int rx = (mirror ? out_width - 1 - x : x) + shift_x;
        if (rx < 0 || rx >= out_width) {
            out_row[x] = 0.0f;
            continue;
        }
        if (!resizing) {
            out_row[x] = unit_scale[row0[rx]];
            continue;
        }
        bilinear_tap tx = bilinear_source(rx, width, out_width);
        float v00 = unit_scale[row0[tx.index0]], v01 = unit_scale[row0[tx.index1]];
        float v10 = unit_scale[row1[tx.index0]], v11 = unit_scale[row1[tx.index1]];
        out_row[x] = (1.0f - ty.lambda) * ((1.0f - tx.lambda) * v00 + tx.lambda * v01) +
                     ty.lambda * ((1.0f - tx.lambda) * v10 + tx.lambda * v11);
    }
}

void rn_augment_image(const rn_augment *aug, int train, const uint8_t *src,
                      int channels, int height, int width, float *dst, rn_rng *rng)
{
    int out_height, out_width;
    rn_augment_output_size(aug, height, width, &out_height, &out_width);
    pthread_once(&unit_scale_once, init_unit_scale);

    /* Steps 3 and 4 as one mapping: output (y, x) reads resized pixel
     * (y + shift_y, x' + shift_x), where x' is x mirrored if mirror is set,
     * or zero where that pixel lies outside. */
    int shift_y = 0, shift_x = 0, mirror = 0;
    if (train && aug->pad > 0) {
        uint32_t choices = 2 * (uint32_t)aug->pad + 1;
        shift_y = (int)rn_rng_below(rng, choices) - aug->pad;
        shift_x = (int)rn_rng_below(rng, choices) - aug->pad;
    }
    if (train && aug->flip)
        mirror = rn_rng_uniform(rng) < 0.5f;

    for (int c = 0; c < channels; c++) {
        const uint8_t *plane = src + (size_t)c * height * width;

        for (int y = 0; y < out_height; y++) {
            float *out_row = dst + ((size_t)c * out_height + y) * out_width;
            int ry = y + shift_y;
            if (ry >= 0 && ry < out_height)
                write_row(plane, height, width, out_height, out_width, ry, shift_x, mirror, out_row);
            else
                memset(out_row, 0, (size_t)out_width * sizeof(float)); /* zero padding */

            if (aug->normalize)
                for (int x = 0; x < out_width; x++)
                    out_row[x] = (out_row[x] - aug->mean[c]) / aug->std[c];
        }
    }
}

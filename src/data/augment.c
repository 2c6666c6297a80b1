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

    int crop_on = aug->crop_scale_min != 0.0f || aug->crop_scale_max != 0.0f;
    if (crop_on && !(aug->crop_scale_min > 0.0f && aug->crop_scale_min <= aug->crop_scale_max &&
                     aug->crop_scale_max <= 1.0f))
        return rn_error(RN_ERR_INVALID,
                        "invalid random resized crop scale %g to %g; expected "
                        "0 < min <= max <= 1, or both 0 to turn it off",
                        aug->crop_scale_min, aug->crop_scale_max);

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

/* A height x width window of a channel plane whose rows are stride bytes
 * apart: the whole image, or the box of a random resized crop. */
typedef struct source_box {
    const uint8_t *origin; /* the box's top-left pixel */
    int height, width;
    size_t stride;
} source_box;

/* Writes one output row of a channel plane: resized row ry (steps 1 and 2)
 * read at column x' + shift_x for output column x, where x' is x mirrored
 * if mirror is set. Columns that fall outside are the zero padding. */
static void write_row(const source_box *box, int out_height, int out_width, int ry,
                      int shift_x, int mirror, float *out_row)
{
    int height = box->height, width = box->width;
    int resizing = out_height != height || out_width != width;
    bilinear_tap ty = {.index0 = ry, .index1 = ry};
    if (resizing)
        ty = bilinear_source(ry, height, out_height);
    const uint8_t *row0 = box->origin + (size_t)ty.index0 * box->stride;
    const uint8_t *row1 = box->origin + (size_t)ty.index1 * box->stride;

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

/* Draws the box of a random resized crop of a height x width image:
 * (top, left, box_height, box_width). */
static void random_crop_box(const rn_augment *aug, int height, int width, rn_rng *rng,
                            int box[4])
{
    const double min_ratio = 3.0 / 4.0, max_ratio = 4.0 / 3.0;
    double area = (double)height * width;

    for (int attempt = 0; attempt < 10; attempt++) {
        double scale = aug->crop_scale_min +
                       (aug->crop_scale_max - aug->crop_scale_min) * rn_rng_uniform(rng);
        double log_ratio = log(min_ratio) + (log(max_ratio) - log(min_ratio)) * rn_rng_uniform(rng);
        double ratio = exp(log_ratio);
        int box_width = (int)lround(sqrt(area * scale * ratio));
        int box_height = (int)lround(sqrt(area * scale / ratio));
        if (box_width < 1 || box_width > width || box_height < 1 || box_height > height)
            continue;
        box[0] = (int)rn_rng_below(rng, (uint32_t)(height - box_height + 1));
        box[1] = (int)rn_rng_below(rng, (uint32_t)(width - box_width + 1));
        box[2] = box_height;
        box[3] = box_width;
        return;
    }

    /* Fallback: the largest centred box whose aspect ratio is in range. */
    double image_ratio = (double)width / height;
    int box_width = width, box_height = height;
    if (image_ratio < min_ratio)
        box_height = (int)lround(width / min_ratio);
    else if (image_ratio > max_ratio)
        box_width = (int)lround(height * max_ratio);
    if (box_height < 1)
        box_height = 1;
    if (box_width < 1)
        box_width = 1;
    box[0] = (height - box_height) / 2;
    box[1] = (width - box_width) / 2;
    box[2] = box_height;
    box[3] = box_width;
}

void rn_augment_image(const rn_augment *aug, int train, const uint8_t *src,
                      int channels, int height, int width, float *dst, rn_rng *rng)
{
    int out_height, out_width;
    rn_augment_output_size(aug, height, width, &out_height, &out_width);
    pthread_once(&unit_scale_once, init_unit_scale);

    /* Step 2's source: the whole image, or a random box of it. */
    int box[4] = {0, 0, height, width};
    if (train && aug->crop_scale_max > 0.0f)
        random_crop_box(aug, height, width, rng, box);

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
        source_box source = {
            .origin = plane + (size_t)box[0] * width + box[1],
            .height = box[2], .width = box[3], .stride = (size_t)width,
        };

        for (int y = 0; y < out_height; y++) {
            float *out_row = dst + ((size_t)c * out_height + y) * out_width;
            int ry = y + shift_y;
            if (ry >= 0 && ry < out_height)
                write_row(&source, out_height, out_width, ry, shift_x, mirror, out_row);
            else
                memset(out_row, 0, (size_t)out_width * sizeof(float)); /* zero padding */

            if (aug->normalize)
                for (int x = 0; x < out_width; x++)
                    out_row[x] = (out_row[x] - aug->mean[c]) / aug->std[c];
        }
    }
}

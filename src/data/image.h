/* Decoded 8-bit images: PNG (libpng) and JPEG (libjpeg), channel
 * conversion, resizing and cropping.
 *
 * Pixels are planar, (channels, height, width), the layout of the data sets
 * and of the network's input. Channel conversion follows PIL's
 * Image.convert, so that the pixels equal those torchvision's PIL loader
 * produces:
 *   - grayscale to RGB copies the gray value into R, G and B;
 *   - RGB to grayscale is the ITU-R 601-2 luma
 *     L = (19595 R + 38470 G + 7471 B + 32768) >> 16;
 *   - an alpha channel is dropped, not composited. */
#ifndef RN_DATA_IMAGE_H
#define RN_DATA_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "resnet.h"

/* Largest image rn_image_decode accepts, in pixels (a guard against
 * headers that claim huge sizes). 2^28 is a 16384 x 16384 picture. */
#define RN_IMAGE_MAX_PIXELS ((int64_t)1 << 28)

typedef struct rn_image {
    int channels, height, width;
    uint8_t *pixels; /* (channels, height, width), malloc'ed */
} rn_image;

/* Decodes a PNG or JPEG file; the format comes from the file's first bytes,
 * not its name. channels is 1 (grayscale), 3 (RGB) or 0 to keep the file's
 * own: 1 for grayscale files, 3 for colour ones. Returns RN_ERR_IO if the
 * file cannot be read, RN_ERR_FORMAT for a file that is neither PNG nor
 * JPEG, is truncated or corrupt, or is larger than RN_IMAGE_MAX_PIXELS, and
 * RN_ERR_NOMEM. The message starts with the path. On failure *out is
 * zeroed. */
rn_status rn_image_read(const char *path, int channels, rn_image *out);

/* Decodes a PNG or JPEG file held in memory, as rn_image_read does; name
 * starts the error messages. */
rn_status rn_image_decode(const uint8_t *bytes, size_t nbytes, const char *name,
                          int channels, rn_image *out);

/* Returns 1 if the file name ends in .png, .jpg or .jpeg (any case). */
int rn_image_has_extension(const char *path);

/* Resizes src to height x width into dst with a bilinear filter that
 * widens by the scale factor when shrinking, so that every source pixel
 * contributes (the antialiased resize of PIL and of torchvision's
 * Resize(antialias=True)), and rounds to 8 bits. Returns RN_ERR_INVALID
 * for a size below 1 and RN_ERR_NOMEM. */
rn_status rn_image_resize(const rn_image *src, int height, int width, rn_image *dst);

/* Copies the height x width window at (top, left) of src into dst.
 * Returns RN_ERR_INVALID if the window is empty or leaves the image. */
rn_status rn_image_crop(const rn_image *src, int top, int left, int height, int width,
                        rn_image *dst);

/* Frees the pixels and zeroes the struct. Accepts a zeroed struct. */
void rn_image_free(rn_image *image);

#endif

#include "data/image.h"

#include <ctype.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "core/status.h"
#include "io/file.h"

static const uint8_t PNG_SIGNATURE[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

/* ------------------------------------------------------ channel conversion */

/* Writes interleaved rows (height, width, src_channels) of a decoded file
 * into out as planar (channels, height, width). src_channels is 1 (gray),
 * 3 (RGB) or 4 (RGBA, alpha ignored); channels is 1 or 3. */
static void to_planar(const uint8_t *src, int src_channels, int height, int width,
                      int channels, uint8_t *out)
{
    size_t plane = (size_t)height * width;

    for (size_t p = 0; p < plane; p++) {
        const uint8_t *pixel = src + p * src_channels;
        if (src_channels == 1) {
            for (int c = 0; c < channels; c++)
                out[c * plane + p] = pixel[0];
        } else if (channels == 3) {
            out[p] = pixel[0];
            out[plane + p] = pixel[1];
            out[2 * plane + p] = pixel[2];
        } else {
            uint32_t luma = 19595u * pixel[0] + 38470u * pixel[1] + 7471u * pixel[2] + 32768u;
            out[p] = (uint8_t)(luma >> 16);
        }
    }
}

static rn_status check_size(const char *name, const char *format, uint32_t width,
                            uint32_t height)
{
    if (width == 0 || height == 0 || (int64_t)width * height > RN_IMAGE_MAX_PIXELS)
        return rn_error(RN_ERR_FORMAT, "%s: %s image of %ux%u pixels is empty or larger than "
                        "the %lld pixels accepted", name, format, (unsigned)width,
                        (unsigned)height, (long long)RN_IMAGE_MAX_PIXELS);
    return RN_OK;
}

/* Allocates out->pixels for a channels x height x width image. */
static rn_status allocate_image(rn_image *out, int channels, int height, int width)
{
    out->channels = channels;
    out->height = height;
    out->width = width;
    out->pixels = malloc((size_t)channels * height * width);
    if (!out->pixels) {
        memset(out, 0, sizeof *out);
        return rn_error(RN_ERR_NOMEM, "cannot allocate a %dx%dx%d image", channels, height,
                        width);
    }
    return RN_OK;
}

/* -------------------------------------------------------------------- PNG */

/* Reads a PNG held in memory through libpng's callback. */
typedef struct png_source {
    const uint8_t *bytes;
    size_t nbytes, offset;
} png_source;

static void png_read_memory(png_structp png, png_bytep out, size_t n)
{
    png_source *source = png_get_io_ptr(png);
    if (n > source->nbytes - source->offset)
        png_error(png, "unexpected end of file");
    memcpy(out, source->bytes + source->offset, n);
    source->offset += n;
}

/* libpng reports errors by longjmp; the message is kept for ours. */
typedef struct png_failure {
    char message[200];
} png_failure;

static void png_on_error(png_structp png, png_const_charp message)
{
    png_failure *failure = png_get_error_ptr(png);
    snprintf(failure->message, sizeof failure->message, "%s", message);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp message)
{
    (void)png;
    (void)message;
}

/* Decodes with libpng's low-level API into 8-bit RGBA, with the stored
 * values unchanged as PIL reads them: palette and low bit depths expand,
 * 16-bit samples keep their high byte, and gAMA, cHRM and sRGB chunks are
 * ignored. libpng's simplified API would instead convert 16-bit data as
 * linear light and apply the file's gamma. */
static rn_status decode_png(const uint8_t *bytes, size_t nbytes, const char *name,
                            int channels, rn_image *out)
{
    png_failure failure = {""};
    png_source source = {bytes, nbytes, 0};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &failure, png_on_error,
                                             png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    uint8_t *volatile rgba = NULL;
    png_bytep *volatile rows = NULL;
    volatile int file_channels = 0;
    volatile rn_status status = RN_OK;

    if (!png || !info) {
        png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
        return rn_error(RN_ERR_NOMEM, "%s: cannot allocate the PNG decoder", name);
    }
    if (setjmp(png_jmpbuf(png))) {
        status = rn_error(RN_ERR_FORMAT, "%s: truncated or corrupt PNG file (libpng: %s)",
                          name, failure.message);
        goto done;
    }
    png_set_read_fn(png, &source, png_read_memory);
    png_read_info(png, info);

    png_uint_32 width, height;
    int depth, color_type;
    png_get_IHDR(png, info, &width, &height, &depth, &color_type, NULL, NULL, NULL);
    status = check_size(name, "PNG", width, height);
    if (status != RN_OK)
        goto done;
    file_channels = (color_type & PNG_COLOR_MASK_COLOR) ? 3 : 1;

    png_set_expand(png); /* palette to RGB, gray below 8 bits to 8, tRNS to alpha */
    png_set_strip_16(png);
    png_set_gray_to_rgb(png);
    png_set_filler(png, 0xff, PNG_FILLER_AFTER);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);

    size_t row_nbytes = (size_t)width * 4;
    rgba = malloc(row_nbytes * height);
    rows = malloc(sizeof(png_bytep) * height);
    if (!rgba || !rows) {
        status = rn_error(RN_ERR_NOMEM, "%s: cannot allocate %zu bytes to decode it", name,
                          row_nbytes * height);
        goto done;
    }
    for (png_uint_32 y = 0; y < height; y++)
        rows[y] = rgba + y * row_nbytes;
    png_read_image(png, rows);
    png_read_end(png, NULL);

    int out_channels = channels ? channels : file_channels;
    status = allocate_image(out, out_channels, (int)height, (int)width);
    if (status == RN_OK) {
        /* Gray files expand to R = G = B, so reading R keeps the gray value. */
        if (file_channels == 1) {
            size_t plane = (size_t)out->height * out->width;
            for (size_t p = 0; p < plane; p++)
                rgba[p] = rgba[4 * p];
            to_planar(rgba, 1, out->height, out->width, out_channels, out->pixels);
        } else {
            to_planar(rgba, 4, out->height, out->width, out_channels, out->pixels);
        }
    }

done:
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    free(rgba);
    return status;
}

/* ------------------------------------------------------------------- JPEG */

typedef struct jpeg_failure {
    struct jpeg_error_mgr manager;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
} jpeg_failure;

static void on_jpeg_error(j_common_ptr cinfo)
{
    jpeg_failure *failure = (jpeg_failure *)cinfo->err;
    cinfo->err->format_message(cinfo, failure->message);
    longjmp(failure->jump, 1);
}

/* libjpeg only warns when the data ends early and fills the rest of the
 * image with gray. A cut file is a corrupt input here, so that warning
 * fails the decode. Other warnings (such as extraneous bytes between
 * markers) are common in real files and are ignored. */
static void on_jpeg_message(j_common_ptr cinfo, int level)
{
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF)
        on_jpeg_error(cinfo);
}

/* Converts one row of CMYK samples to RGB. Adobe writes inverted CMYK
 * (0 = full ink), as libjpeg reports with saw_Adobe_marker. */
static void cmyk_to_rgb(uint8_t *row, int width, int inverted)
{
    for (int x = 0; x < width; x++) {
        int cmyk[4];
        for (int k = 0; k < 4; k++)
            cmyk[k] = inverted ? row[4 * x + k] : 255 - row[4 * x + k];
        for (int k = 0; k < 3; k++)
            row[3 * x + k] = (uint8_t)((cmyk[k] * cmyk[3] + 127) / 255);
    }
}

static rn_status decode_jpeg(const uint8_t *bytes, size_t nbytes, const char *name,
                             int channels, rn_image *out)
{
    struct jpeg_decompress_struct cinfo;
    jpeg_failure failure;
    uint8_t *volatile interleaved = NULL;
    volatile int created = 0;

    memset(out, 0, sizeof *out);
    cinfo.err = jpeg_std_error(&failure.manager);
    failure.manager.error_exit = on_jpeg_error;
    failure.manager.emit_message = on_jpeg_message;
    failure.message[0] = '\0';
    if (setjmp(failure.jump)) {
        free(interleaved);
        rn_image_free(out);
        if (created)
            jpeg_destroy_decompress(&cinfo);
        return rn_error(RN_ERR_FORMAT, "%s: truncated or corrupt JPEG file (libjpeg: %s)",
                        name, failure.message);
    }

    jpeg_create_decompress(&cinfo);
    created = 1;
    jpeg_mem_src(&cinfo, bytes, (unsigned long)nbytes);
    jpeg_read_header(&cinfo, TRUE);

    int file_channels = cinfo.num_components == 1 ? 1 : 3;
    int cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    if (cinfo.num_components == 1)
        cinfo.out_color_space = JCS_GRAYSCALE;
    else if (cmyk)
        cinfo.out_color_space = JCS_CMYK;
    else
        cinfo.out_color_space = JCS_RGB;

    rn_status status = check_size(name, "JPEG", cinfo.image_width, cinfo.image_height);
    if (status != RN_OK) {
        jpeg_destroy_decompress(&cinfo);
        return status;
    }
    jpeg_start_decompress(&cinfo);

    int row_channels = cinfo.output_components;
    int height = (int)cinfo.output_height, width = (int)cinfo.output_width;
    interleaved = malloc((size_t)height * width * row_channels);
    if (!interleaved) {
        jpeg_destroy_decompress(&cinfo);
        return rn_error(RN_ERR_NOMEM, "%s: cannot allocate memory to decode it", name);
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = interleaved + (size_t)cinfo.output_scanline * width * row_channels;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);

    /* CMYK rows shrink to RGB in place, so the rows end up packed at
     * 3 bytes per pixel. */
    if (cmyk) {
        for (int y = 0; y < height; y++) {
            uint8_t *row = interleaved + (size_t)y * width * 4;
            cmyk_to_rgb(row, width, cinfo.saw_Adobe_marker);
            memmove(interleaved + (size_t)y * width * 3, row, (size_t)width * 3);
        }
        row_channels = 3;
    }
    jpeg_destroy_decompress(&cinfo);
    created = 0;

    int out_channels = channels != 0 ? channels : file_channels;
    status = allocate_image(out, out_channels, height, width);
    if (status == RN_OK)
        to_planar(interleaved, row_channels, height, width, out_channels, out->pixels);
    free(interleaved);
    return status;
}

/* ------------------------------------------------------------------ files */

rn_status rn_image_decode(const uint8_t *bytes, size_t nbytes, const char *name,
                          int channels, rn_image *out)
{
    memset(out, 0, sizeof *out);
    if (channels != 0 && channels != 1 && channels != 3)
        return rn_error(RN_ERR_INVALID, "%s: cannot convert an image to %d channels; "
                        "expected 1 (grayscale) or 3 (RGB)", name, channels);
    if (nbytes >= sizeof PNG_SIGNATURE && !memcmp(bytes, PNG_SIGNATURE, sizeof PNG_SIGNATURE))
        return decode_png(bytes, nbytes, name, channels, out);
    if (nbytes >= 3 && bytes[0] == 0xff && bytes[1] == 0xd8 && bytes[2] == 0xff)
        return decode_jpeg(bytes, nbytes, name, channels, out);
    if (nbytes == 0)
        return rn_error(RN_ERR_FORMAT, "%s: empty file, not a PNG or JPEG image", name);
    return rn_error(RN_ERR_FORMAT, "%s: not a PNG or JPEG image (unknown file signature)",
                    name);
}

rn_status rn_image_read(const char *path, int channels, rn_image *out)
{
    void *bytes;
    size_t nbytes;

    memset(out, 0, sizeof *out);
    RN_TRY(rn_file_read_all(path, &bytes, &nbytes));
    rn_status status = rn_image_decode(bytes, nbytes, path, channels, out);
    rn_free_aligned(bytes);
    return status;
}

int rn_image_has_extension(const char *path)
{
    static const char *const extensions[] = {".png", ".jpg", ".jpeg"};
    size_t length = strlen(path);

    for (size_t k = 0; k < sizeof extensions / sizeof extensions[0]; k++) {
        size_t ext_length = strlen(extensions[k]);
        if (length <= ext_length)
            continue;
        const char *tail = path + length - ext_length;
        int match = 1;
        for (size_t i = 0; i < ext_length && match; i++)
            match = tolower((unsigned char)tail[i]) == extensions[k][i];
        if (match)
            return 1;
    }
    return 0;
}

void rn_image_free(rn_image *image)
{
    free(image->pixels);
    memset(image, 0, sizeof *image);
}

/* ------------------------------------------------------- resize and crop */

/* Source taps of one output coordinate along one axis. */
typedef struct resample_taps {
    int first, count;
    float *weights; /* (count) summing to 1 */
} resample_taps;

/* Computes the taps of every output coordinate for a resize from in_size to
 * out_size: a triangle filter centred on the output pixel's centre in
 * source coordinates, widened by the scale factor when shrinking. The
 * weights of one coordinate are packed into weights at stride max_taps. */
static void compute_taps(int in_size, int out_size, resample_taps *taps, float *weights,
                        int max_taps)
{
    double scale = (double)in_size / out_size;
    double filter_scale = scale > 1.0 ? scale : 1.0;

    for (int i = 0; i < out_size; i++) {
        double center = (i + 0.5) * scale;
        int first = (int)floor(center - filter_scale);
        int last = (int)ceil(center + filter_scale);
        if (first < 0)
            first = 0;
        if (last > in_size)
            last = in_size;

        float *w = weights + (size_t)i * max_taps;
        double sum = 0.0;
        int count = 0;
        for (int j = first; j < last && count < max_taps; j++) {
            double x = fabs((j + 0.5 - center) / filter_scale);
            double value = x < 1.0 ? 1.0 - x : 0.0;
            w[count++] = (float)value;
            sum += value;
        }
        for (int k = 0; k < count; k++)
            w[k] = sum > 0.0 ? (float)(w[k] / sum) : 0.0f;
        taps[i] = (resample_taps){.first = first, .count = count, .weights = w};
    }
}

static int max_tap_count(int in_size, int out_size)
{
    double scale = (double)in_size / out_size;
    return (int)ceil(2.0 * (scale > 1.0 ? scale : 1.0)) + 2;
}

rn_status rn_image_resize(const rn_image *src, int height, int width, rn_image *dst)
{
    memset(dst, 0, sizeof *dst);
    if (height < 1 || width < 1)
        return rn_error(RN_ERR_INVALID, "invalid resize target %dx%d; expected positive sizes",
                        height, width);

    int max_x = max_tap_count(src->width, width), max_y = max_tap_count(src->height, height);
    resample_taps *taps_x = malloc((size_t)width * sizeof *taps_x);
    resample_taps *taps_y = malloc((size_t)height * sizeof *taps_y);
    float *weights_x = malloc((size_t)width * max_x * sizeof(float));
    float *weights_y = malloc((size_t)height * max_y * sizeof(float));
    float *rows = malloc((size_t)src->height * width * sizeof(float)); /* (in_h, out_w) */
    rn_status status = RN_OK;

    if (!taps_x || !taps_y || !weights_x || !weights_y || !rows)
        status = rn_error(RN_ERR_NOMEM, "cannot allocate a resize to %dx%d", height, width);
    if (status == RN_OK)
        status = allocate_image(dst, src->channels, height, width);
    if (status == RN_OK) {
        compute_taps(src->width, width, taps_x, weights_x, max_x);
        compute_taps(src->height, height, taps_y, weights_y, max_y);

        for (int c = 0; c < src->channels; c++) {
            const uint8_t *plane = src->pixels + (size_t)c * src->height * src->width;

            /* Horizontal pass into floats, then vertical pass to bytes. */
            for (int y = 0; y < src->height; y++) {
                const uint8_t *row = plane + (size_t)y * src->width;
                for (int x = 0; x < width; x++) {
                    const resample_taps *t = &taps_x[x];
                    float sum = 0.0f;
                    for (int k = 0; k < t->count; k++)
                        sum += t->weights[k] * row[t->first + k];
                    rows[(size_t)y * width + x] = sum;
                }
            }
            uint8_t *out = dst->pixels + (size_t)c * height * width;
            for (int y = 0; y < height; y++) {
                const resample_taps *t = &taps_y[y];
                for (int x = 0; x < width; x++) {
                    float sum = 0.0f;
                    for (int k = 0; k < t->count; k++)
                        sum += t->weights[k] * rows[(size_t)(t->first + k) * width + x];
                    long rounded = lroundf(sum);
                    if (rounded < 0)
                        rounded = 0;
                    if (rounded > 255)
                        rounded = 255;
                    out[(size_t)y * width + x] = (uint8_t)rounded;
                }
            }
        }
    }
    free(taps_x);
    free(taps_y);
    free(weights_x);
    free(weights_y);
    free(rows);
    return status;
}

rn_status rn_image_crop(const rn_image *src, int top, int left, int height, int width,
                        rn_image *dst)
{
    memset(dst, 0, sizeof *dst);
    if (height < 1 || width < 1 || top < 0 || left < 0 || top > src->height - height ||
        left > src->width - width)
        return rn_error(RN_ERR_INVALID, "invalid crop of %dx%d at (%d, %d) from a %dx%d image",
                        height, width, top, left, src->height, src->width);
    RN_TRY(allocate_image(dst, src->channels, height, width));
    for (int c = 0; c < src->channels; c++)
        for (int y = 0; y < height; y++)
            memcpy(dst->pixels + ((size_t)c * height + y) * width,
                   src->pixels + ((size_t)c * src->height + top + y) * src->width + left,
                   (size_t)width);
    return RN_OK;
}

/* Tests of image files and the data sets built on them: PNG and JPEG
 * decoding, resizing, CIFAR-10 binary files, image folders, their loading
 * on the loader thread, the random resized crop and the inference
 * preprocessing. Every file is written by the tests into the run's
 * temporary directory. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>

#include "core/rng.h"
#include "core/status.h"
#include "data/augment.h"
#include "data/dataset.h"
#include "data/image.h"
#include "data/loader.h"
#include "data/preprocess.h"
#include "io/safetensors.h"
#include "test.h"
#include "train/schedule.h"

/* Expects expr to fail with status and a message containing needle. */
#define CHECK_FAILS(expr, status, needle)                                      \
    do {                                                                       \
        rn_status got_ = (expr);                                               \
        CHECK_MSG(got_ == (status), "%s returned %s, expected %s", #expr,      \
                  rn_status_name(got_), rn_status_name(status));               \
        CHECK_MSG(strstr(rn_last_error(), (needle)) != NULL,                   \
                  "message \"%s\" lacks \"%s\"", rn_last_error(), (needle));   \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Writers of test files                                                     */

static void test_path(char *path, size_t size, const char *name)
{
    snprintf(path, size, "%s/%s", rn_test_tmpdir(), name);
}

static void make_dirs(const char *path)
{
    char command[1200];
    snprintf(command, sizeof command, "mkdir -p '%s'", path);
    RN_ASSERT(system(command) == 0);
}

/* Writes an interleaved (height, width, channels) 8-bit image as PNG;
 * channels is 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA). */
static void write_png(const char *path, int channels, int height, int width,
                      const uint8_t *pixels)
{
    static const png_uint_32 formats[] = {0, PNG_FORMAT_GRAY, PNG_FORMAT_GA, PNG_FORMAT_RGB,
                                          PNG_FORMAT_RGBA};
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    image.width = (png_uint_32)width;
    image.height = (png_uint_32)height;
    image.format = formats[channels];
    RN_ASSERT(png_image_write_to_file(&image, path, 0, pixels, 0, NULL));
}

/* Writes a gray PNG of the given bit depth (8 or 16; 16-bit samples
 * big-endian) with libpng's low-level API, adding a gAMA chunk when gamma
 * is not 0, which the simplified writer cannot do. */
static void write_png_gray(const char *path, int depth, double gamma, int height, int width,
                           const uint8_t *samples)
{
    FILE *file = fopen(path, "wb");
    RN_ASSERT(file != NULL);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    RN_ASSERT(png && info && !setjmp(png_jmpbuf(png)));
    png_init_io(png, file);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, depth,
                 PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (gamma > 0)
        png_set_gAMA(png, info, gamma);
    png_write_info(png, info);
    for (int y = 0; y < height; y++)
        png_write_row(png, samples + (size_t)y * width * (depth / 8));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    RN_ASSERT(fclose(file) == 0);
}

/* Writes an interleaved 8-bit gray (channels 1) or RGB (3) image as JPEG. */
static void write_jpeg(const char *path, int channels, int height, int width,
                       const uint8_t *pixels, int quality)
{
    struct jpeg_compress_struct cinfo;
    struct jpeg_error_mgr error;
    FILE *file = fopen(path, "wb");
    RN_ASSERT(file != NULL);
    cinfo.err = jpeg_std_error(&error);
    jpeg_create_compress(&cinfo);
    jpeg_stdio_dest(&cinfo, file);
    cinfo.image_width = (JDIMENSION)width;
    cinfo.image_height = (JDIMENSION)height;
    cinfo.input_components = channels;
    cinfo.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    for (int y = 0; y < height; y++) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)y * width * channels);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    RN_ASSERT(fclose(file) == 0);
}

static void write_bytes(const char *path, const void *bytes, size_t nbytes)
{
    FILE *file = fopen(path, "wb");
    RN_ASSERT(file != NULL);
    RN_ASSERT(fwrite(bytes, 1, nbytes, file) == nbytes);
    RN_ASSERT(fclose(file) == 0);
}

/* Cuts a file to its first keep bytes. */
static void truncate_file(const char *path, long keep)
{
    RN_ASSERT(truncate(path, keep) == 0);
}

static long file_size(const char *path)
{
    struct stat info;
    RN_ASSERT(stat(path, &info) == 0);
    return (long)info.st_size;
}

/* A 6x5 (HxW) RGB pattern, interleaved, where every value differs. */
static void rgb_pattern(uint8_t *pixels, int height, int width, int seed)
{
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++)
            for (int c = 0; c < 3; c++)
                pixels[(y * width + x) * 3 + c] = (uint8_t)(seed + 40 * c + 7 * y + 3 * x);
}

/* ------------------------------------------------------------------------ */
/* PNG and JPEG decoding                                                     */

TEST(image_png_rgb_is_exact_and_planar)
{
    char path[600];
    uint8_t pixels[6 * 5 * 3];
    rn_image image;
    rgb_pattern(pixels, 6, 5, 1);
    test_path(path, sizeof path, "rgb.png");
    write_png(path, 3, 6, 5, pixels);

    CHECK_OK(rn_image_read(path, 0, &image));
    CHECK(image.channels == 3);
    CHECK(image.height == 6);
    CHECK(image.width == 5);
    int mismatches = 0;
    for (int c = 0; c < 3; c++)
        for (int p = 0; p < 30; p++)
            mismatches += image.pixels[c * 30 + p] != pixels[p * 3 + c];
    CHECK_MSG(mismatches == 0, "%d planar pixels differ from the PNG's", mismatches);
    rn_image_free(&image);
}

/* PIL reads the stored samples: the high byte of 16-bit data, and 8-bit data
 * unchanged whatever gAMA specifies. libpng's simplified reader would treat
 * 16-bit data as linear light and convert 128 to about 186. */
TEST(image_png_16bit_and_gamma_keep_stored_values)
{
    char wide_path[600], gamma_path[600];
    uint8_t wide[2 * 3 * 2], narrow[2 * 3];
    rn_image image;
    for (int p = 0; p < 6; p++) {
        narrow[p] = (uint8_t)(40 * p + 8);
        wide[2 * p] = narrow[p]; /* big-endian: high byte first */
        wide[2 * p + 1] = narrow[p];
    }
    test_path(wide_path, sizeof wide_path, "gray16.png");
    test_path(gamma_path, sizeof gamma_path, "gamma.png");
    write_png_gray(wide_path, 16, 0, 2, 3, wide);
    write_png_gray(gamma_path, 8, 1.0, 2, 3, narrow);

    const char *paths[] = {wide_path, gamma_path};
    for (int k = 0; k < 2; k++) {
        CHECK_OK(rn_image_read(paths[k], 0, &image));
        CHECK(image.channels == 1);
        int mismatches = 0;
        for (int p = 0; p < 6 && image.pixels; p++)
            mismatches += image.pixels[p] != narrow[p];
        CHECK_MSG(mismatches == 0, "%s: %d of 6 values differ from the stored samples "
                  "(first: %d, stored %d)", paths[k], mismatches,
                  image.pixels ? image.pixels[0] : -1, narrow[0]);
        rn_image_free(&image);
    }
}

TEST(image_png_gray_and_alpha)
{
    char gray_path[600], rgba_path[600], ga_path[600];
    uint8_t gray[4 * 3], rgba[4 * 3 * 4], ga[4 * 3 * 2];
    rn_image image;
    for (int p = 0; p < 12; p++) {
        gray[p] = (uint8_t)(20 * p);
        for (int c = 0; c < 4; c++)
            rgba[p * 4 + c] = (uint8_t)(c == 3 ? p * 10 : 60 * c + p);
        ga[p * 2] = (uint8_t)(5 * p);
        ga[p * 2 + 1] = 0; /* fully transparent: the values must survive */
    }
    test_path(gray_path, sizeof gray_path, "gray.png");
    test_path(rgba_path, sizeof rgba_path, "rgba.png");
    test_path(ga_path, sizeof ga_path, "ga.png");
    write_png(gray_path, 1, 4, 3, gray);
    write_png(rgba_path, 4, 4, 3, rgba);
    write_png(ga_path, 2, 4, 3, ga);

    /* Gray keeps one channel, and replicates into three on request. */
    CHECK_OK(rn_image_read(gray_path, 0, &image));
    CHECK(image.channels == 1);
    CHECK(image.pixels[5] == 100);
    rn_image_free(&image);
    CHECK_OK(rn_image_read(gray_path, 3, &image));
    CHECK(image.channels == 3);
    CHECK(image.pixels[5] == 100);
    CHECK(image.pixels[12 + 5] == 100);
    CHECK(image.pixels[24 + 5] == 100);
    rn_image_free(&image);

    /* Alpha is dropped, not composited. */
    CHECK_OK(rn_image_read(rgba_path, 0, &image));
    CHECK(image.channels == 3);
    CHECK(image.pixels[0] == 0);
    CHECK(image.pixels[12] == 60);
    CHECK(image.pixels[24] == 120);
    CHECK(image.pixels[24 + 11] == 131);
    rn_image_free(&image);
    CHECK_OK(rn_image_read(ga_path, 0, &image));
    CHECK(image.channels == 1);
    CHECK(image.pixels[7] == 35);
    rn_image_free(&image);
}

TEST(image_rgb_to_gray_is_luma)
{
    char path[600];
    uint8_t pixels[3] = {10, 200, 30};
    rn_image image;
    test_path(path, sizeof path, "luma.png");
    write_png(path, 3, 1, 1, pixels);
    CHECK_OK(rn_image_read(path, 1, &image));
    CHECK(image.channels == 1);
    /* (19595 * 10 + 38470 * 200 + 7471 * 30 + 32768) >> 16 = 124 */
    CHECK_MSG(image.pixels[0] == 124, "luma %d, expected 124", image.pixels[0]);
    rn_image_free(&image);
}

TEST(image_jpeg_rgb_and_gray)
{
    char rgb_path[600], gray_path[600];
    uint8_t rgb[16 * 16 * 3], gray[16 * 16];
    rn_image image;
    for (int p = 0; p < 256; p++) {
        rgb[p * 3] = 200;
        rgb[p * 3 + 1] = 40;
        rgb[p * 3 + 2] = 90;
        gray[p] = 150;
    }
    test_path(rgb_path, sizeof rgb_path, "rgb.jpg");
    test_path(gray_path, sizeof gray_path, "gray.jpeg");
    write_jpeg(rgb_path, 3, 16, 16, rgb, 95);
    write_jpeg(gray_path, 1, 16, 16, gray, 95);

    /* JPEG is lossy: flat colours come back within a few levels. */
    CHECK_OK(rn_image_read(rgb_path, 0, &image));
    CHECK(image.channels == 3);
    CHECK(image.height == 16);
    CHECK(image.width == 16);
    CHECK_CLOSE(image.pixels[0], 200, 3, 0);
    CHECK_CLOSE(image.pixels[256 + 17], 40, 3, 0);
    CHECK_CLOSE(image.pixels[512 + 255], 90, 3, 0);
    rn_image_free(&image);
    CHECK_OK(rn_image_read(gray_path, 0, &image));
    CHECK(image.channels == 1);
    CHECK_CLOSE(image.pixels[100], 150, 2, 0);
    rn_image_free(&image);
    CHECK_OK(rn_image_read(gray_path, 3, &image));
    CHECK(image.channels == 3);
    CHECK(image.pixels[100] == image.pixels[256 + 100]);
    rn_image_free(&image);
}

TEST(image_bad_files_name_path)
{
    char png_path[600], jpeg_path[600], text_path[600], empty_path[600], missing[600];
    uint8_t pixels[32 * 32 * 3];
    rn_image image;
    rgb_pattern(pixels, 32, 32, 0);
    test_path(png_path, sizeof png_path, "cut.png");
    test_path(jpeg_path, sizeof jpeg_path, "cut.jpg");
    test_path(text_path, sizeof text_path, "notes.png");
    test_path(empty_path, sizeof empty_path, "empty.jpg");
    test_path(missing, sizeof missing, "missing.png");
    write_png(png_path, 3, 32, 32, pixels);
    write_jpeg(jpeg_path, 3, 32, 32, pixels, 90);
    truncate_file(png_path, file_size(png_path) / 2);
    truncate_file(jpeg_path, file_size(jpeg_path) / 2);
    write_bytes(text_path, "hello, world\n", 13);
    write_bytes(empty_path, "", 0);

    CHECK_FAILS(rn_image_read(png_path, 0, &image), RN_ERR_FORMAT, "cut.png");
    CHECK_FAILS(rn_image_read(png_path, 0, &image), RN_ERR_FORMAT, "truncated or corrupt PNG");
    CHECK(image.pixels == NULL);
    CHECK_FAILS(rn_image_read(jpeg_path, 0, &image), RN_ERR_FORMAT, "cut.jpg");
    CHECK_FAILS(rn_image_read(jpeg_path, 0, &image), RN_ERR_FORMAT, "truncated or corrupt JPEG");
    CHECK_FAILS(rn_image_read(text_path, 0, &image), RN_ERR_FORMAT, "notes.png: not a PNG or JPEG");
    CHECK_FAILS(rn_image_read(empty_path, 0, &image), RN_ERR_FORMAT, "empty file");
    CHECK_FAILS(rn_image_read(missing, 0, &image), RN_ERR_IO, "missing.png");
    CHECK_FAILS(rn_image_read(png_path, 2, &image), RN_ERR_INVALID, "2 channels");

    /* A PNG header that claims a huge image is rejected before decoding. */
    uint8_t header[64];
    FILE *file = fopen(png_path, "wb");
    RN_ASSERT(file);
    fclose(file);
    write_png(png_path, 1, 1, 1, (const uint8_t *)"x");
    file = fopen(png_path, "rb");
    size_t nbytes = fread(header, 1, sizeof header, file);
    fclose(file);
    header[16] = header[17] = header[20] = header[21] = 0x7f; /* IHDR width and height */
    write_bytes(png_path, header, nbytes);
    CHECK(rn_image_read(png_path, 0, &image) == RN_ERR_FORMAT);
}

TEST(image_resize_matches_pillow)
{
    /* Expected values from Pillow 9.4's Image.resize(..., BILINEAR), which
     * antialiases when shrinking, on the 4x5 image 0, 10, ..., 190. */
    static const uint8_t shrunk[9] = {19, 35, 51, 79, 95, 111, 139, 155, 171};
    static const uint8_t grown[6][7] = {
        {0, 6, 13, 20, 27, 34, 40},          {25, 31, 38, 45, 52, 59, 65},
        {58, 64, 71, 78, 85, 92, 98},        {92, 98, 105, 112, 119, 126, 132},
        {125, 131, 138, 145, 152, 159, 165}, {150, 156, 163, 170, 177, 184, 190},
    };
    uint8_t pixels[20];
    for (int p = 0; p < 20; p++)
        pixels[p] = (uint8_t)(10 * p);
    rn_image src = {.channels = 1, .height = 4, .width = 5, .pixels = pixels}, dst;

    CHECK_OK(rn_image_resize(&src, 3, 3, &dst));
    for (int p = 0; p < 9; p++)
        CHECK_MSG(abs(dst.pixels[p] - shrunk[p]) <= 1, "shrunk pixel %d is %d, Pillow %d", p,
                  dst.pixels[p], shrunk[p]);
    rn_image_free(&dst);
    CHECK_OK(rn_image_resize(&src, 6, 7, &dst));
    for (int y = 0; y < 6; y++)
        for (int x = 0; x < 7; x++)
            CHECK_MSG(abs(dst.pixels[y * 7 + x] - grown[y][x]) <= 1,
                      "grown pixel (%d, %d) is %d, Pillow %d", y, x, dst.pixels[y * 7 + x],
                      grown[y][x]);
    rn_image_free(&dst);
    CHECK_FAILS(rn_image_resize(&src, 0, 3, &dst), RN_ERR_INVALID, "0x3");
}

TEST(image_crop_copies_window)
{
    uint8_t pixels[2 * 4 * 4];
    for (int p = 0; p < 32; p++)
        pixels[p] = (uint8_t)p;
    rn_image src = {.channels = 2, .height = 4, .width = 4, .pixels = pixels}, dst;
    CHECK_OK(rn_image_crop(&src, 1, 2, 2, 2, &dst));
    CHECK(dst.pixels[0] == 6);
    CHECK(dst.pixels[1] == 7);
    CHECK(dst.pixels[2] == 10);
    CHECK(dst.pixels[4] == 22);
    CHECK(dst.pixels[7] == 27);
    rn_image_free(&dst);
    CHECK_FAILS(rn_image_crop(&src, 3, 0, 2, 2, &dst), RN_ERR_INVALID, "invalid crop");
}

/* ------------------------------------------------------------------------ */
/* CIFAR-10                                                                  */

/* Writes count CIFAR-10 records whose label is (first + r) % 10 and whose
 * pixels encode the record: red = record index, green = 100 + pixel % 50,
 * blue = 200. */
static void write_cifar(const char *path, int first, int count)
{
    uint8_t *bytes = malloc((size_t)count * 3073);
    RN_ASSERT(bytes);
    for (int r = 0; r < count; r++) {
        uint8_t *record = bytes + (size_t)r * 3073;
        record[0] = (uint8_t)((first + r) % 10);
        for (int p = 0; p < 1024; p++) {
            record[1 + p] = (uint8_t)(first + r);
            record[1 + 1024 + p] = (uint8_t)(100 + p % 50);
            record[1 + 2048 + p] = 200;
        }
    }
    write_bytes(path, bytes, (size_t)count * 3073);
    free(bytes);
}

static void make_cifar_dir(char *dir, size_t size, const char *name)
{
    char path[800];
    test_path(dir, size, name);
    make_dirs(dir);
    for (int k = 1; k <= 5; k++) {
        snprintf(path, sizeof path, "%s/data_batch_%d.bin", dir, k);
        write_cifar(path, 2 * (k - 1), 2);
    }
    snprintf(path, sizeof path, "%s/test_batch.bin", dir);
    write_cifar(path, 50, 3);
}

TEST(cifar10_loads_records)
{
    char dir[600];
    rn_dataset train, test;
    make_cifar_dir(dir, sizeof dir, "cifar");

    CHECK_OK(rn_dataset_load(RN_DATA_FORMAT_CIFAR10, dir, 1, NULL, &train));
    CHECK(train.count == 10);
    CHECK(train.channels == 3);
    CHECK(train.height == 32);
    CHECK(train.width == 32);
    CHECK(train.num_classes == 10);
    CHECK(train.labels[7] == 7);
    CHECK(train.images[7 * 3072] == 7);              /* red plane of record 7 */
    CHECK(train.images[7 * 3072 + 1024 + 51] == 101); /* green */
    CHECK(train.images[7 * 3072 + 2048 + 3] == 200);  /* blue */
    CHECK(strcmp(train.class_names[3], "cat") == 0);
    CHECK_CLOSE(train.mean[0], 0.4914, 1e-6, 0);
    CHECK_CLOSE(train.std[2], 0.2616, 1e-6, 0);
    CHECK_OK(rn_dataset_load(RN_DATA_FORMAT_CIFAR10, dir, 0, NULL, &test));
    CHECK(test.count == 3);
    CHECK(test.labels[2] == 2);
    rn_dataset_free(&train);
    rn_dataset_free(&test);
}

TEST(cifar10_meta_names_and_subfolder)
{
    char parent[600], dir[700], path[800];
    rn_dataset test;
    test_path(parent, sizeof parent, "cifar-parent");
    snprintf(dir, sizeof dir, "%s/cifar-10-batches-bin", parent);
    make_dirs(dir);
    snprintf(path, sizeof path, "%s/test_batch.bin", dir);
    write_cifar(path, 0, 2);
    snprintf(path, sizeof path, "%s/batches.meta.txt", dir);
    const char *names = "a0\na1\na2\na3\na4\na5\na6\na7\na8\na9\n\n";
    write_bytes(path, names, strlen(names));

    CHECK_OK(rn_dataset_load_cifar10(parent, 0, &test));
    CHECK(test.count == 2);
    CHECK(strcmp(test.class_names[9], "a9") == 0);
    rn_dataset_free(&test);
}

TEST(cifar10_bad_files)
{
    char dir[600], path[800];
    rn_dataset data;
    make_cifar_dir(dir, sizeof dir, "cifar-bad");

    /* One byte short of two records: both sizes are in the message. */
    snprintf(path, sizeof path, "%s/data_batch_3.bin", dir);
    truncate_file(path, 2 * 3073 - 1);
    CHECK_FAILS(rn_dataset_load_cifar10(dir, 1, &data), RN_ERR_FORMAT, "6145 bytes");
    CHECK_FAILS(rn_dataset_load_cifar10(dir, 1, &data), RN_ERR_FORMAT, "3073-byte record");
    CHECK_FAILS(rn_dataset_load_cifar10(dir, 1, &data), RN_ERR_FORMAT, "data_batch_3.bin");
    CHECK(data.count == 0);
    CHECK(data.images == NULL);

    /* A label above 9. */
    write_cifar(path, 0, 2);
    uint8_t label = 12;
    FILE *file = fopen(path, "r+b");
    RN_ASSERT(file && fseek(file, 3073, SEEK_SET) == 0 && fwrite(&label, 1, 1, file) == 1);
    fclose(file);
    CHECK_FAILS(rn_dataset_load_cifar10(dir, 1, &data), RN_ERR_FORMAT, "label 12 of record 1");

    /* A missing file is named, with where to get the data set. */
    write_cifar(path, 0, 2);
    snprintf(path, sizeof path, "%s/data_batch_5.bin", dir);
    RN_ASSERT(unlink(path) == 0);
    CHECK_FAILS(rn_dataset_load_cifar10(dir, 1, &data), RN_ERR_IO, "data_batch_5.bin");
    CHECK_FAILS(rn_dataset_load_cifar10(dir, 1, &data), RN_ERR_IO, "cifar-10-binary.tar.gz");
}

/* ------------------------------------------------------------------------ */
/* Image folders                                                             */

/* Writes a solid RGB image of one colour, as PNG or JPEG by the name. */
static void write_solid(const char *path, int height, int width, const uint8_t rgb[3])
{
    uint8_t *pixels = malloc((size_t)height * width * 3);
    RN_ASSERT(pixels);
    for (int p = 0; p < height * width; p++)
        memcpy(pixels + p * 3, rgb, 3);
    if (strstr(path, ".jpg"))
        write_jpeg(path, 3, height, width, pixels, 100);
    else
        write_png(path, 3, height, width, pixels);
    free(pixels);
}

static void write_gray(const char *path, int height, int width, uint8_t value)
{
    uint8_t *pixels = malloc((size_t)height * width);
    RN_ASSERT(pixels);
    memset(pixels, value, (size_t)height * width);
    write_png(path, 1, height, width, pixels);
    free(pixels);
}

/* DIR/train/{bird,ant,cat} with 2, 3 and 1 images, a gray one among them,
 * and DIR/val/{ant,cat} with one image each. */
static void make_folder(char *dir, size_t size, const char *name)
{
    static const uint8_t red[3] = {250, 10, 10}, green[3] = {10, 250, 10};
    char path[900];
    test_path(dir, size, name);
    const char *folders[] = {"train/ant", "train/bird", "train/cat", "val/ant", "val/cat"};
    for (int k = 0; k < 5; k++) {
        snprintf(path, sizeof path, "%s/%s", dir, folders[k]);
        make_dirs(path);
    }
    snprintf(path, sizeof path, "%s/train/bird/b1.png", dir);
    write_solid(path, 8, 8, red);
    snprintf(path, sizeof path, "%s/train/bird/b0.jpg", dir);
    write_solid(path, 8, 8, green);
    for (int k = 0; k < 3; k++) {
        snprintf(path, sizeof path, "%s/train/ant/a%d.png", dir, k);
        write_solid(path, 8, 8, red);
    }
    snprintf(path, sizeof path, "%s/train/cat/c.png", dir);
    write_gray(path, 8, 8, 100);
    snprintf(path, sizeof path, "%s/train/.hidden.png", dir);
    write_bytes(path, "not an image", 12);
    snprintf(path, sizeof path, "%s/val/ant/a.png", dir);
    write_solid(path, 8, 8, red);
    snprintf(path, sizeof path, "%s/val/cat/c.png", dir);
    write_gray(path, 8, 8, 50);
}

TEST(imagefolder_lists_sorted_classes)
{
    char dir[600];
    rn_dataset train, val;
    make_folder(dir, sizeof dir, "folder");

    CHECK_OK(rn_dataset_load(RN_DATA_FORMAT_IMAGEFOLDER, dir, 1, NULL, &train));
    CHECK(train.count == 6);
    CHECK(train.num_classes == 3);
    CHECK(strcmp(train.class_names[0], "ant") == 0);
    CHECK(strcmp(train.class_names[2], "cat") == 0);
    CHECK(train.channels == 3); /* colour files make the set RGB */
    CHECK(train.height == 8);
    CHECK(train.width == 8);
    CHECK(train.images == NULL);
    CHECK(train.paths != NULL);
    CHECK(strstr(train.paths[3], "bird/b0.jpg") != NULL); /* files sorted by name */
    CHECK(train.labels[0] == 0);
    CHECK(train.labels[3] == 1);
    CHECK(train.labels[5] == 2);
    /* Red mean over 5 colour images and one gray 100 image of equal size. */
    CHECK_CLOSE(train.mean[0], (4 * 250 + 10 + 100) / 6.0 / 255.0, 2e-3, 0);

    /* The test split maps its folders to the training classes by name. */
    rn_dataset_options options = {
        .channels = 3, .class_names = (const char *const *)train.class_names,
        .class_count = train.num_classes,
    };
    CHECK_OK(rn_dataset_load(RN_DATA_FORMAT_IMAGEFOLDER, dir, 0, &options, &val));
    CHECK(val.count == 2);
    CHECK(val.num_classes == 3);
    CHECK(val.labels[0] == 0);
    CHECK(val.labels[1] == 2);
    rn_dataset_free(&val);

    /* Only gray files: one channel. */
    char val_dir[700];
    snprintf(val_dir, sizeof val_dir, "%s/val", dir);
    char path[800];
    snprintf(path, sizeof path, "%s/val/ant/a.png", dir);
    write_gray(path, 8, 8, 10);
    rn_dataset_options defaults = {0};
    CHECK_OK(rn_dataset_load_imagefolder(val_dir, &defaults, &val));
    CHECK(val.channels == 1);
    rn_dataset_free(&val);
    rn_dataset_free(&train);
}

TEST(imagefolder_bad_inputs_say_what_to_do)
{
    char dir[600], path[900];
    rn_dataset data;
    rn_dataset_options defaults = {0};

    /* No classes at all. */
    test_path(dir, sizeof dir, "folder-none/train");
    make_dirs(dir);
    CHECK_FAILS(rn_dataset_load_imagefolder(dir, &defaults, &data), RN_ERR_FORMAT,
                "contains no class folders");
    CHECK_FAILS(rn_dataset_load_imagefolder(dir, &defaults, &data), RN_ERR_FORMAT,
                "<class>/<image>");

    /* One class: nothing to classify. */
    test_path(dir, sizeof dir, "folder-one/train");
    snprintf(path, sizeof path, "%s/only", dir);
    make_dirs(path);
    snprintf(path, sizeof path, "%s/only/a.png", dir);
    write_gray(path, 8, 8, 10);
    CHECK_FAILS(rn_dataset_load_imagefolder(dir, &defaults, &data), RN_ERR_FORMAT,
                "needs at least 2");

    /* No train folder, no val folder. */
    test_path(dir, sizeof dir, "folder-missing");
    make_dirs(dir);
    CHECK_FAILS(rn_dataset_load(RN_DATA_FORMAT_IMAGEFOLDER, dir, 1, NULL, &data), RN_ERR_IO,
                "folder-missing/train not found");
    CHECK_FAILS(rn_dataset_load(RN_DATA_FORMAT_IMAGEFOLDER, dir, 0, NULL, &data), RN_ERR_IO,
                "neither a val nor a test folder");

    /* An empty class folder. */
    make_folder(dir, sizeof dir, "folder-empty");
    snprintf(path, sizeof path, "%s/train/dog", dir);
    make_dirs(path);
    CHECK_FAILS(rn_dataset_load(RN_DATA_FORMAT_IMAGEFOLDER, dir, 1, NULL, &data),
                RN_ERR_FORMAT, "train/dog contains no image files");

    /* Mixed sizes: an error without a resize, accepted with one. */
    make_folder(dir, sizeof dir, "folder-sizes");
    snprintf(path, sizeof path, "%s/train/cat/big.png", dir);
    write_gray(path, 12, 9, 7);
    CHECK_FAILS(rn_dataset_load(RN_DATA_FORMAT_IMAGEFOLDER, dir, 1, NULL, &data),
                RN_ERR_FORMAT, "is 12x9");
    CHECK_FAILS(rn_dataset_load(RN_DATA_FORMAT_IMAGEFOLDER, dir, 1, NULL, &data),
                RN_ERR_FORMAT, "pass --resize");
    rn_dataset_options resized = {.resized = 1};
    CHECK_OK(rn_dataset_load(RN_DATA_FORMAT_IMAGEFOLDER, dir, 1, &resized, &data));
    CHECK(data.height == 0);
    CHECK(data.width == 0);
    rn_dataset_free(&data);

    /* A text file and a truncated PNG are named. */
    make_folder(dir, sizeof dir, "folder-text");
    snprintf(path, sizeof path, "%s/train/ant/readme.txt", dir);
    write_bytes(path, "ants", 4);
    CHECK_FAILS(rn_dataset_load(RN_DATA_FORMAT_IMAGEFOLDER, dir, 1, NULL, &data),
                RN_ERR_FORMAT, "ant/readme.txt: not a PNG or JPEG");
    make_folder(dir, sizeof dir, "folder-cut");
    snprintf(path, sizeof path, "%s/train/bird/b1.png", dir);
    truncate_file(path, 40);
    CHECK_FAILS(rn_dataset_load(RN_DATA_FORMAT_IMAGEFOLDER, dir, 1, NULL, &data),
                RN_ERR_FORMAT, "bird/b1.png");

    /* A test folder with a class the model does not know. */
    make_folder(dir, sizeof dir, "folder-unknown");
    const char *const known[] = {"ant", "bird"};
    rn_dataset_options options = {.class_names = known, .class_count = 2};
    CHECK_FAILS(rn_dataset_load(RN_DATA_FORMAT_IMAGEFOLDER, dir, 0, &options, &data),
                RN_ERR_FORMAT, "val/cat: the folder is not one of the 2 classes");
}

TEST(imagefolder_loader_decodes_in_thread)
{
    char dir[600], path[900];
    rn_dataset train;
    rn_loader *loader;
    const float *images;
    const int32_t *labels;
    int n;
    make_folder(dir, sizeof dir, "folder-loader");
    CHECK_OK(rn_dataset_load(RN_DATA_FORMAT_IMAGEFOLDER, dir, 1, NULL, &train));

    rn_loader_config cfg = {.batch_size = 4};
    CHECK_OK(rn_loader_create(&train, &cfg, &loader));
    CHECK_OK(rn_loader_start_epoch(loader, 0));
    CHECK(rn_loader_next(loader, &images, &labels, &n) == 1);
    CHECK(n == 4);
    /* Sample 0 is ant/a0.png, solid (250, 10, 10). */
    CHECK_CLOSE(images[0], 250 / 255.0, 1e-6, 0);
    CHECK_CLOSE(images[64 + 5], 10 / 255.0, 1e-6, 0);
    CHECK(labels[3] == 1);
    CHECK(rn_loader_next(loader, &images, &labels, &n) == 1);
    CHECK(n == 2);
    /* Sample 5 is the gray cat, replicated into R, G and B. */
    CHECK_CLOSE(images[192 + 128 + 7], 100 / 255.0, 1e-6, 0);
    CHECK(labels[1] == 2);
    CHECK(rn_loader_next(loader, &images, &labels, &n) == 0);

    /* A file that breaks after the data set was opened fails the batch
     * that contains it, naming it, and the failure persists until the next
     * epoch. */
    snprintf(path, sizeof path, "%s/train/bird/b1.png", dir);
    truncate_file(path, 30);
    CHECK_OK(rn_loader_start_epoch(loader, 1));
    CHECK(rn_loader_next(loader, &images, &labels, &n) == 1);
    CHECK(rn_loader_next(loader, &images, &labels, &n) == -1);
    CHECK_MSG(strstr(rn_last_error(), "bird/b1.png") != NULL, "message: %s", rn_last_error());
    CHECK(rn_loader_next(loader, &images, &labels, &n) == -1);
    CHECK_FAILS(rn_loader_error(loader), RN_ERR_FORMAT, "bird/b1.png");
    rn_loader_destroy(loader);
    rn_dataset_free(&train);
}

TEST(imagefolder_mixed_sizes_need_resize_in_loader)
{
    char dir[600], path[900];
    rn_dataset train;
    rn_loader *loader;
    make_folder(dir, sizeof dir, "folder-resize");
    snprintf(path, sizeof path, "%s/train/cat/big.png", dir);
    write_gray(path, 12, 9, 7);
    rn_dataset_options resized = {.resized = 1};
    CHECK_OK(rn_dataset_load(RN_DATA_FORMAT_IMAGEFOLDER, dir, 1, &resized, &train));

    rn_loader_config plain = {.batch_size = 7};
    CHECK_FAILS(rn_loader_create(&train, &plain, &loader), RN_ERR_INVALID, "differ in size");
    rn_loader_config cfg = {.batch_size = 7, .augment = {.resize_h = 4, .resize_w = 4}};
    CHECK_OK(rn_loader_create(&train, &cfg, &loader));
    int channels, height, width;
    rn_loader_sample_shape(loader, &channels, &height, &width);
    CHECK(channels == 3);
    CHECK(height == 4);
    CHECK(width == 4);
    const float *images;
    const int32_t *labels;
    int n;
    CHECK_OK(rn_loader_start_epoch(loader, 0));
    CHECK(rn_loader_next(loader, &images, &labels, &n) == 1);
    CHECK(n == 7);
    CHECK_CLOSE(images[5 * 48 + 5], 7 / 255.0, 1e-6, 0); /* cat/big.png, 12x9 of 7, resized */
    rn_loader_destroy(loader);
    rn_dataset_free(&train);
}

/* ------------------------------------------------------------------------ */
/* Random resized crop, step milestones and inference preprocessing          */

TEST(augment_random_resized_crop)
{
    enum { SIDE = 16 };
    uint8_t image[SIDE * SIDE], constant[SIDE * SIDE];
    float out[8 * 8];
    for (int p = 0; p < SIDE * SIDE; p++) {
        image[p] = (uint8_t)p; /* value = 16 y + x */
        constant[p] = 77;
    }
    rn_augment aug = {.resize_h = 8, .resize_w = 8, .crop_scale_min = 0.1f,
                      .crop_scale_max = 0.3f};
    CHECK_OK(rn_augment_check(&aug, 1));

    int differs_from_full = 0;
    for (int seed = 0; seed < 20; seed++) {
        rn_rng rng;
        rn_rng_seed(&rng, (uint64_t)seed);
        rn_augment_image(&aug, 1, constant, 1, SIDE, SIDE, out, &rng);
        for (int p = 0; p < 64; p++)
            CHECK_CLOSE(out[p], 77 / 255.0, 1e-6, 0);

        /* A box of at most 30% of the area spans at most about 10 pixels
         * a side, so the output range is far below the image's 255. */
        rn_rng_seed(&rng, (uint64_t)seed);
        rn_augment_image(&aug, 1, image, 1, SIDE, SIDE, out, &rng);
        float low = out[0], high = out[0];
        for (int p = 1; p < 64; p++) {
            low = out[p] < low ? out[p] : low;
            high = out[p] > high ? out[p] : high;
        }
        CHECK_MSG((high - low) * 255.0f < 190.0f, "seed %d: range %g to %g", seed, low, high);
        differs_from_full += low > 0.5f / 255.0f;
    }
    CHECK(differs_from_full > 0);

    /* Evaluation ignores the crop: the whole image is resized. */
    rn_augment_image(&aug, 0, image, 1, SIDE, SIDE, out, NULL);
    CHECK(out[0] < out[63]);
    rn_augment bad = {.crop_scale_min = 0.5f, .crop_scale_max = 0.2f};
    CHECK_FAILS(rn_augment_check(&bad, 1), RN_ERR_INVALID, "random resized crop");
}

TEST(schedule_milestones_in_steps)
{
    rn_schedule s = {
        .kind = RN_SCHEDULE_MULTISTEP, .lr = 0.1, .epochs = 164, .gamma = 0.1,
        .milestones = {32000, 48000}, .milestone_count = 2, .milestones_in_steps = 1,
    };
    /* The epoch is irrelevant; only the steps done count. */
    CHECK_CLOSE(rn_schedule_lr_at_step(&s, 100.0, 0), 0.1, 1e-12, 0);
    CHECK_CLOSE(rn_schedule_lr_at_step(&s, 100.0, 31999), 0.1, 1e-12, 0);
    CHECK_CLOSE(rn_schedule_lr_at_step(&s, 1.0, 32000), 0.01, 1e-12, 1e-12);
    CHECK_CLOSE(rn_schedule_lr_at_step(&s, 1.0, 47999), 0.01, 1e-12, 1e-12);
    CHECK_CLOSE(rn_schedule_lr_at_step(&s, 1.0, 48000), 0.001, 1e-12, 1e-12);
    CHECK_CLOSE(rn_schedule_lr_at_step(&s, 1.0, 63999), 0.001, 1e-12, 1e-12);
    /* Epoch milestones ignore the step. */
    s.milestones_in_steps = 0;
    s.milestones[0] = 2;
    s.milestones[1] = 3;
    CHECK_CLOSE(rn_schedule_lr_at_step(&s, 1.5, 50000), 0.1, 1e-12, 0);
    CHECK_CLOSE(rn_schedule_lr_at_step(&s, 2.0, 0), 0.01, 1e-12, 1e-12);
}

TEST(preprocess_covers_and_crops)
{
    /* A 20x10 gray image whose rows are constant and increase downwards. */
    uint8_t pixels[20 * 10];
    float out[8 * 8];
    for (int y = 0; y < 20; y++)
        memset(pixels + y * 10, 10 * y, 10);
    rn_image image = {.channels = 1, .height = 20, .width = 10, .pixels = pixels};
    rn_preprocess p = {.channels = 1, .height = 8, .width = 8};

    /* Covering 8x8 scales by 0.8 to 16x8, and the centre crop keeps rows
     * 4 to 11 of those 16, so the middle of the image. */
    CHECK_OK(rn_preprocess_image(&p, &image, out));
    rn_image resized, cropped;
    CHECK_OK(rn_image_resize(&image, 16, 8, &resized));
    CHECK_OK(rn_image_crop(&resized, 4, 0, 8, 8, &cropped));
    int mismatches = 0;
    for (int i = 0; i < 64; i++)
        mismatches += out[i] != cropped.pixels[i] / 255.0f;
    CHECK_MSG(mismatches == 0, "%d pixels differ from resize + centre crop", mismatches);
    CHECK(out[0] < out[63]);
    rn_image_free(&resized);
    rn_image_free(&cropped);

    /* With a stored resize the image is stretched as in training. */
    rn_preprocess stretch = {.channels = 1, .height = 8, .width = 8,
                             .augment = {.resize_h = 8, .resize_w = 8}};
    float expected[64];
    CHECK_OK(rn_preprocess_image(&stretch, &image, out));
    rn_augment_image(&stretch.augment, 0, pixels, 1, 20, 10, expected, NULL);
    CHECK(memcmp(out, expected, sizeof out) == 0);

    /* ImageNet names are recognized whether or not the builders exist. */
    CHECK(rn_is_torchvision_arch("resnet50"));
    CHECK(rn_is_torchvision_arch("wide_resnet50_2"));
    CHECK(!rn_is_torchvision_arch("resnet20"));
}

/* ------------------------------------------------------------------------ */
/* The resnet command on image folders and CIFAR-10 files                    */

static const char *resnet_bin(void)
{
    const char *bin = getenv("RESNET_BIN");
    return bin ? bin : "build/resnet";
}

/* Runs `resnet ARGS` with stdout in `output` and stderr in `errors`;
 * returns the exit status. */
static int run_resnet(char *output, size_t output_size, char *errors, size_t errors_size,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void read_text(const char *path, char *text, size_t size)
{
    text[0] = '\0';
    FILE *file = fopen(path, "r");
    if (!file)
        return;
    size_t n = fread(text, 1, size - 1, file);
    text[n] = '\0';
    fclose(file);
}

static int run_resnet(char *output, size_t output_size, char *errors, size_t errors_size,
                      const char *fmt, ...)
{
    char args[3000], command[4500], out_path[600], err_path[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    test_path(out_path, sizeof out_path, "resnet.out");
    test_path(err_path, sizeof err_path, "resnet.err");
    snprintf(command, sizeof command, "%s %s > '%s' 2> '%s'", resnet_bin(), args, out_path,
             err_path);
    int status = system(command);
    read_text(out_path, output, output_size);
    read_text(err_path, errors, errors_size);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static char out[1 << 16], err[1 << 14];

#define CHECK_CONTAINS(text, needle)                                                    \
    CHECK_MSG(strstr((text), (needle)) != NULL, "output lacks '%s':\n%s", (needle), (text))

/* Writes DIR/SPLIT/{blue,green,red}/ with `per_class` noisy 16x16 images of
 * each colour, alternately PNG and JPEG. */
static void write_colour_split(const char *dir, const char *split, int per_class, uint64_t seed)
{
    static const char *const names[3] = {"blue", "green", "red"};
    static const int colours[3][3] = {{20, 40, 220}, {30, 200, 40}, {220, 30, 30}};
    uint8_t pixels[16 * 16 * 3];
    char path[900];
    rn_rng rng;
    rn_rng_seed(&rng, seed);
    for (int k = 0; k < 3; k++) {
        snprintf(path, sizeof path, "%s/%s/%s", dir, split, names[k]);
        make_dirs(path);
        for (int i = 0; i < per_class; i++) {
            for (int p = 0; p < 16 * 16 * 3; p++) {
                int value = colours[k][p % 3] + (int)rn_rng_below(&rng, 81) - 40;
                if (value < 0)
                    value = 0;
                if (value > 255)
                    value = 255;
                pixels[p] = (uint8_t)value;
            }
            snprintf(path, sizeof path, "%s/%s/%s/%d.%s", dir, split, names[k], i,
                     i % 2 ? "png" : "jpg");
            if (i % 2)
                write_png(path, 3, 16, 16, pixels);
            else
                write_jpeg(path, 3, 16, 16, pixels, 90);
        }
    }
}

/* Counts the CSV rows of `resnet predict --format csv -k 1` whose predicted
 * class name is the name of the image's folder. */
static int count_correct_rows(const char *csv, int *rows)
{
    int correct = 0;
    *rows = 0;
    const char *line = strchr(csv, '\n'); /* skip the header */
    while (line && line[1]) {
        line++;
        char path[700], name[64];
        if (sscanf(line, "%699[^,],1,%*d,%63[^,],", path, name) == 2) {
            char folder[80];
            snprintf(folder, sizeof folder, "/%s/", name);
            (*rows)++;
            correct += strstr(path, folder) != NULL;
        }
        line = strchr(line, '\n');
    }
    return correct;
}

TEST(cli_imagefolder_train_predict_eval_agree)
{
    char dir[600], run_dir[600], path[900];
    test_path(dir, sizeof dir, "colours");
    test_path(run_dir, sizeof run_dir, "colours-run");
    write_colour_split(dir, "train", 6, 1);
    char command[4000];
    snprintf(command, sizeof command, "cp -r '%s/train' '%s/val'", dir, dir);
    RN_ASSERT(system(command) == 0);

    int code = run_resnet(out, sizeof out, err, sizeof err,
                          "train --data-format imagefolder --data %s --model resnet8 "
                          "--epochs 6 -b 8 --seed 1 --threads 1 --output-dir %s",
                          dir, run_dir);
    CHECK_MSG(code == 0, "train exited %d:\n%s\n%s", code, out, err);
    CHECK_CONTAINS(out, "data-format=imagefolder");
    CHECK_CONTAINS(out, "waiting for data");
    CHECK_CONTAINS(out, "input 3x16x16");

    /* predict: every training image gets its own class. */
    snprintf(path, sizeof path, "%s/best.safetensors", run_dir);
    code = run_resnet(out, sizeof out, err, sizeof err,
                      "predict --weights %s --format csv -k 1 %s/train", path, dir);
    CHECK_MSG(code == 0, "predict exited %d:\n%s", code, err);
    int rows, correct = count_correct_rows(out, &rows);
    CHECK_MSG(rows == 18, "predict printed %d rows:\n%s", rows, out);
    CHECK_MSG(correct == 18, "predict got %d of 18 training images right:\n%s", correct, out);

    /* eval on the same images reports the same count. */
    code = run_resnet(out, sizeof out, err, sizeof err,
                      "eval --weights %s --data-format imagefolder --data %s", path, dir);
    CHECK_MSG(code == 0, "eval exited %d:\n%s", code, err);
    char expected[64];
    snprintf(expected, sizeof expected, "(%d of 18)", correct);
    CHECK_CONTAINS(out, expected);
    CHECK_CONTAINS(out, "green");

    /* The text and JSON formats name the class. */
    code = run_resnet(out, sizeof out, err, sizeof err,
                      "predict --weights %s -k 2 %s/train/red/1.png", path, dir);
    CHECK(code == 0);
    CHECK_CONTAINS(out, "red (2)");
    code = run_resnet(out, sizeof out, err, sizeof err,
                      "predict --weights %s --format json %s/train/blue/0.jpg", path, dir);
    CHECK(code == 0);
    CHECK_CONTAINS(out, "\"predictions\": [{\"class\": 0, \"name\": \"blue\"");

    /* Bad files are reported by path and skipped; the good one still prints. */
    char bad_dir[700];
    snprintf(bad_dir, sizeof bad_dir, "%s/bad", dir);
    make_dirs(bad_dir);
    snprintf(path, sizeof path, "%s/notes.png", bad_dir);
    write_bytes(path, "not a picture", 13);
    snprintf(command, sizeof command, "cp '%s/train/red/0.jpg' '%s/cut.jpg' && "
             "cp '%s/train/red/1.png' '%s/good.png'", dir, bad_dir, dir, bad_dir);
    RN_ASSERT(system(command) == 0);
    snprintf(path, sizeof path, "%s/cut.jpg", bad_dir);
    truncate_file(path, file_size(path) / 2);
    snprintf(path, sizeof path, "%s/best.safetensors", run_dir);
    code = run_resnet(out, sizeof out, err, sizeof err,
                      "predict --weights %s -k 1 %s %s/missing.png", path, bad_dir, bad_dir);
    CHECK_MSG(code == 1, "predict with bad files exited %d", code);
    CHECK_CONTAINS(out, "good.png");
    CHECK_CONTAINS(err, "notes.png: not a PNG or JPEG");
    CHECK_CONTAINS(err, "cut.jpg: truncated or corrupt JPEG");
    CHECK_CONTAINS(err, "missing.png");

    /* Paths from standard input. */
    snprintf(command, sizeof command, "printf '%s/good.png\\n' | %s predict --weights %s - "
             "--format csv > '%s/stdin.csv'", bad_dir, resnet_bin(), path, rn_test_tmpdir());
    CHECK(system(command) == 0);
    snprintf(command, sizeof command, "%s/stdin.csv", rn_test_tmpdir());
    read_text(command, out, sizeof out);
    CHECK_CONTAINS(out, "good.png,1,2,red,");

    /* Training on a folder with a broken file fails naming it. */
    snprintf(path, sizeof path, "%s/train/green/3.png", dir);
    truncate_file(path, 50);
    code = run_resnet(out, sizeof out, err, sizeof err,
                      "train --data-format imagefolder --data %s --model resnet8 --epochs 1 "
                      "--output-dir %s-broken", dir, run_dir);
    CHECK_MSG(code == 1, "train on a broken file exited %d", code);
    CHECK_CONTAINS(err, "train/green/3.png");
}

TEST(cli_predict_weights_without_metadata)
{
    char path[600];
    float weights[10 * 64] = {0};
    int64_t shape[2] = {10, 64};
    rn_st_writer writer;
    test_path(path, sizeof path, "exported.safetensors");
    rn_st_writer_init(&writer);
    CHECK_OK(rn_st_writer_add(&writer, "fc.weight", RN_DTYPE_F32, 2, shape, weights));
    CHECK_OK(rn_st_writer_write(&writer, path));
    rn_st_writer_free(&writer);
    char image[600];
    test_path(image, sizeof image, "any.png");
    write_gray(image, 4, 4, 1);

    CHECK(run_resnet(out, sizeof out, err, sizeof err, "predict --weights %s %s", path,
                     image) == 2);
    CHECK_CONTAINS(err, "pass --model NAME");
    CHECK(run_resnet(out, sizeof out, err, sizeof err, "predict --weights %s --model resnet20 %s",
                     path, image) == 2);
    CHECK_CONTAINS(err, "pass --input CxHxW");
    /* The classes come from fc.weight; the file then lacks the other tensors. */
    CHECK(run_resnet(out, sizeof out, err, sizeof err,
                     "predict --weights %s --model resnet20 --input 1x8x8 %s", path, image) == 1);
    CHECK_CONTAINS(err, "conv1.weight");
    CHECK(run_resnet(out, sizeof out, err, sizeof err, "predict --weights %s", path) == 2);
    CHECK(run_resnet(out, sizeof out, err, sizeof err, "predict --weights %s --format xml %s",
                     path, image) == 2);
}

TEST(cli_cifar10_and_he2015_recipe)
{
    char dir[600], run_dir[600];
    make_cifar_dir(dir, sizeof dir, "cifar-cli");
    test_path(run_dir, sizeof run_dir, "cifar-run");

    CHECK(run_resnet(out, sizeof out, err, sizeof err, "train --recipe he2015") == 2);
    CHECK_CONTAINS(err, "needs --data DIR");
    CHECK(run_resnet(out, sizeof out, err, sizeof err, "train --data-format cifar10") == 2);

    /* The recipe runs by steps: 10 images in one batch an epoch, so
     * --max-steps 2 stops after the second epoch. */
    int code = run_resnet(out, sizeof out, err, sizeof err,
                          "train --recipe he2015 --data %s --model resnet8 --max-steps 2 "
                          "--threads 1 --output-dir %s", dir, run_dir);
    CHECK_MSG(code == 0, "he2015 exited %d:\n%s\n%s", code, out, err);
    CHECK_CONTAINS(out, "data-format=cifar10");
    CHECK_CONTAINS(out, "lr-milestones=32000,48000\n");
    CHECK_CONTAINS(out, "lr-milestone-unit=step");
    CHECK_CONTAINS(out, "max-steps=2\n");
    CHECK_CONTAINS(out, "pad=4");
    CHECK_CONTAINS(out, "wd=0.0001");
    CHECK_CONTAINS(out, "epoch 2: train loss");
    CHECK_MSG(strstr(out, "epoch 3:") == NULL, "trained past --max-steps:\n%s", out);
    CHECK_CONTAINS(out, "data: 10 training and 3 test images, input 3x32x32");

    /* eval reads the test batch with the stored class names. */
    char weights[700];
    snprintf(weights, sizeof weights, "%s/best.safetensors", run_dir);
    code = run_resnet(out, sizeof out, err, sizeof err,
                      "eval --weights %s --data-format cifar10 --data %s", weights, dir);
    CHECK_MSG(code == 0, "eval exited %d:\n%s", code, err);
    CHECK_CONTAINS(out, "3 test images");
    CHECK_CONTAINS(out, "airplane");

    /* A cut test file gives both sizes. */
    char path[800];
    snprintf(path, sizeof path, "%s/test_batch.bin", dir);
    truncate_file(path, 3073 + 100);
    code = run_resnet(out, sizeof out, err, sizeof err,
                      "eval --weights %s --data-format cifar10 --data %s", weights, dir);
    CHECK(code == 1);
    CHECK_CONTAINS(err, "3173 bytes");
    CHECK_CONTAINS(err, "30730000 bytes");
}

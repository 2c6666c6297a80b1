/* Tests of the data layer: IDX files, MNIST data sets, augmentation and the
 * background loader. */
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "core/rng.h"
#include "core/status.h"
#include "data/augment.h"
#include "data/dataset.h"
#include "data/idx.h"
#include "data/loader.h"
#include "test.h"

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
/* Helpers to write IDX files                                                */

static void tmp_path(char *path, size_t size, const char *name)
{
    snprintf(path, size, "%s/%s", rn_test_tmpdir(), name);
}

/* Writes bytes to path, gzip-compressed if gz is nonzero. */
static void write_bytes(const char *path, int gz, const uint8_t *bytes, size_t nbytes)
{
    if (gz) {
        gzFile file = gzopen(path, "wb");
        RN_ASSERT(file != NULL);
        if (nbytes > 0)
            RN_ASSERT(gzwrite(file, bytes, (unsigned)nbytes) == (int)nbytes);
        RN_ASSERT(gzclose(file) == Z_OK);
    } else {
        FILE *file = fopen(path, "wb");
        RN_ASSERT(file != NULL);
        RN_ASSERT(fwrite(bytes, 1, nbytes, file) == nbytes);
        RN_ASSERT(fclose(file) == 0);
    }
}

/* Builds an IDX file in buffer (which must be large enough): header with the
 * given type code and dims, then data_nbytes bytes of data. Returns its size. */
static size_t build_idx(uint8_t *buffer, int type, int ndim, const uint32_t *dims,
                        const uint8_t *data, size_t data_nbytes)
{
    size_t used = 0;
    buffer[used++] = 0;
    buffer[used++] = 0;
    buffer[used++] = (uint8_t)type;
    buffer[used++] = (uint8_t)ndim;
    for (int d = 0; d < ndim; d++) {
        buffer[used++] = (uint8_t)(dims[d] >> 24);
        buffer[used++] = (uint8_t)(dims[d] >> 16);
        buffer[used++] = (uint8_t)(dims[d] >> 8);
        buffer[used++] = (uint8_t)dims[d];
    }
    if (data_nbytes > 0)
        memcpy(buffer + used, data, data_nbytes);
    return used + data_nbytes;
}

/* Writes a valid unsigned-byte IDX file whose element i is pattern(i). */
static uint8_t pattern(size_t i)
{
    return (uint8_t)(i * 7 + 1);
}

static void write_pattern_idx(const char *path, int gz, int ndim, const uint32_t *dims)
{
    size_t nbytes = 1;
    for (int d = 0; d < ndim; d++)
        nbytes *= dims[d];
    uint8_t *data = malloc(nbytes);
    uint8_t *file = malloc(nbytes + 32);
    for (size_t i = 0; i < nbytes; i++)
        data[i] = pattern(i);
    write_bytes(path, gz, file, build_idx(file, 0x08, ndim, dims, data, nbytes));
    free(file);
    free(data);
}

/* ------------------------------------------------------------------------ */
/* IDX reader                                                                */

static void check_roundtrip(int gz)
{
    char path[512];
    const uint32_t dims[3] = {3, 4, 5};
    rn_idx idx;

    tmp_path(path, sizeof path, gz ? "roundtrip.idx.gz" : "roundtrip.idx");
    write_pattern_idx(path, gz, 3, dims);
    CHECK_OK(rn_idx_read(path, &idx));
    CHECK(idx.ndim == 3);
    CHECK(idx.dims[0] == 3);
    CHECK(idx.dims[1] == 4);
    CHECK(idx.dims[2] == 5);
    CHECK(idx.dims[3] == 0);
    CHECK(idx.nbytes == 60);
    int mismatches = 0;
    for (size_t i = 0; idx.data && i < idx.nbytes; i++)
        mismatches += idx.data[i] != pattern(i);
    CHECK(idx.data != NULL);
    CHECK(mismatches == 0);
    rn_idx_free(&idx);
    CHECK(idx.data == NULL);
    CHECK(idx.nbytes == 0);
}

TEST(idx_read_raw_roundtrip)
{
    check_roundtrip(0);
}

TEST(idx_read_gzip_roundtrip)
{
    check_roundtrip(1);
}

TEST(idx_read_one_and_four_dims)
{
    char path[512];
    const uint32_t one[1] = {17};
    const uint32_t four[4] = {2, 3, 1, 4};
    rn_idx idx;

    tmp_path(path, sizeof path, "one.idx");
    write_pattern_idx(path, 0, 1, one);
    CHECK_OK(rn_idx_read(path, &idx));
    CHECK(idx.ndim == 1);
    CHECK(idx.dims[0] == 17);
    CHECK(idx.nbytes == 17);
    CHECK(idx.data != NULL);
    if (idx.data)
        CHECK(idx.data[16] == pattern(16));
    rn_idx_free(&idx);

    tmp_path(path, sizeof path, "four.idx.gz");
    write_pattern_idx(path, 1, 4, four);
    CHECK_OK(rn_idx_read(path, &idx));
    CHECK(idx.ndim == 4);
    CHECK(idx.dims[3] == 4);
    CHECK(idx.nbytes == 24);
    CHECK(idx.data != NULL);
    if (idx.data)
        CHECK(idx.data[23] == pattern(23));
    rn_idx_free(&idx);
}

TEST(idx_missing_file_is_io_error)
{
    char path[512];
    rn_idx idx;

    tmp_path(path, sizeof path, "no-such-file-idx1-ubyte.gz");
    CHECK_FAILS(rn_idx_read(path, &idx), RN_ERR_IO, "no-such-file-idx1-ubyte.gz");
    CHECK(idx.data == NULL);
    rn_idx_free(&idx);
}

TEST(idx_directory_is_io_error)
{
    rn_idx idx;
    CHECK_FAILS(rn_idx_read(rn_test_tmpdir(), &idx), RN_ERR_IO, rn_test_tmpdir());
}

/* Writes bytes raw and gzipped and expects both to fail with RN_ERR_FORMAT
 * and a message containing the file name and needle. */
static void check_malformed(const char *name, const uint8_t *bytes, size_t nbytes,
                            const char *needle)
{
    for (int gz = 0; gz < 2; gz++) {
        char file_name[128], path[512];
        rn_idx idx;
        snprintf(file_name, sizeof file_name, "%s%s", name, gz ? ".gz" : "");
        tmp_path(path, sizeof path, file_name);
        write_bytes(path, gz, bytes, nbytes);

        rn_status status = rn_idx_read(path, &idx);
        CHECK_MSG(status == RN_ERR_FORMAT, "%s: got %s, expected RN_ERR_FORMAT (%s)",
                  file_name, rn_status_name(status), rn_last_error());
        CHECK_MSG(strstr(rn_last_error(), file_name) != NULL,
                  "message \"%s\" lacks the file name", rn_last_error());
        CHECK_MSG(strstr(rn_last_error(), needle) != NULL,
                  "message \"%s\" lacks \"%s\"", rn_last_error(), needle);
        CHECK(idx.data == NULL);
        CHECK(idx.ndim == 0);
    }
}

TEST(idx_rejects_bad_magic)
{
    uint8_t file[64];
    const uint32_t dims[1] = {2};
    const uint8_t data[2] = {1, 2};
    size_t nbytes = build_idx(file, 0x08, 1, dims, data, 2);

    file[0] = 0x12;
    check_malformed("bad-magic-0", file, nbytes, "0x12 0x00");
    file[0] = 0;
    file[1] = 0x34;
    check_malformed("bad-magic-1", file, nbytes, "0x00 0x34");
}

TEST(idx_rejects_unsupported_type)
{
    uint8_t file[64];
    const uint32_t dims[1] = {2};
    const uint8_t data[8] = {0};

    check_malformed("float-type", file, build_idx(file, 0x0D, 1, dims, data, 8), "0x0d (float32)");
    check_malformed("int32-type", file, build_idx(file, 0x0C, 1, dims, data, 8), "0x0c (int32)");
    check_malformed("unknown-type", file, build_idx(file, 0x42, 1, dims, data, 2), "0x42");
}

TEST(idx_rejects_bad_ndim)
{
    uint8_t file[64];
    const uint32_t dims[5] = {1, 1, 1, 1, 1};
    const uint8_t data[1] = {7};

    check_malformed("zero-dims", file, build_idx(file, 0x08, 0, dims, data, 1), "0 dimensions");
    check_malformed("five-dims", file, build_idx(file, 0x08, 5, dims, data, 1), "5 dimensions");
}

TEST(idx_rejects_zero_dimension)
{
    uint8_t file[64];
    const uint32_t dims[3] = {10, 0, 28};

    check_malformed("zero-dim", file, build_idx(file, 0x08, 3, dims, NULL, 0),
                    "dimension 1 of 10x0x28 is 0");
}

TEST(idx_rejects_oversized_header)
{
    uint8_t file[64];
    const uint32_t large[3] = {65536, 65536, 2};
    const uint32_t huge[4] = {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu};
    const uint32_t just_over[2] = {1u << 15, (1u << 15) + 1};

    check_malformed("large", file, build_idx(file, 0x08, 3, large, NULL, 0), "65536x65536x2");
    check_malformed("huge", file, build_idx(file, 0x08, 4, huge, NULL, 0), "1 GiB");
    check_malformed("just-over", file, build_idx(file, 0x08, 2, just_over, NULL, 0), "1 GiB");
}

TEST(idx_rejects_truncated_header)
{
    uint8_t file[64];
    const uint32_t dims[3] = {10, 28, 28};
    size_t nbytes = build_idx(file, 0x08, 3, dims, NULL, 0);

    check_malformed("empty", file, 0, "truncated");
    check_malformed("short-prefix", file, 3, "has 3 bytes");
    check_malformed("short-dims", file, nbytes - 2, "takes 16 bytes, but the file has only 14");
}

TEST(idx_rejects_truncated_data)
{
    uint8_t file[128];
    uint8_t data[60] = {0};
    const uint32_t dims[3] = {3, 4, 5};
    size_t nbytes = build_idx(file, 0x08, 3, dims, data, sizeof data);

    check_malformed("truncated-data", file, nbytes - 17,
                    "header says 3x4x5 = 60 bytes of data");
    check_malformed("truncated-data-count", file, nbytes - 17, "only 43 after the header");
    check_malformed("header-only", file, nbytes - 60, "only 0 after the header");
}

TEST(idx_rejects_trailing_bytes)
{
    uint8_t file[128];
    uint8_t data[65] = {0};
    const uint32_t dims[3] = {3, 4, 5};
    size_t nbytes = build_idx(file, 0x08, 3, dims, data, sizeof data);

    check_malformed("trailing", file, nbytes, "5 unexpected trailing bytes after the 60 bytes");
}

/* Writes a valid gzipped IDX file and returns its compressed bytes. */
static uint8_t *gzipped_idx(const char *path, size_t *nbytes)
{
    const uint32_t dims[2] = {50, 40};
    write_pattern_idx(path, 1, 2, dims);

    FILE *file = fopen(path, "rb");
    RN_ASSERT(file != NULL);
    uint8_t *bytes = malloc(1 << 16);
    *nbytes = fread(bytes, 1, 1 << 16, file);
    fclose(file);
    RN_ASSERT(*nbytes > 40 && *nbytes < (1 << 16));
    return bytes;
}

TEST(idx_rejects_corrupt_gzip)
{
    char path[512];
    size_t nbytes;
    rn_idx idx;

    tmp_path(path, sizeof path, "corrupt.idx.gz");
    uint8_t *bytes = gzipped_idx(path, &nbytes);

    /* Cut inside the deflate stream. */
    write_bytes(path, 0, bytes, nbytes / 2);
    CHECK_FAILS(rn_idx_read(path, &idx), RN_ERR_FORMAT, "corrupt.idx.gz: truncated or corrupt gzip");

    /* Flip the CRC-32 in the trailer: the data decompresses but fails its check. */
    bytes[nbytes - 6] ^= 0xff;
    write_bytes(path, 0, bytes, nbytes);
    CHECK_FAILS(rn_idx_read(path, &idx), RN_ERR_FORMAT, "corrupt.idx.gz: truncated or corrupt gzip");
    bytes[nbytes - 6] ^= 0xff;

    /* Garbage in the middle of the deflate stream. */
    for (size_t i = 12; i < 28; i++)
        bytes[i] ^= 0x5a;
    write_bytes(path, 0, bytes, nbytes);
    CHECK_FAILS(rn_idx_read(path, &idx), RN_ERR_FORMAT, "corrupt.idx.gz");
    CHECK(idx.data == NULL);
    free(bytes);
}

/* Mutated and cut copies of valid files must give RN_OK or RN_ERR_FORMAT,
 * never a crash, and an accepted file must be self-consistent. */
TEST(idx_malformed_inputs_never_crash)
{
    char path[512], mutant_path[512];
    size_t gz_nbytes;
    uint8_t raw[64 + 2000];
    const uint32_t dims[2] = {50, 40};
    rn_rng rng;
    rn_idx idx;
    int unexpected = 0, accepted = 0;

    tmp_path(path, sizeof path, "fuzz-source.idx.gz");
    tmp_path(mutant_path, sizeof mutant_path, "fuzz.idx");
    uint8_t *gz = gzipped_idx(path, &gz_nbytes);
    size_t raw_nbytes = build_idx(raw, 0x08, 2, dims, NULL, 0);
    for (size_t i = 0; i < 2000; i++)
        raw[raw_nbytes + i] = pattern(i);
    raw_nbytes += 2000;

    rn_rng_seed(&rng, 1234);
    for (int trial = 0; trial < 600; trial++) {
        int use_gz = trial % 2;
        const uint8_t *source = use_gz ? gz : raw;
        size_t nbytes = use_gz ? gz_nbytes : raw_nbytes;
        uint8_t mutant[64 + 2000];
        memcpy(mutant, source, nbytes);

        if (trial < 200) {
            nbytes = rn_rng_below(&rng, (uint32_t)nbytes);
        } else {
            int flips = 1 + (int)rn_rng_below(&rng, 4);
            for (int f = 0; f < flips; f++) {
                /* Favour the headers, where most of the checks are. */
                uint32_t limit = rn_rng_below(&rng, 2) ? 24 : (uint32_t)nbytes;
                mutant[rn_rng_below(&rng, limit)] = (uint8_t)rn_rng_next(&rng);
            }
        }
        write_bytes(mutant_path, 0, mutant, nbytes);

        rn_status status = rn_idx_read(mutant_path, &idx);
        if (status == RN_OK) {
            size_t product = 1;
            for (int d = 0; d < idx.ndim; d++)
                product *= (size_t)idx.dims[d];
            CHECK(idx.data != NULL);
            CHECK(product == idx.nbytes);
            accepted++;
        } else if (status != RN_ERR_FORMAT || !strstr(rn_last_error(), "fuzz.idx")) {
            if (unexpected++ < 5)
                rn_test_fail(__FILE__, __LINE__, "trial %d: %s: %s", trial,
                             rn_status_name(status), rn_last_error());
        }
        rn_idx_free(&idx);
    }
    CHECK(unexpected == 0);
    /* Flips in the data section keep the file valid, so some trials pass. */
    CHECK(accepted > 0);
    free(gz);
}

/* ------------------------------------------------------------------------ */
/* MNIST data sets                                                           */

/* Makes a fresh directory under the test directory and writes its path. */
static void make_dir(char *path, size_t size, const char *name)
{
    tmp_path(path, size, name);
    RN_ASSERT(mkdir(path, 0700) == 0);
}

static void write_file_in(const char *dir, const char *name, int gz, int ndim,
                          const uint32_t *dims, const uint8_t *data)
{
    char path[1024];
    size_t nbytes = 1;
    for (int d = 0; d < ndim; d++)
        nbytes *= dims[d];
    uint8_t *file = malloc(nbytes + 32);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    write_bytes(path, gz, file, build_idx(file, 0x08, ndim, dims, data, nbytes));
    free(file);
}

/* Writes count images of 3x2 pixels (pixel p of image i = i * 6 + p) and
 * labels (labels[i] or i % 10) for the given prefix ("train" or "t10k"). */
static void write_mnist(const char *dir, const char *prefix, int count, int gz_images,
                        int gz_labels, const uint8_t *labels)
{
    char name[128];
    uint8_t images[6 * 64], default_labels[64];
    const uint32_t image_dims[3] = {(uint32_t)count, 3, 2};
    const uint32_t label_dims[1] = {(uint32_t)count};

    RN_ASSERT(count <= 64);
    for (int i = 0; i < 6 * count; i++)
        images[i] = (uint8_t)i;
    for (int i = 0; i < count; i++)
        default_labels[i] = (uint8_t)(i % 10);

    snprintf(name, sizeof name, "%s-images-idx3-ubyte%s", prefix, gz_images ? ".gz" : "");
    write_file_in(dir, name, gz_images, 3, image_dims, images);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte%s", prefix, gz_labels ? ".gz" : "");
    write_file_in(dir, name, gz_labels, 1, label_dims, labels ? labels : default_labels);
}

TEST(dataset_load_synthetic_mnist)
{
    char dir[512];
    rn_dataset train, test;

    make_dir(dir, sizeof dir, "mnist-synthetic");
    write_mnist(dir, "train", 12, 1, 0, NULL);
    write_mnist(dir, "t10k", 5, 0, 1, NULL);

    CHECK_OK(rn_dataset_load_mnist(dir, 1, &train));
    CHECK(train.count == 12);
    CHECK(train.channels == 1);
    CHECK(train.height == 3);
    CHECK(train.width == 2);
    CHECK(train.num_classes == 10);
    CHECK(train.owns);
    CHECK(train.images != NULL);
    CHECK(train.labels != NULL);
    if (train.images && train.labels) {
        CHECK(train.images[6 * 11 + 5] == 6 * 11 + 5);
        CHECK(train.labels[11] == 1);
    }

    CHECK_OK(rn_dataset_load_mnist(dir, 0, &test));
    CHECK(test.count == 5);
    CHECK(test.labels != NULL);
    if (test.labels)
        CHECK(test.labels[4] == 4);

    rn_dataset_free(&train);
    rn_dataset_free(&test);
    CHECK(train.images == NULL);
    CHECK(train.count == 0);
}

TEST(dataset_prefers_gzip_file)
{
    char dir[512];
    rn_dataset data;
    uint8_t nines[4] = {9, 9, 9, 9};

    make_dir(dir, sizeof dir, "mnist-both");
    write_mnist(dir, "train", 4, 1, 0, NULL);
    write_mnist(dir, "train", 4, 0, 1, nines);

    CHECK_OK(rn_dataset_load_mnist(dir, 1, &data));
    CHECK(data.labels != NULL);
    if (data.labels)
        CHECK(data.labels[0] == 9);
    rn_dataset_free(&data);
}

TEST(dataset_missing_file_names_path_and_fix)
{
    char dir[512], expected[600];
    rn_dataset data;

    make_dir(dir, sizeof dir, "mnist-empty");
    snprintf(expected, sizeof expected, "%s/train-images-idx3-ubyte.gz not found", dir);
    CHECK_FAILS(rn_dataset_load_mnist(dir, 1, &data), RN_ERR_IO, expected);
    /* The package hint is for the default directory only. */
    CHECK_FAILS(rn_dataset_load_mnist(dir, 1, &data), RN_ERR_IO,
                "--data must name a directory with the IDX files");
    CHECK_FAILS(rn_dataset_load_mnist(dir, 1, &data), RN_ERR_IO, "t10k-labels-idx1-ubyte");

    /* Images present, labels missing. */
    write_mnist(dir, "t10k", 3, 1, 1, NULL);
    snprintf(expected, sizeof expected, "%s/t10k-labels-idx1-ubyte.gz", dir);
    char labels_path[600];
    snprintf(labels_path, sizeof labels_path, "%s", expected);
    RN_ASSERT(unlink(labels_path) == 0);
    CHECK_FAILS(rn_dataset_load_mnist(dir, 0, &data), RN_ERR_IO, expected);
    CHECK(data.images == NULL);
}

TEST(dataset_rejects_inconsistent_files)
{
    char dir[512];
    rn_dataset data;
    uint8_t bad_labels[4] = {1, 2, 10, 3};
    uint8_t pixels[24] = {0};
    const uint32_t dims2[2] = {4, 6};
    const uint32_t dims3[3] = {4, 1, 1};
    const uint32_t label_dims[1] = {3};

    make_dir(dir, sizeof dir, "mnist-bad-label");
    write_mnist(dir, "train", 4, 0, 0, bad_labels);
    CHECK_FAILS(rn_dataset_load_mnist(dir, 1, &data), RN_ERR_FORMAT,
                "label 10 of sample 2 is out of range");

    make_dir(dir, sizeof dir, "mnist-count");
    write_mnist(dir, "train", 4, 0, 0, NULL);
    write_file_in(dir, "train-labels-idx1-ubyte.gz", 1, 1, label_dims, pixels);
    CHECK_FAILS(rn_dataset_load_mnist(dir, 1, &data), RN_ERR_FORMAT,
                "has 4 images but");

    make_dir(dir, sizeof dir, "mnist-2d-images");
    write_mnist(dir, "train", 4, 0, 0, NULL);
    write_file_in(dir, "train-images-idx3-ubyte.gz", 1, 2, dims2, pixels);
    CHECK_FAILS(rn_dataset_load_mnist(dir, 1, &data), RN_ERR_FORMAT,
                "train-images-idx3-ubyte.gz: expected 3 dimensions");

    make_dir(dir, sizeof dir, "mnist-3d-labels");
    write_mnist(dir, "train", 4, 0, 0, NULL);
    write_file_in(dir, "train-labels-idx1-ubyte.gz", 1, 3, dims3, pixels);
    CHECK_FAILS(rn_dataset_load_mnist(dir, 1, &data), RN_ERR_FORMAT,
                "train-labels-idx1-ubyte.gz: expected 1 dimension");

    make_dir(dir, sizeof dir, "mnist-corrupt");
    write_mnist(dir, "train", 4, 0, 0, NULL);
    char path[1024];
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte", dir);
    write_bytes(path, 0, (const uint8_t *)"\x01\x02\x08\x03", 4);
    CHECK_FAILS(rn_dataset_load_mnist(dir, 1, &data), RN_ERR_FORMAT, path);
    CHECK(data.images == NULL);
}

TEST(dataset_slice_is_view)
{
    char dir[512];
    rn_dataset data, view, bad;

    make_dir(dir, sizeof dir, "mnist-slice");
    write_mnist(dir, "train", 10, 0, 0, NULL);
    CHECK_OK(rn_dataset_load_mnist(dir, 1, &data));

    CHECK_OK(rn_dataset_slice(&data, 3, 4, &view));
    CHECK(view.count == 4);
    CHECK(view.images == data.images + 3 * 6);
    CHECK(view.labels == data.labels + 3);
    CHECK(view.channels == 1);
    CHECK(view.height == 3);
    CHECK(view.width == 2);
    CHECK(view.num_classes == 10);
    CHECK(!view.owns);

    CHECK_OK(rn_dataset_slice(&data, 0, 10, &bad));
    CHECK_FAILS(rn_dataset_slice(&data, 7, 4, &bad), RN_ERR_INVALID, "4 samples from index 7 of a set of 10");
    CHECK_FAILS(rn_dataset_slice(&data, -1, 2, &bad), RN_ERR_INVALID, "index -1");
    CHECK_FAILS(rn_dataset_slice(&data, 2, 0, &bad), RN_ERR_INVALID, "0 samples");

    /* Freeing the view first must leave the owner's buffers alone (a double
     * free would abort in glibc). */
    rn_dataset_free(&view);
    CHECK(view.images == NULL);
    CHECK(data.images[3 * 6] == 18);
    rn_dataset_free(&data);
}

TEST(dataset_fashion_mnist_class_names)
{
    const char *const *names = rn_fashion_mnist_classes();
    CHECK(strcmp(names[0], "T-shirt/top") == 0);
    CHECK(strcmp(names[1], "Trouser") == 0);
    CHECK(strcmp(names[2], "Pullover") == 0);
    CHECK(strcmp(names[3], "Dress") == 0);
    CHECK(strcmp(names[4], "Coat") == 0);
    CHECK(strcmp(names[5], "Sandal") == 0);
    CHECK(strcmp(names[6], "Shirt") == 0);
    CHECK(strcmp(names[7], "Sneaker") == 0);
    CHECK(strcmp(names[8], "Bag") == 0);
    CHECK(strcmp(names[9], "Ankle boot") == 0);
}

/* Facts about the files of the Debian package dataset-fashion-mnist, read
 * with Python's gzip module: the label histogram is 6000 per class, the first
 * training and test labels are 9, and the first training image sums to 76247. */
TEST(dataset_real_fashion_mnist)
{
    rn_dataset train, test;

    if (access(RN_FASHION_MNIST_DIR, F_OK) != 0) {
        printf("    skipped: %s not installed\n", RN_FASHION_MNIST_DIR);
        return;
    }
    CHECK_OK(rn_dataset_load_mnist(RN_FASHION_MNIST_DIR, 1, &train));
    CHECK_OK(rn_dataset_load_mnist(RN_FASHION_MNIST_DIR, 0, &test));
    CHECK(train.count == 60000);
    CHECK(test.count == 10000);
    CHECK(train.channels == 1);
    CHECK(train.height == 28);
    CHECK(train.width == 28);
    CHECK(test.channels == 1);
    CHECK(test.height == 28);
    CHECK(test.width == 28);

    if (train.count == 60000) {
        int64_t histogram[10] = {0};
        for (int64_t i = 0; i < train.count; i++)
            histogram[train.labels[i]]++;
        for (int c = 0; c < 10; c++)
            CHECK_MSG(histogram[c] == 6000, "class %d has %" PRId64 " samples", c, histogram[c]);

        CHECK(train.labels[0] == 9);
        CHECK(strcmp(rn_fashion_mnist_classes()[train.labels[0]], "Ankle boot") == 0);
        int64_t sum = 0;
        for (int p = 0; p < 28 * 28; p++)
            sum += train.images[p];
        CHECK(sum == 76247);
    }
    if (test.count == 10000)
        CHECK(test.labels[0] == 9);

    rn_dataset_free(&train);
    rn_dataset_free(&test);
}

/* ------------------------------------------------------------------------ */
/* Augmentation                                                              */

TEST(augment_identity_is_x_over_255)
{
    uint8_t src[256];
    float dst[256];
    rn_augment aug = {0};
    rn_rng rng;

    for (int i = 0; i < 256; i++)
        src[i] = (uint8_t)i;
    rn_rng_seed(&rng, 1);
    for (int train = 0; train < 2; train++) {
        rn_augment_image(&aug, train, src, 1, 16, 16, dst, &rng);
        int mismatches = 0;
        for (int i = 0; i < 256; i++)
            mismatches += dst[i] != (float)i / 255.0f;
        CHECK_MSG(mismatches == 0, "train=%d: %d pixels differ from x/255", train, mismatches);
        CHECK(dst[0] == 0.0f);
        CHECK(dst[255] == 1.0f);
    }
}

TEST(augment_eval_skips_crop_and_flip)
{
    uint8_t src[3 * 5 * 4];
    float dst[3 * 5 * 4];
    rn_augment aug = {.pad = 4, .flip = 1};
    rn_rng rng;

    for (int i = 0; i < 60; i++)
        src[i] = (uint8_t)(i * 3 + 1);
    rn_rng_seed(&rng, 2);
    for (int trial = 0; trial < 20; trial++) {
        rn_augment_image(&aug, 0, src, 3, 5, 4, dst, &rng);
        for (int i = 0; i < 60; i++)
            CHECK(dst[i] == (float)src[i] / 255.0f);
    }
}

/* Returns 1 if dst (height, width) is src (height, width) mirrored left-right. */
static int is_mirror(const float *dst, const float *src, int height, int width)
{
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++)
            if (dst[y * width + x] != src[y * width + width - 1 - x])
                return 0;
    return 1;
}

TEST(augment_flip_mirrors_columns)
{
    enum { H = 3, W = 5, TRIALS = 400 };
    uint8_t src[H * W];
    float plain[H * W], dst[H * W], twice[H * W];
    rn_augment none = {0}, aug = {.flip = 1};
    rn_rng rng;
    int flipped = 0, unexpected = 0;

    for (int i = 0; i < H * W; i++)
        src[i] = (uint8_t)(10 + i);
    rn_augment_image(&none, 0, src, 1, H, W, plain, &rng);

    rn_rng_seed(&rng, 3);
    for (int trial = 0; trial < TRIALS; trial++) {
        rn_augment_image(&aug, 1, src, 1, H, W, dst, &rng);
        if (memcmp(dst, plain, sizeof dst) == 0)
            continue;
        if (!is_mirror(dst, plain, H, W)) {
            unexpected++;
            continue;
        }
        flipped++;
        /* Mirroring the mirrored image gives the original back. */
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                twice[y * W + x] = dst[y * W + W - 1 - x];
        CHECK(memcmp(twice, plain, sizeof twice) == 0);
    }
    CHECK(unexpected == 0);
    /* p = 0.5 over 400 draws: 200 +- 50 is over 5 standard deviations. */
    CHECK_MSG(flipped > 150 && flipped < 250, "%d of %d flipped", flipped, TRIALS);
}

/* Finds the shift (dy, dx) in [-pad, pad] with dst(y, x) = plain(y + dy, x + dx),
 * zero outside, optionally mirrored first. Returns 0 if there is none. */
static int find_shift(const float *dst, const float *plain, int height, int width, int pad,
                      int mirror, int *found_dy, int *found_dx)
{
    for (int dy = -pad; dy <= pad; dy++) {
        for (int dx = -pad; dx <= pad; dx++) {
            int match = 1;
            for (int y = 0; y < height && match; y++) {
                for (int x = 0; x < width && match; x++) {
                    int sy = y + dy, sx = (mirror ? width - 1 - x : x) + dx;
                    float expected = 0.0f;
                    if (sy >= 0 && sy < height && sx >= 0 && sx < width)
                        expected = plain[sy * width + sx];
                    match = dst[y * width + x] == expected;
                }
            }
            if (match) {
                *found_dy = dy;
                *found_dx = dx;
                return 1;
            }
        }
    }
    return 0;
}

TEST(augment_pad_crop_shifts_with_zeros)
{
    enum { H = 6, W = 6, PAD = 2 };
    uint8_t src[H * W];
    float plain[H * W], dst[H * W];
    rn_augment none = {0}, aug = {.pad = PAD};
    int seen[2 * PAD + 1][2 * PAD + 1] = {{0}};
    rn_rng rng;
    int unexpected = 0;

    for (int i = 0; i < H * W; i++)
        src[i] = (uint8_t)(1 + i); /* nonzero, so that zeros come from padding */
    rn_augment_image(&none, 0, src, 1, H, W, plain, &rng);

    rn_rng_seed(&rng, 4);
    for (int trial = 0; trial < 500; trial++) {
        int dy, dx;
        rn_augment_image(&aug, 1, src, 1, H, W, dst, &rng);
        if (find_shift(dst, plain, H, W, PAD, 0, &dy, &dx))
            seen[dy + PAD][dx + PAD]++;
        else
            unexpected++;
    }
    CHECK(unexpected == 0);
    for (int dy = 0; dy <= 2 * PAD; dy++)
        for (int dx = 0; dx <= 2 * PAD; dx++)
            CHECK_MSG(seen[dy][dx] > 0, "offset (%d, %d) never drawn", dy - PAD, dx - PAD);
}

/* With resize, crop and flip together, every training output must be a
 * shifted (and maybe mirrored) copy of the evaluation output, which shows that
 * the crop and flip run after the resize. */
TEST(augment_crop_and_flip_follow_resize)
{
    enum { H = 4, W = 3, OUT_H = 8, OUT_W = 7, PAD = 2 };
    uint8_t src[2 * H * W];
    float plain[2 * OUT_H * OUT_W], dst[2 * OUT_H * OUT_W];
    rn_augment eval = {.resize_h = OUT_H, .resize_w = OUT_W};
    rn_augment aug = {.resize_h = OUT_H, .resize_w = OUT_W, .pad = PAD, .flip = 1};
    rn_rng rng;
    int unexpected = 0, mirrored = 0;

    for (int i = 0; i < 2 * H * W; i++)
        src[i] = (uint8_t)(20 + 9 * i);
    rn_augment_image(&eval, 0, src, 2, H, W, plain, &rng);

    rn_rng_seed(&rng, 5);
    for (int trial = 0; trial < 200; trial++) {
        rn_augment_image(&aug, 1, src, 2, H, W, dst, &rng);
        int dy0, dx0, dy1, dx1, mirror;
        for (mirror = 0; mirror < 2; mirror++)
            if (find_shift(dst, plain, OUT_H, OUT_W, PAD, mirror, &dy0, &dx0))
                break;
        if (mirror == 2) {
            unexpected++;
            continue;
        }
        mirrored += mirror;
        /* Both channels get the same shift and flip. */
        int second = find_shift(dst + OUT_H * OUT_W, plain + OUT_H * OUT_W, OUT_H, OUT_W,
                                PAD, mirror, &dy1, &dx1);
        CHECK(second);
        CHECK(!second || (dy0 == dy1 && dx0 == dx1));
    }
    CHECK(unexpected == 0);
    CHECK(mirrored > 0);
    CHECK(mirrored < 200);
}

TEST(augment_resize_constant_stays_constant)
{
    static const int sizes[][2] = {{56, 56}, {14, 14}, {37, 19}, {1, 1}, {28, 28}};
    uint8_t src[28 * 28];
    static float dst[56 * 56];
    rn_rng rng;

    memset(src, 200, sizeof src);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        rn_augment aug = {.resize_h = sizes[s][0], .resize_w = sizes[s][1]};
        rn_augment_image(&aug, 0, src, 1, 28, 28, dst, &rng);
        int off = 0;
        for (int i = 0; i < sizes[s][0] * sizes[s][1]; i++)
            off += fabsf(dst[i] - 200.0f / 255.0f) > 1e-6f;
        CHECK_MSG(off == 0, "resize to %dx%d: %d pixels not constant", sizes[s][0],
                  sizes[s][1], off);
    }
}

/* Upscaling 28 -> 56 maps output coordinate d to input (d + 0.5) / 2 - 0.5:
 * d = 0 -> -0.25, clamped to 0; d = 1 -> 0.25; d = 2 -> 0.75; d = 3 -> 1.25;
 * d = 54 -> 26.75; d = 55 -> 27.25, whose right neighbour is clamped to 27. */
TEST(augment_resize_upscale_hand_values)
{
    uint8_t src[28 * 28];
    static float dst[56 * 56];
    rn_augment aug = {.resize_h = 56, .resize_w = 56};
    rn_rng rng;

    /* Linear in x, constant in y: bilinear interpolation reproduces 9 * x. */
    for (int y = 0; y < 28; y++)
        for (int x = 0; x < 28; x++)
            src[y * 28 + x] = (uint8_t)(9 * x);
    rn_augment_image(&aug, 0, src, 1, 28, 28, dst, &rng);
    for (int y = 0; y < 56; y += 11) {
        const float *row = dst + y * 56;
        CHECK_CLOSE(row[0], 0.0, 1e-6, 0);
        CHECK_CLOSE(row[1], 2.25 / 255, 1e-6, 0);   /* 9 * 0.25 */
        CHECK_CLOSE(row[2], 6.75 / 255, 1e-6, 0);   /* 9 * 0.75 */
        CHECK_CLOSE(row[3], 11.25 / 255, 1e-6, 0);  /* 9 * 1.25 */
        CHECK_CLOSE(row[54], 240.75 / 255, 1e-6, 0); /* 9 * 26.75 */
        CHECK_CLOSE(row[55], 243.0 / 255, 1e-6, 0);  /* 9 * 27, clamped */
    }

    /* Product x * y in both directions: at output (3, 5) the source point is
     * (y, x) = (1.25, 2.25), and bilinear interpolation of x * y between the
     * grid points 1..2 and 2..3 is exact: 1.25 * 2.25 = 2.8125. */
    for (int y = 0; y < 28; y++)
        for (int x = 0; x < 28; x++)
            src[y * 28 + x] = (uint8_t)(y < 16 && x < 16 ? x * y : 0);
    rn_augment_image(&aug, 0, src, 1, 28, 28, dst, &rng);
    CHECK_CLOSE(dst[3 * 56 + 5], 2.8125 / 255, 1e-6, 0);
    /* Output (0, 0) reads the clamped corner (0, 0). */
    CHECK_CLOSE(dst[0], 0.0, 1e-6, 0);
    /* Output (2, 2): source (0.75, 0.75), giving 0.75 * 0.75. */
    CHECK_CLOSE(dst[2 * 56 + 2], 0.5625 / 255, 1e-6, 0);
}

/* Downscaling 4 -> 2 maps d to 2 * d + 0.5, the mean of input pixels 2d and
 * 2d + 1 (no antialiasing filter beyond that). */
TEST(augment_resize_downscale_averages_pairs)
{
    const uint8_t src[16] = {
        0,   10,  20,  30,
        40,  50,  60,  70,
        80,  90,  100, 110,
        120, 130, 140, 250,
    };
    float dst[4];
    rn_augment aug = {.resize_h = 2, .resize_w = 2};
    rn_rng rng;

    rn_augment_image(&aug, 0, src, 1, 4, 4, dst, &rng);
    CHECK_CLOSE(dst[0], (0 + 10 + 40 + 50) / 4.0 / 255, 1e-6, 0);
    CHECK_CLOSE(dst[1], (20 + 30 + 60 + 70) / 4.0 / 255, 1e-6, 0);
    CHECK_CLOSE(dst[2], (80 + 90 + 120 + 130) / 4.0 / 255, 1e-6, 0);
    CHECK_CLOSE(dst[3], (100 + 110 + 140 + 250) / 4.0 / 255, 1e-6, 0);
}

TEST(augment_normalize_per_channel)
{
    const uint8_t src[3 * 2 * 2] = {0, 51, 102, 255, 10, 20, 30, 40, 200, 201, 202, 203};
    float dst[12];
    rn_augment aug = {
        .normalize = 1,
        .mean = {0.5f, 0.25f, 0.125f},
        .std = {0.5f, 2.0f, 0.25f},
    };
    rn_rng rng;

    CHECK_OK(rn_augment_check(&aug, 3));
    rn_augment_image(&aug, 0, src, 3, 2, 2, dst, &rng);
    for (int c = 0; c < 3; c++)
        for (int p = 0; p < 4; p++) {
            double expected = (src[c * 4 + p] / 255.0 - aug.mean[c]) / aug.std[c];
            CHECK_CLOSE(dst[c * 4 + p], expected, 1e-6, 1e-6);
        }
    CHECK_CLOSE(dst[0], -1.0, 1e-6, 0);
    CHECK_CLOSE(dst[3], 1.0, 1e-6, 0);
}

/* Padded pixels are zeros before normalization, so they come out as
 * -mean / std. */
TEST(augment_padding_normalizes_from_zero)
{
    const uint8_t src[4] = {255, 255, 255, 255};
    float dst[4];
    rn_augment aug = {.pad = 3, .normalize = 1, .mean = {0.5f}, .std = {0.25f}};
    rn_rng rng;
    int padded = 0, image = 0, other = 0;

    rn_rng_seed(&rng, 6);
    for (int trial = 0; trial < 50; trial++) {
        rn_augment_image(&aug, 1, src, 1, 2, 2, dst, &rng);
        for (int i = 0; i < 4; i++) {
            if (dst[i] == -2.0f)
                padded++;
            else if (dst[i] == 2.0f)
                image++;
            else
                other++;
        }
    }
    CHECK(padded > 0);
    CHECK(image > 0);
    CHECK(other == 0);
}

TEST(augment_output_size_follows_resize)
{
    int h, w;
    rn_augment none = {.pad = 4};
    rn_augment resize = {.resize_h = 224, .resize_w = 112, .pad = 4};

    rn_augment_output_size(&none, 28, 27, &h, &w);
    CHECK(h == 28);
    CHECK(w == 27);
    rn_augment_output_size(&resize, 28, 27, &h, &w);
    CHECK(h == 224);
    CHECK(w == 112);
}

TEST(augment_check_rejects_invalid)
{
    rn_augment ok = {.pad = 4, .flip = 1, .resize_h = 32, .resize_w = 32};
    rn_augment negative_pad = {.pad = -1};
    rn_augment half_resize = {.resize_h = 32};
    rn_augment negative_resize = {.resize_h = -32, .resize_w = 32};
    rn_augment zero_std = {.normalize = 1, .mean = {0.5f, 0.5f, 0.5f}, .std = {1, 0, 1}};
    rn_augment nan_mean = {.normalize = 1, .mean = {NAN}, .std = {1}};
    rn_augment normalize = {.normalize = 1, .std = {1, 1, 1}};

    CHECK_OK(rn_augment_check(&ok, 3));
    CHECK_OK(rn_augment_check(&ok, 7));
    CHECK_FAILS(rn_augment_check(&ok, 0), RN_ERR_INVALID, "channel count 0");
    CHECK_FAILS(rn_augment_check(&negative_pad, 1), RN_ERR_INVALID, "pad -1");
    CHECK_FAILS(rn_augment_check(&half_resize, 1), RN_ERR_INVALID, "resize 32x0");
    CHECK_FAILS(rn_augment_check(&negative_resize, 1), RN_ERR_INVALID, "resize -32x32");
    CHECK_FAILS(rn_augment_check(&zero_std, 3), RN_ERR_INVALID, "std[1] = 0");
    CHECK_FAILS(rn_augment_check(&nan_mean, 1), RN_ERR_INVALID, "mean[0] = nan");
    CHECK_FAILS(rn_augment_check(&normalize, 4), RN_ERR_INVALID, "4-channel");
    CHECK_OK(rn_augment_check(&normalize, 3));
}

/* ------------------------------------------------------------------------ */
/* Loader                                                                    */

enum { SYNTH_COUNT = 1000, SYNTH_SIDE = 4, SYNTH_NUMEL = SYNTH_SIDE * SYNTH_SIDE };

/* A data set of 1x4x4 images whose first row encodes the sample index as
 * (low byte, high byte, high byte, low byte), which a horizontal flip keeps,
 * and whose label is index % 10. The other rows are not symmetric. */
static rn_dataset synthetic_dataset(void)
{
    rn_dataset data = {
        .count = SYNTH_COUNT,
        .channels = 1,
        .height = SYNTH_SIDE,
        .width = SYNTH_SIDE,
        .num_classes = 10,
        .owns = 1,
    };
    data.images = malloc(SYNTH_COUNT * SYNTH_NUMEL);
    data.labels = malloc(SYNTH_COUNT * sizeof *data.labels);
    RN_ASSERT(data.images && data.labels);
    for (int i = 0; i < SYNTH_COUNT; i++) {
        uint8_t *image = data.images + i * SYNTH_NUMEL;
        image[0] = (uint8_t)(i & 0xff);
        image[1] = (uint8_t)(i >> 8);
        image[2] = image[1];
        image[3] = image[0];
        for (int p = SYNTH_SIDE; p < SYNTH_NUMEL; p++)
            image[p] = (uint8_t)(i * 13 + p * 29);
        data.labels[i] = (uint8_t)(i % 10);
    }
    return data;
}

static int decode_index(const float *image)
{
    return (int)lrintf(image[0] * 255.0f) + 256 * (int)lrintf(image[1] * 255.0f);
}

/* Runs one epoch without augmentation and writes the sample indices in the
 * order delivered. Returns how many were delivered. */
static int epoch_order(rn_loader *loader, int epoch, int *order)
{
    const float *images;
    const int32_t *labels;
    int n, total = 0;

    CHECK_OK(rn_loader_start_epoch(loader, epoch));
    while (rn_loader_next(loader, &images, &labels, &n)) {
        for (int k = 0; k < n && total < SYNTH_COUNT; k++) {
            order[total] = decode_index(images + k * SYNTH_NUMEL);
            CHECK(labels[k] == order[total] % 10);
            total++;
        }
    }
    return total;
}

static int count_same_positions(const int *a, const int *b, int n)
{
    int same = 0;
    for (int i = 0; i < n; i++)
        same += a[i] == b[i];
    return same;
}

TEST(loader_shuffle_yields_each_sample_once)
{
    rn_dataset data = synthetic_dataset();
    rn_loader_config cfg = {.batch_size = 64, .shuffle = 1, .seed = 7};
    rn_loader *loader;
    const float *images;
    const int32_t *labels;
    int n, seen[SYNTH_COUNT] = {0}, order[SYNTH_COUNT];
    int batches = 0, total = 0, identity = 0;

    CHECK_OK(rn_loader_create(&data, &cfg, &loader));
    CHECK(rn_loader_batches_per_epoch(loader) == 16);
    CHECK_OK(rn_loader_start_epoch(loader, 0));
    while (rn_loader_next(loader, &images, &labels, &n)) {
        CHECK_MSG(n == (batches < 15 ? 64 : 1000 - 15 * 64), "batch %d has %d samples", batches, n);
        for (int k = 0; k < n; k++) {
            int index = decode_index(images + k * SYNTH_NUMEL);
            CHECK_MSG(index >= 0 && index < SYNTH_COUNT, "decoded index %d out of range", index);
            if (index < 0 || index >= SYNTH_COUNT)
                continue;
            seen[index]++;
            CHECK(labels[k] == index % 10);
            if (total < SYNTH_COUNT)
                order[total] = index;
            identity += index == total;
            total++;
        }
        batches++;
    }
    CHECK(batches == 16);
    CHECK(total == SYNTH_COUNT);
    int wrong = 0;
    for (int i = 0; i < SYNTH_COUNT; i++)
        wrong += seen[i] != 1;
    CHECK_MSG(wrong == 0, "%d samples not seen exactly once", wrong);
    CHECK_MSG(identity < 20, "%d samples kept their position", identity);

    /* Further calls keep reporting the end of the epoch. */
    CHECK(rn_loader_next(loader, &images, &labels, &n) == 0);

    /* A second epoch is again a permutation, in another order. */
    int second[SYNTH_COUNT];
    CHECK(epoch_order(loader, 1, second) == SYNTH_COUNT);
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < SYNTH_COUNT; i++)
        seen[second[i]]++;
    wrong = 0;
    for (int i = 0; i < SYNTH_COUNT; i++)
        wrong += seen[i] != 1;
    CHECK(wrong == 0);
    CHECK(count_same_positions(order, second, SYNTH_COUNT) < 20);

    rn_loader_destroy(loader);
    rn_dataset_free(&data);
}

/* A uniform shuffle of 4 samples reaches all 24 orders, each expected 20
 * times over 480 epochs. Shuffles that favour some orders (a Sattolo cycle,
 * a biased swap range) miss some of them. */
TEST(loader_shuffle_reaches_every_permutation)
{
    rn_dataset data = synthetic_dataset();
    rn_dataset four;
    rn_loader_config cfg = {.batch_size = 4, .shuffle = 1, .seed = 12};
    rn_loader *loader;
    int seen[4 * 4 * 4 * 4] = {0};
    int distinct = 0, fewest = 480;

    CHECK_OK(rn_dataset_slice(&data, 0, 4, &four));
    CHECK_OK(rn_loader_create(&four, &cfg, &loader));
    for (int epoch = 0; epoch < 480; epoch++) {
        const float *images;
        const int32_t *labels;
        int n, code = 0;
        CHECK_OK(rn_loader_start_epoch(loader, epoch));
        CHECK(rn_loader_next(loader, &images, &labels, &n) == 1);
        CHECK(n == 4);
        for (int k = 0; k < 4; k++)
            code = code * 4 + (decode_index(images + k * SYNTH_NUMEL) & 3);
        seen[code]++;
    }
    for (int code = 0; code < 256; code++) {
        int a = code >> 6, b = (code >> 4) & 3, c = (code >> 2) & 3, d = code & 3;
        int is_permutation = a != b && a != c && a != d && b != c && b != d && c != d;
        if (!is_permutation) {
            CHECK_MSG(seen[code] == 0, "order code %d is not a permutation", code);
            continue;
        }
        distinct += seen[code] > 0;
        if (seen[code] < fewest)
            fewest = seen[code];
    }
    CHECK_MSG(distinct == 24, "%d of 24 orders seen", distinct);
    CHECK_MSG(fewest >= 5, "the rarest order was seen %d times", fewest);
    rn_loader_destroy(loader);
    rn_dataset_free(&data);
}

TEST(loader_order_depends_on_seed_and_epoch)
{
    rn_dataset data = synthetic_dataset();
    rn_loader_config cfg = {.batch_size = 50, .shuffle = 1, .seed = 99};
    rn_loader_config other_seed = cfg;
    rn_loader *a, *b, *c;
    int order_a[SYNTH_COUNT], order_b[SYNTH_COUNT], order_c[SYNTH_COUNT];

    other_seed.seed = 100;
    CHECK_OK(rn_loader_create(&data, &cfg, &a));
    CHECK_OK(rn_loader_create(&data, &cfg, &b));
    CHECK_OK(rn_loader_create(&data, &other_seed, &c));

    CHECK(epoch_order(a, 3, order_a) == SYNTH_COUNT);
    CHECK(epoch_order(b, 3, order_b) == SYNTH_COUNT);
    CHECK(memcmp(order_a, order_b, sizeof order_a) == 0);

    /* Epochs run out of order give the same result. */
    CHECK(epoch_order(b, 4, order_b) == SYNTH_COUNT);
    CHECK(count_same_positions(order_a, order_b, SYNTH_COUNT) < 20);
    CHECK(epoch_order(b, 3, order_b) == SYNTH_COUNT);
    CHECK(memcmp(order_a, order_b, sizeof order_a) == 0);

    CHECK(epoch_order(c, 3, order_c) == SYNTH_COUNT);
    CHECK(count_same_positions(order_a, order_c, SYNTH_COUNT) < 20);

    rn_loader_destroy(a);
    rn_loader_destroy(b);
    rn_loader_destroy(c);
    rn_dataset_free(&data);
}

TEST(loader_without_shuffle_keeps_order)
{
    rn_dataset data = synthetic_dataset();
    rn_loader_config cfg = {.batch_size = 300};
    rn_loader *loader;
    int order[SYNTH_COUNT];

    CHECK_OK(rn_loader_create(&data, &cfg, &loader));
    CHECK(rn_loader_batches_per_epoch(loader) == 4);
    for (int epoch = 0; epoch < 2; epoch++) {
        CHECK(epoch_order(loader, epoch, order) == SYNTH_COUNT);
        int misplaced = 0;
        for (int i = 0; i < SYNTH_COUNT; i++)
            misplaced += order[i] != i;
        CHECK(misplaced == 0);
    }
    rn_loader_destroy(loader);
    rn_dataset_free(&data);
}

TEST(loader_drop_last_drops_partial_batch)
{
    rn_dataset data = synthetic_dataset();
    rn_loader_config cfg = {.batch_size = 64, .shuffle = 1, .drop_last = 1, .seed = 3};
    rn_loader *loader;
    const float *images;
    const int32_t *labels;
    int n, batches = 0, total = 0;

    CHECK_OK(rn_loader_create(&data, &cfg, &loader));
    CHECK(rn_loader_batches_per_epoch(loader) == 15);
    CHECK_OK(rn_loader_start_epoch(loader, 0));
    while (rn_loader_next(loader, &images, &labels, &n)) {
        CHECK(n == 64);
        batches++;
        total += n;
    }
    CHECK(batches == 15);
    CHECK(total == 960);
    rn_loader_destroy(loader);

    /* Exactly one full batch. */
    rn_dataset slice;
    cfg.batch_size = 10;
    CHECK_OK(rn_dataset_slice(&data, 0, 10, &slice));
    CHECK_OK(rn_loader_create(&slice, &cfg, &loader));
    CHECK(rn_loader_batches_per_epoch(loader) == 1);
    rn_loader_destroy(loader);
    rn_dataset_free(&data);
}

enum { TAIL_BATCH = 32, TAIL_BATCHES = (SYNTH_COUNT + TAIL_BATCH - 1) / TAIL_BATCH };

/* Records every batch of an epoch with augmentation on, from first_batch. */
static int record_epoch(rn_loader *loader, int epoch, int64_t first_batch,
                        float *images_out, int32_t *labels_out, int *sizes)
{
    const float *images;
    const int32_t *labels;
    int n, batches = 0;

    CHECK_OK(rn_loader_start_epoch_at(loader, epoch, first_batch));
    while (rn_loader_next(loader, &images, &labels, &n)) {
        int64_t batch = first_batch + batches;
        if (batch >= TAIL_BATCHES)
            break;
        memcpy(images_out + batch * TAIL_BATCH * SYNTH_NUMEL, images,
               (size_t)n * SYNTH_NUMEL * sizeof(float));
        memcpy(labels_out + batch * TAIL_BATCH, labels, (size_t)n * sizeof(int32_t));
        sizes[batch] = n;
        batches++;
    }
    return batches;
}

TEST(loader_start_epoch_at_matches_tail)
{
    static float full[SYNTH_COUNT * SYNTH_NUMEL], tail[SYNTH_COUNT * SYNTH_NUMEL];
    static int32_t full_labels[SYNTH_COUNT], tail_labels[SYNTH_COUNT];
    int full_sizes[TAIL_BATCHES], tail_sizes[TAIL_BATCHES];
    rn_dataset data = synthetic_dataset();
    rn_loader_config cfg = {
        .batch_size = TAIL_BATCH,
        .shuffle = 1,
        .train = 1,
        .augment = {.pad = 1, .flip = 1, .normalize = 1, .mean = {0.3f}, .std = {0.2f}},
        .seed = 2024,
    };
    rn_loader *first, *resumed;

    CHECK_OK(rn_loader_create(&data, &cfg, &first));
    CHECK_OK(rn_loader_create(&data, &cfg, &resumed));
    CHECK(record_epoch(first, 2, 0, full, full_labels, full_sizes) == TAIL_BATCHES);

    static const int starts[] = {0, 1, 5, TAIL_BATCHES - 1};
    for (size_t s = 0; s < sizeof starts / sizeof starts[0]; s++) {
        int k = starts[s];
        memset(tail, 0, sizeof tail);
        CHECK(record_epoch(resumed, 2, k, tail, tail_labels, tail_sizes) == TAIL_BATCHES - k);
        size_t offset = (size_t)k * TAIL_BATCH;
        size_t count = SYNTH_COUNT - offset;
        CHECK(memcmp(tail_sizes + k, full_sizes + k, (TAIL_BATCHES - k) * sizeof(int)) == 0);
        CHECK_MSG(memcmp(tail + offset * SYNTH_NUMEL, full + offset * SYNTH_NUMEL,
                         count * SYNTH_NUMEL * sizeof(float)) == 0,
                  "images from batch %d differ from the full epoch", k);
        CHECK(memcmp(tail_labels + offset, full_labels + offset, count * sizeof(int32_t)) == 0);
    }

    /* Starting at the end yields nothing. Starting past the end is invalid. */
    const float *images;
    const int32_t *labels;
    int n;
    CHECK_OK(rn_loader_start_epoch_at(resumed, 2, TAIL_BATCHES));
    CHECK(rn_loader_next(resumed, &images, &labels, &n) == 0);
    CHECK_FAILS(rn_loader_start_epoch_at(resumed, 2, TAIL_BATCHES + 1), RN_ERR_INVALID,
                "invalid first batch 33");
    CHECK_FAILS(rn_loader_start_epoch_at(resumed, 2, -1), RN_ERR_INVALID, "first batch -1");
    CHECK_FAILS(rn_loader_start_epoch(resumed, -2), RN_ERR_INVALID, "epoch -2");

    rn_loader_destroy(first);
    rn_loader_destroy(resumed);
    rn_dataset_free(&data);
}

/* Restarting an epoch while batches are pending discards them cleanly. */
TEST(loader_restart_mid_epoch)
{
    static float full[SYNTH_COUNT * SYNTH_NUMEL], again[SYNTH_COUNT * SYNTH_NUMEL];
    static int32_t full_labels[SYNTH_COUNT], again_labels[SYNTH_COUNT];
    int sizes[TAIL_BATCHES];
    rn_dataset data = synthetic_dataset();
    rn_loader_config cfg = {
        .batch_size = TAIL_BATCH, .shuffle = 1, .train = 1, .augment = {.pad = 2, .flip = 1}, .seed = 1,
    };
    rn_loader *loader;
    const float *images;
    const int32_t *labels;
    int n;

    CHECK_OK(rn_loader_create(&data, &cfg, &loader));
    CHECK(record_epoch(loader, 0, 0, full, full_labels, sizes) == TAIL_BATCHES);
    for (int trial = 0; trial < 20; trial++) {
        CHECK_OK(rn_loader_start_epoch(loader, 5));
        for (int b = 0; b < trial % 4; b++)
            CHECK(rn_loader_next(loader, &images, &labels, &n) == 1);
    }
    CHECK(record_epoch(loader, 0, 0, again, again_labels, sizes) == TAIL_BATCHES);
    CHECK(memcmp(full, again, sizeof full) == 0);
    CHECK(memcmp(full_labels, again_labels, sizeof full_labels) == 0);
    rn_loader_destroy(loader);
    rn_dataset_free(&data);
}

/* The augmentation of a sample depends on (seed, epoch, sample index) only,
 * so batch size does not change it, but the epoch does. */
TEST(loader_augment_independent_of_batch_size)
{
    static float by_7[SYNTH_COUNT * SYNTH_NUMEL], by_64[SYNTH_COUNT * SYNTH_NUMEL];
    static float next_epoch[SYNTH_COUNT * SYNTH_NUMEL];
    rn_dataset data = synthetic_dataset();
    rn_loader_config cfg = {.train = 1, .augment = {.pad = 2, .flip = 1}, .seed = 11};
    float *outputs[3] = {by_7, by_64, next_epoch};
    const int batch_sizes[3] = {7, 64, 64};
    const int epochs[3] = {1, 1, 2};

    for (int run = 0; run < 3; run++) {
        rn_loader *loader;
        const float *images;
        const int32_t *labels;
        int n, total = 0;
        cfg.batch_size = batch_sizes[run];
        CHECK_OK(rn_loader_create(&data, &cfg, &loader));
        CHECK_OK(rn_loader_start_epoch(loader, epochs[run]));
        while (rn_loader_next(loader, &images, &labels, &n)) {
            memcpy(outputs[run] + (size_t)total * SYNTH_NUMEL, images,
                   (size_t)n * SYNTH_NUMEL * sizeof(float));
            total += n;
        }
        CHECK(total == SYNTH_COUNT);
        rn_loader_destroy(loader);
    }
    CHECK(memcmp(by_7, by_64, sizeof by_7) == 0);

    int changed = 0;
    for (int i = 0; i < SYNTH_COUNT; i++)
        changed += memcmp(by_64 + i * SYNTH_NUMEL, next_epoch + i * SYNTH_NUMEL,
                          SYNTH_NUMEL * sizeof(float)) != 0;
    /* 1 - (1/25 * 1/2) of the samples change when the draws are independent. */
    CHECK_MSG(changed > 900, "only %d of %d samples changed between epochs", changed, SYNTH_COUNT);
    rn_dataset_free(&data);
}

/* The random flip of a sample must be the same whether the epoch is shuffled
 * or not, because it is seeded from the sample's index, not its position. */
TEST(loader_augment_follows_sample_not_position)
{
    static float in_order[SYNTH_COUNT * SYNTH_NUMEL];
    rn_dataset data = synthetic_dataset();
    rn_loader_config cfg = {.batch_size = 40, .train = 1, .augment = {.flip = 1}, .seed = 8};
    rn_loader *loader;
    const float *images;
    const int32_t *labels;
    int n, total = 0, mismatches = 0, flipped = 0;

    CHECK_OK(rn_loader_create(&data, &cfg, &loader));
    CHECK_OK(rn_loader_start_epoch(loader, 3));
    while (rn_loader_next(loader, &images, &labels, &n)) {
        memcpy(in_order + (size_t)total * SYNTH_NUMEL, images, (size_t)n * SYNTH_NUMEL * sizeof(float));
        total += n;
    }
    rn_loader_destroy(loader);
    CHECK(total == SYNTH_COUNT);
    for (int i = 0; i < SYNTH_COUNT; i++)
        flipped += in_order[i * SYNTH_NUMEL + SYNTH_SIDE] != (float)data.images[i * SYNTH_NUMEL + SYNTH_SIDE] / 255.0f;
    CHECK_MSG(flipped > 400, "only %d of 1000 samples flipped", flipped);
    CHECK_MSG(flipped < 600, "%d of 1000 samples flipped", flipped);

    cfg.shuffle = 1;
    CHECK_OK(rn_loader_create(&data, &cfg, &loader));
    CHECK_OK(rn_loader_start_epoch(loader, 3));
    while (rn_loader_next(loader, &images, &labels, &n)) {
        for (int k = 0; k < n; k++) {
            int index = decode_index(images + k * SYNTH_NUMEL);
            if (index < 0 || index >= SYNTH_COUNT ||
                memcmp(images + k * SYNTH_NUMEL, in_order + (size_t)index * SYNTH_NUMEL,
                       SYNTH_NUMEL * sizeof(float)) != 0)
                mismatches++;
        }
    }
    CHECK_MSG(mismatches == 0, "%d samples augmented differently when shuffled", mismatches);
    rn_loader_destroy(loader);
    rn_dataset_free(&data);
}

/* The thread fills ahead, but never into the batch the caller holds. */
TEST(loader_batch_stays_valid_until_next)
{
    rn_dataset data = synthetic_dataset();
    rn_loader_config cfg = {.batch_size = 100};
    rn_loader *loader;
    const float *images;
    const int32_t *labels;
    int n, batch = 0, wrong = 0;

    CHECK_OK(rn_loader_create(&data, &cfg, &loader));
    CHECK_OK(rn_loader_start_epoch(loader, 0));
    while (rn_loader_next(loader, &images, &labels, &n)) {
        /* Give the thread time to fill every slot it is allowed to. */
        usleep(20000);
        for (int k = 0; k < n; k++) {
            wrong += decode_index(images + k * SYNTH_NUMEL) != batch * 100 + k;
            wrong += labels[k] != (batch * 100 + k) % 10;
        }
        batch++;
    }
    CHECK(batch == 10);
    CHECK(wrong == 0);
    rn_loader_destroy(loader);
    rn_dataset_free(&data);
}

TEST(loader_eval_mode_is_deterministic_scaling)
{
    rn_dataset data = synthetic_dataset();
    rn_loader_config cfg = {.batch_size = 100, .shuffle = 0, .train = 0,
                            .augment = {.pad = 4, .flip = 1}};
    rn_loader *loader;
    const float *images;
    const int32_t *labels;
    int n, total = 0, mismatches = 0;

    CHECK_OK(rn_loader_create(&data, &cfg, &loader));
    CHECK_OK(rn_loader_start_epoch(loader, 0));
    while (rn_loader_next(loader, &images, &labels, &n)) {
        for (int k = 0; k < n; k++, total++)
            for (int p = 0; p < SYNTH_NUMEL; p++)
                mismatches += images[k * SYNTH_NUMEL + p] !=
                              (float)data.images[total * SYNTH_NUMEL + p] / 255.0f;
    }
    CHECK(total == SYNTH_COUNT);
    CHECK(mismatches == 0);
    rn_loader_destroy(loader);
    rn_dataset_free(&data);
}

TEST(loader_sample_shape_after_resize)
{
    rn_dataset data = synthetic_dataset();
    rn_loader_config cfg = {.batch_size = 8, .augment = {.resize_h = 9, .resize_w = 6}};
    rn_loader *loader;
    const float *images;
    const int32_t *labels;
    int c, h, w, n;

    CHECK_OK(rn_loader_create(&data, &cfg, &loader));
    rn_loader_sample_shape(loader, &c, &h, &w);
    CHECK(c == 1);
    CHECK(h == 9);
    CHECK(w == 6);
    CHECK_OK(rn_loader_start_epoch(loader, 0));
    CHECK(rn_loader_next(loader, &images, &labels, &n) == 1);
    CHECK(n == 8);
    /* Last element of the batch is readable and in range. */
    CHECK(images[8 * 9 * 6 - 1] >= 0.0f);
    CHECK(images[8 * 9 * 6 - 1] <= 1.0f);
    rn_loader_destroy(loader);
    rn_dataset_free(&data);
}

TEST(loader_rejects_invalid_config)
{
    rn_dataset data = synthetic_dataset();
    rn_dataset empty = {0};
    rn_loader *loader = (rn_loader *)&data;
    rn_loader_config zero_batch = {.batch_size = 0};
    rn_loader_config too_big = {.batch_size = 1001, .drop_last = 1};
    rn_loader_config bad_pad = {.batch_size = 8, .augment = {.pad = -2}};
    rn_loader_config big_no_drop = {.batch_size = 5000};

    CHECK_FAILS(rn_loader_create(&data, &zero_batch, &loader), RN_ERR_INVALID, "batch size 0");
    CHECK(loader == NULL);
    CHECK_FAILS(rn_loader_create(&data, &too_big, &loader), RN_ERR_INVALID,
                "batch size 1001 with drop_last leaves no batch from 1000 samples");
    CHECK_FAILS(rn_loader_create(&data, &bad_pad, &loader), RN_ERR_INVALID, "pad -2");
    CHECK_FAILS(rn_loader_create(&empty, &big_no_drop, &loader), RN_ERR_INVALID, "empty data set");

    /* A batch larger than the data set is one partial batch. */
    CHECK_OK(rn_loader_create(&data, &big_no_drop, &loader));
    CHECK(rn_loader_batches_per_epoch(loader) == 1);
    rn_loader_destroy(loader);
    rn_loader_destroy(NULL);
    rn_dataset_free(&data);
}

/* Scenario for the destroy test, run on its own thread so that a hang shows
 * as a timeout instead of blocking the suite. */
struct destroy_case {
    const rn_dataset *data;
    int scenario;
    int failures;
};

static void *run_destroy_case(void *arg)
{
    struct destroy_case *c = arg;
    rn_loader_config cfg = {
        .batch_size = 16, .shuffle = 1, .train = 1,
        .augment = {.pad = 4, .flip = 1, .resize_h = 64, .resize_w = 64}, .seed = 5,
    };
    rn_loader *loader;
    const float *images;
    const int32_t *labels;
    int n;

    if (rn_loader_create(c->data, &cfg, &loader) != RN_OK) {
        c->failures++;
        return NULL;
    }
    if (c->scenario >= 1 && rn_loader_start_epoch(loader, 0) != RN_OK)
        c->failures++;
    for (int b = 0; b < c->scenario - 1; b++)
        if (rn_loader_next(loader, &images, &labels, &n) != 1)
            c->failures++;
    rn_loader_destroy(loader);
    return NULL;
}

TEST(loader_destroy_mid_epoch_returns)
{
    rn_dataset data = synthetic_dataset();

    /* Scenarios: never started, started with no batch taken, 1 to 3 batches
     * taken (the thread is then filling or waiting for a free slot). */
    for (int trial = 0; trial < 40; trial++) {
        struct destroy_case c = {.data = &data, .scenario = trial % 5};
        pthread_t thread;
        struct timespec deadline;

        RN_ASSERT(pthread_create(&thread, NULL, run_destroy_case, &c) == 0);
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += 5;
        int err = pthread_timedjoin_np(thread, NULL, &deadline);
        CHECK_MSG(err == 0, "scenario %d: loader did not shut down within 5 s", c.scenario);
        if (err != 0) {
            /* The hung thread uses data, so it must not be freed. */
            return;
        }
        CHECK(c.failures == 0);
    }
    rn_dataset_free(&data);
}

TEST(loader_real_fashion_mnist_epoch)
{
    rn_dataset train;
    rn_loader *loader;
    const float *images;
    const int32_t *labels;
    int n;
    int64_t histogram[10] = {0}, total = 0;

    if (access(RN_FASHION_MNIST_DIR, F_OK) != 0) {
        printf("    skipped: %s not installed\n", RN_FASHION_MNIST_DIR);
        return;
    }
    CHECK_OK(rn_dataset_load_mnist(RN_FASHION_MNIST_DIR, 1, &train));
    if (train.count == 0)
        return;
    rn_loader_config cfg = {
        .batch_size = 256, .shuffle = 1, .train = 1,
        .augment = {.pad = 2, .flip = 1, .normalize = 1, .mean = {0.2860f}, .std = {0.3530f}},
        .seed = 42,
    };
    CHECK_OK(rn_loader_create(&train, &cfg, &loader));
    CHECK(rn_loader_batches_per_epoch(loader) == 235);
    CHECK_OK(rn_loader_start_epoch(loader, 0));
    while (rn_loader_next(loader, &images, &labels, &n)) {
        for (int k = 0; k < n; k++)
            if (labels[k] >= 0 && labels[k] < 10)
                histogram[labels[k]]++;
        total += n;
    }
    CHECK(total == 60000);
    for (int c = 0; c < 10; c++)
        CHECK(histogram[c] == 6000);
    rn_loader_destroy(loader);
    rn_dataset_free(&train);
}

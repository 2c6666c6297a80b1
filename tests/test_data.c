/* Tests of the data layer: IDX files, MNIST data sets and
 * augmentation. */
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/rng.h"
#include "core/status.h"
#include "data/augment.h"
#include "data/dataset.h"
#include "data/idx.h"
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
    CHECK_FAILS(rn_dataset_load_mnist(dir, 1, &data), RN_ERR_IO,
                "apt-get install dataset-fashion-mnist");
    CHECK_FAILS(rn_dataset_load_mnist(dir, 1, &data), RN_ERR_IO, "--data DIR");

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

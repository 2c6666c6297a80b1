/* CIFAR-10, binary version (cifar-10-binary.tar.gz of
 * https://www.cs.toronto.edu/~kriz/cifar.html). */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/status.h"
#include "data/dataset.h"
#include "io/file.h"

enum {
    CIFAR_SIDE = 32,
    CIFAR_IMAGE_NBYTES = 3 * CIFAR_SIDE * CIFAR_SIDE,
    CIFAR_RECORD_NBYTES = 1 + CIFAR_IMAGE_NBYTES, /* label byte, then the image */
    CIFAR_FILE_RECORDS = 10000,                   /* in each file of the release */
    CIFAR_NUM_CLASSES = 10,
    CIFAR_TRAIN_FILES = 5,
};

static const char *const cifar10_classes[CIFAR_NUM_CLASSES] = {
    "airplane", "automobile", "bird", "cat", "deer",
    "dog",      "frog",       "horse", "ship", "truck",
};

/* Per-channel mean and standard deviation of the CIFAR-10 training images,
 * the values quoted with the data set's usual normalization. */
static const float CIFAR_MEAN[3] = {0.4914f, 0.4822f, 0.4465f};
static const float CIFAR_STD[3] = {0.2470f, 0.2435f, 0.2616f};

const char *const *rn_cifar10_classes(void)
{
    return cifar10_classes;
}

/* Uses dir/cifar-10-batches-bin when dir itself lacks the first file, as
 * happens when dir is where the archive was unpacked. */
static void find_batches_dir(const char *dir, const char *first_file, char *out, size_t size)
{
    char path[PATH_MAX];
    snprintf(out, size, "%s", dir);
    snprintf(path, sizeof path, "%s/%s", dir, first_file);
    if (access(path, F_OK) == 0)
        return;
    snprintf(path, sizeof path, "%s/cifar-10-batches-bin/%s", dir, first_file);
    if (access(path, F_OK) == 0)
        snprintf(out, size, "%s/cifar-10-batches-bin", dir);
}

/* Reads one batch file and appends its records to images and labels, which
 * are grown with realloc. */
static rn_status read_batch(const char *path, uint8_t **images, int32_t **labels,
                            int64_t *count)
{
    void *data;
    size_t nbytes;
    rn_status status = rn_file_read_all(path, &data, &nbytes);
    if (status != RN_OK)
        return rn_error_prefix(status, "CIFAR-10 batch file missing or unreadable (download "
                               "the binary version, cifar-10-binary.tar.gz, and pass the "
                               "folder it unpacks to as --data): ");
    if (nbytes == 0 || nbytes % CIFAR_RECORD_NBYTES != 0) {
        rn_free_aligned(data);
        return rn_error(RN_ERR_FORMAT, "%s: invalid CIFAR-10 batch file of %zu bytes: expected "
                        "a multiple of the %d-byte record (%d bytes for the %d records of a "
                        "released file); the file is truncated or not the binary version",
                        path, nbytes, CIFAR_RECORD_NBYTES,
                        CIFAR_RECORD_NBYTES * CIFAR_FILE_RECORDS, CIFAR_FILE_RECORDS);
    }

    int64_t records = (int64_t)(nbytes / CIFAR_RECORD_NBYTES);
    uint8_t *grown_images = realloc(*images, (size_t)(*count + records) * CIFAR_IMAGE_NBYTES);
    if (grown_images)
        *images = grown_images;
    int32_t *grown_labels = realloc(*labels, (size_t)(*count + records) * sizeof **labels);
    if (grown_labels)
        *labels = grown_labels;
    if (!grown_images || !grown_labels) {
        rn_free_aligned(data);
        return rn_error(RN_ERR_NOMEM, "cannot allocate %" PRId64 " CIFAR-10 images",
                        *count + records);
    }

    const uint8_t *record = data;
    for (int64_t r = 0; r < records; r++, record += CIFAR_RECORD_NBYTES) {
        if (record[0] >= CIFAR_NUM_CLASSES) {
            status = rn_error(RN_ERR_FORMAT, "%s: label %d of record %" PRId64 " is out of "
                              "range; expected 0 to %d", path, record[0], r,
                              CIFAR_NUM_CLASSES - 1);
            break;
        }
        (*labels)[*count + r] = record[0];
        /* The record's R, G and B planes are already (3, 32, 32). */
        memcpy(*images + (size_t)(*count + r) * CIFAR_IMAGE_NBYTES, record + 1,
               CIFAR_IMAGE_NBYTES);
    }
    rn_free_aligned(data);
    if (status == RN_OK)
        *count += records;
    return status;
}

/* Reads batches.meta.txt, one class name a line, if it exists and lists 10
 * names; otherwise keeps the standard names. */
static rn_status read_class_names(const char *dir, rn_dataset *out)
{
    char path[PATH_MAX + 32];
    char names[CIFAR_NUM_CLASSES][64];
    const char *pointers[CIFAR_NUM_CLASSES];
    int found = 0;

    snprintf(path, sizeof path, "%s/batches.meta.txt", dir);
    FILE *file = fopen(path, "r");
    if (file) {
        char line[256];
        while (found < CIFAR_NUM_CLASSES && fgets(line, sizeof line, file)) {
            size_t length = strcspn(line, "\r\n");
            line[length] = '\0';
            if (length == 0 || length >= sizeof names[0])
                continue;
            memcpy(names[found], line, length + 1);
            pointers[found] = names[found];
            found++;
        }
        fclose(file);
    }
    if (found == CIFAR_NUM_CLASSES)
        return rn_dataset_copy_class_names(out, pointers, CIFAR_NUM_CLASSES);
    return rn_dataset_copy_class_names(out, cifar10_classes, CIFAR_NUM_CLASSES);
}

rn_status rn_dataset_load_cifar10(const char *dir, int train, rn_dataset *out)
{
    char batches_dir[PATH_MAX], path[PATH_MAX + 32];
    rn_status status = RN_OK;

    memset(out, 0, sizeof *out);
    find_batches_dir(dir, train ? "data_batch_1.bin" : "test_batch.bin", batches_dir,
                     sizeof batches_dir);
    out->owns = 1;
    int file_count = train ? CIFAR_TRAIN_FILES : 1;
    for (int k = 1; k <= file_count && status == RN_OK; k++) {
        if (train)
            snprintf(path, sizeof path, "%s/data_batch_%d.bin", batches_dir, k);
        else
            snprintf(path, sizeof path, "%s/test_batch.bin", batches_dir);
        status = read_batch(path, &out->images, &out->labels, &out->count);
    }
    out->num_classes = CIFAR_NUM_CLASSES;
    if (status == RN_OK)
        status = read_class_names(batches_dir, out);
    if (status != RN_OK) {
        rn_dataset_free(out);
        return status;
    }

    out->channels = 3;
    out->height = CIFAR_SIDE;
    out->width = CIFAR_SIDE;
    memcpy(out->mean, CIFAR_MEAN, sizeof out->mean);
    memcpy(out->std, CIFAR_STD, sizeof out->std);
    return RN_OK;
}

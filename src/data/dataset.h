/* In-memory image classification data sets of 8-bit images. */
#ifndef RN_DATA_DATASET_H
#define RN_DATA_DATASET_H

#include <stdint.h>

#include "resnet.h"

/* Directory of the Debian package dataset-fashion-mnist. */
#define RN_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

typedef struct rn_dataset {
    int64_t count;
    int channels, height, width;
    uint8_t *images; /* (count, channels, height, width) */
    uint8_t *labels; /* (count), each < num_classes */
    int num_classes;
    int owns; /* nonzero if rn_dataset_free calls free() on images and labels; 0 for a slice */
} rn_dataset;

/* Loads MNIST or Fashion-MNIST from dir: the training set (60000 images)
 * when train is nonzero, else the test set (10000). For each of
 * {train,t10k}-images-idx3-ubyte and {train,t10k}-labels-idx1-ubyte it reads
 * NAME.gz if it exists, else NAME.
 * Returns RN_ERR_IO if a file is missing or unreadable, RN_ERR_FORMAT if the
 * files are malformed, disagree on the count or hold a label above 9, and
 * RN_ERR_NOMEM. On failure *out is zeroed. */
rn_status rn_dataset_load_mnist(const char *dir, int train, rn_dataset *out);

/* Makes view refer to samples [start, start + count) of src without copying.
 * The view is valid while src is, and rn_dataset_free(view) frees nothing.
 * Returns RN_ERR_INVALID if the range is empty or outside src. */
rn_status rn_dataset_slice(const rn_dataset *src, int64_t start, int64_t count,
                           rn_dataset *view);

/* Frees what the data set owns and zeroes the struct. Accepts a zeroed struct. */
void rn_dataset_free(rn_dataset *dataset);

/* Returns the 10 Fashion-MNIST class names, indexed by label
 * ("T-shirt/top", "Trouser", ..., "Ankle boot"). */
const char *const *rn_fashion_mnist_classes(void);

#endif

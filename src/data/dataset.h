/* In-memory image classification data sets of 8-bit images. */
#ifndef RN_DATA_DATASET_H
#define RN_DATA_DATASET_H

#include <stdint.h>

#include "resnet.h"

/* Directory of the Debian package dataset-fashion-mnist. */
#define RN_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

/* A labelled set of 8-bit images, held in memory (IDX, CIFAR-10) or as a
 * list of image files that the loader decodes as it goes (image folders). */
typedef struct rn_dataset {
    int64_t count;
    int channels, height, width; /* height and width are 0 when the files differ in size */
    uint8_t *images;     /* (count, channels, height, width), or NULL when paths is set */
    char **paths;        /* (count) PNG or JPEG files, or NULL when images is set */
    int32_t *labels;     /* (count), each < num_classes */
    int num_classes;
    char **class_names;  /* (num_classes), or NULL */
    float mean[3], std[3]; /* per-channel pixel statistics in [0, 1] units, for --normalize auto */
    int owns; /* nonzero if rn_dataset_free frees the arrays and strings; 0 for a slice */
} rn_dataset;

/* Layouts of a data directory, named as --data-format takes them. */
typedef enum rn_data_format {
    RN_DATA_FORMAT_IDX,         /* "idx": MNIST-style IDX files */
    RN_DATA_FORMAT_IMAGEFOLDER, /* "imagefolder": DIR/{train,val|test}/<class>/<image> */
    RN_DATA_FORMAT_CIFAR10,     /* "cifar10": the CIFAR-10 binary version */
} rn_data_format;

/* Parses "idx", "imagefolder" or "cifar10"; RN_ERR_INVALID names the value. */
rn_status rn_data_format_parse(const char *text, rn_data_format *out);
const char *rn_data_format_name(rn_data_format format);

/* How rn_dataset_load reads an image folder; ignored by the other formats. */
typedef struct rn_dataset_options {
    int channels;  /* 1 or 3 to convert every image, 0 for 3 if any file is colour, else 1 */
    const char *const *class_names; /* classes that folder names map to, or NULL for
                                       the sorted folder names */
    int class_count;
    int resized;   /* nonzero if the images are resized later, so sizes may differ */
} rn_dataset_options;

/* Loads the training split (train nonzero) or the test split of the data
 * set in dir. options may be NULL for the defaults (all zero). */
rn_status rn_dataset_load(rn_data_format format, const char *dir, int train,
                          const rn_dataset_options *options, rn_dataset *out);

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

/* Loads CIFAR-10's binary version from dir (or dir/cifar-10-batches-bin):
 * data_batch_1.bin ... data_batch_5.bin when train is nonzero, else
 * test_batch.bin. Each file is a sequence of 3073-byte records: a label
 * byte (0 to 9), then 1024 red, 1024 green and 1024 blue bytes of a 32x32
 * image, rows top to bottom. Class names come from batches.meta.txt when
 * present. Returns RN_ERR_IO for a missing file and RN_ERR_FORMAT for a
 * length that is not a positive multiple of 3073 bytes (the message gives
 * both) or a label above 9. */
rn_status rn_dataset_load_cifar10(const char *dir, int train, rn_dataset *out);

/* Lists an image folder split: every subfolder of dir (sorted by name,
 * hidden ones skipped) is a class, and every file in it (sorted, hidden
 * ones skipped) an image of that class. Each image is decoded once to check
 * it and learn its size and channels; the loader decodes it again when it
 * needs it. Errors name the file or folder and say what to do: a file that
 * is not a readable PNG or JPEG, an empty class folder, a folder without
 * class folders, a class folder not among options->class_names, and images
 * of different sizes unless options->resized is set. */
rn_status rn_dataset_load_imagefolder(const char *dir, const rn_dataset_options *options,
                                      rn_dataset *out);

/* Sets dataset->class_names to copies of names[0..count). Returns
 * RN_ERR_NOMEM. */
rn_status rn_dataset_copy_class_names(rn_dataset *dataset, const char *const *names, int count);

/* Frees what the data set owns and zeroes the struct. Accepts a zeroed struct. */
void rn_dataset_free(rn_dataset *dataset);

/* Returns the 10 CIFAR-10 class names, indexed by label ("airplane", ...). */
const char *const *rn_cifar10_classes(void);

/* Returns the 10 Fashion-MNIST class names, indexed by label
 * ("T-shirt/top", "Trouser", ..., "Ankle boot"). */
const char *const *rn_fashion_mnist_classes(void);

#endif

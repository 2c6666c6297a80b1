#include "data/dataset.h"

#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/status.h"
#include "data/idx.h"

enum { MNIST_NUM_CLASSES = 10 };

/* Fashion-MNIST's pixel mean and standard deviation over the training set,
 * used for MNIST too. */
static const float FASHION_MNIST_MEAN = 0.2860f, FASHION_MNIST_STD = 0.3530f;

static const char *const fashion_mnist_classes[MNIST_NUM_CLASSES] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot",
};

const char *const *rn_fashion_mnist_classes(void)
{
    return fashion_mnist_classes;
}

/* Writes dir/name.gz to path if that file exists, else dir/name if that
 * exists, else returns RN_ERR_IO naming both. */
static rn_status find_idx_file(const char *dir, const char *name, char *path, size_t size)
{
    char raw_path[PATH_MAX];
    int gz_len = snprintf(path, size, "%s/%s.gz", dir, name);
    int raw_len = snprintf(raw_path, sizeof raw_path, "%s/%s", dir, name);

    if (gz_len < 0 || (size_t)gz_len >= size || raw_len < 0 || (size_t)raw_len >= sizeof raw_path)
        return rn_error(RN_ERR_INVALID, "data directory path is too long: %s", dir);
    if (access(path, F_OK) == 0)
        return RN_OK;
    if (access(raw_path, F_OK) == 0) {
        memcpy(path, raw_path, (size_t)raw_len + 1);
        return RN_OK;
    }
    /* The package hint helps only when the default directory is missing. */
    if (!strcmp(dir, RN_FASHION_MNIST_DIR))
        return rn_error(RN_ERR_IO,
                        "%s not found (nor %s); install the Debian package "
                        "dataset-fashion-mnist (apt-get install dataset-fashion-mnist) "
                        "or pass --data DIR",
                        path, raw_path);
    return rn_error(RN_ERR_IO,
                    "%s not found (nor %s); --data must name a directory with the IDX "
                    "files train-images-idx3-ubyte, train-labels-idx1-ubyte, "
                    "t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (each may end in .gz)",
                    path, raw_path);
}

static rn_status check_shapes(const rn_idx *images, const char *images_path,
                              const rn_idx *labels, const char *labels_path)
{
    if (images->ndim != 3)
        return rn_error(RN_ERR_FORMAT,
                        "%s: expected 3 dimensions (count, height, width) for images, got %d",
                        images_path, images->ndim);
    if (labels->ndim != 1)
        return rn_error(RN_ERR_FORMAT,
                        "%s: expected 1 dimension (count) for labels, got %d",
                        labels_path, labels->ndim);
    if (images->dims[0] != labels->dims[0])
        return rn_error(RN_ERR_FORMAT,
                        "%s has %" PRId64 " images but %s has %" PRId64 " labels; "
                        "both files must come from the same release of the data set",
                        images_path, images->dims[0], labels_path, labels->dims[0]);
    for (int64_t i = 0; i < labels->dims[0]; i++)
        if (labels->data[i] >= MNIST_NUM_CLASSES)
            return rn_error(RN_ERR_FORMAT,
                            "%s: label %d of sample %" PRId64 " is out of range; "
                            "expected 0 to %d",
                            labels_path, labels->data[i], i, MNIST_NUM_CLASSES - 1);
    return RN_OK;
}

rn_status rn_dataset_load_mnist(const char *dir, int train, rn_dataset *out)
{
    const char *prefix = train ? "train" : "t10k";
    char images_name[64], labels_name[64];
    char images_path[PATH_MAX], labels_path[PATH_MAX];
    rn_idx images = {0}, labels = {0};
    rn_status status;

    memset(out, 0, sizeof *out);
    snprintf(images_name, sizeof images_name, "%s-images-idx3-ubyte", prefix);
    snprintf(labels_name, sizeof labels_name, "%s-labels-idx1-ubyte", prefix);

    RN_TRY(find_idx_file(dir, images_name, images_path, sizeof images_path));
    RN_TRY(find_idx_file(dir, labels_name, labels_path, sizeof labels_path));

    status = rn_idx_read(images_path, &images);
    if (status == RN_OK)
        status = rn_idx_read(labels_path, &labels);
    if (status == RN_OK)
        status = check_shapes(&images, images_path, &labels, labels_path);
    if (status != RN_OK) {
        rn_idx_free(&images);
        rn_idx_free(&labels);
        return status;
    }

    /* (count, H, W) bytes are already the (count, 1, H, W) layout, so the
     * data set takes over the image buffer. */
    int32_t *wide_labels = malloc((size_t)labels.dims[0] * sizeof *wide_labels);
    if (!wide_labels) {
        rn_idx_free(&images);
        rn_idx_free(&labels);
        return rn_error(RN_ERR_NOMEM, "cannot allocate %" PRId64 " labels", labels.dims[0]);
    }
    for (int64_t i = 0; i < labels.dims[0]; i++)
        wide_labels[i] = labels.data[i];
    rn_idx_free(&labels);

    out->count = images.dims[0];
    out->channels = 1;
    out->height = (int)images.dims[1];
    out->width = (int)images.dims[2];
    out->images = images.data;
    out->labels = wide_labels;
    out->num_classes = MNIST_NUM_CLASSES;
    out->owns = 1;
    for (int c = 0; c < 3; c++) {
        out->mean[c] = FASHION_MNIST_MEAN;
        out->std[c] = FASHION_MNIST_STD;
    }
    status = rn_dataset_copy_class_names(out, fashion_mnist_classes, MNIST_NUM_CLASSES);
    if (status != RN_OK)
        rn_dataset_free(out);
    return status;
}

rn_status rn_dataset_slice(const rn_dataset *src, int64_t start, int64_t count,
                           rn_dataset *view)
{
    if (start < 0 || count <= 0 || start > src->count || count > src->count - start)
        return rn_error(RN_ERR_INVALID,
                        "invalid data set slice: %" PRId64 " samples from index %" PRId64
                        " of a set of %" PRId64 "; the slice must be non-empty and inside the set",
                        count, start, src->count);

    size_t image_nbytes = (size_t)src->channels * src->height * src->width;
    *view = *src;
    view->count = count;
    if (src->images)
        view->images = src->images + (size_t)start * image_nbytes;
    if (src->paths)
        view->paths = src->paths + start;
    view->labels = src->labels + start;
    view->owns = 0;
    return RN_OK;
}

void rn_dataset_free(rn_dataset *dataset)
{
    if (dataset->owns) {
        free(dataset->images);
        free(dataset->labels);
        for (int64_t i = 0; dataset->paths && i < dataset->count; i++)
            free(dataset->paths[i]);
        free(dataset->paths);
        for (int k = 0; dataset->class_names && k < dataset->num_classes; k++)
            free(dataset->class_names[k]);
        free(dataset->class_names);
    }
    memset(dataset, 0, sizeof *dataset);
}

rn_status rn_dataset_copy_class_names(rn_dataset *dataset, const char *const *names, int count)
{
    dataset->class_names = calloc((size_t)count, sizeof *dataset->class_names);
    if (!dataset->class_names)
        return rn_error(RN_ERR_NOMEM, "cannot allocate %d class names", count);
    for (int k = 0; k < count; k++) {
        dataset->class_names[k] = strdup(names[k]);
        if (!dataset->class_names[k])
            return rn_error(RN_ERR_NOMEM, "cannot allocate the class name '%s'", names[k]);
    }
    return RN_OK;
}

rn_status rn_data_format_parse(const char *text, rn_data_format *out)
{
    static const rn_data_format formats[] = {
        RN_DATA_FORMAT_IDX, RN_DATA_FORMAT_IMAGEFOLDER, RN_DATA_FORMAT_CIFAR10,
    };
    for (size_t k = 0; k < sizeof formats / sizeof formats[0]; k++) {
        if (!strcmp(text, rn_data_format_name(formats[k]))) {
            *out = formats[k];
            return RN_OK;
        }
    }
    return rn_error(RN_ERR_INVALID, "invalid data format '%s': expected idx, imagefolder or "
                    "cifar10", text);
}

const char *rn_data_format_name(rn_data_format format)
{
    switch (format) {
    case RN_DATA_FORMAT_IDX: return "idx";
    case RN_DATA_FORMAT_IMAGEFOLDER: return "imagefolder";
    case RN_DATA_FORMAT_CIFAR10: return "cifar10";
    }
    return "?";
}

/* Finds the test split of an image folder: dir/val, else dir/test. */
static rn_status find_test_split(const char *dir, char *path, size_t size)
{
    static const char *const names[] = {"val", "test"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        int length = snprintf(path, size, "%s/%s", dir, names[k]);
        if (length < 0 || (size_t)length >= size)
            return rn_error(RN_ERR_INVALID, "data directory path is too long: %s", dir);
        if (access(path, F_OK) == 0)
            return RN_OK;
    }
    return rn_error(RN_ERR_IO, "%s has neither a val nor a test folder; an image folder data "
                    "set is DIR/train/<class>/<image> and DIR/val/<class>/<image> "
                    "(or DIR/test/...)", dir);
}

rn_status rn_dataset_load(rn_data_format format, const char *dir, int train,
                          const rn_dataset_options *options, rn_dataset *out)
{
    static const rn_dataset_options defaults = {0};
    char split[PATH_MAX];
    int length;

    memset(out, 0, sizeof *out);
    switch (format) {
    case RN_DATA_FORMAT_IDX:
        return rn_dataset_load_mnist(dir, train, out);
    case RN_DATA_FORMAT_CIFAR10:
        return rn_dataset_load_cifar10(dir, train, out);
    case RN_DATA_FORMAT_IMAGEFOLDER:
        if (train) {
            length = snprintf(split, sizeof split, "%s/train", dir);
            if (length < 0 || (size_t)length >= sizeof split)
                return rn_error(RN_ERR_INVALID, "data directory path is too long: %s", dir);
            if (access(split, F_OK) != 0)
                return rn_error(RN_ERR_IO, "%s not found; an image folder data set is "
                                "DIR/train/<class>/<image> and DIR/val/<class>/<image> "
                                "(or DIR/test/...)", split);
        } else {
            RN_TRY(find_test_split(dir, split, sizeof split));
        }
        return rn_dataset_load_imagefolder(split, options ? options : &defaults, out);
    }
    return rn_error(RN_ERR_INVALID, "invalid data format %d", (int)format);
}

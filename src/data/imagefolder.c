/* Image folder data sets: one folder of PNG or JPEG files per class, the
 * layout of torchvision's ImageFolder. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/status.h"
#include "data/dataset.h"
#include "data/image.h"

/* A growable, sortable list of malloc'ed strings. */
typedef struct name_list {
    char **names;
    int count, capacity;
} name_list;

static void name_list_free(name_list *list)
{
    for (int k = 0; k < list->count; k++)
        free(list->names[k]);
    free(list->names);
    memset(list, 0, sizeof *list);
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static rn_status name_list_add(name_list *list, const char *name)
{
    if (list->count == list->capacity) {
        int capacity = list->capacity ? 2 * list->capacity : 16;
        char **grown = realloc(list->names, (size_t)capacity * sizeof *grown);
        if (!grown)
            return rn_error(RN_ERR_NOMEM, "cannot allocate a list of %d names", capacity);
        list->names = grown;
        list->capacity = capacity;
    }
    if (!(list->names[list->count] = strdup(name)))
        return rn_error(RN_ERR_NOMEM, "cannot allocate the name '%s'", name);
    list->count++;
    return RN_OK;
}

/* Lists the entries of dir that are folders (folders nonzero) or regular
 * files (folders zero), following symbolic links, sorted by name. Hidden
 * entries (names starting with '.') are skipped. */
static rn_status list_entries(const char *dir, int folders, name_list *out)
{
    memset(out, 0, sizeof *out);
    DIR *stream = opendir(dir);
    if (!stream)
        return rn_error(RN_ERR_IO, "cannot open the folder %s: %s", dir, strerror(errno));

    rn_status status = RN_OK;
    struct dirent *entry;
    while (status == RN_OK && (entry = readdir(stream)) != NULL) {
        char path[PATH_MAX];
        struct stat info;
        if (entry->d_name[0] == '.')
            continue;
        int length = snprintf(path, sizeof path, "%s/%s", dir, entry->d_name);
        if (length < 0 || (size_t)length >= sizeof path) {
            status = rn_error(RN_ERR_INVALID, "path too long: %s/%s", dir, entry->d_name);
            break;
        }
        if (stat(path, &info) != 0) {
            status = rn_error(RN_ERR_IO, "cannot read %s: %s", path, strerror(errno));
            break;
        }
        if (folders ? S_ISDIR(info.st_mode) : S_ISREG(info.st_mode))
            status = name_list_add(out, entry->d_name);
    }
    closedir(stream);
    if (status != RN_OK) {
        name_list_free(out);
        return status;
    }
    if (out->count > 1)
        qsort(out->names, (size_t)out->count, sizeof out->names[0], compare_names);
    return RN_OK;
}

/* Label of a class folder: its index among the sorted folders, or its
 * index in the given class names. */
static rn_status class_label(const char *split, const char *folder, int folder_index,
                             const rn_dataset_options *options, int32_t *label)
{
    if (!options->class_names) {
        *label = folder_index;
        return RN_OK;
    }
    for (int k = 0; k < options->class_count; k++) {
        if (!strcmp(options->class_names[k], folder)) {
            *label = k;
            return RN_OK;
        }
    }
    return rn_error(RN_ERR_FORMAT, "%s/%s: the folder is not one of the %d classes the model "
                    "was trained on (first '%s', last '%s'); rename or remove it", split,
                    folder, options->class_count, options->class_names[0],
                    options->class_names[options->class_count - 1]);
}

/* Lists every image of the split with its label into out->paths and
 * out->labels, and sets the class names. */
static rn_status list_images(const char *split, const rn_dataset_options *options,
                             rn_dataset *out)
{
    name_list classes, files = {0};
    RN_TRY(list_entries(split, 1, &classes));
    rn_status status = RN_OK;
    int64_t capacity = 0;

    if (classes.count == 0)
        status = rn_error(RN_ERR_FORMAT, "%s contains no class folders; put the images of "
                          "each class in a folder named after the class: %s/<class>/<image>",
                          split, split);
    else if (classes.count == 1 && !options->class_names)
        status = rn_error(RN_ERR_FORMAT, "%s contains one class folder (%s); a classifier "
                          "needs at least 2, so add a folder for each other class",
                          split, classes.names[0]);
    for (int k = 0; k < classes.count && status == RN_OK; k++) {
        char folder[PATH_MAX];
        int32_t label = 0;
        snprintf(folder, sizeof folder, "%s/%s", split, classes.names[k]);
        status = class_label(split, classes.names[k], k, options, &label);
        if (status == RN_OK)
            status = list_entries(folder, 0, &files);
        if (status == RN_OK && files.count == 0)
            status = rn_error(RN_ERR_FORMAT, "class folder %s contains no image files; add "
                              "PNG or JPEG images to it or remove it", folder);
        if (status == RN_OK && out->count + files.count > capacity) {
            capacity = 2 * (out->count + files.count);
            char **paths = realloc(out->paths, (size_t)capacity * sizeof *paths);
            if (paths)
                out->paths = paths;
            int32_t *labels = realloc(out->labels, (size_t)capacity * sizeof *labels);
            if (labels)
                out->labels = labels;
            if (!paths || !labels)
                status = rn_error(RN_ERR_NOMEM, "cannot allocate a list of %" PRId64
                                  " images", capacity);
        }
        for (int f = 0; f < files.count && status == RN_OK; f++) {
            size_t length = strlen(folder) + strlen(files.names[f]) + 2;
            char *path = malloc(length);
            if (!path) {
                status = rn_error(RN_ERR_NOMEM, "cannot allocate an image path");
                break;
            }
            snprintf(path, length, "%s/%s", folder, files.names[f]);
            out->paths[out->count] = path;
            out->labels[out->count] = label;
            out->count++;
        }
        name_list_free(&files);
    }

    if (status == RN_OK) {
        if (options->class_names) {
            out->num_classes = options->class_count;
            status = rn_dataset_copy_class_names(out, options->class_names,
                                                 options->class_count);
        } else {
            out->num_classes = classes.count;
            status = rn_dataset_copy_class_names(out, (const char *const *)classes.names,
                                                 classes.count);
        }
    }
    name_list_free(&classes);
    return status;
}

/* What decoding one image found out. */
typedef struct image_summary {
    int channels, height, width;
    double sum[3], sum_squares[3]; /* of the pixel values 0 to 255, per own channel */
} image_summary;

static void summarize(const rn_image *image, image_summary *summary)
{
    size_t plane = (size_t)image->height * image->width;
    summary->channels = image->channels;
    summary->height = image->height;
    summary->width = image->width;
    for (int c = 0; c < image->channels; c++) {
        const uint8_t *pixels = image->pixels + c * plane;
        double sum = 0.0, sum_squares = 0.0;
        for (size_t p = 0; p < plane; p++) {
            sum += pixels[p];
            sum_squares += (double)pixels[p] * pixels[p];
        }
        summary->sum[c] = sum;
        summary->sum_squares[c] = sum_squares;
    }
}

/* Decodes every image once, on all OpenMP threads, to check it and learn
 * its size and channels. Fails with the message of the first failing image
 * in list order, so the error does not depend on thread timing. */
static rn_status decode_all(const rn_dataset *data, int channels, image_summary *summaries)
{
    int64_t first_failure = data->count;
    rn_status failure_status = RN_OK;
    char failure_message[1024] = "";

#pragma omp parallel for schedule(dynamic, 16)
    for (int64_t i = 0; i < data->count; i++) {
        rn_image image;
        rn_status status = rn_image_read(data->paths[i], channels, &image);
        if (status == RN_OK) {
            summarize(&image, &summaries[i]);
            rn_image_free(&image);
            continue;
        }
#pragma omp critical(rn_imagefolder_failure)
        if (i < first_failure) {
            first_failure = i;
            failure_status = status;
            snprintf(failure_message, sizeof failure_message, "%s", rn_last_error());
        }
    }
    if (failure_status != RN_OK)
        return rn_error(failure_status, "%s; remove the file or replace it with a readable "
                        "PNG or JPEG image", failure_message);
    return RN_OK;
}

/* Sets out's image size, or fails naming two files of different sizes
 * unless the images are resized later. */
static rn_status check_sizes(const rn_dataset *data, const image_summary *summaries,
                             int resized, int *height, int *width)
{
    *height = summaries[0].height;
    *width = summaries[0].width;
    for (int64_t i = 1; i < data->count; i++) {
        if (summaries[i].height == *height && summaries[i].width == *width)
            continue;
        if (resized) {
            *height = *width = 0;
            return RN_OK;
        }
        return rn_error(RN_ERR_FORMAT, "images differ in size: %s is %dx%d (HxW) but %s is "
                        "%dx%d; pass --resize SIZE or --resize HxW to resize every image "
                        "to one size", data->paths[0], summaries[0].height,
                        summaries[0].width, data->paths[i], summaries[i].height,
                        summaries[i].width);
    }
    return RN_OK;
}

/* Per-channel mean and standard deviation in [0, 1] units over all pixels,
 * with a grayscale image counting for each channel of an RGB set. */
static void compute_stats(rn_dataset *data, const image_summary *summaries)
{
    for (int c = 0; c < data->channels; c++) {
        double sum = 0.0, sum_squares = 0.0, pixels = 0.0;
        for (int64_t i = 0; i < data->count; i++) {
            int own = summaries[i].channels == 1 ? 0 : c;
            sum += summaries[i].sum[own];
            sum_squares += summaries[i].sum_squares[own];
            pixels += (double)summaries[i].height * summaries[i].width;
        }
        double mean = sum / pixels / 255.0;
        double variance = sum_squares / pixels / (255.0 * 255.0) - mean * mean;
        data->mean[c] = (float)mean;
        /* A constant channel would divide by zero; 1 leaves it centred. */
        data->std[c] = variance > 1e-12 ? (float)sqrt(variance) : 1.0f;
    }
    for (int c = data->channels; c < 3; c++) {
        data->mean[c] = data->mean[0];
        data->std[c] = data->std[0];
    }
}

rn_status rn_dataset_load_imagefolder(const char *dir, const rn_dataset_options *options,
                                      rn_dataset *out)
{
    memset(out, 0, sizeof *out);
    out->owns = 1;
    if (options->channels != 0 && options->channels != 1 && options->channels != 3)
        return rn_error(RN_ERR_INVALID, "invalid channel count %d for images; expected 1 or 3",
                        options->channels);

    rn_status status = list_images(dir, options, out);
    image_summary *summaries = NULL;
    if (status == RN_OK && !(summaries = calloc((size_t)out->count, sizeof *summaries)))
        status = rn_error(RN_ERR_NOMEM, "cannot allocate %" PRId64 " image summaries",
                          out->count);
    if (status == RN_OK)
        status = decode_all(out, options->channels, summaries);
    if (status == RN_OK)
        status = check_sizes(out, summaries, options->resized, &out->height, &out->width);
    if (status == RN_OK) {
        out->channels = options->channels;
        for (int64_t i = 0; i < out->count && out->channels == 0; i++)
            if (summaries[i].channels == 3)
                out->channels = 3;
        if (out->channels == 0)
            out->channels = 1;
        compute_stats(out, summaries);
    }
    free(summaries);
    if (status != RN_OK)
        rn_dataset_free(out);
    return status;
}

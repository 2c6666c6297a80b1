/* resnet predict */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "core/status.h"
#include "data/image.h"
#include "data/preprocess.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "io/weights.h"
#include "kernels/gemm.h"
#include "model/model.h"

static const char PREDICT_HELP[] =
    "usage: resnet predict --weights FILE [OPTIONS] IMAGE...\n"
    "\n"
    "Classify PNG and JPEG images: print the top-k classes of each with their\n"
    "softmax probabilities. IMAGE is a file, a folder (its .png, .jpg and .jpeg\n"
    "files, in subfolders too, sorted by path), or - to read paths from standard\n"
    "input, one per line. Images are converted to the model's channels, resized\n"
    "and normalized as the weights file's metadata says (the training resize and\n"
    "normalization; torchvision's ImageNet transform for resnet18 ... resnet152,\n"
    "resnext50_32x4d and wide_resnet50_2 files without it), and classified in\n"
    "batches.\n"
    "\n"
    "  --weights FILE        safetensors file (best.safetensors of a run, or a\n"
    "                        state_dict exported from PyTorch)\n"
    "  -k, --top-k K         classes to print per image (default 5)\n"
    "  --format FORMAT       text (default), csv (path,rank,class,name,probability)\n"
    "                        or json (one JSON object per line and image)\n"
    "  -b, --batch-size N    images per forward pass (default 64)\n"
    "  --threads N           OpenMP threads (0: all cores)\n"
    "for a weights file without resnet.c metadata:\n"
    "  --model NAME          architecture, such as resnet18 or resnet20\n"
    "  --input CxHxW         input size (default 3x224x224 for torchvision models)\n"
    "  --classes N           number of classes (default: rows of the last linear layer)\n"
    "  --class-names FILE    class names, one per line (default: the stored names,\n"
    "                        else the class numbers)\n"
    "\n"
    "A file that cannot be read or decoded is reported on standard error and\n"
    "skipped; the other images are still classified. Exit status: 0 if every\n"
    "image was classified, 1 if any failed or the weights cannot be loaded,\n"
    "2 for an invalid option.\n";

typedef enum output_format { FORMAT_TEXT, FORMAT_CSV, FORMAT_JSON } output_format;

typedef struct predict_options {
    const char *weights;
    const char *model;
    const char *class_names_path;
    int in_c, in_h, in_w; /* 0: from the file */
    int classes;          /* 0: from the file */
    int top_k;
    int batch_size;
    int threads;
    output_format format;
} predict_options;

/* A growable list of image paths. */
typedef struct path_list {
    char **paths;
    size_t count, capacity;
} path_list;

static int takes_value(const char *name)
{
    static const char *const valued[] = {
        "weights", "model", "input", "classes", "class-names", "top-k", "format",
        "batch-size", "threads", NULL,
    };
    static const char *const switches[] = {"help", NULL};
    return rn_args_classify(name, valued, switches);
}

/* ------------------------------------------------------------ image paths */

static int path_list_add(path_list *list, const char *path)
{
    if (list->count == list->capacity) {
        size_t capacity = list->capacity ? 2 * list->capacity : 64;
        char **grown = realloc(list->paths, capacity * sizeof *grown);
        if (!grown)
            return 0;
        list->paths = grown;
        list->capacity = capacity;
    }
    if (!(list->paths[list->count] = strdup(path)))
        return 0;
    list->count++;
    return 1;
}

static void path_list_free(path_list *list)
{
    for (size_t k = 0; k < list->count; k++)
        free(list->paths[k]);
    free(list->paths);
}

static int compare_paths(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends the PNG and JPEG files under dir (by extension, hidden entries
 * skipped) to list. Returns 0 after printing an error. */
static int add_folder(path_list *list, const char *dir)
{
    DIR *stream = opendir(dir);
    if (!stream) {
        fprintf(stderr, "resnet predict: error: cannot open the folder %s: %s\n", dir,
                strerror(errno));
        return 0;
    }
    struct dirent *entry;
    int ok = 1;
    while (ok && (entry = readdir(stream)) != NULL) {
        char path[4096];
        struct stat info;
        if (entry->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, entry->d_name);
        if (stat(path, &info) != 0)
            continue;
        if (S_ISDIR(info.st_mode))
            ok = add_folder(list, path);
        else if (S_ISREG(info.st_mode) && rn_image_has_extension(path))
            ok = path_list_add(list, path);
    }
    closedir(stream);
    return ok;
}

/* Expands one IMAGE argument. A folder's files are sorted by path. Returns
 * the number of problems reported. */
static int add_argument(path_list *list, const char *argument)
{
    struct stat info;
    if (!strcmp(argument, "-")) {
        char line[4096];
        int problems = 0;
        while (fgets(line, sizeof line, stdin)) {
            line[strcspn(line, "\r\n")] = '\0';
            if (line[0] && strcmp(line, "-") != 0)
                problems += add_argument(list, line);
        }
        return problems;
    }
    if (stat(argument, &info) == 0 && S_ISDIR(info.st_mode)) {
        size_t before = list->count;
        if (!add_folder(list, argument))
            return 1;
        qsort(list->paths + before, list->count - before, sizeof list->paths[0],
              compare_paths);
        if (list->count == before) {
            fprintf(stderr, "resnet predict: error: %s contains no .png, .jpg or .jpeg "
                    "files\n", argument);
            return 1;
        }
        return 0;
    }
    /* Files are decoded whatever their name, so a missing or non-image
     * file is reported when its batch is decoded. */
    return path_list_add(list, argument) ? 0 : 1;
}

/* ------------------------------------------------------------------ model */

/* The rows of the network's last linear layer: the 2-D tensor named
 * fc.weight in torchvision's models, or the only 2-D tensor otherwise. */
static int classes_from_tensors(const rn_safetensors *file)
{
    const rn_st_tensor *fc = rn_safetensors_find(file, "fc.weight");
    if (fc && fc->ndim == 2)
        return (int)fc->shape[0];
    int found = 0, rows = 0;
    for (int t = 0; t < file->count; t++) {
        if (file->tensors[t].ndim == 2) {
            found++;
            rows = (int)file->tensors[t].shape[0];
        }
    }
    return found == 1 ? rows : 0;
}

/* The architecture from the file's metadata, or from the options for a file
 * without it. Options that contradict the metadata are an error. */
static rn_status model_config(const rn_safetensors *file, const predict_options *o,
                              rn_model_config *mc)
{
    memset(mc, 0, sizeof *mc);
    if (rn_safetensors_metadata(file, "arch")) {
        RN_TRY(rn_weights_read_config(file, mc));
        if ((o->model && strcmp(o->model, mc->arch) != 0) ||
            (o->classes && o->classes != mc->classes) ||
            (o->in_c && (o->in_c != mc->in_c || o->in_h != mc->in_h || o->in_w != mc->in_w)))
            return rn_error(RN_ERR_INVALID, "%s records model %s with %d classes and input "
                            "%dx%dx%d; --model, --classes and --input are for files without "
                            "that metadata", file->path, mc->arch, mc->classes, mc->in_c,
                            mc->in_h, mc->in_w);
        return RN_OK;
    }

    if (!o->model)
        return rn_error(RN_ERR_INVALID, "%s has no resnet.c metadata (arch, input, classes), "
                        "as a state_dict exported from PyTorch; pass --model NAME, and "
                        "--input CxHxW unless it is a torchvision ImageNet model", file->path);
    if (strlen(o->model) >= sizeof mc->arch)
        return rn_error(RN_ERR_INVALID, "model name too long: '%s'", o->model);
    strcpy(mc->arch, o->model);
    mc->shortcut = RN_SHORTCUT_DEFAULT;
    if (o->in_c) {
        mc->in_c = o->in_c;
        mc->in_h = o->in_h;
        mc->in_w = o->in_w;
    } else if (rn_is_torchvision_arch(o->model)) {
        mc->in_c = 3;
        mc->in_h = mc->in_w = 224;
    } else {
        return rn_error(RN_ERR_INVALID, "%s has no metadata giving the input size of %s; "
                        "pass --input CxHxW, such as 3x32x32", file->path, o->model);
    }
    mc->classes = o->classes ? o->classes : classes_from_tensors(file);
    if (mc->classes < 1)
        return rn_error(RN_ERR_INVALID, "%s: cannot tell the number of classes from its "
                        "tensors; pass --classes N", file->path);
    return RN_OK;
}

/* Reads one class name per line; the file must have `classes` lines that
 * are not empty. */
static rn_status read_class_names_file(const char *path, int classes, char ***names)
{
    FILE *file = fopen(path, "r");
    char line[1024];
    int count = 0;
    rn_status status = RN_OK;

    if (!file)
        return rn_error(RN_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    *names = calloc((size_t)classes, sizeof **names);
    if (!*names) {
        fclose(file);
        return rn_error(RN_ERR_NOMEM, "cannot allocate %d class names", classes);
    }
    while (status == RN_OK && fgets(line, sizeof line, file)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0])
            continue;
        if (count == classes)
            status = rn_error(RN_ERR_FORMAT, "%s has more than the model's %d class names",
                              path, classes);
        else if (!((*names)[count++] = strdup(line)))
            status = rn_error(RN_ERR_NOMEM, "cannot allocate the class name '%s'", line);
    }
    fclose(file);
    if (status == RN_OK && count != classes)
        status = rn_error(RN_ERR_FORMAT, "%s has %d class names but the model has %d classes",
                          path, count, classes);
    if (status != RN_OK) {
        rn_class_names_free(*names, classes);
        *names = NULL;
    }
    return status;
}

/* ----------------------------------------------------------------- output */

/* Writes text as a CSV field, quoted when it contains a comma, a quote or
 * a line break. */
static void print_csv_field(const char *text)
{
    if (!text[strcspn(text, ",\"\r\n")]) {
        fputs(text, stdout);
        return;
    }
    putchar('"');
    for (const char *p = text; *p; p++) {
        if (*p == '"')
            putchar('"');
        putchar(*p);
    }
    putchar('"');
}

/* Prints text as a JSON string. JSON must be UTF-8, so a path that is not
 * (file names are bytes) prints with each byte above 0x7f replaced by '?'. */
static void print_json_string(const char *text)
{
    rn_strbuf buffer = {0};
    size_t length = strlen(text);
    if (rn_json_append_string(&buffer, text, length) != RN_OK) {
        char *ascii = strdup(text);
        buffer.length = 0;
        for (size_t i = 0; ascii && i < length; i++)
            if ((unsigned char)ascii[i] > 0x7f)
                ascii[i] = '?';
        if (!ascii || rn_json_append_string(&buffer, ascii, length) != RN_OK) {
            rn_strbuf_free(&buffer);
            buffer = (rn_strbuf){0};
            rn_json_append_string(&buffer, "?", 1);
        }
        free(ascii);
    }
    fwrite(buffer.data, 1, buffer.length, stdout);
    rn_strbuf_free(&buffer);
}

/* Prints the top k classes of one image from its logits. probabilities
 * and order are scratch arrays of `classes` elements. */
static void print_prediction(const predict_options *o, const char *path, const float *logits,
                             int classes, char **names, double *probabilities, int *order)
{
    double max = logits[0], sum = 0.0;
    int k = o->top_k < classes ? o->top_k : classes;

    /* Softmax in double, shifted by the maximum logit. */
    for (int c = 1; c < classes; c++)
        if (logits[c] > max)
            max = logits[c];
    for (int c = 0; c < classes; c++) {
        probabilities[c] = exp(logits[c] - max);
        sum += probabilities[c];
    }
    /* Selection of the k largest; ties keep the lower class first. */
    for (int c = 0; c < classes; c++)
        order[c] = c;
    for (int r = 0; r < k; r++) {
        int best = r;
        for (int c = r + 1; c < classes; c++)
            if (probabilities[order[c]] > probabilities[order[best]])
                best = c;
        int swap = order[r];
        order[r] = order[best];
        order[best] = swap;
    }

    if (o->format == FORMAT_TEXT)
        printf("%s\n", path);
    if (o->format == FORMAT_JSON) {
        fputs("{\"path\": ", stdout);
        print_json_string(path);
        fputs(", \"predictions\": [", stdout);
    }
    for (int r = 0; r < k; r++) {
        int c = order[r];
        double p = probabilities[c] / sum;
        switch (o->format) {
        case FORMAT_TEXT:
            printf("  %7.3f%%  %s (%d)\n", 100.0 * p, names[c], c);
            break;
        case FORMAT_CSV:
            print_csv_field(path);
            printf(",%d,%d,", r + 1, c);
            print_csv_field(names[c]);
            printf(",%.6f\n", p);
            break;
        case FORMAT_JSON:
            printf("%s{\"class\": %d, \"name\": ", r ? ", " : "", c);
            print_json_string(names[c]);
            printf(", \"probability\": %.6f}", p);
            break;
        }
    }
    if (o->format == FORMAT_JSON)
        fputs("]}\n", stdout);
}

/* ---------------------------------------------------------------- batches */

/* Decodes and preprocesses images[first .. first + n) on all threads into
 * batch rows, then classifies the ones that decoded and prints every
 * result in order. Failures are printed to standard error. Returns the
 * number of failed images. */
static int classify_batch(const predict_options *o, char **paths, int n, rn_model *model,
                          rn_plan *plan, const rn_preprocess *preprocess, char **names,
                          float *batch, double *probabilities, int *order)
{
    const rn_model_config *mc = &model->config;
    size_t sample_numel = (size_t)mc->in_c * mc->in_h * mc->in_w;
    int ok[n], row[n];
    char *errors[n];

#pragma omp parallel for schedule(dynamic)
    for (int i = 0; i < n; i++) {
        rn_image image;
        rn_status status = rn_image_read(paths[i], mc->in_c, &image);
        if (status == RN_OK)
            status = rn_error_prefix(rn_preprocess_image(preprocess, &image,
                                                         batch + (size_t)i * sample_numel),
                                     "%s: ", paths[i]);
        rn_image_free(&image);
        ok[i] = status == RN_OK;
        errors[i] = ok[i] ? NULL : strdup(rn_last_error());
    }

    /* Move the decoded rows together, keeping their order. */
    int rows = 0, failed = 0;
    for (int i = 0; i < n; i++) {
        if (!ok[i])
            continue;
        if (rows != i)
            memmove(batch + (size_t)rows * sample_numel, batch + (size_t)i * sample_numel,
                    sample_numel * sizeof(float));
        row[i] = rows++;
    }
    const float *logits = rows > 0 ? rn_model_forward(model, plan, batch, rows, 0) : NULL;

    for (int i = 0; i < n; i++) {
        if (ok[i]) {
            print_prediction(o, paths[i], logits + (size_t)row[i] * mc->classes, mc->classes,
                             names, probabilities, order);
            continue;
        }
        fflush(stdout);
        fprintf(stderr, "resnet predict: error: %s; skipped\n",
                errors[i] ? errors[i] : paths[i]);
        free(errors[i]);
        failed++;
    }
    fflush(stdout);
    return failed;
}

/* ------------------------------------------------------------------- main */

/* Parses the options and expands the IMAGE arguments. Returns -1 to go on,
 * or the exit status: 0 after printing the help, 2 for an invalid option. */
static int parse_options(int argc, char **argv, predict_options *o, path_list *images,
                         int *problems)
{
    static const char *const shorts[] = {"b", "batch-size", "k", "top-k", "h", "help", NULL};
    rn_args args = {argc, argv, 0, "predict"};
    const char *name, *value;
    int r = 1;

    while (args.index < argc) {
        const char *arg = argv[args.index];
        if (arg[0] != '-' || !strcmp(arg, "-")) {
            *problems += add_argument(images, arg);
            args.index++;
            continue;
        }
        if ((r = rn_args_next(&args, shorts, takes_value, &name, &value)) <= 0)
            break;

        char *end;
        long number = 0;
        if (value)
            number = strtol(value, &end, 10);
        int valid_number = value && end != value && !*end;
        if (!strcmp(name, "help")) {
            fputs(PREDICT_HELP, stdout);
            return RN_EXIT_OK;
        } else if (!strcmp(name, "weights")) {
            o->weights = value;
        } else if (!strcmp(name, "model")) {
            o->model = value;
        } else if (!strcmp(name, "class-names")) {
            o->class_names_path = value;
        } else if (!strcmp(name, "input")) {
            if (!rn_parse_shape(value, &o->in_c, &o->in_h, &o->in_w))
                return rn_usage_error("predict", "invalid --input '%s': expected CxHxW, such "
                                      "as 3x224x224", value);
        } else if (!strcmp(name, "classes")) {
            if (!valid_number || number < 1 || number > 1000000)
                return rn_usage_error("predict", "invalid --classes '%s': expected 1 to "
                                      "1000000", value);
            o->classes = (int)number;
        } else if (!strcmp(name, "top-k")) {
            if (!valid_number || number < 1 || number > 1000000)
                return rn_usage_error("predict", "invalid --top-k '%s': expected a positive "
                                      "integer", value);
            o->top_k = (int)number;
        } else if (!strcmp(name, "batch-size")) {
            if (!valid_number || number < 1 || number > 4096)
                return rn_usage_error("predict", "invalid batch size '%s': expected 1 to "
                                      "4096", value);
            o->batch_size = (int)number;
        } else if (!strcmp(name, "threads")) {
            if (!valid_number || number < 0 || number > 4096)
                return rn_usage_error("predict", "invalid --threads '%s'", value);
            o->threads = (int)number;
        } else if (!strcmp(name, "format")) {
            if (!strcmp(value, "text"))
                o->format = FORMAT_TEXT;
            else if (!strcmp(value, "csv"))
                o->format = FORMAT_CSV;
            else if (!strcmp(value, "json"))
                o->format = FORMAT_JSON;
            else
                return rn_usage_error("predict", "invalid --format '%s': expected text, csv "
                                      "or json", value);
        }
    }
    if (r < 0)
        return RN_EXIT_USAGE;
    if (!o->weights)
        return rn_usage_error("predict", "--weights FILE is required");
    if (images->count == 0 && *problems == 0)
        return rn_usage_error("predict", "no images given: pass PNG or JPEG files, folders, "
                              "or - to read paths from standard input");
    return -1;
}

int cmd_predict(int argc, char **argv)
{
    predict_options o = {.top_k = 5, .batch_size = 64, .format = FORMAT_TEXT};
    path_list images = {0};
    int problems = 0;

    int code = parse_options(argc, argv, &o, &images, &problems);
    if (code >= 0) {
        path_list_free(&images);
        return code;
    }

    rn_threads_set(o.threads);
    rn_safetensors file = {0};
    rn_model_config mc = {0};
    rn_model *model = NULL;
    rn_plan *plan = NULL;
    rn_preprocess preprocess;
    char **names = NULL;
    float *batch = NULL;
    double *probabilities = NULL;
    int *order = NULL;
    int mb = o.batch_size < (int)images.count ? o.batch_size : (int)images.count;
    if (mb < 1)
        mb = 1;

    rn_status status = rn_safetensors_read(o.weights, &file);
    if (status == RN_OK)
        status = model_config(&file, &o, &mc);
    if (status == RN_OK)
        status = rn_preprocess_from_metadata(&file, &mc, &preprocess);
    if (status == RN_OK)
        status = o.class_names_path
                     ? read_class_names_file(o.class_names_path, mc.classes, &names)
                     : rn_weights_read_class_names(&file, mc.classes, &names);
    if (status == RN_OK) {
        status = rn_model_create(&mc, &model);
        /* Without --model the architecture came from the file, so the file is
         * malformed (exit 1) rather than an option invalid (exit 2). */
        if (status == RN_ERR_INVALID && !o.model)
            status = RN_ERR_FORMAT;
        status = rn_error_prefix(status, "%s: cannot build model %s: ", o.weights, mc.arch);
    }
    if (status == RN_OK)
        status = rn_weights_apply(model, NULL, &file);
    if (status == RN_OK)
        status = rn_plan_create_inference(model, mb, &plan);
    if (status == RN_OK &&
        !(batch = rn_alloc_aligned((size_t)mb * mc.in_c * mc.in_h * mc.in_w * sizeof(float))))
        status = rn_error(RN_ERR_NOMEM, "cannot allocate a batch of %d images", mb);
    if (status == RN_OK && (!(probabilities = malloc((size_t)mc.classes * sizeof *probabilities)) ||
                            !(order = malloc((size_t)mc.classes * sizeof *order))))
        status = rn_error(RN_ERR_NOMEM, "cannot allocate the scores of %d classes", mc.classes);
    rn_safetensors_free(&file);

    if (status != RN_OK) {
        code = rn_report_failure("predict", status);
    } else {
        if (o.format == FORMAT_CSV)
            printf("path,rank,class,name,probability\n");
        for (size_t first = 0; first < images.count; first += (size_t)mb) {
            int n = images.count - first < (size_t)mb ? (int)(images.count - first) : mb;
            problems += classify_batch(&o, images.paths + first, n, model, plan, &preprocess,
                                       names, batch, probabilities, order);
        }
        code = problems ? RN_EXIT_FAILURE : RN_EXIT_OK;
    }

    rn_free_aligned(batch);
    free(probabilities);
    free(order);
    rn_class_names_free(names, mc.classes);
    rn_plan_destroy(plan);
    rn_model_destroy(model);
    path_list_free(&images);
    return code;
}

/* resnet eval */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/status.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "data/preprocess.h"
#include "io/safetensors.h"
#include "io/weights.h"
#include "kernels/gemm.h"
#include "model/model.h"
#include "train/evaluate.h"

static const char EVAL_HELP[] =
    "usage: resnet eval --weights FILE [OPTIONS]\n"
    "\n"
    "Evaluate a weights file (best.safetensors or last.safetensors of a run) on\n"
    "the test set: top-1 accuracy, per-class accuracy and the confusion matrix.\n"
    "The architecture and preprocessing come from the file's metadata.\n"
    "\n"
    "  --weights FILE      safetensors file written by resnet train\n"
    "  --data DIR          directory of the data set (default\n"
    "                      /usr/share/datasets/fashion-mnist)\n"
    "  --data-format F     idx: t10k-images-idx3-ubyte[.gz] and labels (the default)\n"
    "                      imagefolder: DIR/val/<class>/<image> (or DIR/test/...), with\n"
    "                      folders named as the classes stored in the weights file\n"
    "                      cifar10: test_batch.bin\n"
    "  -b, --batch-size N  images per batch (default 256); results do not depend on it\n"
    "  --test-limit N      evaluate the first N test images only (0: all)\n"
    "  --probs N           also print the softmax probabilities of the first N test\n"
    "                      images beside their predicted and true class\n"
    "  --threads N         OpenMP threads (0: all cores)\n";

static int takes_value(const char *name)
{
    static const char *const valued[] = {"weights", "data", "data-format", "batch-size",
                                         "test-limit", "probs", "threads", NULL};
    static const char *const switches[] = {"help", NULL};
    return rn_args_classify(name, valued, switches);
}

/* Print softmax(logits) of the first `count` images of the loader's first
 * epoch. The network outputs logits, so the probabilities are computed here
 * with a stable softmax that subtracts the largest logit before exp. Their
 * arg-max is the arg-max of the logits because exp is increasing. */
static rn_status print_probabilities(rn_model *model, rn_plan *plan, rn_loader *loader,
                                     int64_t count, char **names)
{
    int classes = model->config.classes, n;
    const float *images;
    const int32_t *labels;
    int64_t done = 0;
    double *p = malloc(classes * sizeof(double));
    if (!p)
        return rn_error(RN_ERR_NOMEM, "out of memory");

    printf("\nsoftmax probabilities of the first %lld test images (columns: classes 0 to %d):"
           "\n%5s  %-12s %-12s %7s ", (long long)count, classes - 1, "image", "true",
           "predicted", "p(pred)");
    for (int k = 0; k < classes; k++)
        printf(" %6d", k);
    printf("\n");
    rn_status status = rn_loader_start_epoch(loader, 0);
    while (status == RN_OK && done < count && rn_loader_next(loader, &images, &labels, &n) > 0) {
        const float *logits = rn_model_forward(model, plan, images, n, 0);
        for (int i = 0; i < n && done < count; i++, done++) {
            const float *z = logits + (size_t)i * classes;
            double max = z[0], sum = 0.0;
            int best = 0;
            for (int k = 1; k < classes; k++)
                if (z[k] > max) {
                    max = z[k];
                    best = k;
                }
            for (int k = 0; k < classes; k++)
                sum += p[k] = exp(z[k] - max);
            printf("%5lld  %-12.12s %-12.12s %7.4f ", (long long)done, names[labels[i]],
                   names[best], p[best] / sum);
            for (int k = 0; k < classes; k++)
                printf(" %6.4f", p[k] / sum);
            printf("\n");
        }
    }
    free(p);
    return status;
}

int cmd_eval(int argc, char **argv)
{
    static const char *const shorts[] = {"b", "batch-size", "h", "help", NULL};
    rn_args args = {argc, argv, 0, "eval"};
    const char *name, *value, *weights = NULL, *data_dir = RN_FASHION_MNIST_DIR;
    int r, mb = 256, threads = 0;
    long long limit = 0, probs = 0;
    rn_data_format format = RN_DATA_FORMAT_IDX;

    while ((r = rn_args_next(&args, shorts, takes_value, &name, &value)) > 0) {
        char *end;
        if (!strcmp(name, "help")) {
            fputs(EVAL_HELP, stdout);
            return RN_EXIT_OK;
        } else if (!strcmp(name, "weights")) {
            weights = value;
        } else if (!strcmp(name, "data")) {
            data_dir = value;
        } else if (!strcmp(name, "data-format")) {
            if (rn_data_format_parse(value, &format) != RN_OK)
                return rn_usage_error("eval", "%s", rn_last_error());
        } else if (!strcmp(name, "batch-size")) {
            mb = (int)strtol(value, &end, 10);
            if (end == value || *end || mb < 1 || mb > 65536)
                return rn_usage_error("eval", "invalid batch size '%s': expected 1 to 65536", value);
        } else if (!strcmp(name, "test-limit")) {
            limit = strtoll(value, &end, 10);
            if (end == value || *end || limit < 0)
                return rn_usage_error("eval", "invalid --test-limit '%s'", value);
        } else if (!strcmp(name, "probs")) {
            probs = strtoll(value, &end, 10);
            if (end == value || *end || probs < 1)
                return rn_usage_error("eval", "invalid --probs '%s': expected a number of "
                                      "images, at least 1", value);
        } else if (!strcmp(name, "threads")) {
            threads = (int)strtol(value, &end, 10);
            if (end == value || *end || threads < 0 || threads > 4096)
                return rn_usage_error("eval", "invalid --threads '%s'", value);
        } else {
            return rn_usage_error("eval", "unknown option '--%s'", name);
        }
    }
    if (r < 0)
        return RN_EXIT_USAGE;
    if (!weights)
        return rn_usage_error("eval", "--weights FILE is required");
    if (format != RN_DATA_FORMAT_IDX && !strcmp(data_dir, RN_FASHION_MNIST_DIR))
        return rn_usage_error("eval", "--data-format %s needs --data DIR, the folder of the "
                              "data set", rn_data_format_name(format));

    rn_threads_set(threads);
    rn_safetensors file = {0};
    rn_dataset test = {0}, view = {0};
    rn_model *model = NULL;
    rn_plan *plan = NULL;
    rn_loader *loader = NULL;
    rn_model_config mc = {0};
    rn_preprocess preprocess;
    char **names = NULL;
    int64_t *confusion = NULL;
    int exit_code = RN_EXIT_FAILURE;

    rn_status status = rn_safetensors_read(weights, &file);
    if (status == RN_OK)
        status = rn_weights_read_config(&file, &mc);
    if (status == RN_OK)
        status = rn_preprocess_from_metadata(&file, &mc, &preprocess);
    if (status == RN_OK)
        status = rn_weights_read_class_names(&file, mc.classes, &names);
    if (status == RN_OK) {
        status = rn_model_create(&mc, &model);
        if (status == RN_ERR_INVALID) /* the file is malformed, not an option */
            status = RN_ERR_FORMAT;
        status = rn_error_prefix(status, "%s: the metadata describes no valid model: ",
                                 weights);
    }
    if (status == RN_OK)
        status = rn_weights_apply(model, NULL, &file);
    if (status == RN_OK) {
        /* Image folders map their folder names to the stored class names. */
        rn_dataset_options options = {
            .channels = mc.in_c, .class_names = (const char *const *)names,
            .class_count = mc.classes, .resized = preprocess.augment.resize_h > 0,
        };
        status = rn_dataset_load(format, data_dir, 0, &options, &test);
    }
    if (status == RN_OK)
        status = rn_dataset_slice(&test, 0, limit > 0 && limit < test.count ? limit : test.count,
                                  &view);
    if (status == RN_OK) {
        int h, w;
        rn_augment_output_size(&preprocess.augment, view.height, view.width, &h, &w);
        if (view.channels != mc.in_c || h != mc.in_h || w != mc.in_w)
            status = rn_error(RN_ERR_FORMAT, "%s expects %dx%dx%d inputs, but the data in %s "
                              "gives %dx%dx%d after preprocessing; `resnet predict` resizes "
                              "and crops images of other sizes", weights, mc.in_c, mc.in_h,
                              mc.in_w, data_dir, view.channels, h, w);
        else if (view.num_classes != mc.classes)
            status = rn_error(RN_ERR_FORMAT, "%s has %d classes, the data set %d", weights,
                              mc.classes, view.num_classes);
    }
    if (status == RN_OK) {
        rn_loader_config lc = {.batch_size = mb, .augment = preprocess.augment};
        status = rn_loader_create(&view, &lc, &loader);
    }
    if (status == RN_OK)
        status = rn_plan_create_inference(model, mb, &plan);
    if (status == RN_OK && !(confusion = calloc((size_t)mc.classes * mc.classes, sizeof(int64_t))))
        status = rn_error(RN_ERR_NOMEM, "out of memory");
    rn_eval_result result;
    if (status == RN_OK)
        status = rn_evaluate(model, plan, loader, 0, &result, confusion);
    if (status != RN_OK) {
        exit_code = rn_report_failure("eval", status == RN_ERR_INVALID ? RN_ERR_FORMAT : status);
        goto done;
    }

    printf("%s: %s, %lld test images from %s\n", weights, mc.arch, (long long)result.count,
           data_dir);
    printf("top-1 accuracy: %.2f%% (%lld of %lld), loss %.4f\n",
           100.0 * result.correct / result.count, (long long)result.correct,
           (long long)result.count, result.loss);
    printf("\nper-class accuracy:\n");
    for (int k = 0; k < mc.classes; k++) {
        int64_t total = 0;
        for (int j = 0; j < mc.classes; j++)
            total += confusion[(size_t)k * mc.classes + j];
        printf("  %-12s %6.2f%%  (%lld of %lld)\n", names[k],
               total ? 100.0 * confusion[(size_t)k * mc.classes + k] / total : 0.0,
               (long long)confusion[(size_t)k * mc.classes + k], (long long)total);
    }
    printf("\nconfusion matrix (rows: true class, columns: predicted class):\n%-12s", "");
    for (int j = 0; j < mc.classes; j++)
        printf(" %5d", j);
    printf("\n");
    for (int k = 0; k < mc.classes; k++) {
        printf("%d %-10.10s", k, names[k]);
        for (int j = 0; j < mc.classes; j++)
            printf(" %5lld", (long long)confusion[(size_t)k * mc.classes + j]);
        printf("\n");
    }
    if (probs > 0) {
        status = print_probabilities(model, plan, loader, probs, names);
        if (status != RN_OK) {
            exit_code = rn_report_failure("eval", status);
            goto done;
        }
    }
    exit_code = RN_EXIT_OK;

done:
    rn_class_names_free(names, mc.classes);
    free(confusion);
    rn_loader_destroy(loader);
    rn_plan_destroy(plan);
    rn_model_destroy(model);
    rn_dataset_free(&view);
    rn_dataset_free(&test);
    rn_safetensors_free(&file);
    return exit_code;
}

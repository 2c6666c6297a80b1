/* Shared pieces of the experiments. */
#include "experiments/common.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/status.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "io/file.h"
#include "io/safetensors.h"
#include "io/weights.h"

void exp_log(const rn_experiment_options *o, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    if (!o->log)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    o->log(o->log_ctx, line);
}

int exp_stopped(const rn_experiment_options *o)
{
    return o->stop && *o->stop;
}

rn_status exp_prepare_out(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *entry;
        int empty = 1;
        while ((entry = readdir(d)) != NULL)
            if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, ".."))
                empty = 0;
        closedir(d);
        if (!empty)
            return rn_error(RN_ERR_INVALID, "output directory %s already contains files; "
                            "choose another --out or remove it", dir);
    } else if (errno != ENOENT) {
        return rn_error(RN_ERR_IO, "cannot open output directory %s: %s", dir,
                        strerror(errno));
    }
    return rn_mkdir_p(dir);
}

rn_status exp_write(const char *out_dir, const char *name, const rn_strbuf *text)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/%s", out_dir, name);
    const void *chunks[1] = {text->data};
    size_t sizes[1] = {text->length};
    return rn_file_write_atomic(path, chunks, sizes, 1);
}

int64_t exp_pick(int64_t override, int64_t value)
{
    return override > 0 ? override : value;
}

int exp_depths(const rn_experiment_options *o, const int *defaults, int default_count,
               int *depths)
{
    const int *from = o->depth_count > 0 ? o->depths : defaults;
    int count = o->depth_count > 0 ? o->depth_count : default_count;
    memcpy(depths, from, count * sizeof(int));
    return count;
}

void exp_count_text(char *buf, size_t size, int64_t count)
{
    if (count > 0)
        snprintf(buf, size, "%lld", (long long)count);
    else
        snprintf(buf, size, "all");
}

void exp_arch(char *buf, size_t size, const char *family, int depth, int no_bn)
{
    snprintf(buf, size, "%s%d%s", family, depth, no_bn ? "-nobn" : "");
}

void exp_train_config(const rn_experiment_options *o, rn_train_config *c, const char *model,
                      int epochs, int64_t train_limit, int64_t test_limit, const char *name)
{
    rn_train_config_default(c);
    snprintf(c->model, sizeof c->model, "%s", model);
    snprintf(c->data_dir, sizeof c->data_dir, "%s", o->data_dir);
    snprintf(c->output_dir, sizeof c->output_dir, "%s/runs/%s", o->out_dir, name);
    c->epochs = epochs;
    c->schedule.epochs = epochs;
    /* The default warm-up of half an epoch, shortened for one-epoch runs. */
    if (c->schedule.warmup_epochs >= epochs)
        c->schedule.warmup_epochs = 0.2 * epochs;
    c->train_limit = train_limit;
    c->test_limit = test_limit;
    c->threads = o->threads;
    c->seed = o->seed;
    if (o->batch_size > 0)
        c->batch_size = o->batch_size;
}

/* ------------------------------------------------------- training runs */

typedef struct train_context {
    const rn_experiment_options *options;
    const exp_init *init;
    const char *label;
    exp_run *run;
    uint64_t seed;
} train_context;

static void on_epoch(void *ctx, const rn_epoch_metrics *m)
{
    train_context *t = ctx;
    exp_run *run = t->run;
    if (run->epoch_count < EXP_EPOCHS_MAX)
        run->epochs[run->epoch_count++] = *m;
    exp_log(t->options, "%s: epoch %d: train error %.2f%%, test error %.2f%% (%.0f s)",
            t->label, m->epoch + 1, 100.0 * (1.0 - m->train_accuracy),
            100.0 * (1.0 - m->test_accuracy), m->train_seconds + m->eval_seconds);
}

static void on_model(void *ctx, rn_model *model)
{
    train_context *t = ctx;
    if (t->init && t->init->use_init)
        exp_init_model(model, t->init->init, t->seed);
}

rn_status exp_train(const rn_experiment_options *o, const rn_train_config *c,
                    const exp_init *init, const char *label, exp_run *run)
{
    train_context ctx = {o, init, label, run, c->seed};
    rn_train_events events = {.ctx = &ctx, .on_epoch = on_epoch, .on_model = on_model};
    rn_train_result result;

    memset(run, 0, sizeof *run);
    exp_log(o, "%s: training %d epochs on %lld images", label, c->epochs,
            (long long)c->train_limit);
    rn_status status = rn_train_run(c, NULL, &events, o->stop, &result);
    if (status == RN_ERR_NUMERIC) {
        exp_log(o, "%s: diverged: %s", label, rn_last_error());
        run->diverged = 1;
        return RN_OK;
    }
    return status;
}

/* --------------------------------------------------------- measurements */

rn_status exp_fixed_batch(const rn_experiment_options *o, int train_set, int mb,
                          float **images, int32_t **labels, int *c, int *h, int *w)
{
    rn_train_config recipe;
    rn_dataset data = {0}, view = {0};
    rn_loader *loader = NULL;
    const float *batch_images;
    const int32_t *batch_labels;
    int n = 0;

    *images = NULL;
    *labels = NULL;
    rn_train_config_default(&recipe);
    RN_TRY(rn_dataset_load_mnist(o->data_dir, train_set, &data));
    rn_status status = rn_dataset_slice(&data, 0, mb < data.count ? mb : data.count, &view);
    rn_loader_config lc = {.batch_size = mb, .train = 0, .augment = recipe.augment};
    if (recipe.normalize_auto) { /* the data set's own mean and std, as training uses */
        memcpy(lc.augment.mean, data.mean, sizeof lc.augment.mean);
        memcpy(lc.augment.std, data.std, sizeof lc.augment.std);
    }
    if (status == RN_OK)
        status = rn_loader_create(&view, &lc, &loader);
    if (status == RN_OK)
        status = rn_loader_start_epoch(loader, 0);
    if (status == RN_OK) {
        int got = rn_loader_next(loader, &batch_images, &batch_labels, &n);
        if (got < 0)
            status = rn_loader_error(loader);
        else if (got == 0)
            status = rn_error(RN_ERR_FORMAT, "%s: the data set is empty", o->data_dir);
    }
    if (status == RN_OK && n != mb)
        status = rn_error(RN_ERR_INVALID, "%s has only %d images, the measurement needs %d",
                          o->data_dir, n, mb);
    if (status == RN_OK) {
        rn_loader_sample_shape(loader, c, h, w);
        size_t numel = (size_t)mb * *c * *h * *w;
        *images = malloc(numel * sizeof(float));
        *labels = malloc(mb * sizeof(int32_t));
        if (!*images || !*labels) {
            status = rn_error(RN_ERR_NOMEM, "out of memory for the measurement batch");
        } else {
            memcpy(*images, batch_images, numel * sizeof(float));
            memcpy(*labels, batch_labels, mb * sizeof(int32_t));
        }
    }
    if (status != RN_OK) {
        free(*images);
        free(*labels);
        *images = NULL;
        *labels = NULL;
    }
    rn_loader_destroy(loader);
    rn_dataset_free(&view);
    rn_dataset_free(&data);
    return status;
}

void exp_init_model(rn_model *model, rn_init init, uint64_t seed)
{
    rn_model_init(model, init, 0, seed);
    /* Zero biases, as He et al. (2015) initialize them in "Delving Deep into
     * Rectifiers", so that they do not hide how the signal scales. */
    for (int p = 0; p < model->param_count; p++) {
        const rn_tensor_entry *e = &model->params[p];
        if (e->role == RN_ROLE_CONV_BIAS)
            memset(model->param_data + e->offset, 0, e->numel * sizeof(float));
    }
    rn_model_weights_changed(model);
}

rn_status exp_model(const char *arch, int c, int h, int w, const rn_experiment_options *o,
                    const exp_init *init, const char *run_dir, rn_model **out)
{
    rn_model_config mc = {.in_c = c, .in_h = h, .in_w = w, .classes = 10,
                          .shortcut = RN_SHORTCUT_DEFAULT};
    snprintf(mc.arch, sizeof mc.arch, "%s", arch);
    RN_TRY(rn_model_create(&mc, out));
    if (!run_dir) {
        if (init && init->use_init)
            exp_init_model(*out, init->init, o->seed);
        else
            rn_model_init(*out, RN_INIT_KAIMING, 0, o->seed);
        return RN_OK;
    }

    char path[1100];
    rn_safetensors file;
    snprintf(path, sizeof path, "%s/last.safetensors", run_dir);
    rn_status status = rn_safetensors_read(path, &file);
    if (status == RN_OK) {
        status = rn_weights_apply(*out, NULL, &file);
        rn_safetensors_free(&file);
    }
    if (status != RN_OK) {
        rn_model_destroy(*out);
        *out = NULL;
    }
    return status;
}

static size_t value_numel(const rn_model *model, int mb, int v)
{
    const rn_value *value = &model->values[v];
    return (size_t)mb * value->c * value->h * value->w;
}

double exp_value_std(const rn_model *model, const rn_plan *plan, int mb, int v)
{
    const float *x = rn_plan_value(plan, v);
    size_t n = value_numel(model, mb, v);
    double sum = 0.0, sum_sq = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += x[i];
    double mean = sum / n;
    for (size_t i = 0; i < n; i++)
        sum_sq += (x[i] - mean) * (x[i] - mean);
    return sqrt(sum_sq / n);
}

double exp_value_norm(const rn_model *model, const rn_plan *plan, int mb, int v)
{
    const float *x = rn_plan_value(plan, v);
    size_t n = value_numel(model, mb, v);
    double sum_sq = 0.0;
    for (size_t i = 0; i < n; i++)
        sum_sq += (double)x[i] * x[i];
    return sqrt(sum_sq);
}

int exp_reader(const rn_model *model, int v)
{
    for (int i = 0; i < model->node_count; i++)
        if (model->nodes[i].src == v || model->nodes[i].src2 == v)
            return i;
    return -1;
}

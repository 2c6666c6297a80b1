/* The training loop and its run directory. */
#include "train/trainer.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/status.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "io/file.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "io/weights.h"
#include "kernels/gemm.h"
#include "layers/layers.h"
#include "model/model.h"
#include "report/run_report.h"
#include "train/evaluate.h"
#include "train/sgd.h"

/* Position of a run, saved in checkpoints so that a resumed run continues
 * exactly where this one stopped. */
typedef struct train_position {
    int epoch;                /* current epoch, 0-based */
    int64_t batch;            /* batches already done in this epoch */
    int64_t step;             /* optimizer steps since the start */
    double epoch_loss_sum;    /* sum over the epoch's images of their loss */
    int64_t epoch_correct;
    int64_t epoch_seen;
    double epoch_seconds;     /* training time spent in this epoch so far */
    double best_test_accuracy;
    double total_train_seconds;
    int64_t total_train_images;
} train_position;

typedef struct trainer {
    const rn_train_config *config;
    char config_text[4096];
    rn_dataset train_full, test_full, train, test;
    rn_augment augment; /* config->augment with the data set's mean and std under auto */
    rn_loader *train_loader, *test_loader;
    rn_model *model;
    rn_plan *plan;
    rn_sgd sgd;
    float *diff_logits;
    rn_metadata *meta;
    char last_path[1100], best_path[1100], metrics_path[1100], args_path[1100];
} trainer;

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* ----------------------------------------------------------- checkpoints */

static void describe_preprocessing(const trainer *t, rn_metadata *meta)
{
    const rn_augment *aug = &t->augment;
    char *const *names = t->train.class_names;
    rn_strbuf json = {0};

    rn_metadata_set(meta, "dataset", "%s", t->config->data_format == RN_DATA_FORMAT_IDX
                                               ? "mnist-idx"
                                               : rn_data_format_name(t->config->data_format));
    if (aug->normalize)
        rn_metadata_set(meta, "normalize", "%.9g,%.9g,%.9g,%.9g,%.9g,%.9g",
                        aug->mean[0], aug->mean[1], aug->mean[2],
                        aug->std[0], aug->std[1], aug->std[2]);
    else
        rn_metadata_set(meta, "normalize", "none");
    if (aug->resize_h)
        rn_metadata_set(meta, "resize", "%dx%d", aug->resize_h, aug->resize_w);
    else
        rn_metadata_set(meta, "resize", "none");

    /* Class names as a JSON array. */
    rn_strbuf_append(&json, "[", 1);
    for (int k = 0; names && k < t->train.num_classes; k++) {
        if (k)
            rn_strbuf_append(&json, ",", 1);
        rn_json_append_string(&json, names[k], strlen(names[k]));
    }
    rn_strbuf_append(&json, "]", 1);
    rn_metadata_set(meta, "class_names", "%s", json.data ? json.data : "[]");
    rn_strbuf_free(&json);
}

static rn_status save_checkpoint(trainer *t, const train_position *pos)
{
    rn_metadata *meta = t->meta;
    meta->count = 0;
    describe_preprocessing(t, meta);
    rn_metadata_set(meta, "checkpoint", "1");
    rn_metadata_set(meta, "args", "%s", t->config_text);
    rn_metadata_set(meta, "epoch", "%d", pos->epoch);
    rn_metadata_set(meta, "batch", "%lld", (long long)pos->batch);
    rn_metadata_set(meta, "step", "%lld", (long long)pos->step);
    rn_metadata_set(meta, "momentum_initialized", "%d", t->sgd.momentum_initialized);
    rn_metadata_set(meta, "epoch_loss_sum", "%.17g", pos->epoch_loss_sum);
    rn_metadata_set(meta, "epoch_correct", "%lld", (long long)pos->epoch_correct);
    rn_metadata_set(meta, "epoch_seen", "%lld", (long long)pos->epoch_seen);
    rn_metadata_set(meta, "epoch_seconds", "%.17g", pos->epoch_seconds);
    rn_metadata_set(meta, "best_test_accuracy", "%.17g", pos->best_test_accuracy);
    rn_metadata_set(meta, "total_train_seconds", "%.17g", pos->total_train_seconds);
    rn_metadata_set(meta, "total_train_images", "%lld", (long long)pos->total_train_images);
    return rn_weights_save(t->model, &t->sgd, meta, t->last_path);
}

static rn_status save_best(trainer *t, const rn_epoch_metrics *m)
{
    rn_metadata *meta = t->meta;
    meta->count = 0;
    describe_preprocessing(t, meta);
    rn_metadata_set(meta, "epoch", "%d", m->epoch + 1);
    rn_metadata_set(meta, "test_accuracy", "%.6f", m->test_accuracy);
    return rn_weights_save(t->model, NULL, meta, t->best_path);
}

static rn_status meta_number(const rn_safetensors *file, const char *key, double *out)
{
    const char *text = rn_safetensors_metadata(file, key);
    char *end;
    if (!text)
        return rn_error(RN_ERR_FORMAT, "%s: checkpoint metadata '%s' is missing; is this a "
                        "last.safetensors written by `resnet train`?", file->path, key);
    *out = strtod(text, &end);
    if (end == text || *end || !isfinite(*out))
        return rn_error(RN_ERR_FORMAT, "%s: checkpoint metadata '%s' is '%s', expected a "
                        "number", file->path, key, text);
    return RN_OK;
}

static rn_status load_checkpoint(trainer *t, const char *path, train_position *pos)
{
    rn_safetensors file;
    rn_status status;
    double v[11];
    static const char *keys[11] = {
        "epoch", "batch", "step", "momentum_initialized", "epoch_loss_sum",
        "epoch_correct", "epoch_seen", "epoch_seconds", "best_test_accuracy",
        "total_train_seconds", "total_train_images",
    };

    status = rn_safetensors_read(path, &file);
    if (status != RN_OK)
        return status;
    if (!rn_safetensors_metadata(&file, "checkpoint")) {
        status = rn_error(RN_ERR_FORMAT, "%s is a weights file, not a training checkpoint; "
                          "resume from the run's last.safetensors", path);
        goto done;
    }
    for (int k = 0; k < 11 && status == RN_OK; k++)
        status = meta_number(&file, keys[k], &v[k]);
    if (status == RN_OK)
        status = rn_weights_apply(t->model, &t->sgd, &file);
    if (status != RN_OK)
        goto done;
    pos->epoch = (int)v[0];
    pos->batch = (int64_t)v[1];
    pos->step = (int64_t)v[2];
    t->sgd.momentum_initialized = (int)v[3];
    pos->epoch_loss_sum = v[4];
    pos->epoch_correct = (int64_t)v[5];
    pos->epoch_seen = (int64_t)v[6];
    pos->epoch_seconds = v[7];
    pos->best_test_accuracy = v[8];
    pos->total_train_seconds = v[9];
    pos->total_train_images = (int64_t)v[10];
    if (pos->batch < 0 || pos->batch > rn_loader_batches_per_epoch(t->train_loader))
        status = rn_error(RN_ERR_FORMAT, "%s: checkpoint batch %lld is outside the epoch of "
                          "%lld batches; was the batch size or --train-limit changed?", path,
                          (long long)pos->batch,
                          (long long)rn_loader_batches_per_epoch(t->train_loader));
done:
    rn_safetensors_free(&file);
    return status;
}

rn_status rn_checkpoint_read_args(const char *path, char **args)
{
    rn_safetensors file;
    RN_TRY(rn_safetensors_read(path, &file));
    const char *text = rn_safetensors_metadata(&file, "args");
    rn_status status = RN_OK;
    *args = NULL;
    if (!text || !rn_safetensors_metadata(&file, "checkpoint"))
        status = rn_error(RN_ERR_FORMAT, "%s is not a training checkpoint (no 'args' "
                          "metadata); resume from the run's last.safetensors", path);
    else if (!(*args = strdup(text)))
        status = rn_error(RN_ERR_NOMEM, "out of memory reading %s", path);
    rn_safetensors_free(&file);
    return status;
}

/* --------------------------------------------------------------- metrics */

static const char METRICS_HEADER[] =
    "epoch,lr,train_loss,train_acc,test_loss,test_acc,train_seconds,eval_seconds,"
    "images_per_sec\n";

/* Keep the header and the rows of epochs before `epochs_done`, so that a
 * resumed run does not repeat rows of epochs it trains again. */
static rn_status prepare_metrics(const char *path, int epochs_done)
{
    void *data = NULL;
    size_t nbytes = 0;
    rn_strbuf kept = {0};
    rn_status status;

    if (access(path, F_OK) != 0 || epochs_done == 0) {
        const void *chunks[1] = {METRICS_HEADER};
        size_t sizes[1] = {sizeof METRICS_HEADER - 1};
        return rn_file_write_atomic(path, chunks, sizes, 1);
    }
    RN_TRY(rn_file_read_all(path, &data, &nbytes));
    status = rn_strbuf_append(&kept, METRICS_HEADER, sizeof METRICS_HEADER - 1);
    const char *line = memchr(data, '\n', nbytes);
    line = line ? line + 1 : (const char *)data + nbytes;
    while (status == RN_OK && line < (const char *)data + nbytes) {
        const char *end = memchr(line, '\n', (const char *)data + nbytes - line);
        size_t len = end ? (size_t)(end - line) + 1 : (size_t)((const char *)data + nbytes - line);
        if (atoi(line) >= 1 && atoi(line) <= epochs_done)
            status = rn_strbuf_append(&kept, line, len);
        line += len;
    }
    if (status == RN_OK) {
        const void *chunks[1] = {kept.data};
        size_t sizes[1] = {kept.length};
        status = rn_file_write_atomic(path, chunks, sizes, 1);
    }
    rn_strbuf_free(&kept);
    rn_free_aligned(data);
    return status;
}

static rn_status append_metrics(const char *path, const rn_epoch_metrics *m)
{
    FILE *f = fopen(path, "a");
    if (!f)
        return rn_error(RN_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    fprintf(f, "%d,%.6g,%.6f,%.6f,%.6f,%.6f,%.3f,%.3f,%.1f\n", m->epoch + 1, m->lr,
            m->train_loss, m->train_accuracy, m->test_loss, m->test_accuracy,
            m->train_seconds, m->eval_seconds, m->images_per_sec);
    int failed = fflush(f) != 0 || fsync(fileno(f)) != 0;
    failed |= fclose(f) != 0;
    if (failed)
        return rn_error(RN_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    return RN_OK;
}

/* ----------------------------------------------------------------- setup */

static rn_status load_data(trainer *t)
{
    const rn_train_config *c = t->config;
    rn_dataset_options options = {.resized = c->augment.resize_h > 0};
    RN_TRY(rn_dataset_load(c->data_format, c->data_dir, 1, &options, &t->train_full));
    /* The test split takes the training split's channels and classes. */
    options.channels = t->train_full.channels;
    options.class_names = (const char *const *)t->train_full.class_names;
    options.class_count = t->train_full.num_classes;
    RN_TRY(rn_dataset_load(c->data_format, c->data_dir, 0, &options, &t->test_full));
    t->augment = c->augment;
    if (c->normalize_auto) {
        memcpy(t->augment.mean, t->train_full.mean, sizeof t->augment.mean);
        memcpy(t->augment.std, t->train_full.std, sizeof t->augment.std);
    }
    int64_t train_count = t->train_full.count, test_count = t->test_full.count;
    if (c->train_limit > 0 && c->train_limit < train_count)
        train_count = c->train_limit;
    if (c->test_limit > 0 && c->test_limit < test_count)
        test_count = c->test_limit;
    RN_TRY(rn_dataset_slice(&t->train_full, 0, train_count, &t->train));
    RN_TRY(rn_dataset_slice(&t->test_full, 0, test_count, &t->test));
    if (t->train.channels != t->test.channels ||
        (!c->augment.resize_h &&
         (t->train.height != t->test.height || t->train.width != t->test.width)))
        return rn_error(RN_ERR_FORMAT, "%s: training images are %dx%dx%d but test images "
                        "are %dx%dx%d; both sets must have the same image size",
                        c->data_dir, t->train.channels, t->train.height, t->train.width,
                        t->test.channels, t->test.height, t->test.width);
    if (t->train.num_classes != t->test.num_classes)
        return rn_error(RN_ERR_FORMAT, "%s: the training set has %d classes, the test set %d",
                        c->data_dir, t->train.num_classes, t->test.num_classes);

    rn_loader_config train_cfg = {
        .batch_size = c->batch_size, .shuffle = 1, .drop_last = 0, .train = 1,
        .augment = t->augment, .seed = c->seed,
    };
    rn_loader_config test_cfg = {
        .batch_size = c->eval_batch_size, .shuffle = 0, .train = 0,
        .augment = t->augment, .seed = c->seed,
    };
    RN_TRY(rn_loader_create(&t->train, &train_cfg, &t->train_loader));
    RN_TRY(rn_loader_create(&t->test, &test_cfg, &t->test_loader));
    return RN_OK;
}

static rn_status build_model(trainer *t)
{
    const rn_train_config *c = t->config;
    rn_model_config mc = {.classes = t->train.num_classes, .shortcut = c->shortcut,
                          .stride_in_1x1 = c->stride_in_1x1};
    snprintf(mc.arch, sizeof mc.arch, "%s", c->model);
    rn_loader_sample_shape(t->train_loader, &mc.in_c, &mc.in_h, &mc.in_w);
    RN_TRY(rn_model_create(&mc, &t->model));
    rn_model_init(t->model, c->init, c->zero_init_residual, c->seed);
    if (!rn_sgd_init(&t->sgd, &c->sgd, t->model->param_numel))
        return rn_error(RN_ERR_NOMEM, "out of memory for the optimizer state");
    /* No batch contains more images than its data set. */
    int64_t train_mb = c->batch_size < t->train.count ? c->batch_size : t->train.count;
    int64_t eval_mb = c->eval_batch_size < t->test.count ? c->eval_batch_size : t->test.count;
    int mb = (int)(train_mb > eval_mb ? train_mb : eval_mb);
    RN_TRY(rn_plan_create(t->model, mb, &t->plan));
    t->diff_logits = rn_alloc_aligned((size_t)mb * t->model->config.classes * sizeof(float));
    if (!t->diff_logits)
        return rn_error(RN_ERR_NOMEM, "out of memory for the logits gradient");
    return RN_OK;
}

static rn_status prepare_output(trainer *t)
{
    const char *dir = t->config->output_dir;
    RN_ASSERT(dir[0]);
    RN_TRY(rn_mkdir_p(dir));
    snprintf(t->last_path, sizeof t->last_path, "%s/last.safetensors", dir);
    snprintf(t->best_path, sizeof t->best_path, "%s/best.safetensors", dir);
    snprintf(t->metrics_path, sizeof t->metrics_path, "%s/metrics.csv", dir);
    snprintf(t->args_path, sizeof t->args_path, "%s/args", dir);
    const void *chunks[1] = {t->config_text};
    size_t sizes[1] = {strlen(t->config_text)};
    return rn_file_write_atomic(t->args_path, chunks, sizes, 1);
}

static void trainer_free(trainer *t)
{
    rn_loader_destroy(t->train_loader);
    rn_loader_destroy(t->test_loader);
    rn_dataset_free(&t->train);
    rn_dataset_free(&t->test);
    rn_dataset_free(&t->train_full);
    rn_dataset_free(&t->test_full);
    rn_plan_destroy(t->plan);
    rn_model_destroy(t->model);
    rn_sgd_free(&t->sgd);
    rn_free_aligned(t->diff_logits);
    free(t->meta);
}

/* ------------------------------------------------------------------ loop */

static rn_status train_epoch(trainer *t, train_position *pos, const rn_train_events *ev,
                             volatile sig_atomic_t *stop, double *last_lr)
{
    const rn_train_config *c = t->config;
    int64_t batches = rn_loader_batches_per_epoch(t->train_loader);
    const float *images;
    const int32_t *labels;
    int n, got;
    double started = now_seconds() - pos->epoch_seconds;

    RN_TRY(rn_loader_start_epoch_at(t->train_loader, pos->epoch, pos->batch));
    while ((c->max_steps == 0 || pos->step < c->max_steps) &&
           (got = rn_loader_next(t->train_loader, &images, &labels, &n)) != 0) {
        if (got < 0)
            return rn_loader_error(t->train_loader);
        double lr = rn_schedule_lr_at_step(&c->schedule,
                                           pos->epoch + (double)pos->batch / batches, pos->step);
        int correct;

        const float *logits = rn_model_forward(t->model, t->plan, images, n, 1);
        double loss = rn_cross_entropy(t->diff_logits, &correct, logits, labels, n,
                                       t->model->config.classes, c->label_smoothing);
        if (!isfinite(loss))
            return rn_error(RN_ERR_NUMERIC, "the loss became %s at epoch %d, step %lld "
                            "(batch %lld of %lld); stopped, %s is the last good checkpoint "
                            "(try a lower --lr)", isnan(loss) ? "NaN" : "infinite",
                            pos->epoch + 1, (long long)pos->step + 1,
                            (long long)pos->batch + 1, (long long)batches, t->last_path);
        rn_model_zero_grad(t->model);
        rn_model_backward(t->model, t->plan, t->diff_logits);
        rn_sgd_step(&t->sgd, t->model->param_data, t->model->grad_data, (float)lr);
        rn_model_weights_changed(t->model);

        pos->batch++;
        pos->step++;
        pos->epoch_loss_sum += loss * n;
        pos->epoch_correct += correct;
        pos->epoch_seen += n;
        pos->epoch_seconds = now_seconds() - started;
        *last_lr = lr;

        if (ev && ev->on_batch) {
            double per_batch = pos->epoch_seconds / (pos->batch > 0 ? pos->batch : 1);
            rn_batch_progress p = {
                .epoch = pos->epoch, .epochs = c->epochs, .batch = pos->batch,
                .batches = batches, .loss = pos->epoch_loss_sum / pos->epoch_seen,
                .accuracy = (double)pos->epoch_correct / pos->epoch_seen, .lr = lr,
                .images_per_sec = pos->epoch_seen / (pos->epoch_seconds > 0 ? pos->epoch_seconds : 1e-9),
                .eta_seconds = per_batch * (batches - pos->batch),
            };
            ev->on_batch(ev->ctx, &p);
        }
        if (stop && *stop && pos->batch < batches) {
            RN_TRY(save_checkpoint(t, pos));
            return rn_error(RN_ERR_INTERRUPTED, "interrupted at epoch %d, batch %lld of %lld; "
                            "checkpoint written to %s", pos->epoch + 1,
                            (long long)pos->batch, (long long)batches, t->last_path);
        }
    }
    return RN_OK;
}

rn_status rn_train_run(const rn_train_config *config, const char *resume_path,
                       const rn_train_events *ev, volatile sig_atomic_t *stop,
                       rn_train_result *result)
{
    trainer t = {.config = config};
    train_position pos = {0};
    rn_status status;

    memset(result, 0, sizeof *result);
    RN_TRY(rn_train_config_validate(config));
    rn_threads_set(config->threads);
    rn_precision precision = rn_conv_set_precision(config->bf16 ? RN_PRECISION_BF16
                                                                : RN_PRECISION_FP32);
    rn_train_config_format(config, t.config_text, sizeof t.config_text);
    t.meta = calloc(1, sizeof *t.meta);
    if (!t.meta)
        return rn_error(RN_ERR_NOMEM, "out of memory");

    status = load_data(&t);
    if (status == RN_OK)
        status = build_model(&t);
    if (status == RN_OK)
        status = prepare_output(&t);
    if (status == RN_OK && ev && ev->on_model)
        ev->on_model(ev->ctx, t.model);
    if (status == RN_OK && resume_path)
        status = rn_error_prefix(load_checkpoint(&t, resume_path, &pos), "resuming: ");
    if (status == RN_OK && resume_path && pos.epoch >= config->epochs)
        status = rn_error(RN_ERR_INVALID, "%s has already completed %d of %d epochs; pass a "
                          "larger --epochs to train further", resume_path, pos.epoch,
                          config->epochs);
    if (status == RN_OK && resume_path && config->max_steps > 0 && pos.step >= config->max_steps)
        status = rn_error(RN_ERR_INVALID, "%s has already completed %lld of %lld steps; pass "
                          "a larger --max-steps to train further", resume_path,
                          (long long)pos.step, (long long)config->max_steps);
    if (status == RN_OK)
        status = prepare_metrics(t.metrics_path, pos.epoch);
    if (status != RN_OK)
        goto done;

    if (ev && ev->on_start) {
        int64_t parameters = 0;
        for (int p = 0; p < t.model->param_count; p++)
            parameters += (int64_t)t.model->params[p].numel;
        rn_train_info info = {
            .config = config, .config_text = t.config_text, .train_count = t.train.count,
            .test_count = t.test.count, .in_c = t.model->config.in_c,
            .in_h = t.model->config.in_h, .in_w = t.model->config.in_w,
            .parameters = parameters, .start_epoch = pos.epoch, .start_batch = pos.batch,
            .resumed_from = resume_path,
        };
        ev->on_start(ev->ctx, &info);
    }

    while (pos.epoch < config->epochs) {
        rn_epoch_metrics m = {.epoch = pos.epoch};
        double wait_before = rn_loader_wait_seconds(t.train_loader);
        status = train_epoch(&t, &pos, ev, stop, &m.lr);
        if (status != RN_OK)
            goto done;
        m.data_wait_seconds = rn_loader_wait_seconds(t.train_loader) - wait_before;

        double eval_start = now_seconds();
        rn_eval_result eval;
        status = rn_evaluate(t.model, t.plan, t.test_loader, 0, &eval, NULL);
        if (status != RN_OK)
            goto done;
        m.eval_seconds = now_seconds() - eval_start;
        m.train_seconds = pos.epoch_seconds;
        m.train_loss = pos.epoch_seen ? pos.epoch_loss_sum / pos.epoch_seen : 0.0;
        m.train_accuracy = pos.epoch_seen ? (double)pos.epoch_correct / pos.epoch_seen : 0.0;
        m.test_loss = eval.loss;
        if (!isfinite(eval.loss)) {
            status = rn_error(RN_ERR_NUMERIC, "the test loss became %s after epoch %d: the "
                              "network diverged; stopped, %s is the last good checkpoint "
                              "(try a lower --lr)", isnan(eval.loss) ? "NaN" : "infinite",
                              pos.epoch + 1, t.last_path);
            goto done;
        }
        m.test_accuracy = eval.count ? (double)eval.correct / eval.count : 0.0;
        m.images_per_sec = pos.epoch_seen / (pos.epoch_seconds > 0 ? pos.epoch_seconds : 1e-9);
        m.is_best = m.test_accuracy > pos.best_test_accuracy || pos.epoch == 0;

        pos.total_train_seconds += pos.epoch_seconds;
        pos.total_train_images += pos.epoch_seen;
        result->train_loss = m.train_loss;
        result->train_accuracy = m.train_accuracy;
        result->test_accuracy = m.test_accuracy;

        /* The metrics row first, then the checkpoint: a crash between the
         * two repeats this epoch on resume, and prepare_metrics drops the
         * row again. */
        status = append_metrics(t.metrics_path, &m);
        if (status == RN_OK)
            status = rn_run_report_write(config->output_dir, t.config_text);
        if (status == RN_OK && m.is_best) {
            pos.best_test_accuracy = m.test_accuracy;
            status = save_best(&t, &m);
        }
        pos.epoch++;
        pos.batch = 0;
        pos.epoch_loss_sum = 0.0;
        pos.epoch_correct = pos.epoch_seen = 0;
        pos.epoch_seconds = 0.0;
        if (status == RN_OK)
            status = save_checkpoint(&t, &pos);
        if (status != RN_OK)
            goto done;
        if (ev && ev->on_epoch)
            ev->on_epoch(ev->ctx, &m);
        if (config->max_steps > 0 && pos.step >= config->max_steps)
            break;
        if (stop && *stop && pos.epoch < config->epochs) {
            status = rn_error(RN_ERR_INTERRUPTED, "interrupted after epoch %d; checkpoint "
                              "written to %s", pos.epoch, t.last_path);
            goto done;
        }
    }

done:
    result->epochs_done = pos.epoch;
    result->best_test_accuracy = pos.best_test_accuracy;
    result->seconds = pos.total_train_seconds;
    result->examples_per_sec = pos.total_train_seconds > 0
                                   ? pos.total_train_images / pos.total_train_seconds : 0.0;
    trainer_free(&t);
    rn_conv_set_precision(precision);
    return status;
}

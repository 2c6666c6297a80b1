/* The training loop: data, model, optimizer, schedule, evaluation after
 * every epoch, metrics and checkpoints in a run directory. */
#ifndef RN_TRAIN_TRAINER_H
#define RN_TRAIN_TRAINER_H

#include <signal.h>
#include <stdint.h>

#include "train/config.h"

typedef struct rn_batch_progress {
    int epoch, epochs;      /* 0-based epoch, total epochs */
    int64_t batch, batches; /* batches done in this epoch (1-based), per epoch */
    double loss, accuracy;  /* running means over the epoch so far */
    double lr;
    double images_per_sec;  /* training throughput over the epoch so far */
    double eta_seconds;     /* until the end of this epoch's training */
} rn_batch_progress;

typedef struct rn_epoch_metrics {
    int epoch; /* 0-based */
    double lr; /* at the last step of the epoch */
    double train_loss, train_accuracy;
    double test_loss, test_accuracy;
    double train_seconds, eval_seconds;
    double data_wait_seconds; /* of train_seconds, spent waiting for the loader's batches */
    double images_per_sec;
    int is_best;
} rn_epoch_metrics;

/* What a run is about to do, for printing before the first step. */
typedef struct rn_train_info {
    const rn_train_config *config;
    const char *config_text; /* the resolved configuration, key=value lines */
    int64_t train_count, test_count;
    int in_c, in_h, in_w;
    int64_t parameters;
    int start_epoch;
    int64_t start_batch;
    const char *resumed_from; /* NULL unless resuming */
} rn_train_info;

typedef struct rn_train_events {
    void *ctx;
    void (*on_start)(void *ctx, const rn_train_info *info);
    void (*on_batch)(void *ctx, const rn_batch_progress *progress);
    void (*on_epoch)(void *ctx, const rn_epoch_metrics *metrics);
    /* Optional: called once the model is built and initialized from the
     * configuration, before a checkpoint is restored and before the first
     * step. Experiments use it to initialize the model another way. */
    void (*on_model)(void *ctx, rn_model *model);
} rn_train_events;

typedef struct rn_train_result {
    int epochs_done;
    double train_loss, train_accuracy, test_accuracy, best_test_accuracy;
    double examples_per_sec; /* training images per second of training time */
    double seconds;
} rn_train_result;

/* Train as configured, writing into config->output_dir (which must be set).
 * After every epoch it appends a row to metrics.csv and redraws curves.svg
 * and report.html from that file.
 * With resume_path, continue the run saved in that checkpoint; the caller
 * has already restored the configuration from it. Checks *stop after every
 * step: when set, writes a checkpoint of the current position and returns
 * RN_ERR_INTERRUPTED. A NaN or infinite loss returns RN_ERR_NUMERIC naming
 * the epoch and step, and leaves the last checkpoint untouched. */
rn_status rn_train_run(const rn_train_config *config, const char *resume_path,
                       const rn_train_events *events, volatile sig_atomic_t *stop,
                       rn_train_result *result);

/* Read the configuration text stored in a checkpoint ("args" metadata) into
 * a malloc'ed string. */
rn_status rn_checkpoint_read_args(const char *path, char **args);

#endif

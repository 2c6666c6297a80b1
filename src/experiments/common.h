/* Pieces shared by the experiments: output files, training runs through
 * the trainer, a fixed measurement batch and per-layer statistics. */
#ifndef RN_EXPERIMENTS_COMMON_H
#define RN_EXPERIMENTS_COMMON_H

#include "experiments/experiments.h"
#include "io/json.h"
#include "train/config.h"
#include "train/trainer.h"

enum { EXP_EPOCHS_MAX = 512 };

/* Print a progress line through options->log. */
void exp_log(const rn_experiment_options *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Create the output directory; an existing non-empty one is rejected so
 * that an experiment never mixes its files with an older run's. */
rn_status exp_prepare_out(const char *dir);

/* Write text to out_dir/name atomically. */
rn_status exp_write(const char *out_dir, const char *name, const rn_strbuf *text);

/* The override when set, else the budget's value. */
int64_t exp_pick(int64_t override, int64_t value);

/* Depths from the options, or the defaults; returns the count. */
int exp_depths(const rn_experiment_options *o, const int *defaults, int default_count,
               int *depths);

/* A training configuration: the default recipe on the given subsets,
 * writing into out_dir/runs/name. A train_limit or test_limit of 0 means
 * the whole set. */
void exp_train_config(const rn_experiment_options *o, rn_train_config *c, const char *model,
                      int epochs, int64_t train_limit, int64_t test_limit, const char *name);

/* The metrics of one training run. */
typedef struct exp_run {
    rn_epoch_metrics epochs[EXP_EPOCHS_MAX];
    int epoch_count;
    int diverged; /* the loss became NaN or infinite; the run stopped there */
} exp_run;

/* How a run initializes its model: as configured (use_init 0), or with
 * `init` and, for networks without BN, zero convolution biases. */
typedef struct exp_init {
    int use_init;
    rn_init init;
} exp_init;

/* Train through the trainer. A diverged run returns RN_OK with
 * run->diverged set; Ctrl-C returns RN_ERR_INTERRUPTED. */
rn_status exp_train(const rn_experiment_options *o, const rn_train_config *c,
                    const exp_init *init, const char *label, exp_run *run);

/* The first mb images of the training set (or the test set), preprocessed
 * as the default recipe evaluates them (normalized, no random flip), with
 * their labels. Free both with free(). */
rn_status exp_fixed_batch(const rn_experiment_options *o, int train_set, int mb,
                          float **images, int32_t **labels, int *c, int *h, int *w);

/* Create the model `arch` for 10 classes and c x h x w inputs. Its weights
 * come from the run's last.safetensors when run_dir is not NULL, else from
 * `init` (or the default Kaiming initialization) with the options' seed. */
rn_status exp_model(const char *arch, int c, int h, int w, const rn_experiment_options *o,
                    const exp_init *init, const char *run_dir, rn_model **out);

/* Initialize the model with `init` and zero its convolution biases. */
void exp_init_model(rn_model *model, rn_init init, uint64_t seed);

/* Standard deviation over all elements of value v of the last forward pass. */
double exp_value_std(const rn_model *model, const rn_plan *plan, int mb, int v);
/* Euclidean norm over all elements of value v of the last forward pass. */
double exp_value_norm(const rn_model *model, const rn_plan *plan, int mb, int v);

/* The node that reads value v first, or -1. */
int exp_reader(const rn_model *model, int v);

/* Whether a run is stopped by Ctrl-C. */
int exp_stopped(const rn_experiment_options *o);

/* "10000", or "all" for a count of 0 (the whole set). */
void exp_count_text(char *buf, size_t size, int64_t count);

/* "plain56" or "plain56-nobn". */
void exp_arch(char *buf, size_t size, const char *family, int depth, int no_bn);

#endif

/* The resolved configuration of a training run.
 *
 * Every setting has a key: the command-line flag without its dashes, such
 * as "lr" or "batch-size". One parser serves the command line, the `args`
 * file of a run directory and the copy stored in a checkpoint. So a resumed
 * run rebuilds exactly the configuration it was started with. */
#ifndef RN_TRAIN_CONFIG_H
#define RN_TRAIN_CONFIG_H

#include <stdint.h>

#include "data/augment.h"
#include "data/dataset.h"
#include "model/model.h"
#include "train/schedule.h"
#include "train/sgd.h"

typedef struct rn_train_config {
    char model[32];
    rn_shortcut shortcut;
    char data_dir[512];
    rn_data_format data_format;
    int batch_size;
    int eval_batch_size;
    int epochs;
    int64_t max_steps; /* stop after this many optimizer steps; 0: run every epoch */
    rn_schedule schedule; /* lr, warm-up and decay; epochs mirrors `epochs` */
    rn_sgd_config sgd;
    float label_smoothing;
    rn_init init;
    int zero_init_residual;
    int stride_in_1x1; /* rn_model_config.stride_in_1x1 */
    uint64_t seed;
    int threads; /* 0: all cores */
    int bf16;    /* --precision bf16: BF16 inputs to the convolutions' products */
    rn_augment augment;
    int normalize_auto; /* take augment's mean and std from the training set's statistics */
    int64_t train_limit; /* use only the first N training images; 0: all */
    int64_t test_limit;
    char output_dir[512];
} rn_train_config;

/* The default recipe: resnet20 on Fashion-MNIST, tuned for a 2-core CPU. */
void rn_train_config_default(rn_train_config *config);

/* The setup of Dive into Deep Learning's ResNet chapter: d2l-resnet18,
 * resize to 96x96, batch 256, lr 0.05, 10 epochs, plain SGD, Xavier
 * initialization, no normalization and no augmentation. */
void rn_train_config_d2l(rn_train_config *config);

/* The CIFAR-10 recipe of He et al. (2015), section 4.2: resnet20 on the
 * CIFAR-10 binary files, batch 128, SGD with momentum 0.9 and weight
 * decay 1e-4, lr 0.1 divided by 10 after 32k and 48k steps, stopping at
 * 64k steps (164 epochs of 391 batches), 4-pixel padding with random crops
 * and flips, normalization by CIFAR-10's mean and std. */
void rn_train_config_he2015(rn_train_config *config);

/* Set one key from its text value; RN_ERR_INVALID names the key, the value
 * and what is accepted. */
rn_status rn_train_config_set(rn_train_config *config, const char *key, const char *value);

/* Check the combination of settings (after all keys are set). */
rn_status rn_train_config_validate(const rn_train_config *config);

/* Write all settings as "key=value" lines into buf; returns the length
 * needed, as snprintf does. */
int rn_train_config_format(const rn_train_config *config, char *buf, int size);

/* Apply "key=value" lines, as written by rn_train_config_format. */
rn_status rn_train_config_parse(rn_train_config *config, const char *text);

/* Whether a key may differ when resuming a checkpoint (epochs, threads,
 * data, precision, output-dir, eval-batch-size); all other keys come from
 * the checkpoint. */
int rn_train_config_resumable_override(const char *key);

#endif

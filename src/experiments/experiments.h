/* Experiments that measure why residual learning works, each writing CSV
 * files, SVG plots and summary.txt into an output directory.
 *
 * Every experiment has a default budget sized for about 15 minutes on the
 * 2-core machine of docs/benchmarks.md (training subsets, few epochs) and a
 * full budget (the whole data set and the default recipe's 8 epochs). The
 * overrides in rn_experiment_options shrink them further for tests. */
#ifndef RN_EXPERIMENTS_H
#define RN_EXPERIMENTS_H

#include <signal.h>
#include <stdint.h>

#include "io/json.h"
#include "model/model.h"
#include "resnet.h"

enum { RN_EXPERIMENT_DEPTHS_MAX = 8 };

typedef struct rn_experiment_options {
    const char *out_dir;  /* created; must not exist or be empty */
    const char *data_dir; /* Fashion-MNIST (or MNIST) IDX files */
    int full;             /* the full budget instead of the default one */
    int threads;          /* 0: all cores */
    uint64_t seed;
    int no_bn;            /* gradients: networks without batch normalization */
    /* Overrides of the budget; 0 keeps the experiment's value. */
    int epochs;
    int64_t train_limit, test_limit;
    int batch_size;
    int steps;            /* gradients: training steps between the measurements */
    int depths[RN_EXPERIMENT_DEPTHS_MAX];
    int depth_count;
    volatile sig_atomic_t *stop; /* checked between and inside training runs */
    void (*log)(void *ctx, const char *line); /* progress lines, without '\n' */
    void *log_ctx;
} rn_experiment_options;

/* plain and residual nets of two depths (20 and 56) trained with one
 * recipe: training and test error per epoch, as in Figure 6 of He et al.
 * (2015), "Deep Residual Learning for Image Recognition". */
rn_status rn_experiment_degradation(const rn_experiment_options *options);

/* Norm of each convolution's weight gradient at initialization and after
 * a few hundred steps, and the standard deviation of each 3x3 layer's
 * response (after BN, before the addition and the ReLU) as in Figure 7. */
rn_status rn_experiment_gradients(const rn_experiment_options *options);

/* Kaiming fan_in, Kaiming fan_out and Xavier initialization, with and
 * without BN, on a deep plain and a deep residual net: activation standard
 * deviation per layer at initialization, and training curves. */
rn_status rn_experiment_init(const rn_experiment_options *options);

/* Zero-initialized residual branches compute the identity bit for bit, and
 * the ratio ||F(x)|| / ||x|| of every block after training. */
rn_status rn_experiment_identity(const rn_experiment_options *options);

/* ------------------------------------------------- identity measurements */

/* Compare, bit for bit, the output of every residual block (the ReLU after
 * its addition) with the identity or option-A shortcut branch of that
 * addition, after the last forward pass of mb images through a plan from
 * rn_plan_create_keeping_values. Returns the number of blocks and sets
 * *exact to the number whose output equals that branch. */
int rn_identity_blocks_exact(const rn_model *model, const rn_plan *plan, int mb, int *exact);

/* Compute the stem-plus-head function of a CIFAR residual net with option-A
 * shortcuts from the last forward pass of mb images: the stem output (the
 * first ReLU), put through every option-A shortcut, global average pooling
 * and the classifier. Writes (mb, classes) logits to out. This is the
 * function the net computes when every residual branch outputs zero.
 * RN_ERR_INVALID if the net has projection shortcuts. */
rn_status rn_identity_stem_head(const rn_model *model, const rn_plan *plan, int mb,
                                float *out);

#endif

/* A network as a flat list of nodes over activation values.
 *
 * Value 0 is the input image batch; every node writes one new value. The
 * forward pass runs the nodes in order and the backward pass runs them in
 * reverse, so a model is exactly the list its builder appended. Parameters
 * (trainable) and buffers (BatchNorm running statistics) each live in one
 * contiguous block, carved by a table of named entries whose names are
 * PyTorch state_dict keys. */
#ifndef RN_MODEL_H
#define RN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "layers/layers.h"
#include "resnet.h"

/* Enough for the deepest CIFAR network accepted (depth 2000, option C). */
enum { RN_MAX_NODES = 12288, RN_MAX_PARAMS = 12288, RN_NAME_MAX = 96 };

typedef enum rn_node_kind {
    RN_NODE_CONV,
    RN_NODE_BN,
    RN_NODE_RELU,
    RN_NODE_MAXPOOL,
    RN_NODE_AVGPOOL, /* global average pooling, (c, h, w) -> (c, 1, 1) */
    RN_NODE_LINEAR,
    RN_NODE_ADD,
    RN_NODE_SHORTCUT_A,
} rn_node_kind;

/* Per-image shape of an activation value. */
typedef struct rn_value {
    int c, h, w;
} rn_value;

typedef struct rn_node {
    rn_node_kind kind;
    int src, src2, dst;        /* value ids; src2 only for RN_NODE_ADD */
    int weights, bias;         /* parameter ids, -1 if none (BN: gamma, beta) */
    int running_mean, running_var; /* buffer ids for BN, else -1 */
    int bn_index;              /* BN: index into num_batches_tracked */
    int kh, kw, stride, pad;   /* conv and max pooling */
    int groups;                /* conv: channel groups, 1 for an ordinary one */
    int last_bn_of_residual;   /* BN whose gamma --zero-init-residual zeroes */
    char name[RN_NAME_MAX];    /* module path, such as "layer1.0.conv1" */
} rn_node;

typedef enum rn_tensor_role {
    RN_ROLE_CONV_WEIGHT,
    RN_ROLE_CONV_BIAS,
    RN_ROLE_BN_WEIGHT,
    RN_ROLE_BN_BIAS,
    RN_ROLE_LINEAR_WEIGHT,
    RN_ROLE_LINEAR_BIAS,
    RN_ROLE_BN_RUNNING_MEAN,
    RN_ROLE_BN_RUNNING_VAR,
} rn_tensor_role;

/* One named tensor inside the parameter or buffer block. */
typedef struct rn_tensor_entry {
    char name[RN_NAME_MAX]; /* state_dict key, such as "layer1.0.bn1.weight" */
    rn_tensor_role role;
    int ndim;
    int64_t shape[4];
    size_t offset, numel; /* in floats, within its block */
    int fan_in, fan_out;  /* for initialization (conv and linear weights) */
} rn_tensor_entry;

typedef enum rn_shortcut {
    RN_SHORTCUT_A, /* identity; zero-padding option where the shape changes */
    RN_SHORTCUT_B, /* identity; 1x1 conv + BN projection where it changes */
    RN_SHORTCUT_C, /* 1x1 conv + BN projection on every block */
    RN_SHORTCUT_NONE, /* plain network */
    RN_SHORTCUT_DEFAULT, /* the architecture's own: A for the CIFAR basic
                          * blocks, B for torchvision's and the bottleneck
                          * pre-activation networks */
} rn_shortcut;

typedef struct rn_model_config {
    char arch[32]; /* one of rn_model_names() */
    int in_c, in_h, in_w;
    int classes;
    rn_shortcut shortcut; /* rn_model_create resolves RN_SHORTCUT_DEFAULT */
    /* Bottleneck blocks: stride on the first 1x1 convolution, as in He et
     * al. (2015), instead of on the 3x3 one, as torchvision ("v1.5"). */
    int stride_in_1x1;
} rn_model_config;

typedef struct rn_model {
    rn_model_config config;
    rn_node nodes[RN_MAX_NODES];
    int node_count;
    rn_value values[RN_MAX_NODES + 1];
    int value_count;
    rn_tensor_entry params[RN_MAX_PARAMS];
    int param_count;
    size_t param_numel;
    rn_tensor_entry buffers[RN_MAX_PARAMS];
    int buffer_count;
    size_t buffer_numel;
    int bn_count;

    float *param_data;  /* (param_numel) */
    float *grad_data;   /* (param_numel), same layout as param_data */
    float *buffer_data; /* (buffer_numel) running means and variances */
    int64_t *num_batches_tracked; /* (bn_count) */
    /* Version of param_data, unique across the models of the process, so
     * that an inference plan detects when to transform its copy of the
     * weights again, even when it runs another model. Code that writes
     * param_data calls rn_model_weights_changed() after it. */
    unsigned long weights_version;
} rn_model;

/* Give the model's weights a new version. */
void rn_model_weights_changed(rn_model *model);

/* Build a model by name; see rn_model_names() for the list. */
rn_status rn_model_create(const rn_model_config *config, rn_model **out);
void rn_model_destroy(rn_model *model);
/* Space-separated list of the architectures rn_model_create accepts. */
const char *rn_model_names(void);
/* Whether arch names one of torchvision's ImageNet networks (resnet18 ...
 * wide_resnet101_2), which expect ImageNet's preprocessing. */
int rn_model_is_imagenet(const char *arch);
/* Parse "A", "B", "C" or "default" (case-insensitive). */
rn_status rn_shortcut_parse(const char *text, rn_shortcut *out);
const char *rn_shortcut_name(rn_shortcut shortcut);

typedef enum rn_init {
    RN_INIT_KAIMING, /* normal, fan_out, ReLU gain: torchvision's ResNet */
    RN_INIT_XAVIER,  /* uniform on conv and linear weights: the d2l book */
    RN_INIT_KAIMING_FAN_IN, /* normal, fan_in, ReLU gain: He et al. (2015) */
} rn_init;

/* Initialize parameters and buffers from a seed. Biases, and linear weights
 * under Kaiming, keep PyTorch's default initialization. */
void rn_model_init(rn_model *model, rn_init init, int zero_init_residual,
                   uint64_t seed);

/* Multiply-accumulates of one image through node i (conv and linear). */
int64_t rn_node_macs(const rn_model *model, int i);

/* ------------------------------------------------------------- execution */

/* Memory for running a model on batches of up to `mb` images: activations,
 * their gradients (slots reused once a gradient is consumed), saved state
 * and convolution scratch. Planned once; a step allocates nothing. */
typedef struct rn_plan rn_plan;

rn_status rn_plan_create(const rn_model *model, int mb, rn_plan **out);
void rn_plan_destroy(rn_plan *plan);
/* Return the bytes the plan uses, and the part of them taken by transformed
 * weights (inference plans only). */
size_t rn_plan_nbytes(const rn_plan *plan);
size_t rn_plan_weights_nbytes(const rn_plan *plan);

/* Run the network on `mb` images (mb <= the planned batch size); returns the
 * logits (mb, classes), valid until the next call. Training mode uses batch
 * statistics and updates the running statistics. */
const float *rn_model_forward(rn_model *model, rn_plan *plan,
                              const float *images, int mb, int train);

/* Back-propagate d(loss)/d(logits) of the last forward pass (which must have
 * been in training mode) and ACCUMULATE the parameter gradients into
 * model->grad_data. */
void rn_model_backward(rn_model *model, rn_plan *plan, const float *diff_logits);

void rn_model_zero_grad(rn_model *model);

/* Activation value of the last forward pass, (mb, c, h, w), for experiments.
 * A plan from rn_plan_create runs a ReLU in place when it is the only reader
 * of its input, such as a BN output in a plain network. That input is then
 * overwritten, and a plan from rn_plan_create_keeping_values keeps it. */
const float *rn_plan_value(const rn_plan *plan, int value);

/* Like rn_plan_create, but every value keeps its own memory: no ReLU runs
 * in place or fused into the BN before it. Takes more memory and time than
 * the training plan; for measurements of intermediate activations. */
rn_status rn_plan_create_keeping_values(const rn_model *model, int mb, rn_plan **out);

/* A plan for evaluation-mode forward passes only: no gradients, and an
 * activation's memory is reused once its last reader has run. Training
 * passes and rn_model_backward reject it. The plan keeps the Winograd
 * transform of the 3x3 weights, made again on the first forward pass after
 * rn_model_weights_changed(). */
rn_status rn_plan_create_inference(const rn_model *model, int mb, rn_plan **out);

/* ---------------------------------------------------------------- profile */

/* Layer classes that a profile times separately. */
typedef enum rn_profile_class {
    RN_PROFILE_CONV_DIRECT,    /* the direct stride-1 convolution and Winograd */
    RN_PROFILE_CONV_IMPLICIT,  /* the others without groups: forward (and a 1x1's data
                                  gradient) on the implicit GEMM, the rest on im2col */
    RN_PROFILE_CONV_GEMM,      /* grouped convolutions, or any without AVX-512: im2col */
    RN_PROFILE_BN,
    RN_PROFILE_RELU,
    RN_PROFILE_ADD,
    RN_PROFILE_POOL,
    RN_PROFILE_LINEAR,
    RN_PROFILE_SHORTCUT,
    RN_PROFILE_CLASSES,
} rn_profile_class;

/* Wall-clock seconds per layer class, summed over the passes run while the
 * profile is attached to a plan. */
typedef struct rn_profile {
    double forward[RN_PROFILE_CLASSES];
    double backward[RN_PROFILE_CLASSES];
} rn_profile;

/* Attach a profile to the plan, or detach it with NULL. Timing a layer waits
 * for its threads, which the passes do anyway. */
void rn_plan_set_profile(rn_plan *plan, rn_profile *profile);

/* Return the class of node i in a pass of `plan` (may be NULL: a training
 * plan) over mb images. A convolution's path depends on the batch, because
 * Winograd needs enough tiles unless the plan keeps its weights. */
rn_profile_class rn_node_profile_class(const rn_model *model, const rn_plan *plan, int i,
                                       int mb);
const char *rn_profile_class_name(rn_profile_class c);

#endif

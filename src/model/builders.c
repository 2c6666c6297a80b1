/* The architectures resnet.c builds by name. */
#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/status.h"
#include "model/graph.h"

const char *rn_model_names(void)
{
    return "resnet20 resnet32 resnet44 resnet56 resnet110 "
           "plain20 plain32 plain44 plain56 plain110 "
           "preact-resnet20 preact-resnet32 preact-resnet44 preact-resnet56 "
           "preact-resnet110 preact-resnet164 preact-resnet1001 d2l-resnet18 "
           "resnet18 resnet34 resnet50 resnet101 resnet152 resnext50_32x4d "
           "resnext101_32x8d wide_resnet50_2 wide_resnet101_2";
}

rn_status rn_shortcut_parse(const char *text, rn_shortcut *out)
{
    if (!strcasecmp(text, "A"))
        *out = RN_SHORTCUT_A;
    else if (!strcasecmp(text, "B"))
        *out = RN_SHORTCUT_B;
    else if (!strcasecmp(text, "C"))
        *out = RN_SHORTCUT_C;
    else if (!strcasecmp(text, "default"))
        *out = RN_SHORTCUT_DEFAULT;
    else
        return rn_error(RN_ERR_INVALID, "invalid shortcut option '%s': expected A, B or C", text);
    return RN_OK;
}

const char *rn_shortcut_name(rn_shortcut shortcut)
{
    switch (shortcut) {
    case RN_SHORTCUT_A: return "A";
    case RN_SHORTCUT_B: return "B";
    case RN_SHORTCUT_C: return "C";
    case RN_SHORTCUT_NONE: return "none";
    case RN_SHORTCUT_DEFAULT: return "default";
    }
    return "?";
}

/* A convolution followed by BN (the conv without bias, since BN's shift
 * replaces it), or, in a network without BN, a convolution with bias as
 * torch.nn.Conv2d has by default. */
static int conv_bn(rn_model *m, int src, const char *prefix, const char *conv,
                   const char *bn, int oc, int k, int stride, int pad, int with_bn)
{
    char name[RN_NAME_MAX];
    rn_graph_name(name, sizeof name, "%s%s", prefix, conv);
    int y = rn_graph_conv(m, src, name, oc, k, stride, pad, !with_bn);
    if (!with_bn)
        return y;
    rn_graph_name(name, sizeof name, "%s%s", prefix, bn);
    return rn_graph_bn(m, y, name);
}

/* A basic block of the CIFAR networks, He et al. (2015) section 4.2:
 * conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU. Names follow
 * torchvision's BasicBlock (conv1, bn1, conv2, bn2, downsample.0/.1). */
static rn_status cifar_block(rn_model *m, int *x, const char *prefix, int planes,
                             int stride, rn_shortcut shortcut, int with_bn)
{
    char name[RN_NAME_MAX];
    int in = *x;
    int shape_changes = stride != 1 || m->values[in].c != planes;

    int y = conv_bn(m, in, prefix, ".conv1", ".bn1", planes, 3, stride, 1, with_bn);
    y = rn_graph_relu(m, y);
    y = conv_bn(m, y, prefix, ".conv2", ".bn2", planes, 3, 1, 1, with_bn);

    if (shortcut != RN_SHORTCUT_NONE) {
        if (with_bn)
            m->nodes[m->node_count - 1].last_bn_of_residual = 1;
        int identity = in;
        if (shortcut == RN_SHORTCUT_C || (shortcut == RN_SHORTCUT_B && shape_changes)) {
            identity = conv_bn(m, in, prefix, ".downsample.0", ".downsample.1", planes, 1,
                               stride, 0, with_bn);
        } else if (shape_changes) {
            rn_graph_name(name, sizeof name, "%s.shortcut", prefix);
            RN_TRY(rn_graph_shortcut_a(m, in, name, planes, stride, &identity));
        }
        rn_graph_name(name, sizeof name, "%s.add", prefix);
        RN_TRY(rn_graph_add(m, y, identity, name, &y));
    }
    *x = rn_graph_relu(m, y);
    return RN_OK;
}

rn_status rn_graph_basic_block(rn_model *m, int *x, const char *prefix, int planes,
                               int stride, rn_shortcut shortcut)
{
    return cifar_block(m, x, prefix, planes, stride, shortcut, 1);
}

/* The 6n+2 networks for CIFAR-10: 3x3 stem with 16 filters, three stages of
 * n blocks at 16, 32 and 64 filters (the first block of stages 2 and 3 has
 * stride 2), global average pooling and a linear classifier. Without BN
 * (the "-nobn" names) every convolution has a bias instead. */
static rn_status build_cifar(rn_model *m, int depth, rn_shortcut shortcut, int with_bn)
{
    const rn_model_config *cfg = &m->config;
    int n = (depth - 2) / 6;
    int x = rn_graph_input(m, cfg->in_c, cfg->in_h, cfg->in_w);

    x = rn_graph_relu(m, conv_bn(m, x, "", "conv1", "bn1", 16, 3, 1, 1, with_bn));
    for (int stage = 0; stage < 3; stage++) {
        for (int b = 0; b < n; b++) {
            char prefix[RN_NAME_MAX];
            rn_graph_name(prefix, sizeof prefix, "layer%d.%d", stage + 1, b);
            RN_TRY(cifar_block(m, &x, prefix, 16 << stage,
                               stage > 0 && b == 0 ? 2 : 1, shortcut, with_bn));
        }
    }
    x = rn_graph_avgpool(m, x, "avgpool");
    rn_graph_linear(m, x, "fc", cfg->classes);
    return RN_OK;
}

/* The Residual block of Dive into Deep Learning (section "Residual Networks
 * (ResNet) and ResNeXt"). Every convolution has a bias. Where the shape
 * changes, conv3 is a 1x1 convolution with stride on the shortcut, without
 * BN. */
static rn_status d2l_residual(rn_model *m, int *x, const char *prefix,
                              int channels, int use_1x1conv, int stride)
{
    char name[RN_NAME_MAX];
    int in = *x;

    rn_graph_name(name, sizeof name, "%s.conv1", prefix);
    int y = rn_graph_conv(m, in, name, channels, 3, stride, 1, 1);
    rn_graph_name(name, sizeof name, "%s.bn1", prefix);
    y = rn_graph_relu(m, rn_graph_bn(m, y, name));
    rn_graph_name(name, sizeof name, "%s.conv2", prefix);
    y = rn_graph_conv(m, y, name, channels, 3, 1, 1, 1);
    rn_graph_name(name, sizeof name, "%s.bn2", prefix);
    y = rn_graph_bn(m, y, name);
    m->nodes[m->node_count - 1].last_bn_of_residual = 1;

    int identity = in;
    if (use_1x1conv) {
        rn_graph_name(name, sizeof name, "%s.conv3", prefix);
        identity = rn_graph_conv(m, in, name, channels, 1, stride, 0, 1);
    }
    rn_graph_name(name, sizeof name, "%s.add", prefix);
    RN_TRY(rn_graph_add(m, y, identity, name, &y));
    *x = rn_graph_relu(m, y);
    return RN_OK;
}

/* The book's ResNet-18, written there as nn.Sequential(b1, b2, b3, b4, b5,
 * AdaptiveAvgPool2d, Flatten, Linear), so its state_dict keys are
 * "0.0.weight" (stem conv), "1.0.conv1.weight" (first block of b2), ...,
 * "7.weight" (the classifier). */
static rn_status build_d2l_resnet18(rn_model *m)
{
    const rn_model_config *cfg = &m->config;
    int x = rn_graph_input(m, cfg->in_c, cfg->in_h, cfg->in_w);

    x = rn_graph_conv(m, x, "0.0", 64, 7, 2, 3, 1);
    x = rn_graph_relu(m, rn_graph_bn(m, x, "0.1"));
    x = rn_graph_maxpool(m, x, "0.3", 3, 2, 1);
    for (int stage = 0; stage < 4; stage++) {
        for (int b = 0; b < 2; b++) {
            char prefix[RN_NAME_MAX];
            int first = stage > 0 && b == 0;
            rn_graph_name(prefix, sizeof prefix, "%d.%d", stage + 1, b);
            RN_TRY(d2l_residual(m, &x, prefix, 64 << stage, first, first ? 2 : 1));
        }
    }
    x = rn_graph_avgpool(m, x, "5");
    rn_graph_linear(m, x, "7", cfg->classes);
    return RN_OK;
}

/* Depth N of "<prefix>N" or "<prefix>N-nobn" (*with_bn set to 0), else 0. */
static int parse_cifar_depth(const char *arch, const char *prefix, int *with_bn)
{
    size_t len = strlen(prefix);
    if (strncmp(arch, prefix, len) != 0 || !isdigit((unsigned char)arch[len]))
        return 0;
    char *end;
    long depth = strtol(arch + len, &end, 10);
    *with_bn = strcmp(end, "-nobn") != 0;
    if ((*end && *with_bn) || depth < 8 || depth > 2000 || (depth - 2) % 6 != 0)
        return 0;
    return (int)depth;
}

static rn_status check_config(const rn_model_config *cfg)
{
    if (cfg->in_c < 1 || cfg->in_c > 4096 || cfg->in_h < 1 || cfg->in_w < 1 ||
        cfg->in_h > 8192 || cfg->in_w > 8192)
        return rn_error(RN_ERR_INVALID, "invalid input shape %dx%dx%d: expected CxHxW "
                        "with 1 <= C <= 4096 and 1 <= H, W <= 8192",
                        cfg->in_c, cfg->in_h, cfg->in_w);
    if (cfg->classes < 2 || cfg->classes > 100000)
        return rn_error(RN_ERR_INVALID, "invalid class count %d: expected 2 to 100000",
                        cfg->classes);
    return RN_OK;
}

static rn_status check_spatial(const rn_model *m)
{
    for (int v = 0; v < m->value_count; v++) {
        if (m->values[v].h < 1 || m->values[v].w < 1)
            return rn_error(RN_ERR_INVALID,
                            "input %dx%dx%d is too small for %s: a layer's output "
                            "would be empty; use a larger --input or resize",
                            m->config.in_c, m->config.in_h, m->config.in_w,
                            m->config.arch);
    }
    return RN_OK;
}

rn_status rn_model_create(const rn_model_config *config, rn_model **out)
{
    rn_status status;
    rn_model *m;
    int depth, with_bn;

    *out = NULL;
    RN_TRY(check_config(config));
    m = calloc(1, sizeof *m);
    if (!m)
        return rn_error(RN_ERR_NOMEM, "out of memory creating model %s", config->arch);
    m->config = *config;

    int bottleneck = 0;
    if (config->stride_in_1x1 && !rn_model_is_imagenet(config->arch)) {
        status = rn_error(RN_ERR_INVALID, "the stride in the 1x1 convolution applies to "
                          "torchvision's bottleneck networks (resnet50 and deeper), "
                          "not to %s", config->arch);
    } else if (rn_model_is_imagenet(config->arch)) {
        /* Before the CIFAR names: resnet50 and resnet152 are also 6n+2. */
        status = rn_build_imagenet(m);
    } else if ((depth = parse_cifar_depth(config->arch, "resnet", &with_bn))) {
        rn_shortcut shortcut = config->shortcut;
        if (shortcut == RN_SHORTCUT_NONE || shortcut == RN_SHORTCUT_DEFAULT)
            shortcut = RN_SHORTCUT_A;
        m->config.shortcut = shortcut;
        status = build_cifar(m, depth, shortcut, with_bn);
    } else if ((depth = parse_cifar_depth(config->arch, "plain", &with_bn))) {
        if (config->shortcut != RN_SHORTCUT_DEFAULT && config->shortcut != RN_SHORTCUT_NONE) {
            free(m);
            return rn_error(RN_ERR_INVALID, "%s has no shortcuts, so shortcut option %s "
                            "does not apply; use resnet%d for the residual network",
                            config->arch, rn_shortcut_name(config->shortcut), depth);
        }
        m->config.shortcut = RN_SHORTCUT_NONE;
        status = build_cifar(m, depth, RN_SHORTCUT_NONE, with_bn);
    } else if ((depth = rn_preact_depth(config->arch, &bottleneck))) {
        status = rn_build_preact(m, depth, bottleneck);
    } else if (!strcmp(config->arch, "d2l-resnet18")) {
        /* The book's shortcut projects where the shape changes, as option B
         * does, but with a biased convolution and no BN. */
        if (config->shortcut != RN_SHORTCUT_DEFAULT && config->shortcut != RN_SHORTCUT_B) {
            free(m);
            return rn_error(RN_ERR_INVALID, "d2l-resnet18 has the book's own shortcut "
                            "(a biased 1x1 convolution where the shape changes, close to "
                            "option B); shortcut option %s does not apply",
                            rn_shortcut_name(config->shortcut));
        }
        m->config.shortcut = RN_SHORTCUT_B;
        status = build_d2l_resnet18(m);
    } else {
        free(m);
        return rn_error(RN_ERR_INVALID, "unknown model '%s'; available: %s "
                        "(resnetN, plainN and preact-resnetN accept any depth "
                        "N = 6n+2 from 8 to 2000; resnetN and plainN also take the suffix "
                        "-nobn, as in plain56-nobn, for a network without batch "
                        "normalization; resnet50 and resnet152 are torchvision's)",
                        config->arch, rn_model_names());
    }
    if (status == RN_OK)
        status = check_spatial(m);
    if (status != RN_OK) {
        free(m);
        return status;
    }

    m->param_data = rn_alloc_aligned(m->param_numel * sizeof(float));
    m->grad_data = rn_alloc_aligned(m->param_numel * sizeof(float));
    m->buffer_data = rn_alloc_aligned(m->buffer_numel * sizeof(float));
    m->num_batches_tracked = calloc(m->bn_count + 1, sizeof(int64_t));
    if (!m->param_data || !m->grad_data || !m->buffer_data || !m->num_batches_tracked) {
        size_t numel = m->param_numel;
        rn_model_destroy(m);
        return rn_error(RN_ERR_NOMEM, "out of memory allocating %zu parameters of %s",
                        numel, config->arch);
    }
    rn_model_init(m, RN_INIT_KAIMING, 0, 0);
    *out = m;
    return RN_OK;
}

void rn_model_weights_changed(rn_model *model)
{
    static atomic_ulong versions;
    model->weights_version = atomic_fetch_add(&versions, 1) + 1;
}

void rn_model_destroy(rn_model *model)
{
    if (!model)
        return;
    rn_free_aligned(model->param_data);
    rn_free_aligned(model->grad_data);
    rn_free_aligned(model->buffer_data);
    free(model->num_batches_tracked);
    free(model);
}

int64_t rn_node_macs(const rn_model *model, int i)
{
    const rn_node *node = &model->nodes[i];
    rn_value in = model->values[node->src], out = model->values[node->dst];
    switch (node->kind) {
    case RN_NODE_CONV:
        return (int64_t)out.c * out.h * out.w * (in.c / node->groups) * node->kh * node->kw;
    case RN_NODE_LINEAR:
        return (int64_t)in.c * in.h * in.w * out.c;
    default:
        return 0;
    }
}

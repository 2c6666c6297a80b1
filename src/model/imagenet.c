/* torchvision's ResNets for ImageNet: resnet18 ... resnet152, ResNeXt and
 * Wide ResNet, with the module names of torchvision 0.14's models/resnet.py
 * so that its state_dict files load unchanged. */
#include <string.h>

#include "core/status.h"
#include "model/graph.h"

typedef struct imagenet_arch {
    const char *name;
    int bottleneck;      /* 0: basic blocks, 1: bottleneck blocks */
    int blocks[4];       /* blocks per stage */
    int groups;          /* of the 3x3 convolution of a bottleneck */
    int width_per_group; /* channels per group at 64 planes */
} imagenet_arch;

static const imagenet_arch archs[] = {
    {"resnet18", 0, {2, 2, 2, 2}, 1, 64},
    {"resnet34", 0, {3, 4, 6, 3}, 1, 64},
    {"resnet50", 1, {3, 4, 6, 3}, 1, 64},
    {"resnet101", 1, {3, 4, 23, 3}, 1, 64},
    {"resnet152", 1, {3, 8, 36, 3}, 1, 64},
    {"resnext50_32x4d", 1, {3, 4, 6, 3}, 32, 4},
    {"resnext101_32x8d", 1, {3, 4, 23, 3}, 32, 8},
    {"wide_resnet50_2", 1, {3, 4, 6, 3}, 1, 128},
    {"wide_resnet101_2", 1, {3, 4, 23, 3}, 1, 128},
};

static const imagenet_arch *find_arch(const char *name)
{
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (!strcmp(archs[i].name, name))
            return &archs[i];
    return NULL;
}

int rn_model_is_imagenet(const char *arch)
{
    return find_arch(arch) != NULL;
}

/* conv1x1-BN-ReLU, conv3x3-BN-ReLU, conv1x1-BN with 4x the planes, plus the
 * shortcut, then ReLU. The 3x3 convolution has `width` channels split into
 * `groups`. torchvision puts the stride on that convolution, while He et al.
 * (2015) put it on conv1, as stride_in_1x1 selects. */
static rn_status bottleneck_block(rn_model *m, int *x, const char *prefix,
                                  const imagenet_arch *a, int planes, int stride,
                                  rn_shortcut shortcut, int stride_in_1x1)
{
    char name[RN_NAME_MAX];
    int in = *x;
    int width = planes * a->width_per_group / 64 * a->groups;
    int out_c = planes * 4;
    int shape_changes = stride != 1 || m->values[in].c != out_c;

    rn_graph_name(name, sizeof name, "%s.conv1", prefix);
    int y = rn_graph_conv(m, in, name, width, 1, stride_in_1x1 ? stride : 1, 0, 0);
    rn_graph_name(name, sizeof name, "%s.bn1", prefix);
    y = rn_graph_relu(m, rn_graph_bn(m, y, name));
    rn_graph_name(name, sizeof name, "%s.conv2", prefix);
    y = rn_graph_conv_grouped(m, y, name, width, 3, stride_in_1x1 ? 1 : stride, 1,
                              a->groups, 0);
    rn_graph_name(name, sizeof name, "%s.bn2", prefix);
    y = rn_graph_relu(m, rn_graph_bn(m, y, name));
    rn_graph_name(name, sizeof name, "%s.conv3", prefix);
    y = rn_graph_conv(m, y, name, out_c, 1, 1, 0, 0);
    rn_graph_name(name, sizeof name, "%s.bn3", prefix);
    y = rn_graph_bn(m, y, name);
    m->nodes[m->node_count - 1].last_bn_of_residual = 1;

    int identity = in;
    if (shortcut == RN_SHORTCUT_C || shape_changes) {
        rn_graph_name(name, sizeof name, "%s.downsample.0", prefix);
        identity = rn_graph_conv(m, in, name, out_c, 1, stride, 0, 0);
        rn_graph_name(name, sizeof name, "%s.downsample.1", prefix);
        identity = rn_graph_bn(m, identity, name);
    }
    rn_graph_name(name, sizeof name, "%s.add", prefix);
    RN_TRY(rn_graph_add(m, y, identity, name, &y));
    *x = rn_graph_relu(m, y);
    return RN_OK;
}

/* The stem is a 7x7/2 convolution with 64 filters, BN, ReLU and 3x3/2 max
 * pooling. Four stages follow at 64, 128, 256 and 512 planes, where the first
 * block of stages 2 to 4 has stride 2. Global average pooling and a linear
 * classifier end the network. */
static rn_status build(rn_model *m, const imagenet_arch *a)
{
    const rn_model_config *cfg = &m->config;
    rn_shortcut shortcut = cfg->shortcut;

    if (shortcut == RN_SHORTCUT_DEFAULT)
        shortcut = RN_SHORTCUT_B;
    if (shortcut != RN_SHORTCUT_B && shortcut != RN_SHORTCUT_C)
        return rn_error(RN_ERR_INVALID, "%s takes shortcut option B (its own) or C, "
                        "not %s: option A exists only for the CIFAR networks",
                        a->name, rn_shortcut_name(shortcut));
    if (cfg->stride_in_1x1 && !a->bottleneck)
        return rn_error(RN_ERR_INVALID, "%s has basic blocks, so the stride in the 1x1 "
                        "convolution does not apply; it is for bottleneck networks",
                        a->name);
    m->config.shortcut = shortcut;

    int x = rn_graph_input(m, cfg->in_c, cfg->in_h, cfg->in_w);
    x = rn_graph_conv(m, x, "conv1", 64, 7, 2, 3, 0);
    x = rn_graph_relu(m, rn_graph_bn(m, x, "bn1"));
    x = rn_graph_maxpool(m, x, "maxpool", 3, 2, 1);
    for (int stage = 0; stage < 4; stage++) {
        for (int b = 0; b < a->blocks[stage]; b++) {
            char prefix[RN_NAME_MAX];
            int planes = 64 << stage;
            int stride = stage > 0 && b == 0 ? 2 : 1;
            rn_graph_name(prefix, sizeof prefix, "layer%d.%d", stage + 1, b);
            if (a->bottleneck)
                RN_TRY(bottleneck_block(m, &x, prefix, a, planes, stride, shortcut,
                                        cfg->stride_in_1x1));
            else
                RN_TRY(rn_graph_basic_block(m, &x, prefix, planes, stride, shortcut));
        }
    }
    x = rn_graph_avgpool(m, x, "avgpool");
    rn_graph_linear(m, x, "fc", cfg->classes);
    return RN_OK;
}

rn_status rn_build_imagenet(rn_model *m)
{
    const imagenet_arch *a = find_arch(m->config.arch);
    RN_ASSERT(a);
    return build(m, a);
}

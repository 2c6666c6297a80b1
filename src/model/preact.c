/* Pre-activation ResNets for CIFAR, He et al. (2016), "Identity Mappings in
 * Deep Residual Networks": each block computes BN-ReLU-conv twice (three
 * times in a bottleneck) and adds the shortcut with nothing after the
 * addition, so the identity path runs unchanged from the stem to the final
 * BN-ReLU before pooling.
 *
 * Where the shortcut is not the identity (the shape changes, or option C),
 * it reads the pre-activated input relu(bn1(x)) rather than x, as the
 * paper's appendix describes for the first block after the stem. Module names
 * follow the CIFAR networks: conv1 (stem), layerS.B.{bn1, conv1, bn2, conv2,
 * bn3, conv3}, layerS.B.downsample.0 (a 1x1 convolution without BN), bn (the
 * final BN) and fc. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "model/graph.h"

int rn_preact_depth(const char *arch, int *bottleneck)
{
    const char *prefix = "preact-resnet";
    size_t len = strlen(prefix);
    if (strncmp(arch, prefix, len) != 0 || !isdigit((unsigned char)arch[len]))
        return 0;
    char *end;
    long depth = strtol(arch + len, &end, 10);
    if (*end)
        return 0;
    /* The paper's bottleneck networks have depth 9n+2; 164 is also 6n+2,
     * so those two depths are named explicitly. */
    *bottleneck = depth == 164 || depth == 1001;
    if (!*bottleneck && (depth < 8 || depth > 2000 || (depth - 2) % 6 != 0))
        return 0;
    return (int)depth;
}

/* Append BN-ReLU-conv and return the convolution's output. */
static int bn_relu_conv(rn_model *m, int x, const char *prefix, int index,
                        int oc, int k, int stride)
{
    char name[RN_NAME_MAX];
    rn_graph_name(name, sizeof name, "%s.bn%d", prefix, index);
    x = rn_graph_relu(m, rn_graph_bn(m, x, name));
    rn_graph_name(name, sizeof name, "%s.conv%d", prefix, index);
    return rn_graph_conv(m, x, name, oc, k, stride, k / 2, 0);
}

static rn_status preact_block(rn_model *m, int *x, const char *prefix, int planes,
                              int stride, int bottleneck, rn_shortcut shortcut)
{
    char name[RN_NAME_MAX];
    int in = *x;
    int out_c = bottleneck ? planes * 4 : planes;
    int shape_changes = stride != 1 || m->values[in].c != out_c;

    rn_graph_name(name, sizeof name, "%s.bn1", prefix);
    int act = rn_graph_relu(m, rn_graph_bn(m, in, name));
    rn_graph_name(name, sizeof name, "%s.conv1", prefix);
    int y;
    if (bottleneck) {
        y = rn_graph_conv(m, act, name, planes, 1, 1, 0, 0);
        y = bn_relu_conv(m, y, prefix, 2, planes, 3, stride);
        y = bn_relu_conv(m, y, prefix, 3, out_c, 1, 1);
    } else {
        y = rn_graph_conv(m, act, name, planes, 3, stride, 1, 0);
        y = bn_relu_conv(m, y, prefix, 2, planes, 3, 1);
    }

    int identity = in;
    if (shortcut == RN_SHORTCUT_C || (shortcut == RN_SHORTCUT_B && shape_changes)) {
        rn_graph_name(name, sizeof name, "%s.downsample.0", prefix);
        identity = rn_graph_conv(m, act, name, out_c, 1, stride, 0, 0);
    } else if (shape_changes) {
        rn_graph_name(name, sizeof name, "%s.shortcut", prefix);
        RN_TRY(rn_graph_shortcut_a(m, act, name, out_c, stride, &identity));
    }
    rn_graph_name(name, sizeof name, "%s.add", prefix);
    return rn_graph_add(m, y, identity, name, x);
}

/* The stem is a 3x3 convolution with 16 filters. Three stages of n blocks
 * follow at 16, 32 and 64 planes (4x that many output channels in a
 * bottleneck), where the first block of stages 2 and 3 has stride 2. The
 * final BN-ReLU, global average pooling and a linear classifier end the
 * network. Depth is 6n+2 with basic blocks, 9n+2 with bottlenecks.
 *
 * NOTE: no block ends in BN, so --zero-init-residual leaves these networks
 * unchanged. */
rn_status rn_build_preact(rn_model *m, int depth, int bottleneck)
{
    const rn_model_config *cfg = &m->config;
    int n = bottleneck ? (depth - 2) / 9 : (depth - 2) / 6;
    rn_shortcut shortcut = cfg->shortcut;

    /* Option A would pad 16 channels to 64 in the first bottleneck block;
     * the paper projects there. */
    if (shortcut == RN_SHORTCUT_DEFAULT)
        shortcut = bottleneck ? RN_SHORTCUT_B : RN_SHORTCUT_A;
    if (shortcut == RN_SHORTCUT_NONE)
        return rn_error(RN_ERR_INVALID, "%s needs a shortcut option A, B or C", cfg->arch);
    m->config.shortcut = shortcut;

    int x = rn_graph_input(m, cfg->in_c, cfg->in_h, cfg->in_w);
    x = rn_graph_conv(m, x, "conv1", 16, 3, 1, 1, 0);
    for (int stage = 0; stage < 3; stage++) {
        for (int b = 0; b < n; b++) {
            char prefix[RN_NAME_MAX];
            rn_graph_name(prefix, sizeof prefix, "layer%d.%d", stage + 1, b);
            RN_TRY(preact_block(m, &x, prefix, 16 << stage,
                                stage > 0 && b == 0 ? 2 : 1, bottleneck, shortcut));
        }
    }
    x = rn_graph_relu(m, rn_graph_bn(m, x, "bn"));
    x = rn_graph_avgpool(m, x, "avgpool");
    rn_graph_linear(m, x, "fc", cfg->classes);
    return RN_OK;
}

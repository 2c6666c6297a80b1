/* Builder helpers that append nodes to a model. Each returns the id of the
 * new value; parameter names are `<name>.weight`, `<name>.bias` and so on. */
#ifndef RN_MODEL_GRAPH_H
#define RN_MODEL_GRAPH_H

#include "model/model.h"

int rn_graph_input(rn_model *m, int c, int h, int w);
int rn_graph_conv(rn_model *m, int src, const char *name, int oc, int k,
                  int stride, int pad, int bias);
/* A convolution whose channels split into `groups` independent groups. */
int rn_graph_conv_grouped(rn_model *m, int src, const char *name, int oc, int k,
                          int stride, int pad, int groups, int bias);
int rn_graph_bn(rn_model *m, int src, const char *name);
int rn_graph_relu(rn_model *m, int src);
int rn_graph_maxpool(rn_model *m, int src, const char *name, int k, int stride,
                     int pad);
int rn_graph_avgpool(rn_model *m, int src, const char *name);
int rn_graph_linear(rn_model *m, int src, const char *name, int out);
rn_status rn_graph_add(rn_model *m, int a, int b, const char *name, int *out);
rn_status rn_graph_shortcut_a(rn_model *m, int src, const char *name, int oc,
                              int stride, int *out);
/* conv3x3-BN-ReLU-conv3x3-BN plus the shortcut, then ReLU; *x is the block's
 * input and becomes its output. */
rn_status rn_graph_basic_block(rn_model *m, int *x, const char *prefix, int planes,
                               int stride, rn_shortcut shortcut);

/* Builders of the architecture families outside builders.c. */
rn_status rn_build_imagenet(rn_model *m);
/* Depth of a "preact-resnetN" name, or 0 if it is not one. *bottleneck is set
 * to 1 when that depth uses bottleneck blocks. */
int rn_preact_depth(const char *arch, int *bottleneck);
rn_status rn_build_preact(rn_model *m, int depth, int bottleneck);

void rn_graph_name(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif

/* Builder helpers that append nodes to a model. Each returns the id of the
 * new value; parameter names are `<name>.weight`, `<name>.bias` and so on. */
#ifndef RN_MODEL_GRAPH_H
#define RN_MODEL_GRAPH_H

#include "model/model.h"

int rn_graph_input(rn_model *m, int c, int h, int w);
int rn_graph_conv(rn_model *m, int src, const char *name, int oc, int k,
                  int stride, int pad, int bias);
int rn_graph_bn(rn_model *m, int src, const char *name);
int rn_graph_relu(rn_model *m, int src);
int rn_graph_maxpool(rn_model *m, int src, const char *name, int k, int stride,
                     int pad);
int rn_graph_avgpool(rn_model *m, int src, const char *name);
int rn_graph_linear(rn_model *m, int src, const char *name, int out);
rn_status rn_graph_add(rn_model *m, int a, int b, const char *name, int *out);
rn_status rn_graph_shortcut_a(rn_model *m, int src, const char *name, int oc,
                              int stride, int *out);
void rn_graph_name(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif

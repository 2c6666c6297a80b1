/* Model construction helpers: append nodes and carve named parameters. */
#include "model/graph.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/status.h"

static int add_entry(rn_tensor_entry *table, int *count, size_t *numel,
                     const char *module, const char *suffix, rn_tensor_role role,
                     int ndim, const int64_t *shape)
{
    RN_ASSERT(*count < RN_MAX_PARAMS);
    rn_tensor_entry *e = &table[*count];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s.%s", module, suffix);
    e->role = role;
    e->ndim = ndim;
    e->numel = 1;
    for (int d = 0; d < ndim; d++) {
        e->shape[d] = shape[d];
        e->numel *= (size_t)shape[d];
    }
    e->offset = *numel;
    /* Keep every tensor 64-byte aligned inside its block. */
    *numel += (e->numel + 15) & ~(size_t)15;
    return (*count)++;
}

static int add_param(rn_model *m, const char *module, const char *suffix,
                     rn_tensor_role role, int ndim, const int64_t *shape)
{
    return add_entry(m->params, &m->param_count, &m->param_numel, module,
                     suffix, role, ndim, shape);
}

static int add_buffer(rn_model *m, const char *module, const char *suffix,
                      rn_tensor_role role, int c)
{
    int64_t shape[1] = {c};
    return add_entry(m->buffers, &m->buffer_count, &m->buffer_numel, module,
                     suffix, role, 1, shape);
}

static rn_node *new_node(rn_model *m, rn_node_kind kind, int src,
                         const char *name)
{
    RN_ASSERT(m->node_count < RN_MAX_NODES);
    rn_node *node = &m->nodes[m->node_count++];
    memset(node, 0, sizeof *node);
    node->kind = kind;
    node->src = src;
    node->src2 = -1;
    node->weights = node->bias = -1;
    node->running_mean = node->running_var = -1;
    node->bn_index = -1;
    node->dst = m->value_count++;
    snprintf(node->name, sizeof node->name, "%s", name);
    return node;
}

int rn_graph_input(rn_model *m, int c, int h, int w)
{
    m->values[0] = (rn_value){c, h, w};
    m->value_count = 1;
    return 0;
}

int rn_graph_conv(rn_model *m, int src, const char *name, int oc, int k,
                  int stride, int pad, int bias)
{
    return rn_graph_conv_grouped(m, src, name, oc, k, stride, pad, 1, bias);
}

int rn_graph_conv_grouped(rn_model *m, int src, const char *name, int oc, int k,
                          int stride, int pad, int groups, int bias)
{
    rn_value in = m->values[src];
    RN_ASSERT(groups >= 1 && in.c % groups == 0 && oc % groups == 0);
    rn_node *node = new_node(m, RN_NODE_CONV, src, name);
    int64_t shape[4] = {oc, in.c / groups, k, k};
    node->kh = node->kw = k;
    node->stride = stride;
    node->pad = pad;
    node->groups = groups;
    node->weights = add_param(m, name, "weight", RN_ROLE_CONV_WEIGHT, 4, shape);
    /* torch.nn.init's fans come from the weight's shape: fan_in is
     * (in.c / groups) * k * k and fan_out is oc * k * k. */
    m->params[node->weights].fan_in = in.c / groups * k * k;
    m->params[node->weights].fan_out = oc * k * k;
    if (bias) {
        int64_t bias_shape[1] = {oc};
        node->bias = add_param(m, name, "bias", RN_ROLE_CONV_BIAS, 1, bias_shape);
        m->params[node->bias].fan_in = in.c / groups * k * k;
    }
    m->values[node->dst] = (rn_value){
        oc, (in.h + 2 * pad - k) / stride + 1, (in.w + 2 * pad - k) / stride + 1};
    return node->dst;
}

int rn_graph_bn(rn_model *m, int src, const char *name)
{
    rn_value in = m->values[src];
    rn_node *node = new_node(m, RN_NODE_BN, src, name);
    int64_t shape[1] = {in.c};
    node->weights = add_param(m, name, "weight", RN_ROLE_BN_WEIGHT, 1, shape);
    node->bias = add_param(m, name, "bias", RN_ROLE_BN_BIAS, 1, shape);
    node->running_mean = add_buffer(m, name, "running_mean", RN_ROLE_BN_RUNNING_MEAN, in.c);
    node->running_var = add_buffer(m, name, "running_var", RN_ROLE_BN_RUNNING_VAR, in.c);
    node->bn_index = m->bn_count++;
    m->values[node->dst] = in;
    return node->dst;
}

static int simple_node(rn_model *m, rn_node_kind kind, int src, const char *name,
                       rn_value out)
{
    rn_node *node = new_node(m, kind, src, name);
    m->values[node->dst] = out;
    return node->dst;
}

int rn_graph_relu(rn_model *m, int src)
{
    return simple_node(m, RN_NODE_RELU, src, "relu", m->values[src]);
}

int rn_graph_maxpool(rn_model *m, int src, const char *name, int k, int stride,
                     int pad)
{
    rn_value in = m->values[src];
    rn_node *node = new_node(m, RN_NODE_MAXPOOL, src, name);
    node->kh = node->kw = k;
    node->stride = stride;
    node->pad = pad;
    m->values[node->dst] = (rn_value){
        in.c, (in.h + 2 * pad - k) / stride + 1, (in.w + 2 * pad - k) / stride + 1};
    return node->dst;
}

int rn_graph_avgpool(rn_model *m, int src, const char *name)
{
    return simple_node(m, RN_NODE_AVGPOOL, src, name,
                       (rn_value){m->values[src].c, 1, 1});
}

int rn_graph_linear(rn_model *m, int src, const char *name, int out)
{
    rn_value in = m->values[src];
    int in_features = in.c * in.h * in.w;
    rn_node *node = new_node(m, RN_NODE_LINEAR, src, name);
    int64_t shape[2] = {out, in_features};
    int64_t bias_shape[1] = {out};
    node->weights = add_param(m, name, "weight", RN_ROLE_LINEAR_WEIGHT, 2, shape);
    node->bias = add_param(m, name, "bias", RN_ROLE_LINEAR_BIAS, 1, bias_shape);
    m->params[node->weights].fan_in = in_features;
    m->params[node->weights].fan_out = out;
    m->params[node->bias].fan_in = in_features;
    m->values[node->dst] = (rn_value){out, 1, 1};
    return node->dst;
}

rn_status rn_graph_add(rn_model *m, int a, int b, const char *name, int *out)
{
    rn_value va = m->values[a], vb = m->values[b];
    if (va.c != vb.c || va.h != vb.h || va.w != vb.w)
        return rn_error(RN_ERR_INVALID,
                        "%s: cannot add tensors of shapes (%d, %d, %d) and "
                        "(%d, %d, %d)", name, va.c, va.h, va.w, vb.c, vb.h, vb.w);
    rn_node *node = new_node(m, RN_NODE_ADD, a, name);
    node->src2 = b;
    m->values[node->dst] = va;
    *out = node->dst;
    return RN_OK;
}

rn_status rn_graph_shortcut_a(rn_model *m, int src, const char *name, int oc,
                              int stride, int *out)
{
    rn_value in = m->values[src];
    if (oc < in.c || (oc - in.c) % 2 != 0)
        return rn_error(RN_ERR_INVALID,
                        "%s: option-A shortcut cannot map %d channels to %d "
                        "(the difference must be even and non-negative); use "
                        "--shortcut B", name, in.c, oc);
    rn_node *node = new_node(m, RN_NODE_SHORTCUT_A, src, name);
    node->stride = stride;
    m->values[node->dst] = (rn_value){oc, (in.h - 1) / stride + 1, (in.w - 1) / stride + 1};
    *out = node->dst;
    return RN_OK;
}

void rn_graph_name(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, size, fmt, ap);
    va_end(ap);
}

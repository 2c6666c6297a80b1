#include "io/weights.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "io/json.h"

void rn_metadata_set(rn_metadata *meta, const char *key, const char *fmt, ...)
{
    int slot = 0;
    va_list ap;

    while (slot < meta->count && strcmp(meta->keys[slot], key) != 0)
        slot++;
    RN_ASSERT(slot < RN_META_MAX);
    if (slot == meta->count)
        meta->count++;
    meta->keys[slot] = key;
    va_start(ap, fmt);
    vsnprintf(meta->values[slot], sizeof meta->values[slot], fmt, ap);
    va_end(ap);
}

static void momentum_key(char *out, size_t size, const char *param)
{
    snprintf(out, size, RN_OPTIMIZER_PREFIX "%s.momentum_buffer", param);
}

rn_status rn_weights_save(const rn_model *model, const rn_sgd *sgd,
                          const rn_metadata *extra, const char *path)
{
    rn_st_writer writer;
    rn_status status = RN_OK;
    const rn_model_config *cfg = &model->config;
    char (*names)[RN_NAME_MAX + 32] = calloc(model->param_count + model->bn_count,
                                             sizeof *names);
    char text[64];

    if (!names)
        return rn_error(RN_ERR_NOMEM, "out of memory writing %s", path);
    rn_st_writer_init(&writer);

    /* F32 tensors first and the I64 counters last keeps every tensor
     * aligned in the file. */
    for (int p = 0; p < model->param_count && status == RN_OK; p++) {
        const rn_tensor_entry *e = &model->params[p];
        status = rn_st_writer_add(&writer, e->name, RN_DTYPE_F32, e->ndim, e->shape,
                                  model->param_data + e->offset);
    }
    for (int b = 0; b < model->buffer_count && status == RN_OK; b++) {
        const rn_tensor_entry *e = &model->buffers[b];
        status = rn_st_writer_add(&writer, e->name, RN_DTYPE_F32, e->ndim, e->shape,
                                  model->buffer_data + e->offset);
    }
    if (sgd && sgd->momentum_buffer) {
        for (int p = 0; p < model->param_count && status == RN_OK; p++) {
            const rn_tensor_entry *e = &model->params[p];
            momentum_key(names[p], sizeof names[p], e->name);
            status = rn_st_writer_add(&writer, names[p], RN_DTYPE_F32, e->ndim, e->shape,
                                      sgd->momentum_buffer + e->offset);
        }
    }
    for (int i = 0; i < model->node_count && status == RN_OK; i++) {
        const rn_node *node = &model->nodes[i];
        if (node->kind != RN_NODE_BN)
            continue;
        char *name = names[model->param_count + node->bn_index];
        snprintf(name, RN_NAME_MAX + 32, "%s.num_batches_tracked", node->name);
        status = rn_st_writer_add(&writer, name, RN_DTYPE_I64, 0, NULL,
                                  &model->num_batches_tracked[node->bn_index]);
    }

    if (status == RN_OK)
        status = rn_st_writer_metadata(&writer, "format", RN_WEIGHTS_FORMAT);
    if (status == RN_OK)
        status = rn_st_writer_metadata(&writer, "format_version", RN_WEIGHTS_FORMAT_VERSION);
    if (status == RN_OK)
        status = rn_st_writer_metadata(&writer, "arch", cfg->arch);
    snprintf(text, sizeof text, "%dx%dx%d", cfg->in_c, cfg->in_h, cfg->in_w);
    if (status == RN_OK)
        status = rn_st_writer_metadata(&writer, "input", text);
    snprintf(text, sizeof text, "%d", cfg->classes);
    if (status == RN_OK)
        status = rn_st_writer_metadata(&writer, "classes", text);
    if (status == RN_OK)
        status = rn_st_writer_metadata(&writer, "shortcut", rn_shortcut_name(cfg->shortcut));
    if (status == RN_OK && cfg->stride_in_1x1)
        status = rn_st_writer_metadata(&writer, "stride_in_1x1", "true");
    for (int k = 0; extra && k < extra->count && status == RN_OK; k++)
        status = rn_st_writer_metadata(&writer, extra->keys[k], extra->values[k]);

    if (status == RN_OK)
        status = rn_st_writer_write(&writer, path);
    rn_st_writer_free(&writer);
    free(names);
    return status;
}

static rn_status parse_int(const rn_safetensors *file, const char *key, int *out)
{
    const char *text = rn_safetensors_metadata(file, key);
    char *end;
    if (!text)
        return rn_error(RN_ERR_FORMAT, "%s: metadata key '%s' is missing; the file was not "
                        "written by resnet.c (write it with `resnet train` or pass the "
                        "architecture explicitly)", file->path, key);
    long value = strtol(text, &end, 10);
    if (end == text || *end || value < 1 || value > 1000000000)
        return rn_error(RN_ERR_FORMAT, "%s: metadata '%s' is '%s', expected a positive integer",
                        file->path, key, text);
    *out = (int)value;
    return RN_OK;
}

rn_status rn_weights_read_config(const rn_safetensors *file, rn_model_config *config)
{
    const char *arch = rn_safetensors_metadata(file, "arch");
    const char *input = rn_safetensors_metadata(file, "input");
    const char *shortcut = rn_safetensors_metadata(file, "shortcut");

    memset(config, 0, sizeof *config);
    if (!arch || !input)
        return rn_error(RN_ERR_FORMAT, "%s: metadata keys 'arch' and 'input' are required "
                        "to know the architecture; the file was not written by resnet.c",
                        file->path);
    if (strlen(arch) >= sizeof config->arch)
        return rn_error(RN_ERR_FORMAT, "%s: metadata 'arch' is too long: '%s'", file->path, arch);
    strcpy(config->arch, arch);
    if (sscanf(input, "%dx%dx%d", &config->in_c, &config->in_h, &config->in_w) != 3)
        return rn_error(RN_ERR_FORMAT, "%s: metadata 'input' is '%s', expected CxHxW",
                        file->path, input);
    RN_TRY(parse_int(file, "classes", &config->classes));
    config->shortcut = RN_SHORTCUT_DEFAULT;
    if (shortcut && strcmp(shortcut, "none") != 0 &&
        rn_shortcut_parse(shortcut, &config->shortcut) != RN_OK)
        return rn_error(RN_ERR_FORMAT, "%s: metadata 'shortcut' is '%s', expected A, B, "
                        "C or none", file->path, shortcut);
    const char *stride = rn_safetensors_metadata(file, "stride_in_1x1");
    if (stride && strcmp(stride, "true") && strcmp(stride, "false"))
        return rn_error(RN_ERR_FORMAT, "%s: metadata 'stride_in_1x1' is '%s', expected "
                        "true or false", file->path, stride);
    config->stride_in_1x1 = stride && !strcmp(stride, "true");
    return RN_OK;
}

static rn_status copy_f32(const rn_safetensors *file, const rn_tensor_entry *e,
                          const char *name, float *dst)
{
    const float *src;
    rn_status status = rn_safetensors_get_f32(file, name, e->ndim, e->shape, &src);
    if (status != RN_OK)
        return status;
    memcpy(dst, src, e->numel * sizeof(float));
    return RN_OK;
}

static int is_model_key(const rn_model *model, const char *name)
{
    for (int p = 0; p < model->param_count; p++)
        if (!strcmp(model->params[p].name, name))
            return 1;
    for (int b = 0; b < model->buffer_count; b++)
        if (!strcmp(model->buffers[b].name, name))
            return 1;
    for (int i = 0; i < model->node_count; i++) {
        const rn_node *node = &model->nodes[i];
        size_t len = strlen(node->name);
        if (node->kind == RN_NODE_BN && !strncmp(name, node->name, len) &&
            !strcmp(name + len, ".num_batches_tracked"))
            return 1;
    }
    return 0;
}

rn_status rn_weights_apply(rn_model *model, rn_sgd *sgd, const rn_safetensors *file)
{
    const char *arch = model->config.arch;

    for (int t = 0; t < file->count; t++) {
        const char *name = file->tensors[t].name;
        if (!strncmp(name, RN_OPTIMIZER_PREFIX, strlen(RN_OPTIMIZER_PREFIX)))
            continue;
        if (!is_model_key(model, name))
            return rn_error(RN_ERR_FORMAT, "%s: unexpected key '%s': model %s has no such "
                            "tensor; the file was written for another architecture",
                            file->path, name, arch);
    }
    rn_model_weights_changed(model);
    for (int p = 0; p < model->param_count; p++)
        RN_TRY(rn_error_prefix(copy_f32(file, &model->params[p], model->params[p].name,
                                        model->param_data + model->params[p].offset),
                               "model %s: ", arch));
    for (int b = 0; b < model->buffer_count; b++)
        RN_TRY(rn_error_prefix(copy_f32(file, &model->buffers[b], model->buffers[b].name,
                                        model->buffer_data + model->buffers[b].offset),
                               "model %s: ", arch));
    for (int i = 0; i < model->node_count; i++) {
        const rn_node *node = &model->nodes[i];
        char name[RN_NAME_MAX + 32];
        if (node->kind != RN_NODE_BN)
            continue;
        snprintf(name, sizeof name, "%s.num_batches_tracked", node->name);
        const rn_st_tensor *t = rn_safetensors_find(file, name);
        if (!t)
            return rn_error(RN_ERR_FORMAT, "%s: model %s: key '%s' is missing",
                            file->path, arch, name);
        if (t->dtype != RN_DTYPE_I64 || t->nbytes != sizeof(int64_t))
            return rn_error(RN_ERR_FORMAT, "%s: model %s: key '%s' must be an I64 scalar, "
                            "file has %s with %zu bytes", file->path, arch, name,
                            rn_dtype_name(t->dtype), t->nbytes);
        memcpy(&model->num_batches_tracked[node->bn_index], t->data, sizeof(int64_t));
    }
    if (sgd && sgd->momentum_buffer) {
        for (int p = 0; p < model->param_count; p++) {
            char name[RN_NAME_MAX + 32];
            momentum_key(name, sizeof name, model->params[p].name);
            RN_TRY(rn_error_prefix(copy_f32(file, &model->params[p], name,
                                            sgd->momentum_buffer + model->params[p].offset),
                                   "checkpoint for %s: ", arch));
        }
    }
    return RN_OK;
}

rn_status rn_weights_read_class_names(const rn_safetensors *file, int classes, char ***names)
{
    const char *text = rn_safetensors_metadata(file, "class_names");
    rn_json *json = NULL;
    rn_status status = RN_OK;

    *names = calloc((size_t)classes, sizeof **names);
    if (!*names)
        return rn_error(RN_ERR_NOMEM, "cannot allocate %d class names", classes);
    if (text && rn_json_parse(text, strlen(text), &json) == RN_OK &&
        (json->type != RN_JSON_ARRAY || (int)json->item_count != classes)) {
        rn_json_free(json);
        json = NULL;
    }
    for (int k = 0; k < classes && status == RN_OK; k++) {
        char number[16];
        const char *name = number;
        snprintf(number, sizeof number, "%d", k);
        if (json && json->items[k]->type == RN_JSON_STRING)
            name = json->items[k]->string;
        if (!((*names)[k] = strdup(name)))
            status = rn_error(RN_ERR_NOMEM, "cannot allocate the class name '%s'", name);
    }
    rn_json_free(json);
    if (status != RN_OK) {
        rn_class_names_free(*names, classes);
        *names = NULL;
    }
    return status;
}

void rn_class_names_free(char **names, int classes)
{
    for (int k = 0; names && k < classes; k++)
        free(names[k]);
    free(names);
}

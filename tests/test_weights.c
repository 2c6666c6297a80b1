/* Weights files: round trip and every way a file can fail to fit a model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "io/weights.h"
#include "model/model.h"
#include "test.h"

static rn_model *make(const char *arch, int classes, rn_shortcut shortcut)
{
    rn_model_config cfg = {.in_c = 1, .in_h = 28, .in_w = 28, .classes = classes,
                           .shortcut = shortcut};
    snprintf(cfg.arch, sizeof cfg.arch, "%s", arch);
    rn_model *m = NULL;
    CHECK_OK(rn_model_create(&cfg, &m));
    return m;
}

static void save(rn_model *m, const char *name, char *path, size_t size)
{
    snprintf(path, size, "%s/%s", rn_test_tmpdir(), name);
    CHECK_OK(rn_weights_save(m, NULL, NULL, path));
}

/* Load the file at path into m; return the status and keep the message. */
static rn_status load(rn_model *m, const char *path)
{
    rn_safetensors file;
    rn_status status = rn_safetensors_read(path, &file);
    if (status == RN_OK)
        status = rn_weights_apply(m, NULL, &file);
    rn_safetensors_free(&file);
    return status;
}

TEST(weights_round_trip_restores_everything)
{
    rn_model *a = make("resnet20", 10, RN_SHORTCUT_B);
    rn_model *b = make("resnet20", 10, RN_SHORTCUT_B);
    char path[600];
    if (!a || !b)
        return;
    rn_model_init(a, RN_INIT_KAIMING, 0, 1);
    for (size_t i = 0; i < a->buffer_numel; i++)
        a->buffer_data[i] = 0.25f * (float)(i % 7);
    a->num_batches_tracked[3] = 17;
    rn_model_init(b, RN_INIT_XAVIER, 0, 2);
    save(a, "a.safetensors", path, sizeof path);
    CHECK_OK(load(b, path));
    CHECK(memcmp(a->param_data, b->param_data, a->param_numel * sizeof(float)) == 0);
    CHECK(memcmp(a->buffer_data, b->buffer_data, a->buffer_numel * sizeof(float)) == 0);
    CHECK(b->num_batches_tracked[3] == 17);

    rn_safetensors file;
    rn_model_config cfg;
    CHECK_OK(rn_safetensors_read(path, &file));
    CHECK_OK(rn_weights_read_config(&file, &cfg));
    CHECK(strcmp(cfg.arch, "resnet20") == 0);
    CHECK(cfg.in_c == 1);
    CHECK(cfg.in_h == 28);
    CHECK(cfg.classes == 10);
    CHECK(cfg.shortcut == RN_SHORTCUT_B);
    const rn_st_tensor *t = rn_safetensors_find(&file, "layer1.0.bn1.num_batches_tracked");
    CHECK(t != NULL);
    if (t) {
        CHECK(t->dtype == RN_DTYPE_I64);
        CHECK(t->ndim == 0);
    }
    CHECK(rn_safetensors_find(&file, "layer2.0.downsample.0.weight") != NULL);
    rn_safetensors_free(&file);
    rn_model_destroy(a);
    rn_model_destroy(b);
}

TEST(weights_missing_key_is_named)
{
    rn_model *a = make("resnet20", 10, RN_SHORTCUT_A);
    rn_model *b = make("resnet20", 10, RN_SHORTCUT_B);
    char path[600];
    if (!a || !b)
        return;
    save(a, "option_a.safetensors", path, sizeof path);
    CHECK(load(b, path) == RN_ERR_FORMAT);
    CHECK_MSG(strstr(rn_last_error(), "layer2.0.downsample.0.weight") != NULL, "%s",
              rn_last_error());
    rn_model_destroy(a);
    rn_model_destroy(b);
}

TEST(weights_extra_key_is_named)
{
    rn_model *a = make("resnet32", 10, RN_SHORTCUT_A);
    rn_model *b = make("resnet20", 10, RN_SHORTCUT_A);
    char path[600];
    if (!a || !b)
        return;
    save(a, "resnet32.safetensors", path, sizeof path);
    CHECK(load(b, path) == RN_ERR_FORMAT);
    CHECK_MSG(strstr(rn_last_error(), "unexpected key 'layer1.3.") != NULL, "%s",
              rn_last_error());
    rn_model_destroy(a);
    rn_model_destroy(b);
}

TEST(weights_wrong_shape_names_both_shapes)
{
    rn_model *a = make("resnet20", 5, RN_SHORTCUT_A);
    rn_model *b = make("resnet20", 10, RN_SHORTCUT_A);
    char path[600];
    if (!a || !b)
        return;
    save(a, "five_classes.safetensors", path, sizeof path);
    CHECK(load(b, path) == RN_ERR_FORMAT);
    CHECK_MSG(strstr(rn_last_error(), "fc.weight") != NULL, "%s", rn_last_error());
    CHECK_MSG(strstr(rn_last_error(), "[5, 64]") != NULL, "%s", rn_last_error());
    CHECK_MSG(strstr(rn_last_error(), "[10, 64]") != NULL, "%s", rn_last_error());
    rn_model_destroy(a);
    rn_model_destroy(b);
}

TEST(weights_wrong_dtype_is_named)
{
    rn_model *m = make("resnet8", 10, RN_SHORTCUT_A);
    char path[600];
    if (!m)
        return;
    snprintf(path, sizeof path, "%s/f64.safetensors", rn_test_tmpdir());

    /* The model's tensors, with conv1.weight stored as F64. */
    rn_st_writer w;
    rn_st_writer_init(&w);
    double *as_double = calloc(m->params[0].numel, sizeof(double));
    CHECK_OK(rn_st_writer_add(&w, m->params[0].name, RN_DTYPE_F64, m->params[0].ndim,
                              m->params[0].shape, as_double));
    for (int p = 1; p < m->param_count; p++)
        CHECK_OK(rn_st_writer_add(&w, m->params[p].name, RN_DTYPE_F32, m->params[p].ndim,
                                  m->params[p].shape, m->param_data + m->params[p].offset));
    CHECK_OK(rn_st_writer_write(&w, path));
    rn_st_writer_free(&w);
    free(as_double);

    CHECK(load(m, path) == RN_ERR_FORMAT);
    CHECK_MSG(strstr(rn_last_error(), "conv1.weight") != NULL, "%s", rn_last_error());
    CHECK_MSG(strstr(rn_last_error(), "F64") != NULL, "%s", rn_last_error());
    rn_model_destroy(m);
}

TEST(weights_checkpoint_keys_skipped_by_plain_load)
{
    rn_model *m = make("resnet8", 10, RN_SHORTCUT_A);
    char path[600];
    rn_sgd sgd;
    rn_sgd_config cfg = {.momentum = 0.9f};
    if (!m)
        return;
    CHECK(rn_sgd_init(&sgd, &cfg, m->param_numel));
    for (size_t i = 0; i < m->param_numel; i++)
        sgd.momentum_buffer[i] = (float)i;
    snprintf(path, sizeof path, "%s/ckpt.safetensors", rn_test_tmpdir());
    CHECK_OK(rn_weights_save(m, &sgd, NULL, path));
    CHECK_OK(load(m, path));

    rn_safetensors file;
    rn_sgd restored;
    CHECK(rn_sgd_init(&restored, &cfg, m->param_numel));
    CHECK_OK(rn_safetensors_read(path, &file));
    CHECK_OK(rn_weights_apply(m, &restored, &file));
    /* Compare tensor by tensor: the alignment gaps between them are not
     * stored. */
    for (int p = 0; p < m->param_count; p++) {
        size_t offset = m->params[p].offset;
        CHECK_MSG(memcmp(restored.momentum_buffer + offset, sgd.momentum_buffer + offset,
                         m->params[p].numel * sizeof(float)) == 0,
                  "momentum of %s differs", m->params[p].name);
    }
    rn_safetensors_free(&file);
    rn_sgd_free(&sgd);
    rn_sgd_free(&restored);
    rn_model_destroy(m);
}

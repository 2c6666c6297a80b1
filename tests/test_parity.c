/* Parity with PyTorch: each case loads a fixture that tools/make_fixtures.py
 * wrote with Debian's PyTorch (`make fixtures`). It checks the eval and
 * training logits, the loss, every parameter gradient and the BN running
 * statistics after one step. It also checks every state_dict entry after
 * three SGD steps, as the change from the initial state, so that a small
 * learning rate does not hide an error in the update.
 *
 * The reference r is PyTorch's float64 result. One rule covers every
 * float32 tensor t of a group g (logits and loss, gradients, statistics
 * after one step, changes after three steps): element i passes when
 *   |a_i - r_i| <= atol + RTOL * |r_i|,
 *   atol = max(ATOL_SCALE * max over g of |r|, TORCH_FACTOR * E_t),
 * where E_t is the largest error of PyTorch's own float32 result on t. So
 * resnet.c must be about as close to the exact result as PyTorch float32
 * is, and never has to beat 1e-4 of the group's scale. E_t matters only
 * where float32 itself is ill-conditioned: deep networks with BatchNorm in
 * training mode amplify rounding, and a ReLU input that rounds to the
 * other side of zero switches that unit. Int64 tensors must be equal. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "io/safetensors.h"
#include "io/weights.h"
#include "layers/layers.h"
#include "model/model.h"
#include "test.h"
#include "train/sgd.h"

#define RTOL 1e-3
#define ATOL_SCALE 1e-4
#define TORCH_FACTOR 8.0

/* One tensor to compare: `actual` (n floats), minus `base` when base is
 * not NULL, against the reference `name`, minus its initial/ tensor then. */
typedef struct item {
    char name[192];
    const float *actual;
    const float *base;
    size_t n;
} item;

/* A group of tensors that share one scale. */
typedef struct group {
    const char *label;
    item items[4096];
    int count;
    double worst_rel;      /* max |a - r| / scale */
    double worst_ratio;    /* max |a - r| / (atol + RTOL |r|) */
    char worst_name[192];
} group;

static const char *fixture_dir(void)
{
    const char *dir = getenv("RESNET_FIXTURES");
    return dir && *dir ? dir : "build/fixtures";
}

static void add_item(group *g, const char *prefix, const char *key, const float *actual,
                     size_t n, const float *base)
{
    RN_ASSERT(g->count < (int)(sizeof g->items / sizeof g->items[0]));
    item *it = &g->items[g->count++];
    snprintf(it->name, sizeof it->name, "%s%s", prefix, key);
    it->actual = actual;
    it->base = base;
    it->n = n;
}

/* The reference of an item as doubles (minus the initial state for the
 * changes after three steps), or NULL after reporting a missing tensor. */
static double *reference(const rn_safetensors *f, const item *it)
{
    const rn_st_tensor *t = rn_safetensors_find(f, it->name);
    CHECK_MSG(t && t->dtype == RN_DTYPE_F32 && t->nbytes == it->n * sizeof(float),
              "%s: no float32 tensor '%s' of %zu elements", f->path, it->name, it->n);
    if (!t || t->dtype != RN_DTYPE_F32 || t->nbytes != it->n * sizeof(float))
        return NULL;
    const float *base = NULL;
    if (it->base) {
        char key[256];
        snprintf(key, sizeof key, "initial/%s", strchr(it->name, '/') + 1);
        const rn_st_tensor *b = rn_safetensors_find(f, key);
        CHECK_MSG(b && b->nbytes == t->nbytes, "%s: no tensor '%s'", f->path, key);
        if (!b || b->nbytes != t->nbytes)
            return NULL;
        base = b->data;
    }
    double *r = malloc(sizeof(double) * (it->n ? it->n : 1));
    const float *data = t->data;
    for (size_t i = 0; i < it->n; i++)
        r[i] = (double)data[i] - (base ? base[i] : 0.0);
    return r;
}

static void check_group(const rn_safetensors *f, group *g)
{
    double scale = 0.0;
    double **refs = calloc(g->count, sizeof *refs);
    for (int k = 0; k < g->count; k++) {
        refs[k] = reference(f, &g->items[k]);
        for (size_t i = 0; refs[k] && i < g->items[k].n; i++)
            scale = fmax(scale, fabs(refs[k][i]));
    }
    int failures = 0;
    for (int k = 0; k < g->count; k++) {
        const item *it = &g->items[k];
        if (!refs[k])
            continue;
        char key[256];
        snprintf(key, sizeof key, "error/%s", it->name);
        const rn_st_tensor *e = rn_safetensors_find(f, key);
        CHECK_MSG(e && e->dtype == RN_DTYPE_F32 && e->nbytes == 4,
                  "%s: no float32 scalar '%s'", f->path, key);
        double torch_error = e && e->nbytes == 4 ? *(const float *)e->data : 0.0;
        double atol = fmax(ATOL_SCALE * scale, TORCH_FACTOR * torch_error);

        double worst = 0.0, max_diff = 0.0;
        size_t worst_i = 0;
        for (size_t i = 0; i < it->n; i++) {
            double a = (double)it->actual[i] - (it->base ? it->base[i] : 0.0);
            double diff = fabs(a - refs[k][i]);
            double ratio = diff / (atol + RTOL * fabs(refs[k][i]) + 1e-300);
            max_diff = fmax(max_diff, diff);
            if (!(ratio <= worst)) { /* also catches NaN */
                worst = ratio;
                worst_i = i;
            }
        }
        if (worst > 1.0 && failures++ < 5) {
            double a = (double)it->actual[worst_i] - (it->base ? it->base[worst_i] : 0.0);
            rn_test_fail(__FILE__, __LINE__, "%s: '%s'[%zu]%s = %.9g, reference %.9g "
                         "(|diff| %.3g > %.3g + %.0e * |ref|)", f->path, it->name, worst_i,
                         it->base ? " - initial" : "", a, refs[k][worst_i],
                         fabs(a - refs[k][worst_i]), atol, RTOL);
        }
        double rel = scale > 0 ? max_diff / scale : max_diff;
        if (!(rel <= g->worst_rel)) {
            g->worst_rel = rel;
            snprintf(g->worst_name, sizeof g->worst_name, "%s", it->name);
        }
        g->worst_ratio = fmax(g->worst_ratio, worst);
        free(refs[k]);
    }
    CHECK_MSG(failures <= 5, "%s: %d more %s tensors out of tolerance", f->path,
              failures - 5, g->label);
    free(refs);
}

static void print_group(const group *g)
{
    printf("  %s %.1e (%s, %.2f of the tolerance)", g->label, g->worst_rel, g->worst_name,
           g->worst_ratio);
}

static void compare_bn_counters(const rn_safetensors *f, const rn_model *m, const char *prefix)
{
    char key[256];
    for (int i = 0; i < m->node_count; i++) {
        const rn_node *node = &m->nodes[i];
        if (node->kind != RN_NODE_BN)
            continue;
        snprintf(key, sizeof key, "%s%s.num_batches_tracked", prefix, node->name);
        const rn_st_tensor *t = rn_safetensors_find(f, key);
        CHECK_MSG(t && t->dtype == RN_DTYPE_I64 && t->nbytes == 8,
                  "%s: no int64 scalar '%s'", f->path, key);
        if (t && t->dtype == RN_DTYPE_I64 && t->nbytes == 8)
            CHECK_MSG(*(const int64_t *)t->data == m->num_batches_tracked[node->bn_index],
                      "%s: '%s' is %lld, PyTorch %lld", f->path, key,
                      (long long)m->num_batches_tracked[node->bn_index],
                      (long long)*(const int64_t *)t->data);
    }
}

/* Copy the fixture's initial/ state_dict into the model. */
static int load_initial(const rn_safetensors *f, rn_model *m)
{
    char key[256];
    const float *src;
    for (int p = 0; p < m->param_count; p++) {
        const rn_tensor_entry *e = &m->params[p];
        snprintf(key, sizeof key, "initial/%s", e->name);
        if (rn_safetensors_get_f32(f, key, e->ndim, e->shape, &src) != RN_OK) {
            CHECK_MSG(0, "%s", rn_last_error());
            return 0;
        }
        memcpy(m->param_data + e->offset, src, e->numel * sizeof(float));
    }
    for (int b = 0; b < m->buffer_count; b++) {
        const rn_tensor_entry *e = &m->buffers[b];
        snprintf(key, sizeof key, "initial/%s", e->name);
        if (rn_safetensors_get_f32(f, key, e->ndim, e->shape, &src) != RN_OK) {
            CHECK_MSG(0, "%s", rn_last_error());
            return 0;
        }
        memcpy(m->buffer_data + e->offset, src, e->numel * sizeof(float));
    }
    for (int i = 0; i < m->node_count; i++) {
        const rn_node *node = &m->nodes[i];
        if (node->kind != RN_NODE_BN)
            continue;
        snprintf(key, sizeof key, "initial/%s.num_batches_tracked", node->name);
        const rn_st_tensor *t = rn_safetensors_find(f, key);
        if (!t || t->dtype != RN_DTYPE_I64 || t->nbytes != 8) {
            CHECK_MSG(0, "%s: no int64 scalar '%s'", f->path, key);
            return 0;
        }
        m->num_batches_tracked[node->bn_index] = *(const int64_t *)t->data;
    }
    return 1;
}

static double meta_double(const rn_safetensors *f, const char *key)
{
    const char *text = rn_safetensors_metadata(f, key);
    CHECK_MSG(text, "%s: metadata '%s' missing", f->path, key);
    return text ? atof(text) : 0.0;
}

static void add_entries(group *g, const char *prefix, const rn_tensor_entry *entries,
                        int count, const float *data, const float *base)
{
    for (int p = 0; p < count; p++)
        add_item(g, prefix, entries[p].name, data + entries[p].offset, entries[p].numel,
                 base ? base + entries[p].offset : NULL);
}

static void check_case(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.safetensors", fixture_dir(), name);
    rn_safetensors f;
    rn_status status = rn_safetensors_read(path, &f);
    CHECK_MSG(status == RN_OK, "%s (generate the fixtures with `make fixtures`, which "
              "needs Debian's python3-torch and python3-torchvision)", rn_last_error());
    if (status != RN_OK)
        return;

    rn_model_config cfg;
    rn_model *m = NULL;
    rn_plan *plan = NULL;
    CHECK_OK(rn_weights_read_config(&f, &cfg));
    CHECK_OK(rn_model_create(&cfg, &m));
    int mb = (int)meta_double(&f, "batch");
    int classes = cfg.classes;
    if (!m || mb < 1 || !load_initial(&f, m) || rn_plan_create(m, mb, &plan) != RN_OK) {
        CHECK_MSG(0, "%s: cannot set up the model: %s", name, rn_last_error());
        rn_model_destroy(m);
        rn_safetensors_free(&f);
        return;
    }

    const float *images;
    const rn_st_tensor *labels64 = rn_safetensors_find(&f, "labels");
    int64_t in_shape[4] = {mb, cfg.in_c, cfg.in_h, cfg.in_w};
    CHECK_OK(rn_safetensors_get_f32(&f, "input", 4, in_shape, &images));
    CHECK(labels64 != NULL);
    CHECK(labels64 && labels64->dtype == RN_DTYPE_I64);
    CHECK(labels64 && labels64->nbytes == 8 * (size_t)mb);
    int32_t *labels = malloc(sizeof(int32_t) * mb);
    size_t logits_n = (size_t)mb * classes;
    float *diff_logits = malloc(sizeof(float) * logits_n);
    float *logits_eval = malloc(sizeof(float) * logits_n);
    float *logits_train = malloc(sizeof(float) * logits_n);
    float *grads = rn_alloc_aligned(sizeof(float) * m->param_numel);
    float *stats = rn_alloc_aligned(sizeof(float) * m->buffer_numel);
    float *initial_params = rn_alloc_aligned(sizeof(float) * m->param_numel);
    float *initial_stats = rn_alloc_aligned(sizeof(float) * m->buffer_numel);
    memcpy(initial_params, m->param_data, sizeof(float) * m->param_numel);
    memcpy(initial_stats, m->buffer_data, sizeof(float) * m->buffer_numel);
    for (int i = 0; i < mb && labels64; i++)
        labels[i] = (int32_t)((const int64_t *)labels64->data)[i];

    float smoothing = (float)meta_double(&f, "label_smoothing");
    float lr = (float)meta_double(&f, "lr");
    rn_sgd_config sgd_cfg = {.momentum = (float)meta_double(&f, "momentum"),
                             .weight_decay = (float)meta_double(&f, "weight_decay"),
                             .nesterov = 1};
    rn_sgd sgd;
    CHECK(rn_sgd_init(&sgd, &sgd_cfg, m->param_numel));
    int steps = (int)meta_double(&f, "steps");
    float loss_f = 0.0f;

    memcpy(logits_eval, rn_model_forward(m, plan, images, mb, 0), sizeof(float) * logits_n);
    for (int step = 0; step < steps; step++) {
        int correct;
        const float *logits = rn_model_forward(m, plan, images, mb, 1);
        double loss = rn_cross_entropy(diff_logits, &correct, logits, labels, mb, classes,
                                       smoothing);
        rn_model_zero_grad(m);
        rn_model_backward(m, plan, diff_logits);
        if (step == 0) {
            loss_f = (float)loss;
            memcpy(logits_train, logits, sizeof(float) * logits_n);
            memcpy(grads, m->grad_data, sizeof(float) * m->param_numel);
            memcpy(stats, m->buffer_data, sizeof(float) * m->buffer_numel);
            compare_bn_counters(&f, m, "step1/");
        }
        rn_sgd_step(&sgd, m->param_data, m->grad_data, lr);
    }
    compare_bn_counters(&f, m, "step3/");

    static group outputs, gradients, statistics, changes;
    group *groups[] = {&outputs, &gradients, &statistics, &changes};
    const char *labels_text[] = {"logits", "gradients", "BN statistics", "3-step changes"};
    for (int k = 0; k < 4; k++) {
        memset(groups[k], 0, sizeof *groups[k]);
        groups[k]->label = labels_text[k];
    }
    add_item(&outputs, "", "logits_eval", logits_eval, logits_n, NULL);
    add_item(&outputs, "", "logits_train", logits_train, logits_n, NULL);
    add_item(&outputs, "", "loss", &loss_f, 1, NULL);
    add_entries(&gradients, "grad/", m->params, m->param_count, grads, NULL);
    add_entries(&statistics, "step1/", m->buffers, m->buffer_count, stats, NULL);
    add_entries(&changes, "step3/", m->params, m->param_count, m->param_data, initial_params);
    add_entries(&changes, "step3/", m->buffers, m->buffer_count, m->buffer_data,
                initial_stats);
    printf("     %s:", name);
    for (int k = 0; k < 4; k++) {
        check_group(&f, groups[k]);
        print_group(groups[k]);
    }
    printf("\n");

    rn_sgd_free(&sgd);
    free(labels);
    free(diff_logits);
    free(logits_eval);
    free(logits_train);
    rn_free_aligned(grads);
    rn_free_aligned(stats);
    rn_free_aligned(initial_params);
    rn_free_aligned(initial_stats);
    rn_plan_destroy(plan);
    rn_model_destroy(m);
    rn_safetensors_free(&f);
}

TEST(parity_d2l_resnet18) { check_case("d2l-resnet18"); }
TEST(parity_resnet20_option_a) { check_case("resnet20"); }
TEST(parity_resnet20_option_b) { check_case("resnet20-B"); }
TEST(parity_plain20) { check_case("plain20"); }
TEST(parity_resnet18) { check_case("resnet18"); }
TEST(parity_resnet50) { check_case("resnet50"); }
TEST(parity_resnext50_32x4d) { check_case("resnext50_32x4d"); }
TEST(parity_preact_resnet20) { check_case("preact-resnet20"); }
TEST(parity_preact_resnet164) { check_case("preact-resnet164"); }

/* ------------------------------------------------------------- round trip */

/* Give the BN layers non-trivial running statistics and affine parameters,
 * so that eval-mode logits depend on every buffer. */
static void randomize_batchnorm(rn_model *m, uint64_t seed)
{
    for (int i = 0; i < m->node_count; i++) {
        const rn_node *node = &m->nodes[i];
        if (node->kind != RN_NODE_BN)
            continue;
        const rn_tensor_entry *gamma = &m->params[node->weights];
        const rn_tensor_entry *beta = &m->params[node->bias];
        const rn_tensor_entry *mean = &m->buffers[node->running_mean];
        const rn_tensor_entry *var = &m->buffers[node->running_var];
        for (size_t c = 0; c < gamma->numel; c++) {
            uint64_t h = seed * 1000003u + (uint64_t)i * 4096 + c;
            m->param_data[gamma->offset + c] = 0.5f + (h % 97) / 97.0f;
            m->param_data[beta->offset + c] = ((h / 97) % 89) / 445.0f - 0.1f;
            m->buffer_data[mean->offset + c] = ((h / 8633) % 83) / 415.0f - 0.1f;
            m->buffer_data[var->offset + c] = 0.5f + ((h / 716539) % 79) / 79.0f;
        }
        m->num_batches_tracked[node->bn_index] = 7;
    }
}

/* Write the model's weights and one batch of eval-mode logits, and append
 * the two paths to `command`, which runs tools/check_roundtrip.py to load
 * each file into PyTorch (strict) and compare the logits. */
static void write_roundtrip(char *command, size_t size, const char *arch, int c, int h,
                            int w, int stride_in_1x1)
{
    rn_model_config cfg = {.in_c = c, .in_h = h, .in_w = w, .classes = 7,
                           .shortcut = RN_SHORTCUT_DEFAULT, .stride_in_1x1 = stride_in_1x1};
    snprintf(cfg.arch, sizeof cfg.arch, "%s", arch);
    rn_model *m = NULL;
    rn_plan *plan = NULL;
    enum { MB = 2 };
    CHECK_OK(rn_model_create(&cfg, &m));
    if (!m)
        return;
    rn_model_init(m, RN_INIT_KAIMING, 0, 11);
    randomize_batchnorm(m, 5);
    CHECK_OK(rn_plan_create(m, MB, &plan));

    size_t numel = (size_t)MB * c * h * w;
    float *images = malloc(sizeof(float) * numel);
    for (size_t i = 0; i < numel; i++)
        images[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    const float *logits = rn_model_forward(m, plan, images, MB, 0);

    char weights[512], io[512];
    snprintf(weights, sizeof weights, "%s/%s-roundtrip.safetensors", rn_test_tmpdir(), arch);
    snprintf(io, sizeof io, "%s/%s-roundtrip-io.safetensors", rn_test_tmpdir(), arch);
    CHECK_OK(rn_weights_save(m, NULL, NULL, weights));
    rn_st_writer writer;
    rn_st_writer_init(&writer);
    int64_t in_shape[4] = {MB, c, h, w}, out_shape[2] = {MB, cfg.classes};
    CHECK_OK(rn_st_writer_add(&writer, "input", RN_DTYPE_F32, 4, in_shape, images));
    CHECK_OK(rn_st_writer_add(&writer, "logits", RN_DTYPE_F32, 2, out_shape, logits));
    CHECK_OK(rn_st_writer_write(&writer, io));
    rn_st_writer_free(&writer);

    size_t len = strlen(command);
    snprintf(command + len, size - len, " '%s' '%s'", weights, io);

    free(images);
    rn_plan_destroy(plan);
    rn_model_destroy(m);
}

TEST(roundtrip_into_pytorch)
{
    char command[8192];
    const char *python = getenv("RESNET_PYTHON");
    snprintf(command, sizeof command, "%s tools/check_roundtrip.py",
             python && *python ? python : "/usr/bin/python3");
    write_roundtrip(command, sizeof command, "resnet20", 3, 16, 16, 0);
    write_roundtrip(command, sizeof command, "plain20", 1, 16, 16, 0);
    write_roundtrip(command, sizeof command, "d2l-resnet18", 1, 32, 32, 0);
    write_roundtrip(command, sizeof command, "preact-resnet20", 3, 16, 16, 0);
    write_roundtrip(command, sizeof command, "preact-resnet164", 3, 8, 8, 0);
    write_roundtrip(command, sizeof command, "resnet18", 3, 32, 32, 0);
    write_roundtrip(command, sizeof command, "resnet50", 3, 32, 32, 1);
    write_roundtrip(command, sizeof command, "resnext50_32x4d", 3, 32, 32, 0);
    int rc = system(command);
    CHECK_MSG(rc == 0, "`%s` failed (status %d); it needs Debian's python3-torch and "
              "python3-torchvision", command, rc);
}

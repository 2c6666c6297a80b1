/* Identity mappings: a residual block whose branch outputs zero passes its
 * input through unchanged, and trained blocks stay close to the identity. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "experiments/common.h"
#include "layers/layers.h"
#include "report/plot.h"

/* Default budget: two resnet56 runs of 5 epochs on 12,000 training images,
 * tested on 2,000: an estimated 10 minutes on the reference machine of
 * docs/benchmarks.md. */
enum { DEFAULT_DEPTH = 56, DEFAULT_EPOCHS = 5, DEFAULT_TRAIN = 12000, DEFAULT_TEST = 2000,
       FULL_EPOCHS = 8, MEASURE_MB = 128 };

static size_t numel_of(const rn_model *model, int mb, int v)
{
    const rn_value *value = &model->values[v];
    return (size_t)mb * value->c * value->h * value->w;
}

int rn_identity_blocks_exact(const rn_model *model, const rn_plan *plan, int mb, int *exact)
{
    int blocks = 0;
    *exact = 0;
    for (int i = 0; i < model->node_count; i++) {
        const rn_node *add = &model->nodes[i];
        if (add->kind != RN_NODE_ADD)
            continue;
        int relu = exp_reader(model, add->dst);
        RN_ASSERT(relu >= 0 && model->nodes[relu].kind == RN_NODE_RELU);
        blocks++;
        const float *out = rn_plan_value(plan, model->nodes[relu].dst);
        const float *identity = rn_plan_value(plan, add->src2);
        if (!memcmp(out, identity, numel_of(model, mb, add->dst) * sizeof(float)))
            (*exact)++;
    }
    return blocks;
}

rn_status rn_identity_stem_head(const rn_model *model, const rn_plan *plan, int mb,
                                float *out)
{
    int stem = -1, pool = -1, fc = -1;
    size_t max_numel = 0;

    for (int i = 0; i < model->node_count; i++) {
        const rn_node *node = &model->nodes[i];
        if (node->kind == RN_NODE_RELU && stem < 0)
            stem = i;
        if (node->kind == RN_NODE_AVGPOOL)
            pool = i;
        if (node->kind == RN_NODE_LINEAR)
            fc = i;
        if (node->kind == RN_NODE_CONV && node->kh == 1)
            return rn_error(RN_ERR_INVALID, "%s has projection shortcuts, so its stem plus "
                            "head is not the function of zero residual branches; use "
                            "option A", model->config.arch);
        if (numel_of(model, mb, node->dst) > max_numel)
            max_numel = numel_of(model, mb, node->dst);
    }
    if (stem < 0 || pool < 0 || fc < 0)
        return rn_error(RN_ERR_INVALID, "%s is not a CIFAR residual net", model->config.arch);

    float *a = malloc(max_numel * sizeof(float)), *b = malloc(max_numel * sizeof(float));
    if (!a || !b) {
        free(a);
        free(b);
        return rn_error(RN_ERR_NOMEM, "out of memory");
    }
    /* The stem output, through the shortcuts where the shape changes. */
    int v = model->nodes[stem].dst;
    memcpy(a, rn_plan_value(plan, v), numel_of(model, mb, v) * sizeof(float));
    for (int i = 0; i < model->node_count; i++) {
        const rn_node *node = &model->nodes[i];
        if (node->kind != RN_NODE_SHORTCUT_A)
            continue;
        rn_value in = model->values[node->src], outv = model->values[node->dst];
        rn_shortcut_a_forward(b, a, mb, in.c, in.h, in.w, outv.c, node->stride);
        float *t = a;
        a = b;
        b = t;
        v = node->dst;
    }
    /* The head: global average pooling and the classifier. */
    rn_value last = model->values[v];
    rn_avgpool_global_forward(b, a, mb, last.c, last.h * last.w);
    const rn_node *linear = &model->nodes[fc];
    rn_linear_forward(out, b, model->param_data + model->params[linear->weights].offset,
                      model->param_data + model->params[linear->bias].offset, mb, last.c,
                      model->values[linear->dst].c);
    free(a);
    free(b);
    return RN_OK;
}

/* ------------------------------------------------------------ experiment */

typedef struct exactness {
    int blocks, exact_train, exact_eval;
    int logits_equal;
    double max_difference;
} exactness;

/* The zero-initialized net in training and evaluation mode. */
static rn_status check_zero_init(const rn_experiment_options *o, const char *arch,
                                 const float *images, int mb, int c, int h, int w,
                                 exactness *result)
{
    rn_model_config mc = {.in_c = c, .in_h = h, .in_w = w, .classes = 10,
                          .shortcut = RN_SHORTCUT_DEFAULT};
    rn_model *model;
    rn_plan *plan = NULL;
    float *expected = NULL;

    snprintf(mc.arch, sizeof mc.arch, "%s", arch);
    RN_TRY(rn_model_create(&mc, &model));
    rn_model_init(model, RN_INIT_KAIMING, 1, o->seed);
    rn_status status = rn_plan_create_keeping_values(model, mb, &plan);
    if (status == RN_OK && !(expected = malloc((size_t)mb * 10 * sizeof(float))))
        status = rn_error(RN_ERR_NOMEM, "out of memory");
    result->logits_equal = 1;
    result->max_difference = 0.0;
    for (int train = 1; train >= 0 && status == RN_OK; train--) {
        const float *logits = rn_model_forward(model, plan, images, mb, train);
        int exact;
        result->blocks = rn_identity_blocks_exact(model, plan, mb, &exact);
        if (train)
            result->exact_train = exact;
        else
            result->exact_eval = exact;
        status = rn_identity_stem_head(model, plan, mb, expected);
        for (int i = 0; i < mb * 10 && status == RN_OK; i++) {
            double d = fabs((double)logits[i] - expected[i]);
            result->max_difference = fmax(result->max_difference, d);
        }
        if (status == RN_OK && memcmp(logits, expected, (size_t)mb * 10 * sizeof(float)))
            result->logits_equal = 0;
    }
    free(expected);
    rn_plan_destroy(plan);
    rn_model_destroy(model);
    return status;
}

/* ||F(x)|| / ||x|| per block: F(x) is the residual branch (the first input
 * of the addition), x the identity or shortcut branch. */
static rn_status block_ratios(const rn_experiment_options *o, const char *arch,
                              const char *run_dir, const float *images, int mb, int c,
                              int h, int w, int train_mode, double *ratios, int *count)
{
    rn_model *model;
    rn_plan *plan;
    RN_TRY(exp_model(arch, c, h, w, o, NULL, run_dir, &model));
    rn_status status = rn_plan_create_keeping_values(model, mb, &plan);
    if (status == RN_OK) {
        rn_model_forward(model, plan, images, mb, train_mode);
        *count = 0;
        for (int i = 0; i < model->node_count; i++) {
            const rn_node *add = &model->nodes[i];
            if (add->kind != RN_NODE_ADD)
                continue;
            double f = exp_value_norm(model, plan, mb, add->src);
            double x = exp_value_norm(model, plan, mb, add->src2);
            ratios[(*count)++] = x > 0 ? f / x : NAN;
        }
        rn_plan_destroy(plan);
    }
    rn_model_destroy(model);
    return status;
}

static void ratio_range(const double *r, int n, double *mean, double *lo, double *hi)
{
    double sum = 0.0;
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int i = 0; i < n; i++) {
        sum += r[i];
        *lo = fmin(*lo, r[i]);
        *hi = fmax(*hi, r[i]);
    }
    *mean = n ? sum / n : NAN;
}

enum { RATIO_SETS = 3, BLOCKS_MAX = 1024 };
/* "‖F(x)‖ / ‖x‖" in UTF-8. */
#define NORM_RATIO "\xe2\x80\x96" "F(x)" "\xe2\x80\x96 / \xe2\x80\x96" "x" "\xe2\x80\x96"
static const char *const RATIO_LABELS[RATIO_SETS] = {
    "Kaiming init, at initialization", "Kaiming init, trained", "zero-init residual, trained",
};

static rn_status write_outputs(const rn_experiment_options *o, const char *arch,
                               const exactness *ex, double ratios[][BLOCKS_MAX],
                               const int *diverged, int blocks, int epochs,
                               int64_t train_count, int64_t test_count)
{
    static double x[BLOCKS_MAX];
    rn_strbuf csv = {0}, s = {0};
    rn_series series[RATIO_SETS];
    static const rn_line_style styles[RATIO_SETS] = {RN_LINE_DOTTED, RN_LINE_SOLID,
                                                     RN_LINE_DASHED};
    char path[1100], title[128], train_text[32], test_text[32];

    rn_strbuf_appendf(&csv, "block,ratio_init,ratio_trained,ratio_trained_zero_init\n");
    for (int b = 0; b < blocks; b++) {
        x[b] = b + 1;
        rn_strbuf_appendf(&csv, "%d,%.6g,%.6g,%.6g\n", b + 1, ratios[0][b], ratios[1][b],
                          ratios[2][b]);
    }
    for (int k = 0; k < RATIO_SETS; k++) {
        series[k] = (rn_series){.x = x, .y = ratios[k], .n = blocks, .color = k,
                                .style = styles[k], .markers = blocks <= 60};
        snprintf(series[k].label, sizeof series[k].label, "%s", RATIO_LABELS[k]);
    }
    snprintf(title, sizeof title, "%s: " NORM_RATIO " per residual block", arch);
    rn_panel panel = {.xlabel = "block index (input to output)", .ylabel = NORM_RATIO,
                      .x_integer = 1, .series = series, .series_count = RATIO_SETS};
    snprintf(path, sizeof path, "%s/identity.svg", o->out_dir);
    rn_status status = rn_plot_write(path, title, &panel, 1, 1);

    exp_count_text(train_text, sizeof train_text, train_count);
    exp_count_text(test_text, sizeof test_text, test_count);
    rn_strbuf_appendf(&s, "identity: %s, option-A shortcuts\n\n", arch);
    rn_strbuf_appendf(&s, "With every block's last BN scale (gamma) at zero "
                      "(--zero-init-residual), at initialization:\n");
    rn_strbuf_appendf(&s, "  training mode:   %d of %d blocks output exactly their identity "
                      "branch, bit for bit\n", ex->exact_train, ex->blocks);
    rn_strbuf_appendf(&s, "  evaluation mode: %d of %d blocks output exactly their identity "
                      "branch, bit for bit\n", ex->exact_eval, ex->blocks);
    rn_strbuf_appendf(&s, "  the logits %s those of the stem plus head\n  (stem, option-A "
                      "shortcuts, average pooling, classifier): max |difference| %.3g\n\n",
                      ex->logits_equal ? "EQUAL, bit for bit," : "DIFFER from",
                      ex->max_difference);
    rn_strbuf_appendf(&s, "||F(x)|| / ||x|| per block, F(x) the residual branch before the "
                      "addition and x the\nidentity branch, over %d test images: at "
                      "initialization in training mode, after\ntraining (%d epochs on %s "
                      "training images, tested on %s) in evaluation mode.\n", MEASURE_MB,
                      epochs, train_text, test_text);
    rn_strbuf_appendf(&s, "  %-34s %8s %8s %8s\n", "", "mean", "min", "max");
    for (int k = 0; k < RATIO_SETS; k++) {
        double mean, lo, hi;
        ratio_range(ratios[k], blocks, &mean, &lo, &hi);
        rn_strbuf_appendf(&s, "  %-34s %8.3f %8.3f %8.3f%s\n", RATIO_LABELS[k], mean, lo, hi,
                          k > 0 && diverged[k - 1] ? "  (diverged)" : "");
    }
    rn_strbuf_appendf(&s, "\nA ratio well below 1 means the block adds a small correction "
                      "to its input,\nso the learned mapping stays close to the "
                      "identity.\n");

    if (status == RN_OK)
        status = csv.data && s.data ? exp_write(o->out_dir, "identity.csv", &csv)
                                    : rn_error(RN_ERR_NOMEM, "out of memory");
    if (status == RN_OK)
        status = exp_write(o->out_dir, "summary.txt", &s);
    rn_strbuf_free(&csv);
    rn_strbuf_free(&s);
    return status;
}

rn_status rn_experiment_identity(const rn_experiment_options *o)
{
    static double ratios[RATIO_SETS][BLOCKS_MAX];
    int depth = o->depth_count > 0 ? o->depths[0] : DEFAULT_DEPTH;
    int epochs = (int)exp_pick(o->epochs, o->full ? FULL_EPOCHS : DEFAULT_EPOCHS);
    int64_t train_count = exp_pick(o->train_limit, o->full ? 0 : DEFAULT_TRAIN);
    int64_t test_count = exp_pick(o->test_limit, o->full ? 0 : DEFAULT_TEST);
    int diverged[2] = {0, 0}, blocks = 0;
    float *images = NULL;
    int32_t *labels = NULL;
    int c, h, w;
    char arch[32];
    exactness ex = {0};

    if (o->depth_count > 1)
        return rn_error(RN_ERR_INVALID, "the identity experiment uses one depth, such as "
                        "--depths 56");
    if (o->no_bn)
        return rn_error(RN_ERR_INVALID, "the identity experiment needs BN, whose scale it "
                        "sets to zero; --no-bn applies to the gradients experiment");
    exp_arch(arch, sizeof arch, "resnet", depth, 0);
    if ((depth - 2) / 6 * 3 > BLOCKS_MAX)
        return rn_error(RN_ERR_INVALID, "depth %d has more than %d blocks", depth, BLOCKS_MAX);
    RN_TRY(exp_prepare_out(o->out_dir));
    rn_status status = exp_fixed_batch(o, 0, MEASURE_MB, &images, &labels, &c, &h, &w);

    if (status == RN_OK) {
        exp_log(o, "%s: checking that zero residual branches give the identity", arch);
        status = check_zero_init(o, arch, images, MEASURE_MB, c, h, w, &ex);
    }
    if (status == RN_OK)
        status = block_ratios(o, arch, NULL, images, MEASURE_MB, c, h, w, 1, ratios[0],
                              &blocks);
    for (int zero_init = 0; zero_init < 2 && status == RN_OK; zero_init++) {
        rn_train_config config;
        exp_run run;
        char name[64];
        snprintf(name, sizeof name, "%s%s", arch, zero_init ? "-zero-init" : "");
        exp_train_config(o, &config, arch, epochs, train_count, test_count, name);
        config.zero_init_residual = zero_init;
        status = exp_train(o, &config, NULL, name, &run);
        diverged[zero_init] = run.diverged;
        if (status == RN_OK && run.diverged) {
            for (int b = 0; b < blocks; b++)
                ratios[1 + zero_init][b] = NAN;
        } else if (status == RN_OK) {
            status = block_ratios(o, arch, config.output_dir, images, MEASURE_MB, c, h, w, 0,
                                  ratios[1 + zero_init], &blocks);
        }
    }
    if (status == RN_OK)
        status = write_outputs(o, arch, &ex, ratios, diverged, blocks, epochs, train_count,
                               test_count);
    free(images);
    free(labels);
    return status;
}

/* Model construction, sizes and end-to-end gradients. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/status.h"
#include "kernels/gemm.h"
#include "layers/conv_winograd.h"
#include "layers/layers.h"
#include "model/graph.h"
#include "model/model.h"
#include "test.h"

static rn_model *create(const char *arch, int c, int h, int w, rn_shortcut shortcut)
{
    rn_model_config cfg = {.in_c = c, .in_h = h, .in_w = w, .classes = 10,
                           .shortcut = shortcut};
    snprintf(cfg.arch, sizeof cfg.arch, "%s", arch);
    rn_model *m = NULL;
    CHECK_OK(rn_model_create(&cfg, &m));
    return m;
}

static int64_t count_params(const rn_model *m)
{
    int64_t total = 0;
    for (int p = 0; p < m->param_count; p++)
        total += (int64_t)m->params[p].numel;
    return total;
}

static int64_t count_macs(const rn_model *m)
{
    int64_t total = 0;
    for (int i = 0; i < m->node_count; i++)
        total += rn_node_macs(m, i);
    return total;
}

TEST(model_d2l_resnet18_size)
{
    rn_model *m = create("d2l-resnet18", 1, 96, 96, RN_SHORTCUT_DEFAULT);
    if (!m)
        return;
    /* PyTorch: sum(p.numel() for p in net.parameters()) of the book's net. */
    CHECK(count_params(m) == 11178378);
    /* Conv and linear multiply-accumulates at 1x96x96: about 318.7 M. */
    CHECK_MSG(llabs(count_macs(m) - 318700000) < 100000, "MACs %lld", (long long)count_macs(m));
    CHECK(strcmp(m->params[0].name, "0.0.weight") == 0);
    CHECK(strcmp(m->params[m->param_count - 1].name, "7.bias") == 0);
    rn_model_destroy(m);
}

TEST(model_resnet20_option_a_size)
{
    rn_model *m = create("resnet20", 3, 32, 32, RN_SHORTCUT_A);
    if (!m)
        return;
    CHECK(count_params(m) == 269722);
    CHECK(m->bn_count == 19);
    rn_model_destroy(m);
}

TEST(model_cifar_depths_and_shortcuts)
{
    /* Depth 6n+2 has 6n+1 convolutions with option A, plus 2 projections
     * with option B and 3n with option C. */
    const char *names[] = {"resnet20", "resnet32", "resnet44", "resnet56", "resnet110"};
    for (int k = 0; k < 5; k++) {
        int n = (atoi(names[k] + 6) - 2) / 6;
        int expected[3] = {6 * n + 1, 6 * n + 3, 9 * n + 1};
        for (int option = RN_SHORTCUT_A; option <= RN_SHORTCUT_C; option++) {
            rn_model *m = create(names[k], 3, 32, 32, option);
            if (!m)
                continue;
            int convs = 0;
            for (int i = 0; i < m->node_count; i++)
                convs += m->nodes[i].kind == RN_NODE_CONV;
            CHECK_MSG(convs == expected[option], "%s option %s: %d convolutions, expected %d",
                      names[k], rn_shortcut_name(option), convs, expected[option]);
            rn_model_destroy(m);
        }
    }
}

TEST(model_plain_has_no_additions)
{
    rn_model *m = create("plain20", 1, 28, 28, RN_SHORTCUT_DEFAULT);
    if (!m)
        return;
    for (int i = 0; i < m->node_count; i++) {
        CHECK(m->nodes[i].kind != RN_NODE_ADD);
        CHECK(m->nodes[i].kind != RN_NODE_SHORTCUT_A);
    }
    /* The option-A resnet20 at 3 channels has 269,722; one input channel
     * removes 16 x 2 x 3 x 3 stem weights. */
    CHECK(count_params(m) == 269722 - 288);
    rn_model_destroy(m);
}

TEST(model_rejects_bad_names_and_shapes)
{
    rn_model_config cfg = {.in_c = 1, .in_h = 28, .in_w = 28, .classes = 10,
                           .shortcut = RN_SHORTCUT_DEFAULT};
    rn_model *m = NULL;
    const char *bad[] = {"resnet21", "resnet", "resnet20x", "vgg16", "plain-20", ""};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        snprintf(cfg.arch, sizeof cfg.arch, "%s", bad[k]);
        CHECK(rn_model_create(&cfg, &m) == RN_ERR_INVALID);
        CHECK(m == NULL);
    }
    snprintf(cfg.arch, sizeof cfg.arch, "d2l-resnet18");
    cfg.in_h = cfg.in_w = 8; /* too small after the stem, pool and 3 strides? */
    CHECK(rn_model_create(&cfg, &m) == RN_OK);
    rn_model_destroy(m);
    cfg.in_h = cfg.in_w = 0;
    CHECK(rn_model_create(&cfg, &m) == RN_ERR_INVALID);
    cfg.in_h = cfg.in_w = 28;
    cfg.classes = 1;
    CHECK(rn_model_create(&cfg, &m) == RN_ERR_INVALID);
    CHECK(strstr(rn_last_error(), "class") != NULL);
}

/* Loss of the model on a fixed batch, in training mode, evaluated in float
 * with the loss accumulated in double. Running statistics are restored so
 * that repeated calls see the same model. */
static double model_loss(rn_model *m, rn_plan *plan, const float *x,
                         const int32_t *labels, int mb, float *diff_logits)
{
    float *saved = malloc(m->buffer_numel * sizeof(float));
    memcpy(saved, m->buffer_data, m->buffer_numel * sizeof(float));
    const float *logits = rn_model_forward(m, plan, x, mb, 1);
    double loss = rn_cross_entropy(diff_logits, NULL, logits, labels, mb,
                                   m->config.classes, 0.0f);
    memcpy(m->buffer_data, saved, m->buffer_numel * sizeof(float));
    free(saved);
    return loss;
}

/* Whole-model check: back-propagated gradients against central differences
 * of the float forward pass. Float rounding limits this check to a loose
 * tolerance; the per-layer checks are the precise ones. */
static void check_model_gradients(const char *arch, int c, int h, int w,
                                  rn_shortcut shortcut, int param_stride)
{
    rn_model *m = create(arch, c, h, w, shortcut);
    if (!m)
        return;
    rn_model_init(m, RN_INIT_KAIMING, 0, 7);
    int mb = 4;
    rn_plan *plan = NULL;
    CHECK_OK(rn_plan_create(m, mb, &plan));
    size_t n = (size_t)mb * c * h * w;
    float *x = malloc(n * sizeof(float));
    float diff_logits[4 * 10];
    int32_t labels[4] = {1, 3, 5, 7};
    rn_rng rng;
    rn_rng_seed(&rng, 3);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)rn_rng_normal(&rng);

    rn_model_zero_grad(m);
    model_loss(m, plan, x, labels, mb, diff_logits);
    rn_model_backward(m, plan, diff_logits);

    int failures = 0, checked = 0, skipped = 0;
    for (int p = 0; p < m->param_count; p += param_stride) {
        const rn_tensor_entry *e = &m->params[p];
        for (int j = 0; j < (param_stride > 1 ? 1 : 3); j++) {
            size_t k = e->offset + (size_t)(rn_rng_below(&rng, (uint32_t)e->numel));
            float saved = m->param_data[k];
            double numeric[2];
            /* Two step sizes: where they disagree, a ReLU input crossed zero
             * inside the interval and the difference quotient is not a
             * derivative, so that element is skipped. */
            for (int r = 0; r < 2; r++) {
                float step = (r ? 4e-4f : 2e-4f) * fmaxf(1.0f, fabsf(saved));
                m->param_data[k] = saved + step;
                double plus = model_loss(m, plan, x, labels, mb, NULL);
                m->param_data[k] = saved - step;
                double minus = model_loss(m, plan, x, labels, mb, NULL);
                m->param_data[k] = saved;
                numeric[r] = (plus - minus) / (2.0 * step);
            }
            if (fabs(numeric[0] - numeric[1]) > 1e-3 + 2e-2 * fabs(numeric[0])) {
                skipped++;
                continue;
            }
            double analytic = m->grad_data[k];
            checked++;
            if (fabs(numeric[0] - analytic) > 5e-3 + 5e-2 * fabs(numeric[0])) {
                failures++;
                rn_test_fail(__FILE__, __LINE__, "%s %s[%zu]: analytic %.6g, numeric %.6g",
                             arch, e->name, k - e->offset, analytic, numeric[0]);
                if (failures > 5)
                    goto out;
            }
        }
    }
out:
    /* Small batches through deep stages leave BN layers with a handful of
     * values each, where kinks are common; enough elements must remain. */
    CHECK_MSG(checked >= 10 && checked >= skipped / 2,
              "%s: %d elements checked, %d skipped at ReLU kinks", arch, checked, skipped);
    free(x);
    rn_plan_destroy(plan);
    rn_model_destroy(m);
}

TEST(model_gradients_resnet8_option_a)
{
    check_model_gradients("resnet8", 2, 9, 9, RN_SHORTCUT_A, 1);
}

TEST(model_gradients_resnet8_option_c)
{
    check_model_gradients("resnet8", 1, 8, 8, RN_SHORTCUT_C, 1);
}

TEST(model_gradients_plain8)
{
    check_model_gradients("plain8", 1, 8, 8, RN_SHORTCUT_NONE, 1);
}

TEST(model_gradients_preact_resnet8)
{
    /* The first BN of each block shares its input with the shortcut, so
     * the two write that input's gradient in turn. */
    check_model_gradients("preact-resnet8", 2, 8, 8, RN_SHORTCUT_DEFAULT, 1);
}

TEST(model_gradients_d2l_resnet18)
{
    /* Every third tensor, one element each, to keep the 11 M-parameter model
     * fast. */
    check_model_gradients("d2l-resnet18", 1, 32, 32, RN_SHORTCUT_DEFAULT, 3);
}

TEST(model_eval_matches_train_after_bn_settles)
{
    /* An eval-mode forward pass must leave the running statistics and the
     * batch counter unchanged; a training-mode pass must update both. */
    rn_model *m = create("resnet8", 1, 8, 8, RN_SHORTCUT_A);
    if (!m)
        return;
    rn_plan *plan = NULL;
    CHECK_OK(rn_plan_create(m, 2, &plan));
    float x[2 * 64];
    for (int i = 0; i < 128; i++)
        x[i] = (float)(i % 7) - 3.0f;
    float *before = malloc(m->buffer_numel * sizeof(float));
    memcpy(before, m->buffer_data, m->buffer_numel * sizeof(float));
    rn_model_forward(m, plan, x, 2, 0);
    CHECK(memcmp(before, m->buffer_data, m->buffer_numel * sizeof(float)) == 0);
    CHECK(m->num_batches_tracked[0] == 0);
    rn_model_forward(m, plan, x, 2, 1);
    CHECK(memcmp(before, m->buffer_data, m->buffer_numel * sizeof(float)) != 0);
    CHECK(m->num_batches_tracked[0] == 1);
    free(before);
    rn_plan_destroy(plan);
    rn_model_destroy(m);
}

/* Set running statistics near those of the layer inputs: means of a few
 * hundredths, variances near 1. Means of 0.5 made ResNet-50's activations
 * die out, so that its logits were the final bias and missed any rounding
 * difference of the folded layers. */
static void set_running_stats(rn_model *m)
{
    for (int b = 0; b < m->buffer_count; b++) {
        const rn_tensor_entry *e = &m->buffers[b];
        int mean = strstr(e->name, "running_mean") != NULL;
        for (size_t i = 0; i < e->numel; i++)
            m->buffer_data[e->offset + i] =
                mean ? 0.01f * (float)((int)(i % 13) - 6) : 0.8f + 0.03f * (float)(i % 11);
    }
}

/* Count the logits of the inference plan that differ from the training
 * plan's in evaluation mode by more than tolerance times the largest
 * magnitude (0: bit for bit, a NaN matching any NaN). */
static int differing_logits(rn_model *m, rn_plan *train, rn_plan *infer, const float *x,
                            int mb, double tolerance)
{
    int n = mb * m->config.classes;
    float *expected = malloc((size_t)n * sizeof(float));
    memcpy(expected, rn_model_forward(m, train, x, mb, 0), (size_t)n * sizeof(float));
    const float *actual = rn_model_forward(m, infer, x, mb, 0);
    double largest = 0.0;
    for (int i = 0; i < n; i++)
        largest = fmax(largest, fabs(expected[i]));
    int differ = 0;
    for (int i = 0; i < n; i++) {
        if (isnan(expected[i]) && isnan(actual[i]))
            continue;
        if (tolerance == 0.0)
            differ += memcmp(expected + i, actual + i, sizeof(float)) != 0;
        else
            differ += !(fabs(expected[i] - actual[i]) <= tolerance * largest);
    }
    free(expected);
    return differ;
}

/* An inference plan reuses activation memory and folds BN, additions and
 * ReLUs into the convolutions. With the convolutions on the same paths, its
 * logits equal those of a training plan in evaluation mode, bit for bit.
 * With Winograd on, the inference plan takes it on planes where the
 * training plan computes directly, so the logits agree to rounding. */
/* Return numel floats of a fixed pattern in [-1, 1], for the caller to free. */
static float *patterned_images(size_t numel)
{
    float *x = malloc(numel * sizeof(float));
    for (size_t i = 0; x && i < numel; i++)
        x[i] = (float)((i * 7919) % 17) / 8.0f - 1.0f;
    return x;
}

static void check_inference_plan(const char *arch, int c, int h, int w, rn_shortcut shortcut)
{
    rn_model *m = create(arch, c, h, w, shortcut);
    if (!m)
        return;
    rn_model_init(m, RN_INIT_KAIMING, 0, 3);
    set_running_stats(m);
    int mb = 3, classes = m->config.classes;
    size_t numel = (size_t)mb * c * h * w;
    float *x = patterned_images(numel);
    rn_plan *train = NULL, *infer = NULL;
    CHECK_OK(rn_plan_create(m, mb, &train));
    CHECK_OK(rn_plan_create_inference(m, mb, &infer));
    if (train && infer) {
        /* The images reach the logits: the first two give different ones. */
        const float *logits = rn_model_forward(m, train, x, mb, 0);
        CHECK_MSG(memcmp(logits, logits + classes, classes * sizeof(float)) != 0,
                  "%s: the logits do not depend on the image", arch);

        int was = rn_winograd_set_enabled(0);
        int differ = differing_logits(m, train, infer, x, mb, 0.0);
        CHECK_MSG(differ == 0, "%s: %d inference logits differ", arch, differ);
        /* An infinite pixel makes NaNs inside the network. The folded
         * ReLUs must treat them as the separate layers do, which keep NaN
         * (as PyTorch does), so the logits agree, NaN for NaN. Winograd
         * turns an Inf into NaN where the direct sum keeps it. */
        float saved = x[numel / 2];
        x[numel / 2] = INFINITY;
        differ = differing_logits(m, train, infer, x, mb, 0.0);
        CHECK_MSG(differ == 0, "%s: %d logits differ after an infinite pixel", arch, differ);
        x[numel / 2] = saved;
        rn_winograd_set_enabled(1);

        differ = differing_logits(m, train, infer, x, mb, 1e-5);
        CHECK_MSG(differ == 0, "%s: %d logits differ with Winograd", arch, differ);
        /* New weights: the plan transforms them again. */
        rn_model_init(m, RN_INIT_KAIMING, 0, 4);
        set_running_stats(m);
        differ = differing_logits(m, train, infer, x, mb, 1e-5);
        CHECK_MSG(differ == 0, "%s: %d logits differ after new weights", arch, differ);
        /* Another model of the same shape, whose weights changed as many
         * times: the plan must not take them for the ones it holds. */
        rn_model *other = create(arch, c, h, w, shortcut);
        if (other) {
            rn_model_init(other, RN_INIT_KAIMING, 0, 5);
            while (other->weights_version < m->weights_version)
                rn_model_init(other, RN_INIT_KAIMING, 0, 5);
            set_running_stats(other);
            differ = differing_logits(other, train, infer, x, mb, 1e-5);
            CHECK_MSG(differ == 0, "%s: %d logits differ for another model", arch, differ);
            rn_model_destroy(other);
        }
        rn_winograd_set_enabled(was);

        /* Activations, gradients and scratch: the transformed weights
         * come on top. */
        size_t infer_bytes = rn_plan_nbytes(infer) - rn_plan_weights_nbytes(infer);
        CHECK_MSG(infer_bytes < rn_plan_nbytes(train),
                  "%s: inference plan holds %zu bytes, training plan %zu", arch, infer_bytes,
                  rn_plan_nbytes(train));
    }
    free(x);
    rn_plan_destroy(train);
    rn_plan_destroy(infer);
    rn_model_destroy(m);
}

/* The loss sum(logits * weights) of one forward pass. */
static double weighted_logits(rn_model *m, rn_plan *plan, const float *x, int mb,
                              const float *weights)
{
    const float *logits = rn_model_forward(m, plan, x, mb, 0);
    double sum = 0.0;
    for (int i = 0; i < mb * m->config.classes; i++)
        sum += (double)logits[i] * weights[i];
    return sum;
}

/* Build a graph of 4-channel convolutions on img (3x8x8) and return the
 * value that the pooling and classifier read. */
typedef int (*graph_body)(rn_model *m, int img);

/* Check the bias gradients of every convolution in a graph against central
 * differences of the loss sum(logits * weights), so that gradients the
 * planner shares between values are checked end to end. */
static void check_graph_gradients(const char *graph_name, graph_body body)
{
    rn_model *m = calloc(1, sizeof *m);
    m->config = (rn_model_config){.in_c = 3, .in_h = 8, .in_w = 8, .classes = 4};
    snprintf(m->config.arch, sizeof m->config.arch, "test");
    int out = body(m, rn_graph_input(m, 3, 8, 8));
    rn_graph_linear(m, rn_graph_avgpool(m, out, "pool"), "fc", 4);
    m->param_data = rn_alloc_aligned(m->param_numel * sizeof(float));
    m->grad_data = rn_alloc_aligned(m->param_numel * sizeof(float));
    m->buffer_data = rn_alloc_aligned((m->buffer_numel + 16) * sizeof(float));
    m->num_batches_tracked = calloc(m->bn_count + 1, sizeof(int64_t));
    rn_model_init(m, RN_INIT_KAIMING, 0, 1);

    enum { MB = 2 };
    float images[MB * 3 * 8 * 8], weights[MB * 4];
    for (int i = 0; i < MB * 3 * 8 * 8; i++)
        images[i] = sinf(0.7f * (float)i);
    for (int i = 0; i < MB * 4; i++)
        weights[i] = cosf(1.1f * (float)i);
    rn_plan *plan = NULL;
    CHECK_OK(rn_plan_create(m, MB, &plan));
    if (plan) {
        rn_model_forward(m, plan, images, MB, 1);
        rn_model_zero_grad(m);
        rn_model_backward(m, plan, weights);
    }
    /* The differences run evaluation-mode passes, which leave the
     * gradients alone; the graphs have no BN. */
    int checked = 0;
    for (int p = 0; plan && p < m->param_count; p++) {
        const rn_tensor_entry *bias = &m->params[p];
        if (strncmp(bias->name, "conv", 4) != 0 || !strstr(bias->name, ".bias"))
            continue;
        for (size_t j = 0; j < bias->numel; j++) {
            float *b = m->param_data + bias->offset + j, saved = *b, h = 1e-2f;
            *b = saved + h;
            double up = weighted_logits(m, plan, images, MB, weights);
            *b = saved - h;
            double down = weighted_logits(m, plan, images, MB, weights);
            *b = saved;
            double numeric = (up - down) / (2.0 * h);
            double analytic = m->grad_data[bias->offset + j];
            CHECK_MSG(fabs(analytic - numeric) <= 1e-2 + 1e-2 * fabs(numeric),
                      "%s: %s[%zu]: gradient %.6g, central difference %.6g", graph_name,
                      bias->name, j, analytic, numeric);
        }
        checked++;
    }
    CHECK_MSG(checked > 0, "%s: no convolution bias checked", graph_name);
    rn_plan_destroy(plan);
    rn_model_destroy(m);
}

/* out = x + conv1(x): the producer of the addition's second input reads
 * the first, so the two inputs cannot share one gradient buffer (conv1's
 * backward reads y's gradient while adding into x's). */
static int layer_and_its_input(rn_model *m, int img)
{
    int x = rn_graph_relu(m, rn_graph_conv(m, img, "conv0", 4, 3, 1, 1, 1));
    int y = rn_graph_conv(m, x, "conv1", 4, 3, 1, 1, 1);
    int sum = 0;
    CHECK_OK(rn_graph_add(m, x, y, "add", &sum));
    return sum;
}

/* out = r + r: one value as both inputs gets twice the gradient. */
static int value_added_to_itself(rn_model *m, int img)
{
    int r = rn_graph_relu(m, rn_graph_conv(m, img, "conv0", 4, 3, 1, 1, 1));
    int sum = 0;
    CHECK_OK(rn_graph_add(m, r, r, "add", &sum));
    return sum;
}

/* out = (conv2(relu(b)) + b) + x with b = conv1(x): the outer addition
 * gives x the gradient buffer of s. The inner one must not hand that
 * buffer on to b, whose ReLU reader adds its gradient there. */
static int two_additions(rn_model *m, int img)
{
    int x = rn_graph_conv(m, img, "conv0", 4, 3, 1, 1, 1);
    int b = rn_graph_conv(m, x, "conv1", 4, 1, 1, 0, 1);
    int c = rn_graph_conv(m, rn_graph_relu(m, b), "conv2", 4, 3, 1, 1, 1);
    int s = 0, out = 0;
    CHECK_OK(rn_graph_add(m, c, b, "add0", &s));
    CHECK_OK(rn_graph_add(m, s, x, "add1", &out));
    return out;
}

TEST(model_addition_gradients)
{
    check_graph_gradients("layer and its input", layer_and_its_input);
    check_graph_gradients("value added to itself", value_added_to_itself);
    check_graph_gradients("two additions", two_additions);
}

TEST(model_inference_plan_matches_eval)
{
    check_inference_plan("resnet20", 1, 12, 12, RN_SHORTCUT_A);
    check_inference_plan("plain20", 3, 10, 10, RN_SHORTCUT_DEFAULT);
    check_inference_plan("d2l-resnet18", 1, 40, 40, RN_SHORTCUT_DEFAULT);
    check_inference_plan("resnet50", 3, 40, 40, RN_SHORTCUT_DEFAULT);
}

/* An inference plan prepares Winograd weights for its full batch. A smaller
 * last batch may suit another Winograd variant there (F(4x4) takes a 7x7
 * plane from 16 images up, F(2x2) below), and must still give the
 * training plan's evaluation-mode logits. */
TEST(model_inference_plan_partial_batch)
{
    rn_model *m = create("resnet20", 1, 28, 28, RN_SHORTCUT_A);
    if (!m)
        return;
    rn_model_init(m, RN_INIT_KAIMING, 0, 3);
    set_running_stats(m);
    int mb = 16;
    size_t numel = (size_t)mb * 28 * 28;
    float *x = patterned_images(numel);
    rn_plan *train = NULL, *infer = NULL;
    CHECK_OK(rn_plan_create(m, mb, &train));
    CHECK_OK(rn_plan_create_inference(m, mb, &infer));
    if (train && infer) {
        int batches[] = {16, 5, 1, 16};
        for (size_t k = 0; k < sizeof batches / sizeof batches[0]; k++) {
            int differ = differing_logits(m, train, infer, x, batches[k], 1e-5);
            CHECK_MSG(differ == 0, "batch %d of 16: %d logits differ", batches[k], differ);
        }
    }
    free(x);
    rn_plan_destroy(train);
    rn_plan_destroy(infer);
    rn_model_destroy(m);
}

TEST(model_rejects_shortcut_that_does_not_apply)
{
    const struct {
        const char *arch;
        rn_shortcut shortcut;
    } cases[] = {
        {"plain20", RN_SHORTCUT_B},   {"plain20", RN_SHORTCUT_C},
        {"d2l-resnet18", RN_SHORTCUT_A}, {"d2l-resnet18", RN_SHORTCUT_C},
        {"resnet50", RN_SHORTCUT_A},  {"resnet18", RN_SHORTCUT_A},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        rn_model_config cfg = {.in_c = 3, .in_h = 64, .in_w = 64, .classes = 10,
                               .shortcut = cases[k].shortcut};
        snprintf(cfg.arch, sizeof cfg.arch, "%s", cases[k].arch);
        rn_model *m = NULL;
        rn_status status = rn_model_create(&cfg, &m);
        CHECK_MSG(status == RN_ERR_INVALID, "%s with shortcut %s: status %s, expected invalid",
                  cases[k].arch, rn_shortcut_name(cases[k].shortcut), rn_status_name(status));
        CHECK(m == NULL);
        rn_model_destroy(m);
    }
}

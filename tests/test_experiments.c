/* Residual-learning experiments: the identity checks, the plots and
 * reports, and every `resnet experiment` on a tiny budget. The tiny runs
 * check that files are written and well-formed, not the scientific
 * outcome, which needs the default budget. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/rng.h"
#include "experiments/experiments.h"
#include "model/model.h"
#include "report/plot.h"
#include "test.h"
#include "xml_check.h"

/* ----------------------------------------------------------- helpers */

static rn_model *create_model(const char *arch)
{
    rn_model_config mc = {.in_c = 1, .in_h = 28, .in_w = 28, .classes = 10,
                          .shortcut = RN_SHORTCUT_DEFAULT};
    rn_model *model = NULL;
    snprintf(mc.arch, sizeof mc.arch, "%s", arch);
    CHECK_OK(rn_model_create(&mc, &model));
    return model;
}

static float *random_images(int mb, uint64_t seed)
{
    rn_rng rng;
    size_t n = (size_t)mb * 28 * 28;
    float *x = malloc(n * sizeof(float));
    rn_rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)rn_rng_normal(&rng);
    return x;
}

static int node_named(const rn_model *model, const char *name)
{
    for (int i = 0; i < model->node_count; i++)
        if (!strcmp(model->nodes[i].name, name))
            return i;
    return -1;
}

static void check_svg_file(const char *path, const char *const *needles)
{
    char error[200];
    char *text = read_text_file(path);
    CHECK_MSG(text != NULL, "%s was not written", path);
    if (!text)
        return;
    CHECK_MSG(xml_well_formed(text, error, sizeof error), "%s is not well-formed XML: %s",
              path, error);
    CHECK_MSG(strstr(text, "<svg") != NULL, "%s has no <svg> element", path);
    for (int k = 0; needles && needles[k]; k++)
        CHECK_MSG(strstr(text, needles[k]) != NULL, "%s lacks '%s'", path, needles[k]);
    free(text);
}

static void check_file_contains(const char *path, const char *needle)
{
    char *text = read_text_file(path);
    CHECK_MSG(text != NULL, "%s was not written", path);
    if (text)
        CHECK_MSG(strstr(text, needle) != NULL, "%s lacks '%s':\n%s", path, needle, text);
    free(text);
}

/* The first line of a CSV file equals header. */
static void check_csv_header(const char *path, const char *header)
{
    char *text = read_text_file(path);
    CHECK_MSG(text != NULL, "%s was not written", path);
    if (!text)
        return;
    size_t len = strlen(header);
    CHECK_MSG(!strncmp(text, header, len) && text[len] == '\n', "%s starts with '%.120s', "
              "expected the header '%s'", path, text, header);
    CHECK_MSG(strchr(text + len + 1, '\n') != NULL, "%s has no data row", path);
    free(text);
}

static const char *resnet_bin(void)
{
    const char *bin = getenv("RESNET_BIN");
    return bin ? bin : "build/resnet";
}

static char out[1 << 16];

/* Run `resnet ARGS` with stdout and stderr in `out`; returns the exit status. */
static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int run(const char *fmt, ...)
{
    char args[2048], command[3072], log[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(log, sizeof log, "%s/experiment.log", rn_test_tmpdir());
    snprintf(command, sizeof command, "%s %s > '%s' 2>&1", resnet_bin(), args, log);
    int status = system(command);
    char *text = read_text_file(log);
    snprintf(out, sizeof out, "%s", text ? text : "");
    free(text);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ------------------------------------------------------ identity checks */

TEST(identity_zero_gamma_block_is_exact)
{
    rn_model *model = create_model("resnet20");
    rn_plan *plan = NULL;
    float *images = random_images(4, 1);
    if (!model)
        return;
    rn_model_init(model, RN_INIT_KAIMING, 0, 3);

    /* Zero the last BN scale of one block only. */
    int bn = node_named(model, "layer2.1.bn2");
    CHECK(bn >= 0);
    if (bn < 0)
        return;
    CHECK(model->nodes[bn].last_bn_of_residual);
    const rn_tensor_entry *gamma = &model->params[model->nodes[bn].weights];
    memset(model->param_data + gamma->offset, 0, gamma->numel * sizeof(float));
    CHECK_OK(rn_plan_create_keeping_values(model, 4, &plan));

    for (int train = 1; train >= 0 && plan; train--) {
        rn_model_forward(model, plan, images, 4, train);

        /* That block's output is its input, bit for bit. */
        int add = node_named(model, "layer2.1.add");
        CHECK(add >= 0);
        const rn_node *a = &model->nodes[add], *relu = &model->nodes[add + 1];
        CHECK(relu->kind == RN_NODE_RELU);
        CHECK(relu->src == a->dst);
        size_t numel = (size_t)4 * model->values[a->dst].c * model->values[a->dst].h *
                       model->values[a->dst].w;
        CHECK_MSG(!memcmp(rn_plan_value(plan, relu->dst), rn_plan_value(plan, a->src2),
                          numel * sizeof(float)),
                  "layer2.1 with gamma 0 does not output its input (train=%d)", train);

        /* Only that block of the nine is exact. */
        int exact = -1;
        CHECK(rn_identity_blocks_exact(model, plan, 4, &exact) == 9);
        CHECK_MSG(exact == 1, "%d blocks are exact, expected 1 (train=%d)", exact, train);
    }
    rn_plan_destroy(plan);
    rn_model_destroy(model);
    free(images);
}

TEST(identity_resnet56_zero_init_is_stem_head)
{
    rn_model *model = create_model("resnet56");
    rn_plan *plan = NULL;
    float *images = random_images(3, 2), expected[30];
    if (!model)
        return;
    rn_model_init(model, RN_INIT_KAIMING, 1, 5);
    CHECK_OK(rn_plan_create_keeping_values(model, 3, &plan));
    for (int train = 1; train >= 0 && plan; train--) {
        const float *logits = rn_model_forward(model, plan, images, 3, train);
        int exact = -1;
        CHECK(rn_identity_blocks_exact(model, plan, 3, &exact) == 27);
        CHECK_MSG(exact == 27, "%d of 27 blocks exact (train=%d)", exact, train);
        CHECK_OK(rn_identity_stem_head(model, plan, 3, expected));
        CHECK_MSG(!memcmp(logits, expected, sizeof expected),
                  "logits differ from stem plus head (train=%d): %.9g vs %.9g", train,
                  logits[0], expected[0]);
    }

    /* With the usual initialization the branches are not zero. */
    rn_model_init(model, RN_INIT_KAIMING, 0, 5);
    const float *logits = rn_model_forward(model, plan, images, 3, 1);
    CHECK_OK(rn_identity_stem_head(model, plan, 3, expected));
    CHECK(memcmp(logits, expected, sizeof expected) != 0);
    rn_plan_destroy(plan);
    rn_model_destroy(model);
    free(images);
}

TEST(identity_stem_head_rejects_projections)
{
    rn_model_config mc = {.arch = "resnet20", .in_c = 1, .in_h = 28, .in_w = 28,
                          .classes = 10, .shortcut = RN_SHORTCUT_B};
    rn_model *model = NULL;
    rn_plan *plan = NULL;
    float logits[10], *images = random_images(1, 3);
    CHECK_OK(rn_model_create(&mc, &model));
    CHECK_OK(rn_plan_create_keeping_values(model, 1, &plan));
    if (model && plan) {
        rn_model_forward(model, plan, images, 1, 0);
        CHECK(rn_identity_stem_head(model, plan, 1, logits) == RN_ERR_INVALID);
        CHECK(strstr(rn_last_error(), "projection") != NULL);
    }
    rn_plan_destroy(plan);
    rn_model_destroy(model);
    free(images);
}

/* ---------------------------------------------------- models and inits */

TEST(model_nobn_has_conv_bias_and_no_bn)
{
    rn_model *model = create_model("plain20-nobn");
    if (!model)
        return;
    int convs = 0, biased = 0;
    for (int i = 0; i < model->node_count; i++) {
        CHECK(model->nodes[i].kind != RN_NODE_BN);
        if (model->nodes[i].kind == RN_NODE_CONV) {
            convs++;
            biased += model->nodes[i].bias >= 0;
        }
    }
    CHECK(convs == 19);
    CHECK(biased == 19);
    CHECK(model->bn_count == 0);
    rn_model_destroy(model);

    rn_model_config mc = {.arch = "plain20-bn", .in_c = 1, .in_h = 28, .in_w = 28,
                          .classes = 10};
    CHECK(rn_model_create(&mc, &model) == RN_ERR_INVALID);
    CHECK(strstr(rn_last_error(), "-nobn") != NULL);
}

TEST(init_kaiming_fan_in_std)
{
    rn_model *model = create_model("resnet20");
    if (!model)
        return;
    rn_model_init(model, RN_INIT_KAIMING_FAN_IN, 0, 11);
    /* layer3.0.conv1: 64 x 32 x 3 x 3, fan_in 288, fan_out 576. */
    for (int p = 0; p < model->param_count; p++) {
        const rn_tensor_entry *e = &model->params[p];
        if (strcmp(e->name, "layer3.0.conv1.weight") != 0)
            continue;
        double sum_sq = 0.0;
        for (size_t i = 0; i < e->numel; i++)
            sum_sq += (double)model->param_data[e->offset + i] * model->param_data[e->offset + i];
        CHECK(e->fan_in == 288);
        CHECK_CLOSE(sqrt(sum_sq / e->numel), sqrt(2.0 / 288), 0.0, 0.03);
    }
    rn_model_destroy(model);
}

/* ------------------------------------------------------------------ plots */

TEST(plot_svg_is_well_formed)
{
    double x[5] = {1, 2, 3, 4, 5}, y[5] = {1e-4, 3e-3, NAN, 0.2, 7.0};
    double y2[5] = {0.5, 0.4, 0.3, -1.0, 0.1};
    rn_series series[2] = {
        {"gradient <norm> & \"more\"", x, y, 5, 0, RN_LINE_SOLID, 1},
        {"second", x, y2, 5, 1, RN_LINE_DASHED, 0},
    };
    rn_panel panels[2] = {
        {.title = "log axis", .xlabel = "layer index", .ylabel = "norm", .log_y = 1,
         .x_integer = 1, .series = series, .series_count = 2},
        {.title = "linear axis", .xlabel = "epoch", .ylabel = "error (%)", .series = series,
         .series_count = 2},
    };
    char path[600], error[200];
    snprintf(path, sizeof path, "%s/plot.svg", rn_test_tmpdir());
    CHECK_OK(rn_plot_write(path, "A & B", panels, 2, 1));
    const char *needles[] = {"layer index", "error (%)", "gradient &lt;norm&gt; &amp; "
                             "&quot;more&quot;", "A &amp; B", "stroke-dasharray", NULL};
    check_svg_file(path, needles);

    /* The checker itself rejects broken documents. */
    CHECK(!xml_well_formed("<svg><g></svg></g>", error, sizeof error));
    CHECK(!xml_well_formed("<svg><text>a & b</text></svg>", error, sizeof error));
    CHECK(!xml_well_formed("<svg x=1></svg>", error, sizeof error));
    CHECK(!xml_well_formed("<svg></svg><svg></svg>", error, sizeof error));
    CHECK(xml_well_formed("<svg a=\"1\"><b/>x &amp; y</svg>", error, sizeof error));
}

/* ------------------------------------------------------ command line */

TEST(train_writes_curves_and_report)
{
    const char *tmp = rn_test_tmpdir();
    char path[700];
    int code = run("train --model resnet8 --epochs 2 --train-limit 256 --test-limit 100 -b 64 "
                   "--output-dir %s/curves", tmp);
    CHECK_MSG(code == 0, "train exited %d:\n%s", code, out);
    snprintf(path, sizeof path, "%s/curves/curves.svg", tmp);
    const char *needles[] = {"train loss", "train acc", "test acc", ">epoch<", NULL};
    check_svg_file(path, needles);
    snprintf(path, sizeof path, "%s/curves/report.html", tmp);
    check_file_contains(path, "<svg");
    check_file_contains(path, "Final metrics");
    check_file_contains(path, "<th>model</th><td>resnet8</td>");
    check_file_contains(path, "<tr><td>2</td>");

    /* eval --probs: each row's probabilities sum to 1 and the predicted
     * class has the largest. */
    code = run("eval --weights %s/curves/best.safetensors --test-limit 20 --probs 5", tmp);
    CHECK_MSG(code == 0, "eval exited %d:\n%s", code, out);
    const char *table = strstr(out, "softmax probabilities of the first 5 test images");
    CHECK_MSG(table != NULL, "no probability table:\n%s", out);
    int rows = 0;
    for (const char *line = table ? strchr(strchr(table, '\n') + 1, '\n') : NULL;
         line && line[1]; line = strchr(line + 1, '\n')) {
        char true_name[32], predicted[32];
        int image, consumed;
        double best, p, sum = 0.0, max = 0.0;
        if (sscanf(line + 1, "%d %12c %12c %lf%n", &image, true_name, predicted, &best,
                   &consumed) != 4)
            break;
        const char *q = line + 1 + consumed;
        for (int k = 0; k < 10; k++) {
            int n;
            CHECK(sscanf(q, "%lf%n", &p, &n) == 1);
            q += n;
            sum += p;
            max = fmax(max, p);
        }
        CHECK_CLOSE(sum, 1.0, 1e-3, 0.0);
        CHECK_CLOSE(best, max, 1e-9, 0.0);
        rows++;
    }
    CHECK_MSG(rows == 5, "%d probability rows, expected 5:\n%s", rows, out);
}

TEST(experiment_usage_errors)
{
    const char *tmp = rn_test_tmpdir();
    const char *cases[] = {
        "experiment",
        "experiment bogus",
        "experiment degradation --depths 7",
        "experiment degradation --depths 20",
        "experiment identity --no-bn",
        "experiment gradients --epochs 3",
        "experiment init --bogus",
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int code = run("%s --out %s/usage%zu", cases[k], tmp, k);
        CHECK_MSG(code == 2, "'resnet %s' exited %d, expected 2:\n%s", cases[k], code, out);
    }
    CHECK(run("experiment --help") == 0);
    CHECK(strstr(out, "degradation") != NULL);

    /* A non-empty output directory is never overwritten. */
    char command[700];
    snprintf(command, sizeof command, "mkdir -p %s/full && touch %s/full/keep", tmp, tmp);
    CHECK(system(command) == 0);
    CHECK(run("experiment identity --out %s/full", tmp) == 2);
    CHECK(strstr(out, "already contains files") != NULL);
}

TEST(experiment_degradation_tiny)
{
    const char *tmp = rn_test_tmpdir();
    char path[700];
    int code = run("experiment degradation --out %s/deg --depths 8,14 --epochs 2 "
                   "--train-limit 128 --test-limit 64 -b 64", tmp);
    CHECK_MSG(code == 0, "exited %d:\n%s", code, out);
    CHECK(strstr(out, "expected outcome") != NULL);
    snprintf(path, sizeof path, "%s/deg/degradation.csv", tmp);
    check_csv_header(path, "model,epoch,train_error,test_error,train_loss,test_loss");
    snprintf(path, sizeof path, "%s/deg/degradation.svg", tmp);
    const char *needles[] = {"plain networks", "residual networks", "plain14 train",
                             "resnet8 test", "error (%)", NULL};
    check_svg_file(path, needles);
    snprintf(path, sizeof path, "%s/deg/summary.txt", tmp);
    check_file_contains(path, "plain14");
    check_file_contains(path, "resnet14");
    snprintf(path, sizeof path, "%s/deg/runs/plain8/curves.svg", tmp);
    check_svg_file(path, NULL);
}

TEST(experiment_gradients_tiny)
{
    const char *tmp = rn_test_tmpdir();
    char path[700];
    int code = run("experiment gradients --out %s/grad --depths 8,14 --steps 2 "
                   "--test-limit 32 -b 16 --no-bn", tmp);
    CHECK_MSG(code == 0, "exited %d:\n%s", code, out);
    snprintf(path, sizeof path, "%s/grad/gradients.csv", tmp);
    check_csv_header(path, "model,state,layer_index,layer,kernel,grad_norm,response_std");
    check_file_contains(path, "plain14-nobn,trained,13,");
    snprintf(path, sizeof path, "%s/grad/gradients.svg", tmp);
    const char *needles[] = {"at initialization", "after 2 steps", "weight gradient norm",
                             "resnet14-nobn", NULL};
    check_svg_file(path, needles);
    snprintf(path, sizeof path, "%s/grad/responses.svg", tmp);
    const char *response_needles[] = {"sorted by magnitude", "std of response", NULL};
    check_svg_file(path, response_needles);
    snprintf(path, sizeof path, "%s/grad/summary.txt", tmp);
    check_file_contains(path, "without BN");
}

TEST(experiment_init_tiny)
{
    const char *tmp = rn_test_tmpdir();
    char path[700];
    int code = run("experiment init --out %s/init --depths 8 --epochs 1 --train-limit 64 "
                   "--test-limit 32 -b 32", tmp);
    CHECK_MSG(code == 0, "exited %d:\n%s", code, out);
    snprintf(path, sizeof path, "%s/init/activations.csv", tmp);
    check_csv_header(path, "model,bn,init,relu_index,activation_std");
    check_file_contains(path, "resnet8-nobn,0,xavier,");
    snprintf(path, sizeof path, "%s/init/training.csv", tmp);
    check_csv_header(path, "model,bn,init,epoch,train_error,test_error,train_loss");
    snprintf(path, sizeof path, "%s/init/activations.svg", tmp);
    const char *needles[] = {"kaiming fan_in", "kaiming fan_out", "xavier", "plain, no BN",
                             "residual, with BN", NULL};
    check_svg_file(path, needles);
    snprintf(path, sizeof path, "%s/init/training.svg", tmp);
    check_svg_file(path, needles);
    snprintf(path, sizeof path, "%s/init/summary.txt", tmp);
    check_file_contains(path, "plain8-nobn");
}

TEST(experiment_identity_tiny)
{
    const char *tmp = rn_test_tmpdir();
    char path[700];
    int code = run("experiment identity --out %s/id --depths 14 --epochs 1 --train-limit 128 "
                   "--test-limit 64 -b 64", tmp);
    CHECK_MSG(code == 0, "exited %d:\n%s", code, out);
    snprintf(path, sizeof path, "%s/id/summary.txt", tmp);
    check_file_contains(path, "6 of 6 blocks output exactly their identity");
    check_file_contains(path, "EQUAL, bit for bit");
    snprintf(path, sizeof path, "%s/id/identity.csv", tmp);
    check_csv_header(path, "block,ratio_init,ratio_trained,ratio_trained_zero_init");
    snprintf(path, sizeof path, "%s/id/identity.svg", tmp);
    const char *needles[] = {"zero-init residual, trained", "block index", NULL};
    check_svg_file(path, needles);
}

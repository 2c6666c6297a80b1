/* Initialization: Kaiming fan_in, Kaiming fan_out and Xavier, with and
 * without BN, on a deep plain and a deep residual net. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "experiments/common.h"
#include "report/plot.h"

/* Default budget: 4 epochs on 3,000 training images, tested on 1,000, for
 * each of the 12 depth-56 runs: an estimated 13 minutes on the reference
 * machine of docs/benchmarks.md, where resnet56 trains at about 215
 * images/s. */
enum { DEFAULT_DEPTH = 56, DEFAULT_EPOCHS = 4, DEFAULT_TRAIN = 3000, DEFAULT_TEST = 1000,
       FULL_EPOCHS = 8, MEASURE_MB = 128, CASES = 12 };

static const double NO_BN_LR = 0.01;

static const rn_init INITS[3] = {RN_INIT_KAIMING_FAN_IN, RN_INIT_KAIMING, RN_INIT_XAVIER};
static const char *const INIT_NAMES[3] = {"kaiming fan_in", "kaiming fan_out", "xavier"};
static const char *const INIT_KEYS[3] = {"kaiming_fan_in", "kaiming_fan_out", "xavier"};

typedef struct init_case {
    char arch[32];
    int residual, bn, init_index;
    double *activation_std; /* (relu_count) std of every ReLU output at init */
    int relu_count;
    exp_run run;
} init_case;

/* Std of every ReLU output in one training-mode forward pass at init. */
static rn_status measure_activations(const rn_experiment_options *o, init_case *ic,
                                     const float *images, int mb, int c, int h, int w)
{
    exp_init init = {.use_init = 1, .init = INITS[ic->init_index]};
    rn_model *model;
    rn_plan *plan;

    RN_TRY(exp_model(ic->arch, c, h, w, o, &init, NULL, &model));
    rn_status status = rn_plan_create_keeping_values(model, mb, &plan);
    if (status == RN_OK) {
        rn_model_forward(model, plan, images, mb, 1);
        ic->relu_count = 0;
        for (int i = 0; i < model->node_count; i++)
            ic->relu_count += model->nodes[i].kind == RN_NODE_RELU;
        ic->activation_std = malloc(ic->relu_count * sizeof(double));
        if (!ic->activation_std)
            status = rn_error(RN_ERR_NOMEM, "out of memory");
        for (int i = 0, k = 0; i < model->node_count && status == RN_OK; i++)
            if (model->nodes[i].kind == RN_NODE_RELU)
                ic->activation_std[k++] = exp_value_std(model, plan, mb, model->nodes[i].dst);
        rn_plan_destroy(plan);
    }
    rn_model_destroy(model);
    return status;
}

static const char *panel_title(int residual, int bn)
{
    static const char *const titles[4] = {"plain, no BN", "plain, with BN",
                                          "residual, no BN", "residual, with BN"};
    return titles[2 * residual + bn];
}

/* Panel order: plain with BN, residual with BN, plain without, residual
 * without. */
static int panel_of(const init_case *ic)
{
    return (1 - ic->bn) * 2 + ic->residual;
}

static rn_status write_outputs(const rn_experiment_options *o, init_case *cases, int depth,
                               int epochs)
{
    static double relu_x[CASES][4 * 1024], epoch_x[EXP_EPOCHS_MAX];
    static double train_err[CASES][EXP_EPOCHS_MAX], test_err[CASES][EXP_EPOCHS_MAX];
    rn_series act[4][3], curves[4][6];
    rn_panel act_panels[4], curve_panels[4];
    rn_strbuf act_csv = {0}, train_csv = {0};
    char path[1100], title[160];

    for (int e = 0; e < EXP_EPOCHS_MAX; e++)
        epoch_x[e] = e + 1;
    rn_strbuf_appendf(&act_csv, "model,bn,init,relu_index,activation_std\n");
    rn_strbuf_appendf(&train_csv, "model,bn,init,epoch,train_error,test_error,train_loss\n");
    for (int k = 0; k < CASES; k++) {
        init_case *ic = &cases[k];
        int p = panel_of(ic), i = ic->init_index;
        int n = ic->relu_count < 4 * 1024 ? ic->relu_count : 4 * 1024;
        for (int j = 0; j < n; j++) {
            relu_x[k][j] = j + 1;
            rn_strbuf_appendf(&act_csv, "%s,%d,%s,%d,%.6g\n", ic->arch, ic->bn, INIT_KEYS[i],
                              j + 1, ic->activation_std[j]);
        }
        act[p][i] = (rn_series){.x = relu_x[k], .y = ic->activation_std, .n = n, .color = i,
                                .style = RN_LINE_SOLID};
        snprintf(act[p][i].label, sizeof act[p][i].label, "%s", INIT_NAMES[i]);

        const exp_run *r = &ic->run;
        for (int e = 0; e < r->epoch_count; e++) {
            train_err[k][e] = 100.0 * (1.0 - r->epochs[e].train_accuracy);
            test_err[k][e] = 100.0 * (1.0 - r->epochs[e].test_accuracy);
            rn_strbuf_appendf(&train_csv, "%s,%d,%s,%d,%.4f,%.4f,%.6f\n", ic->arch, ic->bn,
                              INIT_KEYS[i], e + 1, train_err[k][e], test_err[k][e],
                              r->epochs[e].train_loss);
        }
        int markers = r->epoch_count <= 30;
        curves[p][2 * i] = (rn_series){.x = epoch_x, .y = train_err[k], .n = r->epoch_count,
                                       .color = i, .style = RN_LINE_DASHED, .markers = markers};
        curves[p][2 * i + 1] = curves[p][2 * i];
        curves[p][2 * i + 1].y = test_err[k];
        curves[p][2 * i + 1].style = RN_LINE_SOLID;
        snprintf(curves[p][2 * i].label, RN_PLOT_LABEL_MAX, "%s train%s", INIT_NAMES[i],
                 r->diverged ? " (diverged)" : "");
        snprintf(curves[p][2 * i + 1].label, RN_PLOT_LABEL_MAX, "%s test", INIT_NAMES[i]);
    }
    for (int p = 0; p < 4; p++) {
        int residual = p % 2, bn = p < 2;
        act_panels[p] = (rn_panel){.title = panel_title(residual, bn),
                                   .xlabel = "ReLU index (input to output)",
                                   .ylabel = "std of activation", .log_y = 1, .x_integer = 1,
                                   .series = act[p], .series_count = 3};
        curve_panels[p] = (rn_panel){.title = panel_title(residual, bn), .xlabel = "epoch",
                                     .ylabel = "error (%)", .x_integer = 1, .y_min = 0,
                                     .y_max = 100, .series = curves[p], .series_count = 6};
    }

    rn_status status = act_csv.data && train_csv.data ? RN_OK
                           : rn_error(RN_ERR_NOMEM, "out of memory");
    if (status == RN_OK)
        status = exp_write(o->out_dir, "activations.csv", &act_csv);
    if (status == RN_OK)
        status = exp_write(o->out_dir, "training.csv", &train_csv);
    snprintf(path, sizeof path, "%s/activations.svg", o->out_dir);
    snprintf(title, sizeof title, "Activation std per ReLU at initialization, depth %d", depth);
    if (status == RN_OK)
        status = rn_plot_write(path, title, act_panels, 4, 2);
    snprintf(path, sizeof path, "%s/training.svg", o->out_dir);
    snprintf(title, sizeof title, "Training (dashed) and test (solid) error over %d epochs, "
             "depth %d", epochs, depth);
    if (status == RN_OK)
        status = rn_plot_write(path, title, curve_panels, 4, 2);
    rn_strbuf_free(&act_csv);
    rn_strbuf_free(&train_csv);
    return status;
}

static rn_status write_summary(const rn_experiment_options *o, const init_case *cases,
                               int epochs, int64_t train_count, int64_t test_count)
{
    rn_strbuf s = {0};
    char train_text[32], test_text[32];
    exp_count_text(train_text, sizeof train_text, train_count);
    exp_count_text(test_text, sizeof test_text, test_count);

    rn_strbuf_appendf(&s, "init: activation std of every ReLU output at initialization "
                      "(one training-mode\nbatch of %d images), then %d epochs on %s "
                      "training images, tested on %s,\nwith the default recipe (lr 0.1 "
                      "with BN, %.2g without; conv biases start at zero)\n\n", MEASURE_MB, epochs,
                      train_text, test_text, NO_BN_LR);
    rn_strbuf_appendf(&s, "%-18s %-16s %12s %12s %12s %12s\n", "model", "init",
                      "first std", "last std", "train err %", "test err %");
    for (int k = 0; k < CASES; k++) {
        const init_case *ic = &cases[k];
        const exp_run *r = &ic->run;
        double tr = r->epoch_count ? 100 * (1 - r->epochs[r->epoch_count - 1].train_accuracy)
                                   : NAN;
        double te = r->epoch_count ? 100 * (1 - r->epochs[r->epoch_count - 1].test_accuracy)
                                   : NAN;
        rn_strbuf_appendf(&s, "%-18s %-16s %12.3g %12.3g %12.2f %12.2f%s\n", ic->arch,
                          INIT_NAMES[ic->init_index], ic->activation_std[0],
                          ic->activation_std[ic->relu_count - 1], tr, te,
                          r->diverged ? "  diverged" : "");
    }
    rn_strbuf_appendf(&s, "\nfirst/last std: std of the first and the last ReLU output.\n"
                      "Without BN, Xavier's weight variance 2 / (fan_in + fan_out) is about "
                      "half of the\n2 / fan_in that keeps the signal through a ReLU, so in "
                      "a plain net the signal\nshrinks by about 1/sqrt(2) per layer. The "
                      "training runs' args files say init=kaiming\nbecause the experiment "
                      "re-initializes each model before its first step.\n");
    rn_status status = s.data ? exp_write(o->out_dir, "summary.txt", &s)
                              : rn_error(RN_ERR_NOMEM, "out of memory");
    rn_strbuf_free(&s);
    return status;
}

rn_status rn_experiment_init(const rn_experiment_options *o)
{
    static init_case cases[CASES];
    int depth = o->depth_count > 0 ? o->depths[0] : DEFAULT_DEPTH;
    int epochs = (int)exp_pick(o->epochs, o->full ? FULL_EPOCHS : DEFAULT_EPOCHS);
    int64_t train_count = exp_pick(o->train_limit, o->full ? 0 : DEFAULT_TRAIN);
    int64_t test_count = exp_pick(o->test_limit, o->full ? 0 : DEFAULT_TEST);
    float *images = NULL;
    int32_t *labels = NULL;
    int c, h, w;

    if (o->depth_count > 1)
        return rn_error(RN_ERR_INVALID, "the init experiment uses one depth, such as "
                        "--depths 56");
    if (o->no_bn)
        return rn_error(RN_ERR_INVALID, "the init experiment runs with and without BN "
                        "already; --no-bn applies to the gradients experiment");
    if (epochs > EXP_EPOCHS_MAX)
        return rn_error(RN_ERR_INVALID, "--epochs %d is above the maximum of %d", epochs,
                        EXP_EPOCHS_MAX);
    RN_TRY(exp_prepare_out(o->out_dir));
    memset(cases, 0, sizeof cases);
    rn_status status = exp_fixed_batch(o, 1, MEASURE_MB, &images, &labels, &c, &h, &w);

    for (int k = 0; k < CASES && status == RN_OK; k++) {
        init_case *ic = &cases[k];
        ic->residual = k / 6;
        ic->bn = 1 - k / 3 % 2;
        ic->init_index = k % 3;
        exp_arch(ic->arch, sizeof ic->arch, ic->residual ? "resnet" : "plain", depth, !ic->bn);
        status = measure_activations(o, ic, images, MEASURE_MB, c, h, w);
        if (status != RN_OK)
            break;

        rn_train_config config;
        char name[96], label[96];
        snprintf(name, sizeof name, "%.40s-%s", ic->arch, INIT_KEYS[ic->init_index]);
        snprintf(label, sizeof label, "%.40s, %s", ic->arch, INIT_NAMES[ic->init_index]);
        exp_train_config(o, &config, ic->arch, epochs, train_count, test_count, name);
        if (!ic->bn)
            config.schedule.lr = NO_BN_LR;
        exp_init init = {.use_init = 1, .init = INITS[ic->init_index]};
        status = exp_train(o, &config, &init, label, &ic->run);
    }
    if (status == RN_OK)
        status = write_outputs(o, cases, depth, epochs);
    if (status == RN_OK)
        status = write_summary(o, cases, epochs, train_count, test_count);

    for (int k = 0; k < CASES; k++) {
        free(cases[k].activation_std);
        cases[k].activation_std = NULL;
    }
    free(images);
    free(labels);
    return status;
}

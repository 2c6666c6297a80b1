/* The degradation problem: a deeper plain net reaches a higher training
 * error than a shallower one, while a deeper residual net does not. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/status.h"
#include "experiments/common.h"
#include "report/plot.h"

/* Default budget: 6 epochs on 10,000 training images, tested on 2,000. On
 * the reference machine of docs/benchmarks.md (about 600 training images/s
 * for resnet20) the four runs take an estimated 14 minutes, since a 56-layer
 * net costs about 2.8 times a 20-layer one. */
enum { DEFAULT_EPOCHS = 6, DEFAULT_TRAIN = 10000, DEFAULT_TEST = 2000, FULL_EPOCHS = 8 };

/* Training errors within this many percentage points count as equal. */
static const double EQUAL_TOLERANCE = 0.5;

typedef struct net_result {
    char arch[32];
    exp_run run;
} net_result;

static double train_error(const exp_run *r)
{
    return r->epoch_count ? 100.0 * (1.0 - r->epochs[r->epoch_count - 1].train_accuracy) : NAN;
}

static double test_error(const exp_run *r)
{
    return r->epoch_count ? 100.0 * (1.0 - r->epochs[r->epoch_count - 1].test_accuracy) : NAN;
}

static rn_status write_csv(const rn_experiment_options *o, const net_result *nets)
{
    rn_strbuf csv = {0};
    rn_status status = rn_strbuf_appendf(&csv, "model,epoch,train_error,test_error,"
                                         "train_loss,test_loss\n");
    for (int k = 0; k < 4 && status == RN_OK; k++) {
        const exp_run *r = &nets[k].run;
        for (int e = 0; e < r->epoch_count && status == RN_OK; e++)
            status = rn_strbuf_appendf(&csv, "%s,%d,%.4f,%.4f,%.6f,%.6f\n", nets[k].arch, e + 1,
                                       100.0 * (1.0 - r->epochs[e].train_accuracy),
                                       100.0 * (1.0 - r->epochs[e].test_accuracy),
                                       r->epochs[e].train_loss, r->epochs[e].test_loss);
    }
    if (status == RN_OK)
        status = exp_write(o->out_dir, "degradation.csv", &csv);
    rn_strbuf_free(&csv);
    return status;
}

/* Two panels as in Figure 6: plain nets on the left, residual on the
 * right; training error dashed, test error solid, one colour per depth. */
static rn_status write_plot(const rn_experiment_options *o, const net_result *nets)
{
    static double x[4][EXP_EPOCHS_MAX], train[4][EXP_EPOCHS_MAX], test[4][EXP_EPOCHS_MAX];
    rn_series series[2][4];
    rn_panel panels[2];

    for (int k = 0; k < 4; k++) {
        const exp_run *r = &nets[k].run;
        for (int e = 0; e < r->epoch_count; e++) {
            x[k][e] = e + 1;
            train[k][e] = 100.0 * (1.0 - r->epochs[e].train_accuracy);
            test[k][e] = 100.0 * (1.0 - r->epochs[e].test_accuracy);
        }
        int panel = k / 2, depth = k % 2, markers = r->epoch_count <= 30;
        rn_series *s = &series[panel][2 * depth];
        s[0] = (rn_series){.x = x[k], .y = train[k], .n = r->epoch_count, .color = depth,
                           .style = RN_LINE_DASHED, .markers = markers};
        s[1] = (rn_series){.x = x[k], .y = test[k], .n = r->epoch_count, .color = depth,
                           .style = RN_LINE_SOLID, .markers = markers};
        snprintf(s[0].label, sizeof s[0].label, "%.40s train", nets[k].arch);
        snprintf(s[1].label, sizeof s[1].label, "%.40s test", nets[k].arch);
    }
    for (int p = 0; p < 2; p++)
        panels[p] = (rn_panel){
            .title = p == 0 ? "plain networks" : "residual networks (ResNets)",
            .xlabel = "epoch", .ylabel = "error (%)", .x_integer = 1,
            .series = series[p], .series_count = 4,
        };
    char path[1100];
    snprintf(path, sizeof path, "%s/degradation.svg", o->out_dir);
    return rn_plot_write(path, "Training error (dashed) and test error (solid)", panels, 2, 2);
}

static rn_status write_summary(const rn_experiment_options *o, const net_result *nets,
                               int epochs, int64_t train_count, int64_t test_count)
{
    rn_strbuf s = {0};
    const net_result *plain_s = &nets[0], *plain_d = &nets[1];
    const net_result *res_s = &nets[2], *res_d = &nets[3];
    double ps = train_error(&plain_s->run), pd = train_error(&plain_d->run);
    double rs = train_error(&res_s->run), rd = train_error(&res_d->run);
    int any_diverged = 0;

    char train_text[32], test_text[32];
    exp_count_text(train_text, sizeof train_text, train_count);
    exp_count_text(test_text, sizeof test_text, test_count);
    rn_strbuf_appendf(&s, "degradation: %d epochs on %s training images, tested on %s "
                      "images, with the default recipe\n(SGD with Nesterov momentum, cosine "
                      "schedule, label smoothing 0.1, random flips)\n\n", epochs, train_text,
                      test_text);
    rn_strbuf_appendf(&s, "%-14s %16s %16s\n", "model", "train error (%)", "test error (%)");
    for (int k = 0; k < 4; k++) {
        const exp_run *r = &nets[k].run;
        rn_strbuf_appendf(&s, "%-14s %16.2f %16.2f%s\n", nets[k].arch, train_error(r),
                          test_error(r), r->diverged ? "  (diverged)" : "");
        any_diverged |= r->diverged;
    }
    rn_strbuf_appendf(&s, "\nTraining error is the mean over the last epoch's batches, "
                      "with augmentation,\nas in the dashed curves of Figure 6 of He et al. "
                      "(2015).\n\n");

    int plain_degrades = pd > ps;
    int residual_fine = rd <= rs + EQUAL_TOLERANCE;
    rn_strbuf_appendf(&s, "plain: %s has %s training error than %s (%.2f%% vs %.2f%%)%s\n",
                      plain_d->arch, plain_degrades ? "a HIGHER" : "a lower or equal",
                      plain_s->arch, pd, ps,
                      plain_degrades ? ": the degradation problem appears" : "");
    rn_strbuf_appendf(&s, "residual: %s has %s training error than %s (%.2f%% vs %.2f%%, "
                      "equal means within %.1f points)\n", res_d->arch,
                      rd < rs - EQUAL_TOLERANCE ? "a lower"
                      : residual_fine           ? "an equal"
                                                : "a HIGHER",
                      res_s->arch, rd, rs, EQUAL_TOLERANCE);
    if (plain_degrades && residual_fine && !any_diverged)
        rn_strbuf_appendf(&s, "The expected outcome HELD: the deeper plain net trains worse, "
                          "the deeper residual net does not.\n");
    else
        rn_strbuf_appendf(&s, "The expected outcome did NOT hold in this run%s; a larger "
                          "budget (--full) may change that.\n",
                          any_diverged ? " (a run diverged)" : "");

    rn_status status = s.data ? exp_write(o->out_dir, "summary.txt", &s)
                              : rn_error(RN_ERR_NOMEM, "out of memory");
    rn_strbuf_free(&s);
    return status;
}

rn_status rn_experiment_degradation(const rn_experiment_options *o)
{
    static const int default_depths[2] = {20, 56};
    static net_result nets[4];
    int depths[RN_EXPERIMENT_DEPTHS_MAX];
    int epochs = (int)exp_pick(o->epochs, o->full ? FULL_EPOCHS : DEFAULT_EPOCHS);
    int64_t train_count = exp_pick(o->train_limit, o->full ? 0 : DEFAULT_TRAIN);
    int64_t test_count = exp_pick(o->test_limit, o->full ? 0 : DEFAULT_TEST);

    if (exp_depths(o, default_depths, 2, depths) != 2)
        return rn_error(RN_ERR_INVALID, "degradation compares two depths, such as "
                        "--depths 20,56; got %d", o->depth_count);
    if (o->no_bn)
        return rn_error(RN_ERR_INVALID, "--no-bn applies to the gradients experiment only");
    if (epochs > EXP_EPOCHS_MAX)
        return rn_error(RN_ERR_INVALID, "--epochs %d is above the maximum of %d", epochs,
                        EXP_EPOCHS_MAX);
    RN_TRY(exp_prepare_out(o->out_dir));

    for (int k = 0; k < 4; k++) {
        rn_train_config config;
        net_result *net = &nets[k];
        exp_arch(net->arch, sizeof net->arch, k < 2 ? "plain" : "resnet", depths[k % 2], 0);
        exp_train_config(o, &config, net->arch, epochs, train_count, test_count, net->arch);
        RN_TRY(exp_train(o, &config, NULL, net->arch, &net->run));
    }
    RN_TRY(write_csv(o, nets));
    RN_TRY(write_plot(o, nets));
    return write_summary(o, nets, epochs, train_count, test_count);
}

/* Gradient flow and layer responses of plain and residual nets. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "experiments/common.h"
#include "layers/layers.h"
#include "report/plot.h"

/* Default budget: 200 steps of batch 128 per net. For the six nets of
 * depth 20, 56 and 110 (costing about 1, 2.8 and 5.5 times resnet20) that
 * is an estimated 13 minutes on the reference machine of
 * docs/benchmarks.md. */
enum { DEFAULT_STEPS = 200, FULL_STEPS = 2000, DEFAULT_TEST = 1000, MEASURE_MB = 128 };
enum { NETS_MAX = 2 * RN_EXPERIMENT_DEPTHS_MAX };

/* Without BN a deep net diverges at the default recipe's learning rate. */
static const double NO_BN_LR = 0.01;

typedef struct layer_stat {
    char name[RN_NAME_MAX];
    int kernel;          /* 3 for a 3x3 convolution, 1 for a projection */
    double grad_norm;    /* ||dL/dW|| of the convolution's weights */
    double response_std; /* std of the 3x3 layer's response; NAN for 1x1 */
} layer_stat;

typedef struct net_stats {
    char arch[32];
    int residual, depth_index;
    int conv_count;
    layer_stat *at_init, *trained; /* (conv_count) each */
    int diverged;
    double seconds;
} net_stats;

/* One forward and backward pass in training mode over the fixed batch:
 * the gradient norm of every convolution and the std of its response,
 * which is the BN output where a BN follows, else the convolution output. */
static rn_status measure(rn_model *model, const float *images, const int32_t *labels, int mb,
                         layer_stat *stats)
{
    rn_plan *plan;
    float *diff_logits = malloc((size_t)mb * model->config.classes * sizeof(float));
    if (!diff_logits)
        return rn_error(RN_ERR_NOMEM, "out of memory for the logits gradient");
    rn_status status = rn_plan_create_keeping_values(model, mb, &plan);
    if (status != RN_OK) {
        free(diff_logits);
        return status;
    }
    const float *logits = rn_model_forward(model, plan, images, mb, 1);
    rn_cross_entropy(diff_logits, NULL, logits, labels, mb, model->config.classes, 0.0f);
    rn_model_zero_grad(model);
    rn_model_backward(model, plan, diff_logits);

    int k = 0;
    for (int i = 0; i < model->node_count; i++) {
        const rn_node *node = &model->nodes[i];
        if (node->kind != RN_NODE_CONV)
            continue;
        const rn_tensor_entry *w = &model->params[node->weights];
        const float *g = model->grad_data + w->offset;
        double sum_sq = 0.0;
        for (size_t j = 0; j < w->numel; j++)
            sum_sq += (double)g[j] * g[j];
        int reader = exp_reader(model, node->dst);
        int response = reader >= 0 && model->nodes[reader].kind == RN_NODE_BN
                           ? model->nodes[reader].dst : node->dst;
        layer_stat *s = &stats[k++];
        snprintf(s->name, sizeof s->name, "%s", node->name);
        s->kernel = node->kh;
        s->grad_norm = sqrt(sum_sq);
        s->response_std = node->kh == 3 ? exp_value_std(model, plan, mb, response) : NAN;
    }
    rn_plan_destroy(plan);
    free(diff_logits);
    return RN_OK;
}

static int count_convs(const rn_model *model)
{
    int n = 0;
    for (int i = 0; i < model->node_count; i++)
        n += model->nodes[i].kind == RN_NODE_CONV;
    return n;
}

static rn_status run_net(const rn_experiment_options *o, net_stats *net, int steps, int mb,
                         const float *images, const int32_t *labels, int c, int h, int w)
{
    exp_init init = {.use_init = 1, .init = RN_INIT_KAIMING};
    rn_model *model = NULL;
    rn_train_config config;
    exp_run run;

    RN_TRY(exp_model(net->arch, c, h, w, o, &init, NULL, &model));
    net->conv_count = count_convs(model);
    net->at_init = calloc(net->conv_count, sizeof(layer_stat));
    net->trained = calloc(net->conv_count, sizeof(layer_stat));
    rn_status status = net->at_init && net->trained
                           ? measure(model, images, labels, mb, net->at_init)
                           : rn_error(RN_ERR_NOMEM, "out of memory");
    rn_model_destroy(model);
    model = NULL;
    RN_TRY(status);

    int batch = o->batch_size > 0 ? o->batch_size : 128;
    exp_train_config(o, &config, net->arch, 1, (int64_t)steps * batch,
                     exp_pick(o->test_limit, DEFAULT_TEST), net->arch);
    if (o->no_bn)
        config.schedule.lr = NO_BN_LR;
    RN_TRY(exp_train(o, &config, &init, net->arch, &run));
    net->diverged = run.diverged;
    if (run.epoch_count)
        net->seconds = run.epochs[0].train_seconds;
    if (run.diverged) {
        for (int k = 0; k < net->conv_count; k++)
            net->trained[k] = (layer_stat){.grad_norm = NAN, .response_std = NAN};
        return RN_OK;
    }
    RN_TRY(exp_model(net->arch, c, h, w, o, NULL, config.output_dir, &model));
    status = measure(model, images, labels, mb, net->trained);
    rn_model_destroy(model);
    return status;
}

/* ---------------------------------------------------------------- output */

static rn_status write_csv(const rn_experiment_options *o, const net_stats *nets, int count)
{
    rn_strbuf csv = {0};
    rn_status status = rn_strbuf_appendf(&csv, "model,state,layer_index,layer,kernel,"
                                         "grad_norm,response_std\n");
    for (int n = 0; n < count && status == RN_OK; n++) {
        for (int state = 0; state < 2; state++) {
            const layer_stat *stats = state ? nets[n].trained : nets[n].at_init;
            for (int k = 0; k < nets[n].conv_count && status == RN_OK; k++)
                status = rn_strbuf_appendf(&csv, "%s,%s,%d,%s,%d,%.6g,%.6g\n", nets[n].arch,
                                           state ? "trained" : "init", k + 1,
                                           nets[n].at_init[k].name, nets[n].at_init[k].kernel,
                                           stats[k].grad_norm, stats[k].response_std);
        }
    }
    if (status == RN_OK)
        status = exp_write(o->out_dir, "gradients.csv", &csv);
    rn_strbuf_free(&csv);
    return status;
}

static int compare_desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    if (isnan(x) || isnan(y))
        return isnan(x) - isnan(y);
    return (x < y) - (x > y);
}

/* gradients.svg (norms at init and after training, log scale) and
 * responses.svg (Figure 7: response std by layer and sorted). */
static rn_status write_plots(const rn_experiment_options *o, const net_stats *nets, int count,
                             int steps)
{
    rn_series grad_series[2][NETS_MAX], response_series[2][NETS_MAX];
    double *buffers[NETS_MAX][5] = {{0}};
    rn_status status = RN_OK;

    for (int n = 0; n < count && status == RN_OK; n++) {
        const net_stats *net = &nets[n];
        int L = net->conv_count, r = 0;
        for (int b = 0; b < 5; b++)
            if (!(buffers[n][b] = malloc(L * sizeof(double))))
                status = rn_error(RN_ERR_NOMEM, "out of memory drawing the plots");
        if (status != RN_OK)
            break;
        double *x = buffers[n][0], *g0 = buffers[n][1], *g1 = buffers[n][2];
        double *resp = buffers[n][3], *sorted = buffers[n][4];
        for (int k = 0; k < L; k++) {
            x[k] = k + 1;
            g0[k] = net->at_init[k].grad_norm;
            g1[k] = net->trained[k].grad_norm;
            if (net->at_init[k].kernel == 3)
                resp[r++] = net->trained[k].response_std;
        }
        memcpy(sorted, resp, r * sizeof(double));
        qsort(sorted, r, sizeof(double), compare_desc);
        rn_line_style style = net->residual ? RN_LINE_SOLID : RN_LINE_DASHED;
        rn_series base = {.x = x, .n = L, .color = net->depth_index, .style = style};
        snprintf(base.label, sizeof base.label, "%.40s", net->arch);
        grad_series[0][n] = grad_series[1][n] = base;
        grad_series[0][n].y = g0;
        grad_series[1][n].y = g1;
        response_series[0][n] = response_series[1][n] = base;
        response_series[0][n].y = resp;
        response_series[1][n].y = sorted;
        response_series[0][n].n = response_series[1][n].n = r;
    }
    if (status == RN_OK) {
        char title[96], path[1100];
        snprintf(title, sizeof title, "after %d steps", steps);
        rn_panel panels[2] = {
            {.title = "at initialization", .xlabel = "convolution index (input to output)",
             .ylabel = "weight gradient norm", .log_y = 1, .x_integer = 1,
             .series = grad_series[0], .series_count = count},
            {.title = title, .xlabel = "convolution index (input to output)",
             .ylabel = "weight gradient norm", .log_y = 1, .x_integer = 1,
             .series = grad_series[1], .series_count = count},
        };
        snprintf(path, sizeof path, "%s/gradients.svg", o->out_dir);
        status = rn_plot_write(path, o->no_bn ? "Gradient norm per convolution, without BN "
                                                "(plain dashed, residual solid)"
                                              : "Gradient norm per convolution (plain "
                                                "dashed, residual solid)", panels, 2, 2);
        snprintf(title, sizeof title, "Std of 3x3 layer responses after %d steps (plain "
                 "dashed, residual solid)", steps);
        rn_panel response_panels[2] = {
            {.title = "by layer", .xlabel = "3x3 layer index (input to output)",
             .ylabel = "std of response", .x_integer = 1, .series = response_series[0],
             .series_count = count},
            {.title = "sorted by magnitude", .xlabel = "rank",
             .ylabel = "std of response", .x_integer = 1, .series = response_series[1],
             .series_count = count},
        };
        snprintf(path, sizeof path, "%s/responses.svg", o->out_dir);
        if (status == RN_OK)
            status = rn_plot_write(path, title, response_panels, 2, 2);
    }
    for (int n = 0; n < NETS_MAX; n++)
        for (int b = 0; b < 5; b++)
            free(buffers[n][b]);
    return status;
}

static double mean_response(const net_stats *net, const layer_stat *stats)
{
    double sum = 0.0;
    int n = 0;
    for (int k = 0; k < net->conv_count; k++) {
        if (net->at_init[k].kernel == 3) {
            sum += stats[k].response_std;
            n++;
        }
    }
    return n ? sum / n : NAN;
}

static rn_status write_summary(const rn_experiment_options *o, const net_stats *nets,
                               int count, int steps, int mb)
{
    rn_strbuf s = {0};
    int held = 1, compared = 0;

    rn_strbuf_appendf(&s, "gradients: %s, Kaiming (fan_out) initialization.\nMeasured on a "
                      "fixed batch of %d training images in training mode,\nat "
                      "initialization and after %d steps of the default recipe%s.\n\n", o->no_bn ? "without BN (conv biases "
                      "start at zero)" : "with BN", mb, steps,
                      o->no_bn ? " at lr 0.01" : "");
    rn_strbuf_appendf(&s, "%-16s %14s %14s %14s %14s %12s\n", "model", "first/last init",
                      "first/last end", "min norm init", "max norm init", "mean std end");
    for (int n = 0; n < count; n++) {
        const net_stats *net = &nets[n];
        int L = net->conv_count;
        double lo = INFINITY, hi = 0.0;
        for (int k = 0; k < L; k++) {
            lo = fmin(lo, net->at_init[k].grad_norm);
            hi = fmax(hi, net->at_init[k].grad_norm);
        }
        rn_strbuf_appendf(&s, "%-16s %14.3g %14.3g %14.3g %14.3g %12.3f%s\n", net->arch,
                          net->at_init[0].grad_norm / net->at_init[L - 1].grad_norm,
                          net->trained[0].grad_norm / net->trained[L - 1].grad_norm, lo, hi,
                          mean_response(net, net->trained), net->diverged ? "  diverged" : "");
    }
    rn_strbuf_appendf(&s, "\nfirst/last: gradient norm of the first convolution divided by "
                      "that of the last;\n  far below 1 means the gradient vanishes on its "
                      "way to the input.\nmean std end: mean std of the 3x3 responses after "
                      "training;\n  Figure 7 of He et al. (2015) finds residual nets' "
                      "responses smaller than plain nets'.\n\n");

    /* Figure 7 of He et al. (2015): per depth, residual responses are smaller. */
    for (int n = 0; n + 1 < count; n += 2) {
        const net_stats *plain = &nets[n], *residual = &nets[n + 1];
        double p = mean_response(plain, plain->trained);
        double r = mean_response(residual, residual->trained);
        if (!isfinite(p) || !isfinite(r))
            continue;
        compared++;
        held &= r < p;
        rn_strbuf_appendf(&s, "%s responses are %s than %s's (mean std %.3f vs %.3f)\n",
                          residual->arch, r < p ? "smaller" : "NOT smaller", plain->arch, r, p);
    }
    if (compared)
        rn_strbuf_appendf(&s, "The expected outcome (smaller responses in residual nets) %s.\n",
                          held ? "HELD" : "did NOT hold");

    rn_status status = s.data ? exp_write(o->out_dir, "summary.txt", &s)
                              : rn_error(RN_ERR_NOMEM, "out of memory");
    rn_strbuf_free(&s);
    return status;
}

rn_status rn_experiment_gradients(const rn_experiment_options *o)
{
    static const int default_depths[3] = {20, 56, 110};
    int depths[RN_EXPERIMENT_DEPTHS_MAX];
    int depth_count = exp_depths(o, default_depths, 3, depths);
    int steps = (int)exp_pick(o->steps, o->full ? FULL_STEPS : DEFAULT_STEPS);
    int mb = o->batch_size > 0 ? o->batch_size : MEASURE_MB;
    net_stats nets[NETS_MAX] = {0};
    float *images = NULL;
    int32_t *labels = NULL;
    int c, h, w, count = 0;

    if (o->epochs > 0 || o->train_limit > 0)
        return rn_error(RN_ERR_INVALID, "the gradients experiment trains for --steps, not "
                        "--epochs or --train-limit");
    RN_TRY(exp_prepare_out(o->out_dir));
    rn_status status = exp_fixed_batch(o, 1, mb, &images, &labels, &c, &h, &w);

    for (int d = 0; d < depth_count && status == RN_OK; d++) {
        for (int residual = 0; residual < 2 && status == RN_OK; residual++) {
            net_stats *net = &nets[count++];
            net->residual = residual;
            net->depth_index = d;
            exp_arch(net->arch, sizeof net->arch, residual ? "resnet" : "plain", depths[d],
                     o->no_bn);
            exp_log(o, "%s: measuring at initialization", net->arch);
            status = run_net(o, net, steps, mb, images, labels, c, h, w);
        }
    }
    if (status == RN_OK)
        status = write_csv(o, nets, count);
    if (status == RN_OK)
        status = write_plots(o, nets, count, steps);
    if (status == RN_OK)
        status = write_summary(o, nets, count, steps, mb);

    for (int n = 0; n < count; n++) {
        free(nets[n].at_init);
        free(nets[n].trained);
    }
    free(images);
    free(labels);
    return status;
}

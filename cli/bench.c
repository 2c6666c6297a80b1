/* resnet bench */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cli.h"
#include "core/cpu.h"
#include "core/rng.h"
#include "core/status.h"
#include "kernels/gemm.h"
#include "kernels/peak.h"
#include "layers/layers.h"
#include "model/model.h"
#include "train/sgd.h"

static const char BENCH_HELP[] =
    "usage: resnet bench --model NAME [-b N] [--input CxHxW] [OPTIONS]\n"
    "\n"
    "Time training steps (forward, cross-entropy, backward, SGD with momentum) or,\n"
    "with --mode inference, evaluation-mode forward passes, on random data. Print\n"
    "images/s, the time per step (per batch in inference), the achieved GFLOP/s\n"
    "(a training step counts 3 times the forward multiply-accumulates, 2 FLOPs\n"
    "each), the machine's FP32 peak measured by a loop of FMAs on the same threads\n"
    "with the share of it reached, and the process's peak resident memory.\n"
    "GFLOP/s count the multiply-accumulates of a direct convolution, so Winograd\n"
    "convolutions, which need fewer, can exceed the peak.\n"
    "\n"
    "  --model NAME       model to time (default resnet20)\n"
    "  -b, --batch-size N images per step (default 128)\n"
    "  --input CxHxW      input shape (default 3x32x32)\n"
    "  --classes N        number of classes (default 10)\n"
    "  --shortcut A|B|C   shortcut option (default: the model's own)\n"
    "  --stride-in-1x1    bottleneck networks: stride on the first 1x1 convolution\n"
    "  --steps N          timed steps (default 20)\n"
    "  --warmup N         untimed steps first (default 3)\n"
    "  --threads N        OpenMP threads (0: all cores)\n"
    "  --precision fp32|bf16\n"
    "                     inputs of the convolutions' products (default fp32; bf16\n"
    "                     needs AVX512_BF16, see resnet train --help)\n"
    "  --mode train|inference\n"
    "                     what to time (default train)\n"
    "  --format text|json one line of JSON for scripts\n"
    "  --profile          also print the time of each layer class per step, forward\n"
    "                     and backward (text format only)\n";

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int takes_value(const char *name)
{
    static const char *const valued[] = {"model", "batch-size", "input", "classes", "shortcut", "steps", "warmup", "threads", "format", "mode", "precision", NULL};
    static const char *const switches[] = {"help", "stride-in-1x1", "profile", NULL};
    return rn_args_classify(name, valued, switches);
}

static int parse_positive(const char *text, int min, int *out)
{
    char *end;
    long v = strtol(text, &end, 10);
    if (end == text || *end || v < min || v > 1000000)
        return 0;
    *out = (int)v;
    return 1;
}

/* The profile as a table: milliseconds per step of each layer class, its
 * share of the step, and GFLOP/s for convolutions (backward counted as
 * twice the forward multiply-accumulates). */
static void print_profile(const rn_model *m, const rn_plan *plan, const rn_profile *p,
                          double other, double seconds, int steps, int mb, int inference)
{
    int64_t macs[RN_PROFILE_CLASSES] = {0};
    for (int i = 0; i < m->node_count; i++)
        macs[rn_node_profile_class(m, plan, i, mb)] += rn_node_macs(m, i);

    printf("\nper step, %d steps:\n", steps);
    if (inference)
        printf("%-22s %10s %7s %12s\n", "layers", "ms", "share", "GFLOP/s");
    else
        printf("%-22s %10s %10s %7s %12s %12s\n", "layers", "fwd ms", "bwd ms", "share",
               "fwd GFLOP/s", "bwd GFLOP/s");
    double accounted = 0.0;
    for (int c = 0; c < RN_PROFILE_CLASSES; c++) {
        double fwd = p->forward[c] / steps, bwd = p->backward[c] / steps;
        accounted += fwd + bwd;
        if (fwd + bwd == 0.0)
            continue;
        printf("%-22s %10.2f", rn_profile_class_name(c), 1e3 * fwd);
        if (!inference)
            printf(" %10.2f", 1e3 * bwd);
        printf(" %6.1f%%", 100.0 * (fwd + bwd) * steps / seconds);
        if (macs[c] > 0 && fwd > 0.0)
            printf(" %12.1f", 2e-9 * macs[c] * mb / fwd);
        if (macs[c] > 0 && bwd > 0.0)
            printf(" %12.1f", 4e-9 * macs[c] * mb / bwd);
        printf("\n");
    }
    double rest = seconds / steps - accounted - other / steps;
    if (!inference)
        printf("%-22s %21.2f %6.1f%%\n", "loss, zero grad, SGD", 1e3 * other / steps,
               100.0 * other / seconds);
    printf("%-22s %*.2f %6.1f%%\n", "between layers", inference ? 10 : 21, 1e3 * rest,
           100.0 * rest * steps / seconds);
}

int cmd_bench(int argc, char **argv)
{
    static const char *const shorts[] = {"b", "batch-size", "h", "help", NULL};
    rn_args args = {argc, argv, 0, "bench"};
    rn_model_config cfg = {.arch = "resnet20", .in_c = 3, .in_h = 32, .in_w = 32,
                           .classes = 10, .shortcut = RN_SHORTCUT_DEFAULT};
    int mb = 128, steps = 20, warmup = 3, threads = 0, json = 0, profiling = 0, inference = 0;
    int bf16 = 0;
    const char *name, *value;
    int r;

    while ((r = rn_args_next(&args, shorts, takes_value, &name, &value)) > 0) {
        if (!strcmp(name, "help")) {
            fputs(BENCH_HELP, stdout);
            return RN_EXIT_OK;
        } else if (!strcmp(name, "model")) {
            if (strlen(value) >= sizeof cfg.arch)
                return rn_usage_error("bench", "model name too long: '%s'", value);
            strcpy(cfg.arch, value);
        } else if (!strcmp(name, "batch-size")) {
            if (!parse_positive(value, 1, &mb))
                return rn_usage_error("bench", "invalid batch size '%s': expected an integer "
                                      "of at least 1", value);
        } else if (!strcmp(name, "input")) {
            if (!rn_parse_shape(value, &cfg.in_c, &cfg.in_h, &cfg.in_w))
                return rn_usage_error("bench", "invalid --input '%s': expected CxHxW", value);
        } else if (!strcmp(name, "classes")) {
            if (!parse_positive(value, 2, &cfg.classes))
                return rn_usage_error("bench", "invalid --classes '%s'", value);
        } else if (!strcmp(name, "shortcut")) {
            if (rn_shortcut_parse(value, &cfg.shortcut) != RN_OK)
                return rn_usage_error("bench", "%s", rn_last_error());
        } else if (!strcmp(name, "stride-in-1x1")) {
            cfg.stride_in_1x1 = 1;
        } else if (!strcmp(name, "profile")) {
            profiling = 1;
        } else if (!strcmp(name, "mode")) {
            if (strcmp(value, "train") && strcmp(value, "inference"))
                return rn_usage_error("bench", "invalid --mode '%s': expected train or inference",
                                      value);
            inference = !strcmp(value, "inference");
        } else if (!strcmp(name, "steps")) {
            if (!parse_positive(value, 1, &steps))
                return rn_usage_error("bench", "invalid --steps '%s'", value);
        } else if (!strcmp(name, "warmup")) {
            if (!parse_positive(value, 0, &warmup))
                return rn_usage_error("bench", "invalid --warmup '%s'", value);
        } else if (!strcmp(name, "threads")) {
            if (!parse_positive(value, 0, &threads))
                return rn_usage_error("bench", "invalid --threads '%s'", value);
        } else if (!strcmp(name, "precision")) {
            if (strcmp(value, "fp32") && strcmp(value, "bf16"))
                return rn_usage_error("bench", "invalid --precision '%s': expected fp32 or bf16",
                                      value);
            bf16 = !strcmp(value, "bf16");
            if (bf16 && !rn_cpu_avx512_bf16())
                return rn_usage_error("bench", "--precision bf16 needs AVX512_BF16 in the CPU "
                                      "and the default build (not make ISA=avx2 or "
                                      "ISA=baseline); use --precision fp32");
        } else if (!strcmp(name, "format")) {
            if (strcmp(value, "text") && strcmp(value, "json"))
                return rn_usage_error("bench", "invalid --format '%s': expected text or json",
                                      value);
            json = !strcmp(value, "json");
        } else {
            return rn_usage_error("bench", "unknown option '--%s'", name);
        }
    }
    if (r < 0)
        return RN_EXIT_USAGE;

    threads = rn_threads_set(threads);
    rn_conv_set_precision(bf16 ? RN_PRECISION_BF16 : RN_PRECISION_FP32);
    rn_model *m;
    rn_plan *plan;
    rn_status status = rn_model_create(&cfg, &m);
    if (status != RN_OK)
        return rn_report_failure("bench", status);
    status = inference ? rn_plan_create_inference(m, mb, &plan) : rn_plan_create(m, mb, &plan);
    if (status != RN_OK)
        return rn_report_failure("bench", status);

    rn_sgd sgd;
    rn_sgd_config sgd_cfg = {.momentum = 0.9f, .weight_decay = 5e-4f};
    size_t numel = (size_t)mb * cfg.in_c * cfg.in_h * cfg.in_w;
    float *images = rn_alloc_aligned(numel * sizeof(float));
    float *diff_logits = rn_alloc_aligned((size_t)mb * cfg.classes * sizeof(float));
    int32_t *labels = calloc(mb, sizeof(int32_t));
    /* Inference needs no optimizer state: its memory would count in the peak. */
    int sgd_ok = inference ? (memset(&sgd, 0, sizeof sgd), 1)
                           : rn_sgd_init(&sgd, &sgd_cfg, m->param_numel);
    if (!sgd_ok || !images || !diff_logits || !labels) {
        fprintf(stderr, "resnet bench: error: out of memory\n");
        return RN_EXIT_FAILURE;
    }
    rn_rng rng;
    rn_rng_seed(&rng, 1);
    for (size_t i = 0; i < numel; i++)
        images[i] = (float)rn_rng_normal(&rng);
    for (int i = 0; i < mb; i++)
        labels[i] = (int32_t)rn_rng_below(&rng, (uint32_t)cfg.classes);

    double start = 0.0, other = 0.0;
    rn_profile profile = {0};
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup) {
            start = now_seconds();
            if (profiling)
                rn_plan_set_profile(plan, &profile);
        }
        const float *logits = rn_model_forward(m, plan, images, mb, !inference);
        if (inference)
            continue;
        double other_start = now_seconds();
        rn_cross_entropy(diff_logits, NULL, logits, labels, mb, cfg.classes, 0.0f);
        rn_model_zero_grad(m);
        double other_end = now_seconds();
        rn_model_backward(m, plan, diff_logits);
        double sgd_start = now_seconds();
        rn_sgd_step(&sgd, m->param_data, m->grad_data, 0.01f);
        rn_model_weights_changed(m);
        if (s >= warmup)
            other += now_seconds() - sgd_start + other_end - other_start;
    }
    double seconds = now_seconds() - start;

    int64_t macs = 0;
    for (int i = 0; i < m->node_count; i++)
        macs += rn_node_macs(m, i);
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    double images_per_sec = (double)steps * mb / seconds;
    double step_ms = 1e3 * seconds / steps;
    double gflops = (inference ? 1.0 : 3.0) * 2.0 * (double)macs * images_per_sec / 1e9;
    double peak_mib = usage.ru_maxrss / 1024.0;
    const char *isa;
    double machine_gflops = rn_peak_gflops(threads, &isa);
    const char *mode = inference ? "inference" : "train";

    if (json) {
        printf("{\"model\": \"%s\", \"mode\": \"%s\", \"batch\": %d, \"input\": \"%dx%dx%d\", "
               "\"shortcut\": \"%s\", \"precision\": \"%s\", \"threads\": %d, \"steps\": %d, "
               "\"images_per_sec\": %.1f, "
               "\"step_ms\": %.2f, \"peak_rss_mib\": %.1f, \"gflops\": %.1f, "
               "\"machine_peak_gflops\": %.1f, \"percent_of_peak\": %.1f}\n",
               cfg.arch, mode, mb, cfg.in_c, cfg.in_h, cfg.in_w,
               rn_shortcut_name(m->config.shortcut), bf16 ? "bf16" : "fp32", threads, steps,
               images_per_sec, step_ms,
               peak_mib, gflops, machine_gflops, 100.0 * gflops / machine_gflops);
    } else {
        const char *thread_word = threads == 1 ? "thread" : "threads";
        printf("%s, batch %d, input %dx%dx%d, %d %s, %d steps%s\n", cfg.arch, mb, cfg.in_c,
               cfg.in_h, cfg.in_w, threads, thread_word, steps,
               bf16 ? ", BF16 convolution products" : "");
        printf("%s: %.1f images/s, %.2f ms per %s, %.1f GFLOP/s\n",
               inference ? "inference" : "training", images_per_sec, step_ms,
               inference ? "batch" : "step", gflops);
        printf("machine FP32 peak: %.1f GFLOP/s (%s, %d %s); this run reached %.1f%%\n",
               machine_gflops, isa, threads, thread_word, 100.0 * gflops / machine_gflops);
        printf("peak resident memory: %.1f MiB\n", peak_mib);
        if (profiling)
            print_profile(m, plan, &profile, other, seconds, steps, mb, inference);
    }
    rn_sgd_free(&sgd);
    rn_free_aligned(images);
    rn_free_aligned(diff_logits);
    free(labels);
    rn_plan_destroy(plan);
    rn_model_destroy(m);
    return RN_EXIT_OK;
}

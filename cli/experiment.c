/* resnet experiment */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "core/status.h"
#include "data/dataset.h"
#include "experiments/experiments.h"
#include "io/file.h"

static const char EXPERIMENT_HELP[] =
    "usage: resnet experiment NAME [OPTIONS]\n"
    "\n"
    "Run an experiment on why residual learning works and write CSV files, SVG plots\n"
    "and summary.txt into the output directory (training runs go to its runs/).\n"
    "\n"
    "experiments:\n"
    "  degradation  plain20, plain56, resnet20, resnet56 with one recipe: training\n"
    "               and test error per epoch (He et al. 2015, Figure 6)\n"
    "  gradients    plain and residual nets of depth 20, 56 and 110: the weight\n"
    "               gradient norm of every convolution at initialization and after\n"
    "               a few hundred steps, and the std of every 3x3 layer's response\n"
    "               (Figure 7)\n"
    "  init         Kaiming fan_in, Kaiming fan_out and Xavier, with and without BN,\n"
    "               on plain56 and resnet56: activation std per layer at\n"
    "               initialization, and training curves\n"
    "  identity     zero residual branches give the identity bit for bit; the ratio\n"
    "               ||F(x)|| / ||x|| of every block of resnet56 after training\n"
    "\n"
    "The default budget of each experiment trains on a subset for a few epochs; it\n"
    "was sized for about 15 minutes on the 2-core machine of docs/benchmarks.md\n"
    "(about 600 resnet20 training images/s) and takes longer on a slower one.\n"
    "\n"
    "options:\n"
    "  --out DIR            output directory, which must not exist or be empty\n"
    "                       (default runs/experiment-NAME-YYYYMMDD-HHMMSS)\n"
    "  --full               the full budget: all 60,000 training and 10,000 test images\n"
    "                       and the default recipe's 8 epochs (gradients: 2000 steps)\n"
    "  --no-bn              gradients: networks without batch normalization (each\n"
    "                       convolution gets a bias, starting at zero; lr 0.01)\n"
    "  --depths LIST        depths of the 6n+2 networks: two for degradation (20,56),\n"
    "                       any number for gradients (20,56,110), one for init and\n"
    "                       identity (56)\n"
    "  --epochs N           training epochs of every run (degradation, init, identity)\n"
    "  --train-limit N      train on the first N images (degradation, init, identity)\n"
    "  --test-limit N       evaluate on the first N test images\n"
    "  --steps N            gradients: training steps between the two measurements\n"
    "  -b, --batch-size N   training batch size (default 128; gradients also measures\n"
    "                       on a batch of this size)\n"
    "  --data DIR           Fashion-MNIST directory (default " RN_FASHION_MNIST_DIR ")\n"
    "  --seed N             seed of initialization, shuffling and augmentation\n"
    "  --threads N          OpenMP threads (0: all cores, the default)\n"
    "\n"
    "Ctrl-C stops after the current training step and exits with status 130; the\n"
    "files written so far stay in the output directory.\n";

static int takes_value(const char *name)
{
    static const char *const valued[] = {
        "out", "data", "threads", "seed", "depths", "epochs", "train-limit", "test-limit",
        "steps", "batch-size", NULL,
    };
    static const char *const switches[] = {"help", "full", "no-bn", NULL};
    return rn_args_classify(name, valued, switches);
}

static volatile sig_atomic_t stop_requested;

static void on_sigint(int sig)
{
    static const char msg[] = "\nresnet experiment: stopping after this step (Ctrl-C again "
                              "to quit at once)\n";
    stop_requested = 1;
    if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) {
        /* Nothing useful to do inside a signal handler. */
    }
    signal(sig, SIG_DFL);
}

static void print_line(void *ctx, const char *line)
{
    printf("%s: %s\n", (const char *)ctx, line);
    fflush(stdout);
}

/* Parse an integer option value in [lo, hi]. Returns 0 on success, or -1
 * after printing a usage error. */
static int parse_integer(const char *name, const char *value, long long lo, long long hi,
                         long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (end == value || *end || errno || v < lo || v > hi) {
        rn_usage_error("experiment", "invalid value '%s' for --%s: expected an integer "
                       "from %lld to %lld", value, name, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_depths(const char *value, rn_experiment_options *o)
{
    const char *p = value;
    o->depth_count = 0;
    while (*p) {
        char *end;
        long depth = strtol(p, &end, 10);
        if (end == p || (*end && *end != ',') || depth < 8 || depth > 2000 ||
            (depth - 2) % 6 != 0 || o->depth_count == RN_EXPERIMENT_DEPTHS_MAX)
            return rn_usage_error("experiment", "invalid --depths '%s': expected up to %d "
                                  "comma-separated depths 6n+2 from 8 to 2000, such as "
                                  "20,56,110", value, RN_EXPERIMENT_DEPTHS_MAX);
        o->depths[o->depth_count++] = (int)depth;
        p = *end ? end + 1 : end;
    }
    if (o->depth_count == 0)
        return rn_usage_error("experiment", "--depths needs at least one depth");
    return RN_EXIT_OK;
}

static int apply_option(rn_experiment_options *o, const char *name, const char *value)
{
    long long v;
    if (!strcmp(name, "out")) {
        o->out_dir = value;
    } else if (!strcmp(name, "data")) {
        o->data_dir = value;
    } else if (!strcmp(name, "full")) {
        o->full = 1;
    } else if (!strcmp(name, "no-bn")) {
        o->no_bn = 1;
    } else if (!strcmp(name, "depths")) {
        return parse_depths(value, o);
    } else if (!strcmp(name, "threads")) {
        if (parse_integer(name, value, 0, 4096, &v))
            return RN_EXIT_USAGE;
        o->threads = (int)v;
    } else if (!strcmp(name, "seed")) {
        if (parse_integer(name, value, 0, 1LL << 62, &v))
            return RN_EXIT_USAGE;
        o->seed = (uint64_t)v;
    } else if (!strcmp(name, "epochs")) {
        if (parse_integer(name, value, 1, 512, &v))
            return RN_EXIT_USAGE;
        o->epochs = (int)v;
    } else if (!strcmp(name, "train-limit") || !strcmp(name, "test-limit")) {
        if (parse_integer(name, value, 1, 1LL << 40, &v))
            return RN_EXIT_USAGE;
        *(name[1] == 'r' ? &o->train_limit : &o->test_limit) = v;
    } else if (!strcmp(name, "steps")) {
        if (parse_integer(name, value, 1, 1000000, &v))
            return RN_EXIT_USAGE;
        o->steps = (int)v;
    } else if (!strcmp(name, "batch-size")) {
        if (parse_integer(name, value, 1, 65536, &v))
            return RN_EXIT_USAGE;
        o->batch_size = (int)v;
    }
    return RN_EXIT_OK;
}

int cmd_experiment(int argc, char **argv)
{
    static const char *const shorts[] = {"b", "batch-size", "h", "help", NULL};
    rn_experiment_options o = {.data_dir = RN_FASHION_MNIST_DIR};
    rn_status (*run)(const rn_experiment_options *) = NULL;
    const char *name, *value, *experiment;
    char out_dir[512], label[64];
    int r;

    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
        fputs(EXPERIMENT_HELP, argc < 1 ? stderr : stdout);
        return argc < 1 ? RN_EXIT_USAGE : RN_EXIT_OK;
    }
    experiment = argv[0];
    if (!strcmp(experiment, "degradation"))
        run = rn_experiment_degradation;
    else if (!strcmp(experiment, "gradients"))
        run = rn_experiment_gradients;
    else if (!strcmp(experiment, "init"))
        run = rn_experiment_init;
    else if (!strcmp(experiment, "identity"))
        run = rn_experiment_identity;
    else
        return rn_usage_error("experiment", "unknown experiment '%s': expected degradation, "
                              "gradients, init or identity", experiment);

    rn_args args = {argc - 1, argv + 1, 0, "experiment"};
    while ((r = rn_args_next(&args, shorts, takes_value, &name, &value)) > 0) {
        if (!strcmp(name, "help")) {
            fputs(EXPERIMENT_HELP, stdout);
            return RN_EXIT_OK;
        }
        if (apply_option(&o, name, value) != RN_EXIT_OK)
            return RN_EXIT_USAGE;
    }
    if (r < 0)
        return RN_EXIT_USAGE;
    if (!o.out_dir) {
        time_t now = time(NULL);
        struct tm tm;
        char stamp[32];
        localtime_r(&now, &tm);
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
        snprintf(out_dir, sizeof out_dir, "runs/experiment-%s-%s", experiment, stamp);
        o.out_dir = out_dir;
    }
    snprintf(label, sizeof label, "experiment %s", experiment);
    o.stop = &stop_requested;
    o.log = print_line;
    o.log_ctx = label;

    printf("%s: writing into %s\n", label, o.out_dir);
    fflush(stdout);
    signal(SIGINT, on_sigint);
    signal(SIGTERM, on_sigint);
    rn_status status = run(&o);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);

    if (status == RN_ERR_INTERRUPTED) {
        fprintf(stderr, "resnet experiment: %s\nresnet experiment: stopped; the files written "
                "so far are in %s\n", rn_last_error(), o.out_dir);
        return RN_EXIT_INTERRUPTED;
    }
    if (status != RN_OK)
        return rn_report_failure("experiment", status);

    char path[600];
    void *summary;
    size_t nbytes;
    snprintf(path, sizeof path, "%s/summary.txt", o.out_dir);
    if (rn_file_read_all(path, &summary, &nbytes) == RN_OK) {
        printf("\n%s", (const char *)summary);
        rn_free_aligned(summary);
    }
    printf("\nplots, CSV files and summary.txt are in %s\n", o.out_dir);
    return RN_EXIT_OK;
}

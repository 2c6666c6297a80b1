/* resnet train */
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "kernels/gemm.h"
#include "train/trainer.h"

static const char TRAIN_HELP[] =
    "usage: resnet train [OPTIONS]\n"
    "\n"
    "Train a residual network on Fashion-MNIST (IDX files, gzip-compressed or raw),\n"
    "a folder of PNG or JPEG images per class, or CIFAR-10's binary files;\n"
    "evaluate it on the test set after every epoch, and write a run directory with\n"
    "args, metrics.csv, last.safetensors (checkpoint) and best.safetensors (weights).\n"
    "\n"
    "recipes:\n"
    "  --recipe NAME          default: resnet20, 8 epochs, batch 128, SGD lr 0.1 with\n"
    "                         Nesterov momentum 0.9, wd 5e-4, cosine schedule with\n"
    "                         0.5 warm-up epochs, label smoothing 0.1, random flip,\n"
    "                         normalization by the data set's mean and std\n"
    "                         d2l: the book's setup: d2l-resnet18, resize 96, batch 256,\n"
    "                         lr 0.05, 10 epochs, plain SGD, Xavier, no normalization\n"
    "                         he2015: He et al.'s CIFAR-10 setup: resnet20, batch 128,\n"
    "                         lr 0.1 divided by 10 at steps 32000 and 48000, stop at\n"
    "                         64000, momentum 0.9, wd 1e-4, pad 4 with random crop and\n"
    "                         flip; needs --data DIR with the CIFAR-10 binary files\n"
    "                         Options after the recipe override it.\n"
    "model:\n"
    "  --model NAME           a name from the list at the end (default resnet20)\n"
    "  --shortcut A|B|C       A zero-padding identity (the CIFAR networks' default),\n"
    "                         B projection where the shape changes (torchvision's),\n"
    "                         C projections everywhere\n"
    "  --stride-in-1x1        bottleneck networks: stride on the first 1x1 convolution\n"
    "                         (the paper) instead of the 3x3 one (torchvision)\n"
    "  --init kaiming|xavier  Kaiming normal (fan_out) or Xavier uniform conv/linear weights\n"
    "  --zero-init-residual   start the last BN scale of every residual block at 0\n"
    "data:\n"
    "  --data DIR             directory of the data set (default\n"
    "                         /usr/share/datasets/fashion-mnist)\n"
    "  --data-format FORMAT   idx: train-images-idx3-ubyte[.gz] etc. (the default)\n"
    "                         imagefolder: DIR/train/<class>/<image> and DIR/val/...\n"
    "                         (or DIR/test/...), PNG or JPEG, classes sorted by name\n"
    "                         cifar10: data_batch_1.bin ... data_batch_5.bin, test_batch.bin\n"
    "  --pad N                zero padding in pixels before the random crop (0: off)\n"
    "  --flip, --no-flip      random horizontal flip\n"
    "  --resize SIZE|HxW|none bilinear resize before augmentation\n"
    "  --random-resized-crop MIN[,MAX]|none   crop a random box of MIN to MAX (default 1)\n"
    "                         of the image's area, aspect ratio 3/4 to 4/3, and resize it\n"
    "  --normalize MEAN,STD|M1,M2,M3,S1,S2,S3|auto|none   subtract mean, divide by std;\n"
    "                         auto (the default): the data set's values (Fashion-MNIST\n"
    "                         0.2860,0.3530; CIFAR-10's; an image folder's, measured)\n"
    "  --train-limit N        train on the first N images only (0: all)\n"
    "  --test-limit N         evaluate on the first N test images only (0: all)\n"
    "optimization:\n"
    "  -b, --batch-size N     images per step\n"
    "  --eval-batch-size N    images per evaluation batch (default 128)\n"
    "  --epochs N             number of epochs\n"
    "  --max-steps N          stop after N optimizer steps (0: no limit)\n"
    "  --lr LR                peak learning rate\n"
    "  --momentum M           SGD momentum (0: none)\n"
    "  --wd WD                weight decay (L2 penalty on every parameter)\n"
    "  --nesterov, --no-nesterov   Nesterov momentum\n"
    "  --lr-scheduler NAME    constant|step|multistep|cosine\n"
    "  --lr-step-size N       step: epochs between decays, counted from the end of\n"
    "                         the warm-up\n"
    "  --lr-milestones LIST   multistep: epochs (or steps) of the decays counted from\n"
    "                         the start of the run, such as 30,60,80\n"
    "  --lr-milestone-unit epoch|step   what --lr-milestones counts (default epoch)\n"
    "  --lr-gamma G           step and multistep: decay factor (default 0.1)\n"
    "  --lr-warmup-epochs E   linear warm-up length in epochs (fractions allowed)\n"
    "  --lr-warmup-decay F    warm-up starts at F times the learning rate (default 0.01)\n"
    "  --label-smoothing S    label smoothing of the cross-entropy target (0: off)\n"
    "run:\n"
    "  --seed N               seed of initialization, shuffling and augmentation\n"
    "  --threads N            OpenMP threads (0: all cores, the default)\n"
    "  --precision fp32|bf16  inputs of the convolutions' matrix products: FP32 (the\n"
    "                         default), or BF16 with FP32 sums and FP32 weights on\n"
    "                         CPUs with AVX512_BF16; Winograd and the implicit GEMM's\n"
    "                         forward pass take BF16, the other paths stay FP32\n"
    "  --output-dir DIR       run directory (default runs/MODEL-YYYYMMDD-HHMMSS)\n"
    "  --resume FILE          continue the run saved in FILE (a last.safetensors);\n"
    "                         only --epochs, --max-steps, --threads, --data,\n"
    "                         --precision, --output-dir and --eval-batch-size may\n"
    "                         change\n"
    "\n"
    "Ctrl-C (or SIGTERM) finishes the current step, writes last.safetensors and\n"
    "exits with status 130; resume with --resume RUN/last.safetensors, which\n"
    "writes into RUN unless --output-dir is given. Exit status 2 means an invalid\n"
    "option, 1 a runtime failure.\n"
    "\n"
    RN_MODELS_HELP;

static const char *const TRAIN_SHORTS[] = {"b", "batch-size", "h", "help", NULL};

static const char *const TRAIN_SWITCHES[] = {
    "help", "nesterov", "no-nesterov", "zero-init-residual", "no-zero-init-residual",
    "flip", "no-flip", "stride-in-1x1", "no-stride-in-1x1", NULL,
};

static const char *const TRAIN_VALUED[] = {
    "recipe", "resume", "model", "shortcut", "init", "data", "data-format", "pad", "resize",
    "random-resized-crop", "normalize", "max-steps", "lr-milestone-unit",
    "train-limit", "test-limit", "batch-size", "eval-batch-size", "epochs", "lr",
    "momentum", "wd", "weight-decay", "lr-scheduler", "lr-step-size", "lr-milestones",
    "lr-gamma", "lr-warmup-epochs", "lr-warmup-decay", "label-smoothing", "seed",
    "threads", "precision", "output-dir", NULL,
};

static int train_takes_value(const char *name)
{
    return rn_args_classify(name, TRAIN_VALUED, TRAIN_SWITCHES);
}

/* ------------------------------------------------------------- progress */

typedef struct progress_state {
    int tty;
    double last_print;
    int64_t print_every; /* batches between plain lines when not a terminal */
} progress_state;

static double wall_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static void format_duration(char *buf, size_t size, double seconds)
{
    long s = (long)(seconds + 0.5);
    if (s >= 3600)
        snprintf(buf, size, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else
        snprintf(buf, size, "%ld:%02ld", s / 60, s % 60);
}

static void on_start(void *ctx, const rn_train_info *info)
{
    printf("resnet train: resolved configuration\n");
    const char *line = info->config_text;
    while (*line) {
        const char *end = strchr(line, '\n');
        int len = end ? (int)(end - line) : (int)strlen(line);
        printf("  %.*s\n", len, line);
        line += len + (end ? 1 : 0);
    }
    printf("data: %lld training and %lld test images, input %dx%dx%d\n",
           (long long)info->train_count, (long long)info->test_count, info->in_c,
           info->in_h, info->in_w);
    printf("model: %s, %lld parameters, %d threads\n", info->config->model,
           (long long)info->parameters, rn_threads_get());
    if (info->resumed_from)
        printf("resuming %s at epoch %d, batch %lld\n", info->resumed_from,
               info->start_epoch + 1, (long long)info->start_batch);
    fflush(stdout);
    (void)ctx;
}

static void on_batch(void *ctx, const rn_batch_progress *p)
{
    progress_state *s = ctx;
    char eta[32];
    int last = p->batch == p->batches;

    if (s->tty) {
        double now = wall_seconds();
        if (!last && now - s->last_print < 0.2)
            return;
        s->last_print = now;
        format_duration(eta, sizeof eta, p->eta_seconds);
        printf("\r\033[Kepoch %d/%d  batch %lld/%lld  loss %.4f  acc %.2f%%  %.0f img/s  "
               "ETA %s", p->epoch + 1, p->epochs, (long long)p->batch, (long long)p->batches,
               p->loss, 100.0 * p->accuracy, p->images_per_sec, eta);
        if (last)
            printf("\r\033[K");
        fflush(stdout);
        return;
    }
    if (p->batch % s->print_every != 0 && p->batch != 1)
        return;
    format_duration(eta, sizeof eta, p->eta_seconds);
    printf("epoch %d/%d batch %lld/%lld loss %.4f acc %.2f%% lr %.4g %.0f img/s ETA %s\n",
           p->epoch + 1, p->epochs, (long long)p->batch, (long long)p->batches, p->loss,
           100.0 * p->accuracy, p->lr, p->images_per_sec, eta);
    fflush(stdout);
}

static void on_epoch(void *ctx, const rn_epoch_metrics *m)
{
    (void)ctx;
    printf("epoch %d: train loss %.4f acc %.2f%% | test loss %.4f acc %.2f%% | %.1f s "
           "(%.0f img/s, %.1f%% waiting for data) + eval %.1f s%s\n",
           m->epoch + 1, m->train_loss, 100.0 * m->train_accuracy, m->test_loss,
           100.0 * m->test_accuracy, m->train_seconds, m->images_per_sec,
           m->train_seconds > 0 ? 100.0 * m->data_wait_seconds / m->train_seconds : 0.0,
           m->eval_seconds, m->is_best ? "  [best]" : "");
    fflush(stdout);
}

/* --------------------------------------------------------------- Ctrl-C */

static volatile sig_atomic_t stop_requested;

static void on_sigint(int sig)
{
    static const char msg[] = "\nresnet train: stopping after this step and writing a "
                              "checkpoint (Ctrl-C again to quit at once)\n";
    stop_requested = 1;
    if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) {
        /* Nothing useful to do inside a signal handler. */
    }
    signal(sig, SIG_DFL);
}

/* ---------------------------------------------------------------- main */

static int apply_flag(rn_train_config *config, const char *name, const char *value,
                      int resuming)
{
    char key[128];
    const char *text = value;

    if (train_takes_value(name) == 0) {
        int negated = !strncmp(name, "no-", 3);
        snprintf(key, sizeof key, "%s", negated ? name + 3 : name);
        text = negated ? "false" : "true";
    } else {
        snprintf(key, sizeof key, "%s", name);
    }
    if (!strcmp(key, "weight-decay"))
        snprintf(key, sizeof key, "wd");
    if (resuming && !rn_train_config_resumable_override(key)) {
        /* Repeating the stored value is harmless; a different one is not. */
        rn_train_config changed = *config;
        char before[4096], after[4096];
        if (rn_train_config_set(&changed, key, text) != RN_OK)
            return rn_usage_error("train", "%s", rn_last_error());
        rn_train_config_format(config, before, sizeof before);
        rn_train_config_format(&changed, after, sizeof after);
        if (strcmp(before, after) != 0)
            return rn_usage_error("train", "--%s cannot change when resuming: the run "
                                  "continues with the settings stored in its checkpoint", key);
        return RN_OK;
    }
    if (rn_train_config_set(config, key, text) != RN_OK)
        return rn_usage_error("train", "%s", rn_last_error());
    return RN_OK;
}

static void default_output_dir(rn_train_config *config, const char *resume)
{
    if (config->output_dir[0])
        return;
    if (resume) {
        char copy[512];
        snprintf(copy, sizeof copy, "%s", resume);
        snprintf(config->output_dir, sizeof config->output_dir, "%s", dirname(copy));
        return;
    }
    time_t now = time(NULL);
    struct tm tm;
    char stamp[32];
    localtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
    snprintf(config->output_dir, sizeof config->output_dir, "runs/%s-%s", config->model, stamp);
}

int cmd_train(int argc, char **argv)
{
    rn_train_config config;
    rn_args args = {argc, argv, 0, "train"};
    const char *name, *value, *resume = NULL, *recipe = "default";
    int r;

    /* First pass: the recipe and the checkpoint set the starting point. */
    while ((r = rn_args_next(&args, TRAIN_SHORTS, train_takes_value, &name, &value)) > 0) {
        if (!strcmp(name, "help")) {
            fputs(TRAIN_HELP, stdout);
            return RN_EXIT_OK;
        }
        if (!strcmp(name, "recipe"))
            recipe = value;
        else if (!strcmp(name, "resume"))
            resume = value;
    }
    if (r < 0)
        return RN_EXIT_USAGE;

    if (!strcmp(recipe, "default"))
        rn_train_config_default(&config);
    else if (!strcmp(recipe, "d2l"))
        rn_train_config_d2l(&config);
    else if (!strcmp(recipe, "he2015"))
        rn_train_config_he2015(&config);
    else
        return rn_usage_error("train", "unknown recipe '%s': expected default, d2l or he2015",
                              recipe);

    if (resume) {
        char *stored;
        rn_status status = rn_checkpoint_read_args(resume, &stored);
        if (status != RN_OK)
            return rn_report_failure("train", status == RN_ERR_INVALID ? RN_ERR_FORMAT : status);
        rn_train_config_default(&config);
        status = rn_train_config_parse(&config, stored);
        free(stored);
        if (status != RN_OK) {
            fprintf(stderr, "resnet train: error: %s: %s\n", resume, rn_last_error());
            return RN_EXIT_FAILURE;
        }
        /* A resumed run writes next to its checkpoint unless --output-dir is given. */
        config.output_dir[0] = '\0';
    }

    /* Second pass: explicit options override. */
    args.index = 0;
    while ((r = rn_args_next(&args, TRAIN_SHORTS, train_takes_value, &name, &value)) > 0) {
        if (!strcmp(name, "resume"))
            continue;
        if (!strcmp(name, "recipe")) {
            if (resume)
                return rn_usage_error("train", "--recipe cannot be combined with --resume: "
                                      "the run continues with its stored settings");
            continue;
        }
        if (apply_flag(&config, name, value, resume != NULL) != RN_OK)
            return RN_EXIT_USAGE;
    }
    if (rn_train_config_validate(&config) != RN_OK)
        return rn_usage_error("train", "%s", rn_last_error());
    default_output_dir(&config, resume);
    if (!resume) {
        char existing[600];
        snprintf(existing, sizeof existing, "%s/last.safetensors", config.output_dir);
        if (access(existing, F_OK) == 0)
            return rn_usage_error("train", "%s already contains a run; continue it with --resume "
                                  "%s or choose another --output-dir", config.output_dir,
                                  existing);
    }

    progress_state progress = {.tty = isatty(STDOUT_FILENO), .print_every = 1};
    rn_train_events events = {&progress, on_start, on_batch, on_epoch, NULL};
    rn_train_result result;
    int64_t approx_batches = 60000 / config.batch_size;
    if (config.train_limit > 0 && config.train_limit < 60000)
        approx_batches = config.train_limit / config.batch_size;
    progress.print_every = approx_batches / 10 > 0 ? approx_batches / 10 : 1;

    signal(SIGINT, on_sigint);
    signal(SIGTERM, on_sigint);
    rn_status status = rn_train_run(&config, resume, &events, &stop_requested, &result);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (progress.tty)
        printf("\r\033[K");

    if (status == RN_ERR_INTERRUPTED) {
        fprintf(stderr, "resnet train: %s\nresume with: resnet train --resume %s/last.safetensors\n",
                rn_last_error(), config.output_dir);
        return RN_EXIT_INTERRUPTED;
    }
    if (status != RN_OK)
        return rn_report_failure("train", status);

    /* The summary line of the book's train_ch6. */
    printf("loss %.3f, train acc %.3f, test acc %.3f\n", result.train_loss,
           result.train_accuracy, result.test_accuracy);
    printf("%.1f examples/sec on cpu (%d threads)\n", result.examples_per_sec, rn_threads_get());
    printf("best test acc %.4f; run directory %s\n", result.best_test_accuracy,
           config.output_dir);
    return RN_EXIT_OK;
}

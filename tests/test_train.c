/* Training loop: learning on real data, exact resume, interrupts, errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/dataset.h"
#include "io/safetensors.h"
#include "io/weights.h"
#include "test.h"
#include "train/schedule.h"
#include "train/sgd.h"
#include "train/trainer.h"

static int have_data(void)
{
    if (access(RN_FASHION_MNIST_DIR "/train-images-idx3-ubyte.gz", R_OK) == 0)
        return 1;
    rn_test_fail(__FILE__, __LINE__, "Fashion-MNIST is missing: apt-get install "
                 "dataset-fashion-mnist (the suite needs the real data)");
    return 0;
}

/* A small, fast configuration on a slice of the real data. */
static void small_config(rn_train_config *c, const char *dir_name)
{
    rn_train_config_default(c);
    snprintf(c->model, sizeof c->model, "resnet8");
    c->batch_size = 64;
    c->eval_batch_size = 100;
    c->epochs = 2;
    c->schedule.epochs = 2;
    c->schedule.warmup_epochs = 0.25;
    c->train_limit = 640;
    c->test_limit = 200;
    c->seed = 42;
    snprintf(c->output_dir, sizeof c->output_dir, "%s/%s", rn_test_tmpdir(), dir_name);
}

/* Compare every tensor of two checkpoints bit for bit. */
static void check_same_tensors(const char *a_path, const char *b_path)
{
    rn_safetensors a, b;
    CHECK_OK(rn_safetensors_read(a_path, &a));
    CHECK_OK(rn_safetensors_read(b_path, &b));
    CHECK(a.count == b.count);
    CHECK(a.count > 0);
    for (int i = 0; i < a.count && i < b.count; i++) {
        const rn_st_tensor *other = rn_safetensors_find(&b, a.tensors[i].name);
        CHECK_MSG(other != NULL, "tensor %s missing from %s", a.tensors[i].name, b_path);
        if (!other)
            continue;
        CHECK_MSG(other->nbytes == a.tensors[i].nbytes &&
                      memcmp(other->data, a.tensors[i].data, other->nbytes) == 0,
                  "tensor %s differs between %s and %s", a.tensors[i].name, a_path, b_path);
    }
    rn_safetensors_free(&a);
    rn_safetensors_free(&b);
}

static void resume_config(rn_train_config *c, const char *checkpoint, int epochs)
{
    char *args = NULL;
    CHECK_OK(rn_checkpoint_read_args(checkpoint, &args));
    rn_train_config_default(c);
    CHECK_OK(rn_train_config_parse(c, args ? args : ""));
    free(args);
    c->epochs = epochs;
    c->schedule.epochs = epochs;
}

TEST(train_learns_on_real_slice)
{
    if (!have_data())
        return;
    rn_train_config c;
    rn_train_result r;
    small_config(&c, "learn");
    c.train_limit = 2000;
    c.epochs = c.schedule.epochs = 3;
    CHECK_OK(rn_train_run(&c, NULL, NULL, NULL, &r));
    CHECK(r.epochs_done == 3);
    /* Chance is 10%; a few hundred steps reach far beyond it. */
    CHECK_MSG(r.test_accuracy > 0.5, "test accuracy %.3f", r.test_accuracy);
    CHECK_MSG(r.train_accuracy > 0.5, "train accuracy %.3f", r.train_accuracy);

    /* The loss falls from epoch to epoch: read metrics.csv back. */
    char path[600];
    snprintf(path, sizeof path, "%s/metrics.csv", c.output_dir);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    if (!f)
        return;
    char line[512] = "";
    double losses[3] = {0};
    int rows = 0;
    CHECK(fgets(line, sizeof line, f) != NULL);
    CHECK(strncmp(line, "epoch,lr,train_loss", 19) == 0);
    while (fgets(line, sizeof line, f) && rows < 3) {
        int epoch;
        double lr, loss;
        CHECK(sscanf(line, "%d,%lf,%lf", &epoch, &lr, &loss) == 3);
        CHECK(epoch == rows + 1);
        losses[rows++] = loss;
    }
    fclose(f);
    CHECK(rows == 3);
    CHECK_MSG(losses[2] < losses[0], "train loss %.4f after epoch 3, %.4f after epoch 1",
              losses[2], losses[0]);
    for (const char *name = "args"; name; name = strcmp(name, "args") ? NULL : "best.safetensors") {
        snprintf(path, sizeof path, "%s/%s", c.output_dir, name);
        CHECK_MSG(access(path, R_OK) == 0, "%s was not written", path);
    }
}

TEST(train_resume_after_epoch_is_exact)
{
    if (!have_data())
        return;
    rn_train_config c;
    rn_train_result r;
    char a[600], b[600];

    small_config(&c, "straight");
    CHECK_OK(rn_train_run(&c, NULL, NULL, NULL, &r));
    snprintf(a, sizeof a, "%s/last.safetensors", c.output_dir);

    small_config(&c, "resumed");
    c.epochs = 1; /* the same schedule length is kept below */
    c.schedule.epochs = 2;
    CHECK_OK(rn_train_run(&c, NULL, NULL, NULL, &r));
    snprintf(b, sizeof b, "%s/last.safetensors", c.output_dir);
    resume_config(&c, b, 2);
    CHECK_OK(rn_train_run(&c, b, NULL, NULL, &r));
    CHECK(r.epochs_done == 2);
    check_same_tensors(a, b);
}

/* Raise the stop flag after a few batches, as the SIGINT handler does. */
typedef struct stopper {
    volatile sig_atomic_t *flag;
    int after;
    int seen;
} stopper;

static void stop_after(void *ctx, const rn_batch_progress *p)
{
    stopper *s = ctx;
    (void)p;
    if (++s->seen == s->after)
        *s->flag = 1;
}

TEST(train_interrupt_and_resume_mid_epoch)
{
    if (!have_data())
        return;
    rn_train_config c;
    rn_train_result r;
    char a[600], b[600];
    volatile sig_atomic_t flag = 0;
    stopper s = {&flag, 13, 0};
    rn_train_events ev = {.ctx = &s, .on_batch = stop_after};

    small_config(&c, "uninterrupted");
    CHECK_OK(rn_train_run(&c, NULL, NULL, NULL, &r));
    snprintf(a, sizeof a, "%s/last.safetensors", c.output_dir);

    small_config(&c, "interrupted");
    rn_status status = rn_train_run(&c, NULL, &ev, &flag, &r);
    CHECK(status == RN_ERR_INTERRUPTED);
    CHECK(r.epochs_done == 1); /* 10 batches per epoch: stopped in the second */
    snprintf(b, sizeof b, "%s/last.safetensors", c.output_dir);
    CHECK_MSG(access(b, R_OK) == 0, "no checkpoint after the interrupt");

    resume_config(&c, b, 2);
    CHECK_OK(rn_train_run(&c, b, NULL, NULL, &r));
    CHECK(r.epochs_done == 2);
    check_same_tensors(a, b);
}

TEST(train_nan_loss_stops_and_keeps_checkpoint)
{
    if (!have_data())
        return;
    rn_train_config c;
    rn_train_result r;
    char path[600];

    small_config(&c, "nan");
    c.epochs = c.schedule.epochs = 1;
    CHECK_OK(rn_train_run(&c, NULL, NULL, NULL, &r));
    snprintf(path, sizeof path, "%s/last.safetensors", c.output_dir);

    /* Resume with a learning rate that diverges within a few steps. */
    resume_config(&c, path, 3);
    c.schedule.lr = 1e30;
    c.schedule.warmup_epochs = 0;
    rn_status status = rn_train_run(&c, path, NULL, NULL, &r);
    CHECK_MSG(status == RN_ERR_NUMERIC, "status %s: %s", rn_status_name(status), rn_last_error());
    CHECK(strstr(rn_last_error(), "epoch 2") != NULL);
    CHECK(strstr(rn_last_error(), "step") != NULL);

    /* The checkpoint from the end of epoch 1 is still valid. */
    rn_safetensors file;
    CHECK_OK(rn_safetensors_read(path, &file));
    const char *epoch = rn_safetensors_metadata(&file, "epoch");
    CHECK(epoch != NULL);
    CHECK(epoch && strcmp(epoch, "1") == 0);
    for (int i = 0; i < file.count; i++) {
        if (file.tensors[i].dtype != RN_DTYPE_F32)
            continue;
        const float *x = file.tensors[i].data;
        for (size_t k = 0; k < file.tensors[i].nbytes / 4; k++)
            if (!isfinite(x[k])) {
                rn_test_fail(__FILE__, __LINE__, "%s holds a non-finite value", file.tensors[i].name);
                break;
            }
    }
    rn_safetensors_free(&file);
}

TEST(train_missing_data_names_files)
{
    rn_train_config c;
    rn_train_result r;
    small_config(&c, "nodata");
    snprintf(c.data_dir, sizeof c.data_dir, "%s/no-such-dir", rn_test_tmpdir());
    rn_status status = rn_train_run(&c, NULL, NULL, NULL, &r);
    CHECK(status == RN_ERR_IO);
    CHECK(strstr(rn_last_error(), "train-images-idx3-ubyte") != NULL);
    CHECK(strstr(rn_last_error(), "t10k-images-idx3-ubyte") != NULL);
}

TEST(schedule_warmup_and_cosine)
{
    rn_schedule s = {.kind = RN_SCHEDULE_COSINE, .lr = 0.1, .epochs = 10,
                     .warmup_epochs = 2, .warmup_start_factor = 0.01};
    CHECK_CLOSE(rn_schedule_lr(&s, 0.0), 0.001, 1e-12, 0);
    CHECK_CLOSE(rn_schedule_lr(&s, 1.0), 0.1 * (0.01 + 0.99 * 0.5), 1e-12, 0);
    CHECK_CLOSE(rn_schedule_lr(&s, 2.0), 0.1, 1e-12, 0);
    CHECK_CLOSE(rn_schedule_lr(&s, 6.0), 0.05, 1e-12, 0);
    CHECK_CLOSE(rn_schedule_lr(&s, 10.0), 0.0, 1e-12, 0);
}

TEST(schedule_step_and_multistep)
{
    rn_schedule s = {.kind = RN_SCHEDULE_STEP, .lr = 1.0, .epochs = 100, .step_size = 30,
                     .gamma = 0.1};
    CHECK_CLOSE(rn_schedule_lr(&s, 29.9), 1.0, 1e-12, 0);
    CHECK_CLOSE(rn_schedule_lr(&s, 30.0), 0.1, 1e-12, 1e-12);
    CHECK_CLOSE(rn_schedule_lr(&s, 65.0), 0.01, 1e-12, 1e-12);
    s.kind = RN_SCHEDULE_MULTISTEP;
    CHECK_OK(rn_schedule_parse_milestones("5,8", &s));
    CHECK_CLOSE(rn_schedule_lr(&s, 4.5), 1.0, 1e-12, 0);
    CHECK_CLOSE(rn_schedule_lr(&s, 5.0), 0.1, 1e-12, 1e-12);
    CHECK_CLOSE(rn_schedule_lr(&s, 9.0), 0.01, 1e-12, 1e-12);
    CHECK(rn_schedule_parse_milestones("8,5", &s) == RN_ERR_INVALID);
    CHECK(rn_schedule_parse_milestones("5,x", &s) == RN_ERR_INVALID);
    CHECK(rn_schedule_parse_milestones("0", &s) == RN_ERR_INVALID);

    /* A fractional warm-up must not turn into a negative decay count. */
    rn_schedule w = {.kind = RN_SCHEDULE_STEP, .lr = 0.1, .epochs = 4, .step_size = 1,
                     .gamma = 0.1, .warmup_epochs = 0.5, .warmup_start_factor = 0.01};
    CHECK_CLOSE(rn_schedule_lr(&w, 0.75), 0.1, 1e-12, 1e-12);
    CHECK_CLOSE(rn_schedule_lr(&w, 1.0), 0.1, 1e-12, 1e-12);
    CHECK_CLOSE(rn_schedule_lr(&w, 2.0), 0.01, 1e-12, 1e-12);
}

/* PyTorch's SGD on f(p) = p^2 / 2 (gradient p), values computed by hand
 * from torch.optim.SGD's documented update. */
TEST(sgd_matches_pytorch_rule)
{
    rn_sgd sgd;
    rn_sgd_config cfg = {.momentum = 0.9f, .weight_decay = 0.1f, .nesterov = 0};
    float p = 1.0f, g;
    CHECK(rn_sgd_init(&sgd, &cfg, 1));
    /* step 1: g = 1 + 0.1 = 1.1, v = 1.1, p = 1 - 0.1 * 1.1 = 0.89 */
    g = p;
    rn_sgd_step(&sgd, &p, &g, 0.1f);
    CHECK_CLOSE(p, 0.89, 1e-6, 0);
    /* step 2: g = 0.89 + 0.089 = 0.979, v = 0.9 * 1.1 + 0.979 = 1.969,
     * p = 0.89 - 0.1969 = 0.6931 */
    g = p;
    rn_sgd_step(&sgd, &p, &g, 0.1f);
    CHECK_CLOSE(p, 0.6931, 1e-6, 0);
    rn_sgd_free(&sgd);

    cfg.nesterov = 1;
    p = 1.0f;
    CHECK(rn_sgd_init(&sgd, &cfg, 1));
    /* step 1: g = 1.1, v = 1.1, g' = 1.1 + 0.99 = 2.09, p = 0.791 */
    g = p;
    rn_sgd_step(&sgd, &p, &g, 0.1f);
    CHECK_CLOSE(p, 0.791, 1e-6, 0);
    rn_sgd_free(&sgd);
}

TEST(config_round_trip_and_bad_values)
{
    rn_train_config a, b;
    char text[4096], again[4096];
    rn_train_config_default(&a);
    CHECK_OK(rn_train_config_set(&a, "lr-scheduler", "multistep"));
    CHECK_OK(rn_train_config_set(&a, "lr-milestones", "3,5"));
    CHECK_OK(rn_train_config_set(&a, "resize", "32"));
    CHECK_OK(rn_train_config_set(&a, "normalize", "none"));
    CHECK_OK(rn_train_config_set(&a, "shortcut", "b"));
    CHECK_OK(rn_train_config_set(&a, "precision", "bf16"));
    rn_train_config_format(&a, text, sizeof text);
    rn_train_config_default(&b);
    CHECK_OK(rn_train_config_parse(&b, text));
    rn_train_config_format(&b, again, sizeof again);
    CHECK_MSG(strcmp(text, again) == 0, "round trip changed:\n%s\nvs\n%s", text, again);
    CHECK(b.bf16 == 1);
    /* A BF16 run resumes in FP32 where the CPU lacks AVX512_BF16. */
    CHECK(rn_train_config_resumable_override("precision"));

    const char *bad[][2] = {
        {"batch-size", "0"}, {"batch-size", "-3"}, {"batch-size", "12x"}, {"lr", "-0.1"},
        {"lr", "nan"}, {"epochs", "0"}, {"init", "he"}, {"lr-scheduler", "linear"},
        {"shortcut", "D"}, {"normalize", "0.5"}, {"resize", "0x5"}, {"nesterov", "maybe"},
        {"seed", "-1"}, {"precision", "fp16"}, {"precision", "BF16"}, {"no-such-key", "1"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        rn_status status = rn_train_config_set(&b, bad[k][0], bad[k][1]);
        CHECK_MSG(status == RN_ERR_INVALID, "--%s %s was accepted", bad[k][0], bad[k][1]);
    }
    rn_train_config_default(&b);
    b.schedule.lr = 0.0;
    CHECK(rn_train_config_validate(&b) == RN_ERR_INVALID);
}

TEST(config_d2l_recipe_is_the_book)
{
    rn_train_config c;
    char text[4096];
    rn_train_config_d2l(&c);
    rn_train_config_format(&c, text, sizeof text);
    const char *expected[] = {
        "model=d2l-resnet18\n", "batch-size=256\n", "epochs=10\n", "lr=0.05\n",
        "momentum=0\n", "wd=0\n", "nesterov=false\n", "lr-scheduler=constant\n",
        "lr-warmup-epochs=0\n", "label-smoothing=0\n", "init=xavier\n", "pad=0\n",
        "flip=false\n", "resize=96x96\n", "normalize=none\n",
    };
    for (size_t k = 0; k < sizeof expected / sizeof expected[0]; k++)
        CHECK_MSG(strstr(text, expected[k]) != NULL, "d2l recipe lacks %s", expected[k]);
    CHECK_OK(rn_train_config_validate(&c));
}

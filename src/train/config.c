#include "train/config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu.h"
#include "core/status.h"
#include "data/dataset.h"

void rn_train_config_default(rn_train_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->model, sizeof c->model, "resnet20");
    c->shortcut = RN_SHORTCUT_DEFAULT;
    snprintf(c->data_dir, sizeof c->data_dir, "%s", RN_FASHION_MNIST_DIR);
    c->batch_size = 128;
    c->eval_batch_size = 128;
    c->epochs = 8;
    c->schedule = (rn_schedule){
        .kind = RN_SCHEDULE_COSINE, .lr = 0.1, .epochs = 8,
        .warmup_epochs = 0.5, .warmup_start_factor = 0.01,
        .step_size = 30, .gamma = 0.1,
    };
    c->sgd = (rn_sgd_config){.momentum = 0.9f, .weight_decay = 5e-4f, .nesterov = 1};
    c->label_smoothing = 0.1f;
    c->init = RN_INIT_KAIMING;
    c->seed = 0;
    c->augment = (rn_augment){.pad = 0, .flip = 1, .normalize = 1};
    c->normalize_auto = 1;
}

void rn_train_config_d2l(rn_train_config *c)
{
    rn_train_config_default(c);
    snprintf(c->model, sizeof c->model, "d2l-resnet18");
    c->batch_size = 256;
    c->eval_batch_size = 256;
    c->epochs = 10;
    c->schedule = (rn_schedule){.kind = RN_SCHEDULE_CONSTANT, .lr = 0.05, .epochs = 10,
                                .warmup_start_factor = 0.01, .step_size = 30, .gamma = 0.1};
    c->sgd = (rn_sgd_config){0};
    c->label_smoothing = 0.0f;
    c->init = RN_INIT_XAVIER;
    c->augment = (rn_augment){.resize_h = 96, .resize_w = 96};
    c->normalize_auto = 0;
}

void rn_train_config_he2015(rn_train_config *c)
{
    rn_train_config_default(c);
    c->data_format = RN_DATA_FORMAT_CIFAR10;
    c->data_dir[0] = '\0';
    c->batch_size = 128;
    c->eval_batch_size = 128;
    c->epochs = 164;
    c->max_steps = 64000;
    c->schedule = (rn_schedule){
        .kind = RN_SCHEDULE_MULTISTEP, .lr = 0.1, .epochs = 164, .warmup_start_factor = 0.01,
        .step_size = 30, .gamma = 0.1, .milestones = {32000, 48000}, .milestone_count = 2,
        .milestones_in_steps = 1,
    };
    c->sgd = (rn_sgd_config){.momentum = 0.9f, .weight_decay = 1e-4f, .nesterov = 0};
    c->label_smoothing = 0.0f;
    c->augment = (rn_augment){.pad = 4, .flip = 1, .normalize = 1};
    c->normalize_auto = 1;
}

/* ---------------------------------------------------------- value parsing */

static rn_status bad_value(const char *key, const char *value, const char *expected)
{
    return rn_error(RN_ERR_INVALID, "invalid value '%s' for --%s: expected %s", value, key,
                    expected);
}

static rn_status parse_long(const char *key, const char *value, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (end == value || *end || errno || v < lo || v > hi) {
        char expected[96];
        snprintf(expected, sizeof expected, "an integer from %ld to %ld", lo, hi);
        return bad_value(key, value, expected);
    }
    *out = v;
    return RN_OK;
}

static rn_status parse_double(const char *key, const char *value, double lo, double hi,
                              double *out)
{
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    if (end == value || *end || errno || !isfinite(v) || v < lo || v > hi) {
        char expected[96];
        snprintf(expected, sizeof expected, "a number from %g to %g", lo, hi);
        return bad_value(key, value, expected);
    }
    *out = v;
    return RN_OK;
}

static rn_status parse_bool(const char *key, const char *value, int *out)
{
    if (!strcmp(value, "1") || !strcmp(value, "true") || !strcmp(value, "yes"))
        *out = 1;
    else if (!strcmp(value, "0") || !strcmp(value, "false") || !strcmp(value, "no"))
        *out = 0;
    else
        return bad_value(key, value, "true or false");
    return RN_OK;
}

static rn_status parse_text(const char *key, const char *value, char *dst, size_t size)
{
    if (strlen(value) >= size)
        return bad_value(key, value, "a shorter value");
    strcpy(dst, value);
    return RN_OK;
}

/* "0.2860,0.3530" (one channel), "m1,m2,m3,s1,s2,s3" (three), "auto" or
 * "none". */
static rn_status parse_normalize(rn_train_config *config, const char *key, const char *value)
{
    rn_augment *aug = &config->augment;
    float v[6];
    int n = 0;
    const char *p = value;

    config->normalize_auto = 0;
    if (!strcmp(value, "none")) {
        aug->normalize = 0;
        return RN_OK;
    }
    if (!strcmp(value, "auto")) {
        aug->normalize = 1;
        config->normalize_auto = 1;
        return RN_OK;
    }
    while (*p && n < 6) {
        char *end;
        v[n] = strtof(p, &end);
        if (end == p || (*end && *end != ','))
            break;
        n++;
        p = *end ? end + 1 : end;
    }
    if (*p || (n != 2 && n != 6))
        return bad_value(key, value, "'auto', 'none', 'MEAN,STD' or 'M1,M2,M3,S1,S2,S3'");
    int channels = n / 2;
    for (int c = 0; c < 3; c++) {
        aug->mean[c] = v[c % channels];
        aug->std[c] = v[channels + c % channels];
        if (!(aug->std[c] > 0.0f))
            return bad_value(key, value, "standard deviations above 0");
    }
    aug->normalize = 1;
    return RN_OK;
}

/* "MIN", "MIN,MAX" (area fractions of the random resized crop) or "none". */
static rn_status parse_crop_scale(rn_augment *aug, const char *key, const char *value)
{
    float low, high = 1.0f;
    char tail;

    if (!strcmp(value, "none")) {
        aug->crop_scale_min = aug->crop_scale_max = 0.0f;
        return RN_OK;
    }
    int fields = sscanf(value, "%f,%f%c", &low, &high, &tail);
    if (fields != 2 && !(fields == 1 && sscanf(value, "%f%c", &low, &tail) == 1))
        return bad_value(key, value, "MIN, MIN,MAX or none, such as 0.08,1");
    if (!(low > 0.0f && low <= high && high <= 1.0f))
        return bad_value(key, value, "area fractions with 0 < MIN <= MAX <= 1");
    aug->crop_scale_min = low;
    aug->crop_scale_max = high;
    return RN_OK;
}

static rn_status parse_resize(rn_augment *aug, const char *key, const char *value)
{
    int h, w;
    char tail;
    if (!strcmp(value, "none") || !strcmp(value, "0")) {
        aug->resize_h = aug->resize_w = 0;
        return RN_OK;
    }
    if (sscanf(value, "%dx%d%c", &h, &w, &tail) == 2) {
        /* HxW */
    } else if (sscanf(value, "%d%c", &h, &tail) == 1) {
        w = h;
    } else {
        return bad_value(key, value, "SIZE, HxW or none");
    }
    if (h < 1 || w < 1 || h > 4096 || w > 4096)
        return bad_value(key, value, "sizes from 1 to 4096");
    aug->resize_h = h;
    aug->resize_w = w;
    return RN_OK;
}

rn_status rn_train_config_set(rn_train_config *c, const char *key, const char *value)
{
    long l = 0;
    double d = 0.0;

    if (!strcmp(key, "model")) {
        return parse_text(key, value, c->model, sizeof c->model);
    } else if (!strcmp(key, "shortcut")) {
        return rn_shortcut_parse(value, &c->shortcut);
    } else if (!strcmp(key, "data")) {
        return parse_text(key, value, c->data_dir, sizeof c->data_dir);
    } else if (!strcmp(key, "data-format")) {
        return rn_data_format_parse(value, &c->data_format);
    } else if (!strcmp(key, "max-steps")) {
        RN_TRY(parse_long(key, value, 0, 1L << 40, &l));
        c->max_steps = l;
    } else if (!strcmp(key, "lr-milestone-unit")) {
        if (!strcmp(value, "epoch"))
            c->schedule.milestones_in_steps = 0;
        else if (!strcmp(value, "step"))
            c->schedule.milestones_in_steps = 1;
        else
            return bad_value(key, value, "epoch or step");
    } else if (!strcmp(key, "random-resized-crop")) {
        return parse_crop_scale(&c->augment, key, value);
    } else if (!strcmp(key, "batch-size")) {
        RN_TRY(parse_long(key, value, 1, 65536, &l));
        c->batch_size = (int)l;
    } else if (!strcmp(key, "eval-batch-size")) {
        RN_TRY(parse_long(key, value, 1, 65536, &l));
        c->eval_batch_size = (int)l;
    } else if (!strcmp(key, "epochs")) {
        RN_TRY(parse_long(key, value, 1, 100000, &l));
        c->epochs = (int)l;
        c->schedule.epochs = (int)l;
    } else if (!strcmp(key, "lr")) {
        RN_TRY(parse_double(key, value, 0.0, 1e3, &c->schedule.lr));
    } else if (!strcmp(key, "momentum")) {
        RN_TRY(parse_double(key, value, 0.0, 0.9999, &d));
        c->sgd.momentum = (float)d;
    } else if (!strcmp(key, "wd")) {
        RN_TRY(parse_double(key, value, 0.0, 1.0, &d));
        c->sgd.weight_decay = (float)d;
    } else if (!strcmp(key, "nesterov")) {
        return parse_bool(key, value, &c->sgd.nesterov);
    } else if (!strcmp(key, "lr-scheduler")) {
        return rn_schedule_parse_kind(value, &c->schedule.kind);
    } else if (!strcmp(key, "lr-step-size")) {
        RN_TRY(parse_long(key, value, 1, 100000, &l));
        c->schedule.step_size = (int)l;
    } else if (!strcmp(key, "lr-gamma")) {
        RN_TRY(parse_double(key, value, 0.0, 1.0, &c->schedule.gamma));
    } else if (!strcmp(key, "lr-milestones")) {
        return rn_schedule_parse_milestones(value, &c->schedule);
    } else if (!strcmp(key, "lr-warmup-epochs")) {
        RN_TRY(parse_double(key, value, 0.0, 100000, &c->schedule.warmup_epochs));
    } else if (!strcmp(key, "lr-warmup-decay")) {
        RN_TRY(parse_double(key, value, 0.0, 1.0, &c->schedule.warmup_start_factor));
    } else if (!strcmp(key, "label-smoothing")) {
        RN_TRY(parse_double(key, value, 0.0, 0.999, &d));
        c->label_smoothing = (float)d;
    } else if (!strcmp(key, "init")) {
        if (!strcmp(value, "kaiming"))
            c->init = RN_INIT_KAIMING;
        else if (!strcmp(value, "xavier"))
            c->init = RN_INIT_XAVIER;
        else
            return bad_value(key, value, "kaiming or xavier");
    } else if (!strcmp(key, "zero-init-residual")) {
        return parse_bool(key, value, &c->zero_init_residual);
    } else if (!strcmp(key, "stride-in-1x1")) {
        return parse_bool(key, value, &c->stride_in_1x1);
    } else if (!strcmp(key, "seed")) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(value, &end, 10);
        if (end == value || *end || errno || value[0] == '-')
            return bad_value(key, value, "a non-negative integer");
        c->seed = v;
    } else if (!strcmp(key, "threads")) {
        RN_TRY(parse_long(key, value, 0, 4096, &l));
        c->threads = (int)l;
    } else if (!strcmp(key, "precision")) {
        if (strcmp(value, "fp32") && strcmp(value, "bf16"))
            return bad_value(key, value, "fp32 or bf16");
        c->bf16 = !strcmp(value, "bf16");
    } else if (!strcmp(key, "pad")) {
        RN_TRY(parse_long(key, value, 0, 64, &l));
        c->augment.pad = (int)l;
    } else if (!strcmp(key, "flip")) {
        return parse_bool(key, value, &c->augment.flip);
    } else if (!strcmp(key, "resize")) {
        return parse_resize(&c->augment, key, value);
    } else if (!strcmp(key, "normalize")) {
        return parse_normalize(c, key, value);
    } else if (!strcmp(key, "train-limit")) {
        RN_TRY(parse_long(key, value, 0, 1L << 40, &l));
        c->train_limit = l;
    } else if (!strcmp(key, "test-limit")) {
        RN_TRY(parse_long(key, value, 0, 1L << 40, &l));
        c->test_limit = l;
    } else if (!strcmp(key, "output-dir")) {
        return parse_text(key, value, c->output_dir, sizeof c->output_dir);
    } else {
        return rn_error(RN_ERR_INVALID, "unknown setting '--%s'", key);
    }
    return RN_OK;
}

rn_status rn_train_config_validate(const rn_train_config *c)
{
    if (c->schedule.lr <= 0.0)
        return rn_error(RN_ERR_INVALID, "invalid --lr %g: must be positive", c->schedule.lr);
    if (c->sgd.nesterov && c->sgd.momentum == 0.0f)
        return rn_error(RN_ERR_INVALID, "--nesterov needs a momentum above 0 (set --momentum)");
    if (c->bf16 && !rn_cpu_avx512_bf16())
        return rn_error(RN_ERR_INVALID, "--precision bf16 needs AVX512_BF16 in the CPU and the "
                        "default build (not make ISA=avx2 or ISA=baseline); use --precision "
                        "fp32, also to resume a BF16 run");
    if (c->schedule.kind == RN_SCHEDULE_MULTISTEP && c->schedule.milestone_count == 0)
        return rn_error(RN_ERR_INVALID, "--lr-scheduler multistep needs --lr-milestones, "
                        "such as 30,60,80");
    if (c->data_format != RN_DATA_FORMAT_IDX &&
        (!c->data_dir[0] || !strcmp(c->data_dir, RN_FASHION_MNIST_DIR)))
        return rn_error(RN_ERR_INVALID, "--data-format %s needs --data DIR, the folder of the "
                        "data set", rn_data_format_name(c->data_format));
    if (c->data_format == RN_DATA_FORMAT_IDX && !c->data_dir[0])
        return rn_error(RN_ERR_INVALID, "--data DIR is required");
    if (c->schedule.warmup_epochs >= c->epochs && c->schedule.warmup_epochs > 0)
        return rn_error(RN_ERR_INVALID, "--lr-warmup-epochs %g must be less than --epochs %d",
                        c->schedule.warmup_epochs, c->epochs);
    return RN_OK;
}

static const char *bool_text(int v)
{
    return v ? "true" : "false";
}

/* The shortest decimal text that reads back as the same double. */
static const char *double_text(char *buf, size_t size, double v)
{
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(buf, size, "%.*g", digits, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    return buf;
}

/* The shortest decimal text that reads back as the same float, so that
 * 0.9f prints as "0.9" rather than "0.899999976". */
static const char *float_text(char *buf, size_t size, float v)
{
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(buf, size, "%.*g", digits, v);
        if (strtof(buf, NULL) == v)
            break;
    }
    return buf;
}

int rn_train_config_format(const rn_train_config *c, char *buf, int size)
{
    char milestones[200] = "";
    char normalize[160] = "none";
    char resize[40] = "none";
    int used = 0;

    for (int k = 0; k < c->schedule.milestone_count; k++)
        used += snprintf(milestones + used, sizeof milestones - used, "%s%d", k ? "," : "",
                         c->schedule.milestones[k]);
    if (c->normalize_auto) {
        snprintf(normalize, sizeof normalize, "auto");
    } else if (c->augment.normalize) {
        const float *mean = c->augment.mean, *std = c->augment.std;
        char t[6][24];
        int same = mean[0] == mean[1] && mean[1] == mean[2] && std[0] == std[1] &&
                   std[1] == std[2];
        for (int k = 0; k < 3; k++) {
            float_text(t[k], sizeof t[k], mean[k]);
            float_text(t[3 + k], sizeof t[3 + k], std[k]);
        }
        if (same)
            snprintf(normalize, sizeof normalize, "%s,%s", t[0], t[3]);
        else
            snprintf(normalize, sizeof normalize, "%s,%s,%s,%s,%s,%s", t[0], t[1], t[2], t[3],
                     t[4], t[5]);
    }
    char momentum[24], wd[24], smoothing[24];
    float_text(momentum, sizeof momentum, c->sgd.momentum);
    float_text(wd, sizeof wd, c->sgd.weight_decay);
    float_text(smoothing, sizeof smoothing, c->label_smoothing);
    char lr[32], gamma[32], warmup[32], warmup_decay[32];
    double_text(lr, sizeof lr, c->schedule.lr);
    double_text(gamma, sizeof gamma, c->schedule.gamma);
    double_text(warmup, sizeof warmup, c->schedule.warmup_epochs);
    double_text(warmup_decay, sizeof warmup_decay, c->schedule.warmup_start_factor);
    if (c->augment.resize_h)
        snprintf(resize, sizeof resize, "%dx%d", c->augment.resize_h, c->augment.resize_w);
    char crop[64] = "none";
    if (c->augment.crop_scale_max > 0.0f) {
        char low[24], high[24];
        float_text(low, sizeof low, c->augment.crop_scale_min);
        float_text(high, sizeof high, c->augment.crop_scale_max);
        snprintf(crop, sizeof crop, "%s,%s", low, high);
    }

    return snprintf(buf, size,
                    "model=%s\nshortcut=%s\nstride-in-1x1=%s\ndata=%s\ndata-format=%s\nbatch-size=%d\n"
                    "eval-batch-size=%d\nepochs=%d\nmax-steps=%lld\nlr=%s\nmomentum=%s\n"
                    "wd=%s\nnesterov=%s\nlr-scheduler=%s\nlr-step-size=%d\nlr-gamma=%s\n"
                    "%s%s%slr-milestone-unit=%s\n"
                    "lr-warmup-epochs=%s\nlr-warmup-decay=%s\nlabel-smoothing=%s\n"
                    "init=%s\nzero-init-residual=%s\nseed=%llu\nthreads=%d\nprecision=%s\n"
                    "pad=%d\n"
                    "flip=%s\nresize=%s\nrandom-resized-crop=%s\nnormalize=%s\n"
                    "train-limit=%lld\ntest-limit=%lld\noutput-dir=%s\n",
                    c->model, rn_shortcut_name(c->shortcut), bool_text(c->stride_in_1x1), c->data_dir,
                    rn_data_format_name(c->data_format), c->batch_size, c->eval_batch_size,
                    c->epochs, (long long)c->max_steps, lr, momentum, wd,
                    bool_text(c->sgd.nesterov),
                    rn_schedule_kind_name(c->schedule.kind), c->schedule.step_size, gamma, milestones[0] ? "lr-milestones=" : "", milestones,
                    milestones[0] ? "\n" : "", c->schedule.milestones_in_steps ? "step" : "epoch",
                    warmup, warmup_decay, smoothing,
                    c->init == RN_INIT_XAVIER ? "xavier" : "kaiming",
                    bool_text(c->zero_init_residual), (unsigned long long)c->seed, c->threads,
                    c->bf16 ? "bf16" : "fp32", c->augment.pad, bool_text(c->augment.flip), resize, crop, normalize,
                    (long long)c->train_limit, (long long)c->test_limit, c->output_dir);
}

rn_status rn_train_config_parse(rn_train_config *c, const char *text)
{
    const char *line = text;
    while (*line) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char buf[1024];
        if (len >= sizeof buf)
            return rn_error(RN_ERR_FORMAT, "configuration line too long: '%.40s...'", line);
        memcpy(buf, line, len);
        buf[len] = '\0';
        if (len > 0) {
            char *eq = strchr(buf, '=');
            if (!eq)
                return rn_error(RN_ERR_FORMAT, "invalid configuration line '%s': expected "
                                "key=value", buf);
            *eq = '\0';
            /* "shortcut=none" is what plain networks record. */
            if (strcmp(buf, "shortcut") != 0 || strcmp(eq + 1, "none") != 0)
                RN_TRY(rn_train_config_set(c, buf, eq + 1));
        }
        line = end ? end + 1 : line + len;
    }
    return RN_OK;
}

int rn_train_config_resumable_override(const char *key)
{
    return !strcmp(key, "epochs") || !strcmp(key, "max-steps") || !strcmp(key, "threads") ||
           !strcmp(key, "data") || !strcmp(key, "precision") ||
           !strcmp(key, "output-dir") || !strcmp(key, "eval-batch-size");
}

/* The resnet command as a user runs it: exit statuses, messages, files. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <limits.h>
#include <unistd.h>

#include "data/dataset.h"
#include "io/safetensors.h"
#include "test.h"

static const char *resnet_bin(void)
{
    const char *bin = getenv("RESNET_BIN");
    return bin ? bin : "build/resnet";
}

/* Run `resnet ARGS` through the shell with stdout and stderr in one file;
 * returns the exit status and leaves the output in `output`. */
static int run(char *output, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int run(char *output, size_t size, const char *fmt, ...)
{
    char args[2048], command[3072], log[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(log, sizeof log, "%s/cli.log", rn_test_tmpdir());
    snprintf(command, sizeof command, "%s %s > '%s' 2>&1", resnet_bin(), args, log);
    int status = system(command);
    output[0] = '\0';
    FILE *f = fopen(log, "r");
    if (f) {
        size_t n = fread(output, 1, size - 1, f);
        output[n] = '\0';
        fclose(f);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static char out[1 << 16];

#define CHECK_CONTAINS(text, needle)                                                    \
    CHECK_MSG(strstr((text), (needle)) != NULL, "output lacks '%s':\n%s", (needle), (text))

TEST(cli_usage_errors_exit_2)
{
    const char *cases[] = {
        "train --model vgg16 --train-limit 64 --test-limit 64",
        "train -b 0",
        "train --batch-size -5",
        "train --lr -0.1",
        "train --epochs",
        "train --bogus-flag 1",
        "train --recipe fast",
        "train --nesterov=yes",
        "train --lr-scheduler multistep",
        "eval",
        "info",
        "info --model resnet20 --input 3x32",
        "info --model resnet20 --input ' 3x+32x32'",
        "info --model resnet20 --input 3x99999999999x32",
        "info --model resnet20 --input 3x32x32x",
        "info --model resnet20 --input 3x0x32",
        "bench --model resnet20 -b 0",
        "train --precision BF16",
        "bench --precision fp16",
        "no-such-command",
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int code = run(out, sizeof out, "%s", cases[k]);
        CHECK_MSG(code == 2, "'resnet %s' exited %d, expected 2:\n%s", cases[k], code, out);
    }
    CHECK(run(out, sizeof out, "train --model vgg16 --train-limit 64 --test-limit 64") == 2);
    CHECK_CONTAINS(out, "unknown model 'vgg16'");
    CHECK(run(out, sizeof out, "train -b 0") == 2);
    CHECK_CONTAINS(out, "batch-size");
}

TEST(cli_help_exits_0)
{
    const char *cmds[] = {"--help", "train --help", "eval --help", "info --help", "bench --help"};
    for (size_t k = 0; k < sizeof cmds / sizeof cmds[0]; k++)
        CHECK_MSG(run(out, sizeof out, "%s", cmds[k]) == 0, "resnet %s failed", cmds[k]);
    run(out, sizeof out, "train --help");
    CHECK_CONTAINS(out, "--lr-scheduler");
    CHECK_CONTAINS(out, "--resume");
}

TEST(cli_missing_data_names_expected_files)
{
    int code = run(out, sizeof out, "train --data %s/none --output-dir %s/x", rn_test_tmpdir(),
                   rn_test_tmpdir());
    CHECK(code == 1);
    CHECK_CONTAINS(out, "train-images-idx3-ubyte");
    CHECK_CONTAINS(out, "--data must name a directory with the IDX files");
}

TEST(cli_truncated_idx_is_error)
{
    char dir[600], cmd[4000];
    snprintf(dir, sizeof dir, "%s/broken", rn_test_tmpdir());
    /* Real labels, but a training image file cut short inside its data. */
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s && cp %s/*labels* %s/ && cp %s/t10k-images-idx3-ubyte.gz %s/ && "
             "gzip -dc %s/train-images-idx3-ubyte.gz | head -c 5000 > %s/train-images-idx3-ubyte",
             dir, RN_FASHION_MNIST_DIR, dir, RN_FASHION_MNIST_DIR, dir, RN_FASHION_MNIST_DIR, dir);
    CHECK(system(cmd) == 0);
    int code = run(out, sizeof out, "train --data %s --output-dir %s/y", dir, rn_test_tmpdir());
    CHECK(code == 1);
    CHECK_CONTAINS(out, "train-images-idx3-ubyte");
    CHECK_CONTAINS(out, "truncated");
}

TEST(cli_info_totals_match_pytorch)
{
    CHECK(run(out, sizeof out, "info --model d2l-resnet18 --input 1x96x96") == 0);
    CHECK_CONTAINS(out, "11,178,378 parameters");
    CHECK_CONTAINS(out, "(318.7 M)");
    CHECK(run(out, sizeof out, "info --model resnet20 --input 3x32x32") == 0);
    CHECK_CONTAINS(out, "269,722 parameters");
    CHECK_CONTAINS(out, "layer3.2.bn2");
}

/* The evaluation line and matrix of `resnet eval` output. */
static void eval_summary(char *dst, size_t size, const char *text)
{
    const char *start = strstr(text, "top-1 accuracy");
    snprintf(dst, size, "%s", start ? start : "(missing)");
}

TEST(cli_train_eval_and_resume)
{
    const char *tmp = rn_test_tmpdir();
    char a[1 << 14], b[1 << 14];

    int code = run(out, sizeof out,
                   "train --model resnet8 --epochs 1 --train-limit 512 --test-limit 300 "
                   "-b 64 --output-dir %s/run", tmp);
    CHECK_MSG(code == 0, "train exited %d:\n%s", code, out);
    CHECK_CONTAINS(out, "resnet train: resolved configuration");
    CHECK_CONTAINS(out, "epoch 1: train loss");
    CHECK_CONTAINS(out, "examples/sec");
    CHECK_CONTAINS(out, ", train acc ");

    /* eval: the result does not depend on the batch size. */
    CHECK(run(out, sizeof out, "eval --weights %s/run/best.safetensors --test-limit 300 -b 7",
              tmp) == 0);
    eval_summary(a, sizeof a, out);
    CHECK_CONTAINS(out, "Ankle boot");
    CHECK_CONTAINS(out, "confusion matrix");
    CHECK(run(out, sizeof out, "eval --weights %s/run/best.safetensors --test-limit 300 -b 300",
              tmp) == 0);
    eval_summary(b, sizeof b, out);
    CHECK_MSG(strcmp(a, b) == 0, "batch 7:\n%s\nbatch 300:\n%s", a, b);

    /* Resume to a second epoch; a changed hyperparameter is refused. */
    CHECK(run(out, sizeof out, "train --resume %s/run/last.safetensors --lr 0.5", tmp) == 2);
    CHECK_CONTAINS(out, "cannot change when resuming");
    code = run(out, sizeof out, "train --resume %s/run/last.safetensors --epochs 2", tmp);
    CHECK_MSG(code == 0, "resume exited %d:\n%s", code, out);
    CHECK_CONTAINS(out, "resuming");
    CHECK_CONTAINS(out, "epoch 2: train loss");

    /* A weights file is not a checkpoint. */
    CHECK(run(out, sizeof out, "train --resume %s/run/best.safetensors --epochs 3", tmp) == 1);
    CHECK_CONTAINS(out, "not a training checkpoint");
    /* A missing weights file is reported by name. */
    CHECK(run(out, sizeof out, "eval --weights %s/run/none.safetensors", tmp) == 1);
    CHECK_CONTAINS(out, "none.safetensors");
}

TEST(cli_ctrl_c_writes_checkpoint)
{
    const char *tmp = rn_test_tmpdir();
    char cmd[6000];
    /* Start a run, wait for its first progress line, then send SIGINT. */
    char bin[4096];
    CHECK(realpath(resnet_bin(), bin) != NULL);
    snprintf(cmd, sizeof cmd,
             "( %s train --model resnet8 --epochs 3 --train-limit 4096 --test-limit 200 "
             "-b 32 --output-dir %s/sigint > %s/sigint.log 2>&1 & pid=$!; "
             "for i in $(seq 100); do grep -q 'batch' %s/sigint.log 2>/dev/null && break; "
             "sleep 0.1; done; kill -INT $pid; wait $pid; echo $? > %s/sigint.status )",
             bin, tmp, tmp, tmp, tmp);
    CHECK(system(cmd) == 0);

    char path[700];
    snprintf(path, sizeof path, "%s/sigint.status", tmp);
    FILE *f = fopen(path, "r");
    int code = -1;
    if (f) {
        CHECK(fscanf(f, "%d", &code) == 1);
        fclose(f);
    }
    CHECK_MSG(code == 130, "exit status %d after SIGINT, expected 130", code);
    snprintf(path, sizeof path, "%s/sigint/last.safetensors", tmp);
    CHECK_MSG(access(path, R_OK) == 0, "no checkpoint after SIGINT");

    int resumed = run(out, sizeof out, "train --resume %s --epochs 1", path);
    CHECK_MSG(resumed == 0, "resume after SIGINT exited %d:\n%s", resumed, out);
    CHECK_CONTAINS(out, "resuming");
}

/* A resnet20 trained for one epoch in PyTorch on Fashion-MNIST
 * (tools/train_torch_reference.py) classifies the test set the same under
 * `resnet eval`, up to 2 of 10,000 images from float rounding. */
TEST(cli_eval_matches_pytorch_on_fashion_mnist)
{
    const char *path = "tests/data/resnet20-fmnist-torch.safetensors";
    rn_safetensors file;
    CHECK_OK(rn_safetensors_read(path, &file));
    const char *expected = rn_safetensors_metadata(&file, "torch_correct");
    CHECK_MSG(expected, "%s: metadata 'torch_correct' missing", path);
    long torch_correct = expected ? atol(expected) : -1;
    rn_safetensors_free(&file);

    int rc = run(out, sizeof out, "eval --weights %s", path);
    CHECK_MSG(rc == 0, "eval failed with status %d:\n%s", rc, out);
    const char *result = strstr(out, "top-1 accuracy:");
    long correct = -1, total = -1;
    CHECK_MSG(result && sscanf(result, "top-1 accuracy: %*f%% (%ld of %ld)", &correct,
                               &total) == 2, "no accuracy line in:\n%s", out);
    CHECK(total == 10000);
    CHECK_MSG(labs(correct - torch_correct) <= 2,
              "resnet eval counts %ld correct, PyTorch %ld", correct, torch_correct);
}

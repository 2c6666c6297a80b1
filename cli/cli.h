/* Shared pieces of the `resnet` command's subcommands. */
#ifndef RN_CLI_H
#define RN_CLI_H

#include <stdio.h>

#include "resnet.h"

/* The model list printed at the end of --help. */
#define RN_MODELS_HELP                                                              \
    "models:\n"                                                                     \
    "  resnet20 ... resnet110   CIFAR ResNets of He et al. (2015), any depth 6n+2\n" \
    "  plain20 ... plain110     the same without shortcuts\n"                        \
    "  preact-resnet20 ... preact-resnet110, preact-resnet164, preact-resnet1001\n"  \
    "                           pre-activation ResNets (He et al. 2016); 164 and\n"  \
    "                           1001 have bottleneck blocks\n"                       \
    "  d2l-resnet18             ResNet-18 of Dive into Deep Learning\n"               \
    "  resnet18 resnet34 resnet50 resnet101 resnet152 resnext50_32x4d\n"             \
    "  resnext101_32x8d wide_resnet50_2 wide_resnet101_2\n"                          \
    "                           torchvision's ImageNet networks (resnet50 and\n"     \
    "                           resnet152 are these, not CIFAR depths)\n"

/* Exit statuses of the command. */
enum {
    RN_EXIT_OK = 0,
    RN_EXIT_FAILURE = 1,     /* a runtime failure: I/O, bad file, NaN loss */
    RN_EXIT_USAGE = 2,       /* an invalid flag or value */
    RN_EXIT_INTERRUPTED = 130, /* stopped by Ctrl-C after saving a checkpoint */
};

/* Iterates over "--name value", "--name=value", "-b value" arguments. */
typedef struct rn_args {
    int argc;
    char **argv;
    int index;
    const char *command; /* "train", for messages */
} rn_args;

/* Fetch the next flag into *name, without its dashes. Short flags are
 * mapped through `shorts`, pairs such as "b", "batch-size". When
 * takes_value(name) returns 1, the flag's value goes into *value; it returns
 * 0 for a switch and RN_ARGS_UNKNOWN for an unknown name.
 * Returns 0 at the end, 1 for a flag, -1 after printing a usage error. */
#define RN_ARGS_UNKNOWN (-1) /* returned by a takes_value function */
typedef int (*rn_takes_value_fn)(const char *name);
int rn_args_next(rn_args *args, const char *const *shorts, rn_takes_value_fn takes_value,
                 const char **name, const char **value);

/* Classify an option name for a takes_value function: 1 if it is in
 * `valued`, 0 if it is in `switches`, else RN_ARGS_UNKNOWN. Both lists end
 * with NULL. */
int rn_args_classify(const char *name, const char *const *valued,
                     const char *const *switches);

/* Print "resnet CMD: message" and the hint to run --help; returns
 * RN_EXIT_USAGE. */
int rn_usage_error(const char *command, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Print "resnet CMD: error: <rn_last_error()>"; returns the exit status
 * for the status (usage errors from the library are RN_ERR_INVALID). */
int rn_report_failure(const char *command, rn_status status);

/* Parse "CxHxW". Returns 0 on malformed text or a non-positive size. */
int rn_parse_shape(const char *text, int *c, int *h, int *w);

int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_experiment(int argc, char **argv);

#endif

/* The `resnet` command: train, eval, predict, info, bench and experiment. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void print_usage(FILE *out)
{
    fprintf(out,
            "usage: resnet COMMAND [OPTIONS]\n"
            "\n"
            "Residual networks in plain C.\n"
            "\n"
            "commands:\n"
            "  train       train a network on Fashion-MNIST, an image folder or CIFAR-10\n"
            "  eval        evaluate a weights file on the test set\n"
            "  predict     classify PNG and JPEG images with a weights file\n"
            "  info        print a model's layers, parameters and multiply-accumulates\n"
            "  bench       measure training or inference throughput, share of peak, memory\n"
            "  experiment  run an experiment on residual learning and plot it\n"
            "\n"
            "Run 'resnet COMMAND --help' for the options of a command.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stderr);
        return RN_EXIT_USAGE;
    }
    const char *command = argv[1];
    if (!strcmp(command, "--help") || !strcmp(command, "-h") || !strcmp(command, "help")) {
        print_usage(stdout);
        return RN_EXIT_OK;
    }
    if (!strcmp(command, "--version")) {
        printf("resnet %s\n", RN_VERSION);
        return RN_EXIT_OK;
    }
    if (!strcmp(command, "train"))
        return cmd_train(argc - 2, argv + 2);
    if (!strcmp(command, "eval"))
        return cmd_eval(argc - 2, argv + 2);
    if (!strcmp(command, "predict"))
        return cmd_predict(argc - 2, argv + 2);
    if (!strcmp(command, "info"))
        return cmd_info(argc - 2, argv + 2);
    if (!strcmp(command, "bench"))
        return cmd_bench(argc - 2, argv + 2);
    if (!strcmp(command, "experiment"))
        return cmd_experiment(argc - 2, argv + 2);
    fprintf(stderr, "resnet: unknown command '%s'\n\n", command);
    print_usage(stderr);
    return RN_EXIT_USAGE;
}

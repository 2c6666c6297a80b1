/* resnet info */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "model/model.h"

static const char INFO_HELP[] =
    "usage: resnet info --model NAME [--input CxHxW] [--classes N] [--shortcut A|B|C]\n"
    "                   [--stride-in-1x1]\n"
    "\n"
    "Print the layers of a model with their output shapes, parameters and\n"
    "multiply-accumulates (MACs) for one image, and the totals.\n"
    "\n"
    "  --model NAME      a name from the list below\n"
    "  --input CxHxW     input shape (default 1x28x28, Fashion-MNIST)\n"
    "  --classes N       number of classes (default 10)\n"
    "  --shortcut A|B|C  A zero-padding identity (the CIFAR networks' default),\n"
    "                    B projection where the shape changes (torchvision's),\n"
    "                    C projections everywhere\n"
    "  --stride-in-1x1   bottleneck networks: stride on the first 1x1 convolution\n"
    "                    (the paper) instead of the 3x3 one (torchvision)\n"
    "\n"
    RN_MODELS_HELP;

static const char *kind_name(rn_node_kind kind)
{
    switch (kind) {
    case RN_NODE_CONV: return "conv";
    case RN_NODE_BN: return "batchnorm";
    case RN_NODE_RELU: return "relu";
    case RN_NODE_MAXPOOL: return "maxpool";
    case RN_NODE_AVGPOOL: return "avgpool";
    case RN_NODE_LINEAR: return "linear";
    case RN_NODE_ADD: return "add";
    case RN_NODE_SHORTCUT_A: return "shortcut-A";
    }
    return "?";
}

static void print_grouped(char *buf, size_t size, long long n)
{
    char digits[32];
    int len = snprintf(digits, sizeof digits, "%lld", n), out = 0;
    for (int i = 0; i < len && out + 2 < (int)size; i++) {
        if (i > 0 && (len - i) % 3 == 0)
            buf[out++] = ',';
        buf[out++] = digits[i];
    }
    buf[out] = '\0';
}

static int takes_value(const char *name)
{
    static const char *const valued[] = {"model", "input", "classes", "shortcut", NULL};
    static const char *const switches[] = {"help", "stride-in-1x1", NULL};
    return rn_args_classify(name, valued, switches);
}

int cmd_info(int argc, char **argv)
{
    static const char *const shorts[] = {"h", "help", NULL};
    rn_args args = {argc, argv, 0, "info"};
    rn_model_config cfg = {.in_c = 1, .in_h = 28, .in_w = 28, .classes = 10,
                           .shortcut = RN_SHORTCUT_DEFAULT};
    const char *name, *value;
    int r, have_model = 0;

    while ((r = rn_args_next(&args, shorts, takes_value, &name, &value)) > 0) {
        if (!strcmp(name, "help")) {
            fputs(INFO_HELP, stdout);
            return RN_EXIT_OK;
        } else if (!strcmp(name, "model")) {
            if (strlen(value) >= sizeof cfg.arch)
                return rn_usage_error("info", "model name too long: '%s'", value);
            strcpy(cfg.arch, value);
            have_model = 1;
        } else if (!strcmp(name, "input")) {
            if (!rn_parse_shape(value, &cfg.in_c, &cfg.in_h, &cfg.in_w))
                return rn_usage_error("info", "invalid --input '%s': expected CxHxW, such as 1x28x28",
                                      value);
        } else if (!strcmp(name, "classes")) {
            char *end;
            long classes = strtol(value, &end, 10);
            if (end == value || *end || classes < 2 || classes > 100000)
                return rn_usage_error("info", "invalid --classes '%s': expected an integer "
                                      "from 2 to 100000", value);
            cfg.classes = (int)classes;
        } else if (!strcmp(name, "shortcut")) {
            if (rn_shortcut_parse(value, &cfg.shortcut) != RN_OK)
                return rn_usage_error("info", "%s", rn_last_error());
        } else if (!strcmp(name, "stride-in-1x1")) {
            cfg.stride_in_1x1 = 1;
        } else {
            return rn_usage_error("info", "unknown option '--%s'", name);
        }
    }
    if (r < 0)
        return RN_EXIT_USAGE;
    if (!have_model)
        return rn_usage_error("info", "--model is required; available: %s", rn_model_names());

    rn_model *m;
    rn_status status = rn_model_create(&cfg, &m);
    if (status != RN_OK)
        return rn_report_failure("info", status);

    printf("%s, input %dx%dx%d, %d classes", cfg.arch, cfg.in_c, cfg.in_h, cfg.in_w, cfg.classes);
    if (m->config.shortcut != RN_SHORTCUT_NONE)
        printf(", shortcut option %s", rn_shortcut_name(m->config.shortcut));
    printf("\n\n%-4s %-24s %-11s %-16s %12s %14s\n", "#", "layer", "type", "output (CxHxW)",
           "parameters", "MACs");
    long long total_params = 0, total_macs = 0;
    for (int i = 0; i < m->node_count; i++) {
        const rn_node *node = &m->nodes[i];
        rn_value out = m->values[node->dst];
        long long params = 0, macs = rn_node_macs(m, i);
        char shape[32], p_text[32], m_text[32];
        if (node->weights >= 0)
            params += (long long)m->params[node->weights].numel;
        if (node->bias >= 0)
            params += (long long)m->params[node->bias].numel;
        total_params += params;
        total_macs += macs;
        snprintf(shape, sizeof shape, "%dx%dx%d", out.c, out.h, out.w);
        print_grouped(p_text, sizeof p_text, params);
        print_grouped(m_text, sizeof m_text, macs);
        printf("%-4d %-24s %-11s %-16s %12s %14s\n", i, node->kind == RN_NODE_RELU ? "" : node->name,
               kind_name(node->kind), shape, params ? p_text : "", macs ? m_text : "");
    }
    char p_text[32], m_text[32];
    print_grouped(p_text, sizeof p_text, total_params);
    print_grouped(m_text, sizeof m_text, total_macs);
    printf("\ntotal: %s parameters, %s MACs (%.1f M) per image\n", p_text, m_text,
           total_macs / 1e6);
    printf("memory: %.1f MiB of parameters (float32)\n", total_params * 4.0 / 1048576.0);
    rn_model_destroy(m);
    return RN_EXIT_OK;
}

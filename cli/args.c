#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

int rn_usage_error(const char *command, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "resnet %s: ", command);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nRun 'resnet %s --help' for usage.\n", command);
    return RN_EXIT_USAGE;
}

int rn_report_failure(const char *command, rn_status status)
{
    if (status == RN_ERR_INVALID)
        return rn_usage_error(command, "%s", rn_last_error());
    fprintf(stderr, "resnet %s: error: %s\n", command, rn_last_error());
    return status == RN_ERR_INTERRUPTED ? RN_EXIT_INTERRUPTED : RN_EXIT_FAILURE;
}

int rn_args_classify(const char *name, const char *const *valued,
                     const char *const *switches)
{
    for (int k = 0; valued[k]; k++)
        if (!strcmp(name, valued[k]))
            return 1;
    for (int k = 0; switches[k]; k++)
        if (!strcmp(name, switches[k]))
            return 0;
    return RN_ARGS_UNKNOWN;
}

int rn_args_next(rn_args *args, const char *const *shorts, rn_takes_value_fn takes_value,
                 const char **name, const char **value)
{
    static char buf[128];
    const char *arg;

    if (args->index >= args->argc)
        return 0;
    arg = args->argv[args->index++];
    *value = NULL;

    if (arg[0] == '-' && arg[1] == '-' && arg[2]) {
        const char *eq = strchr(arg + 2, '=');
        size_t len = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
        if (len >= sizeof buf) {
            rn_usage_error(args->command, "unknown option '%s'", arg);
            return -1;
        }
        memcpy(buf, arg + 2, len);
        buf[len] = '\0';
        *name = buf;
        if (takes_value(buf) == RN_ARGS_UNKNOWN) {
            rn_usage_error(args->command, "unknown option '--%s'", buf);
            return -1;
        }
        if (eq) {
            if (!takes_value(buf)) {
                rn_usage_error(args->command, "option '--%s' takes no value", buf);
                return -1;
            }
            *value = eq + 1;
            return 1;
        }
    } else if (arg[0] == '-' && arg[1] && !arg[2]) {
        for (int k = 0; shorts && shorts[k]; k += 2) {
            if (shorts[k][0] == arg[1]) {
                *name = shorts[k + 1];
                goto found;
            }
        }
        rn_usage_error(args->command, "unknown option '%s'", arg);
        return -1;
    found:;
    } else {
        rn_usage_error(args->command, "unexpected argument '%s'", arg);
        return -1;
    }

    if (takes_value(*name)) {
        if (args->index >= args->argc) {
            rn_usage_error(args->command, "option '--%s' needs a value", *name);
            return -1;
        }
        *value = args->argv[args->index++];
    }
    return 1;
}

/* One dimension of a shape at *text: decimal digits only (no sign or
 * space, which sscanf would take), from 1 to SHAPE_MAX, then `end`. */
enum { SHAPE_MAX = 1000000 };

static int parse_dimension(const char **text, char end, int *out)
{
    long value = 0;
    const char *p = *text;
    if (*p < '0' || *p > '9')
        return 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        value = value * 10 + (*p - '0');
        if (value > SHAPE_MAX)
            return 0;
    }
    if (*p != end || value < 1)
        return 0;
    *out = (int)value;
    *text = end ? p + 1 : p;
    return 1;
}

int rn_parse_shape(const char *text, int *c, int *h, int *w)
{
    return parse_dimension(&text, 'x', c) && parse_dimension(&text, 'x', h) &&
           parse_dimension(&text, '\0', w);
}

/* Test runner: runs every registered test, or those whose name contains one
 * of the command-line arguments, and ends with "N passed, N failed". */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "resnet.h"
#include "test.h"

enum { MAX_TESTS = 1024 };

struct test_entry {
    const char *name;
    const char *file;
    rn_test_fn fn;
};

static struct test_entry tests[MAX_TESTS];
static int test_count;
static int current_failures;
static char tmpdir[256];

void rn_test_register(const char *name, const char *file, rn_test_fn fn)
{
    if (test_count == MAX_TESTS) {
        fprintf(stderr, "too many tests: raise MAX_TESTS in tests/runner.c\n");
        exit(2);
    }
    tests[test_count++] = (struct test_entry){name, file, fn};
}

void rn_test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stdout, "    %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    current_failures++;
}

const char *rn_test_tmpdir(void)
{
    return tmpdir;
}

static int selected(const char *name, int argc, char **argv)
{
    if (argc < 2)
        return 1;
    for (int i = 1; i < argc; i++)
        if (strstr(name, argv[i]))
            return 1;
    return 0;
}

static int compare_entries(const void *a, const void *b)
{
    const struct test_entry *x = a, *y = b;
    int by_file = strcmp(x->file, y->file);
    return by_file ? by_file : strcmp(x->name, y->name);
}

int main(int argc, char **argv)
{
    int passed = 0, failed = 0;

    snprintf(tmpdir, sizeof tmpdir, "%s/rn-test-%ld",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (long)getpid());
    if (mkdir(tmpdir, 0700) != 0) {
        perror(tmpdir);
        return 2;
    }
    qsort(tests, test_count, sizeof tests[0], compare_entries);
    for (int i = 0; i < test_count; i++) {
        struct timespec t0, t1;
        if (!selected(tests[i].name, argc, argv))
            continue;
        current_failures = 0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        tests[i].fn();
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double seconds = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
        printf("%s %-40s %7.2fs\n", current_failures ? "FAIL" : "ok  ",
               tests[i].name, seconds);
        fflush(stdout);
        if (current_failures)
            failed++;
        else
            passed++;
    }
    char command[300];
    snprintf(command, sizeof command, "rm -rf '%s'", tmpdir);
    if (system(command) != 0)
        fprintf(stderr, "warning: could not remove %s\n", tmpdir);
    printf("%d passed, %d failed\n", passed, failed);
    if (passed + failed == 0) {
        fprintf(stderr, "no test name contains any of the arguments\n");
        return 2;
    }
    return failed ? 1 : 0;
}

/* A small test harness: TEST(name) registers a test at load time, so each
 * tests/test_*.c file is self-contained and needs no central list. */
#ifndef RN_TEST_H
#define RN_TEST_H

#include <math.h>
#include <stdio.h>

typedef void (*rn_test_fn)(void);
void rn_test_register(const char *name, const char *file, rn_test_fn fn);
void rn_test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define TEST(name)                                                             \
    static void test_##name(void);                                             \
    __attribute__((constructor)) static void register_##name(void)             \
    {                                                                          \
        rn_test_register(#name, __FILE__, test_##name);                        \
    }                                                                          \
    static void test_##name(void)

/* Each CHECK reports its own failure and lets the test go on. */
#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond))                                                           \
            rn_test_fail(__FILE__, __LINE__, "check failed: %s", #cond);       \
    } while (0)

#define CHECK_MSG(cond, ...)                                                   \
    do {                                                                       \
        if (!(cond))                                                           \
            rn_test_fail(__FILE__, __LINE__, __VA_ARGS__);                     \
    } while (0)

/* |actual - expected| <= atol + rtol * |expected| */
#define CHECK_CLOSE(actual, expected, atol, rtol)                              \
    do {                                                                       \
        double a_ = (actual), e_ = (expected);                                 \
        if (!(fabs(a_ - e_) <= (atol) + (rtol) * fabs(e_)))                    \
            rn_test_fail(__FILE__, __LINE__, "%s = %.9g, expected %.9g",       \
                         #actual, a_, e_);                                     \
    } while (0)

/* Status-returning call expected to succeed; prints rn_last_error() if not. */
#define CHECK_OK(expr)                                                         \
    do {                                                                       \
        rn_status s_ = (expr);                                                 \
        if (s_ != RN_OK)                                                       \
            rn_test_fail(__FILE__, __LINE__, "%s returned %s: %s", #expr,      \
                         rn_status_name(s_), rn_last_error());                 \
    } while (0)

/* Directory for temporary files of this test run (created by the runner). */
const char *rn_test_tmpdir(void);

#endif

/* Finite-difference gradient checks in double precision.
 *
 * Each layer test keeps its inputs in double, evaluates a double-precision
 * reference forward (tests/reference.c) to get the objective
 * L = sum(upstream * dst), differentiates L by central differences with a
 * step of 1e-6, and compares the result against the float backward pass of
 * the library run with diff_dst = upstream. The float forward is compared
 * against the reference forward as well. */
#ifndef RN_TEST_GRADCHECK_H
#define RN_TEST_GRADCHECK_H

#include <stddef.h>

typedef double (*gc_objective_fn)(void *ctx);

typedef struct gc_input {
    const char *name;
    double *value;      /* perturbed in place by the check, then restored */
    const float *grad;  /* analytic gradient from the library */
    size_t numel;
} gc_input;

/* Fill with uniform values in [lo, hi). */
void gc_fill(double *x, size_t n, double lo, double hi, unsigned seed);
void gc_to_float(float *dst, const double *src, size_t n);

/* Compare the analytic gradient of every input with central differences.
 * Reports the worst element of each input through CHECK_MSG; at most
 * `max_points` elements of each input are checked (spread evenly). */
void gc_check(const char *layer, gc_objective_fn objective, void *ctx,
              gc_input *inputs, int count, size_t max_points);

/* Compare a float output with the double reference. */
void gc_check_forward(const char *layer, const float *actual,
                      const double *expected, size_t n);

#endif

#include "gradcheck.h"

#include <math.h>

#include "core/rng.h"
#include "test.h"

/* Float32 kernels against double references: the tolerance rule is
 * |a - b| <= atol + rtol * |ref| with these values. */
static const double FORWARD_ATOL = 1e-5, FORWARD_RTOL = 1e-4;
static const double GRAD_ATOL = 1e-5, GRAD_RTOL = 1e-3;
static const double STEP = 1e-6;

void gc_fill(double *x, size_t n, double lo, double hi, unsigned seed)
{
    rn_rng rng;
    rn_rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * ((rn_rng_next(&rng) >> 11) * (1.0 / 9007199254740992.0));
}

void gc_to_float(float *dst, const double *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = (float)src[i];
}

void gc_check_forward(const char *layer, const float *actual,
                      const double *expected, size_t n)
{
    double worst = 0.0;
    size_t worst_index = 0;
    for (size_t i = 0; i < n; i++) {
        double excess = fabs(actual[i] - expected[i]) -
                        (FORWARD_ATOL + FORWARD_RTOL * fabs(expected[i]));
        if (excess > worst) {
            worst = excess;
            worst_index = i;
        }
    }
    CHECK_MSG(worst == 0.0, "%s forward: element %zu is %.9g, reference %.9g",
              layer, worst_index, actual[worst_index], expected[worst_index]);
}

void gc_check(const char *layer, gc_objective_fn objective, void *ctx,
              gc_input *inputs, int count, size_t max_points)
{
    for (int t = 0; t < count; t++) {
        gc_input *in = &inputs[t];
        size_t stride = in->numel > max_points ? in->numel / max_points : 1;
        double worst = 0.0, worst_numeric = 0.0, worst_analytic = 0.0;
        size_t worst_index = 0, checked = 0;

        for (size_t i = 0; i < in->numel; i += stride) {
            double saved = in->value[i];
            in->value[i] = saved + STEP;
            double plus = objective(ctx);
            in->value[i] = saved - STEP;
            double minus = objective(ctx);
            in->value[i] = saved;

            double numeric = (plus - minus) / (2 * STEP);
            double analytic = in->grad[i];
            double excess = fabs(analytic - numeric) -
                            (GRAD_ATOL + GRAD_RTOL * fabs(numeric));
            if (excess > worst) {
                worst = excess;
                worst_index = i;
                worst_numeric = numeric;
                worst_analytic = analytic;
            }
            checked++;
        }
        CHECK_MSG(checked > 0, "%s: no element of %s checked", layer, in->name);
        CHECK_MSG(worst == 0.0,
                  "%s: d/d%s[%zu] analytic %.9g, finite difference %.9g",
                  layer, in->name, worst_index, worst_analytic, worst_numeric);
    }
}

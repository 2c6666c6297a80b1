/* Gradient checks of every layer against double-precision references. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu.h"
#include "core/status.h"
#include "gradcheck.h"
#include "kernels/gemm.h"
#include "layers/conv_direct.h"
#include "layers/conv_winograd.h"
#include "layers/layers.h"
#include "reference.h"
#include "test.h"

static double dot(const double *a, const double *b, size_t n)
{
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += a[i] * b[i];
    return sum;
}

/* ---------------------------------------------------------------- conv2d */

struct conv_case {
    rn_conv_shape s;
    double *src, *weights, *bias, *upstream, *dst;
};

static double conv_objective(void *ctx)
{
    struct conv_case *c = ctx;
    ref_conv2d(c->dst, c->src, c->weights, c->bias, &c->s);
    return dot(c->dst, c->upstream, (size_t)c->s.mb * c->s.oc * c->s.oh * c->s.ow);
}

static void check_conv(rn_conv_shape s, int with_bias)
{
    struct conv_case c = {.s = s};
    rn_conv_shape_infer(&c.s);
    size_t n_src = (size_t)s.mb * s.ic * s.ih * s.iw;
    size_t n_w = (size_t)s.oc * (s.ic / (s.groups > 1 ? s.groups : 1)) * s.kh * s.kw;
    size_t n_dst = (size_t)s.mb * s.oc * c.s.oh * c.s.ow;

    c.src = malloc(n_src * sizeof(double));
    c.weights = malloc(n_w * sizeof(double));
    c.bias = with_bias ? malloc(s.oc * sizeof(double)) : NULL;
    c.upstream = malloc(n_dst * sizeof(double));
    c.dst = malloc(n_dst * sizeof(double));
    gc_fill(c.src, n_src, -1, 1, 1);
    gc_fill(c.weights, n_w, -1, 1, 2);
    if (c.bias)
        gc_fill(c.bias, s.oc, -1, 1, 3);
    gc_fill(c.upstream, n_dst, -1, 1, 4);

    float *src = malloc(n_src * 4), *w = malloc(n_w * 4), *b = malloc(s.oc * 4);
    float *dst = malloc(n_dst * 4), *up = malloc(n_dst * 4);
    float *d_src = calloc(n_src, 4), *d_w = calloc(n_w, 4), *d_b = calloc(s.oc, 4);
    float *scratch = rn_alloc_aligned(4 * rn_conv2d_scratch_numel(&c.s, rn_threads_get()));
    gc_to_float(src, c.src, n_src);
    gc_to_float(w, c.weights, n_w);
    if (c.bias)
        gc_to_float(b, c.bias, s.oc);
    gc_to_float(up, c.upstream, n_dst);

    rn_conv2d_forward(dst, src, w, c.bias ? b : NULL, &c.s, scratch);
    conv_objective(&c);
    gc_check_forward("conv2d", dst, c.dst, n_dst);
    rn_conv2d_backward(d_src, d_w, c.bias ? d_b : NULL, up, src, w, &c.s, scratch,
                       RN_GRAD_ACCUMULATE);

    gc_input inputs[] = {
        {"src", c.src, d_src, n_src},
        {"weights", c.weights, d_w, n_w},
        {"bias", c.bias, d_b, (size_t)s.oc},
    };
    gc_check("conv2d", conv_objective, &c, inputs, with_bias ? 3 : 2, 300);

    free(c.src), free(c.weights), free(c.bias), free(c.upstream), free(c.dst);
    free(src), free(w), free(b), free(dst), free(up), free(d_src), free(d_w), free(d_b);
    rn_free_aligned(scratch);
}

TEST(conv2d_3x3_stride1_pad1_bias)
{
    check_conv((rn_conv_shape){.mb = 3, .ic = 3, .ih = 7, .iw = 6, .oc = 4,
                               .kh = 3, .kw = 3, .sh = 1, .sw = 1, .ph = 1, .pw = 1}, 1);
}

TEST(conv2d_3x3_stride2_no_bias)
{
    check_conv((rn_conv_shape){.mb = 2, .ic = 4, .ih = 8, .iw = 9, .oc = 5,
                               .kh = 3, .kw = 3, .sh = 2, .sw = 2, .ph = 1, .pw = 1}, 0);
}

TEST(conv2d_3x3_winograd_even_planes)
{
    /* 9 output channels and 3 input channels leave remainders in the
     * Winograd register blocks; one image makes the threads share its tile
     * blocks. */
    check_conv((rn_conv_shape){.mb = 4, .ic = 3, .ih = 8, .iw = 10, .oc = 9,
                               .kh = 3, .kw = 3, .sh = 1, .sw = 1, .ph = 1, .pw = 1}, 1);
    check_conv((rn_conv_shape){.mb = 1, .ic = 3, .ih = 16, .iw = 16, .oc = 5,
                               .kh = 3, .kw = 3, .sh = 1, .sw = 1, .ph = 1, .pw = 1}, 0);
}

TEST(conv2d_one_image_shared_by_threads)
{
    check_conv((rn_conv_shape){.mb = 1, .ic = 3, .ih = 9, .iw = 8, .oc = 5,
                               .kh = 3, .kw = 3, .sh = 2, .sw = 2, .ph = 1, .pw = 1}, 1);
    check_conv((rn_conv_shape){.mb = 1, .ic = 4, .ih = 6, .iw = 5, .oc = 3,
                               .kh = 1, .kw = 1, .sh = 1, .sw = 1}, 0);
}

TEST(conv2d_1x1_pointwise)
{
    check_conv((rn_conv_shape){.mb = 3, .ic = 6, .ih = 5, .iw = 5, .oc = 7,
                               .kh = 1, .kw = 1, .sh = 1, .sw = 1}, 1);
}

TEST(conv2d_1x1_stride2_projection)
{
    check_conv((rn_conv_shape){.mb = 2, .ic = 4, .ih = 7, .iw = 7, .oc = 8,
                               .kh = 1, .kw = 1, .sh = 2, .sw = 2}, 0);
}

TEST(conv2d_7x7_stride2_pad3_stem)
{
    check_conv((rn_conv_shape){.mb = 2, .ic = 1, .ih = 12, .iw = 11, .oc = 3,
                               .kh = 7, .kw = 7, .sh = 2, .sw = 2, .ph = 3, .pw = 3}, 1);
}

TEST(conv2d_rectangular_kernel)
{
    check_conv((rn_conv_shape){.mb = 2, .ic = 2, .ih = 6, .iw = 7, .oc = 3,
                               .kh = 2, .kw = 3, .sh = 1, .sw = 2, .ph = 0, .pw = 1}, 1);
}

TEST(conv2d_grouped_3x3_stride2)
{
    check_conv((rn_conv_shape){.mb = 2, .ic = 6, .ih = 7, .iw = 6, .oc = 9,
                               .kh = 3, .kw = 3, .sh = 2, .sw = 2, .ph = 1, .pw = 1,
                               .groups = 3}, 1);
}

TEST(conv2d_grouped_pointwise)
{
    check_conv((rn_conv_shape){.mb = 3, .ic = 8, .ih = 4, .iw = 5, .oc = 4,
                               .kh = 1, .kw = 1, .sh = 1, .sw = 1, .groups = 4}, 0);
}

TEST(conv2d_5x5_same_padding_direct)
{
    /* 9 output channels and 50 taps leave remainders in every block of the
     * direct kernels. */
    check_conv((rn_conv_shape){.mb = 2, .ic = 2, .ih = 6, .iw = 5, .oc = 9,
                               .kh = 5, .kw = 5, .sh = 1, .sw = 1, .ph = 2, .pw = 2}, 1);
}

/* Run one convolution forward and backward (both gradient modes) with the
 * direct path on or off. */
struct conv_run {
    float *dst, *d_src, *d_src_acc, *d_w, *d_b;
};

/* Convolution paths: im2col and GEMM, the direct kernel, Winograd. */
enum { PATH_IM2COL, PATH_DIRECT, PATH_WINOGRAD };

static struct conv_run conv_run(const rn_conv_shape *s, const float *src, const float *w,
                                const float *b, const float *up, int path)
{
    size_t n_src = (size_t)s->mb * s->ic * s->ih * s->iw;
    size_t n_w = (size_t)s->oc * s->ic * s->kh * s->kw;
    size_t n_dst = (size_t)s->mb * s->oc * s->oh * s->ow;
    struct conv_run r = {malloc(n_dst * 4), malloc(n_src * 4), malloc(n_src * 4),
                         malloc(n_w * 4), malloc(s->oc * 4)};
    int was = rn_conv_direct_set_enabled(path != PATH_IM2COL);
    int was_winograd = rn_winograd_set_enabled(path == PATH_WINOGRAD);
    float *scratch = rn_alloc_aligned(4 * rn_conv2d_scratch_numel(s, rn_threads_get()));
    for (size_t i = 0; i < n_src; i++)
        r.d_src_acc[i] = 0.25f * (float)(i % 7);
    for (size_t i = 0; i < n_w; i++)
        r.d_w[i] = 0.5f;
    memset(r.d_b, 0, s->oc * 4);
    rn_conv2d_forward(r.dst, src, w, b, s, scratch);
    rn_conv2d_backward(r.d_src, r.d_w, r.d_b, up, src, w, s, scratch, RN_GRAD_OVERWRITE);
    rn_conv2d_backward(r.d_src_acc, NULL, NULL, up, src, w, s, scratch, RN_GRAD_ACCUMULATE);
    rn_free_aligned(scratch);
    rn_conv_direct_set_enabled(was);
    rn_winograd_set_enabled(was_winograd);
    return r;
}

static void check_same(const char *path, const char *what, const float *a, const float *b,
                       size_t n)
{
    double max_ref = 0.0, max_err = 0.0;
    size_t worst = 0;
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)a[i] - b[i]);
        if (fabs(b[i]) > max_ref)
            max_ref = fabs(b[i]);
        if (err > max_err || err != err) {
            max_err = err;
            worst = i;
        }
    }
    CHECK_MSG(max_err <= 1e-5 * max_ref, "%s: element %zu is %.9g by the %s path, %.9g by im2col",
              what, worst, a[worst], path, b[worst]);
}

static void conv_run_free(struct conv_run *r)
{
    float *outputs[] = {r->dst, r->d_src, r->d_src_acc, r->d_w, r->d_b};
    for (size_t i = 0; i < sizeof outputs / sizeof outputs[0]; i++)
        free(outputs[i]);
}

/* Inputs of one convolution: source, weights, bias and the gradient that
 * reaches its output, uniform in [-1, 1) from a seeded generator. */
struct conv_inputs {
    size_t n_src, n_w, n_dst;
    float *src, *w, *b, *up;
};

static struct conv_inputs conv_inputs(const rn_conv_shape *s, uint32_t seed)
{
    struct conv_inputs in = {
        .n_src = (size_t)s->mb * s->ic * s->ih * s->iw,
        .n_w = (size_t)s->oc * s->ic * s->kh * s->kw,
        .n_dst = (size_t)s->mb * s->oc * s->oh * s->ow,
    };
    in.src = malloc(in.n_src * 4);
    in.w = malloc(in.n_w * 4);
    in.b = malloc(s->oc * 4);
    in.up = malloc(in.n_dst * 4);
    float *fill[] = {in.src, in.w, in.b, in.up};
    size_t sizes[] = {in.n_src, in.n_w, (size_t)s->oc, in.n_dst};
    uint32_t state = seed;
    for (int t = 0; t < 4; t++)
        for (size_t i = 0; i < sizes[t]; i++) {
            state = state * 1664525u + 1013904223u;
            fill[t][i] = (float)(state >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
        }
    return in;
}

static void conv_inputs_free(struct conv_inputs *in)
{
    free(in->src);
    free(in->w);
    free(in->b);
    free(in->up);
}

/* The direct, Winograd and implicit GEMM paths against im2col and GEMM on
 * shapes that exercise the image chunks of the backward pass and every
 * block remainder.
 * On a CPU without AVX-512 every run takes im2col and the test checks
 * nothing. */
TEST(conv2d_fast_paths_match_im2col)
{
    rn_conv_shape shapes[] = {
        {.mb = 5, .ic = 3, .ih = 9, .iw = 7, .oc = 10, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
         .ph = 1, .pw = 1},
        {.mb = 7, .ic = 64, .ih = 32, .iw = 32, .oc = 64, .kh = 3, .kw = 3, .sh = 1,
         .sw = 1, .ph = 1, .pw = 1},
        {.mb = 3, .ic = 20, .ih = 8, .iw = 8, .oc = 13, .kh = 5, .kw = 5, .sh = 1, .sw = 1,
         .ph = 2, .pw = 2},
        {.mb = 2, .ic = 5, .ih = 1, .iw = 3, .oc = 3, .kh = 3, .kw = 1, .sh = 1, .sw = 1,
         .ph = 1, .pw = 0},
        /* Winograd's even planes: one, two and three vectors of tiles per
         * block, tile rows of 3, 6 and 12, channels that are not multiples
         * of the register blocks. Winograd needs 64 tiles in the batch. */
        {.mb = 3, .ic = 64, .ih = 24, .iw = 24, .oc = 64, .kh = 3, .kw = 3, .sh = 1,
         .sw = 1, .ph = 1, .pw = 1},
        {.mb = 2, .ic = 128, .ih = 12, .iw = 12, .oc = 128, .kh = 3, .kw = 3, .sh = 1,
         .sw = 1, .ph = 1, .pw = 1},
        {.mb = 8, .ic = 256, .ih = 6, .iw = 6, .oc = 256, .kh = 3, .kw = 3, .sh = 1,
         .sw = 1, .ph = 1, .pw = 1},
        {.mb = 8, .ic = 64, .ih = 16, .iw = 16, .oc = 64, .kh = 3, .kw = 3, .sh = 1,
         .sw = 1, .ph = 1, .pw = 1},
        {.mb = 8, .ic = 128, .ih = 8, .iw = 8, .oc = 128, .kh = 3, .kw = 3, .sh = 1,
         .sw = 1, .ph = 1, .pw = 1},
        {.mb = 3, .ic = 5, .ih = 10, .iw = 14, .oc = 21, .kh = 3, .kw = 3, .sh = 1,
         .sw = 1, .ph = 1, .pw = 1},
        /* Odd planes: a last tile row and column half outside. */
        {.mb = 4, .ic = 64, .ih = 7, .iw = 7, .oc = 64, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
         .ph = 1, .pw = 1},
        {.mb = 2, .ic = 9, .ih = 15, .iw = 7, .oc = 17, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
         .ph = 1, .pw = 1},
        {.mb = 2, .ic = 6, .ih = 9, .iw = 35, .oc = 8, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
         .ph = 1, .pw = 1},
        /* Winograd's weight gradient summing 2 images per call. */
        {.mb = 4, .ic = 260, .ih = 7, .iw = 7, .oc = 256, .kh = 3, .kw = 3, .sh = 1,
         .sw = 1, .ph = 1, .pw = 1},
        /* Winograd for the data, im2col for the weights (too many
         * channels for Winograd's weight accumulators). */
        {.mb = 4, .ic = 520, .ih = 7, .iw = 7, .oc = 512, .kh = 3, .kw = 3, .sh = 1,
         .sw = 1, .ph = 1, .pw = 1},
        /* One image: the threads share its blocks, of one vector of tiles
         * each (rows of 10 and of 8 tiles, the last half outside). */
        {.mb = 1, .ic = 16, .ih = 20, .iw = 20, .oc = 24, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
         .ph = 1, .pw = 1},
        {.mb = 1, .ic = 32, .ih = 15, .iw = 15, .oc = 40, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
         .ph = 1, .pw = 1},
        /* 1x1 on the implicit GEMM. Panels span images, and channel counts
         * are not multiples of the 8-row block. One image splits its rows
         * between threads. Stride 2 runs forward only (backward takes
         * im2col). Then 1x1 planes, and panel groups deep enough that the
         * next group's columns are fetched while one is computed. */
        {.mb = 5, .ic = 24, .ih = 7, .iw = 7, .oc = 40, .kh = 1, .kw = 1, .sh = 1, .sw = 1},
        {.mb = 3, .ic = 13, .ih = 9, .iw = 5, .oc = 21, .kh = 1, .kw = 1, .sh = 1, .sw = 1},
        {.mb = 1, .ic = 64, .ih = 7, .iw = 7, .oc = 200, .kh = 1, .kw = 1, .sh = 1, .sw = 1},
        {.mb = 4, .ic = 32, .ih = 15, .iw = 15, .oc = 16, .kh = 1, .kw = 1, .sh = 2, .sw = 2},
        {.mb = 2, .ic = 8, .ih = 1, .iw = 1, .oc = 8, .kh = 1, .kw = 1, .sh = 1, .sw = 1},
        {.mb = 3, .ic = 300, .ih = 20, .iw = 20, .oc = 24, .kh = 1, .kw = 1, .sh = 1,
         .sw = 1},
        {.mb = 4, .ic = 16, .ih = 30, .iw = 30, .oc = 64, .kh = 1, .kw = 1, .sh = 1, .sw = 1},
        /* Other kernels on the implicit GEMM (forward only): stride 2 with
         * odd and even rows longer and shorter than a vector, the 7x7
         * stem, a rectangular kernel, stride 3, and a 3x3 plane that the
         * direct kernel leaves. */
        {.mb = 3, .ic = 16, .ih = 15, .iw = 15, .oc = 32, .kh = 3, .kw = 3, .sh = 2, .sw = 2,
         .ph = 1, .pw = 1},
        {.mb = 2, .ic = 8, .ih = 40, .iw = 38, .oc = 24, .kh = 3, .kw = 3, .sh = 2, .sw = 2,
         .ph = 1, .pw = 1},
        {.mb = 2, .ic = 3, .ih = 29, .iw = 30, .oc = 16, .kh = 7, .kw = 7, .sh = 2, .sw = 2,
         .ph = 3, .pw = 3},
        {.mb = 3, .ic = 5, .ih = 6, .iw = 9, .oc = 11, .kh = 2, .kw = 3, .sh = 1, .sw = 2,
         .ph = 0, .pw = 1},
        {.mb = 2, .ic = 4, .ih = 11, .iw = 13, .oc = 9, .kh = 5, .kw = 5, .sh = 3, .sw = 3,
         .ph = 2, .pw = 2},
        {.mb = 1, .ic = 32, .ih = 3, .iw = 3, .oc = 40, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
         .ph = 1, .pw = 1},
        /* The direct weight gradient at stride 2: odd and even planes, a
         * part-full vector of output channels, more images than threads. */
        {.mb = 5, .ic = 9, .ih = 13, .iw = 12, .oc = 17, .kh = 3, .kw = 3, .sh = 2, .sw = 2,
         .ph = 1, .pw = 1},
        {.mb = 3, .ic = 16, .ih = 14, .iw = 14, .oc = 48, .kh = 3, .kw = 3, .sh = 2, .sw = 2,
         .ph = 1, .pw = 1},
    };
    for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
        rn_conv_shape s = shapes[c];
        rn_conv_shape_infer(&s);
        struct conv_inputs in = conv_inputs(&s, 12345u + (uint32_t)c);
        struct conv_run r = conv_run(&s, in.src, in.w, in.b, in.up, PATH_IM2COL);
        for (int path = PATH_DIRECT; path <= PATH_WINOGRAD; path++) {
            int was = rn_conv_direct_set_enabled(1);
            int was_winograd = rn_winograd_set_enabled(path == PATH_WINOGRAD);
            const char *name = !rn_conv_direct_applies(&s) ? "implicit GEMM"
                               : path == PATH_DIRECT       ? "direct"
                                                           : "Winograd";
            rn_conv_direct_set_enabled(was);
            rn_winograd_set_enabled(was_winograd);
            struct conv_run d = conv_run(&s, in.src, in.w, in.b, in.up, path);
            check_same(name, "dst", d.dst, r.dst, in.n_dst);
            check_same(name, "diff_src", d.d_src, r.d_src, in.n_src);
            check_same(name, "diff_src (accumulated)", d.d_src_acc, r.d_src_acc, in.n_src);
            check_same(name, "diff_weights", d.d_w, r.d_w, in.n_w);
            check_same(name, "diff_bias", d.d_b, r.d_b, s.oc);
            conv_run_free(&d);
        }
        conv_run_free(&r);
        conv_inputs_free(&in);
    }
}

/* The shape with a 3x3 kernel at stride 1 and padding 1, output inferred. */
static rn_conv_shape same_3x3(rn_conv_shape s)
{
    s.kh = s.kw = 3;
    s.sh = s.sw = 1;
    s.ph = s.pw = 1;
    rn_conv_shape_infer(&s);
    return s;
}

/* Winograd F(4x4, 3x3) against im2col on every row length, 2 to 7 tiles.
 * A vector takes 8 tile rows (4 images of 2x2 tiles, the last vector part
 * full at 17 images) down to 2 (rows of 7 tiles, read as two loads). The shapes
 * include odd and non-square planes whose last tiles are half outside,
 * blocks whose rows span images, and channel counts that leave part of a
 * register block. The prepared weights of an inference plan are checked
 * too. */
TEST(conv2d_winograd4_matches_im2col)
{
    if (!rn_cpu_avx512() || !rn_conv_direct_enabled() || !rn_winograd_enabled())
        return;
    rn_conv_shape shapes[] = {
        {.mb = 17, .ic = 16, .ih = 7, .iw = 7, .oc = 24},
        {.mb = 18, .ic = 20, .ih = 8, .iw = 8, .oc = 16},
        {.mb = 5, .ic = 16, .ih = 14, .iw = 14, .oc = 17},
        {.mb = 4, .ic = 24, .ih = 15, .iw = 15, .oc = 16},
        {.mb = 7, .ic = 33, .ih = 16, .iw = 16, .oc = 40},
        {.mb = 16, .ic = 8, .ih = 7, .iw = 7, .oc = 9},
        {.mb = 9, .ic = 16, .ih = 12, .iw = 12, .oc = 16},
        {.mb = 3, .ic = 16, .ih = 20, .iw = 19, .oc = 24},
        {.mb = 2, .ic = 17, .ih = 24, .iw = 24, .oc = 16},
        {.mb = 3, .ic = 16, .ih = 28, .iw = 28, .oc = 16},
        {.mb = 2, .ic = 8, .ih = 27, .iw = 27, .oc = 12},
        {.mb = 8, .ic = 8, .ih = 7, .iw = 14, .oc = 8},
        {.mb = 16, .ic = 8, .ih = 14, .iw = 7, .oc = 8},
    };
    for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
        rn_conv_shape s = same_3x3(shapes[c]);
        CHECK_MSG(rn_winograd4_suits(&s), "shape %zu: F(4x4) does not take it", c);
        struct conv_inputs in = conv_inputs(&s, 4242u + (uint32_t)c);
        struct conv_run r = conv_run(&s, in.src, in.w, in.b, in.up, PATH_IM2COL);
        struct conv_run d = conv_run(&s, in.src, in.w, in.b, in.up, PATH_WINOGRAD);
        check_same("Winograd F(4x4)", "dst", d.dst, r.dst, in.n_dst);
        check_same("Winograd F(4x4)", "diff_src", d.d_src, r.d_src, in.n_src);
        check_same("Winograd F(4x4)", "diff_src (accumulated)", d.d_src_acc, r.d_src_acc,
                   in.n_src);
        check_same("Winograd F(4x4)", "diff_weights", d.d_w, r.d_w, in.n_w);

        size_t numel = rn_conv2d_prepared_numel(&s);
        CHECK_MSG(numel == rn_winograd4_weights_numel(s.oc, s.ic), "shape %zu: %zu prepared", c,
                  numel);
        float *prepared = rn_alloc_aligned(numel * 4), *dst = malloc(in.n_dst * 4);
        float *scratch = rn_alloc_aligned(4 * rn_conv2d_scratch_numel(&s, rn_threads_get()));
        rn_conv2d_prepare_weights(prepared, in.w, &s);
        rn_conv2d_forward_prepared(dst, in.src, in.w, prepared, in.b, &s, scratch, NULL);
        check_same("prepared Winograd F(4x4)", "dst", dst, r.dst, in.n_dst);
        rn_free_aligned(prepared);
        rn_free_aligned(scratch);
        free(dst);
        conv_run_free(&r);
        conv_run_free(&d);
        conv_inputs_free(&in);
    }
}

/* Winograd with weights transformed once, as inference plans run it,
 * against im2col. It then takes planes with too few tiles to repay a
 * transform per call, where one image's single block splits its output
 * channels between threads. */
TEST(conv2d_prepared_weights_match_im2col)
{
    rn_conv_shape shapes[] = {
        {.mb = 1, .ic = 40, .ih = 7, .iw = 7, .oc = 64},
        {.mb = 1, .ic = 24, .ih = 7, .iw = 7, .oc = 50},
        {.mb = 1, .ic = 16, .ih = 14, .iw = 14, .oc = 32},
        {.mb = 1, .ic = 8, .ih = 5, .iw = 6, .oc = 8},
        {.mb = 2, .ic = 12, .ih = 9, .iw = 9, .oc = 24},
    };
    for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
        rn_conv_shape s = same_3x3(shapes[c]);
        size_t n_src = (size_t)s.mb * s.ic * s.ih * s.iw;
        size_t n_w = (size_t)s.oc * s.ic * 9;
        size_t n_dst = (size_t)s.mb * s.oc * s.oh * s.ow;
        float *src = malloc(n_src * 4), *w = malloc(n_w * 4), *b = malloc(s.oc * 4);
        float *dst = malloc(n_dst * 4), *up = calloc(n_dst, 4);
        for (size_t i = 0; i < n_src; i++)
            src[i] = (float)((i * 7919) % 23) / 11.0f - 1.0f;
        for (size_t i = 0; i < n_w; i++)
            w[i] = (float)((i * 104729) % 19) / 90.0f - 0.1f;
        for (int o = 0; o < s.oc; o++)
            b[o] = 0.01f * (float)o;
        struct conv_run r = conv_run(&s, src, w, b, up, PATH_IM2COL);

        size_t numel = rn_conv2d_prepared_numel(&s);
        CHECK_MSG(numel > 0 || !rn_conv_direct_applies_prepared(&s) || !rn_winograd_enabled(),
                  "shape %zu: no prepared weights", c);
        CHECK_MSG(!rn_winograd_suits(&s), "shape %zu: Winograd takes it anyway", c);
        if (numel > 0) {
            float *prepared = rn_alloc_aligned(numel * 4);
            float *scratch = rn_alloc_aligned(4 * rn_conv2d_scratch_numel(&s, rn_threads_get()));
            rn_conv2d_prepare_weights(prepared, w, &s);
            rn_conv2d_forward_prepared(dst, src, w, prepared, b, &s, scratch, NULL);
            check_same("prepared Winograd", "dst", dst, r.dst, n_dst);
            rn_free_aligned(prepared);
            rn_free_aligned(scratch);
        }
        float *bufs[] = {src, w, b, dst, up};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
            free(bufs[i]);
        conv_run_free(&r);
    }
}

/* --precision bf16 against FP32 im2col: Winograd's forward pass and both
 * gradients, and the implicit GEMM's forward pass, with BF16 inputs and
 * FP32 sums. The error must stay within BF16's rounding (8 bits) and must
 * not be zero, which would mean the FP32 kernels ran. Odd channel counts
 * and depths leave a half-empty last pair. */
TEST(conv2d_bf16_close_to_fp32)
{
    if (!rn_cpu_avx512_bf16() || !rn_conv_direct_enabled() || !rn_winograd_enabled())
        return;
    rn_conv_shape shapes[] = {
        {.mb = 4, .ic = 32, .ih = 14, .iw = 14, .oc = 40, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
         .ph = 1, .pw = 1},
        {.mb = 3, .ic = 13, .ih = 9, .iw = 11, .oc = 21, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
         .ph = 1, .pw = 1},
        /* One image: blocks of one vector of tiles, and a weight-gradient
         * block of 33 tiles, an odd count. */
        {.mb = 1, .ic = 8, .ih = 17, .iw = 17, .oc = 16, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
         .ph = 1, .pw = 1},
        {.mb = 5, .ic = 21, .ih = 7, .iw = 7, .oc = 24, .kh = 1, .kw = 1, .sh = 1, .sw = 1},
        {.mb = 2, .ic = 3, .ih = 15, .iw = 15, .oc = 16, .kh = 3, .kw = 3, .sh = 2, .sw = 2,
         .ph = 1, .pw = 1},
    };
    for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
        rn_conv_shape s = shapes[c];
        rn_conv_shape_infer(&s);
        struct conv_inputs in = conv_inputs(&s, 777u + (uint32_t)c);
        struct conv_run r = conv_run(&s, in.src, in.w, in.b, in.up, PATH_IM2COL);
        rn_precision was = rn_conv_set_precision(RN_PRECISION_BF16);
        struct conv_run d = conv_run(&s, in.src, in.w, in.b, in.up, PATH_WINOGRAD);
        rn_conv_set_precision(was);

        int winograd = rn_winograd_suits(&s);
        const float *got[] = {d.dst, d.d_src, d.d_w};
        const float *want[] = {r.dst, r.d_src, r.d_w};
        size_t counts[] = {in.n_dst, in.n_src, in.n_w};
        const char *names[] = {"dst", "diff_src", "diff_weights"};
        for (int k = 0; k < (winograd ? 3 : 1); k++) {
            double ref = 0.0, err = 0.0; /* sums of squares */
            for (size_t i = 0; i < counts[k]; i++) {
                ref += (double)want[k][i] * want[k][i];
                err += ((double)got[k][i] - want[k][i]) * ((double)got[k][i] - want[k][i]);
            }
            double relative = sqrt(err / ref);
            CHECK_MSG(relative <= 1e-2, "shape %zu %s: BF16 error %.3g of the RMS", c, names[k],
                      relative);
            CHECK_MSG(relative > 1e-6, "shape %zu %s: no BF16 rounding", c, names[k]);
        }
        conv_run_free(&r);
        conv_run_free(&d);
        conv_inputs_free(&in);
    }
}

/* PyTorch's rules that the gradient check cannot see: among equal values
 * the first wins, and a NaN in the window is the maximum. */
TEST(maxpool_ties_and_nan)
{
    rn_pool_shape s = {.mb = 1, .c = 1, .ih = 3, .iw = 4, .kh = 2, .kw = 2, .sh = 2, .sw = 2};
    rn_pool_shape_infer(&s);
    float src[12] = {1, 5, 2, 2,
                     5, 0, 2, NAN,
                     0, 0, 0, 0};
    float dst[2];
    int32_t argmax[2];
    rn_maxpool_forward(dst, argmax, src, &s);
    CHECK(s.oh == 1);
    CHECK(s.ow == 2);
    CHECK(dst[0] == 5.0f);
    CHECK(argmax[0] == 1);
    CHECK(isnan(dst[1]));
    CHECK(argmax[1] == 7);

    /* Without indices: the same values. */
    float values[2];
    rn_maxpool_forward(values, NULL, src, &s);
    CHECK(values[0] == 5.0f);
    CHECK(isnan(values[1]));
}

/* The evaluation path without indices against the indexed one, on a shape
 * with padding and an odd size. */
TEST(maxpool_without_indices_matches)
{
    rn_pool_shape s = {.mb = 2, .c = 3, .ih = 13, .iw = 11, .kh = 3, .kw = 3, .sh = 2,
                       .sw = 2, .ph = 1, .pw = 1};
    rn_pool_shape_infer(&s);
    size_t n_src = (size_t)s.mb * s.c * s.ih * s.iw, n_dst = (size_t)s.mb * s.c * s.oh * s.ow;
    float *src = malloc(n_src * sizeof(float));
    float *with = malloc(n_dst * sizeof(float)), *without = malloc(n_dst * sizeof(float));
    int32_t *argmax = malloc(n_dst * sizeof(int32_t));
    for (size_t i = 0; i < n_src; i++)
        src[i] = (float)((i * 2654435761u) % 7) - 3.0f;
    src[n_src - 20] = NAN; /* a NaN wins its windows on both paths */
    rn_maxpool_forward(with, argmax, src, &s);
    rn_maxpool_forward(without, NULL, src, &s);
    CHECK(memcmp(with, without, n_dst * sizeof(float)) == 0);

    /* Each index is the first position in its window with the maximum
     * value: with 7 distinct values, most windows contain ties. */
    size_t planes = (size_t)s.mb * s.c, out_plane = (size_t)s.oh * s.ow;
    int wrong = 0;
    for (size_t p = 0; p < planes; p++)
        for (int oy = 0; oy < s.oh; oy++)
            for (int ox = 0; ox < s.ow; ox++) {
                const float *x = src + p * s.ih * s.iw;
                int first = -1;
                for (int iy = oy * 2 - 1; iy <= oy * 2 + 1; iy++)
                    for (int ix = ox * 2 - 1; ix <= ox * 2 + 1; ix++)
                        if (iy >= 0 && iy < s.ih && ix >= 0 && ix < s.iw &&
                            (first < 0 || (x[iy * s.iw + ix] > x[first] && !isnan(x[first])) ||
                             (isnan(x[iy * s.iw + ix]) && !isnan(x[first]))))
                            first = iy * s.iw + ix;
                wrong += argmax[p * out_plane + oy * s.ow + ox] != first;
            }
    CHECK_MSG(wrong == 0, "%d indices are not the window's first maximum", wrong);
    free(src), free(with), free(without), free(argmax);
}

/* ------------------------------------------------------------- batchnorm */

struct bn_case {
    rn_bn_shape s;
    int eval;
    double *src, *gamma, *beta, *running_mean, *running_var, *upstream, *dst;
};

static double bn_objective(void *ctx)
{
    struct bn_case *c = ctx;
    if (c->eval)
        ref_bn_eval(c->dst, c->src, c->gamma, c->beta, c->running_mean,
                    c->running_var, &c->s);
    else
        ref_bn_train(c->dst, NULL, NULL, c->src, c->gamma, c->beta, &c->s);
    return dot(c->dst, c->upstream, (size_t)c->s.mb * c->s.c * c->s.h * c->s.w);
}

static void check_bn(rn_bn_shape s, int eval)
{
    struct bn_case c = {.s = s, .eval = eval};
    size_t n = (size_t)s.mb * s.c * s.h * s.w;
    c.src = malloc(n * 8), c.upstream = malloc(n * 8), c.dst = malloc(n * 8);
    c.gamma = malloc(s.c * 8), c.beta = malloc(s.c * 8);
    c.running_mean = malloc(s.c * 8), c.running_var = malloc(s.c * 8);
    gc_fill(c.src, n, -2, 3, 11);
    gc_fill(c.upstream, n, -1, 1, 12);
    gc_fill(c.gamma, s.c, 0.5, 1.5, 13);
    gc_fill(c.beta, s.c, -0.5, 0.5, 14);
    gc_fill(c.running_mean, s.c, -0.5, 0.5, 15);
    gc_fill(c.running_var, s.c, 0.5, 2.0, 16);

    float *src = malloc(n * 4), *up = malloc(n * 4), *dst = malloc(n * 4);
    float *gamma = malloc(s.c * 4), *beta = malloc(s.c * 4);
    float *rm = malloc(s.c * 4), *rv = malloc(s.c * 4);
    float *mean = malloc(s.c * 4), *invstd = malloc(s.c * 4);
    float *d_src = calloc(n, 4), *d_gamma = calloc(s.c, 4), *d_beta = calloc(s.c, 4);
    gc_to_float(src, c.src, n);
    gc_to_float(up, c.upstream, n);
    gc_to_float(gamma, c.gamma, s.c);
    gc_to_float(beta, c.beta, s.c);
    gc_to_float(rm, c.running_mean, s.c);
    gc_to_float(rv, c.running_var, s.c);

    if (eval) {
        rn_bn_forward_eval(dst, src, gamma, beta, rm, rv, &s, RN_ACTIVATION_NONE);
        rn_bn_backward_eval(d_src, d_gamma, d_beta, up, src, gamma, rm, rv, &s);
    } else {
        rn_bn_forward_train(dst, mean, invstd, rm, rv, src, gamma, beta, &s, RN_ACTIVATION_NONE);
        rn_bn_backward_train(d_src, d_gamma, d_beta, up, NULL, src, mean, invstd, gamma, &s,
                             RN_GRAD_ACCUMULATE);
    }
    bn_objective(&c);
    gc_check_forward(eval ? "batchnorm eval" : "batchnorm train", dst, c.dst, n);

    if (!eval) {
        /* Running statistics: momentum 0.1, unbiased variance. */
        double *ref_mean = malloc(s.c * 8), *ref_var = malloc(s.c * 8);
        double count = (double)s.mb * s.h * s.w;
        ref_bn_train(c.dst, ref_mean, ref_var, c.src, c.gamma, c.beta, &s);
        for (int k = 0; k < s.c; k++) {
            CHECK_CLOSE(rm[k], 0.9 * c.running_mean[k] + 0.1 * ref_mean[k], 1e-6, 1e-5);
            CHECK_CLOSE(rv[k], 0.9 * c.running_var[k] + 0.1 * ref_var[k] * count / (count - 1),
                        1e-6, 1e-5);
        }
        free(ref_mean), free(ref_var);
    }

    gc_input inputs[] = {
        {"src", c.src, d_src, n},
        {"gamma", c.gamma, d_gamma, (size_t)s.c},
        {"beta", c.beta, d_beta, (size_t)s.c},
    };
    gc_check(eval ? "batchnorm eval" : "batchnorm train", bn_objective, &c, inputs, 3, 300);

    free(c.src), free(c.upstream), free(c.dst), free(c.gamma), free(c.beta);
    free(c.running_mean), free(c.running_var);
    free(src), free(up), free(dst), free(gamma), free(beta), free(rm), free(rv);
    free(mean), free(invstd), free(d_src), free(d_gamma), free(d_beta);
}

TEST(batchnorm_train)
{
    check_bn((rn_bn_shape){.mb = 4, .c = 3, .h = 5, .w = 4}, 0);
}

TEST(batchnorm_train_one_pixel)
{
    check_bn((rn_bn_shape){.mb = 6, .c = 5, .h = 1, .w = 1}, 0);
}

TEST(batchnorm_eval)
{
    check_bn((rn_bn_shape){.mb = 3, .c = 4, .h = 3, .w = 3}, 1);
}

/* ------------------------------------------- relu, add, pools, shortcut */

/* Layers with one input and no parameters, checked through one harness. */
struct unary_case {
    size_t n_src, n_dst;
    double *src, *upstream, *dst;
    void (*ref)(struct unary_case *);
    int mb, c, h, w, stride, oc;
    rn_pool_shape pool;
};

static double unary_objective(void *ctx)
{
    struct unary_case *u = ctx;
    u->ref(u);
    return dot(u->dst, u->upstream, u->n_dst);
}

static void ref_relu(struct unary_case *u)
{
    for (size_t i = 0; i < u->n_src; i++)
        u->dst[i] = u->src[i] > 0 ? u->src[i] : 0;
}

static void ref_avgpool(struct unary_case *u)
{
    int hw = u->h * u->w;
    for (int p = 0; p < u->mb * u->c; p++) {
        double sum = 0;
        for (int i = 0; i < hw; i++)
            sum += u->src[p * hw + i];
        u->dst[p] = sum / hw;
    }
}

static void ref_shortcut(struct unary_case *u)
{
    int oh = (u->h - 1) / u->stride + 1, ow = (u->w - 1) / u->stride + 1;
    int pad = (u->oc - u->c) / 2;
    for (int n = 0; n < u->mb; n++)
        for (int o = 0; o < u->oc; o++)
            for (int y = 0; y < oh; y++)
                for (int x = 0; x < ow; x++) {
                    int c = o - pad;
                    u->dst[((n * u->oc + o) * oh + y) * ow + x] =
                        c < 0 || c >= u->c ? 0.0
                        : u->src[((n * u->c + c) * u->h + y * u->stride) * u->w + x * u->stride];
                }
}

static void ref_maxpool_case(struct unary_case *u)
{
    ref_maxpool(u->dst, u->src, &u->pool);
}

static struct unary_case unary_alloc(size_t n_src, size_t n_dst, unsigned seed)
{
    struct unary_case u = {.n_src = n_src, .n_dst = n_dst};
    u.src = malloc(n_src * 8), u.upstream = malloc(n_dst * 8), u.dst = malloc(n_dst * 8);
    gc_fill(u.src, n_src, -1, 1, seed);
    gc_fill(u.upstream, n_dst, -1, 1, seed + 1);
    return u;
}

static void unary_free(struct unary_case *u)
{
    free(u->src), free(u->upstream), free(u->dst);
}

TEST(relu_forward_backward)
{
    struct unary_case u = unary_alloc(200, 200, 21);
    u.ref = ref_relu;
    /* Keep inputs away from the kink at 0, where the derivative jumps. */
    for (size_t i = 0; i < u.n_src; i++)
        if (fabs(u.src[i]) < 0.01)
            u.src[i] = 0.5;
    float src[200], dst[200], up[200], d_src[200] = {0};
    gc_to_float(src, u.src, 200);
    gc_to_float(up, u.upstream, 200);
    rn_relu_forward(dst, src, 200);
    rn_relu_backward(d_src, up, dst, 200, RN_GRAD_ACCUMULATE);
    unary_objective(&u);
    gc_check_forward("relu", dst, u.dst, 200);
    gc_input in = {"src", u.src, d_src, 200};
    gc_check("relu", unary_objective, &u, &in, 1, 200);
    unary_free(&u);
}

TEST(add_backward_reaches_both_inputs)
{
    float a[64], b[64], dst[64], up[64], d_a[64] = {0}, d_b[64];
    for (int i = 0; i < 64; i++)
        a[i] = i * 0.5f, b[i] = -i * 0.25f, up[i] = i * 0.1f, d_b[i] = 1.0f;
    rn_add_forward(dst, a, b, 64);
    rn_accumulate(d_a, up, 64);
    rn_accumulate(d_b, up, 64);
    for (int i = 0; i < 64; i++) {
        CHECK_CLOSE(dst[i], a[i] + b[i], 0, 0);
        CHECK_CLOSE(d_a[i], up[i], 0, 0);
        CHECK_CLOSE(d_b[i], 1.0f + up[i], 0, 0);
    }
}

TEST(maxpool_3x3_stride2_pad1)
{
    rn_pool_shape s = {.mb = 2, .c = 3, .ih = 7, .iw = 8, .kh = 3, .kw = 3,
                       .sh = 2, .sw = 2, .ph = 1, .pw = 1};
    rn_pool_shape_infer(&s);
    size_t n_src = (size_t)s.mb * s.c * s.ih * s.iw, n_dst = (size_t)s.mb * s.c * s.oh * s.ow;
    struct unary_case u = unary_alloc(n_src, n_dst, 31);
    u.ref = ref_maxpool_case;
    u.pool = s;
    /* Distinct values spaced far beyond the finite-difference step, so no
     * window has a tie that the perturbation could flip. */
    for (size_t i = 0; i < n_src; i++)
        u.src[i] = (double)((i * 7919) % n_src) / n_src;

    float *src = malloc(n_src * 4), *dst = malloc(n_dst * 4), *up = malloc(n_dst * 4);
    float *d_src = calloc(n_src, 4);
    int32_t *argmax = malloc(n_dst * 4);
    gc_to_float(src, u.src, n_src);
    gc_to_float(up, u.upstream, n_dst);
    rn_maxpool_forward(dst, argmax, src, &s);
    rn_maxpool_backward(d_src, up, argmax, &s);
    unary_objective(&u);
    gc_check_forward("maxpool", dst, u.dst, n_dst);
    gc_input in = {"src", u.src, d_src, n_src};
    gc_check("maxpool", unary_objective, &u, &in, 1, 400);
    free(src), free(dst), free(up), free(d_src), free(argmax);
    unary_free(&u);
}

TEST(avgpool_global)
{
    int mb = 3, c = 4, h = 5, w = 3;
    size_t n_src = (size_t)mb * c * h * w, n_dst = (size_t)mb * c;
    struct unary_case u = unary_alloc(n_src, n_dst, 41);
    u.ref = ref_avgpool, u.mb = mb, u.c = c, u.h = h, u.w = w;
    float *src = malloc(n_src * 4), *dst = malloc(n_dst * 4), *up = malloc(n_dst * 4);
    float *d_src = calloc(n_src, 4);
    gc_to_float(src, u.src, n_src);
    gc_to_float(up, u.upstream, n_dst);
    rn_avgpool_global_forward(dst, src, mb, c, h * w);
    rn_avgpool_global_backward(d_src, up, mb, c, h * w);
    unary_objective(&u);
    gc_check_forward("avgpool", dst, u.dst, n_dst);
    gc_input in = {"src", u.src, d_src, n_src};
    gc_check("avgpool", unary_objective, &u, &in, 1, 400);
    free(src), free(dst), free(up), free(d_src);
    unary_free(&u);
}

static void check_shortcut(int ic, int oc, int h, int w, int stride)
{
    int mb = 2, oh = (h - 1) / stride + 1, ow = (w - 1) / stride + 1;
    size_t n_src = (size_t)mb * ic * h * w, n_dst = (size_t)mb * oc * oh * ow;
    struct unary_case u = unary_alloc(n_src, n_dst, 51);
    u.ref = ref_shortcut, u.mb = mb, u.c = ic, u.h = h, u.w = w;
    u.stride = stride, u.oc = oc;
    float *src = malloc(n_src * 4), *dst = malloc(n_dst * 4), *up = malloc(n_dst * 4);
    float *d_src = calloc(n_src, 4);
    gc_to_float(src, u.src, n_src);
    gc_to_float(up, u.upstream, n_dst);
    rn_shortcut_a_forward(dst, src, mb, ic, h, w, oc, stride);
    rn_shortcut_a_backward(d_src, up, mb, ic, h, w, oc, stride);
    unary_objective(&u);
    gc_check_forward("shortcut A", dst, u.dst, n_dst);
    gc_input in = {"src", u.src, d_src, n_src};
    gc_check("shortcut A", unary_objective, &u, &in, 1, 400);
    free(src), free(dst), free(up), free(d_src);
    unary_free(&u);
}

TEST(shortcut_a_subsample_and_pad)
{
    check_shortcut(4, 8, 6, 6, 2);
    check_shortcut(3, 7, 5, 5, 2); /* odd spatial sizes */
}

TEST(shortcut_a_identity_when_shapes_match)
{
    check_shortcut(5, 5, 4, 3, 1);
}

/* ---------------------------------------------------------------- linear */

struct linear_case {
    int mb, in, out;
    double *src, *weights, *bias, *upstream, *dst;
};

static double linear_objective(void *ctx)
{
    struct linear_case *c = ctx;
    ref_linear(c->dst, c->src, c->weights, c->bias, c->mb, c->in, c->out);
    return dot(c->dst, c->upstream, (size_t)c->mb * c->out);
}

TEST(linear_forward_backward)
{
    struct linear_case c = {.mb = 5, .in = 7, .out = 3};
    size_t n_src = 35, n_w = 21, n_dst = 15;
    c.src = malloc(n_src * 8), c.weights = malloc(n_w * 8), c.bias = malloc(3 * 8);
    c.upstream = malloc(n_dst * 8), c.dst = malloc(n_dst * 8);
    gc_fill(c.src, n_src, -1, 1, 61);
    gc_fill(c.weights, n_w, -1, 1, 62);
    gc_fill(c.bias, 3, -1, 1, 63);
    gc_fill(c.upstream, n_dst, -1, 1, 64);
    float src[35], w[21], b[3], up[15], dst[15], d_src[35] = {0}, d_w[21] = {0}, d_b[3] = {0};
    gc_to_float(src, c.src, n_src);
    gc_to_float(w, c.weights, n_w);
    gc_to_float(b, c.bias, 3);
    gc_to_float(up, c.upstream, n_dst);
    rn_linear_forward(dst, src, w, b, c.mb, c.in, c.out);
    rn_linear_backward(d_src, d_w, d_b, up, src, w, c.mb, c.in, c.out);
    linear_objective(&c);
    gc_check_forward("linear", dst, c.dst, n_dst);
    gc_input inputs[] = {
        {"src", c.src, d_src, n_src}, {"weights", c.weights, d_w, n_w}, {"bias", c.bias, d_b, 3}};
    gc_check("linear", linear_objective, &c, inputs, 3, 100);
    free(c.src), free(c.weights), free(c.bias), free(c.upstream), free(c.dst);
}

/* ------------------------------------------------- softmax cross-entropy */

struct ce_case {
    int mb, classes;
    double smoothing;
    double *logits;
    int32_t *labels;
};

static double ce_objective(void *ctx)
{
    struct ce_case *c = ctx;
    return ref_cross_entropy(c->logits, c->labels, c->mb, c->classes, c->smoothing);
}

static void check_cross_entropy(double smoothing, double scale)
{
    struct ce_case c = {.mb = 6, .classes = 5, .smoothing = smoothing};
    double logits[30];
    int32_t labels[6] = {0, 4, 2, 2, 1, 3};
    float flogits[30], grad[30];
    int correct = -1;
    c.logits = logits, c.labels = labels;
    gc_fill(logits, 30, -scale, scale, 71);
    gc_to_float(flogits, logits, 30);
    double loss = rn_cross_entropy(grad, &correct, flogits, labels, 6, 5, (float)smoothing);
    CHECK_CLOSE(loss, ce_objective(&c), 1e-6, 1e-5);
    int expected_correct = 0;
    for (int n = 0; n < 6; n++) {
        int best = 0;
        for (int k = 1; k < 5; k++)
            if (logits[n * 5 + k] > logits[n * 5 + best])
                best = k;
        expected_correct += best == labels[n];
    }
    CHECK(correct == expected_correct);
    gc_input in = {"logits", logits, grad, 30};
    gc_check("cross-entropy", ce_objective, &c, &in, 1, 30);
}

TEST(cross_entropy_plain)
{
    check_cross_entropy(0.0, 3.0);
}

TEST(cross_entropy_label_smoothing)
{
    check_cross_entropy(0.1, 3.0);
}

TEST(cross_entropy_stable_for_large_logits)
{
    float logits[4] = {1000.0f, -1000.0f, 999.0f, 0.0f};
    int32_t label = 2;
    float grad[4];
    double loss = rn_cross_entropy(grad, NULL, logits, &label, 1, 4, 0.0f);
    CHECK(isfinite(loss));
    CHECK_CLOSE(loss, 1.0 + log1p(exp(-1.0)), 1e-6, 1e-6);
    for (int k = 0; k < 4; k++)
        CHECK(isfinite(grad[k]));
}

/* BN with a fused ReLU against the reference BN followed by ReLU, and the
 * overwrite mode against accumulation into a zeroed buffer. */
struct bn_relu_case {
    rn_bn_shape s;
    double *src, *gamma, *beta, *upstream, *dst;
};

static double bn_relu_objective(void *ctx)
{
    struct bn_relu_case *c = ctx;
    size_t n = (size_t)c->s.mb * c->s.c * c->s.h * c->s.w;
    ref_bn_train(c->dst, NULL, NULL, c->src, c->gamma, c->beta, &c->s);
    for (size_t i = 0; i < n; i++)
        c->dst[i] = c->dst[i] > 0 ? c->dst[i] : 0;
    return dot(c->dst, c->upstream, n);
}

TEST(batchnorm_fused_relu)
{
    struct bn_relu_case c = {.s = {.mb = 4, .c = 3, .h = 5, .w = 7}};
    size_t n = (size_t)4 * 3 * 5 * 7;
    c.src = malloc(n * 8), c.upstream = malloc(n * 8), c.dst = malloc(n * 8);
    c.gamma = malloc(3 * 8), c.beta = malloc(3 * 8);
    gc_fill(c.src, n, -2, 3, 81);
    gc_fill(c.upstream, n, -1, 1, 82);
    gc_fill(c.gamma, 3, 0.5, 1.5, 83);
    gc_fill(c.beta, 3, -0.3, 0.3, 84);

    float *src = malloc(n * 4), *up = malloc(n * 4), *dst = malloc(n * 4);
    float *d_src = malloc(n * 4), *d_acc = calloc(n, 4);
    float gamma[3], beta[3], mean[3], invstd[3], d_gamma[3] = {0}, d_beta[3] = {0};
    float d_gamma2[3] = {0}, d_beta2[3] = {0};
    gc_to_float(src, c.src, n);
    gc_to_float(up, c.upstream, n);
    gc_to_float(gamma, c.gamma, 3);
    gc_to_float(beta, c.beta, 3);
    for (size_t i = 0; i < n; i++)
        d_src[i] = 12345.0f; /* overwritten, never read */

    rn_bn_forward_train(dst, mean, invstd, NULL, NULL, src, gamma, beta, &c.s,
                        RN_ACTIVATION_RELU);
    rn_bn_backward_train(d_src, d_gamma, d_beta, up, dst, src, mean, invstd, gamma, &c.s,
                         RN_GRAD_OVERWRITE);
    rn_bn_backward_train(d_acc, d_gamma2, d_beta2, up, dst, src, mean, invstd, gamma, &c.s,
                         RN_GRAD_ACCUMULATE);
    bn_relu_objective(&c);
    gc_check_forward("batchnorm+relu", dst, c.dst, n);
    CHECK(memcmp(d_src, d_acc, n * 4) == 0);

    /* With these seeds no BN output lies within the finite-difference step
     * of the ReLU kink, so every element can be checked. */
    gc_input inputs[] = {
        {"src", c.src, d_src, n}, {"gamma", c.gamma, d_gamma, 3}, {"beta", c.beta, d_beta, 3}};
    gc_check("batchnorm+relu", bn_relu_objective, &c, inputs, 3, 200);

    free(c.src), free(c.upstream), free(c.dst), free(c.gamma), free(c.beta);
    free(src), free(up), free(dst), free(d_src), free(d_acc);
}

/* Time one convolution layer on each of resnet.c's paths: im2col and GEMM,
 * and the paths of our own (the direct kernel, Winograd, the implicit
 * GEMM), as conv.c would choose them.
 *
 *   make build/conv_paths
 *   ./build/conv_paths BATCH CHANNELS SIZE [REPEATS [KERNEL STRIDE OUT_CHANNELS]]
 *
 * The layer has CHANNELS input channels, SIZE x SIZE planes and padding
 * KERNEL / 2; the defaults are a 3x3 kernel at stride 1 with as many output
 * channels as input channels. Prints, for the forward pass, the data
 * gradient and the weight gradient, the best time of REPEATS runs (default
 * 10) as GFLOP/s, counted as a direct convolution's 2 * multiply-accumulates,
 * so Winograd's figures can exceed the machine's peak. Each row names the
 * path conv.c takes for the forward pass. Behind the implicit GEMM's row, im2col
 * computes the gradients, except the data gradient of a 1x1 convolution. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "kernels/gemm.h"
#include "layers/conv_direct.h"
#include "layers/conv_implicit.h"
#include "layers/conv_winograd.h"
#include "layers/layers.h"

static int parse(const char *text, int min, int *out)
{
    char *end;
    long v = strtol(text, &end, 10);
    if (end == text || *end || v < min || v > 100000)
        return 0;
    *out = (int)v;
    return 1;
}

int main(int argc, char **argv)
{
    int mb, c, size, repeats = 10, kernel = 3, stride = 1, oc = 0;
    if ((argc != 4 && argc != 5 && argc != 8) || !parse(argv[1], 1, &mb) ||
        !parse(argv[2], 1, &c) || !parse(argv[3], 1, &size) ||
        (argc >= 5 && !parse(argv[4], 1, &repeats)) ||
        (argc == 8 && (!parse(argv[5], 1, &kernel) || !parse(argv[6], 1, &stride) ||
                       !parse(argv[7], 1, &oc)))) {
        fprintf(stderr, "usage: conv_paths BATCH CHANNELS SIZE [REPEATS [KERNEL STRIDE "
                        "OUT_CHANNELS]]\n");
        return 2;
    }
    if (!oc)
        oc = c;
    /* The layers index planes with int: keep oh * ow and its multiples far
     * below 2^31. */
    if (size > 8192) {
        fprintf(stderr, "conv_paths: SIZE %d is over the limit of 8192\n", size);
        return 2;
    }
    if (kernel > size + 2 * (kernel / 2)) {
        fprintf(stderr, "conv_paths: a %dx%d kernel does not fit a %dx%d plane\n", kernel,
                kernel, size, size);
        return 2;
    }
    rn_conv_shape s = {.mb = mb, .ic = c, .ih = size, .iw = size, .oc = oc, .kh = kernel,
                       .kw = kernel, .sh = stride, .sw = stride, .ph = kernel / 2,
                       .pw = kernel / 2};
    rn_conv_shape_infer(&s);
    size_t n_src = (size_t)mb * c * size * size, n_dst = (size_t)mb * oc * s.oh * s.ow;
    size_t n_w = (size_t)oc * c * kernel * kernel;
    float *x = rn_alloc_aligned(n_src * sizeof(float));
    float *y = rn_alloc_aligned(n_dst * sizeof(float));
    float *dx = rn_alloc_aligned(n_src * sizeof(float));
    float *w = rn_alloc_aligned(n_w * sizeof(float));
    float *dw = rn_alloc_aligned(n_w * sizeof(float));
    float *scratch = rn_alloc_aligned(rn_conv2d_scratch_numel(&s, omp_get_max_threads()) *
                                      sizeof(float));
    if (!x || !y || !dx || !w || !dw || !scratch) {
        fprintf(stderr, "conv_paths: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < n_src; i++)
        x[i] = (float)(i % 13) * 0.1f - 0.6f;
    for (size_t i = 0; i < n_w; i++)
        w[i] = (float)(i % 7) * 0.01f - 0.03f;

    double flops = 2.0 * mb * c * oc * kernel * kernel * (double)s.oh * s.ow;
    printf("batch %d, %d -> %d channels, %dx%d, %dx%d kernel at stride %d, %d threads; "
           "GFLOP/s of a direct convolution\n",
           mb, c, oc, size, size, kernel, kernel, stride, omp_get_max_threads());
    printf("%-13s %12s %12s %12s\n", "path", "forward", "data grad", "weight grad");
    /* im2col, then the direct kernel and Winograd where they apply; any
     * other shape takes the implicit GEMM once the paths are on. */
    const char *previous = "";
    for (int path = 0; path < 3; path++) {
        rn_conv_direct_set_enabled(path > 0);
        rn_winograd_set_enabled(path == 2);
        const char *name = "im2col";
        if (path > 0 && rn_conv_direct_applies(&s))
            name = path == 1 ? "direct" : "winograd";
        else if (path > 0 && rn_conv_implicit_applies(&s))
            name = "implicit GEMM";
        else if (path > 0)
            continue;
        if (strcmp(name, previous) == 0)
            continue; /* Winograd does not apply: the same path again */
        previous = name;
        double best[3] = {1e30, 1e30, 1e30};
        for (int r = 0; r < repeats; r++) {
            double t0 = omp_get_wtime();
            rn_conv2d_forward(y, x, w, NULL, &s, scratch);
            double t1 = omp_get_wtime();
            rn_conv2d_backward(dx, NULL, NULL, y, x, w, &s, scratch, RN_GRAD_OVERWRITE);
            double t2 = omp_get_wtime();
            rn_conv2d_backward(NULL, dw, NULL, y, x, w, &s, scratch, RN_GRAD_OVERWRITE);
            double t3 = omp_get_wtime();
            double t[3] = {t1 - t0, t2 - t1, t3 - t2};
            for (int k = 0; k < 3; k++)
                best[k] = t[k] < best[k] ? t[k] : best[k];
        }
        printf("%-13s %12.1f %12.1f %12.1f\n", name, 1e-9 * flops / best[0],
               1e-9 * flops / best[1], 1e-9 * flops / best[2]);
    }
    return 0;
}

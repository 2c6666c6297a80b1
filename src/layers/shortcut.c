/* Option-A identity shortcut: strided subsampling plus zero channels. */
#include <string.h>

#include "core/status.h"
#include "layers/layers.h"

void rn_shortcut_a_forward(float *dst, const float *src, int mb, int ic,
                           int ih, int iw, int oc, int stride)
{
    int oh = (ih - 1) / stride + 1, ow = (iw - 1) / stride + 1;
    int pad = (oc - ic) / 2;
    size_t out_plane = (size_t)oh * ow;

    RN_ASSERT(oc >= ic && (oc - ic) % 2 == 0);
#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < mb; n++) {
        for (int c = 0; c < oc; c++) {
            float *y = dst + ((size_t)n * oc + c) * out_plane;
            int source = c - pad;
            if (source < 0 || source >= ic) {
                memset(y, 0, sizeof(float) * out_plane);
                continue;
            }
            const float *x = src + ((size_t)n * ic + source) * ih * iw;
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++)
                    y[oy * ow + ox] = x[(size_t)oy * stride * iw + ox * stride];
        }
    }
}

void rn_shortcut_a_backward(float *diff_src, const float *diff_dst, int mb,
                            int ic, int ih, int iw, int oc, int stride)
{
    int oh = (ih - 1) / stride + 1, ow = (iw - 1) / stride + 1;
    int pad = (oc - ic) / 2;
    size_t out_plane = (size_t)oh * ow;

#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < mb; n++) {
        for (int c = 0; c < ic; c++) {
            const float *dy = diff_dst + ((size_t)n * oc + c + pad) * out_plane;
            float *dx = diff_src + ((size_t)n * ic + c) * ih * iw;
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++)
                    dx[(size_t)oy * stride * iw + ox * stride] += dy[oy * ow + ox];
        }
    }
}

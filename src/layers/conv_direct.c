/* Direct convolution for stride 1 and "same" padding (kh = 2 ph + 1,
 * kw = 2 pw + 1), the 3x3 convolutions that hold most of a ResNet's work,
 * with AVX-512 kernels. conv.c calls it where rn_conv_direct_applies().
 *
 * Each input plane is copied once into a zero-padded plane of hp x wp
 * floats. Output position (y, x) is then computed at index q = y * wp + x,
 * and kernel tap (c, ki, kj) reads the padded input at q + c * hp * wp +
 * ki * wp + kj. Every tap is a fixed offset, so a run of consecutive q is a
 * contiguous load and no im2col copy is needed. Positions with x >= ow fall
 * on the padding columns: they are computed and dropped.
 *
 * Backward data is the same kernel run on the output gradient, padded the
 * same way, with the weights transposed and rotated by 180 degrees: with
 * "same" padding the padded gradient has the input's geometry.
 *
 * Backward weights vectorizes over output channels instead. The output
 * gradient is transposed to (positions, channels), and each position adds
 * x_pad[tap] * dy[position][16 channels] to a vector accumulator per tap,
 * so the sum over positions needs no horizontal reduction.
 *
 * Register blocks: forward 8 channels x 48 positions (24 accumulators);
 * weights 9 taps x 32 channels (18 accumulators). */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu.h"
#include "core/status.h"
#include "layers/avx512.h"
#include "layers/conv_direct.h"
#include "layers/conv_winograd.h"

enum {
    FWD_OC = 8,  /* output channels per forward block */
    FWD_Q = 48,  /* positions per forward block: 3 vectors of 16 */
};

/* Direct path setting: 0 before RESNET_CONV is read, 1 on, 2 off. */
static int setting;

static int enabled(void)
{
    if (!setting) {
        const char *env = getenv("RESNET_CONV");
        setting = env && strcmp(env, "im2col") == 0 ? 2 : 1;
        if (env && strcmp(env, "im2col") != 0 && strcmp(env, "direct") != 0 &&
            strcmp(env, "winograd") != 0 && env[0])
            fprintf(stderr, "resnet: ignoring RESNET_CONV=%s (expected im2col, direct or "
                            "winograd)\n", env);
    }
    return setting == 1;
}

int rn_conv_direct_enabled(void)
{
    return enabled();
}

int rn_conv_direct_set_enabled(int on)
{
    int was = enabled();
    setting = on ? 1 : 2;
    return was;
}

/* Whether the CPU and the shape suit the direct path (or Winograd within
 * it), whatever the settings: scratch sizes use this, so that turning a
 * path on later never finds the scratch too small. With winograd_off,
 * whether they suit the direct kernel alone. With prepared, Winograd's
 * weights are transformed once rather than per call, so it takes more
 * shapes. */
static int suits_path(const rn_conv_shape *s, int winograd_off, int prepared)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (!rn_cpu_avx512())
        return 0;
    if (s->groups > 1 || s->sh != 1 || s->sw != 1 || s->kh != 2 * s->ph + 1 ||
        s->kw != 2 * s->pw + 1 || s->kh * s->kw == 1)
        return 0;
    /* One input channel of a 3x3 kernel (a 1-channel stem) leaves 9 taps:
     * conv_paths at batch 128, 28x28, 16 output channels gave im2col 126
     * GFLOP/s forward, Winograd 75 and the direct kernel 55. */
    if (s->ic * s->kh * s->kw < 16)
        return 0;
    int wp = s->iw + 2 * s->pw;
    /* Tap offsets are ints: refuse padded images of 2^30 floats or more. */
    size_t planes = (size_t)(s->ic > s->oc ? s->ic : s->oc) * (s->ih + 2 * s->ph) * wp;
    if (planes >= ((size_t)1 << 30))
        return 0;
    if (!winograd_off && (prepared ? rn_winograd_suits_prepared(s) : rn_winograd_suits(s)))
        return 1;
    /* Small planes waste most of a block on padding columns and the block
     * tail: at 7x7 half of it, at 3x3 four fifths. Measured at 3x3 with
     * 64 to 512 channels, im2col is faster below about 60% useful
     * positions, and the direct path above. */
    int blocks = (s->oh * wp + FWD_Q - 1) / FWD_Q;
    return 10 * s->oh * s->ow >= 6 * blocks * FWD_Q;
#else
    (void)s;
    return 0;
#endif
}

static int suits(const rn_conv_shape *s)
{
    return suits_path(s, 0, 1);
}

int rn_conv_direct_applies(const rn_conv_shape *s)
{
    return enabled() && suits_path(s, !rn_winograd_enabled(), 0);
}

int rn_conv_direct_applies_prepared(const rn_conv_shape *s)
{
    return enabled() && suits_path(s, !rn_winograd_enabled(), 1);
}

#if defined(__x86_64__) && defined(__GNUC__)

/* Geometry shared by the forward and backward passes. */
typedef struct geometry {
    int hp, wp;      /* padded plane */
    size_t plane;    /* floats per padded plane, hp * wp */
    int q_count;     /* positions computed per plane, oh * wp */
    int q_blocks;    /* forward blocks of FWD_Q positions */
    size_t slack;    /* zeros after the last plane, read by the last block */
} geometry;

static size_t round16(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

static geometry geometry_of(const rn_conv_shape *s)
{
    geometry g;
    g.hp = s->ih + 2 * s->ph;
    g.wp = s->iw + 2 * s->pw;
    g.plane = (size_t)g.hp * g.wp;
    g.q_count = s->oh * g.wp;
    g.q_blocks = (g.q_count + FWD_Q - 1) / FWD_Q;
    /* The last block reads up to FWD_Q - 1 positions past q_count, and the
     * last tap adds kw - 1; oh + kh - 1 = hp covers the rest. */
    g.slack = (FWD_Q + s->kw + 15) & ~(size_t)15;
    return g;
}

/* Floats of one padded image of c channels. */
static size_t padded_numel(const geometry *g, int c)
{
    return round16((size_t)c * g->plane + g->slack);
}

static int blocks_of(int n, int block)
{
    return (n + block - 1) / block;
}

/* Packed weights for the forward kernel and offset tables: sized for either
 * direction. */
static size_t packed_numel(const rn_conv_shape *s)
{
    size_t taps = (size_t)s->kh * s->kw;
    size_t fwd = (size_t)blocks_of(s->oc, FWD_OC) * FWD_OC * s->ic * taps;
    size_t bwd = (size_t)blocks_of(s->ic, FWD_OC) * FWD_OC * s->oc * taps;
    size_t k_max = (size_t)(s->ic > s->oc ? s->ic : s->oc) * taps;
    size_t weights = fwd > bwd ? fwd : bwd;
    if (rn_winograd_suits(s)) {
        int f4 = rn_winograd4_suits(s);
        size_t wf = f4 ? rn_winograd4_weights_numel(s->oc, s->ic)
                       : rn_winograd_weights_numel(s->oc, s->ic);
        size_t wb = f4 ? rn_winograd4_weights_numel(s->ic, s->oc)
                       : rn_winograd_weights_numel(s->ic, s->oc);
        if (wf > weights)
            weights = wf;
        if (wb > weights)
            weights = wb;
    }
    return round16(weights) + round16(k_max);
}

/* The tap offsets live after the packed weights. */
static int *offsets_of(float *scratch, const rn_conv_shape *s)
{
    size_t k_max = (size_t)(s->ic > s->oc ? s->ic : s->oc) * s->kh * s->kw;
    return (int *)(scratch + packed_numel(s) - round16(k_max));
}

/* Copy planes (c, h, w) into zero-padded planes (c, hp, wp). The caller
 * zeroes the slack after the last plane (zero_slack). */
__attribute__((target("avx512f"))) static void pad_planes(float *dst, const float *src, int c,
                                                           int h, int w, int ph, int pw,
                                                           const geometry *g)
{
    size_t border = (size_t)g->wp * ph;
    for (int ch = 0; ch < c; ch++) {
        float *plane = dst + ch * g->plane;
        const float *in = src + (size_t)ch * h * w;
        /* The top border and the first row's left padding. */
        rn_copy_or_zero(plane, NULL, border + pw);
        for (int y = 0; y < h; y++) {
            float *row = plane + (size_t)(y + ph) * g->wp + pw;
            rn_copy_or_zero(row, in + (size_t)y * w, w);
            /* This row's right padding and the next row's left padding. */
            rn_copy_or_zero(row + w, NULL, 2 * pw);
        }
        rn_copy_or_zero(plane + g->plane - border, NULL, border);
    }
}

static void zero_slack(float *padded, int c, const geometry *g)
{
    memset(padded + c * g->plane, 0, sizeof(float) * g->slack);
}

/* Forward block: tile[i][j] = sum over k of w[k][i] * x[off[k] + j],
 * for 8 channels i and 48 positions j. */
__attribute__((target("avx512f"))) static void
forward_block(float *tile, const float *w, const float *x, const int *off, int taps)
{
    __m512 acc[FWD_OC][3];
    for (int i = 0; i < FWD_OC; i++)
        acc[i][0] = acc[i][1] = acc[i][2] = _mm512_setzero_ps();
    for (int k = 0; k < taps; k++) {
        const float *xk = x + off[k];
        __m512 a = _mm512_loadu_ps(xk);
        __m512 b = _mm512_loadu_ps(xk + 16);
        __m512 c = _mm512_loadu_ps(xk + 32);
        const float *wk = w + (size_t)k * FWD_OC;
        for (int i = 0; i < FWD_OC; i++) {
            __m512 wi = _mm512_set1_ps(wk[i]);
            acc[i][0] = _mm512_fmadd_ps(wi, a, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(wi, b, acc[i][1]);
            acc[i][2] = _mm512_fmadd_ps(wi, c, acc[i][2]);
        }
    }
    for (int i = 0; i < FWD_OC; i++) {
        _mm512_storeu_ps(tile + i * FWD_Q, acc[i][0]);
        _mm512_storeu_ps(tile + i * FWD_Q + 16, acc[i][1]);
        _mm512_storeu_ps(tile + i * FWD_Q + 32, acc[i][2]);
    }
}

/* Write the positions of a tile that are inside the output: channels
 * [o0, o0 + rows) of dst (channels, oh, ow), plus bias, replacing dst or
 * adding to it. */
__attribute__((target("avx512f"))) static void store_tile(float *dst, const float *tile, int o0, int rows, int q0,
                       const geometry *g, int oh, int ow, const float *bias,
                       int accumulate)
{
    int q_end = q0 + FWD_Q < g->q_count ? q0 + FWD_Q : g->q_count;
    for (int i = 0; i < rows; i++) {
        float *plane = dst + (size_t)(o0 + i) * oh * ow;
        const float *t = tile + i * FWD_Q - q0;
        float b = bias ? bias[o0 + i] : 0.0f;
        int q = q0;
        while (q < q_end) {
            int y = q / g->wp, x = q - y * g->wp;
            int run_end = q + (g->wp - x); /* end of this padded row */
            if (run_end > q_end)
                run_end = q_end;
            int valid_end = q + (ow - x); /* first padding column */
            if (valid_end > run_end)
                valid_end = run_end;
            float *out = plane + (size_t)y * ow + x - q;
            if (accumulate) {
                for (int p = q; p < valid_end; p++)
                    out[p] += t[p] + b;
            } else {
                for (int p = q; p < valid_end; p++)
                    out[p] = t[p] + b;
            }
            q = run_end;
        }
    }
}

/* Pack weights (oc, ic, kh, kw) for forward_block: blocks of FWD_OC output
 * channels, tap-major, zero rows past oc. With flip, pack the weights of the
 * backward-data convolution instead: (ic, oc, kh, kw) transposed and
 * rotated by 180 degrees. Also fill the tap offsets for channels of `cin`
 * planes. */
static void pack_weights(float *packed, int *off, const float *weights,
                         const rn_conv_shape *s, const geometry *g, int flip)
{
    int cout = flip ? s->ic : s->oc, cin = flip ? s->oc : s->ic;
    int taps = cin * s->kh * s->kw;
    int blocks = blocks_of(cout, FWD_OC);
    for (int b = 0; b < blocks; b++) {
        for (int c = 0; c < cin; c++)
            for (int ki = 0; ki < s->kh; ki++)
                for (int kj = 0; kj < s->kw; kj++) {
                    int k = (c * s->kh + ki) * s->kw + kj;
                    float *dst = packed + ((size_t)b * taps + k) * FWD_OC;
                    for (int i = 0; i < FWD_OC; i++) {
                        int o = b * FWD_OC + i;
                        float v = 0.0f;
                        if (o < cout) {
                            if (flip) /* weights[c][o][kh-1-ki][kw-1-kj] */
                                v = weights[(((size_t)c * s->ic + o) * s->kh +
                                             (s->kh - 1 - ki)) * s->kw + (s->kw - 1 - kj)];
                            else
                                v = weights[(size_t)o * taps + k];
                        }
                        dst[i] = v;
                    }
                }
    }
    for (int c = 0; c < cin; c++)
        for (int ki = 0; ki < s->kh; ki++)
            for (int kj = 0; kj < s->kw; kj++)
                off[(c * s->kh + ki) * s->kw + kj] = (int)(c * g->plane) + ki * g->wp + kj;
}

/* What a forward pass runs: weights packed for forward_block with their
 * tap offsets, or transformed for Winograd (wino set). */
typedef struct pass {
    const float *weights;
    const int *off;
    int cin, cout, wino;
    int wino4;   /* Winograd F(4x4, 3x3) rather than F(2x2, 3x3) */
    int vectors; /* Winograd's vectors of tiles per block */
    int parts;   /* Winograd's items per block, each a range of output channels */
    int bf16;    /* Winograd with BF16 products (--precision bf16) */
} pass;

static rn_wino_planes planes_of(const rn_conv_shape *s, int vectors)
{
    rn_wino_planes p = {(size_t)s->oh * s->ow, s->oh, s->ow, vectors};
    return p;
}

/* Work items of one image: Winograd tile blocks times output channel
 * parts, or direct blocks of FWD_OC channels x FWD_Q positions. */
static int items_of(const pass *ps, const rn_conv_shape *s, const geometry *g)
{
    if (ps->wino) {
        rn_wino_planes p = planes_of(s, ps->vectors);
        return rn_winograd_blocks(&p) * ps->parts;
    }
    return g->q_blocks * blocks_of(ps->cout, FWD_OC);
}

/* One work item of an image's output dst (cout, oh, ow); work is the
 * thread's Winograd scratch. */
static void forward_item(float *dst, const float *padded, const pass *ps,
                         const rn_conv_shape *s, const geometry *g, const float *bias,
                         int accumulate, int item, float *work)
{
    if (ps->wino) {
        rn_wino_planes p = planes_of(s, ps->vectors);
        int part = item % ps->parts, channel_blocks = blocks_of(ps->cout, RN_WINO_OC);
        int o0 = channel_blocks * part / ps->parts * RN_WINO_OC;
        int o1 = channel_blocks * (part + 1) / ps->parts * RN_WINO_OC;
        rn_winograd_block(dst, padded, ps->weights, ps->cin, ps->cout, &p, bias, accumulate,
                          item / ps->parts, o0, o1 < ps->cout ? o1 : ps->cout, ps->bf16, work);
        return;
    }
    int blocks = blocks_of(ps->cout, FWD_OC);
    int qb = item / blocks, b = item % blocks;
    int taps = ps->cin * s->kh * s->kw;
    int q0 = qb * FWD_Q;
    int rows = ps->cout - b * FWD_OC < FWD_OC ? ps->cout - b * FWD_OC : FWD_OC;
    float tile[FWD_OC * FWD_Q] __attribute__((aligned(64)));
    forward_block(tile, ps->weights + (size_t)b * taps * FWD_OC, padded + q0, ps->off, taps);
    store_tile(dst, tile, b * FWD_OC, rows, q0, g, s->oh, s->ow, bias, accumulate);
}

static void forward_image(float *dst, const float *padded, const pass *ps,
                          const rn_conv_shape *s, const geometry *g, const float *bias,
                          int accumulate, float *work)
{
    int items = items_of(ps, s, g);
    for (int item = 0; item < items; item++)
        forward_item(dst, padded, ps, s, g, bias, accumulate, item, work);
}

/* Pack or transform the weights of a forward pass (flip: backward data),
 * or take the forward pass's Winograd weights from `prepared` (may be
 * NULL). Weights transformed here are rounded to BF16 under --precision
 * bf16; prepared ones stay FP32. */
static pass prepare(float *scratch, const float *weights, const float *prepared,
                    const rn_conv_shape *s, const geometry *g, int flip)
{
    int wino = rn_winograd_enabled() &&
               (prepared ? rn_winograd_suits_prepared(s) : rn_winograd_suits(s));
    /* F(4x4)'s transforms magnify BF16's rounding: 2.4% of the RMS against
     * 0.3% for F(2x2) on 14x14 planes. Prepared weights are FP32. */
    int bf16 = rn_conv_precision() == RN_PRECISION_BF16;
    pass ps = {scratch, offsets_of(scratch, s), flip ? s->oc : s->ic, flip ? s->ic : s->oc,
               wino, wino && rn_winograd4_suits(s) && (prepared || !bf16), 3, 1, 0};
    if (ps.wino && prepared) {
        ps.weights = prepared; /* F(4x4) weights where it suits (conv.c) */
    } else if (ps.wino) {
        if (ps.wino4)
            rn_winograd4_transform_weights(scratch, weights, ps.cout, ps.cin, flip);
        else
            rn_winograd_transform_weights(scratch, weights, ps.cout, ps.cin, flip);
        ps.bf16 = bf16;
        if (ps.bf16)
            rn_winograd_weights_to_bf16(scratch, ps.cout, ps.cin);
    }
    else
        pack_weights(scratch, offsets_of(scratch, s), weights, s, g, flip);
    return ps;
}

/* Per-thread scratch of the forward pass: a padded image, then Winograd's
 * work area. */
static size_t forward_work_numel(const rn_conv_shape *s)
{
    if (rn_winograd4_suits(s))
        return rn_winograd4_block_numel(s->ic);
    return rn_winograd_suits_prepared(s) ? rn_winograd_block_numel(s->ic) : 0;
}

/* Winograd F(4x4) over the batch, dst from src. The threads split the
 * blocks of tile rows, thread t working at work + t * work_stride. */
static void wino4_batch(float *dst, size_t dst_image, const float *src, size_t src_image,
                         const pass *ps, const rn_conv_shape *s, const float *bias,
                         int accumulate, float *work, size_t work_stride,
                         const rn_conv_post *post)
{
    rn_wino_planes p = planes_of(s, 3);
    long rows = (long)s->mb * ((s->oh + 3) / 4);
    int per_block = rn_winograd4_block_rows(&p, s->mb, omp_get_max_threads());
    long blocks = (rows + per_block - 1) / per_block;
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (long b = 0; b < blocks; b++) {
            long r0 = b * per_block, r1 = r0 + per_block < rows ? r0 + per_block : rows;
            rn_winograd4_block(dst, dst_image, src, src_image, r0, r1, ps->weights, ps->cin,
                               ps->cout, &p, bias, accumulate,
                               work + work_stride * omp_get_thread_num());
        }
        /* An image's rows may come from two blocks: finish after all. */
        if (post) {
#pragma omp for schedule(static)
            for (int n = 0; n < s->mb; n++)
                rn_conv_finish(dst, NULL, post, s, n, 0, s->oc);
        }
    }
}

void rn_conv_direct_forward(float *dst, const float *src, const float *weights,
                            const float *prepared, const float *bias,
                            const rn_conv_shape *s, float *scratch, const rn_conv_post *post)
{
    geometry g = geometry_of(s);
    float *images = scratch + packed_numel(s);
    size_t per_image = padded_numel(&g, s->ic);
    size_t per_thread = per_image + forward_work_numel(s);
    size_t src_stride = (size_t)s->ic * s->ih * s->iw;
    size_t dst_stride = (size_t)s->oc * s->oh * s->ow;

    pass ps = prepare(scratch, weights, prepared, s, &g, 0);
    int threads = omp_get_max_threads();
    if (ps.wino4) {
        wino4_batch(dst, dst_stride, src, src_stride, &ps, s, bias, 0, images + per_image,
                     per_thread, post);
        return;
    }
    if (s->mb >= threads) {
        /* A thread per image. */
#pragma omp parallel
        {
            float *padded = images + per_thread * omp_get_thread_num();
            zero_slack(padded, s->ic, &g);
#pragma omp for schedule(static)
            for (int n = 0; n < s->mb; n++) {
                /* Winograd reads the image as it is. */
                const float *x = src + n * src_stride;
                if (!ps.wino) {
                    pad_planes(padded, x, s->ic, s->ih, s->iw, s->ph, s->pw, &g);
                    x = padded;
                }
                forward_image(dst + n * dst_stride, x, &ps, s, &g, bias, 0, padded + per_image);
                if (post)
                    rn_conv_finish(dst, NULL, post, s, n, 0, s->oc);
            }
        }
        return;
    }
    /* Fewer images than threads, as in inference on one image: the threads
     * share each image's items, the image padded in thread 0's area. A few
     * Winograd blocks of 3 vectors split unevenly (5 blocks of a 28x28
     * plane gave 2 threads 126 and 70 tiles), so blocks of one vector. */
    if (ps.wino && items_of(&ps, s, &g) < 8 * threads)
        ps.vectors = 1;
    /* With fewer blocks than threads (a 7x7 plane is one block of 16
     * tiles), split the output channels into parts of at least 3 blocks of
     * RN_WINO_OC, the product's group. Each part transforms the input again. */
    int channel_blocks = blocks_of(ps.cout, RN_WINO_OC);
    if (ps.wino && items_of(&ps, s, &g) < threads) {
        int blocks = items_of(&ps, s, &g);
        ps.parts = (threads + blocks - 1) / blocks;
        if (ps.parts > channel_blocks / 3)
            ps.parts = channel_blocks / 3 > 1 ? channel_blocks / 3 : 1;
    }
    int items = items_of(&ps, s, &g);
    zero_slack(images, s->ic, &g);
    for (int n = 0; n < s->mb; n++) {
        const float *x = ps.wino ? src + n * src_stride : images;
#pragma omp parallel
        {
            float *work = images + per_thread * omp_get_thread_num() + per_image;
            if (!ps.wino) {
#pragma omp for schedule(static)
                for (int c = 0; c < s->ic; c++)
                    pad_planes(images + c * g.plane,
                               src + n * src_stride + (size_t)c * s->ih * s->iw, 1, s->ih, s->iw,
                               s->ph, s->pw, &g);
            }
#pragma omp for schedule(static)
            for (int item = 0; item < items; item++)
                forward_item(dst + n * dst_stride, x, &ps, s, &g, bias, 0, item, work);
            if (post) {
#pragma omp for schedule(static)
                for (int o = 0; o < s->oc; o++)
                    rn_conv_finish(dst, NULL, post, s, n, o, o + 1);
            }
        }
    }
}

/* Weight gradient, transposed: dwt[k][o] += sum over positions p of
 * x[tap k at p] * dyt[p][o], where dyt is the output gradient transposed to
 * (oh * ow, ocp) so that a vector contains 16 output channels. For a 3x3 kernel
 * a block is the 9 taps of one input channel and ov vectors of output
 * channels: 9 * ov accumulators, each position costing ov vector loads and
 * 9 broadcasts. x points at the channel's padded plane. */
static inline __attribute__((target("avx512f"), always_inline)) void
weight_block_3x3(float *dwt, int ocp, const float *x, int wp, const float *dyt,
                 int oh, int ow, const int ov, const int stride)
{
    __m512 acc[9][2];
    for (int t = 0; t < 9; t++)
        acc[t][0] = acc[t][1] = _mm512_setzero_ps();
    for (int y = 0; y < oh; y++) {
        const float *r0 = x + (size_t)y * stride * wp, *r1 = r0 + wp, *r2 = r1 + wp;
        const float *d = dyt + (size_t)y * ow * ocp;
        for (int xx = 0; xx < ow; xx++, d += ocp) {
            __m512 g0 = _mm512_loadu_ps(d);
            __m512 g1 = ov > 1 ? _mm512_loadu_ps(d + 16) : g0;
            const float *rows[3] = {r0 + stride * xx, r1 + stride * xx, r2 + stride * xx};
            for (int ki = 0; ki < 3; ki++)
                for (int kj = 0; kj < 3; kj++) {
                    __m512 v = _mm512_set1_ps(rows[ki][kj]);
                    acc[ki * 3 + kj][0] = _mm512_fmadd_ps(v, g0, acc[ki * 3 + kj][0]);
                    if (ov > 1)
                        acc[ki * 3 + kj][1] = _mm512_fmadd_ps(v, g1, acc[ki * 3 + kj][1]);
                }
        }
    }
    for (int t = 0; t < 9; t++) {
        float *row = dwt + (size_t)t * ocp;
        _mm512_storeu_ps(row, _mm512_add_ps(_mm512_loadu_ps(row), acc[t][0]));
        if (ov > 1)
            _mm512_storeu_ps(row + 16, _mm512_add_ps(_mm512_loadu_ps(row + 16), acc[t][1]));
    }
}

__attribute__((target("avx512f"))) static void
weight_3x3_one(float *dwt, int ocp, const float *x, int wp, const float *dyt, int oh, int ow)
{
    weight_block_3x3(dwt, ocp, x, wp, dyt, oh, ow, 1, 1);
}

__attribute__((target("avx512f"))) static void
weight_3x3_two(float *dwt, int ocp, const float *x, int wp, const float *dyt, int oh, int ow)
{
    weight_block_3x3(dwt, ocp, x, wp, dyt, oh, ow, 2, 1);
}

__attribute__((target("avx512f"))) static void
weight_3x3_one_s2(float *dwt, int ocp, const float *x, int wp, const float *dyt, int oh,
                  int ow)
{
    weight_block_3x3(dwt, ocp, x, wp, dyt, oh, ow, 1, 2);
}

__attribute__((target("avx512f"))) static void
weight_3x3_two_s2(float *dwt, int ocp, const float *x, int wp, const float *dyt, int oh,
                  int ow)
{
    weight_block_3x3(dwt, ocp, x, wp, dyt, oh, ow, 2, 2);
}

/* Any other kernel size: one tap at a time, 16 output channels. */
__attribute__((target("avx512f"))) static void
weight_tap(float *dwt, const float *x, int wp, const float *dyt, int ocp, int oh, int ow)
{
    __m512 acc = _mm512_setzero_ps();
    for (int y = 0; y < oh; y++) {
        const float *r = x + (size_t)y * wp;
        const float *d = dyt + (size_t)y * ow * ocp;
        for (int xx = 0; xx < ow; xx++, d += ocp)
            acc = _mm512_fmadd_ps(_mm512_set1_ps(r[xx]), _mm512_loadu_ps(d), acc);
    }
    _mm512_storeu_ps(dwt, _mm512_add_ps(_mm512_loadu_ps(dwt), acc));
}

/* Transpose 16 x 16 floats held in r, one row per register. */
static inline __attribute__((target("avx512f"), always_inline)) void
transpose16(__m512 r[16])
{
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) { /* pairs of rows: 2x2 blocks of floats */
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) /* 4x4 blocks */
        for (int k = 0; k < 2; k++) {
            __m512d a = _mm512_castps_pd(t[i + k]), b = _mm512_castps_pd(t[i + 2 + k]);
            r[i + 2 * k] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
            r[i + 2 * k + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
        }
    for (int i = 0; i < 16; i += 8) /* 8x8 blocks: 128-bit lanes */
        for (int k = 0; k < 4; k++) {
            t[i + k] = _mm512_shuffle_f32x4(r[i + k], r[i + 4 + k], 0x88);
            t[i + 4 + k] = _mm512_shuffle_f32x4(r[i + k], r[i + 4 + k], 0xdd);
        }
    for (int k = 0; k < 8; k++) { /* 16x16 */
        r[k] = _mm512_shuffle_f32x4(t[k], t[8 + k], 0x88);
        r[8 + k] = _mm512_shuffle_f32x4(t[k], t[8 + k], 0xdd);
    }
}

/* dyt (positions, ocp) from dy (oc, positions), zero in columns past oc:
 * blocks of 16 channels x 16 positions transposed in registers. */
__attribute__((target("avx512f"))) static void transpose_gradient(float *dyt, const float *dy, int oc, int ocp, int positions)
{
    for (int o = 0; o < ocp; o += 16)
        for (int p0 = 0; p0 < positions; p0 += 16) {
            int n = positions - p0 < 16 ? positions - p0 : 16;
            __mmask16 mask = rn_first_lanes(n);
            __m512 r[16];
            for (int i = 0; i < 16; i++)
                r[i] = o + i < oc ? _mm512_maskz_loadu_ps(mask, dy + (size_t)(o + i) * positions + p0)
                                  : _mm512_setzero_ps();
            transpose16(r);
            for (int i = 0; i < n; i++)
                _mm512_storeu_ps(dyt + (size_t)(p0 + i) * ocp + o, r[i]);
        }
}

/* Per-thread scratch of the backward pass: x_pad and dyt hold `group`
 * images each, which Winograd's weight gradient sums at once. */
typedef struct backward_scratch {
    size_t x_pad, dy_pad, dyt, dwt, work; /* floats of each */
    size_t x_pad_one, dyt_one;            /* of one image */
    int group;
} backward_scratch;

static backward_scratch backward_sizes(const rn_conv_shape *s, const geometry *g)
{
    int ocp = (s->oc + 15) & ~15;
    rn_wino_planes planes = planes_of(s, 3);
    backward_scratch b;
    b.group = rn_winograd_suits(s) ? rn_winograd_grad_group(&planes) : 1;
    b.x_pad_one = padded_numel(g, s->ic);
    b.dyt_one = round16((size_t)s->oh * s->ow * ocp);
    b.x_pad = b.group * b.x_pad_one;
    b.dy_pad = padded_numel(g, s->oc);
    b.dyt = b.group * b.dyt_one;
    b.dwt = round16((size_t)s->ic * s->kh * s->kw * ocp);
    b.work = 0;
    if (rn_winograd_suits(s)) {
        /* Winograd's gradient accumulators take dwt's place; its work
         * area serves both directions. */
        size_t acc = round16(rn_winograd_grad_numel(s->ic, s->oc));
        size_t data = rn_winograd4_suits(s) ? rn_winograd4_block_numel(s->oc)
                                             : rn_winograd_block_numel(s->oc);
        size_t grad = rn_winograd_grad_block_numel(s->ic, s->oc, &planes);
        if (acc > b.dwt)
            b.dwt = acc;
        b.work = round16(data > grad ? data : grad);
    }
    return b;
}

size_t rn_conv_direct_scratch_numel(const rn_conv_shape *s, int threads)
{
    if (!suits(s))
        return 0;
    geometry g = geometry_of(s);
    backward_scratch b = backward_sizes(s, &g);
    size_t fwd = padded_numel(&g, s->ic) + forward_work_numel(s);
    size_t bwd = b.x_pad + b.dy_pad + b.dyt + b.dwt + b.work;
    return packed_numel(s) + (size_t)threads * (fwd > bwd ? fwd : bwd);
}

/* Add the threads' transposed weight gradients, (k, ocp) each and `stride`
 * floats apart from acc, to diff_weights (oc, k). Every thread of the team
 * calls it and takes a slice of the output channels. */
static void add_thread_gradients(float *diff_weights, const float *acc, size_t stride,
                                 int team, int oc, int k, int ocp)
{
#pragma omp for schedule(static)
    for (int o = 0; o < oc; o++)
        for (int kk = 0; kk < k; kk++) {
            float sum = 0.0f;
            for (int t = 0; t < team; t++)
                sum += acc[stride * t + (size_t)kk * ocp + o];
            diff_weights[(size_t)o * k + kk] += sum;
        }
}

/* Add one image's weight gradient to dwt (taps, ocp). */
static void weight_gradient_image(float *dwt, const float *x_pad, const float *dyt,
                                  const rn_conv_shape *s, const geometry *g)
{
    int ocp = (s->oc + 15) & ~15;
    int taps = s->kh * s->kw;
    for (int c = 0; c < s->ic; c++) {
        const float *x = x_pad + c * g->plane;
        float *dw_c = dwt + (size_t)c * taps * ocp;
        if (s->kh == 3 && s->kw == 3) {
            int o = 0;
            for (; o + 32 <= ocp; o += 32)
                weight_3x3_two(dw_c + o, ocp, x, g->wp, dyt + o, s->oh, s->ow);
            if (o < ocp)
                weight_3x3_one(dw_c + o, ocp, x, g->wp, dyt + o, s->oh, s->ow);
            continue;
        }
        for (int t = 0; t < taps; t++)
            for (int o = 0; o < ocp; o += 16)
                weight_tap(dw_c + (size_t)t * ocp + o, x + (t / s->kw) * g->wp + t % s->kw,
                           g->wp, dyt + o, ocp, s->oh, s->ow);
    }
}

/* Winograd's weight gradient keeps 16 cin x cout accumulators per thread
 * (16 MiB at 512 x 512). Summing several images per visit keeps them
 * affordable up to 512 x 512: on 7x7 planes, 218 GFLOP/s against im2col's
 * 155. Past that, im2col computes the weight gradient. Below 8 input
 * channels the direct kernel's weight gradient is faster: at batch 128,
 * 28x28, 16 output channels, 146 against 75 GFLOP/s at 2 input channels,
 * 186 against 137 at 4, while at 8 Winograd leads, 257 against 197. */
static int winograd_weights(const rn_conv_shape *s)
{
    return rn_winograd_enabled() && rn_winograd_suits(s) && s->ic >= 8 &&
           (size_t)s->ic * s->oc <= 512 * 512;
}

int rn_conv_direct_weights_apply(const rn_conv_shape *s)
{
    return rn_conv_direct_applies(s) && (winograd_weights(s) || suits_path(s, 1, 0));
}

void rn_conv_direct_backward(float *diff_src, float *diff_weights,
                             const float *diff_dst, const float *src,
                             const float *weights, const rn_conv_shape *s,
                             float *scratch, int overwrite)
{
    geometry g = geometry_of(s);
    backward_scratch sizes = backward_sizes(s, &g);
    size_t per_thread = rn_conv_direct_scratch_numel(s, 1) - packed_numel(s);
    size_t dwt_offset = sizes.x_pad + sizes.dy_pad + sizes.dyt;
    int ocp = (s->oc + 15) & ~15;
    int k = s->ic * s->kh * s->kw;
    int positions = s->oh * s->ow;
    int wino = winograd_weights(s);
    rn_wino_planes planes = planes_of(s, 3);
    float *threads_base = scratch + packed_numel(s);
    size_t src_stride = (size_t)s->ic * s->ih * s->iw;
    size_t dst_stride = (size_t)s->oc * positions;
    int team = 1;

    pass ps = {0};
    if (diff_src)
        ps = prepare(scratch, weights, NULL, s, &g, 1);

    /* Images per weight-gradient group: as many as Winograd sums at once,
     * but no fewer groups than threads. */
    int threads = omp_get_max_threads();
    int group = wino ? sizes.group : 1;
    int per_share = (s->mb + threads - 1) / threads;
    if (group > per_share)
        group = per_share;
    int groups = (s->mb + group - 1) / group;

#pragma omp parallel
    {
        float *x_pad = threads_base + per_thread * omp_get_thread_num();
        float *dy_pad = x_pad + sizes.x_pad;
        float *dyt = dy_pad + sizes.dy_pad;
        float *dwt = x_pad + dwt_offset;
        float *work = dwt + sizes.dwt;
        if (diff_weights)
            memset(dwt, 0, sizeof(float) *
                               (wino ? rn_winograd_grad_numel(s->ic, s->oc) : (size_t)k * ocp));
#pragma omp single
        team = omp_get_num_threads();
#pragma omp for schedule(static)
        for (int gi = 0; gi < groups; gi++) {
            int n0 = gi * group, count = s->mb - n0 < group ? s->mb - n0 : group;
            const float *xs[RN_WINO_GROUP_MAX], *dyts[RN_WINO_GROUP_MAX];
            for (int j = 0; j < count; j++) {
                int n = n0 + j;
                const float *dy = diff_dst + n * dst_stride;
                if (diff_weights) {
                    float *dj = dyt + j * sizes.dyt_one;
                    transpose_gradient(dj, dy, s->oc, ocp, positions);
                    dyts[j] = dj;
                    if (wino) {
                        xs[j] = src + n * src_stride; /* read as it is */
                    } else {
                        float *xj = x_pad + j * sizes.x_pad_one;
                        pad_planes(xj, src + n * src_stride, s->ic, s->ih, s->iw, s->ph, s->pw,
                                   &g);
                        zero_slack(xj, s->ic, &g);
                        weight_gradient_image(dwt, xj, dj, s, &g);
                    }
                }
                if (diff_src && !ps.wino4) {
                    const float *dy_in = dy;
                    if (!ps.wino) {
                        pad_planes(dy_pad, dy, s->oc, s->oh, s->ow, s->ph, s->pw, &g);
                        zero_slack(dy_pad, s->oc, &g);
                        dy_in = dy_pad;
                    }
                    forward_image(diff_src + n * src_stride, dy_in, &ps, s, &g, NULL,
                                  !overwrite, work);
                }
            }
            if (diff_weights && wino)
                rn_winograd_grad_images(dwt, xs, dyts, count, s->ic, s->oc, &planes,
                                        rn_conv_precision() == RN_PRECISION_BF16, work);
        }
        if (diff_weights && !wino)
            add_thread_gradients(diff_weights, threads_base + dwt_offset, per_thread,
                                 omp_get_num_threads(), s->oc, k, ocp);
    }
    if (diff_weights && wino)
        rn_winograd_grad_finish(diff_weights, threads_base + dwt_offset, per_thread, team, s->ic,
                                s->oc);
    /* F(4x4)'s data gradient runs over blocks of tile rows, apart from the
     * weight gradient's groups of images. */
    if (diff_src && ps.wino4)
        wino4_batch(diff_src, src_stride, diff_dst, dst_stride, &ps, s, NULL, !overwrite,
                     threads_base + dwt_offset + sizes.dwt, per_thread, NULL);
}

/* ------------------------------------- weight gradient at stride 2, 3x3 */

/* The direct kernel's weight gradient for 3x3 kernels at stride 2 with
 * padding 1, as in the downsampling layers of the CIFAR and d2l ResNets.
 * Each thread pads its images, transposes their output gradients and sums
 * weight_block_3x3 at stride 2 into its own accumulators. At batch 128
 * with 16 -> 32 channels from 28x28, im2col and OpenBLAS reach 85 GFLOP/s
 * and this path 136. */
static int strided_weights_suit(const rn_conv_shape *s)
{
    return rn_cpu_avx512() && s->groups <= 1 && s->kh == 3 && s->kw == 3 && s->sh == 2 &&
           s->sw == 2 && s->ph == 1 && s->pw == 1 && s->ic >= 8;
}

int rn_conv_direct_strided_weights_apply(const rn_conv_shape *s)
{
    return enabled() && strided_weights_suit(s);
}

/* Per-thread floats: a padded image, the transposed gradient of one image
 * and the accumulators (ic * 9, ocp). */
static size_t strided_thread_numel(const rn_conv_shape *s)
{
    int ocp = (s->oc + 15) & ~15;
    size_t padded = round16((size_t)s->ic * (s->ih + 2) * (s->iw + 2));
    size_t dyt = round16((size_t)s->oh * s->ow * ocp);
    return padded + dyt + round16((size_t)s->ic * 9 * ocp);
}

size_t rn_conv_direct_strided_scratch_numel(const rn_conv_shape *s, int threads)
{
    return strided_weights_suit(s) ? (size_t)threads * strided_thread_numel(s) : 0;
}

void rn_conv_direct_strided_weights(float *diff_weights, const float *diff_dst,
                                    const float *src, const rn_conv_shape *s, float *scratch)
{
    int ocp = (s->oc + 15) & ~15, positions = s->oh * s->ow;
    /* Padded planes (ih + 2) x (iw + 2): the last output row's taps reach
     * padded row 2 oh, which is ih + 1 at most, and likewise for columns. */
    geometry g = {s->ih + 2, s->iw + 2, (size_t)(s->ih + 2) * (s->iw + 2), 0, 0, 0};
    size_t per_thread = strided_thread_numel(s);
    size_t padded_numel = round16((size_t)s->ic * g.plane);
    size_t dyt_numel = round16((size_t)positions * ocp);
    size_t src_stride = (size_t)s->ic * s->ih * s->iw, dst_stride = (size_t)s->oc * positions;
    int team = 1;
#pragma omp parallel
    {
        float *x_pad = scratch + per_thread * omp_get_thread_num();
        float *dyt = x_pad + padded_numel, *dwt = dyt + dyt_numel;
        memset(dwt, 0, sizeof(float) * (size_t)s->ic * 9 * ocp);
#pragma omp single
        team = omp_get_num_threads();
#pragma omp for schedule(static)
        for (int n = 0; n < s->mb; n++) {
            pad_planes(x_pad, src + n * src_stride, s->ic, s->ih, s->iw, 1, 1, &g);
            transpose_gradient(dyt, diff_dst + n * dst_stride, s->oc, ocp, positions);
            for (int c = 0; c < s->ic; c++) {
                const float *x = x_pad + c * g.plane;
                float *dw_c = dwt + (size_t)c * 9 * ocp;
                int o = 0;
                for (; o + 32 <= ocp; o += 32)
                    weight_3x3_two_s2(dw_c + o, ocp, x, g.wp, dyt + o, s->oh, s->ow);
                if (o < ocp)
                    weight_3x3_one_s2(dw_c + o, ocp, x, g.wp, dyt + o, s->oh, s->ow);
            }
        }
        add_thread_gradients(diff_weights, scratch + padded_numel + dyt_numel, per_thread, team,
                             s->oc, s->ic * 9, ocp);
    }
}

#else

int rn_conv_direct_strided_weights_apply(const rn_conv_shape *s)
{
    (void)s;
    return 0;
}

size_t rn_conv_direct_strided_scratch_numel(const rn_conv_shape *s, int threads)
{
    (void)s;
    (void)threads;
    return 0;
}

void rn_conv_direct_strided_weights(float *diff_weights, const float *diff_dst,
                                    const float *src, const rn_conv_shape *s, float *scratch)
{
    RN_ASSERT(!"no direct convolution on this CPU");
}

int rn_conv_direct_weights_apply(const rn_conv_shape *s)
{
    (void)s;
    return 0;
}

size_t rn_conv_direct_scratch_numel(const rn_conv_shape *s, int threads)
{
    (void)s;
    (void)threads;
    return 0;
}

void rn_conv_direct_forward(float *dst, const float *src, const float *weights,
                            const float *bias, const rn_conv_shape *s, float *scratch,
                            const rn_conv_post *post)
{
    RN_ASSERT(!"no direct convolution on this CPU");
}

void rn_conv_direct_backward(float *diff_src, float *diff_weights,
                             const float *diff_dst, const float *src,
                             const float *weights, const rn_conv_shape *s,
                             float *scratch, int overwrite)
{
    RN_ASSERT(!"no direct convolution on this CPU");
}

#endif

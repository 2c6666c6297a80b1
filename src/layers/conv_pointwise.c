/* 1x1 convolutions without padding as a GEMM of our own, on CPUs with
 * AVX-512. conv.c calls it where rn_conv_pointwise_applies().
 *
 * Such a convolution is one matrix product over the whole batch:
 *   y[n][o][q] = sum over c of w[o][c] * x[n][c][at(q)],
 * where at(q) is the input position under output position q (q itself at
 * stride 1). Its columns are the batch's output positions, n * oh * ow + q.
 * OpenBLAS takes one image at a time, so a 7x7 plane makes a product of 49
 * columns. Products over several images need the images copied side by side
 * first and the outputs copied back after.
 *
 * Here the columns are packed straight from the NCHW tensor into panels of
 * up to 48 columns, k rows deep (k = input channels); a panel may span
 * several images. The kernel multiplies 8 weight rows by one panel into 24
 * vector accumulators, reading the weights where they are (8 rows advance
 * together, one broadcast per row and k), and writes the 8 x 48 tile into
 * the output planes, applying the bias and the folded BN, addition and ReLU
 * while the tile is in cache, rounded as rn_conv_finish rounds them.
 *
 * A thread's work item is a group of panels, which it packs, times a range
 * of weight rows: the group stays in L2 while each 8-row block of weights
 * passes over all of its panels. The threads split the work evenly, by rows
 * within a group where needed, so that both have work at batch 1.
 *
 * Backward data at stride 1 is the same product with the transposed weights
 * (rows are input channels, k output channels) and the output gradient as
 * columns. The weight gradient stays with im2col and OpenBLAS. */
#include <immintrin.h>
#include <omp.h>
#include <string.h>

#include "core/status.h"
#include "layers/conv_direct.h"
#include "layers/conv_pointwise.h"

enum {
    ROWS = 8,          /* weight rows per kernel call */
    COLS = 48,         /* columns per panel: 3 vectors of 16 */
    GROUP_FLOATS = 98304, /* packed panels per item: 384 KiB, under half an L2 */
    MAX_GROUP = 8,     /* panels per item */
    PREFETCH = 8,      /* channels that packing fetches ahead */
};

static int suits(const rn_conv_shape *s)
{
#if defined(__x86_64__) && defined(__GNUC__)
    /* At least ROWS rows both ways: a short row block reads the rows before it. */
    return __builtin_cpu_supports("avx512f") && s->kh == 1 && s->kw == 1 && s->ph == 0 &&
           s->pw == 0 && s->groups <= 1 && s->ic >= ROWS && s->oc >= ROWS;
#else
    (void)s;
    return 0;
#endif
}

int rn_conv_pointwise_applies(const rn_conv_shape *s)
{
    return rn_conv_direct_enabled() && suits(s);
}

int rn_conv_pointwise_backward_applies(const rn_conv_shape *s)
{
    return rn_conv_pointwise_applies(s) && s->sh == 1 && s->sw == 1;
}

/* Panels per work item for a product k rows deep. */
static int group_of(int k)
{
    int g = GROUP_FLOATS / (COLS * k);
    if (g < 1)
        return 1;
    return g < MAX_GROUP ? g : MAX_GROUP;
}

/* Floats of one work item's packed panels, k rows deep. Not monotonic in k
 * (the group shrinks as k grows), so callers size for both directions. */
static size_t item_floats(int k)
{
    return (size_t)group_of(k) * COLS * k;
}

size_t rn_conv_pointwise_scratch_numel(const rn_conv_shape *s, int threads)
{
    if (!suits(s))
        return 0;
    size_t forward = item_floats(s->ic), backward = item_floats(s->oc);
    return (forward > backward ? forward : backward) * (size_t)threads;
}

#if defined(__x86_64__) && defined(__GNUC__)

/* One product: c (mb, m, oh * ow) = a (m, k) times the columns of b. Row i
 * of a, element kk, is at a[i * a_row + kk * a_k]. b is (mb, k, ih, iw); column
 * n * oh * ow + q reads b[n][kk] at (y * sh) * iw + x * sw, q = y * ow + x. */
typedef struct product {
    const float *a;
    size_t a_row, a_k;
    int m, k;
    const float *b;
    int ih, iw, sh, sw;
    float *c;
    int oh, ow;
    long columns;              /* mb * oh * ow */
    const float *bias;
    const rn_conv_post *post;
    int accumulate;            /* add to c instead of replacing it */
} product;

/* Copy n floats, or zero them where src is NULL, with masked vector
 * stores. */
static inline __attribute__((target("avx512f"), always_inline)) void
copy_run(float *dst, const float *src, int n)
{
    for (int x = 0; x < n; x += 16) {
        __mmask16 mask = n - x >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - x)) - 1);
        __m512 v = src ? _mm512_maskz_loadu_ps(mask, src + x) : _mm512_setzero_ps();
        _mm512_mask_storeu_ps(dst + x, mask, v);
    }
}

/* Pack columns [j0, j0 + width) of b into panel (k, stride floats apart),
 * zeros past the last column up to `padded` columns. */
__attribute__((target("avx512f"))) static void pack_panel(float *panel, int stride,
                                                           const product *p, long j0,
                                                           int width, int padded)
{
    long ohw = (long)p->oh * p->ow;
    size_t plane = (size_t)p->ih * p->iw;
    size_t image = (size_t)p->k * plane;
    int col = 0;
    while (col < width) {
        long j = j0 + col;
        long n = j / ohw;
        int q = (int)(j - n * ohw);
        const float *src = p->b + (size_t)n * image;
        if (p->sh == 1 && p->sw == 1) {
            /* Stride 1: the rest of this image's plane is contiguous. */
            int run = (int)(ohw - q) < width - col ? (int)(ohw - q) : width - col;
            for (int kk = 0; kk < p->k; kk++) {
                /* Many short runs, one per channel: fetch ahead of the copy,
                 * as the hardware prefetchers do not for such runs. */
                const float *ahead = src + (kk + PREFETCH) * plane + q;
                for (int x = 0; kk + PREFETCH < p->k && x < run; x += 16)
                    _mm_prefetch((const char *)(ahead + x), _MM_HINT_T0);
                copy_run(panel + (size_t)kk * stride + col, src + kk * plane + q, run);
            }
            col += run;
        } else {
            /* Strided: the rest of this output row, one float at a time. */
            int y = q / p->ow, x = q - y * p->ow;
            int run = p->ow - x < width - col ? p->ow - x : width - col;
            const float *at = src + (size_t)y * p->sh * p->iw + (size_t)x * p->sw;
            for (int kk = 0; kk < p->k; kk++) {
                float *out = panel + (size_t)kk * stride + col;
                const float *in = at + kk * plane;
                for (int i = 0; i < run; i++)
                    out[i] = in[(size_t)i * p->sw];
            }
            col += run;
        }
    }
    if (padded > width)
        for (int kk = 0; kk < p->k; kk++)
            copy_run(panel + (size_t)kk * stride + width, NULL, padded - width);
}

/* tile (ROWS, COLS) = a rows times the panel (k, 16 * v floats per row). */
static inline __attribute__((target("avx512f"), always_inline)) void
kernel(float *tile, const float *a, size_t a_row, size_t a_k, const float *panel, int k,
       const int v)
{
    __m512 acc[ROWS][3];
    for (int i = 0; i < ROWS; i++)
        acc[i][0] = acc[i][1] = acc[i][2] = _mm512_setzero_ps();
    for (int kk = 0; kk < k; kk++) {
        const float *bk = panel + (size_t)kk * 16 * v;
        __m512 b0 = _mm512_loadu_ps(bk);
        __m512 b1 = v > 1 ? _mm512_loadu_ps(bk + 16) : b0;
        __m512 b2 = v > 2 ? _mm512_loadu_ps(bk + 32) : b0;
        const float *ak = a + kk * a_k;
        for (int i = 0; i < ROWS; i++) {
            __m512 ai = _mm512_set1_ps(ak[i * a_row]);
            acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
            if (v > 1)
                acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
            if (v > 2)
                acc[i][2] = _mm512_fmadd_ps(ai, b2, acc[i][2]);
        }
    }
    for (int i = 0; i < ROWS; i++) {
        _mm512_storeu_ps(tile + i * COLS, acc[i][0]);
        if (v > 1)
            _mm512_storeu_ps(tile + i * COLS + 16, acc[i][1]);
        if (v > 2)
            _mm512_storeu_ps(tile + i * COLS + 32, acc[i][2]);
    }
}

/* The kernel for 1, 2 and 3 vectors of columns, with weight rows a_row
 * apart and consecutive k adjacent (forward). */
__attribute__((target("avx512f"))) static void kernel_rows(float *tile, const float *a,
                                                            size_t a_row, const float *panel,
                                                            int k, int v)
{
    if (v == 3)
        kernel(tile, a, a_row, 1, panel, k, 3);
    else if (v == 2)
        kernel(tile, a, a_row, 1, panel, k, 2);
    else
        kernel(tile, a, a_row, 1, panel, k, 1);
}

/* The same with adjacent weight rows and k a_k apart (backward data). */
__attribute__((target("avx512f"))) static void kernel_columns(float *tile, const float *a,
                                                               size_t a_k, const float *panel,
                                                               int k, int v)
{
    if (v == 3)
        kernel(tile, a, 1, a_k, panel, k, 3);
    else if (v == 2)
        kernel(tile, a, 1, a_k, panel, k, 2);
    else
        kernel(tile, a, 1, a_k, panel, k, 1);
}

/* out[0, n) = the tile row t with the bias and post of channel o applied,
 * rounding each step as rn_conv_finish does (no fused multiply-add);
 * res is the residual at the same positions or NULL. */
static inline __attribute__((target("avx512f"), always_inline)) void
finish_row(float *out, const float *t, int n, float bias, const rn_conv_post *post, int o,
           const float *res)
{
    __m512 b = _mm512_set1_ps(bias);
    __m512 scale = _mm512_set1_ps(post ? post->scale[o] : 1.0f);
    __m512 shift = _mm512_set1_ps(post ? post->shift[o] : 0.0f);
    for (int x = 0; x < n; x += 16) {
        __mmask16 mask = n - x >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - x)) - 1);
        __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, t + x), b);
        if (post) {
            v = _mm512_add_ps(_mm512_mul_ps(v, scale), shift);
            if (res)
                v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, res + x));
            if (post->relu) /* NaN becomes 0, as in rn_conv_finish */
                v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ),
                                        v);
        }
        _mm512_mask_storeu_ps(out + x, mask, v);
    }
}

/* out[0, n) += the tile row t. */
static inline __attribute__((target("avx512f"), always_inline)) void
add_row(float *out, const float *t, int n)
{
    for (int x = 0; x < n; x += 16) {
        __mmask16 mask = n - x >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - x)) - 1);
        __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, out + x),
                                 _mm512_maskz_loadu_ps(mask, t + x));
        _mm512_mask_storeu_ps(out + x, mask, v);
    }
}

/* Write rows [o0, o0 + rows) of a tile whose columns start at j0 into c,
 * with the bias and post applied. */
__attribute__((target("avx512f"))) static void store_tile(const product *p, const float *tile,
                                                           int o0, int rows, long j0, int width)
{
    long ohw = (long)p->oh * p->ow;
    int col = 0;
    while (col < width) {
        long j = j0 + col;
        long n = j / ohw;
        int q = (int)(j - n * ohw);
        int run = (int)(ohw - q) < width - col ? (int)(ohw - q) : width - col;
        for (int i = 0; i < rows; i++) {
            int o = o0 + i;
            size_t at = ((size_t)n * p->m + o) * ohw + q;
            const float *t = tile + i * COLS + col;
            if (p->accumulate) {
                add_row(p->c + at, t, run);
            } else {
                const float *res = p->post && p->post->residual ? p->post->residual + at : NULL;
                /* Adding a zero bias keeps every value, -0 included, as
                 * rn_conv_finish's `if (bias)` does: -0 + 0 would be +0. */
                if (p->bias)
                    finish_row(p->c + at, t, run, p->bias[o], p->post, o, res);
                else
                    finish_row(p->c + at, t, run, -0.0f, p->post, o, res);
            }
        }
        col += run;
    }
}

/* Fetch channels [kk0, kk1) of columns [j0, j0 + width) into L2, at stride
 * 1. */
static void prefetch_columns(const product *p, long j0, long width, int kk0, int kk1)
{
    long ohw = (long)p->oh * p->ow;
    size_t plane = (size_t)p->ih * p->iw;
    long col = 0;
    while (col < width) {
        long j = j0 + col;
        long n = j / ohw;
        long q = j - n * ohw;
        long run = ohw - q < width - col ? ohw - q : width - col;
        const float *src = p->b + (size_t)n * p->k * plane + q;
        for (int kk = kk0; kk < kk1; kk++)
            for (long x = 0; x < run; x += 16)
                _mm_prefetch((const char *)(src + kk * plane + x), _MM_HINT_T1);
        col += run;
    }
}

/* Work item: panels [first, first + count) times weight rows [o0, o1).
 * While it computes, it fetches the columns of the thread's next item,
 * panels [next, next + next_count), a slice of channels per kernel call, so
 * that their packing finds them in L2 instead of waiting on memory. */
__attribute__((target("avx512f"))) static void run_item(const product *p, float *packed,
                                                         long first, int count, int o0, int o1,
                                                         long next, int next_count)
{
    int widths[MAX_GROUP];
    size_t offsets[MAX_GROUP];
    size_t at = 0;
    for (int g = 0; g < count; g++) {
        long j0 = (first + g) * COLS;
        int width = p->columns - j0 < COLS ? (int)(p->columns - j0) : COLS;
        int padded = (width + 15) & ~15;
        pack_panel(packed + at, padded, p, j0, width, padded);
        widths[g] = width;
        offsets[g] = at;
        at += (size_t)padded * p->k;
    }
    float tile[ROWS * COLS] __attribute__((aligned(64)));
    long next_j0 = next * COLS;
    long next_width = next_count ? p->columns - next_j0 : 0;
    if (next_width > (long)next_count * COLS)
        next_width = (long)next_count * COLS;
    if (p->sh != 1 || p->sw != 1)
        next_width = 0;
    int calls = (o1 - o0 + ROWS - 1) / ROWS * count;
    int slice = (p->k + calls - 1) / calls; /* channels fetched per call */
    int fetched = 0;
    for (int o = o0; o < o1; o += ROWS) {
        int rows = o1 - o < ROWS ? o1 - o : ROWS;
        /* A short last block moves back over rows of the block before (m is
         * at least ROWS), whose results it drops. */
        int shift = ROWS - rows;
        const float *a = p->a + (size_t)(o - shift) * p->a_row;
        for (int g = 0; g < count; g++) {
            int v = (widths[g] + 15) / 16;
            if (p->a_k == 1)
                kernel_rows(tile, a, p->a_row, packed + offsets[g], p->k, v);
            else
                kernel_columns(tile, a, p->a_k, packed + offsets[g], p->k, v);
            store_tile(p, tile + shift * COLS, o, rows, (first + g) * COLS, widths[g]);
            if (next_width && fetched < p->k) {
                int end = fetched + slice < p->k ? fetched + slice : p->k;
                prefetch_columns(p, next_j0, next_width, fetched, end);
                fetched = end;
            }
        }
    }
}

/* The work is row blocks x column vectors, and each thread takes an equal
 * share of it in group-major order: the row blocks it owns in each group it
 * touches, with all of that group's panels. A group split between two
 * threads is packed by both. Every panel has 3 vectors but the last. */
static void run_product(const product *p, float *scratch)
{
    long panels = (p->columns + COLS - 1) / COLS;
    int group = group_of(p->k);
    long groups = (panels + group - 1) / group;
    long row_blocks = (p->m + ROWS - 1) / ROWS;
    long vectors = (p->columns + 15) / 16;
    long total = vectors * row_blocks;
    size_t per_thread = item_floats(p->k);

#pragma omp parallel
    {
        int t = omp_get_thread_num(), threads = omp_get_num_threads();
        long c0 = total * t / threads, c1 = total * (t + 1) / threads;
        float *packed = scratch + per_thread * t;
        for (long g = c0 / ((long)group * 3 * row_blocks); g < groups; g++) {
            long first = g * group;
            int count = panels - first < group ? (int)(panels - first) : group;
            long before = first * 3 * row_blocks; /* work of the groups before */
            long width = vectors - first * 3 < 3L * count ? vectors - first * 3 : 3L * count;
            if (before >= c1)
                break;
            /* Row block r's work starts at before + r * width. */
            long r0 = c0 > before ? (c0 - before + width - 1) / width : 0;
            long r1 = (c1 - before + width - 1) / width;
            if (r1 > row_blocks)
                r1 = row_blocks;
            if (r0 >= r1)
                continue;
            int o1 = r1 * ROWS < p->m ? (int)(r1 * ROWS) : p->m;
            /* The thread's next group, if it has one. */
            long next = first + count;
            int next_count = 0;
            if (next < panels && next * 3 * row_blocks < c1)
                next_count = panels - next < group ? (int)(panels - next) : group;
            run_item(p, packed, first, count, (int)(r0 * ROWS), o1, next, next_count);
        }
    }
}

void rn_conv_pointwise_forward(float *dst, const float *src, const float *weights,
                               const float *bias, const rn_conv_shape *s, float *scratch,
                               const rn_conv_post *post)
{
    product p = {.a = weights, .a_row = (size_t)s->ic, .a_k = 1, .m = s->oc, .k = s->ic,
                 .b = src, .ih = s->ih, .iw = s->iw, .sh = s->sh, .sw = s->sw,
                 .c = dst, .oh = s->oh, .ow = s->ow,
                 .columns = (long)s->mb * s->oh * s->ow, .bias = bias, .post = post,
                 .accumulate = 0};
    run_product(&p, scratch);
}

void rn_conv_pointwise_backward_data(float *diff_src, const float *diff_dst,
                                     const float *weights, const rn_conv_shape *s,
                                     float *scratch, int overwrite)
{
    RN_ASSERT(s->sh == 1 && s->sw == 1);
    /* diff_src (ic, positions) = weights^T (ic, oc) diff_dst (oc, positions):
     * row i of weights^T, element kk, is weights[kk * ic + i]. */
    product p = {.a = weights, .a_row = 1, .a_k = (size_t)s->ic, .m = s->ic, .k = s->oc,
                 .b = diff_dst, .ih = s->oh, .iw = s->ow, .sh = 1, .sw = 1,
                 .c = diff_src, .oh = s->ih, .ow = s->iw,
                 .columns = (long)s->mb * s->ih * s->iw, .bias = NULL, .post = NULL,
                 .accumulate = !overwrite};
    run_product(&p, scratch);
}

#else

void rn_conv_pointwise_forward(float *dst, const float *src, const float *weights,
                               const float *bias, const rn_conv_shape *s, float *scratch,
                               const rn_conv_post *post)
{
    RN_ASSERT(!"pointwise path without AVX-512");
}

void rn_conv_pointwise_backward_data(float *diff_src, const float *diff_dst,
                                     const float *weights, const rn_conv_shape *s,
                                     float *scratch, int overwrite)
{
    RN_ASSERT(!"pointwise path without AVX-512");
}

#endif

/* Convolutions as a GEMM of our own with the im2col columns packed on the
 * fly (implicit GEMM), on CPUs with AVX-512. conv.c calls it where
 * rn_conv_implicit_applies().
 *
 * A convolution is one matrix product over the whole batch:
 *   y[n][o][q] = sum over k of w[o][k] * col[k][n * oh * ow + q],
 * where row k = (c, ki, kj) of col is input channel c read at tap (ki, kj)
 * under each output position q, or zero in the padding. im2col with OpenBLAS
 * writes col out for a chunk of images, OpenBLAS packs it again, and the
 * outputs of a chunk are copied back to their images after.
 *
 * Here col is never written out: 48-column panels of it are packed straight
 * from the NCHW tensor, and a panel may span several images. For a 1x1
 * convolution at stride 1 without padding, a panel row is a run of one
 * plane. Otherwise it is built one output row at a time, with zeros where a
 * tap falls in the padding and a permute for stride 2. The kernel
 * multiplies 8 weight rows by one panel into 24 vector accumulators. It
 * reads the weights where they are: 8 rows advance together, with one
 * broadcast per row and k. It then writes the 8 x 48 tile into the output
 * planes, applying the bias and the folded BN, addition and ReLU while the
 * tile is in cache, rounded as rn_conv_finish rounds them.
 *
 * A thread's work item is a group of panels, which it packs, times a range
 * of weight rows: the group stays in L2 while each 8-row block of weights
 * passes over all of its panels. The threads split the work evenly, by rows
 * within a group where needed, so that both have work at batch 1.
 *
 * Backward data of a 1x1 convolution at stride 1 is the same product with the
 * transposed weights (rows are input channels, k output channels) and the
 * output gradient as columns. Other gradients stay with im2col and OpenBLAS.
 *
 * NOTE: k is not blocked, so each kernel call streams a whole panel (k x 48
 * floats) from L2. At batch 1 with k in the thousands (a 3x3 layer of 512
 * channels, 9.4 MB of weights) the weights come from memory for each of the
 * few panels, and OpenBLAS measured faster there (160 against 140 GFLOP/s). */
#include <immintrin.h>
#include <omp.h>
#include <string.h>

#include "core/cpu.h"
#include "core/status.h"
#include "layers/avx512.h"
#include "layers/conv_direct.h"
#include "layers/conv_implicit.h"

enum {
    ROWS = 8,          /* weight rows per kernel call */
    COLS = 48,         /* columns per panel: 3 vectors of 16 */
    GROUP_FLOATS = 98304, /* packed panels per item: 384 KiB, under half of Zen 4's 1 MiB L2 */
    MAX_GROUP = 8,     /* panels per item */
    PREFETCH = 16,     /* channels that packing fetches ahead */
    MAX_KW = 16,       /* widest kernel taken */
};

/* Return whether the forward pass takes the shape: no groups, up to MAX_KW
 * columns wide, and at least ROWS output channels, because a short row
 * block reads the rows before it. */
static int suits(const rn_conv_shape *s)
{
#if defined(__x86_64__) && defined(__GNUC__)
    /* Products fewer than 16 deep, as a 3x3 kernel over one channel,
     * spend more on packing than on multiplying: 59 GFLOP/s against
     * im2col's 110 at batch 128, 28x28, 16 output channels. */
    return rn_cpu_avx512() && s->groups <= 1 && s->kw <= MAX_KW && s->oc >= ROWS &&
           s->ic * s->kh * s->kw >= 16;
#else
    (void)s;
    return 0;
#endif
}

/* Return whether the data gradient takes the shape: 1x1, stride 1, no
 * padding and at least ROWS input channels. */
static int suits_backward(const rn_conv_shape *s)
{
    return suits(s) && s->kh == 1 && s->kw == 1 && s->sh == 1 && s->sw == 1 && s->ph == 0 &&
           s->pw == 0 && s->ic >= ROWS;
}

int rn_conv_implicit_applies(const rn_conv_shape *s)
{
    return rn_conv_direct_enabled() && suits(s);
}

int rn_conv_implicit_backward_applies(const rn_conv_shape *s)
{
    return rn_conv_direct_enabled() && suits_backward(s);
}

/* Return the panels per work item for a product k rows deep. */
static int group_of(int k)
{
    int g = GROUP_FLOATS / (COLS * k);
    if (g < 1)
        return 1;
    return g < MAX_GROUP ? g : MAX_GROUP;
}

/* Return the floats of one work item's packed panels, k rows deep. It is
 * not monotonic in k (the group shrinks as k grows), so the scratch is sized
 * for both directions. */
static size_t item_floats(int k)
{
    return (size_t)group_of(k) * COLS * k;
}

/* Floats of one thread's BF16 copy of ROWS weight rows, k deep, with room
 * for the last row's final store of 16 halves. */
static size_t bf16_rows_floats(int k)
{
    return (size_t)ROWS * ((k + 1) / 2) + 16;
}

/* Floats of one thread's scratch: its packed panels, then (forward) the
 * BF16 weight rows. */
static size_t thread_floats(const rn_conv_shape *s)
{
    int k = s->ic * s->kh * s->kw;
    size_t forward = item_floats(k) + bf16_rows_floats(k);
    size_t backward = suits_backward(s) ? item_floats(s->oc) : 0;
    return forward > backward ? forward : backward;
}

size_t rn_conv_implicit_scratch_numel(const rn_conv_shape *s, int threads)
{
    if (!suits(s))
        return 0;
    return thread_floats(s) * (size_t)threads;
}

#if defined(__x86_64__) && defined(__GNUC__)

/* One product: c (mb, m, oh * ow) = a (m, k) times col (k, mb * oh * ow),
 * where col contains the taps of b (mb, cin, ih, iw) as described at the top.
 * Row i of a, element kk, is at a[i * a_row + kk * a_k]. */
typedef struct product {
    const float *a;
    size_t a_row, a_k;
    int m, k;                  /* k = cin * kh * kw */
    const float *b;
    int cin, ih, iw, kh, kw, sh, sw, ph, pw;
    int whole_planes;          /* 1x1, stride 1, no padding */
    int x_begin[MAX_KW], x_end[MAX_KW]; /* outputs x that tap column kj reads inside */
    float *c;
    int oh, ow;
    long columns;              /* mb * oh * ow */
    const float *bias;
    const rn_conv_post *post;
    int accumulate;            /* add to c instead of replacing it */
    int bf16;                  /* BF16 inputs, FP32 sums (forward only) */
    size_t thread_floats;      /* scratch per thread */
} product;

/* Gather out[0, n) = in[0], in[sw], in[2 sw], ... At stride 2 it takes two
 * vector loads and a permute per 16 floats, and reads nothing past
 * in[2 (n - 1)]. */
static inline __attribute__((target("avx512f"), always_inline)) void
gather_run(float *out, const float *in, int n, int sw)
{
    if (sw == 1) {
        rn_copy_or_zero(out, in, n);
        return;
    }
    if (sw != 2) {
        for (int i = 0; i < n; i++)
            out[i] = in[(size_t)i * sw];
        return;
    }
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                           28, 30);
    for (int i = 0; i < n; i += 16) {
        int count = n - i < 16 ? n - i : 16;
        int needed = 2 * count - 1; /* floats read from in + 2 i */
        __mmask16 lo = rn_first_lanes(needed);
        __mmask16 hi = needed > 16 ? rn_first_lanes(needed - 16) : 0;
        __m512 a = _mm512_maskz_loadu_ps(lo, in + 2 * i);
        /* No load where no lane is read. On Zen 4 a fully masked load
         * measured as waiting for its line, here one past a short row that
         * nothing fetched: 1024 -> 2048 channels at 14x14 went 182 -> 207
         * GFLOP/s without it. */
        __m512 b = hi ? _mm512_maskz_loadu_ps(hi, in + 2 * i + 16) : _mm512_setzero_ps();
        __mmask16 store = rn_first_lanes(count);
        _mm512_mask_storeu_ps(out + i, store, _mm512_permutex2var_ps(a, even, b));
    }
}

/* Pack columns [j0, j0 + width) into panel (k rows, stride floats apart),
 * zeros past the last column up to `padded` columns. */
__attribute__((target("avx512f"))) static void pack_panel(float *panel, int stride,
                                                           const product *p, long j0,
                                                           int width, int padded)
{
    long ohw = (long)p->oh * p->ow;
    size_t plane = (size_t)p->ih * p->iw;
    size_t image = (size_t)p->cin * plane;
    int col = 0;
    while (col < width) {
        long j = j0 + col;
        long n = j / ohw;
        int q = (int)(j - n * ohw);
        const float *src = p->b + (size_t)n * image;
        if (p->whole_planes) {
            /* The rest of this image's plane is contiguous in every channel. */
            int run = (int)(ohw - q) < width - col ? (int)(ohw - q) : width - col;
            for (int kk = 0; kk < p->k; kk++) {
                /* Many short runs, one per channel: fetch ahead of the copy,
                 * as the hardware prefetchers do not for such runs. */
                const float *ahead = src + (kk + PREFETCH) * plane + q;
                for (int x = 0; kk + PREFETCH < p->k && x < run; x += 16)
                    _mm_prefetch((const char *)(ahead + x), _MM_HINT_T0);
                rn_copy_or_zero(panel + (size_t)kk * stride + col, src + kk * plane + q, run);
            }
            col += run;
            continue;
        }
        /* The rest of this output row: row kk of the panel is tap (c, ki, kj),
         * which reads input row y * sh - ph + ki and zeros where it falls
         * outside. */
        int y = q / p->ow, x0 = q - y * p->ow;
        int run = p->ow - x0 < width - col ? p->ow - x0 : width - col;
        float *out = panel + col;
        for (int c = 0; c < p->cin; c++)
            for (int ki = 0; ki < p->kh; ki++) {
                int iy = y * p->sh - p->ph + ki;
                int inside = iy >= 0 && iy < p->ih;
                const float *row = inside ? src + c * plane + (size_t)iy * p->iw : NULL;
                if (inside && p->kh * p->kw == 1 && c + PREFETCH < p->cin) {
                    /* A strided 1x1 reads one short row per channel: fetch the
                     * row PREFETCH channels ahead, as for whole planes. Larger
                     * kernels read each row several times and measured no
                     * better for it. */
                    const float *ahead = row + PREFETCH * plane;
                    int first = x0 * p->sw - p->pw > 0 ? x0 * p->sw - p->pw : 0;
                    int last = (x0 + run - 1) * p->sw - p->pw + p->kw;
                    if (last > p->iw)
                        last = p->iw;
                    /* Every line of [first, last), the last one too. */
                    for (int x = first; x < last + 15; x += 16)
                        _mm_prefetch((const char *)(ahead + (x < last ? x : last - 1)),
                                     _MM_HINT_T0);
                }
                for (int kj = 0; kj < p->kw; kj++, out += stride) {
                    if (!inside) {
                        rn_copy_or_zero(out, NULL, run);
                        continue;
                    }
                    /* Outputs [lo, hi) of the run read inside the row. */
                    int lo = p->x_begin[kj] - x0, hi = p->x_end[kj] - x0;
                    if (lo < 0)
                        lo = 0;
                    if (lo > run)
                        lo = run;
                    if (hi > run)
                        hi = run;
                    if (hi < lo)
                        hi = lo;
                    rn_copy_or_zero(out, NULL, lo);
                    gather_run(out + lo, row + (x0 + lo) * p->sw - p->pw + kj, hi - lo, p->sw);
                    rn_copy_or_zero(out + hi, NULL, run - hi);
                }
            }
        col += run;
    }
    if (padded > width)
        for (int kk = 0; kk < p->k; kk++)
            rn_copy_or_zero(panel + (size_t)kk * stride + width, NULL, padded - width);
}

/* Write the first v vectors of each row of accumulators into the tile. */
static inline __attribute__((target("avx512f"), always_inline)) void
store_accumulators(float *tile, __m512 acc[ROWS][3], const int v)
{
    for (int i = 0; i < ROWS; i++)
        for (int j = 0; j < v; j++)
            _mm512_storeu_ps(tile + i * COLS + 16 * j, acc[i][j]);
}

/* Compute tile (ROWS, COLS) = a rows times the panel (k rows of 16 * v
 * floats). */
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
    store_accumulators(tile, acc, v);
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

/* Compute tile (ROWS, COLS) = a rows times the panel with BF16 inputs. a
 * contains ROWS rows of k BF16 weights in pairs, a_row pairs apart, and the
 * panel pairs of rows as rn_bf16_pair_rows leaves them. */
static inline RN_TARGET_BF16 __attribute__((always_inline)) void
kernel_bf16(float *tile, const int *a, size_t a_row, const float *panel, int k, const int v)
{
    __m512 acc[ROWS][3];
    for (int i = 0; i < ROWS; i++)
        acc[i][0] = acc[i][1] = acc[i][2] = _mm512_setzero_ps();
    for (int kk = 0; kk < k; kk += 2) {
        const float *bk = panel + (size_t)kk * 16 * v;
        __m512bh b0 = (__m512bh)_mm512_loadu_ps(bk);
        __m512bh b1 = v > 1 ? (__m512bh)_mm512_loadu_ps(bk + 16) : b0;
        __m512bh b2 = v > 2 ? (__m512bh)_mm512_loadu_ps(bk + 32) : b0;
        const int *ak = a + kk / 2;
        for (int i = 0; i < ROWS; i++) {
            __m512bh ai = (__m512bh)_mm512_set1_epi32(ak[i * a_row]);
            acc[i][0] = _mm512_dpbf16_ps(acc[i][0], ai, b0);
            if (v > 1)
                acc[i][1] = _mm512_dpbf16_ps(acc[i][1], ai, b1);
            if (v > 2)
                acc[i][2] = _mm512_dpbf16_ps(acc[i][2], ai, b2);
        }
    }
    store_accumulators(tile, acc, v);
}

static RN_TARGET_BF16 void kernel_bf16_rows(float *tile, const int *a, size_t a_row,
                                            const float *panel, int k, int v)
{
    if (v == 3)
        kernel_bf16(tile, a, a_row, panel, k, 3);
    else if (v == 2)
        kernel_bf16(tile, a, a_row, panel, k, 2);
    else
        kernel_bf16(tile, a, a_row, panel, k, 1);
}

/* Round ROWS weight rows (k floats, a_row apart) to BF16 pairs,
 * (k + 1) / 2 pairs per row, the half after an odd k zero. */
static RN_TARGET_BF16 void weight_rows_bf16(int *out, const float *a, size_t a_row, int k)
{
    size_t pairs = (size_t)(k + 1) / 2;
    for (int i = 0; i < ROWS; i++)
        for (int x = 0; x < k; x += 16) {
            __m512 w = _mm512_maskz_loadu_ps(rn_first_lanes((size_t)(k - x)), a + i * a_row + x);
            _mm256_storeu_si256((__m256i *)((char *)(out + i * pairs) + 2 * (size_t)x),
                                (__m256i)_mm512_cvtneps_pbh(w));
        }
}

/* Pair the rows of `count` packed panels in place for kernel_bf16. */
static RN_TARGET_BF16 void panels_bf16(float *packed, const size_t *offsets, const int *widths,
                                       int count, int k)
{
    for (int g = 0; g < count; g++) {
        int padded = (widths[g] + 15) & ~15;
        rn_bf16_pair_rows(packed + offsets[g], padded, k, padded);
    }
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

/* Write out[0, n) = the tile row t with channel o's bias and post applied,
 * rounding each step as rn_conv_finish does (no fused multiply-add). res is
 * the residual at the same positions, or NULL. */
static inline __attribute__((target("avx512f"), always_inline)) void
finish_row(float *out, const float *t, int n, float bias, const rn_conv_post *post, int o,
           const float *res)
{
    __m512 b = _mm512_set1_ps(bias);
    __m512 scale = _mm512_set1_ps(post ? post->scale[o] : 1.0f);
    __m512 shift = _mm512_set1_ps(post ? post->shift[o] : 0.0f);
    for (int x = 0; x < n; x += 16) {
        __mmask16 mask = rn_first_lanes(n - x);
        __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, t + x), b);
        if (post) {
            v = _mm512_add_ps(_mm512_mul_ps(v, scale), shift);
            if (res)
                v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, res + x));
            if (post->relu) /* below zero to 0; NaN and -0 stay, as in rn_conv_finish */
                v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_NLT_UQ),
                                        v);
        }
        _mm512_mask_storeu_ps(out + x, mask, v);
    }
}

/* Add the tile row t to out[0, n). */
static inline __attribute__((target("avx512f"), always_inline)) void
add_row(float *out, const float *t, int n)
{
    for (int x = 0; x < n; x += 16) {
        __mmask16 mask = rn_first_lanes(n - x);
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
                /* Without a bias, adding -0 keeps every value, -0 included,
                 * as rn_conv_finish's `if (bias)` does. Adding +0 would turn
                 * -0 into +0. */
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
        const float *src = p->b + (size_t)n * p->cin * plane + q;
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
    if (p->bf16)
        panels_bf16(packed, offsets, widths, count, p->k);
    int *a_bf16 = (int *)(packed + item_floats(p->k));
    float tile[ROWS * COLS] __attribute__((aligned(64)));
    long next_j0 = next * COLS;
    long next_width = next_count ? p->columns - next_j0 : 0;
    if (next_width > (long)next_count * COLS)
        next_width = (long)next_count * COLS;
    if (!p->whole_planes)
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
        if (p->bf16)
            weight_rows_bf16(a_bf16, a, p->a_row, p->k);
        for (int g = 0; g < count; g++) {
            int v = (widths[g] + 15) / 16;
            if (p->bf16)
                kernel_bf16_rows(tile, a_bf16, (size_t)(p->k + 1) / 2, packed + offsets[g], p->k,
                                 v);
            else if (p->a_k == 1)
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
    size_t per_thread = p->thread_floats;

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

void rn_conv_implicit_forward(float *dst, const float *src, const float *weights,
                              const float *bias, const rn_conv_shape *s, float *scratch,
                              const rn_conv_post *post)
{
    product p = {.a = weights, .a_row = (size_t)s->ic * s->kh * s->kw, .a_k = 1, .m = s->oc,
                 .k = s->ic * s->kh * s->kw, .b = src, .cin = s->ic, .ih = s->ih,
                 .iw = s->iw, .kh = s->kh, .kw = s->kw, .sh = s->sh, .sw = s->sw,
                 .ph = s->ph, .pw = s->pw, .c = dst, .oh = s->oh, .ow = s->ow,
                 .columns = (long)s->mb * s->oh * s->ow, .bias = bias, .post = post,
                 .bf16 = rn_conv_precision() == RN_PRECISION_BF16,
                 .thread_floats = thread_floats(s)};
    p.whole_planes = s->kh == 1 && s->kw == 1 && s->sh == 1 && s->sw == 1 && s->ph == 0 &&
                     s->pw == 0;
    for (int kj = 0; kj < s->kw; kj++) {
        /* ix = x * sw - pw + kj is inside for x in [begin, end). */
        int offset = kj - s->pw;
        int begin = offset >= 0 ? 0 : (-offset + s->sw - 1) / s->sw;
        int end = (s->iw - offset + s->sw - 1) / s->sw;
        p.x_begin[kj] = begin;
        p.x_end[kj] = end < s->ow ? end : s->ow;
    }
    run_product(&p, scratch);
}

void rn_conv_implicit_backward_data(float *diff_src, const float *diff_dst,
                                    const float *weights, const rn_conv_shape *s,
                                    float *scratch, int overwrite)
{
    RN_ASSERT(suits_backward(s));
    /* diff_src (ic, positions) = weights^T (ic, oc) diff_dst (oc, positions):
     * row i of weights^T, element kk, is weights[kk * ic + i]. */
    product p = {.a = weights, .a_row = 1, .a_k = (size_t)s->ic, .m = s->ic, .k = s->oc,
                 .b = diff_dst, .cin = s->oc, .ih = s->oh, .iw = s->ow, .kh = 1, .kw = 1,
                 .sh = 1, .sw = 1, .whole_planes = 1, .c = diff_src, .oh = s->ih,
                 .ow = s->iw, .columns = (long)s->mb * s->ih * s->iw,
                 .accumulate = !overwrite, .thread_floats = thread_floats(s)};
    run_product(&p, scratch);
}

#else

void rn_conv_implicit_forward(float *dst, const float *src, const float *weights,
                              const float *bias, const rn_conv_shape *s, float *scratch,
                              const rn_conv_post *post)
{
    RN_ASSERT(!"implicit GEMM without AVX-512");
}

void rn_conv_implicit_backward_data(float *diff_src, const float *diff_dst,
                                    const float *weights, const rn_conv_shape *s,
                                    float *scratch, int overwrite)
{
    RN_ASSERT(!"implicit GEMM without AVX-512");
}

#endif

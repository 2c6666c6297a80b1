/* Winograd F(2x2, 3x3) (Lavin and Gray, 2015) for the 3x3 stride-1
 * convolutions: each 2x2 output tile comes from a 4x4 input tile d and the
 * 3x3 kernel g as
 *
 *     Y = A^T [(G g G^T) . (B^T d B)] A
 *
 * where . multiplies element by element. Over a block of tiles the 16
 * elements e of the 4x4 products are 16 independent matrix products,
 * M[e] = U[e] V[e] with U[e] (cout, cin) from the weights and V[e]
 * (cin, tiles) from the input: 16 multiplications per tile and input
 * channel instead of 36 for the direct convolution.
 *
 * Tiles are numbered row by row over the image, and a block holds 48 of
 * them, 16 to a vector. The input transform loads 16 tiles of a row at once
 * and deinterleaves their columns with permutes. The product keeps 8 output
 * channels x 48 tiles in 24 accumulators, like the direct kernel.
 *
 * Backward data is the same computation with the transposed, rotated
 * weights, as in conv_direct.c. The weight gradient follows from the same
 * formula: dU[e] = sum over tiles of (A dY A^T)[e] V[e], and dg = G^T dU G.
 * There the output channels lie in the vectors, from the transposed output
 * gradient. */
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "layers/conv_winograd.h"

enum { E = 16 }; /* elements of a 4x4 tile */

static int setting; /* 0 before RESNET_CONV is read, 1 on, 2 off */

int rn_winograd_enabled(void)
{
    if (!setting) {
        const char *env = getenv("RESNET_CONV");
        setting = env && strcmp(env, "direct") == 0 ? 2 : 1;
    }
    return setting == 1;
}

int rn_winograd_set_enabled(int on)
{
    int was = rn_winograd_enabled();
    setting = on ? 1 : 2;
    return was;
}

int rn_winograd_suits(const rn_conv_shape *s)
{
    return s->kh == 3 && s->kw == 3 && s->ph == 1 && s->pw == 1 && s->sh == 1 &&
           s->sw == 1 && s->groups <= 1 && s->oh % 2 == 0 && s->ow % 2 == 0 && s->oh > 0 &&
           s->ow > 0;
}

static int round_up(int n, int m)
{
    return (n + m - 1) / m * m;
}

size_t rn_winograd_weights_numel(int cout, int cin)
{
    return (size_t)E * round_up(cout, RN_WINO_OC) * cin;
}

/* U = G g G^T for one 3x3 kernel g, into u[e * stride]. */
static void transform_kernel(float *u, size_t stride, const float g[9])
{
    float t[4][3]; /* G g */
    for (int j = 0; j < 3; j++) {
        float a = g[j], b = g[3 + j], c = g[6 + j];
        t[0][j] = a;
        t[1][j] = 0.5f * (a + b + c);
        t[2][j] = 0.5f * (a - b + c);
        t[3][j] = c;
    }
    for (int i = 0; i < 4; i++) {
        float a = t[i][0], b = t[i][1], c = t[i][2];
        u[(i * 4 + 0) * stride] = a;
        u[(i * 4 + 1) * stride] = 0.5f * (a + b + c);
        u[(i * 4 + 2) * stride] = 0.5f * (a - b + c);
        u[(i * 4 + 3) * stride] = c;
    }
}

/* Layout: u[e][ob][c][RN_WINO_OC] for output-channel blocks ob, so that a
 * block's 8 weights of one input channel are adjacent. */
void rn_winograd_transform_weights(float *u, const float *weights, int cout, int cin, int flip)
{
    int blocks = round_up(cout, RN_WINO_OC) / RN_WINO_OC;
    size_t stride = (size_t)blocks * RN_WINO_OC * cin; /* between elements */
    memset(u, 0, sizeof(float) * E * stride);
    for (int o = 0; o < cout; o++)
        for (int c = 0; c < cin; c++) {
            float g[9];
            for (int k = 0; k < 9; k++)
                g[k] = flip ? weights[((size_t)c * cout + o) * 9 + 8 - k]
                            : weights[((size_t)o * cin + c) * 9 + k];
            int ob = o / RN_WINO_OC, i = o % RN_WINO_OC;
            transform_kernel(u + ((size_t)ob * cin + c) * RN_WINO_OC + i, stride, g);
        }
}

int rn_winograd_blocks(const rn_wino_planes *p)
{
    int tiles = (p->oh / 2) * (p->ow / 2);
    return (tiles + RN_WINO_TILES - 1) / RN_WINO_TILES;
}

size_t rn_winograd_block_numel(int cin)
{
    /* V (E, cin, tiles), then M (E, RN_WINO_OC, tiles). */
    return (size_t)E * (cin + RN_WINO_OC) * RN_WINO_TILES;
}

#if defined(__x86_64__) && defined(__GNUC__)

#define TARGET __attribute__((target("avx512f")))

static __mmask16 first_lanes(int n)
{
    return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);
}

/* The 4 columns of 16 tiles in one padded row: d[j][t] = row[2 t + j]. */
static inline TARGET __attribute__((always_inline)) void
load_row(__m512 d[4], const float *row)
{
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                           28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    __m512 a = _mm512_loadu_ps(row), b = _mm512_loadu_ps(row + 16);
    __m512 c = _mm512_loadu_ps(row + 2), e = _mm512_loadu_ps(row + 18);
    d[0] = _mm512_permutex2var_ps(a, even, b);
    d[1] = _mm512_permutex2var_ps(a, odd, b);
    d[2] = _mm512_permutex2var_ps(c, even, e);
    d[3] = _mm512_permutex2var_ps(c, odd, e);
}

/* V = B^T d B for up to 16 tiles of one tile row, the first tile's 4x4
 * input starting at x in a padded plane; element e goes to v[e * stride]. */
static inline TARGET __attribute__((always_inline)) void
input_tiles(float *v, size_t stride, const float *x, int wp, __mmask16 mask)
{
    __m512 d[4][4], t[4][4];
    for (int i = 0; i < 4; i++)
        load_row(d[i], x + (size_t)i * wp);
    for (int j = 0; j < 4; j++) { /* B^T d: rows */
        t[0][j] = _mm512_sub_ps(d[0][j], d[2][j]);
        t[1][j] = _mm512_add_ps(d[1][j], d[2][j]);
        t[2][j] = _mm512_sub_ps(d[2][j], d[1][j]);
        t[3][j] = _mm512_sub_ps(d[1][j], d[3][j]);
    }
    for (int i = 0; i < 4; i++) { /* (B^T d) B: columns */
        _mm512_mask_storeu_ps(v + (i * 4 + 0) * stride, mask, _mm512_sub_ps(t[i][0], t[i][2]));
        _mm512_mask_storeu_ps(v + (i * 4 + 1) * stride, mask, _mm512_add_ps(t[i][1], t[i][2]));
        _mm512_mask_storeu_ps(v + (i * 4 + 2) * stride, mask, _mm512_sub_ps(t[i][2], t[i][1]));
        _mm512_mask_storeu_ps(v + (i * 4 + 3) * stride, mask, _mm512_sub_ps(t[i][1], t[i][3]));
    }
}

/* Runs body for each run of at most 16 tiles of [t0, t1) in one tile row,
 * with first (the run's first tile), ty, tx (its row and column) and n
 * (the run's length) set. */
#define FOR_TILE_RUNS(t0, t1, tw, body)                                         \
    for (int run_ = (t0); run_ < (t1);) {                                       \
        int ty = run_ / (tw), tx = run_ - ty * (tw);                            \
        int n = (tw) - tx;                                                      \
        if (n > (t1) - run_)                                                    \
            n = (t1) - run_;                                                    \
        if (n > 16)                                                             \
            n = 16;                                                             \
        int first = run_;                                                       \
        body;                                                                   \
        run_ += n;                                                              \
    }

/* V (E, channels, RN_WINO_TILES) of tiles [t0, t1) for channels [0, cin). */
static TARGET void input_block(float *v, const float *padded, int cin,
                               const rn_wino_planes *p, int t0, int t1)
{
    int tw = p->ow / 2;
    size_t stride = (size_t)cin * RN_WINO_TILES;
    for (int c = 0; c < cin; c++) {
        const float *x = padded + c * p->plane;
        float *vc = v + (size_t)c * RN_WINO_TILES - t0;
        FOR_TILE_RUNS(t0, t1, tw, {
            input_tiles(vc + first, stride, x + (size_t)2 * ty * p->wp + 2 * tx, p->wp,
                        first_lanes(n));
        });
    }
}

/* M[i][t] = sum over c of U[c][i] V[c][t] for 8 channels i and nv * 16
 * tiles t. */
static inline TARGET __attribute__((always_inline)) void
product(float *m, const float *u, const float *v, int cin, const int nv)
{
    __m512 acc[RN_WINO_OC][3];
    for (int i = 0; i < RN_WINO_OC; i++)
        for (int j = 0; j < nv; j++)
            acc[i][j] = _mm512_setzero_ps();
    for (int c = 0; c < cin; c++) {
        const float *vc = v + (size_t)c * RN_WINO_TILES;
        __m512 x[3];
        for (int j = 0; j < nv; j++)
            x[j] = _mm512_loadu_ps(vc + 16 * j);
        const float *uc = u + (size_t)c * RN_WINO_OC;
        for (int i = 0; i < RN_WINO_OC; i++) {
            __m512 w = _mm512_set1_ps(uc[i]);
            for (int j = 0; j < nv; j++)
                acc[i][j] = _mm512_fmadd_ps(w, x[j], acc[i][j]);
        }
    }
    for (int i = 0; i < RN_WINO_OC; i++)
        for (int j = 0; j < nv; j++)
            _mm512_storeu_ps(m + i * RN_WINO_TILES + 16 * j, acc[i][j]);
}

static TARGET void product1(float *m, const float *u, const float *v, int cin)
{
    product(m, u, v, cin, 1);
}

static TARGET void product2(float *m, const float *u, const float *v, int cin)
{
    product(m, u, v, cin, 2);
}

static TARGET void product3(float *m, const float *u, const float *v, int cin)
{
    product(m, u, v, cin, 3);
}

/* Y = A^T M A for up to 16 tiles of a tile row, into the output rows at
 * out and out + ow: the 2n floats of each row that belong to n tiles. */
static inline TARGET __attribute__((always_inline)) void
output_tiles(float *out, int ow, const float *m, size_t stride, int n, float bias,
             int accumulate)
{
    __mmask16 mask = first_lanes(n);
    __m512 x[E], s[2][4];
    for (int e = 0; e < E; e++)
        x[e] = _mm512_maskz_loadu_ps(mask, m + e * stride);
    for (int j = 0; j < 4; j++) { /* A^T M: rows */
        s[0][j] = _mm512_add_ps(_mm512_add_ps(x[j], x[4 + j]), x[8 + j]);
        s[1][j] = _mm512_sub_ps(_mm512_sub_ps(x[4 + j], x[8 + j]), x[12 + j]);
    }
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7,
                                         23);
    const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
    __mmask16 m_lo = first_lanes(2 * n), m_hi = first_lanes(n > 8 ? 2 * (n - 8) : 0);
    __m512 b = _mm512_set1_ps(bias);
    for (int i = 0; i < 2; i++) { /* (A^T M) A: columns, then interleave */
        __m512 y0 = _mm512_add_ps(_mm512_add_ps(s[i][0], s[i][1]), _mm512_add_ps(s[i][2], b));
        __m512 y1 = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(s[i][1], s[i][2]), s[i][3]), b);
        __m512 r0 = _mm512_permutex2var_ps(y0, lo, y1);
        __m512 r1 = _mm512_permutex2var_ps(y0, hi, y1);
        float *row = out + (size_t)i * ow;
        if (accumulate) {
            r0 = _mm512_add_ps(r0, _mm512_maskz_loadu_ps(m_lo, row));
            r1 = _mm512_add_ps(r1, _mm512_maskz_loadu_ps(m_hi, row + 16));
        }
        _mm512_mask_storeu_ps(row, m_lo, r0);
        _mm512_mask_storeu_ps(row + 16, m_hi, r1);
    }
}

TARGET void rn_winograd_block(float *dst, const float *padded, const float *u, int cin,
                              int cout, const rn_wino_planes *p, const float *bias,
                              int accumulate, int block, float *scratch)
{
    int tw = p->ow / 2, tiles = (p->oh / 2) * tw;
    int t0 = block * RN_WINO_TILES;
    int t1 = t0 + RN_WINO_TILES < tiles ? t0 + RN_WINO_TILES : tiles;
    int nv = (t1 - t0 + 15) / 16;
    float *v = scratch, *m = scratch + (size_t)E * cin * RN_WINO_TILES;
    size_t v_stride = (size_t)cin * RN_WINO_TILES;          /* between elements of V */
    size_t m_stride = (size_t)RN_WINO_OC * RN_WINO_TILES;   /* and of M */
    int blocks = round_up(cout, RN_WINO_OC) / RN_WINO_OC;
    size_t u_stride = (size_t)blocks * RN_WINO_OC * cin;

    input_block(v, padded, cin, p, t0, t1);
    for (int ob = 0; ob < blocks; ob++) {
        const float *u_block = u + (size_t)ob * cin * RN_WINO_OC;
        for (int e = 0; e < E; e++) {
            float *me = m + e * m_stride;
            const float *ue = u_block + e * u_stride, *ve = v + e * v_stride;
            if (nv == 3)
                product3(me, ue, ve, cin);
            else if (nv == 2)
                product2(me, ue, ve, cin);
            else
                product1(me, ue, ve, cin);
        }
        int rows = cout - ob * RN_WINO_OC < RN_WINO_OC ? cout - ob * RN_WINO_OC : RN_WINO_OC;
        for (int i = 0; i < rows; i++) {
            int o = ob * RN_WINO_OC + i;
            float *plane = dst + (size_t)o * p->oh * p->ow;
            const float *mi = m + i * RN_WINO_TILES - t0;
            float b = bias ? bias[o] : 0.0f;
            FOR_TILE_RUNS(t0, t1, tw, {
                output_tiles(plane + (size_t)2 * ty * p->ow + 2 * tx, p->ow, mi + first,
                             m_stride, n, b, accumulate);
            });
        }
    }
}

/* ------------------------------------------------------- weight gradient */

enum { GRAD_C = 8 }; /* input channels per register block of the gradient */

static int grad_cin(int cin)
{
    return round_up(cin, GRAD_C);
}

static int grad_ocp(int cout)
{
    return round_up(cout, 16);
}

size_t rn_winograd_grad_numel(int cin, int cout)
{
    return (size_t)E * grad_cin(cin) * grad_ocp(cout);
}

size_t rn_winograd_grad_block_numel(int cin, int cout)
{
    /* V (E, cinp, tiles), then D (E, tiles, ocp). */
    return (size_t)E * RN_WINO_TILES * (grad_cin(cin) + grad_ocp(cout));
}

/* D = A dY A^T for n tiles of one tile row, 16 output channels: dy0 and dy1
 * are the transposed gradient's rows 2 ty and 2 ty + 1 at the run's first
 * column, ocp floats per position; d[e * stride + t * ocp]. */
static inline TARGET __attribute__((always_inline)) void
gradient_tiles(float *d, size_t stride, const float *dy0, const float *dy1, int ocp, int n)
{
    for (int t = 0; t < n; t++) {
        __m512 g00 = _mm512_loadu_ps(dy0 + (size_t)2 * t * ocp);
        __m512 g01 = _mm512_loadu_ps(dy0 + (size_t)(2 * t + 1) * ocp);
        __m512 g10 = _mm512_loadu_ps(dy1 + (size_t)2 * t * ocp);
        __m512 g11 = _mm512_loadu_ps(dy1 + (size_t)(2 * t + 1) * ocp);
        __m512 r[4][2] = {
            {g00, g01},
            {_mm512_add_ps(g00, g10), _mm512_add_ps(g01, g11)},
            {_mm512_sub_ps(g00, g10), _mm512_sub_ps(g01, g11)},
            {_mm512_sub_ps(_mm512_setzero_ps(), g10), _mm512_sub_ps(_mm512_setzero_ps(), g11)},
        };
        float *dt = d + (size_t)t * ocp;
        for (int i = 0; i < 4; i++) {
            __m512 a = r[i][0], b = r[i][1];
            _mm512_storeu_ps(dt + (i * 4 + 0) * stride, a);
            _mm512_storeu_ps(dt + (i * 4 + 1) * stride, _mm512_add_ps(a, b));
            _mm512_storeu_ps(dt + (i * 4 + 2) * stride, _mm512_sub_ps(a, b));
            _mm512_storeu_ps(dt + (i * 4 + 3) * stride, _mm512_sub_ps(_mm512_setzero_ps(), b));
        }
    }
}

/* acc[c][k] += sum over n tiles t of V[c][t] D[t][k] for GRAD_C input
 * channels c and nk * 16 output channels k. */
static inline TARGET __attribute__((always_inline)) void
grad_product(float *acc, int ocp, const float *v, const float *d, int n, const int nk)
{
    __m512 a[GRAD_C][2];
    for (int i = 0; i < GRAD_C; i++)
        for (int j = 0; j < nk; j++)
            a[i][j] = _mm512_setzero_ps();
    for (int t = 0; t < n; t++) {
        __m512 g[2];
        for (int j = 0; j < nk; j++)
            g[j] = _mm512_loadu_ps(d + (size_t)t * ocp + 16 * j);
        for (int i = 0; i < GRAD_C; i++) {
            __m512 x = _mm512_set1_ps(v[i * RN_WINO_TILES + t]);
            for (int j = 0; j < nk; j++)
                a[i][j] = _mm512_fmadd_ps(x, g[j], a[i][j]);
        }
    }
    for (int i = 0; i < GRAD_C; i++)
        for (int j = 0; j < nk; j++) {
            float *row = acc + (size_t)i * ocp + 16 * j;
            _mm512_storeu_ps(row, _mm512_add_ps(_mm512_loadu_ps(row), a[i][j]));
        }
}

static TARGET void grad_product1(float *acc, int ocp, const float *v, const float *d, int n)
{
    grad_product(acc, ocp, v, d, n, 1);
}

static TARGET void grad_product2(float *acc, int ocp, const float *v, const float *d, int n)
{
    grad_product(acc, ocp, v, d, n, 2);
}

TARGET void rn_winograd_grad_image(float *acc, const float *padded, const float *dyt, int cin,
                                   int cout, const rn_wino_planes *p, float *scratch)
{
    int cinp = grad_cin(cin), ocp = grad_ocp(cout);
    int tw = p->ow / 2, tiles = (p->oh / 2) * tw;
    float *v = scratch, *d = scratch + (size_t)E * cinp * RN_WINO_TILES;
    size_t v_stride = (size_t)cinp * RN_WINO_TILES, d_stride = (size_t)RN_WINO_TILES * ocp;
    /* Channels past cin stay zero. */
    for (int e = 0; e < E; e++)
        memset(v + e * v_stride + (size_t)cin * RN_WINO_TILES, 0,
               sizeof(float) * (cinp - cin) * RN_WINO_TILES);
    for (int t0 = 0; t0 < tiles; t0 += RN_WINO_TILES) {
        int t1 = t0 + RN_WINO_TILES < tiles ? t0 + RN_WINO_TILES : tiles;
        /* V for this block, laid out as in the forward pass but with cinp
         * channels. */
        for (int c = 0; c < cin; c++) {
            const float *x = padded + c * p->plane;
            float *vc = v + (size_t)c * RN_WINO_TILES - t0;
            FOR_TILE_RUNS(t0, t1, tw, {
                input_tiles(vc + first, v_stride, x + (size_t)2 * ty * p->wp + 2 * tx, p->wp,
                            first_lanes(n));
            });
        }
        for (int k = 0; k < ocp; k += 16) {
            FOR_TILE_RUNS(t0, t1, tw, {
                const float *row0 = dyt + ((size_t)2 * ty * p->ow + 2 * tx) * ocp + k;
                gradient_tiles(d + (size_t)(first - t0) * ocp + k, d_stride, row0,
                               row0 + (size_t)p->ow * ocp, ocp, n);
            });
        }
        int n = t1 - t0;
        for (int e = 0; e < E; e++) {
            float *acc_e = acc + (size_t)e * cinp * ocp;
            const float *ve = v + e * v_stride, *de = d + e * d_stride;
            for (int c = 0; c < cinp; c += GRAD_C) {
                int k = 0;
                for (; k + 32 <= ocp; k += 32)
                    grad_product2(acc_e + (size_t)c * ocp + k, ocp,
                                  ve + (size_t)c * RN_WINO_TILES, de + k, n);
                if (k < ocp)
                    grad_product1(acc_e + (size_t)c * ocp + k, ocp,
                                  ve + (size_t)c * RN_WINO_TILES, de + k, n);
            }
        }
    }
}

#else

void rn_winograd_block(float *dst, const float *padded, const float *u, int cin,
                              int cout, const rn_wino_planes *p, const float *bias,
                              int accumulate, int block, float *scratch)
{
    RN_ASSERT(!"no Winograd convolution on this CPU");
}

void rn_winograd_grad_image(float *acc, const float *padded, const float *dyt, int cin,
                            int cout, const rn_wino_planes *p, float *scratch)
{
    RN_ASSERT(!"no Winograd convolution on this CPU");
}

#endif

void rn_winograd_grad_finish(float *diff_weights, const float *acc, size_t stride, int count,
                             int cin, int cout)
{
    int cinp = grad_cin(cin), ocp = grad_ocp(cout);
    size_t e_stride = (size_t)cinp * ocp;
    for (int o = 0; o < cout; o++)
        for (int c = 0; c < cin; c++) {
            float x[4][4], z[3][4];
            for (int e = 0; e < E; e++) {
                float sum = 0.0f;
                for (int t = 0; t < count; t++)
                    sum += acc[t * stride + e * e_stride + (size_t)c * ocp + o];
                x[e / 4][e % 4] = sum;
            }
            for (int j = 0; j < 4; j++) { /* G^T X */
                z[0][j] = x[0][j] + 0.5f * (x[1][j] + x[2][j]);
                z[1][j] = 0.5f * (x[1][j] - x[2][j]);
                z[2][j] = 0.5f * (x[1][j] + x[2][j]) + x[3][j];
            }
            float *dw = diff_weights + ((size_t)o * cin + c) * 9;
            for (int i = 0; i < 3; i++) { /* (G^T X) G */
                dw[i * 3 + 0] += z[i][0] + 0.5f * (z[i][1] + z[i][2]);
                dw[i * 3 + 1] += 0.5f * (z[i][1] - z[i][2]);
                dw[i * 3 + 2] += 0.5f * (z[i][1] + z[i][2]) + z[i][3];
            }
        }
}

/* Winograd F(2x2, 3x3) for the 3x3 stride-1 convolutions: each 2x2 output
 * tile comes from a 4x4 input tile d and the 3x3 kernel g as
 *
 *     Y = A^T [(G g G^T) . (B^T d B)] A
 *
 * where . multiplies element by element. Over a block of tiles the 16
 * elements e of the 4x4 products are 16 independent matrix products,
 * M[e] = U[e] V[e] with U[e] (cout, cin) from the weights and V[e]
 * (cin, tiles) from the input: 16 multiplications per tile and input
 * channel instead of 36 for the direct convolution.
 *
 * Tiles are numbered row by row over the image, and a block holds up to 48
 * of them, 16 to a vector. The input transform loads 16 tiles of a row at
 * once and deinterleaves their columns with permutes. Rows of 8 tiles or
 * fewer share a vector, up to 4 of them. The transform reads the planes
 * as they are, masking its loads so that the padding reads as zero. The
 * product keeps 8 output channels x 48 tiles in 24 accumulators, like the
 * direct kernel. Odd planes get a last tile row and column half outside,
 * clipped on output.
 *
 * Backward data is the same computation with the transposed, rotated
 * weights, as in conv_direct.c. The weight gradient follows from the same
 * formula: dU[e] = sum over tiles of (A dY A^T)[e] V[e], and dg = G^T dU G.
 * There the output channels lie in the vectors, from the transposed output
 * gradient.
 *
 * Planes up to 28 wide take F(4x4, 3x3) in the forward and data-gradient
 * passes instead: 6x6 input tiles, 36 products for 16 outputs where F(2x2)
 * needs 64. Its vectors hold whole rows of tiles, 8 rows of 2 tiles down to
 * 2 rows of 7, from one image or more, gathered with permutes.
 *
 * NOTE: F(4x4)'s larger transform constants cost precision. Its error is
 * about 1e-6 of the output's RMS, 3 to 6 times F(2x2)'s, and reaches
 * 1.5e-5 to 1.8e-5 of the largest output at 256 and 512 channels, where
 * F(2x2) stays below 1e-6. Model logits stayed within 2e-6 of im2col's. For
 * the same reason its weight gradient is not used: it moved one weight of
 * the resnet20-B parity case 1.3 times past the tolerance after 3 steps.
 *
 * NOTE: the transforms mix values that a direct convolution keeps apart.
 * An Inf in the input becomes NaN in the outputs of its tiles (Inf - Inf in
 * the transforms), where the direct sum gives Inf. A NaN or Inf reaches all
 * 9 taps of the affected kernels' weight gradient, not only those that see
 * it. Inputs near the float limit (about 1e38) can overflow where the
 * direct sum does not. */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "layers/avx512.h"
#include "layers/conv_winograd.h"

enum {
    E = 16,         /* elements of a 4x4 tile */
    E4 = 36,        /* elements of a 6x6 tile, F(4x4, 3x3) */
    AHEAD = 2,      /* channels the input transform fetches ahead */
    MIN_TILES = 64, /* tiles in a batch below which the direct path is faster */
};

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

int rn_winograd_suits_prepared(const rn_conv_shape *s)
{
    if (s->kh != 3 || s->kw != 3 || s->ph != 1 || s->pw != 1 || s->sh != 1 || s->sw != 1 ||
        s->groups > 1 || s->oh < 1 || s->ow < 1)
        return 0;
    /* Odd planes compute a last row or column of tiles half outside. At
     * 3x3 (4 tiles, 9 of 16 outputs kept) im2col is faster; 5x5 and 7x7
     * keep 69% and 77%. */
    int tiles = ((s->oh + 1) / 2) * ((s->ow + 1) / 2);
    return tiles >= 8 && 2 * s->oh * s->ow >= 4 * tiles;
}

int rn_winograd_suits(const rn_conv_shape *s)
{
    /* Each call transforms 16 x cin x cout weights. With few tiles in the
     * batch, as at batch 1 on 14x14 and 7x7 planes, that costs more than
     * Winograd saves. */
    int tiles = ((s->oh + 1) / 2) * ((s->ow + 1) / 2);
    return rn_winograd_suits_prepared(s) && (long)s->mb * tiles >= MIN_TILES;
}

static int round_up(int n, int m)
{
    return (n + m - 1) / m * m;
}

size_t rn_winograd_weights_numel(int cout, int cin)
{
    return (size_t)E * round_up(cout, RN_WINO_OC) * cin;
}

#if defined(__x86_64__) && defined(__GNUC__)
/* Pairs of input channels within each block of RN_WINO_OC output channels:
 * channel rows 2q and 2q + 1 (RN_WINO_OC floats each) become RN_WINO_OC
 * BF16 pairs over row 2q. */
RN_TARGET_BF16 void rn_winograd_weights_to_bf16(float *u, int cout, int cin)
{
    int blocks = round_up(cout, RN_WINO_OC) / RN_WINO_OC;
    long rows = (long)E * blocks; /* each cin x RN_WINO_OC floats */
    const __m256i order = _mm256_setr_epi16(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7,
                                            15);
#pragma omp parallel for schedule(static)
    for (long r = 0; r < rows; r++) {
        float *block = u + (size_t)r * cin * RN_WINO_OC;
        for (int c = 0; c < cin; c += 2) {
            /* Channels c and c + 1 side by side, the second zero past cin. */
            __mmask16 mask = c + 1 < cin ? 0xffff : 0x00ff;
            __m512 both = _mm512_maskz_loadu_ps(mask, block + (size_t)c * RN_WINO_OC);
            __m256i half = (__m256i)_mm512_cvtneps_pbh(both);
            _mm256_storeu_si256((__m256i *)(block + (size_t)c * RN_WINO_OC),
                                _mm256_permutexvar_epi16(order, half));
        }
    }
}
#else
void rn_winograd_weights_to_bf16(float *u, int cout, int cin)
{
    RN_ASSERT(!"no BF16 Winograd on this CPU");
}
#endif

/* Tiles per block: the whole tile rows that fit in p->vectors vectors (at
 * most RN_WINO_TILES tiles) where a row has at most 16 tiles, so that the
 * vectors of a block never split a row; all of the vectors for wider
 * planes. */
static int block_tiles(const rn_wino_planes *p)
{
    int tw = (p->ow + 1) / 2;
    int capacity = 16 * p->vectors;
    return tw <= 16 ? capacity / tw * tw : capacity;
}

int rn_winograd_blocks(const rn_wino_planes *p)
{
    int tiles = ((p->oh + 1) / 2) * ((p->ow + 1) / 2);
    return (tiles + block_tiles(p) - 1) / block_tiles(p);
}

size_t rn_winograd_block_numel(int cin)
{
    /* V (E, cin, tiles), then M (E, RN_WINO_OC, tiles). */
    return (size_t)E * (cin + RN_WINO_OC) * RN_WINO_TILES;
}


/* ---------------------------------------------- F(4x4, 3x3), small planes */

/* Tiles along a row and down a column of a plane, 4x4 outputs each. */
static int across4(const rn_wino_planes *p)
{
    return (p->ow + 3) / 4;
}

static int down4(const rn_wino_planes *p)
{
    return (p->oh + 3) / 4;
}

/* Tile rows per vector: the whole rows that fit in 16 lanes, at most 8. */
static int rows_per_vector(int across)
{
    return 16 / across < 8 ? 16 / across : 8;
}

int rn_winograd4_suits(const rn_conv_shape *s)
{
    if (!rn_winograd_suits_prepared(s))
        return 0;
    /* Rows of up to 7 tiles, whose 31 input columns two vectors hold. At
     * least 3/4 of the computed outputs are kept and at least 3/4 of the
     * lanes used: square planes of 7, 8, 11, 12, 14 to 16 and 18 to 28. */
    int across = (s->ow + 3) / 4, down = (s->oh + 3) / 4;
    if (across > 7 || 4 * s->oh * s->ow < 3 * 16 * across * down ||
        4 * rows_per_vector(across) * across < 3 * 16)
        return 0;
    /* It wins even at 8 channels: 169 against F(2x2)'s 99 GFLOP/s forward
     * at batch 128, 14x14, 8 -> 8 channels; 398 against 251 at 32. */
    return s->ic >= 8 && s->oc >= 8 && (long)s->mb * across * down >= 64;
}

size_t rn_winograd4_weights_numel(int cout, int cin)
{
    return (size_t)E4 * round_up(cout, RN_WINO_OC) * cin;
}

size_t rn_winograd4_block_numel(int cin)
{
    /* V (E4, cin, tiles), then M (E4, 3 RN_WINO_OC, 16) or (E4, RN_WINO_OC, tiles). */
    return (size_t)E4 * (cin + RN_WINO_OC) * RN_WINO_TILES;
}

int rn_winograd4_block_rows(const rn_wino_planes *p, int mb, int threads)
{
    int per_vector = rows_per_vector(across4(p));
    long rows = (long)mb * down4(p);
    /* Three vectors of tiles per block unless that splits the tile rows
     * unevenly between the threads (more than 1/16 idle). */
    for (int nv = 3; nv > 1; nv--) {
        long block = (long)per_vector * nv;
        long blocks = (rows + block - 1) / block;
        long rounds = (blocks + threads - 1) / threads;
        if (16 * (rounds * threads * block - rows) <= rows)
            return (int)block;
    }
    return per_vector;
}

#if defined(__x86_64__) && defined(__GNUC__)

#define TARGET __attribute__((target("avx512f")))

/* U = G g G^T for 16 kernels g at once, lane by lane: g[k] is tap k of
 * each kernel. Element e goes to u[e * stride], in the lanes of `store`. */
static inline TARGET __attribute__((always_inline)) void
transform_kernels(float *u, size_t stride, const __m512 g[9], __mmask16 store)
{
    const __m512 half = _mm512_set1_ps(0.5f);
    __m512 t[4][3]; /* G g */
    for (int j = 0; j < 3; j++) {
        __m512 a = g[j], b = g[3 + j], c = g[6 + j];
        __m512 ac = _mm512_add_ps(a, c);
        t[0][j] = a;
        t[1][j] = _mm512_mul_ps(half, _mm512_add_ps(ac, b));
        t[2][j] = _mm512_mul_ps(half, _mm512_sub_ps(ac, b));
        t[3][j] = c;
    }
    for (int i = 0; i < 4; i++) { /* (G g) G^T */
        __m512 a = t[i][0], b = t[i][1], c = t[i][2];
        __m512 ac = _mm512_add_ps(a, c);
        _mm512_mask_storeu_ps(u + (i * 4 + 0) * stride, store, a);
        _mm512_mask_storeu_ps(u + (i * 4 + 1) * stride, store,
                              _mm512_mul_ps(half, _mm512_add_ps(ac, b)));
        _mm512_mask_storeu_ps(u + (i * 4 + 2) * stride, store,
                              _mm512_mul_ps(half, _mm512_sub_ps(ac, b)));
        _mm512_mask_storeu_ps(u + (i * 4 + 3) * stride, store, c);
    }
}

/* The same for F(4x4, 3x3): U = G g G^T with G's rows (1/4, 0, 0),
 * -(1, 1, 1)/6, -(1, -1, 1)/6, (1/24, 1/12, 1/6), (1/24, -1/12, 1/6) and
 * (0, 0, 1), 36 elements. */
static inline TARGET __attribute__((always_inline)) void
transform_kernels4(float *u, size_t stride, const __m512 g[9], __mmask16 store)
{
    const __m512 quarter = _mm512_set1_ps(0.25f), sixth = _mm512_set1_ps(1.0f / 6.0f);
    const __m512 twelfth = _mm512_set1_ps(1.0f / 12.0f), l24 = _mm512_set1_ps(1.0f / 24.0f);
    __m512 t[6][3]; /* G g */
    for (int j = 0; j < 3; j++) {
        __m512 a = g[j], b = g[3 + j], c = g[6 + j];
        __m512 ac = _mm512_add_ps(a, c);
        __m512 outer = _mm512_fmadd_ps(l24, a, _mm512_mul_ps(sixth, c)); /* a/24 + c/6 */
        __m512 middle = _mm512_mul_ps(twelfth, b);
        t[0][j] = _mm512_mul_ps(quarter, a);
        t[1][j] = _mm512_mul_ps(sixth, _mm512_sub_ps(_mm512_setzero_ps(), _mm512_add_ps(ac, b)));
        t[2][j] = _mm512_mul_ps(sixth, _mm512_sub_ps(b, ac));
        t[3][j] = _mm512_add_ps(outer, middle);
        t[4][j] = _mm512_sub_ps(outer, middle);
        t[5][j] = c;
    }
    for (int i = 0; i < 6; i++) { /* (G g) G^T */
        __m512 a = t[i][0], b = t[i][1], c = t[i][2];
        __m512 ac = _mm512_add_ps(a, c);
        __m512 outer = _mm512_fmadd_ps(l24, a, _mm512_mul_ps(sixth, c));
        __m512 middle = _mm512_mul_ps(twelfth, b);
        __m512 row[6] = {
            _mm512_mul_ps(quarter, a),
            _mm512_mul_ps(sixth, _mm512_sub_ps(_mm512_setzero_ps(), _mm512_add_ps(ac, b))),
            _mm512_mul_ps(sixth, _mm512_sub_ps(b, ac)),
            _mm512_add_ps(outer, middle),
            _mm512_sub_ps(outer, middle),
            c,
        };
        for (int j = 0; j < 6; j++)
            _mm512_mask_storeu_ps(u + (i * 6 + j) * stride, store, row[j]);
    }
}

/* Layout: u[e][ob][c][RN_WINO_OC] for output-channel blocks ob, so that a
 * block's 8 weights of one input channel are adjacent. Each step
 * transforms the 16 kernels of one block and two input channels, which
 * are 16 adjacent floats of every element, gathering their taps. The
 * threads split the steps: at batch 1 a serial transform of resnet18's
 * 512-channel weights costs more than the convolution. */
static TARGET void transform_weights(float *u, const float *weights, int cout, int cin,
                                     int flip, int f4)
{
    int blocks = round_up(cout, RN_WINO_OC) / RN_WINO_OC;
    int pairs = (cin + 1) / 2;
    size_t stride = (size_t)blocks * RN_WINO_OC * cin; /* between elements */
    long steps = (long)blocks * pairs;
    /* Lane l is output channel l % 8 of the block and input channel l / 8
     * of the pair. Tap k of kernel (o, c) is weights[(o cin + c) 9 + k], or
     * with flip weights[(c cout + o) 9 + 8 - k]. */
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i o_lane = _mm512_and_si512(lane, _mm512_set1_epi32(RN_WINO_OC - 1));
    const __m512i c_lane = _mm512_srli_epi32(lane, 3);
#pragma omp parallel for schedule(static)
    for (long step = 0; step < steps; step++) {
        int ob = (int)(step / pairs), c = (int)(step % pairs) * 2;
        __m512i o = _mm512_add_epi32(o_lane, _mm512_set1_epi32(ob * RN_WINO_OC));
        __m512i ci = _mm512_add_epi32(c_lane, _mm512_set1_epi32(c));
        __mmask16 store = c + 1 < cin ? 0xffff : 0x00ff;
        __mmask16 valid = store & _mm512_cmplt_epi32_mask(o, _mm512_set1_epi32(cout));
        __m512i first = flip ? _mm512_mullo_epi32(
                                   _mm512_add_epi32(_mm512_mullo_epi32(ci, _mm512_set1_epi32(cout)), o),
                                   _mm512_set1_epi32(9))
                             : _mm512_mullo_epi32(
                                   _mm512_add_epi32(_mm512_mullo_epi32(o, _mm512_set1_epi32(cin)), ci),
                                   _mm512_set1_epi32(9));
        __m512 g[9];
        for (int k = 0; k < 9; k++) {
            __m512i at_k = _mm512_add_epi32(first, _mm512_set1_epi32(flip ? 8 - k : k));
            g[k] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), valid, at_k, weights, 4);
        }
        if (f4)
            transform_kernels4(u + ((size_t)ob * cin + c) * RN_WINO_OC, stride, g, store);
        else
            transform_kernels(u + ((size_t)ob * cin + c) * RN_WINO_OC, stride, g, store);
    }
}

void rn_winograd_transform_weights(float *u, const float *weights, int cout, int cin, int flip)
{
    transform_weights(u, weights, cout, cin, flip, 0);
}

void rn_winograd4_transform_weights(float *u, const float *weights, int cout, int cin,
                                    int flip)
{
    transform_weights(u, weights, cout, cin, flip, 1);
}


/* Lanes of a 16-float load from column x0 of a row that lie inside it,
 * columns [0, w): the others read as the zero padding. */
static inline TARGET __attribute__((always_inline)) __mmask16 inside(int x0, int w)
{
    int lo = x0 < 0 ? -x0 : 0, hi = w - x0;
    return (__mmask16)(rn_first_lanes(hi > 0 ? hi : 0) & ~rn_first_lanes(lo));
}

/* The address `offset` floats from base, which may lie before the plane
 * when only masked lanes reach it. */
static inline __attribute__((always_inline)) const float *at(const float *base,
                                                              ptrdiff_t offset)
{
    return (const float *)((uintptr_t)base + (uintptr_t)offset * sizeof(float));
}

/* The 4 columns of 16 tiles in one row from column x0 on, row NULL for a
 * padding row: d[j][t] = row[x0 + 2 t + j], lanes outside m[] zero (m for
 * the loads at x0, x0 + 16, x0 + 2 and x0 + 18). */
static inline TARGET __attribute__((always_inline)) void
load_row(__m512 d[4], const float *row, int x0, const __mmask16 m[4])
{
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                           28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    if (!row) {
        for (int j = 0; j < 4; j++)
            d[j] = _mm512_setzero_ps();
        return;
    }
    __m512 a = _mm512_maskz_loadu_ps(m[0], at(row, x0));
    __m512 b = _mm512_maskz_loadu_ps(m[1], at(row, x0 + 16));
    __m512 c = _mm512_maskz_loadu_ps(m[2], at(row, x0 + 2));
    __m512 e = _mm512_maskz_loadu_ps(m[3], at(row, x0 + 18));
    d[0] = _mm512_permutex2var_ps(a, even, b);
    d[1] = _mm512_permutex2var_ps(a, odd, b);
    d[2] = _mm512_permutex2var_ps(c, even, e);
    d[3] = _mm512_permutex2var_ps(c, odd, e);
}

/* Row y of a plane of h rows, w floats each, or NULL for the padding rows
 * above and below it. */
static inline __attribute__((always_inline)) const float *plane_row(const float *x, int y,
                                                                     int h, int w)
{
    return y >= 0 && y < h ? x + (size_t)y * w : NULL;
}

/* V = B^T d B for the 16 tiles of d; element e goes to v[e * stride]. */
static inline TARGET __attribute__((always_inline)) void
transform_input(float *v, size_t stride, __m512 d[4][4], __mmask16 mask)
{
    __m512 t[4][4];
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

/* V for up to 16 tiles of one tile row of a plane x (h x w): tile row ty
 * from tile column tx on. */
static inline TARGET __attribute__((always_inline)) void
input_tiles(float *v, size_t stride, const float *x, int h, int w, int ty, int tx,
            __mmask16 mask)
{
    int x0 = 2 * tx - 1;
    const __mmask16 m[4] = {inside(x0, w), inside(x0 + 16, w), inside(x0 + 2, w),
                            inside(x0 + 18, w)};
    __m512 d[4][4];
    for (int i = 0; i < 4; i++)
        load_row(d[i], plane_row(x, 2 * ty - 1 + i, h, w), x0, m);
    transform_input(v, stride, d, mask);
}

/* Permutes that put up to 4 tile rows of tw <= 8 tiles into one vector,
 * row after row, from the 16 floats of each row that input_rows loads.
 * even[0] takes the even columns of a group's rows 0 and 1. even[1] takes
 * those of rows 2 and 3 into the lanes of `upper`. odd does the same for
 * the odd columns. Lane 16 + k of a two-vector permute is lane k of its
 * second source. */
typedef struct row_group {
    __m512i even[2], odd[2];
    __mmask16 upper;
    int rows; /* tile rows per vector */
} row_group;

static TARGET row_group group_of(int tw)
{
    row_group g;
    int even[2][16] = {{0}}, odd[2][16] = {{0}};
    g.rows = 16 / tw < 4 ? 16 / tw : 4;
    for (int lane = 0; lane < 16; lane++) {
        int row = lane / tw, tx = lane % tw;
        if (row >= g.rows)
            continue;
        int pair = row / 2, source = (row % 2) * 16;
        even[pair][lane] = source + 2 * tx;
        odd[pair][lane] = source + 2 * tx + 1;
    }
    for (int k = 0; k < 2; k++) {
        g.even[k] = _mm512_loadu_si512(even[k]);
        g.odd[k] = _mm512_loadu_si512(odd[k]);
    }
    g.upper = (__mmask16)(rn_first_lanes(4 * tw) & ~rn_first_lanes(2 * tw));
    return g;
}

static inline TARGET __attribute__((always_inline)) __m512
gather_rows(const __m512 r[4], __m512i low, __m512i high, const row_group *g)
{
    __m512 v = _mm512_permutex2var_ps(r[0], low, r[1]);
    if (g->rows > 2)
        v = _mm512_mask_blend_ps(g->upper, v, _mm512_permutex2var_ps(r[2], high, r[3]));
    return v;
}

/* V for `rows` whole tile rows of tw <= 8 tiles from tile row ty of a
 * plane x (h x w, w <= 16). Each row is loaded from column -1 (the tiles'
 * columns 0 and 1) and from column 1 (their columns 2 and 3). */
static inline TARGET __attribute__((always_inline)) void
input_rows(float *v, size_t stride, const float *x, int h, int w, int ty, int tw, int rows,
           const row_group *g)
{
    const __mmask16 left = inside(-1, w), right = inside(1, w);
    __m512 d[4][4];
    for (int i = 0; i < 4; i++) {
        __m512 r[4], shifted[4];
        for (int k = 0; k < 4; k++) {
            /* Rows past the group's end repeat row 0: their lanes are not stored. */
            const float *row = plane_row(x, 2 * (ty + (k < rows ? k : 0)) - 1 + i, h, w);
            r[k] = row ? _mm512_maskz_loadu_ps(left, at(row, -1)) : _mm512_setzero_ps();
            shifted[k] = row ? _mm512_maskz_loadu_ps(right, row + 1) : _mm512_setzero_ps();
        }
        d[i][0] = gather_rows(r, g->even[0], g->even[1], g);
        d[i][1] = gather_rows(r, g->odd[0], g->odd[1], g);
        d[i][2] = gather_rows(shifted, g->even[0], g->even[1], g);
        d[i][3] = gather_rows(shifted, g->odd[0], g->odd[1], g);
    }
    transform_input(v, stride, d, rn_first_lanes(rows * tw));
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

/* V (E, channels, row) of tiles [t0, t1) for channels [0, cin), `stride`
 * floats between elements and `row` between channels. */
static TARGET void input_block(float *v, size_t stride, int row, const float *src, int cin,
                               const rn_wino_planes *p, int t0, int t1)
{
    int tw = (p->ow + 1) / 2;
    /* The rows the block reads in each plane: fetched AHEAD channels ahead. */
    int y0 = 2 * (t0 / tw) - 1, y1 = 2 * ((t1 - 1) / tw) + 3;
    if (y0 < 0)
        y0 = 0;
    if (y1 > p->oh)
        y1 = p->oh;
    size_t start = (size_t)y0 * p->ow, lines = ((size_t)(y1 - y0) * p->ow + 15) / 16;
#define FETCH_AHEAD(c)                                                                  \
    do {                                                                                \
        if ((c) + AHEAD < cin) {                                                        \
            const char *ahead = (const char *)(src + ((c) + AHEAD) * p->plane + start); \
            for (size_t l = 0; l < lines; l++)                                          \
                _mm_prefetch(ahead + 64 * l, _MM_HINT_T0);                              \
        }                                                                               \
    } while (0)
    if (tw <= 8) {
        /* Blocks hold whole tile rows (block_tiles). */
        row_group g = group_of(tw);
        for (int c = 0; c < cin; c++) {
            const float *x = src + c * p->plane;
            float *vc = v + (size_t)c * row - t0;
            FETCH_AHEAD(c);
            for (int t = t0; t < t1; t += g.rows * tw) {
                int rows = (t1 - t) / tw < g.rows ? (t1 - t) / tw : g.rows;
                input_rows(vc + t, stride, x, p->oh, p->ow, t / tw, tw, rows, &g);
            }
        }
        return;
    }
    for (int c = 0; c < cin; c++) {
        const float *x = src + c * p->plane;
        float *vc = v + (size_t)c * row - t0;
        FETCH_AHEAD(c);
        FOR_TILE_RUNS(t0, t1, tw, {
            input_tiles(vc + first, stride, x, p->oh, p->ow, ty, tx, rn_first_lanes(n));
        });
    }
#undef FETCH_AHEAD
}

/* Write nb blocks of RN_WINO_OC rows of nv accumulator vectors into M,
 * rows `row` floats apart. */
static inline TARGET __attribute__((always_inline)) void
store_products(float *m, int row, __m512 acc[3 * RN_WINO_OC][3], const int nv, const int nb)
{
    for (int i = 0; i < nb * RN_WINO_OC; i++)
        for (int j = 0; j < nv; j++)
            _mm512_storeu_ps(m + i * row + 16 * j, acc[i][j]);
}

/* M[i][t] = sum over c of U[c][i] V[c][t] for nb blocks of 8 channels i
 * (u_block floats apart in U) and nv * 16 tiles t; M's rows are row floats
 * apart. Blocks of one vector of tiles take 3 channel blocks, so that every
 * block keeps 24 accumulators. */
static inline TARGET __attribute__((always_inline)) void
product(float *m, int row, const float *u, size_t u_block, const float *v, int cin,
        const int nv, const int nb)
{
    __m512 acc[3 * RN_WINO_OC][3];
    for (int i = 0; i < nb * RN_WINO_OC; i++)
        for (int j = 0; j < nv; j++)
            acc[i][j] = _mm512_setzero_ps();
    for (int c = 0; c < cin; c++) {
        const float *vc = v + (size_t)c * RN_WINO_TILES;
        __m512 x[3];
        for (int j = 0; j < nv; j++)
            x[j] = _mm512_loadu_ps(vc + 16 * j);
        for (int b = 0; b < nb; b++) {
            const float *uc = u + b * u_block + (size_t)c * RN_WINO_OC;
            for (int i = 0; i < RN_WINO_OC; i++) {
                __m512 w = _mm512_set1_ps(uc[i]);
                for (int j = 0; j < nv; j++)
                    acc[b * RN_WINO_OC + i][j] = _mm512_fmadd_ps(w, x[j], acc[b * RN_WINO_OC + i][j]);
            }
        }
    }
    store_products(m, row, acc, nv, nb);
}

/* The same with BF16 pairs of channels: V's channel rows 2q and 2q + 1
 * and U's as rn_bf16_pair_rows and rn_winograd_weights_to_bf16 leave them,
 * each vdpbf16ps adding two channels' products. */
static inline RN_TARGET_BF16 __attribute__((always_inline)) void
product_bf16(float *m, int row, const float *u, size_t u_block, const float *v, int cin,
             const int nv, const int nb)
{
    __m512 acc[3 * RN_WINO_OC][3];
    for (int i = 0; i < nb * RN_WINO_OC; i++)
        for (int j = 0; j < nv; j++)
            acc[i][j] = _mm512_setzero_ps();
    for (int c = 0; c < cin; c += 2) {
        const float *vc = v + (size_t)c * RN_WINO_TILES;
        __m512bh x[3];
        for (int j = 0; j < nv; j++)
            x[j] = (__m512bh)_mm512_loadu_ps(vc + 16 * j);
        for (int b = 0; b < nb; b++) {
            const int *uc = (const int *)(u + b * u_block + (size_t)c * RN_WINO_OC);
            for (int i = 0; i < RN_WINO_OC; i++) {
                __m512bh w = (__m512bh)_mm512_set1_epi32(uc[i]);
                for (int j = 0; j < nv; j++)
                    acc[b * RN_WINO_OC + i][j] =
                        _mm512_dpbf16_ps(acc[b * RN_WINO_OC + i][j], w, x[j]);
            }
        }
    }
    store_products(m, row, acc, nv, nb);
}

#define PRODUCT(nv, nb)                                                                 \
    static TARGET void product_##nv##_##nb(float *m, int row, const float *u,          \
                                           size_t u_block, const float *v, int cin)    \
    {                                                                                   \
        product(m, row, u, u_block, v, cin, nv, nb);                                    \
    }                                                                                   \
    static RN_TARGET_BF16 void product_bf16_##nv##_##nb(float *m, int row, const float *u, \
                                                        size_t u_block, const float *v,    \
                                                        int cin)                           \
    {                                                                                   \
        product_bf16(m, row, u, u_block, v, cin, nv, nb);                               \
    }
PRODUCT(3, 1)
PRODUCT(2, 1)
PRODUCT(1, 1)
PRODUCT(1, 2)
PRODUCT(1, 3)
#undef PRODUCT

/* M[e] = U[e] V[e] for `elements` elements e, nb channel blocks from
 * u_first and nv vectors of tiles (as product() describes). */
static TARGET void block_products(float *m, size_t m_stride, int row, const float *u_first,
                                  size_t u_block, size_t u_stride, const float *v,
                                  size_t v_stride, int cin, int nv, int nb, int bf16,
                                  int elements)
{
    for (int e = 0; e < elements; e++) {
        float *me = m + e * m_stride;
        const float *ue = u_first + e * u_stride, *ve = v + e * v_stride;
        if (bf16 && nv == 3)
            product_bf16_3_1(me, row, ue, u_block, ve, cin);
        else if (bf16 && nv == 2)
            product_bf16_2_1(me, row, ue, u_block, ve, cin);
        else if (bf16 && nb == 3)
            product_bf16_1_3(me, row, ue, u_block, ve, cin);
        else if (bf16 && nb == 2)
            product_bf16_1_2(me, row, ue, u_block, ve, cin);
        else if (bf16)
            product_bf16_1_1(me, row, ue, u_block, ve, cin);
        else if (nv == 3)
            product_3_1(me, row, ue, u_block, ve, cin);
        else if (nv == 2)
            product_2_1(me, row, ue, u_block, ve, cin);
        else if (nb == 3)
            product_1_3(me, row, ue, u_block, ve, cin);
        else if (nb == 2)
            product_1_2(me, row, ue, u_block, ve, cin);
        else
            product_1_1(me, row, ue, u_block, ve, cin);
    }
}

/* Y = A^T M A + bias for the tiles of 16 lanes of M (element e at
 * m[e * stride]): y[i] is output row i of the tiles, the 2 columns of
 * each tile side by side, 32 floats in two vectors. */
static inline TARGET __attribute__((always_inline)) void
transform_output(__m512 y[2][2], const float *m, size_t stride, __mmask16 mask, float bias)
{
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
    __m512 b = _mm512_set1_ps(bias);
    for (int i = 0; i < 2; i++) { /* (A^T M) A: columns, then interleave */
        __m512 y0 = _mm512_add_ps(_mm512_add_ps(s[i][0], s[i][1]), _mm512_add_ps(s[i][2], b));
        __m512 y1 = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(s[i][1], s[i][2]), s[i][3]), b);
        y[i][0] = _mm512_permutex2var_ps(y0, lo, y1);
        y[i][1] = _mm512_permutex2var_ps(y0, hi, y1);
    }
}

/* Store the lanes `mask` of v at row, or add them to it. */
static inline TARGET __attribute__((always_inline)) void
store_lanes(float *row, __mmask16 mask, __m512 v, int accumulate)
{
    if (accumulate)
        v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, row));
    _mm512_mask_storeu_ps(row, mask, v);
}

/* Y for up to 16 tiles of a tile row, into the output rows at out and
 * out + ow. Each row takes the `cols` floats of the n tiles: 2n, or one
 * less at an odd plane's edge. Only the first `rows` rows are written: 2,
 * or 1 at an odd plane's last tile row. */
static inline TARGET __attribute__((always_inline)) void
output_tiles(float *out, int ow, const float *m, size_t stride, int n, int cols, int rows,
             float bias, int accumulate)
{
    __m512 y[2][2];
    transform_output(y, m, stride, rn_first_lanes(n), bias);
    __mmask16 m_lo = rn_first_lanes(cols), m_hi = rn_first_lanes(cols > 16 ? cols - 16 : 0);
    for (int i = 0; i < rows; i++) {
        store_lanes(out + (size_t)i * ow, m_lo, y[i][0], accumulate);
        store_lanes(out + (size_t)i * ow + 16, m_hi, y[i][1], accumulate);
    }
}

/* Y for `rows` whole tile rows of tw <= 8 tiles, packed in 16 lanes as
 * input_rows packs them, into the output rows from out; `height` output
 * rows are left from out on. */
static inline TARGET __attribute__((always_inline)) void
output_rows(float *out, int ow, const float *m, size_t stride, int tw, int rows, int height,
            float bias, int accumulate)
{
    __m512 y[2][2];
    transform_output(y, m, stride, rn_first_lanes(rows * tw), bias);
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __mmask16 mask = rn_first_lanes(ow);
    for (int r = 0; r < rows; r++) {
        /* Tile row r's 2 tw floats start at float 2 r tw of the 32. */
        __m512i from = _mm512_add_epi32(lane, _mm512_set1_epi32(2 * r * tw));
        for (int i = 0; i < 2 && 2 * r + i < height; i++)
            store_lanes(out + (size_t)(2 * r + i) * ow, mask,
                        _mm512_permutex2var_ps(y[i][0], from, y[i][1]), accumulate);
    }
}

TARGET void rn_winograd_block(float *dst, const float *src, const float *u, int cin,
                              int cout, const rn_wino_planes *p, const float *bias,
                              int accumulate, int block, int o0, int o1, int bf16,
                              float *scratch)
{
    int tw = (p->ow + 1) / 2, tiles = ((p->oh + 1) / 2) * tw;
    int t0 = block * block_tiles(p);
    int t1 = t0 + block_tiles(p) < tiles ? t0 + block_tiles(p) : tiles;
    int nv = (t1 - t0 + 15) / 16;
    float *v = scratch, *m = scratch + (size_t)E * cin * RN_WINO_TILES;
    size_t v_stride = (size_t)cin * RN_WINO_TILES;          /* between elements of V */
    size_t m_stride = (size_t)RN_WINO_OC * RN_WINO_TILES;   /* and of M */
    int blocks = round_up(cout, RN_WINO_OC) / RN_WINO_OC;
    size_t u_block = (size_t)cin * RN_WINO_OC;
    size_t u_stride = (size_t)blocks * u_block;
    /* One vector of tiles: 3 channel blocks at a time, M rows of 16. */
    int group = nv == 1 ? 3 : 1, row = nv == 1 ? 16 : RN_WINO_TILES;

    int ob_end = (o1 + RN_WINO_OC - 1) / RN_WINO_OC;
    if (ob_end > blocks)
        ob_end = blocks;
    input_block(v, v_stride, RN_WINO_TILES, src, cin, p, t0, t1);
    if (bf16)
        for (int e = 0; e < E; e++)
            rn_bf16_pair_rows(v + e * v_stride, RN_WINO_TILES, cin, 16 * nv);
    for (int ob = o0 / RN_WINO_OC; ob < ob_end; ob += group) {
        int nb = ob_end - ob < group ? ob_end - ob : group;
        block_products(m, m_stride, row, u + ob * u_block, u_block, u_stride, v, v_stride, cin,
                       nv, nb, bf16, E);
        int rows = cout - ob * RN_WINO_OC;
        if (rows > nb * RN_WINO_OC)
            rows = nb * RN_WINO_OC;
        for (int i = 0; i < rows; i++) {
            int o = ob * RN_WINO_OC + i;
            float *plane = dst + (size_t)o * p->oh * p->ow;
            const float *mi = m + i * row - t0;
            float b = bias ? bias[o] : 0.0f;
            if (tw <= 8) {
                int per = 16 / tw < 4 ? 16 / tw : 4; /* tile rows per vector */
                for (int t = t0; t < t1; t += per * tw) {
                    int count = (t1 - t) / tw < per ? (t1 - t) / tw : per;
                    int top = 2 * (t / tw);
                    output_rows(plane + (size_t)top * p->ow, p->ow, mi + t, m_stride, tw, count,
                                p->oh - top, b, accumulate);
                }
                continue;
            }
            FOR_TILE_RUNS(t0, t1, tw, {
                int cols = p->ow - 2 * tx < 2 * n ? p->ow - 2 * tx : 2 * n;
                int rows_left = p->oh - 2 * ty < 2 ? p->oh - 2 * ty : 2;
                output_tiles(plane + (size_t)2 * ty * p->ow + 2 * tx, p->ow, mi + first,
                             m_stride, n, cols, rows_left, b, accumulate);
            });
        }
    }
}


/* V = B^T d B along one direction of 6 vectors, B^T's rows (4, 0, -5, 0,
 * 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0), (0, -2, -1, 2, 1, 0),
 * (0, 2, -1, -2, 1, 0) and (0, 4, 0, -5, 0, 1). */
static inline TARGET __attribute__((always_inline)) void
input_transform6(__m512 o[6], const __m512 d[6])
{
    const __m512 two = _mm512_set1_ps(2.0f), four = _mm512_set1_ps(4.0f);
    const __m512 five = _mm512_set1_ps(5.0f);
    __m512 a = _mm512_fnmadd_ps(four, d[2], d[4]);   /* d4 - 4 d2 */
    __m512 b = _mm512_fnmadd_ps(four, d[1], d[3]);   /* d3 - 4 d1 */
    __m512 c = _mm512_sub_ps(d[4], d[2]);
    __m512 e = _mm512_mul_ps(two, _mm512_sub_ps(d[3], d[1]));
    o[0] = _mm512_fnmadd_ps(five, d[2], _mm512_fmadd_ps(four, d[0], d[4]));
    o[1] = _mm512_add_ps(a, b);
    o[2] = _mm512_sub_ps(a, b);
    o[3] = _mm512_add_ps(c, e);
    o[4] = _mm512_sub_ps(c, e);
    o[5] = _mm512_fnmadd_ps(five, d[3], _mm512_fmadd_ps(four, d[1], d[5]));
}

/* Y = A^T M A along one direction: 6 vectors to 4, A^T's rows (1, 1, 1,
 * 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1). */
static inline TARGET __attribute__((always_inline)) void
output_transform6(__m512 y[4], const __m512 m[6])
{
    __m512 a = _mm512_add_ps(m[1], m[2]), b = _mm512_sub_ps(m[1], m[2]);
    __m512 c = _mm512_add_ps(m[3], m[4]), d = _mm512_sub_ps(m[3], m[4]);
    y[0] = _mm512_add_ps(_mm512_add_ps(m[0], a), c);
    y[1] = _mm512_fmadd_ps(_mm512_set1_ps(2.0f), d, b);
    y[2] = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), c, a);
    y[3] = _mm512_fmadd_ps(_mm512_set1_ps(8.0f), d, _mm512_add_ps(b, m[5]));
}

/* The sources of one vector's lanes. Lane l is tile l % across of source
 * row l / across. Source row k is one tile row of image[k] (NULL past the
 * block), whose 6 input rows start at row top[k]. */
typedef struct lanes4 {
    const float *image[8];
    int top[8];
    __m512i pick[6];   /* per column j: lane l's float in its loads */
    __mmask16 part[8]; /* the lanes that each permute fills */
} lanes4;

/* How a vector gathers its columns. Rows of up to 3 tiles need 13 floats,
 * loaded from column -1, so one permute takes two rows. Rows of 4 tiles
 * load from column -1 for the tiles' columns 0 to 3 and from column 3 for
 * columns 4 and 5, again two rows a permute. Rows of 5 to 7 tiles load 32
 * floats from column -1, one row a permute. */
enum { PAIRS, PAIRS_SPLIT, WIDE };

static inline int gather_mode(int across)
{
    if (across <= 3)
        return PAIRS;
    if (across == 4)
        return PAIRS_SPLIT;
    return WIDE;
}

/* Source rows of the vector holding the batch's tile rows [r, r + n) of
 * planes with `down` tile rows per image. */
static inline TARGET __attribute__((always_inline)) void
lanes4_of(lanes4 *ln, const float *src, size_t src_image, long r, int n, int down,
          const int across)
{
    const int mode = gather_mode(across), rows = rows_per_vector(across);
    for (int k = 0; k < rows; k++) {
        long row = r + k;
        ln->image[k] = k < n ? src + (row / down) * src_image : NULL;
        ln->top[k] = 4 * (int)(row % down) - 1;
    }
    int pick[6][16] = {{0}};
    for (int l = 0; l < rows * across; l++) {
        int k = l / across, tx = l % across;
        for (int j = 0; j < 6; j++) {
            int col = 4 * tx + j; /* from column -1 */
            if (mode == PAIRS_SPLIT && j >= 4)
                col -= 4; /* from column 3 */
            pick[j][l] = mode == WIDE ? col : 16 * (k % 2) + col;
        }
    }
    for (int j = 0; j < 6; j++)
        ln->pick[j] = _mm512_loadu_si512(pick[j]);
    int per_permute = mode == WIDE ? 1 : 2;
    for (int q = 0; q * per_permute < rows; q++)
        ln->part[q] = (__mmask16)(rn_first_lanes((q + 1) * per_permute * across) &
                                  ~rn_first_lanes(q * per_permute * across));
}

/* V for one vector of tiles and one channel (plane offset `plane` in each
 * image), into the lanes `mask` of v[e * stride]. tmp has room for 36
 * vectors. */
static inline TARGET __attribute__((always_inline)) void
input4_vector(float *v, size_t stride, const lanes4 *ln, size_t plane, int h, int w,
              __mmask16 mask, float *tmp, const int across)
{
    const int mode = gather_mode(across), rows = rows_per_vector(across);
    const int permutes = mode == WIDE ? rows : (rows + 1) / 2;
    const __mmask16 m0 = inside(-1, w), m1 = inside(mode == WIDE ? 15 : 3, w);
    for (int r = 0; r < 6; r++) {
        __m512 low[8], high[8], d[6], o[6];
        for (int k = 0; k < rows; k++) {
            int y = ln->top[k] + r;
            const float *row = ln->image[k] && y >= 0 && y < h
                                   ? ln->image[k] + plane + (size_t)y * w
                                   : NULL;
            low[k] = row ? _mm512_maskz_loadu_ps(m0, at(row, -1)) : _mm512_setzero_ps();
            if (mode != PAIRS)
                high[k] = row ? _mm512_maskz_loadu_ps(m1, row + (mode == WIDE ? 15 : 3))
                              : _mm512_setzero_ps();
        }
        if (mode == PAIRS && rows % 2)
            low[rows] = _mm512_setzero_ps();
        for (int j = 0; j < 6; j++) {
            __m512 x = _mm512_setzero_ps();
            for (int q = 0; q < permutes; q++) {
                __m512 part;
                if (mode == WIDE)
                    part = _mm512_permutex2var_ps(low[q], ln->pick[j], high[q]);
                else {
                    const __m512 *from = mode == PAIRS_SPLIT && j >= 4 ? high : low;
                    part = _mm512_permutex2var_ps(from[2 * q], ln->pick[j], from[2 * q + 1]);
                }
                x = q == 0 ? part : _mm512_mask_mov_ps(x, ln->part[q], part);
            }
            d[j] = x;
        }
        input_transform6(o, d); /* along the row */
        for (int j = 0; j < 6; j++)
            _mm512_store_ps(tmp + (r * 6 + j) * 16, o[j]);
    }
    for (int j = 0; j < 6; j++) { /* down the columns */
        __m512 d[6], o[6];
        for (int r = 0; r < 6; r++)
            d[r] = _mm512_load_ps(tmp + (r * 6 + j) * 16);
        input_transform6(o, d);
        for (int i = 0; i < 6; i++)
            _mm512_mask_storeu_ps(v + (i * 6 + j) * stride, mask, o[i]);
    }
}

/* V of the batch's tile rows [r0, r1), rows_per_vector() to a vector. */
static inline TARGET __attribute__((always_inline)) void
input4_block(float *v, size_t stride, const float *src, size_t src_image, long r0, long r1,
             int cin, const rn_wino_planes *p, const int across)
{
    float tmp[E4 * 16] __attribute__((aligned(64)));
    int rows = rows_per_vector(across);
    for (long r = r0, q = 0; r < r1; r += rows, q++) {
        int n = r1 - r < rows ? (int)(r1 - r) : rows;
        lanes4 ln;
        lanes4_of(&ln, src, src_image, r, n, down4(p), across);
        __mmask16 mask = rn_first_lanes(n * across);
        for (int c = 0; c < cin; c++)
            input4_vector(v + (size_t)c * RN_WINO_TILES + 16 * q, stride, &ln,
                          (size_t)c * p->plane, p->oh, p->ow, mask, tmp, across);
    }
}

#define INPUT4(across)                                                                   \
    static TARGET void input4_block_##across(float *v, size_t stride, const float *src,   \
                                             size_t src_image, long r0, long r1, int cin, \
                                             const rn_wino_planes *p)                     \
    {                                                                                     \
        input4_block(v, stride, src, src_image, r0, r1, cin, p, across);                  \
    }
INPUT4(2)
INPUT4(3)
INPUT4(4)
INPUT4(5)
INPUT4(6)
INPUT4(7)
#undef INPUT4

/* Y = A^T M A + bias for one vector of tiles of one output channel: y[i][c]
 * is column c of output row i of every lane's tile. */
static inline TARGET __attribute__((always_inline)) void
output4_tiles(__m512 y[4][4], const float *m, size_t stride, float bias)
{
    __m512 s[4][6];
    for (int j = 0; j < 6; j++) { /* down the columns */
        __m512 x[6], t[4];
        for (int r = 0; r < 6; r++)
            x[r] = _mm512_loadu_ps(m + (r * 6 + j) * stride);
        output_transform6(t, x);
        for (int i = 0; i < 4; i++)
            s[i][j] = t[i];
    }
    const __m512 b = _mm512_set1_ps(bias);
    for (int i = 0; i < 4; i++) { /* along the rows */
        output_transform6(y[i], s[i]);
        for (int c = 0; c < 4; c++)
            y[i][c] = _mm512_add_ps(y[i][c], b);
    }
}

/* 16 output floats of row i from first_lane's tile on: lane L is column
 * L % 4 of tile L / 4, built from the 4 columns' vectors with two
 * permutes, columns 0 and 1, then 2 and 3. */
static inline TARGET __attribute__((always_inline)) __m512
output4_row(__m512 y[4], int first_lane)
{
    const __m512i lane = _mm512_setr_epi32(0, 16, 0, 16, 1, 17, 1, 17, 2, 18, 2, 18, 3, 19, 3,
                                           19);
    __m512i pick = _mm512_add_epi32(lane, _mm512_set1_epi32(first_lane));
    __m512 low = _mm512_permutex2var_ps(y[0], pick, y[1]);
    __m512 high = _mm512_permutex2var_ps(y[2], pick, y[3]);
    return _mm512_mask_mov_ps(low, (__mmask16)0xcccc, high);
}

/* Output rows of one vector of the batch's tile rows [r, r + n) for output
 * channel o (plane offset `plane` in each image). */
static inline TARGET __attribute__((always_inline)) void
output4_vector(float *dst, size_t dst_image, size_t plane, long r, int n, const float *m,
               size_t stride, const rn_wino_planes *p, float bias, int accumulate,
               const int across)
{
    __m512 y[4][4];
    output4_tiles(y, m, stride, bias);
    int down = down4(p), oh = p->oh, ow = p->ow;
    const __mmask16 first = rn_first_lanes(ow), second = rn_first_lanes(ow > 16 ? ow - 16 : 0);
    if (across == 2 && down == 2) {
        /* Tile rows 2k and 2k + 1 of a vector are one image's (vectors
         * start at even rows): one permute builds both rows' 8 floats. */
        for (int k = 0; 2 * k < n; k++) {
            long row = r + 2 * k;
            float *image = dst + (row / down) * dst_image + plane;
            int top = 4 * (int)(row % down);
            for (int i = 0; i < 4; i++) {
                __m512 both = output4_row(y[i], 4 * k);
                /* Lanes 0-7 are tile row 2k (tiles 4k and 4k + 1), and
                 * lanes 8-15 tile row 2k + 1, 4 output rows further down. */
                if (top + i < oh)
                    store_lanes(image + (size_t)(top + i) * ow, first, both, accumulate);
                if (4 + top + i < oh)
                    store_lanes(image + (size_t)(top + 4 + i) * ow, first,
                                _mm512_shuffle_f32x4(both, both, 0xee), accumulate);
            }
        }
        return;
    }
    for (int k = 0; k < n; k++) {
        long row = r + k;
        float *image = dst + (row / down) * dst_image + plane;
        int top = 4 * (int)(row % down);
        for (int i = 0; i < 4 && top + i < oh; i++) {
            float *out = image + (size_t)(top + i) * ow;
            store_lanes(out, first, output4_row(y[i], k * across), accumulate);
            if (ow > 16)
                store_lanes(out + 16, second, output4_row(y[i], k * across + 4), accumulate);
        }
    }
}

#define OUTPUT4(across)                                                                   \
    static TARGET void output4_vector_##across(float *dst, size_t dst_image, size_t plane, \
                                               long r, int n, const float *m,             \
                                               size_t stride, const rn_wino_planes *p,    \
                                               float bias, int accumulate)                \
    {                                                                                     \
        output4_vector(dst, dst_image, plane, r, n, m, stride, p, bias, accumulate, across); \
    }
OUTPUT4(2)
OUTPUT4(3)
OUTPUT4(4)
OUTPUT4(5)
OUTPUT4(6)
OUTPUT4(7)
#undef OUTPUT4

TARGET void rn_winograd4_block(float *dst, size_t dst_image, const float *src,
                               size_t src_image, long r0, long r1, const float *u, int cin,
                               int cout, const rn_wino_planes *p, const float *bias,
                               int accumulate, float *scratch)
{
    int across = across4(p), per_vector = rows_per_vector(across);
    int nv = (int)((r1 - r0 + per_vector - 1) / per_vector);
    RN_ASSERT(nv <= 3);
    float *v = scratch, *m = scratch + (size_t)E4 * cin * RN_WINO_TILES;
    size_t v_stride = (size_t)cin * RN_WINO_TILES;
    size_t m_stride = (size_t)RN_WINO_OC * RN_WINO_TILES;
    int blocks = round_up(cout, RN_WINO_OC) / RN_WINO_OC;
    size_t u_block = (size_t)cin * RN_WINO_OC;
    size_t u_stride = (size_t)blocks * u_block;
    int group = nv == 1 ? 3 : 1, row = nv == 1 ? 16 : RN_WINO_TILES;

    switch (across) {
    case 2: input4_block_2(v, v_stride, src, src_image, r0, r1, cin, p); break;
    case 3: input4_block_3(v, v_stride, src, src_image, r0, r1, cin, p); break;
    case 4: input4_block_4(v, v_stride, src, src_image, r0, r1, cin, p); break;
    case 5: input4_block_5(v, v_stride, src, src_image, r0, r1, cin, p); break;
    case 6: input4_block_6(v, v_stride, src, src_image, r0, r1, cin, p); break;
    default: input4_block_7(v, v_stride, src, src_image, r0, r1, cin, p); break;
    }
    for (int ob = 0; ob < blocks; ob += group) {
        int nb = blocks - ob < group ? blocks - ob : group;
        block_products(m, m_stride, row, u + ob * u_block, u_block, u_stride, v, v_stride, cin,
                       nv, nb, 0, E4);
        int rows = cout - ob * RN_WINO_OC;
        if (rows > nb * RN_WINO_OC)
            rows = nb * RN_WINO_OC;
        for (int i = 0; i < rows; i++) {
            int o = ob * RN_WINO_OC + i;
            float b = bias ? bias[o] : 0.0f;
            size_t plane = (size_t)o * p->oh * p->ow;
            for (int q = 0; q < nv; q++) {
                long r = r0 + (long)q * per_vector;
                int n = r1 - r < per_vector ? (int)(r1 - r) : per_vector;
                const float *mq = m + i * row + 16 * q;
                switch (across) {
                case 2: output4_vector_2(dst, dst_image, plane, r, n, mq, m_stride, p, b, accumulate); break;
                case 3: output4_vector_3(dst, dst_image, plane, r, n, mq, m_stride, p, b, accumulate); break;
                case 4: output4_vector_4(dst, dst_image, plane, r, n, mq, m_stride, p, b, accumulate); break;
                case 5: output4_vector_5(dst, dst_image, plane, r, n, mq, m_stride, p, b, accumulate); break;
                case 6: output4_vector_6(dst, dst_image, plane, r, n, mq, m_stride, p, b, accumulate); break;
                default: output4_vector_7(dst, dst_image, plane, r, n, mq, m_stride, p, b, accumulate); break;
                }
            }
        }
    }
}

/* ------------------------------------------------------- weight gradient */

enum {
    GRAD_C = 8,       /* input channels per register block of the gradient */
    GRAD_TILES = 128, /* tiles of whole images summed at once, at most */
};

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

/* Images summed per visit of the accumulators: small planes have few tiles
 * per image, so that a 512 x 512-channel layer on 7x7 planes (16 tiles)
 * would reread 16 MiB of accumulators for every 16 tiles. */
int rn_winograd_grad_group(const rn_wino_planes *p)
{
    int tiles = ((p->oh + 1) / 2) * ((p->ow + 1) / 2);
    int group = GRAD_TILES / tiles;
    if (group > RN_WINO_GROUP_MAX)
        group = RN_WINO_GROUP_MAX;
    return group < 1 ? 1 : group;
}

/* Tiles that V and D hold at once. */
static int grad_capacity(const rn_wino_planes *p)
{
    int tiles = ((p->oh + 1) / 2) * ((p->ow + 1) / 2);
    int group = rn_winograd_grad_group(p);
    return group > 1 ? group * tiles : RN_WINO_TILES;
}

size_t rn_winograd_grad_block_numel(int cin, int cout, const rn_wino_planes *p)
{
    /* V (E, cinp, tiles), then D (E, tiles, ocp). */
    return (size_t)E * grad_capacity(p) * (grad_cin(cin) + grad_ocp(cout));
}

/* D = A dY A^T for n tiles of one tile row, 16 output channels: dy0 and dy1
 * are the transposed gradient's rows 2 ty and 2 ty + 1 at the run's first
 * column, ocp floats per position; d[e * stride + t * ocp]. An odd plane's
 * edge has no row dy1 (NULL) and the run `cols` < 2n columns: the missing
 * positions count as zero. */
static inline TARGET __attribute__((always_inline)) void
gradient_tiles(float *d, size_t stride, const float *dy0, const float *dy1, int ocp, int n,
               int cols)
{
    const __m512 zero = _mm512_setzero_ps();
    for (int t = 0; t < n; t++) {
        int right = 2 * t + 1 < cols;
        __m512 g00 = _mm512_loadu_ps(dy0 + (size_t)2 * t * ocp);
        __m512 g01 = right ? _mm512_loadu_ps(dy0 + (size_t)(2 * t + 1) * ocp) : zero;
        __m512 g10 = dy1 ? _mm512_loadu_ps(dy1 + (size_t)2 * t * ocp) : zero;
        __m512 g11 = dy1 && right ? _mm512_loadu_ps(dy1 + (size_t)(2 * t + 1) * ocp) : zero;
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
grad_product(float *acc, int ocp, const float *v, int v_row, const float *d, int n,
             const int nk)
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
            __m512 x = _mm512_set1_ps(v[(size_t)i * v_row + t]);
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

/* The same with BF16: V's rows as rn_bf16_row leaves them and D's rows
 * paired by rn_bf16_pair_rows, two tiles per vdpbf16ps. n is rounded up to
 * even, the extra tile zero. */
static inline RN_TARGET_BF16 __attribute__((always_inline)) void
grad_product_bf16(float *acc, int ocp, const float *v, int v_row, const float *d, int n,
                  const int nk)
{
    __m512 a[GRAD_C][2];
    for (int i = 0; i < GRAD_C; i++)
        for (int j = 0; j < nk; j++)
            a[i][j] = _mm512_setzero_ps();
    for (int t = 0; t < n; t += 2) {
        __m512bh g[2];
        for (int j = 0; j < nk; j++)
            g[j] = (__m512bh)_mm512_loadu_ps(d + (size_t)t * ocp + 16 * j);
        for (int i = 0; i < GRAD_C; i++) {
            __m512bh x = (__m512bh)_mm512_set1_epi32(((const int *)(v + (size_t)i * v_row))[t / 2]);
            for (int j = 0; j < nk; j++)
                a[i][j] = _mm512_dpbf16_ps(a[i][j], x, g[j]);
        }
    }
    for (int i = 0; i < GRAD_C; i++)
        for (int j = 0; j < nk; j++) {
            float *row = acc + (size_t)i * ocp + 16 * j;
            _mm512_storeu_ps(row, _mm512_add_ps(_mm512_loadu_ps(row), a[i][j]));
        }
}

static RN_TARGET_BF16 void grad_product_bf16_1(float *acc, int ocp, const float *v, int row,
                                               const float *d, int n)
{
    grad_product_bf16(acc, ocp, v, row, d, n, 1);
}

static RN_TARGET_BF16 void grad_product_bf16_2(float *acc, int ocp, const float *v, int row,
                                               const float *d, int n)
{
    grad_product_bf16(acc, ocp, v, row, d, n, 2);
}

static TARGET void grad_product1(float *acc, int ocp, const float *v, int row, const float *d,
                                 int n)
{
    grad_product(acc, ocp, v, row, d, n, 1);
}

static TARGET void grad_product2(float *acc, int ocp, const float *v, int row, const float *d,
                                 int n)
{
    grad_product(acc, ocp, v, row, d, n, 2);
}

TARGET void rn_winograd_grad_images(float *acc, const float *const *src,
                                    const float *const *dyt, int images, int cin, int cout,
                                    const rn_wino_planes *p, int bf16, float *scratch)
{
    int cinp = grad_cin(cin), ocp = grad_ocp(cout);
    int tw = (p->ow + 1) / 2, tiles = ((p->oh + 1) / 2) * tw;
    int cap = grad_capacity(p);
    float *v = scratch, *d = scratch + (size_t)E * cinp * cap;
    size_t v_stride = (size_t)cinp * cap, d_stride = (size_t)cap * ocp;
    RN_ASSERT(images == 1 || images * tiles <= cap);
    /* Channels past cin stay zero. */
    for (int e = 0; e < E; e++)
        memset(v + e * v_stride + (size_t)cin * cap, 0, sizeof(float) * (cinp - cin) * cap);
    /* One block of whole images, or blocks of one image's tiles. */
    int step = images > 1 ? tiles : block_tiles(p);
    for (int t0 = 0; t0 < tiles; t0 += step) {
        int t1 = t0 + step < tiles ? t0 + step : tiles;
        int filled = 0; /* tiles in V and D so far */
        for (int j = 0; j < images; j++, filled += t1 - t0) {
            /* V laid out as in the forward pass, with cinp channels. */
            input_block(v + filled, v_stride, cap, src[j], cin, p, t0, t1);
            for (int k = 0; k < ocp; k += 16) {
                FOR_TILE_RUNS(t0, t1, tw, {
                    const float *row0 = dyt[j] + ((size_t)2 * ty * p->ow + 2 * tx) * ocp + k;
                    const float *row1 = 2 * ty + 1 < p->oh ? row0 + (size_t)p->ow * ocp : NULL;
                    int cols = p->ow - 2 * tx < 2 * n ? p->ow - 2 * tx : 2 * n;
                    gradient_tiles(d + (size_t)(filled + first - t0) * ocp + k, d_stride, row0,
                                   row1, ocp, n, cols);
                });
            }
        }
        for (int e = 0; e < E; e++) {
            float *acc_e = acc + (size_t)e * cinp * ocp;
            float *ve = v + e * v_stride, *de = d + e * d_stride;
            if (bf16) {
                for (int c = 0; c < cinp; c++)
                    rn_bf16_row(ve + (size_t)c * cap, filled);
                rn_bf16_pair_rows(de, ocp, filled, ocp);
            }
            /* Output channels outside, so that D's 32 columns stay in L1
             * while the input channels pass. */
            int k = 0;
            for (; k + 32 <= ocp; k += 32)
                for (int c = 0; c < cinp; c += GRAD_C) {
                    float *acc_c = acc_e + (size_t)c * ocp + k;
                    const float *vc = ve + (size_t)c * cap;
                    if (bf16)
                        grad_product_bf16_2(acc_c, ocp, vc, cap, de + k, filled);
                    else
                        grad_product2(acc_c, ocp, vc, cap, de + k, filled);
                }
            if (k < ocp)
                for (int c = 0; c < cinp; c += GRAD_C) {
                    float *acc_c = acc_e + (size_t)c * ocp + k;
                    const float *vc = ve + (size_t)c * cap;
                    if (bf16)
                        grad_product_bf16_1(acc_c, ocp, vc, cap, de + k, filled);
                    else
                        grad_product1(acc_c, ocp, vc, cap, de + k, filled);
                }
        }
    }
}

#else

void rn_winograd4_block(float *dst, size_t dst_image, const float *src, size_t src_image,
                        long r0, long r1, const float *u, int cin, int cout,
                        const rn_wino_planes *p, const float *bias, int accumulate,
                        float *scratch)
{
    RN_ASSERT(!"no Winograd convolution on this CPU");
}

void rn_winograd_transform_weights(float *u, const float *weights, int cout, int cin, int flip)
{
    RN_ASSERT(!"no Winograd convolution on this CPU");
}

void rn_winograd4_transform_weights(float *u, const float *weights, int cout, int cin,
                                    int flip)
{
    RN_ASSERT(!"no Winograd convolution on this CPU");
}

void rn_winograd_block(float *dst, const float *src, const float *u, int cin,
                              int cout, const rn_wino_planes *p, const float *bias,
                              int accumulate, int block, int o0, int o1, int bf16,
                              float *scratch)
{
    RN_ASSERT(!"no Winograd convolution on this CPU");
}

void rn_winograd_grad_images(float *acc, const float *const *src, const float *const *dyt,
                             int images, int cin, int cout, const rn_wino_planes *p, int bf16,
                             float *scratch)
{
    RN_ASSERT(!"no Winograd convolution on this CPU");
}

#endif

void rn_winograd_grad_finish(float *diff_weights, const float *acc, size_t stride, int count,
                             int cin, int cout)
{
    int cinp = grad_cin(cin), ocp = grad_ocp(cout);
    size_t e_stride = (size_t)cinp * ocp;
    /* Input channels outside: the accumulators of consecutive output
     * channels are adjacent. */
#pragma omp parallel for schedule(static)
    for (int c = 0; c < cin; c++)
        for (int o = 0; o < cout; o++) {
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

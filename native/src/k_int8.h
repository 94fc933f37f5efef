/* Part of kernels.h: included once per ISA after simd.h; see kernels.h. */
/* ======================================================================================
 * int8 x int8 linear, activations quantized per token at run time (dynamic quantization).
 * The semantics, exactly (every ISA computes the same xq and the same integer sums):
 *
 *   xs[m]    = max_k |x[m,k]| / 127                         float32
 *   xq[m,k]  = rint(clamp(x[m,k] / xs[m], -127, 127))       float32 division; rint rounds
 *                                                           half to even
 *   acc[m,n] = sum_k xq[m,k] * q[n,k]                       int32, exact (k <= SKM_INT8_MAX_K)
 *   out[m,n] = act((float)acc[m,n] * xs[m] * scales[n] + bias[n])   left to right, float32
 *
 * A row whose xs is 0 (all zeros, or so tiny that max/127 underflows) quantizes to zeros, so
 * its outputs are act(bias).  A row holding NaN or +-inf gets xs = NaN and zeros in xq, so its
 * outputs are NaN (what the fp32 product would give, more or less).  q is used as it lies
 * (int8 [n, k] row-major from quantize_int8; any int8 value, -128 included, is exact).
 *
 * AVX2 (and AVX-512 without VNNI): pmaddwd on int16.  x rows are quantized straight to int16,
 * the weight is repacked per call into int16 panels of 16 columns ([k/2][16][2]: each 32-bit
 * lane holds one column's two consecutive k values), and a 6 x 16 register tile (12 int32
 * accumulators, like the fp32 microkernel) broadcasts a k pair of each x row against two
 * panel vectors: 16 exact MACs per vpmaddwd, no sign tricks, any int8 weight (-128 too).
 * Measured on Zen 3: the ggml layout (maddubs on |w| x sign(x, w), madd with ones) reaches
 * only ~16 MACs/cycle per core because vpsignb/vpabsb compete with the two multiply pipes;
 * pmaddwd leaves those pipes to the multiplies alone (32 MACs/cycle bound, 2x fp32 FMA).
 *
 * AVX-512 with AVX512BW + VNNI: vpdpbusd (u8 x s8 -> int32, no int16 step) on the weight rows
 * as they lie, blocks of 2 x rows x 4 weight rows: |w| is the unsigned operand and w's sign
 * moves to x (w x = |w| (sign(w) x); |w| <= 128 is a valid u8, and x is never -128, so -x
 * never wraps): no +128 offset, no correction term.  Scalar/NEON: the same blocks in plain C
 * loops (the reference).  Every path computes the same xq and integers and scales them with
 * the same float32 operations, so the outputs before the activation are the same bytes on
 * every ISA (gelu/silu/tanh then differ like the fp32 kernels' do, ~1e-7).
 * ====================================================================================== */

#define I8_MR 2     /* x rows per register block */
#define I8_NR 4     /* weight rows per register block */
#define I8_PAD 64   /* quantized x rows are zero-padded to a multiple of this */
#define I8_XCHUNK 16384 /* bytes of quantized x rows kept in L1 while weight rows go past */

#if SKM_ISA == SKM_ISA_AVX2 || SKM_ISA == SKM_ISA_AVX512
#define I8_X86 1
#else
#define I8_X86 0
#endif
#if SKM_ISA == SKM_ISA_AVX512 && defined(__GNUC__) && !defined(__clang__)
#define I8_VNNI 1 /* compiled here; used only when CPUID reports AVX512BW and AVX512_VNNI */
#else
#define I8_VNNI 0
#endif

/* xs of one row (see above): NaN when the row holds NaN or inf (x * 0 is NaN exactly then). */
static float SKM_FN(i8_row_scale)(const float *x, int64_t k) {
    skv amax = skv_zero(), bad = skv_zero(), zero = skv_zero();
    int64_t p = 0;
    for (; p + SKM_W <= k; p += SKM_W) {
        skv v = skv_load(x + p);
        amax = skv_max(amax, skv_abs(v));
        bad = skv_add(bad, skv_mul(v, zero));
    }
    if (p < k) {
        skv v = ld_part(x + p, k - p, 0.0f);
        amax = skv_max(amax, skv_abs(v));
        bad = skv_add(bad, skv_mul(v, zero));
    }
    if (skv_reduce_add(bad) != 0.0f) return NAN;
    return skv_reduce_max(amax) / 127.0f;
}

#if I8_X86
/* xq of x[0:8] as int32 lanes; bit-identical to the scalar loop in i8_quant_row. */
SKM_INLINE __m256i SKM_FN(i8_quant8)(const float *x, __m256 d) {
    __m256 v = _mm256_div_ps(_mm256_loadu_ps(x), d);
    v = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(-127.0f)), _mm256_set1_ps(127.0f));
    v = _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    return _mm256_cvtps_epi32(v); /* exact: v is integral */
}
#endif

/* dst[0:k] = xq of one row as int8 (wide == 0) or int16 (wide == 1), dst[k:kp] = 0. */
static void SKM_FN(i8_quant_row)(const float *x, int64_t k, float xs, void *dst, int64_t kp,
                                 int wide) {
    int8_t *d8 = dst;
    int16_t *d16 = dst;
    int64_t p = 0;
    if (!(xs > 0.0f)) { /* 0 or NaN: an all-zero row */
        memset(dst, 0, (size_t)kp << wide);
        return;
    }
#if I8_X86
    const __m256 d = _mm256_set1_ps(xs);
    if (wide) {
        for (; p + 16 <= k; p += 16) { /* packs works per 128-bit lane: 0-3, 8-11, 4-7, 12-15 */
            __m256i v = _mm256_packs_epi32(SKM_FN(i8_quant8)(x + p, d), SKM_FN(i8_quant8)(x + p + 8, d));
            _mm256_storeu_si256((__m256i *)(void *)(d16 + p), _mm256_permute4x64_epi64(v, 0xd8));
        }
    } else {
        const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        for (; p + 32 <= k; p += 32) {
            /* the 4-byte groups come out as 0-3 of each quarter, then 4-7 of each */
            __m256i ab = _mm256_packs_epi32(SKM_FN(i8_quant8)(x + p, d), SKM_FN(i8_quant8)(x + p + 8, d));
            __m256i cd = _mm256_packs_epi32(SKM_FN(i8_quant8)(x + p + 16, d), SKM_FN(i8_quant8)(x + p + 24, d));
            __m256i r = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(ab, cd), order);
            _mm256_storeu_si256((__m256i *)(void *)(d8 + p), r);
        }
    }
#endif
    for (; p < k; p++) { /* the reference (and the tail) */
        float v = x[p] / xs;
        v = v < -127.0f ? -127.0f : (v > 127.0f ? 127.0f : v);
        int q = (int)nearbyintf(v);
        if (wide)
            d16[p] = (int16_t)q;
        else
            d8[p] = (int8_t)q;
    }
    if (kp > k) memset(wide ? (void *)(d16 + k) : (void *)(d8 + k), 0, (size_t)(kp - k) << wide);
}

/* sums[r * I8_NR + c] = sum_{p<k} x_r[p] w_c[p].  x rows are readable (zero-padded) up to a
 * multiple of I8_PAD; weight rows only up to k, so the vector code reads the last k % chunk
 * bytes of row c from tail[c] (a zero-padded copy made once per weight block). */
typedef int8_t i8_tail_t[I8_PAD];

#if I8_VNNI
#define I8_COL512(A0, A1, W)                                                              \
    do {                                                                                 \
        __m512i w_ = (W), u_ = _mm512_abs_epi8(w_);                                      \
        __mmask64 neg_ = _mm512_movepi8_mask(w_); /* lanes where w < 0 */                \
        A0 = _mm512_dpbusd_epi32(A0, u_, _mm512_mask_sub_epi8(x0v, neg_, zero, x0v));    \
        A1 = _mm512_dpbusd_epi32(A1, u_, _mm512_mask_sub_epi8(x1v, neg_, zero, x1v));    \
    } while (0)

__attribute__((target("avx512f,avx512bw,avx512vnni,avx2,fma"))) static void SKM_FN(i8_dot_vnni)(
    const int8_t *x0, const int8_t *x1, const int8_t *const *w, const i8_tail_t *tail, int64_t k,
    int32_t *sums) {
    const __m512i zero = _mm512_setzero_si512();
    __m512i a00 = zero, a01 = zero, a02 = zero, a03 = zero;
    __m512i a10 = zero, a11 = zero, a12 = zero, a13 = zero;
    const int8_t *w0 = w[0], *w1 = w[1], *w2 = w[2], *w3 = w[3];
    int64_t p = 0;
    for (; p + 64 <= k; p += 64) {
        __m512i x0v = _mm512_loadu_si512(x0 + p), x1v = _mm512_loadu_si512(x1 + p);
        I8_COL512(a00, a10, _mm512_loadu_si512(w0 + p));
        I8_COL512(a01, a11, _mm512_loadu_si512(w1 + p));
        I8_COL512(a02, a12, _mm512_loadu_si512(w2 + p));
        I8_COL512(a03, a13, _mm512_loadu_si512(w3 + p));
    }
    if (p < k) {
        __m512i x0v = _mm512_loadu_si512(x0 + p), x1v = _mm512_loadu_si512(x1 + p);
        I8_COL512(a00, a10, _mm512_loadu_si512(tail[0]));
        I8_COL512(a01, a11, _mm512_loadu_si512(tail[1]));
        I8_COL512(a02, a12, _mm512_loadu_si512(tail[2]));
        I8_COL512(a03, a13, _mm512_loadu_si512(tail[3]));
    }
    sums[0] = _mm512_reduce_add_epi32(a00), sums[1] = _mm512_reduce_add_epi32(a01);
    sums[2] = _mm512_reduce_add_epi32(a02), sums[3] = _mm512_reduce_add_epi32(a03);
    sums[4] = _mm512_reduce_add_epi32(a10), sums[5] = _mm512_reduce_add_epi32(a11);
    sums[6] = _mm512_reduce_add_epi32(a12), sums[7] = _mm512_reduce_add_epi32(a13);
}
#endif

#if !I8_X86
/* The reference: plain integer loops (compilers vectorize them; exact either way). */
static void SKM_FN(i8_dot_c)(const int8_t *x0, const int8_t *x1, const int8_t *const *w,
                             int64_t k, int32_t *sums) {
    for (int c = 0; c < I8_NR; c++) {
        int32_t s0 = 0, s1 = 0;
        for (int64_t p = 0; p < k; p++) {
            s0 += (int32_t)x0[p] * (int32_t)w[c][p];
            s1 += (int32_t)x1[p] * (int32_t)w[c][p];
        }
        sums[c] = s0, sums[I8_NR + c] = s1;
    }
}
#endif

/* ---- the int16 path (x86): weight panels, 6 x 16 register tile ---- */
#if I8_X86
#define I16_MR 6 /* the edge kernels below cover 1..6 rows */
#define I16_NV 2 /* vectors of 8 columns (one k pair each) per panel step; 4 x 3 measured slower */
#define I16_NR (8 * I16_NV) /* columns per panel */

/* Panel `panel` of q [n, k] as int16: [kpairs][16 columns][2], zero past n and past k. */
static void SKM_FN(i16_pack_panel)(const int8_t *q, int64_t n, int64_t k, int64_t panel,
                                   int16_t *dst) {
    int64_t kpairs = (MAX(k, 1) + 1) / 2, j0 = panel * I16_NR, p = 0; /* as kp / 2 */
    if (j0 + I16_NR <= n) { /* 16 k values (8 pairs) of 8 rows at a time: an 8x8 transpose */
        for (; 2 * p + 16 <= k; p += 8)
            for (int h = 0; h < I16_NV; h++) {
                __m256i r[8], t[8], u[8];
                for (int i = 0; i < 8; i++)
                    r[i] = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(q + (j0 + 8 * h + i) * k + 2 * p)));
                for (int i = 0; i < 8; i += 2) {
                    t[i] = _mm256_unpacklo_epi32(r[i], r[i + 1]);
                    t[i + 1] = _mm256_unpackhi_epi32(r[i], r[i + 1]);
                }
                for (int i = 0; i < 8; i += 4) {
                    u[i] = _mm256_unpacklo_epi64(t[i], t[i + 2]);
                    u[i + 1] = _mm256_unpackhi_epi64(t[i], t[i + 2]);
                    u[i + 2] = _mm256_unpacklo_epi64(t[i + 1], t[i + 3]);
                    u[i + 3] = _mm256_unpackhi_epi64(t[i + 1], t[i + 3]);
                }
                /* u[i] holds pair i (lane 0: rows 0-3) and pair i + 4 (lane 1), rows 4-7 in u[i + 4] */
                for (int i = 0; i < 4; i++) {
                    _mm256_storeu_si256((__m256i *)(void *)(dst + ((p + i) * I16_NR + 8 * h) * 2),
                                        _mm256_permute2x128_si256(u[i], u[i + 4], 0x20));
                    _mm256_storeu_si256((__m256i *)(void *)(dst + ((p + i + 4) * I16_NR + 8 * h) * 2),
                                        _mm256_permute2x128_si256(u[i], u[i + 4], 0x31));
                }
            }
    }
    for (; p < kpairs; p++) /* the rest, element by element */
        for (int64_t c = 0; c < I16_NR; c++)
            for (int64_t e = 0; e < 2; e++) {
                int64_t j = j0 + c, kk = 2 * p + e;
                dst[(p * I16_NR + c) * 2 + e] = j < n && kk < k ? q[j * k + kk] : 0;
            }
}

/* tile[r][0:16] = sum_p x_r[2p:2p+2] . panel[p][:][:] for R rows at x + r * rsx (int16
 * units): R int32 accumulator pairs, one broadcast k pair per row and step.  R = 6 is the
 * full tile (12 accumulators); 1..5 are the edge tiles, so M = 16 does 16 rows, not 18. */
#define I16_DEFINE_UKERNEL(R)                                                             \
    static void SKM_FN(i16_ukernel##R)(int64_t kpairs, const int16_t *x, int64_t rsx,    \
                                       const int16_t *bp, int32_t *tile) {               \
        __m256i acc[R][I16_NV];                                                          \
        _Pragma("GCC unroll 6") for (int r = 0; r < R; r++)                              \
            _Pragma("GCC unroll 4") for (int v = 0; v < I16_NV; v++) acc[r][v] = _mm256_setzero_si256(); \
        _Pragma("GCC unroll 4") for (int64_t p = 0; p < kpairs; p++) {                   \
            _Pragma("GCC unroll 6") for (int r = 0; r < R; r++) {                        \
                int32_t pair;                                                            \
                memcpy(&pair, x + r * rsx + 2 * p, sizeof pair);                         \
                __m256i a = _mm256_set1_epi32(pair);                                     \
                _Pragma("GCC unroll 4") for (int v = 0; v < I16_NV; v++) {               \
                    __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(bp + 16 * v)); \
                    acc[r][v] = _mm256_add_epi32(acc[r][v], _mm256_madd_epi16(a, b));    \
                }                                                                        \
            }                                                                            \
            bp += 2 * I16_NR;                                                            \
        }                                                                                \
        _Pragma("GCC unroll 6") for (int r = 0; r < R; r++)                              \
            _Pragma("GCC unroll 4") for (int v = 0; v < I16_NV; v++)                     \
                _mm256_storeu_si256((__m256i *)(void *)(tile + r * I16_NR + 8 * v), acc[r][v]); \
    }
I16_DEFINE_UKERNEL(1)
I16_DEFINE_UKERNEL(2)
I16_DEFINE_UKERNEL(3)
I16_DEFINE_UKERNEL(4)
I16_DEFINE_UKERNEL(5)
I16_DEFINE_UKERNEL(6)
#undef I16_DEFINE_UKERNEL

static void SKM_FN(i16_ukernel)(int64_t mr, int64_t kpairs, const int16_t *x, int64_t rsx,
                                const int16_t *bp, int32_t *tile) {
    switch (mr) {
    case 1: SKM_FN(i16_ukernel1)(kpairs, x, rsx, bp, tile); break;
    case 2: SKM_FN(i16_ukernel2)(kpairs, x, rsx, bp, tile); break;
    case 3: SKM_FN(i16_ukernel3)(kpairs, x, rsx, bp, tile); break;
    case 4: SKM_FN(i16_ukernel4)(kpairs, x, rsx, bp, tile); break;
    case 5: SKM_FN(i16_ukernel5)(kpairs, x, rsx, bp, tile); break;
    default: SKM_FN(i16_ukernel6)(kpairs, x, rsx, bp, tile); break;
    }
}
#endif

/* Which path this call takes (see the top of the file). */
enum { I8_PATH_C, I8_PATH_I16, I8_PATH_VNNI };

static int SKM_FN(i8_path)(void) {
#if I8_VNNI
    int need = SKM_CPU_AVX512BW | SKM_CPU_AVX512VNNI;
    if ((skm_cpu_features() & need) == need) return I8_PATH_VNNI;
#endif
    return I8_X86 ? I8_PATH_I16 : I8_PATH_C;
}

typedef struct {
    const float *x;
    const int8_t *q;
    const float *scales;
    float *out;
    void *xq;  /* [m, kp] int8 (int16 on the I16 path); the caller's [m, k] for quantize_rows */
    float *xs; /* [m] */
    const int16_t *wp; /* I16 path: the weight's int16 panels (given, or packed per call) */
    int64_t m, n, k, kp;
    int64_t quant_rows, quant_tasks; /* rows per quantization task, and how many tasks */
    int64_t n_mb, n_ng, mb_unit, ng_unit; /* row blocks x column groups, in rows / columns */
    int64_t xchunk;                       /* dot form: x rows per L1 chunk */
    int path;
    gemm_desc epi; /* bias + activation through the GEMM epilogue */
} i8_ctx;

/* Quantization tasks first, then (I16 path) one task per weight panel. */
static void SKM_FN(i8_prep_task)(void *vctx, int64_t t, int slot) {
    (void)slot;
    i8_ctx *c = vctx;
    if (t >= c->quant_tasks) {
#if I8_X86
        int64_t panel = t - c->quant_tasks;
        SKM_FN(i16_pack_panel)(c->q, c->n, c->k, panel, (int16_t *)c->wp + panel * (c->kp / 2) * 2 * I16_NR);
#endif
        return;
    }
    int wide = c->path == I8_PATH_I16;
    int64_t i1 = MIN(c->m, (t + 1) * c->quant_rows);
    for (int64_t i = t * c->quant_rows; i < i1; i++) {
        const float *row = c->x + i * c->k;
        c->xs[i] = SKM_FN(i8_row_scale)(row, c->k);
        SKM_FN(i8_quant_row)(row, c->k, c->xs[i], (char *)c->xq + ((i * c->kp) << wide), c->kp, wide);
    }
}

/* Rows [r0, r1) x columns [j0, j1) of task t. */
static void SKM_FN(i8_task_range)(const i8_ctx *c, int64_t t, int64_t *r0, int64_t *r1,
                                  int64_t *j0, int64_t *j1) {
    int64_t mb = t / c->n_ng, g = t % c->n_ng;
    int64_t tiles = (c->m + c->mb_unit - 1) / c->mb_unit, groups = (c->n + c->ng_unit - 1) / c->ng_unit;
    *r0 = tiles * mb / c->n_mb * c->mb_unit, *r1 = MIN(tiles * (mb + 1) / c->n_mb * c->mb_unit, c->m);
    *j0 = groups * g / c->n_ng * c->ng_unit, *j1 = MIN(groups * (g + 1) / c->n_ng * c->ng_unit, c->n);
}

#if I8_X86
/* Row tiles of one row block against the panels of one column group; the x block (<= 96
 * rows) stays in L2 while each panel, in L1, meets all its row tiles.  The int32 tile is
 * scaled to floats ((float)acc * xs * scale, two roundings, no FMA), then the bias and the
 * activation follow exactly as the GEMM epilogue applies them. */
static void SKM_FN(i16_task)(void *vctx, int64_t t, int slot) {
    (void)slot;
    const i8_ctx *c = vctx;
    int64_t r0, r1, j0, j1;
    SKM_FN(i8_task_range)(c, t, &r0, &r1, &j0, &j1);
    if (r1 <= r0 || j1 <= j0) return;
    int64_t kpairs = c->kp / 2;
    int32_t tile[I16_MR * I16_NR] __attribute__((aligned(32)));
    const int16_t *xq = c->xq;
    /* AVX2: bias and activation applied to the tile's registers (as epilogue() would) */
    int fused = SKM_W == 8 && (c->epi.bias != NULL || c->epi.act != SKM_ACT_NONE);
    for (int64_t i0 = r0; i0 < r1; i0 += 96) {
        int64_t i1 = MIN(i0 + 96, r1);
        for (int64_t j = j0; j < j1; j += I16_NR) {
            int64_t nc = MIN(I16_NR, j1 - j);
            const int16_t *bp = c->wp + (j / I16_NR) * kpairs * 2 * I16_NR;
            float sc[I16_NR] = {0}, bs[I16_NR] = {0}; /* zero past n (a short last panel) */
            memcpy(sc, c->scales + j, (size_t)nc * sizeof(float));
            if (c->epi.bias != NULL) memcpy(bs, c->epi.bias + j, (size_t)nc * sizeof(float));
            for (int64_t i = i0; i < i1; i += I16_MR) {
                int64_t mr = MIN(I16_MR, i1 - i);
                SKM_FN(i16_ukernel)(mr, kpairs, xq + i * c->kp, c->kp, bp, tile);
                for (int64_t r = 0; r < mr; r++) {
                    __m256 xs = _mm256_set1_ps(c->xs[i + r]);
                    const __m256i *tr = (const __m256i *)(const void *)(tile + r * I16_NR);
                    float *o = c->out + (i + r) * c->n + j, tmp[I16_NR];
                    float *dst = nc == I16_NR ? o : tmp;
                    for (int v = 0; v < I16_NV; v++) {
                        __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(tr[v]), xs);
                        f = _mm256_mul_ps(f, _mm256_loadu_ps(sc + 8 * v));
#if SKM_W == 8 /* the epilogue's operations, in its order, on the registers */
                        if (fused) {
                            __asm__("" : "+x"(f)); /* rounded product: no FMA with the bias */
                            f = _mm256_add_ps(f, _mm256_setzero_ps());
                            if (c->epi.bias != NULL) f = _mm256_add_ps(f, _mm256_loadu_ps(bs + 8 * v));
                            f = apply_act(f, c->epi.act);
                        }
#endif
                        _mm256_storeu_ps(dst + 8 * v, f);
                    }
                    if (nc < I16_NR) memcpy(o, tmp, (size_t)nc * sizeof(float));
                }
                /* otherwise bias + activation while the tile is in L1 */
                if (!fused) SKM_FN(epilogue)(&c->epi, c->out + i * c->n + j, i, j, mr, nc);
            }
        }
    }
}
#endif

#if I8_VNNI || !I8_X86
/* Dot form: blocks of I8_MR x rows x I8_NR weight rows over the weight as it lies. */
static void SKM_FN(i8_dot_task)(void *vctx, int64_t t, int slot) {
    (void)slot;
    const i8_ctx *c = vctx;
    int64_t r0, r1, j0, j1;
    SKM_FN(i8_task_range)(c, t, &r0, &r1, &j0, &j1);
    if (r1 <= r0 || j1 <= j0) return;
    int64_t step = 64, kfull = c->k / step * step;
    i8_tail_t tail[I8_NR] __attribute__((aligned(64)));
    int32_t sums[I8_MR * I8_NR];
    const int8_t *xq = c->xq;
    for (int64_t i0 = r0; i0 < r1; i0 += c->xchunk) {
        int64_t i1 = MIN(i0 + c->xchunk, r1);
        for (int64_t j = j0; j < j1; j += I8_NR) {
            int64_t nc = MIN(I8_NR, j1 - j);
            const int8_t *w[I8_NR];
            for (int64_t cc = 0; cc < I8_NR; cc++) /* missing rows repeat row j; dropped */
                w[cc] = c->q + (j + (cc < nc ? cc : 0)) * c->k;
            if (c->path == I8_PATH_VNNI && kfull < c->k)
                for (int64_t cc = 0; cc < I8_NR; cc++) {
                    memset(tail[cc], 0, sizeof tail[cc]);
                    memcpy(tail[cc], w[cc] + kfull, (size_t)(c->k - kfull));
                }
            for (int64_t i = i0; i < i1; i += I8_MR) {
                int64_t nr = MIN(I8_MR, i1 - i);
                const int8_t *x0 = xq + i * c->kp, *x1 = nr > 1 ? x0 + c->kp : x0;
#if I8_VNNI
                SKM_FN(i8_dot_vnni)(x0, x1, w, tail, c->k, sums);
#else
                SKM_FN(i8_dot_c)(x0, x1, w, c->k, sums);
#endif
                for (int64_t r = 0; r < nr; r++) {
                    float xs = c->xs[i + r], *o = c->out + (i + r) * c->n + j;
                    for (int64_t cc = 0; cc < nc; cc++)
                        o[cc] = (float)sums[r * I8_NR + cc] * xs * c->scales[j + cc];
                }
            }
        }
        SKM_FN(epilogue)(&c->epi, c->out + i0 * c->n + j0, i0, j0, i1 - i0, j1 - j0);
    }
}
#endif

/* xq [m, k] and xs [m] as linear_int8_dynamic quantizes x (for tests and callers). */
static int SKM_FN(quantize_rows_i8)(const float *x, int8_t *xq, float *xs, int64_t m, int64_t k) {
    i8_ctx c = {.x = x, .xq = xq, .xs = xs, .m = m, .k = k, .kp = k, .path = I8_PATH_C};
    if (m <= 0) return SKM_OK;
    c.quant_tasks = skm_split_rows(m, k, PAR_MIN_ELEMS, &c.quant_rows);
    skm_parallel_for(c.quant_tasks, SKM_FN(i8_prep_task), &c);
    return SKM_OK;
}

/* int16 elements of the weight panels this ISA's path reads (0: it reads q as it lies). */
static int64_t SKM_FN(int8_panel_elems)(int64_t n, int64_t k) {
#if I8_X86
    if (SKM_FN(i8_path)() == I8_PATH_I16) return (n + I16_NR - 1) / I16_NR * I16_NR * ROUND_UP(MAX(k, 1), 2);
#endif
    (void)n, (void)k;
    return 0;
}

#if I8_X86
static void SKM_FN(i16_pack_task)(void *vctx, int64_t t, int slot) {
    (void)slot;
    const i8_ctx *c = vctx;
    SKM_FN(i16_pack_panel)(c->q, c->n, c->k, t, (int16_t *)c->wp + t * (c->kp / 2) * 2 * I16_NR);
}
#endif

/* The panels once, at load (pack_int8_weight): linear_int8_dynamic then skips this step. */
static int SKM_FN(pack_int8_weight)(const int8_t *q, int64_t n, int64_t k, int16_t *panels) {
#if I8_X86
    if (SKM_FN(i8_path)() == I8_PATH_I16 && n > 0) {
        i8_ctx c = {.q = q, .n = n, .k = k, .kp = ROUND_UP(MAX(k, 1), 2), .wp = panels};
        skm_parallel_for((n + I16_NR - 1) / I16_NR, SKM_FN(i16_pack_task), &c);
    }
#endif
    (void)q, (void)n, (void)k, (void)panels;
    return SKM_OK;
}

/* out[m, n] = act(dequant(quant(x) q^T) + bias): see the top of this file.  panels: from
 * pack_int8_weight for this ISA, or NULL (the I16 path then packs them per call). */
static int SKM_FN(linear_int8_dynamic)(const float *x, const int8_t *q, const int16_t *panels,
                                       const float *scales, const float *bias, float *out,
                                       int64_t m, int64_t n, int64_t k, int act) {
    if (m <= 0 || n <= 0) return SKM_OK;
    i8_ctx c = {.x = x, .q = q, .scales = scales, .out = out, .m = m, .n = n, .k = k};
    c.path = SKM_FN(i8_path)();
    int wide = c.path == I8_PATH_I16;
    c.kp = wide ? ROUND_UP(MAX(k, 1), 2) : ROUND_UP(MAX(k, 1), I8_PAD);
    c.epi.c = out, c.epi.rsc = n, c.epi.bias = bias, c.epi.act = act;
    int slot = skm_current_slot();
    skm_arena_mark_t mark = skm_arena_mark(slot);
    c.xq = skm_arena_alloc(slot, (size_t)(m * c.kp) << wide);
    c.xs = skm_arena_alloc(slot, (size_t)m * sizeof(float));
    int64_t to_pack = 0;
#if I8_X86
    if (wide && panels != NULL) {
        c.wp = panels;
    } else if (wide) {
        to_pack = (n + I16_NR - 1) / I16_NR;
        c.wp = skm_arena_alloc(slot, (size_t)(to_pack * I16_NR * c.kp) * sizeof(int16_t));
    }
#endif
    if (c.xq == NULL || c.xs == NULL || (wide && c.wp == NULL)) {
        skm_arena_release(slot, mark);
        return SKM_ENOMEM;
    }
    c.quant_tasks = skm_split_rows(m, k, PAR_MIN_ELEMS, &c.quant_rows);
    skm_parallel_for(c.quant_tasks + to_pack, SKM_FN(i8_prep_task), &c);

    /* Tasks: a few per thread.  Many rows: row blocks (all columns each); few rows: all
     * rows, the columns split in groups. */
    int64_t threads = skm_threads(), want = 4 * threads;
#if I8_X86
    c.mb_unit = wide ? I16_MR : I8_MR, c.ng_unit = wide ? I16_NR : I8_NR;
#else
    c.mb_unit = I8_MR, c.ng_unit = I8_NR;
#endif
    int64_t tiles = (m + c.mb_unit - 1) / c.mb_unit, groups = (n + c.ng_unit - 1) / c.ng_unit;
    c.xchunk = MAX(I8_MR, I8_XCHUNK / c.kp / I8_MR * I8_MR);
    c.n_mb = c.n_ng = 1;
    if (threads > 1 && (double)m * (double)n * (double)k >= 32.0 * 32.0 * 32.0) {
        if (tiles >= want)
            c.n_mb = MIN(tiles, ROUND_UP(want, threads));
        else
            c.n_ng = MIN(groups, want);
    }
#if I8_X86 && !I8_VNNI
    skm_parallel_for(c.n_mb * c.n_ng, SKM_FN(i16_task), &c);
#elif I8_X86
    skm_parallel_for(c.n_mb * c.n_ng, wide ? SKM_FN(i16_task) : SKM_FN(i8_dot_task), &c);
#else
    skm_parallel_for(c.n_mb * c.n_ng, SKM_FN(i8_dot_task), &c);
#endif
    skm_arena_release(slot, mark);
    return SKM_OK;
}

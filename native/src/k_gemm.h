/* Part of kernels.h: included once per ISA after simd.h; see kernels.h. */
/* ======================================================================================
 * SGEMM, the BLIS way: C[m,n] = A[m,k] B[k,n] (+ bias, activation).
 * Loops jc (NC columns of B, packed once per K block) > pc (KC) > ic (MC rows of A, packed)
 * > jr (one NR-wide B micro-panel, stays in L1) > ir (one MR-tall A micro-panel) > kernel.
 * ====================================================================================== */

typedef struct {
    int64_t m, n, k;
    const float *a;
    int64_t rsa, csa;
    int b_kind;      /* SKM_W_F32: B[p,j] = b[p*rsb + j*csb]; quantized: weight rows [n, k] */
    const void *b;
    int64_t rsb, csb;
    const float *scales;
    int64_t q_blocks; /* Q4_0 / Q8_0 blocks per weight row */
    float *c;
    int64_t rsc;
    const float *bias;
    int bias_per_row; /* 0: bias[j] per column (linear); 1: bias[i] per row (conv) */
    int act;
    const float *res; /* added after the activation (a residual), row stride rsr; or NULL */
    int64_t rsr;
} gemm_desc;

static skm_blocking SKM_FN(blocking) =
#if SKM_ISA == SKM_ISA_AVX512
    {144, 256, 4096};
#elif SKM_ISA == SKM_ISA_AVX2
    {144, 256, 3072};
#elif SKM_ISA == SKM_ISA_NEON
    {120, 256, 2048};
#else
    {60, 128, 512};
#endif

/* C tile row r: store (or add to) the two accumulators of that row. */
SKM_INLINE void SKM_FN(store_row)(float *cr, skv lo, skv hi, int accumulate) {
    if (accumulate) {
        lo = skv_add(skv_load(cr), lo);
        hi = skv_add(skv_load(cr + SKM_W), hi);
    }
    skv_store(cr, lo);
    skv_store(cr + SKM_W, hi);
}

#define SKM_TILE_ZERO                                                                    \
    skv c00 = skv_zero(), c01 = skv_zero(), c10 = skv_zero(), c11 = skv_zero();          \
    skv c20 = skv_zero(), c21 = skv_zero(), c30 = skv_zero(), c31 = skv_zero();          \
    skv c40 = skv_zero(), c41 = skv_zero(), c50 = skv_zero(), c51 = skv_zero();          \
    for (int r = 0; r < MR; r++) __builtin_prefetch(c + r * rsc, 1, 3)

/* One step of K: the two B vectors times MR broadcast A values (A0..A5 are addresses). */
#define SKM_TILE_STEP(A0, A1, A2, A3, A4, A5)                                            \
    do {                                                                                 \
        skv b0 = skv_load(bp), b1 = skv_load(bp + SKM_W), a;                             \
        a = skv_bcast(A0), c00 = skv_fma(a, b0, c00), c01 = skv_fma(a, b1, c01);         \
        a = skv_bcast(A1), c10 = skv_fma(a, b0, c10), c11 = skv_fma(a, b1, c11);         \
        a = skv_bcast(A2), c20 = skv_fma(a, b0, c20), c21 = skv_fma(a, b1, c21);         \
        a = skv_bcast(A3), c30 = skv_fma(a, b0, c30), c31 = skv_fma(a, b1, c31);         \
        a = skv_bcast(A4), c40 = skv_fma(a, b0, c40), c41 = skv_fma(a, b1, c41);         \
        a = skv_bcast(A5), c50 = skv_fma(a, b0, c50), c51 = skv_fma(a, b1, c51);         \
        bp += NR;                                                                        \
    } while (0)

#define SKM_TILE_STORE                                                                   \
    SKM_FN(store_row)(c, c00, c01, accumulate);                                          \
    SKM_FN(store_row)(c + rsc, c10, c11, accumulate);                                    \
    SKM_FN(store_row)(c + 2 * rsc, c20, c21, accumulate);                                \
    SKM_FN(store_row)(c + 3 * rsc, c30, c31, accumulate);                                \
    SKM_FN(store_row)(c + 4 * rsc, c40, c41, accumulate);                                \
    SKM_FN(store_row)(c + 5 * rsc, c50, c51, accumulate)

/* The register-blocked microkernel: an MR x NR tile in 2*MR vector accumulators (12 on every
 * ISA: enough independent FMA chains to cover two FMA ports times ~4-5 cycles of latency).
 * ap: kc steps of MR broadcast values; bp: kc steps of NR contiguous values. */
static void SKM_FN(ukernel)(int64_t kc, const float *restrict ap, const float *restrict bp,
                            float *restrict c, int64_t rsc, int accumulate) {
    SKM_TILE_ZERO;
#pragma GCC unroll 4
    for (int64_t p = 0; p < kc; p++) {
        SKM_TILE_STEP(ap, ap + 1, ap + 2, ap + 3, ap + 4, ap + 5);
        ap += MR;
    }
    SKM_TILE_STORE;
}

/* The same tile with A read where it lies, rows of unit stride rsa apart: no packing, for
 * the few-row products (a short sequence, attention blocks) where packing A would cost as
 * much as using it.  Rows past mr repeat row 0; the caller drops their results. */
static void SKM_FN(ukernel_rows)(int64_t kc, const float *restrict a, int64_t rsa, int64_t mr,
                                 const float *restrict bp, float *restrict c, int64_t rsc,
                                 int accumulate) {
    const float *a0 = a, *a1 = a + (mr > 1 ? rsa : 0), *a2 = a + (mr > 2 ? 2 * rsa : 0);
    const float *a3 = a + (mr > 3 ? 3 * rsa : 0), *a4 = a + (mr > 4 ? 4 * rsa : 0);
    const float *a5 = a + (mr > 5 ? 5 * rsa : 0);
    SKM_TILE_ZERO;
#pragma GCC unroll 4
    for (int64_t p = 0; p < kc; p++) SKM_TILE_STEP(a0 + p, a1 + p, a2 + p, a3 + p, a4 + p, a5 + p);
    SKM_TILE_STORE;
}

/* Edge tiles of mr < MR rows at full NR width: only mr rows are computed and stored, so M = 16
 * (tiles of 6 + 6 + 4 rows) does 16 rows of work, not 18, and no scratch tile is copied back.
 * A element (r, p) is at a[r * rs + p * ps]: packed panels have (1, MR), rows in place (rsa, 1). */
#define SKM_DEFINE_FEW(R)                                                                 \
    static void SKM_FN(ukernel_few##R)(int64_t kc, const float *restrict a, int64_t rs,   \
                                       int64_t ps, const float *restrict bp,              \
                                       float *restrict c, int64_t rsc, int accumulate) {  \
        skv lo[R], hi[R];                                                                 \
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) lo[r] = hi[r] = skv_zero();   \
        for (int64_t p = 0; p < kc; p++) {                                                \
            skv b0 = skv_load(bp), b1 = skv_load(bp + SKM_W);                             \
            _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {                         \
                skv av = skv_bcast(a + r * rs);                                           \
                lo[r] = skv_fma(av, b0, lo[r]);                                           \
                hi[r] = skv_fma(av, b1, hi[r]);                                           \
            }                                                                             \
            a += ps;                                                                      \
            bp += NR;                                                                     \
        }                                                                                 \
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                               \
            SKM_FN(store_row)(c + r * rsc, lo[r], hi[r], accumulate);                     \
    }
SKM_DEFINE_FEW(1)
SKM_DEFINE_FEW(2)
SKM_DEFINE_FEW(3)
SKM_DEFINE_FEW(4)
SKM_DEFINE_FEW(5)
#undef SKM_DEFINE_FEW

static void SKM_FN(ukernel_few)(int64_t mr, int64_t kc, const float *a, int64_t rs, int64_t ps,
                                const float *bp, float *c, int64_t rsc, int accumulate) {
    switch (mr) {
    case 1: SKM_FN(ukernel_few1)(kc, a, rs, ps, bp, c, rsc, accumulate); break;
    case 2: SKM_FN(ukernel_few2)(kc, a, rs, ps, bp, c, rsc, accumulate); break;
    case 3: SKM_FN(ukernel_few3)(kc, a, rs, ps, bp, c, rsc, accumulate); break;
    case 4: SKM_FN(ukernel_few4)(kc, a, rs, ps, bp, c, rsc, accumulate); break;
    default: SKM_FN(ukernel_few5)(kc, a, rs, ps, bp, c, rsc, accumulate); break;
    }
}

/* One Q4_0 block: 16 bytes, value v in byte v/2 (low nibble first), value = (q - 8) * scale. */
static inline void SKM_FN(q4_block)(const uint8_t *blk, float scale, float *out) {
    for (int i = 0; i < 16; i++) {
        out[2 * i] = (float)((blk[i] & 15) - 8) * scale;
        out[2 * i + 1] = (float)((blk[i] >> 4) - 8) * scale;
    }
}

/* Packs B[p0:p0+kc, j0:j0+nc] into NR-wide micro-panels, zero-padding the last one, and
 * dequantizes weight-only int8/Q4_0/Q8_0 on the way: the microkernel only ever sees fp32. */
static void SKM_FN(pack_b)(const gemm_desc *d, int64_t p0, int64_t kc, int64_t j0, int64_t nc,
                           float *restrict dst) {
    for (int64_t jr = 0; jr < nc; jr += NR) {
        int64_t nr = MIN(NR, nc - jr), j = j0 + jr;
        float *panel = dst + jr * kc;
        if (d->b_kind == SKM_W_F32 && d->csb == 1 && nr == NR) {
            const float *src = (const float *)d->b + p0 * d->rsb + j;
            for (int64_t p = 0; p < kc; p++) {
                skv_store(panel + p * NR, skv_load(src + p * d->rsb));
                skv_store(panel + p * NR + SKM_W, skv_load(src + p * d->rsb + SKM_W));
            }
            continue;
        }
        for (int64_t jj = 0; jj < NR; jj++) {
            float *col = panel + jj;
            if (jj >= nr) {
                for (int64_t p = 0; p < kc; p++) col[p * NR] = 0.0f;
            } else if (d->b_kind == SKM_W_F32) {
                const float *src = (const float *)d->b + p0 * d->rsb + (j + jj) * d->csb;
                for (int64_t p = 0; p < kc; p++) col[p * NR] = src[p * d->rsb];
            } else if (d->b_kind == SKM_W_INT8) {
                const int8_t *src = (const int8_t *)d->b + (j + jj) * d->k + p0;
                float s = d->scales[j + jj];
                for (int64_t p = 0; p < kc; p++) col[p * NR] = (float)src[p] * s;
            } else if (d->b_kind == SKM_W_Q8_0) { /* value kk of a row sits at byte kk */
                const int8_t *src = (const int8_t *)d->b + (j + jj) * d->q_blocks * 32;
                const float *sc = d->scales + (j + jj) * d->q_blocks;
                for (int64_t p = 0; p < kc; p++) col[p * NR] = (float)src[p0 + p] * sc[(p0 + p) >> 5];
            } else { /* Q4_0: decode whole blocks, keep the values this K slice needs */
                const uint8_t *row = (const uint8_t *)d->b + (j + jj) * d->q_blocks * 16;
                const float *sc = d->scales + (j + jj) * d->q_blocks;
                float vals[32];
                for (int64_t p = 0; p < kc;) {
                    int64_t kk = p0 + p, blk = kk >> 5, v0 = kk & 31;
                    int64_t take = MIN(32 - v0, kc - p);
                    SKM_FN(q4_block)(row + blk * 16, sc[blk], vals);
                    for (int64_t v = 0; v < take; v++) col[(p + v) * NR] = vals[v0 + v];
                    p += take;
                }
            }
        }
    }
}

/* Packs A[i0:i0+mc, p0:p0+kc] into MR-tall micro-panels (kc steps of MR values). */
static void SKM_FN(pack_a)(const gemm_desc *d, int64_t i0, int64_t mc, int64_t p0, int64_t kc,
                           float *restrict dst) {
    for (int64_t ir = 0; ir < mc; ir += MR) {
        int64_t mr = MIN(MR, mc - ir);
        float *panel = dst + ir * kc;
        for (int64_t r = 0; r < MR; r++) {
            if (r >= mr) {
                for (int64_t p = 0; p < kc; p++) panel[p * MR + r] = 0.0f;
                continue;
            }
            const float *src = d->a + (i0 + ir + r) * d->rsa + p0 * d->csa;
            if (d->csa == 1)
                for (int64_t p = 0; p < kc; p++) panel[p * MR + r] = src[p];
            else
                for (int64_t p = 0; p < kc; p++) panel[p * MR + r] = src[p * d->csa];
        }
    }
}

/* Bias, activation and residual on a finished tile while it is still in L1. */
static void SKM_FN(epilogue)(const gemm_desc *d, float *c, int64_t i, int64_t j, int64_t mr,
                             int64_t nr) {
    if (d->bias == NULL && d->act == SKM_ACT_NONE && d->res == NULL) return;
    for (int64_t r = 0; r < mr; r++) {
        float *row = c + r * d->rsc;
        const float *rr = d->res != NULL ? d->res + (i + r) * d->rsr + j : NULL;
        skv rb = skv_set1(d->bias != NULL && d->bias_per_row ? d->bias[i + r] : 0.0f);
        const float *cb = d->bias != NULL && !d->bias_per_row ? d->bias + j : NULL;
        for (int64_t x = 0; x < nr; x += SKM_W) {
            int64_t cnt = MIN(SKM_W, nr - x);
            skv v = cnt == SKM_W ? skv_load(row + x) : ld_part(row + x, cnt, 0.0f);
            v = skv_add(v, rb);
            if (cb != NULL) v = skv_add(v, cnt == SKM_W ? skv_load(cb + x) : ld_part(cb + x, cnt, 0.0f));
            v = apply_act(v, d->act);
            if (rr != NULL) v = skv_add(v, cnt == SKM_W ? skv_load(rr + x) : ld_part(rr + x, cnt, 0.0f));
            if (cnt == SKM_W)
                skv_store(row + x, v);
            else
                st_part(row + x, v, cnt);
        }
    }
}

/* The residual of a tile is read once, in the epilogue, usually from memory: ask for it
 * before the tile's K loop, which takes long enough to hide the miss. */
SKM_INLINE void SKM_FN(prefetch_residual)(const gemm_desc *d, int64_t i, int64_t j, int64_t mr) {
    for (int64_t r = 0; r < mr; r++)
        for (int64_t x = 0; x < NR; x += 64 / (int64_t)sizeof(float))
            __builtin_prefetch(d->res + (i + r) * d->rsr + j + x, 0, 3);
}

/* The two inner loops over one packed A block (rows ic..ic+mc) and the packed B panel's
 * micro-panels [jr0, jr1) (in units of columns); the panel of column jr starts at
 * bp + jr * bstride (kc for a panel packed per K block, k for a pre-packed weight).  Edge
 * tiles are computed in full into a scratch tile and only the existing part is copied back. */
static void SKM_FN(macro_kernel)(const gemm_desc *d, const float *ap, const float *bp,
                                 int64_t bstride, int64_t ic, int64_t mc, int64_t jc,
                                 int64_t jr0, int64_t jr1, int64_t kc, int first, int last) {
    float edge[MR * NR] __attribute__((aligned(64)));
    for (int64_t jr = jr0; jr < jr1; jr += NR) {
        int64_t nr = MIN(NR, jr1 - jr);
        for (int64_t ir = 0; ir < mc; ir += MR) {
            int64_t mr = MIN(MR, mc - ir);
            float *c = d->c + (ic + ir) * d->rsc + jc + jr;
            if (last && d->res != NULL) SKM_FN(prefetch_residual)(d, ic + ir, jc + jr, mr);
            if (mr == MR && nr == NR) {
                SKM_FN(ukernel)(kc, ap + ir * kc, bp + jr * bstride, c, d->rsc, !first);
            } else if (nr == NR) {
                SKM_FN(ukernel_few)(mr, kc, ap + ir * kc, 1, MR, bp + jr * bstride, c, d->rsc, !first);
            } else {
                SKM_FN(ukernel)(kc, ap + ir * kc, bp + jr * bstride, edge, NR, 0);
                for (int64_t r = 0; r < mr; r++)
                    for (int64_t x = 0; x < nr; x++)
                        c[r * d->rsc + x] = first ? edge[r * NR + x] : c[r * d->rsc + x] + edge[r * NR + x];
            }
            if (last) SKM_FN(epilogue)(d, c, ic + ir, jc + jr, mr, nr);
        }
    }
}

/* macro_kernel with A read in place (ukernel_rows): a points at row ic, column pc of A. */
static void SKM_FN(macro_kernel_rows)(const gemm_desc *d, const float *a, const float *bp,
                                      int64_t bstride, int64_t ic, int64_t mc, int64_t jr0,
                                      int64_t jr1, int64_t kc, int first, int last) {
    float edge[MR * NR] __attribute__((aligned(64)));
    for (int64_t jr = jr0; jr < jr1; jr += NR) {
        int64_t nr = MIN(NR, jr1 - jr);
        for (int64_t ir = 0; ir < mc; ir += MR) {
            int64_t mr = MIN(MR, mc - ir);
            float *c = d->c + (ic + ir) * d->rsc + jr;
            const float *at = a + ir * d->rsa;
            if (last && d->res != NULL) SKM_FN(prefetch_residual)(d, ic + ir, jr, mr);
            if (mr == MR && nr == NR) {
                SKM_FN(ukernel_rows)(kc, at, d->rsa, MR, bp + jr * bstride, c, d->rsc, !first);
            } else if (nr == NR) {
                SKM_FN(ukernel_few)(mr, kc, at, d->rsa, 1, bp + jr * bstride, c, d->rsc, !first);
            } else {
                SKM_FN(ukernel_rows)(kc, at, d->rsa, mr, bp + jr * bstride, edge, NR, 0);
                for (int64_t r = 0; r < mr; r++)
                    for (int64_t x = 0; x < nr; x++)
                        c[r * d->rsc + x] = first ? edge[r * NR + x] : c[r * d->rsc + x] + edge[r * NR + x];
            }
            if (last) SKM_FN(epilogue)(d, c, ic + ir, jr, mr, nr);
        }
    }
}

static int SKM_FN(gemm_k0)(const gemm_desc *d) { /* empty sum: zeros, then the epilogue */
    for (int64_t i = 0; i < d->m; i++) memset(d->c + i * d->rsc, 0, (size_t)d->n * sizeof(float));
    SKM_FN(epilogue)(d, d->c, 0, 0, d->m, d->n);
    return SKM_OK;
}

static int SKM_FN(gemv_run)(const gemm_desc *d, int parallel);
static int SKM_FN(gemv_ok)(const gemm_desc *d);

static int SKM_FN(gemm_seq)(const gemm_desc *d, int slot) {
    int64_t m = d->m, n = d->n, k = d->k;
    if (m <= 0 || n <= 0) return SKM_OK;
    if (k <= 0) return SKM_FN(gemm_k0)(d);
    if (SKM_FN(gemv_ok)(d)) return SKM_FN(gemv_run)(d, 0);
    skm_blocking bl = SKM_FN(blocking);
    int64_t ncmax = MIN(bl.nc, ROUND_UP(n, NR)), kcmax = MIN(bl.kc, k);
    int64_t mcmax = MIN(bl.mc, ROUND_UP(m, MR));
    skm_arena_mark_t mark = skm_arena_mark(slot);
    float *bp = skm_arena_alloc(slot, (size_t)(kcmax * ncmax) * sizeof(float));
    float *ap = skm_arena_alloc(slot, (size_t)(kcmax * mcmax) * sizeof(float));
    if (bp == NULL || ap == NULL) {
        skm_arena_release(slot, mark);
        return SKM_ENOMEM;
    }
    for (int64_t jc = 0; jc < n; jc += bl.nc) {
        int64_t nc = MIN(bl.nc, n - jc);
        for (int64_t pc = 0; pc < k; pc += bl.kc) {
            int64_t kc = MIN(bl.kc, k - pc);
            SKM_FN(pack_b)(d, pc, kc, jc, nc, bp);
            for (int64_t ic = 0; ic < m; ic += bl.mc) {
                int64_t mc = MIN(bl.mc, m - ic);
                SKM_FN(pack_a)(d, ic, mc, pc, kc, ap);
                SKM_FN(macro_kernel)(d, ap, bp, kc, ic, mc, jc, 0, nc, kc, pc == 0, pc + kc >= k);
            }
        }
    }
    skm_arena_release(slot, mark);
    return SKM_OK;
}

/* Multithreaded GEMM as BLIS does it: per (jc, pc) block, the threads first pack the B panel
 * together (one shared copy, read by all from L3), then share out the MC blocks of A, each
 * packing its own A block into its arena (L2).  When A has too few MC blocks to go round
 * (the common M = 128 of a short sequence), A is packed once, shared, and the threads split
 * the B micro-panels instead.  Tasks are claimed dynamically, so a core stolen by another
 * process only slows its own share. */
typedef struct {
    const gemm_desc *d;
    skm_blocking bl;
    int64_t jc, nc, pc, kc;
    float *bp, *ap;           /* ap: shared packed A (whole m) in shared-A mode, else NULL */
    int64_t bgroups, agroups; /* packing tasks */
    int64_t n_ic, jgroups;    /* compute tasks = n_ic * jgroups */
    atomic_int err;
} gemm_par_ctx;

static void SKM_FN(gemm_pack_task)(void *vctx, int64_t t, int slot) {
    (void)slot;
    gemm_par_ctx *c = vctx;
    if (t < c->bgroups) {
        int64_t panels = (c->nc + NR - 1) / NR;
        int64_t lo = panels * t / c->bgroups * NR, hi = MIN(panels * (t + 1) / c->bgroups * NR, c->nc);
        if (hi > lo) SKM_FN(pack_b)(c->d, c->pc, c->kc, c->jc + lo, hi - lo, c->bp + lo * c->kc);
    } else {
        int64_t g = t - c->bgroups, panels = (c->d->m + MR - 1) / MR;
        int64_t lo = panels * g / c->agroups * MR, hi = MIN(panels * (g + 1) / c->agroups * MR, c->d->m);
        if (hi > lo) SKM_FN(pack_a)(c->d, lo, hi - lo, c->pc, c->kc, c->ap + lo * c->kc);
    }
}

static void SKM_FN(gemm_compute_task)(void *vctx, int64_t t, int slot) {
    gemm_par_ctx *c = vctx;
    int64_t icb = t / c->jgroups, g = t % c->jgroups;
    int64_t ic = icb * c->bl.mc, mc = MIN(c->bl.mc, c->d->m - ic);
    int first = c->pc == 0, last = c->pc + c->kc >= c->d->k;
    if (c->ap != NULL) {
        int64_t panels = (c->nc + NR - 1) / NR;
        int64_t lo = panels * g / c->jgroups * NR, hi = MIN(panels * (g + 1) / c->jgroups * NR, c->nc);
        if (hi > lo) SKM_FN(macro_kernel)(c->d, c->ap + ic * c->kc, c->bp, c->kc, ic, mc, c->jc, lo, hi, c->kc, first, last);
        return;
    }
    skm_arena_mark_t mark = skm_arena_mark(slot);
    float *ap = skm_arena_alloc(slot, (size_t)(ROUND_UP(mc, MR) * c->kc) * sizeof(float));
    if (ap == NULL) {
        atomic_store(&c->err, SKM_ENOMEM);
        return;
    }
    SKM_FN(pack_a)(c->d, ic, mc, c->pc, c->kc, ap);
    SKM_FN(macro_kernel)(c->d, ap, c->bp, c->kc, ic, mc, c->jc, 0, c->nc, c->kc, first, last);
    skm_arena_release(slot, mark);
}

/* ---- few rows (m < MR: one token, a pooled vector, a classifier head) ----
 * Packing would copy the whole B to use it once, so B is streamed as it lies: row-major B by
 * axpy over its rows, transposed or quantized weights by dot products along their rows
 * (int8 rows are decoded a chunk at a time into a small buffer; Q4_0 / Q8_0 blocks are read
 * in place). */
#define GEMV_CHUNK 256

typedef struct {
    const gemm_desc *d;
    int64_t per;
    const float *xs; /* Q4_0: the rows of A split as the blocks are (see dot_q4), or NULL */
} gemv_ctx;

/* Row j of the weight (B's column j), elements [p0, p0+cnt), as floats. */
static const float *SKM_FN(weight_row)(const gemm_desc *d, int64_t j, int64_t p0, int64_t cnt,
                                       float *tmp) {
    if (d->b_kind == SKM_W_F32) return (const float *)d->b + j * d->csb + p0;
    const int8_t *src = (const int8_t *)d->b + j * d->k + p0; /* int8 per output channel */
    float s = d->scales[j];
    for (int64_t q = 0; q < cnt; q++) tmp[q] = (float)src[q] * s;
    return tmp;
}

static float SKM_FN(dot)(const float *a, const float *b, int64_t n) {
    skv acc0 = skv_zero(), acc1 = skv_zero();
    int64_t q = 0;
    for (; q + 2 * SKM_W <= n; q += 2 * SKM_W) {
        acc0 = skv_fma(skv_load(a + q), skv_load(b + q), acc0);
        acc1 = skv_fma(skv_load(a + q + SKM_W), skv_load(b + q + SKM_W), acc1);
    }
    for (; q < n; q += SKM_W) {
        int64_t cnt = MIN(SKM_W, n - q);
        acc0 = skv_fma(ld_part(a + q, cnt, 0.0f), ld_part(b + q, cnt, 0.0f), acc0);
    }
    return skv_reduce_add(skv_add(acc0, acc1));
}

/* x . (row of Q8_0 blocks), the blocks read as they lie: sum over blocks of scale * (x . q),
 * so decoding a token reads each weight byte once and never writes a float copy of it. */
static float SKM_FN(dot_q8)(const float *x, const int8_t *q, const float *sc, int64_t k) {
    skv acc = skv_zero();
    int64_t full = k >> 5;
    for (int64_t b = 0; b < full; b++) {
        const float *xb = x + b * 32;
        const int8_t *qb = q + b * 32;
        skv s0 = skv_zero(), s1 = skv_zero();
        for (int i = 0; i < 32; i += 2 * SKM_W) {
            s0 = skv_fma(skv_load(xb + i), skv_load_i8(qb + i), s0);
            s1 = skv_fma(skv_load(xb + i + SKM_W), skv_load_i8(qb + i + SKM_W), s1);
        }
        acc = skv_fma(skv_set1(sc[b]), skv_add(s0, s1), acc);
    }
    float tail = 0.0f; /* the short last block: its zero padding is not read */
    for (int64_t p = full * 32; p < k; p++) tail += x[p] * (float)q[p];
    return skv_reduce_add(acc) + (full * 32 < k ? sc[full] * tail : 0.0f);
}

/* x . (row of Q4_0 blocks), the blocks read as they lie.  A block holds value 2t in byte t's
 * low nibble and 2t+1 in its high one, so x comes split the same way (xs: per block its 16
 * even values, then its 16 odd ones) and each nibble meets its x lane without a shuffle. xs
 * is zero past k, so a short last block's padding nibbles add nothing. */
static float SKM_FN(dot_q4)(const float *xs, const uint8_t *q, const float *sc, int64_t blocks) {
    skv acc = skv_zero();
    for (int64_t b = 0; b < blocks; b++) {
        const float *xb = xs + b * 32;
        const uint8_t *qb = q + b * 16;
        skv s0 = skv_zero(), s1 = skv_zero();
        for (int i = 0; i < 16; i += SKM_W) {
            s0 = skv_fma(skv_load(xb + i), skv_load_q4lo(qb + i), s0);
            s1 = skv_fma(skv_load(xb + 16 + i), skv_load_q4hi(qb + i), s1);
        }
        acc = skv_fma(skv_set1(sc[b]), skv_add(s0, s1), acc);
    }
    return skv_reduce_add(acc);
}

/* dot_q4 for two rows of x (xs and xs + kp) at once: the nibbles are unpacked once for both,
 * which is most of the work. */
static void SKM_FN(dot_q4_2)(const float *xs, int64_t kp, const uint8_t *q, const float *sc,
                             int64_t blocks, float *out) {
    skv acc0 = skv_zero(), acc1 = skv_zero();
    for (int64_t b = 0; b < blocks; b++) {
        const float *xb = xs + b * 32;
        const uint8_t *qb = q + b * 16;
        skv s0 = skv_zero(), s1 = skv_zero(), t0 = skv_zero(), t1 = skv_zero();
        for (int i = 0; i < 16; i += SKM_W) {
            skv lo = skv_load_q4lo(qb + i), hi = skv_load_q4hi(qb + i);
            s0 = skv_fma(skv_load(xb + i), lo, s0);
            s1 = skv_fma(skv_load(xb + 16 + i), hi, s1);
            t0 = skv_fma(skv_load(xb + kp + i), lo, t0);
            t1 = skv_fma(skv_load(xb + kp + 16 + i), hi, t1);
        }
        skv s = skv_set1(sc[b]);
        acc0 = skv_fma(s, skv_add(s0, s1), acc0);
        acc1 = skv_fma(s, skv_add(t0, t1), acc1);
    }
    out[0] = skv_reduce_add(acc0);
    out[1] = skv_reduce_add(acc1);
}

static void SKM_FN(gemv_task)(void *vctx, int64_t t, int slot) {
    (void)slot;
    gemv_ctx *c = vctx;
    const gemm_desc *d = c->d;
    int64_t j0 = t * c->per, j1 = MIN(d->n, j0 + c->per), w = j1 - j0;
    if (w <= 0) return;
    if (d->b_kind == SKM_W_F32 && d->csb == 1) { /* row-major B: C[i, :] += A[i, p] B[p, :] */
        const float *b = d->b;
        for (int64_t i = 0; i < d->m; i++) {
            float *cr = d->c + i * d->rsc + j0;
            memset(cr, 0, (size_t)w * sizeof(float));
            for (int64_t p = 0; p < d->k; p++) {
                skv a = skv_set1(d->a[i * d->rsa + p * d->csa]);
                const float *br = b + p * d->rsb + j0;
                for (int64_t x = 0; x < w; x += SKM_W) {
                    int64_t cnt = MIN(SKM_W, w - x);
                    if (cnt == SKM_W)
                        skv_store(cr + x, skv_fma(a, skv_load(br + x), skv_load(cr + x)));
                    else
                        st_part(cr + x, skv_fma(a, ld_part(br + x, cnt, 0.0f), ld_part(cr + x, cnt, 0.0f)), cnt);
                }
            }
        }
    } else if (d->b_kind == SKM_W_Q8_0) {
        for (int64_t j = j0; j < j1; j++) {
            const int8_t *row = (const int8_t *)d->b + j * d->q_blocks * 32;
            const float *sc = d->scales + j * d->q_blocks;
            for (int64_t i = 0; i < d->m; i++)
                d->c[i * d->rsc + j] = SKM_FN(dot_q8)(d->a + i * d->rsa, row, sc, d->k);
        }
    } else if (d->b_kind == SKM_W_Q4_0) {
        int64_t kp = d->q_blocks * 32;
        for (int64_t j = j0; j < j1; j++) {
            const uint8_t *row = (const uint8_t *)d->b + j * d->q_blocks * 16;
            const float *sc = d->scales + j * d->q_blocks;
            int64_t i = 0;
            for (; i + 2 <= d->m; i += 2) {
                float two[2];
                SKM_FN(dot_q4_2)(c->xs + i * kp, kp, row, sc, d->q_blocks, two);
                d->c[i * d->rsc + j] = two[0];
                d->c[(i + 1) * d->rsc + j] = two[1];
            }
            if (i < d->m)
                d->c[i * d->rsc + j] = SKM_FN(dot_q4)(c->xs + i * kp, row, sc, d->q_blocks);
        }
    } else { /* weight rows: one dot product per output, a chunk of k at a time */
        float tmp[GEMV_CHUNK];
        for (int64_t j = j0; j < j1; j++) {
            for (int64_t i = 0; i < d->m; i++) d->c[i * d->rsc + j] = 0.0f;
            for (int64_t p0 = 0; p0 < d->k; p0 += GEMV_CHUNK) {
                int64_t cnt = MIN(GEMV_CHUNK, d->k - p0);
                const float *wr = SKM_FN(weight_row)(d, j, p0, cnt, tmp);
                for (int64_t i = 0; i < d->m; i++)
                    d->c[i * d->rsc + j] += SKM_FN(dot)(d->a + i * d->rsa + p0, wr, cnt);
            }
        }
    }
    SKM_FN(epilogue)(d, d->c + j0, 0, j0, d->m, w);
}

/* Only for unit-stride A rows and B either row-major or given as weight rows. */
static int SKM_FN(gemv_ok)(const gemm_desc *d) {
    if (d->m >= MR || d->m <= 0 || d->n <= 0 || d->k <= 0) return 0;
    if (d->b_kind != SKM_W_F32) return d->csa == 1;
    return d->csb == 1 || (d->rsb == 1 && d->csa == 1);
}

static int SKM_FN(gemv_run)(const gemm_desc *d, int parallel) {
    gemv_ctx c = {d, d->n, NULL};
    int64_t threads = parallel ? skm_threads() : 1;
    if (threads > 1 && d->n * d->k * d->m >= 64 * 1024) {
        int64_t tasks = MIN(4 * threads, (d->n + 15) / 16);
        c.per = ROUND_UP((d->n + tasks - 1) / tasks, SKM_W);
    }
    int slot = skm_current_slot();
    skm_arena_mark_t mark = skm_arena_mark(slot);
    if (d->b_kind == SKM_W_Q4_0) { /* split once here, not per output row */
        int64_t kp = d->q_blocks * 32;
        float *xs = skm_arena_alloc(slot, (size_t)(d->m * kp) * sizeof(float));
        if (xs == NULL) {
            skm_arena_release(slot, mark);
            return SKM_ENOMEM;
        }
        memset(xs, 0, (size_t)(d->m * kp) * sizeof(float));
        for (int64_t i = 0; i < d->m; i++) /* value p of a block: even ones first, then odd */
            for (int64_t p = 0; p < d->k; p++)
                xs[i * kp + (p & ~(int64_t)31) + ((p & 31) >> 1) + (p & 1) * 16] =
                    d->a[i * d->rsa + p];
        c.xs = xs;
    }
    skm_parallel_for((d->n + c.per - 1) / c.per, SKM_FN(gemv_task), &c);
    skm_arena_release(slot, mark);
    return SKM_OK;
}

static int SKM_FN(gemm_run)(const gemm_desc *d) {
    if (SKM_FN(gemv_ok)(d)) return SKM_FN(gemv_run)(d, 1);
    int64_t threads = skm_threads();
    double work = (double)d->m * (double)d->n * (double)d->k;
    if (threads <= 1 || work < 96.0 * 96.0 * 96.0 || d->m <= 0 || d->n <= 0 || d->k <= 0)
        return SKM_FN(gemm_seq)(d, skm_current_slot());
    int slot = skm_current_slot();
    gemm_par_ctx c = {.d = d, .bl = SKM_FN(blocking)};
    c.n_ic = (d->m + c.bl.mc - 1) / c.bl.mc;
    int shared_a = c.n_ic < 2 * threads;
    if (!shared_a) { /* at least ~4 A blocks per thread, so a stalled thread holds back less */
        int64_t want = ROUND_UP((d->m + 4 * threads - 1) / (4 * threads), MR);
        c.bl.mc = MAX(4 * MR, MIN(c.bl.mc, want));
        c.n_ic = (d->m + c.bl.mc - 1) / c.bl.mc;
    }
    int64_t ncmax = MIN(c.bl.nc, ROUND_UP(d->n, NR)), kcmax = MIN(c.bl.kc, d->k);
    skm_arena_mark_t mark = skm_arena_mark(slot);
    c.bp = skm_arena_alloc(slot, (size_t)(kcmax * ncmax) * sizeof(float));
    c.ap = shared_a ? skm_arena_alloc(slot, (size_t)(kcmax * ROUND_UP(d->m, MR)) * sizeof(float)) : NULL;
    if (c.bp == NULL || (shared_a && c.ap == NULL)) {
        skm_arena_release(slot, mark);
        return SKM_ENOMEM;
    }
    for (c.jc = 0; c.jc < d->n && atomic_load(&c.err) == SKM_OK; c.jc += c.bl.nc) {
        c.nc = MIN(c.bl.nc, d->n - c.jc);
        int64_t panels = (c.nc + NR - 1) / NR;
        c.bgroups = MIN(panels, 2 * threads);
        c.agroups = shared_a ? MIN((d->m + MR - 1) / MR, 2 * threads) : 0;
        c.jgroups = shared_a ? MIN(panels, MAX(1, 4 * threads / c.n_ic)) : 1;
        for (c.pc = 0; c.pc < d->k; c.pc += c.bl.kc) {
            c.kc = MIN(c.bl.kc, d->k - c.pc);
            skm_parallel_for(c.bgroups + c.agroups, SKM_FN(gemm_pack_task), &c);
            skm_parallel_for(c.n_ic * c.jgroups, SKM_FN(gemm_compute_task), &c);
        }
    }
    skm_arena_release(slot, mark);
    return atomic_load(&c.err);
}

typedef struct {
    const float *a, *b;
    const int64_t *a_off, *b_off;
    float *c;
    int64_t m, n, k;
    int a_trans, b_trans; /* operand stored transposed: a as [k, m], b as [n, k] */
    atomic_int err;
} matmul_ctx;

static gemm_desc SKM_FN(matmul_desc)(matmul_ctx *ctx, int64_t i) {
    gemm_desc d = {0};
    d.m = ctx->m, d.n = ctx->n, d.k = ctx->k;
    d.a = ctx->a + ctx->a_off[i];
    d.rsa = ctx->a_trans ? 1 : ctx->k, d.csa = ctx->a_trans ? ctx->m : 1;
    d.b_kind = SKM_W_F32, d.b = ctx->b + ctx->b_off[i];
    d.rsb = ctx->b_trans ? 1 : ctx->n, d.csb = ctx->b_trans ? ctx->k : 1;
    d.c = ctx->c + i * ctx->m * ctx->n, d.rsc = ctx->n;
    return d;
}

static void SKM_FN(matmul_task)(void *vctx, int64_t i, int slot) {
    matmul_ctx *ctx = vctx;
    gemm_desc d = SKM_FN(matmul_desc)(ctx, i);
    int rc = SKM_FN(gemm_seq)(&d, slot);
    if (rc != SKM_OK) atomic_store(&ctx->err, rc);
}

static int SKM_FN(matmul)(int64_t batch, const float *a, const int64_t *a_off, int a_trans,
                          const float *b, const int64_t *b_off, int b_trans, float *c, int64_t m,
                          int64_t n, int64_t k) {
    matmul_ctx ctx = {a, b, a_off, b_off, c, m, n, k, a_trans, b_trans, 0};
    if (batch >= skm_threads() && batch > 1) { /* whole matrices per thread */
        skm_parallel_for(batch, SKM_FN(matmul_task), &ctx);
        return atomic_load(&ctx.err);
    }
    for (int64_t i = 0; i < batch; i++) {
        gemm_desc d = SKM_FN(matmul_desc)(&ctx, i);
        int rc = SKM_FN(gemm_run)(&d);
        if (rc != SKM_OK) return rc;
    }
    return SKM_OK;
}

/* out[m,n] = act(x[m,k] W^T + bias) with W [n,k] as torch stores it (fp32, int8, Q4_0, Q8_0). */
static int SKM_FN(linear)(const float *x, const void *w, int w_kind, const float *scales,
                          const float *bias, float *out, int64_t m, int64_t n, int64_t k,
                          int act) {
    gemm_desc d = {0};
    d.m = m, d.n = n, d.k = k;
    d.a = x, d.rsa = k, d.csa = 1;
    d.b_kind = w_kind, d.b = w, d.rsb = 1, d.csb = k;
    d.scales = scales, d.q_blocks = (k + 31) / 32;
    d.c = out, d.rsc = n;
    d.bias = bias, d.bias_per_row = 0, d.act = act;
    return SKM_FN(gemm_run)(&d);
}


/* ---- pre-packed weights ----
 * A model's linear weights never change, so W [n, k] is packed once, at load, into the
 * NR-wide B micro-panels the microkernel reads (B = W^T): the panel of columns [j, j + NR)
 * holds k rows of NR values at packed + j * k, the last panel zero-padded.  A call then skips
 * pack_b entirely, and a K slice of a panel is contiguous, so cache blocking over K is kept.
 * The layout depends on NR, so a packed weight belongs to the ISA that packed it. */
static int SKM_FN(pack_weight)(const float *w, int64_t n, int64_t k, float *packed) {
    gemm_desc d = {0};
    d.n = n, d.k = k;
    d.b_kind = SKM_W_F32, d.b = w, d.rsb = 1, d.csb = k;
    if (n > 0 && k > 0) SKM_FN(pack_b)(&d, 0, k, 0, n, packed);
    return SKM_OK;
}

/* One parallel_for per call: a task is (block of row tiles) x (group of B panels).  Row
 * blocks split the MR tiles evenly (sizes differ by one tile at most) and each packs its rows
 * of A per K slice into its arena, or reads them in place (a_in_place); when row blocks are
 * fewer than tasks wanted, the B panels are split into groups too. */
typedef struct {
    gemm_desc d;
    const float *bp;
    int64_t kc, tiles, n_ic, jgroups, panels;
    int a_in_place;
    atomic_int err;
} packed_ctx;

static void SKM_FN(linear_packed_task)(void *vctx, int64_t t, int slot) {
    packed_ctx *c = vctx;
    const gemm_desc *d = &c->d;
    int64_t icb = t / c->jgroups, g = t % c->jgroups;
    int64_t ic = c->tiles * icb / c->n_ic * MR, mc = MIN(c->tiles * (icb + 1) / c->n_ic * MR, d->m) - ic;
    int64_t lo = c->panels * g / c->jgroups * NR, hi = MIN(c->panels * (g + 1) / c->jgroups * NR, d->n);
    if (hi <= lo || mc <= 0) return;
    if (c->a_in_place) {
        for (int64_t pc = 0; pc < d->k; pc += c->kc) {
            int64_t kc = MIN(c->kc, d->k - pc);
            SKM_FN(macro_kernel_rows)(d, d->a + ic * d->rsa + pc, c->bp + pc * NR, d->k, ic, mc, lo, hi, kc,
                                      pc == 0, pc + kc >= d->k);
        }
        return;
    }
    skm_arena_mark_t mark = skm_arena_mark(slot);
    float *ap = skm_arena_alloc(slot, (size_t)(ROUND_UP(mc, MR) * MIN(c->kc, d->k)) * sizeof(float));
    if (ap == NULL) {
        atomic_store(&c->err, SKM_ENOMEM);
        return;
    }
    for (int64_t pc = 0; pc < d->k; pc += c->kc) {
        int64_t kc = MIN(c->kc, d->k - pc);
        SKM_FN(pack_a)(d, ic, mc, pc, kc, ap);
        SKM_FN(macro_kernel)(d, ap, c->bp + pc * NR, d->k, ic, mc, 0, lo, hi, kc, pc == 0, pc + kc >= d->k);
    }
    skm_arena_release(slot, mark);
}

/* out[m,n] = act(x[m,k] W^T + bias) + residual, W given pre-packed (pack_weight). */
static int SKM_FN(linear_packed)(const float *x, const float *packed, const float *bias,
                                 const float *residual, float *out, int64_t m, int64_t n,
                                 int64_t k, int act) {
    packed_ctx c = {.bp = packed};
    gemm_desc *d = &c.d;
    d->m = m, d->n = n, d->k = k;
    d->a = x, d->rsa = k, d->csa = 1;
    d->b_kind = SKM_W_F32, d->rsb = 1, d->csb = k; /* described for pack_a's sake only */
    d->c = out, d->rsc = n;
    d->bias = bias, d->act = act, d->res = residual, d->rsr = n;
    if (m <= 0 || n <= 0) return SKM_OK;
    if (k <= 0) return SKM_FN(gemm_k0)(d);
    skm_blocking bl = SKM_FN(blocking);
    int64_t threads = skm_threads(), want = 4 * threads; /* a stalled thread holds back less */
    double work = (double)m * (double)n * (double)k;
    c.kc = bl.kc;
    c.panels = (n + NR - 1) / NR;
    c.tiles = (m + MR - 1) / MR;
    c.n_ic = (c.tiles * MR + bl.mc - 1) / bl.mc; /* blocks of at most MC rows */
    c.jgroups = 1;
    if (threads > 1 && work >= 32.0 * 32.0 * 32.0) {
        if (c.n_ic >= want) /* many rows: a multiple of the threads, so the shares come out even */
            c.n_ic = MIN(c.tiles, ROUND_UP(c.n_ic, threads));
        else /* few rows (a short sequence): every task has all rows and a group of panels */
            c.jgroups = MIN(c.panels, (want + c.n_ic - 1) / c.n_ic);
    }
    /* Read A in place when several tasks share its rows, or when few B panels would use each
     * packed A block (N <= 512: FFN down-projections, attention outputs) -- unless the row
     * stride is a multiple of 4 KiB, where the MR rows would fight over one L1 set. */
    c.a_in_place = c.jgroups > 1 || (n <= 512 && (k * (int64_t)sizeof(float)) % 4096 != 0);
    skm_parallel_for(c.n_ic * c.jgroups, SKM_FN(linear_packed_task), &c);
    return atomic_load(&c.err);
}

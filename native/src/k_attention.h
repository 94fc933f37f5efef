/* Part of kernels.h: included once per ISA after simd.h; see kernels.h. */
/* ======================================================================================
 * Fused scaled-dot-product attention.  A task is (batch, head), or (batch, head, block of
 * query rows) when heads are too few to go round the threads: the scores of a block live
 * in arena scratch, never as a [B, H, Sq, Sk] tensor.  Query heads
 * share key/value heads in groups (GQA/MQA): kv head = q head / (Hq / Hkv).
 * ====================================================================================== */
#define ATTN_QBLOCK (11 * MR) /* 66 rows: whole tiles, and 128 = 66 + 62 has one edge */

/* Element strides of q, k, v and out over (batch, head, row), in that order; rows are
 * contiguous in the last dim.  Dense [B, H, S, D] tensors have (H*S*D, S*D, D); heads read in
 * place from a fused [B, S, 3*H*D] projection have (S*3*H*D, D, 3*H*D). */
enum { ATTN_QB, ATTN_QH, ATTN_QS, ATTN_KB, ATTN_KH, ATTN_KS, ATTN_VB, ATTN_VH, ATTN_VS,
       ATTN_OB, ATTN_OH, ATTN_OS, ATTN_NSTRIDES };

typedef struct {
    const float *q, *k, *v, *mask;
    float *out;
    const int64_t *ms;
    int64_t hq, hkv, sq, sk, d, dv, qblocks;
    int64_t st[ATTN_NSTRIDES];
    int causal;
    float scale;
    atomic_int err;
} attn_ctx;

/* Softmax of the block's score rows in place, with the mask row and causal limit of each. */
static void SKM_FN(attn_softmax)(const attn_ctx *c, float *s, int64_t b, int64_t h, int64_t q0,
                                 int64_t rows, int64_t nk) {
    for (int64_t r = 0; r < rows; r++) {
        int64_t i = q0 + r, len = c->causal ? causal_len(i, c->sq, c->sk) : nk;
        const float *mrow = c->mask != NULL ? c->mask + b * c->ms[0] + h * c->ms[1] + i * c->ms[2] : NULL;
        SKM_FN(softmax_row)(s + r * nk, s + r * nk, nk, len, mrow, c->scale);
    }
}

static void SKM_FN(attn_zero_rows)(const attn_ctx *c, float *op, int64_t rows) {
    for (int64_t r = 0; r < rows; r++) memset(op + r * c->st[ATTN_OS], 0, (size_t)c->dv * sizeof(float));
}

/* One block of query rows through two general GEMMs (any length: they block over K). */
static void SKM_FN(attn_block)(attn_ctx *c, int64_t b, int64_t h, int64_t q0, int slot) {
    const int64_t *st = c->st;
    int64_t hk = h / (c->hq / c->hkv), rows = MIN(ATTN_QBLOCK, c->sq - q0);
    const float *qp = c->q + b * st[ATTN_QB] + h * st[ATTN_QH] + q0 * st[ATTN_QS];
    const float *kp = c->k + b * st[ATTN_KB] + hk * st[ATTN_KH];
    const float *vp = c->v + b * st[ATTN_VB] + hk * st[ATTN_VH];
    float *op = c->out + b * st[ATTN_OB] + h * st[ATTN_OH] + q0 * st[ATTN_OS];
    /* keys any row of this block may see: the causal limit trims both GEMMs */
    int64_t nk = c->causal ? causal_len(q0 + rows - 1, c->sq, c->sk) : c->sk;
    if (nk == 0) {
        SKM_FN(attn_zero_rows)(c, op, rows);
        return;
    }
    skm_arena_mark_t mark = skm_arena_mark(slot);
    float *s = skm_arena_alloc(slot, (size_t)(rows * nk) * sizeof(float));
    if (s == NULL) {
        atomic_store(&c->err, SKM_ENOMEM);
        return;
    }
    gemm_desc g = {0}; /* S = Q K^T */
    g.m = rows, g.n = nk, g.k = c->d;
    g.a = qp, g.rsa = st[ATTN_QS], g.csa = 1;
    g.b_kind = SKM_W_F32, g.b = kp, g.rsb = 1, g.csb = st[ATTN_KS];
    g.c = s, g.rsc = nk;
    int rc = SKM_FN(gemm_seq)(&g, slot);
    if (rc == SKM_OK) SKM_FN(attn_softmax)(c, s, b, h, q0, rows, nk);
    gemm_desc o = {0}; /* O = P V */
    o.m = rows, o.n = c->dv, o.k = nk;
    o.a = s, o.rsa = nk, o.csa = 1;
    o.b_kind = SKM_W_F32, o.b = vp, o.rsb = st[ATTN_VS], o.csb = 1;
    o.c = op, o.rsc = st[ATTN_OS];
    if (rc == SKM_OK) rc = SKM_FN(gemm_seq)(&o, slot);
    skm_arena_release(slot, mark);
    if (rc != SKM_OK) atomic_store(&c->err, rc);
}

static void SKM_FN(attn_task)(void *vctx, int64_t t, int slot) {
    attn_ctx *c = vctx;
    int64_t qb = t % c->qblocks, bh = t / c->qblocks;
    SKM_FN(attn_block)(c, bh / c->hq, bh % c->hq, qb * ATTN_QBLOCK, slot);
}

/* exp(x + mask - max) in place over [0, len), zeros from len to n; returns the row sum (0 for
 * a row with nothing to attend to, which is then all zeros).  The division by the sum is
 * left to the output row, which has dv columns instead of n. */
static float SKM_FN(exp_row)(float *x, int64_t n, int64_t len, const float *mrow) {
    int plain = mrow == NULL;
    skv one = skv_set1(1.0f), vmax = skv_set1(-INFINITY);
    for (int64_t j = 0; j < len; j += SKM_W)
        vmax = skv_max(vmax, SKM_FN(logits)(x, mrow, j, MIN(SKM_W, len - j), one, plain));
    float mx = len > 0 ? skv_reduce_max(vmax) : -INFINITY;
    if (mx == -INFINITY) {
        memset(x, 0, (size_t)n * sizeof(float));
        return 0.0f;
    }
    skv vm = skv_set1(mx), sum = skv_zero();
    for (int64_t j = 0; j < len; j += SKM_W) {
        int64_t cnt = MIN(SKM_W, len - j);
        skv e = skv_exp(skv_sub(SKM_FN(logits)(x, mrow, j, cnt, one, plain), vm));
        sum = skv_add(sum, e);
        if (cnt == SKM_W)
            skv_store(x + j, e);
        else
            st_part(x + j, e, cnt);
    }
    if (len < n) memset(x + len, 0, (size_t)(n - len) * sizeof(float));
    return skv_reduce_add(sum);
}

/* Keys and values short enough to pack whole (the usual encoder lengths): a task is one
 * (batch, head), K^T and V are packed once for all its query blocks, and each block is two
 * passes of the GEMM macro-kernel over the packed panels, scores in L2-sized scratch. */
#define ATTN_WHOLE_MAX 1024

static int SKM_FN(attn_whole_ok)(const attn_ctx *c) {
    return c->sk <= ATTN_WHOLE_MAX && c->d <= 256 && c->dv <= 256;
}

static void SKM_FN(attn_head_task)(void *vctx, int64_t t, int slot) {
    attn_ctx *c = vctx;
    const int64_t *st = c->st;
    int64_t h = t % c->hq, b = t / c->hq, hk = h / (c->hq / c->hkv);
    int64_t d = c->d, dv = c->dv, sk = c->sk, kpad = ROUND_UP(sk, NR);
    skm_arena_mark_t mark = skm_arena_mark(slot);
    float *kt = skm_arena_alloc(slot, (size_t)(kpad * MAX(d, 1)) * sizeof(float));
    float *vv = skm_arena_alloc(slot, (size_t)(ROUND_UP(dv, NR) * sk) * sizeof(float));
    float *s = skm_arena_alloc(slot, (size_t)(ATTN_QBLOCK * sk) * sizeof(float));
    float *inv = skm_arena_alloc(slot, ATTN_QBLOCK * sizeof(float));
    if (kt == NULL || vv == NULL || s == NULL || inv == NULL) {
        skm_arena_release(slot, mark);
        atomic_store(&c->err, SKM_ENOMEM);
        return;
    }
    gemm_desc g = {0}; /* S = Q (scale K^T): B = K^T, read from the key rows */
    g.n = sk, g.k = d;
    g.b_kind = SKM_W_F32, g.b = c->k + b * st[ATTN_KB] + hk * st[ATTN_KH], g.rsb = 1, g.csb = st[ATTN_KS];
    g.rsa = st[ATTN_QS], g.csa = 1;
    gemm_desc o = {0}; /* O = P V, P as exp(S - max) with the division applied to O */
    o.n = dv, o.k = sk;
    o.b_kind = SKM_W_F32, o.b = c->v + b * st[ATTN_VB] + hk * st[ATTN_VH], o.rsb = st[ATTN_VS], o.csb = 1;
    o.csa = 1, o.rsc = st[ATTN_OS];
    if (d > 0) {
        SKM_FN(pack_b)(&g, 0, d, 0, sk, kt);
        skv vs = skv_set1(c->scale); /* the scale folded into K^T: d * sk products, not sq * sk */
        for (int64_t i = 0; i < kpad * d; i += SKM_W) skv_store(kt + i, skv_mul(skv_load(kt + i), vs));
    }
    SKM_FN(pack_b)(&o, 0, sk, 0, dv, vv);
    for (int64_t q0 = 0; q0 < c->sq; q0 += ATTN_QBLOCK) {
        int64_t rows = MIN(ATTN_QBLOCK, c->sq - q0);
        int64_t nk = c->causal ? causal_len(q0 + rows - 1, c->sq, sk) : sk;
        float *op = c->out + b * st[ATTN_OB] + h * st[ATTN_OH] + q0 * st[ATTN_OS];
        if (nk == 0) {
            SKM_FN(attn_zero_rows)(c, op, rows);
            continue;
        }
        g.m = rows, g.c = s, g.rsc = nk;
        if (d > 0)
            SKM_FN(macro_kernel_rows)(&g, c->q + b * st[ATTN_QB] + h * st[ATTN_QH] + q0 * st[ATTN_QS], kt, d, 0,
                                      rows, 0, nk, d, 1, 1);
        else
            memset(s, 0, (size_t)(rows * nk) * sizeof(float));
        for (int64_t r = 0; r < rows; r++) {
            int64_t i = q0 + r, len = c->causal ? causal_len(i, c->sq, sk) : nk;
            const float *mrow = c->mask != NULL ? c->mask + b * c->ms[0] + h * c->ms[1] + i * c->ms[2] : NULL;
            float sum = SKM_FN(exp_row)(s + r * nk, nk, len, mrow);
            inv[r] = sum > 0.0f ? 1.0f / sum : 0.0f;
        }
        o.m = rows, o.a = s, o.rsa = nk, o.c = op;
        /* V was packed over all sk keys; the first nk rows of each panel are the keys seen */
        SKM_FN(macro_kernel_rows)(&o, s, vv, sk, 0, rows, 0, dv, nk, 1, 1);
        for (int64_t r = 0; r < rows; r++) {
            float *orow = op + r * st[ATTN_OS];
            skv vi = skv_set1(inv[r]);
            for (int64_t x = 0; x < dv; x += SKM_W) {
                int64_t cnt = MIN(SKM_W, dv - x);
                if (cnt == SKM_W)
                    skv_store(orow + x, skv_mul(skv_load(orow + x), vi));
                else
                    st_part(orow + x, skv_mul(ld_part(orow + x, cnt, 0.0f), vi), cnt);
            }
        }
    }
    skm_arena_release(slot, mark);
}

/* strides: ATTN_NSTRIDES element strides (see above), or NULL for dense [B, H, S, D]. */
static int SKM_FN(attention)(const float *q, const float *k, const float *v, float *out,
                             int64_t batch, int64_t hq, int64_t hkv, int64_t sq, int64_t sk,
                             int64_t d, int64_t dv, const float *mask, const int64_t *ms,
                             int causal, float scale, const int64_t *strides) {
    if (hkv <= 0 || hq % hkv != 0) return SKM_EINVAL;
    if (batch == 0 || hq == 0 || sq == 0 || dv == 0) return SKM_OK;
    attn_ctx c = {q, k, v, mask, out, ms, hq, hkv, sq, sk, d, dv,
                  (sq + ATTN_QBLOCK - 1) / ATTN_QBLOCK, {0}, causal, scale, 0};
    if (strides != NULL) {
        memcpy(c.st, strides, sizeof c.st);
    } else {
        const int64_t dense[ATTN_NSTRIDES] = {hq * sq * d,  sq * d,  d,  hkv * sk * d,  sk * d,  d,
                                              hkv * sk * dv, sk * dv, dv, hq * sq * dv, sq * dv, dv};
        memcpy(c.st, dense, sizeof c.st);
    }
    if (SKM_FN(attn_whole_ok)(&c) && (batch * hq >= 2 * skm_threads() || c.qblocks == 1))
        skm_parallel_for(batch * hq, SKM_FN(attn_head_task), &c);
    else
        skm_parallel_for(batch * hq * c.qblocks, SKM_FN(attn_task), &c);
    return atomic_load(&c.err);
}


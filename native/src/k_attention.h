/* Part of kernels.h: included once per ISA after simd.h; see kernels.h. */
/* ======================================================================================
 * Fused scaled-dot-product attention.  A task is (batch, head, block of query rows): the
 * scores of the block live in arena scratch, never as a [B, H, Sq, Sk] tensor.  Query heads
 * share key/value heads in groups (GQA/MQA): kv head = q head / (Hq / Hkv).
 * ====================================================================================== */
#define ATTN_QBLOCK 64

typedef struct {
    const float *q, *k, *v, *mask;
    float *out;
    const int64_t *ms;
    int64_t hq, hkv, sq, sk, d, dv, qblocks;
    int causal;
    float scale;
    atomic_int err;
} attn_ctx;

static void SKM_FN(attn_task)(void *vctx, int64_t t, int slot) {
    attn_ctx *c = vctx;
    int64_t qb = t % c->qblocks, bh = t / c->qblocks, h = bh % c->hq, b = bh / c->hq;
    int64_t hk = h / (c->hq / c->hkv), q0 = qb * ATTN_QBLOCK, rows = MIN(ATTN_QBLOCK, c->sq - q0);
    const float *qp = c->q + (bh * c->sq + q0) * c->d;
    const float *kp = c->k + (b * c->hkv + hk) * c->sk * c->d;
    const float *vp = c->v + (b * c->hkv + hk) * c->sk * c->dv;
    float *op = c->out + (bh * c->sq + q0) * c->dv;
    /* keys any row of this block may see: the causal limit trims both GEMMs */
    int64_t nk = c->causal ? causal_len(q0 + rows - 1, c->sq, c->sk) : c->sk;
    if (nk == 0) {
        memset(op, 0, (size_t)(rows * c->dv) * sizeof(float));
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
    g.a = qp, g.rsa = c->d, g.csa = 1;
    g.b_kind = SKM_W_F32, g.b = kp, g.rsb = 1, g.csb = c->d;
    g.c = s, g.rsc = nk;
    int rc = SKM_FN(gemm_seq)(&g, slot);
    for (int64_t r = 0; r < rows && rc == SKM_OK; r++) {
        int64_t i = q0 + r, len = c->causal ? causal_len(i, c->sq, c->sk) : nk;
        const float *mrow = c->mask != NULL ? c->mask + b * c->ms[0] + h * c->ms[1] + i * c->ms[2] : NULL;
        SKM_FN(softmax_row)(s + r * nk, s + r * nk, nk, len, mrow, c->scale);
    }
    gemm_desc o = {0}; /* O = P V */
    o.m = rows, o.n = c->dv, o.k = nk;
    o.a = s, o.rsa = nk, o.csa = 1;
    o.b_kind = SKM_W_F32, o.b = vp, o.rsb = c->dv, o.csb = 1;
    o.c = op, o.rsc = c->dv;
    if (rc == SKM_OK) rc = SKM_FN(gemm_seq)(&o, slot);
    skm_arena_release(slot, mark);
    if (rc != SKM_OK) atomic_store(&c->err, rc);
}

static int SKM_FN(attention)(const float *q, const float *k, const float *v, float *out,
                             int64_t batch, int64_t hq, int64_t hkv, int64_t sq, int64_t sk,
                             int64_t d, int64_t dv, const float *mask, const int64_t *ms,
                             int causal, float scale) {
    if (hkv <= 0 || hq % hkv != 0) return SKM_EINVAL;
    if (batch == 0 || hq == 0 || sq == 0 || dv == 0) return SKM_OK;
    attn_ctx c = {q, k, v, mask, out, ms, hq, hkv, sq, sk, d, dv,
                  (sq + ATTN_QBLOCK - 1) / ATTN_QBLOCK, causal, scale, 0};
    skm_parallel_for(batch * hq * c.qblocks, SKM_FN(attn_task), &c);
    return atomic_load(&c.err);
}


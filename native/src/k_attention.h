/* Part of kernels.h: included once per ISA after simd.h; see kernels.h. */
/* ======================================================================================
 * Fused scaled-dot-product attention.  A task is (batch, head, block of query rows): the
 * scores of the block live in arena scratch, never as a [B, H, Sq, Sk] tensor.  Query heads
 * share key/value heads in groups (GQA/MQA): kv head = q head / (Hq / Hkv).
 * ====================================================================================== */
#define ATTN_QBLOCK 64

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

static void SKM_FN(attn_task)(void *vctx, int64_t t, int slot) {
    attn_ctx *c = vctx;
    int64_t qb = t % c->qblocks, bh = t / c->qblocks, h = bh % c->hq, b = bh / c->hq;
    int64_t hk = h / (c->hq / c->hkv), q0 = qb * ATTN_QBLOCK, rows = MIN(ATTN_QBLOCK, c->sq - q0);
    const int64_t *st = c->st;
    const float *qp = c->q + b * st[ATTN_QB] + h * st[ATTN_QH] + q0 * st[ATTN_QS];
    const float *kp = c->k + b * st[ATTN_KB] + hk * st[ATTN_KH];
    const float *vp = c->v + b * st[ATTN_VB] + hk * st[ATTN_VH];
    float *op = c->out + b * st[ATTN_OB] + h * st[ATTN_OH] + q0 * st[ATTN_OS];
    /* keys any row of this block may see: the causal limit trims both GEMMs */
    int64_t nk = c->causal ? causal_len(q0 + rows - 1, c->sq, c->sk) : c->sk;
    if (nk == 0) {
        for (int64_t r = 0; r < rows; r++) memset(op + r * st[ATTN_OS], 0, (size_t)c->dv * sizeof(float));
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
    for (int64_t r = 0; r < rows && rc == SKM_OK; r++) {
        int64_t i = q0 + r, len = c->causal ? causal_len(i, c->sq, c->sk) : nk;
        const float *mrow = c->mask != NULL ? c->mask + b * c->ms[0] + h * c->ms[1] + i * c->ms[2] : NULL;
        SKM_FN(softmax_row)(s + r * nk, s + r * nk, nk, len, mrow, c->scale);
    }
    gemm_desc o = {0}; /* O = P V */
    o.m = rows, o.n = c->dv, o.k = nk;
    o.a = s, o.rsa = nk, o.csa = 1;
    o.b_kind = SKM_W_F32, o.b = vp, o.rsb = st[ATTN_VS], o.csb = 1;
    o.c = op, o.rsc = st[ATTN_OS];
    if (rc == SKM_OK) rc = SKM_FN(gemm_seq)(&o, slot);
    skm_arena_release(slot, mark);
    if (rc != SKM_OK) atomic_store(&c->err, rc);
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
    skm_parallel_for(batch * hq * c.qblocks, SKM_FN(attn_task), &c);
    return atomic_load(&c.err);
}


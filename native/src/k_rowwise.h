/* Part of kernels.h: included once per ISA after simd.h; see kernels.h. */
/* ======================================================================================
 * Row-wise ops.  Each runs rows in parallel chunks when the op is big enough.
 * ====================================================================================== */

typedef struct {
    const float *x, *a, *b, *mask;
    float *out;
    const int64_t *moff;
    int64_t n, rows, per, q_len;
    int flag, act;
    float f;
} rows_ctx;

/* softmax of row x[0:len) * scale + mask, zeros in [len, n); an all -inf row gives zeros. */
/* x[j] * scale + mask[j] as a vector; the plain case (scale 1, no mask) skips both. */
SKM_INLINE skv SKM_FN(logits)(const float *x, const float *mrow, int64_t j, int64_t cnt,
                              skv vs, int plain) {
    skv v = cnt == SKM_W ? skv_load(x + j) : ld_part(x + j, cnt, -INFINITY);
    if (plain) return v;
    v = skv_mul(v, vs);
    if (mrow != NULL) v = skv_add(v, cnt == SKM_W ? skv_load(mrow + j) : ld_part(mrow + j, cnt, 0.0f));
    return v;
}

static void SKM_FN(softmax_row)(const float *x, float *y, int64_t n, int64_t len,
                                const float *mrow, float scale) {
    if (len > n) len = n;
    int plain = scale == 1.0f && mrow == NULL;
    skv vs = skv_set1(scale), vmax0 = skv_set1(-INFINITY), vmax1 = vmax0;
    int64_t j = 0;
    for (; j + 2 * SKM_W <= len; j += 2 * SKM_W) {
        vmax0 = skv_max(vmax0, SKM_FN(logits)(x, mrow, j, SKM_W, vs, plain));
        vmax1 = skv_max(vmax1, SKM_FN(logits)(x, mrow, j + SKM_W, SKM_W, vs, plain));
    }
    for (; j < len; j += SKM_W) vmax0 = skv_max(vmax0, SKM_FN(logits)(x, mrow, j, MIN(SKM_W, len - j), vs, plain));
    float mx = len > 0 ? skv_reduce_max(skv_max(vmax0, vmax1)) : -INFINITY;
    if (mx == -INFINITY) {
        memset(y, 0, (size_t)n * sizeof(float));
        return;
    }
    skv vm = skv_set1(mx), sum0 = skv_zero(), sum1 = skv_zero();
    for (j = 0; j + 2 * SKM_W <= len; j += 2 * SKM_W) {
        skv e0 = skv_exp(skv_sub(SKM_FN(logits)(x, mrow, j, SKM_W, vs, plain), vm));
        skv e1 = skv_exp(skv_sub(SKM_FN(logits)(x, mrow, j + SKM_W, SKM_W, vs, plain), vm));
        sum0 = skv_add(sum0, e0);
        sum1 = skv_add(sum1, e1);
        skv_store(y + j, e0);
        skv_store(y + j + SKM_W, e1);
    }
    for (; j < len; j += SKM_W) {
        int64_t cnt = MIN(SKM_W, len - j);
        skv e = skv_exp(skv_sub(SKM_FN(logits)(x, mrow, j, cnt, vs, plain), vm));
        sum0 = skv_add(sum0, e);
        if (cnt == SKM_W)
            skv_store(y + j, e);
        else
            st_part(y + j, e, cnt);
    }
    skv inv = skv_set1(1.0f / skv_reduce_add(skv_add(sum0, sum1)));
    for (j = 0; j < len; j += SKM_W) {
        int64_t cnt = MIN(SKM_W, len - j);
        if (cnt == SKM_W)
            skv_store(y + j, skv_mul(skv_load(y + j), inv));
        else
            st_part(y + j, skv_mul(ld_part(y + j, cnt, 0.0f), inv), cnt);
    }
    if (len < n) memset(y + len, 0, (size_t)(n - len) * sizeof(float));
}

/* Causal rows see keys j <= i + (len_k - len_q): bottom-right aligned, so a single new query
 * over a cache sees everything and the square case is the usual lower triangle. */
static inline int64_t causal_len(int64_t i, int64_t q_len, int64_t n) {
    int64_t len = i + (n - q_len) + 1;
    return len < 0 ? 0 : (len > n ? n : len);
}

static void SKM_FN(softmax_task)(void *vctx, int64_t t, int slot) {
    (void)slot;
    rows_ctx *c = vctx;
    for (int64_t r = t * c->per; r < MIN(c->rows, (t + 1) * c->per); r++) {
        int64_t len = c->flag ? causal_len(r % c->q_len, c->q_len, c->n) : c->n;
        const float *mrow = c->mask != NULL ? c->mask + c->moff[r] : NULL;
        SKM_FN(softmax_row)(c->x + r * c->n, c->out + r * c->n, c->n, len, mrow, c->f);
    }
}

static int SKM_FN(softmax)(const float *x, float *out, int64_t rows, int64_t n,
                           const float *mask, const int64_t *moff, int causal, int64_t q_len,
                           float scale) {
    if (causal && q_len <= 0) return SKM_EINVAL;
    rows_ctx c = {.x = x, .out = out, .mask = mask, .moff = moff, .n = n, .rows = rows,
                  .q_len = q_len, .flag = causal, .f = scale};
    int64_t ntasks = skm_split_rows(rows, n, PAR_MIN_ELEMS, &c.per);
    skm_parallel_for(ntasks, SKM_FN(softmax_task), &c);
    return SKM_OK;
}

static float SKM_FN(row_sum)(const float *x, int64_t n, float shift, int squares) {
    /* four chains hide the add/FMA latency; rows are short (hidden sizes) and in L1 */
    skv a0 = skv_zero(), a1 = skv_zero(), a2 = skv_zero(), a3 = skv_zero(), vs = skv_set1(shift);
    int64_t j = 0;
#define SKM_ACC(acc, off)                                                                \
    do {                                                                                 \
        skv v = skv_sub(skv_load(x + j + (off)), vs);                                    \
        acc = squares ? skv_fma(v, v, acc) : skv_add(acc, v);                            \
    } while (0)
    for (; j + 4 * SKM_W <= n; j += 4 * SKM_W) {
        SKM_ACC(a0, 0);
        SKM_ACC(a1, SKM_W);
        SKM_ACC(a2, 2 * SKM_W);
        SKM_ACC(a3, 3 * SKM_W);
    }
    for (; j + SKM_W <= n; j += SKM_W) SKM_ACC(a0, 0);
#undef SKM_ACC
    if (j < n) {
        skv v = skv_sub(ld_part(x + j, n - j, shift), vs);
        a1 = squares ? skv_fma(v, v, a1) : skv_add(a1, v);
    }
    return skv_reduce_add(skv_add(skv_add(a0, a1), skv_add(a2, a3)));
}

/* y = (x - shift) * mul * w + b, where w and b may be NULL (ones / zeros). */
static void SKM_FN(row_affine)(const float *x, float *y, int64_t n, float shift, float mul,
                               const float *w, const float *b) {
    skv vs = skv_set1(shift), vm = skv_set1(mul);
    for (int64_t j = 0; j < n; j += SKM_W) {
        int64_t cnt = MIN(SKM_W, n - j);
        int full = cnt == SKM_W;
        skv v = skv_mul(skv_sub(full ? skv_load(x + j) : ld_part(x + j, cnt, 0.0f), vs), vm);
        if (w != NULL) v = skv_mul(v, full ? skv_load(w + j) : ld_part(w + j, cnt, 0.0f));
        if (b != NULL) v = skv_add(v, full ? skv_load(b + j) : ld_part(b + j, cnt, 0.0f));
        if (full)
            skv_store(y + j, v);
        else
            st_part(y + j, v, cnt);
    }
}

static void SKM_FN(layer_norm_task)(void *vctx, int64_t t, int slot) {
    (void)slot;
    rows_ctx *c = vctx;
    for (int64_t r = t * c->per; r < MIN(c->rows, (t + 1) * c->per); r++) {
        const float *x = c->x + r * c->n;
        /* two passes: the variance of (x - mean) does not cancel like E[x^2] - mean^2 */
        float mean = SKM_FN(row_sum)(x, c->n, 0.0f, 0) / (float)c->n;
        float var = SKM_FN(row_sum)(x, c->n, mean, 1) / (float)c->n;
        SKM_FN(row_affine)(x, c->out + r * c->n, c->n, mean, 1.0f / sqrtf(var + c->f), c->a,
                           c->b);
    }
}

static int SKM_FN(layer_norm)(const float *x, const float *w, const float *b, float *out,
                              int64_t rows, int64_t n, float eps) {
    if (n <= 0) return SKM_OK;
    rows_ctx c = {.x = x, .a = w, .b = b, .out = out, .n = n, .rows = rows, .f = eps};
    skm_parallel_for(skm_split_rows(rows, n, PAR_MIN_ELEMS, &c.per), SKM_FN(layer_norm_task), &c);
    return SKM_OK;
}

static void SKM_FN(rms_norm_task)(void *vctx, int64_t t, int slot) {
    (void)slot;
    rows_ctx *c = vctx;
    for (int64_t r = t * c->per; r < MIN(c->rows, (t + 1) * c->per); r++) {
        const float *x = c->x + r * c->n;
        float ms = SKM_FN(row_sum)(x, c->n, 0.0f, 1) / (float)c->n;
        SKM_FN(row_affine)(x, c->out + r * c->n, c->n, 0.0f, 1.0f / sqrtf(ms + c->f), c->a, NULL);
    }
}

static int SKM_FN(rms_norm)(const float *x, const float *w, float *out, int64_t rows, int64_t n,
                            float eps) {
    if (n <= 0) return SKM_OK;
    rows_ctx c = {.x = x, .a = w, .out = out, .n = n, .rows = rows, .f = eps};
    skm_parallel_for(skm_split_rows(rows, n, PAR_MIN_ELEMS, &c.per), SKM_FN(rms_norm_task), &c);
    return SKM_OK;
}

static void SKM_FN(l2_task)(void *vctx, int64_t t, int slot) {
    (void)slot;
    rows_ctx *c = vctx;
    for (int64_t r = t * c->per; r < MIN(c->rows, (t + 1) * c->per); r++) {
        const float *x = c->x + r * c->n;
        float norm = sqrtf(SKM_FN(row_sum)(x, c->n, 0.0f, 1));
        SKM_FN(row_affine)(x, c->out + r * c->n, c->n, 0.0f, 1.0f / MAX(norm, c->f), NULL, NULL);
    }
}

/* x / max(||x||_2, eps) per row, as torch.nn.functional.normalize. */
static int SKM_FN(l2_normalize)(const float *x, float *out, int64_t rows, int64_t n, float eps) {
    if (n <= 0) return SKM_OK;
    rows_ctx c = {.x = x, .out = out, .n = n, .rows = rows, .f = eps};
    skm_parallel_for(skm_split_rows(rows, n, PAR_MIN_ELEMS, &c.per), SKM_FN(l2_task), &c);
    return SKM_OK;
}

/* Elementwise work is split into contiguous ranges; rows = n / span. */
#define SPAN 4096
static void SKM_FN(act_task)(void *vctx, int64_t t, int slot) {
    (void)slot;
    rows_ctx *c = vctx;
    int64_t lo = t * c->per * SPAN, hi = MIN(c->n, (t + 1) * c->per * SPAN), j = lo;
    /* one loop per activation (no switch per vector), two vectors per step: the long
     * dependency chains of exp/erfc interleave instead of filling the scheduler */
#define SKM_ACT_LOOP(fn)                                                                  \
    for (; j + 2 * SKM_W <= hi; j += 2 * SKM_W) {                                         \
        skv v0 = fn(skv_load(c->x + j)), v1 = fn(skv_load(c->x + j + SKM_W));              \
        skv_store(c->out + j, v0);                                                        \
        skv_store(c->out + j + SKM_W, v1);                                                \
    }                                                                                     \
    for (; j < hi; j += SKM_W) {                                                          \
        int64_t cnt = MIN(SKM_W, hi - j);                                                 \
        st_part(c->out + j, fn(ld_part(c->x + j, cnt, 0.0f)), cnt);                       \
    }
    switch (c->act) {
    case SKM_ACT_RELU: SKM_ACT_LOOP(skv_relu) break;
    case SKM_ACT_GELU_ERF: SKM_ACT_LOOP(skv_gelu_erf) break;
    case SKM_ACT_GELU_TANH: SKM_ACT_LOOP(skv_gelu_tanh) break;
    case SKM_ACT_SILU: SKM_ACT_LOOP(skv_silu) break;
    case SKM_ACT_TANH: SKM_ACT_LOOP(skv_tanh) break;
    default: if (c->out != c->x) memmove(c->out + lo, c->x + lo, (size_t)(hi - lo) * sizeof(float));
    }
#undef SKM_ACT_LOOP
}

static int SKM_FN(activation)(const float *x, float *out, int64_t n, int act) {
    rows_ctx c = {.x = x, .out = out, .n = n, .act = act};
    int64_t spans = (n + SPAN - 1) / SPAN;
    /* exp-based activations cost ~25 cycles a vector: worth a thread from one span up */
    int64_t min_elems = act == SKM_ACT_RELU || act == SKM_ACT_NONE ? 4 * SPAN : SPAN;
    skm_parallel_for(skm_split_rows(spans, SPAN, min_elems, &c.per), SKM_FN(act_task), &c);
    return SKM_OK;
}

static void SKM_FN(add_task)(void *vctx, int64_t t, int slot) {
    (void)slot;
    rows_ctx *c = vctx;
    for (int64_t r = t * c->per; r < MIN(c->rows, (t + 1) * c->per); r++) {
        const float *a = c->a + r * c->n, *b = c->flag ? c->b : c->b + r * c->n;
        float *y = c->out + r * c->n;
        for (int64_t j = 0; j < c->n; j += SKM_W) {
            int64_t cnt = MIN(SKM_W, c->n - j);
            if (cnt == SKM_W)
                skv_store(y + j, skv_add(skv_load(a + j), skv_load(b + j)));
            else
                st_part(y + j, skv_add(ld_part(a + j, cnt, 0.0f), ld_part(b + j, cnt, 0.0f)), cnt);
        }
    }
}

static int SKM_FN(add)(const float *a, const float *b, float *out, int64_t rows, int64_t n,
                       int b_is_row) {
    rows_ctx c = {.a = a, .b = b, .out = out, .n = n, .rows = rows, .flag = b_is_row};
    skm_parallel_for(skm_split_rows(rows, n, 2 * PAR_MIN_ELEMS, &c.per), SKM_FN(add_task), &c);
    return SKM_OK;
}

/* Sentence-transformers mean pooling: sum(mask * h) / max(sum(mask), 1e-9). */
static void SKM_FN(mean_pool_task)(void *vctx, int64_t bi, int slot) {
    (void)slot;
    rows_ctx *c = vctx;
    int64_t seq = c->q_len, dim = c->n;
    float *y = c->out + bi * dim;
    float total = 0.0f;
    memset(y, 0, (size_t)dim * sizeof(float));
    for (int64_t s = 0; s < seq; s++) {
        float w = c->mask != NULL ? c->mask[bi * seq + s] : 1.0f;
        if (w == 0.0f) continue;
        total += w;
        const float *h = c->x + (bi * seq + s) * dim;
        skv vw = skv_set1(w);
        for (int64_t j = 0; j < dim; j += SKM_W) {
            int64_t cnt = MIN(SKM_W, dim - j);
            if (cnt == SKM_W)
                skv_store(y + j, skv_fma(vw, skv_load(h + j), skv_load(y + j)));
            else
                st_part(y + j, skv_fma(vw, ld_part(h + j, cnt, 0.0f), ld_part(y + j, cnt, 0.0f)), cnt);
        }
    }
    SKM_FN(row_affine)(y, y, dim, 0.0f, 1.0f / MAX(total, 1e-9f), NULL, NULL);
}

static int SKM_FN(mean_pool)(const float *hidden, const float *mask, float *out, int64_t batch,
                             int64_t seq, int64_t dim) {
    rows_ctx c = {.x = hidden, .mask = mask, .out = out, .n = dim, .q_len = seq};
    if (batch * seq * dim >= PAR_MIN_ELEMS * 2)
        skm_parallel_for(batch, SKM_FN(mean_pool_task), &c);
    else
        for (int64_t b = 0; b < batch; b++) SKM_FN(mean_pool_task)(&c, b, skm_current_slot());
    return SKM_OK;
}


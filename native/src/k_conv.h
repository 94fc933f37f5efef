/* Part of kernels.h: included once per ISA after simd.h; see kernels.h. */
/* ======================================================================================
 * conv2d (NCHW) as im2col + GEMM per (image, group); a 1x1/stride-1/no-pad conv skips im2col.
 * ====================================================================================== */
typedef struct {
    const float *x, *w, *bias;
    float *out;
    int64_t batch, c_in, h, w_in, c_out, kh, kw, sh, sw, ph, pw, dh, dw, groups, oh, ow;
    atomic_int err;
} conv_ctx;

static int SKM_FN(conv_one)(conv_ctx *c, int64_t t, int slot, int parallel_gemm) {
    int64_t n = t / c->groups, g = t % c->groups;
    int64_t cg = c->c_in / c->groups, og = c->c_out / c->groups, kk = cg * c->kh * c->kw;
    int64_t plane = c->oh * c->ow;
    const float *xin = c->x + (n * c->c_in + g * cg) * c->h * c->w_in;
    int pointwise = c->kh == 1 && c->kw == 1 && c->sh == 1 && c->sw == 1 && c->ph == 0 &&
                    c->pw == 0;
    skm_arena_mark_t mark = skm_arena_mark(slot);
    const float *col = xin;
    if (!pointwise) {
        float *buf = skm_arena_alloc(slot, (size_t)(kk * plane) * sizeof(float));
        if (buf == NULL) return SKM_ENOMEM;
        for (int64_t ci = 0; ci < cg; ci++)
            for (int64_t ki = 0; ki < c->kh; ki++)
                for (int64_t kj = 0; kj < c->kw; kj++) {
                    float *dst = buf + ((ci * c->kh + ki) * c->kw + kj) * plane;
                    for (int64_t y = 0; y < c->oh; y++) {
                        int64_t iy = y * c->sh - c->ph + ki * c->dh;
                        for (int64_t x = 0; x < c->ow; x++) {
                            int64_t ix = x * c->sw - c->pw + kj * c->dw;
                            int inside = iy >= 0 && iy < c->h && ix >= 0 && ix < c->w_in;
                            dst[y * c->ow + x] = inside ? xin[(ci * c->h + iy) * c->w_in + ix] : 0.0f;
                        }
                    }
                }
        col = buf;
    }
    gemm_desc d = {0};
    d.m = og, d.n = plane, d.k = kk;
    d.a = c->w + g * og * kk, d.rsa = kk, d.csa = 1;
    d.b_kind = SKM_W_F32, d.b = col, d.rsb = plane, d.csb = 1;
    d.c = c->out + (n * c->c_out + g * og) * plane, d.rsc = plane;
    d.bias = c->bias != NULL ? c->bias + g * og : NULL, d.bias_per_row = 1;
    int rc = parallel_gemm ? SKM_FN(gemm_run)(&d) : SKM_FN(gemm_seq)(&d, slot);
    skm_arena_release(slot, mark);
    return rc;
}

static void SKM_FN(conv_task)(void *vctx, int64_t t, int slot) {
    conv_ctx *c = vctx;
    int rc = SKM_FN(conv_one)(c, t, slot, 0);
    if (rc != SKM_OK) atomic_store(&c->err, rc);
}

static int SKM_FN(conv2d)(const float *x, const float *w, const float *bias, float *out,
                          int64_t batch, int64_t c_in, int64_t h, int64_t w_in, int64_t c_out,
                          int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                          int64_t dh, int64_t dw, int64_t groups, int64_t oh, int64_t ow) {
    if (groups <= 0 || c_in % groups || c_out % groups) return SKM_EINVAL;
    conv_ctx c = {x, w, bias, out, batch, c_in, h, w_in, c_out, kh, kw, sh, sw, ph, pw, dh, dw,
                  groups, oh, ow, 0};
    int64_t jobs = batch * groups;
    if (jobs >= skm_threads()) {
        skm_parallel_for(jobs, SKM_FN(conv_task), &c);
        return atomic_load(&c.err);
    }
    for (int64_t t = 0; t < jobs; t++) {
        int rc = SKM_FN(conv_one)(&c, t, skm_current_slot(), 1);
        if (rc != SKM_OK) return rc;
    }
    return SKM_OK;
}

typedef struct {
    const float *x;
    float *out;
    int64_t h, w, kh, kw, sh, sw, ph, pw, oh, ow;
    int mode;
} pool_ctx;

/* Max pooling propagates NaN like torch; average divides by the window (include_pad) or by
 * the in-bounds count. */
static void SKM_FN(pool_task)(void *vctx, int64_t p, int slot) {
    (void)slot;
    pool_ctx *c = vctx;
    const float *x = c->x + p * c->h * c->w;
    float *y = c->out + p * c->oh * c->ow;
    for (int64_t oy = 0; oy < c->oh; oy++)
        for (int64_t ox = 0; ox < c->ow; ox++) {
            int64_t y0 = oy * c->sh - c->ph, x0 = ox * c->sw - c->pw, count = 0;
            float acc = c->mode == SKM_POOL_MAX ? -INFINITY : 0.0f;
            for (int64_t i = MAX(y0, 0); i < MIN(y0 + c->kh, c->h); i++)
                for (int64_t j = MAX(x0, 0); j < MIN(x0 + c->kw, c->w); j++) {
                    float v = x[i * c->w + j];
                    if (c->mode == SKM_POOL_MAX)
                        acc = (v > acc || v != v) ? v : acc;
                    else
                        acc += v;
                    count++;
                }
            if (c->mode == SKM_POOL_AVG_INCLUDE_PAD)
                acc /= (float)(c->kh * c->kw);
            else if (c->mode == SKM_POOL_AVG_EXCLUDE_PAD)
                acc = count > 0 ? acc / (float)count : 0.0f;
            y[oy * c->ow + ox] = acc;
        }
}

static int SKM_FN(pool2d)(const float *x, float *out, int64_t planes, int64_t h, int64_t w,
                          int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                          int64_t oh, int64_t ow, int mode) {
    pool_ctx c = {x, out, h, w, kh, kw, sh, sw, ph, pw, oh, ow, mode};
    if (planes * oh * ow * kh * kw >= PAR_MIN_ELEMS)
        skm_parallel_for(planes, SKM_FN(pool_task), &c);
    else
        for (int64_t p = 0; p < planes; p++) SKM_FN(pool_task)(&c, p, 0);
    return SKM_OK;
}

/* Peak-FMA probe: 12 independent chains of a = a*x + y (converging to 1, no denormals). */
static double SKM_FN(fma_loop)(int64_t iters) {
    skv x = skv_set1(0.999999f), y = skv_set1(1e-6f);
    skv a0 = skv_set1(0.1f), a1 = skv_set1(0.2f), a2 = skv_set1(0.3f), a3 = skv_set1(0.4f);
    skv a4 = skv_set1(0.5f), a5 = skv_set1(0.6f), a6 = skv_set1(0.7f), a7 = skv_set1(0.8f);
    skv a8 = skv_set1(0.9f), a9 = skv_set1(1.1f), a10 = skv_set1(1.2f), a11 = skv_set1(1.3f);
    for (int64_t i = 0; i < iters; i++) {
        a0 = skv_fma(a0, x, y), a1 = skv_fma(a1, x, y), a2 = skv_fma(a2, x, y);
        a3 = skv_fma(a3, x, y), a4 = skv_fma(a4, x, y), a5 = skv_fma(a5, x, y);
        a6 = skv_fma(a6, x, y), a7 = skv_fma(a7, x, y), a8 = skv_fma(a8, x, y);
        a9 = skv_fma(a9, x, y), a10 = skv_fma(a10, x, y), a11 = skv_fma(a11, x, y);
        __asm__ __volatile__("" ::: "memory"); /* keep the loop from being folded */
    }
    skv s = skv_add(skv_add(skv_add(a0, a1), skv_add(a2, a3)), skv_add(skv_add(a4, a5), skv_add(a6, a7)));
    s = skv_add(s, skv_add(skv_add(a8, a9), skv_add(a10, a11)));
    volatile float sink = skv_reduce_add(s);
    (void)sink;
    return (double)iters * 12.0 * 2.0 * SKM_W;
}


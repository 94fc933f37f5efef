/* Runtime ISA dispatch and the public entry points.
 *
 * One library serves every CPU: the per-ISA tables are all linked in and the best one the
 * CPU (and OS) supports is chosen on first use, or forced by skm_set_isa().  Every entry point
 * holds one lock: the pool and the per-thread arenas serve one kernel at a time (the Python
 * wrappers release the GIL, so two Python threads may call in at once). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "isa_config.h"
#include "kernel_table.h"
#include "runtime.h"
#include "skm.h"

#if SKM_BUILD_X86
#include <cpuid.h>
#endif

static pthread_mutex_t big_lock = PTHREAD_MUTEX_INITIALIZER;
static const skm_kernel_table *active;
static int active_isa = -1;
static int features = -1;

static const skm_kernel_table *table_for(int isa) {
    switch (isa) {
    case SKM_ISA_ID_SCALAR: return &skm_table_scalar;
#if SKM_BUILD_X86
    case SKM_ISA_ID_AVX2: return &skm_table_avx2;
    case SKM_ISA_ID_AVX512: return &skm_table_avx512;
#endif
#if SKM_BUILD_NEON
    case SKM_ISA_ID_NEON: return &skm_table_neon;
#endif
    default: return NULL;
    }
}

#if SKM_BUILD_X86
static unsigned long long read_xcr0(void) {
    unsigned eax, edx;
    __asm__ __volatile__("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}
#endif

/* CPUID says what the core can do; XCR0 says whether the OS saves the wide registers on a
 * context switch.  Both are needed before the AVX code may run. */
static int detect_features(void) {
    int f = 0;
#if SKM_BUILD_X86
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1;
    if (!osxsave || !avx) return 0;
    unsigned long long xcr0 = read_xcr0();
    int ymm_ok = (xcr0 & 0x6) == 0x6, zmm_ok = (xcr0 & 0xe6) == 0xe6;
    if (fma && ymm_ok) f |= SKM_CPU_FMA;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        if (((b >> 5) & 1) && ymm_ok) f |= SKM_CPU_AVX2;
        if (((b >> 16) & 1) && zmm_ok) f |= SKM_CPU_AVX512F;
        if (((b >> 30) & 1) && zmm_ok) f |= SKM_CPU_AVX512BW;
        if (((c >> 11) & 1) && zmm_ok) f |= SKM_CPU_AVX512VNNI;
    }
#elif defined(__aarch64__)
    f |= SKM_CPU_NEON;
#endif
    return f;
}

int skm_cpu_features(void) {
    if (features < 0) features = detect_features();
    return features;
}

int skm_compiled_isas(void) {
    int mask = 1 << SKM_ISA_ID_SCALAR;
#if SKM_BUILD_X86
    mask |= (1 << SKM_ISA_ID_AVX2) | (1 << SKM_ISA_ID_AVX512);
#endif
#if SKM_BUILD_NEON
    mask |= 1 << SKM_ISA_ID_NEON;
#endif
    return mask;
}

int skm_isa_supported(int isa) {
    if (isa < 0 || isa > SKM_ISA_ID_NEON || !(skm_compiled_isas() & (1 << isa))) return 0;
    int f = skm_cpu_features();
    switch (isa) {
    case SKM_ISA_ID_AVX2: return (f & SKM_CPU_AVX2) && (f & SKM_CPU_FMA);
    case SKM_ISA_ID_AVX512: return (f & SKM_CPU_AVX512F) && (f & SKM_CPU_AVX2) && (f & SKM_CPU_FMA);
    case SKM_ISA_ID_NEON: return (f & SKM_CPU_NEON) != 0;
    default: return 1;
    }
}

int skm_best_isa(void) {
    static const int order[] = {SKM_ISA_ID_AVX512, SKM_ISA_ID_AVX2, SKM_ISA_ID_NEON};
    for (unsigned i = 0; i < sizeof order / sizeof order[0]; i++)
        if (skm_isa_supported(order[i])) return order[i];
    return SKM_ISA_ID_SCALAR;
}

static void atfork_prepare(void) { pthread_mutex_lock(&big_lock); }
static void atfork_parent(void) { pthread_mutex_unlock(&big_lock); }
static void atfork_child(void) {
    pthread_mutex_init(&big_lock, NULL);
    skm_pool_atfork_child();
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static void init(void) {
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
    active_isa = skm_best_isa();
    active = table_for(active_isa);
}

static const skm_kernel_table *enter(void) {
    pthread_once(&init_once, init);
    pthread_mutex_lock(&big_lock);
    return active;
}

static void leave(void) { pthread_mutex_unlock(&big_lock); }

int skm_set_isa(int isa) {
    if (isa == SKM_ISA_ID_AUTO) isa = skm_best_isa();
    if (!skm_isa_supported(isa)) return SKM_EUNSUPPORTED;
    enter();
    active_isa = isa;
    active = table_for(isa);
    leave();
    return SKM_OK;
}

int skm_active_isa(void) {
    pthread_once(&init_once, init);
    return active_isa;
}

int skm_set_num_threads(int n) {
    if (n < 1 || n > SKM_MAX_THREADS) return SKM_EINVAL;
    enter();
    skm_pool_resize(n);
    leave();
    return SKM_OK;
}

int skm_get_num_threads(void) { return skm_pool_size(); }

int skm_gemm_tile(int isa, int64_t *mr_nr) {
    const skm_kernel_table *t = table_for(isa);
    if (t == NULL) return SKM_EUNSUPPORTED;
    mr_nr[0] = t->mr;
    mr_nr[1] = t->nr;
    return SKM_OK;
}

int skm_gemm_get_blocking(int isa, int64_t *out) {
    const skm_kernel_table *t = table_for(isa);
    if (t == NULL) return SKM_EUNSUPPORTED;
    out[0] = t->blocking->mc;
    out[1] = t->blocking->kc;
    out[2] = t->blocking->nc;
    return SKM_OK;
}

/* MC must be a multiple of MR and NC of NR so that only the matrix edge has partial tiles. */
int skm_gemm_set_blocking(int isa, int64_t mc, int64_t kc, int64_t nc) {
    const skm_kernel_table *t = table_for(isa);
    if (t == NULL) return SKM_EUNSUPPORTED;
    if (mc <= 0 || kc <= 0 || nc <= 0 || mc % t->mr || nc % t->nr) return SKM_EINVAL;
    enter();
    t->blocking->mc = mc;
    t->blocking->kc = kc;
    t->blocking->nc = nc;
    leave();
    return SKM_OK;
}

void skm_arena_reset(void) {
    enter();
    skm_arena_reset_all();
    leave();
}

void skm_arena_stats(int64_t *out4) {
    enter();
    skm_arena_stats_all(out4);
    leave();
}

typedef struct {
    const skm_kernel_table *t;
    int64_t iters;
    double flops[SKM_MAX_THREADS];
} peak_ctx;

static void peak_task(void *vctx, int64_t task, int slot) {
    (void)slot;
    peak_ctx *c = vctx;
    c->flops[task] = c->t->fma_loop(c->iters);
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double skm_fma_peak_gflops(int64_t iters, int nthreads) {
    const skm_kernel_table *t = enter();
    int saved = skm_pool_size();
    if (nthreads < 1) nthreads = 1;
    if (nthreads > SKM_MAX_THREADS) nthreads = SKM_MAX_THREADS;
    skm_pool_resize(nthreads);
    peak_ctx c = {t, iters < 1 ? 1 : iters, {0}};
    double t0 = now_seconds();
    skm_parallel_for(nthreads, peak_task, &c);
    double dt = now_seconds() - t0, flops = 0;
    for (int i = 0; i < nthreads; i++) flops += c.flops[i];
    skm_pool_resize(saved);
    leave();
    return dt > 0 ? flops / dt * 1e-9 : 0.0;
}

/* ---- kernels: the Python side has checked shapes; refuse only impossible sizes here ---- */
#define NONNEG(x) ((x) >= 0)
#define CALL(expr)                                                                       \
    do {                                                                                 \
        const skm_kernel_table *t = enter();                                             \
        int rc_ = (expr);                                                                \
        leave();                                                                         \
        return rc_;                                                                      \
    } while (0)

int skm_matmul(int64_t batch, const float *a, const int64_t *a_off, int a_trans,
               const float *b, const int64_t *b_off, int b_trans, float *c, int64_t m,
               int64_t n, int64_t k) {
    if (!NONNEG(batch) || !NONNEG(m) || !NONNEG(n) || !NONNEG(k)) return SKM_EINVAL;
    CALL(t->matmul(batch, a, a_off, a_trans != 0, b, b_off, b_trans != 0, c, m, n, k));
}

static int act_ok(int act) { return act >= SKM_ACT_NONE && act <= SKM_ACT_TANH; }

int skm_linear(const float *x, const float *w, const float *bias, float *out, int64_t m,
               int64_t n, int64_t k, int act) {
    if (!NONNEG(m) || !NONNEG(n) || !NONNEG(k) || !act_ok(act)) return SKM_EINVAL;
    CALL(t->linear(x, w, SKM_W_F32, NULL, bias, out, m, n, k, act));
}

int skm_linear_int8(const float *x, const int8_t *q, const float *scales, const float *bias,
                    float *out, int64_t m, int64_t n, int64_t k, int act) {
    if (!NONNEG(m) || !NONNEG(n) || !NONNEG(k) || !act_ok(act)) return SKM_EINVAL;
    CALL(t->linear(x, q, SKM_W_INT8, scales, bias, out, m, n, k, act));
}

int skm_linear_int8_dynamic(const float *x, const int8_t *q, const int16_t *panels,
                            int panels_isa, const float *scales, const float *bias, float *out,
                            int64_t m, int64_t n, int64_t k, int act) {
    if (!NONNEG(m) || !NONNEG(n) || !NONNEG(k) || k > SKM_INT8_MAX_K || !act_ok(act))
        return SKM_EINVAL;
    const skm_kernel_table *t = enter();
    int rc = panels == NULL || panels_isa == active_isa
                 ? t->linear_int8_dynamic(x, q, panels, scales, bias, out, m, n, k, act)
                 : SKM_EINVAL;
    leave();
    return rc;
}

int64_t skm_int8_panel_elems(int isa, int64_t n, int64_t k) {
    const skm_kernel_table *t = table_for(isa);
    if (t == NULL || !skm_isa_supported(isa)) return SKM_EUNSUPPORTED;
    if (!NONNEG(n) || !NONNEG(k) || k > SKM_INT8_MAX_K) return SKM_EINVAL;
    return t->int8_panel_elems(n, k);
}

/* Like skm_pack_linear_weight: the panels belong to the ISA they were packed for. */
int skm_pack_int8_weight(int isa, const int8_t *q, int64_t n, int64_t k, int16_t *panels) {
    const skm_kernel_table *t = table_for(isa);
    if (t == NULL || !skm_isa_supported(isa)) return SKM_EUNSUPPORTED;
    if (!NONNEG(n) || !NONNEG(k) || k > SKM_INT8_MAX_K) return SKM_EINVAL;
    enter(); /* the pool serves one kernel at a time */
    int rc = t->pack_int8_weight(q, n, k, panels);
    leave();
    return rc;
}

int skm_quantize_rows_int8(const float *x, int8_t *xq, float *xs, int64_t rows, int64_t cols) {
    if (!NONNEG(rows) || !NONNEG(cols)) return SKM_EINVAL;
    CALL(t->quantize_rows_int8(x, xq, xs, rows, cols));
}

int skm_linear_q4_0(const float *x, const uint8_t *q, const float *scales, const float *bias,
                    float *out, int64_t m, int64_t n, int64_t k, int act) {
    if (!NONNEG(m) || !NONNEG(n) || !NONNEG(k) || !act_ok(act)) return SKM_EINVAL;
    CALL(t->linear(x, q, SKM_W_Q4_0, scales, bias, out, m, n, k, act));
}

int skm_linear_q8_0(const float *x, const int8_t *q, const float *scales, const float *bias,
                    float *out, int64_t m, int64_t n, int64_t k, int act) {
    if (!NONNEG(m) || !NONNEG(n) || !NONNEG(k) || !act_ok(act)) return SKM_EINVAL;
    CALL(t->linear(x, q, SKM_W_Q8_0, scales, bias, out, m, n, k, act));
}

int skm_activation(const float *x, float *out, int64_t n, int act) {
    if (!NONNEG(n) || !act_ok(act)) return SKM_EINVAL;
    CALL(t->activation(x, out, n, act));
}

int skm_add(const float *a, const float *b, float *out, int64_t rows, int64_t n, int b_is_row) {
    if (!NONNEG(rows) || !NONNEG(n)) return SKM_EINVAL;
    CALL(t->add(a, b, out, rows, n, b_is_row));
}

int skm_softmax(const float *x, float *out, int64_t rows, int64_t n, const float *mask,
                const int64_t *moff, int causal, int64_t q_len, float scale) {
    if (!NONNEG(rows) || !NONNEG(n) || (mask != NULL && moff == NULL)) return SKM_EINVAL;
    CALL(t->softmax(x, out, rows, n, mask, moff, causal, q_len, scale));
}

int skm_layer_norm(const float *x, const float *w, const float *b, float *out, int64_t rows,
                   int64_t n, float eps) {
    if (!NONNEG(rows) || !NONNEG(n)) return SKM_EINVAL;
    CALL(t->layer_norm(x, w, b, out, rows, n, eps));
}

int skm_rms_norm(const float *x, const float *w, float *out, int64_t rows, int64_t n, float eps) {
    if (!NONNEG(rows) || !NONNEG(n)) return SKM_EINVAL;
    CALL(t->rms_norm(x, w, out, rows, n, eps));
}

int skm_attention(const float *q, const float *k, const float *v, float *out, int64_t batch,
                  int64_t hq, int64_t hkv, int64_t sq, int64_t sk, int64_t d, int64_t dv,
                  const float *mask, const int64_t *ms, int causal, float scale) {
    if (!NONNEG(batch) || !NONNEG(hq) || hkv <= 0 || !NONNEG(sq) || !NONNEG(sk) ||
        !NONNEG(d) || !NONNEG(dv) || (mask != NULL && ms == NULL))
        return SKM_EINVAL;
    CALL(t->attention(q, k, v, out, batch, hq, hkv, sq, sk, d, dv, mask, ms, causal, scale, NULL));
}

int skm_attention_strided(const float *q, const float *k, const float *v, float *out,
                          const int64_t *strides, int64_t batch, int64_t hq, int64_t hkv,
                          int64_t sq, int64_t sk, int64_t d, int64_t dv, const float *mask,
                          const int64_t *ms, int causal, float scale) {
    if (!NONNEG(batch) || !NONNEG(hq) || hkv <= 0 || !NONNEG(sq) || !NONNEG(sk) ||
        !NONNEG(d) || !NONNEG(dv) || strides == NULL || (mask != NULL && ms == NULL))
        return SKM_EINVAL;
    for (int i = 0; i < 12; i++)
        if (strides[i] < 0) return SKM_EINVAL;
    CALL(t->attention(q, k, v, out, batch, hq, hkv, sq, sk, d, dv, mask, ms, causal, scale,
                      strides));
}

int64_t skm_packed_weight_floats(int isa, int64_t n, int64_t k) {
    const skm_kernel_table *t = table_for(isa);
    if (t == NULL || !NONNEG(n) || !NONNEG(k)) return SKM_EINVAL;
    return (n + t->nr - 1) / t->nr * t->nr * k;
}

/* The packed layout belongs to one ISA (its NR); the caller says which it packed for, and
 * linear_packed refuses a weight packed for another ISA than the active one. */
int skm_pack_linear_weight(int isa, const float *w, int64_t n, int64_t k, float *packed) {
    const skm_kernel_table *t = table_for(isa);
    if (t == NULL || !skm_isa_supported(isa)) return SKM_EUNSUPPORTED;
    if (!NONNEG(n) || !NONNEG(k)) return SKM_EINVAL;
    return t->pack_weight(w, n, k, packed);
}

int skm_linear_packed(int isa, const float *x, const float *packed, const float *bias,
                      const float *residual, float *out, int64_t m, int64_t n, int64_t k,
                      int act) {
    if (!NONNEG(m) || !NONNEG(n) || !NONNEG(k) || !act_ok(act)) return SKM_EINVAL;
    const skm_kernel_table *t = enter();
    int rc = isa == active_isa ? t->linear_packed(x, packed, bias, residual, out, m, n, k, act)
                               : SKM_EINVAL;
    leave();
    return rc;
}

int skm_conv2d(const float *x, const float *w, const float *bias, float *out, int64_t batch,
               int64_t c_in, int64_t h, int64_t w_in, int64_t c_out, int64_t kh, int64_t kw,
               int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw,
               int64_t groups, int64_t oh, int64_t ow) {
    if (!NONNEG(batch) || !NONNEG(c_in) || !NONNEG(h) || !NONNEG(w_in) || !NONNEG(c_out) ||
        kh <= 0 || kw <= 0 || sh <= 0 || sw <= 0 || !NONNEG(ph) || !NONNEG(pw) || dh <= 0 ||
        dw <= 0 || groups <= 0 || !NONNEG(oh) || !NONNEG(ow))
        return SKM_EINVAL;
    CALL(t->conv2d(x, w, bias, out, batch, c_in, h, w_in, c_out, kh, kw, sh, sw, ph, pw, dh, dw,
                   groups, oh, ow));
}

int skm_pool2d(const float *x, float *out, int64_t planes, int64_t h, int64_t w, int64_t kh,
               int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t oh,
               int64_t ow, int mode) {
    if (!NONNEG(planes) || !NONNEG(h) || !NONNEG(w) || kh <= 0 || kw <= 0 || sh <= 0 ||
        sw <= 0 || !NONNEG(ph) || !NONNEG(pw) || !NONNEG(oh) || !NONNEG(ow) || mode < 0 ||
        mode > SKM_POOL_AVG_EXCLUDE_PAD)
        return SKM_EINVAL;
    CALL(t->pool2d(x, out, planes, h, w, kh, kw, sh, sw, ph, pw, oh, ow, mode));
}

int skm_mean_pool(const float *hidden, const float *mask, float *out, int64_t batch,
                  int64_t seq, int64_t dim) {
    if (!NONNEG(batch) || !NONNEG(seq) || !NONNEG(dim)) return SKM_EINVAL;
    CALL(t->mean_pool(hidden, mask, out, batch, seq, dim));
}

int skm_l2_normalize(const float *x, float *out, int64_t rows, int64_t n, float eps) {
    if (!NONNEG(rows) || !NONNEG(n)) return SKM_EINVAL;
    CALL(t->l2_normalize(x, out, rows, n, eps));
}

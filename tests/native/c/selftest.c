/* C-level self-test: every kernel on every ISA path this CPU runs, compared with the scalar
 * path (the reference build) on odd shapes.  Needs no Python, so it also runs under qemu
 * for a cross-compiled NEON build and under valgrind.  Exit status 0 = all paths agree.
 *
 *   cc -O1 -pthread -Inative/src tests/native/c/selftest.c native/src/{dispatch,threadpool,
 *      arena,common,isa_scalar,isa_avx2,isa_avx512,isa_neon}.c -lm && ./a.out */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skm.h"
#ifdef SKM_SELFTEST_EMU16
#include "kernel_table.h"
extern const skm_kernel_table skm_table_emu16;
#endif

static unsigned long long rng_state = 88172645463325252ull;
static float frand(void) { /* xorshift: reproducible everywhere, no libc rand() */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

static float *rnd(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = frand();
    return p;
}

static int failures;
static const char *isa_names[] = {"scalar", "avx2", "avx512", "neon"};

/* max |a - b| / max(|b|, 1) */
static void expect_close(const char *what, int isa, const float *a, const float *b, size_t n,
                         double tol) {
    double err = 0, scale = 1;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > err || d != d) err = d != d ? INFINITY : d;
        if (fabs(b[i]) > scale) scale = fabs(b[i]);
    }
    if (!(err / scale <= tol)) {
        printf("FAIL %-28s isa=%s err=%.3g\n", what, isa_names[isa], err / scale);
        failures++;
    }
}

/* Runs body on the ISA under test into `out` and on scalar into `ref`. */
#define BOTH(isa, out, ref, n, body)                                                   \
    do {                                                                               \
        skm_set_isa(isa);                                                              \
        float *dst = out;                                                              \
        body;                                                                          \
        skm_set_isa(SKM_ISA_ID_SCALAR);                                                \
        dst = ref;                                                                     \
        body;                                                                          \
    } while (0)

static void test_isa(int isa) {
    static const int64_t shapes[][3] = {{1, 1, 1}, {7, 13, 17}, {6, 16, 32}, {29, 37, 61},
                                        {64, 65, 33}, {130, 70, 150}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t m = shapes[s][0], k = shapes[s][1], n = shapes[s][2];
        float *a = rnd(m * k), *b = rnd(k * n), *w = rnd(n * k), *bias = rnd(n);
        float *out = malloc(m * n * sizeof(float)), *ref = malloc(m * n * sizeof(float));
        int64_t zero = 0;
        BOTH(isa, out, ref, m * n, skm_matmul(1, a, &zero, 0, b, &zero, 0, dst, m, n, k));
        expect_close("matmul", isa, out, ref, m * n, 1e-5);
        /* the same products from transposed storage: a as [k, m], b as [n, k] */
        float *at = malloc(m * k * sizeof(float)), *bt = malloc(k * n * sizeof(float));
        for (int64_t i = 0; i < m; i++)
            for (int64_t p = 0; p < k; p++) at[p * m + i] = a[i * k + p];
        for (int64_t p = 0; p < k; p++)
            for (int64_t j = 0; j < n; j++) bt[j * k + p] = b[p * n + j];
        skm_set_isa(isa);
        skm_matmul(1, at, &zero, 1, bt, &zero, 1, out, m, n, k);
        expect_close("matmul transposed", isa, out, ref, m * n, 1e-5);
        free(at), free(bt);
        for (int act = 0; act <= SKM_ACT_TANH; act++) {
            BOTH(isa, out, ref, m * n, skm_linear(a, w, bias, dst, m, n, k, act));
            expect_close("linear+act", isa, out, ref, m * n, 1e-5);
        }
        int8_t *q8 = malloc(n * k);
        float *s8 = malloc(n * sizeof(float));
        skm_quantize_int8(w, q8, s8, n, k);
        BOTH(isa, out, ref, m * n, skm_linear_int8(a, q8, s8, bias, dst, m, n, k, 0));
        expect_close("linear_int8", isa, out, ref, m * n, 1e-5);
        /* int8 x int8, x quantized per row: exact integer sums, so the very same floats */
        BOTH(isa, out, ref, m * n, skm_linear_int8_dynamic(a, q8, NULL, -1, s8, bias, dst, m, n, k, 1));
        expect_close("linear_int8_dynamic", isa, out, ref, m * n, 0);
        BOTH(isa, out, ref, m * n, {
            int cur = skm_active_isa();
            int64_t elems = skm_int8_panel_elems(cur, n, k);
            int16_t *panels = elems > 0 ? malloc((size_t)elems * sizeof(int16_t)) : NULL;
            if (panels != NULL) skm_pack_int8_weight(cur, q8, n, k, panels);
            skm_linear_int8_dynamic(a, q8, panels, cur, s8, NULL, dst, m, n, k, 0);
            free(panels);
        });
        expect_close("linear_int8_dynamic packed", isa, out, ref, m * n, 0);
        int64_t blocks = (k + 31) / 32;
        uint8_t *q4 = malloc(n * blocks * 16);
        float *s4 = malloc(n * blocks * sizeof(float));
        skm_quantize_q4_0(w, q4, s4, n, k);
        BOTH(isa, out, ref, m * n, skm_linear_q4_0(a, q4, s4, NULL, dst, m, n, k, 2));
        expect_close("linear_q4_0", isa, out, ref, m * n, 1e-5);
        int8_t *qb = malloc(n * blocks * 32);
        float *sb = malloc(n * blocks * sizeof(float));
        skm_quantize_q8_0(w, qb, sb, n, k);
        BOTH(isa, out, ref, m * n, skm_linear_q8_0(a, qb, sb, bias, dst, m, n, k, 4));
        expect_close("linear_q8_0", isa, out, ref, m * n, 1e-5);
        free(qb), free(sb);
        /* row ops over [m, n] */
        float *x = rnd(m * n), *g = rnd(n);
        BOTH(isa, out, ref, m * n, skm_softmax(x, dst, m, n, NULL, NULL, 1, m, 1.5f));
        expect_close("softmax causal", isa, out, ref, m * n, 1e-5);
        BOTH(isa, out, ref, m * n, skm_layer_norm(x, g, bias, dst, m, n, 1e-5f));
        expect_close("layer_norm", isa, out, ref, m * n, 1e-5);
        BOTH(isa, out, ref, m * n, skm_rms_norm(x, g, dst, m, n, 1e-6f));
        expect_close("rms_norm", isa, out, ref, m * n, 1e-5);
        BOTH(isa, out, ref, m * n, skm_l2_normalize(x, dst, m, n, 1e-12f));
        expect_close("l2_normalize", isa, out, ref, m * n, 1e-5);
        BOTH(isa, out, ref, m * n, skm_add(x, bias, dst, m, n, 1));
        expect_close("add row", isa, out, ref, m * n, 0);
        for (int act = 1; act <= SKM_ACT_TANH; act++) {
            BOTH(isa, out, ref, m * n, skm_activation(x, dst, m * n, act));
            expect_close("activation", isa, out, ref, m * n, 1e-6);
        }
        BOTH(isa, out, ref, n, skm_mean_pool(x, g, dst, 1, m > n ? n : m, n));
        expect_close("mean_pool", isa, out, ref, n, 1e-5);
        for (int act = 0; act <= SKM_ACT_GELU_ERF; act += SKM_ACT_GELU_ERF) { /* x as residual */
            BOTH(isa, out, ref, m * n, {
                int cur = skm_active_isa();
                float *packed = malloc((size_t)skm_packed_weight_floats(cur, n, k) * sizeof(float) + 4);
                skm_pack_linear_weight(cur, w, n, k, packed);
                skm_linear_packed(cur, a, packed, bias, x, dst, m, n, k, act);
                free(packed);
            });
            expect_close("linear_packed", isa, out, ref, m * n, 1e-5);
        }
        free(a), free(b), free(w), free(bias), free(out), free(ref), free(q8), free(s8);
        free(q4), free(s4), free(x), free(g);
    }
    { /* attention with GQA, causal, a broadcast additive mask */
        int64_t B = 2, hq = 4, hkv = 2, sq = 70, sk = 75, d = 24, dv = 20;
        float *q = rnd(B * hq * sq * d), *kk = rnd(B * hkv * sk * d), *v = rnd(B * hkv * sk * dv);
        float *mask = rnd(sq * sk);
        int64_t ms[3] = {0, 0, sk};
        size_t n = B * hq * sq * dv;
        float *out = malloc(n * sizeof(float)), *ref = malloc(n * sizeof(float));
        BOTH(isa, out, ref, n, skm_attention(q, kk, v, dst, B, hq, hkv, sq, sk, d, dv, mask, ms, 1, 0.2f));
        expect_close("attention", isa, out, ref, n, 1e-5);
        free(q), free(kk), free(v), free(mask), free(out), free(ref);
    }
    { /* heads read in place from a fused [B, S, 3*H*D] projection, written as [B, S, H*D] */
        int64_t B = 2, H = 3, S = 67, D = 20, E = H * D;
        float *qkv = rnd(B * S * 3 * E), *mask = rnd(B * S);
        int64_t st[12] = {S * 3 * E, D, 3 * E, S * 3 * E, D, 3 * E, S * 3 * E, D, 3 * E, S * E, D, E};
        int64_t ms[3] = {S, 0, 0};
        size_t n = B * S * E;
        float *out = malloc(n * sizeof(float)), *ref = malloc(n * sizeof(float));
        BOTH(isa, out, ref, n, skm_attention_strided(qkv, qkv + E, qkv + 2 * E, dst, st, B, H, H, S, S, D, D, mask, ms, 0, 0.3f));
        expect_close("attention strided", isa, out, ref, n, 1e-5);
        free(qkv), free(mask), free(out), free(ref);
    }
    { /* conv2d with groups/stride/padding/dilation, then pooling */
        int64_t N = 2, C = 4, H = 11, W = 9, CO = 6, KH = 3, KW = 2, G = 2;
        int64_t OH = (H + 2 - 2 * (KH - 1) - 1) / 2 + 1, OW = (W + 0 - 1 * (KW - 1) - 1) / 1 + 1;
        float *x = rnd(N * C * H * W), *w = rnd(CO * (C / G) * KH * KW), *bias = rnd(CO);
        size_t n = N * CO * OH * OW;
        float *out = malloc(n * sizeof(float)), *ref = malloc(n * sizeof(float));
        BOTH(isa, out, ref, n, skm_conv2d(x, w, bias, dst, N, C, H, W, CO, KH, KW, 2, 1, 1, 0, 2, 1, G, OH, OW));
        expect_close("conv2d", isa, out, ref, n, 1e-5);
        int64_t PH = (H + 2 - 3) / 2 + 1, PW = (W + 2 - 3) / 2 + 1;
        for (int mode = 0; mode <= SKM_POOL_AVG_EXCLUDE_PAD; mode++) {
            BOTH(isa, out, ref, N * C * PH * PW, skm_pool2d(x, dst, N * C, H, W, 3, 3, 2, 2, 1, 1, PH, PW, mode));
            expect_close("pool2d", isa, out, ref, N * C * PH * PW, 1e-6);
        }
        free(x), free(w), free(bias), free(out), free(ref);
    }
}

#ifdef SKM_SELFTEST_EMU16
/* The 16-lane emulation against the scalar table, kernel by kernel (tables called directly:
 * dispatch only knows the real ISAs). */
static void test_emu16(void) {
    const skm_kernel_table *E = &skm_table_emu16, *S = &skm_table_scalar;
    static const int64_t shapes[][3] = {{1, 1, 1}, {7, 13, 17}, {6, 33, 32}, {29, 37, 61}, {130, 70, 150}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t m = shapes[s][0], k = shapes[s][1], n = shapes[s][2], zero = 0;
        float *a = rnd(m * k), *b = rnd(k * n), *w = rnd(n * k), *bias = rnd(n), *x = rnd(m * n);
        float *out = malloc(m * n * sizeof(float)), *ref = malloc(m * n * sizeof(float));
        E->matmul(1, a, &zero, 0, b, &zero, 0, out, m, n, k);
        S->matmul(1, a, &zero, 0, b, &zero, 0, ref, m, n, k);
        expect_close("emu16 matmul", 0, out, ref, m * n, 1e-5);
        for (int act = 0; act <= SKM_ACT_TANH; act++) {
            E->linear(a, w, 0, NULL, bias, out, m, n, k, act);
            S->linear(a, w, 0, NULL, bias, ref, m, n, k, act);
            expect_close("emu16 linear", 0, out, ref, m * n, 1e-5);
            E->activation(x, out, m * n, act);
            S->activation(x, ref, m * n, act);
            expect_close("emu16 activation", 0, out, ref, m * n, 1e-6);
        }
        int64_t blocks = (k + 31) / 32;
        uint8_t *q4 = malloc(n * blocks * 16);
        float *s4 = malloc(n * blocks * sizeof(float));
        skm_quantize_q4_0(w, q4, s4, n, k);
        E->linear(a, q4, 2, s4, NULL, out, m, n, k, 0);
        S->linear(a, q4, 2, s4, NULL, ref, m, n, k, 0);
        expect_close("emu16 linear_q4_0", 0, out, ref, m * n, 1e-5);
        int8_t *qb = malloc(n * blocks * 32);
        float *sb = malloc(n * blocks * sizeof(float));
        skm_quantize_q8_0(w, qb, sb, n, k);
        E->linear(a, qb, 3, sb, bias, out, m, n, k, 4);
        S->linear(a, qb, 3, sb, bias, ref, m, n, k, 4);
        expect_close("emu16 linear_q8_0", 0, out, ref, m * n, 1e-5);
        free(qb), free(sb);
        int8_t *q8 = malloc(n * k);
        float *s8 = malloc(n * sizeof(float));
        skm_quantize_int8(w, q8, s8, n, k);
        E->linear_int8_dynamic(a, q8, NULL, s8, bias, out, m, n, k, 0);
        S->linear_int8_dynamic(a, q8, NULL, s8, bias, ref, m, n, k, 0);
        expect_close("emu16 linear_int8_dynamic", 0, out, ref, m * n, 0);
        free(q8), free(s8);
        E->softmax(x, out, m, n, NULL, NULL, 1, m, 0.7f);
        S->softmax(x, ref, m, n, NULL, NULL, 1, m, 0.7f);
        expect_close("emu16 softmax", 0, out, ref, m * n, 1e-5);
        E->layer_norm(x, bias, bias, out, m, n, 1e-5f);
        S->layer_norm(x, bias, bias, ref, m, n, 1e-5f);
        expect_close("emu16 layer_norm", 0, out, ref, m * n, 1e-5);
        E->rms_norm(x, bias, out, m, n, 1e-5f);
        S->rms_norm(x, bias, ref, m, n, 1e-5f);
        expect_close("emu16 rms_norm", 0, out, ref, m * n, 1e-5);
        E->l2_normalize(x, out, m, n, 1e-12f);
        S->l2_normalize(x, ref, m, n, 1e-12f);
        expect_close("emu16 l2_normalize", 0, out, ref, m * n, 1e-5);
        float *pe = malloc((size_t)((n + E->nr - 1) / E->nr * E->nr * k + 1) * sizeof(float));
        float *ps = malloc((size_t)((n + S->nr - 1) / S->nr * S->nr * k + 1) * sizeof(float));
        E->pack_weight(w, n, k, pe);
        S->pack_weight(w, n, k, ps);
        E->linear_packed(a, pe, bias, x, out, m, n, k, SKM_ACT_GELU_ERF);
        S->linear_packed(a, ps, bias, x, ref, m, n, k, SKM_ACT_GELU_ERF);
        expect_close("emu16 linear_packed", 0, out, ref, m * n, 1e-5);
        free(pe), free(ps);
        free(a), free(b), free(w), free(bias), free(x), free(out), free(ref), free(q4), free(s4);
    }
    int64_t B = 1, hq = 4, hkv = 2, sq = 67, sk = 70, d = 40, dv = 33, ms[3] = {0, 0, 0};
    float *q = rnd(B * hq * sq * d), *kk = rnd(B * hkv * sk * d), *v = rnd(B * hkv * sk * dv);
    float *mask = rnd(sk);
    size_t n = B * hq * sq * dv;
    float *out = malloc(n * sizeof(float)), *ref = malloc(n * sizeof(float));
    E->attention(q, kk, v, out, B, hq, hkv, sq, sk, d, dv, mask, ms, 1, 0.15f, NULL);
    S->attention(q, kk, v, ref, B, hq, hkv, sq, sk, d, dv, mask, ms, 1, 0.15f, NULL);
    expect_close("emu16 attention", 0, out, ref, n, 1e-5);
    free(q), free(kk), free(v), free(mask), free(out), free(ref);
    printf("selftest: emu16 (AVX-512 shape) checked\n");
}
#endif

int main(void) {
    int tested = 0;
    for (int threads = 1; threads <= 3; threads += 2) {
        skm_set_num_threads(threads);
        for (int isa = SKM_ISA_ID_SCALAR; isa <= SKM_ISA_ID_NEON; isa++) {
            if (!skm_isa_supported(isa)) continue;
            test_isa(isa);
            tested++;
        }
    }
#ifdef SKM_SELFTEST_EMU16
    test_emu16();
#endif
    skm_arena_reset();
    printf("selftest: best=%s, %d path/thread combinations, %d failures\n",
           isa_names[skm_best_isa()], tested, failures);
    return failures != 0;
}

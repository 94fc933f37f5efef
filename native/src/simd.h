/* The SIMD vocabulary: the only place that knows about intrinsics.
 *
 * Every kernel in kernels.h is written once against these names and compiled once per ISA
 * (isa_*.c defines SKM_ISA before including this file).  A kernel never branches on the ISA;
 * it asks for SKM_W lanes and writes a scalar tail for the remainder, so the scalar build
 * (SKM_W == 1) doubles as the plain-C reference of every kernel.
 *
 * Conventions shared by all ISAs:
 *   skv_max(a, b) / skv_min(a, b) return b when either is NaN (x86 semantics): put the data
 *   operand second so NaN propagates; skv_pow2n(n) takes integral floats in [-127, 127] and
 *   returns 2**n (n == -127 gives 0); skv_load_i8(p) reads SKM_W int8 values as floats (exact);
 *   skv_load_q4lo(p) / skv_load_q4hi(p) read SKM_W bytes and give their low / high nibbles
 *   less 8 as floats -8..7 (exact), lane i from byte i: Q4_0 values read in place.
 */
#ifndef SKM_SIMD_H
#define SKM_SIMD_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#define SKM_ISA_SCALAR 0
#define SKM_ISA_AVX2 1
#define SKM_ISA_AVX512 2
#define SKM_ISA_NEON 3
#define SKM_ISA_EMU16 99 /* test-only, see below */

#ifndef SKM_ISA
#error "define SKM_ISA before including simd.h"
#endif

#define SKM_INLINE static inline __attribute__((always_inline))

#if SKM_ISA == SKM_ISA_AVX512
#include <immintrin.h>
#define SKM_W 16
#define SKM_SUFFIX avx512
typedef __m512 skv;
SKM_INLINE skv skv_load(const float *p) { return _mm512_loadu_ps(p); }
SKM_INLINE skv skv_load_i8(const int8_t *p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(const void *)p)));
}
/* The nibble goes into the mantissa of 2^23 (no int->float convert), 2^23 + 8 then comes off. */
SKM_INLINE skv skm_q4_magic(__m512i n) {
    __m512 f = _mm512_castsi512_ps(_mm512_or_si512(n, _mm512_set1_epi32(0x4B000000)));
    return _mm512_sub_ps(f, _mm512_set1_ps(8388616.0f));
}
SKM_INLINE skv skv_load_q4lo(const uint8_t *p) {
    __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)p));
    return skm_q4_magic(_mm512_and_si512(b, _mm512_set1_epi32(15)));
}
SKM_INLINE skv skv_load_q4hi(const uint8_t *p) {
    __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)p));
    return skm_q4_magic(_mm512_srli_epi32(b, 4));
}
SKM_INLINE void skv_store(float *p, skv v) { _mm512_storeu_ps(p, v); }
SKM_INLINE skv skv_set1(float x) { return _mm512_set1_ps(x); }
SKM_INLINE skv skv_bcast(const float *p) { return _mm512_set1_ps(*p); }
SKM_INLINE skv skv_zero(void) { return _mm512_setzero_ps(); }
SKM_INLINE skv skv_add(skv a, skv b) { return _mm512_add_ps(a, b); }
SKM_INLINE skv skv_sub(skv a, skv b) { return _mm512_sub_ps(a, b); }
SKM_INLINE skv skv_mul(skv a, skv b) { return _mm512_mul_ps(a, b); }
SKM_INLINE skv skv_div(skv a, skv b) { return _mm512_div_ps(a, b); }
SKM_INLINE skv skv_fma(skv a, skv b, skv c) { return _mm512_fmadd_ps(a, b, c); }
SKM_INLINE skv skv_max(skv a, skv b) { return _mm512_max_ps(a, b); }
SKM_INLINE skv skv_min(skv a, skv b) { return _mm512_min_ps(a, b); }
SKM_INLINE skv skv_abs(skv a) { return _mm512_abs_ps(a); }
SKM_INLINE skv skv_sqrt(skv a) { return _mm512_sqrt_ps(a); }
SKM_INLINE skv skv_round(skv a) {
    return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
SKM_INLINE skv skv_pow2n(skv n) {
    __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
    return _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
}
SKM_INLINE float skv_reduce_add(skv v) { return _mm512_reduce_add_ps(v); }
SKM_INLINE float skv_reduce_max(skv v) { return _mm512_reduce_max_ps(v); }

#elif SKM_ISA == SKM_ISA_AVX2
#include <immintrin.h>
#define SKM_W 8
#define SKM_SUFFIX avx2
typedef __m256 skv;
SKM_INLINE skv skv_load(const float *p) { return _mm256_loadu_ps(p); }
SKM_INLINE skv skv_load_i8(const int8_t *p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)p)));
}
/* The nibble goes into the mantissa of 2^23 (no int->float convert), 2^23 + 8 then comes off. */
SKM_INLINE skv skm_q4_magic(__m256i n) {
    __m256 f = _mm256_castsi256_ps(_mm256_or_si256(n, _mm256_set1_epi32(0x4B000000)));
    return _mm256_sub_ps(f, _mm256_set1_ps(8388616.0f));
}
SKM_INLINE skv skv_load_q4lo(const uint8_t *p) {
    __m256i b = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)p));
    return skm_q4_magic(_mm256_and_si256(b, _mm256_set1_epi32(15)));
}
SKM_INLINE skv skv_load_q4hi(const uint8_t *p) {
    __m256i b = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)p));
    return skm_q4_magic(_mm256_srli_epi32(b, 4));
}
SKM_INLINE void skv_store(float *p, skv v) { _mm256_storeu_ps(p, v); }
SKM_INLINE skv skv_set1(float x) { return _mm256_set1_ps(x); }
SKM_INLINE skv skv_bcast(const float *p) { return _mm256_broadcast_ss(p); }
SKM_INLINE skv skv_zero(void) { return _mm256_setzero_ps(); }
SKM_INLINE skv skv_add(skv a, skv b) { return _mm256_add_ps(a, b); }
SKM_INLINE skv skv_sub(skv a, skv b) { return _mm256_sub_ps(a, b); }
SKM_INLINE skv skv_mul(skv a, skv b) { return _mm256_mul_ps(a, b); }
SKM_INLINE skv skv_div(skv a, skv b) { return _mm256_div_ps(a, b); }
SKM_INLINE skv skv_fma(skv a, skv b, skv c) { return _mm256_fmadd_ps(a, b, c); }
SKM_INLINE skv skv_max(skv a, skv b) { return _mm256_max_ps(a, b); }
SKM_INLINE skv skv_min(skv a, skv b) { return _mm256_min_ps(a, b); }
SKM_INLINE skv skv_abs(skv a) {
    return _mm256_and_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)));
}
SKM_INLINE skv skv_sqrt(skv a) { return _mm256_sqrt_ps(a); }
SKM_INLINE skv skv_round(skv a) {
    return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
SKM_INLINE skv skv_pow2n(skv n) {
    __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
    return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
}
SKM_INLINE float skv_reduce_add(skv v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
SKM_INLINE float skv_reduce_max(skv v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

#elif SKM_ISA == SKM_ISA_NEON
#include <arm_neon.h>
#define SKM_W 4
#define SKM_SUFFIX neon
typedef float32x4_t skv;
SKM_INLINE skv skv_load(const float *p) { return vld1q_f32(p); }
SKM_INLINE skv skv_load_i8(const int8_t *p) {
    int32_t four;
    memcpy(&four, p, sizeof four);
    int16x8_t wide = vmovl_s8(vreinterpret_s8_s32(vdup_n_s32(four)));
    return vcvtq_f32_s32(vmovl_s16(vget_low_s16(wide)));
}
SKM_INLINE uint32x4_t skm_neon_u8x4(const uint8_t *p) {
    uint32_t four;
    memcpy(&four, p, sizeof four);
    return vmovl_u16(vget_low_u16(vmovl_u8(vreinterpret_u8_u32(vdup_n_u32(four)))));
}
SKM_INLINE skv skv_load_q4lo(const uint8_t *p) {
    int32x4_t n = vreinterpretq_s32_u32(vandq_u32(skm_neon_u8x4(p), vdupq_n_u32(15)));
    return vcvtq_f32_s32(vsubq_s32(n, vdupq_n_s32(8)));
}
SKM_INLINE skv skv_load_q4hi(const uint8_t *p) {
    int32x4_t n = vreinterpretq_s32_u32(vshrq_n_u32(skm_neon_u8x4(p), 4));
    return vcvtq_f32_s32(vsubq_s32(n, vdupq_n_s32(8)));
}
SKM_INLINE void skv_store(float *p, skv v) { vst1q_f32(p, v); }
SKM_INLINE skv skv_set1(float x) { return vdupq_n_f32(x); }
SKM_INLINE skv skv_bcast(const float *p) { return vld1q_dup_f32(p); }
SKM_INLINE skv skv_zero(void) { return vdupq_n_f32(0.0f); }
SKM_INLINE skv skv_add(skv a, skv b) { return vaddq_f32(a, b); }
SKM_INLINE skv skv_sub(skv a, skv b) { return vsubq_f32(a, b); }
SKM_INLINE skv skv_mul(skv a, skv b) { return vmulq_f32(a, b); }
SKM_INLINE skv skv_div(skv a, skv b) { return vdivq_f32(a, b); }
SKM_INLINE skv skv_fma(skv a, skv b, skv c) { return vfmaq_f32(c, a, b); }
/* NEON max/min propagate NaN from either side, which satisfies the "NaN wins" use. */
SKM_INLINE skv skv_max(skv a, skv b) { return vmaxq_f32(a, b); }
SKM_INLINE skv skv_min(skv a, skv b) { return vminq_f32(a, b); }
SKM_INLINE skv skv_abs(skv a) { return vabsq_f32(a); }
SKM_INLINE skv skv_sqrt(skv a) { return vsqrtq_f32(a); }
SKM_INLINE skv skv_round(skv a) { return vrndnq_f32(a); }
SKM_INLINE skv skv_pow2n(skv n) {
    int32x4_t e = vaddq_s32(vcvtnq_s32_f32(n), vdupq_n_s32(127));
    return vreinterpretq_f32_s32(vshlq_n_s32(e, 23));
}
SKM_INLINE float skv_reduce_add(skv v) { return vaddvq_f32(v); }
SKM_INLINE float skv_reduce_max(skv v) { return vmaxvq_f32(v); }

#elif SKM_ISA == SKM_ISA_EMU16
/* Test-only: 16 lanes through GCC vector extensions, portable C.  It gives the AVX-512 code
 * shape (W = 16, 6x32 tiles, 16-lane tails) a run on CPUs without AVX-512; the selftest
 * builds it, the library does not. */
#define SKM_W 16
#define SKM_SUFFIX emu16
typedef float skv __attribute__((vector_size(64), aligned(4)));
typedef int32_t skm_vi __attribute__((vector_size(64), aligned(4)));
SKM_INLINE skv skv_load(const float *p) { skv v; memcpy(&v, p, sizeof v); return v; }
SKM_INLINE skv skv_load_i8(const int8_t *p) { skv v; for (int i = 0; i < 16; i++) v[i] = p[i]; return v; }
SKM_INLINE skv skv_load_q4lo(const uint8_t *p) { skv v; for (int i = 0; i < 16; i++) v[i] = (p[i] & 15) - 8; return v; }
SKM_INLINE skv skv_load_q4hi(const uint8_t *p) { skv v; for (int i = 0; i < 16; i++) v[i] = (p[i] >> 4) - 8; return v; }
SKM_INLINE void skv_store(float *p, skv v) { memcpy(p, &v, sizeof v); }
SKM_INLINE skv skv_set1(float x) { skv v = {0}; return v + x; }
SKM_INLINE skv skv_bcast(const float *p) { return skv_set1(*p); }
SKM_INLINE skv skv_zero(void) { return skv_set1(0.0f); }
SKM_INLINE skv skv_add(skv a, skv b) { return a + b; }
SKM_INLINE skv skv_sub(skv a, skv b) { return a - b; }
SKM_INLINE skv skv_mul(skv a, skv b) { return a * b; }
SKM_INLINE skv skv_div(skv a, skv b) { return a / b; }
SKM_INLINE skv skv_fma(skv a, skv b, skv c) { return a * b + c; }
SKM_INLINE skv skv_select(skm_vi m, skv a, skv b) { return (skv)((m & (skm_vi)a) | (~m & (skm_vi)b)); }
SKM_INLINE skv skv_max(skv a, skv b) { return skv_select(a > b, a, b); }
SKM_INLINE skv skv_min(skv a, skv b) { return skv_select(a < b, a, b); }
SKM_INLINE skv skv_abs(skv a) { return (skv)((skm_vi)a & 0x7fffffff); }
#define SKM_EMU_MAP(expr) for (int i = 0; i < 16; i++) a[i] = (expr); return a
SKM_INLINE skv skv_sqrt(skv a) { SKM_EMU_MAP(sqrtf(a[i])); }
SKM_INLINE skv skv_round(skv a) { SKM_EMU_MAP(nearbyintf(a[i])); }
SKM_INLINE skv skv_pow2n(skv a) {
    for (int i = 0; i < 16; i++) {
        if (a[i] != a[i]) continue;
        uint32_t bits = (uint32_t)((int32_t)a[i] + 127) << 23;
        memcpy(&a[i], &bits, sizeof bits);
    }
    return a;
}
SKM_INLINE float skv_reduce_add(skv v) { float s = 0; for (int i = 0; i < 16; i++) s += v[i]; return s; }
SKM_INLINE float skv_reduce_max(skv v) { float m = v[0]; for (int i = 1; i < 16; i++) m = v[i] > m ? v[i] : m; return m; }

#else /* SKM_ISA_SCALAR: one lane; this build is the reference the tests compare against. */
#define SKM_W 1
#define SKM_SUFFIX scalar
typedef float skv;
SKM_INLINE skv skv_load(const float *p) { return *p; }
SKM_INLINE skv skv_load_i8(const int8_t *p) { return (float)*p; }
SKM_INLINE skv skv_load_q4lo(const uint8_t *p) { return (float)((*p & 15) - 8); }
SKM_INLINE skv skv_load_q4hi(const uint8_t *p) { return (float)((*p >> 4) - 8); }
SKM_INLINE void skv_store(float *p, skv v) { *p = v; }
SKM_INLINE skv skv_set1(float x) { return x; }
SKM_INLINE skv skv_bcast(const float *p) { return *p; }
SKM_INLINE skv skv_zero(void) { return 0.0f; }
SKM_INLINE skv skv_add(skv a, skv b) { return a + b; }
SKM_INLINE skv skv_sub(skv a, skv b) { return a - b; }
SKM_INLINE skv skv_mul(skv a, skv b) { return a * b; }
SKM_INLINE skv skv_div(skv a, skv b) { return a / b; }
SKM_INLINE skv skv_fma(skv a, skv b, skv c) { return a * b + c; }
SKM_INLINE skv skv_max(skv a, skv b) { return a > b ? a : b; }
SKM_INLINE skv skv_min(skv a, skv b) { return a < b ? a : b; }
SKM_INLINE skv skv_abs(skv a) { return fabsf(a); }
SKM_INLINE skv skv_sqrt(skv a) { return sqrtf(a); }
SKM_INLINE skv skv_round(skv a) { return nearbyintf(a); }
SKM_INLINE skv skv_pow2n(skv n) {
    if (n != n) return n; /* a float->int cast of NaN is undefined behaviour in C */
    uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
    float out;
    memcpy(&out, &bits, sizeof out);
    return out;
}
SKM_INLINE float skv_reduce_add(skv v) { return v; }
SKM_INLINE float skv_reduce_max(skv v) { return v; }
#endif

/* Token pasting for per-ISA symbol names: SKM_FN(softmax) -> skm_softmax_avx2. */
#define SKM_CAT2(a, b) a##_##b
#define SKM_CAT(a, b) SKM_CAT2(a, b)
#define SKM_FN(name) SKM_CAT(skm_##name, SKM_SUFFIX)
#define SKM_STR2(x) #x
#define SKM_STR(x) SKM_STR2(x)

/* ---- transcendental helpers built from the vocabulary (same code for every ISA) ---- */

/* exp(x): x = n*ln2 + r with |r| <= ln2/2, e^r by its degree-6 Taylor polynomial (relative
 * error ~1e-7, enough for fp32), 2**n assembled in the exponent bits.  The clamp keeps n in
 * [-127, 127]; n == -127 flushes to zero, which softmax wants for masked lanes. */
SKM_INLINE skv skv_exp(skv x) {
    const skv lo = skv_set1(-88.37626f), hi = skv_set1(88.37626f);
    x = skv_min(hi, skv_max(lo, x)); /* data operand second: NaN survives */
    skv n = skv_round(skv_mul(x, skv_set1(1.44269504088896341f)));
    skv r = skv_fma(n, skv_set1(-0.693359375f), x); /* ln2 split in two for exactness */
    r = skv_fma(n, skv_set1(2.12194440e-4f), r);
    skv p = skv_set1(1.0f / 720.0f);
    p = skv_fma(p, r, skv_set1(1.0f / 120.0f));
    p = skv_fma(p, r, skv_set1(1.0f / 24.0f));
    p = skv_fma(p, r, skv_set1(1.0f / 6.0f));
    p = skv_fma(p, r, skv_set1(0.5f));
    p = skv_fma(p, r, skv_set1(1.0f));
    p = skv_fma(p, r, skv_set1(1.0f));
    return skv_mul(p, skv_pow2n(n));
}

/* erfc(z) for z >= 0 as P(t) * exp(-z^2), t = 1 / (1 + p z): Abramowitz & Stegun 7.1.26,
 * absolute error <= 1.5e-7. */
SKM_INLINE skv skv_erfc_nonneg(skv z) {
    skv t = skv_div(skv_set1(1.0f), skv_fma(skv_set1(0.3275911f), z, skv_set1(1.0f)));
    skv p = skv_set1(1.061405429f);
    p = skv_fma(p, t, skv_set1(-1.453152027f));
    p = skv_fma(p, t, skv_set1(1.421413741f));
    p = skv_fma(p, t, skv_set1(-0.284496736f));
    p = skv_fma(p, t, skv_set1(0.254829592f));
    return skv_mul(skv_mul(p, t), skv_exp(skv_mul(skv_sub(skv_zero(), z), z)));
}

/* gelu(x) = x Phi(x) = relu(x) - |x| * erfc(|x| / sqrt 2) / 2.  Working on |x| needs no
 * select op, and the negative side is a product, not the cancelling 1 + erf(x). */
SKM_INLINE skv skv_gelu_erf(skv x) {
    skv ax = skv_abs(x);
    skv c = skv_erfc_nonneg(skv_mul(ax, skv_set1(0.70710678118654752f)));
    return skv_sub(skv_max(skv_zero(), x), skv_mul(skv_mul(ax, skv_set1(0.5f)), c));
}

/* tanh-approximate gelu: 0.5 * (1 + tanh(y)) == sigmoid(2y), which avoids cancellation. */
SKM_INLINE skv skv_gelu_tanh(skv x) {
    skv x3 = skv_mul(skv_mul(x, x), x);
    skv y = skv_mul(skv_set1(0.7978845608028654f), skv_fma(skv_set1(0.044715f), x3, x));
    skv e = skv_exp(skv_mul(skv_set1(-2.0f), y));
    return skv_div(x, skv_add(skv_set1(1.0f), e));
}

SKM_INLINE skv skv_silu(skv x) {
    return skv_div(x, skv_add(skv_set1(1.0f), skv_exp(skv_sub(skv_zero(), x))));
}

SKM_INLINE skv skv_relu(skv x) { return skv_max(skv_zero(), x); }

/* tanh(x) = (1 - e) / (1 + e), e = exp(-2x): exp's clamp keeps e finite, so both tails come
 * out as +-1; near 0 the absolute error is ~1e-7 (the cancellation in 1 - e). */
SKM_INLINE skv skv_tanh(skv x) {
    skv e = skv_exp(skv_mul(skv_set1(-2.0f), x));
    return skv_div(skv_sub(skv_set1(1.0f), e), skv_add(skv_set1(1.0f), e));
}

#endif /* SKM_SIMD_H */

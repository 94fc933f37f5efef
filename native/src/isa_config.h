/* Which vector builds this compiler/target can produce.  Set SKM_NO_SIMD to build the
 * scalar path alone (useful to test the fallback). */
#ifndef SKM_ISA_CONFIG_H
#define SKM_ISA_CONFIG_H
#if !defined(SKM_NO_SIMD) && (defined(__x86_64__) || defined(__i386__)) && \
    (defined(__GNUC__) || defined(__clang__))
#define SKM_BUILD_X86 1
#else
#define SKM_BUILD_X86 0
#endif
#if !defined(SKM_NO_SIMD) && defined(__aarch64__)
#define SKM_BUILD_NEON 1
#else
#define SKM_BUILD_NEON 0
#endif
#endif

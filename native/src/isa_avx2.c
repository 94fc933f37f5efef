/* AVX2+FMA build.  The target pragma (not a per-file -mavx2 flag, which distutils cannot
 * give one source) lets this file use AVX2 while the rest of the library stays baseline
 * x86-64; dispatch.c only calls into it after CPUID says the CPU and OS support it. */
#include "isa_config.h"
#if SKM_BUILD_X86
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC target("avx2,fma")
#endif
#define SKM_ISA SKM_ISA_AVX2
#include "simd.h"
#include "kernels.h"
#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif
typedef int skm_keep_translation_unit_nonempty;

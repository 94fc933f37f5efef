/* AVX-512F build: compiled wherever the compiler targets x86-64, selected at run time only
 * when CPUID reports AVX-512F and the OS saves the ZMM state. */
#include "isa_config.h"
#if SKM_BUILD_X86
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx2,fma"))), apply_to = function)
#else
#pragma GCC target("avx512f,avx2,fma")
#endif
#define SKM_ISA SKM_ISA_AVX512
#include "simd.h"
#include "kernels.h"
#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif
typedef int skm_keep_translation_unit_nonempty;

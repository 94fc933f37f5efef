/* Test-only build of every kernel at 16 lanes in portable C (see SKM_ISA_EMU16 in simd.h),
 * so the AVX-512 code shape is exercised on machines without AVX-512. */
#define SKM_ISA SKM_ISA_EMU16
#include "simd.h"
#include "kernels.h"

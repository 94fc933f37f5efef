/* NEON build: AArch64 always has Advanced SIMD with FMA, so no runtime check is needed. */
#include "isa_config.h"
#if SKM_BUILD_NEON
#define SKM_ISA SKM_ISA_NEON
#include "simd.h"
#include "kernels.h"
#endif
typedef int skm_keep_translation_unit_nonempty;

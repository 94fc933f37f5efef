/* Plain C build of every kernel (one SIMD lane): runs anywhere and is the reference the
 * tests hold the vector builds to. */
#define SKM_ISA SKM_ISA_SCALAR
#include "simd.h"
#include "kernels.h"

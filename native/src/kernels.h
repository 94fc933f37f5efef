/* Every kernel, written once against the SIMD vocabulary of simd.h.  Included by each
 * isa_*.c after it has set SKM_ISA (and the matching target pragma); all symbols here are
 * static or carry the ISA suffix, so the copies never collide.
 *
 * Loops process SKM_W lanes at a time and finish with one partial vector (ld_part/st_part),
 * so the remainder runs through the very same vector code rather than a second scalar copy. */
#include <float.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "kernel_table.h"
#include "runtime.h"
#include "simd.h"
#include "skm_api.h"

#define MR 6
#define NR (2 * SKM_W)
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define ROUND_UP(x, m) (((x) + (m)-1) / (m) * (m))

/* Below this many elements an op runs on one thread: waking the pool costs more. */
#define PAR_MIN_ELEMS 16384

SKM_INLINE skv ld_part(const float *p, int64_t cnt, float fill) {
#if SKM_W == 1 /* one lane: a partial vector is empty (gcc otherwise warns spuriously) */
    return cnt > 0 ? *p : fill;
#endif
    float tmp[SKM_W];
    for (int i = 0; i < SKM_W; i++) tmp[i] = fill;
    if (cnt > SKM_W) cnt = SKM_W; /* never true; tells the compiler the copy fits */
    memcpy(tmp, p, (size_t)cnt * sizeof(float));
    return skv_load(tmp);
}

SKM_INLINE void st_part(float *p, skv v, int64_t cnt) {
#if SKM_W == 1
    if (cnt > 0) *p = v;
    return;
#endif
    float tmp[SKM_W];
    skv_store(tmp, v);
    if (cnt > SKM_W) cnt = SKM_W;
    memcpy(p, tmp, (size_t)cnt * sizeof(float));
}

SKM_INLINE skv apply_act(skv v, int act) {
    switch (act) {
    case SKM_ACT_RELU: return skv_relu(v);
    case SKM_ACT_GELU_ERF: return skv_gelu_erf(v);
    case SKM_ACT_GELU_TANH: return skv_gelu_tanh(v);
    case SKM_ACT_SILU: return skv_silu(v);
    case SKM_ACT_TANH: return skv_tanh(v);
    default: return v;
    }
}

#include "k_gemm.h"      /* SGEMM: packing, microkernel, blocking, threads; matmul, linear */
#include "k_int8.h"      /* int8 x int8 linear, activations quantized per token at run time */
#include "k_rowwise.h"   /* softmax, norms, activations, add, pooling over the sequence */
#include "k_attention.h" /* fused scaled-dot-product attention */
#include "k_conv.h"      /* conv2d, pool2d, and the peak-FMA probe */

const skm_kernel_table SKM_CAT(skm_table, SKM_SUFFIX) = {
    .name = SKM_STR(SKM_SUFFIX),
    .mr = MR,
    .nr = NR,
    .blocking = &SKM_FN(blocking),
    .matmul = SKM_FN(matmul),
    .linear = SKM_FN(linear),
    .activation = SKM_FN(activation),
    .add = SKM_FN(add),
    .softmax = SKM_FN(softmax),
    .layer_norm = SKM_FN(layer_norm),
    .rms_norm = SKM_FN(rms_norm),
    .attention = SKM_FN(attention),
    .pack_weight = SKM_FN(pack_weight),
    .linear_packed = SKM_FN(linear_packed),
    .linear_int8_dynamic = SKM_FN(linear_int8_dynamic),
    .int8_panel_elems = SKM_FN(int8_panel_elems),
    .pack_int8_weight = SKM_FN(pack_int8_weight),
    .quantize_rows_int8 = SKM_FN(quantize_rows_i8),
    .conv2d = SKM_FN(conv2d),
    .pool2d = SKM_FN(pool2d),
    .mean_pool = SKM_FN(mean_pool),
    .l2_normalize = SKM_FN(l2_normalize),
    .fma_loop = SKM_FN(fma_loop),
};

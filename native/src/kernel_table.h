/* The per-ISA function table.  Each isa_*.c compiles kernels.h once and exports one table;
 * dispatch.c picks a table at run time from the CPU's features. */
#ifndef SKM_KERNEL_TABLE_H
#define SKM_KERNEL_TABLE_H
#include <stdint.h>

/* Cache blocking as data: tunable per ISA (skm_gemm_set_blocking) without recompiling. */
typedef struct {
    int64_t mc, kc, nc;
} skm_blocking;

typedef struct {
    const char *name;
    int64_t mr, nr;
    skm_blocking *blocking;
    int (*matmul)(int64_t batch, const float *a, const int64_t *a_off, int a_trans,
                  const float *b, const int64_t *b_off, int b_trans, float *c, int64_t m,
                  int64_t n, int64_t k);
    int (*linear)(const float *x, const void *w, int w_kind, const float *scales,
                  const float *bias, float *out, int64_t m, int64_t n, int64_t k, int act);
    int (*activation)(const float *x, float *out, int64_t n, int act);
    int (*add)(const float *a, const float *b, float *out, int64_t rows, int64_t n,
               int b_is_row);
    int (*softmax)(const float *x, float *out, int64_t rows, int64_t n, const float *mask,
                   const int64_t *mask_row_offsets, int causal, int64_t q_len, float scale);
    int (*layer_norm)(const float *x, const float *w, const float *b, float *out,
                      int64_t rows, int64_t n, float eps);
    int (*rms_norm)(const float *x, const float *w, float *out, int64_t rows, int64_t n,
                    float eps);
    int (*attention)(const float *q, const float *k, const float *v, float *out,
                     int64_t batch, int64_t hq, int64_t hkv, int64_t sq, int64_t sk,
                     int64_t d, int64_t dv, const float *mask, const int64_t *mask_strides,
                     int causal, float scale, const int64_t *strides /* NULL: dense */);
    int (*pack_weight)(const float *w, int64_t n, int64_t k, float *packed);
    int (*linear_packed)(const float *x, const float *packed, const float *bias,
                         const float *residual, float *out, int64_t m, int64_t n, int64_t k,
                         int act);
    int (*linear_int8_dynamic)(const float *x, const int8_t *q, const int16_t *panels,
                               const float *scales, const float *bias, float *out, int64_t m,
                               int64_t n, int64_t k, int act);
    int64_t (*int8_panel_elems)(int64_t n, int64_t k);
    int (*pack_int8_weight)(const int8_t *q, int64_t n, int64_t k, int16_t *panels);
    int (*quantize_rows_int8)(const float *x, int8_t *xq, float *xs, int64_t m, int64_t k);
    int (*conv2d)(const float *x, const float *w, const float *bias, float *out,
                  int64_t batch, int64_t c_in, int64_t h, int64_t w_in, int64_t c_out,
                  int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                  int64_t dh, int64_t dw, int64_t groups, int64_t oh, int64_t ow);
    int (*pool2d)(const float *x, float *out, int64_t planes, int64_t h, int64_t w,
                  int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                  int64_t oh, int64_t ow, int mode);
    int (*mean_pool)(const float *hidden, const float *mask, float *out, int64_t batch,
                     int64_t seq, int64_t dim);
    int (*l2_normalize)(const float *x, float *out, int64_t rows, int64_t n, float eps);
    double (*fma_loop)(int64_t iterations); /* returns flops done (the sum defeats DCE) */
} skm_kernel_table;

/* Weight encodings for linear(): B = W^T with W [n, k]. */
#define SKM_W_F32 0
#define SKM_W_INT8 1 /* int8 [n, k], per-row scale */
#define SKM_W_Q4_0 2 /* uint8 [n, ceil(k/32), 16], scale per 32-value block */
#define SKM_W_Q8_0 3 /* int8 [n, ceil(k/32), 32], scale per 32-value block */

extern const skm_kernel_table skm_table_scalar;
extern const skm_kernel_table skm_table_avx2;
extern const skm_kernel_table skm_table_avx512;
extern const skm_kernel_table skm_table_neon;
#endif

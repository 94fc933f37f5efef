/* Public C API of the kernel library.  This file is also the cffi cdef (build_native.py reads
 * it verbatim), so it holds only plain declarations: no includes, no macros with bodies.
 *
 * Every kernel returns 0 or a negative SKM_E* code.  The Python wrappers check every argument
 * before calling; the C side still refuses nonsense sizes instead of touching memory.
 * Sizes are int64_t; arrays are dense row-major float32 unless said otherwise. */

#define SKM_OK 0
#define SKM_EINVAL -1
#define SKM_ENOMEM -2
#define SKM_EUNSUPPORTED -3

/* ISA ids; SKM_ISA_AUTO picks the best one the CPU supports. */
#define SKM_ISA_ID_AUTO -1
#define SKM_ISA_ID_SCALAR 0
#define SKM_ISA_ID_AVX2 1
#define SKM_ISA_ID_AVX512 2
#define SKM_ISA_ID_NEON 3

/* Epilogue activations for linear/matmul_int8/matmul_q4_0/matmul_q8_0 and the elementwise kernel. */
#define SKM_ACT_NONE 0
#define SKM_ACT_RELU 1
#define SKM_ACT_GELU_ERF 2
#define SKM_ACT_GELU_TANH 3
#define SKM_ACT_SILU 4
#define SKM_ACT_TANH 5

/* Pooling modes. */
#define SKM_POOL_MAX 0
#define SKM_POOL_AVG_INCLUDE_PAD 1
#define SKM_POOL_AVG_EXCLUDE_PAD 2

/* CPU feature bits reported by skm_cpu_features(). */
#define SKM_CPU_AVX2 1
#define SKM_CPU_FMA 2
#define SKM_CPU_AVX512F 4
#define SKM_CPU_NEON 8
#define SKM_CPU_AVX512BW 16
#define SKM_CPU_AVX512VNNI 32

/* Largest K of the int8 x int8 linear: K * 128 * 127 still fits the int32 accumulators. */
#define SKM_INT8_MAX_K 131072

/* ---- configuration ---- */
int skm_cpu_features(void);
int skm_compiled_isas(void);            /* bit (1 << isa) per ISA built into this library */
int skm_isa_supported(int isa);          /* compiled in and runnable on this CPU */
int skm_best_isa(void);
int skm_set_isa(int isa);                /* SKM_EUNSUPPORTED if the CPU/library lacks it */
int skm_active_isa(void);
int skm_set_num_threads(int n);
int skm_get_num_threads(void);
int skm_gemm_tile(int isa, int64_t *mr_nr);                 /* register tile MR, NR */
int skm_gemm_get_blocking(int isa, int64_t *mc_kc_nc);
int skm_gemm_set_blocking(int isa, int64_t mc, int64_t kc, int64_t nc);

/* Arena of per-thread scratch: kernels take and give back memory stack-wise; reset() between
 * inferences frees overflow blocks and consolidates so the next inference never mallocs. */
void skm_arena_reset(void);
void skm_arena_stats(int64_t *reserved_highwater_mallocs_blocks);

/* Peak FMA throughput: one FMA-only loop per thread; returns GFLOP/s over all threads. */
double skm_fma_peak_gflops(int64_t iterations_per_thread, int nthreads);

/* ---- kernels ---- */
/* c[i] = a[i] @ b[i] for i < batch, a[i] at a + a_offsets[i] stored [m, k] (or [k, m] when
 * a_trans), b[i] at b + b_offsets[i] stored [k, n] (or [n, k] when b_trans); c dense. */
int skm_matmul(int64_t batch, const float *a, const int64_t *a_offsets, int a_trans,
               const float *b, const int64_t *b_offsets, int b_trans, float *c, int64_t m,
               int64_t n, int64_t k);
int skm_linear(const float *x, const float *w, const float *bias, float *out, int64_t m,
               int64_t n, int64_t k, int act);
int skm_linear_int8(const float *x, const int8_t *q, const float *scales, const float *bias,
                    float *out, int64_t m, int64_t n, int64_t k, int act);
int skm_linear_q4_0(const float *x, const uint8_t *q, const float *scales, const float *bias,
                    float *out, int64_t m, int64_t n, int64_t k, int act);
/* q int8 [n, ceil(k/32), 32] and scales [n, ceil(k/32)] as skm_quantize_q8_0 writes them. */
int skm_linear_q8_0(const float *x, const int8_t *q, const float *scales, const float *bias,
                    float *out, int64_t m, int64_t n, int64_t k, int act);
/* int8 x int8 linear with x quantized per row (token) at run time: xs[i] = max|x[i,:]| / 127,
 * xq = rint(clamp(x / xs, -127, 127)) (half to even), acc = xq q^T in int32 (exact), out =
 * act(acc * xs[i] * scales[j] + bias[j]).  A zero row gives act(bias); a row with NaN/inf
 * gives NaN.  q int8 [n, k] as quantize_int8 writes it; k <= SKM_INT8_MAX_K.  panels: NULL,
 * or q repacked once by skm_pack_int8_weight for ISA panels_isa (SKM_EINVAL if that is not
 * the active ISA); q is passed either way. */
int skm_linear_int8_dynamic(const float *x, const int8_t *q, const int16_t *panels,
                            int panels_isa, const float *scales, const float *bias, float *out,
                            int64_t m, int64_t n, int64_t k, int act);
/* int16 elements of the panels skm_pack_int8_weight writes for this ISA; 0 when its int8
 * path reads q as it lies (then there is nothing to pack). */
int64_t skm_int8_panel_elems(int isa, int64_t n, int64_t k);
int skm_pack_int8_weight(int isa, const int8_t *q, int64_t n, int64_t k, int16_t *panels);
/* The activation quantization above alone: xq int8 [rows, cols], xs float [rows]. */
int skm_quantize_rows_int8(const float *x, int8_t *xq, float *xs, int64_t rows, int64_t cols);
int skm_quantize_int8(const float *w, int8_t *q, float *scales, int64_t rows, int64_t cols);
int skm_quantize_q4_0(const float *w, uint8_t *q, float *scales, int64_t rows, int64_t cols);
int skm_quantize_q8_0(const float *w, int8_t *q, float *scales, int64_t rows, int64_t cols);
int skm_activation(const float *x, float *out, int64_t n, int act);
int skm_add(const float *a, const float *b, float *out, int64_t rows, int64_t n,
            int b_is_row);
int skm_softmax(const float *x, float *out, int64_t rows, int64_t n, const float *mask,
                const int64_t *mask_row_offsets, int causal, int64_t q_len, float scale);
int skm_layer_norm(const float *x, const float *weight, const float *bias, float *out,
                   int64_t rows, int64_t n, float eps);
int skm_rms_norm(const float *x, const float *weight, float *out, int64_t rows, int64_t n,
                 float eps);
int skm_attention(const float *q, const float *k, const float *v, float *out, int64_t batch,
                  int64_t heads_q, int64_t heads_kv, int64_t len_q, int64_t len_k,
                  int64_t dim, int64_t dim_v, const float *mask, const int64_t *mask_strides,
                  int causal, float scale);
/* The same over strided heads: strides holds 12 element strides, (batch, head, row) for q,
 * k, v and out in that order; the last dim of each is contiguous. */
int skm_attention_strided(const float *q, const float *k, const float *v, float *out,
                          const int64_t *strides, int64_t batch, int64_t heads_q,
                          int64_t heads_kv, int64_t len_q, int64_t len_k, int64_t dim,
                          int64_t dim_v, const float *mask, const int64_t *mask_strides,
                          int causal, float scale);
/* Pre-packed linear weights: W [n, k] packed once for one ISA's GEMM micro-panels, then
 * out = act(x W^T + bias) + residual (residual may be NULL; it must not alias out).
 * skm_linear_packed refuses (SKM_EINVAL) a weight packed for another ISA than the active. */
int64_t skm_packed_weight_floats(int isa, int64_t n, int64_t k);
int skm_pack_linear_weight(int isa, const float *w, int64_t n, int64_t k, float *packed);
int skm_linear_packed(int isa, const float *x, const float *packed, const float *bias,
                      const float *residual, float *out, int64_t m, int64_t n, int64_t k,
                      int act);
int skm_embedding(const int64_t *ids, int64_t n_ids, const float *table, int64_t vocab,
                  int64_t dim, float *out);
int skm_conv2d(const float *x, const float *w, const float *bias, float *out, int64_t batch,
               int64_t c_in, int64_t h, int64_t w_in, int64_t c_out, int64_t kh, int64_t kw,
               int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
               int64_t dil_h, int64_t dil_w, int64_t groups, int64_t out_h, int64_t out_w);
int skm_pool2d(const float *x, float *out, int64_t planes, int64_t h, int64_t w, int64_t kh,
               int64_t kw, int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
               int64_t out_h, int64_t out_w, int mode);
int skm_mean_pool(const float *hidden, const float *mask, float *out, int64_t batch,
                  int64_t seq, int64_t dim);
int skm_l2_normalize(const float *x, float *out, int64_t rows, int64_t n, float eps);
int skm_topk(const float *x, float *values, int64_t *indices, int64_t rows, int64_t n,
             int64_t k);

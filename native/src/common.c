/* Kernels that gain nothing from SIMD (gathers, selection, one-off quantization): written
 * once in plain C, shared by every ISA, and free of the pool/arena so they take no lock. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "skm.h"

int skm_embedding(const int64_t *ids, int64_t n_ids, const float *table, int64_t vocab,
                  int64_t dim, float *out) {
    if (n_ids < 0 || vocab < 0 || dim < 0) return SKM_EINVAL;
    for (int64_t i = 0; i < n_ids; i++) /* re-checked: an out-of-range id must never read */
        if (ids[i] < 0 || ids[i] >= vocab) return SKM_EINVAL;
    for (int64_t i = 0; i < n_ids; i++)
        memcpy(out + i * dim, table + ids[i] * dim, (size_t)dim * sizeof(float));
    return SKM_OK;
}

/* Ordering for top-k: NaN ranks above every number (as torch.topk), ties go to the lower
 * index so results are deterministic. */
static int better(float a, int64_t ia, float b, int64_t ib) {
    int na = a != a, nb = b != b;
    if (na != nb) return na;
    if (!na && a != b) return a > b;
    return ia < ib;
}

static void sift_down(float *v, int64_t *ix, int64_t k, int64_t i) {
    for (;;) { /* min-heap on "better": the root is the worst element kept */
        int64_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < k && better(v[w], ix[w], v[l], ix[l])) w = l;
        if (r < k && better(v[w], ix[w], v[r], ix[r])) w = r;
        if (w == i) return;
        float tv = v[i];
        int64_t ti = ix[i];
        v[i] = v[w], ix[i] = ix[w], v[w] = tv, ix[w] = ti;
        i = w;
    }
}

int skm_topk(const float *x, float *values, int64_t *indices, int64_t rows, int64_t n,
             int64_t k) {
    if (rows < 0 || n < 0 || k < 0 || k > n) return SKM_EINVAL;
    if (k == 0) return SKM_OK;
    for (int64_t r = 0; r < rows; r++) {
        const float *row = x + r * n;
        float *v = values + r * k;
        int64_t *ix = indices + r * k;
        for (int64_t j = 0; j < k; j++) v[j] = row[j], ix[j] = j;
        for (int64_t j = k / 2 - 1; j >= 0; j--) sift_down(v, ix, k, j);
        for (int64_t j = k; j < n; j++)
            if (better(row[j], j, v[0], ix[0])) {
                v[0] = row[j], ix[0] = j;
                sift_down(v, ix, k, 0);
            }
        /* heap-sort in place: repeatedly move the worst to the end -> best first */
        for (int64_t end = k - 1; end > 0; end--) {
            float tv = v[0];
            int64_t ti = ix[0];
            v[0] = v[end], ix[0] = ix[end], v[end] = tv, ix[end] = ti;
            sift_down(v, ix, end, 0);
        }
    }
    return SKM_OK;
}

/* Symmetric per-output-channel int8: scale = max|w| / 127, q = round(w / scale). */
int skm_quantize_int8(const float *w, int8_t *q, float *scales, int64_t rows, int64_t cols) {
    if (rows < 0 || cols < 0) return SKM_EINVAL;
    for (int64_t r = 0; r < rows; r++) {
        const float *row = w + r * cols;
        float amax = 0.0f;
        for (int64_t j = 0; j < cols; j++) amax = fmaxf(amax, fabsf(row[j]));
        float scale = amax / 127.0f, inv = amax > 0.0f ? 127.0f / amax : 0.0f;
        scales[r] = scale;
        for (int64_t j = 0; j < cols; j++) {
            float v = nearbyintf(row[j] * inv);
            q[r * cols + j] = (int8_t)(v > 127.0f ? 127.0f : (v < -127.0f ? -127.0f : v));
        }
    }
    return SKM_OK;
}

/* Q4_0-style blocks of 32 values with one fp32 scale.  The scale is the signed value of
 * largest magnitude divided by -8, so that value is exact and the 16 levels (q - 8) * d span
 * [-8d, 7d].  Value v of a block sits in byte v/2, low nibble first; a short last block is
 * padded with zeros. */
int skm_quantize_q4_0(const float *w, uint8_t *q, float *scales, int64_t rows, int64_t cols) {
    if (rows < 0 || cols < 0) return SKM_EINVAL;
    int64_t blocks = (cols + 31) / 32;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t b = 0; b < blocks; b++) {
            float vals[32] = {0}, m = 0.0f;
            int64_t cnt = cols - b * 32 < 32 ? cols - b * 32 : 32;
            memcpy(vals, w + r * cols + b * 32, (size_t)cnt * sizeof(float));
            for (int i = 0; i < 32; i++)
                if (fabsf(vals[i]) > fabsf(m)) m = vals[i];
            float d = m / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
            scales[r * blocks + b] = d;
            uint8_t *dst = q + (r * blocks + b) * 16;
            for (int i = 0; i < 16; i++) {
                int lo = (int)(vals[2 * i] * id + 8.5f), hi = (int)(vals[2 * i + 1] * id + 8.5f);
                lo = lo > 15 ? 15 : (lo < 0 ? 0 : lo);
                hi = hi > 15 ? 15 : (hi < 0 ? 0 : hi);
                dst[i] = (uint8_t)(lo | (hi << 4));
            }
        }
    return SKM_OK;
}

/* Q8_0-style blocks of 32 int8 values with one fp32 scale: scale = max|x| / 127 per block,
 * q = round(x / scale) (half to even, like quantize_int8), so the levels are symmetric and the
 * largest value of each block is exact.  A short last block is padded with zeros. */
int skm_quantize_q8_0(const float *w, int8_t *q, float *scales, int64_t rows, int64_t cols) {
    if (rows < 0 || cols < 0) return SKM_EINVAL;
    int64_t blocks = (cols + 31) / 32;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t b = 0; b < blocks; b++) {
            float vals[32] = {0}, amax = 0.0f;
            int64_t cnt = cols - b * 32 < 32 ? cols - b * 32 : 32;
            memcpy(vals, w + r * cols + b * 32, (size_t)cnt * sizeof(float));
            for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(vals[i]));
            float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
            scales[r * blocks + b] = amax / 127.0f;
            int8_t *dst = q + (r * blocks + b) * 32;
            for (int i = 0; i < 32; i++) {
                float v = nearbyintf(vals[i] * inv);
                dst[i] = (int8_t)(v > 127.0f ? 127.0f : (v < -127.0f ? -127.0f : v));
            }
        }
    return SKM_OK;
}

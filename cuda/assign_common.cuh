/* assign_common.cuh : device pieces shared by the assignment kernels
 * (argmax_c x . w_c + b_c on fp16 tensor cores): k_assign (mma.sync, every
 * architecture, cuda/plan_cuda.cu) and k_assign90 (wgmma, sm_90a,
 * cuda/assign_sm90.cu): copies, the fp16 conversion of the rows, the packed-key
 * running top-2 and the near-tie refinement. */
#ifndef SVOO_ASSIGN_COMMON_CUH
#define SVOO_ASSIGN_COMMON_CUH

#include "cuda_common.h"

#include <math.h>

__device__ __forceinline__ uint32_t smem_u32(const void *p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}
/* 16 bytes global -> shared; src_bytes < 16 fills the rest with zeros */
__device__ __forceinline__ void cp_async16(void *dst, const void *src, int src_bytes = 16) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(dst)), "l"(src),
                 "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() {
    asm volatile("cp.async.commit_group;\n" ::);
}
template <int N> __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}
__device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p)));
}

/* x -> fp16 for the mma: values saturate at +-65504 (an Inf score would pack
 * to a NaN key, pack_key); NaN becomes -65504 (fmaxf) */
__device__ __forceinline__ __half sat_half(float v) {
    return __float2half_rn(fminf(fmaxf(v, -65504.f), 65504.f));
}
__device__ __forceinline__ uint32_t sat_half2(float2 f) {
    __half2 h = __halves2half2(sat_half(f.x), sat_half(f.y));
    return *(uint32_t *)&h;
}
/* f32 rows: 8 consecutive elements -> 8 halves, converted before the store to
 * shared memory (16-byte aligned source) */
__device__ __forceinline__ uint4 load8_half(const float *p) {
    float4 a = *(const float4 *)p, b = *(const float4 *)(p + 4);
    return make_uint4(sat_half2(make_float2(a.x, a.y)), sat_half2(make_float2(a.z, a.w)),
                      sat_half2(make_float2(b.x, b.y)), sat_half2(make_float2(b.z, b.w)));
}
/* 2-byte rows are copied raw (cp.async) and converted as fragments, two
 * elements per register; f32 rows are fp16 in shared memory already */
__device__ __forceinline__ uint32_t frag_half(uint32_t u, float) {
    return u;
}
__device__ __forceinline__ uint32_t frag_half(uint32_t u, __half) {
    return sat_half2(__half22float2(*(__half2 *)&u));
}
__device__ __forceinline__ uint32_t frag_half(uint32_t u, __nv_bfloat16) {
    return sat_half2(__bfloat1622float2(*(__nv_bfloat162 *)&u));
}

__device__ __forceinline__ bool better(float a, int ia, float b, int ib) {
    return a > b || (a == b && ia < ib);
}
/* merges the top-2 list of lane ^ o into this lane's (lists sorted by `better`) */
__device__ __forceinline__ void top2_merge(unsigned mask, int o, float &b1, int &i1, float &b2,
                                           int &i2) {
    float o1 = __shfl_xor_sync(mask, b1, o), o2 = __shfl_xor_sync(mask, b2, o);
    int oi1 = __shfl_xor_sync(mask, i1, o), oi2 = __shfl_xor_sync(mask, i2, o);
    if (better(o1, oi1, b1, i1)) {
        if (better(b1, i1, o2, oi2)) {
            b2 = b1;
            i2 = i1;
        } else {
            b2 = o2;
            i2 = oi2;
        }
        b1 = o1;
        i1 = oi1;
    } else if (better(o1, oi1, b2, i2)) {
        b2 = o1;
        i2 = oi1;
    }
}

/* Branch-free running top-2: each score is packed with its slot in this
 * lane's column stream (s = chunk * 8 + 2 f + j, stored as M - s) in its low
 * IB mantissa bits, so keys are distinct and best / second are plain float
 * max / min (3 ops per score, no index select). Truncation moves a score by
 * less than 2^(IB - 23) of its magnitude; refine_row widens its window by it. */
__device__ __forceinline__ float pack_key(float s, uint32_t keep, uint32_t code) {
    return __uint_as_float((__float_as_uint(s) & keep) | code);
}
__device__ __forceinline__ void top2_key(float k, float &b1, float &b2) {
    const float t = fminf(b1, k);
    b1 = fmaxf(b1, k);
    b2 = fmaxf(b2, t);
}
/* key -> cluster index (0x7fffffff for the -inf start value) */
__device__ __forceinline__ int key_index(float k, uint32_t m, int t4) {
    if (!(k > -INFINITY)) return 0x7fffffff;
    const uint32_t s = m - (__float_as_uint(k) & m);
    return (int)((s >> 3) * 32 + ((s >> 1) & 3) * 8 + 2 * t4 + (s & 1));
}

/* The fp16 weights make each score wrong by at most 2^-11 sum_j |x_j| (max |w|
 * = 1); when the best two are closer than twice that (plus the key
 * truncation, trunc * (|b1| + |b2|)), both are re-scored in f32 from the
 * unrounded weights, so labels match an f32 argmax. The assignment kernels
 * only mark such rows (label = -(1 + i1 + 32768 i2), c <= 32768): k_refine
 * re-scores them afterwards (eight lanes per row), so no block waits on those
 * loads. Larger c: re-scored in place (refine_row). */
enum { REFINE_MAX_C = 32768 };
template <typename T>
__device__ __forceinline__ int refine_row(const svoo_dview &x, int bh, int64_t row, int D, int i1,
                                          int i2, const float *__restrict__ wf,
                                          const float *__restrict__ bias, int c, int t4,
                                          unsigned qmask) {
    const T *xr = dv_row<T>(x, bh, row);
    const float *w1 = wf + ((size_t)bh * c + i1) * D, *w2 = wf + ((size_t)bh * c + i2) * D;
    float d1 = 0.f, d2 = 0.f;
    for (int j = t4; j < D; j += 4) {
        float xv = to_f(xr[j]);
        d1 = fmaf(xv, w1[j], d1);
        d2 = fmaf(xv, w2[j], d2);
    }
    d1 += __shfl_xor_sync(qmask, d1, 1);
    d1 += __shfl_xor_sync(qmask, d1, 2);
    d2 += __shfl_xor_sync(qmask, d2, 1);
    d2 += __shfl_xor_sync(qmask, d2, 2);
    float s1 = d1 + bias[(size_t)bh * c + i1], s2 = d2 + bias[(size_t)bh * c + i2];
    return better(s2, i2, s1, i1) ? i2 : i1;
}
/* the label of a row from its quad-merged top-2 (all four lanes of the quad
 * call it; lane t4 == 0 stores); sa: |x|^2 of the fp16 row over the quad */
template <typename T>
__device__ __forceinline__ void finish_row(const svoo_dview &x, int bh, int64_t row, int64_t n,
                                           float sa, int D, float b1, int i1, float b2, int i2,
                                           float trunc, const float *__restrict__ wf,
                                           const float *__restrict__ bias, int c, float gap, int t4,
                                           unsigned qmask, int32_t *__restrict__ label) {
    int l = i1 < c ? i1 : 0; /* all-NaN row: cluster 0 */
    /* each w_j is off by at most 2^-11 |w_j| <= 2^-11: the difference of two
     * scores has a standard deviation below 0.82 * 2^-11 |x|; refine within
     * 8 of them */
    if (i1 < c && i2 < c && b1 - b2 <= gap &&
        b1 - b2 <= 0x1p-8f * 0.82f * sqrtf(sa) + trunc * (fabsf(b1) + fabsf(b2))) {
        if (c <= REFINE_MAX_C)
            l = -(1 + i1 + REFINE_MAX_C * i2);
        else
            l = refine_row<T>(x, bh, row, D, i1, i2, wf, bias, c, t4, qmask);
    }
    if (t4 == 0) label[(size_t)bh * n + row] = l;
}

#endif

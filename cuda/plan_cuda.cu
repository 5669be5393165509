/* plan_cuda.cu : SVOO co-clustering (Gram re-association), SVG2 k-means,
 * top-p + floor selection and permutation indices on the GPU, batched over
 * all (b, h) of a call. Mirrors src/plan/{common,cocluster,kmeans,select}.c:
 * the same sampled initial centroids (splitmix64), the same stable counting
 * sort, centroid sums in double in the same token order; assignments run on
 * tensor cores (fp16 mma, f32 accumulate, weights scaled to max |w| = 1),
 * fused with the argmax so the N x C score matrix is never written. */
#include "plan_cuda.h"

#include <float.h>
#include <math.h>

#define LAUNCH_CHECK() return cudaGetLastError()

/* ---------------------------------------------------------------------- */
/* sampled initialisation                                                  */
/* ---------------------------------------------------------------------- */
/* The CPU draws j_r = r + rng_r % (n - r) and swaps idx[r] <-> idx[j_r] for
 * r = 0..c-1 (partial Fisher-Yates); mu[r] = x[idx[r]]. splitmix64 is
 * counter-based, so every j_r is computed in parallel; the value at position
 * p before step r is traced back through the last earlier swap that wrote p. */
template <typename T>
__global__ void k_init_samples(svoo_dview x, int64_t n, int d, int c, uint64_t cfg_seed, int layer,
                               int step, uint64_t xr, float *__restrict__ mu) {
    extern __shared__ int32_t s_j[]; /* [c] then idx [c] */
    int32_t *s_idx = s_j + c;
    const int bh = blockIdx.x, h = bh % x.H;
    uint64_t s = cfg_seed ^ ((uint64_t)layer << 40) ^ ((uint64_t)h << 20) ^ (uint64_t)step;
    const uint64_t seed = svoo_cu_rng(&s) ^ xr;
    for (int r = threadIdx.x; r < c; r += blockDim.x) {
        uint64_t st = seed + (uint64_t)r * 0x9e3779b97f4a7c15ull;
        s_j[r] = (int32_t)(r + (int64_t)(svoo_cu_rng(&st) % (uint64_t)(n - r)));
    }
    __syncthreads();
    for (int r = threadIdx.x; r < c; r += blockDim.x) {
        int32_t p = s_j[r];
        int rr = r;
        for (;;) {
            int t = rr - 1;
            while (t >= 0 && s_j[t] != p) t--;
            if (t < 0) break;
            p = t; /* position t held, before step t, the value then moved to p */
            rr = t;
        }
        s_idx[r] = p;
    }
    __syncthreads();
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nw = blockDim.x / 32;
    for (int r = warp; r < c; r += nw) {
        const T *src = dv_row<T>(x, bh, s_idx[r]);
        float *dst = mu + ((size_t)bh * c + r) * d;
        for (int i = lane; i < d; i += 32) dst[i] = to_f(src[i]);
    }
}

cudaError_t svoo_cu_init_samples(int dtype, svoo_dview x, int BH, int64_t n, int d, int c,
                                 uint64_t cfg_seed, int layer, int step, uint64_t xr, float *mu,
                                 cudaStream_t st) {
    size_t sm = (size_t)c * 2 * sizeof(int32_t);
    if (dtype == 0)
        k_init_samples<float><<<BH, 1024, sm, st>>>(x, n, d, c, cfg_seed, layer, step, xr, mu);
    else if (dtype == 1)
        k_init_samples<__half><<<BH, 1024, sm, st>>>(x, n, d, c, cfg_seed, layer, step, xr, mu);
    else
        k_init_samples<__nv_bfloat16><<<BH, 1024, sm, st>>>(x, n, d, c, cfg_seed, layer, step, xr,
                                                             mu);
    LAUNCH_CHECK();
}

/* ---------------------------------------------------------------------- */
/* small batched f32 GEMM (centroid-sized operands only)                   */
/* ---------------------------------------------------------------------- */
template <bool TA, bool TB>
__global__ void __launch_bounds__(256) k_gemm(const float *__restrict__ A, const float *__restrict__ B,
                                              float *__restrict__ C, int M, int N, int K, float alpha,
                                              int64_t sa, int64_t sb, int64_t sc) {
    __shared__ float As[16][64 + 4], Bs[16][64 + 4];
    const int bh = blockIdx.z, m0 = blockIdx.y * 64, n0 = blockIdx.x * 64;
    A += bh * sa;
    B += bh * sb;
    C += bh * sc;
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    float acc[4][4] = {};
    for (int k0 = 0; k0 < K; k0 += 16) {
        for (int i = threadIdx.x; i < 64 * 16; i += 256) {
            int mm, kk;
            if (TA) { /* A is K x M: read along m */
                mm = i % 64;
                kk = i / 64;
            } else {
                kk = i % 16;
                mm = i / 16;
            }
            int m = m0 + mm, k = k0 + kk;
            As[kk][mm] = (m < M && k < K) ? (TA ? A[(int64_t)k * M + m] : A[(int64_t)m * K + k]) : 0.f;
            int nn = TB ? i % 64 : i / 16, kb = TB ? i / 64 : i % 16;
            int n = n0 + nn, k2 = k0 + kb;
            Bs[kb][nn] = (n < N && k2 < K) ? (TB ? B[(int64_t)k2 * N + n] : B[(int64_t)n * K + k2]) : 0.f;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < 16; kk++) {
            float a[4], b[4];
#pragma unroll
            for (int i = 0; i < 4; i++) a[i] = As[kk][ty + 16 * i];
#pragma unroll
            for (int j = 0; j < 4; j++) b[j] = Bs[kk][tx + 16 * j];
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) {
            int m = m0 + ty + 16 * i, n = n0 + tx + 16 * j;
            if (m < M && n < N) C[(int64_t)m * N + n] = alpha * acc[i][j];
        }
}

cudaError_t svoo_cu_gemm(int ta, int tb, const float *A, const float *B, float *C, int BH, int M,
                         int N, int K, float alpha, int64_t sa, int64_t sb, int64_t sc,
                         cudaStream_t st) {
    dim3 grid((N + 63) / 64, (M + 63) / 64, BH);
    if (ta && tb)
        k_gemm<true, true><<<grid, 256, 0, st>>>(A, B, C, M, N, K, alpha, sa, sb, sc);
    else if (ta)
        k_gemm<true, false><<<grid, 256, 0, st>>>(A, B, C, M, N, K, alpha, sa, sb, sc);
    else if (tb)
        k_gemm<false, true><<<grid, 256, 0, st>>>(A, B, C, M, N, K, alpha, sa, sb, sc);
    else
        k_gemm<false, false><<<grid, 256, 0, st>>>(A, B, C, M, N, K, alpha, sa, sb, sc);
    LAUNCH_CHECK();
}

/* ---------------------------------------------------------------------- */
/* assignment weights                                                      */
/* ---------------------------------------------------------------------- */
/* one warp per cluster: normalise (Gram) or copy + bias (k-means), max |w| */
__global__ void k_weights_post(int gram, const float *__restrict__ mu, float *__restrict__ wf, int c,
                               int d, unsigned *__restrict__ wmax, float *__restrict__ bias) {
    const int bh = blockIdx.y, lane = threadIdx.x % 32;
    const int r = blockIdx.x * 8 + threadIdx.x / 32;
    float amax = 0.f;
    if (r < c) {
        const float *m = mu + ((size_t)bh * c + r) * d;
        float *w = wf + ((size_t)bh * c + r) * d;
        double nn = 0;
        if (gram) {
            for (int i = lane; i < d; i += 32) nn += (double)m[i] * w[i];
        } else {
            for (int i = lane; i < d; i += 32) nn += (double)m[i] * m[i];
        }
        for (int o = 16; o; o >>= 1) nn += __shfl_xor_sync(0xffffffffu, nn, o);
        if (gram) {
            float inv = nn > 1e-30 ? (float)(1.0 / sqrt(nn)) : 0.0f;
            for (int i = lane; i < d; i += 32) {
                float v = w[i] * inv;
                w[i] = v;
                amax = fmaxf(amax, fabsf(v));
            }
            if (lane == 0) bias[(size_t)bh * c + r] = 0.f;
        } else {
            for (int i = lane; i < d; i += 32) {
                float v = m[i];
                w[i] = v;
                amax = fmaxf(amax, fabsf(v));
            }
            if (lane == 0) bias[(size_t)bh * c + r] = (float)(-0.5 * nn);
        }
    }
    for (int o = 16; o; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    if (lane == 0 && amax > 0.f && amax <= FLT_MAX) atomicMax(wmax + bh, __float_as_uint(amax));
}

__global__ void k_weights_half(const float *__restrict__ wf, int c, int cpad, int d,
                               const unsigned *__restrict__ wmax, const float *__restrict__ bias,
                               __half *__restrict__ wh, float *__restrict__ bias_h) {
    const int bh = blockIdx.y;
    const float mx = __uint_as_float(wmax[bh]);
    const float s = mx > 0.f ? 1.0f / mx : 1.0f;
    const int64_t total = (int64_t)cpad * d;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / d;
        wh[(size_t)bh * total + i] = __float2half_rn(r < c ? wf[(size_t)bh * c * d + i] * s : 0.f);
        if (i % d == 0) bias_h[(size_t)bh * cpad + r] = r < c ? bias[(size_t)bh * c + r] * s : -INFINITY;
    }
}

cudaError_t svoo_cu_weights(int gram, const float *mu, float *wf, int BH, int c, int cpad, int d,
                            unsigned *wmax, float *bias, __half *wh, float *bias_h,
                            cudaStream_t st) {
    cudaError_t e = cudaMemsetAsync(wmax, 0, (size_t)BH * sizeof(unsigned), st);
    if (e) return e;
    k_weights_post<<<dim3((c + 7) / 8, BH), 256, 0, st>>>(gram, mu, wf, c, d, wmax, bias);
    int blocks = (int)(((int64_t)cpad * d + 255) / 256);
    if (blocks > 256) blocks = 256;
    k_weights_half<<<dim3(blocks, BH), 256, 0, st>>>(wf, c, cpad, d, wmax, bias, wh, bias_h);
    LAUNCH_CHECK();
}

/* ---------------------------------------------------------------------- */
/* fused GEMM + argmax on tensor cores                                     */
/* ---------------------------------------------------------------------- */
__device__ __forceinline__ uint32_t smem_u32(const void *p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}
__device__ __forceinline__ void cp_async16(void *dst, const void *src) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_u32(dst)), "l"(src));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}
__device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p)));
}
__device__ __forceinline__ void mma16816(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, "
                 "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ __half sat_half(float v) {
    return __float2half_rn(fminf(fmaxf(v, -65504.f), 65504.f));
}
/* 8 consecutive elements -> 8 halves (16-byte aligned source) */
__device__ __forceinline__ uint4 load8_half(const float *p) {
    float4 a = *(const float4 *)p, b = *(const float4 *)(p + 4);
    __half2 h[4] = {__halves2half2(sat_half(a.x), sat_half(a.y)), __halves2half2(sat_half(a.z), sat_half(a.w)),
                    __halves2half2(sat_half(b.x), sat_half(b.y)), __halves2half2(sat_half(b.z), sat_half(b.w))};
    return *(uint4 *)h;
}
__device__ __forceinline__ uint4 load8_half(const __half *p) { return *(const uint4 *)p; }
__device__ __forceinline__ uint4 load8_half(const __nv_bfloat16 *p) {
    uint4 u = *(const uint4 *)p;
    const __nv_bfloat162 *b = (const __nv_bfloat162 *)&u;
    __half2 h[4];
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float2 f = __bfloat1622float2(b[i]);
        h[i] = __halves2half2(sat_half(f.x), sat_half(f.y));
    }
    return *(uint4 *)h;
}

template <int D> struct assign_smem {
    static constexpr int LD = D + 8; /* halves: ldmatrix rows land on distinct banks */
    static constexpr size_t bytes =
        (size_t)(SVOO_CU_TILE * LD * 3) * sizeof(__half) + 2 * SVOO_CU_TILE * sizeof(float);
};

template <typename T, int D>
__global__ void __launch_bounds__(256) k_assign(svoo_dview x, int64_t n, const __half *__restrict__ wh,
                                                const float *__restrict__ bias_h, int cpad,
                                                int32_t *__restrict__ label) {
    constexpr int BM = SVOO_CU_TILE, BN = SVOO_CU_TILE, LD = assign_smem<D>::LD, CH = D / 8;
    extern __shared__ __align__(16) unsigned char smem[];
    __half *sA = (__half *)smem;
    __half *sB = sA + BM * LD;
    float *sBias = (float *)(sB + 2 * BN * LD);
    const int bh = blockIdx.y, tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int64_t row0 = (int64_t)blockIdx.x * BM;
    const __half *W = wh + (size_t)bh * cpad * D;
    const float *bb = bias_h + (size_t)bh * cpad;
    const int ntiles = cpad / BN;

    auto load_b = [&](int t, int buf) {
        const __half *src = W + (size_t)t * BN * D;
        __half *dst = sB + buf * BN * LD;
        for (int i = tid; i < BN * CH; i += 256) {
            int r = i / CH, cc = i % CH;
            cp_async16(dst + r * LD + cc * 8, src + (size_t)r * D + cc * 8);
        }
        if (tid < BN / 4) cp_async16(sBias + buf * BN + tid * 4, bb + t * BN + tid * 4);
        cp_async_commit();
    };
    load_b(0, 0);
    for (int i = tid; i < BM * CH; i += 256) {
        int r = i / CH, cc = i % CH;
        int64_t row = row0 + r;
        uint4 v = make_uint4(0, 0, 0, 0);
        if (row < n) v = load8_half(dv_row<T>(x, bh, row) + cc * 8);
        *(uint4 *)(sA + r * LD + cc * 8) = v;
    }
    __syncthreads();
    uint32_t af[D / 16][4];
#pragma unroll
    for (int ks = 0; ks < D / 16; ks++)
        ldmatrix_x4(af[ks], sA + (warp * 16 + (lane % 16)) * LD + ks * 16 + (lane / 16) * 8);

    const int t4 = lane % 4;
    float best0 = -INFINITY, best1 = -INFINITY;
    int bi0 = 0x7fffffff, bi1 = 0x7fffffff;
    for (int t = 0; t < ntiles; t++) {
        if (t + 1 < ntiles) {
            load_b(t + 1, (t + 1) & 1);
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        const __half *Bt = sB + (t & 1) * BN * LD;
        const float *bs = sBias + (t & 1) * BN;
#pragma unroll 2
        for (int nc = 0; nc < BN / 16; nc++) {
            float acc[2][4] = {};
            const __half *bp = Bt + (nc * 16 + (lane / 16) * 8 + (lane % 8)) * LD + ((lane / 8) & 1) * 8;
#pragma unroll
            for (int ks = 0; ks < D / 16; ks++) {
                uint32_t b[4];
                ldmatrix_x4(b, bp + ks * 16);
                mma16816(acc[0], af[ks], b[0], b[1]);
                mma16816(acc[1], af[ks], b[2], b[3]);
            }
#pragma unroll
            for (int f = 0; f < 2; f++) {
                const int c0 = nc * 16 + f * 8 + 2 * t4, gc = t * BN + c0;
                const float b0 = bs[c0], b1 = bs[c0 + 1];
                float v0 = acc[f][0] + b0, v1 = acc[f][1] + b1;
                float v2 = acc[f][2] + b0, v3 = acc[f][3] + b1;
                if (v0 > best0) { best0 = v0; bi0 = gc; }
                if (v1 > best0) { best0 = v1; bi0 = gc + 1; }
                if (v2 > best1) { best1 = v2; bi1 = gc; }
                if (v3 > best1) { best1 = v3; bi1 = gc + 1; }
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (int o = 1; o < 4; o <<= 1) {
        float v = __shfl_xor_sync(0xffffffffu, best0, o);
        int i = __shfl_xor_sync(0xffffffffu, bi0, o);
        if (v > best0 || (v == best0 && i < bi0)) { best0 = v; bi0 = i; }
        v = __shfl_xor_sync(0xffffffffu, best1, o);
        i = __shfl_xor_sync(0xffffffffu, bi1, o);
        if (v > best1 || (v == best1 && i < bi1)) { best1 = v; bi1 = i; }
    }
    if (t4 == 0) {
        const int64_t r = row0 + warp * 16 + lane / 4;
        if (r < n) label[(size_t)bh * n + r] = bi0 < cpad ? bi0 : 0; /* all-NaN row: cluster 0 */
        if (r + 8 < n) label[(size_t)bh * n + r + 8] = bi1 < cpad ? bi1 : 0;
    }
}

template <int D> static cudaError_t setup_assign() {
    cudaError_t e;
    size_t sm = assign_smem<D>::bytes;
    if ((e = cudaFuncSetAttribute(k_assign<float, D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm)) ||
        (e = cudaFuncSetAttribute(k_assign<__half, D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm)) ||
        (e = cudaFuncSetAttribute(k_assign<__nv_bfloat16, D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  (int)sm)))
        return e;
    return cudaSuccess;
}

template <int D>
static void launch_assign(int dtype, svoo_dview x, int BH, int64_t n, const __half *wh, const float *bias_h,
                          int cpad, int32_t *label, cudaStream_t st) {
    dim3 grid((unsigned)((n + SVOO_CU_TILE - 1) / SVOO_CU_TILE), BH);
    size_t sm = assign_smem<D>::bytes;
    if (dtype == 0)
        k_assign<float, D><<<grid, 256, sm, st>>>(x, n, wh, bias_h, cpad, label);
    else if (dtype == 1)
        k_assign<__half, D><<<grid, 256, sm, st>>>(x, n, wh, bias_h, cpad, label);
    else
        k_assign<__nv_bfloat16, D><<<grid, 256, sm, st>>>(x, n, wh, bias_h, cpad, label);
}

cudaError_t svoo_cu_assign(int dtype, svoo_dview x, int BH, int64_t n, int d, const __half *wh,
                           const float *bias_h, int cpad, int32_t *label, cudaStream_t st) {
    if (d == 64)
        launch_assign<64>(dtype, x, BH, n, wh, bias_h, cpad, label, st);
    else
        launch_assign<128>(dtype, x, BH, n, wh, bias_h, cpad, label, st);
    LAUNCH_CHECK();
}

/* ---------------------------------------------------------------------- */
/* stable counting sort                                                    */
/* ---------------------------------------------------------------------- */
__global__ void k_hist(const int32_t *__restrict__ label, int64_t n, int c, int nch,
                       int32_t *__restrict__ hist) {
    extern __shared__ int32_t s_cnt[];
    const int bh = blockIdx.y, ch = blockIdx.x;
    for (int i = threadIdx.x; i < c; i += blockDim.x) s_cnt[i] = 0;
    __syncthreads();
    const int64_t i0 = (int64_t)ch * SVOO_CU_SORT_CHUNK;
    const int64_t i1 = i0 + SVOO_CU_SORT_CHUNK < n ? i0 + SVOO_CU_SORT_CHUNK : n;
    for (int64_t i = i0 + threadIdx.x; i < i1; i += blockDim.x) atomicAdd(&s_cnt[label[(size_t)bh * n + i]], 1);
    __syncthreads();
    int32_t *hrow = hist + ((size_t)bh * nch + ch) * c;
    for (int i = threadIdx.x; i < c; i += blockDim.x) hrow[i] = s_cnt[i];
}

/* per cluster: exclusive prefix over chunks; cluster offsets; cursors */
__global__ void __launch_bounds__(1024) k_sort_scan(int64_t n, int c, int nch, int32_t *__restrict__ hist,
                                                    int32_t *__restrict__ off) {
    extern __shared__ int32_t s_tot[];
    __shared__ int32_t s_warp[32];
    __shared__ int32_t s_carry;
    const int bh = blockIdx.x, tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    int32_t *hb = hist + (size_t)bh * nch * c;
    for (int cc = tid; cc < c; cc += blockDim.x) {
        int32_t run = 0;
        for (int ch = 0; ch < nch; ch++) {
            int32_t h = hb[(size_t)ch * c + cc];
            hb[(size_t)ch * c + cc] = run;
            run += h;
        }
        s_tot[cc] = run;
    }
    if (tid == 0) s_carry = 0;
    __syncthreads();
    int32_t *o = off + (size_t)bh * (c + 1);
    for (int base = 0; base < c; base += blockDim.x) {
        int cc = base + tid;
        int32_t v = cc < c ? s_tot[cc] : 0, incl = v;
        for (int d = 1; d < 32; d <<= 1) {
            int32_t u = __shfl_up_sync(0xffffffffu, incl, d);
            if (lane >= d) incl += u;
        }
        if (lane == 31) s_warp[warp] = incl;
        __syncthreads();
        if (warp == 0) {
            int32_t w = lane < (int)(blockDim.x / 32) ? s_warp[lane] : 0, wi = w;
            for (int d = 1; d < 32; d <<= 1) {
                int32_t u = __shfl_up_sync(0xffffffffu, wi, d);
                if (lane >= d) wi += u;
            }
            s_warp[lane] = wi - w;
        }
        __syncthreads();
        int32_t excl = s_carry + s_warp[warp] + incl - v;
        if (cc < c) {
            o[cc] = excl;
            s_tot[cc] = excl;
        }
        __syncthreads();
        if (tid == blockDim.x - 1) s_carry = excl + v;
        __syncthreads();
    }
    if (tid == 0) o[c] = (int32_t)n;
    for (int cc = tid; cc < c; cc += blockDim.x) {
        int32_t b = s_tot[cc];
        for (int ch = 0; ch < nch; ch++) hb[(size_t)ch * c + cc] += b;
    }
}

/* one warp per chunk, in token order: stable positions with match_any */
__global__ void k_sort_scatter(const int32_t *__restrict__ label, int64_t n, int c, int nch,
                               const int32_t *__restrict__ hist, int32_t *__restrict__ perm) {
    extern __shared__ int32_t s_cur[];
    const int bh = blockIdx.y, ch = blockIdx.x, lane = threadIdx.x;
    const int32_t *hrow = hist + ((size_t)bh * nch + ch) * c;
    for (int i = lane; i < c; i += 32) s_cur[i] = hrow[i];
    __syncwarp();
    const int64_t i0 = (int64_t)ch * SVOO_CU_SORT_CHUNK;
    const int64_t i1 = i0 + SVOO_CU_SORT_CHUNK < n ? i0 + SVOO_CU_SORT_CHUNK : n;
    const unsigned lt = (1u << lane) - 1;
    for (int64_t b = i0; b < i1; b += 32) {
        const int64_t i = b + lane;
        const int lab = i < i1 ? label[(size_t)bh * n + i] : -1 - lane;
        const unsigned peers = __match_any_sync(0xffffffffu, lab);
        if (i < i1) perm[(size_t)bh * n + s_cur[lab] + __popc(peers & lt)] = (int32_t)i;
        __syncwarp();
        if (i < i1 && (__ffs(peers) - 1) == lane) s_cur[lab] += __popc(peers);
        __syncwarp();
    }
}

cudaError_t svoo_cu_sort(const int32_t *label, int BH, int64_t n, int c, int32_t *hist, int32_t *perm,
                         int32_t *off, cudaStream_t st) {
    const int nch = (int)((n + SVOO_CU_SORT_CHUNK - 1) / SVOO_CU_SORT_CHUNK);
    const size_t sm = (size_t)c * sizeof(int32_t);
    k_hist<<<dim3(nch, BH), 256, sm, st>>>(label, n, c, nch, hist);
    k_sort_scan<<<BH, 1024, sm, st>>>(n, c, nch, hist, off);
    k_sort_scatter<<<dim3(nch, BH), 32, sm, st>>>(label, n, c, nch, hist, perm);
    LAUNCH_CHECK();
}

/* ---------------------------------------------------------------------- */
/* centroids: sums in double in token order (as the CPU), one block/cluster */
/* ---------------------------------------------------------------------- */
template <typename T>
__global__ void k_centroids(svoo_dview x, int64_t n, int d, int c, const int32_t *__restrict__ perm,
                            const int32_t *__restrict__ off, float *__restrict__ mu) {
    const int bh = blockIdx.y, r = blockIdx.x, j = threadIdx.x;
    const int32_t s = off[(size_t)bh * (c + 1) + r], e = off[(size_t)bh * (c + 1) + r + 1];
    if (e == s || j >= d) return; /* empty cluster keeps its centroid */
    const int32_t *p = perm + (size_t)bh * n;
    double acc = 0;
    int32_t i = s;
    for (; i + 4 <= e; i += 4) {
        int32_t r0 = p[i], r1 = p[i + 1], r2 = p[i + 2], r3 = p[i + 3];
        float a0 = to_f(dv_row<T>(x, bh, r0)[j]), a1 = to_f(dv_row<T>(x, bh, r1)[j]);
        float a2 = to_f(dv_row<T>(x, bh, r2)[j]), a3 = to_f(dv_row<T>(x, bh, r3)[j]);
        acc += a0;
        acc += a1;
        acc += a2;
        acc += a3;
    }
    for (; i < e; i++) acc += to_f(dv_row<T>(x, bh, p[i])[j]);
    mu[((size_t)bh * c + r) * d + j] = (float)(acc / (e - s));
}

cudaError_t svoo_cu_centroids(int dtype, svoo_dview x, int BH, int64_t n, int d, int c,
                              const int32_t *perm, const int32_t *off, float *mu, cudaStream_t st) {
    dim3 grid(c, BH);
    if (dtype == 0)
        k_centroids<float><<<grid, d, 0, st>>>(x, n, d, c, perm, off, mu);
    else if (dtype == 1)
        k_centroids<__half><<<grid, d, 0, st>>>(x, n, d, c, perm, off, mu);
    else
        k_centroids<__nv_bfloat16><<<grid, d, 0, st>>>(x, n, d, c, perm, off, mu);
    LAUNCH_CHECK();
}

/* ---------------------------------------------------------------------- */
/* top-p + floor selection                                                 */
/* ---------------------------------------------------------------------- */
enum { SEL_THREADS = 512 };

template <typename V> __device__ V block_sum(V v, V *s_red) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    __syncthreads();
    if (lane == 0) s_red[warp] = v;
    __syncthreads();
    V t = 0;
    for (int w = 0; w < (int)(blockDim.x / 32); w++) t += s_red[w];
    return t;
}

__global__ void __launch_bounds__(SEL_THREADS)
    k_select(const float *__restrict__ A, const int32_t *__restrict__ q_off, const int32_t *__restrict__ k_off,
             int H, int cq, int ck, int P, double top_p, svoo_cu_floor fl, int32_t *__restrict__ colbuf,
             int32_t *__restrict__ cnt, double *__restrict__ dens) {
    extern __shared__ __align__(16) unsigned char sm_raw[];
    float *sp = (float *)sm_raw;           /* [P] */
    int32_t *si = (int32_t *)(sp + P);     /* [P] */
    int32_t *sflag = si + P;               /* [ck] */
    __shared__ double s_redd[32];
    __shared__ float s_redf[32];
    __shared__ int s_keep;
    const int bh = blockIdx.y, r = blockIdx.x, tid = threadIdx.x;
    const float *ar = A + ((size_t)bh * cq + r) * ck;
    const int32_t *ko = k_off + (size_t)bh * (ck + 1);
    /* max over non-empty clusters */
    float mx = -INFINITY;
    for (int c = tid; c < ck; c += blockDim.x)
        if (ko[c + 1] > ko[c]) mx = fmaxf(mx, ar[c]);
    for (int o = 16; o; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    if (tid % 32 == 0) s_redf[tid / 32] = mx;
    __syncthreads();
    mx = -INFINITY;
    for (int w = 0; w < (int)(blockDim.x / 32); w++) mx = fmaxf(mx, s_redf[w]);
    int m_local = 0;
    for (int c = tid; c < P; c += blockDim.x) {
        float p = -1.f;
        if (c < ck) {
            int32_t w = ko[c + 1] - ko[c];
            if (w > 0) {
                p = (float)w * expf(ar[c] - mx);
                m_local++;
            }
            sflag[c] = 0;
        }
        sp[c] = p;
        si[c] = c;
    }
    const int m = (int)block_sum<double>((double)m_local, s_redd);
    /* bitonic sort: p descending, cluster index ascending on ties */
    for (int k = 2; k <= P; k <<= 1)
        for (int j = k >> 1; j > 0; j >>= 1) {
            __syncthreads();
            for (int i = tid; i < P; i += blockDim.x) {
                int l = i ^ j;
                if (l > i) {
                    float pi = sp[i], pl = sp[l];
                    int ii = si[i], il = si[l];
                    bool i_first = pi > pl || (pi == pl && ii < il); /* i precedes l */
                    bool up = (i & k) == 0;
                    if (up != i_first) {
                        sp[i] = pl;
                        sp[l] = pi;
                        si[i] = il;
                        si[l] = ii;
                    }
                }
            }
        }
    __syncthreads();
    /* cumulative mass in sorted order (double); each thread owns a segment */
    const int seg = (P + blockDim.x - 1) / blockDim.x, b0 = tid * seg;
    double part = 0;
    for (int i = b0; i < b0 + seg && i < m; i++) part += sp[i];
    /* exclusive scan of part */
    const int lane = tid % 32, warp = tid / 32;
    double incl = part;
    for (int d = 1; d < 32; d <<= 1) {
        double u = __shfl_up_sync(0xffffffffu, incl, d);
        if (lane >= d) incl += u;
    }
    __syncthreads();
    if (lane == 31) s_redd[warp] = incl;
    if (tid == 0) s_keep = m;
    __syncthreads();
    double wbase = 0, total = 0;
    for (int w = 0; w < (int)(blockDim.x / 32); w++) {
        if (w < warp) wbase += s_redd[w];
        total += s_redd[w];
    }
    const double thr = top_p * total;
    double cum = wbase + incl - part;
    for (int i = b0; i < b0 + seg && i < m; i++) {
        cum += sp[i];
        if (!(cum < thr)) {
            atomicMin(&s_keep, i + 1);
            break;
        }
    }
    __syncthreads();
    int keep = s_keep;
    const int fc = fl.floor_count[bh % H];
    if (keep < fc) keep = fc < m ? fc : m;
    for (int i = tid; i < keep; i += blockDim.x) sflag[si[i]] = 1;
    __syncthreads();
    /* ascending compaction of the flags + computed keys */
    int32_t *out = colbuf + ((size_t)bh * cq + r) * ck;
    __shared__ int s_wc[32];
    __shared__ int s_base;
    if (tid == 0) s_base = 0;
    int64_t keys = 0;
    for (int base = 0; base < ck; base += blockDim.x) {
        int c = base + tid;
        int f = c < ck ? sflag[c] : 0;
        if (f) keys += ko[c + 1] - ko[c];
        unsigned bal = __ballot_sync(0xffffffffu, f);
        __syncthreads();
        if (lane == 0) s_wc[warp] = __popc(bal);
        __syncthreads();
        int wb = s_base;
        for (int w = 0; w < warp; w++) wb += s_wc[w];
        if (f) out[wb + __popc(bal & ((1u << lane) - 1))] = c;
        __syncthreads();
        if (tid == 0) {
            int t = 0;
            for (int w = 0; w < (int)(blockDim.x / 32); w++) t += s_wc[w];
            s_base += t;
        }
    }
    double kt = block_sum<double>((double)keys, s_redd);
    if (tid == 0) {
        cnt[(size_t)bh * cq + r] = keep;
        const int32_t *qo = q_off + (size_t)bh * (cq + 1);
        atomicAdd(dens + bh, kt * (double)(qo[r + 1] - qo[r]));
    }
}

cudaError_t svoo_cu_select(const float *A, const int32_t *q_off, const int32_t *k_off, int BH, int H,
                           int cq, int ck, double top_p, const svoo_cu_floor *fl, int32_t *colbuf,
                           int32_t *cnt, double *dens, cudaStream_t st) {
    int P = 1;
    while (P < ck) P <<= 1;
    size_t sm = (size_t)P * 8 + (size_t)ck * 4;
    k_select<<<dim3(cq, BH), SEL_THREADS, sm, st>>>(A, q_off, k_off, H, cq, ck, P, top_p, *fl, colbuf,
                                                    cnt, dens);
    LAUNCH_CHECK();
}

/* global exclusive scan of the row counts of every bh (one block) */
__global__ void __launch_bounds__(1024) k_csr_scan(const int32_t *__restrict__ cnt, int BH, int cq,
                                                   int32_t *__restrict__ row_ptr) {
    __shared__ int32_t s_warp[32];
    __shared__ int32_t s_carry;
    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    const int64_t total = (int64_t)BH * cq;
    if (tid == 0) s_carry = 0;
    __syncthreads();
    for (int64_t base = 0; base < total; base += blockDim.x) {
        int64_t i = base + tid;
        int32_t v = i < total ? cnt[i] : 0, incl = v;
        for (int d = 1; d < 32; d <<= 1) {
            int32_t u = __shfl_up_sync(0xffffffffu, incl, d);
            if (lane >= d) incl += u;
        }
        if (lane == 31) s_warp[warp] = incl;
        __syncthreads();
        if (warp == 0) {
            int32_t w = s_warp[lane], wi = w;
            for (int d = 1; d < 32; d <<= 1) {
                int32_t u = __shfl_up_sync(0xffffffffu, wi, d);
                if (lane >= d) wi += u;
            }
            s_warp[lane] = wi - w;
        }
        __syncthreads();
        int32_t excl = s_carry + s_warp[warp] + incl - v;
        if (i < total) {
            int bh = (int)(i / cq), r = (int)(i % cq);
            row_ptr[(size_t)bh * (cq + 1) + r] = excl;
            if (r == cq - 1) row_ptr[(size_t)bh * (cq + 1) + cq] = excl + v;
        }
        __syncthreads();
        if (tid == blockDim.x - 1) s_carry = excl + v;
        __syncthreads();
    }
}

__global__ void k_csr_copy(const int32_t *__restrict__ cnt, const int32_t *__restrict__ colbuf, int cq,
                           int ck, const int32_t *__restrict__ row_ptr, int32_t *__restrict__ col) {
    const int bh = blockIdx.y, r = blockIdx.x;
    const int k = cnt[(size_t)bh * cq + r];
    const int32_t *src = colbuf + ((size_t)bh * cq + r) * ck;
    int32_t *dst = col + row_ptr[(size_t)bh * (cq + 1) + r];
    for (int i = threadIdx.x; i < k; i += blockDim.x) dst[i] = src[i];
}

cudaError_t svoo_cu_csr(const int32_t *cnt, const int32_t *colbuf, int BH, int cq, int ck,
                        int32_t *row_ptr, int32_t *col, cudaStream_t st) {
    k_csr_scan<<<1, 1024, 0, st>>>(cnt, BH, cq, row_ptr);
    k_csr_copy<<<dim3(cq, BH), 128, 0, st>>>(cnt, colbuf, cq, ck, row_ptr, col);
    LAUNCH_CHECK();
}

__global__ void k_dense_plan(int BH, int64_t nq, int64_t nk, int32_t *q_off, int32_t *k_off,
                             int32_t *row_ptr, int32_t *col, double *dens) {
    int bh = blockIdx.x * blockDim.x + threadIdx.x;
    if (bh >= BH) return;
    q_off[2 * bh] = 0;
    q_off[2 * bh + 1] = (int32_t)nq;
    k_off[2 * bh] = 0;
    k_off[2 * bh + 1] = (int32_t)nk;
    row_ptr[2 * bh] = bh;
    row_ptr[2 * bh + 1] = bh + 1;
    col[bh] = 0;
    dens[bh] = (double)nq * (double)nk;
}

cudaError_t svoo_cu_dense_plan(int BH, int64_t nq, int64_t nk, int32_t *q_off, int32_t *k_off,
                               int32_t *row_ptr, int32_t *col, double *dens, cudaStream_t st) {
    k_dense_plan<<<(BH + 127) / 128, 128, 0, st>>>(BH, nq, nk, q_off, k_off, row_ptr, col, dens);
    LAUNCH_CHECK();
}

cudaError_t svoo_cu_plan_setup(void) {
    cudaError_t e = setup_assign<64>();
    if (!e) e = setup_assign<128>();
    if (!e) e = cudaFuncSetAttribute(k_select, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024);
    return e;
}


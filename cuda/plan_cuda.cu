/* plan_cuda.cu : SVOO co-clustering (Gram re-association), SVG2 k-means,
 * top-p + floor selection and permutation indices on the GPU, batched over
 * all (b, h) of a call. Mirrors src/plan/{common,cocluster,kmeans,select}.c:
 * the same sampled initial centroids (splitmix64), the same stable counting
 * sort, centroid sums in double in the same token order; assignments run on
 * tensor cores (fp16 mma, f32 accumulate, weights scaled to max |w| = 1),
 * fused with the argmax so the N x C score matrix is never written. */
#include "assign_common.cuh"
#include "assign_sm90.h"
#include "plan_cuda.h"

#include <atomic>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LAUNCH_CHECK() return cudaGetLastError()

/* f(T{}) with T the element type of rows of dtype (0 f32, 1 f16, 2 bf16): one
 * dispatch for the launchers of kernels templated on the row type */
template <class F> static void with_row_type(int dtype, F &&f) {
    if (dtype == 0)
        f(float{});
    else if (dtype == 1)
        f(__half{});
    else
        f(__nv_bfloat16{});
}

/* ---------------------------------------------------------------------- */
/* sampled initialisation                                                  */
/* ---------------------------------------------------------------------- */
/* The CPU draws j_r = r + rng_r % (n - r) and swaps idx[r] <-> idx[j_r] for
 * r = 0..c-1 (partial Fisher-Yates); mu[r] = x[idx[r]]. splitmix64 is
 * counter-based, so every j_r is computed in parallel; the value at position
 * p before step r is traced back through the last earlier swap that wrote p.
 * Grid (ceil(c / INIT_ROWS), BH): every block draws all j_r and copies rows
 * r = blockIdx.x + gridDim.x * i, one warp per row at a time, the trace-back
 * searched by the whole warp (32 positions per step); the warp's loads of
 * all its rows are issued before its stores. */
enum { INIT_WARPS = 8, INIT_RPW = 4, INIT_ROWS = INIT_WARPS * INIT_RPW, INIT_EPL = 4 };
template <typename T>
__global__ void __launch_bounds__(INIT_WARPS * 32)
    k_init_samples(svoo_dview x, int64_t n, int d, int c, uint64_t cfg_seed, int layer, int step,
                   uint64_t xr, float *__restrict__ mu) {
    extern __shared__ int32_t s_j[]; /* [c] */
    const int bh = blockIdx.y, h = bh % x.H;
    uint64_t s = cfg_seed ^ ((uint64_t)layer << 40) ^ ((uint64_t)h << 20) ^ (uint64_t)step;
    const uint64_t seed = svoo_cu_rng(&s) ^ xr;
    for (int r = threadIdx.x; r < c; r += blockDim.x) {
        uint64_t st = seed + (uint64_t)r * 0x9e3779b97f4a7c15ull;
        s_j[r] = (int32_t)(r + (int64_t)(svoo_cu_rng(&st) % (uint64_t)(n - r)));
    }
    __syncthreads();
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    float v[INIT_RPW][INIT_EPL];
#pragma unroll
    for (int q = 0; q < INIT_RPW; q++) {
        const int r = blockIdx.x + gridDim.x * (warp + INIT_WARPS * q);
        if (r >= c) continue;
        int32_t p = s_j[r];
        int rr = r;
        for (;;) { /* the last t < rr with s_j[t] == p, 32 positions a step */
            int t = -1;
            for (int base = rr - 1; base >= 0 && t < 0; base -= 128) {
                unsigned b[4];
#pragma unroll
                for (int k = 0; k < 4; k++) {
                    const int u = base - lane - 32 * k;
                    b[k] = __ballot_sync(0xffffffffu, u >= 0 && s_j[u] == p);
                }
#pragma unroll
                for (int k = 3; k >= 0; k--) /* the first hit in t order */
                    if (b[k]) t = base - 32 * k - (__ffs(b[k]) - 1);
            }
            if (t < 0) break;
            p = t; /* position t held, before step t, the value then moved to p */
            rr = t;
        }
        const T *src = dv_row<T>(x, bh, p);
        if (d <= 32 * INIT_EPL) {
#pragma unroll
            for (int e = 0; e < INIT_EPL; e++) {
                const int i = lane + 32 * e;
                v[q][e] = i < d ? to_f(src[i]) : 0.f;
            }
        } else {
            float *dst = mu + ((size_t)bh * c + r) * d;
            for (int i = lane; i < d; i += 32)
                dst[i] = to_f(src[i]);
        }
    }
    if (d > 32 * INIT_EPL) return;
#pragma unroll
    for (int q = 0; q < INIT_RPW; q++) {
        const int r = blockIdx.x + gridDim.x * (warp + INIT_WARPS * q);
        if (r >= c) continue;
        float *dst = mu + ((size_t)bh * c + r) * d;
#pragma unroll
        for (int e = 0; e < INIT_EPL; e++) {
            const int i = lane + 32 * e;
            if (i < d) dst[i] = v[q][e];
        }
    }
}

cudaError_t svoo_cu_init_samples(int dtype, svoo_dview x, int BH, int64_t n, int d, int c,
                                 uint64_t cfg_seed, int layer, int step, uint64_t xr, float *mu,
                                 cudaStream_t st) {
    const size_t sm = (size_t)c * sizeof(int32_t);
    const dim3 grid((c + INIT_ROWS - 1) / INIT_ROWS, BH), block(INIT_WARPS * 32);
    with_row_type(dtype, [&](auto t) {
        k_init_samples<decltype(t)>
            <<<grid, block, sm, st>>>(x, n, d, c, cfg_seed, layer, step, xr, mu);
    });
    LAUNCH_CHECK();
}

/* ---------------------------------------------------------------------- */
/* small batched f32 GEMM (centroid-sized operands only)                   */
/* ---------------------------------------------------------------------- */
template <bool TA, bool TB>
__global__ void __launch_bounds__(256)
    k_gemm(const float *__restrict__ A, const float *__restrict__ B, float *__restrict__ C, int M,
           int N, int K, float alpha, int64_t sa, int64_t sb, int64_t sc) {
    __shared__ float As[16][64 + 4], Bs[16][64 + 4];
    const int bh = blockIdx.z, m0 = blockIdx.y * 64, n0 = blockIdx.x * 64;
    A += bh * sa;
    B += bh * sb;
    C += bh * sc;
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    float acc[4][4] = {};
    /* the next k tile's loads in flight (registers) while this one is summed
     * (the same products in the same order as without) */
    float pa[4], pb[4];
    auto load = [&](int k0) {
#pragma unroll
        for (int u = 0; u < 4; u++) {
            const int i = threadIdx.x + 256 * u;
            int mm, kk;
            if (TA) { /* A is K x M: read along m */
                mm = i % 64;
                kk = i / 64;
            } else {
                kk = i % 16;
                mm = i / 16;
            }
            int m = m0 + mm, k = k0 + kk;
            pa[u] = (m < M && k < K) ? (TA ? A[(int64_t)k * M + m] : A[(int64_t)m * K + k]) : 0.f;
            int nn = TB ? i % 64 : i / 16, kb = TB ? i / 64 : i % 16;
            int n = n0 + nn, k2 = k0 + kb;
            pb[u] =
                (n < N && k2 < K) ? (TB ? B[(int64_t)k2 * N + n] : B[(int64_t)n * K + k2]) : 0.f;
        }
    };
    load(0);
    for (int k0 = 0; k0 < K; k0 += 16) {
#pragma unroll
        for (int u = 0; u < 4; u++) {
            const int i = threadIdx.x + 256 * u;
            As[TA ? i / 64 : i % 16][TA ? i % 64 : i / 16] = pa[u];
            Bs[TB ? i / 64 : i % 16][TB ? i % 64 : i / 16] = pb[u];
        }
        __syncthreads();
        if (k0 + 16 < K) load(k0 + 16);
#pragma unroll
        for (int kk = 0; kk < 16; kk++) {
            float a[4], b[4];
#pragma unroll
            for (int i = 0; i < 4; i++)
                a[i] = As[kk][ty + 16 * i];
#pragma unroll
            for (int j = 0; j < 4; j++)
                b[j] = Bs[kk][tx + 16 * j];
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++)
                    acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
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
__global__ void k_weights_post(int gram, const float *__restrict__ mu, float *__restrict__ wf,
                               int c, int d, unsigned *__restrict__ wmax,
                               float *__restrict__ bias) {
    const int bh = blockIdx.y, lane = threadIdx.x % 32;
    const int r = blockIdx.x * 8 + threadIdx.x / 32;
    float amax = 0.f;
    if (r < c) {
        const float *m = mu + ((size_t)bh * c + r) * d;
        float *w = wf + ((size_t)bh * c + r) * d;
        double nn = 0;
        if (gram) {
            for (int i = lane; i < d; i += 32)
                nn += (double)m[i] * w[i];
        } else {
            for (int i = lane; i < d; i += 32)
                nn += (double)m[i] * m[i];
        }
        nn = warp_sum(nn);
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
    amax = warp_max(amax);
    if (lane == 0 && amax > 0.f && amax <= FLT_MAX) atomicMax(wmax + bh, __float_as_uint(amax));
}

/* element (r, col) of a bh's cpad x d weights in wh: row-major, or (tiled)
 * each tile of SVOO_CU_ASSIGN90_BN rows in k_assign90's shared-memory layout
 * (sw128), so that a tile is one bulk copy */
static_assert(SVOO_CU_TILE % SVOO_CU_ASSIGN90_BN == 0, "cpad: whole tiles of k_assign90");
__device__ __forceinline__ int64_t wh_index(int64_t r, int col, int d, int tiled) {
    if (!tiled) return r * d + col;
    constexpr int BN = SVOO_CU_ASSIGN90_BN;
    const int rr = (int)(r % BN);
    return (r - rr) * d + sw128<BN>(rr, col / 8) / 2 + col % 8;
}

__global__ void k_weights_half(const float *__restrict__ wf, int c, int cpad, int d, int tiled,
                               const unsigned *__restrict__ wmax, const float *__restrict__ bias,
                               __half *__restrict__ wh, float *__restrict__ bias_h) {
    const int bh = blockIdx.y;
    const float mx = __uint_as_float(wmax[bh]);
    const float s = mx > 0.f ? 1.0f / mx : 1.0f;
    const int64_t total = (int64_t)cpad * d;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = i / d;
        const int col = (int)(i - r * d);
        wh[(size_t)bh * total + wh_index(r, col, d, tiled)] =
            __float2half_rn(r < c ? wf[(size_t)bh * c * d + i] * s : 0.f);
        if (col == 0)
            bias_h[(size_t)bh * cpad + r] = r < c ? bias[(size_t)bh * c + r] * s : -FLT_MAX;
    }
}

static cudaError_t assign_grid90(int dtype, int d, int *grid);

cudaError_t svoo_cu_weights(int dtype, int gram, const float *mu, float *wf, int BH, int c,
                            int cpad, int d, unsigned *wmax, float *bias, __half *wh, float *bias_h,
                            int *grid90, cudaStream_t st) {
    /* k_assign90 will read the weights (grid90 > 0): its tiles' layout */
    cudaError_t e = assign_grid90(dtype, d, grid90);
    if (!e) e = cudaMemsetAsync(wmax, 0, (size_t)BH * sizeof(unsigned), st);
    if (e) return e;
    k_weights_post<<<dim3((c + 7) / 8, BH), 256, 0, st>>>(gram, mu, wf, c, d, wmax, bias);
    int blocks = (int)(((int64_t)cpad * d + 255) / 256);
    if (blocks > 256) blocks = 256;
    k_weights_half<<<dim3(blocks, BH), 256, 0, st>>>(wf, c, cpad, d, *grid90 > 0, wmax, bias, wh,
                                                     bias_h);
    LAUNCH_CHECK();
}

/* ---------------------------------------------------------------------- */
/* fused GEMM + argmax on tensor cores                                     */
/* ---------------------------------------------------------------------- */
__device__ __forceinline__ void mma16816(float c[4], const uint32_t a[4], uint32_t b0,
                                         uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, "
                 "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* RT x 128 rows (RT m16 tiles per warp) x all clusters per item, clusters
 * streamed in tiles of 64 (double-buffered cp.async). RT = 1: 69 KB of shared
 * memory at D = 128, three blocks (24 warps) per SM; RT = 2: 104 KB, two
 * blocks (16 warps), each B fragment feeds two m16 tiles. */
enum { ASSIGN_BN = 64 };
template <int D, int RT> struct assign_smem {
    static constexpr int BM = 128 * RT;
    static constexpr int LD = D + 8; /* halves: ldmatrix rows land on distinct banks */
    static constexpr size_t bytes = (size_t)(BM * LD + 2 * ASSIGN_BN * LD) * sizeof(__half) +
                                    (2 * ASSIGN_BN + BM) * sizeof(float);
};
/* k_assign per device ordinal and head dim ([0] D = 64, [1] D = 128), set by
 * svoo_cu_plan_setup on that device (shared memory and SM count are per
 * device): m16 tiles per warp and the persistent grid (resident blocks); zeros
 * (not set up, or an ordinal >= ASSIGN_MAX_DEV): RT = 1, 1024 blocks */
enum { ASSIGN_MAX_DEV = 64 };
struct assign_cfg {
    int rt, blocks;
    int sm90; /* > 0: k_assign90 (wgmma) with this grid for 2-byte rows */
};
/* fields written by every context's setup and read by other threads' calls:
 * relaxed atomics (the values a device gets are the same each time) */
static struct { std::atomic<int> rt, blocks, sm90; } g_assign[ASSIGN_MAX_DEV][2];
/* the assignment configuration of the current device for d */
static cudaError_t assign_config(int d, assign_cfg *cfg) {
    int dev = 0;
    const cudaError_t e = cudaGetDevice(&dev);
    *cfg = assign_cfg{};
    if (!e && dev >= 0 && dev < ASSIGN_MAX_DEV) {
        const auto &g = g_assign[dev][d == 128];
        *cfg = {g.rt.load(std::memory_order_relaxed), g.blocks.load(std::memory_order_relaxed),
                g.sm90.load(std::memory_order_relaxed)};
    }
    return e;
}
/* k_assign90's grid for rows of this dtype on the current device (0: the
 * mma.sync kernel; f32 rows are fp16 in shared memory, k_assign only) */
static cudaError_t assign_grid90(int dtype, int d, int *grid) {
    assign_cfg cfg;
    const cudaError_t e = assign_config(d, &cfg);
    *grid = dtype == 0 ? 0 : cfg.sm90;
    return e;
}
/* refinement of near ties: 0 = off (experiments: SVOO_CUDA_REFINE=0); the
 * host copy goes to k_assign90 as an argument */
__constant__ float g_refine_gap = INFINITY;
static std::atomic<float> g_refine_gap_host{INFINITY}; /* (see g_assign) */

/* 4 consecutive elements of a row (one aligned 4-element load) -> f32 */
template <typename T> __device__ __forceinline__ void load4(const T *p, float f[4]) {
    struct alignas(4 * sizeof(T)) V {
        T t[4];
    };
    const V v = *(const V *)p;
#pragma unroll
    for (int k = 0; k < 4; k++)
        f[k] = to_f(v.t[k]);
}
/* Re-scores the marked rows (label < 0). Grid (ceil(n / 256), BH), 256
 * threads: the block's marked rows are gathered in shared memory and taken four
 * per warp at a time, eight lanes per row, so all their loads are in flight
 * together. Same f32 sums as one warp per row, bit for bit: lane s of a row's
 * eight holds the fmaf chains of lanes 4s .. 4s + 3 of a 32-lane dot product
 * (j = l, l + 32, ..), the butterfly's offsets 16, 8, 4 are shuffles to lanes
 * s ^ 4, s ^ 2, s ^ 1 and 2, 1 are adds in registers (a + b == b + a). */
template <typename T, int D>
__global__ void __launch_bounds__(256)
    k_refine(svoo_dview x, int64_t n, const float *__restrict__ wf, const float *__restrict__ bias,
             int c, int32_t *__restrict__ label) {
    constexpr int K = D / 32; /* chain length */
    __shared__ int32_t s_row[256], s_v[256];
    __shared__ int s_cnt;
    const int bh = blockIdx.y, lane = threadIdx.x % 32, w = threadIdx.x / 32;
    const int64_t i0 = (int64_t)blockIdx.x * 256;
    int32_t *lb = label + (size_t)bh * n;
    if (threadIdx.x == 0) s_cnt = 0;
    __syncthreads();
    const int32_t mine = i0 + threadIdx.x < n ? lb[i0 + threadIdx.x] : 0;
    const unsigned m = __ballot_sync(0xffffffffu, mine < 0);
    int at = 0;
    if (lane == 0 && m) at = atomicAdd(&s_cnt, __popc(m));
    at = __shfl_sync(0xffffffffu, at, 0) + __popc(m & ((1u << lane) - 1));
    if (mine < 0) {
        s_row[at] = threadIdx.x;
        s_v[at] = -1 - mine;
    }
    __syncthreads();
    const int cnt = s_cnt, g = lane / 8, s = lane % 8;
    const T *xb = dv_row<T>(x, bh, 0);
    const float *wb = wf + (size_t)bh * c * D, *bb = bias + (size_t)bh * c;
    for (int q0 = w * 4; q0 < cnt; q0 += 32) { /* warp-uniform */
        const int q = q0 + g;
        const bool on = q < cnt; /* idle groups score row i0 against cluster 0 */
        const int32_t v = on ? s_v[q] : 0, row = on ? s_row[q] : 0;
        const int i1 = v % REFINE_MAX_C, i2 = v / REFINE_MAX_C;
        const T *xr = xb + (i0 + row) * x.sn + 4 * s;
        const float *w1 = wb + (size_t)i1 * D + 4 * s, *w2 = wb + (size_t)i2 * D + 4 * s;
        float xv[K][4];
        float4 a[K], b[K];
#pragma unroll
        for (int k = 0; k < K; k++) { /* every load first */
            load4(xr + 32 * k, xv[k]);
            a[k] = *(const float4 *)(w1 + 32 * k);
            b[k] = *(const float4 *)(w2 + 32 * k);
        }
        const float bias1 = bb[i1], bias2 = bb[i2];
        float d1[4] = {}, d2[4] = {};
#pragma unroll
        for (int k = 0; k < K; k++) {
            const float wa[4] = {a[k].x, a[k].y, a[k].z, a[k].w};
            const float wc[4] = {b[k].x, b[k].y, b[k].z, b[k].w};
#pragma unroll
            for (int t = 0; t < 4; t++) {
                d1[t] = fmaf(xv[k][t], wa[t], d1[t]);
                d2[t] = fmaf(xv[k][t], wc[t], d2[t]);
            }
        }
        for (int o = 4; o; o >>= 1) /* butterfly offsets 16, 8, 4 */
#pragma unroll
            for (int t = 0; t < 4; t++) {
                d1[t] += __shfl_xor_sync(0xffffffffu, d1[t], o);
                d2[t] += __shfl_xor_sync(0xffffffffu, d2[t], o);
            }
        d1[0] += d1[2]; /* offset 2 */
        d1[1] += d1[3];
        d2[0] += d2[2];
        d2[1] += d2[3];
        d1[0] += d1[1]; /* offset 1 */
        d2[0] += d2[1];
        const float s1 = d1[0] + bias1, s2 = d2[0] + bias2;
        if (on && s == 0) lb[i0 + row] = better(s2, i2, s1, i1) ? i2 : i1;
    }
}

/* Persistent: block b takes the row tiles (items: tile + rtiles * bh, BM rows
 * each) b, b + grid, ...; its A fragments live in registers, so the next
 * item's rows land in sA (cp.async, raw) while this item's clusters stream,
 * and the cluster tiles of consecutive items form one double-buffered stream
 * (the first tile of the next item loads during the last of this one). */
template <typename T, int D, int RT>
__global__ void __launch_bounds__(256, 4 - RT)
    k_assign(svoo_dview x, int BH, int64_t n, const __half *__restrict__ wh,
             const float *__restrict__ bias_h, int cpad, int ib, float trunc,
             const float *__restrict__ wf, const float *__restrict__ bias, int c,
             int32_t *__restrict__ label) {
    constexpr int BM = assign_smem<D, RT>::BM, BN = ASSIGN_BN, LD = assign_smem<D, RT>::LD,
                  CH = D / 8;
    constexpr int RS = 256 / CH; /* rows per pass of the block's 16-byte copies */
    extern __shared__ __align__(16) unsigned char smem[];
    __half *sA = (__half *)smem;
    __half *sB = sA + BM * LD;
    float *sBias = (float *)(sB + 2 * BN * LD);
    float *sNorm = sBias + 2 * BN; /* |x|^2 of this item's rows */
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, t4 = lane % 4;
    const int rtiles = (int)((n + BM - 1) / BM), ntiles = cpad / BN;
    /* the grid stride in items as (bh, tile) steps */
    const int step_bh = gridDim.x / rtiles, step_t = gridDim.x - step_bh * rtiles;
    /* this thread's 16-byte copies: rows r0 + RS u, halves c0 .. c0 + 7 */
    const int r0 = tid / CH, c0 = (tid % CH) * 8;

    /* rows of item (bh, tile) -> sA (rows >= n: zeros): 2-byte types raw
     * (cp.async), f32 converted to fp16 on the way (synchronous) */
    auto load_a = [&](int bh, int tile) {
        const int64_t row0 = (int64_t)tile * BM;
        const T *base = dv_row<T>(x, bh, row0) + c0, *p = base + r0 * x.sn;
        __half *dst = sA + r0 * LD + c0;
#pragma unroll 1
        for (int64_t r = row0 + r0; r < row0 + BM; r += RS, p += RS * x.sn, dst += RS * LD) {
            if constexpr (sizeof(T) == 2)
                cp_async16(dst, r < n ? p : base, r < n ? 16 : 0);
            else
                *(uint4 *)dst = r < n ? load8_half(p) : make_uint4(0, 0, 0, 0);
        }
    };
    /* cluster tile t of bh (BN x D fp16 + BN biases) -> buffer buf */
    auto load_b = [&](int bh, int t, int buf) {
        const size_t w0 = (size_t)bh * cpad + (size_t)t * BN;
        const __half *src = wh + (w0 + r0) * D + c0;
        __half *dst = sB + buf * BN * LD + r0 * LD + c0;
#pragma unroll
        for (int u = 0; u < BN / RS; u++)
            cp_async16(dst + RS * u * LD, src + RS * u * D);
        if (tid < BN / 4) cp_async16(sBias + buf * BN + tid * 4, bias_h + w0 + tid * 4);
    };

    int bh = blockIdx.x / rtiles, tile = blockIdx.x - bh * rtiles;
    if (bh >= BH) return;
    load_a(bh, tile);
    cp_async_commit();
    load_b(bh, 0, 0);
    cp_async_commit();
    const uint32_t m = (1u << ib) - 1, keep = ~m;
    int buf = 0; /* buffer of the current cluster tile */
    while (bh < BH) {
        const int64_t row0 = (int64_t)tile * BM;
        int nbh = bh + step_bh, ntile = tile + step_t; /* the next item */
        if (ntile >= rtiles) ntile -= rtiles, nbh++;
        const bool more = nbh < BH;
        /* this item's rows landed (its first cluster tile, issued after them
         * unless ntiles = 1, may be in flight) */
        if (ntiles > 1)
            cp_async_wait<1>();
        else
            cp_async_wait<0>();
        __syncthreads();
        uint32_t af[RT][D / 16][4];
#pragma unroll
        for (int rt = 0; rt < RT; rt++) {
#pragma unroll
            for (int ks = 0; ks < D / 16; ks++) {
                ldmatrix_x4(af[rt][ks], sA + (warp * 16 * RT + rt * 16 + (lane % 16)) * LD +
                                            ks * 16 + (lane / 16) * 8);
#pragma unroll
                for (int j = 0; j < 4; j++)
                    af[rt][ks][j] = frag_half(af[rt][ks][j], T());
            }
        }
        /* |x|^2 of the fp16 rows (rt, lane / 4 + 8 h) -> sNorm: registers h,
         * h + 2 of this lane's fragments, over the quad */
#pragma unroll
        for (int rt = 0; rt < RT; rt++)
#pragma unroll
            for (int h = 0; h < 2; h++) {
                float sa = 0.f;
#pragma unroll
                for (int ks = 0; ks < D / 16; ks++)
#pragma unroll
                    for (int j = h; j < 4; j += 2) {
                        const float2 f = __half22float2(*(const __half2 *)&af[rt][ks][j]);
                        sa = fmaf(f.x, f.x, fmaf(f.y, f.y, sa));
                    }
                sa += __shfl_xor_sync(0xffffffffu, sa, 1);
                sa += __shfl_xor_sync(0xffffffffu, sa, 2);
                if (t4 == 0) sNorm[warp * 16 * RT + rt * 16 + h * 8 + lane / 4] = sa;
            }

        /* best / second key of rows (rt, lane / 4) [0] and (rt, lane / 4 + 8) [1] */
        float best[RT][2], sec[RT][2];
#pragma unroll
        for (int rt = 0; rt < RT; rt++)
            best[rt][0] = best[rt][1] = sec[rt][0] = sec[rt][1] = -INFINITY;
        uint32_t hi = m; /* m - 8 * chunk: low 3 bits stay 1, slot bits subtract */
        for (int t = 0; t < ntiles; t++) {
            /* tile t landed (in flight after it: the next rows, issued at tile
             * ntiles - 2); after the barrier every warp is done with tile t - 1,
             * whose buffer takes the next tile (one barrier per tile) */
            if (t == ntiles - 1 && t > 0)
                cp_async_wait<1>();
            else
                cp_async_wait<0>();
            __syncthreads();
            if (t + 1 < ntiles)
                load_b(bh, t + 1, buf ^ 1);
            else if (more)
                load_b(nbh, 0, buf ^ 1);
            cp_async_commit();
            /* the next rows, two tiles ahead (every warp has read sA: barrier above) */
            if (t == (ntiles > 1 ? ntiles - 2 : 0)) {
                if (more) load_a(nbh, ntile);
                cp_async_commit();
            }
            const __half *Bt = sB + buf * BN * LD;
            const float *bs = sBias + buf * BN;
#pragma unroll 2
            for (int nc = 0; nc < BN / 32; nc++) {
                /* 32 clusters: four independent accumulator chains per m16 tile,
                 * which start at the bias (no adds in the epilogue) */
                float acc[RT][4][4];
#pragma unroll
                for (int f = 0; f < 4; f++) {
                    const float2 bv = *(const float2 *)(bs + nc * 32 + f * 8 + 2 * t4);
#pragma unroll
                    for (int rt = 0; rt < RT; rt++) {
                        acc[rt][f][0] = acc[rt][f][2] = bv.x;
                        acc[rt][f][1] = acc[rt][f][3] = bv.y;
                    }
                }
                const __half *bp =
                    Bt + (nc * 32 + (lane / 16) * 8 + (lane % 8)) * LD + ((lane / 8) & 1) * 8;
#pragma unroll
                for (int ks = 0; ks < D / 16; ks++) {
                    uint32_t b[4], b2[4];
                    ldmatrix_x4(b, bp + ks * 16);
                    ldmatrix_x4(b2, bp + 16 * LD + ks * 16);
#pragma unroll
                    for (int rt = 0; rt < RT; rt++) {
                        mma16816(acc[rt][0], af[rt][ks], b[0], b[1]);
                        mma16816(acc[rt][1], af[rt][ks], b[2], b[3]);
                        mma16816(acc[rt][2], af[rt][ks], b2[0], b2[1]);
                        mma16816(acc[rt][3], af[rt][ks], b2[2], b2[3]);
                    }
                }
                /* slot codes of this chunk: column 8 f + 2 t4 + j is slot 2 f + j */
#pragma unroll
                for (int f = 0; f < 4; f++)
#pragma unroll
                    for (int j = 0; j < 2; j++) {
                        const uint32_t code = hi - (2 * f + j);
#pragma unroll
                        for (int rt = 0; rt < RT; rt++) {
                            top2_key(pack_key(acc[rt][f][j], keep, code), best[rt][0], sec[rt][0]);
                            top2_key(pack_key(acc[rt][f][2 + j], keep, code), best[rt][1],
                                     sec[rt][1]);
                        }
                    }
                hi -= 8;
            }
            buf ^= 1;
        }
        const unsigned qmask = 0xfu << (lane & ~3);
#pragma unroll
        for (int rt = 0; rt < RT; rt++)
#pragma unroll
            for (int h = 0; h < 2; h++) {
                float b1 = best[rt][h], b2 = sec[rt][h];
                int i1 = key_index(b1, m, t4), i2 = key_index(b2, m, t4);
#pragma unroll
                for (int o = 1; o < 4; o <<= 1)
                    top2_merge(0xffffffffu, o, b1, i1, b2, i2);
                const int64_t r = row0 + warp * 16 * RT + rt * 16 + h * 8 + lane / 4;
                if (r < n)
                    finish_row<T>(x, bh, r, n, sNorm[r - row0], D, b1, i1, b2, i2, trunc, wf, bias,
                                  c, g_refine_gap, t4, qmask, label);
            }
        bh = nbh;
        tile = ntile;
    }
}

/* opt-in shared memory of the three instances; *per_sm: resident blocks */
template <int D, int RT> static cudaError_t setup_assign_rt(int *per_sm) {
    cudaError_t e;
    size_t sm = assign_smem<D, RT>::bytes;
    if ((e = cudaFuncSetAttribute(k_assign<float, D, RT>,
                                  cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm)) ||
        (e = cudaFuncSetAttribute(k_assign<__half, D, RT>,
                                  cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm)) ||
        (e = cudaFuncSetAttribute(k_assign<__nv_bfloat16, D, RT>,
                                  cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm)))
        return e;
    return cudaOccupancyMaxActiveBlocksPerMultiprocessor(per_sm, k_assign<__nv_bfloat16, D, RT>,
                                                         256, sm);
}
/* RT = 2 where a block may have its shared memory (103 KB at D = 128: not on
 * sm_86 / sm_89, 99 KB), else RT = 1; the grid: one wave of resident blocks */
template <int D> static cudaError_t setup_assign(int optin, int nsm, assign_cfg *cfg) {
    int per_sm1 = 0, per_sm2 = 0;
    /* RT = 1 always: it is also what svoo_cu_assign runs on a device without a
     * stored configuration (ordinal >= ASSIGN_MAX_DEV) */
    cudaError_t e = setup_assign_rt<D, 1>(&per_sm1);
    cfg->rt = assign_smem<D, 2>::bytes <= (size_t)optin ? 2 : 1;
    if (!e && cfg->rt == 2) e = setup_assign_rt<D, 2>(&per_sm2);
    cfg->blocks = (cfg->rt == 2 ? per_sm2 : per_sm1) * nsm;
    return e;
}

template <int D, int RT>
static void launch_assign(int dtype, svoo_dview x, int BH, int64_t n, const __half *wh,
                          const float *bias_h, int cpad, int ib, float trunc, const float *wf,
                          const float *bias, int c, int32_t *label, int blocks, cudaStream_t st) {
    constexpr int BM = assign_smem<D, RT>::BM;
    const int64_t items = (n + BM - 1) / BM * BH;
    const unsigned grid = (unsigned)(items < blocks ? items : blocks);
    size_t sm = assign_smem<D, RT>::bytes;
    with_row_type(dtype, [&](auto t) {
        k_assign<decltype(t), D, RT>
            <<<grid, 256, sm, st>>>(x, BH, n, wh, bias_h, cpad, ib, trunc, wf, bias, c, label);
    });
}

template <int D>
static void launch_refine(int dtype, svoo_dview x, int BH, int64_t n, const float *wf,
                          const float *bias, int c, int32_t *label, cudaStream_t st) {
    dim3 grid((unsigned)((n + 255) / 256), BH);
    with_row_type(dtype, [&](auto t) {
        k_refine<decltype(t), D><<<grid, 256, 0, st>>>(x, n, wf, bias, c, label);
    });
}

cudaError_t svoo_cu_assign(int dtype, svoo_dview x, int BH, int64_t n, int d, const __half *wh,
                           const float *bias_h, int cpad, const float *wf, const float *bias, int c,
                           int gram, int grid90, int32_t *label, cudaStream_t st) {
    assign_cfg cfg;
    cudaError_t e = assign_config(d, &cfg);
    if (e) return e;
    const int blocks = cfg.blocks > 0 ? cfg.blocks : 1024; /* any grid is correct */
    int ib = 5;                                            /* slot bits: cpad / 4 slots per lane */
    while ((1 << ib) < cpad / 4)
        ib++;
    const float trunc = ldexpf(1.0f, ib - 22); /* twice the bound 2^(ib - 23) */
    if (grid90 > 0) {
        const float gap = g_refine_gap_host.load(std::memory_order_relaxed);
        const svoo_cu_assign90_args g = {x,     BH,  d,  cpad,   ib, c,    gram, n,
                                         trunc, gap, wh, bias_h, wf, bias, label};
        if ((e = svoo_cu_assign90(dtype, &g, grid90, st))) return e;
    } else if (d == 64) {
        if (cfg.rt == 2)
            launch_assign<64, 2>(dtype, x, BH, n, wh, bias_h, cpad, ib, trunc, wf, bias, c, label,
                                 blocks, st);
        else
            launch_assign<64, 1>(dtype, x, BH, n, wh, bias_h, cpad, ib, trunc, wf, bias, c, label,
                                 blocks, st);
    } else {
        if (cfg.rt == 2)
            launch_assign<128, 2>(dtype, x, BH, n, wh, bias_h, cpad, ib, trunc, wf, bias, c, label,
                                  blocks, st);
        else
            launch_assign<128, 1>(dtype, x, BH, n, wh, bias_h, cpad, ib, trunc, wf, bias, c, label,
                                  blocks, st);
    }
    if (c <= REFINE_MAX_C) {
        if (d == 64)
            launch_refine<64>(dtype, x, BH, n, wf, bias, c, label, st);
        else
            launch_refine<128>(dtype, x, BH, n, wf, bias, c, label, st);
    }
    LAUNCH_CHECK();
}

/* ---------------------------------------------------------------------- */
/* stable counting sort                                                    */
/* ---------------------------------------------------------------------- */
__global__ void k_hist(const int32_t *__restrict__ label, int64_t n, int c, int nch,
                       int32_t *__restrict__ hist) {
    extern __shared__ int32_t s_cnt[];
    const int bh = blockIdx.y, ch = blockIdx.x;
    for (int i = threadIdx.x; i < c; i += blockDim.x)
        s_cnt[i] = 0;
    __syncthreads();
    const int64_t i0 = (int64_t)ch * SVOO_CU_SORT_CHUNK;
    const int64_t i1 = i0 + SVOO_CU_SORT_CHUNK < n ? i0 + SVOO_CU_SORT_CHUNK : n;
    for (int64_t i = i0 + threadIdx.x; i < i1; i += blockDim.x)
        atomicAdd(&s_cnt[label[(size_t)bh * n + i]], 1);
    __syncthreads();
    int32_t *hrow = hist + ((size_t)bh * nch + ch) * c;
    for (int i = threadIdx.x; i < c; i += blockDim.x)
        hrow[i] = s_cnt[i];
}

/* per cluster: exclusive prefix over chunks; totals into off (scanned next).
 * Block = 32 clusters x 32 chunk lanes (warp w: chunks w, w + 32, ... of its
 * row of 32 clusters, coalesced), all of a column's counts loaded at once
 * through shared memory; then warp w scans cluster w's column over the
 * chunks (a thread a column walked ~75 chunks in ~10 dependent rounds) */
enum { PREFIX_CH = 128 }; /* chunks a block holds: n <= 128 x SVOO_CU_SORT_CHUNK a pass */
__global__ void __launch_bounds__(1024)
    k_col_prefix(int c, int nch, int32_t *__restrict__ hist, int32_t *__restrict__ off) {
    __shared__ int32_t s_h[PREFIX_CH][33];
    const int bh = blockIdx.y, lane = threadIdx.x % 32, w = threadIdx.x / 32;
    const int c0 = blockIdx.x * 32, cc = c0 + lane;
    int32_t *hb = hist + (size_t)bh * nch * c;
    int32_t run = 0; /* warp w: cluster c0 + w, carried over passes */
    for (int ch0 = 0; ch0 < nch; ch0 += PREFIX_CH) {
        const int m = min(PREFIX_CH, nch - ch0);
#pragma unroll
        for (int u = 0; u < PREFIX_CH / 32; u++) {
            const int ch = w + 32 * u;
            if (ch < m && cc < c) s_h[ch][lane] = hb[(size_t)(ch0 + ch) * c + cc];
        }
        __syncthreads();
        if (c0 + w < c) {
            /* lane l: chunks 4 l .. 4 l + 3 of this pass, in order */
            int32_t v[PREFIX_CH / 32], sum = 0;
#pragma unroll
            for (int u = 0; u < PREFIX_CH / 32; u++) {
                const int ch = 4 * lane + u;
                v[u] = ch < m ? s_h[ch][w] : 0;
                sum += v[u];
            }
            int32_t incl = sum;
#pragma unroll
            for (int d = 1; d < 32; d <<= 1) {
                const int32_t t = __shfl_up_sync(0xffffffffu, incl, d);
                if (lane >= d) incl += t;
            }
            int32_t ex = run + incl - sum;
#pragma unroll
            for (int u = 0; u < PREFIX_CH / 32; u++) {
                const int ch = 4 * lane + u;
                if (ch < m) s_h[ch][w] = ex;
                ex += v[u];
            }
            run += __shfl_sync(0xffffffffu, incl, 31);
        }
        __syncthreads();
#pragma unroll
        for (int u = 0; u < PREFIX_CH / 32; u++) {
            const int ch = w + 32 * u;
            if (ch < m && cc < c) hb[(size_t)(ch0 + ch) * c + cc] = s_h[ch][lane];
        }
        __syncthreads();
    }
    if (c0 + w < c && lane == 0) off[(size_t)bh * (c + 1) + c0 + w] = run;
}

/* in-place exclusive scan of the cluster totals: off[bh][0..c], off[c] = n
 * (one block of 1024 a bh) */
__global__ void __launch_bounds__(1024) k_off_scan(int64_t n, int c, int32_t *__restrict__ off) {
    __shared__ int s_warp[32];
    const int tid = threadIdx.x;
    int32_t *o = off + (size_t)blockIdx.x * (c + 1);
    int carry = 0;
    for (int base = 0; base < c; base += 1024) {
        const int cc = base + tid;
        int total;
        const int v = cc < c ? o[cc] : 0;
        const int excl = carry + block_exscan<1024>(
                                     v, tid & 31, tid >> 5, s_warp, [] { __syncthreads(); }, total);
        if (cc < c) o[cc] = excl;
        carry += total;
        __syncthreads(); /* every s_warp read before the next round writes it */
    }
    if (tid == 0) o[c] = (int32_t)n;
}

/* one warp per chunk, in token order: stable positions with match_any. The
 * chunk's labels (32 a lane) and the cursors' loads are issued before they
 * are used: one after another they were ~60 dependent round trips a warp */
__global__ void k_sort_scatter(const int32_t *__restrict__ label, int64_t n, int c, int nch,
                               const int32_t *__restrict__ hist, const int32_t *__restrict__ off,
                               int32_t *__restrict__ perm) {
    constexpr int ROUNDS = SVOO_CU_SORT_CHUNK / 32;
    extern __shared__ int32_t s_cur[];
    const int bh = blockIdx.y, ch = blockIdx.x, lane = threadIdx.x;
    const int32_t *hrow = hist + ((size_t)bh * nch + ch) * c, *o = off + (size_t)bh * (c + 1);
    const int64_t i0 = (int64_t)ch * SVOO_CU_SORT_CHUNK;
    const int64_t i1 = i0 + SVOO_CU_SORT_CHUNK < n ? i0 + SVOO_CU_SORT_CHUNK : n;
    int lab[ROUNDS];
#pragma unroll
    for (int u = 0; u < ROUNDS; u++) {
        const int64_t i = i0 + 32 * u + lane;
        lab[u] = i < i1 ? label[(size_t)bh * n + i] : -1 - lane;
    }
#pragma unroll 8
    for (int i = lane; i < c; i += 32)
        s_cur[i] = hrow[i] + o[i];
    __syncwarp();
    const unsigned lt = (1u << lane) - 1;
#pragma unroll
    for (int u = 0; u < ROUNDS; u++) {
        const int64_t i = i0 + 32 * u + lane;
        const unsigned peers = __match_any_sync(0xffffffffu, lab[u]);
        if (i < i1) perm[(size_t)bh * n + s_cur[lab[u]] + __popc(peers & lt)] = (int32_t)i;
        __syncwarp();
        if (i < i1 && (__ffs(peers) - 1) == lane) s_cur[lab[u]] += __popc(peers);
        __syncwarp();
    }
}

cudaError_t svoo_cu_sort(const int32_t *label, int BH, int64_t n, int c, int32_t *hist,
                         int32_t *perm, int32_t *off, cudaStream_t st) {
    const int nch = (int)((n + SVOO_CU_SORT_CHUNK - 1) / SVOO_CU_SORT_CHUNK);
    const size_t sm = (size_t)c * sizeof(int32_t);
    k_hist<<<dim3(nch, BH), 256, sm, st>>>(label, n, c, nch, hist);
    k_col_prefix<<<dim3((c + 31) / 32, BH), 1024, 0, st>>>(c, nch, hist, off);
    k_off_scan<<<BH, 1024, 0, st>>>(n, c, off);
    k_sort_scatter<<<dim3(nch, BH), 32, sm, st>>>(label, n, c, nch, hist, off, perm);
    LAUNCH_CHECK();
}

/* ---------------------------------------------------------------------- */
/* centroids: sums in double (as the CPU), one block per cluster; each row  */
/* read as 16-byte vectors by LPR lanes, 256 / LPR rows per pass, 4 passes   */
/* in flight                                                               */
/* ---------------------------------------------------------------------- */
template <typename T, int D>
__global__ void __launch_bounds__(256)
    k_centroids(svoo_dview x, int64_t n, int c, const int32_t *__restrict__ perm,
                const int32_t *__restrict__ off, float *__restrict__ mu) {
    constexpr int EV = 16 / sizeof(T), LPR = D / EV, G = 256 / LPR, U = 4;
    __shared__ double s_acc[G][D];
    const int bh = blockIdx.y, r = blockIdx.x, g = threadIdx.x / LPR, cc = threadIdx.x % LPR;
    const int32_t s = off[(size_t)bh * (c + 1) + r], e = off[(size_t)bh * (c + 1) + r + 1];
    if (e == s) return; /* empty cluster keeps its centroid */
    const int32_t *p = perm + (size_t)bh * n;
    double acc[EV] = {};
    int32_t i = s + g;
    for (; i + (U - 1) * G < e; i += U * G) {
        uint4 v[U];
#pragma unroll
        for (int u = 0; u < U; u++)
            v[u] = *(const uint4 *)(dv_row<T>(x, bh, p[i + u * G]) + cc * EV);
#pragma unroll
        for (int u = 0; u < U; u++) {
            const T *t = (const T *)&v[u];
#pragma unroll
            for (int k = 0; k < EV; k++)
                acc[k] += (double)to_f(t[k]);
        }
    }
    for (; i < e; i += G) {
        const uint4 v = *(const uint4 *)(dv_row<T>(x, bh, p[i]) + cc * EV);
        const T *t = (const T *)&v;
#pragma unroll
        for (int k = 0; k < EV; k++)
            acc[k] += (double)to_f(t[k]);
    }
#pragma unroll
    for (int k = 0; k < EV; k++)
        s_acc[g][cc * EV + k] = acc[k];
    __syncthreads();
    for (int j = threadIdx.x; j < D; j += blockDim.x) {
        double t = 0;
#pragma unroll
        for (int w = 0; w < G; w++)
            t += s_acc[w][j];
        mu[((size_t)bh * c + r) * D + j] = (float)(t / (e - s));
    }
}

template <int D>
static void launch_centroids(int dtype, svoo_dview x, int BH, int64_t n, int c, const int32_t *perm,
                             const int32_t *off, float *mu, cudaStream_t st) {
    dim3 grid(c, BH);
    with_row_type(dtype, [&](auto t) {
        k_centroids<decltype(t), D><<<grid, 256, 0, st>>>(x, n, c, perm, off, mu);
    });
}

cudaError_t svoo_cu_centroids(int dtype, svoo_dview x, int BH, int64_t n, int d, int c,
                              const int32_t *perm, const int32_t *off, float *mu, cudaStream_t st) {
    if (d == 64)
        launch_centroids<64>(dtype, x, BH, n, c, perm, off, mu, st);
    else
        launch_centroids<128>(dtype, x, BH, n, c, perm, off, mu, st);
    LAUNCH_CHECK();
}

/* G[bh] = mu^T mu (D x D) over co rows; block = GRAM_RB rows of G (so mu is
 * read D / GRAM_RB times per bh); mu streamed through shared memory in chunks
 * of 64 rows, the next chunk's loads in flight (registers) while the current
 * one is summed. Every G element is one fmaf chain over the rows in order. */
enum { GRAM_RB = 16 };
template <int D, int RB>
__global__ void __launch_bounds__(256)
    k_gram(const float *__restrict__ mu, int co, float *__restrict__ G) {
    constexpr int RPT = RB / (256 / D), CR = 64, LPT = CR * D / 256 / 4;
    __shared__ __align__(16) float s_mu[CR][D];
    const int bh = blockIdx.y, i0 = blockIdx.x * RB, j = threadIdx.x % D, ig = threadIdx.x / D;
    const float4 *m = (const float4 *)(mu + (size_t)bh * co * D);
    float acc[RPT] = {};
    float4 pre[LPT];
    auto load = [&](int r0) {
#pragma unroll
        for (int u = 0; u < LPT; u++) {
            const int t = threadIdx.x + 256 * u, rr = t / (D / 4);
            pre[u] = r0 + rr < co ? m[(size_t)r0 * (D / 4) + t] : make_float4(0.f, 0.f, 0.f, 0.f);
        }
    };
    load(0);
    for (int r0 = 0; r0 < co; r0 += CR) {
        __syncthreads();
#pragma unroll
        for (int u = 0; u < LPT; u++)
            ((float4 *)&s_mu[0][0])[threadIdx.x + 256 * u] = pre[u];
        __syncthreads();
        if (r0 + CR < co) load(r0 + CR);
#pragma unroll 8
        for (int rr = 0; rr < CR; rr++) {
            float mj = s_mu[rr][j];
#pragma unroll
            for (int k = 0; k < RPT; k++)
                acc[k] = fmaf(s_mu[rr][i0 + ig * RPT + k], mj, acc[k]);
        }
    }
#pragma unroll
    for (int k = 0; k < RPT; k++)
        G[((size_t)bh * D + i0 + ig * RPT + k) * D + j] = acc[k];
}

cudaError_t svoo_cu_gram(const float *mu, int BH, int co, int d, float *G, cudaStream_t st) {
    if (d == 64)
        k_gram<64, GRAM_RB><<<dim3(64 / GRAM_RB, BH), 256, 0, st>>>(mu, co, G);
    else
        k_gram<128, GRAM_RB><<<dim3(128 / GRAM_RB, BH), 256, 0, st>>>(mu, co, G);
    LAUNCH_CHECK();
}

/* ---------------------------------------------------------------------- */
/* top-p + floor selection                                                 */
/* ---------------------------------------------------------------------- */
enum { SEL_WARPS = 4, SEL_CK4 = 2048 };

/* order-preserving map of a float onto uint32 (negative values too) */
__device__ __forceinline__ unsigned ord_f(float x) {
    const unsigned u = __float_as_uint(x);
    return u ^ ((unsigned)((int)u >> 31) | 0x80000000u);
}

/* One warp per (bh, query cluster r). The CPU ranks the key clusters by
 * key = log w + A (desc, index asc; the same order as the weight p = w exp(A),
 * without its underflow) and keeps the shortest prefix whose mass p reaches
 * top_p * total, at least floor_count. The same set without a sort: a binary
 * search over the ordered bits of key finds the threshold tau (all keys above
 * it kept), then the ties at tau are added in index order, as the sorted scan
 * would. p is exp(key - max key), proportional to the CPU's p (top-p only
 * uses ratios), computed once per cluster with __expf into shared memory next
 * to the ordered key bits (8 bytes per cluster), so the masses of the search
 * and the total agree; the floor search counts only. */
template <int W>
__global__ void __launch_bounds__(W * 32)
    k_select(const float *__restrict__ A, const int32_t *__restrict__ q_off,
             const int32_t *__restrict__ k_off, int BH, int H, int cq, int ck, double top_p,
             svoo_cu_floor fl, int32_t *__restrict__ colbuf, int32_t *__restrict__ cnt,
             double *__restrict__ dens) {
    extern __shared__ uint2 s_kw[];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int64_t row = (int64_t)blockIdx.x * W + warp;
    if (row >= (int64_t)BH * cq) return;
    const int bh = (int)(row / cq), r = (int)(row % cq);
    /* per cluster: x = ord_f(key), 0 where key is NaN (no valid key maps to 0;
     * every u searched is >= 1); y = bits of __expf(key - mx), 0 where NaN */
    const int ckp = (ck + 63) & ~63; /* (ck, ckp): (0, 0) */
    uint2 *kw = s_kw + (size_t)warp * ckp;
    const float *ar = A + ((size_t)bh * cq + r) * ck;
    const int32_t *ko = k_off + (size_t)bh * (ck + 1);
    const unsigned lt = (1u << lane) - 1;
    float mx = -INFINITY;
    int m = 0;
    for (int c = lane; c < ck; c += 32) {
        const int32_t w = ko[c + 1] - ko[c];
        float key = NAN;
        if (w > 0) {
            key = logf((float)w) + ar[c];
            mx = fmaxf(mx, key);
            m++;
        }
        kw[c].x = __float_as_uint(key);
    }
    mx = warp_max(mx);
    m = warp_sum(m);
    double tot = 0;
    unsigned omin = 0xffffffffu, omax = 0; /* over the keys that are not NaN */
    for (int c = lane; c < ck; c += 32) {
        const float k = __uint_as_float(kw[c].x), e = __expf(k - mx);
        if (ko[c + 1] > ko[c]) tot += e;
        const unsigned o = ord_f(k);
        kw[c] = k == k ? make_uint2(o, __float_as_uint(e)) : make_uint2(0u, 0u);
        if (k == k) omin = min(omin, o), omax = max(omax, o);
    }
    for (int c = ck + lane; c < ckp; c += 32)
        kw[c] = make_uint2(0u, 0u);
    tot = warp_sum(tot);
    for (int s = 16; s; s >>= 1) {
        omin = min(omin, __shfl_xor_sync(0xffffffffu, omin, s));
        omax = max(omax, __shfl_xor_sync(0xffffffffu, omax, s));
    }
    /* every non-empty key cluster, as src/plan/select.c: with top_p = 1 (the
     * scan would stop short of clusters whose weight underflows), and with
     * NaN/Inf centroid scores (non-finite q or k), so that the non-finite
     * values reach the rows they touch instead of rows with no key (zeros).
     * Warp-uniform (butterfly sum). */
    const bool keep_all = top_p >= 1.0 || !(tot > 0 && isfinite(tot));
    __syncwarp();
    /* S(u) = mass of the clusters with ordered key >= u; C(u) their count */
    /* The double sums add the weights in index order, as when they were
     * recomputed from the keys in every pass: the same sums bit for bit (+0.0
     * for a key below u leaves a sum >= +0 as it was). The float sums, which
     * only decide with 1e-4 margins (their rounding error is below 3e-6),
     * use two accumulators. */
    auto mass_ge_f = [&](unsigned u) {
        float s0 = 0.f, s1 = 0.f;
#pragma unroll 4
        for (int c = lane; c < ckp; c += 64) {
            const uint2 o = kw[c], o1 = kw[c + 32];
            s0 += o.x >= u ? __uint_as_float(o.y) : 0.f;
            s1 += o1.x >= u ? __uint_as_float(o1.y) : 0.f;
        }
        return warp_sum(s0 + s1);
    };
    auto mass_ge = [&](unsigned u) {
        double sum = 0;
#pragma unroll 8
        for (int c = lane; c < ckp; c += 32) {
            const uint2 o = kw[c];
            sum += o.x >= u ? (double)__uint_as_float(o.y) : 0.0;
        }
        return warp_sum(sum);
    };
    auto count_ge = [&](unsigned u) {
        int n = 0;
#pragma unroll 8
        for (int c = lane; c < ckp; c += 32)
            n += kw[c].x >= u;
        return warp_sum(n);
    };
    const double thr = top_p * tot;
    unsigned tau;
    int keep_j; /* ties at tau kept, in index order */
    int keep;
    {
        /* S(lo) >= thr, S(hi) < thr (thr > 0); ord_f(+inf) + 1 is above every key.
         * Unless keep_all (tau unused), every non-empty key is finite and
         * top_p < 1: S(omin) = tot >= thr (the same sum) and S(omax + 1) = 0,
         * and the boundary found is the same whatever the bracket (S is
         * monotone in u, every decision exact or with a safe margin). */
        unsigned lo = 0, hi = 0xff800001u;
        if (!keep_all) lo = omin, hi = omax + 1;
        if (!(thr > 0)) lo = hi = 0xff800001u;
        /* coarse search in float, then the last steps in double */
        const float thr_f = (float)thr;
        /* (skipped when thr is below the normal floats: its 1e-4 margins would
         * not hold, and at thr_f = 0 every S would pass) */
        while (thr_f >= FLT_MIN && hi - lo > 1) {
            unsigned mid = lo + (hi - lo) / 2;
            float S = mass_ge_f(mid);
            if (S >= thr_f * 1.0001f)
                lo = mid;
            else if (S < thr_f * 0.9999f)
                hi = mid;
            else
                break; /* too close to tell in float */
        }
        while (hi - lo > 1) {
            unsigned mid = lo + (hi - lo) / 2;
            const double S = mass_ge(mid);
            if (S >= thr)
                lo = mid;
            else
                hi = mid;
        }
        tau = lo;
        const double Sg = mass_ge(tau + 1);
        const int Cg = count_ge(tau + 1);
        /* the ties at tau in index order, each kept while the mass before it
         * is below thr (as the CPU's scan, whose tied weights may differ by
         * rounding; here the weight is a function of the key) */
        int j = 0;
        double cum = Sg;
        for (int base = 0; thr > 0 && cum < thr && base < ck; base += 32) {
            const int c = base + lane;
            const uint2 kc = c < ck ? kw[c] : make_uint2(0u, 0u);
            const bool tie = kc.x != 0 && kc.x == tau;
            const double x = tie ? (double)__uint_as_float(kc.y) : 0.0;
            double incl = x;
#pragma unroll
            for (int o = 1; o < 32; o <<= 1) {
                const double y = __shfl_up_sync(0xffffffffu, incl, o);
                if (lane >= o) incl += y;
            }
            j += __popc(__ballot_sync(0xffffffffu, tie && cum + (incl - x) < thr));
            cum += __shfl_sync(0xffffffffu, incl, 31);
        }
        keep_j = j;
        keep = Cg + j;
        if (!(thr > 0)) keep = keep_j = 0;
    }
    int fc = fl.floor_count[bh % H];
    if (fc > m) fc = m;
    if (keep < fc) {
        /* the fc largest: largest u with C(u) >= fc (exact counts; unless
         * keep_all, C(omin) = m >= fc and C(omax + 1) = 0 < fc) */
        unsigned lo = 0, hi = 0xff800001u;
        if (!keep_all) lo = omin, hi = omax + 1;
        while (hi - lo > 1) {
            unsigned mid = lo + (hi - lo) / 2;
            if (count_ge(mid) >= fc)
                lo = mid;
            else
                hi = mid;
        }
        tau = lo;
        keep_j = fc - count_ge(tau + 1);
        keep = fc;
    }
    /* ascending compaction: c = i * 32 + lane */
    int32_t *out = colbuf + ((size_t)bh * cq + r) * ck;
    int run_sel = 0, run_tie = 0;
    int64_t keys = 0;
    for (int base = 0; base < ck; base += 32) {
        const int c = base + lane;
        const unsigned bits = c < ck ? kw[c].x : 0u;
        const bool valid = bits != 0 && keep > 0;
        const bool tie = valid && bits == tau;
        const unsigned tb = __ballot_sync(0xffffffffu, tie);
        const bool sel = keep_all
                             ? (c < ck && ko[c + 1] > ko[c])
                             : valid && (bits > tau || (tie && run_tie + __popc(tb & lt) < keep_j));
        const unsigned sb = __ballot_sync(0xffffffffu, sel);
        if (sel) {
            out[run_sel + __popc(sb & lt)] = c;
            keys += ko[c + 1] - ko[c];
        }
        run_tie += __popc(tb);
        run_sel += __popc(sb);
    }
    double kt = warp_sum((double)keys);
    if (lane == 0) {
        cnt[(size_t)bh * cq + r] = run_sel;
        const int32_t *qo = q_off + (size_t)bh * (cq + 1);
        atomicAdd(dens + bh, kt * (double)(qo[r + 1] - qo[r]));
    }
}

cudaError_t svoo_cu_select(const float *A, const int32_t *q_off, const int32_t *k_off, int BH,
                           int H, int cq, int ck, double top_p, const svoo_cu_floor *fl,
                           int32_t *colbuf, int32_t *cnt, double *dens, cudaStream_t st) {
    const int64_t rows = (int64_t)BH * cq;
    /* 8 bytes per key cluster (ck rounded up to 64) and warp: 4 warps per
     * block up to ck = 2048 */
    const int ckp = (ck + 63) & ~63;
    if (ck <= SEL_CK4) {
        const size_t sm = (size_t)SEL_WARPS * ckp * sizeof(uint2);
        k_select<SEL_WARPS>
            <<<(unsigned)((rows + SEL_WARPS - 1) / SEL_WARPS), SEL_WARPS * 32, sm, st>>>(
                A, q_off, k_off, BH, H, cq, ck, top_p, *fl, colbuf, cnt, dens);
    } else {
        const size_t sm = (size_t)ckp * sizeof(uint2);
        k_select<1><<<(unsigned)rows, 32, sm, st>>>(A, q_off, k_off, BH, H, cq, ck, top_p, *fl,
                                                    colbuf, cnt, dens);
    }
    LAUNCH_CHECK();
}

/* global exclusive scan of the row counts of every bh (one block of 1024) */
__global__ void __launch_bounds__(1024)
    k_csr_scan(const int32_t *__restrict__ cnt, int BH, int cq, int32_t *__restrict__ row_ptr) {
    __shared__ int s_warp[32];
    const int tid = threadIdx.x;
    const int64_t total_rows = (int64_t)BH * cq;
    int carry = 0;
    for (int64_t base = 0; base < total_rows; base += 1024) {
        const int64_t i = base + tid;
        int total;
        const int v = i < total_rows ? cnt[i] : 0;
        const int excl = carry + block_exscan<1024>(
                                     v, tid & 31, tid >> 5, s_warp, [] { __syncthreads(); }, total);
        if (i < total_rows) {
            const int bh = (int)(i / cq), r = (int)(i % cq);
            row_ptr[(size_t)bh * (cq + 1) + r] = excl;
            if (r == cq - 1) row_ptr[(size_t)bh * (cq + 1) + cq] = excl + v;
        }
        carry += total;
        __syncthreads(); /* every s_warp read before the next round writes it */
    }
}

__global__ void k_csr_copy(const int32_t *__restrict__ cnt, const int32_t *__restrict__ colbuf,
                           int cq, int ck, const int32_t *__restrict__ row_ptr,
                           int32_t *__restrict__ col) {
    const int bh = blockIdx.y, r = blockIdx.x;
    const int k = cnt[(size_t)bh * cq + r];
    const int32_t *src = colbuf + ((size_t)bh * cq + r) * ck;
    int32_t *dst = col + row_ptr[(size_t)bh * (cq + 1) + r];
    for (int i = threadIdx.x; i < k; i += blockDim.x)
        dst[i] = src[i];
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
    const char *r = getenv("SVOO_CUDA_REFINE");
    float gap = r && r[0] == '0' ? -1.0f : INFINITY;
    g_refine_gap_host.store(gap, std::memory_order_relaxed);
    cudaError_t e = cudaMemcpyToSymbol(g_refine_gap, &gap, sizeof gap);
    /* m16 tiles per warp of the assignment: 2 where the shared memory allows;
     * SVOO_CUDA_ASSIGN_RT=1 forces 1 (experiments); grid: resident blocks */
    int dev = 0, optin = 0, nsm = 0;
    if (!e) e = cudaGetDevice(&dev);
    if (!e) e = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
    if (!e) e = cudaDeviceGetAttribute(&nsm, cudaDevAttrMultiProcessorCount, dev);
    const char *rt = getenv("SVOO_CUDA_ASSIGN_RT");
    const int optin_rt = rt && rt[0] == '1' ? 0 : optin;
    assign_cfg a64 = {}, a128 = {};
    if (!e) e = setup_assign<64>(optin_rt, nsm, &a64);
    if (!e) e = setup_assign<128>(optin_rt, nsm, &a128);
#ifdef SVOO_HAVE_SM90A
    /* the wgmma kernel on compute capability 9.0 (SVOO_CUDA_ASSIGN=sm80 keeps
     * the mma.sync one, for comparisons) */
    int major = 0, minor = 0;
    if (!e) e = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
    if (!e) e = cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
    const char *ak = getenv("SVOO_CUDA_ASSIGN");
    if (!e && major == 9 && minor == 0 && !(ak && !strcmp(ak, "sm80"))) {
        cudaError_t e90 = svoo_cu_assign90_setup(optin);
        if (e90 == cudaSuccess)
            a64.sm90 = a128.sm90 = nsm;
        else if (e90 != cudaErrorNotSupported)
            e = e90;
    }
#endif
    /* tests (validate.sh, racecheck.sh): a persistent grid of at most this many
     * blocks, so that every block takes many items even on small inputs */
    const char *gc = getenv("SVOO_CUDA_ASSIGN_GRID");
    const int cap = gc ? atoi(gc) : 0;
    if (cap > 0)
        for (assign_cfg *a : {&a64, &a128}) {
            a->blocks = a->blocks < cap ? a->blocks : cap;
            a->sm90 = a->sm90 < cap ? a->sm90 : cap;
        }
    if (!e && dev >= 0 && dev < ASSIGN_MAX_DEV)
        for (int i = 0; i < 2; i++) {
            const assign_cfg &a = i ? a128 : a64;
            g_assign[dev][i].rt.store(a.rt, std::memory_order_relaxed);
            g_assign[dev][i].blocks.store(a.blocks, std::memory_order_relaxed);
            g_assign[dev][i].sm90.store(a.sm90, std::memory_order_relaxed);
        }
    if (!e)
        e = cudaFuncSetAttribute(k_select<SEL_WARPS>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 64 * 1024);
    if (!e)
        e = cudaFuncSetAttribute(k_select<1>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 64 * 1024);
    return e;
}

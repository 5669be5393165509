/* ear_cuda.cu : error-aware routing (config.ear) on the GPU: svoo_cuda_attend_ear.
 * Semantics: src/attend/sparse.c (run_item's `if (ear)` branch and
 * ear_means): every key cluster c that query cluster r did not select, and that
 * is not empty, enters r's softmax as one pseudo-key, key = mean of c's keys,
 * value = mean of c's values, score bias ln(size_c).
 *
 *  - ear_means, first: one block per (b, h, key cluster): the means of the
 *    cluster's K and V rows (gathered through k_perm, f32 sums, stored in the
 *    input dtype) and the bias log2(size) (-inf for an empty cluster).
 *  - On Hopper the attention kernel itself then takes the pseudo-keys as key
 *    tiles after each item's own (attend_sm90.cu, EAR instantiations): one
 *    softmax over both, no second pass.
 *  - Elsewhere the attention kernel writes each row's log-sum-exp, then
 *    ear_attend: one block per work item of svoo_cuda_attend's work list (<= 128
 *    rows of one query cluster, 4 warps, 32 rows each as in attend_sm80.cu):
 *    the clusters r did not select are compacted into a list (bit mask of the
 *    CSR row in shared memory, block scan), the pseudo-keys and their values
 *    are gathered in tiles of KN with cp.async (double buffered) and go
 *    through mma.sync with an online softmax whose scores carry the bias. The
 *    epilogue merges this partial with the kernel's normalised output o_a
 *    (already in p->o, original row order) using the two log-sum-exps:
 *    o = w_a o_a + w_b o_b / l_b, w_a = e^lse_a / (e^lse_a + e^lse_b),
 *    w_b = 1 - w_a; rows with no dropped cluster keep o_a as it is.
 * Cost at 12 x 75,600 x 128, Ck = 1024: one N x Ck_dropped x D GEMM pair (0.48
 * TFLOP if every cluster were dropped; only the dropped ones are computed) plus
 * one read of K and V (the means). The two-pass path measured 2.3 ms of
 * ear_attend beside 21.8 ms of attention on an H200 (ncu, top-p 0.6), where the
 * pseudo-key tiles now take ~1.2 ms inside the kernel (docs/CUDA_KERNEL.md,
 * "Ninth stop"); pseudo_tiles in attend_sm90.cu builds the same list for a
 * plain item, keeping the empty clusters (bias -inf) that ear_attend skips,
 * and for a union item the union of its members' drops, masked per member. */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <type_traits>

#include "attend_common.cuh"
#include "cuda_common.h"

namespace {

using namespace svoo_attend;

constexpr int NTHR = 128; /* 4 warps */
constexpr int BM = 128;   /* rows per block (work items have <= 128) */
constexpr int CH = 1024;  /* key clusters per mask chunk */

size_t align256(size_t x) {
    return (x + 255) & ~(size_t)255;
}

/* ear workspace: mu [BH][Ck][D] T, mv [BH][Ck][D] T, b2 [BH][Ck] f32, lse
 * [BH][N_q] f32 (the two-pass path's row log-sum-exps) */
struct EarLayout {
    size_t mu, mv, b2, lse, total;
};
EarLayout ear_layout(int64_t BH, int64_t N_q, int64_t Ck, int64_t D) {
    EarLayout w;
    w.mu = 0;
    w.mv = align256(w.mu + (size_t)(BH * Ck * D) * 2);
    w.b2 = align256(w.mv + (size_t)(BH * Ck * D) * 2);
    w.lse = align256(w.b2 + (size_t)(BH * Ck) * 4);
    w.total = align256(w.lse + (size_t)(BH * N_q) * 4);
    return w;
}

template <typename T> __device__ __forceinline__ void add8(float (&a)[8], const uint4 &u) {
    const T *x = reinterpret_cast<const T *>(&u);
#pragma unroll
    for (int i = 0; i < 8; i++) {
        if constexpr (std::is_same<T, __nv_bfloat16>::value)
            a[i] += __bfloat162float(x[i]);
        else
            a[i] += __half2float(x[i]);
    }
}

/* means of key cluster c of head bh: blockIdx.x = bh * Ck + c; with kc (and
 * vc) the rows read are also copied there, [B*H][N_k][D] in key-cluster order
 * (the copy the attention then reads without k_perm) */
template <int D, typename T>
__global__ void __launch_bounds__(NTHR)
    ear_means(const svoo_cuda_attend_params p, T *mu, T *mv, float *b2, T *kc, T *vc) {
    constexpr int CPR = D / 8, RG = NTHR / CPR; /* chunks per row, rows in flight */
    __shared__ float red[2][RG][D];
    const int64_t idx = blockIdx.x;
    const int bh = (int)(idx / p.Ck), c = (int)(idx % p.Ck);
    const int b = bh / p.H, h = bh - b * p.H;
    const int32_t *koff = p.k_off + (int64_t)bh * (p.Ck + 1);
    const int k0 = __ldg(koff + c), k1 = __ldg(koff + c + 1);
    const int32_t *kperm = p.k_perm ? p.k_perm + (int64_t)bh * p.N_k : nullptr;
    const T *kb = reinterpret_cast<const T *>(p.k) + b * p.k_stride_b + h * p.k_stride_h;
    const T *vb = reinterpret_cast<const T *>(p.v) + b * p.v_stride_b + h * p.v_stride_h;
    const int tid = threadIdx.x, rg = tid / CPR, ch = tid % CPR;
    float ak[8] = {0, 0, 0, 0, 0, 0, 0, 0}, av[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int j = k0 + rg; j < k1; j += RG) {
        const int64_t r = kperm ? __ldg(kperm + j) : j;
        const uint4 uk = __ldg(reinterpret_cast<const uint4 *>(kb + r * p.k_stride_n + ch * 8));
        const uint4 uv = __ldg(reinterpret_cast<const uint4 *>(vb + r * p.v_stride_n + ch * 8));
        if (kc) {
            const int64_t x = ((int64_t)bh * p.N_k + j) * D + ch * 8;
            *reinterpret_cast<uint4 *>(kc + x) = uk;
            *reinterpret_cast<uint4 *>(vc + x) = uv;
        }
        add8<T>(ak, uk);
        add8<T>(av, uv);
    }
#pragma unroll
    for (int i = 0; i < 8; i++) {
        red[0][rg][ch * 8 + i] = ak[i];
        red[1][rg][ch * 8 + i] = av[i];
    }
    __syncthreads();
    const int n = k1 - k0;
    const float inv = n > 0 ? 1.f / (float)n : 0.f;
    for (int x = tid; x < 2 * D; x += NTHR) {
        const int w = x / D, e = x % D;
        float sum = 0.f;
#pragma unroll
        for (int g = 0; g < RG; g++)
            sum += red[w][g][e];
        T *dst = (w ? mv : mu) + idx * D + e;
        if constexpr (std::is_same<T, __nv_bfloat16>::value)
            *dst = __float2bfloat16_rn(sum * inv);
        else
            *dst = __float2half_rn(sum * inv);
    }
    if (tid == 0) b2[idx] = n > 0 ? log2f((float)n) : -INFINITY;
}

template <int D, int KN> struct EarSmem {
    static constexpr size_t q = 0; /* [BM][D], swizzled; the epilogue stages o_b here */
    static constexpr size_t k = q + (size_t)BM * D * 2;
    static constexpr size_t v = k + (size_t)2 * KN * D * 2;
    static constexpr size_t list = v + (size_t)2 * KN * D * 2; /* dropped clusters of a chunk */
    static constexpr size_t bits = list + (size_t)CH * 4;      /* selected, bit per cluster */
    static constexpr size_t bias = bits + (size_t)CH / 8;      /* [2][KN] log2 sizes */
    static constexpr size_t wa = bias + (size_t)2 * KN * 4;    /* [BM] merge weight of o_a */
    static constexpr size_t scan = wa + (size_t)BM * 4;
    static constexpr size_t total = scan + 8 * 4 + 1024; /* + alignment slack */
};

/* one tile of KN pseudo-keys: S = Q Mu^T, S <- S*sl2 + bias (log2 units),
 * online softmax, O += P Mv. NM = active m-frags of this warp (1 or 2). */
template <int D, typename T, int KN, int NM>
__device__ __forceinline__ void ear_tile(uint32_t qa, uint32_t ka, uint32_t va, int lane,
                                         const float *bias, float sl2, float (&o)[2][D / 8][4],
                                         float (&m)[2][2], float (&l)[2][2]) {
    constexpr int NW = 4;
    float s[NM][KN / 8][4];
    mma_qk<D, T, KN, NW, NM>(s, qa, ka);
    /* this lane's columns 8n + 2*(lane&3) + {0,1} carry bias[col] (-inf past the end) */
    const float *bl = bias + 2 * (lane & 3);
#pragma unroll
    for (int mi = 0; mi < NM; mi++)
#pragma unroll
        for (int n = 0; n < KN / 8; n++) {
            const float2 bv = *reinterpret_cast<const float2 *>(bl + n * 8);
#pragma unroll
            for (int e = 0; e < 4; e++)
                s[mi][n][e] = fmaf(s[mi][n][e], sl2, e & 1 ? bv.y : bv.x);
        }
    online_softmax<D, KN, NM>(s, 1.f, o, m, l);
    mma_pv<D, T, KN, NM>(o, s, va);
}

template <int D, typename T, int KN>
__global__ void __launch_bounds__(NTHR, 2)
    ear_attend(const svoo_cuda_attend_params p, const Tile *__restrict__ tiles,
               const int *__restrict__ ntiles, const T *__restrict__ mu, const T *__restrict__ mv,
               const float *__restrict__ b2) {
    if ((int)blockIdx.x >= __ldg(ntiles)) return;
    extern __shared__ __align__(128) unsigned char smem_raw[];
    using S = EarSmem<D, KN>;
    constexpr int NW = 4;
    unsigned char *smem = smem_raw + ((1024 - (smem_u32(smem_raw) & 1023)) & 1023);
    T *Qs = reinterpret_cast<T *>(smem + S::q);
    int *list = reinterpret_cast<int *>(smem + S::list);
    uint32_t *bits = reinterpret_cast<uint32_t *>(smem + S::bits);
    float *sbias = reinterpret_cast<float *>(smem + S::bias);
    float *swa = reinterpret_cast<float *>(smem + S::wa);
    int *scan = reinterpret_cast<int *>(smem + S::scan);
    const uint32_t qs = smem_u32(smem + S::q), ks0 = smem_u32(smem + S::k),
                   vs0 = smem_u32(smem + S::v);
    constexpr int CPR = D / 8;
    constexpr int CPT = CPR * 8 > NTHR ? CPR * 8 / NTHR : 1; /* chunks per thread and row */
    constexpr int TPR = CPR / CPT;                           /* threads per row */
    constexpr int RPI = NTHR / TPR;                          /* rows per load pass */
    static_assert(RPI % 8 == 0 && (CPT == 1 || TPR == 8), "load mapping");
    static_assert(KN % RPI == 0 && KN <= NTHR, "key tile");

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const Tile tl = tiles[blockIdx.x];
    const int bh = tl.bh, b = bh / p.H, h = bh - b * p.H;
    const int row0 = tl.row0, nrows = tl.nrows;
    const int32_t *qperm = p.q_perm ? p.q_perm + (int64_t)bh * p.N_q : nullptr;
    const T *qb = reinterpret_cast<const T *>(p.q) + b * p.q_stride_b + h * p.q_stride_h;
    T *ob = reinterpret_cast<T *>(p.o) + b * p.o_stride_b + h * p.o_stride_h;
    const T *mub = mu + (int64_t)bh * p.Ck * D, *mvb = mv + (int64_t)bh * p.Ck * D;
    const float *bb = b2 + (int64_t)bh * p.Ck;

    const int lrow = tid / TPR, lc = tid % TPR;
    const uint32_t ldst = ks0 + lrow * D * 2 + ((lc ^ (lrow & 7)) << 4);
    /* Q tile, gathered */
    load_q_tile<D, BM, RPI, CPT>(ldst - (uint32_t)(S::k - S::q), lrow, lc, qb, p, qperm, row0,
                                 nrows);
    float o[2][D / 8][4];
    float m[2][2], l[2][2];
    init_acc<D>(o, m, l);
    const int nm = (warp * 16 < nrows) + (16 * NW + warp * 16 < nrows);
    const float sl2 = p.scale * 1.4426950408889634f;
    const int l7 = lane & 7, g = lane >> 3;
    const uint32_t qa = qs + (warp * 16 + l7 + (g & 1) * 8) * D * 2 + (((g >> 1) ^ l7) << 4);
    const uint32_t ka0 = ks0 + (l7 + (g >> 1) * 8) * D * 2 + (((g & 1) ^ l7) << 4);
    const uint32_t va0 = vs0 + (l7 + (g & 1) * 8) * D * 2 + (((g >> 1) ^ l7) << 4);

    const int e0 = __ldg(p.row_ptr + (int64_t)bh * (p.Cq + 1) + tl.r);
    const int e1 = __ldg(p.row_ptr + (int64_t)bh * (p.Cq + 1) + tl.r + 1);
    constexpr int PER = CH / NTHR;
    for (int c0 = 0; c0 < p.Ck; c0 += CH) {
        const int nc = min(CH, p.Ck - c0);
        __syncthreads(); /* the previous chunk's list readers are done */
        for (int i = tid; i < CH / 32; i += NTHR)
            bits[i] = 0u;
        __syncthreads();
        for (int e = e0 + tid; e < e1; e += NTHR) {
            const int c = __ldg(p.col + e) - c0;
            if (c >= 0 && c < nc) atomicOr(bits + (c >> 5), 1u << (c & 31));
        }
        __syncthreads();
        /* compaction of the dropped, non-empty clusters (in index order) */
        unsigned keep = 0;
        int run = 0;
#pragma unroll
        for (int j = 0; j < PER; j++) {
            const int i = tid * PER + j;
            const bool k =
                i < nc && !((bits[i >> 5] >> (i & 31)) & 1u) && __ldg(bb + c0 + i) != -INFINITY;
            keep |= (unsigned)k << j;
            run += k;
        }
        int total;
        int pos = block_exscan<NTHR>(
            run, lane, warp, scan, [] { __syncthreads(); }, total);
#pragma unroll
        for (int j = 0; j < PER; j++)
            if ((keep >> j) & 1u) list[pos++] = c0 + tid * PER + j;
        __syncthreads();
        const int ntk = (total + KN - 1) / KN;
        auto load = [&](int t, int buf) {
            const uint32_t kd = ldst + buf * KN * D * 2,
                           vd = ldst + (uint32_t)(S::v - S::k) + buf * KN * D * 2;
#pragma unroll
            for (int it = 0; it < KN / RPI; it++) {
                const int x = t * KN + lrow + it * RPI;
                const int c = x < total ? list[x] : 0;
                const int bytes = x < total ? 16 : 0;
#pragma unroll
                for (int j = 0; j < CPT; j++) {
                    cp_async16(kd + it * RPI * D * 2 + j * 128,
                               mub + (int64_t)c * D + (lc + 8 * j) * 8, bytes);
                    cp_async16(vd + it * RPI * D * 2 + j * 128,
                               mvb + (int64_t)c * D + (lc + 8 * j) * 8, bytes);
                }
            }
            cp_commit();
            if (tid < KN) {
                const int x = t * KN + tid;
                sbias[buf * KN + tid] = x < total ? __ldg(bb + list[x]) : -INFINITY;
            }
        };
        if (ntk > 0) load(0, 0);
        for (int t = 0; t < ntk; t++) {
            cp_wait0();
            __syncthreads();
            if (t + 1 < ntk) load(t + 1, (t + 1) & 1);
            const uint32_t ka = ka0 + (t & 1) * KN * D * 2, va = va0 + (t & 1) * KN * D * 2;
            const float *bs = sbias + (t & 1) * KN;
            if (nm == 2)
                ear_tile<D, T, KN, 2>(qa, ka, va, lane, bs, sl2, o, m, l);
            else if (nm == 1)
                ear_tile<D, T, KN, 1>(qa, ka, va, lane, bs, sl2, o, m, l);
        }
    }

    /* epilogue: weights of o_a and o_b per row, stage w_b o_b / l_b in the
     * warp's own Q rows, then o = w_a o_a + staged, 16-byte rows */
    cp_wait0();
    __syncthreads();
    constexpr float LOG2E = 1.4426950408889634f;
#pragma unroll
    for (int mi = 0; mi < 2; mi++) {
        if (mi >= nm) break;
#pragma unroll
        for (int hi = 0; hi < 2; hi++) {
            float ls = l[mi][hi];
            ls += __shfl_xor_sync(0xffffffffu, ls, 1);
            ls += __shfl_xor_sync(0xffffffffu, ls, 2);
            const int row = mi * 16 * NW + warp * 16 + (lane >> 2) + hi * 8;
            const float la =
                row < nrows ? p.lse[(int64_t)bh * p.N_q + row0 + row] * LOG2E : -INFINITY;
            const float lb = ls > 0.f ? m[mi][hi] + __log2f(ls) : (ls != ls ? ls : -INFINITY);
            const float mx = fmaxf(la, lb);
            float wa = 1.f, cb = 0.f; /* nothing dropped (lb = -inf): o_a as it is */
            if (lb != -INFINITY) {
                const float ea = la == -INFINITY ? 0.f : exp2f(la - mx), eb = exp2f(lb - mx);
                const float den = ea + eb;
                wa = ea / den;
                cb = eb / den / ls;
            }
            if (la != la || lb != lb) wa = cb = NAN;
            /* -1: nothing dropped, the row is left as the kernel wrote it (bit for
             * bit: the merge would turn -0 into +0 and rewrite NaN payloads) */
            if ((lane & 3) == 0) swa[row] = lb == -INFINITY ? -1.f : wa;
            stage_o_row<D, T>(Qs, row, o[mi], hi, lane, cb);
        }
    }
    __syncwarp();
#pragma unroll
    for (int mi = 0; mi < 2; mi++) {
        if (mi >= nm) break;
#pragma unroll
        for (int it = 0; it < 16 * CPR / 32; it++) {
            const int idx = it * 32 + lane, rr = idx / CPR, c = idx % CPR;
            const int row = mi * 16 * NW + warp * 16 + rr;
            if (row < nrows && !(swa[row] < 0.f)) { /* w_a in [0, 1] or NaN: merge */
                const int orig = qperm ? __ldg(qperm + row0 + row) : row0 + row;
                uint4 *dst = reinterpret_cast<uint4 *>(ob + (int64_t)orig * p.o_stride_n + c * 8);
                const uint4 ua = *dst;
                const uint4 ub = *reinterpret_cast<const uint4 *>(Qs + swz<D>(row, c));
                const T *xa = reinterpret_cast<const T *>(&ua),
                        *xb = reinterpret_cast<const T *>(&ub);
                const float wa = swa[row];
                uint4 r;
                uint32_t *rw = reinterpret_cast<uint32_t *>(&r);
#pragma unroll
                for (int i = 0; i < 4; i++)
                    rw[i] = pack2<T>(fmaf(wa, to_f(xa[2 * i]), to_f(xb[2 * i])),
                                     fmaf(wa, to_f(xa[2 * i + 1]), to_f(xb[2 * i + 1])));
                *dst = r;
            }
        }
    }
}

template <int D, typename T>
svoo_status launch_means(const svoo_cuda_attend_params *p, const EarLayout &el, char *ews, void *kv,
                         cudaStream_t s) {
    const int64_t nblk = (int64_t)p->B * p->H * p->Ck;
    T *kc = (T *)kv, *vc = kc ? kc + (int64_t)p->B * p->H * p->N_k * D : nullptr;
    ear_means<D, T><<<(unsigned)nblk, NTHR, 0, s>>>(*p, (T *)(ews + el.mu), (T *)(ews + el.mv),
                                                    (float *)(ews + el.b2), kc, vc);
    return check_launch("EAR means");
}

template <int D, typename T, int KN>
svoo_status launch_ear(const svoo_cuda_attend_params *p, const WorkList &wl, const EarLayout &el,
                       char *ews, int dev, cudaStream_t s) {
    const T *mu = (const T *)(ews + el.mu), *mv = (const T *)(ews + el.mv);
    const float *b2 = (const float *)(ews + el.b2);
    constexpr size_t sm = EarSmem<D, KN>::total;
    const cudaError_t e = smem_once<ear_attend<D, T, KN>, sm>(dev); /* once per device */
    if (e != cudaSuccess)
        return fail(SVOO_ERR_CUDA, "svoo_cuda_attend_ear: cudaFuncSetAttribute(%zu bytes): %s: %s",
                    sm, cudaGetErrorName(e), cudaGetErrorString(e));
    ear_attend<D, T, KN>
        <<<(unsigned)wl.max_tiles, NTHR, sm, s>>>(*p, wl.tiles, wl.ntiles, mu, mv, b2);
    return check_launch("EAR kernel");
}

template <int D, typename T>
svoo_status launch_ear_d(const svoo_cuda_attend_params *p, const WorkList &wl, const EarLayout &el,
                         char *ews, cudaStream_t s, const DevAttrs &da) {
    /* pseudo-keys per tile: 32 at D = 128 (no spills; 64 spills 84 bytes), 64 at
     * D = 64 (no spills either). On an H200 the EAR part of a 720p call measured
     * 1.2 ms with 32 and 2.3 ms with 64 in one command, 2.5 ms with 32 in the
     * next: not settled (docs/CUDA.md). SVOO_CUDA_EAR_KN=32|64 overrides (dev
     * knob), 64 only where a block can have the shared memory. */
    const char *env = getenv("SVOO_CUDA_EAR_KN");
    int kn = D == 128 ? 32 : 64;
    if (env && (atoi(env) == 32 || atoi(env) == 64)) kn = atoi(env);
    if (kn == 64 && EarSmem<D, 64>::total <= (size_t)da.optin)
        return launch_ear<D, T, 64>(p, wl, el, ews, da.dev, s);
    return launch_ear<D, T, 32>(p, wl, el, ews, da.dev, s);
}

} // namespace

extern "C" size_t svoo_cuda_ear_workspace(int B, int H, int N_q, int Ck, int D) {
    if (B < 1 || H < 1 || N_q < 1 || Ck < 1 || D < 1) return 0;
    return ear_layout((int64_t)B * H, N_q, Ck, D).total;
}

extern "C" svoo_status svoo_cuda_attend_ear(const svoo_cuda_attend_params *p, void *workspace,
                                            size_t ws_bytes, void *ear_ws, size_t ear_bytes,
                                            void *kv_copy, void *stream) {
    /* every check before the first launch (the means): a status, no launch */
    svoo_status st = attend_check(p, workspace, ws_bytes);
    if (st) return st;
    if (p->lse)
        return fail(SVOO_ERR_INVALID_ARGUMENT,
                    "svoo_cuda_attend_ear: p->lse must be NULL (the log-sum-exps of the "
                    "selected keys alone are not this call's)");
    if (!ear_ws) return fail(SVOO_ERR_NULL_POINTER, "svoo_cuda_attend_ear: EAR workspace is NULL");
    const int64_t BH = (int64_t)p->B * p->H;
    if (BH * p->Ck > 0x7fffffff)
        return fail(SVOO_ERR_INVALID_ARGUMENT, "svoo_cuda_attend_ear: %lld heads x %d clusters",
                    (long long)BH, p->Ck);
    const EarLayout el = ear_layout(BH, p->N_q, p->Ck, p->D);
    if (ear_bytes < el.total)
        return fail(SVOO_ERR_WORKSPACE_TOO_SMALL,
                    "svoo_cuda_attend_ear: EAR workspace %zu bytes, %zu needed", ear_bytes,
                    el.total);
    if ((uintptr_t)ear_ws & 255)
        return fail(SVOO_ERR_MISALIGNED,
                    "svoo_cuda_attend_ear: EAR workspace not 256-byte aligned");
    if ((uintptr_t)kv_copy & 15)
        return fail(SVOO_ERR_MISALIGNED, "svoo_cuda_attend_ear: kv_copy not 16-byte aligned");
    DevAttrs da; /* queried once per device */
    if ((st = query_device(&da, "svoo_cuda_attend_ear"))) return st;
    if ((st = check_launch("earlier asynchronous error"))) return st;
    cudaStream_t s = (cudaStream_t)stream;
    char *ews = (char *)ear_ws;
    const bool bf = p->dtype == SVOO_CUDA_BF16;
    st = p->D == 128 ? (bf ? launch_means<128, __nv_bfloat16>(p, el, ews, kv_copy, s)
                           : launch_means<128, __half>(p, el, ews, kv_copy, s))
                     : (bf ? launch_means<64, __nv_bfloat16>(p, el, ews, kv_copy, s)
                           : launch_means<64, __half>(p, el, ews, kv_copy, s));
    if (st) return st;
    svoo_cuda_attend_params pk = *p; /* with kv_copy: the keys in cluster order */
    if (kv_copy) {
        svoo_cuda_attend_params_kv_copy(&pk, kv_copy);
        p = &pk;
    }
    if (attend_fuses_ear(da)) { /* Hopper: pseudo-key tiles in the attention kernel */
        const EarView ev = {ews + el.mu, ews + el.mv, (const float *)(ews + el.b2)};
        return attend_launch(p, workspace, s, &ev, da);
    }
    /* elsewhere: the attention kernel with its row log-sum-exps, then the
     * pseudo-keys' pass over its work list, merged into o */
    svoo_cuda_attend_params pl = *p;
    pl.lse = (float *)(ews + el.lse);
    if ((st = attend_launch(&pl, workspace, s, nullptr, da))) return st;
    const WorkList wl = worklist_in(&pl, workspace);
    if (p->D == 128)
        return bf ? launch_ear_d<128, __nv_bfloat16>(&pl, wl, el, ews, s, da)
                  : launch_ear_d<128, __half>(&pl, wl, el, ews, s, da);
    return bf ? launch_ear_d<64, __nv_bfloat16>(&pl, wl, el, ews, s, da)
              : launch_ear_d<64, __half>(&pl, wl, el, ews, s, da);
}

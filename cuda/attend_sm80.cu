/* attend_sm80.cu : variable-block sparse attention, mma.sync (sm_80 and later),
 * FlashAttention-2 style. Interface and semantics: attend.h.
 *
 * Work item = a tile of <= BM = 128 rows of one query cluster of one (b, h)
 * (a cluster of R rows gives floor(R/128) full tiles and one tail tile). The
 * tile's keys are the concatenation of its selected key clusters, streamed in
 * key tiles of BN = 64 positions filled through an index list (no per-cluster
 * padding): a shared-memory table of (start, exclusive prefix) of the
 * selected clusters maps a concatenated position to a permuted key position
 * by binary search, then k_perm gives the original row. Q/K/V rows are
 * gathered on load with cp.async (zero fill past the end), O is scattered on
 * store to the original rows.
 *
 * 4 warps, warp w owns rows 16w..16w+15 and 64+16w..64+16w+15 of the tile
 * (a tail tile of 16*j rows keeps work spread over the warps). Online softmax
 * in registers, exp2 with the scale folded in. K/V double buffered: the load
 * of key tile t+1 is in flight while tile t is computed, and the index list
 * of tile t+2 is computed (its k_perm loads in flight) during tile t too.
 *
 * The work list (worklist.cu) is built on the device into the caller's
 * workspace; this kernel never gets union items. */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <type_traits>

#include "attend_common.cuh"

namespace svoo_attend {

thread_local char g_err[256];

svoo_status fail(svoo_status st, const char *fmt, ...) {
    if (st == SVOO_ERR_CUDA) cudaGetLastError(); /* reported here, not again by the next call */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
    return st;
}

bool env_off(const char *name) {
    const char *e = getenv(name);
    return e && strcmp(e, "0") == 0;
}

svoo_status query_device(DevAttrs *a, const char *who) {
    const cudaError_t e = device_attrs(a);
    if (e != cudaSuccess)
        return fail(SVOO_ERR_CUDA, "%s: device query: %s: %s", who, cudaGetErrorName(e),
                    cudaGetErrorString(e));
    return SVOO_OK;
}

cudaError_t device_attrs(DevAttrs *a) {
    /* the cache: nsm 0 = not yet queried (stored last, with release) */
    static std::atomic<int> g_nsm[MAX_DEV], g_optin[MAX_DEV], g_major[MAX_DEV], g_minor[MAX_DEV];
    cudaError_t e = cudaGetDevice(&a->dev);
    if (e != cudaSuccess) return e;
    const int d = a->dev;
    const bool cache = d >= 0 && d < MAX_DEV;
    if (cache && (a->nsm = g_nsm[d].load(std::memory_order_acquire)) > 0) {
        a->optin = g_optin[d].load(std::memory_order_relaxed);
        a->major = g_major[d].load(std::memory_order_relaxed);
        a->minor = g_minor[d].load(std::memory_order_relaxed);
        return cudaSuccess;
    }
    e = cudaDeviceGetAttribute(&a->nsm, cudaDevAttrMultiProcessorCount, d);
    if (e == cudaSuccess)
        e = cudaDeviceGetAttribute(&a->optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, d);
    if (e == cudaSuccess)
        e = cudaDeviceGetAttribute(&a->major, cudaDevAttrComputeCapabilityMajor, d);
    if (e == cudaSuccess)
        e = cudaDeviceGetAttribute(&a->minor, cudaDevAttrComputeCapabilityMinor, d);
    if (e != cudaSuccess || !cache || a->nsm <= 0) return e;
    g_optin[d].store(a->optin, std::memory_order_relaxed);
    g_major[d].store(a->major, std::memory_order_relaxed);
    g_minor[d].store(a->minor, std::memory_order_relaxed);
    g_nsm[d].store(a->nsm, std::memory_order_release);
    return cudaSuccess;
}

svoo_status check_launch(const char *what) {
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        return fail(SVOO_ERR_CUDA, "svoo_cuda_attend: %s: %s: %s", what, cudaGetErrorName(e),
                    cudaGetErrorString(e));
    return SVOO_OK;
}

} // namespace svoo_attend

namespace {

using namespace svoo_attend;

/* per configuration: NW warps, BM = 32 * NW rows per tile, CAP selected
 * clusters per table segment */
template <int NW> struct Cfg {
    static constexpr int NT = 32 * NW, BM = 32 * NW, CAP = NW == 4 ? 1024 : 512;
};

/* shared memory of the attention kernel */
template <int D, int KN, int NW> struct Smem {
    static constexpr int BM = Cfg<NW>::BM, CAP = Cfg<NW>::CAP;
    static constexpr size_t q = 0;
    static constexpr size_t k = q + (size_t)BM * D * 2;
    static constexpr size_t v = k + (size_t)2 * KN * D * 2;
    static constexpr size_t tstart = v + (size_t)2 * KN * D * 2;
    static constexpr size_t tcum = tstart + (size_t)CAP * 4;
    static constexpr size_t kidx = tcum + (size_t)(CAP + 4) * 4;
    static constexpr size_t scan = kidx + (size_t)2 * KN * 4;
    static constexpr size_t total = scan + 16 * 4 + 1024; /* + alignment slack */
};

/* one key tile: S = Q K^T, online softmax, O += P V. NM = active m-frags
 * of this warp (1 or 2). */
template <int D, typename T, int KN, int NW, int NM>
__device__ __forceinline__ void tile_compute(uint32_t qa, uint32_t ka, uint32_t va, int lane,
                                             int nvalid, float sl2, float (&o)[2][D / 8][4],
                                             float (&m)[2][2], float (&l)[2][2]) {
    float s[NM][KN / 8][4];
    mma_qk<D, T, KN, NW, NM>(s, qa, ka);

    /* mask keys past the end (only the last key tile is partial) */
    if (nvalid < KN) {
#pragma unroll
        for (int mi = 0; mi < NM; mi++)
#pragma unroll
            for (int n = 0; n < KN / 8; n++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                    if (n * 8 + 2 * (lane & 3) + (e & 1) >= nvalid) s[mi][n][e] = -INFINITY;
    }

    online_softmax<D, KN, NM>(s, sl2, o, m, l);
    mma_pv<D, T, KN, NM>(o, s, va);
}

template <int D, typename T, int KN, int NW, bool LSE>
__global__ void __launch_bounds__(32 * NW, 8 / NW)
    attend_kernel(const svoo_cuda_attend_params p, const Tile *__restrict__ tiles,
                  const int *__restrict__ ntiles) {
    if ((int)blockIdx.x >= __ldg(ntiles)) return;
    extern __shared__ __align__(128) unsigned char smem_raw[];
    using S = Smem<D, KN, NW>;
    constexpr int NTHR = Cfg<NW>::NT, BM = Cfg<NW>::BM, CAP = Cfg<NW>::CAP;
    /* 1024-byte aligned base (the swizzle XORs address bits 4..7) */
    unsigned char *smem = smem_raw + ((1024 - (smem_u32(smem_raw) & 1023)) & 1023);
    T *Qs = reinterpret_cast<T *>(smem + S::q);
    int *tstart = reinterpret_cast<int *>(smem + S::tstart);
    int *tcum = reinterpret_cast<int *>(smem + S::tcum);
    int *kidx = reinterpret_cast<int *>(smem + S::kidx);
    int *scan = reinterpret_cast<int *>(smem + S::scan);
    const uint32_t qs = smem_u32(smem + S::q), ks0 = smem_u32(smem + S::k),
                   vs0 = smem_u32(smem + S::v);
    constexpr int CPR = D / 8;                               /* 16-byte chunks per row */
    constexpr int CPT = CPR * 8 > NTHR ? CPR * 8 / NTHR : 1; /* chunks per thread and row */
    constexpr int TPR = CPR / CPT;                           /* threads per row */
    constexpr int RPI = NTHR / TPR; /* rows per load pass; a multiple of 8 */
    static_assert(RPI % 8 == 0 && (CPT == 1 || TPR == 8), "load mapping");

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const Tile tl = tiles[blockIdx.x];
    const int bh = tl.bh, b = bh / p.H, h = bh - b * p.H;
    const int row0 = tl.row0, nrows = tl.nrows;

    const int32_t *qperm = p.q_perm ? p.q_perm + (int64_t)bh * p.N_q : nullptr;
    const int32_t *kperm = p.k_perm ? p.k_perm + (int64_t)bh * p.N_k : nullptr;
    const int32_t *koff = p.k_off + (int64_t)bh * (p.Ck + 1);
    const T *qb = reinterpret_cast<const T *>(p.q) + b * p.q_stride_b + h * p.q_stride_h;
    const T *kb = reinterpret_cast<const T *>(p.k) + b * p.k_stride_b + h * p.k_stride_h;
    const T *vb = reinterpret_cast<const T *>(p.v) + b * p.v_stride_b + h * p.v_stride_h;
    T *ob = reinterpret_cast<T *>(p.o) + b * p.o_stride_b + h * p.o_stride_h;

    /* this thread's (row, chunk) in the load passes: row lrow + it*RPI, chunk lc;
     * (row & 7) is the same in every pass, so the swizzled offset is too */
    const int lrow = tid / TPR, lc = tid % TPR; /* chunks lc + 8j (j < CPT): +128j bytes */
    const uint32_t ldst = ks0 + lrow * D * 2 + ((lc ^ (lrow & 7)) << 4);
    /* Q tile, gathered */
    load_q_tile<D, BM, RPI, CPT>(ldst - (uint32_t)(S::k - S::q), lrow, lc, qb, p, qperm, row0,
                                 nrows);
    float o[2][D / 8][4];
    float m[2][2], l[2][2];
    init_acc<D>(o, m, l);
    const int nm = (warp * 16 < nrows) + (16 * NW + warp * 16 < nrows); /* active m-frags */
    const float sl2 = p.scale * 1.4426950408889634f;
    const int l7 = lane & 7, g = lane >> 3;
    const uint32_t qa = qs + (warp * 16 + l7 + (g & 1) * 8) * D * 2 + (((g >> 1) ^ l7) << 4);
    const uint32_t ka0 = ks0 + (l7 + (g >> 1) * 8) * D * 2 + (((g & 1) ^ l7) << 4);
    const uint32_t va0 = vs0 + (l7 + (g & 1) * 8) * D * 2 + (((g >> 1) ^ l7) << 4);

    const int e0 = __ldg(p.row_ptr + (int64_t)bh * (p.Cq + 1) + tl.r);
    const int e1 = __ldg(p.row_ptr + (int64_t)bh * (p.Cq + 1) + tl.r + 1);
    for (int seg = e0; seg < e1; seg += CAP) {
        const int nseg = min(CAP, e1 - seg);
        __syncthreads(); /* previous segment's table readers are done */
        const int total = build_table<NTHR, CAP>(p.col, koff, seg, nseg, tid, tstart, tcum, scan,
                                                 [] { __syncthreads(); });
        const int ntk = (total + KN - 1) / KN;
        if (ntk == 0) continue;

        int cur = 0; /* this thread's table cursor (threads < KN) */
        if (tid < KN) {
            kidx[tid] = key_row(tid, total, cur, tstart, tcum, kperm);
            kidx[KN + tid] = key_row(KN + tid, total, cur, tstart, tcum, kperm);
        }
        __syncthreads();
        auto load_kv = [&](int buf) {
            const int *ki = kidx + buf * KN + lrow;
            const uint32_t kd = ldst + buf * KN * D * 2,
                           vd = ldst + (uint32_t)(S::v - S::k) + buf * KN * D * 2;
#pragma unroll
            for (int it = 0; it < KN / RPI; it++) {
                int kr = ki[it * RPI];
                int bytes = kr >= 0 ? 16 : 0;
                int64_t r = kr >= 0 ? kr : 0;
#pragma unroll
                for (int j = 0; j < CPT; j++) {
                    cp_async16(kd + it * RPI * D * 2 + j * 128,
                               kb + r * p.k_stride_n + (lc + 8 * j) * 8, bytes);
                    cp_async16(vd + it * RPI * D * 2 + j * 128,
                               vb + r * p.v_stride_n + (lc + 8 * j) * 8, bytes);
                }
            }
            cp_commit();
        };
        load_kv(0);
        for (int t = 0; t < ntk; t++) {
            cp_wait0();
            __syncthreads();
            if (t + 1 < ntk) load_kv((t + 1) & 1);
            const bool want = tid < KN && t + 2 < ntk;
            int nxt = want ? key_row((t + 2) * KN + tid, total, cur, tstart, tcum, kperm) : -1;
            const int nvalid = min(KN, total - t * KN);
            const uint32_t ka = ka0 + (t & 1) * KN * D * 2, va = va0 + (t & 1) * KN * D * 2;
            if (nm == 2)
                tile_compute<D, T, KN, NW, 2>(qa, ka, va, lane, nvalid, sl2, o, m, l);
            else if (nm == 1)
                tile_compute<D, T, KN, NW, 1>(qa, ka, va, lane, nvalid, sl2, o, m, l);
            if (want) kidx[(t & 1) * KN + tid] = nxt;
        }
    }

    /* epilogue: normalise, stage the warp's rows in Qs, scatter 16-byte rows */
    cp_wait0();
    __syncthreads();
#pragma unroll
    for (int mi = 0; mi < 2; mi++) {
        if (mi >= nm) break;
#pragma unroll
        for (int hi = 0; hi < 2; hi++) {
            float ls = l[mi][hi];
            ls += __shfl_xor_sync(0xffffffffu, ls, 1);
            ls += __shfl_xor_sync(0xffffffffu, ls, 2);
            float inv = ls > 0.f ? 1.f / ls : 0.f;
            if (ls != ls) inv = NAN;
            const int row = mi * 16 * NW + warp * 16 + (lane >> 2) + hi * 8;
            if constexpr (LSE) /* a separate instantiation: the default kernel is unchanged */
                if ((lane & 3) == 0 && row < nrows)
                    p.lse[(int64_t)bh * p.N_q + row0 + row] = row_lse(m[mi][hi], ls);
            stage_o_row<D, T>(Qs, row, o[mi], hi, lane, inv);
        }
    }
    __syncwarp();
#pragma unroll
    for (int mi = 0; mi < 2; mi++) {
        if (mi >= nm) break;
#pragma unroll
        for (int it = 0; it < 16 * CPR / 32; it++) {
            int idx = it * 32 + lane, rr = idx / CPR, c = idx % CPR;
            int row = mi * 16 * NW + warp * 16 + rr;
            if (row < nrows) {
                int orig = qperm ? __ldg(qperm + row0 + row) : row0 + row;
                *reinterpret_cast<uint4 *>(ob + (int64_t)orig * p.o_stride_n + c * 8) =
                    *reinterpret_cast<const uint4 *>(Qs + swz<D>(row, c));
            }
        }
    }
}

template <int D, typename T, int KN, int NW>
svoo_status launch_attend(const svoo_cuda_attend_params *p, const WorkList &wl, int dev,
                          cudaStream_t s) {
    /* the shared-memory limit is per device: set once per device (smem_once) */
    constexpr size_t sm = Smem<D, KN, NW>::total;
    /* p->lse (EAR): the instantiation that also writes the row log-sum-exps */
    auto kern = p->lse ? attend_kernel<D, T, KN, NW, true> : attend_kernel<D, T, KN, NW, false>;
    cudaError_t e = p->lse ? smem_once<attend_kernel<D, T, KN, NW, true>, sm>(dev)
                           : smem_once<attend_kernel<D, T, KN, NW, false>, sm>(dev);
    if (e != cudaSuccess)
        return fail(SVOO_ERR_CUDA, "svoo_cuda_attend: cudaFuncSetAttribute(%zu bytes): %s: %s", sm,
                    cudaGetErrorName(e), cudaGetErrorString(e));
    kern<<<(unsigned)wl.max_tiles, 32 * NW, sm, s>>>(*p, wl.tiles, wl.ntiles);
    return SVOO_OK;
}

bool row_aligned(const void *ptr, int64_t sb, int64_t sh, int64_t sn) {
    return ((uintptr_t)ptr & 15) == 0 && sb % 8 == 0 && sh % 8 == 0 && sn % 8 == 0;
}

template <typename T>
__global__ void permute_kernel(const T *src, T *dst, int64_t sb, int64_t sh, int64_t sn, int H,
                               int N, int D, const int32_t *perm, int inverse, int64_t total) {
    const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= total) return;
    const int cpr = D / 8;
    const int c = (int)(idx % cpr);
    const int64_t row = idx / cpr; /* bh * N + i */
    const int64_t bh = row / N, i = row % N;
    const int64_t b = bh / H, h = bh % H;
    const int64_t j = perm ? perm[row] : i;
    const int64_t strided = b * sb + h * sh + j * sn + c * 8, contig = row * D + c * 8;
    if (!inverse)
        *reinterpret_cast<uint4 *>(dst + contig) = *reinterpret_cast<const uint4 *>(src + strided);
    else
        *reinterpret_cast<uint4 *>(dst + strided) = *reinterpret_cast<const uint4 *>(src + contig);
}

} // namespace

/* dev hook: kernel variant for D = 128: rows x keys per tile, 0: 128 x 64 (4 warps),
 * 1: 128 x 32 (4 warps), 2: 64 x 32 (2 warps), 3: 64 x 64 (2 warps) */
extern "C" int svoo_cuda_attend_variant;
int svoo_cuda_attend_variant = 0;
/* dev hook: kernel choice, 0: automatic (SVOO_CUDA_KERNEL), 1: sm80 (mma.sync),
 * 2: sm90 (wgmma; compute capability 9.0 only) */
extern "C" int svoo_cuda_attend_kernel;
int svoo_cuda_attend_kernel = 0;

#ifdef SVOO_HAVE_SM90A
/* Hopper (9.0) runs the wgmma kernel (attend_sm90.cu) unless SVOO_CUDA_KERNEL=sm80
 * (or the dev hook) asks for this file's mma.sync kernel. Only in a build with
 * an sm_90a image (cuda/cuda.cmake): an sm_90 or JIT image holds the wgmma
 * kernel's trap body, which would poison the CUDA context. */
static bool runs_sm90(int major, int minor) {
    int kern = svoo_cuda_attend_kernel;
    if (kern == 0) {
        const char *env = getenv("SVOO_CUDA_KERNEL");
        kern = (env && strcmp(env, "sm80") == 0) ? 1 : 2;
    }
    return kern == 2 && major == 9 && minor == 0;
}
#endif

extern "C" const char *svoo_cuda_attend_last_error(void) {
    return g_err;
}

bool svoo_attend::attend_fuses_ear(const DevAttrs &a) {
#ifdef SVOO_HAVE_SM90A
    return runs_sm90(a.major, a.minor);
#else
    (void)a;
    return false;
#endif
}

/* the checks before svoo_cuda_attend's and svoo_cuda_attend_worklist's launches:
 * the arguments, an earlier error, the device (who: the API function) */
static svoo_status attend_begin(const svoo_cuda_attend_params *p, void *workspace, size_t ws_bytes,
                                const char *who, DevAttrs *da) {
    svoo_status st = attend_check(p, workspace, ws_bytes);
    if (!st) st = check_launch("earlier asynchronous error");
    if (!st) st = query_device(da, who);
    return st;
}

extern "C" svoo_status svoo_cuda_attend(const svoo_cuda_attend_params *p, void *workspace,
                                        size_t ws_bytes, void *stream) {
    DevAttrs da;
    const svoo_status st = attend_begin(p, workspace, ws_bytes, "svoo_cuda_attend", &da);
    return st ? st : attend_launch(p, workspace, (cudaStream_t)stream, nullptr, da);
}

svoo_status svoo_attend::attend_check(const svoo_cuda_attend_params *p, void *workspace,
                                      size_t ws_bytes) {
    g_err[0] = 0;
    if (!p) return fail(SVOO_ERR_NULL_POINTER, "svoo_cuda_attend: params is NULL");
    if (!p->q || !p->k || !p->v || !p->o)
        return fail(SVOO_ERR_NULL_POINTER, "svoo_cuda_attend: q, k, v or o is NULL");
    if (!p->q_off || !p->k_off || !p->row_ptr || !p->col)
        return fail(SVOO_ERR_NULL_POINTER,
                    "svoo_cuda_attend: q_off, k_off, row_ptr or col is NULL");
    if (p->D != 64 && p->D != 128)
        return fail(SVOO_ERR_UNSUPPORTED_HEAD_DIM, "svoo_cuda_attend: D = %d (64 or 128)", p->D);
    if (p->dtype != SVOO_CUDA_BF16 && p->dtype != SVOO_CUDA_F16)
        return fail(SVOO_ERR_UNKNOWN_DTYPE, "svoo_cuda_attend: dtype %d (0 bf16, 1 f16)", p->dtype);
    if (p->B < 1 || p->H < 1 || p->N_q < 1 || p->N_k < 1 || p->Cq < 1 || p->Ck < 1)
        return fail(SVOO_ERR_INVALID_ARGUMENT,
                    "svoo_cuda_attend: B %d, H %d, N_q %d, N_k %d, Cq %d, Ck %d must be >= 1", p->B,
                    p->H, p->N_q, p->N_k, p->Cq, p->Ck);
    /* > 0: the kernels take the running max on unscaled scores */
    if (!(p->scale > 0) || isinf(p->scale))
        return fail(SVOO_ERR_INVALID_ARGUMENT, "svoo_cuda_attend: scale %g must be finite and > 0",
                    (double)p->scale);
    if (!row_aligned(p->q, p->q_stride_b, p->q_stride_h, p->q_stride_n))
        return fail(SVOO_ERR_MISALIGNED, "svoo_cuda_attend: q rows not 16-byte aligned");
    if (!row_aligned(p->k, p->k_stride_b, p->k_stride_h, p->k_stride_n))
        return fail(SVOO_ERR_MISALIGNED, "svoo_cuda_attend: k rows not 16-byte aligned");
    if (!row_aligned(p->v, p->v_stride_b, p->v_stride_h, p->v_stride_n))
        return fail(SVOO_ERR_MISALIGNED, "svoo_cuda_attend: v rows not 16-byte aligned");
    if (!row_aligned(p->o, p->o_stride_b, p->o_stride_h, p->o_stride_n))
        return fail(SVOO_ERR_MISALIGNED, "svoo_cuda_attend: o rows not 16-byte aligned");
    size_t need = 0;
    const bool fits =
        worklist_fits((int64_t)p->B * p->H, p->N_q, p->Cq, workspace ? ws_bytes : 0, &need);
    if (!workspace || ws_bytes < need)
        return fail(SVOO_ERR_WORKSPACE_TOO_SMALL,
                    "svoo_cuda_attend: workspace %zu bytes, %zu needed (B %d, H %d, N_q %d, Cq %d)",
                    workspace ? ws_bytes : (size_t)0, need, p->B, p->H, p->N_q, p->Cq);
    if ((uintptr_t)workspace & 255)
        return fail(SVOO_ERR_MISALIGNED, "svoo_cuda_attend: workspace not 256-byte aligned");
    if (!fits) return fail(SVOO_ERR_INVALID_ARGUMENT, "svoo_cuda_attend: problem too large");
    return SVOO_OK;
}

/* the kernel attend_launch runs for p on device da and the shape of its work
 * list: the mma.sync kernel's tile variant, row tiles of <= bm rows, union
 * items (pack) */
struct KernelShape {
    bool sm90;
    int var, bm, pack;
};
static KernelShape kernel_shape(const svoo_cuda_attend_params *p, const DevAttrs &da) {
#ifdef SVOO_HAVE_SM90A
    /* union items (worklist.cu) unless SVOO_CUDA_PACK=0 (with EAR too: each row
     * masked to the pseudo-keys its own cluster dropped); not with the row
     * log-sum-exps (the two-pass EAR reads the work list) */
    if (runs_sm90(da.major, da.minor)) return {true, 0, 128, !p->lse && !env_off("SVOO_CUDA_PACK")};
#endif
    int var = svoo_cuda_attend_variant;
    if (p->D == 128) {
        /* fall back to smaller tiles where a block cannot have the shared
         * memory (sm_86 / sm_89: 99 KB per block) */
        const size_t need[4] = {Smem<128, 64, 4>::total, Smem<128, 32, 4>::total,
                                Smem<128, 32, 2>::total, Smem<128, 64, 2>::total};
        if (var < 0 || var > 3) var = 0;
        if (need[var] > (size_t)da.optin) var = 1;
        if (need[var] > (size_t)da.optin) var = 2;
    }
    return {false, var, (p->D == 128 && (var == 2 || var == 3)) ? 64 : 128, 0};
}

/* p's work list: built on s, or (p->worklist_ready) built earlier by
 * svoo_cuda_attend_worklist, which s then waits for; then its item counters
 * are zeroed as the build leaves them (the kernels that take items at run
 * time consume them), so that a list can serve more than one call */
static svoo_status get_worklist(const svoo_cuda_attend_params *p, const KernelShape &ks,
                                void *workspace, cudaStream_t s, WorkList *wl) {
    if (!p->worklist_ready) return build_worklist(p, ks.bm, ks.pack, workspace, s, wl);
    cudaError_t e = cudaStreamWaitEvent(s, (cudaEvent_t)p->worklist_ready, 0);
    if (e == cudaSuccess) {
        *wl = worklist_view(p, ks.bm, ks.pack, workspace);
        e = cudaMemsetAsync(wl->ntiles + 1, 0, sizeof(int), s);
        if (e == cudaSuccess && wl->mix.nmem)
            e = cudaMemsetAsync(wl->mix_ntiles + 1, 0, sizeof(int), s);
    }
    if (e != cudaSuccess)
        return fail(SVOO_ERR_CUDA, "svoo_cuda_attend: worklist_ready: %s: %s", cudaGetErrorName(e),
                    cudaGetErrorString(e));
    return SVOO_OK;
}

extern "C" svoo_status svoo_cuda_attend_worklist(const svoo_cuda_attend_params *p, void *workspace,
                                                 size_t ws_bytes, void *stream) {
    DevAttrs da;
    const svoo_status st = attend_begin(p, workspace, ws_bytes, "svoo_cuda_attend_worklist", &da);
    if (st) return st;
    const KernelShape ks = kernel_shape(p, da);
    WorkList wl;
    return build_worklist(p, ks.bm, ks.pack, workspace, (cudaStream_t)stream, &wl);
}

svoo_status svoo_attend::attend_launch(const svoo_cuda_attend_params *p, void *workspace,
                                       cudaStream_t s, const EarView *ear, const DevAttrs &da) {
    if (ear && p->lse) /* (the EAR instantiation writes no log-sum-exps) */
        return fail(SVOO_ERR_INVALID_ARGUMENT, "svoo_cuda_attend: EAR key tiles with lse set");
    const KernelShape ks = kernel_shape(p, da);
    if (ear && !ks.sm90)
        return fail(SVOO_ERR_INVALID_ARGUMENT, "svoo_cuda_attend: EAR key tiles need sm_90a");
    WorkList wl;
    svoo_status st = get_worklist(p, ks, workspace, s, &wl);
    if (st) return st;
#ifdef SVOO_HAVE_SM90A
    if (ks.sm90) {
        if ((st = attend_sm90(p, wl, s, ear, da))) return st;
        return check_launch("attention kernel (sm90)");
    }
#endif
    const int var = ks.var;
    const bool bf = p->dtype == SVOO_CUDA_BF16;
    const int dev = da.dev;
    if (p->D == 128) {
        if (var == 1)
            st = bf ? launch_attend<128, __nv_bfloat16, 32, 4>(p, wl, dev, s)
                    : launch_attend<128, __half, 32, 4>(p, wl, dev, s);
        else if (var == 2)
            st = bf ? launch_attend<128, __nv_bfloat16, 32, 2>(p, wl, dev, s)
                    : launch_attend<128, __half, 32, 2>(p, wl, dev, s);
        else if (var == 3)
            st = bf ? launch_attend<128, __nv_bfloat16, 64, 2>(p, wl, dev, s)
                    : launch_attend<128, __half, 64, 2>(p, wl, dev, s);
        else
            st = bf ? launch_attend<128, __nv_bfloat16, 64, 4>(p, wl, dev, s)
                    : launch_attend<128, __half, 64, 4>(p, wl, dev, s);
    } else {
        st = bf ? launch_attend<64, __nv_bfloat16, 64, 4>(p, wl, dev, s)
                : launch_attend<64, __half, 64, 4>(p, wl, dev, s);
    }
    if (st) return st;
    return check_launch("attention kernel");
}

extern "C" int svoo_cuda_attend_contiguous_keys(int device) {
#ifdef SVOO_HAVE_SM90A
    /* the ordinal checked first: a failing query would set the caller's last error */
    int n = 0, major = 0, minor = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); /* no device or driver: not sticky */
        return 0;
    }
    if (device < 0 || device >= n ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device))
        return 0;
    return runs_sm90(major, minor) && !env_off("SVOO_CUDA_TMA");
#else
    (void)device;
    return 0;
#endif
}

extern "C" svoo_status svoo_cuda_permute_rows(const void *src, void *dst, int64_t stride_b,
                                              int64_t stride_h, int64_t stride_n, int B, int H,
                                              int N, int D, int dtype, const int32_t *perm,
                                              int inverse, void *stream) {
    g_err[0] = 0;
    if (!src || !dst) return fail(SVOO_ERR_NULL_POINTER, "svoo_cuda_permute_rows: src or dst NULL");
    if ((D != 64 && D != 128) || B < 1 || H < 1 || N < 1)
        return fail(SVOO_ERR_INVALID_ARGUMENT, "svoo_cuda_permute_rows: bad shape");
    if (!row_aligned(src, stride_b, stride_h, stride_n) || ((uintptr_t)dst & 15))
        return fail(SVOO_ERR_MISALIGNED, "svoo_cuda_permute_rows: pointers not 16-byte aligned "
                                         "or strides not multiples of 8 elements");
    const int64_t total = (int64_t)B * H * N * (D / 8);
    const unsigned grid = (unsigned)((total + 255) / 256);
    cudaStream_t s = (cudaStream_t)stream;
    /* bf16 and f16 are moved as bits: one instantiation serves both */
    (void)dtype;
    permute_kernel<__half><<<grid, 256, 0, s>>>((const __half *)src, (__half *)dst, stride_b,
                                                stride_h, stride_n, H, N, D, perm, inverse, total);
    return check_launch("permute kernel");
}

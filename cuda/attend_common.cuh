/* attend_common.cuh : pieces shared by the attention kernels (attend_sm80.cu,
 * attend_sm90.cu): the device-built work list, the cluster table of a query
 * tile's selected key clusters, small device helpers, error reporting.
 * CUDA C++ only (the public interface is attend.h). */
#ifndef SVOO_CUDA_ATTEND_COMMON_CUH
#define SVOO_CUDA_ATTEND_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <atomic>
#include <stdint.h>
#include <type_traits>

#include "attend.h"
#include "cuda_common.h"

namespace svoo_attend {

/* one work item: rows row0 .. row0+nrows-1 (permuted positions) of query
 * cluster r of head bh; r < 0: union item m = -1 - r (worklist.cu) of nrows
 * rows (row0 unused) */
struct Tile {
    int bh, r, row0, nrows;
};

/* union items: at most MIX_ROWS rows of at most MIX_MEMBERS query clusters of
 * a head whose selections take at most MIX_CK key clusters in all */
constexpr int MIX_ROWS = 128, MIX_MEMBERS = 32, MIX_CK = 1024;
struct MixView {
    const int *nmem; /* [m] members of union item m; nullptr: no union items */
    const int *mem;  /* [m * MIX_MEMBERS + k] query cluster of member k */
    const int *row;  /* [m * MIX_ROWS + i] row i: permuted position << 5 | member */
};

/* the work list in the caller's workspace (built by build_worklist) */
struct WorkList {
    const Tile *tiles;     /* device, heads by work descending, each head's costly first */
    int *ntiles;           /* device: number of valid tiles, then the launch's item counter */
    int64_t max_tiles;     /* host, upper bound of *ntiles */
    MixView mix;           /* the union items' data (mix.nmem null: none) */
    const Tile *mix_tiles; /* device, the union items (r < 0), ordered as tiles */
    int *mix_ntiles;       /* device: their number, then the item counter */
    int64_t mix_max;       /* host, upper bound of *mix_ntiles */
};

/* records the message of svoo_cuda_attend_last_error(), returns st */
svoo_status fail(svoo_status st, const char *fmt, ...);
/* cudaGetLastError after a launch -> SVOO_ERR_CUDA with a message */
svoo_status check_launch(const char *what);
/* a dev switch: environment variable `name` set to "0" (A/B runs) */
bool env_off(const char *name);
/* false when the work list of BH heads would overflow its indices or need
 * more than ws_bytes (*need: the bytes it needs) */
bool worklist_fits(int64_t BH, int64_t N_q, int64_t Cq, size_t ws_bytes, size_t *need);
/* enqueues the work-list kernels (row tiles of <= bm rows, bm >= 64; pack:
 * union items where the plan allows, bm = 128 only) */
svoo_status build_worklist(const svoo_cuda_attend_params *p, int bm, int pack, void *workspace,
                           cudaStream_t s, WorkList *wl);
/* the work list build_worklist(p, bm, pack) leaves in workspace, for a call
 * that did not build it itself (svoo_cuda_attend_worklist built it) */
WorkList worklist_view(const svoo_cuda_attend_params *p, int bm, int pack, void *workspace);
/* EAR's pseudo-keys of every (b, h) (ear_cuda.cu: ear_means): mu, mv [BH][Ck][D] in
 * the input dtype (the means of each key cluster's K and V rows), b2 [BH][Ck]
 * log2 of the cluster's size (-inf: empty) */
struct EarView {
    const void *mu, *mv;
    const float *b2;
};
struct DevAttrs;
/* attend_sm90.cu: enqueues the Hopper wgmma kernel (tiles of 128 rows) on device
 * da (attend_launch's); with ear, each work item's query cluster also attends
 * to the pseudo-keys of the non-empty key clusters it did not select (extra
 * key tiles, score bias b2) */
svoo_status attend_sm90(const svoo_cuda_attend_params *p, const WorkList &wl, cudaStream_t s,
                        const EarView *ear, const DevAttrs &da);
/* attend_sm80.cu: svoo_cuda_attend's argument checks (no device access; clears
 * the last error first) */
svoo_status attend_check(const svoo_cuda_attend_params *p, void *workspace, size_t ws_bytes);

/* the work list svoo_cuda_attend built in `workspace` for p (read by the
 * two-pass EAR of svoo_cuda_attend_ear) */
WorkList worklist_in(const svoo_cuda_attend_params *p, void *workspace);

/* ---- per-device state of the host side (kept off the per-call path) ---- */
/* device ordinals below MAX_DEV are cached; others are queried on every call */
constexpr int MAX_DEV = 64;
/* the current device and the attributes the launches need */
struct DevAttrs {
    int dev, nsm, optin, major, minor; /* ordinal, SMs, opt-in shared memory per block, cc */
};
/* cudaGetDevice, then the attributes: queried once per device ordinal and
 * cached (lock-free; two threads may both query, with the same result) */
cudaError_t device_attrs(DevAttrs *a);
/* device_attrs with its failure as the status and message of a call (who:
 * the API function's name) */
svoo_status query_device(DevAttrs *a, const char *who);
/* attend_sm80.cu: whether svoo_cuda_attend runs the Hopper kernel on this device,
 * which takes EAR's pseudo-keys as key tiles (attend_launch with ear) */
bool attend_fuses_ear(const DevAttrs &a);
/* attend_sm80.cu: svoo_cuda_attend's launches (the work list, the kernel) on
 * device da, after its checks (attend_check, an earlier error, da queried);
 * with ear (only where attend_fuses_ear, p->lse NULL), the pseudo-keys enter
 * the attention kernel */
svoo_status attend_launch(const svoo_cuda_attend_params *p, void *workspace, cudaStream_t s,
                          const EarView *ear, const DevAttrs &da);
/* cudaFuncSetAttribute(K, MaxDynamicSharedMemorySize, BYTES) on device dev,
 * once per (device, K): a bit per device records where it succeeded (lock-free;
 * two threads may both set it, which is harmless). The host sets it for the
 * device's context: after cudaDeviceReset the cache would be stale, which this
 * library never does. */
template <auto K, size_t BYTES> cudaError_t smem_once(int dev) {
    static std::atomic<uint64_t> done{0};
    const uint64_t bit = dev >= 0 && dev < MAX_DEV ? 1ull << dev : 0;
    if (bit && (done.load(std::memory_order_acquire) & bit)) return cudaSuccess;
    const cudaError_t e =
        cudaFuncSetAttribute(K, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)BYTES);
    if (e == cudaSuccess && bit) done.fetch_or(bit, std::memory_order_release);
    return e;
}

/* ---- device helpers ---- */
__device__ __forceinline__ uint32_t smem_u32(const void *ptr) {
    return (uint32_t)__cvta_generic_to_shared(ptr);
}
/* 16 bytes global -> shared, bypassing L1; bytes = 0 writes zeros */
__device__ __forceinline__ void cp_async16(uint32_t dst, const void *src, int bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
                 "r"(bytes));
}
__device__ __forceinline__ void cp_commit() {
    asm volatile("cp.async.commit_group;\n" ::);
}
__device__ __forceinline__ void cp_wait0() {
    asm volatile("cp.async.wait_group 0;\n" ::: "memory");
}

/* 2^x with denormal results flushed to zero: exp2f compiles to ex2.approx plus a
 * denormal fix-up that costs ~10% of the Hopper kernel's instructions; the
 * softmax never needs probabilities below 2^-126 */
__device__ __forceinline__ float exp2_ftz(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}
template <typename T> __device__ __forceinline__ uint32_t pack2(float x, float y) {
    if constexpr (std::is_same<T, __nv_bfloat16>::value) {
        __nv_bfloat162 v = __floats2bfloat162_rn(x, y);
        return *reinterpret_cast<uint32_t *>(&v);
    } else {
        __half2 v = __floats2half2_rn(x, y);
        return *reinterpret_cast<uint32_t *>(&v);
    }
}

/* log-sum-exp of a row's scaled scores from the online softmax state: running
 * max m in log2 units (of scale * score) and the row's sum l of exp2(. - m)
 * (natural log; -inf for a row without keys, NaN for a NaN sum) */
__device__ __forceinline__ float row_lse(float m, float l) {
    return l > 0.f ? (m + __log2f(l)) * 0.6931471805599453f : (l != l ? l : -INFINITY);
}

/* mma.sync pieces (attend_sm80.cu, ear_cuda.cu) */
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t (&r)[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

template <typename T>
__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1) {
    if constexpr (std::is_same<T, __nv_bfloat16>::value) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, "
                     "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    } else {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, "
                     "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
}

/* S = Q K^T of one key tile (the mma.sync kernels: attend_sm80.cu, ear_cuda.cu).
 * s: NM m-frags (16 rows each, NW warps apart) x KN/8 n-frags; qa, ka: this lane's
 * ldmatrix addresses of its Q rows and of the K tile with the 128-byte swizzle of
 * chunk 0 (tile bases 1024-byte aligned, so chunk kk is an XOR) */
template <int D, typename T, int KN, int NW, int NM>
__device__ __forceinline__ void mma_qk(float (&s)[NM][KN / 8][4], uint32_t qa, uint32_t ka) {
#pragma unroll
    for (int mi = 0; mi < NM; mi++)
#pragma unroll
        for (int n = 0; n < KN / 8; n++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                s[mi][n][e] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
        uint32_t a[NM][4];
#pragma unroll
        for (int mi = 0; mi < NM; mi++)
            ldsm_x4(a[mi], (qa ^ (kk << 5)) + mi * 16 * NW * D * 2);
#pragma unroll
        for (int nj = 0; nj < KN / 16; nj++) {
            uint32_t b[4];
            ldsm_x4(b, (ka ^ (kk << 5)) + nj * 16 * D * 2);
#pragma unroll
            for (int mi = 0; mi < NM; mi++) {
                mma16816<T>(s[mi][2 * nj], a[mi], b[0], b[1]);
                mma16816<T>(s[mi][2 * nj + 1], a[mi], b[2], b[3]);
            }
        }
    }
}

/* the online softmax of one key tile (mma_qk's fragments, NM active m-frags):
 * per row the tile's max, the running max m and sum l in log2 units (score x
 * sl2; sl2 > 0, 1 for scores already in them), O rescaled, s <- P */
template <int D, int KN, int NM>
__device__ __forceinline__ void online_softmax(float (&s)[NM][KN / 8][4], float sl2,
                                               float (&o)[2][D / 8][4], float (&m)[2][2],
                                               float (&l)[2][2]) {
#pragma unroll
    for (int mi = 0; mi < NM; mi++)
#pragma unroll
        for (int hi = 0; hi < 2; hi++) {
            float mx = -INFINITY;
#pragma unroll
            for (int n = 0; n < KN / 8; n++)
                mx = fmaxf(mx, fmaxf(s[mi][n][2 * hi], s[mi][n][2 * hi + 1]));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            const float mold = m[mi][hi];
            const float mnew = fmaxf(mold, mx * sl2);
            const float muse = mnew == -INFINITY ? 0.f : mnew;
            const float alpha = exp2_ftz(mold - muse);
            m[mi][hi] = mnew;
            float sum = 0.f;
#pragma unroll
            for (int n = 0; n < KN / 8; n++) {
                const float p0 = exp2_ftz(fmaf(s[mi][n][2 * hi], sl2, -muse));
                const float p1 = exp2_ftz(fmaf(s[mi][n][2 * hi + 1], sl2, -muse));
                s[mi][n][2 * hi] = p0;
                s[mi][n][2 * hi + 1] = p1;
                sum += p0 + p1;
            }
            l[mi][hi] = l[mi][hi] * alpha + sum;
#pragma unroll
            for (int n = 0; n < D / 8; n++) {
                o[mi][n][2 * hi] *= alpha;
                o[mi][n][2 * hi + 1] *= alpha;
            }
        }
}

/* O += P V of one key tile: P = s (already exponentiated) packed to T as the A
 * fragments, V by ldmatrix.trans from va (same swizzle) */
template <int D, typename T, int KN, int NM>
__device__ __forceinline__ void mma_pv(float (&o)[2][D / 8][4], const float (&s)[NM][KN / 8][4],
                                       uint32_t va) {
#pragma unroll
    for (int kk = 0; kk < KN / 16; kk++) {
        uint32_t a[NM][4];
#pragma unroll
        for (int mi = 0; mi < NM; mi++) {
            a[mi][0] = pack2<T>(s[mi][2 * kk][0], s[mi][2 * kk][1]);
            a[mi][1] = pack2<T>(s[mi][2 * kk][2], s[mi][2 * kk][3]);
            a[mi][2] = pack2<T>(s[mi][2 * kk + 1][0], s[mi][2 * kk + 1][1]);
            a[mi][3] = pack2<T>(s[mi][2 * kk + 1][2], s[mi][2 * kk + 1][3]);
        }
#pragma unroll
        for (int dj = 0; dj < D / 16; dj++) {
            uint32_t b[4];
            ldsm_x4_t(b, (va ^ (dj << 5)) + kk * 16 * D * 2);
#pragma unroll
            for (int mi = 0; mi < NM; mi++) {
                mma16816<T>(o[mi][2 * dj], a[mi], b[0], b[1]);
                mma16816<T>(o[mi][2 * dj + 1], a[mi], b[2], b[3]);
            }
        }
    }
}

/* BM rows of Q (permuted positions row0 + row, gathered through qperm; rows >=
 * nrows zero-filled) -> the swizzled tile at qdst, one cp.async group: this
 * thread copies rows lrow + it * RPI, 16-byte chunks lc + 8 j (j < CPT) */
template <int D, int BM, int RPI, int CPT, typename T>
__device__ __forceinline__ void load_q_tile(uint32_t qdst, int lrow, int lc, const T *qb,
                                            const svoo_cuda_attend_params &p, const int32_t *qperm,
                                            int row0, int nrows) {
#pragma unroll
    for (int it = 0; it < BM / RPI; it++) {
        int row = lrow + it * RPI;
        bool ok = row < nrows;
        int orig = ok ? (qperm ? __ldg(qperm + row0 + row) : row0 + row) : 0;
#pragma unroll
        for (int j = 0; j < CPT; j++)
            cp_async16(qdst + it * RPI * D * 2 + j * 128,
                       qb + (int64_t)orig * p.q_stride_n + (lc + 8 * j) * 8, ok ? 16 : 0);
    }
    cp_commit();
}

/* the online softmax's start: o = 0, running max -inf, sum 0 (2 m-frags) */
template <int D>
__device__ __forceinline__ void init_acc(float (&o)[2][D / 8][4], float (&m)[2][2],
                                         float (&l)[2][2]) {
#pragma unroll
    for (int mi = 0; mi < 2; mi++) {
#pragma unroll
        for (int n = 0; n < D / 8; n++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                o[mi][n][e] = 0.f;
        m[mi][0] = m[mi][1] = -INFINITY;
        l[mi][0] = l[mi][1] = 0.f;
    }
}

/* element offset of (row, 16-byte chunk c) in a swizzled [rows][D] tile */
template <int D> __device__ __forceinline__ int swz(int row, int c) {
    return row * D + ((c ^ (row & 7)) << 3);
}

/* one row of an mma.sync O fragment (o: this m-frag's D/8 n-frags, the row's half hi),
 * times scale, packed to T into row `row` of the swizzled tile Qs (this lane's columns) */
template <int D, typename T>
__device__ __forceinline__ void stage_o_row(T *Qs, int row, const float (&o)[D / 8][4], int hi,
                                            int lane, float scale) {
#pragma unroll
    for (int n = 0; n < D / 8; n++) {
        const int col = n * 8 + 2 * (lane & 3);
        *reinterpret_cast<uint32_t *>(Qs + swz<D>(row, col >> 3) + (col & 7)) =
            pack2<T>(o[n][2 * hi] * scale, o[n][2 * hi + 1] * scale);
    }
}

/* Cluster table of one segment (<= CAP selected key clusters, col[seg ..
 * seg+nseg-1]) of a query tile: tstart[i] = first permuted key position of
 * selected cluster i, tcum[i] = exclusive prefix of the sizes, tcum[nseg] =
 * total. Built by NTHR threads (thread index tid); `bar` synchronises them
 * (called twice; the caller synchronises before, if the table is reused).
 * Returns the total number of keys of the segment. */
template <int NTHR, int CAP, class Bar>
__device__ __forceinline__ int build_table(const int32_t *__restrict__ col,
                                           const int32_t *__restrict__ koff, int seg, int nseg,
                                           int tid, int *tstart, int *tcum, int *scan, Bar bar) {
    static_assert(CAP % NTHR == 0, "table capacity");
    constexpr int PER = CAP / NTHR;
    const int lane = tid & 31, warp = tid >> 5;
    int sz[PER], run = 0;
#pragma unroll
    for (int j = 0; j < PER; j++) {
        int i = tid * PER + j;
        sz[j] = 0;
        if (i < nseg) {
            int c = __ldg(col + seg + i);
            int st = __ldg(koff + c);
            sz[j] = __ldg(koff + c + 1) - st;
            tstart[i] = st;
        }
        run += sz[j];
    }
    int total;
    int ex = block_exscan<NTHR>(run, lane, warp, scan, bar, total);
#pragma unroll
    for (int j = 0; j < PER; j++) {
        int i = tid * PER + j;
        if (i < nseg) tcum[i] = ex;
        ex += sz[j];
    }
    if (tid == 0) tcum[nseg] = total;
    bar();
    return total;
}

/* permuted key position of concatenated position x of the current table
 * segment -> original key row (or -1 past the end). `cur` is the caller's
 * cursor into the table: x only grows, so it advances by about one cluster
 * per key tile (tcum[nseg] == total stops it). */
__device__ __forceinline__ int key_row(int x, int total, int &cur, const int *tstart,
                                       const int *tcum, const int32_t *kperm) {
    if (x >= total) return -1;
    while (tcum[cur + 1] <= x)
        cur++;
    int pos = tstart[cur] + (x - tcum[cur]);
    return kperm ? __ldg(kperm + pos) : pos;
}

} // namespace svoo_attend

#endif

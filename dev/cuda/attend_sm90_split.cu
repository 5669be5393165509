/* dev/cuda/attend_sm90_split.cu : an attempt on cuda/attend_sm90.cu (v3) that was
 * measured slower and NOT landed (docs/CUDA_KERNEL.md, "v4 attempt", 2026-11-30).
 * Build: SM90_SRC=dev/cuda/attend_sm90_split.cu TAG=s dev/cuda/build.sh.
 *
 * Differences from v3 (whose design comment applies otherwise):
 *  - a work item of <= 64 rows is split over both consumer warpgroups: both
 *    gather the same Q rows, consumer c computes the key tiles t with
 *    t % 2 == c (the other only releases the stages), still in ping-pong
 *    turns (consumer 1 takes an empty turn when the item has an odd number of
 *    key tiles), and consumer 1 hands its (m, l, O) to consumer 0 through a
 *    shared-memory buffer (Smem90::merge, (D/2 + 4) x 128 floats), which
 *    merges them and writes the rows. The per-item key loop is a template
 *    (key_tiles<SPLIT>) so the path of the 128-row tiles is unchanged.
 *  - dev flags: -DSVOO_SM90_NOSPLIT (v3 behaviour with this code layout),
 *    -DSVOO_SM90_NOLOAD (the producer issues no K / V copies: timing only,
 *    wrong results, and the tensor cores then run on stale shared memory,
 *    which changes their power draw and clock).
 * Measured (H200): correct, but a split item costs 1.2 x a 128-row item,
 * where v3's lone consumer costs 0.73 x: with 2 stages per ring and the
 * producer issuing K_j, V_j strictly in order, V_j waits for V_{j-2}, which
 * the split frees only at its owner's next turn, so every key tile puts one
 * gather latency and one P V on the critical path. See the notes for the
 * fixes that would have to come first.
 *
 * Compiled for sm_90a only (wgmma, setmaxnreg); in other targets the kernel
 * body is a trap and svoo_cuda_attend never launches it. */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <math.h>
#include <stdint.h>
#include <type_traits>

#include "attend_common.cuh"

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ == 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define SVOO_SM90_WGMMA 1
#endif

namespace {

using namespace svoo_attend;

constexpr int BM = 128;   /* query rows per tile (2 consumer warpgroups x 64) */
constexpr int BN = 128;   /* keys per key tile (= producer threads) */
constexpr int CAP = 1024; /* selected clusters per table segment */
constexpr int NTHR = 384; /* producer + 2 consumer warpgroups */

template <int D> struct Smem90 {
    static constexpr int STAGES = D == 128 ? 2 : 4; /* per ring (K and V) */
    static constexpr size_t q = 0;                  /* [D/64][BM][64], 128-byte swizzle */
    static constexpr size_t k = q + (size_t)BM * D * 2;
    static constexpr size_t kstage = (size_t)BN * D * 2; /* [D/64][BN][64] per stage */
    static constexpr size_t v = k + STAGES * kstage;
    static constexpr size_t merge = v + STAGES * kstage; /* split tiles: (O, m, l) of consumer 1 */
    static constexpr size_t tstart = merge + (size_t)(D / 2 + 4) * 128 * 4;
    static constexpr size_t tcum = tstart + (size_t)CAP * 4;
    static constexpr size_t scan = tcum + (size_t)(CAP + 4) * 4;
    static constexpr size_t meta = scan + 8 * 4; /* per K stage: valid keys, -1 = end */
    static constexpr size_t bar = meta + 8 * 4;
    static constexpr size_t total = bar + 32 * STAGES + 1024; /* + alignment slack */
    static_assert(STAGES <= 8, "meta slots");
};

#ifdef SVOO_SM90_WGMMA /* device code of the sm_90a pass only */
/* mbarrier offsets from Smem90<D>::bar: full / empty of the K and V rings */
template <int D> struct Bars {
    static constexpr int STAGES = Smem90<D>::STAGES;
    static constexpr uint32_t full_k = 0, full_v = 8 * STAGES, empty_k = 16 * STAGES,
                              empty_v = 24 * STAGES;
};
#ifdef SVOO_SM90_NOSPLIT /* dev: measure without splitting tiles of <= 64 rows */
constexpr bool kSplit = false;
#else
constexpr bool kSplit = true;
#endif
#ifdef SVOO_SM90_NOPINGPONG /* dev: measure without the ping-pong schedule */
constexpr bool kPingPong = false;
#else
constexpr bool kPingPong = true;
#endif
constexpr int PROD_REGS = 88,
              CONS_REGS = 208; /* setmaxnreg.inc takes registers from those released by .dec: 88*128
                                  + 208*256 <= 168*384 (the entry allocation) */

#include "sm90_ptx.cuh"

/* ---- producer warpgroup ---- */
template <int D, typename T>
__device__ __forceinline__ void producer(const svoo_cuda_attend_params &p,
                                         const Tile *__restrict__ tiles, int ntiles,
                                         unsigned char *smem, uint32_t sbase) {
    using S = Smem90<D>;
    constexpr int STAGES = S::STAGES;
    constexpr int CPR = D / 8;       /* 16-byte chunks per row */
    constexpr int RPP = 32 / CPR;    /* rows per warp pass */
    constexpr int PASSES = 32 / RPP; /* a warp gathers 32 rows */
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    int *tstart = reinterpret_cast<int *>(smem + S::tstart);
    int *tcum = reinterpret_cast<int *>(smem + S::tcum);
    int *scan = reinterpret_cast<int *>(smem + S::scan);
    volatile int *meta = reinterpret_cast<volatile int *>(smem + S::meta);
    const uint32_t bars = sbase + (uint32_t)S::bar;
    /* this lane's row within a pass and its chunk */
    const int prow = lane / CPR, pch = lane % CPR;
    uint32_t kn = 0, vn = 0; /* K / V ring uses so far: stage n % STAGES, parity (n / STAGES) & 1 */
    for (int ti = blockIdx.x; ti < ntiles; ti += gridDim.x) {
        const Tile tl = tiles[ti];
        const int bh = tl.bh, b = bh / p.H, h = bh - b * p.H;
        const int32_t *kperm = p.k_perm ? p.k_perm + (int64_t)bh * p.N_k : nullptr;
        const int32_t *koff = p.k_off + (int64_t)bh * (p.Ck + 1);
        const T *kb = reinterpret_cast<const T *>(p.k) + b * p.k_stride_b + h * p.k_stride_h;
        const T *vb = reinterpret_cast<const T *>(p.v) + b * p.v_stride_b + h * p.v_stride_h;
        const int e0 = __ldg(p.row_ptr + (int64_t)bh * (p.Cq + 1) + tl.r);
        const int e1 = __ldg(p.row_ptr + (int64_t)bh * (p.Cq + 1) + tl.r + 1);
        for (int seg = e0; seg < e1; seg += CAP) {
            const int nseg = min(CAP, e1 - seg);
            named_bar(1, 128); /* the previous table's readers are done */
            const int total = build_table<128, CAP>(p.col, koff, seg, nseg, tid, tstart, tcum, scan,
                                                    [] { named_bar(1, 128); });
            const int ntk = (total + BN - 1) / BN;
            int cur = 0;
            for (int t = 0; t < ntk; t++) {
                /* this thread's key row of the tile: thread i -> key t*BN + i */
                const int kr = key_row(t * BN + tid, total, cur, tstart, tcum, kperm);
                const int bytes = kr >= 0 ? 16 : 0;
                const int64_t r64 = kr >= 0 ? kr : 0;
                const T *ksrc = kb + r64 * p.k_stride_n, *vsrc = vb + r64 * p.v_stride_n;
                /* K */
                uint32_t st = kn % STAGES;
                mbar_wait(bars + Bars<D>::empty_k + 8 * st, ((kn / STAGES) & 1) ^ 1);
                uint32_t dst = sbase + (uint32_t)(S::k + st * S::kstage);
#pragma unroll
                for (int ps = 0; ps < PASSES; ps++) {
                    const int src = ps * RPP + prow; /* lane holding the row */
                    const T *g = reinterpret_cast<const T *>(
                        __shfl_sync(0xffffffffu, reinterpret_cast<uintptr_t>(ksrc), src));
                    const int nb = __shfl_sync(0xffffffffu, bytes, src);
#ifndef SVOO_SM90_NOLOAD /* dev: time without the K / V copies (wrong results) */
                    cp_async16(dst + sw128<BN>(warp * 32 + src, pch), g + pch * 8, nb);
#else
                    (void)g, (void)nb, (void)dst;
#endif
                }
                mbar_arrive_cpasync(bars + Bars<D>::full_k + 8 * st);
                if (tid == 0) {
                    meta[st] = min(BN, total - t * BN);
                    mbar_arrive(bars + Bars<D>::full_k + 8 * st);
                }
                kn++;
                /* V */
                st = vn % STAGES;
                mbar_wait(bars + Bars<D>::empty_v + 8 * st, ((vn / STAGES) & 1) ^ 1);
                dst = sbase + (uint32_t)(S::v + st * S::kstage);
#pragma unroll
                for (int ps = 0; ps < PASSES; ps++) {
                    const int src = ps * RPP + prow;
                    const T *g = reinterpret_cast<const T *>(
                        __shfl_sync(0xffffffffu, reinterpret_cast<uintptr_t>(vsrc), src));
                    const int nb = __shfl_sync(0xffffffffu, bytes, src);
#ifndef SVOO_SM90_NOLOAD
                    cp_async16(dst + sw128<BN>(warp * 32 + src, pch), g + pch * 8, nb);
#else
                    (void)g, (void)nb, (void)dst;
#endif
                }
                mbar_arrive_cpasync(bars + Bars<D>::full_v + 8 * st);
                vn++;
            }
        }
        /* end of the work item (on the K ring) */
        const uint32_t st = kn % STAGES;
        mbar_wait(bars + Bars<D>::empty_k + 8 * st, ((kn / STAGES) & 1) ^ 1);
        mbar_arrive_cpasync(bars + Bars<D>::full_k + 8 * st);
        if (tid == 0) {
            meta[st] = -1;
            mbar_arrive(bars + Bars<D>::full_k + 8 * st);
        }
        kn++;
    }
    cp_wait0();
}

/* one key tile's softmax step on S (64 x BN of this warpgroup; this thread:
 * rows g, g+8, columns 8j + 2*c4 + {0,1}): mask past nv, running max m,
 * S <- exp2(S*sl2 - m), l <- l*alpha + rowsum; returns alpha per row */
__device__ __forceinline__ void softmax_step(float (&s)[64], int nv, int c4, float sl2,
                                             float (&m)[2], float (&l)[2], float (&alpha)[2]) {
#pragma unroll
    for (int j = 0; j < BN / 8; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            float x = s[4 * j + e] * sl2;
            if (nv < BN && 8 * j + 2 * c4 + (e & 1) >= nv) x = -INFINITY;
            s[4 * j + e] = x;
        }
#pragma unroll
    for (int hi = 0; hi < 2; hi++) {
        float mx = -INFINITY;
#pragma unroll
        for (int j = 0; j < BN / 8; j++)
            mx = fmaxf(mx, fmaxf(s[4 * j + 2 * hi], s[4 * j + 2 * hi + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float mold = m[hi];
        const float mnew = fmaxf(mold, mx);
        const float muse = mnew == -INFINITY ? 0.f : mnew;
        alpha[hi] = exp2_ftz(mold - muse);
        m[hi] = mnew;
        float sum = 0.f;
#pragma unroll
        for (int j = 0; j < BN / 8; j++) {
            const float p0 = exp2_ftz(s[4 * j + 2 * hi] - muse);
            const float p1 = exp2_ftz(s[4 * j + 2 * hi + 1] - muse);
            s[4 * j + 2 * hi] = p0;
            s[4 * j + 2 * hi + 1] = p1;
            sum += p0 + p1;
        }
        l[hi] = l[hi] * alpha[hi] + sum;
    }
}

/* S = Q K^T of one key tile: D/16 wgmma, Q (64 rows at qa) and K (BN keys at
 * ka) by descriptor from their swizzled [D/64][rows][64] tiles */
template <typename T, int D>
__device__ __forceinline__ void issue_qk(float (&s)[64], uint32_t qa, uint32_t ka) {
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++)
        Mma<T, D>::qk(s, sdesc(qa + (kk >> 2) * BM * 128 + (kk & 3) * 32, 16),
                      sdesc(ka + (kk >> 2) * BN * 128 + (kk & 3) * 32, 16), kk > 0);
}

/* O += P V of one key tile: P from registers, V (BN keys at va) MN-major */
template <typename T, int D>
__device__ __forceinline__ void issue_pv(float (&o)[D / 2], const uint32_t (&pa)[BN / 16][4],
                                         uint32_t va) {
#pragma unroll
    for (int kk = 0; kk < BN / 16; kk++)
        Mma<T, D>::pv(o, pa[kk], sdesc(va + kk * 16 * 128, BN * 128));
}

/* P (the softmax numerators in s) packed to the register A operand of P V */
template <typename T>
__device__ __forceinline__ void pack_p(const float (&s)[64], uint32_t (&pa)[BN / 16][4]) {
#pragma unroll
    for (int kk = 0; kk < BN / 16; kk++) {
        pa[kk][0] = pack2<T>(s[8 * kk + 0], s[8 * kk + 1]);
        pa[kk][1] = pack2<T>(s[8 * kk + 2], s[8 * kk + 3]);
        pa[kk][2] = pack2<T>(s[8 * kk + 4], s[8 * kk + 5]);
        pa[kk][3] = pack2<T>(s[8 * kk + 6], s[8 * kk + 7]);
    }
}

/* a key tile this warpgroup does not compute (no rows): release K and V */
template <int STAGES>
__device__ __forceinline__ void skip_tile(uint32_t bars, uint32_t &kn, uint32_t &vn) {
    constexpr uint32_t full_v = 8 * STAGES, empty_k = 16 * STAGES, empty_v = 24 * STAGES;
    mbar_arrive(bars + empty_k + 8 * (kn % STAGES));
    kn++;
    const uint32_t vst = vn % STAGES;
    mbar_wait(bars + full_v + 8 * vst, (vn / STAGES) & 1);
    mbar_arrive(bars + empty_v + 8 * vst);
    vn++;
}

/* The key tiles of one work item for one consumer warpgroup: accumulates
 * this warpgroup's (m, l, O) and releases every K and V stage of the item
 * (the terminal K stage too). The first key tile of this warpgroup: S = Q K^T
 * and softmax only; then per tile: issue S = Q K^T of this tile and
 * O += P V of the previous one, softmax of this tile while P V runs. (Loops
 * peeled so that no wgmma sits on a conditional path between others: ptxas
 * would serialise them all, C7520.)
 * SPLIT = false: a tile of > 64 rows (both consumers compute every key tile,
 *   ping-pong if pp) or consumer 1 on a tile without rows for it (active =
 *   false: it only releases the stages).
 * SPLIT = true: a tile of <= 64 rows; both consumers hold the same Q rows and
 *   take alternate key tiles (consumer c: tiles t with t % 2 == c), still in
 *   turns (ping-pong); the partial (m, l, O) are merged by the caller. */
template <int D, typename T, bool SPLIT>
__device__ __forceinline__ void
key_tiles(float (&o)[D / 2], float (&m)[2], float (&l)[2], uint32_t &kn, uint32_t &vn, bool active,
          bool pp, int cw, uint32_t qa, uint32_t sbase, volatile int *meta, float sl2, int c4) {
    using S = Smem90<D>;
    constexpr int STAGES = S::STAGES;
    const uint32_t bars = sbase + (uint32_t)S::bar;
    float s[64];
    uint32_t pa[BN / 16][4];
#pragma unroll
    for (int i = 0; i < D / 2; i++)
        o[i] = 0.f;
#pragma unroll
    for (int i = 0; i < 64; i++)
        s[i] = 0.f;
#pragma unroll
    for (int kk = 0; kk < BN / 16; kk++)
        pa[kk][0] = pa[kk][1] = pa[kk][2] = pa[kk][3] = 0u;
    m[0] = m[1] = -INFINITY;
    l[0] = l[1] = 0.f;
    int cnt = 0;       /* key tiles of the item seen so far (SPLIT) */
    bool have = false; /* pa holds P of a tile whose P V is not issued */
    uint32_t pvn = 0;  /* its V ring use */
    for (;;) {
        const uint32_t kst = kn % STAGES;
        mbar_wait(bars + Bars<D>::full_k + 8 * kst, (kn / STAGES) & 1);
        const int nv = meta[kst];
        if (nv < 0) break;
        const bool mine = SPLIT ? (cnt & 1) == cw : active;
        cnt++;
        if (!mine) {
            skip_tile<STAGES>(bars, kn, vn);
            continue;
        }
        fence_proxy_async();
        const uint32_t ka = sbase + (uint32_t)(S::k + kst * S::kstage);
        reg_fence(s);
        if (pp) named_bar(5 + cw, 256); /* my turn */
        wgmma_fence();
        issue_qk<T, D>(s, qa, ka);
        wgmma_commit();
        if (pp) named_arrive(6 - cw, 256); /* the other's turn */
        wgmma_wait<0>();
        reg_fence(s);
        mbar_arrive(bars + Bars<D>::empty_k + 8 * kst);
        kn++;
        float alpha[2];
        softmax_step(s, nv, c4, sl2, m, l, alpha);
        pack_p<T>(s, pa);
        pvn = vn++;
        have = true;
        break;
    }
    if (have) {
        for (;;) {
            const uint32_t kst = kn % STAGES;
            mbar_wait(bars + Bars<D>::full_k + 8 * kst, (kn / STAGES) & 1);
            const int nv = meta[kst];
            if (nv < 0) break;
            if constexpr (SPLIT) {
                const bool mine = (cnt & 1) == cw;
                cnt++;
                if (!mine) {
                    skip_tile<STAGES>(bars, kn, vn);
                    continue;
                }
            }
            const uint32_t pvst = pvn % STAGES;
            mbar_wait(bars + Bars<D>::full_v + 8 * pvst, (pvn / STAGES) & 1);
            fence_proxy_async();
            const uint32_t ka = sbase + (uint32_t)(S::k + kst * S::kstage);
            const uint32_t va = sbase + (uint32_t)(S::v + pvst * S::kstage);
            reg_fence(s);
            reg_fence(o);
            reg_fence(pa);
            if (pp) named_bar(5 + cw, 256);
            wgmma_fence();
            issue_qk<T, D>(s, qa, ka);
            wgmma_commit();
            issue_pv<T, D>(o, pa, va);
            wgmma_commit();
            if (pp) named_arrive(6 - cw, 256);
            wgmma_wait<1>(); /* S is ready, P V may run on */
            reg_fence(s);
            mbar_arrive(bars + Bars<D>::empty_k + 8 * kst);
            kn++;
            float alpha[2];
            softmax_step(s, nv, c4, sl2, m, l, alpha);
            wgmma_wait<0>();
            reg_fence(o);
            reg_fence(pa);
            mbar_arrive(bars + Bars<D>::empty_v + 8 * pvst);
#pragma unroll
            for (int j = 0; j < D / 8; j++) {
                o[4 * j + 0] *= alpha[0];
                o[4 * j + 1] *= alpha[0];
                o[4 * j + 2] *= alpha[1];
                o[4 * j + 3] *= alpha[1];
            }
            pack_p<T>(s, pa);
            pvn = vn++;
        }
        /* P V of the last tile */
        const uint32_t pvst = pvn % STAGES;
        mbar_wait(bars + Bars<D>::full_v + 8 * pvst, (pvn / STAGES) & 1);
        fence_proxy_async();
        const uint32_t va = sbase + (uint32_t)(S::v + pvst * S::kstage);
        reg_fence(o);
        reg_fence(pa);
        wgmma_fence();
        issue_pv<T, D>(o, pa, va);
        wgmma_commit();
        wgmma_wait<0>();
        reg_fence(o);
        mbar_arrive(bars + Bars<D>::empty_v + 8 * pvst);
    }
    /* the terminal K stage */
    mbar_arrive(bars + Bars<D>::empty_k + 8 * (kn % STAGES));
    kn++;
    /* SPLIT: consumer 0 took ceil(cnt / 2) turns, consumer 1 floor(cnt / 2);
     * an empty turn of consumer 1 hands the turn back to consumer 0 */
    if (SPLIT && pp && cw == 1 && (cnt & 1)) {
        named_bar(6, 256);
        named_arrive(5, 256);
    }
}

/* ---- consumer warpgroups ---- */
template <int D, typename T>
__device__ __forceinline__ void consumer(const svoo_cuda_attend_params &p,
                                         const Tile *__restrict__ tiles, int ntiles,
                                         unsigned char *smem, uint32_t sbase) {
    using S = Smem90<D>;
    constexpr int CPR = D / 8;
    const int cw = threadIdx.x / 128 - 1; /* consumer 0 / 1: Q smem rows 64cw .. 64cw+63 */
    const int wt = threadIdx.x & 127, lane = wt & 31, wq = wt >> 5;
    volatile int *meta = reinterpret_cast<volatile int *>(smem + S::meta);
    float *xbuf = reinterpret_cast<float *>(smem + S::merge);
    const uint32_t qs = sbase + (uint32_t)S::q;
    const uint32_t qa = qs + (uint32_t)(64 * cw * 128);
    const float sl2 = p.scale * 1.4426950408889634f;
    const int g = lane >> 2, c4 = lane & 3;
    uint32_t kn = 0, vn = 0; /* ring uses so far, as the producer counts them */
    /* ping-pong: consumer c waits on named barrier 5+c before issuing its
     * GEMMs of a key tile and arrives on the other's barrier after issuing
     * them; consumer 1 hands consumer 0 the first turn (once: each item with
     * pp leaves the turn with consumer 0 again; one arrival stays pending at
     * exit) */
    if (kPingPong && cw == 1) named_arrive(5, 256);
    for (int ti = blockIdx.x; ti < ntiles; ti += gridDim.x) {
        const Tile tl = tiles[ti];
        const int bh = tl.bh, b = bh / p.H, h = bh - b * p.H;
        /* a tile of <= 64 rows: both consumers take its rows and split its key
         * tiles (kSplit); otherwise 64 rows each */
        const bool split = kSplit && tl.nrows <= 64;
        const int row0 = split ? tl.row0 : tl.row0 + 64 * cw;
        const int nr = split ? tl.nrows : min(64, tl.nrows - 64 * cw);
        const bool pp = kPingPong && (split || tl.nrows > 64);
        const bool active = nr > 0;
        const int32_t *qperm = p.q_perm ? p.q_perm + (int64_t)bh * p.N_q : nullptr;
        if (active) {
            const T *qb = reinterpret_cast<const T *>(p.q) + b * p.q_stride_b + h * p.q_stride_h;
#pragma unroll
            for (int it = 0; it < 64 * CPR / 128; it++) {
                const int idx = it * 128 + wt, rr = idx / CPR, ch = idx % CPR;
                const bool ok = rr < nr;
                const int orig = ok ? (qperm ? __ldg(qperm + row0 + rr) : row0 + rr) : 0;
                cp_async16(qs + sw128<BM>(64 * cw + rr, ch),
                           qb + (int64_t)orig * p.q_stride_n + ch * 8, ok ? 16 : 0);
            }
            cp_commit();
            cp_wait0();
            fence_proxy_async();
            named_bar(2 + cw, 128);
        }
        float o[D / 2], m[2], l[2];
        if (split) {
            key_tiles<D, T, true>(o, m, l, kn, vn, true, pp, cw, qa, sbase, meta, sl2, c4);
            /* consumer 1 hands its (m, l, O) to consumer 0 (same rows, same
             * register layout), which merges them */
            if (cw == 1) {
#pragma unroll
                for (int i = 0; i < D / 2; i++)
                    xbuf[i * 128 + wt] = o[i];
                xbuf[(D / 2) * 128 + wt] = m[0];
                xbuf[(D / 2 + 1) * 128 + wt] = m[1];
                xbuf[(D / 2 + 2) * 128 + wt] = l[0];
                xbuf[(D / 2 + 3) * 128 + wt] = l[1];
            }
            named_bar(4, 256);
            if (cw == 0) {
#pragma unroll
                for (int hi = 0; hi < 2; hi++) {
                    const float m1 = xbuf[(D / 2 + hi) * 128 + wt];
                    const float l1 = xbuf[(D / 2 + 2 + hi) * 128 + wt];
                    const float mm = fmaxf(m[hi], m1);
                    const float muse = mm == -INFINITY ? 0.f : mm;
                    const float a0 = exp2_ftz(m[hi] - muse), a1 = exp2_ftz(m1 - muse);
                    m[hi] = mm;
                    l[hi] = l[hi] * a0 + l1 * a1;
#pragma unroll
                    for (int j = 0; j < D / 8; j++) {
                        o[4 * j + 2 * hi] =
                            o[4 * j + 2 * hi] * a0 + xbuf[(4 * j + 2 * hi) * 128 + wt] * a1;
                        o[4 * j + 2 * hi + 1] =
                            o[4 * j + 2 * hi + 1] * a0 + xbuf[(4 * j + 2 * hi + 1) * 128 + wt] * a1;
                    }
                }
            }
            named_bar(4, 256); /* xbuf is free again */
            if (cw == 1) continue;
        } else {
            key_tiles<D, T, false>(o, m, l, kn, vn, active, pp, cw, qa, sbase, meta, sl2, c4);
            if (!active) continue;
        }

        /* epilogue: normalise, stage in this warpgroup's Q rows, scatter rows */
        T *ob = reinterpret_cast<T *>(p.o) + b * p.o_stride_b + h * p.o_stride_h;
#pragma unroll
        for (int hi = 0; hi < 2; hi++) {
            float ls = l[hi];
            ls += __shfl_xor_sync(0xffffffffu, ls, 1);
            ls += __shfl_xor_sync(0xffffffffu, ls, 2);
            float inv = ls > 0.f ? 1.f / ls : 0.f;
            if (ls != ls) inv = NAN;
            const int row = 64 * cw + 16 * wq + g + 8 * hi;
#pragma unroll
            for (int j = 0; j < D / 8; j++) {
                const uint32_t off = sw128<BM>(row, j) + c4 * 4;
                *reinterpret_cast<uint32_t *>(smem + S::q + off) =
                    pack2<T>(o[4 * j + 2 * hi] * inv, o[4 * j + 2 * hi + 1] * inv);
            }
        }
        named_bar(2 + cw, 128);
#pragma unroll
        for (int it = 0; it < 64 * CPR / 128; it++) {
            const int idx = it * 128 + wt, rr = idx / CPR, ch = idx % CPR;
            if (rr < nr) {
                const int orig = qperm ? __ldg(qperm + row0 + rr) : row0 + rr;
                *reinterpret_cast<uint4 *>(ob + (int64_t)orig * p.o_stride_n + ch * 8) =
                    *reinterpret_cast<const uint4 *>(smem + S::q + sw128<BM>(64 * cw + rr, ch));
            }
        }
        named_bar(2 + cw, 128); /* the Q rows are reused by the next work item */
    }
}

#endif /* SVOO_SM90_WGMMA */

template <int D, typename T>
__global__ void __launch_bounds__(NTHR, 1)
    attend90_kernel(const svoo_cuda_attend_params p, const Tile *__restrict__ tiles,
                    const int *__restrict__ ntiles_p) {
#ifdef SVOO_SM90_WGMMA
    using S = Smem90<D>;
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    /* 1024-byte aligned base (the 128-byte swizzle repeats every 1024 bytes) */
    unsigned char *smem = smem_raw + ((1024 - (smem_u32(smem_raw) & 1023)) & 1023);
    const uint32_t sbase = smem_u32(smem);
    const int ntiles = *ntiles_p;
    if ((int)blockIdx.x >= ntiles) return;
    if (threadIdx.x == 0) {
        const uint32_t bars = sbase + (uint32_t)S::bar;
        for (int s = 0; s < S::STAGES; s++) {
            mbar_init(bars + Bars<D>::full_k + 8 * s, 128 + 1); /* producers' copies + meta */
            mbar_init(bars + Bars<D>::full_v + 8 * s, 128);     /* producers' copies */
            mbar_init(bars + Bars<D>::empty_k + 8 * s, 256);    /* consumers */
            mbar_init(bars + Bars<D>::empty_v + 8 * s, 256);
        }
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();
    if (threadIdx.x < 128) {
        asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(PROD_REGS));
        producer<D, T>(p, tiles, ntiles, smem, sbase);
    } else {
        asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(CONS_REGS));
        consumer<D, T>(p, tiles, ntiles, smem, sbase);
    }
#else
    (void)p;
    (void)tiles;
    (void)ntiles_p;
#ifdef __CUDA_ARCH__
    __trap(); /* built without sm_90a: svoo_cuda_attend must not launch this */
#endif
#endif
}

template <int D, typename T>
svoo_status launch90(const svoo_cuda_attend_params *p, const WorkList &wl, cudaStream_t s) {
    const size_t sm = Smem90<D>::total;
    cudaError_t e = cudaFuncSetAttribute(attend90_kernel<D, T>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm);
    if (e != cudaSuccess)
        return fail(SVOO_ERR_CUDA, "svoo_cuda_attend: sm90 cudaFuncSetAttribute(%zu bytes): %s: %s",
                    sm, cudaGetErrorName(e), cudaGetErrorString(e));
    int dev = 0, nsm = 0;
    e = cudaGetDevice(&dev);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&nsm, cudaDevAttrMultiProcessorCount, dev);
    if (e != cudaSuccess)
        return fail(SVOO_ERR_CUDA, "svoo_cuda_attend: device query: %s: %s", cudaGetErrorName(e),
                    cudaGetErrorString(e));
    const int64_t grid = wl.max_tiles < nsm ? wl.max_tiles : nsm;
    attend90_kernel<D, T><<<(unsigned)grid, NTHR, sm, s>>>(*p, wl.tiles, wl.ntiles);
    return SVOO_OK;
}

} // namespace

svoo_status svoo_attend::attend_sm90(const svoo_cuda_attend_params *p, const WorkList &wl,
                                     cudaStream_t s) {
    const bool bf = p->dtype == SVOO_CUDA_BF16;
    if (p->D == 128)
        return bf ? launch90<128, __nv_bfloat16>(p, wl, s) : launch90<128, __half>(p, wl, s);
    return bf ? launch90<64, __nv_bfloat16>(p, wl, s) : launch90<64, __half>(p, wl, s);
}

/* assign_sm90.cu : the assignment label = argmax_c (x . w_c + b_c) on Hopper
 * (sm_90a) with warpgroup MMA. Same contract and result rule as k_assign
 * (cuda/plan_cuda.cu, mma.sync), which svoo_cu_assign runs elsewhere: fp16
 * rows (saturating) against the fp16 weights wh / bias_h, the packed-key
 * running top-2 and near ties marked for k_refine (assign_common.cuh).
 *
 * One block = 1 producer + NCW consumer warpgroups, one block per SM,
 * persistent over row items (BM = 64 NCW rows of one bh, items
 * tile + rtiles * bh taken with a stride of the grid):
 *  - producer (setmaxnreg down; one thread): streams the item's weight tiles
 *    (BN = 128 clusters x D fp16, 128-byte swizzle, the layout wgmma reads,
 *    which wh holds already) and their biases into a ring of STAGES stages,
 *    two bulk copies a tile counted on the stage's "full" mbarrier.
 *  - consumer warpgroup c (rows 64c .. 64c + 63 of the item): each warp
 *    copies its own 16 rows raw into shared memory one item ahead (cp.async),
 *    turns them into fp16 A fragments in registers (ldmatrix + saturating
 *    conversion), then per weight tile issues S = X W^T (wgmma m64n128k16, A
 *    from registers, B K-major from shared memory, f32 accumulate), adds the
 *    bias and folds its 64 scores into the running top-2, and releases the
 *    stage. While one warpgroup folds scores the others' GEMMs run.
 *
 * Compiled for sm_90a only; in other targets the kernel body is a trap and
 * svoo_cu_assign never launches it. */
#include "assign_sm90.h"

#include "assign_common.cuh"

#include <float.h>
#include <math.h>
#include <type_traits>

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ == 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define SVOO_SM90_WGMMA 1
#endif

namespace {

constexpr int NCW = 3;                  /* consumer warpgroups */
constexpr int BM = 64 * NCW;            /* rows per item */
constexpr int BN = SVOO_CU_ASSIGN90_BN; /* clusters per weight tile */
constexpr int STAGES = 4;               /* weight tiles in flight */
constexpr int NTHR = 128 * (NCW + 1);   /* producer + consumers */

/* shared memory from a 1024-byte aligned base (the swizzle repeats every 1024 bytes) */
template <int D> struct SmemA90 {
    static constexpr int LD = D + 8; /* halves per staged row: ldmatrix rows on distinct banks */
    static constexpr size_t bstage = (size_t)BN * D * 2;   /* [D/64][BN][64] fp16 */
    static constexpr size_t b = 0;                         /* STAGES weight tiles */
    static constexpr size_t bias = b + STAGES * bstage;    /* STAGES x BN f32 */
    static constexpr size_t a = bias + STAGES * BN * 4;    /* [BM][LD] raw rows */
    static constexpr size_t bar = a + (size_t)BM * LD * 2; /* full[STAGES], empty[STAGES] */
    static constexpr size_t total = bar + 16 * STAGES + 1024;
};

#ifdef SVOO_SM90_WGMMA
constexpr int PROD_REGS = 56, /* setmaxnreg.inc takes what .dec released: */
    CONS_REGS = 152;          /* 56 * 128 + 152 * 128 NCW <= 65536 */

#include "sm90_ptx.cuh"

/* ---- producer: weight tiles of every item in turn, one thread ----
 * wh holds each tile in its shared-memory layout (svoo_cu_weights with
 * tiled = 1), so a tile is one bulk copy and its biases another: the other
 * producer threads have nothing to do, and take no issue slots from the
 * consumers (the per-chunk cp.async address arithmetic was ~18% of the
 * kernel's instructions, on the ALU pipe the folds keep busy) */
template <int D>
__device__ __forceinline__ void producer(const __half *__restrict__ wh,
                                         const float *__restrict__ bias_h, int cpad, int items,
                                         int rtiles, uint32_t sbase, uint32_t bars) {
    using S = SmemA90<D>;
    if (threadIdx.x != 0) return;
    const int ntiles = cpad / BN;
    uint32_t n = 0; /* ring uses so far: stage n % STAGES, parity (n / STAGES) & 1 */
    for (int it = blockIdx.x; it < items; it += gridDim.x) {
        const int bh = it / rtiles;
        for (int t = 0; t < ntiles; t++, n++) {
            const uint32_t st = n % STAGES, full = bars + 8 * st;
            if (n >= STAGES) mbar_wait(bars + 8 * (STAGES + st), (n / STAGES - 1) & 1);
            const size_t row = (size_t)bh * cpad + (size_t)t * BN;
            mbar_expect_tx(full, (uint32_t)(S::bstage + BN * 4));
            bulk_load(sbase + (uint32_t)(S::b + st * S::bstage), wh + row * D, (uint32_t)S::bstage,
                      full);
            bulk_load(sbase + (uint32_t)(S::bias + st * BN * 4), bias_h + row, BN * 4, full);
        }
    }
}

/* ---- consumer warpgroups ---- */
template <int D, typename T>
__device__ __forceinline__ void consumer(const svoo_cu_assign90_args &g, int items, int rtiles,
                                         unsigned char *smem, uint32_t sbase, uint32_t bars) {
    using S = SmemA90<D>;
    constexpr int CPR = D / 8, KS = D / 16;
    const int cw = threadIdx.x / 128 - 1, wt = threadIdx.x & 127, wq = wt >> 5, lane = wt & 31,
              t4 = lane & 3;
    const int ntiles = g.cpad / BN;
    const int64_t n = g.n;
    /* this warp's 16 rows */
    __half *sA = reinterpret_cast<__half *>(smem + S::a) + (size_t)(64 * cw + 16 * wq) * S::LD;
    const float *sBias = reinterpret_cast<const float *>(smem + S::bias);
    const uint32_t m = (1u << g.ib) - 1, keep = ~m;
    /* first row of this warp in item it */
    auto first_row = [&](int it, int bh) {
        return (int64_t)(it - bh * rtiles) * BM + 64 * cw + 16 * wq;
    };
    /* this warp's rows of item it -> sA, raw (rows >= n: zeros) */
    auto load_rows = [&](int it) {
        const int bh = it / rtiles;
        const int64_t r0 = first_row(it, bh);
#pragma unroll
        for (int u = 0; u < 16 * CPR / 32; u++) {
            const int idx = u * 32 + lane, rr = idx / CPR, ch = idx % CPR;
            const int64_t r = r0 + rr;
            cp_async16(sA + rr * S::LD + ch * 8, dv_row<T>(g.x, bh, r < n ? r : 0) + ch * 8,
                       r < n ? 16 : 0);
        }
        cp_async_commit();
    };
    uint32_t kn = 0; /* ring uses so far, as the producer counts them */
    if ((int)blockIdx.x < items) load_rows(blockIdx.x);
    for (int it = blockIdx.x; it < items; it += gridDim.x) {
        const int bh = it / rtiles;
        const int64_t row0 = first_row(it, bh);
        cp_async_wait<0>();
        __syncwarp();
        uint32_t af[KS][4];
#pragma unroll
        for (int ks = 0; ks < KS; ks++) {
            ldmatrix_x4(af[ks], sA + (lane % 16) * S::LD + ks * 16 + (lane / 16) * 8);
#pragma unroll
            for (int j = 0; j < 4; j++)
                af[ks][j] = frag_half(af[ks][j], T());
        }
        /* |x|^2 of the fp16 rows lane / 4 + 8 h: registers h, h + 2 over the quad */
        float sa[2];
#pragma unroll
        for (int h = 0; h < 2; h++) {
            float s = 0.f;
#pragma unroll
            for (int ks = 0; ks < KS; ks++)
#pragma unroll
                for (int j = h; j < 4; j += 2) {
                    const float2 f = __half22float2(*reinterpret_cast<const __half2 *>(&af[ks][j]));
                    s = fmaf(f.x, f.x, fmaf(f.y, f.y, s));
                }
            s += __shfl_xor_sync(0xffffffffu, s, 1);
            sa[h] = s + __shfl_xor_sync(0xffffffffu, s, 2);
        }
        __syncwarp(); /* every lane's fragments are read: the next rows may land */
        if (it + (int)gridDim.x < items) load_rows(it + gridDim.x);

        float best[2] = {-INFINITY, -INFINITY}, sec[2] = {-INFINITY, -INFINITY};
        uint32_t hi = m; /* m - 32 t: slot 32 t + 2 j + jj packs as hi - (2 j + jj) */
        for (int t = 0; t < ntiles; t++, kn++) {
            const uint32_t st = kn % STAGES;
            mbar_wait(bars + 8 * st, (kn / STAGES) & 1); /* bulk copies: async proxy, as wgmma */
            const uint32_t bb = sbase + (uint32_t)(S::b + st * S::bstage);
            float acc[64]; /* the first wgmma starts at zero */
            wgmma_fence();
#pragma unroll
            for (int kk = 0; kk < KS; kk++)
                wgmma_rs_kn128_f16(acc, af[kk], kmajor_desc(bb, BN, kk), kk > 0);
            wgmma_commit();
            wgmma_wait<0>();
            reg_fence(acc);
            /* acc[4 j + 2 h + jj]: row lane / 4 + 8 h, cluster 8 j + 2 t4 + jj */
            const float *bs = sBias + st * BN + 2 * t4;
            auto fold = [&](auto bias_tag) {
                constexpr bool BIAS = decltype(bias_tag)::value;
#pragma unroll
                for (int j = 0; j < BN / 8; j++) {
                    float2 bv = make_float2(0.f, 0.f);
                    if constexpr (BIAS) bv = *reinterpret_cast<const float2 *>(bs + 8 * j);
#pragma unroll
                    for (int jj = 0; jj < 2; jj++) {
                        const uint32_t code = hi - (2 * j + jj);
                        float s0 = acc[4 * j + jj], s1 = acc[4 * j + 2 + jj];
                        if constexpr (BIAS) {
                            const float b = jj ? bv.y : bv.x;
                            s0 += b;
                            s1 += b;
                        }
                        top2_key(pack_key(s0, keep, code), best[0], sec[0]);
                        top2_key(pack_key(s1, keep, code), best[1], sec[1]);
                    }
                }
            };
            /* Gram weights have no bias but the padding clusters' -FLT_MAX
             * (the last tile only): one add a score less, where the ALU and
             * issue slots are what the kernel is bound by */
            if (g.zero_bias && (t + 1) * BN <= g.c)
                fold(std::false_type{});
            else
                fold(std::true_type{});
            hi -= 32;
            mbar_arrive(bars + 8 * (STAGES + st));
        }
        const unsigned qmask = 0xfu << (lane & ~3);
#pragma unroll
        for (int h = 0; h < 2; h++) {
            float b1 = best[h], b2 = sec[h];
            int i1 = key_index(b1, m, t4), i2 = key_index(b2, m, t4);
#pragma unroll
            for (int o = 1; o < 4; o <<= 1)
                top2_merge(0xffffffffu, o, b1, i1, b2, i2);
            const int64_t r = row0 + lane / 4 + 8 * h;
            if (r < n)
                finish_row<T>(g.x, bh, r, n, sa[h], D, b1, i1, b2, i2, g.trunc, g.wf, g.bias, g.c,
                              g.gap, t4, qmask, g.label);
        }
    }
}
#endif /* SVOO_SM90_WGMMA */

template <int D, typename T>
__global__ void __launch_bounds__(NTHR, 1) k_assign90(const svoo_cu_assign90_args g) {
#ifdef SVOO_SM90_WGMMA
    using S = SmemA90<D>;
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    unsigned char *smem = smem_raw + ((1024 - (smem_u32(smem_raw) & 1023)) & 1023);
    const uint32_t sbase = smem_u32(smem), bars = sbase + (uint32_t)S::bar;
    const int rtiles = (int)((g.n + BM - 1) / BM), items = g.BH * rtiles;
    if (threadIdx.x == 0) {
        for (int s = 0; s < STAGES; s++) {
            mbar_init(bars + 8 * s, 1);                    /* the producer's copies */
            mbar_init(bars + 8 * (STAGES + s), 128 * NCW); /* consumers */
        }
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();
    if (threadIdx.x < 128) {
        asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(PROD_REGS));
        producer<D>(g.wh, g.bias_h, g.cpad, items, rtiles, sbase, bars);
    } else {
        asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(CONS_REGS));
        consumer<D, T>(g, items, rtiles, smem, sbase, bars);
    }
#else
    (void)g;
#ifdef __CUDA_ARCH__
    __trap(); /* built without sm_90a: svoo_cu_assign must not launch this */
#endif
#endif
}

template <int D, typename T> cudaError_t setup_one() {
    return cudaFuncSetAttribute(k_assign90<D, T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                (int)SmemA90<D>::total);
}

} // namespace

cudaError_t svoo_cu_assign90_setup(int optin) {
    if ((size_t)optin < SmemA90<128>::total) return cudaErrorNotSupported;
    cudaError_t e;
    if ((e = setup_one<64, __half>()) || (e = setup_one<64, __nv_bfloat16>()) ||
        (e = setup_one<128, __half>()))
        return e;
    return setup_one<128, __nv_bfloat16>();
}

cudaError_t svoo_cu_assign90(int dtype, const svoo_cu_assign90_args *g, int grid, cudaStream_t st) {
    const int64_t items = (g->n + BM - 1) / BM * g->BH;
    const unsigned gr = (unsigned)(items < grid ? items : grid);
    if (g->d == 128) {
        if (dtype == 1)
            k_assign90<128, __half><<<gr, NTHR, SmemA90<128>::total, st>>>(*g);
        else
            k_assign90<128, __nv_bfloat16><<<gr, NTHR, SmemA90<128>::total, st>>>(*g);
    } else {
        if (dtype == 1)
            k_assign90<64, __half><<<gr, NTHR, SmemA90<64>::total, st>>>(*g);
        else
            k_assign90<64, __nv_bfloat16><<<gr, NTHR, SmemA90<64>::total, st>>>(*g);
    }
    return cudaGetLastError();
}

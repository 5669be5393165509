/* attend_sm90.cu : variable-block sparse attention on Hopper (sm_90a), warpgroup
 * MMA (wgmma), FlashAttention-3 style. Interface and semantics: attend.h;
 * the work list and the cluster table are those of attend_sm80.cu
 * (attend_common.cuh). Dispatched by svoo_cuda_attend on compute capability
 * 9.0 (SVOO_CUDA_KERNEL=sm80 forces the mma.sync kernel). Versions and
 * measurements: docs/CUDA_KERNEL.md (this is v3; v1, v2 in dev/cuda/).
 *
 * One block = 3 warpgroups, 1 block per SM, persistent (grid = SMs, work
 * items = 128-row tiles taken with a stride of the grid):
 *  - warpgroup 0, the producer (setmaxnreg down to 88; 56 in the lean
 *    instantiations, kLean): builds the cluster table of the tile's selected
 *    key clusters, turns concatenated key positions into original key rows
 *    (cursor + k_perm, one key per thread) and gathers key tiles of BN = 128
 *    K rows and V rows with cp.async into two rings of STAGES shared-memory
 *    stages (128-byte swizzle, the layout wgmma reads). Each producer thread
 *    signals a stage's "full" mbarrier with cp.async.mbarrier.arrive.noinc
 *    (fires when its copies land); thread 0 also writes the K stage's valid
 *    key count (-1: end of item). Keys without k_perm (the TMA
 *    instantiations): tiles loaded by TMA, on the dense path (DENSE) a tile of
 *    one run of rows as one box (tile_tma), any other in boxes of a warp's
 *    consecutive rows (tile_pieces); the threads issuing boxes add their
 *    bytes to the stage's transactions, then every thread arrives. Within a
 *    table K tiles run one ahead of V (EAR's pseudo-key tiles load K and V
 *    together).
 *  - warpgroups 1 and 2, the consumers (setmaxnreg up to 208; 224 lean): 64
 *    query rows each. Q is gathered once per item (cp.async, swizzled). Per
 *    key tile t: issue S_t = Q K_t^T (wgmma m64n128k16; K from shared
 *    memory, Q too, but from registers in the lean instantiations) and
 *    O += P_{t-1} V_{t-1} (P from registers, V through an MN-major
 *    descriptor), wait for S_t only, release K_t, online softmax of
 *    S_t (exp2, scale folded), meant to run while the P V wgmma runs (ptxas
 *    moves the P V wait above it unless it is pinned: the lean
 *    instantiations),
 *    wait for it, release V_{t-1}, rescale O, pack P_t to bf16/f16
 *    registers. The two consumers take turns issuing their GEMMs (ping-pong,
 *    named barriers 5/6) so one's softmax overlaps the other's GEMMs. A tail
 *    tile of <= 64 rows leaves consumer 1 idle (it only releases the
 *    stages); in a union item a consumer also releases unread the masked
 *    tiles none of its rows' members selected (SKIP). Epilogue: O / l
 *    staged in the warpgroup's own Q rows, 16-byte rows scattered to q_perm
 *    rows; with p.lse also each row's log-sum-exp, in a separate
 *    instantiation (LSE = true), so the default kernel is the same code.
 *  - EAR (svoo_cuda_attend_ear, instantiation EAR = true): after an item's
 *    own key tiles the producer (pseudo_tiles) loads the mean rows of the key
 *    clusters its query cluster dropped as further key tiles, with a score
 *    bias per column (log2 of the cluster's size) that the consumers add
 *    before the softmax, in their own copy of the key-tile loop. A union
 *    item's pseudo-key tiles hold the clusters that not every member
 *    selected, masked per member as its own masked tiles are.
 *
 * Compiled for sm_90a only (wgmma, setmaxnreg); in other targets the kernel
 * body is a trap and svoo_cuda_attend never launches it. */
#include <cuda.h> /* CUtensorMap (the driver call itself through cudaGetDriverEntryPoint) */
#include <cudaTypedefs.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <atomic>

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
static_assert(CAP >= MIX_CK, "a union item's table is one segment");

/* TMA descriptors of K and V, 3-d (D, N_k, B*H), boxes of 64 columns with
 * the 128-byte swizzle (the layout of a stage), map i < PIECE_MAPS of 2^i rows
 * (the pieces of gathered tiles: tile_pieces), map WHOLE of BN rows: kernel
 * parameters (__grid_constant__), used by the TMA instantiations (keys
 * without k_perm) */
constexpr int PIECE_MAPS = 6, WHOLE = PIECE_MAPS; /* pieces of <= 32 rows (a warp's) */
struct TmaMaps {
    CUtensorMap k[PIECE_MAPS + 1], v[PIECE_MAPS + 1];
};

template <int D> struct Smem90 {
    static constexpr int STAGES = D == 128 ? 2 : 4; /* per ring (K and V) */
    static constexpr size_t q = 0;                  /* [D/64][BM][64], 128-byte swizzle */
    static constexpr size_t k = q + (size_t)BM * D * 2;
    static constexpr size_t kstage = (size_t)BN * D * 2; /* [D/64][BN][64] per stage */
    static constexpr size_t v = k + STAGES * kstage;
    static constexpr size_t tstart = v + STAGES * kstage;
    static constexpr size_t tcum = tstart + (size_t)CAP * 4;
    static constexpr size_t scan = tcum + (size_t)(CAP + 4) * 4;
    /* per K stage: valid keys | MASKED | BIASED | SKIP flags; < 0: the item's end */
    static constexpr size_t meta = scan + 8 * 4;
    static constexpr size_t next = meta + 8 * 4; /* the next item taken: 2 slots */
    /* a union item: [0..3] the members with rows in each producer warp's 32 rows (consumer
     * 0: warps 0, 1; consumer 1: 2, 3); [4 + 4 (K use & 1) + warp] a masked tile's
     * consumers with a member that selected one of the warp's columns (bit c) */
    static constexpr size_t wgm = next + 16;
    /* [MIX_CK] words: a union item's members that selected key cluster c (build_union;
     * kept through key_tiles for EAR's pseudo_tiles); a plain EAR item's selected
     * clusters, CAP bits (pseudo_tiles) */
    static constexpr size_t umask = wgm + 12 * 4;
    /* [CAP]: the members that selected table entry i (build_union); in a union
     * item's pseudo-key list, the members that dropped entry i; the split
     * table's scratch (build_split_table, TMA) */
    static constexpr size_t tmask = umask + MIX_CK * 4;
    /* [2 STAGES][MIX_MEMBERS][4]: twice the K ring, so a K use's words are
     * rewritten only after its readers released a later stage */
    static constexpr size_t colw = tmask + (size_t)CAP * 4;
    /* EAR: [2 STAGES][BN] the score biases of pseudo-key tiles (as colw) */
    static constexpr size_t cbias = colw + (size_t)2 * STAGES * MIX_MEMBERS * 16;
    static constexpr size_t rowinfo = cbias + (size_t)2 * STAGES * BN * 4; /* [BM] */
    static constexpr size_t bar = rowinfo + (size_t)BM * 4;
    static constexpr size_t tmaps = bar + 32 * STAGES; /* TMA: the maps' generic address */
    static constexpr size_t pin = tmaps + 8;           /* [256]: consumer(), the pin */
    static constexpr size_t total = pin + 1024 + 1024; /* + alignment slack */
    static_assert(STAGES <= 8, "meta slots");
    static_assert(cbias % 16 == 0, "add_bias reads float2");
};

/* Work items (the list: costly items first within a head). DYN (the union
 * items, the EAR and log-sum-exp instantiations', and since the fifteenth stop
 * the sparse plain kernel's with TMA key tiles): taken at run time. A block's
 * first item is blockIdx.x, then its producer takes the next from the launch's
 * counter (ntiles[1], zeroed by wl_scan) when it has issued an item's loads, and
 * hands it to the consumers in the item's terminal meta word. Uneven items end
 * together, and a call's second launch, which starts on the SMs the first one
 * leaves (launch90), takes more items on the SMs that start early. The dense
 * path (DENSE) and the gathering plain kernel keep the stride of the grid:
 * run-time taking cost our dense call 4% (67.1-67.3 ms against 64.6-64.9, not
 * understood). (Host code reads kDyn too: launch_items.) */
template <bool LSE, bool UNI, bool EAR, bool TMA, bool DENSE>
constexpr bool kDyn = LSE || UNI || EAR || (TMA && !DENSE);
#ifdef SVOO_SM90_WGMMA        /* device code of the sm_90a pass only */
constexpr int MASKED = 0x100; /* meta flag: the tile's columns are masked per member */
constexpr int BIASED = 0x200; /* meta flag: EAR pseudo-keys, a score bias per column */
/* meta flags SKIP << c: no member with rows in consumer c selected a key of the tile
 * (a masked tile of a union item, not of pseudo-keys): consumer c releases it unread */
constexpr int SKIP = 0x400;
/* mbarrier offsets from Smem90<D>::bar: full / empty of the K and V rings */
template <int D> struct Bars {
    static constexpr int STAGES = Smem90<D>::STAGES;
    static constexpr uint32_t full_k = 0, full_v = 8 * STAGES, empty_k = 16 * STAGES,
                              empty_v = 24 * STAGES;
};

#ifdef SVOO_SM90_NOPINGPONG /* dev: measure without the ping-pong schedule */
constexpr bool kPingPong = false;
#else
constexpr bool kPingPong = true;
#endif
/* setmaxnreg: .inc takes registers from those released by .dec, so producer
 * x 128 + consumers x 256 <= 168 x 384 (the entry allocation). kLean: every
 * instantiation whose producer loads its key tiles by TMA gives the producer 56
 * registers and the consumers 224, which take Q from registers and pin their
 * softmax between the two wgmma waits (consumer()); both paid only with those
 * registers. EAR's producer, which also gathers its pseudo-key tiles, spills a
 * little at 56, and still gains: with the 88 / 208 split its consumers, holding Q
 * in registers, would spill and serialise their wgmma (docs/CUDA_KERNEL.md,
 * twenty-seventh stop: the EAR calls' attention -0.1 to -4.5%, queued -0.7 to
 * -0.85 ms). At D = 128 the consumers have < 8 registers to spare: at 216 ptxas
 * serialises their wgmma, which cuda/ptxas_guard.sh turns into a build error.
 * No LSE instantiation loads by TMA (consumer() asserts it): the LSE kernel
 * spills at 56.
 * Q in registers (wgmma's A operand, loaded once an item) instead of shared memory,
 * which wgmma reads again every instruction: a fifth of the consumers' operand reads;
 * its D / 4 registers a thread fit the lean consumers' 224. Measured with the uniform
 * descriptor addresses (docs/CUDA_KERNEL.md, twenty-sixth stop): dense path -3%, the sparse
 * calls' attention -0.5 to -2%; before them it cost +5% (FlashAttention-3 keeps Q in shared
 * memory, its register bandwidth being the bottleneck by its comment) */
template <bool TMA> constexpr bool kLean = TMA;
template <bool TMA> constexpr int kProdRegs = kLean<TMA> ? 56 : 88;
template <bool TMA> constexpr int kConsRegs = kLean<TMA> ? 224 : 208;

#include "sm90_ptx.cuh"

template <bool DYN> __device__ __forceinline__ int next_item(int ti, int nxt) {
    return DYN ? nxt : ti + (int)gridDim.x;
}

/* Cluster table of a union item (Ck <= CAP key clusters): the union of its
 * nmem members' selections, the clusters every member selected first (their
 * keys: *common), then the others in three groups, each in cluster order:
 * those selected by members of both consumers (w0: the members with rows in
 * consumer 0's rows, w1: in consumer 1's; a member straddling row 64 is in
 * both), those only w0's members selected, those only w1's, so that whole
 * masked tiles leave a consumer out (SKIP).
 * tmask[i] = the members that selected table entry i (bit k: member k),
 * umask[c] those that selected key cluster c (left there for EAR's
 * pseudo_tiles). 128 threads; `bar` synchronises them (the caller
 * synchronises before, if the table is reused). Returns the total number of
 * keys. */
template <int CAP, class Bar>
__device__ __forceinline__ int
build_union(const svoo_cuda_attend_params &p, const int32_t *rp, const int32_t *koff,
            const int *mem, int nmem, uint32_t w0, uint32_t w1, int tid, uint32_t *umask,
            int *tstart, int *tcum, uint32_t *tmask, int *scan, Bar bar, int &common) {
    constexpr int PER = CAP / 128, NG = 4;
    const int lane = tid & 31, warp = tid >> 5;
    for (int c = tid; c < p.Ck; c += 128)
        umask[c] = 0u;
    bar();
    for (int k = 0; k < nmem; k++) {
        const int r = __ldg(mem + k);
        for (int e = __ldg(rp + r) + tid, e1 = __ldg(rp + r + 1); e < e1; e += 128)
            atomicOr(&umask[__ldg(p.col + e)], 1u << k);
    }
    bar();
    const uint32_t all = nmem >= 32 ? ~0u : (1u << nmem) - 1u;
    /* a selected cluster's group: 0 common, 1 both consumers, 2 consumer 0, 3 consumer 1 */
    auto group = [&](uint32_t u) {
        return u == all ? 0 : (u & w0) && (u & w1) ? 1 : (u & w0) ? 2 : 3;
    };
    /* this thread's clusters tid*PER .. +PER-1, read twice (counts, then
     * places) rather than held across the scans */
    int nc[NG] = {}, kc[NG] = {};
    for (int c = tid * PER; c < min(p.Ck, tid * PER + PER); c++) {
        const uint32_t u = umask[c];
        if (!u) continue;
        const int gi = group(u), sz = __ldg(koff + c + 1) - __ldg(koff + c);
#pragma unroll
        for (int j = 0; j < NG; j++) /* constant indices: registers, not a stack array */
            nc[j] += gi == j, kc[j] += gi == j ? sz : 0;
    }
    int pc[NG], pk[NG], offc = 0, offk = 0;
#pragma unroll
    for (int gi = 0; gi < NG; gi++) {
        int tc, tk;
        pc[gi] = block_exscan<128>(nc[gi], lane, warp, scan, bar, tc) + offc;
        bar();
        pk[gi] = block_exscan<128>(kc[gi], lane, warp, scan, bar, tk) + offk;
        bar();
        offc += tc;
        offk += tk;
        if (gi == 0) common = tk;
    }
    for (int c = tid * PER; c < min(p.Ck, tid * PER + PER); c++) {
        const uint32_t u = umask[c];
        if (!u) continue;
        const int gi = group(u), st = __ldg(koff + c), sz = __ldg(koff + c + 1) - st;
        int i = 0, x = 0;
#pragma unroll
        for (int j = 0; j < NG; j++)
            if (gi == j) i = pc[j]++, x = pk[j], pk[j] += sz;
        tstart[i] = st;
        tcum[i] = x;
        tmask[i] = u;
    }
    if (tid == 0) tcum[offc] = offk;
    bar();
    return offk;
}

/* the maps' address, read where a box is issued, not held: the producer is
 * at its register limit (held, it spilled) */
template <int D> __device__ __forceinline__ const TmaMaps *maps_of(const unsigned char *smem) {
    return *reinterpret_cast<const TmaMaps *const volatile *>(smem + Smem90<D>::tmaps);
}

/* one stage of BN rows from row r0 of head bh by TMA: thread 0 arrives
 * with the stage's bytes and issues the D/64 boxes; the other producer
 * threads arrive plainly (the count of a cp.async stage: one per thread) */
template <int D, bool V>
__device__ __forceinline__ void tile_tma(const unsigned char *smem, uint32_t dst, int r0, int bh,
                                         uint32_t bar, int tid) {
    if (tid != 0) {
        mbar_arrive(bar);
        return;
    }
    const TmaMaps *tm = maps_of<D>(smem);
    mbar_expect_tx(bar, (uint32_t)(BN * D * 2));
#pragma unroll
    for (int j = 0; j < D / 64; j++)
        tma_load3(dst + j * BN * 128, V ? &tm->v[WHOLE] : &tm->k[WHOLE], 64 * j, r0, bh, bar);
}

/* one stage of BN keys by TMA where they are not one run (keys without
 * k_perm): this thread's key row kr (-1 past the table's end) goes to stage
 * row tid. A warp's rows fall into pieces of consecutive rows; a piece's
 * first thread loads its L rows as two boxes of the largest power of two
 * h <= L rows, at 0 and at L - h (they overlap with the same data; one box
 * when L = h), after adding their bytes to the stage's transactions. Every
 * thread then arrives on its own (the caller), as after a gather. A
 * 128-byte-swizzled box may start at any row of the stage
 * (dev/cuda/tma_probe.cu). V rows past the end are zeroed: their P is 0, but
 * a stale non-finite value times 0 would be NaN. */
template <int D, bool V>
__device__ __forceinline__ void tile_pieces(const unsigned char *smem, uint32_t dst, int kr, int bh,
                                            uint32_t bar, int tid) {
    const int lane = tid & 31;
    const int prev = __shfl_up_sync(0xffffffffu, kr, 1);
    const bool head = kr >= 0 && (lane == 0 || prev < 0 || kr != prev + 1);
    const uint32_t stops = __ballot_sync(0xffffffffu, head || kr < 0);
    if (!head) {
        if (V && kr < 0)
#pragma unroll
            for (int j = 0; j < D / 64; j++)
#pragma unroll
                for (int c = 0; c < 8; c++)
                    sts128_zero(dst + j * BN * 128 + tid * 128 + c * 16);
        return;
    }
    const uint32_t after = stops & (0xfffffffeu << lane);
    const int len = (after ? __ffs(after) - 1 : 32) - lane;
    const int lg = 31 - __clz(len), h = 1 << lg;
    const TmaMaps *tm = maps_of<D>(smem);
    const CUtensorMap *m = V ? &tm->v[lg] : &tm->k[lg];
    mbar_add_tx(bar, (uint32_t)((len == h ? 1 : 2) * h * D * 2));
#pragma unroll
    for (int j = 0; j < D / 64; j++) {
        const uint32_t d = dst + j * BN * 128 + tid * 128;
        tma_load3(d, m, 64 * j, kr, bh, bar);
        if (len != h) tma_load3(d + (len - h) * 128, m, 64 * j, kr + len - h, bh, bar);
    }
}

/* inclusive max-scan over 128 threads of x; scan[0..3] hold each warp's own
 * maximum after it (the caller synchronises before, if scan is reused) */
template <class Bar>
__device__ __forceinline__ int block_maxscan(int x, int lane, int warp, int *scan, Bar bar) {
#pragma unroll
    for (int d = 1; d < 32; d <<= 1) {
        const int y = __shfl_up_sync(0xffffffffu, x, d);
        if (lane >= d) x = max(x, y);
    }
    if (lane == 31) scan[warp] = x;
    bar();
#pragma unroll
    for (int w = 0; w < 3; w++)
        if (w < warp) x = max(x, scan[w]);
    return x;
}

/* The table of a segment of <= SEG selected key clusters (col[seg ..
 * seg+nseg-1]) for TMA, keys in cluster order (no k_perm): clusters whose
 * rows follow each other form a run; entry i < nseg = cluster i's share of
 * its run's whole key tiles (the run's first floor(size/BN)*BN rows), entry
 * nseg + i = the rest of cluster i. The order of the keys does not change
 * the attention; so each key tile of the first part is BN rows of one run
 * (one box a 64-column half on the dense path, tile_tma; one piece a warp in
 * the sparse kernels), and the rests fill the tiles after it without padding
 * (tile_pieces). tstart/tcum as build_table's, tcum[2 nseg] = total; `whole` =
 * the first part's keys; wsc [SEG] is scratch. 128 threads. */
template <int SEG, class Bar>
__device__ __forceinline__ int build_split_table(const int32_t *__restrict__ col,
                                                 const int32_t *__restrict__ koff, int seg,
                                                 int nseg, int tid, int *tstart, int *tcum,
                                                 int *wsc, int *scan, Bar bar, int &whole) {
    static_assert(SEG % 128 == 0, "table capacity");
    constexpr int PER = SEG / 128;
    const int lane = tid & 31, warp = tid >> 5;
    int sz[PER], run = 0;
#pragma unroll
    for (int j = 0; j < PER; j++) {
        const int i = tid * PER + j;
        sz[j] = 0;
        if (i < nseg) {
            const int c = __ldg(col + seg + i), st = __ldg(koff + c);
            sz[j] = __ldg(koff + c + 1) - st;
            tstart[i] = st;
        }
        run += sz[j];
    }
    int total;
    int x = block_exscan<128>(run, lane, warp, scan, bar, total);
#pragma unroll
    for (int j = 0; j < PER; j++) { /* tcum: the prefix of the sizes, for now */
        const int i = tid * PER + j;
        if (i < nseg) tcum[i] = x;
        x += sz[j];
    }
    if (tid == 0) tcum[nseg] = total;
    bar();
    /* entry i starts a run when its rows do not follow entry i-1's */
    auto starts = [&](int i) {
        return i == 0 || tstart[i] != tstart[i - 1] + (tcum[i] - tcum[i - 1]);
    };
    x = -1;
#pragma unroll
    for (int j = 0; j < PER; j++)
        if (tid * PER + j < nseg && starts(tid * PER + j)) x = tid * PER + j;
    x = block_maxscan(x, lane, warp, scan, bar);
    /* rs0: the start of the run that this thread's first entry continues */
    int rs0 = __shfl_up_sync(0xffffffffu, x, 1);
    if (lane == 0) {
        rs0 = -1;
        for (int w = 0; w < warp; w++)
            rs0 = max(rs0, scan[w]);
    }
    /* a run's last entry writes the keys of the run's whole tiles at its start */
    int rs = rs0;
#pragma unroll
    for (int j = 0; j < PER; j++) {
        const int i = tid * PER + j;
        if (i >= nseg) continue;
        if (starts(i)) rs = i;
        if (i + 1 == nseg || starts(i + 1)) wsc[rs] = (tcum[i + 1] - tcum[rs]) / BN * BN;
    }
    bar();
    int f[PER], rf = 0, rr = 0;
    rs = rs0;
#pragma unroll
    for (int j = 0; j < PER; j++) {
        const int i = tid * PER + j;
        f[j] = 0;
        if (i < nseg) {
            if (starts(i)) rs = i;
            f[j] = min(max(wsc[rs] - (tcum[i] - tcum[rs]), 0), sz[j]);
        }
        rf += f[j];
        rr += sz[j] - f[j];
    }
    bar(); /* every read of tcum (and scan) before they are rewritten */
    int F, R;
    int ef = block_exscan<128>(rf, lane, warp, scan, bar, F);
    bar(); /* scan is reused */
    int er = block_exscan<128>(rr, lane, warp, scan, bar, R) + F;
#pragma unroll
    for (int j = 0; j < PER; j++) {
        const int i = tid * PER + j;
        if (i < nseg) {
            tstart[nseg + i] = tstart[i] + f[j];
            tcum[i] = ef;
            tcum[nseg + i] = er;
        }
        ef += f[j];
        er += sz[j] - f[j];
    }
    if (tid == 0) tcum[2 * nseg] = F + R;
    bar();
    whole = F;
    return F + R;
}

/* one stage of BN gathered rows, 128 threads: this thread's row starts at
 * src (bytes 0: zeros); a warp copies its 32 rows in passes of 32 / (D / 8)
 * rows, lane = (row in the pass) * (D / 8) + chunk (prow, pch) */
template <int D, typename T>
__device__ __forceinline__ void gather_rows(uint32_t dst, const T *src, int bytes, int prow,
                                            int pch, int warp) {
    constexpr int RPP = 32 / (D / 8), PASSES = 32 / RPP;
#pragma unroll
    for (int ps = 0; ps < PASSES; ps++) {
        const int from = ps * RPP + prow; /* lane holding the row */
        const T *g = reinterpret_cast<const T *>(
            __shfl_sync(0xffffffffu, reinterpret_cast<uintptr_t>(src), from));
        const int nb = __shfl_sync(0xffffffffu, bytes, from);
        cp_async16(dst + sw128<BN>(warp * 32 + from, pch), g + pch * 8, nb);
    }
}

/* a masked tile's column words of K use slot (colw: [2 STAGES][MIX_MEMBERS][4]):
 * per member k, this warp's word of the columns whose member bits mk have k */
__device__ __forceinline__ void store_column_words(uint32_t colw, uint32_t slot, uint32_t mk,
                                                   int nmem, int lane, int warp) {
    for (int k = 0; k < nmem; k++) {
        const uint32_t w = __ballot_sync(0xffffffffu, (mk >> k) & 1u);
        if (lane == 0) sts32(colw + 4 * ((slot * MIX_MEMBERS + k) * 4 + warp), w);
    }
}

/* EAR, the producer's part (128 threads): the key clusters that a work
 * item's query cluster did not select (col[rp[0] .. rp[1]-1]; empty ones
 * too, whose bias -inf leaves them out), in chunks of CAP clusters: a bit per
 * selected cluster (umask), the others compacted into a list (tstart), then
 * key tiles of their mean rows (K: mu, V: mv) on the rings from uses kn and
 * vn, each with its columns' score biases (log2 size, -inf past the end) in
 * the K use's cbias words, flagged BIASED in the meta word. A union item
 * (nmem > 0 members, Ck <= CAP): the clusters that not every member selected
 * (umask[c] = the members that selected c, from build_union), their
 * dropping members in tmask, so that each tile also carries the column words
 * of a masked tile (MASKED): a row sees the pseudo-keys of the clusters its
 * own query cluster dropped. Returns the tiles (ring uses) it filled. Not
 * inlined: inlined, it slowed the producer's loop over the item's own key
 * tiles by 5% (ncu), executed or not (docs/CUDA_KERNEL.md, "Ninth stop"). */
template <int D, typename T>
__device__ __noinline__ uint32_t pseudo_tiles(const int32_t *rp, const int32_t *col, int Ck, int bh,
                                              EarView ear, uint32_t sbase, uint32_t kn, uint32_t vn,
                                              int nmem) {
    using S = Smem90<D>;
    constexpr int STAGES = S::STAGES, PER = CAP / 128;
    static_assert(32 % PER == 0, "a thread's clusters in one bit word");
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int prow = lane / (D / 8), pch = lane % (D / 8);
    const uint32_t bars = sbase + (uint32_t)S::bar;
    const uint32_t bits = sbase + (uint32_t)S::umask, list = sbase + (uint32_t)S::tstart;
    const uint32_t drops = sbase + (uint32_t)S::tmask;
    int *scan = reinterpret_cast<int *>(__cvta_shared_to_generic(sbase + (uint32_t)S::scan));
    const uint32_t all = nmem >= 32 ? ~0u : (1u << nmem) - 1u;
    uint32_t n = 0;
    for (int c0 = 0; c0 < Ck; c0 += CAP) {
        const int nc = min(CAP, Ck - c0);
        const int nmine = min(max(nc - tid * PER, 0), PER);
        named_bar(1, 128); /* the previous table's or list's readers are done */
        /* this thread's clusters tid*PER .. +PER-1, those not selected (empty
         * ones too: their bias is -inf, and reading the sizes here cost more
         * than their share of a tile) */
        unsigned keep = 0u;
        if (nmem) {
            for (int j = 0; j < nmine; j++)
                keep |= (lds32(bits + 4 * (c0 + tid * PER + j)) != all ? 1u : 0u) << j;
        } else {
            if (tid < CAP / 32) sts32(bits + 4 * tid, 0u);
            named_bar(1, 128);
            for (int e = __ldg(rp) + tid, e1 = __ldg(rp + 1); e < e1; e += 128) {
                const int c = __ldg(col + e) - c0;
                if (c >= 0 && c < nc) atom_or_shared(bits + 4 * (c >> 5), 1u << (c & 31));
            }
            named_bar(1, 128);
            keep = ~(lds32(bits + 4 * (tid * PER / 32)) >> (tid * PER % 32)) & ((1u << nmine) - 1u);
        }
        int total;
        int pos = block_exscan<128>(
            __popc(keep), lane, warp, scan, [] { named_bar(1, 128); }, total);
#pragma unroll
        for (int j = 0; j < PER; j++)
            if ((keep >> j) & 1u) {
                const int c = c0 + tid * PER + j;
                if (nmem) sts32(drops + 4 * pos, ~lds32(bits + 4 * c) & all);
                sts32(list + 4 * pos++, (uint32_t)c);
            }
        named_bar(1, 128);
        for (int t = 0; t * BN < total; t++, n++) {
            const int x = t * BN + tid;
            const int c = x < total ? (int)lds32(list + 4 * x) : -1;
            const int bytes = c >= 0 ? 16 : 0;
            const int64_t r = (int64_t)bh * Ck + (c >= 0 ? c : 0); /* row of mu, mv, b2 */
            const uint32_t ku = kn + n, vu = vn + n, slot = ku % (2 * STAGES);
            uint32_t st = ku % STAGES;
            mbar_wait(bars + Bars<D>::empty_k + 8 * st, ((ku / STAGES) & 1) ^ 1);
            gather_rows<D>(sbase + (uint32_t)(S::k + st * S::kstage),
                           reinterpret_cast<const T *>(ear.mu) + r * D, bytes, prow, pch, warp);
            const float b = c >= 0 ? __ldg(ear.b2 + r) : -INFINITY;
            sts32(sbase + (uint32_t)S::cbias + 4 * (slot * BN + tid), __float_as_uint(b));
            if (nmem) /* per member the columns it dropped (as key_tiles' masked tiles) */
                store_column_words(sbase + (uint32_t)S::colw, slot,
                                   c >= 0 ? lds32(drops + 4 * x) : 0u, nmem, lane, warp);
            named_bar(1, 128); /* every bias and word before thread 0's arrival */
            mbar_arrive_cpasync(bars + Bars<D>::full_k + 8 * st);
            if (tid == 0) {
                sts32(sbase + (uint32_t)S::meta + 4 * st,
                      (uint32_t)(min(BN, total - t * BN) | BIASED | (nmem ? MASKED : 0)));
                mbar_arrive(bars + Bars<D>::full_k + 8 * st);
            }
            st = vu % STAGES;
            mbar_wait(bars + Bars<D>::empty_v + 8 * st, ((vu / STAGES) & 1) ^ 1);
            gather_rows<D>(sbase + (uint32_t)(S::v + st * S::kstage),
                           reinterpret_cast<const T *>(ear.mv) + r * D, bytes, prow, pch, warp);
            mbar_arrive_cpasync(bars + Bars<D>::full_v + 8 * st);
        }
    }
    return n;
}

/* ---- producer warpgroup (UNI: the union items, else the others; EAR: then
 * the pseudo-keys of the key clusters an item's query cluster dropped, in a
 * union item those any member dropped) ---- */
template <int D, typename T, bool UNI, bool DYN, bool TMA, bool EAR, bool DENSE>
__device__ __forceinline__ void
producer(const svoo_cuda_attend_params &p, const Tile *__restrict__ tiles, int ntiles, int *ctr,
         const MixView &mix, const EarView &ear, unsigned char *smem, uint32_t sbase) {
    using S = Smem90<D>;
    constexpr int STAGES = S::STAGES;
    constexpr int CPR = D / 8; /* 16-byte chunks per row */
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    int *tstart = reinterpret_cast<int *>(smem + S::tstart);
    int *tcum = reinterpret_cast<int *>(smem + S::tcum);
    int *scan = reinterpret_cast<int *>(smem + S::scan);
    uint32_t *umask = reinterpret_cast<uint32_t *>(smem + S::umask);
    uint32_t *tmask = reinterpret_cast<uint32_t *>(smem + S::tmask);
    uint32_t *wgm = reinterpret_cast<uint32_t *>(smem + S::wgm);
    volatile int *meta = reinterpret_cast<volatile int *>(smem + S::meta);
    const uint32_t bars = sbase + (uint32_t)S::bar;
    /* this lane's row within a pass and its chunk */
    const int prow = lane / CPR, pch = lane % CPR;
    auto gather = [&](uint32_t dst, const T *src, int bytes) {
        gather_rows<D>(dst, src, bytes, prow, pch, warp);
    };
    uint32_t kn = 0, vn = 0; /* K / V ring uses so far: stage n % STAGES, parity (n / STAGES) & 1 */
    int nxt = 0;             /* the block's next item */
    uint32_t nit = 0;        /* items so far: S::next slot nit & 1 */
    for (int ti = blockIdx.x; ti < ntiles; ti = next_item<DYN>(ti, nxt)) {
        const Tile tl = tiles[ti];
        const int bh = tl.bh, b = bh / p.H, h = bh - b * p.H;
        /* (the TMA instantiation runs only without k_perm) */
        const int32_t *kperm = !TMA && p.k_perm ? p.k_perm + (int64_t)bh * p.N_k : nullptr;
        const int32_t *koff = p.k_off + (int64_t)bh * (p.Ck + 1);
        const T *kb = reinterpret_cast<const T *>(p.k) + b * p.k_stride_b + h * p.k_stride_h;
        const T *vb = reinterpret_cast<const T *>(p.v) + b * p.v_stride_b + h * p.v_stride_h;
        /* V of a key tile (kr, bulk: as for its K). The K tiles run one ahead
         * of the V tiles (K0 K1 V0 K2 V1 ..., as the consumers use them), so
         * that the wait for a free V stage never holds up the next K tile */
        auto load_v = [&](int kr, bool bulk) {
            const uint32_t st = vn % STAGES;
            mbar_wait(bars + Bars<D>::empty_v + 8 * st, ((vn / STAGES) & 1) ^ 1);
            const uint32_t dst = sbase + (uint32_t)(S::v + st * S::kstage);
            if (bulk) {
                tile_tma<D, true>(smem, dst, kr, bh, bars + Bars<D>::full_v + 8 * st, tid);
            } else if constexpr (TMA) {
                tile_pieces<D, true>(smem, dst, kr, bh, bars + Bars<D>::full_v + 8 * st, tid);
                mbar_arrive(bars + Bars<D>::full_v + 8 * st);
            } else {
                gather(dst, vb + (int64_t)(kr >= 0 ? kr : 0) * p.v_stride_n, kr >= 0 ? 16 : 0);
                mbar_arrive_cpasync(bars + Bars<D>::full_v + 8 * st);
            }
            vn++;
        };
        /* the key tiles of one table of `total` keys; in a union item, tiles
         * past the members' common keys carry per member the bits of the
         * columns it selected: colw[K use % 2 STAGES][member][4 words], and
         * SKIP << c in the meta word where consumer c needs none of them */
        auto key_tiles = [&](int total, int common, int nmem, int whole) {
            const int ntk = (total + BN - 1) / BN;
            int cur = 0, pkr = 0; /* pkr, pbulk: the previous tile's, for its V */
            bool pbulk = false;
            for (int t = 0; t < ntk; t++) {
                /* TMA: each tile of the split table's first part (uniform)
                 * is BN rows of one run; on the dense path (DENSE) thread 0
                 * loads it as one box a 64-column half. The sparse kernels
                 * load it in per-warp pieces like any other tile (8 boxes):
                 * measured 0-2% faster on the calibrated calls, where whole
                 * tiles are ~40% of the keys, and 3% slower on the dense
                 * path (docs/CUDA_KERNEL.md, seventeenth stop) */
                const bool bulk = TMA && DENSE && (t + 1) * BN <= whole;
                /* this thread's key row of the tile: thread i -> key t*BN + i */
                const int kr =
                    bulk && tid != 0 ? 0 : key_row(t * BN + tid, total, cur, tstart, tcum, kperm);
                const bool masked = UNI && (t + 1) * BN > common; /* uniform */
                const int bytes = kr >= 0 ? 16 : 0;
                const int64_t r64 = kr >= 0 ? kr : 0;
                /* K */
                uint32_t st = kn % STAGES;
                mbar_wait(bars + Bars<D>::empty_k + 8 * st, ((kn / STAGES) & 1) ^ 1);
                uint32_t dst = sbase + (uint32_t)(S::k + st * S::kstage);
                if (bulk) {
                    tile_tma<D, false>(smem, dst, kr, bh, bars + Bars<D>::full_k + 8 * st, tid);
                } else if constexpr (TMA) {
                    tile_pieces<D, false>(smem, dst, kr, bh, bars + Bars<D>::full_k + 8 * st, tid);
                } else {
                    gather(dst, kb + r64 * p.k_stride_n, bytes);
                }
                if (masked) {
                    const uint32_t mk = kr >= 0 ? tmask[cur] : 0u;
                    store_column_words(sbase + (uint32_t)S::colw, kn % (2 * STAGES), mk, nmem, lane,
                                       warp);
                    if constexpr (UNI) { /* the consumers this warp's columns need */
                        const uint32_t need =
                            (__any_sync(0xffffffffu, mk & (wgm[0] | wgm[1])) ? 1u : 0u) |
                            (__any_sync(0xffffffffu, mk & (wgm[2] | wgm[3])) ? 2u : 0u);
                        if (lane == 0) wgm[4 + 4 * (kn & 1) + warp] = need;
                    }
                    named_bar(1, 128); /* every warp's words before thread 0's arrival */
                }
                /* each thread arrives after its column words, as after a gather
                 * (arriving before them, racecheck reported the words read by the
                 * consumers as a race: it does not follow the writes through the
                 * named barrier to thread 0's arrival) */
                if (!bulk) {
                    if constexpr (TMA)
                        mbar_arrive(bars + Bars<D>::full_k + 8 * st);
                    else
                        mbar_arrive_cpasync(bars + Bars<D>::full_k + 8 * st);
                }
                if (tid == 0) {
                    int mw = min(BN, total - t * BN) | (masked ? MASKED : 0);
                    if constexpr (UNI) {
                        /* two slots by the parity of the K use: a warp rewrites this one
                         * two masked tiles on, past the next one's barrier (an item's
                         * masked tiles are consecutive K uses; the next item's come
                         * after its table's barriers) */
                        const uint32_t *nd = wgm + 4 + 4 * (kn & 1);
                        if (masked) mw |= (int)(~(nd[0] | nd[1] | nd[2] | nd[3]) & 3u) * SKIP;
                    }
                    meta[st] = mw;
                    mbar_arrive(bars + Bars<D>::full_k + 8 * st);
                }
                kn++;
                if (t > 0) load_v(pkr, pbulk);
                pkr = kr;
                pbulk = bulk;
            }
            if (ntk > 0) load_v(pkr, pbulk);
        };
        int nmem = 0;        /* a union item's members */
        if constexpr (UNI) { /* the union of the members' selections, one table */
            const int m = -1 - tl.r;
            nmem = __ldg(mix.nmem + m);
            /* the members with rows in each warp's 32 rows (read after the barrier;
             * the previous item's last reads of them precede one of its barriers) */
            const uint32_t mb =
                tid < tl.nrows ? 1u << (__ldg(mix.row + (int64_t)m * MIX_ROWS + tid) & 31) : 0u;
            const uint32_t wm = __reduce_or_sync(0xffffffffu, mb);
            if (lane == 0) wgm[warp] = wm;
            named_bar(1, 128); /* the previous table's readers are done */
            int common;
            const int total = build_union<CAP>(
                p, p.row_ptr + (int64_t)bh * (p.Cq + 1), koff, mix.mem + (int64_t)m * MIX_MEMBERS,
                nmem, wgm[0] | wgm[1], wgm[2] | wgm[3], tid, umask, tstart, tcum, tmask, scan,
                [] { named_bar(1, 128); }, common);
            key_tiles(total, common, nmem, 0);
        } else { /* the query cluster's selection in tables of <= CAP clusters */
            const int e0 = __ldg(p.row_ptr + (int64_t)bh * (p.Cq + 1) + tl.r);
            const int e1 = __ldg(p.row_ptr + (int64_t)bh * (p.Cq + 1) + tl.r + 1);
            constexpr int SEG = TMA ? CAP / 2 : CAP; /* the split table: two entries a cluster */
            for (int seg = e0; seg < e1; seg += SEG) {
                const int nseg = min(SEG, e1 - seg);
                named_bar(1, 128); /* the previous table's readers are done */
                auto bar = [] { named_bar(1, 128); };
                int whole = 0;
                const int total =
                    TMA ? build_split_table<SEG>(p.col, koff, seg, nseg, tid, tstart, tcum,
                                                 reinterpret_cast<int *>(tmask), scan, bar, whole)
                        : build_table<128, CAP>(p.col, koff, seg, nseg, tid, tstart, tcum, scan,
                                                bar);
                key_tiles(total, total, 0, whole);
            }
        }
        if constexpr (EAR) { /* a union item: its members' bits still in umask */
            const uint32_t n =
                pseudo_tiles<D, T>(UNI ? nullptr : p.row_ptr + (int64_t)bh * (p.Cq + 1) + tl.r,
                                   p.col, p.Ck, bh, ear, sbase, kn, vn, nmem);
            kn += n;
            vn += n;
        }
        /* end of the work item (on the K ring): meta = -1, with DYN -1 - the
         * block's next item */
        const uint32_t st = kn % STAGES;
        mbar_wait(bars + Bars<D>::empty_k + 8 * st, ((kn / STAGES) & 1) ^ 1);
        mbar_arrive_cpasync(bars + Bars<D>::full_k + 8 * st);
        /* two slots: thread 0 rewrites this one two items on, past the next
         * item's closing barrier, which every thread reaches after its read
         * (an item without keys has no other producer barrier) */
        volatile int *next = reinterpret_cast<volatile int *>(smem + S::next) + (nit++ & 1);
        if (tid == 0) {
            int end = -1;
            if constexpr (DYN) {
                *next = (int)gridDim.x + atomicAdd(ctr, 1);
                end = -1 - *next;
            }
            meta[st] = end;
            mbar_arrive(bars + Bars<D>::full_k + 8 * st);
        }
        kn++;
        if constexpr (DYN) {
            named_bar(1, 128); /* thread 0's *next */
            nxt = *next;
        }
    }
    cp_wait0();
}

/* one key tile's softmax step on S (64 x BN of this warpgroup; this thread:
 * rows g, g+8, columns 8j + 2*c4 + {0,1}): mask past nv (only the last key
 * tile of a table or of a chunk of EAR pseudo-keys is partial) or, in a
 * masked tile of a union item (cw not null: the K stage's column words,
 * [member][4]), the columns whose bit is clear in the words of the row's
 * member (ri[0], ri[8]: rowinfo of rows g, g + 8); running max m (in log2
 * units), S <- exp2(S*sl2 - m) as one FFMA per score (sl2 > 0, so the max
 * commutes with the scaling), l <- l*alpha + rowsum; returns alpha per row */
__device__ __forceinline__ void softmax_step(float (&s)[64], int nv, const uint32_t *cw,
                                             const int *ri, int c4, float sl2, float (&m)[2],
                                             float (&l)[2], float (&alpha)[2]) {
#ifdef SVOO_SM90_UNI_NOMASK /* dev: the union kernel's time without masks (wrong; SKIP stays) */
    cw = nullptr;
#endif
    if (cw) { /* one word live at a time: the consumer is at its register limit */
#pragma unroll
        for (int hi = 0; hi < 2; hi++)
#pragma unroll
            for (int q = 0; q < 4; q++) {
                const uint32_t w = cw[(ri[8 * hi] & 31) * 4 + q] >> (2 * c4);
#pragma unroll
                for (int j = 4 * q; j < 4 * q + 4; j++)
#pragma unroll
                    for (int e = 0; e < 2; e++)
                        if (!((w >> (8 * (j & 3) + e)) & 1u)) s[4 * j + 2 * hi + e] = -INFINITY;
            }
    } else if (nv < BN) {
#pragma unroll
        for (int j = 0; j < BN / 8; j++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                if (8 * j + 2 * c4 + (e & 1) >= nv) s[4 * j + e] = -INFINITY;
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
        const float mnew = fmaxf(mold, mx * sl2);
        const float muse = mnew == -INFINITY ? 0.f : mnew;
        alpha[hi] = exp2_ftz(mold - muse);
        m[hi] = mnew;
        float sum = 0.f;
#pragma unroll
        for (int j = 0; j < BN / 8; j++) {
            const float p0 = exp2_ftz(fmaf(s[4 * j + 2 * hi], sl2, -muse));
            const float p1 = exp2_ftz(fmaf(s[4 * j + 2 * hi + 1], sl2, -muse));
            s[4 * j + 2 * hi] = p0;
            s[4 * j + 2 * hi + 1] = p1;
            sum += p0 + p1;
        }
        l[hi] = l[hi] * alpha[hi] + sum;
    }
}

/* Q's A operand of k-step kk: a descriptor into Q's swizzled [D/64][BM][64] tile (its 64
 * rows at qa), or this thread's fragments when Q is in registers (qf: load_q) */
__device__ __forceinline__ uint64_t q_operand(uint32_t qa, int kk) {
    return kmajor_desc(qa, BM, kk);
}
template <int KS>
__device__ __forceinline__ const uint32_t (&q_operand(const uint32_t (&qf)[KS][4], int kk))[4] {
    return qf[kk];
}

/* S = Q K^T of one key tile: D/16 wgmma, K (BN keys at ka) by descriptor from its swizzled
 * [D/64][BN][64] tile, Q from shared memory or registers (q_operand) */
template <typename T, int D, class QOp>
__device__ __forceinline__ void issue_qk(float (&s)[64], const QOp &q, uint32_t ka) {
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++)
        Mma<T, D>::qk(s, q_operand(q, kk), kmajor_desc(ka, BN, kk), kk > 0);
}

/* this thread's A fragments of its warpgroup's Q rows r, r + 8 (columns 16 kk + 2 c4 + {0, 1}
 * and + 8) from the swizzled [D/64][BM][64] Q tile at qs */
template <int D>
__device__ __forceinline__ void load_q(uint32_t (&qf)[D / 16][4], uint32_t qs, int r, int c4) {
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++)
#pragma unroll
        for (int i = 0; i < 4; i++)
            qf[kk][i] = lds32(qs + sw128<BM>(r + 8 * (i & 1), 2 * kk + (i >> 1)) + 4 * c4);
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

/* O *= alpha per row (this thread's rows g, g + 8); once the running maxima
 * settle most tiles leave them as they are: skipped when no row of the warp
 * changed */
template <int D>
__device__ __forceinline__ void rescale_o(float (&o)[D / 2], const float (&alpha)[2]) {
    if (__any_sync(0xffffffffu, alpha[0] != 1.f || alpha[1] != 1.f)) {
#pragma unroll
        for (int j = 0; j < D / 8; j++) {
            o[4 * j + 0] *= alpha[0];
            o[4 * j + 1] *= alpha[0];
            o[4 * j + 2] *= alpha[1];
            o[4 * j + 3] *= alpha[1];
        }
    }
}

/* a key tile this warpgroup does not compute (no rows, or SKIP): release K and V */
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

/* the meta word of K use kn -> nv (valid keys: MASKED and SKIP cleared); the
 * use's column words when the tile is masked per member, else null. The
 * producer rewrites them for use kn + 2 STAGES, after this consumer released
 * use kn + STAGES (later than this tile's softmax), so the K stage itself is
 * released early. */
template <int D>
__device__ __forceinline__ const uint32_t *column_words(const unsigned char *smem, uint32_t kn,
                                                        int &nv) {
    const bool msk = nv & MASKED;
    nv &= ~(MASKED | 3 * SKIP);
    return msk ? reinterpret_cast<const uint32_t *>(smem + Smem90<D>::colw) +
                     (kn % (2 * Smem90<D>::STAGES)) * MIX_MEMBERS * 4
               : nullptr;
}

/* the meta word of K use kn -> nv without BIASED; the use's score biases
 * when the tile holds EAR pseudo-keys, else null (kept past the K stage's
 * release as column_words are). A union item's pseudo-key tiles are also
 * MASKED: column_words clears that flag. */
template <int D>
__device__ __forceinline__ const float *tile_bias(const unsigned char *smem, uint32_t kn, int &nv) {
    const bool b = nv & BIASED;
    nv &= ~BIASED;
    return b ? reinterpret_cast<const float *>(smem + Smem90<D>::cbias) +
                   (kn % (2 * Smem90<D>::STAGES)) * BN
             : nullptr;
}

/* a pseudo-key tile's scores in log2 units with their biases: S <- S*sl2 +
 * bias[column] (this thread's columns 8j + 2*c4 + {0,1}); the softmax then
 * takes them at scale 1 */
__device__ __forceinline__ void add_bias(float (&s)[64], const float *bias, int c4, float sl2) {
#pragma unroll
    for (int j = 0; j < BN / 8; j++) {
        const float2 b = *reinterpret_cast<const float2 *>(bias + 8 * j + 2 * c4);
#pragma unroll
        for (int hi = 0; hi < 2; hi++) {
            s[4 * j + 2 * hi] = fmaf(s[4 * j + 2 * hi], sl2, b.x);
            s[4 * j + 2 * hi + 1] = fmaf(s[4 * j + 2 * hi + 1], sl2, b.y);
        }
    }
}

/* ---- consumer warpgroups ---- */
template <int D, typename T, bool LSE, bool UNI, bool EAR, bool TMA, bool DENSE>
__device__ __forceinline__ void consumer(const svoo_cuda_attend_params &p,
                                         const Tile *__restrict__ tiles, int ntiles,
                                         const MixView &mix, unsigned char *smem, uint32_t sbase) {
    static_assert(!(LSE && UNI), "the log-sum-exps never get union items");
    static_assert(!(LSE && TMA), "kLean ignores LSE: an LSE + TMA kernel would be lean");
    static_assert(!DENSE || kLean<TMA>, "the dense path is a lean instantiation");
    constexpr bool DYN = kDyn<LSE, UNI, EAR, TMA, DENSE>, SK = UNI;
    using S = Smem90<D>;
    constexpr int STAGES = S::STAGES;
    constexpr int CPR = D / 8;
    const int cw = threadIdx.x / 128 - 1; /* consumer 0 / 1: Q smem rows 64cw .. 64cw+63 */
    const int wt = threadIdx.x & 127, lane = wt & 31, wq = wt >> 5;
    volatile int *meta = reinterpret_cast<volatile int *>(smem + S::meta);
    int *rowinfo = reinterpret_cast<int *>(smem + S::rowinfo);
    const uint32_t bars = sbase + (uint32_t)S::bar;
    const uint32_t qs = sbase + (uint32_t)S::q;
    /* the shared addresses the wgmma descriptors are built from go through uni(): ptxas then
     * knows them warp-uniform and builds the descriptors on the uniform datapath, instead of
     * in each thread's registers followed by a move to uniform registers (R2UR) at every wgmma
     * (docs/CUDA_KERNEL.md, twenty-fifth stop: 6% fewer instructions on the dense path) */
    auto uni = [](uint32_t x) { return __shfl_sync(0xffffffffu, x, 0); };
    const float sl2 = p.scale * 1.4426950408889634f;
    const int g = lane >> 2, c4 = lane & 3;
    uint32_t kn = 0, vn = 0;           /* ring uses so far, as the producer counts them */
    constexpr bool QREG = kLean<TMA>;  /* Q in registers */
    uint32_t qf[QREG ? D / 16 : 1][4]; /* QREG: this thread's fragments of Q (load_q) */
    const uint32_t qa = QREG ? 0u : uni(qs + (uint32_t)(64 * cw * 128)); /* else Q's tile */
    /* ping-pong: consumer c waits on named barrier 5+c before issuing its
     * GEMMs of a key tile and arrives on the other's barrier after issuing
     * them; consumer 1 hands consumer 0 the first turn (once: each item with
     * pp leaves the turn with consumer 0 again; one arrival stays pending at
     * exit) */
    if (kPingPong && cw == 1) named_arrive(5, 256);
    int nxt = 0; /* the block's next item, from the terminal meta word */
    for (int ti = blockIdx.x; ti < ntiles; ti = next_item<DYN>(ti, nxt)) {
        const Tile tl = tiles[ti];
        const int bh = tl.bh, b = bh / p.H, h = bh - b * p.H;
        /* a tail of <= 64 rows leaves consumer 1 without rows (it only releases
         * the stages); otherwise both compute every key tile and take turns on
         * the tensor cores (ping-pong) */
        const int row0 = tl.row0 + 64 * cw, nr = min(64, tl.nrows - 64 * cw);
        const bool pp = kPingPong && tl.nrows > 64;
        const bool active = nr > 0;
        const int32_t *qperm = p.q_perm ? p.q_perm + (int64_t)bh * p.N_q : nullptr;
        /* a union item's rows of this warpgroup (pos << 5 | member), copied
         * to rowinfo at the Q load (registers are short in the key loop) */
        if (active) {
            const T *qb = reinterpret_cast<const T *>(p.q) + b * p.q_stride_b + h * p.q_stride_h;
            const int *mrow = UNI ? mix.row + (int64_t)(-1 - tl.r) * MIX_ROWS + 64 * cw : nullptr;
#pragma unroll
            for (int it = 0; it < 64 * CPR / 128; it++) {
                const int idx = it * 128 + wt, rr = idx / CPR, ch = idx % CPR;
                const bool ok = rr < nr;
                int orig = ok ? (qperm ? __ldg(qperm + row0 + rr) : row0 + rr) : 0;
                if constexpr (UNI) {
                    if (ok) {
                        const int x = __ldg(mrow + rr);
                        if (ch == 0) rowinfo[64 * cw + rr] = x;
                        orig = qperm ? __ldg(qperm + (x >> 5)) : x >> 5;
                    }
                }
                cp_async16(qs + sw128<BM>(64 * cw + rr, ch),
                           qb + (int64_t)orig * p.q_stride_n + ch * 8, ok ? 16 : 0);
            }
            cp_commit();
            cp_wait0();
            /* Q's rows for wgmma's descriptor reads (async proxy); in registers, ld.shared
             * (generic) reads them */
            if constexpr (!QREG) fence_proxy_async();
            named_bar(2 + cw, 128);
            if constexpr (QREG) load_q<D>(qf, qs, 64 * cw + 16 * wq + g, c4);
        }
        float o[D / 2], s[64];
        uint32_t pa[BN / 16][4];
        /* S = Q K^T of the K stage at ka, Q from registers or from shared memory */
        auto issue_s = [&](uint32_t ka) {
            if constexpr (QREG)
                issue_qk<T, D>(s, qf, ka);
            else
                issue_qk<T, D>(s, qa, ka);
        };
#pragma unroll
        for (int i = 0; i < D / 2; i++)
            o[i] = 0.f;
#pragma unroll
        for (int i = 0; i < 64; i++)
            s[i] = 0.f;
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++)
            pa[kk][0] = pa[kk][1] = pa[kk][2] = pa[kk][3] = 0u;
        float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
        /* The first key tile of this warpgroup: S = Q K^T and softmax only. Then
         * per tile: issue S = Q K^T of this tile and O += P V of the previous
         * one, softmax of this tile while P V runs. (Loops peeled so that no
         * wgmma sits on a conditional path between others: ptxas would
         * serialise them all, C7520.) With SK, a tile this warpgroup skips
         * ends that sequence: P V of the tile before it, then the first-tile
         * step again from the next tile it computes. */
        uint32_t pvn = 0; /* the V ring use of the tile whose P pa holds */
        for (;;) {
            bool have = false; /* pa holds P of a tile whose P V is not issued */
            for (;;) {
                const uint32_t kst = kn % STAGES;
                mbar_wait(bars + Bars<D>::full_k + 8 * kst, (kn / STAGES) & 1);
                int nv = meta[kst];
                if (nv < 0) break;
                if (!active) {
                    skip_tile<STAGES>(bars, kn, vn);
                    continue;
                }
                if constexpr (SK) {
                    if (nv & (SKIP << cw)) { /* pass the turn on, release the tile */
                        if (pp) named_bar(5 + cw, 256), named_arrive(6 - cw, 256);
                        skip_tile<STAGES>(bars, kn, vn);
                        continue;
                    }
                }
                fence_proxy_async();
                const uint32_t ka = uni(sbase + (uint32_t)(S::k + kst * S::kstage));
                reg_fence(s);
                if (pp) named_bar(5 + cw, 256); /* my turn */
                wgmma_fence();
                issue_s(ka);
                wgmma_commit();
                if (pp) named_arrive(6 - cw, 256); /* the other's turn */
                const uint32_t *cwd = UNI ? column_words<D>(smem, kn, nv) : nullptr;
                const float *bias = EAR ? tile_bias<D>(smem, kn, nv) : nullptr;
                wgmma_wait<0>();
                reg_fence(s);
                mbar_arrive(bars + Bars<D>::empty_k + 8 * kst);
                kn++;
                float alpha[2], sc = sl2;
                if (EAR && bias) add_bias(s, bias, c4, sl2), sc = 1.f;
                softmax_step(s, nv, cwd, rowinfo + 64 * cw + 16 * wq + g, c4, sc, m, l, alpha);
                if constexpr (SK) rescale_o<D>(o, alpha); /* O holds the tiles before a skip */
                pack_p<T>(s, pa);
                pvn = vn++;
                have = true;
                break;
            }
            if (!have) break;
            /* the item's key tiles after the first, BIAS: EAR's pseudo-key tiles
             * (they come last); the loop over the item's own tiles leaves them
             * to its own copy, so that its code is that of the other
             * instantiations (with the bias in one loop, the EAR kernel ran
             * its own tiles 10% slower). It returns whether it stopped at a
             * SKIP tile. */
            auto steady = [&](auto bias_tag) {
                constexpr bool BIAS = decltype(bias_tag)::value;
                for (;;) {
                    const uint32_t kst = kn % STAGES;
                    mbar_wait(bars + Bars<D>::full_k + 8 * kst, (kn / STAGES) & 1);
                    int nv = meta[kst];
                    /* negative: the item's end; BIASED: its pseudo-key tiles */
                    if (nv < 0 || (EAR && !BIAS && (nv & BIASED))) return false;
                    if constexpr (SK)
                        if (nv & (SKIP << cw)) return true;
                    const uint32_t pvst = pvn % STAGES;
                    mbar_wait(bars + Bars<D>::full_v + 8 * pvst, (pvn / STAGES) & 1);
                    fence_proxy_async();
                    const uint32_t ka = uni(sbase + (uint32_t)(S::k + kst * S::kstage));
                    const uint32_t va = uni(sbase + (uint32_t)(S::v + pvst * S::kstage));
                    reg_fence(s);
                    reg_fence(o);
                    reg_fence(pa);
                    if (pp) named_bar(5 + cw, 256);
                    wgmma_fence();
                    issue_s(ka);
                    wgmma_commit();
                    issue_pv<T, D>(o, pa, va);
                    wgmma_commit();
                    if (pp) named_arrive(6 - cw, 256);
                    const uint32_t *cwd = UNI ? column_words<D>(smem, kn, nv) : nullptr;
                    const float *bias = BIAS ? tile_bias<D>(smem, kn, nv) : nullptr;
                    wgmma_wait<1>(); /* S is ready, P V may run on */
                    reg_fence(s);
                    mbar_arrive(bars + Bars<D>::empty_k + 8 * kst);
                    kn++;
                    float alpha[2];
                    if constexpr (BIAS) add_bias(s, bias, c4, sl2);
                    softmax_step(s, nv, cwd, rowinfo + 64 * cw + 16 * wq + g, c4, BIAS ? 1.f : sl2,
                                 m, l, alpha);
                    /* ptxas hoists the P V wait (WARPGROUP.DEPBAR) above
                     * register-only work, which runs the softmax after
                     * this warpgroup's own P V instead of beside it; it
                     * keeps shared-memory operations on their side of the
                     * wait, so a store of the row sums (never read) pins
                     * the softmax. Lean instantiations only
                     * (docs/CUDA_KERNEL.md, eleventh and twelfth stops:
                     * dense +2.5-4%, the sparse calls -1-3% at 208
                     * registers; twenty-sixth stop, with Q in registers:
                     * the top-p 0.6 call queued -0.5 ms) */
                    if constexpr (kLean<TMA>)
                        asm volatile("st.shared.f32 [%0], %1;\n" ::"r"(sbase + (uint32_t)S::pin +
                                                                       4u * (threadIdx.x - 128)),
                                     "f"(l[0] + l[1])
                                     : "memory");
                    wgmma_wait<0>();
                    reg_fence(o);
                    reg_fence(pa);
                    mbar_arrive(bars + Bars<D>::empty_v + 8 * pvst);
                    rescale_o<D>(o, alpha);
                    pack_p<T>(s, pa);
                    pvn = vn++;
                }
            };
            const bool skipped = steady(std::false_type{});
            /* the pseudo-key tiles; after a SKIP tile it returns at once, at that tile */
            if constexpr (EAR) steady(std::true_type{});
            /* P V of the last tile computed (the item's, or the one before a SKIP tile) */
            const uint32_t pvst = pvn % STAGES;
            mbar_wait(bars + Bars<D>::full_v + 8 * pvst, (pvn / STAGES) & 1);
            fence_proxy_async();
            const uint32_t va = uni(sbase + (uint32_t)(S::v + pvst * S::kstage));
            reg_fence(o);
            reg_fence(pa);
            wgmma_fence();
            issue_pv<T, D>(o, pa, va);
            wgmma_commit();
            wgmma_wait<0>();
            reg_fence(o);
            mbar_arrive(bars + Bars<D>::empty_v + 8 * pvst);
            if (!skipped) break;
        }
        /* the terminal K stage */
        if constexpr (DYN) nxt = -1 - meta[kn % STAGES];
        mbar_arrive(bars + Bars<D>::empty_k + 8 * (kn % STAGES));
        kn++;
        if (!active) continue;

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
            if constexpr (LSE) /* a separate instantiation: the default kernel is unchanged */
                if (c4 == 0 && row - 64 * cw < nr)
                    p.lse[(int64_t)bh * p.N_q + tl.row0 + row] = row_lse(m[hi], ls);
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
                int orig = qperm ? __ldg(qperm + row0 + rr) : row0 + rr;
                if constexpr (UNI) {
                    const int pos = rowinfo[64 * cw + rr] >> 5;
                    orig = qperm ? __ldg(qperm + pos) : pos;
                }
                *reinterpret_cast<uint4 *>(ob + (int64_t)orig * p.o_stride_n + ch * 8) =
                    *reinterpret_cast<const uint4 *>(smem + S::q + sw128<BM>(64 * cw + rr, ch));
            }
        }
        named_bar(2 + cw, 128); /* the Q rows are reused by the next work item */
    }
}

#endif /* SVOO_SM90_WGMMA */

template <int D, typename T, bool LSE, bool UNI, bool TMA, bool EAR, bool DENSE>
__global__ void __launch_bounds__(NTHR, 1)
    attend90_kernel(const svoo_cuda_attend_params p, const Tile *__restrict__ tiles, int *ntiles_p,
                    const MixView mix, const EarView ear, const __grid_constant__ TmaMaps tm) {
#ifdef SVOO_SM90_WGMMA
    using S = Smem90<D>;
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    /* 1024-byte aligned base (the 128-byte swizzle repeats every 1024 bytes) */
    unsigned char *smem = smem_raw + ((1024 - (smem_u32(smem_raw) & 1023)) & 1023);
    const uint32_t sbase = smem_u32(smem);
    const int ntiles = __ldg(ntiles_p); /* ntiles_p[1]: the item counter (DYN) */
    /* the call's second launch may take the SMs this one leaves */
    asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
    /* a block of the second launch (started early: launch90) ends after the
     * first launch, so that what follows in the stream sees both: every
     * block, also one without items (with none at all the second grid would
     * end first); in a launch without a programmatic prerequisite a no-op */
    auto end_after_first = [] {
        if (threadIdx.x == 0) asm volatile("griddepcontrol.wait;\n" ::: "memory");
    };
    if ((int)blockIdx.x >= ntiles) {
        end_after_first();
        return;
    }
    if (threadIdx.x == 0) {
        const uint32_t bars = sbase + (uint32_t)S::bar;
        for (int s = 0; s < S::STAGES; s++) {
            mbar_init(bars + Bars<D>::full_k + 8 * s, 128 + 1); /* producers' copies + meta */
            mbar_init(bars + Bars<D>::full_v + 8 * s, 128);     /* producers' copies */
            mbar_init(bars + Bars<D>::empty_k + 8 * s, 256);    /* consumers */
            mbar_init(bars + Bars<D>::empty_v + 8 * s, 256);
        }
        if constexpr (TMA) *reinterpret_cast<const TmaMaps **>(smem + S::tmaps) = &tm;
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();
    if (threadIdx.x < 128) {
        asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kProdRegs<TMA>));
        producer<D, T, UNI, kDyn<LSE, UNI, EAR, TMA, DENSE>, TMA, EAR, DENSE>(
            p, tiles, ntiles, ntiles_p + 1, mix, ear, smem, sbase);
    } else {
        asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kConsRegs<TMA>));
        consumer<D, T, LSE, UNI, EAR, TMA, DENSE>(p, tiles, ntiles, mix, smem, sbase);
    }
    end_after_first();
#else
    (void)p;
    (void)tiles;
    (void)ntiles_p;
    (void)mix;
    (void)ear;
    (void)tm;
#ifdef __CUDA_ARCH__
    __trap(); /* built without sm_90a: svoo_cuda_attend must not launch this */
#endif
#endif
}

template <int D, typename T, bool LSE, bool UNI, bool TMA = false, bool EAR = false,
          bool DENSE = false>
svoo_status launch90(const svoo_cuda_attend_params *p, const DevAttrs &da, const Tile *tiles,
                     int *ntiles, int64_t max_tiles, const MixView &mix, cudaStream_t s,
                     bool second, const TmaMaps &tm = TmaMaps{}, const EarView &ear = EarView{}) {
    constexpr size_t sm = Smem90<D>::total;
    /* the shared-memory attribute: once per device (attend_common.cuh) */
    cudaError_t e = smem_once<attend90_kernel<D, T, LSE, UNI, TMA, EAR, DENSE>, sm>(da.dev);
    if (e != cudaSuccess)
        return fail(SVOO_ERR_CUDA, "svoo_cuda_attend: sm90 cudaFuncSetAttribute(%zu bytes): %s: %s",
                    sm, cudaGetErrorName(e), cudaGetErrorString(e));
    const int64_t grid = max_tiles < da.nsm ? max_tiles : da.nsm;
    if (grid < 1) return SVOO_OK;
    /* a call's second launch starts on each SM the first leaves (programmatic
     * dependent launch); its blocks wait for the first launch's end before
     * they exit */
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3((unsigned)grid);
    cfg.blockDim = dim3(NTHR);
    cfg.dynamicSmemBytes = sm;
    cfg.stream = s;
    cfg.attrs = at;
    cfg.numAttrs = second && !env_off("SVOO_CUDA_PDL") ? 1 : 0; /* =0: it waits for the first */
    e = cudaLaunchKernelEx(&cfg, attend90_kernel<D, T, LSE, UNI, TMA, EAR, DENSE>, *p, tiles,
                           ntiles, mix, ear, tm);
    if (e != cudaSuccess)
        return fail(SVOO_ERR_CUDA, "svoo_cuda_attend: sm90 launch: %s: %s", cudaGetErrorName(e),
                    cudaGetErrorString(e));
    return SVOO_OK;
}

/* cuTensorMapEncodeTiled, from the driver through the runtime (no -lcuda);
 * null when the driver has none. Looked up once (a failure too: its error
 * is cleared, so that the gather the caller falls back to reports none) */
PFN_cuTensorMapEncodeTiled_v12000 encode_fn() {
    static std::atomic<int> state{0}; /* 0 unknown, 1 found, 2 none */
    static std::atomic<PFN_cuTensorMapEncodeTiled_v12000> fn{nullptr};
    const int st = state.load(std::memory_order_acquire);
    if (st) return st == 1 ? fn.load(std::memory_order_relaxed) : nullptr;
    void *ptr = nullptr;
    cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
#if CUDART_VERSION >= 12050
    const cudaError_t e = cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &ptr, 12000,
                                                           cudaEnableDefault, &q);
#else
    const cudaError_t e =
        cudaGetDriverEntryPoint("cuTensorMapEncodeTiled", &ptr, cudaEnableDefault, &q);
#endif
    if (e != cudaSuccess || q != cudaDriverEntryPointSuccess || !ptr) {
        cudaGetLastError();
        state.store(2, std::memory_order_release);
        return nullptr;
    }
    fn.store(reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(ptr), std::memory_order_relaxed);
    state.store(1, std::memory_order_release);
    return fn.load(std::memory_order_relaxed);
}

/* the TMA descriptors of one (B, H, N_k, D) tensor whose heads lie at one
 * stride (b*H + h), boxes of each height (TmaMaps): false when TMA cannot
 * describe it (strides, alignment), and the caller gathers instead */
template <int D>
bool tma_maps(CUtensorMap (&m)[PIECE_MAPS + 1], PFN_cuTensorMapEncodeTiled_v12000 enc,
              const void *base, int dtype, const svoo_cuda_attend_params *p, int64_t sb, int64_t sh,
              int64_t sn) {
    if (sn <= 0 || (p->H > 1 && sh <= 0) || (p->B > 1 && sb <= 0)) return false;
    if (p->H == 1) sh = sb;                        /* h is always 0 */
    if (p->B * p->H == 1) sh = sn * p->N_k;        /* bh is always 0: any valid stride */
    if (p->B > 1 && sb != sh * p->H) return false; /* (a view with gaps between batches) */
    const cuuint64_t dims[3] = {(cuuint64_t)D, (cuuint64_t)p->N_k, (cuuint64_t)p->B * p->H};
    const cuuint64_t strides[2] = {(cuuint64_t)sn * 2, (cuuint64_t)sh * 2};
    const cuuint32_t estr[3] = {1, 1, 1};
    for (int i = 0; i <= PIECE_MAPS; i++) {
        const cuuint32_t box[3] = {64, i == WHOLE ? (cuuint32_t)BN : 1u << i, 1};
        if (enc(&m[i],
                dtype == SVOO_CUDA_BF16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16
                                        : CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
                3, const_cast<void *>(base), dims, strides, box, estr,
                CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) != CUDA_SUCCESS)
            return false;
    }
    return true;
}

/* calls f(TMA, EAR, DENSE) (std::bool_constant each) with the flags of the plain
 * kernel's instantiation: gathered key tiles, the dense path's (whole key tiles
 * but a tail; one box a whole tile) or TMA pieces. One choice for the launch
 * and for the host's reading of its kDyn. */
template <bool EAR, class F> auto with_plain(bool tma, bool dense, F f) {
    using no = std::false_type;
    using yes = std::true_type;
    if (!tma) return f(no{}, std::bool_constant<EAR>{}, no{});
    if (dense) return f(yes{}, no{}, yes{});
    return f(yes{}, std::bool_constant<EAR>{}, no{});
}

/* the work list's items and its union items (their own instantiation: the
 * plain kernel keeps its registers), with TMA key tiles (tma: the maps tm)
 * or gathered; EAR (ear): pseudo-key tiles after each item's own. The second
 * launch starts on the SMs the first leaves (launch90), so the union items,
 * the larger ones, go first where the plain kernel takes its items at run
 * time and can fill the SMs as they come free (with the plain kernel's items
 * at run time too: -0.4 to -0.8 ms a call without EAR, docs/CUDA_KERNEL.md
 * "Fifteenth stop"; EAR calls unchanged); a plain kernel with items at the
 * stride of the grid goes first */
template <int D, typename T, bool EAR>
svoo_status launch_items(const svoo_cuda_attend_params *p, const WorkList &wl, cudaStream_t s,
                         bool tma, const TmaMaps &tm, const EarView &ear, const DevAttrs &da) {
    const bool dense = !EAR && p->Ck == 1;
    auto plain = [&](bool second) {
        return with_plain<EAR>(tma, dense, [&](auto tma_c, auto ear_c, auto dense_c) {
            constexpr bool TM = decltype(tma_c)::value, E = decltype(ear_c)::value;
            return launch90<D, T, false, false, TM, E, decltype(dense_c)::value>(
                p, da, wl.tiles, wl.ntiles, wl.max_tiles, wl.mix, s, second, TM ? tm : TmaMaps{},
                E ? ear : EarView{});
        });
    };
    auto unions = [&](bool second) {
        return tma ? launch90<D, T, false, true, true, EAR>(p, da, wl.mix_tiles, wl.mix_ntiles,
                                                            wl.mix_max, wl.mix, s, second, tm, ear)
                   : launch90<D, T, false, true, false, EAR>(p, da, wl.mix_tiles, wl.mix_ntiles,
                                                             wl.mix_max, wl.mix, s, second,
                                                             TmaMaps{}, ear);
    };
    if (!wl.mix.nmem) return plain(false);
    const bool plain_dyn = with_plain<EAR>(tma, dense, [](auto tma_c, auto ear_c, auto dense_c) {
        return kDyn<false, false, decltype(ear_c)::value, decltype(tma_c)::value,
                    decltype(dense_c)::value>;
    });
    svoo_status st = plain_dyn ? unions(false) : plain(false);
    if (st || (st = check_launch("attention kernel (sm90)"))) return st;
    return plain_dyn ? plain(true) : unions(true);
}

/* Keys without k_perm (in cluster order): the key tiles are loaded by TMA,
 * on the dense path whole tiles as one box, the others in pieces
 * (SVOO_CUDA_TMA=0: gathered). Not with the row log-sum-exps (that
 * instantiation spilled 12 bytes with TMA; it never gets union items). */
template <int D, typename T>
svoo_status launch_all(const svoo_cuda_attend_params *p, const WorkList &wl, cudaStream_t s,
                       const EarView *ear, const DevAttrs &da) {
    if (p->lse)
        return launch90<D, T, true, false>(p, da, wl.tiles, wl.ntiles, wl.max_tiles, wl.mix, s,
                                           false);
    PFN_cuTensorMapEncodeTiled_v12000 enc =
        p->k_perm || env_off("SVOO_CUDA_TMA") ? nullptr : encode_fn();
    TmaMaps tm;
    const bool tma =
        enc &&
        tma_maps<D>(tm.k, enc, p->k, p->dtype, p, p->k_stride_b, p->k_stride_h, p->k_stride_n) &&
        tma_maps<D>(tm.v, enc, p->v, p->dtype, p, p->v_stride_b, p->v_stride_h, p->v_stride_n);
    return ear ? launch_items<D, T, true>(p, wl, s, tma, tm, *ear, da)
               : launch_items<D, T, false>(p, wl, s, tma, tm, EarView{}, da);
}

} // namespace

svoo_status svoo_attend::attend_sm90(const svoo_cuda_attend_params *p, const WorkList &wl,
                                     cudaStream_t s, const EarView *ear, const DevAttrs &da) {
    const bool bf = p->dtype == SVOO_CUDA_BF16;
    if (p->D == 128)
        return bf ? launch_all<128, __nv_bfloat16>(p, wl, s, ear, da)
                  : launch_all<128, __half>(p, wl, s, ear, da);
    return bf ? launch_all<64, __nv_bfloat16>(p, wl, s, ear, da)
              : launch_all<64, __half>(p, wl, s, ear, da);
}

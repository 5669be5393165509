/* worklist.cu : the attention kernels' work list, built on the device into the
 * caller's workspace (attend.h: svoo_cuda_attend_workspace).
 *
 * Work item = a tile of <= BM rows of one query cluster of one (b, h): a
 * cluster of R rows gives floor(R/BM) full tiles and one tail tile. Built as
 * count (tiles and cost of every query cluster) -> scan of a histogram keyed
 * (bh, cost bucket descending) -> scatter: tiles of one head run together (its
 * K/V stays in L2), the heads with the most work first and within a head the
 * costly tiles first, so that the items the launch ends on are short ones
 * (balance at the end of the grid).
 *
 * Union items (the Hopper kernel, BM = 128; docs/CUDA_KERNEL.md "union
 * items"): with `pack`, the tails (R mod 128 rows) of a head's query clusters
 * are packed into shared items of <= 128 rows that run the union of their
 * members' key clusters, each row masked to its own cluster's selection.
 * Query clusters of a head select largely the same key clusters, so a union
 * item costs little more than its largest member, where each tail alone costs
 * a whole item (0.73 of one at <= 64 rows). wl_pack packs one head per block,
 * best fit: tails in descending size, each into the open item where it adds
 * the least cost (keys rounded to 128-key tiles x the tail rule), or a new
 * item when that is cheaper. On the calibrated 720p plan the useful share of
 * the executed work goes from 0.865 to 0.950 (dev/cuda/tile_cost.c). */
#include <cuda_runtime.h>

#include <limits.h>
#include <stdint.h>

#include "attend_common.cuh"

namespace {

using namespace svoo_attend;

constexpr int BN = 64;          /* keys per key tile (cost estimate of the work list) */
constexpr int MIN_BM = 64;      /* smallest row tile (workspace bound) */
constexpr int NB = 32;          /* cost buckets per (b, h) */
constexpr int ORDER_MAX = 2048; /* (b, h) that wl_scan orders by work (more: in index order) */
/* packing limits: at most PACK_CQ query clusters a head, PACK_SL open union
 * items and PACK_SM tails of <= 64 rows packed a head, positions below 2^26
 * (a row's entry is pos << 5 | member) */
constexpr int PACK_CQ = 2048, PACK_SL = 256, PACK_SM = 512, PACK_THR = 1024;

/* union items a head can have room for in the workspace */
int64_t mix_per_head(int64_t Cq) {
    /* for every Cq (packing is off above PACK_CQ): the workspace then grows with Cq,
     * so a workspace sized for the largest Cq serves the smaller ones (review F1) */
    return Cq / 2 < PACK_SL ? Cq / 2 : PACK_SL;
}

struct WsLayout {
    size_t hist, hcost, ntiles, cnt, key, tiles, flag, nmix, mkey, mnrows, mnmem, mmem, mrow, mhist,
        mntiles, mtiles, total;
    int64_t max_tiles, mm, nm; /* nm = BH * mm union items at most */
};
size_t align256(size_t x) {
    return (x + 255) & ~(size_t)255;
}
WsLayout ws_layout(int64_t BH, int64_t N_q, int64_t Cq) {
    WsLayout w;
    w.max_tiles = BH * ((N_q + MIN_BM - 1) / MIN_BM + Cq);
    w.mm = mix_per_head(Cq);
    w.nm = BH * w.mm;
    const size_t nm = (size_t)w.nm;
    w.hist = 0;
    w.hcost = align256(w.hist + (size_t)BH * NB * 4);
    w.ntiles = align256(w.hcost + (size_t)BH * 8);
    w.cnt = align256(w.ntiles + 8); /* count, item counter */
    w.key = align256(w.cnt + (size_t)BH * Cq * 4);
    w.tiles = align256(w.key + (size_t)BH * Cq * 4);
    w.flag = align256(w.tiles + (size_t)w.max_tiles * sizeof(Tile));
    w.nmix = align256(w.flag + (size_t)BH * Cq * 4);
    w.mkey = align256(w.nmix + (size_t)BH * 4);
    w.mnrows = align256(w.mkey + nm * 4);
    w.mnmem = align256(w.mnrows + nm * 4);
    w.mmem = align256(w.mnmem + nm * 4);
    w.mrow = align256(w.mmem + nm * MIX_MEMBERS * 4);
    w.mhist = align256(w.mrow + nm * MIX_ROWS * 4);
    w.mntiles = align256(w.mhist + (size_t)BH * NB * 4);
    w.mtiles = align256(w.mntiles + 8); /* count, item counter */
    w.total = align256(w.mtiles + nm * sizeof(Tile));
    return w;
}

/* the work list's cost bucket key of a tile over `keys` keys in head bh */
__device__ int cost_key(int bh, int64_t keys, int N_k) {
    const int64_t kt = (keys + BN - 1) / BN, ktmax = ((int64_t)N_k + BN - 1) / BN;
    int bucket = (int)(kt * NB / (ktmax + 1));
    bucket = bucket < 0 ? 0 : (bucket >= NB ? NB - 1 : bucket);
    return bh * NB + (NB - 1 - bucket);
}

/* cost of an item of n rows over k keys, in 128-key tiles x 100 (a tail of
 * <= 64 rows costs 0.73 of a full item: docs/CUDA_KERNEL.md, v4 attempt) */
__device__ int64_t item_cost(int n, int64_t k) {
    return (k + 127) / 128 * (n <= 64 ? 73 : 100);
}

/* a warp: bits[MIX_CK / 32] (lane = word) <- the key clusters query cluster r
 * selects (rp: the head's row_ptr); true when its list names one twice */
__device__ __forceinline__ bool warp_selection(const int32_t *col, const int32_t *rp, int r,
                                               uint32_t *bits, int lane) {
    bits[lane] = 0u;
    __syncwarp();
    int dup = 0;
    for (int e = __ldg(rp + r) + lane, e1 = __ldg(rp + r + 1); e < e1; e += 32) {
        const int c = __ldg(col + e);
        const uint32_t bit = 1u << (c & 31);
        dup |= (atomicOr(&bits[c >> 5], bit) & bit) != 0;
    }
    return __any_sync(0xffffffffu, dup);
}

/* a warp: the keys query cluster r selects (rp: the head's row_ptr), the
 * lanes striding over its selection; size(c): key cluster c's keys. Every
 * lane gets the sum. */
template <class Size>
__device__ __forceinline__ int64_t warp_keys(const int32_t *col, const int32_t *rp, int r, int lane,
                                             Size size) {
    int64_t keys = 0;
    for (int e = __ldg(rp + r) + lane, e1 = __ldg(rp + r + 1); e < e1; e += 32)
        keys += size(__ldg(col + e));
#pragma unroll
    for (int d = 16; d; d >>= 1)
        keys += __shfl_xor_sync(0xffffffffu, keys, d);
    return keys;
}

/* shared memory of wl_pack */
struct PackSmem {
    int ksz[MIX_CK]; /* key cluster sizes */
    /* nib[q][v][w]: keys of the clusters 32 w + 4 q + i for the bits i of v, so
     * that a lane sums the clusters of its word in eight independent loads
     * (lane = w: no bank conflicts) */
    int nib[8][16][32];
    int kr[PACK_CQ];                    /* keys of a tail's cluster, -1: not packed */
    int cend[PACK_CQ], ctrows[PACK_CQ]; /* a cluster's end position and tail rows */
    int cand[PACK_CQ];                  /* tails in descending size */
    int assign[PACK_CQ], memidx[PACK_CQ];
    uint32_t sbits[PACK_SL][MIX_CK / 32]; /* key clusters of an open item */
    int srows[PACK_SL], snmem[PACK_SL], mixid[PACK_SL];
    long long skeys[PACK_SL];
    uint32_t cbits[PACK_SM][MIX_CK / 32]; /* key clusters of the <= 64-row tails */
    int ctail[PACK_SM];                   /* their rows, 0: left out */
    long long wadd[32], wextra[32];
    int wslot[32], tailhist[MIX_ROWS + 1], ncand, nsl;
};

/* one block per head (PACK_THR threads): packs the tails into union items.
 * Writes flag[bh*Cq + r] (1: cluster r's tail is in a union item), nmix[bh]
 * and per union item j: its cost key (counted in hist, the union items' own
 * histogram), rows, members
 * (cluster indices, in the order their rows follow each other) and per row
 * pos << 5 | member. Ties go to the lowest item: the same plan packs the same
 * way (CUDA graph replays are identical). */
__global__ void __launch_bounds__(PACK_THR)
    wl_pack(svoo_cuda_attend_params p, int mm, int *hist, int *flag, int *nmix, int *mkey,
            int *mnrows, int *mnmem, int *mmem, int *mrow) {
    extern __shared__ __align__(16) unsigned char pack_raw[];
    PackSmem &sm = *reinterpret_cast<PackSmem *>(pack_raw);
    const int bh = blockIdx.x, tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int Cq = p.Cq, Ck = p.Ck;
    const int32_t *qo = p.q_off + (int64_t)bh * (Cq + 1);
    const int32_t *ko = p.k_off + (int64_t)bh * (Ck + 1);
    const int32_t *rp = p.row_ptr + (int64_t)bh * (Cq + 1);
    for (int c = tid; c < MIX_CK; c += PACK_THR)
        sm.ksz[c] = c < Ck ? __ldg(ko + c + 1) - __ldg(ko + c) : 0;
    for (int i = tid; i <= MIX_ROWS; i += PACK_THR)
        sm.tailhist[i] = 0;
    __syncthreads();
    for (int i = tid; i < 8 * 16 * 32; i += PACK_THR) {
        const int w = i % 32, v = i / 32 % 16, q = i / 512;
        int k = 0;
        for (int b = 0; b < 4; b++)
            k += (v >> b & 1) ? sm.ksz[32 * w + 4 * q + b] : 0;
        sm.nib[q][v][w] = k;
    }
    /* a warp per query cluster: its keys (the lanes stride over its selection),
     * its tail rows (kept in shared memory for the later phases) */
    for (int r = warp; r < Cq; r += PACK_THR / 32) {
        const int64_t keys = warp_keys(p.col, rp, r, lane, [&](int c) { return sm.ksz[c]; });
        if (lane == 0) {
            const int end = __ldg(qo + r + 1), rows = end - __ldg(qo + r);
            const bool tail = rows > 0 && rows % MIX_ROWS != 0 && keys > 0 && keys < 0x7fffffff;
            sm.kr[r] = tail ? (int)keys : -1;
            sm.cend[r] = end;
            sm.ctrows[r] = rows > 0 ? rows % MIX_ROWS : 0;
            sm.assign[r] = -1;
            flag[(int64_t)bh * Cq + r] = 0;
            if (tail) atomicAdd(&sm.tailhist[MIX_ROWS - rows % MIX_ROWS], 1);
        }
    }
    __syncthreads();
    if (tid == 0) { /* counting sort, tails descending */
        int run = 0;
        for (int i = 0; i <= MIX_ROWS; i++) {
            const int x = sm.tailhist[i];
            sm.tailhist[i] = run;
            run += x;
        }
        for (int r = 0; r < Cq; r++)
            if (sm.kr[r] >= 0) sm.cand[sm.tailhist[MIX_ROWS - sm.ctrows[r]]++] = r;
        sm.ncand = run;
        sm.nsl = 0;
    }
    __syncthreads();
    const int ncand = sm.ncand;
    /* tails of > 64 rows come first and fit in no item opened before them (each
     * has more than 64 rows): each opens its own, in parallel (warp w: items w,
     * w + 32, ...); a duplicate column closes it (rows 128: nothing joins) */
    int nbig = 0;
    while (nbig < ncand && nbig < PACK_SL && sm.ctrows[sm.cand[nbig]] > 64)
        nbig++;
    for (int s = warp; s < nbig; s += 32) {
        const int r = sm.cand[s];
        const bool dup = warp_selection(p.col, rp, r, sm.sbits[s], lane);
        if (lane == 0) {
            sm.srows[s] = dup ? MIX_ROWS : sm.ctrows[r], sm.snmem[s] = 1, sm.skeys[s] = sm.kr[r];
            sm.assign[r] = s, sm.memidx[r] = 0;
        }
    }
    /* the key clusters of the <= 64-row tails (at most PACK_SM of them), in
     * parallel too; a duplicate column leaves a tail out (it counts twice alone) */
    const int nsm = min(ncand - nbig, PACK_SM);
    for (int j = warp; j < nsm; j += 32) {
        const int r = sm.cand[nbig + j];
        const bool dup = warp_selection(p.col, rp, r, sm.cbits[j], lane);
        if (lane == 0) sm.ctail[j] = dup ? 0 : sm.ctrows[r];
    }
    if (tid == 0) sm.nsl = nbig;
    __syncthreads();
    /* then one by one, two barriers a round: warp w tries the open items w,
     * w + 32, ...; warp 0 picks the cheapest (the lowest item on ties) or a
     * new item and updates it */
    for (int j = 0; j < nsm; j++) {
        const int t = sm.ctail[j], r = sm.cand[nbig + j];
        if (!t) continue; /* uniform: nothing changes this round */
        long long best = -1, bextra = 0;
        int bslot = -1;
        for (int s = warp; s < sm.nsl; s += 32) {
            /* full items first (uniform in the warp): most of the round's cost
             * is the keys the tail would add */
            if (sm.srows[s] + t > MIX_ROWS || sm.snmem[s] >= MIX_MEMBERS) continue;
            const uint32_t bits = sm.cbits[j][lane] & ~sm.sbits[s][lane];
            int extra = 0; /* < N_k */
#pragma unroll
            for (int q = 0; q < 8; q++)
                extra += sm.nib[q][bits >> 4 * q & 15][lane];
            extra = __reduce_add_sync(0xffffffffu, extra);
            const long long add = item_cost(sm.srows[s] + t, sm.skeys[s] + extra) -
                                  item_cost(sm.srows[s], sm.skeys[s]);
            if (best < 0 || add < best) best = add, bextra = extra, bslot = s;
        }
        if (lane == 0) sm.wadd[warp] = best, sm.wextra[warp] = bextra, sm.wslot[warp] = bslot;
        __syncthreads();
        if (warp == 0) {
            /* lane w holds warp w's best; a new item costs item_cost(t, keys) */
            long long add = sm.wslot[lane] >= 0 ? sm.wadd[lane] : LLONG_MAX;
            long long extra = sm.wextra[lane];
            int slot = sm.wslot[lane] >= 0 ? sm.wslot[lane] : INT_MAX;
#pragma unroll
            for (int d = 16; d; d >>= 1) {
                const long long a2 = __shfl_xor_sync(0xffffffffu, add, d);
                const long long e2 = __shfl_xor_sync(0xffffffffu, extra, d);
                const int s2 = __shfl_xor_sync(0xffffffffu, slot, d);
                if (a2 < add || (a2 == add && s2 < slot)) add = a2, extra = e2, slot = s2;
            }
            const int nsl = sm.nsl;
            __syncwarp(); /* every lane has read nsl before lane 0 writes it (review F3) */
            int s = add < item_cost(t, sm.kr[r]) ? slot : -1;
            const bool fresh = s < 0;
            if (fresh && nsl < PACK_SL) s = nsl;
            if (s >= 0) {
                sm.sbits[s][lane] =
                    fresh ? sm.cbits[j][lane] : sm.sbits[s][lane] | sm.cbits[j][lane];
                if (lane == 0) {
                    if (fresh) sm.nsl = nsl + 1, sm.srows[s] = 0, sm.snmem[s] = 0, sm.skeys[s] = 0;
                    sm.skeys[s] += fresh ? sm.kr[r] : extra;
                    sm.assign[r] = s;
                    sm.memidx[r] = sm.snmem[s]++;
                    sm.srows[s] += t;
                }
            }
        }
        __syncthreads();
    }
    __syncthreads();
    if (tid == 0) {
        int j = 0;
        for (int s = 0; s < sm.nsl; s++)
            sm.mixid[s] = sm.snmem[s] >= 2 && j < mm ? j++ : -1;
        nmix[bh] = j;
    }
    __syncthreads();
    for (int s = tid; s < sm.nsl; s += PACK_THR) {
        const int j = sm.mixid[s];
        if (j < 0) continue;
        const int64_t m = (int64_t)bh * mm + j;
        const int k = cost_key(bh, sm.skeys[s], p.N_k);
        mkey[m] = k;
        mnrows[m] = sm.srows[s];
        mnmem[m] = sm.snmem[s];
        atomicAdd(hist + k, 1);
    }
    for (int r = tid; r < Cq; r += PACK_THR) {
        const int s = sm.assign[r];
        if (s < 0 || sm.mixid[s] < 0) continue;
        flag[(int64_t)bh * Cq + r] = 1;
        mmem[((int64_t)bh * mm + sm.mixid[s]) * MIX_MEMBERS + sm.memidx[r]] = r;
    }
    __syncthreads(); /* mmem of this block written */
    for (int s = warp; s < sm.nsl; s += 32) {
        const int j = sm.mixid[s];
        if (j < 0) continue;
        const int64_t m = (int64_t)bh * mm + j;
        int off = 0;
        for (int k = 0; k < sm.snmem[s]; k++) {
            const int r = mmem[m * MIX_MEMBERS + k];
            const int end = sm.cend[r], t = sm.ctrows[r];
            for (int x = lane; x < t; x += 32)
                mrow[m * MIX_ROWS + off + x] = ((end - t + x) << 5) | k;
            off += t;
        }
    }
}

/* tiles and cost key of every query cluster (a warp each: its lanes sum the
 * key cluster sizes of its selection), and each head's work (its tiles' key
 * tiles of 128) in hcost; with pack, a cluster whose tail is in a union item
 * keeps only its full tiles */
__global__ void wl_count(svoo_cuda_attend_params p, int BM, const int *flag, int *hist, int *cnt,
                         int *key, unsigned long long *hcost) {
    const int64_t idx = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    const int64_t n = (int64_t)p.B * p.H * p.Cq;
    if (idx >= n) return; /* uniform in the warp */
    const int bh = (int)(idx / p.Cq), r = (int)(idx % p.Cq);
    const int32_t *rp = p.row_ptr + (int64_t)bh * (p.Cq + 1);
    const int32_t *ko = p.k_off + (int64_t)bh * (p.Ck + 1);
    const int64_t keys =
        warp_keys(p.col, rp, r, lane, [&](int c) { return __ldg(ko + c + 1) - __ldg(ko + c); });
    if (lane) return;
    const int32_t *qo = p.q_off + (int64_t)bh * (p.Cq + 1);
    const int rows = __ldg(qo + r + 1) - __ldg(qo + r);
    const int nt = rows <= 0 ? 0 : (flag && flag[idx]) ? rows / BM : (rows + BM - 1) / BM;
    const int k = cost_key(bh, keys, p.N_k);
    cnt[idx] = nt;
    key[idx] = k;
    if (nt) {
        atomicAdd(hist + k, nt);
        atomicAdd(hcost + bh, (unsigned long long)nt * (unsigned long long)((keys + 127) / 128));
    }
}

/* exclusive scan of hist[BH * NB] in place (one block of 1024), the heads in
 * descending order of hcost (ties: the lower index first; more than ORDER_MAX
 * heads: index order), total -> ntiles[0]; ntiles[1] = 0 (the attention
 * launch's item counter, attend_sm90.cu) */
__global__ void wl_scan(int *hist, int BH, const unsigned long long *hcost, int *ntiles) {
    __shared__ int scan[32];
    __shared__ int order[ORDER_MAX]; /* order[rank] = bh */
    __shared__ unsigned long long cost[ORDER_MAX];
    const int tid = threadIdx.x, n = BH * NB, per = (n + 1023) / 1024;
    const bool by_cost = BH <= ORDER_MAX;
    if (by_cost) {
        for (int i = tid; i < BH; i += 1024)
            cost[i] = hcost[i];
        __syncthreads();
        for (int i = tid; i < BH; i += 1024) {
            int rank = 0;
            for (int j = 0; j < BH; j++)
                rank += cost[j] > cost[i] || (cost[j] == cost[i] && j < i);
            order[rank] = i;
        }
        __syncthreads();
    }
    /* hist index of position v of the scan */
    auto at = [&](int v) { return by_cost ? order[v / NB] * NB + v % NB : v; };
    const int b0 = tid * per, b1 = min(n, b0 + per);
    int s = 0;
    for (int i = b0; i < b1; i++)
        s += hist[at(i)];
    int total;
    int run = block_exscan<1024>(
        s, tid & 31, tid >> 5, scan, [] { __syncthreads(); }, total);
    for (int i = b0; i < b1; i++) {
        int &h = hist[at(i)];
        const int x = h;
        h = run;
        run += x;
    }
    if (tid == 1023) ntiles[0] = total, ntiles[1] = 0;
}

/* the tiles of every query cluster, then (indices past BH * Cq, with pack)
 * the union items, r = -1 - (bh * mm + j), into their own list mtiles */
__global__ void wl_scatter(svoo_cuda_attend_params p, int BM, int mm, int *start, const int *cnt,
                           const int *key, const int *nmix, const int *mkey, const int *mnrows,
                           int *mstart, Tile *tiles, Tile *mtiles) {
    const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const int64_t n = (int64_t)p.B * p.H * p.Cq;
    if (idx >= n) {
        const int64_t m = idx - n;
        if (m >= (int64_t)p.B * p.H * mm) return;
        const int bh = (int)(m / mm), j = (int)(m % mm);
        if (j >= nmix[bh]) return;
        Tile x;
        x.bh = bh;
        x.r = -1 - (int)m;
        x.row0 = 0;
        x.nrows = mnrows[m];
        mtiles[atomicAdd(mstart + mkey[m], 1)] = x;
        return;
    }
    const int nt = cnt[idx];
    if (!nt) return;
    const int bh = (int)(idx / p.Cq), r = (int)(idx % p.Cq);
    const int32_t *qo = p.q_off + (int64_t)bh * (p.Cq + 1);
    const int q0 = __ldg(qo + r), rows = __ldg(qo + r + 1) - q0;
    const int pos = atomicAdd(start + key[idx], nt);
    for (int t = 0; t < nt; t++) {
        Tile x;
        x.bh = bh;
        x.r = r;
        x.row0 = q0 + t * BM;
        x.nrows = min(BM, rows - t * BM);
        tiles[pos + t] = x;
    }
}

thread_local int g_packed; /* whether this thread's last work list packed */

WorkList worklist_at(const WsLayout &w, char *ws, bool packed) {
    WorkList wl;
    wl.tiles = (const Tile *)(ws + w.tiles);
    wl.ntiles = (int *)(ws + w.ntiles);
    wl.max_tiles = w.max_tiles;
    wl.mix.nmem = packed ? (const int *)(ws + w.mnmem) : nullptr;
    wl.mix.mem = (const int *)(ws + w.mmem);
    wl.mix.row = (const int *)(ws + w.mrow);
    wl.mix_tiles = (const Tile *)(ws + w.mtiles);
    wl.mix_ntiles = (int *)(ws + w.mntiles);
    wl.mix_max = packed ? w.nm : 0;
    return wl;
}

} // namespace

bool svoo_attend::worklist_fits(int64_t BH, int64_t N_q, int64_t Cq, size_t ws_bytes,
                                size_t *need) {
    const WsLayout w = ws_layout(BH, N_q, Cq);
    *need = w.total;
    /* items below 2^31 - 2^16: the run-time item counter (attend_sm90.cu) reaches
     * the item count plus twice the grid */
    return w.max_tiles <= 0x7fffffff - (1 << 16) && BH * Cq <= 0x7fffffff &&
           BH * NB <= 0x7fffffff && ws_bytes >= w.total;
}

WorkList svoo_attend::worklist_in(const svoo_cuda_attend_params *p, void *workspace) {
    /* read by svoo_cuda_attend_ear's two-pass path after an attention call with
     * lse, which never packs */
    return worklist_at(ws_layout((int64_t)p->B * p->H, p->N_q, p->Cq), (char *)workspace, false);
}

/* whether build_worklist packs union items: they need 128-row tiles, at most
 * PACK_CQ query clusters (wl_pack's shared arrays), one table of <= MIX_CK key
 * clusters and positions below 2^26 */
static bool packs(const svoo_cuda_attend_params *p, const WsLayout &w, int bm, int pack) {
    return pack && bm == MIX_ROWS && w.mm > 0 && p->Cq <= PACK_CQ && p->Ck <= MIX_CK &&
           p->N_q < (1 << 26);
}

WorkList svoo_attend::worklist_view(const svoo_cuda_attend_params *p, int bm, int pack,
                                    void *workspace) {
    const WsLayout w = ws_layout((int64_t)p->B * p->H, p->N_q, p->Cq);
    return worklist_at(w, (char *)workspace, packs(p, w, bm, pack));
}

svoo_status svoo_attend::build_worklist(const svoo_cuda_attend_params *p, int bm, int pack,
                                        void *workspace, cudaStream_t s, WorkList *wl) {
    const int64_t BH = (int64_t)p->B * p->H;
    const WsLayout w = ws_layout(BH, p->N_q, p->Cq);
    char *ws = (char *)workspace;
    int *hist = (int *)(ws + w.hist), *ntiles = (int *)(ws + w.ntiles);
    unsigned long long *hcost = (unsigned long long *)(ws + w.hcost);
    int *cnt = (int *)(ws + w.cnt), *key = (int *)(ws + w.key);
    int *flag = (int *)(ws + w.flag), *nmix = (int *)(ws + w.nmix), *mkey = (int *)(ws + w.mkey);
    int *mnrows = (int *)(ws + w.mnrows), *mnmem = (int *)(ws + w.mnmem);
    int *mhist = (int *)(ws + w.mhist), *mntiles = (int *)(ws + w.mntiles);
    Tile *tiles = (Tile *)(ws + w.tiles), *mtiles = (Tile *)(ws + w.mtiles);
    const int64_t ncl = BH * p->Cq;
    pack = packs(p, w, bm, pack);
    const int64_t nmixslots = pack ? BH * w.mm : 0;
    svoo_status st;
    /* hist and hcost */
    cudaError_t e = cudaMemsetAsync(hist, 0, w.hcost - w.hist + (size_t)BH * 8, s);
    if (e == cudaSuccess && pack) e = cudaMemsetAsync(mhist, 0, (size_t)BH * NB * 4, s);
    int dev = 0;
    if (e == cudaSuccess && pack) e = cudaGetDevice(&dev);
    if (e == cudaSuccess && pack) e = smem_once<wl_pack, sizeof(PackSmem)>(dev); /* once a device */
    if (e != cudaSuccess)
        return fail(SVOO_ERR_CUDA, "svoo_cuda_attend: work list: %s: %s", cudaGetErrorName(e),
                    cudaGetErrorString(e));
    if (pack) {
        wl_pack<<<(unsigned)BH, PACK_THR, sizeof(PackSmem), s>>>(
            *p, (int)w.mm, mhist, flag, nmix, mkey, mnrows, mnmem, (int *)(ws + w.mmem),
            (int *)(ws + w.mrow));
        if ((st = check_launch("work-list packing"))) return st;
    }
    wl_count<<<(unsigned)((ncl * 32 + 255) / 256), 256, 0, s>>>(*p, bm, pack ? flag : nullptr, hist,
                                                                cnt, key, hcost);
    if ((st = check_launch("work-list count"))) return st;
    wl_scan<<<1, 1024, 0, s>>>(hist, (int)BH, hcost, ntiles);
    if ((st = check_launch("work-list scan"))) return st;
    if (pack) { /* the same head order (by the plain tiles' work) */
        wl_scan<<<1, 1024, 0, s>>>(mhist, (int)BH, hcost, mntiles);
        if ((st = check_launch("work-list scan (union items)"))) return st;
    }
    wl_scatter<<<(unsigned)((ncl + nmixslots + 255) / 256), 256, 0, s>>>(
        *p, bm, pack ? (int)w.mm : 0, hist, cnt, key, nmix, mkey, mnrows, mhist, tiles, mtiles);
    if ((st = check_launch("work-list scatter"))) return st;
    *wl = worklist_at(w, ws, pack);
    g_packed = pack;
    return SVOO_OK;
}

extern "C" int svoo_cuda_attend_union_items(const svoo_cuda_attend_params *p, void *workspace) {
    if (!g_packed || !p || !workspace) return -1;
    const int64_t BH = (int64_t)p->B * p->H;
    const WsLayout w = ws_layout(BH, p->N_q, p->Cq);
    int n = 0, x = 0;
    for (int64_t bh = 0; bh < BH; bh++) {
        if (cudaMemcpy(&x, (char *)workspace + w.nmix + bh * 4, 4, cudaMemcpyDeviceToHost) !=
            cudaSuccess)
            return -1;
        n += x;
    }
    return n;
}

extern "C" size_t svoo_cuda_attend_workspace(int B, int H, int N_q, int Cq) {
    if (B < 1 || H < 1 || N_q < 1 || Cq < 1) return 0;
    return ws_layout((int64_t)B * H, N_q, Cq).total;
}

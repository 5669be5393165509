/* tile_cost.c : how much of the Hopper attention kernel's work is row-tile padding on a
 * real calibrated plan, and what the tail schemes of docs/CUDA_KERNEL.md ("Left") could
 * give. The plan is the CPU SVOO planner's (the GPU's agrees on 0.998-1.000 of the labels)
 * on svoo_synth data of a preset, heads calibrated to a profile, one (step, layer) call
 * re-planned from scratch as `svoo bench cuda --step S --layer L` does.
 *
 * Per query cluster r (s_r rows, K_r selected keys, K_r rounded up to 128-key tiles):
 * useful work s_r K_r; the kernel runs floor(s_r / 128) full 128-row items and one tail
 * item of t = s_r mod 128 rows, each over all K_r keys. Item cost in units of a full item
 * (measured, docs/CUDA_KERNEL.md v4 attempt: a <= 64-row tail costs 0.73):
 *   now     : tail <= 64 rows 0.73, 65-127 rows 1
 *   half    : tail <= 64 rows 0.5 (perfect: e.g. two tails packed to an item, each
 *             consumer on its own key stream)
 *   packed  : s_r / 128 (rows of several clusters packed into items at no cost: the
 *             bound of any row packing; 64-row granularity gives exactly `half`)
 *   union   : 64-row slices at 0.5, each cluster's full slices alone, the remainders
 *             (s_r mod 64 rows) of a head packed greedily into shared slices that run the
 *             union of their key clusters (masked per row): a slice's keys are the union
 *   union-128: the same with 128-row items and the tail rule (what cuda/worklist.cu's
 *             wl_pack builds: best fit, tails descending); also the share of the executed
 *             work in key tiles past the members' common keys (masked), and next fit with
 *             the tails ordered by their keys instead (worse)
 *             and of the union items of 128, the masked columns a row did not select
 *             (executed, then masked out) and the masked tiles a consumer warpgroup could
 *             skip because none of its 64 rows' members selected them (union_skip)
 *   boxes   : the TMA boxes a key tile issues (whole tiles of a run: 2; the runs' rests packed
 *             into tiles, split by warp into pieces of 1 or 2 boxes a 64-column half), in label
 *             order and with the key clusters in popularity order
 *   pairs   : the permuted row stream cut into items spanning at most two adjacent
 *             clusters (keys ordered A only, both, B only: a row interval mask)
 *   balance : the end of the plain launch (cuda/worklist.cu): its full 128-row items,
 *             costly first within a head, taken one by one by the SM free first (132, the
 *             H200's), in head index order and with the heads in descending order of their
 *             work (what the work list does); ideal / makespan
 *   geometry: items of 128 or 192 rows (two or three consumer warpgroups) over key tiles of
 *             128 or 64 keys, tails packed as wl_pack packs them, each warpgroup skipping the
 *             masked tiles its members did not select (geom_cost): the padding and masking a
 *             kernel of that shape would execute, and the keys it loads a useful row x key
 * Efficiency = useful / (128 x cost x keys); the dense plan (one cluster) is the
 * reference the measured dense TFLOP/s belongs to, so the predicted sparse rate of a
 * model is dense_tflops x eff(model) / eff(dense).
 *
 * Build (CPU, after a CPU build in build-f):
 *   cc -O2 -std=c11 -Iinclude -Isrc dev/cuda/tile_cost.c build-f/libsvoo.a \
 *      -lopenblas -lgomp -ljson-c -lpng -lm -o build-f/tile_cost
 * Run: build-f/tile_cost PROFILE.csv [preset] [step] [layer] [dense_tflops] [threads] [top_p] */
#define SVOO_STATIC_LINKING_ONLY
#include "svoo.h"

#include "core/ctx.h"
#include "plan/plan.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    double useful, now, half, packed, uni, u128, unf, pair, skp, ska;
} cost;

enum { MAXCK = 4096, WORDS = MAXCK / 64 };
/* a slice of 64 rows shared by remainders: rows used, union of key clusters, its keys */
enum { SLMEM = 64 }; /* members a slice records (for the skip model; more: not modelled) */
typedef struct {
    int rows;
    int64_t keys;
    uint64_t sel[WORDS], all[WORDS]; /* union, intersection of the members' key clusters */
    int nm, mr[SLMEM], mt[SLMEM];    /* members in row order: cluster, rows */
} slice;
/* union items of 128 (cuda/worklist.cu, cuda/attend_sm90.cu build_union): keys of the
 * clusters every member selected first, then the others, each group in cluster order, cut
 * into 128-key tiles; the tiles past the common keys are masked per row. skip: rows x keys of
 * the masked tiles where no member with rows in a consumer warpgroup's 64 rows selected any
 * of the tile's clusters (that warpgroup could skip the tile); waste: rows x keys of masked
 * tiles' columns that the row's own cluster did not select (executed, masked out) */
typedef struct {
    double skip, skip_grouped, skip_placed, waste, unmodelled;
} union_detail;

static int64_t pad128(int64_t k) {
    return (k + 127) / 128 * 128;
}

/* keys of the union of a and b (key cluster sizes ksz) */
static int64_t union_keys(const uint64_t *a, const uint64_t *b, const int32_t *ksz, int ck) {
    int64_t k = 0;
    for (int c = 0; c < ck; c++)
        if (((a[c / 64] | b[c / 64]) >> (c % 64)) & 1) k += ksz[c];
    return k;
}

/* cost of an item of n rows over k keys (units of row x key, the measured tail rule) */
static double item_cost(int64_t n, int64_t k) {
    return 128.0 * (double)pad128(k) * (n <= 0 ? 0 : n <= 64 ? 0.73 : 1.0);
}

/* the clusters with keys and a remainder of rows mod rows_per into order[] (returns their
 * number), sorted by remainder descending (best fit) or by their keys descending (next fit);
 * *full = the cost of every cluster's full slices of rows_per rows, which run alone */
static int remainders(const svoo_plan *p, const int64_t *K, int rows_per, int nextfit, int *order,
                      double *full) {
    int n = 0;
    *full = 0;
    for (int r = 0; r < p->cq; r++) {
        const int64_t rows = p->q_off[r + 1] - p->q_off[r];
        if (rows <= 0 || K[r] <= 0) continue;
        *full += (double)rows_per * (double)pad128(K[r]) * (double)(rows / rows_per);
        if (rows % rows_per) order[n++] = r;
    }
    for (int i = 1; i < n; i++) /* insertion sort */
        for (int j = i; j > 0; j--) {
            const int a = order[j - 1], b = order[j];
            if (nextfit ? K[a] >= K[b]
                        : (p->q_off[a + 1] - p->q_off[a]) % rows_per >=
                              (p->q_off[b + 1] - p->q_off[b]) % rows_per)
                break;
            order[j - 1] = b, order[j] = a;
        }
    return n;
}

static void union_skip(const slice *b, const int32_t *ksz, uint64_t (*sel)[WORDS], int ck,
                       int64_t common, union_detail *u);

/* the union model of one head with slices of `rows` rows (64: two per item at half cost
 * each; 128: whole items, tail rule of item_cost): each cluster's full slices alone, the
 * remainders in descending size each into the open slice where it adds the least cost,
 * or a new slice when that is cheaper. *nmix counts the slices of two or more clusters,
 * *masked adds their rows x keys in key tiles past the members' common keys (128 only). */
static double union_cost(const svoo_plan *p, const int32_t *ksz, uint64_t (*sel)[WORDS],
                         const int64_t *K, slice *sl, int rows_per, int nextfit, int64_t *nmix,
                         double *masked, union_detail *ud) {
    int order[MAXCK], nsl = 0, mem[MAXCK];
    double c;
    const int n = remainders(p, K, rows_per, nextfit, order, &c);
#define SLICE_COST(nr, k) (rows_per == 64 ? 64.0 * (double)pad128(k) : item_cost(nr, k))
    for (int i = 0; i < n; i++) {
        const int r = order[i], t = (int)((p->q_off[r + 1] - p->q_off[r]) % rows_per);
        int best = -1;
        double best_add = SLICE_COST(t, K[r]);
        int64_t best_keys = K[r];
        for (int b = nextfit && nsl ? nsl - 1 : 0; b < nsl; b++) {
            if (sl[b].rows + t > rows_per) continue;
            const int64_t u = union_keys(sl[b].sel, sel[r], ksz, p->ck);
            const double add = SLICE_COST(sl[b].rows + t, u) - SLICE_COST(sl[b].rows, sl[b].keys);
            if (add < best_add) best = b, best_add = add, best_keys = u;
        }
        if (best < 0) {
            best = nsl++;
            memset(&sl[best], 0, sizeof sl[best]);
            mem[best] = 0;
        }
        if (sl[best].nm < SLMEM) sl[best].mr[sl[best].nm] = r, sl[best].mt[sl[best].nm] = t;
        sl[best].nm++;
        sl[best].rows += t;
        sl[best].keys = best_keys;
        for (int w = 0; w < WORDS; w++) {
            sl[best].sel[w] |= sel[r][w];
            sl[best].all[w] = mem[best] ? sl[best].all[w] & sel[r][w] : sel[r][w];
        }
        mem[best]++;
    }
    for (int b = 0; b < nsl; b++) {
        c += SLICE_COST(sl[b].rows, sl[b].keys);
        if (mem[b] > 1) {
            ++*nmix;
            int64_t common = 0;
            for (int k = 0; k < p->ck; k++)
                if ((sl[b].all[k / 64] >> (k % 64)) & 1) common += ksz[k];
            if (rows_per == 128)
                *masked += 128.0 * (double)(pad128(sl[b].keys) - common / 128 * 128);
            if (rows_per == 128 && ud) union_skip(&sl[b], ksz, sel, p->ck, common, ud);
        }
    }
#undef SLICE_COST
    return c;
}

/* keys of the clusters in a but not in b (b may be NULL) */
static int64_t keys_minus(const uint64_t *a, const uint64_t *b, const int32_t *ksz, int ck) {
    int64_t k = 0;
    for (int c = 0; c < ck; c++)
        if (((a[c / 64] & ~(b ? b[c / 64] : 0)) >> (c % 64)) & 1) k += ksz[c];
    return k;
}
/* an item of 128 rows as the kernel runs it since the twenty-first stop: rows <= 64, one
 * consumer (0.73 of an item a key tile); else 1.0 a key tile, less 0.27 for each whole key
 * tile (by count of keys) that only one consumer's members selected (s0: the selections of
 * the members with rows in rows 0-63, s1: rows 64-127), which the other skips */
static double skip_item_cost(int rows, const uint64_t *s0, const uint64_t *s1, const int32_t *ksz,
                             int ck) {
    uint64_t u[WORDS];
    for (int w = 0; w < WORDS; w++)
        u[w] = s0[w] | s1[w];
    const double tiles = (double)pad128(keys_minus(u, NULL, ksz, ck)) / 128.0;
    if (rows <= 64) return 128.0 * 128.0 * 0.73 * tiles;
    const int64_t k0 = keys_minus(s0, s1, ksz, ck), k1 = keys_minus(s1, s0, ksz, ck);
    return 128.0 * 128.0 * (tiles - 0.27 * (double)(k0 / 128 + k1 / 128));
}
/* the union items of 128 (wl_pack: tails descending, each into the open item where it adds
 * the least cost or alone), every item priced by skip_item_cost; the packing decides by
 * item_cost (aware = 0, what wl_pack does) or by skip_item_cost (aware = 1). Returns the
 * executed cost with the clusters' full items */
static double skip_pack_cost(const svoo_plan *p, const int32_t *ksz, uint64_t (*sel)[WORDS],
                             const int64_t *K, int aware) {
    typedef struct {
        int rows;
        uint64_t s0[WORDS], s1[WORDS];
    } item;
    int order[MAXCK];
    double c;
    const int n = remainders(p, K, 128, 0, order, &c);
    item *it = calloc((size_t)(n > 0 ? n : 1), sizeof *it), tmp;
    if (!it) return 0;
    int nit = 0;
    static const uint64_t none[WORDS];
    for (int i = 0; i < n; i++) {
        const int r = order[i], t = (int)((p->q_off[r + 1] - p->q_off[r]) % 128);
        int best = -1;
        double best_add = aware ? skip_item_cost(t, sel[r], t > 64 ? sel[r] : none, ksz, p->ck)
                                : item_cost(t, K[r]);
        for (int b = 0; b < nit; b++) {
            if (it[b].rows + t > 128) continue;
            tmp = it[b];
            const int in0 = tmp.rows<64, in1 = tmp.rows + t> 64;
            for (int w = 0; w < WORDS; w++) {
                if (in0) tmp.s0[w] |= sel[r][w];
                if (in1) tmp.s1[w] |= sel[r][w];
            }
            tmp.rows += t;
            double add;
            if (aware) {
                add = skip_item_cost(tmp.rows, tmp.s0, tmp.s1, ksz, p->ck) -
                      skip_item_cost(it[b].rows, it[b].s0, it[b].s1, ksz, p->ck);
            } else {
                uint64_t u0[WORDS], u1[WORDS];
                for (int w = 0; w < WORDS; w++)
                    u0[w] = it[b].s0[w] | it[b].s1[w], u1[w] = tmp.s0[w] | tmp.s1[w];
                add = item_cost(tmp.rows, keys_minus(u1, NULL, ksz, p->ck)) -
                      item_cost(it[b].rows, keys_minus(u0, NULL, ksz, p->ck));
            }
            if (add < best_add) best = b, best_add = add;
        }
        if (best < 0) best = nit++;
        const int in0 = it[best].rows<64, in1 = it[best].rows + t> 64;
        for (int w = 0; w < WORDS; w++) {
            if (in0) it[best].s0[w] |= sel[r][w];
            if (in1) it[best].s1[w] |= sel[r][w];
        }
        it[best].rows += t;
    }
    for (int b = 0; b < nit; b++)
        c += skip_item_cost(it[b].rows, it[b].s0, it[b].s1, ksz, p->ck);
    free(it);
    return c;
}

/* wg[g]: the key clusters selected by a member with rows in warpgroup g's 64 rows, the
 * members' rows in the given order */
static void warpgroup_sel(const slice *b, const int *order, uint64_t (*sel)[WORDS],
                          uint64_t wg[2][WORDS]) {
    memset(wg, 0, 2 * WORDS * sizeof wg[0][0]);
    for (int i = 0, off = 0; i < b->nm; off += b->mt[order[i]], i++)
        for (int g = 0; g < 2; g++)
            if (off < 64 * g + 64 && off + b->mt[order[i]] > 64 * g)
                for (int w = 0; w < WORDS; w++)
                    wg[g][w] |= sel[b->mr[order[i]]][w];
}

/* rows x keys of the masked tiles that a consumer warpgroup skips in cuda/attend_sm90.cu
 * (build_union's order: common clusters, then those selected by members of both warpgroups,
 * of warpgroup 0 only, of 1 only; a tile is skipped by a warpgroup none of whose members
 * selected any of its clusters), members in rows in the given order */
static double grouped_skip(const slice *b, const int *order, const int32_t *ksz,
                           uint64_t (*sel)[WORDS], int ck) {
    uint64_t wg[2][WORDS];
    warpgroup_sel(b, order, sel, wg);
    const int64_t ntile = (b->keys + 127) / 128;
    unsigned char *has = calloc((size_t)(2 * ntile + 2), 1);
    if (!has) return 0;
    int64_t pos = 0;
    for (int grp = 0; grp < 4; grp++)
        for (int c = 0; c < ck; c++) {
            if (!((b->sel[c / 64] >> (c % 64)) & 1) || ksz[c] <= 0) continue;
            const int com = (int)((b->all[c / 64] >> (c % 64)) & 1),
                      in0 = (int)((wg[0][c / 64] >> (c % 64)) & 1),
                      in1 = (int)((wg[1][c / 64] >> (c % 64)) & 1);
            if ((com ? 0 : in0 && in1 ? 1 : in0 ? 2 : 3) != grp) continue;
            const int64_t e = pos + ksz[c];
            for (int64_t t = pos / 128; t <= (e - 1) / 128; t++)
                has[2 * t] |= (unsigned char)(com || in0),
                    has[2 * t + 1] |= (unsigned char)(com || in1);
            pos = e;
        }
    double skip = 0;
    for (int64_t t = 0; t < ntile; t++)
        for (int g = 0; g < 2; g++)
            if (b->rows > 64 * g && !has[2 * t + g]) skip += 64.0 * 128.0;
    free(has);
    return skip;
}

/* common: the keys of the clusters every member selected */
static void union_skip(const slice *b, const int32_t *ksz, uint64_t (*sel)[WORDS], int ck,
                       int64_t common, union_detail *u) {
    if (b->nm > SLMEM) {
        u->unmodelled += 128.0 * (double)pad128(b->keys);
        return;
    }
    int order[SLMEM]; /* the members in the order they joined (their rows' order) */
    for (int m = 0; m < b->nm; m++)
        order[m] = m;
    uint64_t wg[2][WORDS];
    warpgroup_sel(b, order, sel, wg);
    const int64_t mstart = common / 128 * 128; /* the first masked tile's first key */
    const int64_t ntile = (b->keys + 127) / 128;
    unsigned char *has = calloc((size_t)(2 * ntile + 2), 1);
    if (!has) return;
    /* the keys in the kernel's order: the common clusters, then the others */
    int64_t pos = 0;
    for (int grp = 0; grp < 2; grp++)
        for (int c = 0; c < ck; c++) {
            const int com = (int)((b->all[c / 64] >> (c % 64)) & 1);
            if (!((b->sel[c / 64] >> (c % 64)) & 1) || (grp == 0) != com || ksz[c] <= 0) continue;
            const int64_t e = pos + ksz[c],
                          nmask = e > mstart ? e - (pos > mstart ? pos : mstart) : 0;
            int rows_not = 0; /* rows of members that did not select c */
            for (int m = 0; m < b->nm; m++)
                if (!((sel[b->mr[m]][c / 64] >> (c % 64)) & 1)) rows_not += b->mt[m];
            u->waste += (double)nmask * rows_not;
            for (int64_t t = pos / 128; t <= (e - 1) / 128; t++)
                for (int g = 0; g < 2; g++)
                    has[2 * t + g] |= (unsigned char)((wg[g][c / 64] >> (c % 64)) & 1);
            pos = e;
        }
    for (int64_t t = mstart / 128; t < ntile; t++)
        for (int g = 0; g < 2; g++)
            if (b->rows > 64 * g && !has[2 * t + g]) u->skip += 64.0 * 128.0;
    /* cuda/attend_sm90.cu since the twenty-first stop: the masked clusters grouped by the
     * warpgroups whose members selected them, members in the order they joined; and with
     * the members placed so that as few as possible straddle row 64 */
    u->skip_grouped += grouped_skip(b, order, ksz, sel, ck);
    if (b->rows > 64) {
        /* the members whose rows sum closest to 64 from below first (subset sum over
         * <= SLMEM members: reach[s] = a set reaching s rows), then the others in order */
        uint64_t reach[65];
        int ok[65] = {1};
        for (int s = 0; s <= 64; s++)
            reach[s] = 0;
        for (int m = 0; m < b->nm; m++)
            for (int s = 64; s >= b->mt[m]; s--)
                if (!ok[s] && ok[s - b->mt[m]])
                    ok[s] = 1, reach[s] = reach[s - b->mt[m]] | 1ull << m;
        int best = 64;
        while (!ok[best])
            best--;
        int n = 0;
        for (int m = 0; m < b->nm; m++)
            if ((reach[best] >> m) & 1) order[n++] = m;
        for (int m = 0; m < b->nm; m++)
            if (!((reach[best] >> m) & 1)) order[n++] = m;
    }
    u->skip_placed += grouped_skip(b, order, ksz, sel, ck);
    free(has);
}

/* the pair model of one head: the permuted row stream cut into items of <= 128 rows
 * that span at most two adjacent query clusters; an item holding the last a < 128 rows
 * of cluster A takes the first rows of the next cluster B when that costs less than
 * keeping them apart, and then runs the union of A's and B's key clusters (a row
 * interval mask: keys ordered A only, both, B only). *nmix counts the mixed items. */
static double pair_cost(const svoo_plan *p, const int32_t *ksz, uint64_t (*sel)[WORDS],
                        const int64_t *K, int64_t *nmix) {
    double c = 0;
    int64_t done = 0; /* rows of cluster r already taken by a mixed item */
    for (int r = 0; r < p->cq; r++) {
        const int64_t rows = p->q_off[r + 1] - p->q_off[r] - done;
        done = 0;
        if (rows <= 0) continue;
        const int64_t full = rows / 128, a = rows % 128;
        c += (double)full * item_cost(128, K[r]);
        if (!a) continue;
        const int nx = r + 1;
        const int64_t b = nx < p->cq ? p->q_off[nx + 1] - p->q_off[nx] : 0;
        if (b > 0 && K[r] > 0 && K[nx] > 0) {
            const int64_t take = b < 128 - a ? b : 128 - a,
                          u = union_keys(sel[r], sel[nx], ksz, p->ck);
            /* apart: A's tail alone, B's taken rows within B's own items */
            const double apart = item_cost(a, K[r]) + (double)take / 128.0 * item_cost(128, K[nx]);
            const double mixed = item_cost(a + take, u);
            if (mixed < apart) {
                c += mixed;
                done = take;
                ++*nmix;
                continue;
            }
        }
        c += item_cost(a, K[r]);
    }
    return c;
}

/* adds query cluster (s rows, K keys) to c */
static void add_cluster(cost *c, int64_t s, int64_t K) {
    if (s <= 0 || K <= 0) return;
    const double keys = (double)((K + 127) / 128 * 128), full = (double)(s / 128);
    const int64_t t = s % 128;
    c->useful += (double)s * (double)K;
    c->now += 128.0 * keys * (full + (t == 0 ? 0 : t <= 64 ? 0.73 : 1.0));
    c->half += 128.0 * keys * (full + (t == 0 ? 0 : t <= 64 ? 0.5 : 1.0));
    c->packed += keys * (double)s;
}

/* TMA share: the keys (weighted by the query cluster's rows) that lie in whole 128-key tiles
 * of one run of rows, with K and V copied in key-cluster order: per cluster alone (a
 * cluster's floor(size / 128) tiles), per run of selected clusters adjacent in label order,
 * and per run with the key clusters ordered by popularity (rows of the query clusters that
 * select them, descending). out[0..2] += those keys x rows; *all += K_r x rows. */
static const double *g_pop;
static int by_pop(const void *a, const void *b) {
    const double x = g_pop[*(const int *)a], y = g_pop[*(const int *)b];
    return x < y ? 1 : x > y ? -1 : *(const int *)a - *(const int *)b;
}
/* the key clusters by popularity: rows of the query clusters that select them, descending */
static void pop_order(const svoo_plan *pl, uint64_t (*sel)[WORDS], int *order) {
    double pop[MAXCK] = {0};
    for (int r = 0; r < pl->cq; r++) {
        const double rows = pl->q_off[r + 1] - pl->q_off[r];
        for (int c = 0; c < pl->ck; c++)
            if (sel[r][c / 64] >> (c % 64) & 1) pop[c] += rows;
    }
    for (int c = 0; c < pl->ck; c++)
        order[c] = c;
    g_pop = pop;
    qsort(order, (size_t)pl->ck, sizeof(int), by_pop);
}
/* TMA boxes of the key tiles (K; V the same), D = 128: a whole tile of one run 2 (one a
 * 64-column half); the rests of the runs (their sizes mod 128 keys, `keys` in all) packed in
 * order into tiles of 128 rows, where each warp's 32 rows split into pieces at the rests' ends
 * and a piece of L rows is one box a half when L is a power of two, else two (attend_sm90.cu
 * tile_pieces). out[0] += tiles, out[1] += boxes, out[2] += whole tiles, out[3] += pieces,
 * each x rows. */
static int pow2(int x) {
    return (x & (x - 1)) == 0;
}
static void rest_boxes(const int *rest, int nrest, int64_t keys, int64_t whole, double rows,
                       double out[4]) {
    int64_t tiles = whole, boxes = 2 * whole, pieces = 0;
    int seg = 0, left = nrest ? rest[0] : 0;
    for (int64_t t = 0; t * 128 < keys; t++) {
        tiles++;
        for (int w = 0; w < 4 && t * 128 + 32 * w < keys; w++) {
            const int64_t base = t * 128 + 32 * w;
            int need = keys - base < 32 ? (int)(keys - base) : 32;
            while (need > 0 && seg < nrest) {
                const int len = left < need ? left : need;
                pieces++;
                boxes += 2 * (pow2(len) ? 1 : 2);
                need -= len;
                left -= len;
                if (left == 0 && ++seg < nrest) left = rest[seg];
            }
        }
    }
    out[0] += rows * (double)tiles;
    out[1] += rows * (double)boxes;
    out[2] += rows * (double)whole;
    out[3] += rows * (double)pieces;
}
/* per query cluster's run of selected clusters in label order (m = 1) and popularity order
 * (m = 2): the keys in whole tiles (out[m]; out[0]: per cluster alone) and the boxes
 * (boxes[m - 1], rest_boxes) */
static void tma_share(const svoo_plan *pl, const int32_t *ksz, uint64_t (*sel)[WORDS],
                      const int *order, double out[3], double *all, double boxes[2][4]) {
    int rest[MAXCK]; /* one order's rests of its runs */
    for (int r = 0; r < pl->cq; r++) {
        const double rows = pl->q_off[r + 1] - pl->q_off[r];
        if (rows <= 0) continue;
        int64_t K = 0, whole[3] = {0, 0, 0};
        for (int m = 1; m < 3; m++) {
            int64_t run = 0, keys = 0;
            int nrest = 0;
            for (int i = 0; i <= pl->ck; i++) {
                const int c = i < pl->ck ? (m == 1 ? i : order[i]) : -1;
                if (c >= 0 && (sel[r][c / 64] >> (c % 64) & 1)) {
                    run += ksz[c];
                    if (m == 1) K += ksz[c], whole[0] += ksz[c] / 128 * 128;
                } else {
                    whole[m] += run / 128 * 128;
                    if (run % 128) rest[nrest++] = (int)(run % 128), keys += run % 128;
                    run = 0;
                }
            }
            rest_boxes(rest, nrest, keys, whole[m] / 128, rows, boxes[m - 1]);
        }
        for (int m = 0; m < 3; m++)
            out[m] += rows * (double)whole[m];
        *all += rows * (double)K;
    }
}

/* geometry: items of R rows (R / 64 consumer warpgroups of 64 rows) over key tiles of T keys.
 * Each cluster's full R-row items run alone; the tails (rows mod R) are packed as wl_pack
 * packs them (descending, each into the open item where it adds the least cost, or alone),
 * priced pad_T(keys) / T x (ceil(rows / 64) + 1.7) a tile: the fixed 1.7 a tile is what makes
 * a <= 64-row item of two consumers cost the measured 0.73. In a packed item the keys run in
 * the kernel's order (the clusters every member selected, then the others grouped by the set
 * of warpgroups whose members selected them, most warpgroups first), and a warpgroup skips a
 * tile none of whose clusters its members selected. Totals: useful row x key work, executed
 * warpgroup work (64 x T a tile a warpgroup that computes it), the priced cost (x 64 x T) and
 * the keys loaded (T a tile of an item). */
typedef struct {
    double useful, work, cost, loaded;
} geom;
enum { GMEM = 256 }; /* members an item holds (more: a new item) */
typedef struct {
    int rows, nm, mr[GMEM], mt[GMEM];
    uint64_t sel[WORDS];
} gitem;
static int64_t padT(int64_t k, int T) {
    return (k + T - 1) / T * T;
}
static double geom_price(int rows, int64_t keys, int T) {
    return (double)(padT(keys, T) / T) * ((rows + 63) / 64 + 1.7);
}
static void geom_cost(const svoo_plan *p, const int32_t *ksz, uint64_t (*sel)[WORDS],
                      const int64_t *K, int R, int T, geom *g) {
    int order[MAXCK];
    double full128; /* remainders' cost of the full items at 128-key tiles: priced below at T */
    const int n = remainders(p, K, R, 0, order, &full128); /* the tails, descending */
    for (int r = 0; r < p->cq; r++) {
        const int64_t rows = p->q_off[r + 1] - p->q_off[r];
        if (rows <= 0 || K[r] <= 0) continue;
        g->useful += (double)rows * (double)K[r];
        const double full = (double)(rows / R), tiles = (double)(padT(K[r], T) / T);
        g->work += full * tiles * R * T;
        g->cost += full * tiles * (R / 64 + 1.7) * 64 * T;
        g->loaded += full * tiles * T;
    }
    gitem *it = calloc((size_t)(n > 0 ? n : 1), sizeof *it);
    int64_t *ikeys = calloc((size_t)(n > 0 ? n : 1), sizeof *ikeys);
    if (!it || !ikeys) exit(1);
    int nit = 0;
    for (int i = 0; i < n; i++) {
        const int r = order[i], t = (int)((p->q_off[r + 1] - p->q_off[r]) % R);
        int best = -1;
        double best_add = geom_price(t, K[r], T);
        int64_t best_keys = K[r];
        for (int b = 0; b < nit; b++) {
            if (it[b].rows + t > R || it[b].nm == GMEM) continue;
            const int64_t u = union_keys(it[b].sel, sel[r], ksz, p->ck);
            const double add =
                geom_price(it[b].rows + t, u, T) - geom_price(it[b].rows, ikeys[b], T);
            if (add < best_add) best = b, best_add = add, best_keys = u;
        }
        if (best < 0) best = nit++;
        gitem *b = &it[best];
        b->mr[b->nm] = r, b->mt[b->nm++] = t;
        b->rows += t;
        ikeys[best] = best_keys;
        for (int w = 0; w < WORDS; w++)
            b->sel[w] |= sel[r][w];
    }
    const int G = R / 64; /* <= 3 */
    for (int b = 0; b < nit; b++) {
        const gitem *x = &it[b];
        uint64_t all[WORDS], wg[4][WORDS];
        memset(wg, 0, sizeof wg);
        for (int w = 0; w < WORDS; w++)
            all[w] = ~0ull;
        for (int m = 0, off = 0; m < x->nm; off += x->mt[m], m++)
            for (int w = 0; w < WORDS; w++) {
                all[w] &= sel[x->mr[m]][w];
                for (int q = 0; q < G; q++)
                    if (off < 64 * q + 64 && off + x->mt[m] > 64 * q) wg[q][w] |= sel[x->mr[m]][w];
            }
        const int64_t ntile = padT(ikeys[b], T) / T;
        unsigned char *has = calloc((size_t)(G * ntile + G), 1);
        if (!has) exit(1);
        int64_t pos = 0;
        /* common clusters (mask 16), then the others by their warpgroup set, most first */
        int masks[16], nmask = 0;
        masks[nmask++] = 16;
        for (int pc = G; pc >= 1; pc--)
            for (int ms = 1; ms < (1 << G); ms++)
                if ((ms & 1) + (ms >> 1 & 1) + (ms >> 2 & 1) == pc) masks[nmask++] = ms;
        for (int mi = 0; mi < nmask; mi++)
            for (int c = 0; c < p->ck; c++) {
                if (!((x->sel[c / 64] >> (c % 64)) & 1) || ksz[c] <= 0) continue;
                const int com = (int)((all[c / 64] >> (c % 64)) & 1);
                int ms = 0;
                for (int q = 0; q < G; q++)
                    ms |= (int)((wg[q][c / 64] >> (c % 64)) & 1) << q;
                if ((com ? 16 : ms) != masks[mi]) continue;
                const int64_t e = pos + ksz[c];
                for (int64_t t = pos / T; t <= (e - 1) / T; t++)
                    for (int q = 0; q < G; q++)
                        has[G * t + q] |= (unsigned char)(com || ((ms >> q) & 1));
                pos = e;
            }
        for (int64_t t = 0; t < ntile; t++) {
            int act = 0;
            for (int q = 0; q < G; q++)
                act += x->rows > 64 * q && has[G * t + q];
            g->work += (double)act * 64 * T;
            g->cost += (act + 1.7) * 64 * T;
            g->loaded += T;
        }
        free(has);
    }
    free(it), free(ikeys);
}

/* a plain item of the balance model: its head and cost (128-key tiles) */
typedef struct {
    int h;
    int64_t c;
} plain_item;
static int by_cost_desc(const void *a, const void *b) {
    const int64_t x = ((const plain_item *)a)->c, y = ((const plain_item *)b)->c;
    return (y > x) - (y < x);
}
/* items (in head order, each head's costly first) with the heads taken in the order
 * `order`, each to the SM free first: ideal / makespan */
static double balance(const plain_item *it, int64_t n, const int *order, int H, int nsm) {
    double t[1024] = {0}, sum = 0, end = 0;
    for (int i = 0; i < H; i++)
        for (int64_t j = 0; j < n; j++) {
            if (it[j].h != order[i]) continue;
            int m = 0;
            for (int k = 1; k < nsm; k++)
                if (t[k] < t[m]) m = k;
            t[m] += (double)it[j].c;
            sum += (double)it[j].c;
        }
    for (int k = 0; k < nsm; k++)
        end = t[k] > end ? t[k] : end;
    return end > 0 ? sum / nsm / end : 1.0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr,
                "usage: %s PROFILE.csv [preset] [step] [layer] [dense_tflops] [threads] [top_p]\n",
                argv[0]);
        return 2;
    }
    const char *preset = argc > 2 ? argv[2] : "wan2.1-1.3b-720p";
    const int step = argc > 3 ? atoi(argv[3]) : 10, layer = argc > 4 ? atoi(argv[4]) : 5;
    const double dense_tf = argc > 5 ? atof(argv[5]) : 550.0;
    const int nth = argc > 6 ? atoi(argv[6]) : 2;
    const double top_p = argc > 7 ? atof(argv[7]) : 0.9;
    svoo_profile *src = NULL, *prof = NULL;
    svoo_synth *syn = NULL;
    svoo_synth_config sc;
    svoo_synth_config_init(&sc);
    svoo_status s = svoo_synth_preset(preset, &sc);
    if (!s) s = svoo_profile_load(argv[1], &src);
    sc.profile = src;
    if (!s) s = svoo_synth_create(&sc, &syn);
    if (!s) s = svoo_synth_profile(syn, &prof);
    if (s) {
        fprintf(stderr, "tile_cost: %s: %s\n", svoo_status_string(s), svoo_last_error(NULL));
        return 1;
    }
    const int H = sc.heads, D = sc.head_dim;
    const int64_t N = (int64_t)sc.frames * sc.height * sc.width + sc.text_tokens;
    const size_t cnt = (size_t)H * N * D;
    uint16_t *q16 = malloc(cnt * 2), *k16 = malloc(cnt * 2), *v16 = malloc(cnt * 2);
    float *q = malloc((size_t)N * D * 4), *k = malloc((size_t)N * D * 4),
          *v = malloc((size_t)N * D * 4);
    if (!q16 || !k16 || !v16 || !q || !k || !v) return 1;
    s = svoo_synth_generate(syn, step, layer, SVOO_BF16, q16, k16, v16); /* [1, H, N, D] */

    svoo_config cfg;
    svoo_config_init(&cfg, SVOO_METHOD_SVOO);
    cfg.head_dim = D, cfg.num_heads = H, cfg.num_layers = sc.layers, cfg.num_steps = sc.steps;
    cfg.frames = sc.frames, cfg.height = sc.height, cfg.width = sc.width;
    cfg.text_tokens = sc.text_tokens, cfg.profile = prof, cfg.num_threads = nth;
    cfg.top_p = top_p;
    svoo_ctx *ctx = NULL;
    if (!s) s = svoo_ctx_create(&cfg, &ctx);
    int cq = 0, ck = 0;
    svoo_clusters_resolve(&cfg, N, &cq, &ck);
    if (cq > MAXCK || ck > MAXCK) {
        fprintf(stderr, "tile_cost: at most %d clusters a side\n", MAXCK);
        return 1;
    }
    int32_t *ksz = malloc(sizeof(int32_t) * ck);
    int64_t *Kr = malloc(sizeof(int64_t) * cq);
    /* the plain launch's full 128-row items (the tails go to union items): at most
     * N / 128 a head */
    plain_item *items = malloc(sizeof(plain_item) * (size_t)(H * (N / 128 + 1)));
    int64_t nitems = 0, *hwork = calloc((size_t)H, sizeof(int64_t));
    uint64_t(*sel)[WORDS] = malloc(sizeof(uint64_t) * WORDS * cq);
    slice *slices = malloc(sizeof(slice) * cq);
    if (!ksz || !Kr || !sel || !slices || !items || !hwork) return 1;
    cost tot = {0}, dense = {0};
    add_cluster(&dense, N, N);
    double masked_bf = 0, masked_nf = 0;
    union_detail udet = {0};
    int64_t ntail64 = 0, ntail128 = 0, nfull = 0, ncl = 0, nmix = 0, nmix64 = 0, nmix128 = 0,
            nmixnf = 0;
    double tma_tot[3] = {0, 0, 0}, tma_all = 0;
    double boxes[2][4] = {{0, 0, 0, 0}, {0, 0, 0, 0}};
    int order[MAXCK];
    static const int GEOM_R[] = {128, 128, 192, 192, 128}, GEOM_T[] = {128, 64, 128, 64, 176};
    enum { NGEOM = sizeof GEOM_R / sizeof GEOM_R[0] };
    _Static_assert(sizeof GEOM_T == sizeof GEOM_R, "one key width a row count");
    geom gtot[NGEOM];
    memset(gtot, 0, sizeof gtot);
    for (int h = 0; h < H && !s; h++) {
        const uint16_t *src3[3] = {q16 + (size_t)h * N * D, k16 + (size_t)h * N * D,
                                   v16 + (size_t)h * N * D};
        float *dst3[3] = {q, k, v};
        for (int t = 0; t < 3; t++)
            for (size_t i = 0; i < (size_t)N * D; i++)
                dst3[t][i] = svoo_bf16_to_f32(src3[t][i]);
        svoo_head_state st;
        memset(&st, 0, sizeof st);
        svoo_plan plan;
        memset(&plan, 0, sizeof plan);
        s = svoo_head_state_reserve(&st, N, cq, ck, D);
        svoo_plan_input in = {&cfg, step, layer, h, q, k, v, N, D, cq, ck, &st, 1, 0, nth};
        in.floor_ratio = svoo_floor_ratio(ctx, step, layer, h);
        if (!s) s = svoo_plan_svoo(&in, &plan);
        cost hc = {0};
        for (int c = 0; c < plan.ck && !s; c++)
            ksz[c] = plan.k_off[c + 1] - plan.k_off[c];
        memset(sel, 0, sizeof(uint64_t) * WORDS * (size_t)plan.cq);
        for (int r = 0; r < plan.cq && !s; r++) {
            int64_t K = 0;
            for (int32_t e = plan.row_ptr[r]; e < plan.row_ptr[r + 1]; e++) {
                K += ksz[plan.col[e]];
                sel[r][plan.col[e] / 64] |= 1ull << (plan.col[e] % 64);
            }
            Kr[r] = K;
            const int64_t rows = plan.q_off[r + 1] - plan.q_off[r];
            for (int64_t t = 0; t < rows / 128 && K > 0; t++) {
                items[nitems].h = h, items[nitems++].c = pad128(K) / 128;
                hwork[h] += pad128(K) / 128;
            }
            if (rows > 0 && K > 0) {
                ncl++;
                nfull += rows / 128;
                if (rows % 128) *(rows % 128 <= 64 ? &ntail64 : &ntail128) += 1;
            }
            add_cluster(&hc, rows, K);
        }
        double unused = 0;
        if (!s) hc.uni = union_cost(&plan, ksz, sel, Kr, slices, 64, 0, &nmix64, &unused, NULL);
        if (!s)
            hc.u128 = union_cost(&plan, ksz, sel, Kr, slices, 128, 0, &nmix128, &masked_bf, &udet);
        if (!s) hc.unf = union_cost(&plan, ksz, sel, Kr, slices, 128, 1, &nmixnf, &masked_nf, NULL);
        if (!s) hc.pair = pair_cost(&plan, ksz, sel, Kr, &nmix);
        if (!s) hc.skp = skip_pack_cost(&plan, ksz, sel, Kr, 0);
        if (!s) hc.ska = skip_pack_cost(&plan, ksz, sel, Kr, 1);
        for (int gi = 0; gi < NGEOM && !s; gi++)
            geom_cost(&plan, ksz, sel, Kr, GEOM_R[gi], GEOM_T[gi], &gtot[gi]);
        double tm[3] = {0, 0, 0}, tall = 0;
        if (!s) {
            pop_order(&plan, sel, order);
            tma_share(&plan, ksz, sel, order, tm, &tall, boxes);
        }
        printf("head %2d: TMA share: clusters %.3f, label runs %.3f, popularity runs %.3f\n", h,
               tm[0] / tall, tm[1] / tall, tm[2] / tall);
        for (int m = 0; m < 3; m++)
            tma_tot[m] += tm[m];
        tma_all += tall;
        printf("head %2d: density %.4f, efficiency now %.3f, half-cost tails %.3f, packed %.3f, "
               "union %.3f, union-128 %.3f, pairs %.3f\n",
               h, svoo_plan_density(&plan), hc.useful / hc.now, hc.useful / hc.half,
               hc.useful / hc.packed, hc.useful / hc.uni, hc.useful / hc.u128, hc.useful / hc.pair);
        tot.useful += hc.useful, tot.now += hc.now, tot.half += hc.half, tot.packed += hc.packed;
        tot.uni += hc.uni, tot.u128 += hc.u128, tot.unf += hc.unf, tot.pair += hc.pair;
        tot.skp += hc.skp, tot.ska += hc.ska;
        svoo_plan_release(&plan);
        svoo_head_state_release(&st);
    }
    if (s) {
        fprintf(stderr, "tile_cost: %s: %s\n", svoo_status_string(s), svoo_last_error(ctx));
        return 1;
    }
    const double ed = dense.useful / dense.now;
    printf("%s step %d layer %d, %d x %lld x %d, clusters %d / %d: %lld query clusters with keys: "
           "%lld full items, %lld tails <= 64 rows, %lld tails 65-127\n",
           preset, step, layer, H, (long long)N, D, cq, ck, (long long)ncl, (long long)nfull,
           (long long)ntail64, (long long)ntail128);
    printf(
        "efficiency (useful / executed): dense %.4f; sparse now %.4f, half-cost tails %.4f, "
        "packed rows %.4f, union slices %.4f (%lld mixed), union items of 128 %.4f (%lld mixed), "
        "pairs %.4f (%lld mixed)\n",
        ed, tot.useful / tot.now, tot.useful / tot.half, tot.useful / tot.packed,
        tot.useful / tot.uni, (long long)nmix64, tot.useful / tot.u128, (long long)nmix128,
        tot.useful / tot.pair, (long long)nmix);
    printf("union items of 128: key tiles past the common keys (masked) %.4f of the work "
           "executed; next fit by keys: %.4f (%lld mixed), masked %.4f\n",
           masked_bf / tot.u128, tot.useful / tot.unf, (long long)nmixnf, masked_nf / tot.unf);
    printf("union items of 128, of the work executed: masked columns the row did not select "
           "%.4f; masked tiles a consumer warpgroup could skip (none of its members selected "
           "them) %.4f; items of > %d members, not modelled: %.4f\n",
           udet.waste / tot.u128, udet.skip / tot.u128, SLMEM, udet.unmodelled / tot.u128);
    printf("union items of 128, skipped by a consumer warpgroup with the masked clusters grouped "
           "by warpgroup (cuda/attend_sm90.cu): %.4f of the work executed; with the members "
           "placed so that fewest straddle row 64: %.4f\n",
           udet.skip_grouped / tot.u128, udet.skip_placed / tot.u128);
    printf("union items of 128 priced as the kernel skips (a key tile one consumer computes 0.73): "
           "efficiency %.4f with wl_pack's packing, %.4f packed by that price\n",
           tot.useful / tot.skp, tot.useful / tot.ska);
    printf("predicted effective TFLOP/s at dense %.0f: now %.0f, half-cost tails %.0f, packed "
           "rows %.0f, union slices %.0f\n",
           dense_tf, dense_tf * tot.useful / tot.now / ed, dense_tf * tot.useful / tot.half / ed,
           dense_tf * tot.useful / tot.packed / ed, dense_tf * tot.useful / tot.uni / ed);
    printf("TMA share (keys in whole 128-key tiles of one run, by work): clusters %.4f, label "
           "runs %.4f, popularity runs %.4f\n",
           tma_tot[0] / tma_all, tma_tot[1] / tma_all, tma_tot[2] / tma_all);
    for (int m = 0; m < 2; m++)
        printf("K tiles (%s order, by rows): whole %.4f, TMA boxes a tile %.2f, pieces a "
               "piece tile %.2f\n",
               m ? "popularity" : "label", boxes[m][2] / boxes[m][0], boxes[m][1] / boxes[m][0],
               boxes[m][3] / (boxes[m][0] - boxes[m][2]));
    for (int gi = 0; gi < NGEOM; gi++) /* priced: relative to a full item's (R / 64 + 1.7) */
        printf("geometry %d rows x %d keys: useful / warpgroup work %.4f, useful / priced %.4f, "
               "keys loaded a useful row x key %.3e (x %d rows: %.4f)\n",
               GEOM_R[gi], GEOM_T[gi], gtot[gi].useful / gtot[gi].work,
               gtot[gi].useful / gtot[gi].cost * (GEOM_R[gi] / 64 + 1.7) / (GEOM_R[gi] / 64),
               gtot[gi].loaded / gtot[gi].useful, GEOM_R[gi],
               GEOM_R[gi] * gtot[gi].loaded / gtot[gi].useful);
    /* each head's items are contiguous (added head by head): costly first within it */
    for (int64_t j0 = 0, j1; j0 < nitems; j0 = j1) {
        for (j1 = j0; j1 < nitems && items[j1].h == items[j0].h; j1++)
            ;
        qsort(items + j0, (size_t)(j1 - j0), sizeof *items, by_cost_desc);
    }
    int *idx = malloc(sizeof(int) * 2 * (size_t)H), *work = idx + H;
    if (!idx) return 1;
    for (int h = 0; h < H; h++)
        idx[h] = work[h] = h;
    for (int i = 1; i < H; i++) /* by work, descending; ties: the lower index first */
        for (int j = i; j > 0 && hwork[work[j]] > hwork[work[j - 1]]; j--) {
            const int x = work[j];
            work[j] = work[j - 1], work[j - 1] = x;
        }
    printf("balance of the plain launch (%lld full items, 132 SMs, ideal / makespan): heads in "
           "index order %.4f, by work descending %.4f\n",
           (long long)nitems, balance(items, nitems, idx, H, 132),
           balance(items, nitems, work, H, 132));
    free(idx), free(items), free(hwork);
    free(ksz), free(Kr), free(sel), free(slices);
    svoo_ctx_free(ctx);
    svoo_synth_free(syn);
    svoo_profile_free(prof);
    svoo_profile_free(src);
    free(q16), free(k16), free(v16), free(q), free(k), free(v);
    return 0;
}

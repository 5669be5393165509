/* svg_masks.c : Sparse VideoGen planner (ALGORITHMS.md "SVG", docs/SVG.md).
 *
 * Every head gets one of two block masks over a fixed token layout:
 *   spatial  : band in frame-major order (nearby frames), identity layout;
 *   temporal : the same band in token-major (y, x, f) order, reached by the
 *              layout transformation (q_perm = k_perm), which the executor
 *              applies by gathering Q/K/V and scattering the output back.
 * Both masks keep the first frame (sink) and the text tokens dense. The layout
 * puts frame 0 first among the video tokens in both kinds, so the sink is one
 * contiguous, block-aligned key range; text stays at its side of the sequence.
 * The kind is chosen per head per call from the MSE of sampled rows. */
#include "svg.h"

#include <cblas.h>
#include <float.h>
#include <omp.h>

static int64_t ceil_div(int64_t a, int64_t b) {
    return (a + b - 1) / b;
}

svoo_status svoo_svg_geom_init(const svoo_config *cfg, int64_t n, svoo_svg_geom *g) {
    if (!cfg || !g) return svoo_err(SVOO_ERR_NULL_POINTER, "svg: config or geometry is NULL");
    if (cfg->frames <= 0 || cfg->height <= 0 || cfg->width <= 0)
        return svoo_err(SVOO_ERR_GEOMETRY,
                        "svg: config.frames/height/width must be > 0 (got %d x %d x %d)",
                        cfg->frames, cfg->height, cfg->width);
    if (cfg->text_tokens < 0)
        return svoo_err(SVOO_ERR_GEOMETRY, "svg: config.text_tokens = %d must be >= 0",
                        cfg->text_tokens);
    if (cfg->svg_block < 1)
        return svoo_err(SVOO_ERR_INVALID_ARGUMENT, "svg: config.svg_block = %d must be >= 1",
                        cfg->svg_block);
    if (n < 1 || n > INT32_MAX)
        return svoo_err(SVOO_ERR_INVALID_ARGUMENT, "svg: N = %lld outside [1, 2^31)", (long long)n);
    const int64_t S = (int64_t)cfg->height * cfg->width;
    /* frames x S compared without forming a product that could overflow */
    if (S > n || cfg->frames > n / S || (int64_t)cfg->frames * S + cfg->text_tokens != n)
        return svoo_err(SVOO_ERR_GEOMETRY,
                        "svg: config.frames x height x width + text_tokens = %d x %d x %d + %d "
                        "!= N = %lld",
                        cfg->frames, cfg->height, cfg->width, cfg->text_tokens, (long long)n);
    memset(g, 0, sizeof *g);
    g->F = cfg->frames;
    g->H = cfg->height;
    g->W = cfg->width;
    g->blk = cfg->svg_block;
    g->text_first = cfg->text_first ? 1 : 0;
    g->S = S;
    g->V = S * cfg->frames;
    g->T = cfg->text_tokens;
    g->N = n;
    g->vid0 = g->text_first ? g->T : 0;
    g->text0 = g->text_first ? 0 : g->V;
    g->nb_text = (int)ceil_div(g->T, g->blk);
    g->nb_sink = (int)ceil_div(g->S, g->blk);
    g->nb_rest = (int)ceil_div(g->V - g->S, g->blk);
    g->nb = g->nb_text + g->nb_sink + g->nb_rest;
    g->b_text = g->text_first ? 0 : g->nb_sink + g->nb_rest;
    g->b_sink = g->text_first ? g->nb_text : 0;
    g->b_rest = g->b_sink + g->nb_sink;
    return SVOO_OK;
}

int64_t svoo_svg_coord(const svoo_svg_geom *g, int kind, int64_t v) {
    if (kind == SVOO_SVG_SPATIAL) return v;
    int64_t f = v / g->S, s = v % g->S;
    return s * g->F + f;
}

/* coordinate of the r-th token of the rest group (frames 1..F-1) */
static int64_t rest_coord(const svoo_svg_geom *g, int kind, int64_t r) {
    if (kind == SVOO_SVG_SPATIAL) return g->S + r;
    int64_t s = r / (g->F - 1), f = 1 + r % (g->F - 1);
    return s * g->F + f;
}

/* rank in the rest group of video token v (v >= S) */
static int64_t rest_rank(const svoo_svg_geom *g, int kind, int64_t v) {
    if (kind == SVOO_SVG_SPATIAL) return v - g->S;
    int64_t f = v / g->S, s = v % g->S;
    return s * (g->F - 1) + (f - 1);
}

int svoo_svg_mask_pair(const svoo_svg_geom *g, int kind, int64_t w, int64_t i, int64_t j) {
    if ((i >= g->text0 && i < g->text0 + g->T) || (j >= g->text0 && j < g->text0 + g->T)) return 1;
    int64_t vi = i - g->vid0, vj = j - g->vid0;
    if (vj < g->S) return 1; /* first-frame sink */
    int64_t d = svoo_svg_coord(g, kind, vi) - svoo_svg_coord(g, kind, vj);
    return (d < 0 ? -d : d) <= w;
}

/* coordinate range [lo, hi] of video block b (0 .. nb_sink + nb_rest - 1) */
static void vblock_range(const svoo_svg_geom *g, int kind, int b, int64_t *lo, int64_t *hi) {
    if (b < g->nb_sink) {
        int64_t s0 = (int64_t)b * g->blk, s1 = s0 + g->blk < g->S ? s0 + g->blk - 1 : g->S - 1;
        *lo = kind == SVOO_SVG_SPATIAL ? s0 : s0 * g->F;
        *hi = kind == SVOO_SVG_SPATIAL ? s1 : s1 * g->F;
        return;
    }
    int64_t r0 = (int64_t)(b - g->nb_sink) * g->blk, nr = g->V - g->S;
    int64_t r1 = r0 + g->blk < nr ? r0 + g->blk - 1 : nr - 1;
    *lo = rest_coord(g, kind, r0);
    *hi = rest_coord(g, kind, r1);
}

/* rest blocks [*c0, *c1] (empty when *c0 > *c1) computed for video query
 * block b at band w: those whose coordinate range meets [lo - w, hi + w] */
static void band_blocks(const svoo_svg_geom *g, int kind, int64_t w, int b, int *c0, int *c1) {
    int64_t a0, a1, lo, hi;
    vblock_range(g, kind, b, &a0, &a1);
    a0 -= w;
    a1 += w;
    /* first rest block with hi >= a0 */
    int l = 0, r = g->nb_rest;
    while (l < r) {
        int m = l + (r - l) / 2;
        vblock_range(g, kind, g->nb_sink + m, &lo, &hi);
        if (hi >= a0)
            r = m;
        else
            l = m + 1;
    }
    *c0 = l;
    /* last rest block with lo <= a1 */
    l = 0, r = g->nb_rest;
    while (l < r) {
        int m = l + (r - l) / 2;
        vblock_range(g, kind, g->nb_sink + m, &lo, &hi);
        if (lo <= a1)
            l = m + 1;
        else
            r = m;
    }
    *c1 = l - 1;
}

static int64_t vblock_size(const svoo_svg_geom *g, int b) {
    if (b < g->nb_sink) {
        int64_t s0 = (int64_t)b * g->blk;
        return g->S - s0 < g->blk ? g->S - s0 : g->blk;
    }
    int64_t r0 = (int64_t)(b - g->nb_sink) * g->blk, nr = g->V - g->S;
    return nr - r0 < g->blk ? nr - r0 : g->blk;
}

/* rest tokens in rest blocks c0..c1 */
static int64_t rest_tokens(const svoo_svg_geom *g, int c0, int c1) {
    if (c0 > c1) return 0;
    int64_t e = (int64_t)(c1 + 1) * g->blk, nr = g->V - g->S;
    return (e < nr ? e : nr) - (int64_t)c0 * g->blk;
}

double svoo_svg_video_frac(const svoo_svg_geom *g, int kind, int64_t w) {
    int64_t total = 0;
    for (int b = 0; b < g->nb_sink + g->nb_rest; b++) {
        int c0, c1;
        band_blocks(g, kind, w, b, &c0, &c1);
        total += vblock_size(g, b) * (g->S + rest_tokens(g, c0, c1));
    }
    return (double)total / ((double)g->V * (double)g->V);
}

int64_t svoo_svg_band(const svoo_svg_geom *g, int kind, double target) {
    /* video_frac is non-decreasing in w and 1 at w = V - 1 */
    int64_t l = 0, r = g->V - 1;
    while (l < r) {
        int64_t m = l + (r - l) / 2;
        if (svoo_svg_video_frac(g, kind, m) >= target)
            r = m;
        else
            l = m + 1;
    }
    if (l > 0 &&
        target - svoo_svg_video_frac(g, kind, l - 1) < svoo_svg_video_frac(g, kind, l) - target)
        return l - 1;
    return l;
}

/* permuted position of the first token of block b */
static int64_t block_start(const svoo_svg_geom *g, int b) {
    if (b >= g->b_text && b < g->b_text + g->nb_text)
        return g->text0 + (int64_t)(b - g->b_text) * g->blk;
    if (b < g->b_rest) return g->vid0 + (int64_t)(b - g->b_sink) * g->blk;
    return g->vid0 + g->S + (int64_t)(b - g->b_rest) * g->blk;
}

svoo_status svoo_svg_build(const svoo_svg_geom *g, int kind, int64_t w, svoo_plan *plan) {
    const int nb = g->nb, nbv = g->nb_sink + g->nb_rest;
    int *c0 = svoo_malloc((size_t)(nbv ? nbv : 1) * 2 * sizeof(int));
    if (!c0) return svoo_err(SVOO_ERR_OUT_OF_MEMORY, "svg: band of %d blocks", nbv);
    int *c1 = c0 + nbv;
    int64_t nnz = (int64_t)g->nb_text * nb;
    for (int b = 0; b < nbv; b++) {
        band_blocks(g, kind, w, b, &c0[b], &c1[b]);
        nnz += g->nb_text + g->nb_sink + (c1[b] >= c0[b] ? c1[b] - c0[b] + 1 : 0);
    }
    /* permutations and key offsets for nb blocks, then query offsets and
     * exactly the CSR capacity needed (not nb x nb) */
    svoo_status s = svoo_plan_reserve(plan, g->N, 1, nb);
    if (!s) s = svoo_plan_reserve(plan, g->N, nb, (int)ceil_div(nnz, nb));
    if (s) {
        svoo_free(c0);
        return s;
    }
    plan->n_q = plan->n_k = g->N;
    plan->cq = plan->ck = nb;
    for (int b = 0; b < nb; b++)
        plan->q_off[b] = plan->k_off[b] = (int32_t)block_start(g, b);
    /* block_start is ordered as the blocks are numbered; close the ranges */
    plan->q_off[nb] = plan->k_off[nb] = (int32_t)g->N;

    if (kind == SVOO_SVG_SPATIAL) {
        plan->q_identity = plan->k_identity = 1;
    } else {
        plan->q_identity = plan->k_identity = 0;
        int32_t *perm = plan->q_perm;
        for (int64_t t = 0; t < g->T; t++)
            perm[g->text0 + t] = (int32_t)(g->text0 + t);
        for (int64_t s0 = 0; s0 < g->S; s0++)
            perm[g->vid0 + s0] = (int32_t)(g->vid0 + s0);
        int32_t *rest = perm + g->vid0 + g->S;
        for (int64_t sp = 0; sp < g->S; sp++)
            for (int f = 1; f < g->F; f++)
                *rest++ = (int32_t)(g->vid0 + (int64_t)f * g->S + sp);
        memcpy(plan->k_perm, plan->q_perm, (size_t)g->N * sizeof(int32_t));
    }

    int64_t e = 0;
    for (int r = 0; r < nb; r++) {
        plan->row_ptr[r] = (int32_t)e;
        int is_text = r >= g->b_text && r < g->b_text + g->nb_text;
        int vb = r - g->b_sink;
        for (int c = 0; c < nb; c++) {
            int keep = is_text || (c >= g->b_text && c < g->b_text + g->nb_text) ||
                       (c >= g->b_sink && c < g->b_rest);
            if (!keep && !is_text && c >= g->b_rest && c < g->b_rest + g->nb_rest)
                keep = c - g->b_rest >= c0[vb] && c - g->b_rest <= c1[vb];
            if (keep) plan->col[e++] = c;
        }
    }
    plan->row_ptr[nb] = (int32_t)e;
    plan->nnz = e;
    svoo_free(c0);
    return SVOO_OK;
}

/* ---- online classification ---------------------------------------------- */

enum { KCHUNK = 8192 }; /* keys per P.V product: 3 x 64 x 8192 floats = 6 MiB */

svoo_status svoo_svg_classify(const svoo_svg_geom *g, int64_t w_s, int64_t w_t, int pair_level,
                              const float *q, const float *k, const float *v, int d, int rows,
                              double mse[2]) {
    const int64_t N = g->N, V = g->V;
    const int m = rows < V ? rows : (int)V;
    const float scale = 1.0f / sqrtf((float)d);
    const int64_t ws[2] = {w_s, w_t};
    mse[0] = mse[1] = 0;
    if (m < 1) return SVOO_OK;

    float *qs = svoo_aligned_alloc(svoo_mul_size((size_t)m * d, sizeof(float)));
    float *lg = svoo_aligned_alloc(svoo_mul_size((size_t)m * N, sizeof(float)));
    float *pc = svoo_aligned_alloc(svoo_mul_size((size_t)3 * m * KCHUNK, sizeof(float)));
    float *acc = svoo_aligned_alloc(svoo_mul_size((size_t)3 * m * d, sizeof(float)));
    int32_t *rank = svoo_malloc(svoo_mul_size((size_t)2 * N, sizeof(int32_t)));
    /* per variant (exact, spatial, temporal) and row: max, sum, and for the
     * masks the kept rest-rank range [lo, hi) */
    double *sum = svoo_calloc((size_t)3 * m, sizeof(double));
    float *mx = svoo_malloc((size_t)3 * m * sizeof(float));
    int64_t *range = svoo_malloc((size_t)4 * m * sizeof(int64_t));
    svoo_status st = SVOO_OK;
    if (!qs || !lg || !pc || !acc || !rank || !sum || !mx || !range) {
        st = svoo_err(SVOO_ERR_OUT_OF_MEMORY, "svg: classification buffers (%d rows x %lld keys)",
                      m, (long long)N);
        goto done;
    }

    /* rest rank of every key in each kind's order, -1 = always kept (text, sink) */
    for (int kind = 0; kind < 2; kind++) {
        int32_t *rk = rank + (size_t)kind * N;
#pragma omp parallel for schedule(static)
        for (int64_t j = 0; j < N; j++) {
            int64_t vj = j - g->vid0;
            rk[j] = (vj < g->S || vj >= V) ? -1
                    : pair_level           ? (int32_t)svoo_svg_coord(g, kind, vj)
                                           : (int32_t)rest_rank(g, kind, vj);
        }
    }
    /* sampled rows: evenly spaced video tokens; their query block's band */
    for (int t = 0; t < m; t++) {
        int64_t vi = ((2 * (int64_t)t + 1) * V) / (2 * (int64_t)m);
        memcpy(qs + (size_t)t * d, q + (size_t)(g->vid0 + vi) * d, (size_t)d * sizeof(float));
        for (int kind = 0; kind < 2; kind++) {
            int b = vi < g->S ? (int)(vi / g->blk)
                              : g->nb_sink + (int)(rest_rank(g, kind, vi) / g->blk);
            int c0, c1;
            band_blocks(g, kind, ws[kind], b, &c0, &c1);
            int64_t *rg = range + ((size_t)kind * m + t) * 2;
            if (pair_level) {
                int64_t ci = svoo_svg_coord(g, kind, vi);
                rg[0] = ci - ws[kind];
                rg[1] = ci + ws[kind] + 1;
            } else {
                rg[0] = (int64_t)c0 * g->blk;
                rg[1] = c1 >= c0 ? rg[0] + rest_tokens(g, c0, c1) : rg[0];
            }
        }
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, (int)N, d, scale, qs, d, k, d, 0.0f, lg,
                (int)N);

#pragma omp parallel for schedule(static)
    for (int t = 0; t < m; t++) {
        const float *l = lg + (size_t)t * N;
        float mall = -INFINITY, mk[2] = {-INFINITY, -INFINITY};
        for (int64_t j = 0; j < N; j++)
            mall = l[j] > mall ? l[j] : mall;
        for (int kind = 0; kind < 2; kind++) {
            const int32_t *rk = rank + (size_t)kind * N;
            const int64_t *rg = range + ((size_t)kind * m + t) * 2;
            float mm = -INFINITY;
            for (int64_t j = 0; j < N; j++)
                if (rk[j] < 0 || (rk[j] >= rg[0] && rk[j] < rg[1])) mm = l[j] > mm ? l[j] : mm;
            mk[kind] = mm;
        }
        mx[t] = mall;
        mx[m + t] = mk[0];
        mx[2 * m + t] = mk[1];
    }

    memset(acc, 0, (size_t)3 * m * d * sizeof(float));
    for (int64_t j0 = 0; j0 < N; j0 += KCHUNK) {
        const int nk = (int)(N - j0 < KCHUNK ? N - j0 : KCHUNK);
#pragma omp parallel for schedule(static)
        for (int row = 0; row < 3 * m; row++) {
            const int var = row / m, t = row % m;
            const float *l = lg + (size_t)t * N + j0;
            float *p = pc + (size_t)row * KCHUNK;
            const float shift = mx[row];
            double s = 0;
            if (var == 0) {
                for (int j = 0; j < nk; j++)
                    s += (p[j] = svoo_expf(l[j] - shift));
            } else {
                const int32_t *rk = rank + (size_t)(var - 1) * N + j0;
                const int64_t *rg = range + ((size_t)(var - 1) * m + t) * 2;
                for (int j = 0; j < nk; j++) {
                    int keep = rk[j] < 0 || (rk[j] >= rg[0] && rk[j] < rg[1]);
                    p[j] = keep ? svoo_expf(l[j] - shift) : 0.0f;
                    s += p[j];
                }
            }
            sum[row] += s;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 3 * m, d, nk, 1.0f, pc, KCHUNK,
                    v + (size_t)j0 * d, d, 1.0f, acc, d);
    }

    for (int kind = 0; kind < 2; kind++) {
        double err = 0;
        for (int t = 0; t < m; t++) {
            const float *oe = acc + (size_t)t * d, *ok = acc + (size_t)((kind + 1) * m + t) * d;
            const double ie = 1.0 / sum[t], ik = 1.0 / sum[(kind + 1) * m + t];
            for (int x = 0; x < d; x++) {
                double diff = ok[x] * ik - oe[x] * ie;
                err += diff * diff;
            }
        }
        mse[kind] = err / ((double)m * d);
    }
done:
    svoo_free(qs);
    svoo_free(lg);
    svoo_free(pc);
    svoo_free(acc);
    svoo_free(rank);
    svoo_free(sum);
    svoo_free(mx);
    svoo_free(range);
    return st;
}

/* ---- the planner ---------------------------------------------------------- */

svoo_status svoo_plan_svg(const svoo_plan_input *in, svoo_plan *plan) {
    if (!in || !plan) return svoo_err(SVOO_ERR_NULL_POINTER, "svg: input or plan is NULL");
    if (!in->cfg || !in->q || !in->k || !in->v || !in->state)
        return svoo_err(SVOO_ERR_NULL_POINTER, "svg: cfg, q, k, v or state is NULL");
    const svoo_config *cfg = in->cfg;
    if (!(cfg->svg_sparsity > 0 && cfg->svg_sparsity < 1))
        return svoo_err(SVOO_ERR_INVALID_ARGUMENT, "svg: config.svg_sparsity = %g outside (0, 1)",
                        cfg->svg_sparsity);
    if (cfg->svg_sample_rows < 1)
        return svoo_err(SVOO_ERR_INVALID_ARGUMENT, "svg: config.svg_sample_rows = %d must be >= 1",
                        cfg->svg_sample_rows);
    if (in->d < 1) return svoo_err(SVOO_ERR_INVALID_ARGUMENT, "svg: head dim %d", in->d);
    svoo_svg_geom g;
    svoo_status s = svoo_svg_geom_init(cfg, in->n, &g);
    if (s) return s;

    const int64_t w_s = svoo_svg_band(&g, SVOO_SVG_SPATIAL, cfg->svg_sparsity);
    const int64_t w_t = svoo_svg_band(&g, SVOO_SVG_TEMPORAL, cfg->svg_sparsity);
    double mse[2];
    if ((s = svoo_svg_classify(&g, w_s, w_t, 1, in->q, in->k, in->v, in->d, cfg->svg_sample_rows,
                               mse)))
        return s;
    /* ties (and NaN) go to the spatial mask, which needs no permutation */
    const int temporal = mse[1] < mse[0];
    if ((s = svoo_svg_build(&g, temporal ? SVOO_SVG_TEMPORAL : SVOO_SVG_SPATIAL,
                            temporal ? w_t : w_s, plan)))
        return s;
    in->state->svg_temporal = temporal;
    return SVOO_OK;
}

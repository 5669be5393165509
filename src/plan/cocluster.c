/* cocluster.c : SVOO planner. Bidirectional query-key co-clustering in
 * profile space (seeds 000/002), then top-p + profiled floor selection.
 *
 * A key k_j is seen by the queries through its profile p_j = mu_q k_j (R^cq);
 * it joins the key centroid c whose profile P_c = mu_q mu_k[c] has the highest
 * cosine with p_j. Since |p_j| does not depend on c,
 *     argmax_c cos(p_j, P_c) = argmax_c  k_j^T (G mu_k[c]) / |P_c|,
 *     G = mu_q^T mu_q (d x d),  |P_c|^2 = mu_k[c]^T G mu_k[c],
 * which costs n*d*ck instead of n*cq*ck (+ the profile norms): the Gram
 * re-association. The query step is the same with the roles swapped. */
#include "cluster.h"

#include <cblas.h>

/* label[i] = argmax_c cos(mu_o x_i, mu_o mu_s[c]) through the Gram matrix.
 * x: n x d, mu_o: co x d (other side), mu_s: cs x d (this side). */
svoo_status svoo_profile_assign_gram(const float *x, int64_t n, int d, const float *mu_o, int co,
                                     const float *mu_s, int cs, int32_t *label, int nthreads) {
    float *g = svoo_malloc((size_t)d * d * 4), *w = svoo_malloc((size_t)d * cs * 4);
    svoo_status s = SVOO_OK;
    if (!g || !w) {
        s = svoo_err(SVOO_ERR_OUT_OF_MEMORY, "co-clustering: Gram matrix d = %d, %d clusters", d, cs);
        goto done;
    }
    /* g = mu_o^T mu_o ; w = g mu_s^T (d x cs) */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, d, co, 1.0f, mu_o, d, mu_o, d, 0.0f, g, d);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d, cs, d, 1.0f, g, d, mu_s, d, 0.0f, w, cs);
    for (int c = 0; c < cs; c++) {
        double nn = 0;
        for (int i = 0; i < d; i++) nn += (double)mu_s[(size_t)c * d + i] * w[(size_t)i * cs + c];
        float inv = nn > 1e-30 ? (float)(1.0 / sqrt(nn)) : 0.0f;
        for (int i = 0; i < d; i++) w[(size_t)i * cs + c] *= inv;
    }
    s = svoo_assign_argmax(x, n, d, w, cs, NULL, label, nthreads);
done:
    svoo_free(g);
    svoo_free(w);
    return s;
}

/* the same assignment computed as the definition reads (profiles in R^co,
 * normalised, then cosine): the baseline the Gram form is measured against */
svoo_status svoo_profile_assign_naive(const float *x, int64_t n, int d, const float *mu_o, int co,
                                      const float *mu_s, int cs, int32_t *label, int nthreads) {
    float *pc = svoo_malloc((size_t)cs * co * 4), *px = svoo_malloc(svoo_mul_size((size_t)n, (size_t)co * 4));
    float *pct = svoo_malloc((size_t)co * cs * 4);
    svoo_status s = SVOO_OK;
    if (!pc || !px || !pct) {
        s = svoo_err(SVOO_ERR_OUT_OF_MEMORY, "co-clustering (naive): %lld x %d profiles", (long long)n, co);
        goto done;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, cs, co, d, 1.0f, mu_s, d, mu_o, d, 0.0f, pc, co);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, co, d, 1.0f, x, d, mu_o, d, 0.0f, px, co);
    for (int c = 0; c < cs; c++) {
        double nn = 0;
        for (int j = 0; j < co; j++) nn += (double)pc[(size_t)c * co + j] * pc[(size_t)c * co + j];
        float inv = nn > 1e-30 ? (float)(1.0 / sqrt(nn)) : 0.0f;
        for (int j = 0; j < co; j++) pct[(size_t)j * cs + c] = pc[(size_t)c * co + j] * inv;
    }
    /* |p_x| is constant per row, so argmax needs no row normalisation */
    s = svoo_assign_argmax(px, n, co, pct, cs, NULL, label, nthreads);
done:
    svoo_free(pc);
    svoo_free(px);
    svoo_free(pct);
    return s;
}

svoo_status svoo_cocluster(const float *xq, const float *xk, int64_t n, int d, int cq, int ck,
                           int iters, uint64_t seed, float *mu_q, float *mu_k, int32_t *q_label,
                           int32_t *k_label, int nthreads) {
    svoo_status s;
    if ((s = svoo_init_from_samples(xq, n, d, cq, seed, mu_q)) ||
        (s = svoo_init_from_samples(xk, n, d, ck, seed ^ 0x6b6579ull, mu_k)))
        return s;
    for (int it = 0; it < iters; it++) {
        /* key step: keys grouped by how the query centroids see them */
        if ((s = svoo_profile_assign_gram(xk, n, d, mu_q, cq, mu_k, ck, k_label, nthreads)) ||
            (s = svoo_centroids_update(xk, n, d, k_label, ck, mu_k, NULL)))
            return s;
        /* query step: the same with the roles swapped */
        if ((s = svoo_profile_assign_gram(xq, n, d, mu_k, ck, mu_q, cq, q_label, nthreads)) ||
            (s = svoo_centroids_update(xq, n, d, q_label, cq, mu_q, NULL)))
            return s;
    }
    return SVOO_OK;
}

uint64_t svoo_call_seed(const svoo_plan_input *in) {
    uint64_t s = in->cfg->seed ^ ((uint64_t)in->layer << 40) ^ ((uint64_t)in->head << 20) ^
                 (uint64_t)in->step;
    return svoo_rng_next(&s);
}

svoo_status svoo_plan_svoo(const svoo_plan_input *in, svoo_plan *plan) {
    svoo_head_state *st = in->state;
    svoo_status s = svoo_head_state_reserve(st, in->n, in->cq, in->ck, in->d);
    if (s) return s;
    if (in->replan || !st->valid) {
        st->valid = 0;
        s = svoo_cocluster(in->q, in->k, in->n, in->d, in->cq, in->ck, in->cfg->iters,
                           svoo_call_seed(in), st->mu_q, st->mu_k, st->q_label, st->k_label,
                           in->nthreads);
        if (s) return s;
        st->valid = 1;
    }
    /* reuse (spec, online stage 7; the reference's kmeans_clustering): the
     * cached labels and the cached centroids; only the profiled floor of this
     * step changes the selection. Centroids recomputed from the current tokens
     * under stale labels were measured worse (docs/FIDELITY.md). */
    return svoo_plan_finish(in, plan, in->cfg->top_p, in->floor_ratio);
}

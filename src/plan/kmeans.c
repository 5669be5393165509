/* kmeans.c : SVG2 planner. Independent Euclidean k-means of Q and of K,
 * warm-started from the layer's previous centroids, then top-p + fixed floor. */
#include "cluster.h"

uint64_t svoo_call_seed(const svoo_plan_input *in);

svoo_status svoo_kmeans(const float *x, int64_t n, int d, int c, int iters, int warm,
                        uint64_t seed, float *mu, int32_t *label, int nthreads) {
    svoo_status s = SVOO_OK;
    if (!warm && (s = svoo_init_from_samples(x, n, d, c, seed, mu))) return s;
    float *w = svoo_malloc((size_t)d * c * 4), *bias = svoo_malloc((size_t)c * 4);
    if (!w || !bias) {
        s = svoo_err(SVOO_ERR_OUT_OF_MEMORY, "k-means: %d centroids", c);
        goto done;
    }
    /* at least one assignment so labels always match the centroids given */
    for (int it = 0; it < (iters > 0 ? iters : 1); it++) {
        /* argmin |x - mu|^2 = argmax x.mu - |mu|^2 / 2 */
        for (int r = 0; r < c; r++) {
            double nn = 0;
            for (int j = 0; j < d; j++) {
                float m = mu[(size_t)r * d + j];
                w[(size_t)j * c + r] = m;
                nn += (double)m * m;
            }
            bias[r] = (float)(-0.5 * nn);
        }
        if ((s = svoo_assign_argmax(x, n, d, w, c, bias, label, nthreads)) ||
            (s = svoo_centroids_update(x, n, d, label, c, mu, NULL)))
            goto done;
    }
done:
    svoo_free(w);
    svoo_free(bias);
    return s;
}

svoo_status svoo_plan_svg2(const svoo_plan_input *in, svoo_plan *plan) {
    svoo_head_state *st = in->state;
    const svoo_config *c = in->cfg;
    svoo_status s = svoo_head_state_reserve(st, in->n, in->cq, in->ck, in->d);
    if (s) return s;
    if (in->replan || !st->valid) {
        int warm = st->valid;
        int iters = warm ? c->kmeans_iters : c->kmeans_iters_first;
        uint64_t seed = svoo_call_seed(in);
        st->valid = 0;
        if ((s = svoo_kmeans(in->q, in->n, in->d, in->cq, iters, warm, seed, st->mu_q, st->q_label,
                             in->nthreads)) ||
            (s = svoo_kmeans(in->k, in->n, in->d, in->ck, iters, warm, seed ^ 0x6b6579ull, st->mu_k,
                             st->k_label, in->nthreads)))
            return s;
        st->valid = 1;
    }
    /* reuse: cached labels and centroids, as SVOO */
    return svoo_plan_finish(in, plan, c->top_p, c->floor_ratio);
}

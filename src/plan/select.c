/* select.c : salient block selection shared by SVOO and SVG2.
 * For query cluster r: A[r, c] = mu_q[r] . mu_k[c] / sqrt(d), weights
 * w[c] = |key cluster c|, p[r, c] = w[c] exp(A[r, c]) / sum_c' (...).
 * Key clusters are kept in descending p until the cumulative mass reaches
 * top_p (the crossing cluster is kept), and never fewer than floor_count. */
#include "cluster.h"

#include <cblas.h>
#include <stdlib.h>

typedef struct {
    float p;   /* w exp(A - max A): the unnormalised probability */
    float key; /* log w + A: the same order as p, without underflow */
    int32_t c;
} scored;

/* Key clusters are ranked by log w + A, not by p: when the centroid scores of
 * a query cluster span more than ~87 (sharp heads), exp underflows, many p
 * are exactly 0 and a ranking by p would fill the floor by cluster index
 * instead of by score (docs/FIDELITY.md). */
static int by_key_desc(const void *a, const void *b) {
    const scored *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? 1 : -1;
    return x->c - y->c; /* deterministic ties */
}

static int int_asc(const void *a, const void *b) { return *(const int32_t *)a - *(const int32_t *)b; }

svoo_status svoo_select_topp(const float *mu_q, int cq, const float *mu_k, int ck, int d,
                             const int32_t *k_off, double top_p, int floor_count, svoo_plan *plan) {
    float *a = svoo_malloc(svoo_mul_size((size_t)cq * ck, 4));
    scored *sc = svoo_malloc((size_t)ck * sizeof *sc);
    if (!a || !sc) {
        svoo_free(a);
        svoo_free(sc);
        return svoo_err(SVOO_ERR_OUT_OF_MEMORY, "selection: %d x %d centroid scores", cq, ck);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, cq, ck, d, (float)(1.0 / sqrt((double)d)),
                mu_q, d, mu_k, d, 0.0f, a, ck);
    int64_t nnz = 0;
    for (int r = 0; r < cq; r++) {
        const float *ar = a + (size_t)r * ck;
        float mx = -INFINITY;
        for (int c = 0; c < ck; c++)
            if (k_off[c + 1] > k_off[c] && ar[c] > mx) mx = ar[c];
        int m = 0;
        double total = 0;
        for (int c = 0; c < ck; c++) {
            int32_t w = k_off[c + 1] - k_off[c];
            if (w == 0) continue; /* empty clusters hold no keys to select */
            sc[m].c = c;
            sc[m].p = (float)w * expf(ar[c] - mx);
            sc[m].key = logf((float)w) + ar[c];
            total += sc[m].p;
            m++;
        }
        int keep = 0;
        if (top_p >= 1.0 || !(total > 0 && isfinite(total))) {
            /* top_p = 1: every key cluster, as the reference's
             * identify_dynamic_map (with p rounded to 0 by exp underflow,
             * the cumulative scan would stop short of them).
             * NaN/Inf centroid scores (non-finite q or k, check_finite off):
             * keep every key cluster so that the non-finite values reach the
             * rows they touch, as in dense attention, instead of leaving the
             * rows with no key (all-zero output). */
            keep = m;
        } else {
            qsort(sc, (size_t)m, sizeof *sc, by_key_desc);
            double cum = 0;
            while (keep < m && cum < top_p * total) cum += sc[keep++].p;
            if (keep < floor_count) keep = floor_count < m ? floor_count : m;
        }
        plan->row_ptr[r] = (int32_t)nnz;
        for (int i = 0; i < keep; i++) plan->col[nnz + i] = sc[i].c;
        qsort(plan->col + nnz, (size_t)keep, 4, int_asc);
        nnz += keep;
    }
    plan->row_ptr[cq] = (int32_t)nnz;
    plan->nnz = nnz;
    svoo_free(a);
    svoo_free(sc);
    return SVOO_OK;
}

svoo_status svoo_plan_finish(const svoo_plan_input *in, svoo_plan *plan, double top_p,
                             double floor_ratio) {
    svoo_status s = svoo_plan_reserve(plan, in->n, in->cq, in->ck);
    if (s) return s;
    const svoo_head_state *st = in->state;
    svoo_plan_from_labels(plan, st->q_label, in->n, in->cq, st->k_label, in->n, in->ck);
    int floor_count = (int)floor(floor_ratio * in->ck);
    return svoo_select_topp(st->mu_q, in->cq, st->mu_k, in->ck, in->d, plan->k_off, top_p,
                            floor_count, plan);
}

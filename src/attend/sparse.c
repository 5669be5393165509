/* sparse.c : the CPU attention executor. Every method (and dense) reaches it
 * through a plan; it never knows which method made the plan.
 *
 * Work item = a tile of <= TQ rows of one query cluster. For each item the
 * union of the cluster's selected key clusters is streamed in chunks of <= KC
 * keys: long contiguous runs are read in place, short clusters are gathered
 * into a per-thread chunk buffer, so the GEMMs stay large whatever the
 * cluster sizes. Online softmax (running max m, sum l) keeps it exact. */
#include "attend.h"
#include "exp_shift.h"

#include <cblas.h>
#include <float.h>
#include <omp.h>
#include <stdlib.h>

enum { TQ = 256, KC = 512 };

typedef struct {
    int32_t r, row0, row1;
} work_item;

typedef struct {
    float *s;      /* TQ x KC scores / probabilities */
    float *o;      /* TQ x d accumulator */
    float *m, *l;  /* TQ running max, running sum */
    float *kbuf;   /* KC x d gathered keys */
    float *vbuf;   /* KC x d gathered values */
    float *bias;   /* KC additive score bias (EAR: log cluster size) */
} scratch;

typedef struct {
    const svoo_plan *plan;
    const float *qp, *kp, *vp;
    const float *mu_k, *mean_v; /* EAR: ck x d each, NULL when off */
    int d;
    float scale;
    float *op;
} exec_args;

SVOO_HOT_CLONES void svoo_exp_shift(float *x, int n, float shift) {
    exp_shift(x, n, shift, 1);
}

/* one chunk of nk keys (rows of kc/vc, stride d) into the tile's running state */
SVOO_HOT_CLONES static void tile_chunk(const exec_args *a, scratch *sc, const float *qt, int tq,
                                       const float *kc, const float *vc, int nk,
                                       const float *bias) {
    const int d = a->d;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, tq, nk, d, a->scale, qt, d, kc, d,
                0.0f, sc->s, KC);
    for (int i = 0; i < tq; i++) {
        float *srow = sc->s + (size_t)i * KC;
        if (bias)
            for (int j = 0; j < nk; j++) srow[j] += bias[j];
        /* 16 partial maxima / sums: reductions gcc vectorises without -ffast-math */
        float part[16];
        for (int u = 0; u < 16; u++) part[u] = sc->m[i];
        int j = 0;
        for (; j + 16 <= nk; j += 16)
            for (int u = 0; u < 16; u++) part[u] = srow[j + u] > part[u] ? srow[j + u] : part[u];
        float mx = sc->m[i];
        for (; j < nk; j++) mx = srow[j] > mx ? srow[j] : mx;
        for (int u = 0; u < 16; u++) mx = part[u] > mx ? part[u] : mx;
        float alpha = svoo_expf(sc->m[i] - mx);
        if (sc->m[i] == -INFINITY) alpha = 0.0f;
        exp_shift(srow, nk, mx, 1);
        for (int u = 0; u < 16; u++) part[u] = 0.0f;
        j = 0;
        for (; j + 16 <= nk; j += 16)
            for (int u = 0; u < 16; u++) part[u] += srow[j + u];
        float sum = 0.0f;
        for (; j < nk; j++) sum += srow[j];
        for (int u = 0; u < 16; u++) sum += part[u];
        sc->l[i] = sc->l[i] * alpha + sum;
        sc->m[i] = mx;
        if (alpha != 1.0f) {
            float *orow = sc->o + (size_t)i * d;
            for (int c = 0; c < d; c++) orow[c] *= alpha;
        }
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, tq, d, nk, 1.0f, sc->s, KC, vc, d,
                1.0f, sc->o, d);
}

static void run_item(const exec_args *a, scratch *sc, const work_item *it, int ear) {
    const svoo_plan *p = a->plan;
    const int d = a->d;
    const int tq = it->row1 - it->row0;
    const float *qt = a->qp + (size_t)it->row0 * d;
    for (int i = 0; i < tq; i++) {
        sc->m[i] = -INFINITY;
        sc->l[i] = 0.0f;
    }
    memset(sc->o, 0, (size_t)tq * d * sizeof(float));

    int nbuf = 0; /* keys gathered in kbuf/vbuf */
    const int32_t e0 = p->row_ptr[it->r], e1 = p->row_ptr[it->r + 1];
    for (int32_t e = e0; e < e1;) {
        /* coalesce consecutive key clusters into one contiguous run */
        int32_t c0 = p->col[e], c1 = c0 + 1;
        for (e++; e < e1 && p->col[e] == c1; e++) c1++;
        int64_t k0 = p->k_off[c0], k1 = p->k_off[c1];
        if (k1 - k0 >= KC / 2) {
            for (int64_t k = k0; k < k1; k += KC) {
                int nk = (int)(k1 - k < KC ? k1 - k : KC);
                tile_chunk(a, sc, qt, tq, a->kp + k * d, a->vp + k * d, nk, NULL);
            }
            continue;
        }
        while (k0 < k1) {
            int take = (int)(k1 - k0 < KC - nbuf ? k1 - k0 : KC - nbuf);
            memcpy(sc->kbuf + (size_t)nbuf * d, a->kp + k0 * d, (size_t)take * d * 4);
            memcpy(sc->vbuf + (size_t)nbuf * d, a->vp + k0 * d, (size_t)take * d * 4);
            nbuf += take;
            k0 += take;
            if (nbuf == KC) {
                tile_chunk(a, sc, qt, tq, sc->kbuf, sc->vbuf, nbuf, NULL);
                nbuf = 0;
            }
        }
    }
    if (nbuf) tile_chunk(a, sc, qt, tq, sc->kbuf, sc->vbuf, nbuf, NULL);

    if (ear) {
        /* dropped key clusters enter as one pseudo-key each: centroid as key,
         * mean value as value, log(size) as score bias */
        int32_t e = e0;
        nbuf = 0;
        for (int c = 0; c < p->ck; c++) {
            if (e < e1 && p->col[e] == c) {
                e++;
                continue;
            }
            int32_t size = p->k_off[c + 1] - p->k_off[c];
            if (size == 0) continue;
            memcpy(sc->kbuf + (size_t)nbuf * d, a->mu_k + (size_t)c * d, (size_t)d * 4);
            memcpy(sc->vbuf + (size_t)nbuf * d, a->mean_v + (size_t)c * d, (size_t)d * 4);
            sc->bias[nbuf++] = logf((float)size);
            if (nbuf == KC) {
                tile_chunk(a, sc, qt, tq, sc->kbuf, sc->vbuf, nbuf, sc->bias);
                nbuf = 0;
            }
        }
        if (nbuf) tile_chunk(a, sc, qt, tq, sc->kbuf, sc->vbuf, nbuf, sc->bias);
    }

    float *out = a->op + (size_t)it->row0 * d;
    for (int i = 0; i < tq; i++) {
        /* a row with no selected key (empty plan row) gets zeros, not NaN */
        float inv = sc->l[i] > 0.0f ? 1.0f / sc->l[i] : 0.0f;
        if (isnan(sc->l[i])) inv = NAN;
        for (int c = 0; c < d; c++) out[(size_t)i * d + c] = sc->o[(size_t)i * d + c] * inv;
    }
}

static svoo_status ear_means(const svoo_plan *p, const float *kp, const float *vp, int d,
                             float **mu_k, float **mean_v) {
    *mu_k = svoo_calloc((size_t)p->ck * d, 4);
    *mean_v = svoo_calloc((size_t)p->ck * d, 4);
    if (!*mu_k || !*mean_v)
        return svoo_err(SVOO_ERR_OUT_OF_MEMORY, "attend: EAR means for %d clusters", p->ck);
    for (int c = 0; c < p->ck; c++) {
        int32_t k0 = p->k_off[c], k1 = p->k_off[c + 1];
        if (k1 == k0) continue;
        float *mk = *mu_k + (size_t)c * d, *mv = *mean_v + (size_t)c * d;
        for (int32_t j = k0; j < k1; j++)
            for (int x = 0; x < d; x++) {
                mk[x] += kp[(size_t)j * d + x];
                mv[x] += vp[(size_t)j * d + x];
            }
        for (int x = 0; x < d; x++) {
            mk[x] /= (float)(k1 - k0);
            mv[x] /= (float)(k1 - k0);
        }
    }
    return SVOO_OK;
}

svoo_status svoo_attend_cpu(const svoo_plan *plan, const float *qp, const float *kp,
                            const float *vp, int d, float scale, int ear, float *op,
                            int nthreads) {
    int64_t nitems = 0;
    for (int r = 0; r < plan->cq; r++) {
        int64_t rows = plan->q_off[r + 1] - plan->q_off[r];
        nitems += (rows + TQ - 1) / TQ;
    }
    work_item *items = svoo_malloc(svoo_mul_size((size_t)(nitems ? nitems : 1), sizeof *items));
    if (!items) return svoo_err(SVOO_ERR_OUT_OF_MEMORY, "attend: %lld work items", (long long)nitems);
    int64_t w = 0;
    for (int r = 0; r < plan->cq; r++) {
        int32_t q0 = plan->q_off[r], rows = plan->q_off[r + 1] - q0;
        if (rows == 0) continue;
        int nt = (rows + TQ - 1) / TQ;
        for (int t = 0; t < nt; t++) {
            /* even split: 300 rows -> 2 x 150 rather than 256 + 44 */
            items[w].r = r;
            items[w].row0 = q0 + (int32_t)((int64_t)rows * t / nt);
            items[w].row1 = q0 + (int32_t)((int64_t)rows * (t + 1) / nt);
            w++;
        }
    }

    exec_args a = {plan, qp, kp, vp, NULL, NULL, d, scale, op};
    svoo_status st = SVOO_OK;
    float *mu_k = NULL, *mean_v = NULL;
    if (ear && (st = ear_means(plan, kp, vp, d, &mu_k, &mean_v))) goto done;
    a.mu_k = mu_k;
    a.mean_v = mean_v;

    int nth = svoo_threads(nthreads);
    if (nth > nitems) nth = nitems > 0 ? (int)nitems : 1;
    const size_t per = (size_t)TQ * KC + (size_t)TQ * d + 2 * TQ + 2 * (size_t)KC * d + KC;
    float *arena = svoo_aligned_alloc(svoo_mul_size(per * sizeof(float), (size_t)nth));
    if (!arena) {
        st = svoo_err(SVOO_ERR_OUT_OF_MEMORY, "attend: scratch for %d threads", nth);
        goto done;
    }
#pragma omp parallel num_threads(nth)
    {
        float *base = arena + per * (size_t)omp_get_thread_num();
        scratch sc;
        sc.s = base;
        sc.o = sc.s + (size_t)TQ * KC;
        sc.m = sc.o + (size_t)TQ * d;
        sc.l = sc.m + TQ;
        sc.kbuf = sc.l + TQ;
        sc.vbuf = sc.kbuf + (size_t)KC * d;
        sc.bias = sc.vbuf + (size_t)KC * d;
#pragma omp for schedule(dynamic, 1)
        for (int64_t i = 0; i < nitems; i++) run_item(&a, &sc, &items[i], ear);
    }
    svoo_free(arena);
done:
    svoo_free(mu_k);
    svoo_free(mean_v);
    svoo_free(items);
    return st;
}

void svoo_attend_ref_f64(const double *q, const double *k, const double *v, int64_t n_q,
                         int64_t n_k, int d, double scale, double *o) {
    double *s = malloc((size_t)n_k * sizeof(double));
    if (!s) return; /* tests only; the caller checks o */
    for (int64_t i = 0; i < n_q; i++) {
        double mx = -INFINITY;
        for (int64_t j = 0; j < n_k; j++) {
            double acc = 0;
            for (int x = 0; x < d; x++) acc += q[i * d + x] * k[j * d + x];
            s[j] = acc * scale;
            if (s[j] > mx) mx = s[j];
        }
        double sum = 0;
        for (int64_t j = 0; j < n_k; j++) sum += (s[j] = exp(s[j] - mx));
        for (int x = 0; x < d; x++) {
            double acc = 0;
            for (int64_t j = 0; j < n_k; j++) acc += s[j] * v[j * d + x];
            o[i * d + x] = acc / sum;
        }
    }
    free(s);
}

double svoo_plan_recall(const svoo_plan *p, const float *q, const float *k, int d,
                        float scale, const int32_t *rows, int nrows) {
    const int64_t nq = p->n_q, nk = p->n_k;
    int32_t *qcl = svoo_malloc((size_t)nq * 4), *kcl = svoo_malloc((size_t)nk * 4);
    double total = 0;
    int counted = 0;
    if (!qcl || !kcl) goto done;
    for (int r = 0; r < p->cq; r++)
        for (int32_t i = p->q_off[r]; i < p->q_off[r + 1]; i++) qcl[svoo_plan_qrow(p, i)] = r;
    for (int c = 0; c < p->ck; c++)
        for (int32_t j = p->k_off[c]; j < p->k_off[c + 1]; j++) kcl[svoo_plan_krow(p, j)] = c;
#pragma omp parallel reduction(+ : total, counted)
    {
        double *s = svoo_malloc((size_t)nk * sizeof(double));
        uint8_t *sel = svoo_calloc((size_t)p->ck, 1);
        {
#pragma omp for schedule(dynamic, 4)
            for (int t = 0; t < nrows; t++) {
                if (!s || !sel) continue; /* counted stays short: NaN if all fail */
                const int32_t i = rows[t];
                const int r = qcl[i];
                for (int32_t e = p->row_ptr[r]; e < p->row_ptr[r + 1]; e++) sel[p->col[e]] = 1;
                double mx = -INFINITY;
                for (int64_t j = 0; j < nk; j++) {
                    double acc = 0;
                    for (int x = 0; x < d; x++) acc += (double)q[(size_t)i * d + x] * k[(size_t)j * d + x];
                    s[j] = acc * scale;
                    if (s[j] > mx) mx = s[j];
                }
                double all = 0, kept = 0;
                for (int64_t j = 0; j < nk; j++) {
                    double e = exp(s[j] - mx);
                    all += e;
                    if (sel[kcl[j]]) kept += e;
                }
                total += kept / all;
                counted++;
                for (int32_t e = p->row_ptr[r]; e < p->row_ptr[r + 1]; e++) sel[p->col[e]] = 0;
            }
        }
        svoo_free(s);
        svoo_free(sel);
    }
done:
    svoo_free(qcl);
    svoo_free(kcl);
    return counted ? total / counted : NAN;
}

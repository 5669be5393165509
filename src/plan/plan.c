/* plan.c : the plan data structure shared by every method and executor. */
#include "plan.h"

#include <stdlib.h>

svoo_status svoo_plan_reserve(svoo_plan *p, int64_t n, int cq, int ck) {
    int64_t nnz = (int64_t)cq * ck;
    if (n > p->cap_n) {
        int32_t *a = svoo_realloc(p->q_perm, (size_t)n * 4);
        if (!a) return svoo_err(SVOO_ERR_OUT_OF_MEMORY, "plan: %lld permutation entries", (long long)n);
        p->q_perm = a;
        int32_t *b = svoo_realloc(p->k_perm, (size_t)n * 4);
        if (!b) return svoo_err(SVOO_ERR_OUT_OF_MEMORY, "plan: %lld permutation entries", (long long)n);
        p->k_perm = b;
        p->cap_n = n;
    }
    if (cq > p->cap_cq) {
        int32_t *a = svoo_realloc(p->q_off, (size_t)(cq + 1) * 4);
        if (!a) return svoo_err(SVOO_ERR_OUT_OF_MEMORY, "plan: %d query clusters", cq);
        p->q_off = a;
        int32_t *b = svoo_realloc(p->row_ptr, (size_t)(cq + 1) * 4);
        if (!b) return svoo_err(SVOO_ERR_OUT_OF_MEMORY, "plan: %d query clusters", cq);
        p->row_ptr = b;
        p->cap_cq = cq;
    }
    if (ck > p->cap_ck) {
        int32_t *a = svoo_realloc(p->k_off, (size_t)(ck + 1) * 4);
        if (!a) return svoo_err(SVOO_ERR_OUT_OF_MEMORY, "plan: %d key clusters", ck);
        p->k_off = a;
        p->cap_ck = ck;
    }
    if (nnz > p->cap_nnz) {
        int32_t *a = svoo_realloc(p->col, (size_t)nnz * 4);
        if (!a) return svoo_err(SVOO_ERR_OUT_OF_MEMORY, "plan: %lld blocks", (long long)nnz);
        p->col = a;
        p->cap_nnz = nnz;
    }
    return SVOO_OK;
}

void svoo_plan_release(svoo_plan *p) {
    if (!p) return;
    svoo_free(p->q_perm);
    svoo_free(p->k_perm);
    svoo_free(p->q_off);
    svoo_free(p->k_off);
    svoo_free(p->row_ptr);
    svoo_free(p->col);
    memset(p, 0, sizeof *p);
}

svoo_status svoo_plan_dense(svoo_plan *p, int64_t n_q, int64_t n_k) {
    svoo_status s = svoo_plan_reserve(p, 0, 1, 1);
    if (s) return s;
    p->n_q = n_q;
    p->n_k = n_k;
    p->cq = p->ck = 1;
    p->q_off[0] = p->k_off[0] = 0;
    p->q_off[1] = (int32_t)n_q;
    p->k_off[1] = (int32_t)n_k;
    p->row_ptr[0] = 0;
    p->row_ptr[1] = 1;
    p->col[0] = 0;
    p->nnz = 1;
    p->q_identity = p->k_identity = 1;
    return SVOO_OK;
}

static void counting_sort(const int32_t *label, int64_t n, int c, int32_t *perm, int32_t *off) {
    memset(off, 0, (size_t)(c + 1) * 4);
    for (int64_t i = 0; i < n; i++) off[label[i] + 1]++;
    for (int r = 0; r < c; r++) off[r + 1] += off[r];
    /* stable: rows of one cluster keep their original order */
    for (int64_t i = 0; i < n; i++) perm[off[label[i]]++] = (int32_t)i;
    for (int r = c; r > 0; r--) off[r] = off[r - 1];
    off[0] = 0;
}

void svoo_plan_from_labels(svoo_plan *p, const int32_t *q_label, int64_t n_q, int cq,
                           const int32_t *k_label, int64_t n_k, int ck) {
    p->n_q = n_q;
    p->n_k = n_k;
    p->cq = cq;
    p->ck = ck;
    p->q_identity = p->k_identity = 0;
    counting_sort(q_label, n_q, cq, p->q_perm, p->q_off);
    counting_sort(k_label, n_k, ck, p->k_perm, p->k_off);
}

double svoo_plan_density(const svoo_plan *p) {
    double sum = 0;
    for (int r = 0; r < p->cq; r++) {
        int64_t keys = 0;
        for (int32_t e = p->row_ptr[r]; e < p->row_ptr[r + 1]; e++)
            keys += p->k_off[p->col[e] + 1] - p->k_off[p->col[e]];
        sum += (double)(p->q_off[r + 1] - p->q_off[r]) * (double)keys;
    }
    return sum / ((double)p->n_q * (double)p->n_k);
}

static svoo_status check_perm(const int32_t *perm, int64_t n, const char *name) {
    if (!perm) return SVOO_OK; /* identity */
    uint8_t *seen = svoo_calloc((size_t)n, 1);
    if (!seen) return svoo_err(SVOO_ERR_OUT_OF_MEMORY, "plan check: %lld bytes", (long long)n);
    svoo_status s = SVOO_OK;
    for (int64_t i = 0; i < n && !s; i++) {
        if (perm[i] < 0 || perm[i] >= n || seen[perm[i]])
            s = svoo_err(SVOO_ERR_INVALID_ARGUMENT, "plan: %s[%lld] = %d is not a permutation",
                         name, (long long)i, perm[i]);
        else
            seen[perm[i]] = 1;
    }
    svoo_free(seen);
    return s;
}

static svoo_status check_off(const int32_t *off, int c, int64_t n, const char *name) {
    if (off[0] != 0 || off[c] != n)
        return svoo_err(SVOO_ERR_INVALID_ARGUMENT, "plan: %s must span 0..%lld", name, (long long)n);
    for (int r = 0; r < c; r++)
        if (off[r + 1] < off[r])
            return svoo_err(SVOO_ERR_INVALID_ARGUMENT, "plan: %s not monotone at %d", name, r);
    return SVOO_OK;
}

svoo_status svoo_plan_validate(const svoo_plan *p) {
    svoo_status s;
    if ((s = check_perm(p->q_identity ? NULL : p->q_perm, p->n_q, "q_perm")) ||
        (s = check_perm(p->k_identity ? NULL : p->k_perm, p->n_k, "k_perm")) ||
        (s = check_off(p->q_off, p->cq, p->n_q, "q_off")) ||
        (s = check_off(p->k_off, p->ck, p->n_k, "k_off")))
        return s;
    if (p->row_ptr[0] != 0 || p->row_ptr[p->cq] != p->nnz)
        return svoo_err(SVOO_ERR_INVALID_ARGUMENT, "plan: row_ptr must span 0..nnz");
    for (int r = 0; r < p->cq; r++)
        for (int32_t e = p->row_ptr[r]; e < p->row_ptr[r + 1]; e++) {
            if (p->col[e] < 0 || p->col[e] >= p->ck ||
                (e > p->row_ptr[r] && p->col[e] <= p->col[e - 1]))
                return svoo_err(SVOO_ERR_INVALID_ARGUMENT,
                                "plan: col of query cluster %d not ascending in [0, %d)", r, p->ck);
        }
    return SVOO_OK;
}

svoo_status svoo_head_state_reserve(svoo_head_state *s, int64_t n, int cq, int ck, int d) {
    if (s->n == n && s->cq == cq && s->ck == ck && s->d == d && s->q_label) return SVOO_OK;
    svoo_head_state_release(s);
    s->q_label = svoo_malloc((size_t)n * 4);
    s->k_label = svoo_malloc((size_t)n * 4);
    s->mu_q = svoo_malloc((size_t)cq * d * 4);
    s->mu_k = svoo_malloc((size_t)ck * d * 4);
    if (!s->q_label || !s->k_label || !s->mu_q || !s->mu_k) {
        svoo_head_state_release(s);
        return svoo_err(SVOO_ERR_OUT_OF_MEMORY, "layer state: %lld tokens, %d+%d clusters",
                        (long long)n, cq, ck);
    }
    s->n = n;
    s->cq = cq;
    s->ck = ck;
    s->d = d;
    s->valid = 0;
    return SVOO_OK;
}

void svoo_head_state_release(svoo_head_state *s) {
    svoo_free(s->q_label);
    svoo_free(s->k_label);
    svoo_free(s->mu_q);
    svoo_free(s->mu_k);
    memset(s, 0, sizeof *s);
}

static int scaled_clusters(int ref, int64_t n) {
    /* The reference counts hold at N = 75,600 (Wan2.1 720p). Keeping them fixed
     * keeps a cluster's size relative to a head's attention footprint (density
     * x N), which is what selection quality depends on; scaling them with N
     * keeps planning's share of the attention cost. sqrt(N) scaling sits
     * between the two and equals the reference at 720p. */
    int64_t c = (int64_t)llround((double)ref * sqrt((double)n / 75600.0));
    if (c < 1) c = 1;
    if (c > n) c = n;
    return (int)c;
}

void svoo_clusters_resolve(const svoo_config *cfg, int64_t n, int *cq, int *ck) {
    int ref_q = cfg->method == SVOO_METHOD_SVG2 ? 300 : 256;
    int ref_k = cfg->method == SVOO_METHOD_SVG2 ? 1000 : 1024;
    *cq = cfg->q_clusters > 0 ? cfg->q_clusters : scaled_clusters(ref_q, n);
    *ck = cfg->k_clusters > 0 ? cfg->k_clusters : scaled_clusters(ref_k, n);
}

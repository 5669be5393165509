/* plan.h : the one contract between planners (src/plan/) and executors
 * (src/attend/, cuda/). See docs/ARCHITECTURE.md. */
#ifndef SVOO_PLAN_H
#define SVOO_PLAN_H

#include "../core/internal.h"

/* Plan of one (batch, head):
 *   q_perm[N]      new position -> original query row (unused when q_identity)
 *   k_perm[N]      new position -> original key row   (unused when k_identity)
 *   q_off[cq + 1]  query cluster r = permuted rows q_off[r] .. q_off[r+1]-1
 *   k_off[ck + 1]  key cluster c   = permuted keys k_off[c] .. k_off[c+1]-1
 *   row_ptr[cq+1], col[nnz]: query cluster r attends key clusters
 *                  col[row_ptr[r] .. row_ptr[r+1]-1] (ascending, distinct) */
typedef struct {
    int64_t n_q, n_k;
    int cq, ck;
    int32_t *q_perm, *k_perm;
    int q_identity, k_identity; /* permutation is the identity */
    int32_t *q_off, *k_off;
    int32_t *row_ptr, *col;
    int64_t nnz;
    /* capacities of the buffers above */
    int64_t cap_n;
    int cap_cq, cap_ck;
    int64_t cap_nnz;
} svoo_plan;

/* original row of permuted position i */
static inline int32_t svoo_plan_qrow(const svoo_plan *p, int64_t i) {
    return p->q_identity ? (int32_t)i : p->q_perm[i];
}
static inline int32_t svoo_plan_krow(const svoo_plan *p, int64_t i) {
    return p->k_identity ? (int32_t)i : p->k_perm[i];
}
/* (re)allocates buffers for n tokens and up to cq x ck clusters (all pairs) */
svoo_status svoo_plan_reserve(svoo_plan *p, int64_t n, int cq, int ck);
void svoo_plan_release(svoo_plan *p);
/* the dense plan: identity permutations, one cluster each side, full CSR */
svoo_status svoo_plan_dense(svoo_plan *p, int64_t n_q, int64_t n_k);
/* stable counting sort of labels into q_perm/k_perm and q_off/k_off;
 * labels in [0, cq) and [0, ck). CSR untouched. */
void svoo_plan_from_labels(svoo_plan *p, const int32_t *q_label, int64_t n_q, int cq,
                           const int32_t *k_label, int64_t n_k, int ck);
/* fraction of the n_q x n_k score matrix the plan computes */
double svoo_plan_density(const svoo_plan *p);
/* internal consistency (perms are permutations, offsets monotone, CSR sorted
 * and in range); SVOO_OK or SVOO_ERR_INVALID_ARGUMENT with a message */
svoo_status svoo_plan_validate(const svoo_plan *p);

/* ---- per-(batch, head) state a layer keeps between calls ---- */
typedef struct {
    int valid;         /* labels/centroids hold a previous plan */
    int cq, ck, d;
    int64_t n;
    int32_t *q_label, *k_label; /* [n] */
    float *mu_q, *mu_k;         /* [cq * d], [ck * d] */
    int svg_temporal;           /* SVG: last classification (1 temporal) */
} svoo_head_state;

svoo_status svoo_head_state_reserve(svoo_head_state *s, int64_t n, int cq, int ck, int d);
void svoo_head_state_release(svoo_head_state *s);

/* ---- planners ---- */
typedef struct {
    const svoo_config *cfg;
    int step, layer, head;
    const float *q, *k, *v; /* (n, d) f32 rows in original order */
    int64_t n;
    int d;
    int cq, ck;             /* resolved cluster counts (auto applied) */
    svoo_head_state *state; /* this (batch, head)'s layer state */
    int replan;             /* 1: recompute clusters; 0: reuse state's labels */
    double floor_ratio;     /* SVOO: profiled density clipped, or fallback */
    int nthreads;
} svoo_plan_input;

/* each fills `plan` (reserving it) and updates in->state */
svoo_status svoo_plan_svoo(const svoo_plan_input *in, svoo_plan *plan);
svoo_status svoo_plan_svg2(const svoo_plan_input *in, svoo_plan *plan);
svoo_status svoo_plan_svg(const svoo_plan_input *in, svoo_plan *plan);

/* ---- building blocks (cocluster.c, kmeans.c, select.c) ---- */
/* SVOO bidirectional co-clustering in profile space (Gram re-association).
 * In: x_q (n x d), x_k (n x d). mu_q (cq x d), mu_k (ck x d) are initialised
 * from sampled tokens (seeded) and updated; labels written. */
svoo_status svoo_cocluster(const float *xq, const float *xk, int64_t n, int d, int cq,
                           int ck, int iters, uint64_t seed, float *mu_q, float *mu_k,
                           int32_t *q_label, int32_t *k_label, int nthreads);
/* Euclidean k-means of x (n x d) into c clusters; warm = 1 starts from mu */
svoo_status svoo_kmeans(const float *x, int64_t n, int d, int c, int iters, int warm,
                        uint64_t seed, float *mu, int32_t *label, int nthreads);
/* centroid (mean) of each cluster from labels; empty clusters keep mu's row */
svoo_status svoo_centroids_update(const float *x, int64_t n, int d, const int32_t *label, int c,
                                  float *mu, int32_t *count);
/* top-p + floor selection into plan->row_ptr/col from centroids and key
 * cluster sizes (plan->k_off). floor_count key clusters always kept. */
svoo_status svoo_select_topp(const float *mu_q, int cq, const float *mu_k, int ck, int d,
                             const int32_t *k_off, double top_p, int floor_count,
                             svoo_plan *plan);

/* resolved cluster counts for sequence length n (auto when cfg value is 0) */
void svoo_clusters_resolve(const svoo_config *cfg, int64_t n, int *cq, int *ck);

#endif

/* cluster.h : internals shared by cocluster.c and kmeans.c */
#ifndef SVOO_CLUSTER_H
#define SVOO_CLUSTER_H

#include "plan.h"

uint64_t svoo_rng_next(uint64_t *state);
/* mu (c x d) = c distinct rows of x chosen with `seed` */
svoo_status svoo_init_from_samples(const float *x, int64_t n, int d, int c, uint64_t seed,
                                   float *mu);
/* label[i] = argmax_j (x_i . w[:, j] + bias[j]); w is d x c row-major; bias may be NULL */
svoo_status svoo_assign_argmax(const float *x, int64_t n, int d, const float *w, int c,
                               const float *bias, int32_t *label, int nthreads);
/* the plan from labels + centroids: permutation, then top-p + floor selection */
svoo_status svoo_plan_finish(const svoo_plan_input *in, svoo_plan *plan, double top_p,
                             double floor_ratio);

#endif

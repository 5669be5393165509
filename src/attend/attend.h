/* attend.h : CPU attention executor (one for every method). */
#ifndef SVOO_ATTEND_H
#define SVOO_ATTEND_H

#include "../plan/plan.h"

/* Exact online-softmax attention over the plan's selected blocks.
 * qp: (n_q, d), kp/vp: (n_k, d) f32, rows already in the plan's permuted
 * order (cluster rows contiguous). op: (n_q, d) output in permuted order.
 * ear = 1 adds the error-aware estimate of dropped key clusters. */
svoo_status svoo_attend_cpu(const svoo_plan *plan, const float *qp, const float *kp,
                            const float *vp, int d, float scale, int ear, float *op,
                            int nthreads);

/* f64 naive reference, for tests: o = softmax(q k^T * scale) v for one head */
void svoo_attend_ref_f64(const double *q, const double *k, const double *v, int64_t n_q,
                         int64_t n_k, int d, double scale, double *o);

/* Dense probability mass of the keys the plan computes, averaged over `rows`
 * sampled query rows (original indices). q, k: (n, d) f32 original order. */
double svoo_plan_recall(const svoo_plan *plan, const float *q, const float *k, int d,
                        float scale, const int32_t *rows, int nrows);

/* x[j] = svoo_expf(x[j] - shift), j < n (the executor's softmax exp; exposed for tests) */
void svoo_exp_shift(float *x, int n, float shift);

#endif

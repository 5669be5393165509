/* density.h : exact per-row density selection (internal; used by density.c,
 * the profiler, tests and the density benchmark). */
#ifndef SVOO_DENSITY_H
#define SVOO_DENSITY_H

#include "../core/internal.h"

/* Bytes of scratch svoo_mass_count needs for a row of n keys. */
size_t svoo_mass_scratch_bytes(int64_t n);

/* Smallest number of keys of one row whose softmax mass reaches tau.
 * row: n logits (already scaled); overwritten with e_j = svoo_expf(l_j - max).
 * Probabilities are e_j / S with S the double sum of the e_j; the count c is the
 * smallest c with (sum of the c largest e_j) >= tau * S (n when rounding keeps
 * the sum below, e.g. tau = 1). Radix/bucket selection on the float bits of
 * e_j with an exact finish: no full sort. scratch: svoo_mass_scratch_bytes(n),
 * 64-byte aligned. Returns -1 when the row holds NaN/Inf. */
int64_t svoo_mass_count(float *row, int64_t n, double tau, void *scratch);

/* Same contract, by sorting the whole row (reference and benchmark peer). */
int64_t svoo_mass_count_sort(float *row, int64_t n, double tau, void *scratch);

/* svoo_density with the per-row selection chosen (use_sort = 1: full sort). */
svoo_status svoo_density_impl(const svoo_tensor *q, const svoo_tensor *k, double tau,
                              int64_t row_step, int num_threads, int use_sort, double *densities);

#endif

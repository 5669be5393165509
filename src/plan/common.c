/* common.c : pieces every clustering planner uses: seeded init, centroid
 * means, and the blocked "argmax over X W + bias" assignment. */
#include "plan.h"
#include "cluster.h"

#include <cblas.h>
#include <omp.h>

uint64_t svoo_rng_next(uint64_t *s) {
    /* splitmix64: small, seedable, identical on every platform */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

svoo_status svoo_init_from_samples(const float *x, int64_t n, int d, int c, uint64_t seed,
                                   float *mu) {
    /* c distinct rows, chosen by a partial Fisher-Yates shuffle */
    int32_t *idx = svoo_malloc((size_t)n * 4);
    if (!idx) return svoo_err(SVOO_ERR_OUT_OF_MEMORY, "cluster init: %lld indices", (long long)n);
    for (int64_t i = 0; i < n; i++) idx[i] = (int32_t)i;
    uint64_t st = seed;
    for (int r = 0; r < c; r++) {
        int64_t j = r + (int64_t)(svoo_rng_next(&st) % (uint64_t)(n - r));
        int32_t t = idx[r];
        idx[r] = idx[j];
        idx[j] = t;
        memcpy(mu + (size_t)r * d, x + (size_t)idx[r] * d, (size_t)d * 4);
    }
    svoo_free(idx);
    return SVOO_OK;
}

svoo_status svoo_centroids_update(const float *x, int64_t n, int d, const int32_t *label, int c,
                                  float *mu, int32_t *count) {
    /* sums in double keep the mean exact enough for large clusters */
    double *sum = svoo_calloc((size_t)c * d, sizeof(double));
    int32_t *cnt = svoo_calloc((size_t)c, 4);
    if (!sum || !cnt) {
        svoo_free(sum);
        svoo_free(cnt);
        return svoo_err(SVOO_ERR_OUT_OF_MEMORY, "centroids: %d x %d", c, d);
    }
    for (int64_t i = 0; i < n; i++) {
        double *s = sum + (size_t)label[i] * d;
        const float *xi = x + (size_t)i * d;
        for (int j = 0; j < d; j++) s[j] += xi[j];
        cnt[label[i]]++;
    }
    for (int r = 0; r < c; r++) {
        if (cnt[r] == 0) continue; /* empty cluster keeps its centroid */
        for (int j = 0; j < d; j++) mu[(size_t)r * d + j] = (float)(sum[(size_t)r * d + j] / cnt[r]);
    }
    if (count) memcpy(count, cnt, (size_t)c * 4);
    svoo_free(sum);
    svoo_free(cnt);
    return SVOO_OK;
}

enum { ROWS = 512 };

svoo_status svoo_assign_argmax(const float *x, int64_t n, int d, const float *w, int c,
                               const float *bias, int32_t *label, int nthreads) {
    int nth = svoo_threads(nthreads);
    float *buf = svoo_aligned_alloc(svoo_mul_size((size_t)ROWS * c * sizeof(float), (size_t)nth));
    if (!buf) return svoo_err(SVOO_ERR_OUT_OF_MEMORY, "cluster assignment: %d x %d scores", ROWS, c);
#pragma omp parallel num_threads(nth)
    {
        float *s = buf + (size_t)ROWS * c * omp_get_thread_num();
#pragma omp for schedule(dynamic, 1)
        for (int64_t i0 = 0; i0 < n; i0 += ROWS) {
            int rows = (int)(n - i0 < ROWS ? n - i0 : ROWS);
            /* s = x[i0 : i0+rows] (rows x d) * w (d x c) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, c, d, 1.0f,
                        x + (size_t)i0 * d, d, w, c, 0.0f, s, c);
            for (int i = 0; i < rows; i++) {
                const float *si = s + (size_t)i * c;
                int best = 0;
                float bv = si[0] + (bias ? bias[0] : 0.0f);
                for (int j = 1; j < c; j++) {
                    float v = si[j] + (bias ? bias[j] : 0.0f);
                    if (v > bv) {
                        bv = v;
                        best = j;
                    }
                }
                label[i0 + i] = best;
            }
        }
    }
    svoo_free(buf);
    return SVOO_OK;
}

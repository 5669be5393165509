/* density.c : exact density of attention heads (ALGORITHMS.md, "Density"):
 * for each sampled query row, the smallest number of keys whose softmax mass
 * reaches tau, divided by N, averaged over rows.
 *
 * Per row the logits come from one OpenBLAS sgemm per block of rows; the
 * selection does not sort the row. e_j = exp(l_j - max) are positive floats in
 * (0, 1], so their IEEE bit patterns order them exactly like their values: a
 * 512-bucket histogram on the high bits (4 mantissa bits per bucket, everything
 * below 2^-32 in the last bucket) gives count and mass per bucket in one pass;
 * the bucket where the cumulative mass crosses tau * S is then refined by radix
 * passes of 256 buckets on the remaining bits of its elements only, down to a
 * sorted handful or a run of equal values. The result is the same count as
 * sorting the row (up to the rounding of double sums). */
#include "density.h"

#include "../attend/exp_shift.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>

#define NB1 512   /* primary buckets */
#define SHIFT1 19 /* 23 - 4 mantissa bits */
#define NB2 256   /* refinement buckets */
#define SMALL 32  /* insertion-sort the rest */
#define ROW_BLOCK 32

static const uint32_t ONE_BITS = 0x3F800000u; /* 1.0f */

static inline uint32_t key_of(float e) {
    uint32_t u;
    memcpy(&u, &e, 4);
    return u >= ONE_BITS ? 0u : ONE_BITS - u; /* larger value -> smaller key */
}

size_t svoo_mass_scratch_bytes(int64_t n) {
    /* two float buffers of n (gather / partition) */
    size_t b = svoo_mul_size((size_t)(n > 0 ? n : 1), 2 * sizeof(float));
    return b ? b + 64 : 0;
}

/* exponentiate in place; returns the max logit (NaN when the row is not finite) */
static float row_exp(float *row, int64_t n) {
    float m = -INFINITY;
    int bad = 0;
#pragma omp simd reduction(max : m) reduction(| : bad)
    for (int64_t j = 0; j < n; j++) {
        float x = row[j];
        bad |= (x - x) != 0.0f; /* NaN or Inf */
        m = x > m ? x : m;
    }
    if (bad) return NAN;
    exp_shift(row, (int)n, m, 0); /* svoo_expf's bits; n: a row of sgemm's output, an int */
    return m;
}

static int cmp_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* exact finish on a small set: sort descending and accumulate */
static int64_t finish_sorted(float *v, int64_t cnt, double cum, double target, int64_t before) {
    for (int64_t i = 1; i < cnt; i++) {
        float x = v[i];
        int64_t j = i;
        for (; j > 0 && v[j - 1] < x; j--)
            v[j] = v[j - 1];
        v[j] = x;
    }
    for (int64_t i = 0; i < cnt; i++) {
        cum += v[i];
        if (cum >= target) return before + i + 1;
    }
    return before + cnt;
}

int64_t svoo_mass_count(float *row, int64_t n, double tau, void *scratch) {
    if (n <= 0) return 0;
    if (isnan(row_exp(row, n))) return -1;

    /* four interleaved histograms: consecutive keys often land in the same
     * bucket, and one copy would serialise on its read-modify-write */
    uint32_t cnt4[4][NB1];
    double mass4[4][NB1];
    memset(cnt4, 0, sizeof cnt4);
    memset(mass4, 0, sizeof mass4);
    const int64_t n4 = n & ~(int64_t)3;
    for (int64_t i = 0; i < n4; i += 4)
        for (int u = 0; u < 4; u++) {
            uint32_t b = key_of(row[i + u]) >> SHIFT1;
            b = b < NB1 - 1 ? b : NB1 - 1;
            cnt4[u][b]++;
            mass4[u][b] += row[i + u];
        }
    for (int64_t i = n4; i < n; i++) {
        uint32_t b = key_of(row[i]) >> SHIFT1;
        b = b < NB1 - 1 ? b : NB1 - 1;
        cnt4[0][b]++;
        mass4[0][b] += row[i];
    }
    uint32_t cnt1[NB1];
    double mass1[NB1];
    for (int b = 0; b < NB1; b++) {
        cnt1[b] = cnt4[0][b] + cnt4[1][b] + cnt4[2][b] + cnt4[3][b];
        mass1[b] = (mass4[0][b] + mass4[1][b]) + (mass4[2][b] + mass4[3][b]);
    }
    double S = 0;
    for (int b = 0; b < NB1; b++)
        S += mass1[b];
    const double target = tau * S;
    double cum = 0;
    int64_t before = 0;
    int bb = -1;
    for (int b = 0; b < NB1; b++) {
        if (!cnt1[b]) continue;
        if (cum + mass1[b] >= target) {
            bb = b;
            break;
        }
        cum += mass1[b];
        before += cnt1[b];
    }
    if (bb < 0) return n; /* rounding kept the sum below tau * S (tau = 1) */

    /* gather the boundary bucket */
    float *a = (float *)scratch, *t = a + n;
    const uint32_t klo = (uint32_t)bb << SHIFT1;
    const uint32_t khi = bb == NB1 - 1 ? UINT32_MAX : ((uint32_t)(bb + 1) << SHIFT1) - 1;
    /* the bucket's key range as a value range: [vlo, vhi] */
    union {
        uint32_t u;
        float f;
    } lo, hi;
    lo.u = khi >= ONE_BITS ? 0u : ONE_BITS - khi;
    hi.u = ONE_BITS - klo;
    const float vlo = lo.f, vhi = klo == 0 ? INFINITY : hi.f;
    int64_t m = 0, g = 0;
#if defined(__AVX512F__)
    const __m512 vl = _mm512_set1_ps(vlo), vh = _mm512_set1_ps(vhi);
    for (; g + 16 <= n; g += 16) {
        __m512 x = _mm512_loadu_ps(row + g);
        __mmask16 k = _mm512_cmp_ps_mask(x, vl, _CMP_GE_OQ) & _mm512_cmp_ps_mask(x, vh, _CMP_LE_OQ);
        _mm512_mask_compressstoreu_ps(a + m, k, x);
        m += __builtin_popcount((unsigned)k);
    }
#endif
    for (; g < n; g++) {
        a[m] = row[g];
        m += row[g] >= vlo && row[g] <= vhi;
    }

    /* radix refinement on the remaining bits */
    uint32_t cnt2[NB2];
    double mass2[NB2];
    for (;;) {
        if (m <= SMALL) return finish_sorted(a, m, cum, target, before);
        uint32_t kmin = UINT32_MAX, kmax = 0;
        for (int64_t j = 0; j < m; j++) {
            uint32_t kj = key_of(a[j]);
            kmin = kj < kmin ? kj : kmin;
            kmax = kj > kmax ? kj : kmax;
        }
        if (kmin == kmax) { /* all equal */
            double v = a[0];
            for (int64_t i = 0; i < m; i++) {
                cum += v;
                if (cum >= target) return before + i + 1;
            }
            return before + m;
        }
        int shift = 0;
        while (((kmax - kmin) >> shift) >= NB2)
            shift++;
        memset(cnt2, 0, sizeof cnt2);
        memset(mass2, 0, sizeof mass2);
        for (int64_t j = 0; j < m; j++) {
            uint32_t b = (key_of(a[j]) - kmin) >> shift;
            cnt2[b]++;
            mass2[b] += a[j];
        }
        int b2 = -1, last = -1;
        for (int b = 0; b < NB2; b++) {
            if (!cnt2[b]) continue;
            last = b;
            if (cum + mass2[b] >= target) {
                b2 = b;
                break;
            }
            cum += mass2[b];
            before += cnt2[b];
        }
        if (b2 < 0) { /* rounding: the parent's mass was a hair larger */
            b2 = last;
            cum -= mass2[b2];
            before -= cnt2[b2];
        }
        int64_t m2 = 0;
        for (int64_t j = 0; j < m; j++) {
            uint32_t b = (key_of(a[j]) - kmin) >> shift;
            t[m2] = a[j];
            m2 += b == (uint32_t)b2;
        }
        float *sw = a;
        a = t;
        t = sw;
        m = m2;
    }
}

int64_t svoo_mass_count_sort(float *row, int64_t n, double tau, void *scratch) {
    (void)scratch;
    if (n <= 0) return 0;
    if (isnan(row_exp(row, n))) return -1;
    double S = 0;
    for (int64_t j = 0; j < n; j++)
        S += row[j];
    qsort(row, (size_t)n, sizeof *row, cmp_desc);
    const double target = tau * S;
    double cum = 0;
    for (int64_t j = 0; j < n; j++) {
        cum += row[j];
        if (cum >= target) return j + 1;
    }
    return n;
}

svoo_status svoo_density_impl(const svoo_tensor *q, const svoo_tensor *k, double tau,
                              int64_t row_step, int num_threads, int use_sort, double *densities) {
    svoo_status s;
    if ((s = svoo_tensor_check(q, "q")) || (s = svoo_tensor_check(k, "k"))) return s;
    if (!densities) return svoo_err(SVOO_ERR_NULL_POINTER, "densities is NULL");
    if (q->device != SVOO_DEVICE_CPU || k->device != SVOO_DEVICE_CPU)
        return svoo_err(SVOO_ERR_WRONG_DEVICE, "svoo_density: q and k must be CPU views");
    static const char *const dn[4] = {"B", "H", "N", "D"};
    for (int d = 0; d < 4; d++)
        if (d != 2 && q->shape[d] != k->shape[d])
            return svoo_err(SVOO_ERR_SHAPE_MISMATCH,
                            "svoo_density: k %s = %lld differs from q's %lld", dn[d],
                            (long long)k->shape[d], (long long)q->shape[d]);
    if (!(tau > 0 && tau <= 1))
        return svoo_err(SVOO_ERR_INVALID_ARGUMENT, "svoo_density: tau = %g must be in (0, 1]", tau);
    if (row_step < 1)
        return svoo_err(SVOO_ERR_INVALID_ARGUMENT, "svoo_density: row_step = %lld must be >= 1",
                        (long long)row_step);
    if (num_threads < 0 || num_threads > SVOO_MAX_THREADS)
        return svoo_err(SVOO_ERR_INVALID_ARGUMENT,
                        "svoo_density: num_threads = %d must be in [0, %d]", num_threads,
                        SVOO_MAX_THREADS);

    const int64_t B = q->shape[0], H = q->shape[1], NQ = q->shape[2], NK = k->shape[2],
                  D = q->shape[3];
    const int64_t R = (NQ + row_step - 1) / row_step;
    const int64_t nblk = (R + ROW_BLOCK - 1) / ROW_BLOCK;
    const int nth = svoo_threads(num_threads);
    const float scale = (float)(1.0 / sqrt((double)D));

    const size_t kbytes = svoo_mul_size(svoo_mul_size((size_t)NK, (size_t)D), 4);
    const size_t lbytes = svoo_mul_size(svoo_mul_size((size_t)NK, ROW_BLOCK), 4);
    const size_t sbytes = svoo_mass_scratch_bytes(NK);
    const size_t qbytes = (size_t)ROW_BLOCK * (size_t)D * 4;
    const size_t per = lbytes + sbytes + qbytes;
    if (!kbytes || !lbytes || !sbytes || per < lbytes)
        return svoo_err(SVOO_ERR_OUT_OF_MEMORY, "svoo_density: N = %lld too large", (long long)NK);
    int32_t *rows = svoo_malloc((size_t)R * sizeof(int32_t));
    float *kf = svoo_aligned_alloc(kbytes);
    char *work = svoo_aligned_alloc(svoo_mul_size(per, (size_t)nth));
    if (!rows || !kf || !work || !svoo_mul_size(per, (size_t)nth)) {
        svoo_free(rows);
        svoo_free(kf);
        svoo_free(work);
        return svoo_err(SVOO_ERR_OUT_OF_MEMORY,
                        "svoo_density: buffers for N = %lld, D = %lld, %d threads", (long long)NK,
                        (long long)D, nth);
    }
    for (int64_t i = 0; i < R; i++)
        rows[i] = (int32_t)(i * row_step);

    /* OpenBLAS 0.3.21 (OpenMP build) threads its sgemm whenever the caller is
     * not in an *active* parallel region, which a team of one is not: with one
     * thread requested, pin it to one thread for the duration of the call
     * (process-wide setting; restored, with the caller's OpenMP ICV, below). */
    const int blas_saved = openblas_get_num_threads(), omp_saved = omp_get_max_threads();
    if (nth == 1 && blas_saved != 1) openblas_set_num_threads(1);
    int bad = 0;
    for (int64_t bh = 0; bh < B * H && !bad; bh++) {
        const int64_t b = bh / H, h = bh % H;
        int64_t total = 0;
#pragma omp parallel num_threads(nth) reduction(+ : total) reduction(| : bad)
        {
            omp_set_num_threads(1); /* sgemm below: one thread per caller thread */
            char *mine = work + (size_t)omp_get_thread_num() * per;
            float *lg = (float *)mine;
            void *scr = mine + lbytes;
            float *qf = (float *)(mine + lbytes + sbytes);
            const int64_t kchunk = 256;
#pragma omp for schedule(static)
            for (int64_t c = 0; c < (NK + kchunk - 1) / kchunk; c++) {
                int64_t first = c * kchunk, cnt = NK - first < kchunk ? NK - first : kchunk;
                svoo_rows_load(k, b, h, NULL, first, cnt, kf + first * D);
            }
#pragma omp for schedule(dynamic, 1)
            for (int64_t blk = 0; blk < nblk; blk++) {
                const int64_t r0 = blk * ROW_BLOCK;
                const int64_t nr = R - r0 < ROW_BLOCK ? R - r0 : ROW_BLOCK;
                svoo_rows_load(q, b, h, rows + r0, 0, nr, qf);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nr, (int)NK, (int)D,
                            scale, qf, (int)D, kf, (int)D, 0.0f, lg, (int)NK);
                for (int64_t r = 0; r < nr; r++) {
                    float *row = lg + r * NK;
                    int64_t c = use_sort ? svoo_mass_count_sort(row, NK, tau, scr)
                                         : svoo_mass_count(row, NK, tau, scr);
                    if (c < 0)
                        bad = 1;
                    else
                        total += c;
                }
            }
        }
        densities[bh] = (double)total / ((double)R * (double)NK);
    }
    if (nth == 1 && blas_saved != 1) {
        openblas_set_num_threads(blas_saved);
        omp_set_num_threads(omp_saved);
    }
    svoo_free(rows);
    svoo_free(kf);
    svoo_free(work);
    if (bad)
        return svoo_err(SVOO_ERR_NONFINITE_INPUT,
                        "svoo_density: NaN/Inf in the attention logits (q or k holds non-finite "
                        "or overflowing values)");
    return SVOO_OK;
}

svoo_status svoo_density(const svoo_tensor *q, const svoo_tensor *k, double tau, int64_t row_step,
                         int num_threads, double *densities) {
    return svoo_density_impl(q, k, tau, row_step, num_threads, 0, densities);
}

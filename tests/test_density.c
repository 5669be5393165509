/* test_density.c : exact density (histogram/radix selection) against a
 * sort-based reference, for every dtype and both layouts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "profile/density.h"

static uint64_t rng_state = 88172645463325252ull;
static double urand(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}
static double nrand(void) {
    double u = urand() + 1e-300, v = urand();
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

static int cmp_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* reference: exponentiate like the library, sort the whole row, accumulate.
 * Also returns the cumulative sums (for the tie check). */
static int64_t ref_count(const float *logits, int64_t n, double tau, double *cum_out,
                         double *target_out) {
    float *e = malloc((size_t)n * 4);
    float m = -INFINITY;
    for (int64_t j = 0; j < n; j++)
        m = logits[j] > m ? logits[j] : m;
    double S = 0;
    for (int64_t j = 0; j < n; j++) {
        e[j] = svoo_expf(logits[j] - m);
        S += e[j];
    }
    qsort(e, (size_t)n, 4, cmp_desc);
    double target = tau * S, cum = 0;
    int64_t c = n;
    for (int64_t j = 0; j < n; j++) {
        cum += e[j];
        if (cum_out) cum_out[j] = cum;
        if (cum >= target && c == n) c = j + 1;
    }
    if (target_out) *target_out = target;
    free(e);
    return c;
}

/* library count == reference count, or both sit on a rounding tie */
static void check_row(const float *logits, int64_t n, double tau) {
    float *row = malloc((size_t)n * 4), *row2 = malloc((size_t)n * 4);
    void *scr = NULL;
    assert_int_equal(posix_memalign(&scr, 64, svoo_mass_scratch_bytes(n)), 0);
    memcpy(row, logits, (size_t)n * 4);
    memcpy(row2, logits, (size_t)n * 4);
    double *cum = malloc((size_t)n * sizeof(double)), target;
    int64_t ref = ref_count(logits, n, tau, cum, &target);
    int64_t got = svoo_mass_count(row, n, tau, scr);
    int64_t got_sort = svoo_mass_count_sort(row2, n, tau, scr);
    if (got != ref) {
        int64_t lo = got < ref ? got : ref;
        double rel = fabs(cum[lo - 1] - target) / target;
        if (rel > 1e-12)
            fail_msg("n = %lld tau = %g: count %lld, reference %lld (gap %g)", (long long)n, tau,
                     (long long)got, (long long)ref, rel);
    }
    assert_true(llabs(got_sort - ref) <= 1);
    assert_true(got >= 1 && got <= n);
    free(row);
    free(row2);
    free(cum);
    free(scr);
}

static void test_rows_random(void **state) {
    (void)state;
    const int64_t sizes[] = {1, 2, 3, 31, 33, 100, 1000, 4099, 20000};
    const double scales[] = {0.01, 0.3, 1, 3, 10, 40};
    const double taus[] = {0.5, 0.9, 0.95, 0.99, 0.999, 1.0};
    for (size_t a = 0; a < sizeof sizes / sizeof *sizes; a++)
        for (size_t b = 0; b < sizeof scales / sizeof *scales; b++)
            for (size_t c = 0; c < sizeof taus / sizeof *taus; c++) {
                int64_t n = sizes[a];
                float *l = malloc((size_t)n * 4);
                for (int64_t j = 0; j < n; j++)
                    l[j] = (float)(scales[b] * nrand());
                check_row(l, n, taus[c]);
                free(l);
            }
}

static void test_rows_peaked_and_ties(void **state) {
    (void)state;
    const int64_t n = 5000;
    float *l = malloc((size_t)n * 4);
    const double taus[] = {0.5, 0.95, 0.99, 1.0};
    for (size_t c = 0; c < sizeof taus / sizeof *taus; c++) {
        /* one dominant key */
        for (int64_t j = 0; j < n; j++)
            l[j] = (float)nrand();
        l[1234] = 30.0f;
        check_row(l, n, taus[c]);
        /* a handful of strong keys among a flat background */
        for (int64_t j = 0; j < n; j++)
            l[j] = (float)(0.1 * nrand());
        for (int i = 0; i < 40; i++)
            l[(i * 97) % n] = 8.0f + (float)i * 0.01f;
        check_row(l, n, taus[c]);
        /* all equal: every key counts the same */
        for (int64_t j = 0; j < n; j++)
            l[j] = 0.25f;
        check_row(l, n, taus[c]);
        /* heavy ties: a few distinct values */
        for (int64_t j = 0; j < n; j++)
            l[j] = (float)(j % 7) * 0.5f;
        check_row(l, n, taus[c]);
        /* long tail below the first histogram's range (catch-all bucket) */
        for (int64_t j = 0; j < n; j++)
            l[j] = -(float)(30 + 40 * urand());
        l[0] = 0.0f;
        check_row(l, n, taus[c]);
    }
    /* all equal: exact count */
    for (int64_t j = 0; j < n; j++)
        l[j] = 1.0f;
    void *scr = NULL;
    assert_int_equal(posix_memalign(&scr, 64, svoo_mass_scratch_bytes(n)), 0);
    assert_int_equal(svoo_mass_count(l, n, 0.95, scr), 4750);
    for (int64_t j = 0; j < n; j++)
        l[j] = 0.0f;
    l[7] = 100.0f;
    assert_int_equal(svoo_mass_count(l, n, 0.95, scr), 1);
    for (int64_t j = 0; j < n; j++)
        l[j] = 0.0f;
    l[7] = NAN;
    assert_int_equal(svoo_mass_count(l, n, 0.95, scr), -1);
    free(scr);
    free(l);
}

/* ---- end to end: svoo_density vs a double-precision naive reference ---- */

static void fill_tensor(void *buf, svoo_dtype dt, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (dt == SVOO_F32)
            ((float *)buf)[i] = src[i];
        else if (dt == SVOO_F16)
            ((uint16_t *)buf)[i] = svoo_f32_to_f16(src[i]);
        else
            ((uint16_t *)buf)[i] = svoo_f32_to_bf16(src[i]);
    }
}

static float elem(const svoo_tensor *t, int64_t b, int64_t h, int64_t n, int64_t d) {
    return svoo_load_elem(t->data, t->dtype, svoo_row_offset(t, b, h, n) + d);
}

/* total count over the sampled rows of head (b, h), by a full sort */
static int64_t ref_head(const svoo_tensor *q, const svoo_tensor *k, int64_t b, int64_t h,
                        double tau, int64_t step, int64_t *rows) {
    const int64_t NQ = q->shape[2], NK = k->shape[2], D = q->shape[3];
    float *l = malloc((size_t)NK * 4);
    int64_t total = 0;
    *rows = 0;
    for (int64_t i = 0; i < NQ; i += step) {
        for (int64_t j = 0; j < NK; j++) {
            double s = 0;
            for (int64_t d = 0; d < D; d++)
                s += (double)elem(q, b, h, i, d) * elem(k, b, h, j, d);
            l[j] = (float)(s / sqrt((double)D));
        }
        total += ref_count(l, NK, tau, NULL, NULL);
        (*rows)++;
    }
    free(l);
    return total;
}

static void run_case(svoo_dtype dt, int bnhd, int64_t B, int64_t H, int64_t N, int64_t D,
                     int64_t step, double peak) {
    size_t n = (size_t)(B * H * N * D);
    float *qs = malloc(n * 4), *ks = malloc(n * 4);
    /* per-head sharpness from flat to peaked; keys near some queries */
    for (size_t i = 0; i < n; i++) {
        qs[i] = (float)nrand();
        ks[i] = (float)nrand();
    }
    if (peak > 0) /* plant: key j = peak * query j on half the tokens */
        for (size_t i = 0; i < n; i += 2 * (size_t)D)
            for (int64_t d = 0; d < D; d++)
                ks[i + (size_t)d] = (float)(peak * qs[i + (size_t)d]);
    size_t es = svoo_dtype_size(dt);
    void *qb = malloc(n * es), *kb = malloc(n * es);
    fill_tensor(qb, dt, qs, n);
    fill_tensor(kb, dt, ks, n);
    svoo_tensor q =
        bnhd ? svoo_tensor_bnhd(qb, dt, B, N, H, D) : svoo_tensor_bhnd(qb, dt, B, H, N, D);
    svoo_tensor k =
        bnhd ? svoo_tensor_bnhd(kb, dt, B, N, H, D) : svoo_tensor_bhnd(kb, dt, B, H, N, D);
    double *dens = malloc((size_t)(B * H) * sizeof(double));
    double *dens1 = malloc((size_t)(B * H) * sizeof(double));
    assert_int_equal(svoo_density(&q, &k, 0.95, step, 2, dens), SVOO_OK);
    assert_int_equal(svoo_density(&q, &k, 0.95, step, 1, dens1), SVOO_OK);
    for (int64_t bh = 0; bh < B * H; bh++) {
        int64_t rows;
        int64_t tot = ref_head(&q, &k, bh / H, bh % H, 0.95, step, &rows);
        double got = dens[bh] * (double)rows * (double)N;
        /* logits differ by float rounding (sgemm vs double): allow 2 keys */
        if (fabs(got - (double)tot) > 2.0)
            fail_msg("%s %s head %lld: density %g, reference %g", svoo_dtype_name(dt),
                     bnhd ? "bnhd" : "bhnd", (long long)bh, dens[bh],
                     (double)tot / ((double)rows * (double)N));
        assert_true(dens[bh] == dens1[bh]); /* thread count does not change the result */
    }
    free(qs);
    free(ks);
    free(qb);
    free(kb);
    free(dens);
    free(dens1);
}

static void test_density_dtypes_layouts(void **state) {
    (void)state;
    const svoo_dtype dts[] = {SVOO_F32, SVOO_F16, SVOO_BF16};
    for (int i = 0; i < 3; i++)
        for (int bnhd = 0; bnhd < 2; bnhd++) {
            run_case(dts[i], bnhd, 2, 3, 300, 64, 1, 0);
            run_case(dts[i], bnhd, 1, 2, 257, 128, 7, 1.0);
        }
}

static void test_density_peaked(void **state) {
    (void)state;
    /* each query has a matching key far above the rest: density -> 1/N */
    const int64_t N = 200, D = 64;
    float *q = malloc((size_t)(N * D) * 4), *k = malloc((size_t)(N * D) * 4);
    for (int64_t i = 0; i < N * D; i++)
        q[i] = (float)nrand();
    for (int64_t i = 0; i < N * D; i++)
        k[i] = 4.0f * q[i];
    svoo_tensor tq = svoo_tensor_bhnd(q, SVOO_F32, 1, 1, N, D);
    svoo_tensor tk = svoo_tensor_bhnd(k, SVOO_F32, 1, 1, N, D);
    double d;
    assert_int_equal(svoo_density(&tq, &tk, 0.95, 1, 0, &d), SVOO_OK);
    assert_true(fabs(d - 1.0 / N) < 1e-12);
    /* flat: all keys identical -> ceil(0.95 N) / N */
    for (int64_t i = 0; i < N * D; i++)
        k[i] = 0.5f;
    assert_int_equal(svoo_density(&tq, &tk, 0.95, 3, 0, &d), SVOO_OK);
    assert_true(fabs(d - 190.0 / N) < 1e-12);
    free(q);
    free(k);
}

static void test_density_bad_args(void **state) {
    (void)state;
    float q[2 * 4 * 8] = {0}, k[2 * 4 * 8] = {0};
    svoo_tensor tq = svoo_tensor_bhnd(q, SVOO_F32, 1, 2, 4, 8);
    svoo_tensor tk = svoo_tensor_bhnd(k, SVOO_F32, 1, 2, 4, 8);
    double d[2];
    assert_int_equal(svoo_density(NULL, &tk, 0.95, 1, 0, d), SVOO_ERR_NULL_POINTER);
    assert_int_equal(svoo_density(&tq, &tk, 0.95, 1, 0, NULL), SVOO_ERR_NULL_POINTER);
    assert_int_equal(svoo_density(&tq, &tk, 0.0, 1, 0, d), SVOO_ERR_INVALID_ARGUMENT);
    assert_int_equal(svoo_density(&tq, &tk, 1.5, 1, 0, d), SVOO_ERR_INVALID_ARGUMENT);
    assert_int_equal(svoo_density(&tq, &tk, NAN, 1, 0, d), SVOO_ERR_INVALID_ARGUMENT);
    assert_int_equal(svoo_density(&tq, &tk, 0.95, 0, 0, d), SVOO_ERR_INVALID_ARGUMENT);
    assert_int_equal(svoo_density(&tq, &tk, 0.95, 1, -1, d), SVOO_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(svoo_last_error(NULL), "num_threads"));
    assert_int_equal(svoo_density(&tq, &tk, 0.95, 1, SVOO_MAX_THREADS + 1, d),
                     SVOO_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(svoo_last_error(NULL), "num_threads"));
    svoo_tensor t3 = svoo_tensor_bhnd(k, SVOO_F32, 1, 1, 8, 8);
    assert_int_equal(svoo_density(&tq, &t3, 0.95, 1, 0, d), SVOO_ERR_SHAPE_MISMATCH);
    svoo_tensor tc = tq;
    tc.device = SVOO_DEVICE_CUDA;
    assert_int_equal(svoo_density(&tc, &tk, 0.95, 1, 0, d), SVOO_ERR_WRONG_DEVICE);
    k[5] = NAN;
    assert_int_equal(svoo_density(&tq, &tk, 0.95, 1, 0, d), SVOO_ERR_NONFINITE_INPUT);
    k[5] = 0;
    /* k may have another N than q (keys are what is counted) */
    float k2[2 * 6 * 8] = {0};
    svoo_tensor tk2 = svoo_tensor_bhnd(k2, SVOO_F32, 1, 2, 6, 8);
    assert_int_equal(svoo_density(&tq, &tk2, 0.95, 1, 0, d), SVOO_OK);
    assert_true(fabs(d[0] - 6.0 / 6.0) < 1e-12);
}

static void test_density_alloc_failures(void **state) {
    (void)state;
    float q[64 * 8], k[64 * 8];
    for (int i = 0; i < 64 * 8; i++)
        q[i] = k[i] = (float)nrand();
    svoo_tensor tq = svoo_tensor_bhnd(q, SVOO_F32, 1, 1, 64, 8);
    svoo_tensor tk = svoo_tensor_bhnd(k, SVOO_F32, 1, 1, 64, 8);
    double d;
    for (int64_t i = 1; i <= 3; i++) {
        svoo_alloc_fail_at(i);
        assert_int_equal(svoo_density(&tq, &tk, 0.95, 1, 1, &d), SVOO_ERR_OUT_OF_MEMORY);
    }
    svoo_alloc_fail_at(0);
    assert_int_equal(svoo_density(&tq, &tk, 0.95, 1, 1, &d), SVOO_OK);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_random),
        cmocka_unit_test(test_rows_peaked_and_ties),
        cmocka_unit_test(test_density_dtypes_layouts),
        cmocka_unit_test(test_density_peaked),
        cmocka_unit_test(test_density_bad_args),
        cmocka_unit_test(test_density_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

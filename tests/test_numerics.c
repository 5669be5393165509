/* test_numerics.c : documented numerical behaviour (docs/RELIABILITY.md):
 * NaN/Inf in q/k/v with and without check_finite, all-equal logits, huge
 * logits (1e4 after scaling), zero-length text, N = 1, svoo_compare on a NaN. */
#include "testutil.h"

#include "attend/exp_shift.h"

#include <stdio.h>

#define D 64

typedef struct {
    svoo_status status;
    double *out; /* H*N*D, logical [H, N, D] (B = 1) */
    char msg[SVOO_ERRMSG_MAX];
} run_result;

static void log_quiet(void *u, const char *m) {
    (void)u;
    (void)m;
}

/* one svoo_attention call at step 0, layer 0 (warm-up off) */
static run_result run(svoo_method m, int check_finite, const double *q, const double *k,
                      const double *v, int64_t H, int64_t N, void (*tweak)(svoo_config *)) {
    svoo_config c;
    tu_model_config(&c, m, (int)H, D);
    c.check_finite = check_finite;
    c.log_fn = log_quiet;
    if (m == SVOO_METHOD_SVOO || m == SVOO_METHOD_SVG2) {
        c.q_clusters = N >= 8 ? 4 : 1;
        c.k_clusters = N >= 8 ? 8 : 1;
    }
    if (tweak) tweak(&c);
    svoo_ctx *ctx = NULL;
    run_result r;
    memset(&r, 0, sizeof r);
    assert_int_equal(svoo_ctx_create(&c, &ctx), SVOO_OK);
    size_t n = (size_t)(H * N * D);
    double *qc = malloc(n * 8), *kc = malloc(n * 8), *vc = malloc(n * 8), *oc = calloc(n, 8);
    memcpy(qc, q, n * 8);
    memcpy(kc, k, n * 8);
    memcpy(vc, v, n * 8);
    svoo_tensor tq = tu_tensor(qc, SVOO_F32, 0, 1, H, N, D), tk = tu_tensor(kc, SVOO_F32, 0, 1, H, N, D),
                tv = tu_tensor(vc, SVOO_F32, 0, 1, H, N, D), to = tu_tensor(oc, SVOO_F32, 0, 1, H, N, D);
    r.status = svoo_attention(ctx, 0, 0, &tq, &tk, &tv, &to, NULL);
    snprintf(r.msg, sizeof r.msg, "%s", svoo_last_error(ctx));
    r.out = tu_read(&to);
    free(tq.data), free(tk.data), free(tv.data), free(to.data);
    free(qc), free(kc), free(vc), free(oc);
    svoo_ctx_free(ctx);
    return r;
}

static int row_nonfinite(const double *o, int64_t h, int64_t N, int64_t i) {
    for (int d = 0; d < D; d++)
        if (!isfinite(o[(h * N + i) * D + d])) return 1;
    return 0;
}

static const svoo_method k_methods[] = {SVOO_METHOD_DENSE, SVOO_METHOD_SVOO, SVOO_METHOD_SVG2};

/* check_finite = 1: NaN/Inf anywhere in q, k or v is refused, the message
 * names the tensor */
static void test_check_finite_refuses(void **state) {
    (void)state;
    const int64_t H = 2, N = 64;
    size_t n = (size_t)(H * N * D);
    double *q = tu_random(1, n, 1), *k = tu_random(2, n, 1), *v = tu_random(3, n, 1);
    struct {
        double *x;
        const char *name;
        double bad;
    } cases[] = {{q, "q", NAN}, {k, "k", INFINITY}, {v, "v", -INFINITY}, {q, "q", INFINITY}};
    for (int m = 0; m < 3; m++)
        for (int c = 0; c < 4; c++) {
            size_t at = (size_t)(H * N * D) - 1 - (size_t)c * 77;
            double keep = cases[c].x[at];
            cases[c].x[at] = cases[c].bad;
            run_result r = run(k_methods[m], 1, q, k, v, H, N, NULL);
            assert_int_equal(r.status, SVOO_ERR_NONFINITE_INPUT);
            assert_non_null(strstr(r.msg, cases[c].name));
            free(r.out);
            cases[c].x[at] = keep;
        }
    /* finite inputs pass the scan */
    run_result r = run(SVOO_METHOD_DENSE, 1, q, k, v, H, N, NULL);
    assert_int_equal(r.status, SVOO_OK);
    free(r.out);
    free(q), free(k), free(v);
}

/* check_finite = 0, dense: a NaN in query row i makes exactly output row i
 * NaN; a NaN in key row j or value row j makes every row of that head NaN
 * (every query scores key j and weighs value j); other heads stay finite */
static void test_nan_propagation_dense(void **state) {
    (void)state;
    const int64_t H = 2, N = 50, i = 17;
    size_t n = (size_t)(H * N * D);
    double *q = tu_random(4, n, 1), *k = tu_random(5, n, 1), *v = tu_random(6, n, 1);
    const int64_t h = 1;
    /* query row */
    q[(h * N + i) * D + 3] = NAN;
    run_result r = run(SVOO_METHOD_DENSE, 0, q, k, v, H, N, NULL);
    assert_int_equal(r.status, SVOO_OK);
    for (int64_t hh = 0; hh < H; hh++)
        for (int64_t t = 0; t < N; t++) assert_int_equal(row_nonfinite(r.out, hh, N, t), hh == h && t == i);
    free(r.out);
    q[(h * N + i) * D + 3] = 0.5;
    /* key row, then value row */
    for (int which = 0; which < 2; which++) {
        double *x = which ? v : k;
        x[(h * N + i) * D + 5] = NAN;
        r = run(SVOO_METHOD_DENSE, 0, q, k, v, H, N, NULL);
        assert_int_equal(r.status, SVOO_OK);
        for (int64_t hh = 0; hh < H; hh++)
            for (int64_t t = 0; t < N; t++) assert_int_equal(row_nonfinite(r.out, hh, N, t), hh == h);
        free(r.out);
        x[(h * N + i) * D + 5] = 0.25;
    }
    free(q), free(k), free(v);
}

/* check_finite = 0, sparse (SVOO, SVG2): as dense. A NaN query row makes
 * exactly its output row NaN; a NaN key row makes every row of its head NaN
 * (its key cluster's centroid scores are NaN, and a query cluster whose
 * centroid scores are not finite keeps every key cluster); a NaN/Inf value
 * row reaches the rows that computed its key (>= 1). No row is left without
 * keys (all-zero), the other head stays finite. */
static void test_nan_sparse_no_crash(void **state) {
    (void)state;
    const int64_t H = 2, N = 96, i = 40;
    size_t n = (size_t)(H * N * D);
    double *q = tu_random(7, n, 1), *k = tu_random(8, n, 1), *v = tu_random(9, n, 1);
    for (int m = 1; m < 3; m++)
        for (int which = 0; which < 3; which++) {
            double *x = which == 0 ? q : which == 1 ? k : v;
            double keep = x[(1 * N + i) * D];
            x[(1 * N + i) * D] = which == 2 ? INFINITY : NAN;
            run_result r = run(k_methods[m], 0, q, k, v, H, N, NULL);
            assert_int_equal(r.status, SVOO_OK);
            for (int64_t t = 0; t < N; t++) assert_false(row_nonfinite(r.out, 0, N, t));
            assert_int_equal(row_nonfinite(r.out, 1, N, i), 1);
            int bad = 0, zero = 0;
            for (int64_t t = 0; t < N; t++) {
                bad += row_nonfinite(r.out, 1, N, t);
                int z = 1;
                for (int d = 0; d < D; d++) z &= r.out[(1 * N + t) * D + d] == 0;
                zero += z;
            }
            print_message("[ numerics ] %s: non-finite %s row -> %d of %lld rows of its head non-finite, %d all-zero; row %lld %s\n",
                          svoo_method_name(k_methods[m]), which == 0 ? "q" : which == 1 ? "k" : "v", bad,
                          (long long)N, zero, (long long)i, row_nonfinite(r.out, 1, N, i) ? "non-finite" : "finite");
            assert_int_equal(zero, 0);
            if (which == 0) assert_int_equal(bad, 1);
            if (which == 1) assert_int_equal(bad, N);
            free(r.out);
            x[(1 * N + i) * D] = keep;
        }
    free(q), free(k), free(v);
}

static void top_p_one(svoo_config *c) { c->top_p = 1.0; }

/* all-equal logits (q = 0, or all keys equal): uniform attention, the output
 * is the mean of V over the keys computed: all keys for dense, and for the
 * sparse methods with top_p = 1 (every key cluster carries mass, all kept) */
static void test_equal_logits(void **state) {
    (void)state;
    const int64_t H = 1, N = 64;
    size_t n = (size_t)(H * N * D);
    double *q = calloc(n, 8), *k = tu_random(10, n, 1), *v = tu_random(11, n, 1);
    double mean[D] = {0};
    for (int64_t j = 0; j < N; j++)
        for (int d = 0; d < D; d++) mean[d] += (double)(float)v[j * D + d] / (double)N;
    for (int m = 0; m < 3; m++) {
        run_result r = run(k_methods[m], 0, q, k, v, H, N, m ? top_p_one : NULL);
        assert_int_equal(r.status, SVOO_OK);
        for (int64_t i = 0; i < N; i++)
            for (int d = 0; d < D; d++)
                if (fabs(r.out[i * D + d] - mean[d]) > 1e-5)
                    fail_msg("%s: row %lld dim %d: %g vs mean %g", svoo_method_name(k_methods[m]),
                             (long long)i, d, r.out[i * D + d], mean[d]);
        free(r.out);
    }
    free(q), free(k), free(v);
}

/* logits of 1e4 after scaling: no overflow. (a) all logits of a row equal
 * 1e4 (q = k = a constant vector): uniform, the mean of V; (b) random q, k
 * with logits of standard deviation ~1e4: matches the f64 reference */
static void test_huge_logits(void **state) {
    (void)state;
    const int64_t H = 1, N = 48;
    size_t n = (size_t)(H * N * D);
    const double a = sqrt(1e4 * sqrt((double)D) / D); /* q.k / sqrt(D) = 1e4 */
    double *q = malloc(n * 8), *k = malloc(n * 8), *v = tu_random(12, n, 1);
    for (size_t x = 0; x < n; x++) q[x] = k[x] = a;
    double mean[D] = {0};
    for (int64_t j = 0; j < N; j++)
        for (int d = 0; d < D; d++) mean[d] += (double)(float)v[j * D + d] / (double)N;
    for (int m = 0; m < 3; m++) {
        run_result r = run(k_methods[m], 0, q, k, v, H, N, m ? top_p_one : NULL);
        assert_int_equal(r.status, SVOO_OK);
        for (int64_t i = 0; i < N; i++)
            for (int d = 0; d < D; d++)
                if (!(fabs(r.out[i * D + d] - mean[d]) <= 1e-4))
                    fail_msg("%s: equal 1e4 logits: row %lld dim %d: %g vs %g",
                             svoo_method_name(k_methods[m]), (long long)i, d, r.out[i * D + d], mean[d]);
        free(r.out);
    }
    free(q), free(k);
    /* (b) */
    const double s = 100.0; /* entries N(0, s): logit std = s^2 = 1e4 */
    q = tu_random(13, n, s);
    k = tu_random(14, n, s);
    for (size_t x = 0; x < n; x++) q[x] = (double)(float)q[x], k[x] = (double)(float)k[x];
    double *vv = malloc(n * 8);
    for (size_t x = 0; x < n; x++) vv[x] = (double)(float)v[x];
    double *ref = tu_reference(q, k, vv, 1, H, N, D);
    run_result r = run(SVOO_METHOD_DENSE, 0, q, k, v, H, N, NULL);
    assert_int_equal(r.status, SVOO_OK);
    double e = tu_rel_l2(r.out, ref, n);
    print_message("[ numerics ] dense, logits ~1e4: rel_l2 vs f64 = %.3g\n", e);
    assert_true(e < 1e-3);
    free(r.out);
    for (int m = 1; m < 3; m++) { /* sparse: finite, rows are convex combinations of V */
        r = run(k_methods[m], 0, q, k, v, H, N, NULL);
        assert_int_equal(r.status, SVOO_OK);
        for (size_t x = 0; x < n; x++) assert_true(isfinite(r.out[x]) && fabs(r.out[x]) < 10);
        free(r.out);
    }
    free(ref), free(q), free(k), free(v), free(vv);
}

static void geom_no_text(svoo_config *c) {
    c->frames = 2, c->height = 4, c->width = 6, c->text_tokens = 0;
}
static void geom_text(svoo_config *c) {
    c->frames = 2, c->height = 4, c->width = 6, c->text_tokens = 7, c->text_first = 1;
}

/* zero-length text (text_tokens = 0): every method runs on video tokens only
 * (SVG included, N = frames x height x width) */
static void test_zero_text(void **state) {
    (void)state;
    const int64_t H = 2, N = 48;
    size_t n = (size_t)(H * N * D);
    double *q = tu_random(15, n, 1), *k = tu_random(16, n, 1), *v = tu_random(17, n, 1);
    const svoo_method ms[] = {SVOO_METHOD_DENSE, SVOO_METHOD_SVOO, SVOO_METHOD_SVG2, SVOO_METHOD_SVG};
    for (int m = 0; m < 4; m++) {
        run_result r = run(ms[m], 0, q, k, v, H, N, geom_no_text);
        if (r.status) fail_msg("%s, text_tokens 0: %s (%s)", svoo_method_name(ms[m]), svoo_status_name(r.status), r.msg);
        for (size_t x = 0; x < n; x++) assert_true(isfinite(r.out[x]));
        free(r.out);
        /* the same tokens declared as 41 video + 7 text: SVG's geometry check */
        r = run(ms[m], 0, q, k, v, H, N, geom_text);
        assert_int_equal(r.status, ms[m] == SVOO_METHOD_SVG ? SVOO_ERR_GEOMETRY : SVOO_OK);
        free(r.out);
    }
    free(q), free(k), free(v);
}

/* N = 1: softmax over one key is 1, out = v exactly, for every method */
static void test_single_token(void **state) {
    (void)state;
    const int64_t H = 2, N = 1;
    size_t n = (size_t)(H * N * D);
    double *q = tu_random(18, n, 3), *k = tu_random(19, n, 3), *v = tu_random(20, n, 1);
    for (int m = 0; m < 3; m++) {
        run_result r = run(k_methods[m], 0, q, k, v, H, N, NULL);
        if (r.status) fail_msg("%s, N = 1: %s (%s)", svoo_method_name(k_methods[m]), svoo_status_name(r.status), r.msg);
        for (size_t x = 0; x < n; x++) assert_true(r.out[x] == (double)(float)v[x]);
        free(r.out);
    }
    free(q), free(k), free(v);
}

/* svoo_compare: a NaN anywhere makes every figure NaN (max_abs lost it in the
 * OpenMP max reduction and cosine read 0); finite views compare as before */
static void test_compare_nan(void **state) {
    (void)state;
    enum { N = 64 };
    float a[N * D], b[N * D];
    for (int i = 0; i < N * D; i++) a[i] = (float)(i % 7) - 3.f, b[i] = a[i] + (i == 5 ? 0.5f : 0.f);
    svoo_tensor ta = svoo_tensor_bhnd(a, SVOO_F32, 1, 1, N, D), tb = svoo_tensor_bhnd(b, SVOO_F32, 1, 1, N, D);
    svoo_compare_result r;
    assert_int_equal(svoo_compare(&ta, &tb, &r), SVOO_OK);
    assert_true(r.max_abs == 0.5 && r.rel_l2 > 0 && r.cosine > 0.99 && r.cosine < 1);
    for (int where = 0; where < N * D; where += N * D / 4 + 3) {
        b[where] = NAN;
        assert_int_equal(svoo_compare(&ta, &tb, &r), SVOO_OK);
        assert_true(isnan(r.rel_l2) && isnan(r.cosine) && isnan(r.max_abs));
        assert_int_equal(svoo_compare(&tb, &ta, &r), SVOO_OK); /* NaN in ref */
        assert_true(isnan(r.rel_l2) && isnan(r.cosine) && isnan(r.max_abs));
        b[where] = a[where];
    }
}

/* the executor's vector exp against svoo_expf: the same bits in portable builds (its
 * SSE2 and x86-64-v3 loops are svoo_expf lane by lane), close in native ones (FMA) */
static void test_exp_shift(void **state) {
    (void)state;
    /* native builds: the AVX2 / AVX-512 loops use FMA (a tolerance); a portable build's
     * dispatched copy gives svoo_expf's bits (its baseline copy: test_exp_baseline) */
#if defined(__AVX2__)
    tu_check_exp_shift(svoo_exp_shift, TU_EXP_CLOSE);
#else
    tu_check_exp_shift(svoo_exp_shift, TU_EXP_BITS);
#endif
}

/* the density profiler's exp (exp_shift without FMA, compiled here with the library's
 * flags): svoo_expf's bits on a softmax's domain in every build */
static void exact_exp(float *x, int n, float shift) {
    exp_shift(x, n, shift, 0);
}
static void test_exp_shift_exact(void **state) {
    (void)state;
#if defined(__AVX2__)
    tu_check_exp_shift(exact_exp, TU_EXP_BITS_LE0);
#else
    tu_check_exp_shift(exact_exp, TU_EXP_BITS);
#endif
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_finite_refuses),
        cmocka_unit_test(test_nan_propagation_dense),
        cmocka_unit_test(test_nan_sparse_no_crash),
        cmocka_unit_test(test_equal_logits),
        cmocka_unit_test(test_huge_logits),
        cmocka_unit_test(test_zero_text),
        cmocka_unit_test(test_single_token),
        cmocka_unit_test(test_compare_nan),
        cmocka_unit_test(test_exp_shift),
        cmocka_unit_test(test_exp_shift_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

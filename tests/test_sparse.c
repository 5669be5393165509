/* test_sparse.c : SVOO / SVG2 planners, the plan, and the executor. */
#include "plan/cluster.h"
#include "plan/plan.h"
#include "testutil.h"

svoo_status svoo_profile_assign_gram(const float *x, int64_t n, int d, const float *mu_o, int co,
                                     const float *mu_s, int cs, int32_t *label, int nthreads);
svoo_status svoo_profile_assign_naive(const float *x, int64_t n, int d, const float *mu_o, int co,
                                      const float *mu_s, int cs, int32_t *label, int nthreads);

typedef struct {
    int64_t B, H, N, D;
    double *q, *k, *v;
    svoo_tensor tq, tk, tv, to;
} qkv;

/* clustered data: tokens drawn around a few centres so clusters mean something */
static void qkv_make(qkv *x, int64_t B, int64_t H, int64_t N, int64_t D, uint64_t seed) {
    x->B = B, x->H = H, x->N = N, x->D = D;
    size_t n = (size_t)(B * H * N * D);
    x->q = tu_random(seed, n, 0.3);
    x->k = tu_random(seed + 1, n, 0.3);
    x->v = tu_random(seed + 2, n, 1.0);
    double *centre = tu_random(seed + 3, 8 * (size_t)D, 1.0);
    for (int64_t bh = 0; bh < B * H; bh++)
        for (int64_t i = 0; i < N; i++)
            for (int64_t d = 0; d < D; d++) {
                x->q[(bh * N + i) * D + d] += centre[(i * 5 % 8) * D + d];
                x->k[(bh * N + i) * D + d] += centre[(i * 3 % 8) * D + d];
            }
    free(centre);
    double *o = calloc(n, sizeof(double));
    x->tq = tu_tensor(x->q, SVOO_F32, 0, B, H, N, D);
    x->tk = tu_tensor(x->k, SVOO_F32, 0, B, H, N, D);
    x->tv = tu_tensor(x->v, SVOO_F32, 0, B, H, N, D);
    x->to = tu_tensor(o, SVOO_F32, 0, B, H, N, D);
    free(o);
}

static void qkv_free(qkv *x) {
    free(x->q), free(x->k), free(x->v);
    free(x->tq.data), free(x->tk.data), free(x->tv.data), free(x->to.data);
}

static void test_all_clusters_equal_dense(void **state) {
    (void)state;
    qkv x;
    qkv_make(&x, 2, 2, 333, 64, 5);
    double *ref = tu_reference(x.q, x.k, x.v, x.B, x.H, x.N, x.D);
    for (int m = SVOO_METHOD_SVOO; m <= SVOO_METHOD_SVG2; m++) {
        svoo_config c;
        tu_model_config(&c, (svoo_method)m, 2, 64);
        c.q_clusters = 7;
        c.k_clusters = 13;
        c.top_p = 1.0;
        c.floor_ratio = 1.0; /* SVG2 floor and SVOO fallback: every cluster */
        c.floor_min = c.floor_max = 1.0;
        svoo_ctx *ctx;
        assert_int_equal(svoo_ctx_create(&c, &ctx), SVOO_OK);
        svoo_stats st;
        svoo_stats_init(&st);
        assert_int_equal(svoo_attention(ctx, 20, 1, &x.tq, &x.tk, &x.tv, &x.to, &st), SVOO_OK);
        assert_false(st.dense);
        assert_true(st.replanned);
        assert_true(fabs(st.density - 1.0) < 1e-12);
        double *out = tu_read(&x.to);
        double err = tu_rel_l2(out, ref, (size_t)(x.B * x.H * x.N * x.D));
        if (err > 1e-5)
            fail_msg("%s with every cluster: rel-L2 %g vs dense", svoo_method_name(m), err);
        free(out);
        svoo_ctx_free(ctx);
    }
    free(ref);
    qkv_free(&x);
}

static void test_permutation_round_trip(void **state) {
    (void)state;
    enum { N = 1000, C = 17 };
    int32_t lq[N], lk[N];
    uint64_t s = 3;
    for (int i = 0; i < N; i++) {
        lq[i] = (int32_t)(tu_uniform(&s) * C);
        lk[i] = (int32_t)(tu_uniform(&s) * (C - 5)); /* some key clusters stay empty */
    }
    svoo_plan p = {0};
    assert_int_equal(svoo_plan_reserve(&p, N, C, C), SVOO_OK);
    svoo_plan_from_labels(&p, lq, N, C, lk, N, C);
    p.row_ptr[0] = 0;
    for (int r = 0; r < C; r++)
        p.row_ptr[r + 1] = 0;
    p.nnz = 0;
    assert_int_equal(svoo_plan_validate(&p), SVOO_OK);
    /* clusters contiguous, stable order inside, and gather/scatter is identity */
    for (int r = 0; r < C; r++)
        for (int32_t i = p.q_off[r]; i < p.q_off[r + 1]; i++) {
            assert_int_equal(lq[p.q_perm[i]], r);
            if (i > p.q_off[r]) assert_true(p.q_perm[i] > p.q_perm[i - 1]);
        }
    int32_t back[N];
    for (int i = 0; i < N; i++)
        back[p.q_perm[i]] = i;
    for (int i = 0; i < N; i++)
        assert_int_equal(p.q_perm[back[i]], i);
    for (int c = C - 5; c < C; c++)
        assert_int_equal(p.k_off[c + 1] - p.k_off[c], 0);
    svoo_plan_release(&p);
}

static void test_selection_top_p_and_floor(void **state) {
    (void)state;
    /* d = 1: score of key cluster c for the query centroid 1.0 is mu_k[c]/1 */
    enum { CK = 5 };
    float mu_q[1] = {1.0f};
    float mu_k[CK] = {0.0f, (float)log(4.0), (float)log(2.0), (float)log(1.0), -50.0f};
    /* sizes 1 each: p proportional to 1, 4, 2, 1, ~0 -> 0.125, 0.5, 0.25, 0.125, 0 */
    int32_t k_off[CK + 1] = {0, 1, 2, 3, 4, 5};
    svoo_plan p = {0};
    assert_int_equal(svoo_plan_reserve(&p, 5, 1, CK), SVOO_OK);
    p.cq = 1, p.ck = CK;
    /* top_p 0.5: cluster 1 alone reaches 0.5 */
    assert_int_equal(svoo_select_topp(mu_q, 1, mu_k, CK, 1, k_off, 0.5, 0, &p), SVOO_OK);
    assert_int_equal(p.nnz, 1);
    assert_int_equal(p.col[0], 1);
    /* top_p 0.6: crossing cluster 2 is kept */
    assert_int_equal(svoo_select_topp(mu_q, 1, mu_k, CK, 1, k_off, 0.6, 0, &p), SVOO_OK);
    assert_int_equal(p.nnz, 2);
    assert_int_equal(p.col[0], 1);
    assert_int_equal(p.col[1], 2);
    /* floor of 4 clusters wins over top_p, best by p, output ascending */
    assert_int_equal(svoo_select_topp(mu_q, 1, mu_k, CK, 1, k_off, 0.5, 4, &p), SVOO_OK);
    assert_int_equal(p.nnz, 4);
    int32_t want[4] = {0, 1, 2, 3};
    for (int i = 0; i < 4; i++)
        assert_int_equal(p.col[i], want[i]);
    /* size weighting: cluster 3 with 8 keys outweighs cluster 1 */
    int32_t k_off2[CK + 1] = {0, 1, 2, 3, 11, 12};
    assert_int_equal(svoo_select_topp(mu_q, 1, mu_k, CK, 1, k_off2, 0.5, 0, &p), SVOO_OK);
    assert_int_equal(p.nnz, 1);
    assert_int_equal(p.col[0], 3);
    /* empty clusters are never selected, even by the floor */
    int32_t k_off3[CK + 1] = {0, 1, 1, 2, 3, 4};
    assert_int_equal(svoo_select_topp(mu_q, 1, mu_k, CK, 1, k_off3, 1.0, 5, &p), SVOO_OK);
    assert_int_equal(p.nnz, 4);
    for (int i = 0; i < 4; i++)
        assert_int_not_equal(p.col[i], 1);
    /* a sharp head: exp(A - max A) underflows to 0 for clusters 1..4, yet the
     * floor of 3 takes the best of them by score (4: -150, 2: -200), not the
     * lowest indices (1: -400) */
    float mu_k4[CK] = {0.0f, -400.0f, -200.0f, -300.0f, -150.0f};
    assert_int_equal(svoo_select_topp(mu_q, 1, mu_k4, CK, 1, k_off, 0.5, 3, &p), SVOO_OK);
    assert_int_equal(p.nnz, 3);
    int32_t want4[3] = {0, 2, 4};
    for (int i = 0; i < 3; i++)
        assert_int_equal(p.col[i], want4[i]);
    /* sizes count in that ranking too: cluster 2 (score -201, 21 keys: log 21 -
     * 201 = -197.96) comes before cluster 1 (score -200, 1 key) */
    float mu_k5[CK] = {0.0f, -200.0f, -201.0f, -300.0f, -400.0f};
    int32_t k_off5[CK + 1] = {0, 1, 2, 23, 24, 25};
    assert_int_equal(svoo_select_topp(mu_q, 1, mu_k5, CK, 1, k_off5, 0.5, 2, &p), SVOO_OK);
    assert_int_equal(p.nnz, 2);
    assert_int_equal(p.col[0], 0);
    assert_int_equal(p.col[1], 2);
    /* top_p = 1 keeps every non-empty cluster, underflowed weights included */
    assert_int_equal(svoo_select_topp(mu_q, 1, mu_k4, CK, 1, k_off, 1.0, 0, &p), SVOO_OK);
    assert_int_equal(p.nnz, CK);
    svoo_plan_release(&p);
}

static void test_gram_equals_naive(void **state) {
    (void)state;
    enum { N = 2000, D = 64, CO = 40, CS = 90 };
    double *x = tu_random(1, N * D, 1.0), *mo = tu_random(2, CO * D, 1.0),
           *ms = tu_random(3, CS * D, 1.0);
    float *xf = malloc(N * D * 4), *mof = malloc(CO * D * 4), *msf = malloc(CS * D * 4);
    for (int i = 0; i < N * D; i++)
        xf[i] = (float)x[i];
    for (int i = 0; i < CO * D; i++)
        mof[i] = (float)mo[i];
    for (int i = 0; i < CS * D; i++)
        msf[i] = (float)ms[i];
    int32_t *a = malloc(N * 4), *b = malloc(N * 4);
    assert_int_equal(svoo_profile_assign_gram(xf, N, D, mof, CO, msf, CS, a, 0), SVOO_OK);
    assert_int_equal(svoo_profile_assign_naive(xf, N, D, mof, CO, msf, CS, b, 0), SVOO_OK);
    int same = 0;
    for (int i = 0; i < N; i++)
        same += a[i] == b[i];
    /* identical up to float rounding of near-ties */
    assert_true(same >= N - N / 200);
    free(x), free(mo), free(ms), free(xf), free(mof), free(msf), free(a), free(b);
}

static void run_call(svoo_ctx *ctx, qkv *x, int step, svoo_stats *st, double **out) {
    svoo_stats_init(st);
    assert_int_equal(svoo_attention(ctx, step, 2, &x->tq, &x->tk, &x->tv, &x->to, st), SVOO_OK);
    *out = tu_read(&x->to);
}

static void test_reuse_schedule(void **state) {
    (void)state;
    qkv x;
    qkv_make(&x, 1, 2, 400, 64, 9);
    size_t n = (size_t)(x.B * x.H * x.N * x.D);
    svoo_config c;
    tu_model_config(&c, SVOO_METHOD_SVOO, 2, 64);
    c.q_clusters = 8;
    c.k_clusters = 20;
    svoo_ctx *ctx;
    assert_int_equal(svoo_ctx_create(&c, &ctx), SVOO_OK);
    svoo_stats st;
    double *o11, *o12, *o35, *o34;
    run_call(ctx, &x, 11, &st, &o11);
    assert_true(st.replanned);
    run_call(ctx, &x, 12, &st, &o12); /* reuse: same inputs -> the same plan */
    assert_false(st.replanned);
    assert_true(tu_rel_l2(o12, o11, n) == 0.0);
    run_call(ctx, &x, 35, &st, &o35); /* step 31 (a re-plan point) was skipped */
    assert_true(st.replanned);
    run_call(ctx, &x, 34, &st, &o34); /* backwards: the plan of 35 is not valid at 34 */
    assert_true(st.replanned);
    /* before the reuse start every call re-plans */
    double *o5;
    run_call(ctx, &x, 5, &st, &o5);
    assert_true(st.replanned);
    svoo_ctx_reset(ctx);
    double *o13;
    run_call(ctx, &x, 13, &st, &o13);
    assert_true(st.replanned);
    free(o11), free(o12), free(o35), free(o34), free(o5), free(o13);
    svoo_ctx_free(ctx);
    qkv_free(&x);
}

static void test_batch_gets_own_plan(void **state) {
    (void)state;
    /* batch of 2 == two calls of batch 1 (each element planned on its own data) */
    qkv x2, x1[2];
    qkv_make(&x2, 2, 2, 300, 64, 21);
    for (int b = 0; b < 2; b++) {
        x1[b].B = 1, x1[b].H = 2, x1[b].N = 300, x1[b].D = 64;
        size_t per = (size_t)(2 * 300 * 64);
        double *q = malloc(per * 8), *k = malloc(per * 8), *v = malloc(per * 8),
               *o = calloc(per, 8);
        memcpy(q, x2.q + b * per, per * 8);
        memcpy(k, x2.k + b * per, per * 8);
        memcpy(v, x2.v + b * per, per * 8);
        x1[b].q = q, x1[b].k = k, x1[b].v = v;
        x1[b].tq = tu_tensor(q, SVOO_F32, 0, 1, 2, 300, 64);
        x1[b].tk = tu_tensor(k, SVOO_F32, 0, 1, 2, 300, 64);
        x1[b].tv = tu_tensor(v, SVOO_F32, 0, 1, 2, 300, 64);
        x1[b].to = tu_tensor(o, SVOO_F32, 0, 1, 2, 300, 64);
        free(o);
    }
    svoo_config c;
    tu_model_config(&c, SVOO_METHOD_SVG2, 2, 64);
    c.q_clusters = 6;
    c.k_clusters = 15;
    c.top_p = 0.5;
    c.floor_ratio = 0.2;
    svoo_ctx *ctx2, *ctx1;
    assert_int_equal(svoo_ctx_create(&c, &ctx2), SVOO_OK);
    svoo_stats st;
    double *o2, *o1[2];
    run_call(ctx2, &x2, 15, &st, &o2);
    assert_true(st.density < 1.0);
    for (int b = 0; b < 2; b++) {
        assert_int_equal(svoo_ctx_create(&c, &ctx1), SVOO_OK);
        run_call(ctx1, &x1[b], 15, &st, &o1[b]);
        size_t per = (size_t)(2 * 300 * 64);
        assert_true(tu_rel_l2(o2 + b * per, o1[b], per) < 1e-6);
        svoo_ctx_free(ctx1);
        free(o1[b]);
        qkv_free(&x1[b]);
    }
    free(o2);
    svoo_ctx_free(ctx2);
    qkv_free(&x2);
}

static void test_sparse_is_close_and_sparse(void **state) {
    (void)state;
    qkv x;
    qkv_make(&x, 1, 2, 600, 128, 33);
    double *ref = tu_reference(x.q, x.k, x.v, x.B, x.H, x.N, x.D);
    for (int m = SVOO_METHOD_SVOO; m <= SVOO_METHOD_SVG2; m++)
        for (int ear = 0; ear < 2; ear++) {
            svoo_config c;
            tu_model_config(&c, (svoo_method)m, 2, 128);
            c.q_clusters = 8;
            c.k_clusters = 32;
            c.ear = ear;
            c.recall_rows = 64;
            svoo_ctx *ctx;
            assert_int_equal(svoo_ctx_create(&c, &ctx), SVOO_OK);
            svoo_stats st;
            double *out;
            run_call(ctx, &x, 20, &st, &out);
            double err = tu_rel_l2(out, ref, (size_t)(2 * 600 * 128));
            assert_true(st.density > 0.0 && st.density < 1.0);
            assert_true(st.recall > 0.5 && st.recall <= 1.0 + 1e-9);
            /* a sparse answer, but an answer: far closer than zero output */
            if (!(err < 0.5)) fail_msg("%s ear=%d: rel-L2 %g", svoo_method_name(m), ear, err);
            free(out);
            svoo_ctx_free(ctx);
        }
    free(ref);
    qkv_free(&x);
}

static void test_bad_cluster_counts(void **state) {
    (void)state;
    qkv x;
    qkv_make(&x, 1, 2, 50, 64, 1);
    svoo_config c;
    tu_model_config(&c, SVOO_METHOD_SVOO, 2, 64);
    c.k_clusters = 51; /* > N */
    svoo_ctx *ctx;
    assert_int_equal(svoo_ctx_create(&c, &ctx), SVOO_OK);
    assert_int_equal(svoo_attention(ctx, 20, 1, &x.tq, &x.tk, &x.tv, &x.to, NULL),
                     SVOO_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(svoo_last_error(ctx), "k_clusters"));
    svoo_ctx_free(ctx);
    c.k_clusters = -1;
    assert_int_equal(svoo_ctx_create(&c, &ctx), SVOO_ERR_INVALID_ARGUMENT);
    assert_null(ctx);
    c.k_clusters = 0;
    c.top_p = 0.0;
    assert_int_equal(svoo_ctx_create(&c, &ctx), SVOO_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(svoo_last_error(NULL), "top_p"));
    c.top_p = 0.9;
    c.floor_min = 0.3;
    c.floor_max = 0.2;
    assert_int_equal(svoo_ctx_create(&c, &ctx), SVOO_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(svoo_last_error(NULL), "floor_max"));
    qkv_free(&x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_clusters_equal_dense),
        cmocka_unit_test(test_permutation_round_trip),
        cmocka_unit_test(test_selection_top_p_and_floor),
        cmocka_unit_test(test_gram_equals_naive),
        cmocka_unit_test(test_reuse_schedule),
        cmocka_unit_test(test_batch_gets_own_plan),
        cmocka_unit_test(test_sparse_is_close_and_sparse),
        cmocka_unit_test(test_bad_cluster_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

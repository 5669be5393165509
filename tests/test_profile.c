/* test_profile.c : profile CSV (bad inputs, round trip, merge, stats, the
 * published profiles), the profiler (observe -> result, stability), and the
 * `svoo profile` / `svoo inspect` commands on generated dumps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/internal.h"

static char tmpdir[256];

static int setup(void **state) {
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/svoo_test_profile_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *write_file(const char *name, const char *text) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

/* load must fail with `want`, and the message must name "path:line" */
static void expect_bad(const char *name, const char *text, svoo_status want, int line) {
    const char *path = write_file(name, text);
    svoo_profile *p = (svoo_profile *)0x1;
    svoo_status s = svoo_profile_load(path, &p);
    if (s != want) fail_msg("%s: got %s (%s)", name, svoo_status_name(s), svoo_last_error(NULL));
    assert_null(p);
    char want_loc[600];
    if (line > 0)
        snprintf(want_loc, sizeof want_loc, "%s:%d", path, line);
    else
        snprintf(want_loc, sizeof want_loc, "%s", path);
    if (!strstr(svoo_last_error(NULL), want_loc))
        fail_msg("%s: message '%s' does not name %s", name, svoo_last_error(NULL), want_loc);
}

static void test_csv_bad_inputs(void **state) {
    (void)state;
    const char *H = "Step,Layer,Head,Sparsity\n";
    char buf[1024];
    expect_bad("empty.csv", "", SVOO_ERR_PROFILE_FORMAT, 1);
    expect_bad("header.csv", "Step,Layer,Head,Density\n1,0,0,0.5\n", SVOO_ERR_PROFILE_FORMAT, 1);
    snprintf(buf, sizeof buf, "%s1,0,0,0.5\n1,0,x,0.5\n", H);
    expect_bad("nonnum.csv", buf, SVOO_ERR_PROFILE_FORMAT, 3);
    snprintf(buf, sizeof buf, "%s1,0,0,abc\n", H);
    expect_bad("nonnum2.csv", buf, SVOO_ERR_PROFILE_FORMAT, 2);
    snprintf(buf, sizeof buf, "%s1,0,0,0.5\n1,0,1,-0.1\n", H);
    expect_bad("negative.csv", buf, SVOO_ERR_PROFILE_FORMAT, 3);
    snprintf(buf, sizeof buf, "%s1,0,0,1.5\n", H);
    expect_bad("above1.csv", buf, SVOO_ERR_PROFILE_FORMAT, 2);
    snprintf(buf, sizeof buf, "%s1,0,0,0.5\n1,0,1,0.5\n1,0,0,0.25\n", H);
    expect_bad("dup.csv", buf, SVOO_ERR_DUPLICATE_NAME, 4);
    snprintf(buf, sizeof buf, "%s1,0,0,0.5\n1,0,1,0.5\n2,0,1,0.5\n", H); /* (2,0,0) missing */
    expect_bad("gap.csv", buf, SVOO_ERR_PROFILE_FORMAT, 0);
    assert_non_null(strstr(svoo_last_error(NULL), "step 2, layer 0, head 0"));
    /* bug B2 (fuzz): one row declaring a 100000 x 2684 x 1 grid was allocated
     * in full (2.1 GB) before its gaps were reported */
    snprintf(buf, sizeof buf, "%s100000,2683,0,0.5\n", H);
    expect_bad("hugegrid.csv", buf, SVOO_ERR_PROFILE_FORMAT, 0);
    assert_non_null(strstr(svoo_last_error(NULL), "100000 x 2684 x 1"));
    snprintf(buf, sizeof buf, "%s0,0,0,0.5\n", H); /* steps are 1-based */
    expect_bad("step0.csv", buf, SVOO_ERR_PROFILE_FORMAT, 2);
    snprintf(buf, sizeof buf, "%s1,0,0\n", H);
    expect_bad("fields.csv", buf, SVOO_ERR_PROFILE_FORMAT, 2);
    expect_bad("onlyheader.csv", H, SVOO_ERR_PROFILE_FORMAT, 1);

    /* CRLF accepted */
    const char *path =
        write_file("crlf.csv", "Step,Layer,Head,Sparsity\r\n1,0,0,0.5\r\n1,0,1,0.25\r\n");
    svoo_profile *p = NULL;
    assert_int_equal(svoo_profile_load(path, &p), SVOO_OK);
    double v;
    assert_int_equal(svoo_profile_get(p, 0, 0, 1, &v), SVOO_OK);
    assert_true(v == 0.25);
    svoo_profile_free(p);

    /* missing file */
    char miss[512];
    snprintf(miss, sizeof miss, "%s/nope.csv", tmpdir);
    assert_int_equal(svoo_profile_load(miss, &p), SVOO_ERR_IO);
    assert_non_null(strstr(svoo_last_error(NULL), miss));
}

static void test_csv_round_trip_merge_stats(void **state) {
    (void)state;
    svoo_profile *a = NULL, *b = NULL, *c = NULL;
    assert_int_equal(svoo_profile_create(3, 2, 4, &a), SVOO_OK);
    for (int s = 0; s < 3; s++)
        for (int l = 0; l < 2; l++)
            for (int h = 0; h < 4; h++)
                assert_int_equal(svoo_profile_set(a, s, l, h, 0.01 * (s * 8 + l * 4 + h + 1)),
                                 SVOO_OK);
    char path[512];
    snprintf(path, sizeof path, "%s/rt.csv", tmpdir);
    assert_int_equal(svoo_profile_save(a, path), SVOO_OK);
    assert_int_equal(svoo_profile_load(path, &b), SVOO_OK);
    int S, L, H;
    svoo_profile_dims(b, &S, &L, &H);
    assert_int_equal(S, 3);
    assert_int_equal(L, 2);
    assert_int_equal(H, 4);
    for (int s = 0; s < 3; s++)
        for (int l = 0; l < 2; l++)
            for (int h = 0; h < 4; h++) {
                double x, y;
                assert_int_equal(svoo_profile_get(a, s, l, h, &x), SVOO_OK);
                assert_int_equal(svoo_profile_get(b, s, l, h, &y), SVOO_OK);
                assert_true(fabs(x - y) < 1e-9);
            }
    /* bad indices */
    double v;
    assert_int_equal(svoo_profile_get(b, 3, 0, 0, &v), SVOO_ERR_OUT_OF_RANGE);
    assert_int_equal(svoo_profile_get(b, 0, -1, 0, &v), SVOO_ERR_OUT_OF_RANGE);
    assert_int_equal(svoo_profile_set(b, 0, 0, 4, 0.5), SVOO_ERR_OUT_OF_RANGE);
    assert_int_equal(svoo_profile_set(b, 0, 0, 0, 1.5), SVOO_ERR_INVALID_ARGUMENT);

    /* merge: c = {0.2 everywhere}; max and mean with a */
    assert_int_equal(svoo_profile_create(3, 2, 4, &c), SVOO_OK);
    for (int s = 0; s < 3; s++)
        for (int l = 0; l < 2; l++)
            for (int h = 0; h < 4; h++)
                svoo_profile_set(c, s, l, h, 0.2);
    assert_int_equal(svoo_profile_merge(b, c, SVOO_MERGE_MAX), SVOO_OK);
    assert_int_equal(svoo_profile_get(b, 0, 0, 0, &v), SVOO_OK);
    assert_true(fabs(v - 0.2) < 1e-12);
    assert_int_equal(svoo_profile_get(b, 2, 1, 3, &v), SVOO_OK);
    assert_true(fabs(v - 0.24) < 1e-9);
    svoo_profile *m = NULL;
    assert_int_equal(svoo_profile_create(3, 2, 4, &m), SVOO_OK);
    assert_int_equal(svoo_profile_merge(m, a, SVOO_MERGE_MEAN), SVOO_OK);
    assert_int_equal(svoo_profile_merge(m, c, SVOO_MERGE_MEAN), SVOO_OK);
    assert_int_equal(svoo_profile_get(m, 0, 0, 0, &v), SVOO_OK);
    assert_true(fabs(v - (0.01 + 0.2) / 2) < 1e-12);
    svoo_profile *small = NULL;
    assert_int_equal(svoo_profile_create(2, 2, 4, &small), SVOO_OK);
    assert_int_equal(svoo_profile_merge(m, small, SVOO_MERGE_MAX), SVOO_ERR_PROFILE_MISMATCH);

    /* stats of a: values 0.01 .. 0.24 */
    svoo_profile_stats st;
    assert_int_equal(svoo_profile_stats_get(a, &st), SVOO_OK);
    assert_int_equal(st.count, 24);
    assert_true(fabs(st.mean - 0.125) < 1e-12);
    assert_true(fabs(st.min - 0.01) < 1e-12);
    assert_true(fabs(st.max - 0.24) < 1e-12);
    assert_true(fabs(st.median - 0.125) < 1e-12);
    assert_true(fabs(st.p10 - (0.01 + 0.1 * 23 * 0.01)) < 1e-12);
    assert_true(fabs(st.p90 - (0.01 + 0.9 * 23 * 0.01)) < 1e-12);
    svoo_profile_free(a);
    svoo_profile_free(b);
    svoo_profile_free(c);
    svoo_profile_free(m);
    svoo_profile_free(small);
}

/* ---- the published profiles (README table) ---- */
static void check_published(const char *name, int S, int L, int H, double mean, double median,
                            double p10, double p90) {
    char path[1024];
    snprintf(path, sizeof path, "%s/../shared/data/profiles/%s", SVOO_SOURCE_DIR, name);
    if (access(path, R_OK) != 0) skip();
    svoo_profile *p = NULL;
    assert_int_equal(svoo_profile_load(path, &p), SVOO_OK);
    svoo_profile_stats st;
    assert_int_equal(svoo_profile_stats_get(p, &st), SVOO_OK);
    assert_int_equal(st.steps, S);
    assert_int_equal(st.layers, L);
    assert_int_equal(st.heads, H);
    assert_int_equal(st.count, (int64_t)S * L * H);
    /* the README rounds to 3 decimals */
    assert_true(fabs(st.mean - mean) <= 0.0006);
    assert_true(fabs(st.median - median) <= 0.0006);
    assert_true(fabs(st.p10 - p10) <= 0.0006);
    assert_true(fabs(st.p90 - p90) <= 0.0006);
    svoo_profile_free(p);
}

static void test_published_profiles(void **state) {
    (void)state;
    check_published("sparsity_wan_1.3B_t2v.csv", 50, 30, 12, 0.144, 0.051, 0.004, 0.459);
    check_published("sparsity_wan_14B_t2v.csv", 50, 40, 40, 0.247, 0.135, 0.010, 0.725);
    check_published("sparsity_wan22_A14B_t2v.csv", 40, 40, 40, 0.243, 0.138, 0.011, 0.712);
}

/* ---- profiler ---- */

static uint64_t rs = 0x2545F4914F6CDD1Dull;
static float frand(void) {
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (float)((double)(rs >> 11) / 9007199254740992.0 * 2 - 1);
}

/* q, k of B x H x N x D with head h sharpened by (h + 1) */
static void make_qk(float *q, float *k, int B, int H, int N, int D, float sharp) {
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < N * D; i++) {
                size_t o = ((size_t)(b * H + h) * N) * D + (size_t)i;
                q[o] = frand() * sharp * (float)(h + 1);
                k[o] = frand() * 2.0f;
            }
}

static void test_profiler_round_trip(void **state) {
    (void)state;
    const int S = 2, L = 3, H = 2, N = 96, D = 32, B = 2;
    svoo_profiler *pr = NULL;
    assert_int_equal(svoo_profiler_create(S, L, H, 0.95, 4, &pr), SVOO_OK);
    float *q = malloc(sizeof(float) * B * H * N * D), *k = malloc(sizeof(float) * B * H * N * D);
    svoo_tensor tq = svoo_tensor_bhnd(q, SVOO_F32, B, H, N, D);
    svoo_tensor tk = svoo_tensor_bhnd(k, SVOO_F32, B, H, N, D);
    /* observe before begin_run */
    make_qk(q, k, B, H, N, D, 1.0f);
    assert_int_equal(svoo_profiler_observe(pr, 0, 0, &tq, &tk), SVOO_ERR_INVALID_ARGUMENT);
    double expect[2][2][3][2]; /* run, step, layer, head */
    for (int r = 0; r < 2; r++) {
        assert_int_equal(svoo_profiler_begin_run(pr), SVOO_OK);
        for (int s = 0; s < S; s++)
            for (int l = 0; l < L; l++) {
                make_qk(q, k, B, H, N, D, 0.5f + 0.3f * (float)(s + l + r));
                double d[4];
                assert_int_equal(svoo_density(&tq, &tk, 0.95, 4, 0, d), SVOO_OK);
                for (int h = 0; h < H; h++)
                    expect[r][s][l][h] = (d[h] + d[H + h]) / 2;
                assert_int_equal(svoo_profiler_observe(pr, s, l, &tq, &tk), SVOO_OK);
            }
    }
    assert_int_equal(svoo_profiler_runs(pr), 2);
    svoo_profile *pmax = NULL, *pmean = NULL;
    assert_int_equal(svoo_profiler_result(pr, SVOO_MERGE_MAX, &pmax), SVOO_OK);
    assert_int_equal(svoo_profiler_result(pr, SVOO_MERGE_MEAN, &pmean), SVOO_OK);
    for (int s = 0; s < S; s++)
        for (int l = 0; l < L; l++)
            for (int h = 0; h < H; h++) {
                double a = expect[0][s][l][h], b = expect[1][s][l][h], v;
                assert_int_equal(svoo_profile_get(pmax, s, l, h, &v), SVOO_OK);
                assert_true(fabs(v - (a > b ? a : b)) < 1e-12);
                assert_int_equal(svoo_profile_get(pmean, s, l, h, &v), SVOO_OK);
                assert_true(fabs(v - (a + b) / 2) < 1e-12);
            }
    /* bad indices and shapes */
    assert_int_equal(svoo_profiler_observe(pr, S, 0, &tq, &tk), SVOO_ERR_OUT_OF_RANGE);
    assert_int_equal(svoo_profiler_observe(pr, 0, -1, &tq, &tk), SVOO_ERR_OUT_OF_RANGE);
    assert_int_equal(svoo_profiler_observe(pr, 0, L, &tq, &tk), SVOO_ERR_OUT_OF_RANGE);
    svoo_tensor t1 = svoo_tensor_bhnd(q, SVOO_F32, 1, 1, N, D);
    assert_int_equal(svoo_profiler_observe(pr, 0, 0, &t1, &t1), SVOO_ERR_SHAPE_MISMATCH);
    svoo_stability st;
    assert_int_equal(svoo_profiler_stability(pr, L, &st), SVOO_ERR_OUT_OF_RANGE);
    assert_int_equal(svoo_profiler_stability(pr, -2, &st), SVOO_ERR_OUT_OF_RANGE);
    svoo_profile *none = NULL;
    assert_int_equal(svoo_profiler_result(pr, (svoo_merge)7, &none), SVOO_ERR_INVALID_ARGUMENT);
    assert_null(none);
    svoo_profiler *bad = NULL;
    assert_int_equal(svoo_profiler_create(0, 1, 1, 0.95, 1, &bad), SVOO_ERR_INVALID_ARGUMENT);
    assert_int_equal(svoo_profiler_create(1, 1, 1, 1.5, 1, &bad), SVOO_ERR_INVALID_ARGUMENT);
    assert_int_equal(svoo_profiler_create(1, 1, 1, 0.95, 0, &bad), SVOO_ERR_INVALID_ARGUMENT);
    svoo_profile_free(pmax);
    svoo_profile_free(pmean);
    svoo_profiler_free(pr);
    free(q);
    free(k);
}

/* stability on hand-made runs: a 1 x 2 x 2 grid, q/k chosen so that the
 * densities are known exactly (flat rows: ceil(0.95 N) / N; one-hot: 1 / N) */
static void test_profiler_stability(void **state) {
    (void)state;
    const int N = 20, D = 8;
    svoo_profiler *pr = NULL;
    assert_int_equal(svoo_profiler_create(1, 2, 1, 0.95, 1, &pr), SVOO_OK);
    float *q = calloc((size_t)N * D, 4), *kflat = calloc((size_t)N * D, 4),
          *kpeak = calloc((size_t)N * D, 4);
    for (int i = 0; i < N; i++) {
        q[i * D + i % D] = 1.0f;
        kpeak[i * D + i % D] = 100.0f; /* key i matches query i ... */
    }
    for (int i = 0; i < N; i++) /* ... only: disambiguate queries sharing i % D */
        for (int j = 0; j < N; j++)
            if (j != i && j % D == i % D) kpeak[j * D + (i % D)] = 100.0f;
    /* simpler exact values: flat keys -> 19/20 = 0.95 */
    svoo_tensor tq = svoo_tensor_bhnd(q, SVOO_F32, 1, 1, N, D);
    svoo_tensor tf = svoo_tensor_bhnd(kflat, SVOO_F32, 1, 1, N, D);
    double dflat;
    assert_int_equal(svoo_density(&tq, &tf, 0.95, 1, 0, &dflat), SVOO_OK);
    assert_true(fabs(dflat - 0.95) < 1e-12);
    double dpk;
    svoo_tensor tp = svoo_tensor_bhnd(kpeak, SVOO_F32, 1, 1, N, D);
    assert_int_equal(svoo_density(&tq, &tp, 0.95, 1, 0, &dpk), SVOO_OK);
    /* run 0: layer 0 flat, layer 1 peaked; run 1: both flat */
    assert_int_equal(svoo_profiler_begin_run(pr), SVOO_OK);
    assert_int_equal(svoo_profiler_observe(pr, 0, 0, &tq, &tf), SVOO_OK);
    assert_int_equal(svoo_profiler_observe(pr, 0, 1, &tq, &tp), SVOO_OK);
    assert_int_equal(svoo_profiler_begin_run(pr), SVOO_OK);
    assert_int_equal(svoo_profiler_observe(pr, 0, 0, &tq, &tf), SVOO_OK);
    assert_int_equal(svoo_profiler_observe(pr, 0, 1, &tq, &tf), SVOO_OK);
    svoo_stability s;
    assert_int_equal(svoo_profiler_stability(pr, 0, &s), SVOO_OK);
    assert_int_equal(s.runs, 2);
    assert_true(fabs(s.mean - 0.95) < 1e-12 && s.std < 1e-12 && s.mean_spread < 1e-12 &&
                s.mean_cv < 1e-12);
    assert_int_equal(svoo_profiler_stability(pr, 1, &s), SVOO_OK);
    assert_true(fabs(s.mean - (dpk + 0.95) / 2) < 1e-12);
    assert_true(fabs(s.std - (0.95 - dpk) / 2) < 1e-12);
    assert_true(fabs(s.min - dpk) < 1e-12 && fabs(s.max - 0.95) < 1e-12);
    assert_true(fabs(s.mean_spread - (0.95 - dpk)) < 1e-12);
    assert_true(fabs(s.mean_cv - ((0.95 - dpk) / 2) / ((dpk + 0.95) / 2)) < 1e-12);
    /* all layers: per-run mean over the two entries */
    assert_int_equal(svoo_profiler_stability(pr, -1, &s), SVOO_OK);
    double r0 = (0.95 + dpk) / 2, r1 = 0.95;
    assert_true(fabs(s.mean - (r0 + r1) / 2) < 1e-12);
    assert_true(fabs(s.min - r0) < 1e-12 && fabs(s.max - r1) < 1e-12);
    assert_true(fabs(s.mean_spread - (0.95 - dpk) / 2) < 1e-12);
    /* a repeated observe in one run is averaged */
    assert_int_equal(svoo_profiler_observe(pr, 0, 1, &tq, &tp), SVOO_OK);
    svoo_profile *p = NULL;
    assert_int_equal(svoo_profiler_result(pr, SVOO_MERGE_MEAN, &p), SVOO_OK);
    double v;
    assert_int_equal(svoo_profile_get(p, 0, 1, 0, &v), SVOO_OK);
    assert_true(fabs(v - (dpk + (0.95 + dpk) / 2) / 2) < 1e-12);
    svoo_profile_free(p);
    svoo_profiler_free(pr);
    free(q);
    free(kflat);
    free(kpeak);
}

/* ---- the commands, on generated dumps ---- */

static const char *svoo_bin(void) {
    static char path[1024];
    snprintf(path, sizeof path, "%s/svoo", SVOO_BINARY_DIR);
    return access(path, X_OK) == 0 ? path : NULL;
}

static void write_dump(const char *dir, int s, int l, int H, int N, int D, float sharp) {
    char path[1024];
    snprintf(path, sizeof path, "%s/step%03d_layer%02d.safetensors", dir, s, l);
    size_t n = (size_t)H * N * D;
    float *q = malloc(n * 4), *k = malloc(n * 4);
    make_qk(q, k, 1, H, N, D, sharp);
    svoo_array a[2] = {{"q", SVOO_F32, 3, {H, N, D}, q, n * 4},
                       {"k", SVOO_F32, 3, {H, N, D}, k, n * 4}};
    assert_int_equal(svoo_safetensors_save(path, a, 2), SVOO_OK);
    free(q);
    free(k);
}

static int run_cmd(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run_cmd(const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void test_cli_profile_inspect(void **state) {
    (void)state;
    const char *bin = svoo_bin();
    if (!bin) skip();
    char d[600], r0[700], r1[700], out[700], log[700];
    snprintf(d, sizeof d, "%s/dumps", tmpdir);
    snprintf(r0, sizeof r0, "%s/run0", d);
    snprintf(r1, sizeof r1, "%s/run1", d);
    snprintf(out, sizeof out, "%s/prof.csv", tmpdir);
    snprintf(log, sizeof log, "%s/log.txt", tmpdir);
    mkdir(d, 0755);
    mkdir(r0, 0755);
    mkdir(r1, 0755);
    for (int r = 0; r < 2; r++)
        for (int s = 0; s < 2; s++)
            for (int l = 0; l < 2; l++)
                write_dump(r ? r1 : r0, s, l, 2, 64, 16, 0.5f + 0.5f * (float)(s + l));
    assert_int_equal(run_cmd("%s profile --dumps %s --out %s --rows 2 --report --quiet > %s 2>&1",
                             bin, d, out, log),
                     0);
    svoo_profile *p = NULL;
    assert_int_equal(svoo_profile_load(out, &p), SVOO_OK);
    int S, L, H;
    svoo_profile_dims(p, &S, &L, &H);
    assert_int_equal(S, 2);
    assert_int_equal(L, 2);
    assert_int_equal(H, 2);
    svoo_profile_free(p);
    assert_int_equal(run_cmd("%s inspect %s --json > %s 2>&1", bin, out, log), 0);
    char png[700];
    snprintf(png, sizeof png, "%s/p.png", tmpdir);
    assert_int_equal(run_cmd("%s inspect %s --png %s > %s 2>&1", bin, out, png, log), 0);
    assert_int_equal(access(png, R_OK), 0);

    /* a missing (step, layer) in one run: error naming the file, nothing written */
    char gone[800], out2[700];
    snprintf(gone, sizeof gone, "%s/step001_layer00.safetensors", r1);
    unlink(gone);
    snprintf(out2, sizeof out2, "%s/prof2.csv", tmpdir);
    assert_int_equal(run_cmd("%s profile --dumps %s --out %s --quiet > %s 2>&1", bin, d, out2, log),
                     1);
    assert_int_not_equal(access(out2, F_OK), 0);
    assert_int_equal(run_cmd("grep -q 'run1/step001_layer00.safetensors: missing' %s", log), 0);
    /* a mismatched shape: error naming the file */
    write_dump(r1, 1, 0, 2, 48, 16, 1.0f);
    assert_int_equal(run_cmd("%s profile --dumps %s --out %s --quiet > %s 2>&1", bin, d, out2, log),
                     1);
    assert_int_not_equal(access(out2, F_OK), 0);
    assert_int_equal(run_cmd("grep -q 'run1/step001_layer00.safetensors: "
                             ".*SVOO_ERR_SHAPE\\|step001_layer00.safetensors: q' %s",
                             log),
                     0);
    /* a bad CSV given to inspect names file:line */
    const char *bad = write_file("bad.csv", "Step,Layer,Head,Sparsity\n1,0,0,2\n");
    assert_int_equal(run_cmd("%s inspect %s > %s 2>&1", bin, bad, log), 1);
    assert_int_equal(run_cmd("grep -q 'bad.csv:2' %s", log), 0);
}

/* `svoo run --dumps` on what `svoo synth --steps 3` writes: bf16 dumps of steps 0, 25, 49
 * (not consecutive). Before, the run took the consecutive steps from 0 only (step 0: all
 * dense, no quality figure), and on the CPU failed on 16-bit dumps (its f32 dense reference
 * output was refused: an output must have the input's dtype). */
static void test_cli_run_dumps(void **state) {
    (void)state;
    const char *bin = svoo_bin();
    if (!bin) skip();
    char d[600], log[700], gone[800];
    snprintf(d, sizeof d, "%s/synth", tmpdir);
    snprintf(log, sizeof log, "%s/run.json", tmpdir);
    assert_int_equal(
        run_cmd("%s synth --preset small --steps 3 --layers 2 --out %s --quiet > /dev/null 2>&1", bin, d), 0);
    assert_int_equal(run_cmd("%s run --dumps %s --method svoo --threads 2 --quiet --json > %s 2>&1", bin, d, log),
                     0);
    assert_int_equal(run_cmd("grep -q '\"steps_run\": *3' %s", log), 0);
    /* step 0 and layer 0 are warm-up (dense); steps 25 and 49 of layer 1 are sparse */
    assert_int_equal(run_cmd("grep -q '\"sparse_calls\": *2' %s", log), 0);
    assert_int_equal(run_cmd("grep -q '\"rel_l2\"' %s", log), 0);
    /* a present step without all layers: error naming the missing file */
    snprintf(gone, sizeof gone, "%s/step025_layer01.safetensors", d);
    unlink(gone);
    assert_int_equal(run_cmd("%s run --dumps %s --quiet > %s 2>&1", bin, d, log), 1);
    assert_int_equal(run_cmd("grep -q 'step025_layer01.safetensors missing' %s", log), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv_bad_inputs),
        cmocka_unit_test(test_csv_round_trip_merge_stats),
        cmocka_unit_test(test_published_profiles),
        cmocka_unit_test(test_profiler_round_trip),
        cmocka_unit_test(test_profiler_stability),
        cmocka_unit_test(test_cli_profile_inspect),
        cmocka_unit_test(test_cli_run_dumps),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

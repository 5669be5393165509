/* test_alloc_fail.c : allocation-failure injection. For each scenario the
 * k-th library allocation is made to fail, k = 1, 2, ... until the scenario
 * runs through without reaching k. Every failing run must return
 * SVOO_ERR_OUT_OF_MEMORY (with a message), leave no output file or temp file
 * behind and leak nothing (LeakSanitizer checks the last point under
 * `make test-asan`). Scenarios: (a) context creation + two sparse
 * svoo_attention calls with SVOO, SVG2 (and dense), N = 300, 2 heads, D = 64,
 * warm-up off; (b) profile CSV load and save; (c) safetensors / .npy open and
 * save. OpenMP runs one thread so that the allocation order is reproducible
 * (allocations inside parallel regions count too). The number of allocation
 * calls walked per scenario is printed ("walked N allocations"). */
#include "testutil.h"

#include <dirent.h>
#include <omp.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_dir[256];
static int64_t g_k; /* the allocation made to fail in the current run */

static int dir_entries(const char *dir) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static const char *tmp_path(const char *name) {
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    return p;
}

/* one run of a scenario: returns its status */
typedef svoo_status (*scenario_fn)(void *arg);

/* walks k over every allocation of fn; returns the number of allocations of
 * a clean run. expect_files: entries of g_dir a successful run leaves (a
 * failed one must leave the directory as it found it). */
static int64_t walk(const char *name, scenario_fn fn, void *arg, void (*cleanup)(void *)) {
    svoo_alloc_fail_at(0);
    svoo_status s0 = fn(arg);
    int64_t total = svoo_alloc_fail_at(0);
    assert_int_equal(s0, SVOO_OK);
    if (cleanup) cleanup(arg);
    int before = dir_entries(g_dir);
    int64_t k;
    for (k = 1;; k++) {
        g_k = k;
        svoo_alloc_fail_at(k);
        svoo_status s = fn(arg);
        int64_t used = svoo_alloc_fail_at(0);
        if (used < k) { /* the k-th allocation was never reached: clean run */
            assert_int_equal(s, SVOO_OK);
            if (cleanup) cleanup(arg);
            break;
        }
        if (s != SVOO_ERR_OUT_OF_MEMORY)
            fail_msg("%s: allocation %lld of %lld failing gave %s (%s)", name, (long long)k,
                     (long long)used, svoo_status_name(s), svoo_last_error(NULL));
        assert_true(svoo_last_error(NULL)[0] != 0);
        if (dir_entries(g_dir) != before)
            fail_msg("%s: allocation %lld failing left a file behind", name, (long long)k);
    }
    assert_int_equal(k - 1, total);
    printf("[ walk     ] %s: walked %lld allocations\n", name, (long long)total);
    return total;
}

/* ---- (a) sparse attention ---------------------------------------------- */

typedef struct {
    svoo_method method;
    svoo_tensor q, k, v, out;
} attn_arg;

static void log_quiet(void *u, const char *m) {
    (void)u;
    (void)m;
}

static svoo_status attn_run(void *p) {
    attn_arg *a = p;
    svoo_config c;
    tu_model_config(&c, a->method, 2, 64);
    c.num_threads = 1;
    c.q_clusters = a->method == SVOO_METHOD_DENSE ? 0 : 12;
    c.k_clusters = a->method == SVOO_METHOD_DENSE ? 0 : 24;
    c.log_fn = log_quiet; /* the "no profile: fallback floor" note */
    svoo_ctx *ctx = NULL;
    svoo_status s = svoo_ctx_create(&c, &ctx);
    if (s) {
        assert_null(ctx);
        return s;
    }
    svoo_stats st;
    svoo_stats_init(&st);
    for (int step = 0; step < 2 && !s; step++) {
        s = svoo_attention(ctx, step, 1, &a->q, &a->k, &a->v, &a->out, &st);
        if (s) {
            /* the message is the context's; copy the status check */
            if (!svoo_last_error(ctx)[0])
                fail_msg("allocation %lld failing: svoo_attention returned %s without a message",
                         (long long)g_k, svoo_status_name(s));
            /* svoo_last_error(NULL) is checked by walk(): mirror it */
            svoo_err(s, "%s", svoo_last_error(ctx));
        }
    }
    svoo_ctx_free(ctx);
    return s;
}

static void test_attention(void **state) {
    (void)state;
    const int64_t B = 1, H = 2, N = 300, D = 64;
    double *q = tu_random(1, (size_t)(B * H * N * D), 1.0), *k = tu_random(2, (size_t)(B * H * N * D), 1.0),
           *v = tu_random(3, (size_t)(B * H * N * D), 1.0);
    double *o = calloc((size_t)(B * H * N * D), sizeof(double));
    attn_arg a;
    a.q = tu_tensor(q, SVOO_F32, 0, B, H, N, D);
    a.v = tu_tensor(v, SVOO_F32, 0, B, H, N, D);
    a.k = tu_tensor(k, SVOO_F32, 1, B, H, N, D);
    a.out = tu_tensor(o, SVOO_F32, 0, B, H, N, D);
    const svoo_method methods[] = {SVOO_METHOD_SVOO, SVOO_METHOD_SVG2, SVOO_METHOD_DENSE};
    const char *names[] = {"svoo_attention (svoo, ctx + 2 calls)", "svoo_attention (svg2, ctx + 2 calls)",
                           "svoo_attention (dense, ctx + 2 calls)"};
    for (int i = 0; i < 3; i++) {
        a.method = methods[i];
        walk(names[i], attn_run, &a, NULL);
    }
    free(a.q.data);
    free(a.k.data);
    free(a.v.data);
    free(a.out.data);
    free(q);
    free(k);
    free(v);
    free(o);
}

/* ---- (b) profile CSV ------------------------------------------------------ */

static svoo_status profile_load_run(void *p) {
    svoo_profile *prof = NULL;
    svoo_status s = svoo_profile_load((const char *)p, &prof);
    if (s) assert_null(prof);
    svoo_profile_free(prof);
    return s;
}

static const svoo_profile *g_prof;
static svoo_status profile_save_run(void *p) {
    return svoo_profile_save(g_prof, (const char *)p);
}
static void unlink_cleanup(void *p) { unlink((const char *)p); }

static void test_profile(void **state) {
    (void)state;
    /* 10 x 30 x 12 = 3600 rows: the row table grows past its first block */
    char path[512];
    snprintf(path, sizeof path, "%s", tmp_path("profile.csv"));
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "Step,Layer,Head,Sparsity\n");
    for (int s = 1; s <= 10; s++)
        for (int l = 0; l < 30; l++)
            for (int h = 0; h < 12; h++) fprintf(f, "%d,%d,%d,%.4f\n", s, l, h, ((s * 7 + l * 3 + h) % 97) / 97.0);
    fclose(f);
    walk("svoo_profile_load", profile_load_run, path, NULL);
    svoo_profile *prof = NULL;
    assert_int_equal(svoo_profile_load(path, &prof), SVOO_OK);
    g_prof = prof;
    char out[512];
    snprintf(out, sizeof out, "%s", tmp_path("saved.csv"));
    walk("svoo_profile_save", profile_save_run, out, unlink_cleanup);
    svoo_profile_free(prof);
    unlink(path);
}

/* ---- (c) tensor files ------------------------------------------------------ */

static svoo_status tf_open_run(void *p) {
    svoo_tensorfile *f = NULL;
    svoo_status s = svoo_tensorfile_open((const char *)p, &f);
    if (s) assert_null(f);
    svoo_tensorfile_free(f);
    return s;
}

typedef struct {
    const char *path;
    const svoo_array *arrays;
    int count;
} save_arg;

static svoo_status st_save_run(void *p) {
    save_arg *a = p;
    return svoo_safetensors_save(a->path, a->arrays, a->count);
}
static svoo_status npy_save_run(void *p) {
    save_arg *a = p;
    return svoo_npy_save(a->path, &a->arrays[0]);
}
static void save_cleanup(void *p) { unlink(((save_arg *)p)->path); }

static void test_tensorfiles(void **state) {
    (void)state;
    /* 12 tensors (the table grows), an f16 one of odd length first so that
     * the f32 ones after it are misaligned in the file (aligned copies) */
    float f32[48];
    uint16_t f16[3] = {0x3c00, 0x4000, 0x4200};
    for (int i = 0; i < 48; i++) f32[i] = (float)i * 0.5f;
    svoo_array arr[12];
    char names[12][16];
    for (int i = 0; i < 12; i++) {
        memset(&arr[i], 0, sizeof arr[i]);
        snprintf(names[i], sizeof names[i], "t%02d", i);
        arr[i].name = names[i];
        if (i == 0) {
            arr[i].dtype = SVOO_F16;
            arr[i].rank = 1;
            arr[i].dims[0] = 3;
            arr[i].data = f16;
            arr[i].nbytes = sizeof f16;
        } else {
            arr[i].dtype = SVOO_F32;
            arr[i].rank = 4;
            arr[i].dims[0] = 1, arr[i].dims[1] = 2, arr[i].dims[2] = 3, arr[i].dims[3] = 8;
            arr[i].data = f32;
            arr[i].nbytes = sizeof f32;
        }
    }
    char st_path[512], npy_path[512];
    snprintf(st_path, sizeof st_path, "%s", tmp_path("w.safetensors"));
    snprintf(npy_path, sizeof npy_path, "%s", tmp_path("w.npy"));
    save_arg sa = {st_path, arr, 12}, na = {npy_path, &arr[1], 1};
    walk("svoo_safetensors_save", st_save_run, &sa, save_cleanup);
    walk("svoo_npy_save", npy_save_run, &na, save_cleanup);
    assert_int_equal(svoo_safetensors_save(st_path, arr, 12), SVOO_OK);
    assert_int_equal(svoo_npy_save(npy_path, &arr[1]), SVOO_OK);
    walk("svoo_tensorfile_open (safetensors)", tf_open_run, st_path, NULL);
    walk("svoo_tensorfile_open (npy)", tf_open_run, npy_path, NULL);
    unlink(st_path);
    unlink(npy_path);
}

/* ---- fuzz regressions --------------------------------------------------- */

/* every input of fuzz/regress/ replayed through the readers, with an
 * allocation-failure walk (the inputs that crashed the fuzzers did so on an
 * allocation failure or on a plain parse) */
static void test_fuzz_regressions(void **state) {
    (void)state;
    DIR *d = opendir(SVOO_SOURCE_DIR "/fuzz/regress");
    if (!d) skip();
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || (len > 3 && !strcmp(e->d_name + len - 3, ".md"))) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/fuzz/regress/%s", SVOO_SOURCE_DIR, e->d_name);
        int csv = len > 4 && !strcmp(e->d_name + len - 4, ".csv");
        scenario_fn fn = csv ? profile_load_run : tf_open_run;
        svoo_alloc_fail_at(0);
        svoo_status s0 = fn(path);
        int64_t total = svoo_alloc_fail_at(0);
        for (int64_t k = 1; k <= total; k++) {
            svoo_alloc_fail_at(k);
            svoo_status s = fn(path);
            svoo_alloc_fail_at(0);
            if (s != SVOO_ERR_OUT_OF_MEMORY)
                fail_msg("%s: allocation %lld of %lld failing gave %s", e->d_name, (long long)k,
                         (long long)total, svoo_status_name(s));
        }
        printf("[ regress  ] %s: %s, walked %lld allocations\n", e->d_name, svoo_status_name(s0),
               (long long)total);
        n++;
    }
    closedir(d);
    (void)n;
}

static int setup(void **state) {
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/svoo_alloc_fail_XXXXXX");
    assert_non_null(mkdtemp(g_dir));
    return 0;
}

static int teardown(void **state) {
    (void)state;
    rmdir(g_dir);
    return 0;
}

int main(void) {
    /* one OpenMP thread: the order of allocations made inside parallel
     * regions must not depend on scheduling (libgomp read OMP_NUM_THREADS
     * before main, so set the ICV directly) */
    omp_set_num_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_profile),
        cmocka_unit_test(test_tensorfiles),
        cmocka_unit_test(test_fuzz_regressions),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

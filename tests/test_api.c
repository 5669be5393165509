/* test_api.c : the bad-input matrix of the public API. Every case names the
 * input, the status it must return and a word the message must contain (the
 * offending field or argument). After each refused svoo_attention call the
 * same context must still run a valid call. SVOO_PRINT_TABLE=1 prints the
 * matrix as the markdown table of docs/RELIABILITY.md. */
#include "testutil.h"

#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static int g_print;
static void row(const char *what, svoo_status st, const char *test) {
    if (g_print) printf("| %s | `%s` | test_api.c: %s |\n", what, svoo_status_name(st), test);
}

static void log_quiet(void *u, const char *m) {
    (void)u;
    (void)m;
}

/* ---- config fields ------------------------------------------------------- */

#define CFG_CASES(X)                                                                               \
    X(size, "config.size = 3 (no svoo_config_init)", c->size = 3, SVOO_ERR_INVALID_ARGUMENT,       \
      "config.size")                                                                               \
    X(method, "config.method = 9", c->method = (svoo_method)9, SVOO_ERR_INVALID_ARGUMENT,          \
      "config.method")                                                                             \
    X(device, "config.device = 7", c->device = (svoo_device)7, SVOO_ERR_INVALID_ARGUMENT,          \
      "config.device")                                                                             \
    X(head_dim96, "config.head_dim = 96", c->head_dim = 96, SVOO_ERR_UNSUPPORTED_HEAD_DIM,         \
      "config.head_dim")                                                                           \
    X(head_dim0, "config.head_dim = 0", c->head_dim = 0, SVOO_ERR_UNSUPPORTED_HEAD_DIM,            \
      "config.head_dim")                                                                           \
    X(heads0, "config.num_heads = 0", c->num_heads = 0, SVOO_ERR_INVALID_ARGUMENT,                 \
      "config.num_heads")                                                                          \
    X(layers_neg, "config.num_layers = -1", c->num_layers = -1, SVOO_ERR_INVALID_ARGUMENT,         \
      "config.num_layers")                                                                         \
    X(steps0, "config.num_steps = 0", c->num_steps = 0, SVOO_ERR_INVALID_ARGUMENT,                 \
      "config.num_steps")                                                                          \
    X(threads_neg, "config.num_threads = -1", c->num_threads = -1, SVOO_ERR_INVALID_ARGUMENT,      \
      "config.num_threads")                                                                        \
    X(threads_huge, "config.num_threads = 286331153", c->num_threads = 286331153,                  \
      SVOO_ERR_INVALID_ARGUMENT, "config.num_threads")                                             \
    X(frames_neg, "config.frames = -1", c->frames = -1, SVOO_ERR_GEOMETRY, "config.frames")        \
    X(text_neg, "config.text_tokens = -5", c->text_tokens = -5, SVOO_ERR_GEOMETRY, "text_tokens")  \
    X(grid_huge, "config.frames x height x width = INT_MAX^3",                                     \
      c->frames = c->height = c->width = 2147483647, SVOO_ERR_GEOMETRY, "2^40")                    \
    X(svg_nogeo, "method svg without frames/height/width",                                         \
      (c->method = SVOO_METHOD_SVG, c->frames = 0), SVOO_ERR_GEOMETRY, "config.frames")            \
    X(wsf_big, "config.warmup_step_frac = 1.5", c->warmup_step_frac = 1.5,                         \
      SVOO_ERR_INVALID_ARGUMENT, "config.warmup_step_frac")                                        \
    X(wsf_nan, "config.warmup_step_frac = NaN", c->warmup_step_frac = NAN,                         \
      SVOO_ERR_INVALID_ARGUMENT, "config.warmup_step_frac")                                        \
    X(wlf_neg, "config.warmup_layer_frac = -0.1", c->warmup_layer_frac = -0.1,                     \
      SVOO_ERR_INVALID_ARGUMENT, "config.warmup_layer_frac")                                       \
    X(rss_neg, "config.reuse_start_step = -1", c->reuse_start_step = -1,                           \
      SVOO_ERR_INVALID_ARGUMENT, "config.reuse_start_step")                                        \
    X(re_neg, "config.reuse_every = -1", c->reuse_every = -1, SVOO_ERR_INVALID_ARGUMENT,           \
      "config.reuse_every")                                                                        \
    X(qc_neg, "config.q_clusters = -1", c->q_clusters = -1, SVOO_ERR_INVALID_ARGUMENT,             \
      "config.q_clusters")                                                                         \
    X(kc_neg, "config.k_clusters = -3", c->k_clusters = -3, SVOO_ERR_INVALID_ARGUMENT,             \
      "config.k_clusters")                                                                         \
    X(iters0, "config.iters = 0", c->iters = 0, SVOO_ERR_INVALID_ARGUMENT, "config.iters")         \
    X(kif0, "config.kmeans_iters_first = 0", c->kmeans_iters_first = 0, SVOO_ERR_INVALID_ARGUMENT, \
      "config.kmeans_iters_first")                                                                 \
    X(ki_neg, "config.kmeans_iters = -1", c->kmeans_iters = -1, SVOO_ERR_INVALID_ARGUMENT,         \
      "config.kmeans_iters")                                                                       \
    X(topp0, "config.top_p = 0", c->top_p = 0, SVOO_ERR_INVALID_ARGUMENT, "config.top_p")          \
    X(topp_big, "config.top_p = 1.01", c->top_p = 1.01, SVOO_ERR_INVALID_ARGUMENT, "config.top_p") \
    X(topp_neg, "config.top_p = -0.5", c->top_p = -0.5, SVOO_ERR_INVALID_ARGUMENT, "config.top_p") \
    X(topp_nan, "config.top_p = NaN", c->top_p = NAN, SVOO_ERR_INVALID_ARGUMENT, "config.top_p")   \
    X(topp_inf, "config.top_p = +Inf", c->top_p = INFINITY, SVOO_ERR_INVALID_ARGUMENT,             \
      "config.top_p")                                                                              \
    X(floor_neg, "config.floor_ratio = -0.1", c->floor_ratio = -0.1, SVOO_ERR_INVALID_ARGUMENT,    \
      "config.floor_ratio")                                                                        \
    X(floor_big, "config.floor_ratio = 1.1", c->floor_ratio = 1.1, SVOO_ERR_INVALID_ARGUMENT,      \
      "config.floor_ratio")                                                                        \
    X(fmin_neg, "config.floor_min = -0.01", c->floor_min = -0.01, SVOO_ERR_INVALID_ARGUMENT,       \
      "config.floor_min")                                                                          \
    X(fmin_nan, "config.floor_min = NaN", c->floor_min = NAN, SVOO_ERR_INVALID_ARGUMENT,           \
      "config.floor_min")                                                                          \
    X(fmax_lt, "config.floor_max < floor_min (0.1 < 0.15)", c->floor_max = 0.1,                    \
      SVOO_ERR_INVALID_ARGUMENT, "config.floor_max")                                               \
    X(fmax_big, "config.floor_max = 1.5", c->floor_max = 1.5, SVOO_ERR_INVALID_ARGUMENT,           \
      "config.floor_max")                                                                          \
    X(svgsp0, "config.svg_sparsity = 0", c->svg_sparsity = 0, SVOO_ERR_INVALID_ARGUMENT,           \
      "config.svg_sparsity")                                                                       \
    X(svgsp1, "config.svg_sparsity = 1", c->svg_sparsity = 1, SVOO_ERR_INVALID_ARGUMENT,           \
      "config.svg_sparsity")                                                                       \
    X(svgrows0, "config.svg_sample_rows = 0", c->svg_sample_rows = 0, SVOO_ERR_INVALID_ARGUMENT,   \
      "config.svg_sample_rows")                                                                    \
    X(svgblock8, "config.svg_block = 8", c->svg_block = 8, SVOO_ERR_INVALID_ARGUMENT,              \
      "config.svg_block")                                                                          \
    X(svgblock20, "config.svg_block = 20", c->svg_block = 20, SVOO_ERR_INVALID_ARGUMENT,           \
      "config.svg_block")                                                                          \
    X(recall_neg, "config.recall_rows = -1", c->recall_rows = -1, SVOO_ERR_INVALID_ARGUMENT,       \
      "config.recall_rows")                                                                        \
    X(maxb_neg, "config.max_batch = -3", c->max_batch = -3, SVOO_ERR_INVALID_ARGUMENT,             \
      "max_batch")                                                                                 \
    X(maxn_neg, "config.max_tokens = -1", c->max_tokens = -1, SVOO_ERR_INVALID_ARGUMENT,           \
      "max_tokens")                                                                                \
    X(kvorder2, "config.cuda_kv_order = 2", c->cuda_kv_order = 2, SVOO_ERR_INVALID_ARGUMENT,       \
      "config.cuda_kv_order")                                                                      \
    X(profile_heads, "config.profile with 3 heads, model with 2", c->profile = g_prof3,            \
      SVOO_ERR_PROFILE_MISMATCH, "config.profile")

static svoo_profile *g_prof3;

#define X_FN(id, desc, stmt, st, needle)                                                           \
    static void cfg_##id(svoo_config *c) {                                                         \
        stmt;                                                                                      \
    }
CFG_CASES(X_FN)
#undef X_FN

typedef struct {
    const char *desc;
    void (*mutate)(svoo_config *);
    svoo_status want;
    const char *needle;
} cfg_case;

static const cfg_case k_cfg_cases[] = {
#define X_ROW(id, desc, stmt, st, needle) {desc, cfg_##id, st, needle},
    CFG_CASES(X_ROW)
#undef X_ROW
};

static void base_config(svoo_config *c, svoo_method m) {
    tu_model_config(c, m, 2, 64);
    c->log_fn = log_quiet;
}

static void test_config_fields(void **state) {
    (void)state;
    assert_int_equal(svoo_profile_create(4, 4, 3, &g_prof3), SVOO_OK);
    for (size_t i = 0; i < sizeof k_cfg_cases / sizeof *k_cfg_cases; i++) {
        const cfg_case *cc = &k_cfg_cases[i];
        for (int m = 0; m < 3; m++) { /* dense, svoo, svg2: validation is method-independent */
            svoo_config c;
            base_config(&c, (svoo_method)m);
            cc->mutate(&c);
            svoo_ctx *ctx = (svoo_ctx *)&c; /* must be overwritten with NULL */
            svoo_status s = svoo_ctx_create(&c, &ctx);
            if (s != cc->want)
                fail_msg("%s (method %d): %s, expected %s (%s)", cc->desc, m, svoo_status_name(s),
                         svoo_status_name(cc->want), svoo_last_error(NULL));
            assert_null(ctx);
            if (!strstr(svoo_last_error(NULL), cc->needle))
                fail_msg("%s: message '%s' does not name '%s'", cc->desc, svoo_last_error(NULL),
                         cc->needle);
        }
        row(cc->desc, cc->want, "test_config_fields");
    }
    svoo_profile_free(g_prof3);
    /* NULL pointers */
    svoo_config c;
    base_config(&c, SVOO_METHOD_SVOO);
    svoo_ctx *ctx = NULL;
    assert_int_equal(svoo_ctx_create(NULL, &ctx), SVOO_ERR_NULL_POINTER);
    assert_non_null(strstr(svoo_last_error(NULL), "cfg"));
    row("svoo_ctx_create(cfg = NULL)", SVOO_ERR_NULL_POINTER, "test_config_fields");
    assert_int_equal(svoo_ctx_create(&c, NULL), SVOO_ERR_NULL_POINTER);
    row("svoo_ctx_create(out = NULL)", SVOO_ERR_NULL_POINTER, "test_config_fields");
    if (!svoo_has_cuda()) {
        c.device = SVOO_DEVICE_CUDA;
        assert_int_equal(svoo_ctx_create(&c, &ctx), SVOO_ERR_UNSUPPORTED);
        assert_non_null(strstr(svoo_last_error(NULL), "config.device"));
        row("config.device = CUDA in a build without CUDA", SVOO_ERR_UNSUPPORTED,
            "test_config_fields");
    } else {
        /* a CUDA build: device index 63 does not exist (or no device / driver at
         * all); the failing backend's message reaches svoo_last_error(NULL) */
        c.device = SVOO_DEVICE_CUDA;
        c.device_index = 63;
        assert_int_equal(svoo_ctx_create(NULL, &ctx), SVOO_ERR_NULL_POINTER);
        char before[512];
        snprintf(before, sizeof before, "%s", svoo_last_error(NULL));
        svoo_status s = svoo_ctx_create(&c, &ctx);
        assert_true(s == SVOO_ERR_WRONG_DEVICE || s == SVOO_ERR_CUDA);
        assert_true(svoo_last_error(NULL)[0] != 0);
        assert_string_not_equal(svoo_last_error(NULL), before);
        c.device_index = 0;
        /* config.ear runs on the GPU (cuda/ear_cuda.cu): accepted; without a device
         * the creation fails for that reason, never for ear */
        c.ear = 1;
        s = svoo_ctx_create(&c, &ctx);
        if (s == SVOO_OK) svoo_ctx_free(ctx);
        assert_int_not_equal(s, SVOO_ERR_UNSUPPORTED);
        assert_true(s == SVOO_OK || !strstr(svoo_last_error(NULL), "config.ear"));
        c.ear = 0;
        /* refused before any device is touched, so this holds without a GPU */
        c.check_finite = 1;
        assert_int_equal(svoo_ctx_create(&c, &ctx), SVOO_ERR_UNSUPPORTED);
        assert_non_null(strstr(svoo_last_error(NULL), "config.check_finite"));
        row("config.check_finite = 1 with config.device = CUDA", SVOO_ERR_UNSUPPORTED,
            "test_config_fields");
        c.check_finite = 0;
    }
    /* the defaults of every method validate */
    for (int m = 0; m < 3; m++) {
        base_config(&c, (svoo_method)m);
        assert_int_equal(svoo_ctx_create(&c, &ctx), SVOO_OK);
        svoo_ctx_free(ctx);
    }
    svoo_ctx_free(NULL);
    svoo_ctx_reset(NULL);
}

/* ---- svoo_attention arguments -------------------------------------------- */

#define H 2
#define N 40
#define DD 64

typedef struct {
    svoo_ctx *ctx;
    svoo_tensor q, k, v, out;
    int step, layer;
    svoo_stats st, *stp;
    int null_q, null_out;
} call;

static float g_buf[5][H * N * DD * 2];

static void call_init(call *a, svoo_ctx *ctx) {
    memset(a, 0, sizeof *a);
    a->ctx = ctx;
    a->q = svoo_tensor_bhnd(g_buf[0], SVOO_F32, 1, H, N, DD);
    a->k = svoo_tensor_bhnd(g_buf[1], SVOO_F32, 1, H, N, DD);
    a->v = svoo_tensor_bnhd(g_buf[2], SVOO_F32, 1, N, H, DD);
    a->out = svoo_tensor_bhnd(g_buf[3], SVOO_F32, 1, H, N, DD);
    a->step = 3;
    a->layer = 1;
    svoo_stats_init(&a->st);
    a->stp = &a->st;
}

static svoo_status call_run(call *a) {
    return svoo_attention(a->ctx, a->step, a->layer, a->null_q ? NULL : &a->q, &a->k, &a->v,
                          a->null_out ? NULL : &a->out, a->stp);
}

#define ATT_CASES(X)                                                                               \
    X(ctx_null, "svoo_attention(ctx = NULL)", a->ctx = NULL, SVOO_ERR_NULL_POINTER, "ctx")         \
    X(q_null, "q = NULL", a->null_q = 1, SVOO_ERR_NULL_POINTER, "q")                               \
    X(out_null, "out = NULL", a->null_out = 1, SVOO_ERR_NULL_POINTER, "out")                       \
    X(qdata_null, "q.data = NULL", a->q.data = NULL, SVOO_ERR_NULL_POINTER, "q")                   \
    X(vdata_null, "v.data = NULL", a->v.data = NULL, SVOO_ERR_NULL_POINTER, "v")                   \
    X(dtype_unknown, "k.dtype = 9 (unknown)", a->k.dtype = (svoo_dtype)9, SVOO_ERR_UNKNOWN_DTYPE,  \
      "k")                                                                                         \
    X(dtype_mismatch, "k bf16 with q f32", a->k.dtype = SVOO_BF16, SVOO_ERR_DTYPE_MISMATCH, "k")   \
    X(out_dtype, "out f16 with q f32", a->out.dtype = SVOO_F16, SVOO_ERR_DTYPE_MISMATCH, "out")    \
    X(shape0, "q.shape N = 0", a->q.shape[2] = 0, SVOO_ERR_INVALID_ARGUMENT, "q")                  \
    X(shape_neg, "v.shape B = -1", a->v.shape[0] = -1, SVOO_ERR_INVALID_ARGUMENT, "v")             \
    X(shape_huge, "q.shape N = 2^40", a->q.shape[2] = (int64_t)1 << 40, SVOO_ERR_INVALID_ARGUMENT, \
      "q")                                                                                         \
    X(k_heads, "k with 1 head, q with 2", a->k.shape[1] = 1, SVOO_ERR_SHAPE_MISMATCH, "k")         \
    X(k_dim, "k with D = 32, q with 64", a->k.shape[3] = 32, SVOO_ERR_SHAPE_MISMATCH, "k")         \
    X(v_n, "v with N - 1 rows, k with N", a->v.shape[2] = N - 1, SVOO_ERR_SHAPE_MISMATCH, "v")     \
    X(out_n, "out with N - 1 rows, q with N", a->out.shape[2] = N - 1, SVOO_ERR_SHAPE_MISMATCH,    \
      "out")                                                                                       \
    X(kn_sparse, "sparse method, k with N/2 keys (cross-attention)",                               \
      (a->k.shape[2] = N / 2, a->v.shape[2] = N / 2), SVOO_ERR_SHAPE_MISMATCH, "self-attention")   \
    X(heads_cfg, "q/k/v/out with 1 head, config.num_heads = 2",                                    \
      (a->q.shape[1] = a->k.shape[1] = a->v.shape[1] = a->out.shape[1] = 1),                       \
      SVOO_ERR_SHAPE_MISMATCH, "num_heads")                                                        \
    X(hd32, "head dim 32 (all tensors), config.head_dim = 64",                                     \
      (a->q.shape[3] = a->k.shape[3] = a->v.shape[3] = a->out.shape[3] = 32),                      \
      SVOO_ERR_UNSUPPORTED_HEAD_DIM, "head dim")                                                   \
    X(overlap, "q.stride N = D/2 (rows overlap)", a->q.stride[2] = DD / 2,                         \
      SVOO_ERR_OVERLAPPING_STRIDES, "q")                                                           \
    X(overlap_h, "out.stride H = 0 (heads alias)", a->out.stride[1] = 0,                           \
      SVOO_ERR_OVERLAPPING_STRIDES, "out")                                                         \
    X(out_is_q, "out = q (in place)", a->out.data = g_buf[0], SVOO_ERR_INVALID_ARGUMENT,           \
      "overlaps q")                                                                                \
    X(out_in_v, "out's first row is v's last element", a->out.data = g_buf[2] + H * N * DD - 1,    \
      SVOO_ERR_INVALID_ARGUMENT, "overlaps v")                                                     \
    X(out_after_k, "out right after k (disjoint)", a->out.data = g_buf[1] + H * N * DD, SVOO_OK,   \
      "")                                                                                          \
    X(stride_d, "k.stride D = 2", a->k.stride[3] = 2, SVOO_ERR_INVALID_ARGUMENT, "k")              \
    X(stride_neg, "v.stride N = -64", a->v.stride[2] = -64, SVOO_ERR_INVALID_ARGUMENT, "v")        \
    X(stride_ovf, "q.stride N = 2^62 (stride x shape overflows int64; fuzz_config)",               \
      a->q.stride[2] = (int64_t)1 << 62, SVOO_ERR_INVALID_ARGUMENT, "overflows")                   \
    X(device_q, "q on CUDA, context on CPU",                                                       \
      (a->q.device = a->k.device = a->v.device = a->out.device = SVOO_DEVICE_CUDA),                \
      SVOO_ERR_WRONG_DEVICE, "device")                                                             \
    X(device_k, "k on CUDA, q on CPU", a->k.device = SVOO_DEVICE_CUDA, SVOO_ERR_WRONG_DEVICE, "k") \
    X(device_bad, "q.device = 5", a->q.device = (svoo_device)5, SVOO_ERR_INVALID_ARGUMENT, "q")    \
    X(step_neg, "step = -1", a->step = -1, SVOO_ERR_OUT_OF_RANGE, "step")                          \
    X(step_big, "step = num_steps", a->step = 50, SVOO_ERR_OUT_OF_RANGE, "step")                   \
    X(layer_neg, "layer = -1", a->layer = -1, SVOO_ERR_OUT_OF_RANGE, "layer")                      \
    X(layer_big, "layer = num_layers", a->layer = 4, SVOO_ERR_OUT_OF_RANGE, "layer")               \
    X(stats_size, "stats.size = 0 (no svoo_stats_init)", a->st.size = 0,                           \
      SVOO_ERR_INVALID_ARGUMENT, "stats")

#define X_FN(id, desc, stmt, st, needle)                                                           \
    static void att_##id(call *a) {                                                                \
        stmt;                                                                                      \
    }
ATT_CASES(X_FN)
#undef X_FN

typedef struct {
    const char *desc;
    void (*mutate)(call *);
    svoo_status want;
    const char *needle;
} att_case;

static const att_case k_att_cases[] = {
#define X_ROW(id, desc, stmt, st, needle) {desc, att_##id, st, needle},
    ATT_CASES(X_ROW)
#undef X_ROW
};

static void fill(void) {
    uint64_t s = 42;
    for (int b = 0; b < 3; b++)
        for (size_t i = 0; i < sizeof g_buf[b] / 4; i++)
            g_buf[b][i] = (float)tu_normal(&s);
}

static void test_attention_args(void **state) {
    (void)state;
    fill();
    for (int m = 0; m < 3; m++) {
        svoo_config c;
        base_config(&c, (svoo_method)m);
        c.q_clusters = 4;
        c.k_clusters = 8;
        svoo_ctx *ctx = NULL;
        assert_int_equal(svoo_ctx_create(&c, &ctx), SVOO_OK);
        for (size_t i = 0; i < sizeof k_att_cases / sizeof *k_att_cases; i++) {
            const att_case *ac = &k_att_cases[i];
            call a;
            call_init(&a, ctx);
            ac->mutate(&a);
            svoo_status want = ac->want;
            if (m == SVOO_METHOD_DENSE && !strcmp(ac->needle, "self-attention")) want = SVOO_OK;
            svoo_status s = call_run(&a);
            const char *msg = a.ctx ? svoo_last_error(ctx) : svoo_last_error(NULL);
            if (s != want)
                fail_msg("%s (%s): %s, expected %s (%s)", ac->desc, svoo_method_name(c.method),
                         svoo_status_name(s), svoo_status_name(want), msg);
            if (want && !strstr(msg, ac->needle))
                fail_msg("%s: message '%s' does not name '%s'", ac->desc, msg, ac->needle);
            /* the context is still usable */
            call ok;
            call_init(&ok, ctx);
            if (call_run(&ok) != SVOO_OK)
                fail_msg("after '%s': valid call fails: %s", ac->desc, svoo_last_error(ctx));
            if (m == 1) row(ac->desc, ac->want, "test_attention_args");
        }
        svoo_ctx_free(ctx);
    }
}

/* cluster counts > N, SVG geometry != N */
static void test_clusters_and_geometry(void **state) {
    (void)state;
    fill();
    for (int m = 1; m < 3; m++)
        for (int which = 0; which < 2; which++) {
            svoo_config c;
            base_config(&c, (svoo_method)m);
            c.q_clusters = which ? 4 : N + 1;
            c.k_clusters = which ? N + 5 : 8;
            svoo_ctx *ctx = NULL;
            assert_int_equal(svoo_ctx_create(&c, &ctx), SVOO_OK);
            call a;
            call_init(&a, ctx);
            assert_int_equal(call_run(&a), SVOO_ERR_INVALID_ARGUMENT);
            assert_non_null(strstr(svoo_last_error(ctx), which ? "k_clusters" : "q_clusters"));
            svoo_ctx_free(ctx);
            if (m == 1)
                row(which ? "config.k_clusters = N + 5 (call with N tokens)"
                          : "config.q_clusters = N + 1 (call with N tokens)",
                    SVOO_ERR_INVALID_ARGUMENT, "test_clusters_and_geometry");
        }
    svoo_config c;
    base_config(&c, SVOO_METHOD_SVG);
    c.frames = 2, c.height = 4, c.width = 4, c.text_tokens = 9; /* 41 != 40 */
    svoo_ctx *ctx = NULL;
    assert_int_equal(svoo_ctx_create(&c, &ctx), SVOO_OK);
    call a;
    call_init(&a, ctx);
    assert_int_equal(call_run(&a), SVOO_ERR_GEOMETRY);
    assert_non_null(strstr(svoo_last_error(ctx), "frames"));
    row("svg: frames x height x width + text_tokens != N", SVOO_ERR_GEOMETRY,
        "test_clusters_and_geometry");
    svoo_ctx_free(ctx);
}

/* ---- the other entry points ---------------------------------------------- */

static void test_other_entry_points(void **state) {
    (void)state;
    char dir[] = "/tmp/svoo_api_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    svoo_tensorfile *tf = (svoo_tensorfile *)dir;
    assert_int_equal(svoo_tensorfile_open(NULL, &tf), SVOO_ERR_NULL_POINTER);
    assert_null(tf);
    row("svoo_tensorfile_open(path = NULL)", SVOO_ERR_NULL_POINTER, "test_other_entry_points");
    snprintf(path, sizeof path, "%s/missing.safetensors", dir);
    assert_int_equal(svoo_tensorfile_open(path, &tf), SVOO_ERR_IO);
    assert_non_null(strstr(svoo_last_error(NULL), "missing.safetensors"));
    row("svoo_tensorfile_open(a missing file)", SVOO_ERR_IO, "test_other_entry_points");
    assert_int_equal(svoo_tensorfile_open(dir, &tf), SVOO_ERR_IO);
    row("svoo_tensorfile_open(a directory)", SVOO_ERR_IO, "test_other_entry_points");
    svoo_profile *p = NULL;
    assert_int_equal(svoo_profile_load(NULL, &p), SVOO_ERR_NULL_POINTER);
    assert_int_equal(svoo_profile_load(path, &p), SVOO_ERR_IO);
    row("svoo_profile_load(a missing file)", SVOO_ERR_IO, "test_other_entry_points");
    assert_int_equal(svoo_profile_load(dir, &p), SVOO_ERR_IO);
    assert_non_null(strstr(svoo_last_error(NULL), "Is a directory")); /* was "read error" */
    assert_int_equal(svoo_profile_create(0, 1, 1, &p), SVOO_ERR_INVALID_ARGUMENT);
    assert_int_equal(svoo_profile_create(2, 2, 2, &p), SVOO_OK);
    double v;
    assert_int_equal(svoo_profile_get(p, 2, 0, 0, &v), SVOO_ERR_OUT_OF_RANGE);
    assert_int_equal(svoo_profile_get(p, 0, -1, 0, &v), SVOO_ERR_OUT_OF_RANGE);
    assert_int_equal(svoo_profile_get(p, 0, 0, 0, &v), SVOO_ERR_NOT_FOUND);
    row("svoo_profile_get(step = steps)", SVOO_ERR_OUT_OF_RANGE, "test_other_entry_points");
    row("svoo_profile_get(an absent entry)", SVOO_ERR_NOT_FOUND, "test_other_entry_points");
    snprintf(path, sizeof path, "%s/no/such/dir/p.csv", dir);
    assert_int_equal(svoo_profile_save(p, path), SVOO_ERR_IO);
    row("svoo_profile_save(into a missing directory)", SVOO_ERR_IO, "test_other_entry_points");
    svoo_profile_free(p);
    svoo_method m;
    assert_int_equal(svoo_method_parse("bogus", &m), SVOO_ERR_INVALID_ARGUMENT);
    assert_int_equal(svoo_method_parse(NULL, &m), SVOO_ERR_NULL_POINTER);
    assert_string_equal(svoo_status_name((svoo_status)99), "SVOO_ERR_UNKNOWN_STATUS");
    assert_non_null(svoo_status_string((svoo_status)-1));
    /* arrays and writers */
    float data[6] = {0};
    svoo_array a = {"x", SVOO_F32, 2, {2, 3}, data, sizeof data};
    svoo_tensor t;
    assert_int_equal(svoo_array_view(&a, 0, &t), SVOO_ERR_SHAPE_MISMATCH);
    row("svoo_array_view(a rank-2 array)", SVOO_ERR_SHAPE_MISMATCH, "test_other_entry_points");
    svoo_array arr[2] = {a, a};
    snprintf(path, sizeof path, "%s/d.safetensors", dir);
    assert_int_equal(svoo_safetensors_save(path, arr, 2), SVOO_ERR_DUPLICATE_NAME);
    assert_int_equal(access(path, F_OK), -1);
    row("svoo_safetensors_save(two arrays named 'x')", SVOO_ERR_DUPLICATE_NAME,
        "test_other_entry_points");
    arr[1].name = "y";
    arr[1].nbytes = 5;
    assert_int_equal(svoo_safetensors_save(path, arr, 2), SVOO_ERR_INVALID_ARGUMENT);
    assert_int_equal(access(path, F_OK), -1);
    row("svoo_safetensors_save(nbytes != shape)", SVOO_ERR_INVALID_ARGUMENT,
        "test_other_entry_points");
    arr[1].nbytes = sizeof data;
    arr[1].rank = 9;
    assert_int_equal(svoo_safetensors_save(path, arr, 2), SVOO_ERR_INVALID_ARGUMENT);
    row("svoo_safetensors_save(rank 9)", SVOO_ERR_INVALID_ARGUMENT, "test_other_entry_points");
    assert_int_equal(svoo_npy_save(path, NULL), SVOO_ERR_NULL_POINTER);
    snprintf(path, sizeof path, "%s/no/such/dir/x.npy", dir);
    assert_int_equal(svoo_npy_save(path, &a), SVOO_ERR_IO);
    row("svoo_npy_save(into a missing directory)", SVOO_ERR_IO, "test_other_entry_points");
    snprintf(path, sizeof path, "%s/fifo", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(svoo_npy_save(path, &a), SVOO_ERR_IO);
    assert_int_equal(svoo_safetensors_save(path, &a, 1), SVOO_ERR_IO);
    row("svoo_npy_save / svoo_safetensors_save(onto a FIFO; test_io.c also: a symbolic link, "
        "a directory, svoo_profile_save)",
        SVOO_ERR_IO, "test_other_entry_points");
    unlink(path);
    /* metrics and density */
    svoo_tensor x = svoo_tensor_bhnd(data, SVOO_F32, 1, 1, 2, 3),
                y = svoo_tensor_bhnd(data, SVOO_F32, 1, 1, 3, 2);
    svoo_compare_result r;
    assert_int_equal(svoo_compare(&x, &y, &r), SVOO_ERR_SHAPE_MISMATCH);
    row("svoo_compare(shapes differ)", SVOO_ERR_SHAPE_MISMATCH, "test_other_entry_points");
    double dens[1];
    assert_int_equal(svoo_density(&x, &x, 1.5, 1, 0, dens), SVOO_ERR_INVALID_ARGUMENT);
    assert_int_equal(svoo_density(&x, &x, 0.9, 0, 0, dens), SVOO_ERR_INVALID_ARGUMENT);
    row("svoo_density(tau = 1.5 or row_step = 0)", SVOO_ERR_INVALID_ARGUMENT,
        "test_other_entry_points");
    size_t bytes;
    svoo_config c;
    base_config(&c, SVOO_METHOD_SVOO);
    assert_int_equal(svoo_workspace_size(NULL, 1, 64, &bytes), SVOO_ERR_NULL_POINTER);
    assert_int_equal(svoo_workspace_size(&c, 1, 64, NULL), SVOO_ERR_NULL_POINTER);
    if (svoo_has_cuda()) { /* host-side sizing: no device needed */
        c.device = SVOO_DEVICE_CUDA;
        c.max_tokens = 75600;
        assert_int_equal(svoo_workspace_size(&c, 1, 75600, &bytes), SVOO_OK);
        assert_true(bytes > 0);
        /* a config svoo_ctx_create refuses is refused here too (it was sized) */
        c.head_dim = 96;
        assert_int_equal(svoo_workspace_size(&c, 1, 75600, &bytes), SVOO_ERR_UNSUPPORTED_HEAD_DIM);
        /* more cluster pairs than the block map's int32 offsets hold (review 2026-12-02) */
        tu_model_config(&c, SVOO_METHOD_SVG2, 40, 128);
        c.device = SVOO_DEVICE_CUDA;
        c.q_clusters = 6144;
        c.k_clusters = 4096;
        assert_int_equal(svoo_workspace_size(&c, 3, 75600, &bytes), SVOO_ERR_UNSUPPORTED);
        assert_non_null(strstr(svoo_last_error(NULL), "cluster pairs"));
    }
    rmdir(dir);
}

int main(void) {
    const char *pt = getenv("SVOO_PRINT_TABLE");
    g_print = pt && pt[0] == '1';
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_fields),
        cmocka_unit_test(test_attention_args),
        cmocka_unit_test(test_clusters_and_geometry),
        cmocka_unit_test(test_other_entry_points),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* fuzz_config.c : libFuzzer target for svoo_ctx_create's config validation and
 * svoo_attention's argument validation, then real CPU calls on what passes.
 *
 * The input is read as a stream of choices (bytes; missing bytes read as 0):
 * every config field is either a plausible value (most of the time) or one of
 * the classic bad ones (0, -1, INT_MIN/MAX, NaN, +-Inf, -0, raw bits). Then up
 * to three svoo_attention calls with fuzzed shapes, dtypes, layouts, strides,
 * step/layer and NaN/Inf injection.
 *
 * Views the harness could not back with memory (negative or huge strides,
 * huge shapes) are passed with step = -1: the library must reject the call
 * before touching the data (qkvo checks come first, then the step check).
 *
 * Oracles: statuses are in the enum and carry a message; a config error names
 * the field ("config."); an accepted call on finite inputs gives finite
 * outputs inside the per-column range of V (softmax rows are convex
 * combinations) unless EAR compensation is on; dense calls match an f64
 * reference; check_finite = 1 with a NaN/Inf gives SVOO_ERR_NONFINITE_INPUT.
 * With FUZZ_ALLOC_FAIL != 0 one call is repeated with its k-th allocation
 * failing: SVOO_ERR_OUT_OF_MEMORY (or the clean status), no leak, and the
 * context stays usable. */
#include "fuzz_common.h"

#include <limits.h>
#include <math.h>

typedef struct {
    const uint8_t *p;
    size_t n;
} rd;

static uint8_t u8(rd *r) {
    if (!r->n) return 0;
    r->n--;
    return *r->p++;
}
static uint64_t u64(rd *r) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | u8(r);
    return v;
}
/* a value in [lo, hi] most of the time, else a classic bad int */
static int fint(rd *r, int lo, int hi) {
    uint8_t sel = u8(r);
    if (sel < 224) return lo + (int)(u8(r) % (unsigned)(hi - lo + 1));
    static const int bad[] = {0, -1, INT_MIN, INT_MAX, 1, 2, 1 << 20, -1000};
    if (sel < 224 + 8 * 3) return bad[(sel - 224) / 3];
    int v = (int)(uint32_t)u64(r);
    return v;
}
/* same, without the huge values (iteration counts: a huge count is valid and
 * only slow) */
static int fint_small(rd *r, int lo, int hi) {
    uint8_t sel = u8(r);
    if (sel < 232) return lo + (int)(u8(r) % (unsigned)(hi - lo + 1));
    static const int bad[] = {0, -1, INT_MIN, -7};
    return bad[sel % 4];
}
static double fdbl(rd *r, double lo, double hi) {
    uint8_t sel = u8(r);
    if (sel < 216) return lo + (hi - lo) * u8(r) / 255.0;
    static const double bad[] = {NAN, INFINITY, -INFINITY, -0.0, -1e-9, 1 + 1e-9, 0, 1, 1e300, 1e-300};
    if (sel < 216 + 10 * 3) return bad[(sel - 216) / 3];
    uint64_t b = u64(r);
    double d;
    memcpy(&d, &b, 8);
    return d;
}

static int g_logs;
static void log_fn(void *user, const char *msg) {
    (void)user;
    FZ_CHECK(msg && msg[0], "empty log message");
    g_logs++;
}

static svoo_profile *g_prof[4]; /* heads 1..3: 5 steps x 2 layers, one hole */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fz_init();
    for (int h = 1; h <= 3; h++) {
        if (svoo_profile_create(5, 2, h, &g_prof[h])) abort();
        for (int s = 0; s < 5; s++)
            for (int l = 0; l < 2; l++)
                for (int x = 0; x < h; x++)
                    if (!(s == 3 && l == 1 && x == 0))
                        svoo_profile_set(g_prof[h], s, l, x, 0.05 + 0.1 * ((s + l + x) % 4));
    }
    return 0;
}

typedef struct {
    svoo_tensor t;
    void *buf;
    int safe;     /* backed by memory covering every element */
    int nonfinite;
} fview;

static uint64_t g_rng;
static double rnd(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return ((double)(g_rng >> 11) / 9007199254740992.0) * 2 - 1;
}

static const int64_t k_bad64[] = {0, -1, 1, INT64_MAX, INT64_MIN, (int64_t)1 << 40, 3, 2};

/* a view of shape (B, H, N, D): layout and strides from the input */
static void make_view(rd *r, fview *v, svoo_dtype dt, int64_t B, int64_t H, int64_t N, int64_t D,
                      double scale) {
    memset(v, 0, sizeof *v);
    uint8_t lay = u8(r) % 8;
    int64_t sh[4] = {B, H, N, D}, st[4];
    if (lay < 3) { /* bhnd */
        st[3] = 1, st[2] = D, st[1] = N * D, st[0] = H * N * D;
    } else if (lay < 6) { /* bnhd */
        st[3] = 1, st[1] = D, st[2] = H * D, st[0] = N * H * D;
    } else if (lay == 6) { /* padded rows and heads */
        int64_t pad = u8(r) % 9;
        st[3] = 1, st[2] = D + pad, st[1] = N * (D + pad) + (u8(r) % 5), st[0] = H * st[1] + 1;
    } else { /* raw: strides and maybe shapes from the input */
        for (int i = 0; i < 4; i++) {
            uint8_t s = u8(r);
            st[i] = s < 128 ? (int64_t)(s % 200) : k_bad64[s % 8];
            if (u8(r) > 240) sh[i] = k_bad64[u8(r) % 8];
        }
    }
    if (u8(r) > 250) dt = (svoo_dtype)(u8(r) % 5); /* maybe an unknown dtype */
    v->t.dtype = dt;
    v->t.device = u8(r) > 252 ? SVOO_DEVICE_CUDA : SVOO_DEVICE_CPU;
    memcpy(v->t.shape, sh, sizeof sh);
    memcpy(v->t.stride, st, sizeof st);
    /* can the harness back it? */
    __int128 maxoff = 0;
    int ok = svoo_dtype_size(dt) != 0;
    for (int i = 0; i < 4 && ok; i++) {
        if (sh[i] <= 0 || sh[i] > 4096 || st[i] < 0 || st[i] > (1 << 22)) ok = 0;
        else maxoff += (__int128)(sh[i] - 1) * st[i];
    }
    if (ok && maxoff > (1 << 20)) ok = 0;
    size_t es = svoo_dtype_size(dt) ? svoo_dtype_size(dt) : 4;
    if (!ok) {
        v->buf = calloc(16, 1);
        v->t.data = u8(r) > 250 ? NULL : v->buf;
        return;
    }
    size_t n = (size_t)maxoff + 1;
    v->buf = calloc(n, es);
    v->t.data = u8(r) > 252 ? NULL : v->buf;
    v->safe = v->t.data != NULL;
    uint8_t inj = u8(r);
    int64_t inj_at = -1;
    if (inj > 235) inj_at = (int64_t)(u64(r) % n);
    for (size_t i = 0; i < n; i++) {
        float x = (float)(rnd() * scale);
        if ((int64_t)i == inj_at) x = (inj & 1) ? NAN : (inj & 2 ? INFINITY : -INFINITY);
        if (es == 4) ((float *)v->buf)[i] = x;
        else if (dt == SVOO_F16) {
            _Float16 h = (_Float16)x;
            memcpy((uint16_t *)v->buf + i, &h, 2);
        } else {
            uint32_t u;
            memcpy(&u, &x, 4);
            ((uint16_t *)v->buf)[i] = (uint16_t)(u >> 16); /* truncation keeps NaN/Inf */
        }
    }
    /* did the injection land on an element of the view? */
    for (int64_t b = 0; b < sh[0] && inj_at >= 0; b++)
        for (int64_t h = 0; h < sh[1]; h++)
            for (int64_t t = 0; t < sh[2]; t++) {
                int64_t o = b * st[0] + h * st[1] + t * st[2];
                if (inj_at >= o && inj_at < o + sh[3]) v->nonfinite = 1;
            }
}

static double elem(const svoo_tensor *t, int64_t b, int64_t h, int64_t n, int64_t d) {
    int64_t o = b * t->stride[0] + h * t->stride[1] + n * t->stride[2] + d;
    if (t->dtype == SVOO_F32) return ((const float *)t->data)[o];
    uint16_t u = ((const uint16_t *)t->data)[o];
    if (t->dtype == SVOO_F16) {
        _Float16 x;
        memcpy(&x, &u, 2);
        return (double)(float)x;
    }
    uint32_t w = (uint32_t)u << 16;
    float f;
    memcpy(&f, &w, 4);
    return f;
}

/* the oracles of an accepted call on finite inputs */
static void check_output(const svoo_config *c, const fview *q, const fview *k, const fview *v,
                         const fview *o) {
    const int64_t B = q->t.shape[0], H = q->t.shape[1], NQ = q->t.shape[2], NK = k->t.shape[2],
                  D = q->t.shape[3];
    const double tol_rel = q->t.dtype == SVOO_F32 ? 1e-4 : 2e-2;
    double *ref = malloc(sizeof(double) * (size_t)NK), *acc = malloc(sizeof(double) * (size_t)D);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++) {
            double vmax = 0;
            for (int64_t j = 0; j < NK; j++)
                for (int64_t d = 0; d < D; d++) vmax = fmax(vmax, fabs(elem(&v->t, b, h, j, d)));
            const double tol = tol_rel * vmax + 1e-6;
            for (int64_t i = 0; i < NQ; i++) {
                for (int64_t d = 0; d < D; d++) {
                    double y = elem(&o->t, b, h, i, d);
                    FZ_CHECK(isfinite(y), "non-finite output at (%lld,%lld,%lld,%lld) on finite input",
                             (long long)b, (long long)h, (long long)i, (long long)d);
                    if (!c->ear) FZ_CHECK(fabs(y) <= vmax + tol, "output %g outside V's range %g", y, vmax);
                }
                if (c->method != SVOO_METHOD_DENSE) continue;
                /* f64 reference of the dense row. The library computes the
                 * logits in f32 (sgemm), whatever the input dtype: each logit
                 * carries a rounding error up to gamma * sum_d |q_d k_d| /
                 * sqrt(D), gamma = (D + 2) * 2^-24 (the dot product's
                 * worst-case bound, plus the scaling and the max shift).
                 * Logits each off by at most dl move every softmax weight by
                 * a factor within e^(+-2 dl), hence the output by at most
                 * vmax * expm1(2 dl). This is negligible at scale <= 3 but
                 * not with scale 10-100 inputs (logits ~ 1e3-1e4): fuzz crash
                 * bfad5559 (f32, D 64, top two logits 6543.18 and 6541.84
                 * with f32 errors 2.5e-3 and 4.6e-4) gave -0.0111764 vs
                 * -0.0105998, which is exactly the f64 softmax of the
                 * f32-rounded logits: rounding, not a library error. */
                double m = -INFINITY, sum = 0, lmag = 0;
                for (int64_t j = 0; j < NK; j++) {
                    double s = 0, sa = 0;
                    for (int64_t d = 0; d < D; d++) {
                        const double x = elem(&q->t, b, h, i, d) * elem(&k->t, b, h, j, d);
                        s += x;
                        sa += fabs(x);
                    }
                    ref[j] = s / sqrt((double)D);
                    lmag = fmax(lmag, sa / sqrt((double)D));
                    m = fmax(m, ref[j]);
                }
                const double dl = (double)(D + 2) * 0x1p-24 * lmag;
                const double tol_row = tol + vmax * expm1(2 * dl);
                for (int64_t d = 0; d < D; d++) acc[d] = 0;
                for (int64_t j = 0; j < NK; j++) {
                    double p = exp(ref[j] - m);
                    sum += p;
                    for (int64_t d = 0; d < D; d++) acc[d] += p * elem(&v->t, b, h, j, d);
                }
                for (int64_t d = 0; d < D; d++) {
                    double y = elem(&o->t, b, h, i, d), want = acc[d] / sum;
                    FZ_CHECK(fabs(y - want) <= tol_row + 2e-2 * fabs(want),
                             "dense %g vs f64 %g (logit error bound %g)", y, want, dl);
                }
            }
        }
    free(ref);
    free(acc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rd r = {data, size};
    g_rng = 0x9e3779b97f4a7c15ull ^ size;
    svoo_config c;
    svoo_config_init(&c, (svoo_method)(u8(&r) % 4));
    if (u8(&r) > 250) c.size = (size_t)fint(&r, 0, 512);
    if (u8(&r) > 250) c.method = (svoo_method)fint(&r, 0, 3);
    if (u8(&r) > 250) c.device = (svoo_device)fint(&r, 0, 1);
    c.num_threads = fint(&r, 0, 2);
    uint8_t hd = u8(&r);
    c.head_dim = hd < 200 ? 64 : hd < 240 ? 128 : fint(&r, 0, 256);
    c.num_heads = fint_small(&r, 1, 3); /* huge head/layer/step counts are valid, only big */
    c.num_layers = fint_small(&r, 1, 4);
    c.num_steps = fint_small(&r, 1, 12);
    c.frames = fint(&r, 0, 4);
    c.height = fint(&r, 0, 5);
    c.width = fint(&r, 0, 5);
    c.text_tokens = fint(&r, 0, 12);
    c.text_first = u8(&r) & 1;
    c.warmup_step_frac = fdbl(&r, 0, 0.5);
    c.warmup_layer_frac = fdbl(&r, 0, 0.5);
    c.reuse_start_step = fint(&r, 0, 12);
    c.reuse_every = fint(&r, 0, 5);
    c.q_clusters = fint(&r, 0, 40);
    c.k_clusters = fint(&r, 0, 40);
    c.iters = fint_small(&r, 1, 3);
    c.kmeans_iters_first = fint_small(&r, 1, 8);
    c.kmeans_iters = fint_small(&r, 0, 3);
    c.top_p = fdbl(&r, 0, 1);
    c.floor_ratio = fdbl(&r, 0, 1);
    c.floor_min = fdbl(&r, 0, 0.5);
    c.floor_max = fdbl(&r, 0, 1);
    uint8_t pr = u8(&r);
    if (pr > 128) c.profile = g_prof[1 + pr % 3];
    c.ear = u8(&r) & 1;
    c.seed = u64(&r);
    c.svg_sparsity = fdbl(&r, 0, 1);
    c.svg_sample_rows = fint(&r, 1, 64);
    c.svg_block = (u8(&r) > 200) ? fint(&r, 0, 256) : 16 << (u8(&r) % 4);
    c.recall_rows = fint(&r, 0, 8);
    c.check_finite = u8(&r) & 1;
    c.log_fn = log_fn;

    svoo_ctx *ctx = NULL;
    svoo_status s = svoo_ctx_create(&c, &ctx);
    fz_check_status(s, "svoo_ctx_create");
    FZ_CHECK((s == SVOO_OK) == (ctx != NULL), "ctx_create: status vs handle");
    if (s == SVOO_ERR_INVALID_ARGUMENT || s == SVOO_ERR_UNSUPPORTED_HEAD_DIM || s == SVOO_ERR_GEOMETRY ||
        s == SVOO_ERR_PROFILE_MISMATCH)
        FZ_CHECK(strstr(svoo_last_error(NULL), "config.") != NULL,
                 "config error does not name the field: %s", svoo_last_error(NULL));
    size_t ws = 1;
    svoo_status sw = svoo_workspace_size(&c, 1, 64, &ws);
    fz_check_status(sw, "svoo_workspace_size");
    /* svoo_workspace_size need not validate the whole config, but must take
     * every config ctx_create takes */
    FZ_CHECK(sw == SVOO_OK || s != SVOO_OK, "workspace_size %s on a config ctx_create took",
             svoo_status_name(sw));
    if (!ctx) return 0;

    int calls = 1 + u8(&r) % 3;
    for (int call = 0; call < calls; call++) {
        int64_t B = 1 + u8(&r) % 2, H = c.num_heads, D = c.head_dim;
        __int128 geo128 = (__int128)c.frames * c.height * c.width + c.text_tokens;
        int64_t geo = geo128 > 0 && geo128 <= 4096 ? (int64_t)geo128 : -1;
        int64_t N = (c.method == SVOO_METHOD_SVG && u8(&r) < 230) ? geo : 1 + u8(&r) % 80;
        int64_t NK = u8(&r) > 240 ? 1 + u8(&r) % 80 : N;
        if (u8(&r) > 245) H = fint(&r, 1, 4);
        if (u8(&r) > 245) D = (u8(&r) & 1) ? 64 : 128;
        if (N <= 0 || N > 4096) N = 1 + u8(&r) % 80;
        svoo_dtype dt = (svoo_dtype)(u8(&r) % 3);
        static const double scales[] = {1, 0.1, 10, 100, 1e4, 3};
        double scale = scales[u8(&r) % 6];
        fview q, k, v, o;
        make_view(&r, &q, dt, B, H, N, D, scale);
        make_view(&r, &k, u8(&r) > 250 ? (svoo_dtype)((dt + 1) % 3) : dt, B, H, NK, D, scale);
        make_view(&r, &v, dt, B, H, NK, D, 1);
        make_view(&r, &o, dt, B, H, N, D, 1);
        o.nonfinite = 0;
        int safe = q.safe && k.safe && v.safe && o.safe;
        int step = fint(&r, 0, c.num_steps - 1), layer = fint(&r, 0, c.num_layers - 1);
        if (!safe) step = -1;
        svoo_stats st, *stp = NULL;
        if (u8(&r) & 1) {
            svoo_stats_init(&st);
            if (u8(&r) > 250) st.size = 3;
            stp = &st;
        }
        const svoo_tensor *pq = u8(&r) > 252 ? NULL : &q.t;
        svoo_status sa = svoo_attention(ctx, step, layer, pq, &k.t, &v.t, &o.t, stp);
        FZ_CHECK((unsigned)sa < SVOO_STATUS_COUNT, "attention returned %d", (int)sa);
        if (sa) FZ_CHECK(svoo_last_error(ctx)[0], "attention failed with %s, no message", svoo_status_name(sa));
        if (!safe) FZ_CHECK(sa != SVOO_OK, "a call with step -1 was accepted");
        int nonfinite = q.nonfinite || k.nonfinite || v.nonfinite;
        if (sa == SVOO_OK) {
            FZ_CHECK(!(c.check_finite && nonfinite), "check_finite missed a NaN/Inf");
            if (!nonfinite && scale <= 100) check_output(&c, &q, &k, &v, &o);
            if (stp) FZ_CHECK(st.density >= 0 && st.density <= 1 + 1e-9, "density %g", st.density);
        }
        if (sa == SVOO_OK && fz_alloc_fail && (u8(&r) & 3) == 0) {
            /* the same call with its k-th allocation failing, then clean */
            int64_t kk = 1 + u8(&r) % 48;
            svoo_alloc_fail_at(kk);
            svoo_status sx = svoo_attention(ctx, step, layer, &q.t, &k.t, &v.t, &o.t, stp);
            int64_t used = svoo_alloc_fail_at(0);
            /* the recall diagnostic (recall_rows > 0) degrades to NaN instead
             * of failing the call */
            FZ_CHECK(sx == SVOO_OK ? (used < kk || c.recall_rows > 0) : sx == SVOO_ERR_OUT_OF_MEMORY,
                     "allocation %lld of the call failing gave %s (%lld allocations)", (long long)kk,
                     svoo_status_name(sx), (long long)used);
            svoo_status sy = svoo_attention(ctx, step, layer, &q.t, &k.t, &v.t, &o.t, stp);
            FZ_CHECK(sy == SVOO_OK, "call after an allocation failure: %s (%s)", svoo_status_name(sy),
                     svoo_last_error(ctx));
            if (!nonfinite && scale <= 100) check_output(&c, &q, &k, &v, &o);
        }
        if (u8(&r) > 240) svoo_ctx_reset(ctx);
        free(q.buf);
        free(k.buf);
        free(v.buf);
        free(o.buf);
    }
    svoo_ctx_free(ctx);
    return 0;
}

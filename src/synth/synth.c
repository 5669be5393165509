/* synth.c : video-like Q, K, V whose per-head attention density follows a
 * profile (docs/SYNTH.md).
 *
 * Model of one head (before the random orthogonal rotation R of the head):
 *   q_i = sqrt(D) [ sqrt(wp) phi(pos_i) + sqrt(wo) e(label_i) + sqrt(at) t + sqrt(wz/D) nq_i ]
 *   k_j = sqrt(D) [ sqrt(wp) phi(pos_j) + sqrt(wo) e(label_j) + sqrt(at) t [j is text] + ... nk_j ]
 * phi = random Fourier features of (frame, row, column) with the head's
 * anisotropic length scales (periodic in row and column), e = embedding of the
 * token's segment (background region or moving object), t = the text
 * channel. So q.k/sqrt(D) ~ sqrt(D) (wp RBF(dpos) + wo [same segment] + ...).
 * The final q is beta * q (beta from calibration), k and v as built.
 *
 * Determinism: every value is a function of (seed, step, layer, head, token,
 * dim) through splitmix64 hashing and our own sin/cos/exp/log in double
 * precision; float sums run in a fixed order (explicit lanes, fmaf), so the
 * bytes do not depend on the thread count or the machine. */
#pragma STDC FP_CONTRACT OFF
#include "synth.h"

#include <stdlib.h>

#define HIST_BINS 256   /* approximate histogram of a calibration row */
#define EXACT_BINS 1024 /* bins that localise the exact threshold */
#define MIN_CALIB_ROWS 512
#define MAX_CALIB_ROWS 1024
#define MAX_CALIB_FLOATS (48ll << 20) /* rows x N logits kept at once */
#define BETA_LO 1e-4
#define BETA_HI 2e3
#define MAX_OBJ 6
#define NBG 6 /* background regions */

/* ------------------------------------------------------------------------ */
/* deterministic randomness and math                                        */
/* ------------------------------------------------------------------------ */
static inline uint64_t mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static inline uint64_t hk(uint64_t seed, uint64_t a, uint64_t b, uint64_t c, uint64_t d) {
    return mix64(mix64(mix64(mix64(seed ^ 0x5eed5eedull) ^ a) ^ b) ^ c) ^ d;
}
static inline uint64_t hk2(uint64_t h, uint64_t e) {
    return mix64(h ^ mix64(e));
}
static inline double u01(uint64_t h) {
    return (double)(h >> 11) * (1.0 / 9007199254740992.0);
}
/* approximately standard normal: Irwin-Hall of four 16-bit uniforms */
static inline float gauss16(uint64_t h) {
    int32_t s = (int32_t)(h & 0xffff) + (int32_t)((h >> 16) & 0xffff) +
                (int32_t)((h >> 32) & 0xffff) + (int32_t)(h >> 48);
    return ((float)s * (1.0f / 65536.0f) - 2.0f) * 1.7320508f;
}

/* the correlated q / k / v noise of element d of token n: the same draw at two
 * steps (hh) mixed by the step's angle (dcos, dsin) */
static inline void token_noise(uint64_t hh, int64_t n, int d, float dcos, float dsin, float *nq,
                               float *nk, float *nv) {
    const uint64_t base = ((uint64_t)n * 1024 + (uint64_t)d) * 8;
    *nq = dcos * gauss16(hk2(hh, base + 0)) + dsin * gauss16(hk2(hh, base + 1));
    *nk = dcos * gauss16(hk2(hh, base + 2)) + dsin * gauss16(hk2(hh, base + 3));
    *nv = dcos * gauss16(hk2(hh, base + 4)) + dsin * gauss16(hk2(hh, base + 5));
}

static const double k_pi = 3.14159265358979323846;

static void det_sincos(double x, double *s, double *c) {
    /* x = k pi/2 + r, |r| <= pi/4 (Cody-Waite, arguments here are < 1e4) */
    const double pio2_hi = 1.57079632673412561417e+00, pio2_lo = 6.07710050650619224932e-11;
    double kf = floor(x * 0.63661977236758134308 + 0.5);
    double r = (x - kf * pio2_hi) - kf * pio2_lo;
    double r2 = r * r;
    double sp =
        r * (1.0 +
             r2 * (-1.0 / 6 +
                   r2 * (1.0 / 120 +
                         r2 * (-1.0 / 5040 + r2 * (1.0 / 362880 +
                                                   r2 * (-1.0 / 39916800 +
                                                         r2 * (1.0 / 6227020800.0 +
                                                               r2 * (-1.0 / 1307674368000.0))))))));
    double cp =
        1.0 +
        r2 * (-0.5 + r2 * (1.0 / 24 +
                           r2 * (-1.0 / 720 +
                                 r2 * (1.0 / 40320 + r2 * (-1.0 / 3628800 +
                                                           r2 * (1.0 / 479001600 +
                                                                 r2 * (-1.0 / 87178291200.0)))))));
    int64_t k = (int64_t)kf & 3;
    switch (k) {
    case 0:
        *s = sp, *c = cp;
        break;
    case 1:
        *s = cp, *c = -sp;
        break;
    case 2:
        *s = -sp, *c = -cp;
        break;
    default:
        *s = -cp, *c = sp;
        break;
    }
}

static double det_exp(double x) {
    if (x < -700) return 0.0;
    if (x > 700) x = 700;
    const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
    double kf = floor(x * 1.44269504088896338700 + 0.5);
    double r = (x - kf * ln2_hi) - kf * ln2_lo;
    double p = 1.0, term = 1.0;
    for (int i = 1; i <= 16; i++) {
        term = term * r / (double)i;
        p = p + term;
    }
    return ldexp(p, (int)kf);
}

static double det_log(double x) {
    int e;
    double m = frexp(x, &e); /* [0.5, 1) */
    if (m < 0.70710678118654752440) {
        m *= 2.0;
        e--;
    }
    double s = (m - 1.0) / (m + 1.0), s2 = s * s, sum = 0.0, pw = s;
    for (int i = 1; i <= 41; i += 2) {
        sum = sum + pw / (double)i;
        pw = pw * s2;
    }
    return 2.0 * sum + (double)e * 0.69314718055994530942;
}

/* log-uniform in [lo, hi] */
static double log_uniform(uint64_t h, double lo, double hi) {
    double a = det_log(lo), b = det_log(hi);
    return det_exp(a + u01(h) * (b - a));
}

/* fixed-order dot product: 16 lanes, fmaf, tree reduction (D % 16 == 0) */
static inline float dot_fixed(const float *a, const float *b, int D) {
    float acc[16];
    for (int l = 0; l < 16; l++)
        acc[l] = 0.0f;
    for (int d = 0; d < D; d += 16)
        for (int l = 0; l < 16; l++)
            acc[l] = fmaf(a[d + l], b[d + l], acc[l]);
    for (int w = 8; w >= 1; w /= 2)
        for (int l = 0; l < w; l++)
            acc[l] += acc[l + w];
    return acc[0];
}

static inline float round_dt(float x, svoo_dtype dt) {
    switch (dt) {
    case SVOO_F16:
        return svoo_f16_to_f32(svoo_f32_to_f16(x));
    case SVOO_BF16:
        return svoo_bf16_to_f32(svoo_f32_to_bf16(x));
    default:
        return x;
    }
}

static inline void store_dt(void *base, svoo_dtype dt, int64_t i, float x) {
    switch (dt) {
    case SVOO_F32:
        ((float *)base)[i] = x;
        break;
    case SVOO_F16:
        ((uint16_t *)base)[i] = svoo_f32_to_f16(x);
        break;
    default:
        ((uint16_t *)base)[i] = svoo_f32_to_bf16(x);
        break;
    }
}

/* ------------------------------------------------------------------------ */
/* the generator object                                                     */
/* ------------------------------------------------------------------------ */
typedef struct {
    double cy, cx, vy, vx, ry, rx, dy, dx; /* center, velocity per frame, radii, drift */
} synth_obj;

struct svoo_synth {
    svoo_synth_config cfg;
    int64_t nvideo, n;
    svoo_profile *target; /* steps x layers x heads */
    int32_t *src;         /* (steps*layers*heads) x 3, -1 without profile */
    uint8_t *kind;        /* layers x heads */
    int nobj;
    synth_obj obj[MAX_OBJ];
    double horizon, horizon_amp, horizon_phase, zone_x0;
    int32_t *rows; /* calibration rows */
    int64_t nrows;
    svoo_synth_calib *calib; /* heads, of the last generate */
    int have_calib;
};

static uint64_t seed_of(const svoo_synth *s) {
    return s->cfg.seed;
}

/* evenly spaced map of i in [0, n) onto [0, m) */
static int even_map(int i, int n, int m) {
    if (n <= 1 || m <= 1) return 0;
    return (int)floor((double)i * (double)(m - 1) / (double)(n - 1) + 0.5);
}

static double default_target(uint64_t seed, int step, int steps, int layer, int head) {
    double base = log_uniform(hk(seed, 101, (uint64_t)layer, (uint64_t)head, 0), 0.004, 0.6);
    double sgn = 2.0 * u01(hk(seed, 102, (uint64_t)layer, (uint64_t)head, 0)) - 1.0;
    double t = steps > 1 ? (double)step / (double)(steps - 1) : 0.0;
    double v = base * det_exp(0.35 * (t - 0.5) * sgn);
    return v < 0.002 ? 0.002 : v > 0.9 ? 0.9 : v;
}

static void assign_kinds(svoo_synth *s) {
    const int H = s->cfg.heads;
    int nsp = (int)floor(0.4 * H + 0.5), ntm = (int)floor(0.3 * H + 0.5);
    if (nsp + ntm > H) ntm = H - nsp;
    for (int l = 0; l < s->cfg.layers; l++) {
        uint8_t *k = s->kind + (size_t)l * H;
        for (int h = 0; h < H; h++)
            k[h] = h < nsp         ? SVOO_HEAD_SPATIAL
                   : h < nsp + ntm ? SVOO_HEAD_TEMPORAL
                                   : SVOO_HEAD_SEMANTIC;
        for (int h = H - 1; h > 0; h--) { /* Fisher-Yates, seeded per layer */
            int j = (int)(hk(seed_of(s), 201, (uint64_t)l, (uint64_t)h, 0) % (uint64_t)(h + 1));
            uint8_t t = k[h];
            k[h] = k[j];
            k[j] = t;
        }
    }
}

static void make_objects(svoo_synth *s) {
    const uint64_t sd = seed_of(s);
    const double H = s->cfg.height, W = s->cfg.width, F = s->cfg.frames;
    s->nobj = 3 + (int)(hk(sd, 301, 0, 0, 0) % 4); /* 3..6 */
    for (int o = 0; o < s->nobj; o++) {
        synth_obj *b = &s->obj[o];
        b->cy = u01(hk(sd, 302, (uint64_t)o, 0, 0)) * H;
        b->cx = u01(hk(sd, 302, (uint64_t)o, 1, 0)) * W;
        double sp =
            0.2 + 0.6 * u01(hk(sd, 302, (uint64_t)o, 2, 0)); /* of the frame over the video */
        double ang = 2.0 * k_pi * u01(hk(sd, 302, (uint64_t)o, 3, 0)), sa, ca;
        det_sincos(ang, &sa, &ca);
        b->vy = sp * sa * H / (F > 1 ? F - 1 : 1);
        b->vx = sp * ca * W / (F > 1 ? F - 1 : 1);
        b->ry = (0.10 + 0.12 * u01(hk(sd, 302, (uint64_t)o, 4, 0))) * H;
        b->rx = (0.08 + 0.12 * u01(hk(sd, 302, (uint64_t)o, 5, 0))) * W;
        if (b->ry < 1.0) b->ry = 1.0;
        if (b->rx < 1.0) b->rx = 1.0;
        b->dy = (u01(hk(sd, 302, (uint64_t)o, 6, 0)) - 0.5) * 0.1 * H;
        b->dx = (u01(hk(sd, 302, (uint64_t)o, 7, 0)) - 0.5) * 0.1 * W;
    }
    s->horizon = (0.3 + 0.3 * u01(hk(sd, 303, 0, 0, 0))) * H;
    s->horizon_amp = 0.12 * H;
    s->horizon_phase = 2.0 * k_pi * u01(hk(sd, 303, 1, 0, 0));
    s->zone_x0 = u01(hk(sd, 303, 2, 0, 0)) * W;
}

static inline double wrapd(double d, double P) {
    d = d - P * floor(d / P + 0.5);
    return d;
}

static int label_at(const svoo_synth *s, double t, int f, int y, int x) {
    const double H = s->cfg.height, W = s->cfg.width;
    for (int o = s->nobj - 1; o >= 0; o--) { /* the last object is in front */
        const synth_obj *b = &s->obj[o];
        double cy = b->cy + b->vy * f + b->dy * t, cx = b->cx + b->vx * f + b->dx * t;
        double dy = wrapd((double)y - cy, H) / b->ry, dx = wrapd((double)x - cx, W) / b->rx;
        if (dy * dy + dx * dx <= 1.0) return NBG + o;
    }
    /* background: two bands split by a wavy horizon, each cut into three
     * zones by wavy vertical borders (six regions of similar size) */
    double sn, cs;
    det_sincos(2.0 * k_pi * (double)x / W + s->horizon_phase, &sn, &cs);
    int band = (double)y < s->horizon + s->horizon_amp * sn ? 0 : 1;
    det_sincos(2.0 * k_pi * (double)y / H + s->horizon_phase, &sn, &cs);
    double xz = wrapd((double)x + 0.08 * W * sn - s->zone_x0, W) + 0.5 * W; /* [0, W) */
    int zone = (int)(3.0 * xz / W);
    zone = zone < 0 ? 0 : zone > 2 ? 2 : zone;
    return band * 3 + zone;
}

static double step_time(const svoo_synth *s, int step) {
    return s->cfg.steps > 1 ? (double)step / (double)(s->cfg.steps - 1) : 0.0;
}

int64_t svoo_synth_tokens(const svoo_synth *s) {
    return s ? s->n : 0;
}

int svoo_synth_token_pos(const svoo_synth *s, int64_t n, int *f, int *y, int *x) {
    if (!s || n < 0 || n >= s->n) return -1;
    int64_t v = s->cfg.text_first ? n - s->cfg.text_tokens : n;
    if (v < 0 || v >= s->nvideo) return 0;
    int64_t hw = (int64_t)s->cfg.height * s->cfg.width;
    if (f) *f = (int)(v / hw);
    if (y) *y = (int)((v % hw) / s->cfg.width);
    if (x) *x = (int)(v % s->cfg.width);
    return 1;
}

int svoo_synth_token_label(const svoo_synth *s, int step, int64_t n) {
    int f, y, x;
    int r = svoo_synth_token_pos(s, n, &f, &y, &x);
    if (r <= 0) return -1;
    return label_at(s, step_time(s, step), f, y, x);
}

const int32_t *svoo_synth_calib_rows(const svoo_synth *s, int64_t *count) {
    if (count) *count = s ? s->nrows : 0;
    return s ? s->rows : NULL;
}

void svoo_synth_free(svoo_synth *s) {
    if (!s) return;
    svoo_profile_free(s->target);
    svoo_free(s->src);
    svoo_free(s->kind);
    svoo_free(s->rows);
    svoo_free(s->calib);
    svoo_free(s);
}

svoo_status svoo_synth_create(const svoo_synth_config *cfg, svoo_synth **out) {
    if (!out) return svoo_err(SVOO_ERR_NULL_POINTER, "svoo_synth_create: out is NULL");
    *out = NULL;
    if (!cfg) return svoo_err(SVOO_ERR_NULL_POINTER, "svoo_synth_create: cfg is NULL");
    if (cfg->size < sizeof *cfg)
        return svoo_err(SVOO_ERR_INVALID_ARGUMENT,
                        "svoo_synth_create: cfg.size %zu (call svoo_synth_config_init first)",
                        cfg->size);
    if (cfg->frames < 1 || cfg->height < 1 || cfg->width < 1 || cfg->text_tokens < 0)
        return svoo_err(SVOO_ERR_GEOMETRY, "svoo_synth_create: geometry %d x %d x %d + %d text",
                        cfg->frames, cfg->height, cfg->width, cfg->text_tokens);
    int64_t nv = (int64_t)cfg->frames * cfg->height * cfg->width;
    if (nv + cfg->text_tokens > INT32_MAX / 2)
        return svoo_err(SVOO_ERR_GEOMETRY, "svoo_synth_create: %lld tokens is too many",
                        (long long)(nv + cfg->text_tokens));
    if (cfg->head_dim < 16 || cfg->head_dim > 512 || cfg->head_dim % 16)
        return svoo_err(SVOO_ERR_UNSUPPORTED_HEAD_DIM,
                        "svoo_synth_create: cfg.head_dim %d (a multiple of 16 in [16, 512])",
                        cfg->head_dim);
    if (cfg->heads < 1 || cfg->heads > 4096 || cfg->layers < 1 || cfg->layers > 4096 ||
        cfg->steps < 1 || cfg->steps > 100000)
        return svoo_err(SVOO_ERR_INVALID_ARGUMENT,
                        "svoo_synth_create: heads %d, layers %d, steps %d", cfg->heads, cfg->layers,
                        cfg->steps);
    if (!(cfg->tau > 0.0 && cfg->tau < 1.0))
        return svoo_err(SVOO_ERR_INVALID_ARGUMENT, "svoo_synth_create: cfg.tau %g not in (0, 1)",
                        cfg->tau);
    if (cfg->calib_row_step < 1)
        return svoo_err(SVOO_ERR_INVALID_ARGUMENT, "svoo_synth_create: cfg.calib_row_step %lld < 1",
                        (long long)cfg->calib_row_step);

    svoo_synth *s = svoo_calloc(1, sizeof *s);
    if (!s) return svoo_err(SVOO_ERR_OUT_OF_MEMORY, "svoo_synth_create: generator");
    s->cfg = *cfg;
    s->cfg.profile = NULL; /* borrowed only during create */
    s->cfg.preset[sizeof s->cfg.preset - 1] = 0;
    s->nvideo = nv;
    s->n = nv + cfg->text_tokens;
    const int T = cfg->steps, L = cfg->layers, H = cfg->heads;
    svoo_status st = svoo_profile_create(T, L, H, &s->target);
    if (st) {
        svoo_synth_free(s);
        return st;
    }
    size_t cells = (size_t)T * L * H;
    s->src = svoo_malloc(cells * 3 * sizeof(int32_t));
    s->kind = svoo_malloc((size_t)L * H);
    s->calib = svoo_calloc((size_t)H, sizeof(svoo_synth_calib));
    /* calibration rows: one per stratum of calib_row_step rows, at least
     * MIN_CALIB_ROWS (when N allows), at most MAX_CALIB_ROWS and
     * MAX_CALIB_FLOATS / N; jittered inside each stratum (unbiased for the
     * mean over all rows, not aliased with the grid width) */
    int64_t nrows = (s->n + cfg->calib_row_step - 1) / cfg->calib_row_step;
    if (nrows < MIN_CALIB_ROWS) nrows = s->n < MIN_CALIB_ROWS ? s->n : MIN_CALIB_ROWS;
    int64_t cap = MAX_CALIB_FLOATS / s->n;
    if (cap > MAX_CALIB_ROWS) cap = MAX_CALIB_ROWS;
    if (cap < 64) cap = 64;
    if (nrows > cap) nrows = cap;
    s->rows = svoo_malloc((size_t)nrows * sizeof(int32_t));
    if (!s->src || !s->kind || !s->calib || !s->rows) {
        svoo_synth_free(s);
        return svoo_err(SVOO_ERR_OUT_OF_MEMORY, "svoo_synth_create: tables");
    }
    s->nrows = nrows;
    for (int64_t i = 0; i < nrows; i++) {
        int64_t lo = i * s->n / nrows, hi = (i + 1) * s->n / nrows;
        s->rows[i] =
            (int32_t)(lo + (int64_t)(hk(cfg->seed, 401, (uint64_t)i, 0, 0) % (uint64_t)(hi - lo)));
    }

    const svoo_profile *p = cfg->profile;
    int ps = 0, pl = 0, ph = 0;
    if (p) svoo_profile_dims(p, &ps, &pl, &ph);
    for (int t = 0; t < T; t++)
        for (int l = 0; l < L; l++)
            for (int h = 0; h < H; h++) {
                size_t c = ((size_t)t * L + l) * H + h;
                double v;
                if (p) {
                    int a = even_map(t, T, ps), b = even_map(l, L, pl), d = even_map(h, H, ph);
                    st = svoo_profile_get(p, a, b, d, &v);
                    if (st) {
                        svoo_synth_free(s);
                        return st;
                    }
                    s->src[c * 3] = a, s->src[c * 3 + 1] = b, s->src[c * 3 + 2] = d;
                } else {
                    v = default_target(cfg->seed, t, T, l, h);
                    s->src[c * 3] = s->src[c * 3 + 1] = s->src[c * 3 + 2] = -1;
                }
                if ((st = svoo_profile_set(s->target, t, l, h, v))) {
                    svoo_synth_free(s);
                    return st;
                }
            }
    assign_kinds(s);
    make_objects(s);
    *out = s;
    return SVOO_OK;
}

svoo_status svoo_synth_profile(const svoo_synth *s, svoo_profile **out) {
    if (!out) return svoo_err(SVOO_ERR_NULL_POINTER, "svoo_synth_profile: out is NULL");
    *out = NULL;
    if (!s) return svoo_err(SVOO_ERR_NULL_POINTER, "svoo_synth_profile: s is NULL");
    const int T = s->cfg.steps, L = s->cfg.layers, H = s->cfg.heads;
    svoo_profile *p = NULL;
    svoo_status st = svoo_profile_create(T, L, H, &p);
    for (int t = 0; !st && t < T; t++)
        for (int l = 0; !st && l < L; l++)
            for (int h = 0; !st && h < H; h++) {
                double v;
                st = svoo_profile_get(s->target, t, l, h, &v);
                if (!st) st = svoo_profile_set(p, t, l, h, v);
            }
    if (st) {
        svoo_profile_free(p);
        return st;
    }
    *out = p;
    return SVOO_OK;
}

svoo_status svoo_synth_head_info(const svoo_synth *s, int step, int layer, int head,
                                 svoo_head_kind *kind, double *target, int src_index[3]) {
    if (!s) return svoo_err(SVOO_ERR_NULL_POINTER, "svoo_synth_head_info: s is NULL");
    if (step < 0 || step >= s->cfg.steps || layer < 0 || layer >= s->cfg.layers || head < 0 ||
        head >= s->cfg.heads)
        return svoo_err(SVOO_ERR_OUT_OF_RANGE,
                        "svoo_synth_head_info: (step %d, layer %d, head %d) outside %d x %d x %d",
                        step, layer, head, s->cfg.steps, s->cfg.layers, s->cfg.heads);
    if (kind) *kind = (svoo_head_kind)s->kind[(size_t)layer * s->cfg.heads + head];
    if (target) {
        svoo_status st = svoo_profile_get(s->target, step, layer, head, target);
        if (st) return st;
    }
    if (src_index) {
        size_t c = ((size_t)step * s->cfg.layers + layer) * s->cfg.heads + head;
        for (int i = 0; i < 3; i++)
            src_index[i] = s->src[c * 3 + i];
    }
    return SVOO_OK;
}

svoo_status svoo_synth_calib_get(const svoo_synth *s, int head, svoo_synth_calib *out) {
    if (!s || !out) return svoo_err(SVOO_ERR_NULL_POINTER, "svoo_synth_calib_get: NULL argument");
    if (head < 0 || head >= s->cfg.heads)
        return svoo_err(SVOO_ERR_OUT_OF_RANGE, "svoo_synth_calib_get: head %d", head);
    if (!s->have_calib)
        return svoo_err(SVOO_ERR_NOT_FOUND, "svoo_synth_calib_get: nothing generated yet");
    *out = s->calib[head];
    return SVOO_OK;
}

/* ------------------------------------------------------------------------ */
/* one head's features                                                      */
/* ------------------------------------------------------------------------ */
typedef struct {
    int kind;
    double lf, ly, lx;
    float wp, wo, wz, at;
    int M;                   /* frequencies */
    float *ctab_qk, *ctab_v; /* per frequency m: F + H + W complex (re, im) factors */
    float *Rqk, *Rv;         /* D x D orthonormal; row p = the p-th rotated basis vector */
    float *lab_qk, *lab_v;   /* (2 + nobj) x D rotated, weighted segment embeddings */
    float *text_dir;         /* D: shared text direction (rotated) */
} head_model;

/* orthonormal rows by modified Gram-Schmidt of hashed normals (double) */
static void make_rotation(uint64_t h0, int D, float *R, double *work) {
    for (int i = 0; i < D; i++) {
        double *r = work + (size_t)i * D;
        for (;;) {
            for (int d = 0; d < D; d++)
                r[d] = gauss16(hk2(h0, (uint64_t)i * 4096 + (uint64_t)d));
            for (int j = 0; j < i; j++) {
                const double *q = work + (size_t)j * D;
                double dp = 0;
                for (int d = 0; d < D; d++)
                    dp += r[d] * q[d];
                for (int d = 0; d < D; d++)
                    r[d] -= dp * q[d];
            }
            double nn = 0;
            for (int d = 0; d < D; d++)
                nn += r[d] * r[d];
            if (nn > 1e-6) {
                double inv = 1.0 / sqrt(nn);
                for (int d = 0; d < D; d++)
                    r[d] *= inv;
                break;
            }
            h0 = mix64(h0); /* (practically never) degenerate draw */
        }
    }
    for (size_t i = 0; i < (size_t)D * D; i++)
        R[i] = (float)work[i];
}

/* frequency tables: for each m, exp(i w_f f) for f < F, exp(i 2pi ky y/H),
 * exp(i 2pi kx x/W), with amplitude sqrt(c_m) folded into the f factor */
static void make_freqs(uint64_t h0, const svoo_synth *s, double lf, double ly, double lx, int M,
                       double t, float *tab) {
    const int F = s->cfg.frames, H = s->cfg.height, W = s->cfg.width;
    double c[512], csum = 0;
    for (int m = 0; m < M; m++) {
        double ph = 2.0 * k_pi * u01(hk2(h0, 1000 + (uint64_t)m)), sn, cs;
        det_sincos(ph + 2.0 * k_pi * 0.5 * t, &sn, &cs); /* slow drift of the spectrum */
        c[m] = 1.0 + 0.5 * sn;
        csum += c[m];
    }
    for (int m = 0; m < M; m++) {
        float *e = tab + (size_t)m * 2 * (F + H + W);
        double wf = gauss16(hk2(h0, 2000 + (uint64_t)m)) / lf;
        double gy = gauss16(hk2(h0, 3000 + (uint64_t)m)), gx = gauss16(hk2(h0, 4000 + (uint64_t)m));
        int64_t ky = (int64_t)floor(gy * (double)H / (2.0 * k_pi * ly) + 0.5);
        int64_t kx = (int64_t)floor(gx * (double)W / (2.0 * k_pi * lx) + 0.5);
        ky = ((ky % H) + H) % H;
        kx = ((kx % W) + W) % W;
        double amp = sqrt(c[m] / csum), sn, cs;
        for (int f = 0; f < F; f++) {
            det_sincos(wf * f, &sn, &cs);
            e[2 * f] = (float)(amp * cs), e[2 * f + 1] = (float)(amp * sn);
        }
        for (int y = 0; y < H; y++) {
            det_sincos(2.0 * k_pi * (double)((ky * y) % H) / H, &sn, &cs);
            e[2 * (F + y)] = (float)cs, e[2 * (F + y) + 1] = (float)sn;
        }
        for (int x = 0; x < W; x++) {
            det_sincos(2.0 * k_pi * (double)((kx * x) % W) / W, &sn, &cs);
            e[2 * (F + H + x)] = (float)cs, e[2 * (F + H + x) + 1] = (float)sn;
        }
    }
}

/* raw (2M: re, im) = the product of the complex factors a, b, c of each
 * frequency m (tab rows of `stride` pairs). The real and the imaginary parts
 * are separate loops: written as one, GCC 12's vectoriser turns the complex
 * products into vfmaddsub (fused, one rounding fewer) even with contraction off,
 * and -march=native builds then wrote other bytes than portable ones
 * (test_portable_bits). */
static void freq_product(const float *tab, int M, int stride, int a, int b, int c, float *raw) {
    for (int m = 0; m < M; m++) {
        const float *e = tab + (size_t)m * 2 * stride;
        const float ar = e[2 * a], ai = e[2 * a + 1], br = e[2 * b], bi = e[2 * b + 1];
        const float r1 = ar * br - ai * bi, i1 = ar * bi + ai * br;
        raw[2 * m] = r1 * e[2 * c] - i1 * e[2 * c + 1];
    }
    for (int m = 0; m < M; m++) {
        const float *e = tab + (size_t)m * 2 * stride;
        const float ar = e[2 * a], ai = e[2 * a + 1], br = e[2 * b], bi = e[2 * b + 1];
        const float r1 = ar * br - ai * bi, i1 = ar * bi + ai * br;
        raw[2 * m + 1] = r1 * e[2 * c + 1] + i1 * e[2 * c];
    }
}

/* unit vector of `n` hashed normals */
static void unit_vec(uint64_t h0, int n, float *out) {
    double nn = 0;
    double tmp[512];
    for (int i = 0; i < n; i++) {
        tmp[i] = gauss16(hk2(h0, (uint64_t)i));
        nn += tmp[i] * tmp[i];
    }
    double inv = nn > 0 ? 1.0 / sqrt(nn) : 0.0;
    for (int i = 0; i < n; i++)
        out[i] = (float)(tmp[i] * inv);
}

/* out (D) = sum_i coef[i] * R[row0 + i] */
SVOO_HOT_CLONES static void rot_combine(const float *R, int D, int row0, const float *coef, int n,
                                        float *out) {
    for (int d = 0; d < D; d++)
        out[d] = 0.0f;
    for (int i = 0; i < n; i++) {
        const float *r = R + (size_t)(row0 + i) * D;
        for (int d = 0; d < D; d++)
            out[d] = fmaf(coef[i], r[d], out[d]);
    }
}

/* logits (R x N, row stride N) of the R sampled query rows against keys [jb, je) */
SVOO_HOT_CLONES static void logit_block(const float *qrows, const float *kf, int64_t R, int64_t N,
                                        int D, float isqD, int64_t jb, int64_t je, float *logits) {
    for (int64_t r = 0; r < R; r++) {
        const float *qr = qrows + r * D;
        float *lo = logits + r * N;
        for (int64_t j = jb; j < je; j++)
            lo[j] = dot_fixed(qr, kf + j * D, D) * isqD;
    }
}

/* ------------------------------------------------------------------------ */
/* calibration                                                              */
/* ------------------------------------------------------------------------ */
typedef struct {
    int64_t R, N;
    const float *L; /* R x N logits at beta = 1 */
    float *smax, *smin;
    int32_t *hn;   /* non-empty bins per row (top-down) */
    int32_t *hcnt; /* R x HIST_BINS */
    float *hoff;   /* R x HIST_BINS: mean logit - smax (<= 0) */
    double tau;
} calib_state;

SVOO_HOT_CLONES static double approx_row(const calib_state *c, int64_t r, double beta, float *m) {
    const int nb = c->hn[r];
    const int32_t *cnt = c->hcnt + r * HIST_BINS;
    const float *off = c->hoff + r * HIST_BINS;
    const float fb = (float)beta;
    double tot = 0;
    for (int b = 0; b < nb; b++) {
        m[b] = (float)cnt[b] * svoo_expf(fb * off[b]);
        tot += m[b];
    }
    double thr = c->tau * tot, cum = 0, keys = 0;
    for (int b = 0; b < nb; b++) {
        if (cum + m[b] >= thr) {
            double frac = m[b] > 0 ? (thr - cum) / m[b] : 1.0;
            double k = frac * cnt[b];
            if (keys + k < 1.0) k = 1.0 - keys;
            return keys + k;
        }
        cum += m[b];
        keys += cnt[b];
    }
    return keys;
}

/* serial on purpose: R x HIST_BINS exps are cheaper than a parallel region */
static double approx_density(const calib_state *c, double beta, double *rowbuf, int nth) {
    (void)nth;
    float m[HIST_BINS];
    for (int64_t r = 0; r < c->R; r++)
        rowbuf[r] = approx_row(c, r, beta, m);
    double s = 0;
    for (int64_t r = 0; r < c->R; r++)
        s += rowbuf[r];
    return s / ((double)c->R * (double)c->N);
}

static int cmp_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* exact: smallest number of keys of row r whose softmax mass reaches tau */
SVOO_HOT_CLONES static int64_t exact_row(const calib_state *c, int64_t r, double beta, double *mass,
                                         int64_t *cnt, float *sel) {
    const int64_t N = c->N;
    const float *s = c->L + r * N;
    const float mx = c->smax[r], mn = c->smin[r], fb = (float)beta;
    const float inv = mx > mn ? (float)EXACT_BINS / (mx - mn) : 0.0f;
    for (int b = 0; b < EXACT_BINS; b++)
        mass[b] = 0, cnt[b] = 0;
    double tot = 0;
    for (int64_t j = 0; j < N; j++) {
        float p = svoo_expf(fb * (s[j] - mx));
        int b = (int)((mx - s[j]) * inv); /* 0 = top bin */
        if (b >= EXACT_BINS) b = EXACT_BINS - 1;
        mass[b] += p;
        cnt[b]++;
        tot += p;
    }
    double thr = c->tau * tot, cum = 0;
    int64_t keys = 0;
    int bb = 0;
    for (; bb < EXACT_BINS - 1; bb++) {
        if (cum + mass[bb] >= thr) break;
        cum += mass[bb];
        keys += cnt[bb];
    }
    int64_t k = 0;
    for (int64_t j = 0; j < N; j++) {
        int b = (int)((mx - s[j]) * inv);
        if (b >= EXACT_BINS) b = EXACT_BINS - 1;
        if (b == bb) sel[k++] = svoo_expf(fb * (s[j] - mx));
    }
    qsort(sel, (size_t)k, sizeof(float), cmp_desc);
    for (int64_t i = 0; i < k; i++) {
        cum += sel[i];
        keys++;
        if (cum >= thr) break;
    }
    return keys;
}

static double exact_density(const calib_state *c, double beta, double *rowbuf, int nth, int *oom) {
    int bad = 0;
#pragma omp parallel num_threads(nth) reduction(| : bad)
    {
        double *mass = svoo_malloc(sizeof(double) * EXACT_BINS);
        int64_t *cnt = svoo_malloc(sizeof(int64_t) * EXACT_BINS);
        float *sel = svoo_malloc(sizeof(float) * (size_t)c->N);
        if (!mass || !cnt || !sel) bad = 1;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < c->R; r++)
            rowbuf[r] = bad ? 0.0 : (double)exact_row(c, r, beta, mass, cnt, sel);
        svoo_free(mass), svoo_free(cnt), svoo_free(sel);
    }
    if (bad) *oom = 1;
    double s = 0;
    for (int64_t r = 0; r < c->R; r++)
        s += rowbuf[r];
    return s / ((double)c->R * (double)c->N);
}

/* the log-beta that brings the approximate density to `target`: Illinois
 * regula falsi on g(x) = log d(e^x) - log target (decreasing in x) */
static double solve_beta(const calib_state *c, double target, double *rowbuf, int nth) {
    double a = det_log(BETA_LO), b = det_log(BETA_HI), lt = det_log(target);
    double ga = det_log(approx_density(c, det_exp(a), rowbuf, nth)) - lt;
    double gb = det_log(approx_density(c, det_exp(b), rowbuf, nth)) - lt;
    if (ga <= 0) return a;
    if (gb >= 0) return b;
    int side = 0;
    double x = a;
    for (int it = 0; it < 60; it++) {
        x = (a * gb - b * ga) / (gb - ga);
        if (!(x > a && x < b)) x = 0.5 * (a + b);
        double g = det_log(approx_density(c, det_exp(x), rowbuf, nth)) - lt;
        if (fabs(g) < 2e-4 || b - a < 1e-6) break;
        if (g > 0) { /* still too dense: x is the new lower end */
            a = x, ga = g;
            if (side == 1) gb *= 0.5;
            side = 1;
        } else {
            b = x, gb = g;
            if (side == -1) ga *= 0.5;
            side = -1;
        }
    }
    return x;
}

/* histograms of the rows (once per head) */
static void build_hist(calib_state *c, int nth) {
#pragma omp parallel for num_threads(nth) schedule(static)
    for (int64_t r = 0; r < c->R; r++) {
        const float *s = c->L + r * c->N;
        float mx = s[0], mn = s[0];
        for (int64_t j = 1; j < c->N; j++) {
            mx = s[j] > mx ? s[j] : mx;
            mn = s[j] < mn ? s[j] : mn;
        }
        c->smax[r] = mx, c->smin[r] = mn;
        int32_t *cnt = c->hcnt + r * HIST_BINS;
        float *off = c->hoff + r * HIST_BINS;
        double sum[HIST_BINS];
        for (int b = 0; b < HIST_BINS; b++)
            cnt[b] = 0, sum[b] = 0;
        const float inv = mx > mn ? (float)HIST_BINS / (mx - mn) : 0.0f;
        for (int64_t j = 0; j < c->N; j++) {
            int b = (int)((mx - s[j]) * inv);
            if (b >= HIST_BINS) b = HIST_BINS - 1;
            cnt[b]++;
            sum[b] += (double)(s[j] - mx);
        }
        int nb = 0;
        for (int b = 0; b < HIST_BINS; b++)
            if (cnt[b]) {
                off[nb] = (float)(sum[b] / cnt[b]);
                cnt[nb] = cnt[b];
                nb++;
            }
        c->hn[r] = nb;
    }
}

/* ------------------------------------------------------------------------ */
/* generate                                                                 */
/* ------------------------------------------------------------------------ */
typedef struct {
    float *qf, *kf, *vf; /* N x D */
    float *logits;       /* R x N */
    float *qrows;        /* R x D */
    int16_t *labels;     /* nvideo */
    float *smax, *smin, *hoff;
    int32_t *hn, *hcnt;
    double *rowbuf;
    float *Rqk, *Rv, *tab_qk, *tab_v, *lab_qk, *lab_v, *text_dir;
    double *work;
} gen_bufs;

static void free_bufs(gen_bufs *b) {
    void *p[] = {b->qf,     b->kf,    b->vf,     b->logits, b->qrows,    b->labels, b->smax,
                 b->smin,   b->hoff,  b->hn,     b->hcnt,   b->rowbuf,   b->Rqk,    b->Rv,
                 b->tab_qk, b->tab_v, b->lab_qk, b->lab_v,  b->text_dir, b->work};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
        svoo_free(p[i]);
    memset(b, 0, sizeof *b);
}

static void head_params(const svoo_synth *s, int layer, int head, head_model *hm) {
    const uint64_t sd = seed_of(s);
    const double H = s->cfg.height, W = s->cfg.width, F = s->cfg.frames;
    uint64_t h0 = hk(sd, 501, (uint64_t)layer, (uint64_t)head, 0);
    hm->kind = s->kind[(size_t)layer * s->cfg.heads + head];
    switch (hm->kind) {
    case SVOO_HEAD_SPATIAL:
        hm->lf = log_uniform(hk2(h0, 1), 0.6, 1.2);
        hm->ly = log_uniform(hk2(h0, 2), 0.08, 0.2) * H;
        hm->lx = log_uniform(hk2(h0, 3), 0.08, 0.2) * W;
        hm->wp = 0.75f, hm->wo = 0.04f;
        break;
    case SVOO_HEAD_TEMPORAL:
        hm->lf = log_uniform(hk2(h0, 1), 0.7, 2.0) * F;
        hm->ly = log_uniform(hk2(h0, 2), 0.35, 0.6);
        hm->lx = log_uniform(hk2(h0, 3), 0.35, 0.6);
        hm->wp = 0.75f, hm->wo = 0.04f;
        break;
    default:
        hm->lf = log_uniform(hk2(h0, 1), 1.5, 4.0);
        hm->ly = log_uniform(hk2(h0, 2), 0.15, 0.4) * H;
        hm->lx = log_uniform(hk2(h0, 3), 0.15, 0.4) * W;
        hm->wp = 0.30f, hm->wo = 0.55f;
        break;
    }
    if (hm->ly < 0.35) hm->ly = 0.35;
    if (hm->lx < 0.35) hm->lx = 0.35;
    hm->wz = 0.15f;
    hm->at = s->cfg.text_tokens > 0 ? 0.5f : 0.0f;
}

svoo_status svoo_synth_generate(svoo_synth *s, int step, int layer, svoo_dtype dt, void *q, void *k,
                                void *v) {
    if (!s) return svoo_err(SVOO_ERR_NULL_POINTER, "svoo_synth_generate: s is NULL");
    if (!q || !k || !v)
        return svoo_err(SVOO_ERR_NULL_POINTER, "svoo_synth_generate: q, k or v is NULL");
    if (step < 0 || step >= s->cfg.steps || layer < 0 || layer >= s->cfg.layers)
        return svoo_err(SVOO_ERR_OUT_OF_RANGE,
                        "svoo_synth_generate: (step %d, layer %d) outside %d x %d", step, layer,
                        s->cfg.steps, s->cfg.layers);
    if (dt != SVOO_F32 && dt != SVOO_F16 && dt != SVOO_BF16)
        return svoo_err(SVOO_ERR_UNKNOWN_DTYPE, "svoo_synth_generate: dtype %d", (int)dt);
    s->have_calib = 0;

    const int D = s->cfg.head_dim, Hh = s->cfg.heads;
    const int F = s->cfg.frames, GH = s->cfg.height, GW = s->cfg.width, T = s->cfg.text_tokens;
    const int64_t N = s->n, NV = s->nvideo, R = s->nrows;
    const int P = D / 2, M = D / 4, O = D / 4, nlab = NBG + s->nobj;
    const int64_t text0 = s->cfg.text_first ? 0 : NV, vid0 = s->cfg.text_first ? T : 0;
    const size_t es = svoo_dtype_size(dt);
    const double t = step_time(s, step);
    const uint64_t sd = seed_of(s);
    const int nth = svoo_threads(0);
    const float sqD = (float)sqrt((double)D), isqD = 1.0f / sqD;

    gen_bufs b;
    memset(&b, 0, sizeof b);
    size_t ND = svoo_mul_size((size_t)N, (size_t)D), RN = svoo_mul_size((size_t)R, (size_t)N);
    const size_t tabn = (size_t)M * 2 * (F + GH + GW);
    b.qf = svoo_aligned_alloc(ND * 4);
    b.kf = svoo_aligned_alloc(ND * 4);
    b.vf = svoo_aligned_alloc(ND * 4);
    b.logits = svoo_aligned_alloc(RN * 4);
    b.qrows = svoo_aligned_alloc((size_t)R * D * 4);
    b.labels = svoo_malloc((size_t)NV * sizeof(int16_t));
    b.smax = svoo_malloc((size_t)R * 4);
    b.smin = svoo_malloc((size_t)R * 4);
    b.hoff = svoo_malloc((size_t)R * HIST_BINS * 4);
    b.hn = svoo_malloc((size_t)R * 4);
    b.hcnt = svoo_malloc((size_t)R * HIST_BINS * 4);
    b.rowbuf = svoo_malloc((size_t)R * 8);
    b.Rqk = svoo_aligned_alloc((size_t)D * D * 4);
    b.Rv = svoo_aligned_alloc((size_t)D * D * 4);
    b.tab_qk = svoo_malloc(tabn * 4);
    b.tab_v = svoo_malloc(tabn * 4);
    b.lab_qk = svoo_aligned_alloc((size_t)nlab * D * 4);
    b.lab_v = svoo_aligned_alloc((size_t)nlab * D * 4);
    b.text_dir = svoo_aligned_alloc((size_t)D * 4);
    b.work = svoo_malloc((size_t)D * D * 8);
    if (!ND || !RN || !b.qf || !b.kf || !b.vf || !b.logits || !b.qrows || !b.labels || !b.smax ||
        !b.smin || !b.hoff || !b.hn || !b.hcnt || !b.rowbuf || !b.Rqk || !b.Rv || !b.tab_qk ||
        !b.tab_v || !b.lab_qk || !b.lab_v || !b.text_dir || !b.work) {
        free_bufs(&b);
        return svoo_err(SVOO_ERR_OUT_OF_MEMORY,
                        "svoo_synth_generate: work buffers for N = %lld, D = %d", (long long)N, D);
    }

    /* segment labels of this step */
#pragma omp parallel for num_threads(nth) schedule(static)
    for (int64_t i = 0; i < NV; i++) {
        int f = (int)(i / ((int64_t)GH * GW)), y = (int)((i / GW) % GH), x = (int)(i % GW);
        b.labels[i] = (int16_t)label_at(s, t, f, y, x);
    }

    const double theta = 0.8 * t; /* noise drift angle over the run */
    double sth, cth;
    det_sincos(theta, &sth, &cth);
    const float dcos = (float)cth, dsin = (float)sth;
    int oom = 0;

    for (int h = 0; h < Hh && !oom; h++) {
        head_model hm;
        head_params(s, layer, h, &hm);
        const uint64_t hh = hk(sd, 601, (uint64_t)layer, (uint64_t)h, 0);
        make_rotation(hk2(hh, 1), D, b.Rqk, b.work);
        make_rotation(hk2(hh, 2), D, b.Rv, b.work);
        make_freqs(hk2(hh, 3), s, hm.lf, hm.ly, hm.lx, M, t, b.tab_qk);
        make_freqs(hk2(hh, 4), s, 3.0, 0.25 * GH, 0.25 * GW, M, t, b.tab_v);
        /* segment embeddings: unit vectors in the object block, rotated */
        float coef[512];
        for (int l = 0; l < nlab; l++) {
            unit_vec(hk(sd, 701, (uint64_t)layer, (uint64_t)h, (uint64_t)l), O, coef);
            for (int i = 0; i < O; i++)
                coef[i] *= sqrtf(hm.wo);
            rot_combine(b.Rqk, D, P, coef, O, b.lab_qk + (size_t)l * D);
            unit_vec(hk(sd, 702, (uint64_t)layer, (uint64_t)h, (uint64_t)l), O, coef);
            for (int i = 0; i < O; i++)
                coef[i] *= sqrtf(0.3f);
            rot_combine(b.Rv, D, P, coef, O, b.lab_v + (size_t)l * D);
        }
        for (int d = 0; d < D; d++)
            b.text_dir[d] = sqrtf(hm.at) * b.Rqk[(size_t)(D - 1) * D + d];

        const float swp = sqrtf(hm.wp), swz = sqrtf(hm.wz / (float)D), swv = sqrtf(0.5f),
                    swzv = sqrtf(0.2f / (float)D);
        const gen_bufs *cb = &b;
        /* video tokens */
#pragma omp parallel for num_threads(nth) schedule(static)
        for (int64_t i = 0; i < NV; i++) {
            const int f = (int)(i / ((int64_t)GH * GW)), y = (int)((i / GW) % GH),
                      x = (int)(i % GW);
            const int64_t n = vid0 + i;
            float raw[512], pos[512], vpos[512];
            /* qk positional features */
            freq_product(cb->tab_qk, M, F + GH + GW, f, F + y, F + GH + x, raw);
            rot_combine(cb->Rqk, D, 0, raw, P, pos);
            freq_product(cb->tab_v, M, F + GH + GW, f, F + y, F + GH + x, raw);
            rot_combine(cb->Rv, D, 0, raw, P, vpos);
            const int lab = cb->labels[i];
            const float *lq = cb->lab_qk + (size_t)lab * D, *lv = cb->lab_v + (size_t)lab * D;
            float *qo = cb->qf + n * D, *ko = cb->kf + n * D, *vo = cb->vf + n * D;
            for (int d = 0; d < D; d++) {
                float nq, nk, nv;
                token_noise(hh, n, d, dcos, dsin, &nq, &nk, &nv);
                float common = swp * pos[d] + lq[d];
                qo[d] = sqD * (common + cb->text_dir[d] + swz * nq);
                ko[d] = sqD * (common + swz * nk);
                vo[d] = sqD * (swv * vpos[d] + lv[d] + swzv * nv);
            }
        }
        /* text tokens: a shared text direction plus their own embedding */
        for (int64_t j = 0; j < T; j++) {
            const int64_t n = text0 + j;
            float u[512], e[512], a[512], bv[512], bk[512];
            unit_vec(hk(sd, 801, (uint64_t)layer, (uint64_t)h, 0), O, u);
            unit_vec(hk(sd, 802, (uint64_t)layer, (uint64_t)h, (uint64_t)j), O, e);
            for (int i = 0; i < O; i++)
                a[i] = sqrtf(0.85f) * (0.6f * u[i] + 0.8f * e[i]);
            rot_combine(b.Rqk, D, P, a, O, bk); /* key of text token j */
            unit_vec(hk(sd, 804, (uint64_t)layer, (uint64_t)h, (uint64_t)j), O, e);
            for (int i = 0; i < O; i++)
                a[i] = 0.6f * sqrtf(0.85f) * (0.6f * u[i] + 0.8f * e[i]);
            rot_combine(b.Rqk, D, P, a, O, bv); /* its query: weak, unspecific */
            unit_vec(hk(sd, 803, (uint64_t)layer, (uint64_t)h, (uint64_t)j), O, e);
            for (int i = 0; i < O; i++)
                a[i] = sqrtf(0.8f) * e[i];
            float vv[512];
            rot_combine(b.Rv, D, P, a, O, vv);
            float *qo = b.qf + n * D, *ko = b.kf + n * D, *vo = b.vf + n * D;
            for (int d = 0; d < D; d++) {
                float nq, nk, nv;
                token_noise(hh, n, d, dcos, dsin, &nq, &nk, &nv);
                qo[d] = sqD * (bv[d] + 0.6f * swz * nq);
                ko[d] = sqD * (bk[d] + b.text_dir[d] + swz * nk);
                vo[d] = sqD * (vv[d] + swzv * nv);
            }
        }
        /* k and v are final (rounded to dt); q waits for beta */
        char *kout = (char *)k + (size_t)h * N * D * es, *vout = (char *)v + (size_t)h * N * D * es;
#pragma omp parallel for num_threads(nth) schedule(static)
        for (int64_t i = 0; i < N * D; i++) {
            cb->kf[i] = round_dt(cb->kf[i], dt);
            store_dt(kout, dt, i, cb->kf[i]);
            store_dt(vout, dt, i, cb->vf[i]);
        }

        /* calibration: logits of the sampled rows once, then bisection */
        for (int64_t r = 0; r < R; r++)
            memcpy(b.qrows + r * D, b.qf + (int64_t)s->rows[r] * D, (size_t)D * 4);
#pragma omp parallel for num_threads(nth) schedule(dynamic, 4)
        for (int64_t jb = 0; jb < N; jb += 256) {
            int64_t je = jb + 256 < N ? jb + 256 : N;
            logit_block(cb->qrows, cb->kf, R, N, D, isqD, jb, je, cb->logits);
        }
        calib_state c = {R, N, b.logits, b.smax, b.smin, b.hn, b.hcnt, b.hoff, s->cfg.tau};
        build_hist(&c, nth);
        double target;
        svoo_profile_get(s->target, step, layer, h, &target);
        /* one key is the floor: aim at least there */
        const double floor_d = 1.0 / (double)N, goal = target > floor_d ? target : floor_d;
        double beta = BETA_LO, meas = 0.0, best_err = 1e30, aim = goal;
        int clamped = 0;
        /* approximate solve, then correct the aim with exact measures */
        for (int round = 0; round < 5; round++) {
            double bt = det_exp(solve_beta(&c, aim, b.rowbuf, nth));
            double d = exact_density(&c, bt, b.rowbuf, nth, &oom);
            double err = fabs(det_log(d / goal));
            if (err < best_err) best_err = err, beta = bt, meas = d;
            if (err < 0.01 || oom) break;
            if (bt <= BETA_LO * 1.0001 && d < goal) break; /* flattest reachable */
            if (bt >= BETA_HI * 0.9999 && d > goal) break; /* sharpest reachable */
            aim = aim * goal / d;
            if (aim > 0.999) aim = 0.999;
        }
        if (meas > target * 1.02 && (beta >= BETA_HI * 0.9999 || target < floor_d)) clamped = 1;
        if (meas < target * 0.98 && beta <= BETA_LO * 1.0001) clamped = -1;
        svoo_synth_calib *cr = &s->calib[h];
        cr->target = target, cr->measured = meas, cr->beta = beta, cr->clamped = clamped;
        cr->rows = R;
        char *qout = (char *)q + (size_t)h * N * D * es;
        const float fb = (float)beta;
#pragma omp parallel for num_threads(nth) schedule(static)
        for (int64_t i = 0; i < N * D; i++)
            store_dt(qout, dt, i, fb * cb->qf[i]);
    }
    free_bufs(&b);
    if (oom) return svoo_err(SVOO_ERR_OUT_OF_MEMORY, "svoo_synth_generate: calibration scratch");
    s->have_calib = 1;
    return SVOO_OK;
}

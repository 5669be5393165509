/* testutil.h : helpers shared by the C tests (header-only, static). */
#ifndef SVOO_TESTUTIL_H
#define SVOO_TESTUTIL_H

#define SVOO_STATIC_LINKING_ONLY
#include "core/internal.h"
#include "attend/attend.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

static inline double tu_uniform(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (double)(*s >> 11) / 9007199254740992.0;
}

static inline double tu_normal(uint64_t *s) {
    double u = tu_uniform(s) + 1e-12, v = tu_uniform(s);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* a (B, H, N, D) view of dtype dt in layout bnhd or bhnd, filled from f64
 * values x (B*H*N*D, logical order); the stored (rounded) values are written
 * back into x so references see exactly what the kernel sees */
static inline svoo_tensor tu_tensor(double *x, svoo_dtype dt, int bnhd, int64_t B, int64_t H,
                                    int64_t N, int64_t D) {
    void *buf = calloc((size_t)(B * H * N * D), svoo_dtype_size(dt));
    assert_non_null(buf);
    svoo_tensor t = bnhd ? svoo_tensor_bnhd(buf, dt, B, N, H, D) : svoo_tensor_bhnd(buf, dt, B, H, N, D);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t n = 0; n < N; n++) {
                double *row = x + ((b * H + h) * N + n) * D;
                float f[1024];
                for (int64_t d = 0; d < D; d++) f[d] = (float)row[d];
                svoo_rows_store(&t, b, h, NULL, n, 1, f);
                svoo_rows_load(&t, b, h, NULL, n, 1, f);
                for (int64_t d = 0; d < D; d++) row[d] = f[d];
            }
    return t;
}

/* logical (B*H*N*D) f64 copy of a view */
static inline double *tu_read(const svoo_tensor *t) {
    const int64_t B = t->shape[0], H = t->shape[1], N = t->shape[2], D = t->shape[3];
    double *x = malloc(sizeof(double) * (size_t)(B * H * N * D));
    assert_non_null(x);
    float f[1024];
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t n = 0; n < N; n++) {
                svoo_rows_load(t, b, h, NULL, n, 1, f);
                for (int64_t d = 0; d < D; d++) x[((b * H + h) * N + n) * D + d] = f[d];
            }
    return x;
}

static inline double *tu_random(uint64_t seed, size_t n, double scale) {
    double *x = malloc(n * sizeof(double));
    assert_non_null(x);
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 7;
    for (size_t i = 0; i < n; i++) x[i] = scale * tu_normal(&s);
    return x;
}

/* f64 attention of every (b, h), logical layout */
static inline double *tu_reference(const double *q, const double *k, const double *v, int64_t B,
                                   int64_t H, int64_t N, int64_t D) {
    double *o = malloc(sizeof(double) * (size_t)(B * H * N * D));
    assert_non_null(o);
    for (int64_t bh = 0; bh < B * H; bh++)
        svoo_attend_ref_f64(q + bh * N * D, k + bh * N * D, v + bh * N * D, N, N, (int)D,
                            1.0 / sqrt((double)D), o + bh * N * D);
    return o;
}

static inline double tu_rel_l2(const double *a, const double *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += (a[i] - ref[i]) * (a[i] - ref[i]);
        den += ref[i] * ref[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}

static inline void tu_model_config(svoo_config *c, svoo_method m, int heads, int d) {
    svoo_config_init(c, m);
    c->head_dim = d;
    c->num_heads = heads;
    c->num_layers = 4;
    c->num_steps = 50;
    c->warmup_step_frac = 0;
    c->warmup_layer_frac = 0;
}

/* fn(y, n, shift) against svoo_expf(x - shift) over NaN, Inf, -0, the -87 clamp,
 * denormals, random logits and a scalar tail. bitwise: TU_EXP_BITS bit for bit;
 * TU_EXP_BITS_LE0 bit for bit where x - shift <= 0 and finite (the AVX loops without
 * FMA: a softmax's domain); TU_EXP_CLOSE (the FMA loops of native builds) within 1e-6
 * relative there */
enum { TU_EXP_CLOSE, TU_EXP_BITS, TU_EXP_BITS_LE0 };
static inline void tu_check_exp_shift(void (*fn)(float *, int, float), int bitwise) {
    enum { N = 4099 }; /* not a multiple of 8 or 16: the scalar tail runs too */
    static float x[N], y[N];
    const float special[] = {NAN,    -NAN,       INFINITY,   -INFINITY, 0.0f,  -0.0f,
                             -87.0f, -86.99999f, -87.00001f, -1e30f,    1e30f, 88.0f,
                             100.0f, 1e-40f,     -1e-40f,    0.5f};
    const float shifts[] = {0.0f, 3.25f, -0.0f, -1e4f};
    for (int si = 0; si < 4; si++) {
        uint32_t r = 12345u + (uint32_t)si;
        for (int i = 0; i < N; i++) {
            r = r * 1664525u + 1013904223u;
            x[i] = i < 16 * 16 && i % 16 == 0 ? special[i / 16]
                                              : -100.0f * (float)(r >> 8) / 16777216.0f;
            if (i % 97 == 0) x[i] = -(float)(i / 97) * 0.001f; /* near zero */
            x[i] += shifts[si];
            y[i] = x[i];
        }
        fn(y, N, shifts[si]);
        for (int i = 0; i < N; i++) {
            float want = svoo_expf(x[i] - shifts[si]);
            const int domain = isfinite(want) && x[i] - shifts[si] <= 0.0f;
            if (bitwise == TU_EXP_CLOSE) {
                if (domain) assert_true(fabsf(y[i] - want) <= 1e-6f * want + 1e-37f);
                continue;
            }
            if (bitwise == TU_EXP_BITS_LE0 && !domain) continue;
            uint32_t a, b;
            memcpy(&a, &y[i], 4), memcpy(&b, &want, 4);
            if (a != b)
                fail_msg("x = %a, shift %a: %a, svoo_expf %a", x[i], shifts[si], y[i], want);
        }
    }
}

#endif

/* internal.h : helpers shared by every stage of libsvoo (not installed). */
#ifndef SVOO_INTERNAL_H
#define SVOO_INTERNAL_H

#define SVOO_STATIC_LINKING_ONLY
#include "svoo.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#define SVOO_ERRMSG_MAX 512

/* ---- errors -------------------------------------------------------------
 * Context-free calls record into a thread-local buffer (svoo_last_error(NULL));
 * calls with a context into ctx->errmsg. Both return the status they record so
 * that `return svoo_err(...)` reads naturally. */
svoo_status svoo_err(svoo_status s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
svoo_status svoo_ctx_err(svoo_ctx *ctx, svoo_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* copies the thread-local message into ctx (after a context-free helper failed) */
svoo_status svoo_ctx_take_err(svoo_ctx *ctx, svoo_status s);
const char *svoo_err_thread(void);

/* ---- allocation: every library allocation goes through here so that tests
 * can make the k-th one fail (svoo_alloc_fail_at). */
void *svoo_malloc(size_t n);
void *svoo_calloc(size_t count, size_t size);
void *svoo_realloc(void *p, size_t n);
void *svoo_aligned_alloc(size_t n); /* 64-byte aligned, free with svoo_free */
void svoo_free(void *p);
char *svoo_strdup(const char *s);
/* overflow-checked count*size; 0 on overflow */
size_t svoo_mul_size(size_t a, size_t b);

/* ---- portable builds: hot loops also for x86-64-v3 ----
 * Without -march=native (SVOO_NATIVE=OFF: distributions, wheels) the library
 * targets baseline x86-64, where fmaf and floorf are libm calls and loops run 4
 * wide. Functions marked SVOO_HOT_CLONES get a second copy for x86-64-v3 (AVX2,
 * FMA), chosen at load time by an ifunc, so baseline CPUs still run the default
 * copy. Both copies compute the same bits: -std=c11 keeps contraction off and
 * nothing reassociates, fmaf is exact either way. Not for loops with complex
 * products (a*b - c*d, a*d + c*b) written as one: GCC 12 vectorises them into
 * vfmaddsub even with contraction off (test_portable_bits would fail; synth.c's
 * freq_product splits them for -march=native). Empty when the build already
 * targets AVX2 (native) or the toolchain has no ifunc, and with clang: clang 14
 * names an extern clone's ifunc `NAME.ifunc` (callers in other files, e.g.
 * test_numerics, do not link) and contracts a*b + c into FMA in the v3 copy by
 * default (-ffp-contract=on), so the copies' bits would differ. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__ELF__) &&         \
    !defined(__AVX2__)
#define SVOO_HOT_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define SVOO_HOT_CLONES
#endif

/* ---- time ---- */
double svoo_now_ms(void);

/* ---- half / bfloat16 ---- */
static inline float svoo_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline uint16_t svoo_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest even */
    return (uint16_t)(u >> 16);
}
static inline float svoo_f16_to_f32(uint16_t h) {
    _Float16 x;
    memcpy(&x, &h, 2);
    return (float)x;
}
static inline uint16_t svoo_f32_to_f16(float f) {
    _Float16 x = (_Float16)f;
    uint16_t h;
    memcpy(&h, &x, 2);
    return h;
}
static inline float svoo_load_elem(const void *base, svoo_dtype dt, int64_t i) {
    switch (dt) {
    case SVOO_F32: return ((const float *)base)[i];
    case SVOO_F16: return svoo_f16_to_f32(((const uint16_t *)base)[i]);
    default: return svoo_bf16_to_f32(((const uint16_t *)base)[i]);
    }
}

/* ---- tensor views ---- */
/* offset in elements of row n of head (b, h) */
static inline int64_t svoo_row_offset(const svoo_tensor *t, int64_t b, int64_t h,
                                      int64_t n) {
    return b * t->stride[0] + h * t->stride[1] + n * t->stride[2];
}
/* validates one view on its own (name used in the message) */
svoo_status svoo_tensor_check(const svoo_tensor *t, const char *name);
/* every field of a config, as svoo_ctx_create needs it (src/core/config.c) */
svoo_status svoo_config_validate(const svoo_config *c);
/* validates q/k/v/out together: same dtype/device, q/out and k/v shapes */
svoo_status svoo_qkvo_check(const svoo_tensor *q, const svoo_tensor *k,
                            const svoo_tensor *v, const svoo_tensor *out);
/* rows[i] of head (b, h) -> dst (count x D f32, row-major); rows == NULL: the
 * rows first .. first+count-1 */
void svoo_rows_load(const svoo_tensor *t, int64_t b, int64_t h, const int32_t *rows,
                    int64_t first, int64_t count, float *dst);
/* src (count x D f32) -> rows[i] of head (b, h) of t (dtype converted) */
void svoo_rows_store(svoo_tensor *t, int64_t b, int64_t h, const int32_t *rows,
                     int64_t first, int64_t count, const float *src);
/* 1 if any element of the view is NaN/Inf */
int svoo_tensor_has_nonfinite(const svoo_tensor *t);

/* ---- math ---- */
/* vectorisable exp for softmax arguments (x <= 0); rel. error < 2e-7.
 * Branch-free and without memcpy so that loops calling it vectorise. */
static inline float svoo_expf(float x) {
    x = x < -87.0f ? -87.0f : x;
    float t = x * 1.44269504088896341f;
    float fi = floorf(t);
    float f = t - fi; /* [0, 1) */
    /* 2^f on [0,1): degree-6 minimax */
    float p = 1.535336188319500e-4f;
    p = p * f + 1.339887440266574e-3f;
    p = p * f + 9.618437357674640e-3f;
    p = p * f + 5.550332471162809e-2f;
    p = p * f + 2.402264791363012e-1f;
    p = p * f + 6.931472028550421e-1f;
    p = p * f + 1.0f;
    union {
        int32_t i;
        float f;
    } s;
    /* NaN (or +Inf) argument: p is already NaN; keep the float -> int
     * conversion and the shift defined (UBSan) with a neutral exponent */
    const float fe = (fi >= -127.0f && fi <= 127.0f) ? fi : 0.0f;
    s.i = ((int32_t)fe + 127) << 23;
    return p * s.f;
}

int svoo_threads(int requested);

#endif

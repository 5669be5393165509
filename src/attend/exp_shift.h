/* exp_shift.h : the CPU executor's softmax exp (src/attend/sparse.c), in a header so
 * that tests/test_exp_baseline.c can compile it for baseline x86-64 whatever the build's
 * flags: that is the copy a portable build runs on CPUs without AVX2. */
#ifndef SVOO_EXP_SHIFT_H
#define SVOO_EXP_SHIFT_H

#include "../core/internal.h"

#include <string.h>
#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#if !defined(__AVX2__) && defined(__GNUC__)
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
/* m ? a : b with m's lanes all ones or zero (a macro: 32-byte vector arguments warn on SSE) */
#define vsel(m, a, b) ((v8f)(((v8i)(a) & (m)) | ((v8i)(b) & ~(m))))
#endif

/* x[j] = exp(x[j] - shift) for j < n. The scalar svoo_expf does not
 * vectorise (gcc will not if-convert its clamp), so the hot loop has
 * explicit AVX-512 / AVX2 versions of the same polynomial in native builds,
 * and otherwise svoo_expf itself 8 lanes at a time, same operations and same
 * bits (SSE2, or AVX2 in tile_chunk's x86-64-v3 clone). fma: the AVX loops'
 * polynomial with fused multiply-adds (the executor's softmax: faster, close
 * to svoo_expf) or with a multiply and an add each, svoo_expf's bits wherever
 * x[j] - shift <= 0 (the density profiler, whose counts then do not depend on
 * the build's flags). */
#if defined(__AVX512F__)
static inline __m512 exp_poly16(__m512 p, __m512 f, float c, int fma) {
    return fma ? _mm512_fmadd_ps(p, f, _mm512_set1_ps(c))
               : _mm512_add_ps(_mm512_mul_ps(p, f), _mm512_set1_ps(c));
}
#elif defined(__AVX2__)
static inline __m256 exp_poly8(__m256 p, __m256 f, float c, int fma) {
    return fma ? _mm256_fmadd_ps(p, f, _mm256_set1_ps(c))
               : _mm256_add_ps(_mm256_mul_ps(p, f), _mm256_set1_ps(c));
}
#endif
static inline void exp_shift(float *x, int n, float shift, int fma) {
    int j = 0;
    (void)fma; /* (no AVX loop) */
#if defined(__AVX512F__)
    const __m512 lo = _mm512_set1_ps(-87.0f), l2e = _mm512_set1_ps(1.44269504088896341f);
    const __m512 sh = _mm512_set1_ps(shift);
    for (; j + 16 <= n; j += 16) {
        __m512 v = _mm512_max_ps(lo, _mm512_sub_ps(_mm512_loadu_ps(x + j), sh)); /* NaN kept */
        __m512 t = _mm512_mul_ps(v, l2e);
        __m512 fi = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
        __m512 f = _mm512_sub_ps(t, fi);
        __m512 p = _mm512_set1_ps(1.535336188319500e-4f);
        p = exp_poly16(p, f, 1.339887440266574e-3f, fma);
        p = exp_poly16(p, f, 9.618437357674640e-3f, fma);
        p = exp_poly16(p, f, 5.550332471162809e-2f, fma);
        p = exp_poly16(p, f, 2.402264791363012e-1f, fma);
        p = exp_poly16(p, f, 6.931472028550421e-1f, fma);
        p = exp_poly16(p, f, 1.0f, fma);
        _mm512_storeu_ps(x + j, _mm512_scalef_ps(p, fi));
    }
#elif defined(__AVX2__)
    const __m256 lo = _mm256_set1_ps(-87.0f), l2e = _mm256_set1_ps(1.44269504088896341f);
    const __m256 sh = _mm256_set1_ps(shift);
    for (; j + 8 <= n; j += 8) {
        __m256 v = _mm256_max_ps(lo, _mm256_sub_ps(_mm256_loadu_ps(x + j), sh)); /* NaN kept */
        __m256 t = _mm256_mul_ps(v, l2e);
        __m256 fi = _mm256_floor_ps(t);
        __m256 f = _mm256_sub_ps(t, fi);
        __m256 p = _mm256_set1_ps(1.535336188319500e-4f);
        p = exp_poly8(p, f, 1.339887440266574e-3f, fma);
        p = exp_poly8(p, f, 9.618437357674640e-3f, fma);
        p = exp_poly8(p, f, 5.550332471162809e-2f, fma);
        p = exp_poly8(p, f, 2.402264791363012e-1f, fma);
        p = exp_poly8(p, f, 6.931472028550421e-1f, fma);
        p = exp_poly8(p, f, 1.0f, fma);
        __m256i e =
            _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fi), _mm256_set1_epi32(127)), 23);
        _mm256_storeu_ps(x + j, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
    }
#elif defined(__GNUC__)
    const v8f z = {0};
    for (; j + 8 <= n; j += 8) {
        v8f v, p;
        memcpy(&v, x + j, sizeof v);
        v = v - shift;
        v = vsel(v < -87.0f, z - 87.0f, v); /* NaN kept */
        const v8f t = v * 1.44269504088896341f;
        /* floorf: truncate, one down below; |t| >= 2^23, Inf, NaN are their own floor */
        const v8i small = (v8f)((v8i)t & 0x7fffffff) < 8388608.0f;
        const v8f tr =
            __builtin_convertvector(__builtin_convertvector(vsel(small, t, z), v8i), v8f);
        const v8f fi = vsel(small, vsel(t < tr, tr - 1.0f, tr), t);
        const v8f f = t - fi;
        p = f * 1.535336188319500e-4f + 1.339887440266574e-3f;
        p = p * f + 9.618437357674640e-3f;
        p = p * f + 5.550332471162809e-2f;
        p = p * f + 2.402264791363012e-1f;
        p = p * f + 6.931472028550421e-1f;
        p = p * f + 1.0f;
        const v8f fe = vsel((fi >= -127.0f) & (fi <= 127.0f), fi, z);
        p = p * (v8f)((__builtin_convertvector(fe, v8i) + 127) << 23);
        memcpy(x + j, &p, sizeof p);
    }
#endif
    for (; j < n; j++)
        x[j] = svoo_expf(x[j] - shift);
}

#endif

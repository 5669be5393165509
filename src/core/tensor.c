/* tensor.c : validation of rank-4 views and f32 row gathers/scatters. */
#include "internal.h"

#include <omp.h>

size_t svoo_dtype_size(svoo_dtype dt) {
    switch (dt) {
    case SVOO_F32: return 4;
    case SVOO_F16:
    case SVOO_BF16: return 2;
    }
    return 0;
}

const char *svoo_dtype_name(svoo_dtype dt) {
    switch (dt) {
    case SVOO_F32: return "f32";
    case SVOO_F16: return "f16";
    case SVOO_BF16: return "bf16";
    }
    return "unknown";
}

svoo_tensor svoo_tensor_bhnd(void *data, svoo_dtype dtype, int64_t B, int64_t H,
                             int64_t N, int64_t D) {
    svoo_tensor t = {data, dtype, SVOO_DEVICE_CPU, 0, {B, H, N, D},
                     {H * N * D, N * D, D, 1}};
    return t;
}

svoo_tensor svoo_tensor_bnhd(void *data, svoo_dtype dtype, int64_t B, int64_t N,
                             int64_t H, int64_t D) {
    svoo_tensor t = {data, dtype, SVOO_DEVICE_CPU, 0, {B, H, N, D},
                     {N * H * D, D, H * D, 1}};
    return t;
}

static const char *const k_dim[4] = {"B", "H", "N", "D"};

svoo_status svoo_tensor_check(const svoo_tensor *t, const char *name) {
    if (!t) return svoo_err(SVOO_ERR_NULL_POINTER, "%s: tensor view is NULL", name);
    if (!t->data) return svoo_err(SVOO_ERR_NULL_POINTER, "%s: data pointer is NULL", name);
    if (svoo_dtype_size(t->dtype) == 0)
        return svoo_err(SVOO_ERR_UNKNOWN_DTYPE, "%s: unknown dtype %d", name, (int)t->dtype);
    if (t->device != SVOO_DEVICE_CPU && t->device != SVOO_DEVICE_CUDA)
        return svoo_err(SVOO_ERR_INVALID_ARGUMENT, "%s: unknown device %d", name,
                        (int)t->device);
    for (int i = 0; i < 4; i++) {
        if (t->shape[i] <= 0)
            return svoo_err(SVOO_ERR_INVALID_ARGUMENT, "%s: shape[%d] (%s) = %lld must be > 0",
                            name, i, k_dim[i], (long long)t->shape[i]);
        if (t->shape[i] > INT32_MAX)
            return svoo_err(SVOO_ERR_INVALID_ARGUMENT, "%s: shape[%d] (%s) = %lld too large",
                            name, i, k_dim[i], (long long)t->shape[i]);
        if (t->stride[i] < 0)
            return svoo_err(SVOO_ERR_INVALID_ARGUMENT, "%s: stride[%d] (%s) = %lld is negative",
                            name, i, k_dim[i], (long long)t->stride[i]);
    }
    if (t->stride[3] != 1)
        return svoo_err(SVOO_ERR_INVALID_ARGUMENT,
                        "%s: stride of D must be 1 (got %lld)", name, (long long)t->stride[3]);
    /* no aliasing: sorted by stride, each dim must step over the whole extent
     * of the dims below it */
    int order[4] = {0, 1, 2, 3};
    for (int i = 1; i < 4; i++)
        for (int j = i; j > 0 && t->stride[order[j]] < t->stride[order[j - 1]]; j--) {
            int tmp = order[j];
            order[j] = order[j - 1];
            order[j - 1] = tmp;
        }
    int64_t extent = 1;
    for (int i = 0; i < 4; i++) {
        int d = order[i];
        if (t->shape[d] == 1) continue;
        if (t->stride[d] < extent)
            return svoo_err(SVOO_ERR_OVERLAPPING_STRIDES,
                            "%s: stride of %s (%lld) overlaps the inner dims (extent %lld)",
                            name, k_dim[d], (long long)t->stride[d], (long long)extent);
        if (__builtin_mul_overflow(t->stride[d], t->shape[d] - 1, &extent) ||
            __builtin_add_overflow(extent, 1, &extent))
            return svoo_err(SVOO_ERR_INVALID_ARGUMENT,
                            "%s: stride of %s (%lld) x shape (%lld) overflows 64 bits", name,
                            k_dim[d], (long long)t->stride[d], (long long)t->shape[d]);
    }
    return SVOO_OK;
}

/* [*lo, *hi): the bytes a checked view spans */
static void byte_range(const svoo_tensor *t, uintptr_t *lo, uintptr_t *hi) {
    int64_t last = 0; /* (within int64: each dim's extent was checked) */
    for (int d = 0; d < 4; d++) last += (t->shape[d] - 1) * t->stride[d];
    *lo = (uintptr_t)t->data;
    *hi = *lo + (uintptr_t)(last + 1) * svoo_dtype_size(t->dtype);
}

svoo_status svoo_qkvo_check(const svoo_tensor *q, const svoo_tensor *k,
                            const svoo_tensor *v, const svoo_tensor *out) {
    svoo_status s;
    if ((s = svoo_tensor_check(q, "q")) || (s = svoo_tensor_check(k, "k")) ||
        (s = svoo_tensor_check(v, "v")) || (s = svoo_tensor_check(out, "out")))
        return s;
    const svoo_tensor *ts[3] = {k, v, out};
    const char *names[3] = {"k", "v", "out"};
    for (int i = 0; i < 3; i++) {
        if (ts[i]->dtype != q->dtype)
            return svoo_err(SVOO_ERR_DTYPE_MISMATCH, "%s: dtype %s differs from q's %s",
                            names[i], svoo_dtype_name(ts[i]->dtype), svoo_dtype_name(q->dtype));
        if (ts[i]->device != q->device || ts[i]->device_index != q->device_index)
            return svoo_err(SVOO_ERR_WRONG_DEVICE, "%s: on another device than q", names[i]);
    }
    for (int d = 0; d < 4; d++) {
        if (d != 2 && (k->shape[d] != q->shape[d] || v->shape[d] != q->shape[d]))
            return svoo_err(SVOO_ERR_SHAPE_MISMATCH, "k/v: %s = %lld/%lld differs from q's %lld",
                            k_dim[d], (long long)k->shape[d], (long long)v->shape[d],
                            (long long)q->shape[d]);
        if (out->shape[d] != q->shape[d])
            return svoo_err(SVOO_ERR_SHAPE_MISMATCH, "out: %s = %lld differs from q's %lld",
                            k_dim[d], (long long)out->shape[d], (long long)q->shape[d]);
    }
    if (v->shape[2] != k->shape[2])
        return svoo_err(SVOO_ERR_SHAPE_MISMATCH, "v: N = %lld differs from k's %lld",
                        (long long)v->shape[2], (long long)k->shape[2]);
    /* out is written while q, k and v are still read (rows of other clusters,
     * other heads' planners): no byte of it may lie in their ranges */
    const svoo_tensor *in[3] = {q, k, v};
    const char *in_names[3] = {"q", "k", "v"};
    uintptr_t o0, o1;
    byte_range(out, &o0, &o1);
    for (int i = 0; i < 3; i++) {
        uintptr_t a0, a1;
        byte_range(in[i], &a0, &a1);
        if (a0 < o1 && o0 < a1)
            return svoo_err(SVOO_ERR_INVALID_ARGUMENT,
                            "out: its memory overlaps %s's (pass a separate output buffer)",
                            in_names[i]);
    }
    return SVOO_OK;
}

void svoo_rows_load(const svoo_tensor *t, int64_t b, int64_t h, const int32_t *rows,
                    int64_t first, int64_t count, float *dst) {
    const int64_t D = t->shape[3];
    const size_t es = svoo_dtype_size(t->dtype);
    for (int64_t i = 0; i < count; i++) {
        int64_t n = rows ? rows[i] : first + i;
        const char *src = (const char *)t->data + (size_t)svoo_row_offset(t, b, h, n) * es;
        float *o = dst + i * D;
        if (t->dtype == SVOO_F32) {
            memcpy(o, src, (size_t)D * 4);
        } else if (t->dtype == SVOO_BF16) {
            const uint16_t *s = (const uint16_t *)src;
            for (int64_t d = 0; d < D; d++) o[d] = svoo_bf16_to_f32(s[d]);
        } else {
            const uint16_t *s = (const uint16_t *)src;
            for (int64_t d = 0; d < D; d++) o[d] = svoo_f16_to_f32(s[d]);
        }
    }
}

void svoo_rows_store(svoo_tensor *t, int64_t b, int64_t h, const int32_t *rows,
                     int64_t first, int64_t count, const float *src) {
    const int64_t D = t->shape[3];
    const size_t es = svoo_dtype_size(t->dtype);
    for (int64_t i = 0; i < count; i++) {
        int64_t n = rows ? rows[i] : first + i;
        char *dst = (char *)t->data + (size_t)svoo_row_offset(t, b, h, n) * es;
        const float *s = src + i * D;
        if (t->dtype == SVOO_F32) {
            memcpy(dst, s, (size_t)D * 4);
        } else if (t->dtype == SVOO_BF16) {
            uint16_t *o = (uint16_t *)dst;
            for (int64_t d = 0; d < D; d++) o[d] = svoo_f32_to_bf16(s[d]);
        } else {
            uint16_t *o = (uint16_t *)dst;
            for (int64_t d = 0; d < D; d++) o[d] = svoo_f32_to_f16(s[d]);
        }
    }
}

int svoo_tensor_has_nonfinite(const svoo_tensor *t) {
    const int64_t B = t->shape[0], H = t->shape[1], N = t->shape[2], D = t->shape[3];
    const size_t es = svoo_dtype_size(t->dtype);
    int bad = 0;
#pragma omp parallel for collapse(2) reduction(| : bad) schedule(static)
    for (int64_t bh = 0; bh < B * H; bh++)
        for (int64_t n = 0; n < N; n++) {
            const char *row =
                (const char *)t->data + (size_t)svoo_row_offset(t, bh / H, bh % H, n) * es;
            for (int64_t d = 0; d < D; d++) {
                float x = svoo_load_elem(row, t->dtype, d);
                bad |= !isfinite(x);
            }
        }
    return bad;
}

int svoo_threads(int requested) {
    return requested > 0 ? requested : omp_get_max_threads();
}

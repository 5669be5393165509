/* metrics.c : output fidelity of a sparse call against a dense reference. */
#include "internal.h"

svoo_status svoo_compare(const svoo_tensor *ref, const svoo_tensor *out, svoo_compare_result *res) {
    svoo_status s;
    if (!res) return svoo_err(SVOO_ERR_NULL_POINTER, "res is NULL");
    if ((s = svoo_tensor_check(ref, "ref")) || (s = svoo_tensor_check(out, "out"))) return s;
    if (ref->device != SVOO_DEVICE_CPU || out->device != SVOO_DEVICE_CPU)
        return svoo_err(SVOO_ERR_WRONG_DEVICE, "svoo_compare: views must be on the CPU");
    for (int d = 0; d < 4; d++)
        if (ref->shape[d] != out->shape[d])
            return svoo_err(SVOO_ERR_SHAPE_MISMATCH, "out: shape[%d] = %lld, ref has %lld", d,
                            (long long)out->shape[d], (long long)ref->shape[d]);
    const int64_t B = ref->shape[0], H = ref->shape[1], N = ref->shape[2], D = ref->shape[3];
    const size_t er = svoo_dtype_size(ref->dtype), eo = svoo_dtype_size(out->dtype);
    double diff = 0, rr = 0, oo = 0, ro = 0, mx = 0;
    int64_t nans = 0; /* elements where r - o is NaN (a NaN in either, or Inf - Inf) */
#pragma omp parallel for collapse(2) reduction(+ : diff, rr, oo, ro, nans) reduction(max : mx)
    for (int64_t bh = 0; bh < B * H; bh++)
        for (int64_t n = 0; n < N; n++) {
            const char *a = (const char *)ref->data + (size_t)svoo_row_offset(ref, bh / H, bh % H, n) * er;
            const char *b = (const char *)out->data + (size_t)svoo_row_offset(out, bh / H, bh % H, n) * eo;
            for (int64_t x = 0; x < D; x++) {
                double r = svoo_load_elem(a, ref->dtype, x), o = svoo_load_elem(b, out->dtype, x);
                diff += (r - o) * (r - o);
                rr += r * r;
                oo += o * o;
                ro += r * o;
                const double ad = fabs(r - o);
                if (isnan(ad)) nans++;
                else if (ad > mx) mx = ad;
            }
        }
    if (nans) { /* (the max reduction of OpenMP would drop a NaN, and cosine read 0) */
        res->rel_l2 = res->cosine = res->max_abs = NAN;
        return SVOO_OK;
    }
    res->rel_l2 = rr > 0 ? sqrt(diff / rr) : sqrt(diff);
    res->cosine = rr > 0 && oo > 0 ? ro / sqrt(rr * oo) : (rr == oo ? 1.0 : 0.0);
    res->max_abs = mx;
    return SVOO_OK;
}

/* profiler.c : collects exact densities of dense runs (one run per prompt),
 * merges them into a profile (max, as the SVOO reference does, or mean) and
 * reports how stable density is across inputs. Keeps every run's
 * steps x layers x heads densities so that both questions can be answered
 * after the fact. */
#include "density.h"

#include <stdlib.h>

struct svoo_profiler {
    int steps, layers, heads;
    double tau;
    int64_t row_step;
    int runs, cap;
    double *d;    /* runs x cells; NaN = not observed */
    int32_t *obs; /* observations folded into each value (repeated calls are averaged) */
    double *tmp;  /* B x H densities of one observe() */
    int64_t tmp_cap;
};

static int64_t cells(const svoo_profiler *p) {
    return (int64_t)p->steps * p->layers * p->heads;
}

svoo_status svoo_profiler_create(int steps, int layers, int heads, double tau, int64_t row_step,
                                 svoo_profiler **out) {
    if (!out) return svoo_err(SVOO_ERR_NULL_POINTER, "svoo_profiler_create: out is NULL");
    *out = NULL;
    if (steps <= 0 || layers <= 0 || heads <= 0 || (int64_t)steps * layers * heads > (1 << 28))
        return svoo_err(SVOO_ERR_INVALID_ARGUMENT, "svoo_profiler_create: grid %d x %d x %d", steps,
                        layers, heads);
    if (!(tau > 0 && tau <= 1))
        return svoo_err(SVOO_ERR_INVALID_ARGUMENT,
                        "svoo_profiler_create: tau = %g must be in (0, 1]", tau);
    if (row_step < 1)
        return svoo_err(SVOO_ERR_INVALID_ARGUMENT,
                        "svoo_profiler_create: row_step = %lld must be >= 1", (long long)row_step);
    svoo_profiler *p = svoo_calloc(1, sizeof *p);
    if (!p) return svoo_err(SVOO_ERR_OUT_OF_MEMORY, "svoo_profiler_create");
    p->steps = steps;
    p->layers = layers;
    p->heads = heads;
    p->tau = tau;
    p->row_step = row_step;
    *out = p;
    return SVOO_OK;
}

void svoo_profiler_free(svoo_profiler *p) {
    if (!p) return;
    svoo_free(p->d);
    svoo_free(p->obs);
    svoo_free(p->tmp);
    svoo_free(p);
}

svoo_status svoo_profiler_begin_run(svoo_profiler *p) {
    if (!p) return svoo_err(SVOO_ERR_NULL_POINTER, "svoo_profiler_begin_run: profiler is NULL");
    const int64_t n = cells(p);
    if (p->runs == p->cap) {
        int cap = p->cap ? p->cap * 2 : 4;
        size_t nd = svoo_mul_size(svoo_mul_size((size_t)cap, (size_t)n), sizeof(double));
        size_t no = svoo_mul_size(svoo_mul_size((size_t)cap, (size_t)n), sizeof(int32_t));
        if (!nd || !no)
            return svoo_err(SVOO_ERR_OUT_OF_MEMORY, "svoo_profiler_begin_run: %d runs", cap);
        double *d = svoo_realloc(p->d, nd);
        if (!d) return svoo_err(SVOO_ERR_OUT_OF_MEMORY, "svoo_profiler_begin_run: %d runs", cap);
        p->d = d;
        int32_t *o = svoo_realloc(p->obs, no);
        if (!o) return svoo_err(SVOO_ERR_OUT_OF_MEMORY, "svoo_profiler_begin_run: %d runs", cap);
        p->obs = o;
        p->cap = cap;
    }
    double *d = p->d + (size_t)p->runs * (size_t)n;
    for (int64_t i = 0; i < n; i++)
        d[i] = NAN;
    memset(p->obs + (size_t)p->runs * (size_t)n, 0, (size_t)n * sizeof(int32_t));
    p->runs++;
    return SVOO_OK;
}

svoo_status svoo_profiler_observe(svoo_profiler *p, int step, int layer, const svoo_tensor *q,
                                  const svoo_tensor *k) {
    if (!p) return svoo_err(SVOO_ERR_NULL_POINTER, "svoo_profiler_observe: profiler is NULL");
    if (p->runs == 0)
        return svoo_err(SVOO_ERR_INVALID_ARGUMENT,
                        "svoo_profiler_observe: call svoo_profiler_begin_run first");
    if (step < 0 || step >= p->steps || layer < 0 || layer >= p->layers)
        return svoo_err(SVOO_ERR_OUT_OF_RANGE,
                        "svoo_profiler_observe: (step %d, layer %d) outside %d steps x %d layers",
                        step, layer, p->steps, p->layers);
    svoo_status s;
    if ((s = svoo_tensor_check(q, "q")) || (s = svoo_tensor_check(k, "k"))) return s;
    if (q->shape[1] != p->heads || k->shape[1] != p->heads)
        return svoo_err(SVOO_ERR_SHAPE_MISMATCH,
                        "svoo_profiler_observe: q/k have %lld/%lld heads, the profiler %d",
                        (long long)q->shape[1], (long long)k->shape[1], p->heads);
    const int64_t B = q->shape[0], BH = B * p->heads;
    if (BH > p->tmp_cap) {
        double *t = svoo_realloc(p->tmp, (size_t)BH * sizeof(double));
        if (!t) return svoo_err(SVOO_ERR_OUT_OF_MEMORY, "svoo_profiler_observe");
        p->tmp = t;
        p->tmp_cap = BH;
    }
    if ((s = svoo_density(q, k, p->tau, p->row_step, 0, p->tmp))) return s;
    const size_t base = (size_t)(p->runs - 1) * (size_t)cells(p) +
                        ((size_t)step * (size_t)p->layers + (size_t)layer) * (size_t)p->heads;
    for (int h = 0; h < p->heads; h++) {
        double m = 0;
        for (int64_t b = 0; b < B; b++)
            m += p->tmp[b * p->heads + h];
        m /= (double)B;
        int32_t c = p->obs[base + h];
        p->d[base + h] = c == 0 ? m : (p->d[base + h] * c + m) / (c + 1);
        p->obs[base + h] = c + 1;
    }
    return SVOO_OK;
}

int svoo_profiler_runs(const svoo_profiler *p) {
    return p ? p->runs : 0;
}

svoo_status svoo_profiler_result(const svoo_profiler *p, svoo_merge mode, svoo_profile **out) {
    if (!p || !out)
        return svoo_err(SVOO_ERR_NULL_POINTER, "svoo_profiler_result: profiler or out is NULL");
    *out = NULL;
    if (mode != SVOO_MERGE_MAX && mode != SVOO_MERGE_MEAN)
        return svoo_err(SVOO_ERR_INVALID_ARGUMENT, "svoo_profiler_result: merge mode %d",
                        (int)mode);
    const int64_t n = cells(p);
    int any = 0;
    for (size_t i = 0; i < (size_t)p->runs * (size_t)n && !any; i++)
        any = !isnan(p->d[i]);
    if (!any) return svoo_err(SVOO_ERR_NOT_FOUND, "svoo_profiler_result: no densities observed");
    svoo_profile *dst = NULL, *run = NULL;
    svoo_status s = svoo_profile_create(p->steps, p->layers, p->heads, &dst);
    for (int r = 0; r < p->runs && !s; r++) {
        const double *d = p->d + (size_t)r * (size_t)n;
        if ((s = svoo_profile_create(p->steps, p->layers, p->heads, &run))) break;
        for (int st = 0; st < p->steps && !s; st++)
            for (int l = 0; l < p->layers && !s; l++)
                for (int h = 0; h < p->heads && !s; h++) {
                    double v = d[((int64_t)st * p->layers + l) * p->heads + h];
                    if (!isnan(v)) s = svoo_profile_set(run, st, l, h, v < 0 ? 0 : v > 1 ? 1 : v);
                }
        if (!s) s = svoo_profile_merge(dst, run, mode);
        svoo_profile_free(run);
        run = NULL;
    }
    if (s) {
        svoo_profile_free(dst);
        return s;
    }
    *out = dst;
    return SVOO_OK;
}

svoo_status svoo_profiler_stability(const svoo_profiler *p, int layer, svoo_stability *out) {
    if (!p || !out)
        return svoo_err(SVOO_ERR_NULL_POINTER, "svoo_profiler_stability: profiler or out is NULL");
    if (layer < -1 || layer >= p->layers)
        return svoo_err(SVOO_ERR_OUT_OF_RANGE, "svoo_profiler_stability: layer %d outside [-1, %d)",
                        layer, p->layers);
    if (p->runs == 0) return svoo_err(SVOO_ERR_NOT_FOUND, "svoo_profiler_stability: no runs");
    const int R = p->runs;
    const int64_t n = cells(p);
    const int l0 = layer < 0 ? 0 : layer, l1 = layer < 0 ? p->layers : layer + 1;
    double *run_sum = svoo_calloc((size_t)R, sizeof(double));
    if (!run_sum) return svoo_err(SVOO_ERR_OUT_OF_MEMORY, "svoo_profiler_stability");
    int64_t entries = 0;
    double spread = 0, cv = 0;
    int64_t cv_n = 0;
    for (int st = 0; st < p->steps; st++)
        for (int l = l0; l < l1; l++)
            for (int h = 0; h < p->heads; h++) {
                const int64_t c = ((int64_t)st * p->layers + l) * p->heads + h;
                int all = 1;
                for (int r = 0; r < R && all; r++)
                    all = !isnan(p->d[(size_t)r * (size_t)n + (size_t)c]);
                if (!all) continue; /* only entries every run observed */
                double mn = INFINITY, mx = -INFINITY, sum = 0, sq = 0;
                for (int r = 0; r < R; r++) {
                    double v = p->d[(size_t)r * (size_t)n + (size_t)c];
                    run_sum[r] += v;
                    sum += v;
                    mn = v < mn ? v : mn;
                    mx = v > mx ? v : mx;
                }
                double mean = sum / R;
                for (int r = 0; r < R; r++) {
                    double v = p->d[(size_t)r * (size_t)n + (size_t)c] - mean;
                    sq += v * v;
                }
                spread += mx - mn;
                if (mean > 0) {
                    cv += sqrt(sq / R) / mean;
                    cv_n++;
                }
                entries++;
            }
    if (entries == 0) {
        svoo_free(run_sum);
        return svoo_err(
            SVOO_ERR_NOT_FOUND,
            "svoo_profiler_stability: no (step, head) entry of %s observed in every run",
            layer < 0 ? "any layer" : "this layer");
    }
    memset(out, 0, sizeof *out);
    out->runs = R;
    out->min = INFINITY;
    out->max = -INFINITY;
    double sum = 0, sq = 0;
    for (int r = 0; r < R; r++) {
        double v = run_sum[r] / (double)entries;
        sum += v;
        out->min = v < out->min ? v : out->min;
        out->max = v > out->max ? v : out->max;
    }
    out->mean = sum / R;
    for (int r = 0; r < R; r++) {
        double v = run_sum[r] / (double)entries - out->mean;
        sq += v * v;
    }
    out->std = sqrt(sq / R);
    out->mean_spread = spread / (double)entries;
    out->mean_cv = cv_n ? cv / (double)cv_n : 0;
    svoo_free(run_sum);
    return SVOO_OK;
}

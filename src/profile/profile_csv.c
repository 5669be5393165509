/* profile_csv.c : the svoo_profile grid and its CSV format, exactly as the
 * SVOO reference publishes it: header `Step,Layer,Head,Sparsity`, 1-based
 * steps, 0-based layers and heads, value = kept ratio (density). */
#include "../core/internal.h"
#include "../io/io.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

struct svoo_profile {
    int steps, layers, heads;
    double *value;  /* NaN = absent */
    int32_t *count; /* runs merged into the entry (for the running mean) */
};

static int64_t cell(const svoo_profile *p, int s, int l, int h) {
    return ((int64_t)s * p->layers + l) * p->heads + h;
}

svoo_status svoo_profile_create(int steps, int layers, int heads, svoo_profile **out) {
    if (!out) return svoo_err(SVOO_ERR_NULL_POINTER, "out is NULL");
    *out = NULL;
    if (steps <= 0 || layers <= 0 || heads <= 0 || (int64_t)steps * layers * heads > (1 << 28))
        return svoo_err(SVOO_ERR_INVALID_ARGUMENT, "profile grid %d x %d x %d", steps, layers, heads);
    svoo_profile *p = svoo_calloc(1, sizeof *p);
    size_t n = (size_t)steps * layers * heads;
    if (p) {
        p->value = svoo_malloc(n * sizeof(double));
        p->count = svoo_calloc(n, 4);
    }
    if (!p || !p->value || !p->count) {
        svoo_profile_free(p);
        return svoo_err(SVOO_ERR_OUT_OF_MEMORY, "profile grid %d x %d x %d", steps, layers, heads);
    }
    p->steps = steps;
    p->layers = layers;
    p->heads = heads;
    for (size_t i = 0; i < n; i++) p->value[i] = NAN;
    *out = p;
    return SVOO_OK;
}

void svoo_profile_free(svoo_profile *p) {
    if (!p) return;
    svoo_free(p->value);
    svoo_free(p->count);
    svoo_free(p);
}

void svoo_profile_dims(const svoo_profile *p, int *steps, int *layers, int *heads) {
    if (steps) *steps = p ? p->steps : 0;
    if (layers) *layers = p ? p->layers : 0;
    if (heads) *heads = p ? p->heads : 0;
}

static svoo_status check_index(const svoo_profile *p, int s, int l, int h) {
    if (!p) return svoo_err(SVOO_ERR_NULL_POINTER, "profile is NULL");
    if (s < 0 || s >= p->steps || l < 0 || l >= p->layers || h < 0 || h >= p->heads)
        return svoo_err(SVOO_ERR_OUT_OF_RANGE, "profile entry (step %d, layer %d, head %d) outside %d x %d x %d",
                        s, l, h, p->steps, p->layers, p->heads);
    return SVOO_OK;
}

svoo_status svoo_profile_get(const svoo_profile *p, int s, int l, int h, double *value) {
    svoo_status st = check_index(p, s, l, h);
    if (st) return st;
    if (!value) return svoo_err(SVOO_ERR_NULL_POINTER, "value is NULL");
    double v = p->value[cell(p, s, l, h)];
    if (isnan(v)) return svoo_err(SVOO_ERR_NOT_FOUND, "profile has no entry for step %d, layer %d, head %d", s, l, h);
    *value = v;
    return SVOO_OK;
}

svoo_status svoo_profile_set(svoo_profile *p, int s, int l, int h, double value) {
    svoo_status st = check_index(p, s, l, h);
    if (st) return st;
    if (!(value >= 0 && value <= 1))
        return svoo_err(SVOO_ERR_INVALID_ARGUMENT, "profile value %g outside [0, 1]", value);
    p->value[cell(p, s, l, h)] = value;
    p->count[cell(p, s, l, h)] = 1;
    return SVOO_OK;
}

svoo_status svoo_profile_merge(svoo_profile *dst, const svoo_profile *src, svoo_merge mode) {
    if (!dst || !src) return svoo_err(SVOO_ERR_NULL_POINTER, "profile is NULL");
    if (dst->steps != src->steps || dst->layers != src->layers || dst->heads != src->heads)
        return svoo_err(SVOO_ERR_PROFILE_MISMATCH, "merge: grids %d x %d x %d and %d x %d x %d differ",
                        dst->steps, dst->layers, dst->heads, src->steps, src->layers, src->heads);
    if (mode != SVOO_MERGE_MAX && mode != SVOO_MERGE_MEAN)
        return svoo_err(SVOO_ERR_INVALID_ARGUMENT, "merge mode %d", (int)mode);
    size_t n = (size_t)dst->steps * dst->layers * dst->heads;
    for (size_t i = 0; i < n; i++) {
        double a = dst->value[i], b = src->value[i];
        if (isnan(b)) continue;
        int32_t cb = src->count[i] > 0 ? src->count[i] : 1;
        if (isnan(a)) {
            dst->value[i] = b;
            dst->count[i] = cb;
        } else if (mode == SVOO_MERGE_MAX) {
            dst->value[i] = a > b ? a : b;
            dst->count[i] += cb;
        } else {
            int32_t ca = dst->count[i] > 0 ? dst->count[i] : 1;
            dst->value[i] = (a * ca + b * cb) / (ca + cb);
            dst->count[i] = ca + cb;
        }
    }
    return SVOO_OK;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* linear interpolation between closest ranks (numpy's default percentile) */
static double quantile(const double *sorted, int64_t n, double q) {
    double pos = q * (double)(n - 1);
    int64_t i = (int64_t)floor(pos);
    if (i + 1 >= n) return sorted[n - 1];
    return sorted[i] + (pos - (double)i) * (sorted[i + 1] - sorted[i]);
}

svoo_status svoo_profile_stats_get(const svoo_profile *p, svoo_profile_stats *s) {
    if (!p || !s) return svoo_err(SVOO_ERR_NULL_POINTER, "profile or stats is NULL");
    size_t n = (size_t)p->steps * p->layers * p->heads;
    double *v = svoo_malloc(n * sizeof(double));
    if (!v) return svoo_err(SVOO_ERR_OUT_OF_MEMORY, "profile stats");
    int64_t m = 0;
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        if (!isnan(p->value[i])) {
            v[m++] = p->value[i];
            sum += p->value[i];
        }
    memset(s, 0, sizeof *s);
    s->steps = p->steps;
    s->layers = p->layers;
    s->heads = p->heads;
    s->count = m;
    if (m > 0) {
        qsort(v, (size_t)m, sizeof *v, cmp_double);
        s->mean = sum / (double)m;
        double var = 0;
        for (int64_t i = 0; i < m; i++) var += (v[i] - s->mean) * (v[i] - s->mean);
        s->std = sqrt(var / (double)m);
        s->min = v[0];
        s->max = v[m - 1];
        s->median = quantile(v, m, 0.5);
        s->p10 = quantile(v, m, 0.1);
        s->p90 = quantile(v, m, 0.9);
    }
    svoo_free(v);
    return SVOO_OK;
}

/* ---- CSV ---------------------------------------------------------------- */

typedef struct {
    long step, layer, head;
    double value;
} row;

static int parse_long(const char *s, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    while (*end == ' ' || *end == '\t') end++;
    if (errno || end == s || *end) return -1;
    *out = v;
    return 0;
}

static int parse_dbl(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    while (*end == ' ' || *end == '\t') end++;
    if (errno || end == s || *end || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

#define FMT_ERR(...) svoo_err(SVOO_ERR_PROFILE_FORMAT, __VA_ARGS__)

svoo_status svoo_profile_load(const char *path, svoo_profile **out) {
    if (!path || !out) return svoo_err(SVOO_ERR_NULL_POINTER, "path or out is NULL");
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return svoo_err(SVOO_ERR_IO, "%s: %s", path, strerror(errno));
    svoo_status st = SVOO_OK;
    row *rows = NULL;
    int64_t nrows = 0, cap = 0;
    char line[256];
    long lineno = 0;
    long ms = -1, ml = -1, mh = -1;
    svoo_profile *p = NULL;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            st = FMT_ERR("%s:%ld: line too long", path, lineno);
            goto done;
        }
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (lineno == 1) {
            const char *h = line;
            if (!strncmp(h, "\xEF\xBB\xBF", 3)) h += 3; /* UTF-8 BOM */
            if (strcmp(h, "Step,Layer,Head,Sparsity")) {
                st = FMT_ERR("%s:1: header must be 'Step,Layer,Head,Sparsity'", path);
                goto done;
            }
            continue;
        }
        if (len == 0) continue; /* trailing blank lines */
        char *field[4], *save = NULL;
        int nf = 0;
        for (char *tok = strtok_r(line, ",", &save); tok && nf < 5; tok = strtok_r(NULL, ",", &save)) {
            if (nf < 4) field[nf] = tok;
            nf++;
        }
        row r;
        if (nf != 4) {
            st = FMT_ERR("%s:%ld: expected 4 fields, got %d", path, lineno, nf);
            goto done;
        }
        if (parse_long(field[0], &r.step) || parse_long(field[1], &r.layer) ||
            parse_long(field[2], &r.head) || parse_dbl(field[3], &r.value)) {
            st = FMT_ERR("%s:%ld: non-numeric field", path, lineno);
            goto done;
        }
        if (r.step < 1 || r.step > 100000 || r.layer < 0 || r.layer > 100000 || r.head < 0 ||
            r.head > 100000) {
            st = FMT_ERR("%s:%ld: step must be >= 1, layer and head >= 0 (got %ld, %ld, %ld)", path,
                         lineno, r.step, r.layer, r.head);
            goto done;
        }
        if (r.value < 0 || r.value > 1) {
            st = FMT_ERR("%s:%ld: value %g outside [0, 1]", path, lineno, r.value);
            goto done;
        }
        if (nrows == cap) {
            cap = cap ? cap * 2 : 1024;
            row *nr = svoo_realloc(rows, (size_t)cap * sizeof *rows);
            if (!nr) {
                st = svoo_err(SVOO_ERR_OUT_OF_MEMORY, "%s: %lld rows", path, (long long)cap);
                goto done;
            }
            rows = nr;
        }
        rows[nrows++] = r;
        if (r.step > ms) ms = r.step;
        if (r.layer > ml) ml = r.layer;
        if (r.head > mh) mh = r.head;
    }
    if (ferror(f)) { /* (a directory opens and fails its first read: EISDIR) */
        st = svoo_err(SVOO_ERR_IO, "%s: read error: %s", path, strerror(errno));
        goto done;
    }
    if (lineno == 0) {
        st = FMT_ERR("%s:1: empty file (header 'Step,Layer,Head,Sparsity' expected)", path);
        goto done;
    }
    if (nrows == 0) {
        st = FMT_ERR("%s:%ld: no entries", path, lineno);
        goto done;
    }
    /* a complete grid has exactly nrows cells: refuse one far larger before
     * allocating it (a 20-byte file may declare 10^9 cells); a few holes are
     * allocated so that the first one can be named below */
    if ((double)ms * (double)(ml + 1) * (double)(mh + 1) > 4.0 * (double)nrows + (double)(1 << 20)) {
        st = FMT_ERR("%s: grid %ld x %ld x %ld (steps x layers x heads) needs %.0f entries, the file has %lld",
                     path, ms, ml + 1, mh + 1, (double)ms * (double)(ml + 1) * (double)(mh + 1),
                     (long long)nrows);
        goto done;
    }
    if ((st = svoo_profile_create((int)ms, (int)ml + 1, (int)mh + 1, &p))) goto done;
    for (int64_t i = 0; i < nrows; i++) {
        int64_t c = cell(p, (int)rows[i].step - 1, (int)rows[i].layer, (int)rows[i].head);
        if (!isnan(p->value[c])) {
            st = svoo_err(SVOO_ERR_DUPLICATE_NAME, "%s:%lld: duplicate entry step %ld, layer %ld, head %ld",
                          path, (long long)i + 2, rows[i].step, rows[i].layer, rows[i].head);
            goto done;
        }
        p->value[c] = rows[i].value;
        p->count[c] = 1;
    }
    if (nrows != (int64_t)p->steps * p->layers * p->heads) {
        /* name the first hole in the grid */
        for (int s = 0; s < p->steps; s++)
            for (int l = 0; l < p->layers; l++)
                for (int h = 0; h < p->heads; h++)
                    if (isnan(p->value[cell(p, s, l, h)])) {
                        st = FMT_ERR("%s: grid %d x %d x %d has gaps: no entry for step %d, layer %d, head %d",
                                     path, p->steps, p->layers, p->heads, s + 1, l, h);
                        goto done;
                    }
    }
done:
    fclose(f);
    svoo_free(rows);
    if (st) {
        svoo_profile_free(p);
        return st;
    }
    *out = p;
    return SVOO_OK;
}

svoo_status svoo_profile_save(const svoo_profile *p, const char *path) {
    if (!p || !path) return svoo_err(SVOO_ERR_NULL_POINTER, "profile or path is NULL");
    svoo_atomic_file af;
    svoo_status st = svoo_atomic_open(&af, path);
    if (st) return st;
    char buf[1 << 16]; /* lines gathered into few writes */
    size_t used = (size_t)snprintf(buf, sizeof buf, "Step,Layer,Head,Sparsity\n");
    for (int s = 0; s < p->steps; s++)
        for (int l = 0; l < p->layers; l++)
            for (int h = 0; h < p->heads; h++) {
                double v = p->value[cell(p, s, l, h)];
                if (isnan(v)) continue;
                if (sizeof buf - used < 96) {
                    svoo_atomic_write(&af, buf, used);
                    used = 0;
                }
                used += (size_t)snprintf(buf + used, sizeof buf - used, "%d,%d,%d,%.6g\n", s + 1,
                                         l, h, v);
            }
    svoo_atomic_write(&af, buf, used);
    return svoo_atomic_commit(&af);
}

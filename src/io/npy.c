/* npy.c : NumPy's .npy format (numpy/lib/format.py): "\x93NUMPY", version
 * (1.0: 2-byte header length; 2.0 and 3.0: 4-byte), then a Python dict literal
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 * padded with spaces and '\n', then the data. The dict is parsed by hand (it
 * is Python, not JSON). Accepted: '<f4' (f32), '<f2' (f16) and '<u2', which
 * svoo reads and writes as bfloat16 bits (NumPy has no bfloat16). */
#include "io.h"

#include <stdlib.h>

typedef struct {
    const char *p, *end;
} pscan;

static void pws(pscan *s) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

/* a quoted Python string without escapes -> [*str, *len) */
static int pstring(pscan *s, const char **str, size_t *len) {
    if (s->p >= s->end || (*s->p != '\'' && *s->p != '"')) return -1;
    char q = *s->p++;
    const char *b = s->p;
    while (s->p < s->end && *s->p != q) {
        if (*s->p == '\\') return -1;
        s->p++;
    }
    if (s->p >= s->end) return -1;
    *str = b;
    *len = (size_t)(s->p - b);
    s->p++;
    return 0;
}

static int pword(pscan *s, const char *w) {
    size_t n = strlen(w);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n)) return 0;
    const char *after = s->p + n;
    if (after < s->end && ((*after >= 'a' && *after <= 'z') || (*after >= 'A' && *after <= 'Z') ||
                           (*after >= '0' && *after <= '9') || *after == '_'))
        return 0;
    s->p = after;
    return 1;
}

static int keyis(const char *k, size_t n, const char *w) {
    return n == strlen(w) && memcmp(k, w, n) == 0;
}

/* (d0, d1, ...) with an optional trailing comma and Python 2 'L' suffixes;
 * returns -1 malformed, -2 too many dims (rank reported in *rank) */
static int ptuple(pscan *s, int64_t *dims, int *rank) {
    if (s->p >= s->end || (*s->p != '(' && *s->p != '[')) return -1;
    char close = *s->p == '(' ? ')' : ']';
    s->p++;
    int r = 0;
    for (;;) {
        pws(s);
        if (s->p < s->end && *s->p == close) {
            s->p++;
            break;
        }
        if (s->p >= s->end || *s->p < '0' || *s->p > '9') return -1;
        int64_t v = 0;
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
            int dgt = *s->p++ - '0';
            if (v > (INT64_MAX - dgt) / 10) return -1;
            v = v * 10 + dgt;
        }
        if (s->p < s->end && (*s->p == 'L' || *s->p == 'l')) s->p++;
        if (r < SVOO_MAX_RANK) dims[r] = v;
        r++;
        pws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
        if (s->p < s->end && *s->p == close) {
            s->p++;
            break;
        }
        return -1;
    }
    /* Python: "(3)" is not a tuple; numpy never writes it */
    *rank = r;
    return r > SVOO_MAX_RANK ? -2 : 0;
}

svoo_status svoo_npy_parse(svoo_tensorfile *f) {
    const char *P = f->path;
    const unsigned char *m = f->map;
    unsigned major = m[6], minor = m[7];
    size_t hstart, hlen;
    if (major == 1) {
        if (f->size < 10)
            return svoo_err(SVOO_ERR_FILE_TRUNCATED, "%s: .npy file ends inside its preamble", P);
        hstart = 10;
        hlen = (size_t)m[8] | (size_t)m[9] << 8;
    } else if (major == 2 || major == 3) {
        if (f->size < 12)
            return svoo_err(SVOO_ERR_FILE_TRUNCATED, "%s: .npy file ends inside its preamble", P);
        hstart = 12;
        uint32_t l =
            (uint32_t)m[8] | (uint32_t)m[9] << 8 | (uint32_t)m[10] << 16 | (uint32_t)m[11] << 24;
        hlen = l;
    } else {
        return svoo_err(SVOO_ERR_UNSUPPORTED, "%s: .npy format version %u.%u (1.0, 2.0, 3.0 known)",
                        P, major, minor);
    }
    if (minor != 0)
        return svoo_err(SVOO_ERR_UNSUPPORTED, "%s: .npy format version %u.%u (1.0, 2.0, 3.0 known)",
                        P, major, minor);
    if (hlen > f->size - hstart)
        return svoo_err(SVOO_ERR_FILE_TRUNCATED,
                        "%s: .npy header of %zu bytes, the file has %zu after the preamble", P,
                        hlen, f->size - hstart);
    pscan s = {(const char *)m + hstart, (const char *)m + hstart + hlen};
    const char *descr = NULL;
    size_t descr_len = 0;
    int have_descr = 0, have_fortran = 0, have_shape = 0, fortran = 0, rank = 0;
    int64_t dims[SVOO_MAX_RANK] = {0};
    pws(&s);
    if (s.p >= s.end || *s.p != '{')
        return svoo_err(SVOO_ERR_FILE_CORRUPT, "%s: .npy header is not a Python dict", P);
    s.p++;
    for (;;) {
        pws(&s);
        if (s.p < s.end && *s.p == '}') {
            s.p++;
            break;
        }
        const char *key;
        size_t klen;
        if (pstring(&s, &key, &klen))
            return svoo_err(SVOO_ERR_FILE_CORRUPT,
                            "%s: .npy header: expected a quoted key at byte %zu", P,
                            (size_t)(s.p - (const char *)m));
        pws(&s);
        if (s.p >= s.end || *s.p != ':')
            return svoo_err(SVOO_ERR_FILE_CORRUPT, "%s: .npy header: expected ':' after '%.*s'", P,
                            (int)klen, key);
        s.p++;
        pws(&s);
        int *seen;
        if (keyis(key, klen, "descr")) {
            seen = &have_descr;
            if (s.p < s.end && (*s.p == '[' || *s.p == '('))
                return svoo_err(SVOO_ERR_UNKNOWN_DTYPE,
                                "%s: .npy structured dtype (descr is a list) is not supported", P);
            if (pstring(&s, &descr, &descr_len))
                return svoo_err(SVOO_ERR_FILE_CORRUPT, "%s: .npy header: 'descr' is not a string",
                                P);
        } else if (keyis(key, klen, "fortran_order")) {
            seen = &have_fortran;
            if (pword(&s, "True"))
                fortran = 1;
            else if (pword(&s, "False"))
                fortran = 0;
            else
                return svoo_err(SVOO_ERR_FILE_CORRUPT,
                                "%s: .npy header: 'fortran_order' is not True or False", P);
        } else if (keyis(key, klen, "shape")) {
            seen = &have_shape;
            int r = ptuple(&s, dims, &rank);
            if (r == -2)
                return svoo_err(SVOO_ERR_UNSUPPORTED, "%s: .npy rank %d exceeds SVOO_MAX_RANK %d",
                                P, rank, SVOO_MAX_RANK);
            if (r)
                return svoo_err(SVOO_ERR_FILE_CORRUPT,
                                "%s: .npy header: 'shape' is not a tuple of integers", P);
        } else {
            return svoo_err(SVOO_ERR_FILE_CORRUPT, "%s: .npy header: unexpected key '%.*s'", P,
                            (int)(klen > 64 ? 64 : klen), key);
        }
        if (*seen)
            return svoo_err(SVOO_ERR_FILE_CORRUPT, "%s: .npy header: key '%.*s' given twice", P,
                            (int)klen, key);
        *seen = 1;
        pws(&s);
        if (s.p < s.end && *s.p == ',') {
            s.p++;
            continue;
        }
        if (s.p < s.end && *s.p == '}') {
            s.p++;
            break;
        }
        return svoo_err(SVOO_ERR_FILE_CORRUPT, "%s: .npy header: expected ',' or '}' at byte %zu",
                        P, (size_t)(s.p - (const char *)m));
    }
    pws(&s);
    if (s.p != s.end) {
        /* numpy pads with spaces and a final '\n'; tolerate a NUL-padded tail */
        while (s.p < s.end && *s.p == 0)
            s.p++;
        if (s.p != s.end)
            return svoo_err(SVOO_ERR_FILE_CORRUPT, "%s: .npy header: bytes after the dict", P);
    }
    if (!have_descr || !have_fortran || !have_shape)
        return svoo_err(SVOO_ERR_FILE_CORRUPT, "%s: .npy header lacks '%s'", P,
                        !have_descr     ? "descr"
                        : !have_fortran ? "fortran_order"
                                        : "shape");
    svoo_dtype dt;
    if (keyis(descr, descr_len, "<f4"))
        dt = SVOO_F32;
    else if (keyis(descr, descr_len, "<f2"))
        dt = SVOO_F16;
    else if (keyis(descr, descr_len, "<u2"))
        dt = SVOO_BF16;
    else if (keyis(descr, descr_len, ">f4") || keyis(descr, descr_len, ">f2") ||
             keyis(descr, descr_len, ">u2"))
        return svoo_err(SVOO_ERR_UNSUPPORTED,
                        "%s: .npy dtype '%.*s' is big-endian; save it little-endian "
                        "(a.astype(a.dtype.newbyteorder('<')))",
                        P, (int)descr_len, descr);
    else
        return svoo_err(SVOO_ERR_UNKNOWN_DTYPE,
                        "%s: .npy dtype '%.*s' is not supported ('<f4', '<f2', '<u2' = bf16 bits)",
                        P, (int)(descr_len > 32 ? 32 : descr_len), descr);
    if (fortran) {
        int big = 0;
        for (int i = 0; i < rank; i++)
            big += dims[i] > 1;
        if (big > 1)
            return svoo_err(SVOO_ERR_UNSUPPORTED,
                            "%s: .npy array is in Fortran order; save a C-ordered copy "
                            "(np.ascontiguousarray)",
                            P);
    }
    size_t bytes = 0;
    svoo_status st = svoo_shape_bytes(dims, rank, svoo_dtype_size(dt), &bytes, P, ".npy shape");
    if (st) return st;
    size_t data_start = hstart + hlen;
    if (bytes > f->size - data_start)
        return svoo_err(SVOO_ERR_FILE_TRUNCATED, "%s: .npy data has %zu bytes, the shape needs %zu",
                        P, f->size - data_start, bytes);
    char *name = svoo_strdup("");
    if (!name) return svoo_err(SVOO_ERR_OUT_OF_MEMORY, "%s: name", P);
    return svoo_tf_append(f, name, dt, rank, dims, data_start, bytes);
}

svoo_status svoo_npy_save(const char *path, const svoo_array *a) {
    if (!path) return svoo_err(SVOO_ERR_NULL_POINTER, "path is NULL");
    if (!a) return svoo_err(SVOO_ERR_NULL_POINTER, "%s: array is NULL", path);
    svoo_status s = svoo_array_check(a, path, "array");
    if (s) return s;
    /* preamble (10 bytes) + dict + padding + '\n' is a multiple of 64 */
    char dict[64 + SVOO_MAX_RANK * 22];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                     a->dtype == SVOO_F32   ? "<f4"
                     : a->dtype == SVOO_F16 ? "<f2"
                                            : "<u2");
    for (int i = 0; i < a->rank; i++)
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%lld,%s", (long long)a->dims[i],
                      i + 1 < a->rank ? " " : "");
    if (a->rank > 1) n--; /* "(2, 3)" but "(3,)" */
    n += snprintf(dict + n, sizeof dict - (size_t)n, "), }");
    char hdr[320];
    size_t total = ((10 + (size_t)n + 1 + 63) / 64) * 64;
    size_t hl = total - 10;
    memcpy(hdr, "\x93NUMPY\x01\x00", 8);
    hdr[8] = (char)(hl & 0xff);
    hdr[9] = (char)(hl >> 8);
    memcpy(hdr + 10, dict, (size_t)n);
    memset(hdr + 10 + n, ' ', total - 10 - (size_t)n - 1);
    hdr[total - 1] = '\n';
    svoo_atomic_file af;
    if ((s = svoo_atomic_open(&af, path))) return s;
    svoo_atomic_write(&af, hdr, total);
    svoo_atomic_write(&af, a->data, a->nbytes);
    return svoo_atomic_commit(&af);
}

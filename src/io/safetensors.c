/* safetensors.c : the safetensors format (https://github.com/huggingface/safetensors):
 * 8-byte little-endian header length N, N bytes of JSON header
 *   {"__metadata__": {"k": "v", ...}, "name": {"dtype": "F32", "shape": [..],
 *    "data_offsets": [begin, end]}, ...}
 * then the data buffer; offsets are relative to its start (8 + N). The JSON is
 * parsed with json-c; since json-c keeps only the last of duplicated keys, a
 * small scanner of the (already validated) text checks every object for
 * duplicate keys first. Only F32, F16 and BF16 tensors are accepted. */
#include "io.h"

#include <json-c/json.h>
#include <limits.h>
#include <stdlib.h>

/* ---- duplicate-key scan of validated JSON -------------------------------- */

typedef struct {
    const char *p, *end;
} jscan;

typedef struct {
    const char *s; /* into the header, or decoded (owned) */
    size_t len;
    int owned;
} jkey;

static void jws(jscan *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int hex4(const char *p, const char *end, unsigned *out) {
    if (end - p < 4) return -1;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0) return -1;
        v = v * 16 + (unsigned)h;
    }
    *out = v;
    return 0;
}

/* reads a string token at j->p (the opening quote); on success *key is the
 * decoded string (escapes resolved). Returns 0, -1 on malformed input, -2 on
 * allocation failure. */
static int jstring(jscan *j, jkey *key) {
    if (j->p >= j->end || *j->p != '"') return -1;
    const char *start = ++j->p;
    int esc = 0;
    while (j->p < j->end && *j->p != '"') {
        if (*j->p == '\\') {
            esc = 1;
            j->p++;
        }
        j->p++;
    }
    if (j->p >= j->end) return -1;
    const char *stop = j->p++;
    if (!esc) {
        key->s = start;
        key->len = (size_t)(stop - start);
        key->owned = 0;
        return 0;
    }
    char *d = svoo_malloc((size_t)(stop - start) + 1); /* decoding never grows */
    if (!d) return -2;
    size_t n = 0;
    for (const char *p = start; p < stop;) {
        if (*p != '\\') {
            d[n++] = *p++;
            continue;
        }
        p++;
        char c = *p++;
        unsigned cp;
        switch (c) {
        case '"':
            d[n++] = '"';
            break;
        case '\\':
            d[n++] = '\\';
            break;
        case '/':
            d[n++] = '/';
            break;
        case 'b':
            d[n++] = '\b';
            break;
        case 'f':
            d[n++] = '\f';
            break;
        case 'n':
            d[n++] = '\n';
            break;
        case 'r':
            d[n++] = '\r';
            break;
        case 't':
            d[n++] = '\t';
            break;
        case 'u':
            if (hex4(p, stop, &cp)) goto bad;
            p += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && stop - p >= 6 && p[0] == '\\' && p[1] == 'u') {
                unsigned lo;
                if (!hex4(p + 2, stop, &lo) && lo >= 0xDC00 && lo < 0xE000) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    p += 6;
                }
            }
            /* UTF-8; 6 escaped chars always cover the up to 4 bytes written */
            if (cp < 0x80) {
                d[n++] = (char)cp;
            } else if (cp < 0x800) {
                d[n++] = (char)(0xC0 | (cp >> 6));
                d[n++] = (char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                d[n++] = (char)(0xE0 | (cp >> 12));
                d[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                d[n++] = (char)(0x80 | (cp & 0x3F));
            } else {
                d[n++] = (char)(0xF0 | (cp >> 18));
                d[n++] = (char)(0x80 | ((cp >> 12) & 0x3F));
                d[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                d[n++] = (char)(0x80 | (cp & 0x3F));
            }
            break;
        default:
            goto bad;
        }
    }
    d[n] = 0;
    key->s = d;
    key->len = n;
    key->owned = 1;
    return 0;
bad:
    svoo_free(d);
    return -1;
}

static int jkey_cmp(const void *a, const void *b) {
    const jkey *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, n);
    if (c) return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

typedef struct {
    const char *path;
    svoo_status st;
} jctx;

static int jvalue(jscan *j, jctx *c, int depth);

/* scans an object at j->p; any key given twice is an error (DUPLICATE_NAME at
 * the top level, where keys are tensor names; FILE_CORRUPT inside) */
static int jobject(jscan *j, jctx *c, int depth) {
    j->p++; /* '{' */
    jkey *keys = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    jws(j);
    if (j->p < j->end && *j->p == '}') {
        j->p++;
        return 0;
    }
    for (;;) {
        jws(j);
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            size_t bytes = svoo_mul_size(nc, sizeof *keys);
            jkey *k2 = bytes ? svoo_realloc(keys, bytes) : NULL;
            if (!k2) {
                c->st = svoo_err(SVOO_ERR_OUT_OF_MEMORY, "%s: header keys", c->path);
                rc = -1;
                goto done;
            }
            keys = k2;
            cap = nc;
        }
        int r = jstring(j, &keys[n]);
        if (r) {
            c->st = r == -2
                        ? svoo_err(SVOO_ERR_OUT_OF_MEMORY, "%s: header key", c->path)
                        : svoo_err(SVOO_ERR_FILE_CORRUPT, "%s: malformed JSON header key", c->path);
            rc = -1;
            goto done;
        }
        n++;
        if (memchr(keys[n - 1].s, 0, keys[n - 1].len)) {
            c->st = svoo_err(SVOO_ERR_FILE_CORRUPT, "%s: a header key contains a NUL character",
                             c->path);
            rc = -1;
            goto done;
        }
        jws(j);
        if (j->p >= j->end || *j->p != ':') goto malformed;
        j->p++;
        jws(j);
        if ((rc = jvalue(j, c, depth + 1))) goto done;
        jws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == '}') {
            j->p++;
            break;
        }
        goto malformed;
    }
    qsort(keys, n, sizeof *keys, jkey_cmp);
    for (size_t i = 1; i < n; i++)
        if (jkey_cmp(&keys[i - 1], &keys[i]) == 0) {
            int len = keys[i].len > 200 ? 200 : (int)keys[i].len;
            c->st = depth == 0
                        ? svoo_err(SVOO_ERR_DUPLICATE_NAME, "%s: tensor name '%.*s' given twice",
                                   c->path, len, keys[i].s)
                        : svoo_err(SVOO_ERR_FILE_CORRUPT,
                                   "%s: key '%.*s' given twice in a header object", c->path, len,
                                   keys[i].s);
            rc = -1;
            goto done;
        }
    goto done;
malformed:
    c->st = svoo_err(SVOO_ERR_FILE_CORRUPT, "%s: malformed JSON header", c->path);
    rc = -1;
done:
    for (size_t i = 0; i < n; i++)
        if (keys[i].owned) svoo_free((void *)keys[i].s);
    svoo_free(keys);
    return rc;
}

static int jvalue(jscan *j, jctx *c, int depth) {
    if (depth > 64) {
        c->st = svoo_err(SVOO_ERR_FILE_CORRUPT, "%s: JSON header nested too deeply", c->path);
        return -1;
    }
    if (j->p >= j->end) goto malformed;
    if (*j->p == '{') return jobject(j, c, depth);
    if (*j->p == '[') {
        j->p++;
        jws(j);
        if (j->p < j->end && *j->p == ']') {
            j->p++;
            return 0;
        }
        for (;;) {
            jws(j);
            if (jvalue(j, c, depth + 1)) return -1;
            jws(j);
            if (j->p < j->end && *j->p == ',') {
                j->p++;
                continue;
            }
            if (j->p < j->end && *j->p == ']') {
                j->p++;
                return 0;
            }
            goto malformed;
        }
    }
    if (*j->p == '"') {
        jkey k;
        int r = jstring(j, &k);
        if (r == -2) {
            c->st = svoo_err(SVOO_ERR_OUT_OF_MEMORY, "%s: header string", c->path);
            return -1;
        }
        if (r) goto malformed;
        if (k.owned) svoo_free((void *)k.s);
        return 0;
    }
    /* number, true, false, null */
    const char *s = j->p;
    while (j->p < j->end && *j->p != ',' && *j->p != '}' && *j->p != ']' && *j->p != ' ' &&
           *j->p != '\t' && *j->p != '\n' && *j->p != '\r')
        j->p++;
    if (j->p == s) goto malformed;
    return 0;
malformed:
    c->st = svoo_err(SVOO_ERR_FILE_CORRUPT, "%s: malformed JSON header", c->path);
    return -1;
}

/* ---- reader --------------------------------------------------------------- */

static uint64_t rd_le64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* a non-negative JSON integer */
static int json_nonneg(json_object *o, int64_t *out) {
    if (!json_object_is_type(o, json_type_int)) return -1;
    int64_t v = json_object_get_int64(o);
    if (v < 0) return -1;
    if (v == INT64_MAX && json_object_get_uint64(o) != (uint64_t)INT64_MAX) return -1;
    *out = v;
    return 0;
}

static int dtype_from_name(const char *s, svoo_dtype *dt) {
    if (!strcmp(s, "F32"))
        *dt = SVOO_F32;
    else if (!strcmp(s, "F16"))
        *dt = SVOO_F16;
    else if (!strcmp(s, "BF16"))
        *dt = SVOO_BF16;
    else
        return -1;
    return 0;
}

typedef struct {
    uint64_t begin, end;
    int index;
} span;

static int span_cmp(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* the tensor entry `v` named `name` -> f (appended) */
static svoo_status parse_entry(svoo_tensorfile *f, const char *name, json_object *v,
                               size_t data_start, size_t data_len, span *sp) {
    const char *P = f->path;
    if (!json_object_is_type(v, json_type_object))
        return svoo_err(SVOO_ERR_FILE_CORRUPT, "%s: tensor '%s': entry is not a JSON object", P,
                        name);
    json_object *jd, *js, *jo;
    if (!json_object_object_get_ex(v, "dtype", &jd) || !json_object_is_type(jd, json_type_string))
        return svoo_err(SVOO_ERR_FILE_CORRUPT, "%s: tensor '%s': \"dtype\" missing or not a string",
                        P, name);
    if (!json_object_object_get_ex(v, "shape", &js) || !json_object_is_type(js, json_type_array))
        return svoo_err(SVOO_ERR_FILE_CORRUPT, "%s: tensor '%s': \"shape\" missing or not an array",
                        P, name);
    if (!json_object_object_get_ex(v, "data_offsets", &jo) ||
        !json_object_is_type(jo, json_type_array) || json_object_array_length(jo) != 2)
        return svoo_err(SVOO_ERR_FILE_CORRUPT,
                        "%s: tensor '%s': \"data_offsets\" missing or not [begin, end]", P, name);
    size_t rank = json_object_array_length(js);
    int64_t dims[SVOO_MAX_RANK];
    for (size_t i = 0; i < rank; i++) {
        int64_t d;
        if (json_nonneg(json_object_array_get_idx(js, i), &d))
            return svoo_err(SVOO_ERR_FILE_CORRUPT,
                            "%s: tensor '%s': shape[%zu] is not a non-negative integer", P, name,
                            i);
        if (i < SVOO_MAX_RANK) dims[i] = d;
    }
    int64_t b64, e64;
    if (json_nonneg(json_object_array_get_idx(jo, 0), &b64) ||
        json_nonneg(json_object_array_get_idx(jo, 1), &e64))
        return svoo_err(SVOO_ERR_FILE_CORRUPT,
                        "%s: tensor '%s': data_offsets are not non-negative integers", P, name);
    svoo_dtype dt;
    const char *dname = json_object_get_string(jd);
    if (dtype_from_name(dname, &dt))
        return svoo_err(SVOO_ERR_UNKNOWN_DTYPE,
                        "%s: tensor '%s': dtype '%s' is not supported (F32, F16, BF16)", P, name,
                        dname);
    if (rank > SVOO_MAX_RANK)
        return svoo_err(SVOO_ERR_UNSUPPORTED, "%s: tensor '%s': rank %zu exceeds SVOO_MAX_RANK %d",
                        P, name, rank, SVOO_MAX_RANK);
    size_t bytes = 0;
    char what[300];
    snprintf(what, sizeof what, "tensor '%s'", name);
    svoo_status s = svoo_shape_bytes(dims, (int)rank, svoo_dtype_size(dt), &bytes, P, what);
    if (s) return s;
    uint64_t b = (uint64_t)b64, e = (uint64_t)e64;
    if (b > e)
        return svoo_err(SVOO_ERR_FILE_CORRUPT,
                        "%s: tensor '%s': data_offsets [%llu, %llu] end before they begin", P, name,
                        (unsigned long long)b, (unsigned long long)e);
    if (e - b != (uint64_t)bytes)
        return svoo_err(SVOO_ERR_FILE_CORRUPT,
                        "%s: tensor '%s': data_offsets span %llu bytes, shape x %s needs %zu", P,
                        name, (unsigned long long)(e - b), svoo_dtype_name(dt), bytes);
    if (e > (uint64_t)data_len)
        return svoo_err(SVOO_ERR_FILE_TRUNCATED,
                        "%s: tensor '%s': data_offsets end at %llu, the data buffer has %zu bytes",
                        P, name, (unsigned long long)e, data_len);
    sp->begin = b;
    sp->end = e;
    sp->index = f->count;
    char *nm = svoo_strdup(name);
    if (!nm) return svoo_err(SVOO_ERR_OUT_OF_MEMORY, "%s: tensor name", P);
    return svoo_tf_append(f, nm, dt, (int)rank, dims, data_start + (size_t)b, bytes);
}

svoo_status svoo_safetensors_parse(svoo_tensorfile *f) {
    const char *P = f->path;
    uint64_t hlen = rd_le64(f->map);
    /* a file that is neither (text, an image): its first 8 bytes read as a huge
     * header length, which is not the news */
    if (f->size > 8 && ((const char *)f->map)[8] != '{')
        return svoo_err(SVOO_ERR_FILE_CORRUPT,
                        "%s: neither a .npy file (no \\x93NUMPY magic) nor a safetensors file "
                        "(no JSON header after the 8-byte length)",
                        P);
    if (hlen > (uint64_t)(f->size - 8))
        return svoo_err(SVOO_ERR_FILE_TRUNCATED,
                        "%s: safetensors header of %llu bytes, the file has %zu after the length",
                        P, (unsigned long long)hlen, f->size - 8);
    if (hlen < 2 || hlen > (uint64_t)INT_MAX)
        return svoo_err(SVOO_ERR_FILE_CORRUPT, "%s: safetensors header length %llu is not valid", P,
                        (unsigned long long)hlen);
    const char *hdr = (const char *)f->map + 8;
    size_t data_start = 8 + (size_t)hlen, data_len = f->size - data_start;

    json_tokener *tok = json_tokener_new();
    if (!tok) return svoo_err(SVOO_ERR_OUT_OF_MEMORY, "%s: JSON parser", P);
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS);
    json_object *root = json_tokener_parse_ex(tok, hdr, (int)hlen);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    svoo_status s = SVOO_OK;
    span *spans = NULL;
    if (!root || jerr != json_tokener_success) {
        s = svoo_err(
            SVOO_ERR_FILE_CORRUPT, "%s: header is not valid JSON (%s at byte %zu)", P,
            jerr == json_tokener_continue ? "unexpected end" : json_tokener_error_desc(jerr), end);
        goto done;
    }
    for (size_t i = end; i < (size_t)hlen; i++)
        if (hdr[i] != ' ' && hdr[i] != '\t' && hdr[i] != '\n' && hdr[i] != '\r') {
            s = svoo_err(SVOO_ERR_FILE_CORRUPT, "%s: bytes after the JSON header (at byte %zu)", P,
                         i);
            goto done;
        }
    if (!json_object_is_type(root, json_type_object)) {
        s = svoo_err(SVOO_ERR_FILE_CORRUPT, "%s: header is JSON but not an object", P);
        goto done;
    }
    /* duplicates: json-c kept only the last value of a repeated key */
    jscan js = {hdr, hdr + end};
    jctx jc = {P, SVOO_OK};
    jws(&js);
    if (jvalue(&js, &jc, 0)) {
        s = jc.st;
        goto done;
    }
    int n = json_object_object_length(root);
    spans = svoo_calloc(n > 0 ? (size_t)n : 1, sizeof *spans);
    if (!spans) {
        s = svoo_err(SVOO_ERR_OUT_OF_MEMORY, "%s: %d tensor spans", P, n);
        goto done;
    }
    int ns = 0;
    json_object_object_foreach(root, key, val) {
        if (!strcmp(key, "__metadata__")) {
            if (!json_object_is_type(val, json_type_object)) {
                s = svoo_err(SVOO_ERR_FILE_CORRUPT, "%s: \"__metadata__\" is not an object", P);
                goto done;
            }
            json_object_object_foreach(val, mk, mv) {
                if (!json_object_is_type(mv, json_type_string)) {
                    s = svoo_err(SVOO_ERR_FILE_CORRUPT,
                                 "%s: \"__metadata__\".\"%s\" is not a string", P, mk);
                    goto done;
                }
            }
            continue;
        }
        if ((s = parse_entry(f, key, val, data_start, data_len, &spans[ns]))) goto done;
        ns++;
    }
    /* no two tensors may share bytes */
    qsort(spans, (size_t)ns, sizeof *spans, span_cmp);
    uint64_t prev_end = 0;
    int prev = -1;
    for (int i = 0; i < ns; i++) {
        if (spans[i].begin == spans[i].end) continue;
        if (prev >= 0 && spans[i].begin < prev_end) {
            s = svoo_err(SVOO_ERR_FILE_CORRUPT, "%s: tensors '%s' and '%s' overlap in the data", P,
                         f->arrays[prev].name, f->arrays[spans[i].index].name);
            goto done;
        }
        prev_end = spans[i].end;
        prev = spans[i].index;
    }
done:
    svoo_free(spans);
    json_object_put(root);
    return s;
}

/* ---- writer --------------------------------------------------------------- */

static const char *dtype_st_name(svoo_dtype dt) {
    return dt == SVOO_F32 ? "F32" : dt == SVOO_F16 ? "F16" : "BF16";
}

static int add_int(json_object *arr, int64_t v) {
    json_object *o = json_object_new_int64(v);
    if (!o) return 1;
    if (json_object_array_add(arr, o)) {
        json_object_put(o);
        return 1;
    }
    return 0;
}

static int name_cmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

svoo_status svoo_safetensors_save(const char *path, const svoo_array *arrays, int count) {
    if (!path) return svoo_err(SVOO_ERR_NULL_POINTER, "path is NULL");
    if (count < 0) return svoo_err(SVOO_ERR_INVALID_ARGUMENT, "%s: count %d < 0", path, count);
    if (count > 0 && !arrays) return svoo_err(SVOO_ERR_NULL_POINTER, "%s: arrays is NULL", path);
    svoo_status s;
    for (int i = 0; i < count; i++) {
        char label[32];
        snprintf(label, sizeof label, "arrays[%d]", i);
        if (!arrays[i].name)
            return svoo_err(SVOO_ERR_NULL_POINTER, "%s: arrays[%d].name is NULL", path, i);
        if (!strcmp(arrays[i].name, "__metadata__"))
            return svoo_err(SVOO_ERR_INVALID_ARGUMENT,
                            "%s: arrays[%d]: the name \"__metadata__\" is reserved", path, i);
        if ((s = svoo_array_check(&arrays[i], path, label))) return s;
    }
    const char **names = svoo_malloc(svoo_mul_size(count ? (size_t)count : 1, sizeof *names));
    uint64_t *offs = svoo_malloc(svoo_mul_size(count ? (size_t)count : 1, sizeof *offs));
    int *order = svoo_malloc(svoo_mul_size(count ? (size_t)count : 1, sizeof *order));
    json_object *root = NULL;
    svoo_atomic_file af = {.fd = -1};
    s = SVOO_OK;
    if (!names || !offs || !order) {
        s = svoo_err(SVOO_ERR_OUT_OF_MEMORY, "%s: %d tensor names", path, count);
        goto done;
    }
    for (int i = 0; i < count; i++)
        names[i] = arrays[i].name;
    qsort(names, (size_t)count, sizeof *names, name_cmp);
    for (int i = 1; i < count; i++)
        if (!strcmp(names[i - 1], names[i])) {
            s = svoo_err(SVOO_ERR_DUPLICATE_NAME, "%s: tensor name '%s' given twice", path,
                         names[i]);
            goto done;
        }
    /* data in order of decreasing element size (stable), so that every tensor
     * starts aligned to its element size without holes (readers such as the
     * reference one reject gaps between tensors) */
    int k = 0;
    for (size_t es = 4; es >= 2; es -= 2)
        for (int i = 0; i < count; i++)
            if (svoo_dtype_size(arrays[i].dtype) == es) order[k++] = i;
    uint64_t pos = 0;
    for (int j = 0; j < count; j++) {
        offs[order[j]] = pos;
        pos += arrays[order[j]].nbytes;
    }
    root = json_object_new_object();
    if (!root) goto oom;
    for (int i = 0; i < count; i++) {
        const svoo_array *a = &arrays[i];
        json_object *e = json_object_new_object(), *sh = json_object_new_array(),
                    *of = json_object_new_array();
        if (!e || !sh || !of) {
            json_object_put(e);
            json_object_put(sh);
            json_object_put(of);
            goto oom;
        }
        int bad = json_object_object_add(root, a->name, e);
        if (bad) {
            json_object_put(e);
            json_object_put(sh);
            json_object_put(of);
            goto oom;
        }
        json_object *dn = json_object_new_string(dtype_st_name(a->dtype));
        bad |= !dn || json_object_object_add(e, "dtype", dn);
        bad |= json_object_object_add(e, "shape", sh);
        bad |= json_object_object_add(e, "data_offsets", of);
        for (int d = 0; d < a->rank && !bad; d++)
            bad |= add_int(sh, a->dims[d]);
        bad |= add_int(of, (int64_t)offs[i]);
        bad |= add_int(of, (int64_t)(offs[i] + a->nbytes));
        if (bad) goto oom;
    }
    size_t hlen = 0;
    const char *hdr = json_object_to_json_string_length(
        root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &hlen);
    if (!hdr) goto oom;
    size_t padded = (hlen + 7) & ~(size_t)7;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    if ((s = svoo_atomic_open(&af, path))) goto done;
    svoo_atomic_write(&af, len8, 8);
    svoo_atomic_write(&af, hdr, hlen);
    svoo_atomic_write(&af, "        ", padded - hlen);
    for (int j = 0; j < count; j++)
        svoo_atomic_write(&af, arrays[order[j]].data, arrays[order[j]].nbytes);
    s = svoo_atomic_commit(&af);
    goto done;
oom:
    s = svoo_err(SVOO_ERR_OUT_OF_MEMORY, "%s: JSON header", path);
done:
    json_object_put(root);
    svoo_free(names);
    svoo_free(offs);
    svoo_free(order);
    return s;
}

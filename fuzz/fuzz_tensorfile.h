/* fuzz_tensorfile.h : the body shared by fuzz_safetensors.c and fuzz_npy.c.
 *
 * Each input is parsed twice:
 *  1. from memory, through the readers' internal entry points
 *     (svoo_safetensors_parse / svoo_npy_parse on a svoo_tensorfile whose
 *     "mapping" is libFuzzer's exact-size heap copy, so ASan sees every byte
 *     read past the end), then the same parse again with the k-th allocation
 *     failing (k from the input): SVOO_ERR_OUT_OF_MEMORY and no leak;
 *  2. through the public svoo_tensorfile_open() on a memfd (the real
 *     open/fstat/mmap path). Both must agree on the status and the arrays.
 * (FUZZ_ALLOC_FAIL=0 in the environment turns the failing re-parse off.)
 * A file that opens is written back (svoo_safetensors_save / svoo_npy_save)
 * into a scratch directory, reopened and compared, and no temp file may stay.
 */
#ifndef SVOO_FUZZ_TENSORFILE_H
#define SVOO_FUZZ_TENSORFILE_H

#include "fuzz_common.h"
#include "io/io.h"

static svoo_status fz_parse_mem(const uint8_t *data, size_t size, svoo_tensorfile **out) {
    *out = NULL;
    svoo_tensorfile *f = svoo_calloc(1, sizeof *f);
    if (!f) return SVOO_ERR_OUT_OF_MEMORY;
    f->path = svoo_strdup("<fuzz>");
    if (!f->path) {
        svoo_free(f);
        return SVOO_ERR_OUT_OF_MEMORY;
    }
    f->map = data;
    f->size = size;
    svoo_status s =
        memcmp(data, "\x93NUMPY", 6) == 0 ? svoo_npy_parse(f) : svoo_safetensors_parse(f);
    if (s) {
        f->map = NULL; /* not ours to munmap */
        svoo_tensorfile_free(f);
        return s;
    }
    *out = f;
    return SVOO_OK;
}

static void fz_free_mem(svoo_tensorfile *f) {
    if (!f) return;
    f->map = NULL;
    svoo_tensorfile_free(f);
}

static volatile uint32_t fz_sink;

/* every promise of svoo.h about an opened file's arrays */
static void fz_check_arrays(const svoo_tensorfile *f, const uint8_t *base, size_t size) {
    int n = svoo_tensorfile_count(f);
    FZ_CHECK(n >= 0, "count %d", n);
    for (int i = 0; i < n; i++) {
        svoo_array a;
        FZ_CHECK(svoo_tensorfile_get(f, i, &a) == SVOO_OK, "get %d", i);
        FZ_CHECK(a.name != NULL, "array %d has no name", i);
        size_t es = svoo_dtype_size(a.dtype);
        FZ_CHECK(es != 0, "array %d dtype %d", i, (int)a.dtype);
        FZ_CHECK(a.rank >= 0 && a.rank <= SVOO_MAX_RANK, "array %d rank %d", i, a.rank);
        unsigned __int128 want = es;
        for (int d = 0; d < a.rank; d++) {
            FZ_CHECK(a.dims[d] >= 0, "array %d dim %d = %lld", i, d, (long long)a.dims[d]);
            want *= (unsigned __int128)a.dims[d];
        }
        FZ_CHECK(want == a.nbytes, "array %d nbytes %zu != shape", i, a.nbytes);
        FZ_CHECK(a.nbytes <= size, "array %d nbytes %zu > file %zu", i, a.nbytes, size);
        if (a.nbytes) {
            FZ_CHECK(a.data != NULL, "array %d data NULL", i);
            FZ_CHECK((uintptr_t)a.data % es == 0, "array %d data misaligned", i);
            const uint8_t *p = a.data;
            if (base && p >= base && p < base + size)
                FZ_CHECK(a.nbytes <= (size_t)(base + size - p), "array %d runs past the file", i);
            uint32_t sum = 0;
            for (size_t b = 0; b < a.nbytes; b++) sum += p[b]; /* ASan: every byte readable */
            fz_sink += sum;
        }
        svoo_array byname;
        FZ_CHECK(svoo_tensorfile_find(f, a.name, &byname) == SVOO_OK, "find '%s'", a.name);
        svoo_tensor t;
        svoo_status s = svoo_array_view(&a, (int)(a.nbytes & 1), &t);
        fz_check_status(s, "svoo_array_view");
        int viewable = (a.rank == 3 || a.rank == 4);
        for (int d = 0; d < a.rank; d++) viewable &= a.dims[d] > 0;
        FZ_CHECK(!viewable || s == SVOO_OK, "array %d: view refused (%s)", i, svoo_last_error(NULL));
        if (s == SVOO_OK && t.shape[0] * t.shape[1] * t.shape[2] * t.shape[3] <= 4096) {
            svoo_compare_result r;
            fz_check_status(svoo_compare(&t, &t, &r), "svoo_compare"); /* reads every element */
        }
    }
    svoo_array a;
    FZ_CHECK(svoo_tensorfile_get(f, n, &a) == SVOO_ERR_OUT_OF_RANGE, "get past the end");
}

/* same arrays (names, dtypes, shapes, bytes) in both files */
static void fz_same_arrays(const svoo_tensorfile *x, const svoo_tensorfile *y, const char *what) {
    int n = svoo_tensorfile_count(x);
    FZ_CHECK(n == svoo_tensorfile_count(y), "%s: count %d vs %d", what, n, svoo_tensorfile_count(y));
    for (int i = 0; i < n; i++) {
        svoo_array a, b;
        svoo_tensorfile_get(x, i, &a);
        FZ_CHECK(svoo_tensorfile_find(y, a.name, &b) == SVOO_OK, "%s: '%s' missing", what, a.name);
        FZ_CHECK(a.dtype == b.dtype && a.rank == b.rank && a.nbytes == b.nbytes,
                 "%s: '%s' differs", what, a.name);
        for (int d = 0; d < a.rank; d++) FZ_CHECK(a.dims[d] == b.dims[d], "%s: dims", what);
        FZ_CHECK(!a.nbytes || memcmp(a.data, b.data, a.nbytes) == 0, "%s: '%s' data", what, a.name);
    }
}

static void fz_roundtrip(const svoo_tensorfile *f, int npy) {
    int n = svoo_tensorfile_count(f);
    if (n == 0) return;
    const char *name = npy ? "rt.npy" : "rt.safetensors";
    char path[512];
    snprintf(path, sizeof path, "%s", fz_scratch(name));
    svoo_status s;
    if (npy) {
        svoo_array a;
        svoo_tensorfile_get(f, 0, &a);
        s = svoo_npy_save(path, &a);
    } else {
        svoo_array *arr = malloc(sizeof *arr * (size_t)n);
        for (int i = 0; i < n; i++) svoo_tensorfile_get(f, i, &arr[i]);
        s = svoo_safetensors_save(path, arr, n);
        free(arr);
    }
    FZ_CHECK(s == SVOO_OK, "save of a file that opened failed: %s", svoo_last_error(NULL));
    FZ_CHECK(fz_scratch_clean(name), "temp file left by the writer");
    svoo_tensorfile *g = NULL;
    s = svoo_tensorfile_open(path, &g);
    FZ_CHECK(s == SVOO_OK, "reopen of a saved file failed: %s", svoo_last_error(NULL));
    fz_same_arrays(f, g, "round trip");
    svoo_tensorfile_free(g);
    unlink(path);
}

static int fz_tensorfile_one(const uint8_t *data, size_t size, int npy) {
    svoo_tensorfile *fm = NULL, *ff = NULL;
    svoo_status sm = SVOO_ERR_FILE_TRUNCATED;
    if (size >= 8) {
        svoo_alloc_fail_at(0); /* restart the allocation counter */
        sm = fz_parse_mem(data, size, &fm);
        int64_t count = svoo_alloc_fail_at(0); /* allocations of one parse */
        fz_check_status(sm, "parse from memory");
        FZ_CHECK((sm == SVOO_OK) == (fm != NULL), "status vs handle");
        if (fm) fz_check_arrays(fm, data, size);
        /* allocation failure: the k-th allocation of the same parse fails */
        if (count > 0 && fz_alloc_fail) {
            int64_t k = 1 + (int64_t)(data[size - 1] % (uint64_t)count);
            svoo_tensorfile *fx = NULL;
            svoo_alloc_fail_at(k);
            svoo_status sx = fz_parse_mem(data, size, &fx);
            svoo_alloc_fail_at(0);
            FZ_CHECK(sx == SVOO_ERR_OUT_OF_MEMORY && fx == NULL,
                     "allocation %lld of %lld failing gave %s (clean parse: %s)", (long long)k,
                     (long long)count, svoo_status_name(sx), svoo_status_name(sm));
        }
    }
    svoo_status sf = svoo_tensorfile_open(fz_as_file(data, size), &ff);
    fz_check_status(sf, "svoo_tensorfile_open");
    FZ_CHECK((sf == SVOO_OK) == (ff != NULL), "open: status vs handle");
    FZ_CHECK(sf == sm, "memory parse %s vs file open %s (%s)", svoo_status_name(sm),
             svoo_status_name(sf), svoo_last_error(NULL));
    if (ff) {
        fz_check_arrays(ff, NULL, size);
        fz_same_arrays(fm, ff, "memory vs file");
        fz_roundtrip(ff, npy);
    }
    fz_free_mem(fm);
    svoo_tensorfile_free(ff);
    return 0;
}

#endif

/* io.h : shared internals of the tensor-file readers (safetensors.c, npy.c)
 * and writers; the public entry points live in io_common.c. */
#ifndef SVOO_IO_H
#define SVOO_IO_H

#include "../core/internal.h"

#include <stdio.h>

/* one opened file: the read-only mapping plus the parsed arrays */
struct svoo_tensorfile {
    char *path;               /* for messages */
    const unsigned char *map; /* PROT_READ, MAP_PRIVATE mapping of the whole file */
    size_t size;              /* bytes of the file */
    int count;                /* arrays parsed so far (all of them once open succeeded) */
    int cap;
    svoo_array *arrays; /* names owned (svoo_malloc), data into map or into copies[i] */
    void **copies;      /* per array: aligned copy when the mapping was misaligned, or NULL */
};

/* parsers: fill f->arrays from f->map / f->size (already mapped, size >= 8 for
 * safetensors, a verified "\x93NUMPY" prefix for npy). On failure the caller
 * frees f; the message names f->path. */
svoo_status svoo_safetensors_parse(svoo_tensorfile *f);
svoo_status svoo_npy_parse(svoo_tensorfile *f);

/* appends one array (takes ownership of `name`, svoo_malloc'd; freed on failure) */
svoo_status svoo_tf_append(svoo_tensorfile *f, char *name, svoo_dtype dt, int rank,
                           const int64_t *dims, size_t offset, size_t nbytes);

/* number of elements of dims[0..rank) times elem, or an error when it does not
 * fit in int64 (what = file/tensor label for the message) */
svoo_status svoo_shape_bytes(const int64_t *dims, int rank, size_t elem, size_t *bytes,
                             const char *path, const char *what);

/* validates a caller's array for a writer (label = "arrays[i]" etc.) */
svoo_status svoo_array_check(const svoo_array *a, const char *path, const char *label);

/* SVOO_OK when `path` is absent or a regular file; else SVOO_ERR_IO with a
 * message naming what it is (the atomic writer's rename would replace it) */
svoo_status svoo_output_path_check(const char *path);

/* atomic writer: a temp file next to `path`, renamed over it on commit. No
 * file is left behind on any failure (abort unlinks the temp file).
 * svoo_atomic_open refuses a path svoo_output_path_check refuses. */
typedef struct {
    const char *path;
    char *tmp;
    int fd;
    int failed;
    int err; /* errno of the first failed write */
} svoo_atomic_file;

svoo_status svoo_atomic_open(svoo_atomic_file *af, const char *path);
/* buffered-free write of n bytes; errors are remembered and reported by commit */
void svoo_atomic_write(svoo_atomic_file *af, const void *buf, size_t n);
svoo_status svoo_atomic_commit(svoo_atomic_file *af);
void svoo_atomic_abort(svoo_atomic_file *af);

#endif

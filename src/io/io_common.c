/* io_common.c : svoo_tensorfile (open by content, lookup, free), array views
 * and the atomic temp-file-and-rename writer shared by both formats. */
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- the tensor file ---------------------------------------------------- */

void svoo_tensorfile_free(svoo_tensorfile *f) {
    if (!f) return;
    for (int i = 0; i < f->count; i++) {
        svoo_free((void *)f->arrays[i].name);
        svoo_free(f->copies[i]);
    }
    svoo_free(f->arrays);
    svoo_free(f->copies);
    if (f->map) munmap((void *)f->map, f->size);
    svoo_free(f->path);
    svoo_free(f);
}

svoo_status svoo_tf_append(svoo_tensorfile *f, char *name, svoo_dtype dt, int rank,
                           const int64_t *dims, size_t offset, size_t nbytes) {
    if (f->count == f->cap) {
        int cap = f->cap ? f->cap * 2 : 8;
        size_t na = svoo_mul_size((size_t)cap, sizeof *f->arrays);
        size_t nc = svoo_mul_size((size_t)cap, sizeof *f->copies);
        svoo_array *a = (cap > f->cap && na) ? svoo_realloc(f->arrays, na) : NULL;
        if (a) f->arrays = a;
        void **c = a ? svoo_realloc(f->copies, nc) : NULL;
        if (c) f->copies = c;
        if (!a || !c) {
            svoo_free(name);
            return svoo_err(SVOO_ERR_OUT_OF_MEMORY, "%s: table of %d tensors", f->path, cap);
        }
        f->cap = cap;
    }
    svoo_array *a = &f->arrays[f->count];
    memset(a, 0, sizeof *a);
    const unsigned char *data = f->map + offset;
    void *copy = NULL;
    size_t es = svoo_dtype_size(dt);
    /* the executor reads elements through typed pointers: a mapping that is
     * not aligned to the element size (hand-made files, a 2-byte tensor before
     * a 4-byte one) is copied into an aligned buffer */
    if (nbytes && ((uintptr_t)data % es) != 0) {
        copy = svoo_aligned_alloc(nbytes);
        if (!copy) {
            svoo_status s = svoo_err(SVOO_ERR_OUT_OF_MEMORY, "%s: tensor '%s': aligned copy of %zu bytes",
                                     f->path, name ? name : "", nbytes);
            svoo_free(name);
            return s;
        }
        memcpy(copy, data, nbytes);
        data = copy;
    }
    a->name = name;
    a->dtype = dt;
    a->rank = rank;
    for (int i = 0; i < rank; i++)
        a->dims[i] = dims[i];
    a->data = data;
    a->nbytes = nbytes;
    f->copies[f->count] = copy;
    f->count++;
    return SVOO_OK;
}

svoo_status svoo_shape_bytes(const int64_t *dims, int rank, size_t elem, size_t *bytes,
                             const char *path, const char *what) {
    uint64_t n = elem;
    int zero = 0;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0)
            return svoo_err(SVOO_ERR_FILE_CORRUPT, "%s: %s: dim %d is negative (%lld)", path, what,
                            i, (long long)dims[i]);
        if (dims[i] == 0) zero = 1;
    }
    if (zero) {
        *bytes = 0;
        return SVOO_OK;
    }
    for (int i = 0; i < rank; i++) {
        if ((uint64_t)dims[i] > (uint64_t)INT64_MAX / n)
            return svoo_err(SVOO_ERR_FILE_CORRUPT, "%s: %s: shape overflows 2^63 bytes", path,
                            what);
        n *= (uint64_t)dims[i];
    }
    if (n > SIZE_MAX)
        return svoo_err(SVOO_ERR_FILE_CORRUPT, "%s: %s: %llu bytes do not fit in memory", path,
                        what, (unsigned long long)n);
    *bytes = (size_t)n;
    return SVOO_OK;
}

svoo_status svoo_tensorfile_open(const char *path, svoo_tensorfile **out) {
    if (!out) return svoo_err(SVOO_ERR_NULL_POINTER, "out is NULL");
    *out = NULL;
    if (!path) return svoo_err(SVOO_ERR_NULL_POINTER, "path is NULL");
    svoo_tensorfile *f = svoo_calloc(1, sizeof *f);
    if (!f) return svoo_err(SVOO_ERR_OUT_OF_MEMORY, "%s: tensor file handle", path);
    f->path = svoo_strdup(path);
    if (!f->path) {
        svoo_free(f);
        return svoo_err(SVOO_ERR_OUT_OF_MEMORY, "%s: path", path);
    }
    svoo_status s = SVOO_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0) {
        s = svoo_err(SVOO_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    if (fstat(fd, &st) != 0) {
        s = svoo_err(SVOO_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        s = svoo_err(SVOO_ERR_IO, "%s: not a regular file", path);
        goto fail;
    }
    if ((uint64_t)st.st_size > (uint64_t)SIZE_MAX) {
        s = svoo_err(SVOO_ERR_IO, "%s: %lld bytes do not fit in the address space", path,
                     (long long)st.st_size);
        goto fail;
    }
    f->size = (size_t)st.st_size;
    if (f->size < 8) {
        s = svoo_err(SVOO_ERR_FILE_TRUNCATED,
                     "%s: %zu bytes, shorter than any safetensors or .npy header", path, f->size);
        goto fail;
    }
    void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
        s = svoo_err(SVOO_ERR_IO, "%s: cannot map %zu bytes: %s", path, f->size, strerror(errno));
        goto fail;
    }
    close(fd);
    fd = -1;
    f->map = m;
    if (memcmp(f->map, "\x93NUMPY", 6) == 0)
        s = svoo_npy_parse(f);
    else
        s = svoo_safetensors_parse(f);
    if (s) goto fail;
    *out = f;
    return SVOO_OK;
fail:
    if (fd >= 0) close(fd);
    svoo_tensorfile_free(f);
    return s;
}

int svoo_tensorfile_count(const svoo_tensorfile *f) {
    return f ? f->count : 0;
}

svoo_status svoo_tensorfile_get(const svoo_tensorfile *f, int i, svoo_array *out) {
    if (!f || !out) return svoo_err(SVOO_ERR_NULL_POINTER, "%s is NULL", f ? "out" : "file");
    if (i < 0 || i >= f->count)
        return svoo_err(SVOO_ERR_OUT_OF_RANGE, "%s: index %d outside [0, %d)", f->path, i,
                        f->count);
    *out = f->arrays[i];
    return SVOO_OK;
}

svoo_status svoo_tensorfile_find(const svoo_tensorfile *f, const char *name, svoo_array *out) {
    if (!f || !name || !out)
        return svoo_err(SVOO_ERR_NULL_POINTER, "%s is NULL", !f ? "file" : !name ? "name" : "out");
    for (int i = 0; i < f->count; i++)
        if (strcmp(f->arrays[i].name, name) == 0) {
            *out = f->arrays[i];
            return SVOO_OK;
        }
    return svoo_err(SVOO_ERR_NOT_FOUND, "%s: no tensor named '%s' (%d tensors)", f->path, name,
                    f->count);
}

/* ---- views ---------------------------------------------------------------- */

svoo_status svoo_array_view(const svoo_array *a, int layout_bnhd, svoo_tensor *out) {
    if (!a || !out) return svoo_err(SVOO_ERR_NULL_POINTER, "%s is NULL", a ? "out" : "array");
    const char *nm = a->name ? a->name : "";
    if (layout_bnhd != 0 && layout_bnhd != 1)
        return svoo_err(SVOO_ERR_INVALID_ARGUMENT, "layout_bnhd: %d (0 or 1)", layout_bnhd);
    size_t es = svoo_dtype_size(a->dtype);
    if (!es)
        return svoo_err(SVOO_ERR_UNKNOWN_DTYPE, "array '%s': unknown dtype %d", nm, (int)a->dtype);
    if (a->rank != 3 && a->rank != 4)
        return svoo_err(SVOO_ERR_SHAPE_MISMATCH,
                        "array '%s': rank %d, expected 4 ([B,%s]) or 3 ([%s])", nm, a->rank,
                        layout_bnhd ? "N,H,D" : "H,N,D", layout_bnhd ? "N,H,D" : "H,N,D");
    int64_t d[4] = {1, 1, 1, 1};
    for (int i = 0; i < a->rank; i++) {
        if (a->dims[i] <= 0)
            return svoo_err(SVOO_ERR_SHAPE_MISMATCH, "array '%s': dim %d is %lld, must be > 0", nm,
                            i, (long long)a->dims[i]);
        d[4 - a->rank + i] = a->dims[i];
    }
    size_t bytes = 0;
    svoo_status s = svoo_shape_bytes(d, 4, es, &bytes, "array", nm);
    if (s) return svoo_err(SVOO_ERR_INVALID_ARGUMENT, "array '%s': shape too large", nm);
    if (bytes != a->nbytes)
        return svoo_err(SVOO_ERR_INVALID_ARGUMENT,
                        "array '%s': nbytes %zu differs from the shape's %zu", nm, a->nbytes,
                        bytes);
    if (!a->data) return svoo_err(SVOO_ERR_NULL_POINTER, "array '%s': data is NULL", nm);
    void *data = (void *)(uintptr_t)a->data; /* see svoo.h: read-only when it maps a file */
    *out = layout_bnhd ? svoo_tensor_bnhd(data, a->dtype, d[0], d[1], d[2], d[3])
                       : svoo_tensor_bhnd(data, a->dtype, d[0], d[1], d[2], d[3]);
    return SVOO_OK;
}

/* ---- writer helpers ------------------------------------------------------- */

svoo_status svoo_array_check(const svoo_array *a, const char *path, const char *label) {
    if (!svoo_dtype_size(a->dtype))
        return svoo_err(SVOO_ERR_UNKNOWN_DTYPE, "%s: %s: unknown dtype %d", path, label,
                        (int)a->dtype);
    if (a->rank < 0 || a->rank > SVOO_MAX_RANK)
        return svoo_err(SVOO_ERR_INVALID_ARGUMENT, "%s: %s: rank %d outside [0, %d]", path, label,
                        a->rank, SVOO_MAX_RANK);
    size_t bytes = 0;
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] < 0)
            return svoo_err(SVOO_ERR_INVALID_ARGUMENT, "%s: %s: dim %d is negative (%lld)", path,
                            label, i, (long long)a->dims[i]);
    if (svoo_shape_bytes(a->dims, a->rank, svoo_dtype_size(a->dtype), &bytes, path, label))
        return svoo_err(SVOO_ERR_INVALID_ARGUMENT, "%s: %s: shape too large", path, label);
    if (bytes != a->nbytes)
        return svoo_err(SVOO_ERR_INVALID_ARGUMENT,
                        "%s: %s: nbytes %zu differs from the shape's %zu", path, label, a->nbytes,
                        bytes);
    if (bytes && !a->data)
        return svoo_err(SVOO_ERR_NULL_POINTER, "%s: %s: data is NULL", path, label);
    return SVOO_OK;
}

static _Atomic unsigned long g_tmp_counter;

svoo_status svoo_output_path_check(const char *path) {
    /* the rename would replace a device (/dev/null, run as root), a FIFO, a
     * symbolic link (/dev/stdout) or fail late on a directory: refuse them */
    struct stat st;
    if (lstat(path, &st) != 0 || S_ISREG(st.st_mode)) return SVOO_OK;
    return svoo_err(SVOO_ERR_IO,
                    "%s: is %s, not a regular file (the file is written next to it, then "
                    "renamed over it)",
                    path,
                    S_ISLNK(st.st_mode)                          ? "a symbolic link"
                    : S_ISDIR(st.st_mode)                        ? "a directory"
                    : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device"
                    : S_ISFIFO(st.st_mode)                       ? "a FIFO"
                                                                 : "a socket");
}

svoo_status svoo_atomic_open(svoo_atomic_file *af, const char *path) {
    memset(af, 0, sizeof *af);
    af->fd = -1;
    af->path = path;
    const svoo_status ps = svoo_output_path_check(path);
    if (ps) return ps;
    size_t len = strlen(path);
    size_t cap = len + 64;
    af->tmp = svoo_malloc(cap);
    if (!af->tmp) return svoo_err(SVOO_ERR_OUT_OF_MEMORY, "%s: temp file name", path);
    /* O_EXCL with our own unique name (not mkstemp) so that the final file gets
     * the usual 0666 & ~umask permissions */
    for (int attempt = 0; attempt < 100; attempt++) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        unsigned long n = atomic_fetch_add(&g_tmp_counter, 1);
        snprintf(af->tmp, cap, "%s.tmp.%ld.%lu.%lx", path, (long)getpid(), n,
                 (unsigned long)ts.tv_nsec);
        af->fd = open(af->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (af->fd >= 0) return SVOO_OK;
        if (errno != EEXIST) break;
    }
    svoo_status s = svoo_err(SVOO_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    svoo_free(af->tmp);
    af->tmp = NULL;
    return s;
}

void svoo_atomic_write(svoo_atomic_file *af, const void *buf, size_t n) {
    const char *p = buf;
    while (n && !af->failed) {
        size_t chunk = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n;
        ssize_t w = write(af->fd, p, chunk);
        if (w < 0) {
            if (errno == EINTR) continue;
            af->failed = 1;
            af->err = errno;
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

void svoo_atomic_abort(svoo_atomic_file *af) {
    if (af->fd >= 0) close(af->fd);
    af->fd = -1;
    if (af->tmp) unlink(af->tmp);
    svoo_free(af->tmp);
    af->tmp = NULL;
}

svoo_status svoo_atomic_commit(svoo_atomic_file *af) {
    if (!af->failed && fsync(af->fd) != 0 && errno != EINVAL && errno != EROFS) {
        af->failed = 1;
        af->err = errno;
    }
    if (close(af->fd) != 0 && !af->failed) {
        af->failed = 1;
        af->err = errno;
    }
    af->fd = -1;
    if (!af->failed && rename(af->tmp, af->path) != 0) {
        af->failed = 1;
        af->err = errno;
    }
    if (af->failed) {
        svoo_status s = svoo_err(SVOO_ERR_IO, "%s: write failed: %s", af->path, strerror(af->err));
        svoo_atomic_abort(af);
        return s;
    }
    svoo_free(af->tmp);
    af->tmp = NULL;
    return SVOO_OK;
}

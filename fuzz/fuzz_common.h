/* fuzz_common.h : helpers shared by the libFuzzer targets (header-only).
 *
 * Inputs reach the path-based readers through one memfd per process, opened
 * by name as /proc/self/fd/N: no disk traffic, and the reader runs its real
 * open/stat/mmap/fopen code. Round trips write into a private directory under
 * /dev/shm (or $TMPDIR) removed at exit. */
#ifndef SVOO_FUZZ_COMMON_H
#define SVOO_FUZZ_COMMON_H

#define _GNU_SOURCE 1
#define SVOO_STATIC_LINKING_ONLY
#include "svoo.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* a failed expectation: abort so that libFuzzer records the input */
#define FZ_CHECK(cond, ...)                                                                  \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "fuzz check failed at %s:%d: %s: ", __FILE__, __LINE__, #cond);  \
            fprintf(stderr, __VA_ARGS__);                                                    \
            fprintf(stderr, "\n");                                                           \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

static int fz_memfd = -1;
static char fz_memfd_path[64];
static char fz_dir[256];
static int fz_alloc_fail = 1; /* FUZZ_ALLOC_FAIL=0: no allocation-failure re-runs */

static void fz_cleanup(void) {
    if (!fz_dir[0]) return;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fz_dir);
    if (system(cmd)) {
    }
}

/* once, from LLVMFuzzerInitialize: one OpenMP thread (the machine is shared
 * and the allocation order must be reproducible), memfd and scratch dir */
static void fz_init(void) {
    const char *af = getenv("FUZZ_ALLOC_FAIL");
    fz_alloc_fail = !(af && af[0] == '0');
    setenv("OMP_NUM_THREADS", "1", 1);
    setenv("OMP_THREAD_LIMIT", "1", 1);
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
    fz_memfd = memfd_create("svoo-fuzz", MFD_CLOEXEC);
    if (fz_memfd < 0) {
        perror("memfd_create");
        abort();
    }
    snprintf(fz_memfd_path, sizeof fz_memfd_path, "/proc/self/fd/%d", fz_memfd);
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    snprintf(fz_dir, sizeof fz_dir, "%s/svoo-fuzz-XXXXXX", base ? base : "/tmp");
    if (!mkdtemp(fz_dir)) {
        perror("mkdtemp");
        abort();
    }
    atexit(fz_cleanup);
}

/* the input as the whole content of the memfd; returns its path */
__attribute__((unused)) static const char *fz_as_file(const uint8_t *data, size_t size) {
    if (ftruncate(fz_memfd, 0) != 0) abort();
    size_t off = 0;
    while (off < size) {
        ssize_t w = pwrite(fz_memfd, data + off, size - off, (off_t)off);
        if (w <= 0) abort();
        off += (size_t)w;
    }
    return fz_memfd_path;
}

/* a path inside the scratch directory */
__attribute__((unused)) static const char *fz_scratch(const char *name) {
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", fz_dir, name);
    return p;
}

/* 1 if the scratch directory holds only `keep` (or nothing when keep == NULL):
 * writers must not leave temp files behind */
#include <dirent.h>
__attribute__((unused)) static int fz_scratch_clean(const char *keep) {
    DIR *d = opendir(fz_dir);
    if (!d) return 0;
    struct dirent *e;
    int ok = 1;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (keep && !strcmp(e->d_name, keep)) continue;
        fprintf(stderr, "fuzz: stray file %s/%s\n", fz_dir, e->d_name);
        ok = 0;
    }
    closedir(d);
    return ok;
}

/* status invariants every call must keep */
static void fz_check_status(svoo_status s, const char *what) {
    FZ_CHECK((unsigned)s < SVOO_STATUS_COUNT, "%s returned %d", what, (int)s);
    if (s != SVOO_OK) {
        const char *m = svoo_last_error(NULL);
        FZ_CHECK(m && m[0], "%s failed with %s but left no message", what, svoo_status_name(s));
    }
}

#endif

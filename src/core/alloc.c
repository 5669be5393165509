/* alloc.c : the one allocator of the library, with fault injection for tests. */
#include "internal.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

static _Atomic int64_t g_count;   /* allocations since the last svoo_alloc_fail_at */
static _Atomic int64_t g_fail_at; /* 0 = never fail */

int64_t svoo_alloc_fail_at(int64_t k) {
    int64_t n = atomic_exchange(&g_count, 0);
    atomic_store(&g_fail_at, k);
    return n;
}

static int should_fail(void) {
    int64_t n = atomic_fetch_add(&g_count, 1) + 1;
    int64_t k = atomic_load(&g_fail_at);
    return k > 0 && n == k;
}

size_t svoo_mul_size(size_t a, size_t b) {
    if (a && b > SIZE_MAX / a) return 0;
    return a * b;
}

void *svoo_malloc(size_t n) {
    if (should_fail()) return NULL;
    return malloc(n ? n : 1);
}

void *svoo_calloc(size_t count, size_t size) {
    if (should_fail()) return NULL;
    return calloc(count ? count : 1, size ? size : 1);
}

void *svoo_realloc(void *p, size_t n) {
    if (should_fail()) return NULL;
    return realloc(p, n ? n : 1);
}

void *svoo_aligned_alloc(size_t n) {
    if (should_fail()) return NULL;
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64) != 0) return NULL;
    return p;
}

void svoo_free(void *p) { free(p); }

char *svoo_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = svoo_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

double svoo_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

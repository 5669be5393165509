/* fuzz_profile_csv.c : libFuzzer target for the profile CSV reader.
 * Input: the bytes of a CSV file, loaded by svoo_profile_load() from a memfd.
 * A profile that loads must have a consistent grid and stats; it is saved
 * (svoo_profile_save) into a scratch directory, reloaded and compared (values
 * are written with %.6g), then the load is repeated with the k-th allocation
 * failing (k from the input): SVOO_ERR_OUT_OF_MEMORY, no leak. */
#include "fuzz_common.h"

#include <math.h>

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fz_as_file(data, size);
    svoo_profile *p = NULL;
    svoo_alloc_fail_at(0);
    svoo_status s = svoo_profile_load(path, &p);
    int64_t count = svoo_alloc_fail_at(0);
    fz_check_status(s, "svoo_profile_load");
    FZ_CHECK((s == SVOO_OK) == (p != NULL), "status vs handle");
    FZ_CHECK(s == SVOO_OK || s == SVOO_ERR_PROFILE_FORMAT || s == SVOO_ERR_DUPLICATE_NAME ||
                 s == SVOO_ERR_OUT_OF_MEMORY || s == SVOO_ERR_IO,
             "unexpected status %s: %s", svoo_status_name(s), svoo_last_error(NULL));
    if (p) {
        int S, L, H;
        svoo_profile_dims(p, &S, &L, &H);
        FZ_CHECK(S > 0 && L > 0 && H > 0, "dims %d %d %d", S, L, H);
        svoo_profile_stats st;
        FZ_CHECK(svoo_profile_stats_get(p, &st) == SVOO_OK, "stats");
        FZ_CHECK(st.count == (int64_t)S * L * H, "complete grid: %lld of %d x %d x %d",
                 (long long)st.count, S, L, H);
        FZ_CHECK(st.min >= 0 && st.max <= 1 && st.min <= st.median && st.median <= st.max,
                 "stats range");
        double v;
        FZ_CHECK(svoo_profile_get(p, S, 0, 0, &v) == SVOO_ERR_OUT_OF_RANGE, "get past the grid");
        FZ_CHECK(svoo_profile_get(p, 0, 0, -1, &v) == SVOO_ERR_OUT_OF_RANGE, "get head -1");
        /* round trip */
        const char *out = fz_scratch("rt.csv");
        FZ_CHECK(svoo_profile_save(p, out) == SVOO_OK, "save: %s", svoo_last_error(NULL));
        FZ_CHECK(fz_scratch_clean("rt.csv"), "temp file left by the writer");
        svoo_profile *q = NULL;
        FZ_CHECK(svoo_profile_load(out, &q) == SVOO_OK, "reload: %s", svoo_last_error(NULL));
        int S2, L2, H2;
        svoo_profile_dims(q, &S2, &L2, &H2);
        FZ_CHECK(S == S2 && L == L2 && H == H2, "round trip dims");
        for (int a = 0; a < S; a++)
            for (int l = 0; l < L; l++)
                for (int h = 0; h < H; h++) {
                    double x, y;
                    FZ_CHECK(svoo_profile_get(p, a, l, h, &x) == SVOO_OK &&
                                 svoo_profile_get(q, a, l, h, &y) == SVOO_OK,
                             "round trip entry");
                    FZ_CHECK(fabs(x - y) <= 1e-5 * fabs(x) + 1e-300, "round trip %g vs %g", x, y);
                }
        svoo_profile_free(q);
        unlink(out);
        svoo_profile_free(p);
    }
    if (count > 0 && fz_alloc_fail && size) {
        int64_t k = 1 + (int64_t)(data[size - 1] % (uint64_t)count);
        svoo_profile *x = NULL;
        svoo_alloc_fail_at(k);
        svoo_status sx = svoo_profile_load(path, &x);
        svoo_alloc_fail_at(0);
        FZ_CHECK(sx == SVOO_ERR_OUT_OF_MEMORY && x == NULL,
                 "allocation %lld of %lld failing gave %s (clean load: %s)", (long long)k,
                 (long long)count, svoo_status_name(sx), svoo_status_name(s));
    }
    return 0;
}

/* test_io.c : safetensors / .npy readers and writers, array views, every bad
 * input of issue 3 as a hand-crafted file, and `svoo attn` end to end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- scratch directory ---------------------------------------------------- */

static char g_dir[256];
static char g_path[512];

static const char *P(const char *name) {
    snprintf(g_path, sizeof g_path, "%s/%s", g_dir, name);
    return g_path;
}

static int count_files(void) {
    DIR *d = opendir(g_dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static void clean_dir(void) {
    DIR *d = opendir(g_dir);
    if (!d) return;
    char p[600];
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", g_dir, e->d_name);
        unlink(p);
    }
    closedir(d);
}

static int setup(void **state) {
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/svoo_test_io.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    clean_dir();
    return rmdir(g_dir);
}

static void write_bytes(const char *path, const void *buf, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* safetensors with an explicit header length (hlen_override < 0: the real one) */
static void write_st(const char *path, const char *json, const void *data, size_t n,
                     int64_t hlen_override) {
    size_t hl = strlen(json);
    size_t total = 8 + hl + n;
    unsigned char *buf = malloc(total + 1);
    assert_non_null(buf);
    uint64_t L = hlen_override >= 0 ? (uint64_t)hlen_override : (uint64_t)hl;
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(L >> (8 * i));
    memcpy(buf + 8, json, hl);
    if (n) memcpy(buf + 8 + hl, data, n);
    write_bytes(path, buf, total);
    free(buf);
}

/* .npy with the given dict text (padded as numpy does) and raw data */
static void write_npy(const char *path, int major, const char *dict, const void *data, size_t n) {
    size_t pre = major == 1 ? 10 : 12, dl = strlen(dict);
    size_t total = ((pre + dl + 1 + 63) / 64) * 64;
    size_t hl = total - pre;
    unsigned char *buf = calloc(1, total + n + 1);
    assert_non_null(buf);
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major;
    buf[7] = 0;
    for (size_t i = 0; i < pre - 8; i++)
        buf[8 + i] = (unsigned char)(hl >> (8 * i));
    memcpy(buf + pre, dict, dl);
    memset(buf + pre + dl, ' ', total - pre - dl - 1);
    buf[total - 1] = '\n';
    if (n) memcpy(buf + total, data, n);
    write_bytes(path, buf, total + n);
    free(buf);
}

static void expect_open(const char *path, svoo_status want, const char *needle) {
    svoo_tensorfile *f = (svoo_tensorfile *)0x1;
    svoo_status s = svoo_tensorfile_open(path, &f);
    if (s != want)
        fail_msg("open %s: got %s (%s), want %s", path, svoo_status_name(s), svoo_last_error(NULL),
                 svoo_status_name(want));
    if (want != SVOO_OK) {
        assert_null(f);
        /* every message names the file */
        assert_non_null(strstr(svoo_last_error(NULL), path));
        if (needle && !strstr(svoo_last_error(NULL), needle))
            fail_msg("message '%s' lacks '%s'", svoo_last_error(NULL), needle);
    }
    svoo_tensorfile_free(f == (svoo_tensorfile *)0x1 ? NULL : f);
}

static float test_value(size_t i, int salt) {
    return (float)((int)((i * 2654435761u + (unsigned)salt * 97u) % 2001u) - 1000) / 256.0f;
}

static void *make_data(svoo_dtype dt, size_t n, int salt) {
    size_t es = svoo_dtype_size(dt);
    unsigned char *b = malloc(n * es + 1);
    assert_non_null(b);
    for (size_t i = 0; i < n; i++) {
        float x = test_value(i, salt);
        if (dt == SVOO_F32)
            memcpy(b + i * 4, &x, 4);
        else {
            uint16_t h = dt == SVOO_F16 ? svoo_f32_to_f16(x) : svoo_f32_to_bf16(x);
            memcpy(b + i * 2, &h, 2);
        }
    }
    return b;
}

static svoo_array make_array(const char *name, svoo_dtype dt, int rank, const int64_t *dims,
                             void *data) {
    svoo_array a;
    memset(&a, 0, sizeof a);
    a.name = name;
    a.dtype = dt;
    a.rank = rank;
    size_t n = 1;
    for (int i = 0; i < rank; i++) {
        a.dims[i] = dims[i];
        n *= (size_t)dims[i];
    }
    a.data = data;
    a.nbytes = n * svoo_dtype_size(dt);
    return a;
}

static void assert_same_array(const svoo_array *a, const svoo_array *b) {
    assert_int_equal(a->dtype, b->dtype);
    assert_int_equal(a->rank, b->rank);
    for (int i = 0; i < a->rank; i++)
        assert_int_equal(a->dims[i], b->dims[i]);
    assert_int_equal(a->nbytes, b->nbytes);
    if (a->nbytes) assert_memory_equal(a->data, b->data, a->nbytes);
    /* the executor reads through typed pointers: data is aligned */
    assert_int_equal((uintptr_t)b->data % svoo_dtype_size(b->dtype), 0);
}

/* ---- round trips ---------------------------------------------------------- */

static const int64_t k_dims[4][4] = {{7}, {3, 5}, {2, 3, 5}, {2, 1, 3, 4}};

static void test_safetensors_roundtrip(void **state) {
    (void)state;
    /* every dtype x rank 0..4, with names that need JSON escapes; odd-sized
     * 2-byte tensors before 4-byte ones test the writer's alignment order */
    char names[15][32];
    svoo_array arr[15];
    void *bufs[15];
    int n = 0;
    const svoo_dtype dts[3] = {SVOO_F16, SVOO_BF16, SVOO_F32};
    for (int d = 0; d < 3; d++)
        for (int r = 0; r <= 4; r++) {
            snprintf(names[n], sizeof names[n], "%s/\"r%d\"\\\xc3\xa9\t", svoo_dtype_name(dts[d]),
                     r);
            size_t cnt = 1;
            for (int i = 0; i < r; i++)
                cnt *= (size_t)k_dims[r - 1][i];
            bufs[n] = make_data(dts[d], cnt, n);
            arr[n] = make_array(names[n], dts[d], r, r ? k_dims[r - 1] : NULL, bufs[n]);
            n++;
        }
    assert_int_equal(svoo_safetensors_save(P("rt.safetensors"), arr, n), SVOO_OK);
    assert_int_equal(count_files(), 1);
    svoo_tensorfile *f;
    assert_int_equal(svoo_tensorfile_open(P("rt.safetensors"), &f), SVOO_OK);
    assert_int_equal(svoo_tensorfile_count(f), n);
    for (int i = 0; i < n; i++) {
        svoo_array g;
        assert_int_equal(svoo_tensorfile_get(f, i, &g), SVOO_OK);
        assert_string_equal(g.name, names[i]); /* header order = the caller's order */
        assert_same_array(&arr[i], &g);
        assert_int_equal(svoo_tensorfile_find(f, names[i], &g), SVOO_OK);
        assert_same_array(&arr[i], &g);
    }
    svoo_array g;
    assert_int_equal(svoo_tensorfile_get(f, n, &g), SVOO_ERR_OUT_OF_RANGE);
    assert_int_equal(svoo_tensorfile_get(f, -1, &g), SVOO_ERR_OUT_OF_RANGE);
    assert_int_equal(svoo_tensorfile_find(f, "absent", &g), SVOO_ERR_NOT_FOUND);
    assert_non_null(strstr(svoo_last_error(NULL), "absent"));
    assert_int_equal(svoo_tensorfile_find(f, NULL, &g), SVOO_ERR_NULL_POINTER);
    assert_int_equal(svoo_tensorfile_get(NULL, 0, &g), SVOO_ERR_NULL_POINTER);
    assert_int_equal(svoo_tensorfile_count(NULL), 0);
    svoo_tensorfile_free(f);

    /* header: 8-byte aligned data start, data without holes */
    FILE *fp = fopen(P("rt.safetensors"), "rb");
    unsigned char len8[8];
    assert_int_equal(fread(len8, 1, 8, fp), 8);
    fclose(fp);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | len8[i];
    assert_int_equal(hl % 8, 0);
    struct stat st;
    assert_int_equal(stat(P("rt.safetensors"), &st), 0);
    size_t data = 0;
    for (int i = 0; i < n; i++)
        data += arr[i].nbytes;
    assert_int_equal((size_t)st.st_size, 8 + hl + data);
    for (int i = 0; i < n; i++)
        free(bufs[i]);

    /* an empty file of tensors and an empty tensor */
    assert_int_equal(svoo_safetensors_save(P("empty.safetensors"), NULL, 0), SVOO_OK);
    assert_int_equal(svoo_tensorfile_open(P("empty.safetensors"), &f), SVOO_OK);
    assert_int_equal(svoo_tensorfile_count(f), 0);
    svoo_tensorfile_free(f);
    int64_t zd[2] = {0, 4};
    svoo_array z = make_array("zero", SVOO_F32, 2, zd, NULL);
    assert_int_equal(svoo_safetensors_save(P("zero.safetensors"), &z, 1), SVOO_OK);
    assert_int_equal(svoo_tensorfile_open(P("zero.safetensors"), &f), SVOO_OK);
    assert_int_equal(svoo_tensorfile_find(f, "zero", &g), SVOO_OK);
    assert_int_equal(g.nbytes, 0);
    assert_int_equal(g.dims[0], 0);
    svoo_tensorfile_free(f);
    clean_dir();
}

static void test_safetensors_many_and_reference_header(void **state) {
    (void)state;
    /* 100 tensors: the table grows */
    enum { M = 100 };
    svoo_array arr[M];
    char names[M][16];
    float vals[M][3];
    int64_t d1[1] = {3};
    for (int i = 0; i < M; i++) {
        snprintf(names[i], sizeof names[i], "t%03d", i);
        for (int j = 0; j < 3; j++)
            vals[i][j] = (float)(i * 3 + j);
        arr[i] = make_array(names[i], SVOO_F32, 1, d1, vals[i]);
    }
    assert_int_equal(svoo_safetensors_save(P("many.safetensors"), arr, M), SVOO_OK);
    svoo_tensorfile *f;
    assert_int_equal(svoo_tensorfile_open(P("many.safetensors"), &f), SVOO_OK);
    assert_int_equal(svoo_tensorfile_count(f), M);
    svoo_array g;
    assert_int_equal(svoo_tensorfile_find(f, "t077", &g), SVOO_OK);
    assert_true(((const float *)g.data)[2] == 77 * 3 + 2);
    svoo_tensorfile_free(f);

    /* as the reference Python writer lays it out: metadata, sorted keys,
     * space padding */
    float d[6] = {1, 2, 3, 4, 5, 6};
    const char *hdr =
        "{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],"
        "\"data_offsets\":[0,16]},\"b\":{\"dtype\":\"BF16\",\"shape\":[4],"
        "\"data_offsets\":[16,24]}}      ";
    write_st(P("ref.safetensors"), hdr, d, 24, -1);
    assert_int_equal(svoo_tensorfile_open(P("ref.safetensors"), &f), SVOO_OK);
    assert_int_equal(svoo_tensorfile_count(f), 2);
    assert_int_equal(svoo_tensorfile_find(f, "b", &g), SVOO_OK);
    assert_int_equal(g.dtype, SVOO_BF16);
    assert_memory_equal(g.data, &d[4], 8);
    svoo_tensorfile_free(f);

    /* a misaligned f32 tensor (header length 7 mod 8) is still readable and aligned */
    const char *odd = "{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}";
    assert_int_not_equal(strlen(odd) % 4, 0);
    write_st(P("odd.safetensors"), odd, d, 12, -1);
    assert_int_equal(svoo_tensorfile_open(P("odd.safetensors"), &f), SVOO_OK);
    assert_int_equal(svoo_tensorfile_get(f, 0, &g), SVOO_OK);
    assert_int_equal((uintptr_t)g.data % 4, 0);
    assert_memory_equal(g.data, d, 12);
    svoo_tensorfile_free(f);
    clean_dir();
}

static void test_npy_roundtrip(void **state) {
    (void)state;
    const svoo_dtype dts[3] = {SVOO_F32, SVOO_F16, SVOO_BF16};
    const char *descr[3] = {"'<f4'", "'<f2'", "'<u2'"};
    for (int d = 0; d < 3; d++)
        for (int r = 0; r <= 4; r++) {
            size_t cnt = 1;
            for (int i = 0; i < r; i++)
                cnt *= (size_t)k_dims[r - 1][i];
            void *buf = make_data(dts[d], cnt, d * 10 + r);
            svoo_array a = make_array("ignored", dts[d], r, r ? k_dims[r - 1] : NULL, buf);
            assert_int_equal(svoo_npy_save(P("a.npy"), &a), SVOO_OK);
            /* header as numpy writes it: v1.0, total preamble a multiple of 64 */
            FILE *fp = fopen(P("a.npy"), "rb");
            char h[256] = {0};
            assert_true(fread(h, 1, sizeof h - 1, fp) >= 64);
            fclose(fp);
            assert_memory_equal(h, "\x93NUMPY\x01\x00", 8);
            size_t hl = (unsigned char)h[8] | (size_t)(unsigned char)h[9] << 8;
            assert_int_equal((10 + hl) % 64, 0);
            assert_int_equal(h[10 + hl - 1], '\n');
            assert_non_null(strstr(h + 10, descr[d]));
            assert_non_null(strstr(h + 10, r == 1   ? "(7,)"
                                           : r == 0 ? "()"
                                           : r == 2 ? "(3, 5)"
                                                    : "("));
            svoo_tensorfile *f;
            assert_int_equal(svoo_tensorfile_open(P("a.npy"), &f), SVOO_OK);
            assert_int_equal(svoo_tensorfile_count(f), 1);
            svoo_array g;
            assert_int_equal(svoo_tensorfile_get(f, 0, &g), SVOO_OK);
            assert_string_equal(g.name, "");
            assert_same_array(&a, &g);
            assert_int_equal(svoo_tensorfile_find(f, "", &g), SVOO_OK);
            svoo_tensorfile_free(f);
            free(buf);
        }
    clean_dir();
}

static void test_npy_header_variants(void **state) {
    (void)state;
    float d[6] = {1, 2, 3, 4, 5, 6};
    svoo_tensorfile *f;
    svoo_array g;
    /* v2.0 and v3.0, other key order, double quotes, Python 2 longs */
    write_npy(P("v2.npy"), 2, "{'shape': (2, 3), 'fortran_order': False, 'descr': '<f4'}", d, 24);
    write_npy(P("v3.npy"), 3, "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2L, 3L)}",
              d, 24);
    const char *files[2] = {"v2.npy", "v3.npy"};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(svoo_tensorfile_open(P(files[i]), &f), SVOO_OK);
        assert_int_equal(svoo_tensorfile_get(f, 0, &g), SVOO_OK);
        assert_int_equal(g.rank, 2);
        assert_int_equal(g.dims[1], 3);
        assert_memory_equal(g.data, d, 24);
        svoo_tensorfile_free(f);
    }
    /* Fortran order is harmless for 1-D data; trailing bytes are ignored as numpy does */
    write_npy(P("f1.npy"), 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (1, 5), }", d, 24);
    assert_int_equal(svoo_tensorfile_open(P("f1.npy"), &f), SVOO_OK);
    svoo_tensorfile_free(f);
    /* detection is by content: an .npy named .safetensors and the reverse */
    write_npy(P("npy.safetensors"), 1, "{'descr': '<f2', 'fortran_order': False, 'shape': (3,), }",
              d, 6);
    assert_int_equal(svoo_tensorfile_open(P("npy.safetensors"), &f), SVOO_OK);
    assert_int_equal(svoo_tensorfile_get(f, 0, &g), SVOO_OK);
    assert_int_equal(g.dtype, SVOO_F16);
    svoo_tensorfile_free(f);
    write_st(P("st.npy"), "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", d, 4,
             -1);
    assert_int_equal(svoo_tensorfile_open(P("st.npy"), &f), SVOO_OK);
    assert_int_equal(svoo_tensorfile_find(f, "x", &g), SVOO_OK);
    svoo_tensorfile_free(f);
    clean_dir();
}

/* ---- bad safetensors ------------------------------------------------------ */

static void test_safetensors_bad(void **state) {
    (void)state;
    unsigned char data[64] = {0};
    const char *p;
    /* header longer than the file */
    p = P("long.safetensors");
    write_st(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", data, 4, 1000);
    expect_open(p, SVOO_ERR_FILE_TRUNCATED, "header");
    p = P("huge.safetensors");
    write_st(p, "{}", NULL, 0, INT64_MAX);
    expect_open(p, SVOO_ERR_FILE_TRUNCATED, NULL);
    p = P("tiny.safetensors");
    write_bytes(p, "\x02\x00\x00", 3);
    expect_open(p, SVOO_ERR_FILE_TRUNCATED, NULL);
    p = P("empty.safetensors");
    write_bytes(p, "", 0);
    expect_open(p, SVOO_ERR_FILE_TRUNCATED, NULL);
    /* neither format (a CSV given as a tensor): said so, not "a header of 10^18 bytes" */
    p = P("profile.csv");
    write_bytes(p, "Step,Layer,Head,Sparsity\n1,0,0,0.5\n", 35);
    expect_open(p, SVOO_ERR_FILE_CORRUPT, "neither a .npy file");
    /* non-JSON header, JSON but not an object, bytes after the JSON */
    p = P("nonjson.safetensors");
    write_st(p, "{\"x\": {\"dtype\": F32}}", data, 4, -1);
    expect_open(p, SVOO_ERR_FILE_CORRUPT, "JSON");
    p = P("notjson2.safetensors");
    write_st(p, "this is not json at all", data, 4, -1);
    expect_open(p, SVOO_ERR_FILE_CORRUPT, NULL);
    p = P("cut.safetensors");
    write_st(p, "{\"x\":{\"dtype\":\"F32\",\"sha", data, 4, -1);
    expect_open(p, SVOO_ERR_FILE_CORRUPT, "JSON");
    p = P("array.safetensors");
    write_st(p, "{\"x\":1}", data, 0, -1);
    expect_open(p, SVOO_ERR_FILE_CORRUPT, "'x'");
    p = P("trail.safetensors");
    write_st(p, "{} {}", data, 0, -1);
    expect_open(p, SVOO_ERR_FILE_CORRUPT, NULL);
    p = P("listroot.safetensors");
    write_st(p, "{\"a\":[]}", data, 0, -1);
    expect_open(p, SVOO_ERR_FILE_CORRUPT, NULL);
    /* wrong field types */
    const char *bad_fields[] = {
        "{\"t\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}",
        "{\"t\":{\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}",
        "{\"t\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}",
        "{\"t\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}",
        "{\"t\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}",
        "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}",
        "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}",
        "{\"t\":{\"dtype\":\"F32\",\"shape\":[1]}}",
        "{\"t\":{\"shape\":[1],\"data_offsets\":[0,4]}}",
        "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,99999999999999999999]}}",
        "{\"__metadata__\":[1],\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
        "{\"__metadata__\":{\"k\":1},\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}"
        "}",
        /* a key repeated inside an entry is ambiguous */
        "{\"t\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,4]}}",
    };
    for (size_t i = 0; i < sizeof bad_fields / sizeof *bad_fields; i++) {
        p = P("fields.safetensors");
        write_st(p, bad_fields[i], data, 8, -1);
        expect_open(p, SVOO_ERR_FILE_CORRUPT, NULL);
    }
    /* offsets out of range: beyond the file = truncated; inconsistent = corrupt */
    p = P("beyond.safetensors");
    write_st(p, "{\"t\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", data, 8, -1);
    expect_open(p, SVOO_ERR_FILE_TRUNCATED, "'t'");
    p = P("beyond2.safetensors");
    write_st(p, "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[1000,1004]}}", data, 8,
             -1);
    expect_open(p, SVOO_ERR_FILE_TRUNCATED, "'t'");
    p = P("reversed.safetensors");
    write_st(p, "{\"t\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", data, 8, -1);
    expect_open(p, SVOO_ERR_FILE_CORRUPT, "'t'");
    p = P("size.safetensors");
    write_st(p, "{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", data, 16, -1);
    expect_open(p, SVOO_ERR_FILE_CORRUPT, "'t'");
    p = P("overlap.safetensors");
    write_st(p,
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
             "\"b\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[6,10]}}",
             data, 16, -1);
    expect_open(p, SVOO_ERR_FILE_CORRUPT, "overlap");
    p = P("overflow.safetensors");
    write_st(p,
             "{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}",
             data, 8, -1);
    expect_open(p, SVOO_ERR_FILE_CORRUPT, "'t'");
    /* unknown dtypes name the tensor and the dtype */
    const char *dts[] = {"F64", "I8", "BOOL", "F8_E4M3", "f32", "WHAT"};
    for (size_t i = 0; i < sizeof dts / sizeof *dts; i++) {
        char h[256];
        snprintf(h, sizeof h, "{\"weird\":{\"dtype\":\"%s\",\"shape\":[1],\"data_offsets\":[0,1]}}",
                 dts[i]);
        p = P("dtype.safetensors");
        write_st(p, h, data, 8, -1);
        expect_open(p, SVOO_ERR_UNKNOWN_DTYPE, "'weird'");
        assert_non_null(strstr(svoo_last_error(NULL), dts[i]));
    }
    /* rank above SVOO_MAX_RANK */
    p = P("rank.safetensors");
    write_st(p, "{\"t\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}",
             data, 8, -1);
    expect_open(p, SVOO_ERR_UNSUPPORTED, "rank");
    /* duplicate names, also spelled differently with escapes */
    p = P("dup.safetensors");
    write_st(p,
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
             "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
             data, 8, -1);
    expect_open(p, SVOO_ERR_DUPLICATE_NAME, "'a'");
    p = P("dup2.safetensors");
    write_st(p,
             "{\"q\\u00e9\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
             "\"q\xc3\xa9\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
             data, 8, -1);
    expect_open(p, SVOO_ERR_DUPLICATE_NAME, NULL);
    p = P("dup3.safetensors");
    write_st(p, "{\"__metadata__\":{},\"__metadata__\":{}}", data, 0, -1);
    expect_open(p, SVOO_ERR_DUPLICATE_NAME, NULL);
    /* ... but equal names in different objects are fine */
    p = P("nodup.safetensors");
    write_st(p,
             "{\"__metadata__\":{\"a\":\"x\",\"b\":\"\\\"}\"},"
             "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
             "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
             data, 8, -1);
    expect_open(p, SVOO_OK, NULL);
    /* a name with an embedded NUL cannot be represented */
    p = P("nul.safetensors");
    write_st(p, "{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", data, 8,
             -1);
    expect_open(p, SVOO_ERR_FILE_CORRUPT, NULL);
    /* not a file */
    expect_open(P("does-not-exist"), SVOO_ERR_IO, NULL);
    expect_open(g_dir, SVOO_ERR_IO, NULL);
    svoo_tensorfile *f = NULL;
    assert_int_equal(svoo_tensorfile_open(NULL, &f), SVOO_ERR_NULL_POINTER);
    assert_int_equal(svoo_tensorfile_open(p, NULL), SVOO_ERR_NULL_POINTER);
    clean_dir();
}

/* ---- bad npy -------------------------------------------------------------- */

static void test_npy_bad(void **state) {
    (void)state;
    float d[8] = {0};
    const char *p = P("bad.npy");
    /* header longer than the file */
    unsigned char pre[16] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0xff, 0x7f, '{'};
    write_bytes(p, pre, 11);
    expect_open(p, SVOO_ERR_FILE_TRUNCATED, "header");
    unsigned char pre3[9] = {0x93, 'N', 'U', 'M', 'P', 'Y', 2, 0, 1};
    write_bytes(p, pre3, 9);
    expect_open(p, SVOO_ERR_FILE_TRUNCATED, NULL);
    /* data shorter than the shape */
    write_npy(p, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 3), }", d, 32);
    expect_open(p, SVOO_ERR_FILE_TRUNCATED, "36");
    /* unknown dtypes */
    const char *unknown[] = {"'<f8'", "'|b1'", "'<i4'", "'|u2'", "'xyz'", "[('a', '<f4')]"};
    for (size_t i = 0; i < sizeof unknown / sizeof *unknown; i++) {
        char dict[128];
        snprintf(dict, sizeof dict, "{'descr': %s, 'fortran_order': False, 'shape': (2,), }",
                 unknown[i]);
        write_npy(p, 1, dict, d, 32);
        expect_open(p, SVOO_ERR_UNKNOWN_DTYPE, NULL);
    }
    /* big-endian and Fortran order are refused with a way out */
    write_npy(p, 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", d, 8);
    expect_open(p, SVOO_ERR_UNSUPPORTED, "big-endian");
    write_npy(p, 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", d, 16);
    expect_open(p, SVOO_ERR_UNSUPPORTED, "Fortran");
    write_npy(p, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", d,
              4);
    expect_open(p, SVOO_ERR_UNSUPPORTED, "rank");
    /* corrupt dicts */
    const char *corrupt[] = {
        "{'descr': '<f4', 'shape': (2,), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }",
        "{'descr': '<f4', 'fortran_order': false, 'shape': (2,), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'shape': (2,)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2,) ",
        "['descr', '<f4']",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } junk",
        "{'descr': '<f4' 'fortran_order': False, 'shape': (2,), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4), }",
    };
    for (size_t i = 0; i < sizeof corrupt / sizeof *corrupt; i++) {
        write_npy(p, 1, corrupt[i], d, 32);
        svoo_tensorfile *f = NULL;
        svoo_status s = svoo_tensorfile_open(p, &f);
        if (s != SVOO_ERR_FILE_CORRUPT)
            fail_msg("dict %zu '%s': got %s (%s)", i, corrupt[i], svoo_status_name(s),
                     svoo_last_error(NULL));
        assert_null(f);
    }
    /* unknown version */
    write_npy(p, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", d, 8);
    FILE *fp = fopen(p, "r+b");
    fseek(fp, 6, SEEK_SET);
    fputc(4, fp);
    fclose(fp);
    expect_open(p, SVOO_ERR_UNSUPPORTED, "version");
    clean_dir();
}

/* ---- writers leave nothing behind ----------------------------------------- */

static void test_writer_failures(void **state) {
    (void)state;
    float d[4] = {1, 2, 3, 4};
    int64_t dims[1] = {4};
    svoo_array a[2] = {make_array("x", SVOO_F32, 1, dims, d),
                       make_array("x", SVOO_F32, 1, dims, d)};
    /* a directory that does not exist */
    char nodir[600];
    snprintf(nodir, sizeof nodir, "%s/no/such/dir/out.safetensors", g_dir);
    assert_int_equal(svoo_safetensors_save(nodir, a, 1), SVOO_ERR_IO);
    assert_non_null(strstr(svoo_last_error(NULL), nodir));
    snprintf(nodir, sizeof nodir, "%s/no/such/dir/out.npy", g_dir);
    assert_int_equal(svoo_npy_save(nodir, a), SVOO_ERR_IO);
    assert_int_equal(count_files(), 0);
    /* duplicate names */
    assert_int_equal(svoo_safetensors_save(P("dup.safetensors"), a, 2), SVOO_ERR_DUPLICATE_NAME);
    assert_non_null(strstr(svoo_last_error(NULL), "'x'"));
    assert_int_equal(count_files(), 0);
    /* inconsistent arrays */
    svoo_array b = a[0];
    b.nbytes = 12;
    assert_int_equal(svoo_safetensors_save(P("b.safetensors"), &b, 1), SVOO_ERR_INVALID_ARGUMENT);
    assert_int_equal(svoo_npy_save(P("b.npy"), &b), SVOO_ERR_INVALID_ARGUMENT);
    b = a[0];
    b.dtype = (svoo_dtype)7;
    assert_int_equal(svoo_npy_save(P("b.npy"), &b), SVOO_ERR_UNKNOWN_DTYPE);
    b = a[0];
    b.rank = SVOO_MAX_RANK + 1;
    assert_int_equal(svoo_npy_save(P("b.npy"), &b), SVOO_ERR_INVALID_ARGUMENT);
    b = a[0];
    b.data = NULL;
    assert_int_equal(svoo_npy_save(P("b.npy"), &b), SVOO_ERR_NULL_POINTER);
    b = a[0];
    b.name = NULL;
    assert_int_equal(svoo_safetensors_save(P("b.safetensors"), &b, 1), SVOO_ERR_NULL_POINTER);
    b.name = "__metadata__";
    assert_int_equal(svoo_safetensors_save(P("b.safetensors"), &b, 1), SVOO_ERR_INVALID_ARGUMENT);
    assert_int_equal(svoo_safetensors_save(P("b.safetensors"), NULL, 1), SVOO_ERR_NULL_POINTER);
    assert_int_equal(svoo_safetensors_save(P("b.safetensors"), a, -1), SVOO_ERR_INVALID_ARGUMENT);
    assert_int_equal(svoo_safetensors_save(NULL, a, 1), SVOO_ERR_NULL_POINTER);
    assert_int_equal(svoo_npy_save(P("b.npy"), NULL), SVOO_ERR_NULL_POINTER);
    assert_int_equal(count_files(), 0);
    /* replacing a file is atomic: a failed save keeps the old content */
    assert_int_equal(svoo_npy_save(P("keep.npy"), &a[0]), SVOO_OK);
    b = a[0];
    b.nbytes = 0;
    assert_int_not_equal(svoo_npy_save(P("keep.npy"), &b), SVOO_OK);
    svoo_tensorfile *f;
    svoo_array g;
    assert_int_equal(svoo_tensorfile_open(P("keep.npy"), &f), SVOO_OK);
    assert_int_equal(svoo_tensorfile_get(f, 0, &g), SVOO_OK);
    assert_memory_equal(g.data, d, 16);
    /* overwriting a file that is open (mapped) leaves the mapping valid */
    float e[4] = {9, 9, 9, 9};
    svoo_array c = make_array("", SVOO_F32, 1, dims, e);
    assert_int_equal(svoo_npy_save(P("keep.npy"), &c), SVOO_OK);
    assert_memory_equal(g.data, d, 16);
    svoo_tensorfile_free(f);
    assert_int_equal(count_files(), 1);
    clean_dir();
}

/* a save onto a path that is not a regular file (a FIFO, a symbolic link, a
 * directory) is refused before anything is written: the rename would replace the
 * node (as root, /dev/null too); and a profile is saved with the usual 0666 &
 * ~umask mode (it was written through mkstemp: 0600) */
static void test_save_needs_regular_file(void **state) {
    (void)state;
    float d[4] = {1, 2, 3, 4};
    int64_t dims[1] = {4};
    svoo_array a = make_array("x", SVOO_F32, 1, dims, d);
    svoo_profile *p = NULL;
    assert_int_equal(svoo_profile_create(1, 1, 1, &p), SVOO_OK);
    assert_int_equal(svoo_profile_set(p, 0, 0, 0, 0.25), SVOO_OK);
    assert_int_equal(mkfifo(P("fifo"), 0600), 0);
    assert_int_equal(symlink("target.npy", P("link")), 0);
    assert_int_equal(mkdir(P("dir"), 0700), 0);
    const char *names[3] = {"fifo", "link", "dir"}, *kinds[3] = {"a FIFO", "a symbolic link", "a directory"};
    for (int i = 0; i < 3; i++) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s", g_dir, names[i]);
        assert_int_equal(svoo_npy_save(path, &a), SVOO_ERR_IO);
        assert_non_null(strstr(svoo_last_error(NULL), kinds[i]));
        assert_int_equal(svoo_safetensors_save(path, &a, 1), SVOO_ERR_IO);
        assert_int_equal(svoo_profile_save(p, path), SVOO_ERR_IO);
        assert_non_null(strstr(svoo_last_error(NULL), kinds[i]));
    }
    struct stat st;
    assert_int_equal(lstat(P("fifo"), &st), 0);
    assert_true(S_ISFIFO(st.st_mode));
    assert_int_equal(lstat(P("link"), &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_int_equal(access(P("target.npy"), F_OK), -1);
    const mode_t old = umask(022);
    assert_int_equal(svoo_profile_save(p, P("p.csv")), SVOO_OK);
    umask(old);
    assert_int_equal(stat(P("p.csv"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    svoo_profile *q = NULL;
    double v = 0;
    assert_int_equal(svoo_profile_load(P("p.csv"), &q), SVOO_OK);
    assert_int_equal(svoo_profile_get(q, 0, 0, 0, &v), SVOO_OK);
    assert_true(v == 0.25);
    svoo_profile_free(q);
    svoo_profile_free(p);
    rmdir(P("dir"));
    clean_dir();
}

/* every allocation of open and save may fail: a clean error each time, no
 * leak (ASan/valgrind), no file */
static void test_alloc_failure(void **state) {
    (void)state;
    float d[12] = {0};
    int64_t dims[2] = {3, 4};
    svoo_array a[3] = {make_array("a", SVOO_F32, 2, dims, d),
                       make_array("b\\\"", SVOO_F16, 2, dims, d),
                       make_array("c", SVOO_BF16, 1, dims, d)};
    a[2].nbytes = 6;
    int ok = 0;
    for (int64_t k = 1; k < 100 && !ok; k++) {
        svoo_alloc_fail_at(k);
        svoo_status s = svoo_safetensors_save(P("m.safetensors"), a, 3);
        svoo_alloc_fail_at(0);
        if (s == SVOO_OK)
            ok = 1;
        else {
            assert_int_equal(s, SVOO_ERR_OUT_OF_MEMORY);
            assert_int_equal(count_files(), 0);
        }
    }
    assert_true(ok);
    ok = 0;
    for (int64_t k = 1; k < 100 && !ok; k++) {
        svoo_tensorfile *f = NULL;
        svoo_alloc_fail_at(k);
        svoo_status s = svoo_tensorfile_open(P("m.safetensors"), &f);
        svoo_alloc_fail_at(0);
        if (s == SVOO_OK) {
            ok = 1;
            assert_int_equal(svoo_tensorfile_count(f), 3);
            svoo_tensorfile_free(f);
        } else {
            assert_int_equal(s, SVOO_ERR_OUT_OF_MEMORY);
            assert_null(f);
        }
    }
    assert_true(ok);
    clean_dir();
    ok = 0;
    for (int64_t k = 1; k < 50 && !ok; k++) {
        svoo_alloc_fail_at(k);
        svoo_status s = svoo_npy_save(P("m.npy"), &a[0]);
        svoo_alloc_fail_at(0);
        if (s == SVOO_OK)
            ok = 1;
        else
            assert_int_equal(count_files(), 0);
    }
    assert_true(ok);
    ok = 0;
    for (int64_t k = 1; k < 50 && !ok; k++) {
        svoo_tensorfile *f = NULL;
        svoo_alloc_fail_at(k);
        svoo_status s = svoo_tensorfile_open(P("m.npy"), &f);
        svoo_alloc_fail_at(0);
        if (s == SVOO_OK)
            ok = 1;
        else
            assert_int_equal(s, SVOO_ERR_OUT_OF_MEMORY);
        svoo_tensorfile_free(f);
    }
    assert_true(ok);
    clean_dir();
}

/* ---- views ---------------------------------------------------------------- */

static void test_array_view(void **state) {
    (void)state;
    float buf[2 * 3 * 5 * 64];
    int64_t d4[4] = {2, 3, 5, 64};
    svoo_array a = make_array("t", SVOO_F32, 4, d4, buf);
    svoo_tensor t;
    assert_int_equal(svoo_array_view(&a, 0, &t), SVOO_OK);
    assert_ptr_equal(t.data, buf);
    assert_int_equal(t.device, SVOO_DEVICE_CPU);
    assert_int_equal(t.shape[0], 2);
    assert_int_equal(t.shape[1], 3);
    assert_int_equal(t.shape[2], 5);
    assert_int_equal(t.shape[3], 64);
    assert_int_equal(t.stride[0], 3 * 5 * 64);
    assert_int_equal(t.stride[1], 5 * 64);
    assert_int_equal(t.stride[2], 64);
    assert_int_equal(t.stride[3], 1);
    /* [B, N, H, D]: logical (B, H, N, D) = (2, 5, 3, 64) */
    assert_int_equal(svoo_array_view(&a, 1, &t), SVOO_OK);
    assert_int_equal(t.shape[1], 5);
    assert_int_equal(t.shape[2], 3);
    assert_int_equal(t.stride[0], 3 * 5 * 64);
    assert_int_equal(t.stride[1], 64);
    assert_int_equal(t.stride[2], 5 * 64);
    /* rank 3: B = 1 */
    int64_t d3[3] = {6, 5, 64};
    svoo_array b = make_array("t", SVOO_BF16, 3, d3, buf);
    assert_int_equal(svoo_array_view(&b, 0, &t), SVOO_OK);
    assert_int_equal(t.dtype, SVOO_BF16);
    assert_int_equal(t.shape[0], 1);
    assert_int_equal(t.shape[1], 6);
    assert_int_equal(t.shape[2], 5);
    assert_int_equal(svoo_array_view(&b, 1, &t), SVOO_OK);
    assert_int_equal(t.shape[1], 5);
    assert_int_equal(t.shape[2], 6);
    assert_int_equal(t.stride[2], 5 * 64);
    /* bad */
    int64_t d2[2] = {30, 64};
    svoo_array c = make_array("r2", SVOO_F32, 2, d2, buf);
    assert_int_equal(svoo_array_view(&c, 0, &t), SVOO_ERR_SHAPE_MISMATCH);
    assert_non_null(strstr(svoo_last_error(NULL), "rank 2"));
    c = a;
    c.dims[2] = 0;
    c.nbytes = 0;
    assert_int_equal(svoo_array_view(&c, 0, &t), SVOO_ERR_SHAPE_MISMATCH);
    c = a;
    c.nbytes -= 4;
    assert_int_equal(svoo_array_view(&c, 0, &t), SVOO_ERR_INVALID_ARGUMENT);
    assert_int_equal(svoo_array_view(&a, 2, &t), SVOO_ERR_INVALID_ARGUMENT);
    c = a;
    c.dtype = (svoo_dtype)9;
    assert_int_equal(svoo_array_view(&c, 0, &t), SVOO_ERR_UNKNOWN_DTYPE);
    c = a;
    c.data = NULL;
    assert_int_equal(svoo_array_view(&c, 0, &t), SVOO_ERR_NULL_POINTER);
    assert_int_equal(svoo_array_view(NULL, 0, &t), SVOO_ERR_NULL_POINTER);
    assert_int_equal(svoo_array_view(&a, 0, NULL), SVOO_ERR_NULL_POINTER);
}

/* ---- svoo attn end to end ------------------------------------------------- */

static const char *svoo_bin(void) {
    return SVOO_BINARY_DIR "/svoo";
}

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char full[sizeof cmd + 2 * sizeof g_dir + 32];
    snprintf(full, sizeof full, "%s >%s/stdout.txt 2>%s/stderr.txt", cmd, g_dir, g_dir);
    int st = system(full);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static void test_cli_attn(void **state) {
    (void)state;
    if (access(svoo_bin(), X_OK) != 0) {
        print_message("svoo binary not built (%s): skipped\n", svoo_bin());
        skip();
    }
    enum { H = 2, N = 70, D = 64 };
    size_t n = (size_t)H * N * D;
    int64_t dims[4] = {1, H, N, D};
    void *bufs[3];
    const char *names[3] = {"q.npy", "k.npy", "v.npy"};
    char paths[3][600];
    for (int i = 0; i < 3; i++) {
        bufs[i] = make_data(SVOO_F32, n, 100 + i);
        svoo_array a = make_array("", SVOO_F32, 4, dims, bufs[i]);
        snprintf(paths[i], sizeof paths[i], "%s", P(names[i]));
        assert_int_equal(svoo_npy_save(paths[i], &a), SVOO_OK);
    }
    char out[600], out2[600];
    snprintf(out, sizeof out, "%s", P("out.npy"));
    assert_int_equal(run("'%s' attn --q '%s' --k '%s' --v '%s' --out '%s'", svoo_bin(), paths[0],
                         paths[1], paths[2], out),
                     0);
    /* the reference: a direct svoo_attention call */
    svoo_config cfg;
    svoo_config_init(&cfg, SVOO_METHOD_DENSE);
    cfg.head_dim = D;
    cfg.num_heads = H;
    cfg.num_steps = cfg.num_layers = 1;
    svoo_ctx *ctx;
    assert_int_equal(svoo_ctx_create(&cfg, &ctx), SVOO_OK);
    float *ref = malloc(n * 4);
    svoo_tensor t[4];
    for (int i = 0; i < 3; i++)
        t[i] = svoo_tensor_bhnd(bufs[i], SVOO_F32, 1, H, N, D);
    t[3] = svoo_tensor_bhnd(ref, SVOO_F32, 1, H, N, D);
    assert_int_equal(svoo_attention(ctx, 0, 0, &t[0], &t[1], &t[2], &t[3], NULL), SVOO_OK);
    svoo_tensorfile *f;
    svoo_array g;
    assert_int_equal(svoo_tensorfile_open(out, &f), SVOO_OK);
    assert_int_equal(svoo_tensorfile_get(f, 0, &g), SVOO_OK);
    assert_int_equal(g.dtype, SVOO_F32);
    assert_int_equal(g.rank, 4);
    assert_int_equal(g.dims[2], N);
    svoo_tensor to;
    assert_int_equal(svoo_array_view(&g, 0, &to), SVOO_OK);
    svoo_compare_result cr;
    assert_int_equal(svoo_compare(&t[3], &to, &cr), SVOO_OK);
    assert_true(cr.rel_l2 < 1e-6);
    svoo_tensorfile_free(f);

    /* the same through one safetensors file of q, k, v in [N, H, D] layout,
     * bf16 output, JSON stats */
    float *bnhd[3];
    svoo_array sa[3];
    const char *sn[3] = {"q", "k", "v"};
    int64_t d3[3] = {N, H, D};
    for (int i = 0; i < 3; i++) {
        bnhd[i] = malloc(n * 4);
        for (int h = 0; h < H; h++)
            for (int r = 0; r < N; r++)
                memcpy(bnhd[i] + ((size_t)r * H + h) * D,
                       (float *)bufs[i] + ((size_t)h * N + r) * D, D * 4);
        sa[i] = make_array(sn[i], SVOO_F32, 3, d3, bnhd[i]);
    }
    char st[600];
    snprintf(st, sizeof st, "%s", P("qkv.safetensors"));
    assert_int_equal(svoo_safetensors_save(st, sa, 3), SVOO_OK);
    snprintf(out2, sizeof out2, "%s", P("out.safetensors"));
    assert_int_equal(run("'%s' attn --q '%s' --k '%s' --v '%s' --out '%s' --layout bnhd "
                         "--name-out result --dtype-out bf16 --json",
                         svoo_bin(), st, st, st, out2),
                     0);
    assert_int_equal(svoo_tensorfile_open(out2, &f), SVOO_OK);
    assert_int_equal(svoo_tensorfile_find(f, "result", &g), SVOO_OK);
    assert_int_equal(g.dtype, SVOO_BF16);
    assert_int_equal(g.rank, 3);
    assert_int_equal(svoo_array_view(&g, 1, &to), SVOO_OK);
    assert_int_equal(svoo_compare(&t[3], &to, &cr), SVOO_OK);
    assert_true(cr.rel_l2 < 1e-2);
    svoo_tensorfile_free(f);
    FILE *js = fopen(P("stdout.txt"), "r");
    char line[2048] = {0};
    assert_non_null(fgets(line, sizeof line, js));
    fclose(js);
    assert_non_null(strstr(line, "\"density\":1"));
    assert_non_null(strstr(line, "\"method\":\"dense\""));

    /* a sparse method runs (not a silent warm-up call) */
    char out3[600];
    snprintf(out3, sizeof out3, "%s", P("out_svoo.npy"));
    assert_int_equal(run("'%s' attn --q '%s' --k '%s' --v '%s' --out '%s' --method svoo --json",
                         svoo_bin(), paths[0], paths[1], paths[2], out3),
                     0);
    js = fopen(P("stdout.txt"), "r");
    assert_non_null(fgets(line, sizeof line, js));
    fclose(js);
    assert_non_null(strstr(line, "\"dense\":false"));
    unlink(out3);

    /* bad inputs: status on stderr, exit 1, no output file */
    unlink(out);
    FILE *fp = fopen(paths[1], "r+b");
    assert_int_equal(ftruncate(fileno(fp), 200), 0);
    fclose(fp);
    assert_int_equal(run("'%s' attn --q '%s' --k '%s' --v '%s' --out '%s'", svoo_bin(), paths[0],
                         paths[1], paths[2], out),
                     1);
    assert_false(exists(out));
    FILE *er = fopen(P("stderr.txt"), "r");
    assert_non_null(fgets(line, sizeof line, er));
    fclose(er);
    assert_non_null(strstr(line, "SVOO_ERR_FILE_TRUNCATED"));
    /* a tensor name that is not there; k with other heads than q */
    assert_int_equal(run("'%s' attn --q '%s' --k '%s' --v '%s' --out '%s' --name-q nope",
                         svoo_bin(), st, st, st, out2),
                     1);
    int64_t d1h[4] = {1, 1, N, D};
    svoo_array k1 = make_array("", SVOO_F32, 4, d1h, bufs[0]);
    assert_int_equal(svoo_npy_save(P("k1.npy"), &k1), SVOO_OK);
    assert_int_equal(run("'%s' attn --q '%s' --k '%s' --v '%s' --out '%s'", svoo_bin(), paths[0],
                         P("k1.npy"), P("k1.npy"), out),
                     1);
    assert_false(exists(out));
    er = fopen(P("stderr.txt"), "r");
    assert_non_null(fgets(line, sizeof line, er));
    fclose(er);
    assert_non_null(strstr(line, "SVOO_ERR_SHAPE_MISMATCH"));
    assert_int_equal(run("'%s' attn --q '%s' --k '%s' --v '%s' --out '%s' --layout bnhd "
                         "--method svoo --steps 2 --step 5",
                         svoo_bin(), st, st, st, out),
                     2);
    assert_false(exists(out));
    /* the output directory does not exist */
    assert_int_equal(run("'%s' attn --q '%s' --k '%s' --v '%s' --out '%s/nodir/o.npy'", svoo_bin(),
                         paths[0], paths[0], paths[0], g_dir),
                     1);
    /* usage */
    assert_int_equal(run("'%s' attn --q '%s' --k '%s' --v '%s' --out '%s/o.txt'", svoo_bin(),
                         paths[0], paths[0], paths[0], g_dir),
                     2);
    assert_int_equal(run("'%s' attn --help", svoo_bin()), 0);
    assert_int_equal(run("'%s' attn --q x", svoo_bin()), 2);

    for (int i = 0; i < 3; i++) {
        free(bufs[i]);
        free(bnhd[i]);
    }
    free(ref);
    svoo_ctx_free(ctx);
    clean_dir();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_safetensors_roundtrip),
        cmocka_unit_test(test_safetensors_many_and_reference_header),
        cmocka_unit_test(test_npy_roundtrip),
        cmocka_unit_test(test_npy_header_variants),
        cmocka_unit_test(test_safetensors_bad),
        cmocka_unit_test(test_npy_bad),
        cmocka_unit_test(test_writer_failures),
        cmocka_unit_test(test_save_needs_regular_file),
        cmocka_unit_test(test_alloc_failure),
        cmocka_unit_test(test_array_view),
        cmocka_unit_test(test_cli_attn),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

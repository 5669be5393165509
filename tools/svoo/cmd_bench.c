/* cmd_bench.c : svoo bench <what>. Every figure is a ratio to a peer measured
 * in the same run (dense: OpenBLAS sgemm on this machine). */
#include "cli.h"

#include <cblas.h>
#include <getopt.h>
#include <json-c/json.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* best-of-reps sgemm rate (GFLOP/s) of an m x n x k product */
static double sgemm_gflops(int m, int n, int k, int reps) {
    float *a = malloc((size_t)m * k * 4), *b = malloc((size_t)k * n * 4), *c = malloc((size_t)m * n * 4);
    double best = 1e30;
    if (a && b && c) {
        cli_fill_random(a, (size_t)m * k, 1, 1.0f);
        cli_fill_random(b, (size_t)k * n, 2, 1.0f);
        for (int r = 0; r <= reps; r++) {
            double t = now_ms();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a, k, b, k, 0.0f, c, n);
            t = now_ms() - t;
            if (r > 0 && t < best) best = t; /* first run warms up */
        }
    }
    free(a);
    free(b);
    free(c);
    return best < 1e30 ? 2.0 * m * n * (double)k / (best * 1e6) : 0.0;
}

static void dense_help(void) {
    printf("usage: svoo bench dense --seq N --heads H --dim D [options]\n\n"
           "Times svoo's dense CPU attention (B = 1) and OpenBLAS sgemm in the same run.\n"
           "FLOPs = 4 N^2 D H.\n\n"
           "  --seq N        sequence length (required)\n"
           "  --heads H      heads (required)\n"
           "  --dim D        head dim, 64 or 128 (required)\n"
           "  --dtype T      f32 | f16 | bf16 (default f32)\n"
           "  --reps R       timed repetitions, best kept (default 3)\n"
           "  --threads T    threads (default: all cores)\n"
           "  --json         one JSON object on stdout (attn_gflops, sgemm_gflops, ratio, ...)\n");
}

static int bench_dense(int argc, char **argv) {
    static const struct option opts[] = {{"seq", 1, 0, 's'},    {"heads", 1, 0, 'H'},
                                         {"dim", 1, 0, 'd'},    {"dtype", 1, 0, 't'},
                                         {"reps", 1, 0, 'r'},   {"threads", 1, 0, 'j'},
                                         {"json", 0, 0, 'J'},   {"help", 0, 0, 'h'},
                                         {0, 0, 0, 0}};
    long long seq = 0, heads = 0, dim = 0, reps = 3, threads = 0;
    int json = 0;
    svoo_dtype dt = SVOO_F32;
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
        switch (c) {
        case 's': if (cli_parse_int(optarg, 1, 1 << 22, &seq)) return cli_usage_error("bench dense", "--seq: '%s' is not in [1, 4194304]", optarg); break;
        case 'H': if (cli_parse_int(optarg, 1, 4096, &heads)) return cli_usage_error("bench dense", "--heads: '%s' is not in [1, 4096]", optarg); break;
        case 'd':
            if (cli_parse_int(optarg, 64, 128, &dim) || (dim != 64 && dim != 128))
                return cli_usage_error("bench dense", "--dim: '%s' is not 64 or 128", optarg);
            break;
        case 'r': if (cli_parse_int(optarg, 1, 1000, &reps)) return cli_usage_error("bench dense", "--reps: '%s' is not in [1, 1000]", optarg); break;
        case 'j': if (cli_parse_int(optarg, 1, 1024, &threads)) return cli_usage_error("bench dense", "--threads: '%s' is not in [1, 1024]", optarg); break;
        case 't':
            if (!strcmp(optarg, "f32")) dt = SVOO_F32;
            else if (!strcmp(optarg, "f16")) dt = SVOO_F16;
            else if (!strcmp(optarg, "bf16")) dt = SVOO_BF16;
            else return cli_usage_error("bench dense", "--dtype: '%s' (f32, f16, bf16)", optarg);
            break;
        case 'J': json = 1; break;
        case 'h': dense_help(); return CLI_OK;
        default: return cli_usage_error("bench dense", "bad option");
        }
    }
    if (optind < argc) return cli_usage_error("bench dense", "unexpected argument '%s'", argv[optind]);
    if (!seq || !heads || !dim) return cli_usage_error("bench dense", "--seq, --heads and --dim are required");
    if (threads) omp_set_num_threads((int)threads);

    svoo_config cfg;
    svoo_config_init(&cfg, SVOO_METHOD_DENSE);
    cfg.head_dim = (int)dim;
    cfg.num_heads = (int)heads;
    cfg.num_layers = cfg.num_steps = 1;
    cfg.num_threads = (int)threads;
    svoo_ctx *ctx = NULL;
    svoo_status s = svoo_ctx_create(&cfg, &ctx);
    if (s) return cli_fail("bench dense", s, NULL);

    size_t n = (size_t)seq * heads * dim, es = svoo_dtype_size(dt);
    float *tmp = malloc(n * 4);
    void *buf[4] = {malloc(n * es), malloc(n * es), malloc(n * es), malloc(n * es)};
    int rc = CLI_FAIL;
    if (!tmp || !buf[0] || !buf[1] || !buf[2] || !buf[3]) {
        fprintf(stderr, "svoo bench dense: out of memory for %zu-element tensors\n", n);
        goto done;
    }
    for (int i = 0; i < 3; i++) {
        cli_fill_random(tmp, n, 11 + i, i < 2 ? 2.0f : 1.0f);
        for (size_t j = 0; j < n; j++) {
            if (dt == SVOO_F32) ((float *)buf[i])[j] = tmp[j];
            else {
                _Float16 h = (_Float16)tmp[j];
                uint32_t u;
                memcpy(&u, &tmp[j], 4);
                uint16_t v16 = dt == SVOO_F16 ? 0 : (uint16_t)(u >> 16);
                if (dt == SVOO_F16) memcpy(&v16, &h, 2);
                ((uint16_t *)buf[i])[j] = v16;
            }
        }
    }
    svoo_tensor t[4];
    for (int i = 0; i < 4; i++) t[i] = svoo_tensor_bhnd(buf[i], dt, 1, heads, seq, dim);
    double best = 1e30;
    svoo_stats st;
    svoo_stats_init(&st);
    for (int r = 0; r <= reps; r++) {
        double t0 = now_ms();
        if ((s = svoo_attention(ctx, 0, 0, &t[0], &t[1], &t[2], &t[3], &st))) {
            rc = cli_fail("bench dense", s, ctx);
            goto done;
        }
        double el = now_ms() - t0;
        if (r > 0 && el < best) best = el;
    }
    double flops = 4.0 * (double)seq * (double)seq * (double)dim * (double)heads;
    double attn = flops / (best * 1e6);
    int sq = seq < 2048 ? (int)seq : 2048;
    double g_sq = sgemm_gflops(sq, sq, sq, (int)reps);
    double g_at = sgemm_gflops((int)seq, (int)seq, (int)dim, (int)reps);
    double g = g_sq > g_at ? g_sq : g_at; /* the stricter peer */
    if (json) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "bench", json_object_new_string("dense"));
        json_object_object_add(o, "seq", json_object_new_int64(seq));
        json_object_object_add(o, "heads", json_object_new_int64(heads));
        json_object_object_add(o, "dim", json_object_new_int64(dim));
        json_object_object_add(o, "dtype", json_object_new_string(svoo_dtype_name(dt)));
        json_object_object_add(o, "threads", json_object_new_int(omp_get_max_threads()));
        json_object_object_add(o, "attn_ms", json_object_new_double(best));
        json_object_object_add(o, "attn_gflops", json_object_new_double(attn));
        json_object_object_add(o, "sgemm_gflops", json_object_new_double(g));
        json_object_object_add(o, "sgemm_square_gflops", json_object_new_double(g_sq));
        json_object_object_add(o, "sgemm_qk_shape_gflops", json_object_new_double(g_at));
        json_object_object_add(o, "ratio", json_object_new_double(attn / g));
        printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        json_object_put(o);
    } else {
        printf("dense attention  N=%lld H=%lld D=%lld %s, %d threads\n", seq, heads, dim,
               svoo_dtype_name(dt), omp_get_max_threads());
        printf("  %-34s %10.2f ms %9.1f GFLOP/s\n", "svoo dense attention", best, attn);
        printf("  %-34s %10s    %9.1f GFLOP/s\n", "OpenBLAS sgemm (square)", "", g_sq);
        printf("  %-34s %10s    %9.1f GFLOP/s\n", "OpenBLAS sgemm (N x N x D)", "", g_at);
        printf("  attention / best sgemm rate: %.2f\n", attn / g);
    }
    rc = CLI_OK;
done:
    free(tmp);
    for (int i = 0; i < 4; i++) free(buf[i]);
    svoo_ctx_free(ctx);
    return rc;
}

svoo_status svoo_profile_assign_gram(const float *x, int64_t n, int d, const float *mu_o, int co,
                                     const float *mu_s, int cs, int32_t *label, int nthreads);
svoo_status svoo_profile_assign_naive(const float *x, int64_t n, int d, const float *mu_o, int co,
                                      const float *mu_s, int cs, int32_t *label, int nthreads);

/* co-clustering assignment: the definition (profiles in R^c_other, cosine)
 * against the Gram re-association, same inputs, same run */
static int bench_cocluster(int argc, char **argv) {
    static const struct option opts[] = {{"seq", 1, 0, 's'}, {"dim", 1, 0, 'd'},  {"cq", 1, 0, 'q'},
                                         {"ck", 1, 0, 'k'},  {"reps", 1, 0, 'r'}, {"json", 0, 0, 'J'},
                                         {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    long long seq = 75600, dim = 128, cq = 256, ck = 1024, reps = 3;
    int json = 0;
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
        long long *dst = c == 's' ? &seq : c == 'd' ? &dim : c == 'q' ? &cq : c == 'k' ? &ck : c == 'r' ? &reps : NULL;
        if (dst) {
            if (cli_parse_int(optarg, 1, 1 << 22, dst))
                return cli_usage_error("bench cocluster", "--%s: '%s' is not in [1, 4194304]",
                                       c == 's' ? "seq" : c == 'd' ? "dim" : c == 'q' ? "cq" : c == 'k' ? "ck" : "reps", optarg);
        } else if (c == 'J') {
            json = 1;
        } else if (c == 'h') {
            printf("usage: svoo bench cocluster [--seq N] [--dim D] [--cq Cq] [--ck Ck] [--reps R] [--json]\n\n"
                   "Times one key step + one query step of SVOO co-clustering (label assignment)\n"
                   "as defined (token profiles against centroid profiles) and through the D x D\n"
                   "Gram matrix, on the same random data; reports both and label agreement.\n"
                   "Defaults: the reference 75,600 x 128, Cq 256, Ck 1024.\n");
            return CLI_OK;
        } else {
            return cli_usage_error("bench cocluster", "bad option");
        }
    }
    size_t n = (size_t)seq * dim;
    float *xq = malloc(n * 4), *xk = malloc(n * 4), *mq = malloc((size_t)cq * dim * 4), *mk = malloc((size_t)ck * dim * 4);
    int32_t *a = malloc((size_t)seq * 8), *b = a ? a + seq : NULL;
    int rc = CLI_FAIL;
    if (!xq || !xk || !mq || !mk || !a) {
        fprintf(stderr, "svoo bench cocluster: out of memory\n");
        goto out;
    }
    cli_fill_random(xq, n, 1, 1.0f);
    cli_fill_random(xk, n, 2, 1.0f);
    cli_fill_random(mq, (size_t)cq * dim, 3, 1.0f);
    cli_fill_random(mk, (size_t)ck * dim, 4, 1.0f);
    double best[2] = {1e30, 1e30};
    int64_t agree = 0;
    for (int r = 0; r <= reps; r++)
        for (int v = 0; v < 2; v++) {
            svoo_status (*fn)(const float *, int64_t, int, const float *, int, const float *, int, int32_t *, int) =
                v ? svoo_profile_assign_gram : svoo_profile_assign_naive;
            double t = now_ms();
            svoo_status s1 = fn(xk, seq, (int)dim, mq, (int)cq, mk, (int)ck, v ? a : b, 0);
            svoo_status s2 = fn(xq, seq, (int)dim, mk, (int)ck, mq, (int)cq, v ? a : b, 0);
            t = now_ms() - t;
            if (s1 || s2) {
                rc = cli_fail("bench cocluster", s1 ? s1 : s2, NULL);
                goto out;
            }
            if (r > 0 && t < best[v]) best[v] = t;
        }
    for (long long i = 0; i < seq; i++) agree += a[i] == b[i];
    if (json) {
        printf("{\"bench\":\"cocluster\",\"seq\":%lld,\"dim\":%lld,\"cq\":%lld,\"ck\":%lld,"
               "\"naive_ms\":%.3f,\"gram_ms\":%.3f,\"speedup\":%.3f,\"query_label_agreement\":%.6f}\n",
               seq, dim, cq, ck, best[0], best[1], best[0] / best[1], (double)agree / (double)seq);
    } else {
        printf("co-clustering assignment (key step + query step), N=%lld D=%lld Cq=%lld Ck=%lld, %d threads\n",
               seq, dim, cq, ck, omp_get_max_threads());
        printf("  %-32s %10.1f ms\n", "profiles as defined", best[0]);
        printf("  %-32s %10.1f ms\n", "Gram re-association", best[1]);
        printf("  speedup %.2fx, query labels agreeing %.4f\n", best[0] / best[1], (double)agree / (double)seq);
    }
    rc = CLI_OK;
out:
    free(xq), free(xk), free(mq), free(mk), free(a);
    return rc;
}

int bench_density(int argc, char **argv);
int bench_cuda(int argc, char **argv);

static void bench_help(void) {
    printf("usage: svoo bench <what> [options]   (svoo bench <what> --help)\n\n"
           "  dense      dense CPU attention vs OpenBLAS sgemm\n"
           "  cocluster  SVOO co-clustering: definition vs Gram re-association\n"
           "  density    exact density of one head: selection vs full sort\n"
           "  cuda       one svoo_attention call on the GPU: plan, kernel, whole call, own dense\n");
}

int cmd_bench(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        bench_help();
        return argc < 2 ? CLI_USAGE : CLI_OK;
    }
    if (!strcmp(argv[1], "dense")) return bench_dense(argc - 1, argv + 1);
    if (!strcmp(argv[1], "cocluster")) return bench_cocluster(argc - 1, argv + 1);
    if (!strcmp(argv[1], "density")) return bench_density(argc - 1, argv + 1);
    if (!strcmp(argv[1], "cuda")) return bench_cuda(argc - 1, argv + 1);
    return cli_usage_error("bench", "unknown benchmark '%s'", argv[1]);
}

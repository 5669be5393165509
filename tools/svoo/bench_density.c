/* bench_density.c : svoo bench density. Exact density of one head (issue 4's
 * speed figure), histogram/radix selection vs a full sort of every row, both
 * measured in the same run on the same Q, K. */
#include "cli.h"
#include "profile/density.h"

#include <getopt.h>
#include <json-c/json.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int bench_density(int argc, char **argv);

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static void density_help(void) {
    printf("usage: svoo bench density [options]\n\n"
           "Exact density (tau = 0.95) of one head, B = 1, H = 1: logits by OpenBLAS sgemm,\n"
           "then per row the smallest key count reaching tau by histogram/radix selection.\n"
           "The same run times the naive version that sorts every row, for a ratio.\n\n"
           "  --seq N        sequence length (default 32760)\n"
           "  --dim D        head dim (default 128)\n"
           "  --rows-step S  sample rows 0, S, 2S, ... (default 16)\n"
           "  --threads T    threads (default 1)\n"
           "  --reps R       timed repetitions of the fast version, best kept (default 3)\n"
           "  --no-sort      skip the (slow) full-sort peer\n"
           "  --json         one JSON object on stdout\n");
}

int bench_density(int argc, char **argv) {
    static const struct option opts[] = {
        {"seq", 1, 0, 's'},     {"dim", 1, 0, 'd'},  {"rows-step", 1, 0, 'r'},
        {"threads", 1, 0, 'j'}, {"reps", 1, 0, 'R'}, {"no-sort", 0, 0, 'n'},
        {"json", 0, 0, 'J'},    {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    long long seq = 32760, dim = 128, step = 16, threads = 1, reps = 3;
    int json = 0, nosort = 0;
    const char *cmd = "bench density";
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
        switch (c) {
        case 's':
            if (cli_parse_int(optarg, 1, 1 << 22, &seq))
                return cli_usage_error(cmd, "--seq: '%s' is not in [1, 4194304]", optarg);
            break;
        case 'd':
            if (cli_parse_int(optarg, 1, 1024, &dim))
                return cli_usage_error(cmd, "--dim: '%s' is not in [1, 1024]", optarg);
            break;
        case 'r':
            if (cli_parse_int(optarg, 1, 1 << 22, &step))
                return cli_usage_error(cmd, "--rows-step: '%s' is not in [1, 4194304]", optarg);
            break;
        case 'j':
            if (cli_parse_int(optarg, 1, 1024, &threads))
                return cli_usage_error(cmd, "--threads: '%s' is not in [1, 1024]", optarg);
            break;
        case 'R':
            if (cli_parse_int(optarg, 1, 1000, &reps))
                return cli_usage_error(cmd, "--reps: '%s' is not in [1, 1000]", optarg);
            break;
        case 'n':
            nosort = 1;
            break;
        case 'J':
            json = 1;
            break;
        case 'h':
            density_help();
            return CLI_OK;
        default:
            return cli_usage_error(cmd, "bad option");
        }
    }
    if (optind < argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);

    size_t n = (size_t)seq * (size_t)dim;
    float *q = malloc(n * 4), *k = malloc(n * 4);
    if (!q || !k) {
        free(q);
        free(k);
        fprintf(stderr, "svoo %s: out of memory for %zu-element tensors\n", cmd, n);
        return CLI_FAIL;
    }
    /* video-like mix: random tokens, plus keys that echo nearby queries so
     * rows are neither flat nor one-hot */
    cli_fill_random(q, n, 21, 1.7f);
    cli_fill_random(k, n, 22, 1.7f);
    for (long long i = 0; i < seq; i += 3)
        for (long long d = 0; d < dim; d++)
            k[i * dim + d] += 0.8f * q[((i * 7) % seq) * dim + d];
    svoo_tensor tq = svoo_tensor_bhnd(q, SVOO_F32, 1, 1, seq, dim);
    svoo_tensor tk = svoo_tensor_bhnd(k, SVOO_F32, 1, 1, seq, dim);

    double d_fast = 0, d_sort = 0, best = 1e30, ms_sort = 0;
    svoo_status s = SVOO_OK;
    for (long long r = 0; r <= reps && !s; r++) {
        double t = now_ms();
        s = svoo_density_impl(&tq, &tk, 0.95, step, (int)threads, 0, &d_fast);
        t = now_ms() - t;
        if (r > 0 && t < best) best = t; /* first run warms up */
    }
    if (!s && !nosort) {
        double t = now_ms();
        s = svoo_density_impl(&tq, &tk, 0.95, step, (int)threads, 1, &d_sort);
        ms_sort = now_ms() - t;
    }
    free(q);
    free(k);
    if (s) return cli_fail(cmd, s, NULL);
    long long rows = (seq + step - 1) / step;
    if (json) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "seq", json_object_new_int64(seq));
        json_object_object_add(o, "dim", json_object_new_int64(dim));
        json_object_object_add(o, "rows_step", json_object_new_int64(step));
        json_object_object_add(o, "rows", json_object_new_int64(rows));
        json_object_object_add(o, "threads", json_object_new_int64(threads));
        json_object_object_add(o, "tau", json_object_new_double(0.95));
        json_object_object_add(o, "density", json_object_new_double(d_fast));
        json_object_object_add(o, "ms", json_object_new_double(best));
        if (!nosort) {
            json_object_object_add(o, "density_sort", json_object_new_double(d_sort));
            json_object_object_add(o, "ms_sort", json_object_new_double(ms_sort));
            json_object_object_add(o, "speedup_vs_sort", json_object_new_double(ms_sort / best));
        }
        printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
        json_object_put(o);
    } else {
        printf("exact density, one head: N = %lld, D = %lld, %lld rows (1/%lld), %lld thread(s), "
               "tau 0.95\n",
               seq, dim, rows, step, threads);
        printf("  selection (histogram + radix):  %10.1f ms   density %.6f\n", best, d_fast);
        if (!nosort) {
            printf("  full sort of every row:         %10.1f ms   density %.6f\n", ms_sort, d_sort);
            printf("  speedup vs full sort:           %10.2fx\n", ms_sort / best);
        }
    }
    return CLI_OK;
}

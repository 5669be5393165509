/* bench_cuda.c : svoo bench cuda. One svoo_attention call on the GPU at a
 * preset's shape: planning, attention and the whole call (device events),
 * repeated; our dense path (the sparse kernel with one block) on the same
 * tensors, and the sparse output's rel-L2 against it. cuDNN SDPA is timed by
 * the peer script in the same command (docs/CUDA.md). */
#include "cli.h"

#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int bench_cuda(int argc, char **argv);

static void help(void) {
    printf("usage: svoo bench cuda [options]\n\n"
           "Times svoo_attention on CUDA device 0 at a preset's shape (B = 1, bf16): planning\n"
           "(clustering + selection + permutation indices), the attention kernel and the whole\n"
           "call, median of --reps calls each (the whole call also queued behind a dense call,\n"
           "the host's launches ahead of the GPU, and the host's own enqueue time); the dense\n"
           "path on the same tensors; the sparse output's rel-L2 vs dense and the GPU plan's\n"
           "recall (64 rows per head, on the host).\n"
           "Q/K/V: svoo_synth (calibrated to the preset's profile) or, with --random or without\n"
           "src/synth, clustered random data.\n\n"
           "  --preset NAME   synthetic preset (default wan2.1-1.3b-720p)\n"
           "  --profile CSV   calibrate the heads to this SVOO profile (and give SVOO its floors);\n"
           "                  default: the generator's built-in density spread\n"
           "  --top-p P       top-p of SVOO/SVG2 (default 0.9)\n"
           "  --floor MIN,MAX SVOO's clip of the profiled floor (default 0.15,0.20; needs --profile);\n"
           "                  with a low --top-p it sets the selected density (e.g. 0.05,0.05)\n"
           "  --iters I       clustering iterations of a re-planning call (SVOO iters, SVG2\n"
           "                  warm-started k-means iters; default 2)\n"
           "  --clusters Q,K  query and key cluster counts (default auto, JSON 0: the reference's\n"
           "                  tokens per cluster, 256,1024 for SVOO at N = 75,600)\n"
           "  --method M      svoo | svg2 | svg | dense (default svoo)\n"
           "  --ear           error-aware routing: each dropped key cluster enters the softmax\n"
           "                  as one pseudo-key (config.ear; its kernels are part of attend)\n"
           "  --kv-gather     config.cuda_kv_order = 0: no copy of K and V in key-cluster order\n"
           "                  on Hopper, the kernel gathers their rows (A/B of the copy)\n"
           "  --step S        step of the call (default 10: first sparse, re-planning step)\n"
           "  --layer L       layer of the call (default 5)\n"
           "  --heads H --dim D  the preset's shape with other heads / head dim (64 or 128)\n"
           "  --seq N         N tokens of random data instead of a preset's data (not with --preset:\n"
           "                  12 heads x D 128, 50 steps x 30 layers unless --heads / --dim)\n"
           "  --reps R        timed calls (default 10)\n"
           "  --schedule      time every step 0 .. steps-1 of --layer in order instead of one call:\n"
           "                  the config's dense warm-up, re-planning and reuse steps, each pass\n"
           "                  as a new video; per step the median of --reps passes (a pass is\n"
           "                  `steps` calls); their sum against the own dense path's. Every call\n"
           "                  is on the same tensors: --step only picks those\n"
           "  --random        random clustered data instead of svoo_synth\n"
           "  --json          one JSON object on stdout\n");
}

#ifndef SVOO_WITH_CUDA
int bench_cuda(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            help();
            return CLI_OK;
        }
    fprintf(stderr, "svoo bench cuda: this build has no CUDA backend\n");
    return CLI_FAIL;
}
#else
#include <cuda_runtime_api.h>

#include "core/internal.h"

/* the synthetic workload lives in src/synth; tolerate a build without it */
#pragma weak svoo_synth_config_init
#pragma weak svoo_synth_preset
#pragma weak svoo_synth_create
#pragma weak svoo_synth_generate
#pragma weak svoo_synth_profile
#pragma weak svoo_synth_free

enum { RECALL_ROWS = 64 }; /* as svoo run's default --recall-rows */

static uint64_t rng(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static float unif(uint64_t *s) { return (float)((rng(s) >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f; }
static void random_qkv(uint16_t *q, uint16_t *k, uint16_t *v, int64_t H, int64_t N, int D) {
    enum { NC = 64 };
    float *cen = malloc(sizeof(float) * NC * D);
    for (int64_t h = 0; h < H; h++) {
        uint64_t s = 99 + (uint64_t)h;
        for (int i = 0; i < NC * D; i++) cen[i] = 2.0f * unif(&s);
        for (int64_t n = 0; n < N; n++) {
            int c = (int)(rng(&s) % NC);
            for (int j = 0; j < D; j++) {
                size_t o = ((size_t)h * N + n) * D + j;
                q[o] = svoo_f32_to_bf16(cen[c * D + j] + unif(&s));
                k[o] = svoo_f32_to_bf16(cen[c * D + j] + unif(&s));
                v[o] = svoo_f32_to_bf16(unif(&s));
            }
        }
    }
    free(cen);
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* median device ms of `reps` calls, each synced. With a lead context, each
 * call is queued behind one call of it on lt (the GPU busy, the host's
 * launches ahead of it, as inside a model's step); host_med (optional): the
 * median host time of svoo_attention itself (no stats, so nothing in it
 * syncs) */
static svoo_status time_calls(svoo_ctx *ctx, int step, int layer, svoo_tensor *t, int reps, svoo_ctx *lead,
                              svoo_tensor *lt, double *med, double *host_med, cudaStream_t st) {
    double *ms = calloc((size_t)reps * 2, sizeof *ms); /* device ms, then host ms */
    cudaEvent_t a = NULL, b = NULL;
    cudaError_t e = cudaSuccess;
    svoo_status s = SVOO_OK;
    if (!ms) return SVOO_ERR_OUT_OF_MEMORY;
    double *hms = ms + reps;
    if ((e = cudaEventCreate(&a)) || (e = cudaEventCreate(&b))) s = SVOO_ERR_CUDA;
    for (int r = 0; r < reps && !s; r++) {
        float f = 0;
        if (lead) s = svoo_attention(lead, step, layer, &lt[0], &lt[1], &lt[2], &lt[3], NULL);
        if (!s && (e = cudaEventRecord(a, st))) s = SVOO_ERR_CUDA;
        const double h0 = svoo_now_ms();
        if (!s) s = svoo_attention(ctx, step, layer, &t[0], &t[1], &t[2], &t[3], NULL);
        hms[r] = svoo_now_ms() - h0;
        if (!s && ((e = cudaEventRecord(b, st)) || (e = cudaEventSynchronize(b)) ||
                   (e = cudaEventElapsedTime(&f, a, b))))
            s = SVOO_ERR_CUDA;
        ms[r] = f;
    }
    if (e) fprintf(stderr, "svoo bench cuda: timing events: %s: %s\n", cudaGetErrorName(e), cudaGetErrorString(e));
    qsort(ms, (size_t)reps, sizeof *ms, cmp_d);
    qsort(hms, (size_t)reps, sizeof *ms, cmp_d);
    *med = ms[reps / 2];
    if (host_med) *host_med = hms[reps / 2];
    free(ms);
    if (a) cudaEventDestroy(a);
    if (b) cudaEventDestroy(b);
    return s;
}

/* our dense path (dctx) on td: one untimed call, then the median of reps timed ones */
static svoo_status time_dense(svoo_ctx *dctx, int step, int layer, svoo_tensor *td, int reps, double *med,
                              cudaStream_t st) {
    const svoo_status s = svoo_attention(dctx, step, layer, &td[0], &td[1], &td[2], &td[3], NULL);
    return s ? s : time_calls(dctx, step, layer, td, reps, NULL, NULL, med, NULL, st);
}

/* --schedule: the calls of steps 0 .. steps-1 of one layer in order, as a
 * generation makes them (ctx's own warm-up / re-plan / reuse decisions);
 * per step the median of `reps` passes (device events between the calls of a
 * pass, one sync per pass), summed by the kind of call (stats of a first,
 * untimed pass), against steps x the own dense path's median call; each
 * pass starts as a new video (svoo_ctx_reset: SVG2's first re-plan is cold).
 * json_id: the JSON object's identifying fields, NULL for text */
static int run_schedule(svoo_ctx *ctx, svoo_ctx *dctx, int layer, int steps, int reps, svoo_tensor *t,
                        svoo_tensor *td, cudaStream_t st, const char *json_id) {
    enum { DENSE, REPLAN, REUSE, KINDS };
    static const char *kname[KINDS] = {"dense", "replan", "reuse"};
    int *kind = calloc((size_t)steps, sizeof *kind);
    double *ms = calloc((size_t)steps * reps, sizeof *ms), *one = calloc((size_t)reps, sizeof *one);
    cudaEvent_t *ev = calloc((size_t)steps + 1, sizeof *ev);
    int n_ev = 0, rc = CLI_FAIL;
    cudaError_t e = cudaSuccess;
    double dense_ms = 0, sum[KINDS] = {0}, dens[KINDS] = {0};
    int cnt[KINDS] = {0};
    svoo_status s = SVOO_OK;
    if (!kind || !ms || !one || !ev) {
        fprintf(stderr, "svoo bench cuda: out of host memory\n");
        goto done;
    }
    for (; n_ev <= steps; n_ev++)
        if ((e = cudaEventCreate(&ev[n_ev]))) goto cuda_err;
    svoo_stats stats;
    svoo_stats_init(&stats);
    svoo_ctx_reset(ctx);
    for (int i = 0; i < steps && !s; i++) {
        s = svoo_attention(ctx, i, layer, &t[0], &t[1], &t[2], &t[3], &stats);
        kind[i] = stats.dense ? DENSE : stats.replanned ? REPLAN : REUSE;
        dens[kind[i]] += stats.density;
    }
    for (int r = 0; r < reps && !s; r++) {
        svoo_ctx_reset(ctx);
        if ((e = cudaEventRecord(ev[0], st))) goto cuda_err;
        for (int i = 0; i < steps && !s; i++) {
            s = svoo_attention(ctx, i, layer, &t[0], &t[1], &t[2], &t[3], NULL);
            if (!s && (e = cudaEventRecord(ev[i + 1], st))) goto cuda_err;
        }
        if (s) break;
        if ((e = cudaEventSynchronize(ev[steps]))) goto cuda_err;
        for (int i = 0; i < steps; i++) {
            float f = 0;
            if ((e = cudaEventElapsedTime(&f, ev[i], ev[i + 1]))) goto cuda_err;
            ms[(size_t)i * reps + r] = f;
        }
    }
    if (s) {
        rc = cli_fail("bench cuda", s, ctx);
        goto done;
    }
    if ((s = time_dense(dctx, 0, layer, td, reps, &dense_ms, st))) {
        rc = cli_fail("bench cuda", s, dctx);
        goto done;
    }
    for (int i = 0; i < steps; i++) {
        memcpy(one, ms + (size_t)i * reps, (size_t)reps * sizeof *one);
        qsort(one, (size_t)reps, sizeof *one, cmp_d);
        sum[kind[i]] += one[reps / 2];
        cnt[kind[i]]++;
    }
    const double total = sum[DENSE] + sum[REPLAN] + sum[REUSE];
    if (json_id) {
        printf("{%s,\"schedule_steps\":%d,\"reps\":%d", json_id, steps, reps);
        for (int k = 0; k < KINDS; k++)
            printf(",\"%s_calls\":%d,\"ms_%s_calls\":%.3f,\"density_%s_calls\":%.4f", kname[k], cnt[k], kname[k],
                   sum[k], kname[k], cnt[k] ? dens[k] / cnt[k] : 0.0);
        printf(",\"ms_total\":%.3f,\"ms_own_dense_call\":%.3f,\"speedup_vs_own_dense\":%.3f}\n", total, dense_ms,
               steps * dense_ms / total);
    } else {
        printf("svoo bench cuda --schedule: layer %d, steps 0-%d in order, median of %d passes per step\n", layer,
               steps - 1, reps);
        for (int k = 0; k < KINDS; k++)
            printf("  %-7s %3d calls  %9.3f ms  (%.3f ms a call, density %.4f)\n", kname[k], cnt[k], sum[k],
                   cnt[k] ? sum[k] / cnt[k] : 0.0, cnt[k] ? dens[k] / cnt[k] : 0.0);
        printf("  total   %3d calls  %9.3f ms\n", steps, total);
        printf("  own dense path: %d x %.3f ms = %.3f ms  -> %.2fx\n", steps, dense_ms, steps * dense_ms,
               steps * dense_ms / total);
    }
    rc = CLI_OK;
    goto done;
cuda_err:
    fprintf(stderr, "svoo bench cuda: timing events: %s: %s\n", cudaGetErrorName(e), cudaGetErrorString(e));
done:
    for (int i = 0; i < n_ev; i++) cudaEventDestroy(ev[i]);
    free(ev);
    free(one);
    free(ms);
    free(kind);
    return rc;
}

int bench_cuda(int argc, char **argv) {
    static const struct option opts[] = {{"preset", 1, 0, 'p'}, {"method", 1, 0, 'm'}, {"step", 1, 0, 's'},
                                         {"layer", 1, 0, 'l'},  {"heads", 1, 0, 'H'},  {"seq", 1, 0, 'N'},
                                         {"dim", 1, 0, 'd'},    {"reps", 1, 0, 'r'},   {"random", 0, 0, 'R'},
                                         {"json", 0, 0, 'J'},   {"help", 0, 0, 'h'},   {"profile", 1, 0, 'P'},
                                         {"top-p", 1, 0, 't'},  {"iters", 1, 0, 'i'},
                                         {"clusters", 1, 0, 'C'}, {"ear", 0, 0, 'E'},
                                         {"kv-gather", 0, 0, 'G'}, {"schedule", 0, 0, 'S'},
                                         {"floor", 1, 0, 'F'},
                                         {0, 0, 0, 0}};
    const char *preset = "wan2.1-1.3b-720p";
    svoo_method method = SVOO_METHOD_SVOO;
    long long step = 10, layer = 5, heads = 0, seq = 0, dim = 0, reps = 10;
    int random_data = 0, json = 0, ear = 0, kv_gather = 0, schedule = 0, preset_set = 0, c;
    const char *profile_path = NULL;
    double top_p = 0, floor_min = -1, floor_max = -1;
    long long iters = 0, cq = 0, ck = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            preset = optarg, preset_set = 1;
            break;
        case 'm':
            if (svoo_method_parse(optarg, &method)) return cli_usage_error("bench cuda", "bad --method %s", optarg);
            break;
        case 's': if (cli_parse_int(optarg, 0, 100000, &step)) return cli_usage_error("bench cuda", "bad --step"); break;
        case 'l': if (cli_parse_int(optarg, 0, 100000, &layer)) return cli_usage_error("bench cuda", "bad --layer"); break;
        case 'H': if (cli_parse_int(optarg, 1, 512, &heads)) return cli_usage_error("bench cuda", "bad --heads"); break;
        case 'N': if (cli_parse_int(optarg, 16, 1 << 24, &seq)) return cli_usage_error("bench cuda", "bad --seq"); break;
        case 'd':
            if (cli_parse_int(optarg, 64, 128, &dim) || (dim != 64 && dim != 128))
                return cli_usage_error("bench cuda", "bad --dim: want 64 or 128");
            break;
        case 'r': if (cli_parse_int(optarg, 1, 1000, &reps)) return cli_usage_error("bench cuda", "bad --reps"); break;
        case 'R': random_data = 1; break;
        case 'P': profile_path = optarg; break;
        case 't': if (cli_parse_double(optarg, 1e-9, 1.0, &top_p)) return cli_usage_error("bench cuda", "bad --top-p"); break;
        case 'i': if (cli_parse_int(optarg, 1, 100, &iters)) return cli_usage_error("bench cuda", "bad --iters"); break;
        case 'C': {
            char *comma = strchr(optarg, ',');
            if (!comma) return cli_usage_error("bench cuda", "--clusters wants Q,K (e.g. 256,1024)");
            *comma = 0;
            if (cli_parse_int(optarg, 1, 1 << 20, &cq) || cli_parse_int(comma + 1, 1, 1 << 20, &ck))
                return cli_usage_error("bench cuda", "bad --clusters");
            break;
        }
        case 'F': {
            char *comma = strchr(optarg, ',');
            if (!comma) return cli_usage_error("bench cuda", "--floor wants MIN,MAX (e.g. 0.15,0.20)");
            *comma = 0;
            if (cli_parse_double(optarg, 0, 1, &floor_min) || cli_parse_double(comma + 1, floor_min, 1, &floor_max))
                return cli_usage_error("bench cuda", "bad --floor: want 0 <= MIN <= MAX <= 1");
            break;
        }
        case 'J': json = 1; break;
        case 'E': ear = 1; break;
        case 'G': kv_gather = 1; break;
        case 'S': schedule = 1; break;
        case 'h': help(); return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    /* --seq makes random data without a preset: a preset asked for would be ignored */
    if (seq && preset_set)
        return cli_usage_error("bench cuda",
                               "--seq sets the shape without a preset: not with --preset");
    int have_synth = svoo_synth_create && svoo_synth_generate && svoo_synth_preset && !random_data && !seq;
    svoo_synth_config sc;
    memset(&sc, 0, sizeof sc);
    int H = 12, D = 128, layers = 30, steps = 50, frames = 21, height = 45, width = 80, text = 0;
    if (svoo_synth_config_init && svoo_synth_preset && !seq) {
        int rc = cli_synth_preset("bench cuda", preset, &sc);
        if (rc) return rc;
        H = sc.heads, D = sc.head_dim, layers = sc.layers, steps = sc.steps;
        frames = sc.frames, height = sc.height, width = sc.width, text = sc.text_tokens;
    }
    /* the synthetic data take the shape asked for (it wrote the preset's heads x head_dim
     * rows into buffers of this shape) */
    if (heads) H = sc.heads = (int)heads;
    if (dim) D = sc.head_dim = (int)dim;
    int64_t N = seq ? seq : (int64_t)frames * height * width + text;
    if (step >= steps || layer >= layers)
        return cli_usage_error("bench cuda", "--step/--layer outside %d steps x %d layers", steps, layers);
    if (floor_min >= 0 && (method != SVOO_METHOD_SVOO || !profile_path))
        return cli_usage_error("bench cuda", "--floor clips SVOO's profiled floors: it needs --method svoo and --profile");
    if (profile_path && !have_synth)
        return cli_usage_error("bench cuda", "--profile calibrates svoo_synth data (not with --random/--seq)");
    /* before the synthetic data, which take seconds to make */
    if (cli_cuda_device("bench cuda")) return CLI_FAIL;
    const size_t cnt = (size_t)H * N * D, bytes = cnt * 2;
    uint16_t *hq = malloc(bytes), *hk = malloc(bytes), *hv = malloc(bytes), *ho = malloc(bytes),
             *hd = malloc(bytes);
    svoo_profile *prof = NULL, *source_prof = NULL;
    svoo_synth *syn = NULL;
    const char *src = "random";
    void *d = NULL;
    cudaStream_t st = NULL;
    svoo_ctx *ctx = NULL, *dctx = NULL;
    int rc = CLI_FAIL;
    svoo_status s;
    if (!hq || !hk || !hv || !ho || !hd) {
        fprintf(stderr, "svoo bench cuda: out of host memory (5 x %zu bytes)\n", bytes);
        goto out;
    }
    if (have_synth) {
        s = profile_path ? svoo_profile_load(profile_path, &source_prof) : SVOO_OK;
        sc.profile = source_prof;
        if (!s) s = svoo_synth_create(&sc, &syn);
        if (!s) s = svoo_synth_generate(syn, (int)step, (int)layer, SVOO_BF16, hq, hk, hv);
        if (!s && svoo_synth_profile) s = svoo_synth_profile(syn, &prof);
        if (s) {
            rc = cli_fail("bench cuda", s, NULL);
            goto out;
        }
        src = profile_path ? "svoo_synth (profile)" : "svoo_synth (default spread)";
    } else {
        random_qkv(hq, hk, hv, H, N, D);
    }
    cudaError_t ce = cudaMalloc(&d, bytes * 5);
    if (ce) {
        char what[96];
        snprintf(what, sizeof what, "cudaMalloc of %zu bytes (q, k, v and two outputs)", bytes * 5);
        cli_cuda_fail("bench cuda", ce, what);
        d = NULL;
        goto out;
    }
    char *dq = d, *dk = dq + bytes, *dv = dk + bytes, *dout = dv + bytes, *ddense = dout + bytes;
    if ((ce = cudaMemcpy(dq, hq, bytes, cudaMemcpyHostToDevice)) ||
        (ce = cudaMemcpy(dk, hk, bytes, cudaMemcpyHostToDevice)) ||
        (ce = cudaMemcpy(dv, hv, bytes, cudaMemcpyHostToDevice))) {
        cli_cuda_fail("bench cuda", ce, "copy of q, k, v to the device");
        goto out;
    }
    if ((ce = cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking))) {
        cli_cuda_fail("bench cuda", ce, "cudaStreamCreateWithFlags");
        st = NULL;
        goto out;
    }
    svoo_tensor t[4], td[4];
    char *ptr[4] = {dq, dk, dv, dout};
    for (int i = 0; i < 4; i++) {
        t[i] = svoo_tensor_bhnd(ptr[i], SVOO_BF16, 1, H, N, D);
        t[i].device = SVOO_DEVICE_CUDA;
        td[i] = t[i];
    }
    td[3].data = ddense;

    svoo_config cfg;
    for (int pass = 0; pass < 2; pass++) {
        svoo_config_init(&cfg, pass ? SVOO_METHOD_DENSE : method);
        cfg.device = SVOO_DEVICE_CUDA;
        cfg.cuda_stream = st;
        cfg.head_dim = D;
        cfg.num_heads = H;
        cfg.num_layers = layers;
        cfg.num_steps = steps;
        cfg.frames = frames, cfg.height = height, cfg.width = width, cfg.text_tokens = text;
        cfg.max_tokens = N;
        cfg.profile = prof;
        if (top_p > 0 && !pass) cfg.top_p = top_p;
        if (floor_min >= 0 && !pass) cfg.floor_min = floor_min, cfg.floor_max = floor_max;
        if (iters && !pass) cfg.iters = cfg.kmeans_iters = (int)iters;
        if (cq && !pass) cfg.q_clusters = (int)cq, cfg.k_clusters = (int)ck;
        cfg.ear = ear && !pass;
        cfg.cuda_kv_order = !kv_gather;
        if (!pass) { /* the values in effect, for the report */
            cq = cfg.q_clusters, ck = cfg.k_clusters, top_p = cfg.top_p;
            floor_min = cfg.floor_min, floor_max = cfg.floor_max;
            iters = method == SVOO_METHOD_SVG2 ? cfg.kmeans_iters : cfg.iters;
        }
        if ((s = svoo_ctx_create(&cfg, pass ? &dctx : &ctx))) {
            rc = cli_fail("bench cuda", s, NULL);
            goto out;
        }
    }
    /* the JSON object's identifying fields (both reports) */
    struct cudaDeviceProp prop;
    if ((ce = cudaGetDeviceProperties(&prop, 0))) {
        cli_cuda_fail("bench cuda", ce, "cudaGetDeviceProperties");
        goto out;
    }
    char id[768];
    snprintf(id, sizeof id,
             "\"device\":\"%s\",\"data\":\"%s\",\"method\":\"%s\",\"heads\":%d,\"seq\":%lld,\"dim\":%d,"
             "\"step\":%lld,\"layer\":%lld,\"q_clusters\":%lld,\"k_clusters\":%lld,\"iters\":%lld,"
             "\"top_p\":%.3f,\"floor\":[%.3f,%.3f],\"ear\":%d",
             prop.name, src, svoo_method_name(method), H, (long long)N, D, step, layer, cq, ck, iters, top_p,
             floor_min, floor_max, ear);
    if (schedule) {
        rc = run_schedule(ctx, dctx, (int)layer, steps, (int)reps, t, td, st, json ? id : NULL);
        goto out;
    }
    /* warm-up + per-stage times (stats: events, one sync per call) */
    svoo_stats stats;
    svoo_stats_init(&stats);
    double plan_ms[1000], att_ms[1000], perm_ms[1000], call_ms = 0, dense_ms = 0, queued_ms = 0, host_ms = 0;
    for (int r = 0; r <= reps; r++) {
        if ((s = svoo_attention(ctx, (int)step, (int)layer, &t[0], &t[1], &t[2], &t[3], &stats))) {
            rc = cli_fail("bench cuda", s, ctx);
            goto out;
        }
        if (r > 0)
            plan_ms[r - 1] = stats.ms_plan, att_ms[r - 1] = stats.ms_attend, perm_ms[r - 1] = stats.ms_permute;
    }
    qsort(plan_ms, (size_t)reps, sizeof(double), cmp_d);
    qsort(att_ms, (size_t)reps, sizeof(double), cmp_d);
    qsort(perm_ms, (size_t)reps, sizeof(double), cmp_d);
    /* whole calls without stats (nothing syncs inside) */
    if ((s = time_calls(ctx, (int)step, (int)layer, t, (int)reps, NULL, NULL, &call_ms, &host_ms, st))) {
        rc = cli_fail("bench cuda", s, ctx);
        goto out;
    }
    if ((s = time_dense(dctx, (int)step, (int)layer, td, (int)reps, &dense_ms, st))) {
        rc = cli_fail("bench cuda", s, dctx);
        goto out;
    }
    /* the same calls behind the dense path's (after its timing, so that the
     * figures above keep their place in the process) */
    if ((s = time_calls(ctx, (int)step, (int)layer, t, (int)reps, dctx, td, &queued_ms, NULL, st))) {
        /* (an error before this one would have ended the bench: a message is this one) */
        rc = cli_fail("bench cuda", s, svoo_last_error(dctx)[0] ? dctx : ctx);
        goto out;
    }
    if ((ce = cudaStreamSynchronize(st))) {
        cli_cuda_fail("bench cuda", ce, "the timed calls");
        goto out;
    }
    /* the plan of ctx's last call is still in its workspace */
    const double recall =
        method == SVOO_METHOD_DENSE ? 1.0 : cli_gpu_plan_recall(ctx, (int)layer, hq, hk, H, N, D, RECALL_ROWS);
    if ((ce = cudaMemcpy(ho, dout, bytes, cudaMemcpyDeviceToHost)) ||
        (ce = cudaMemcpy(hd, ddense, bytes, cudaMemcpyDeviceToHost))) {
        cli_cuda_fail("bench cuda", ce, "copy of the outputs to the host");
        goto out;
    }
    double num = 0, den = 0;
    for (size_t i = 0; i < cnt; i++) {
        double x = svoo_bf16_to_f32(ho[i]), y = svoo_bf16_to_f32(hd[i]);
        num += (x - y) * (x - y);
        den += y * y;
    }
    const double rel = sqrt(num / (den > 0 ? den : 1));
    const double flops = 4.0 * (double)N * N * D * H;
    const double pm = plan_ms[reps / 2], am = att_ms[reps / 2], km = perm_ms[reps / 2];
    if (json) {
        /* rel-L2 and recall are NaN for non-finite outputs: JSON null, not the invalid nan */
        char rb[32], cb[32];
        snprintf(rb, sizeof rb, "%.4f", rel);
        snprintf(cb, sizeof cb, "%.4f", recall);
        printf("{%s,\"density\":%.4f,\"ms_plan\":%.3f,\"ms_permute\":%.3f,\"ms_attend\":%.3f,"
               "\"ms_call\":%.3f,\"ms_call_queued\":%.3f,\"ms_host_enqueue\":%.3f,\"ms_dense\":%.3f,"
               "\"speedup_vs_own_dense\":%.3f,\"attend_eff_tflops\":%.1f,"
               "\"dense_tflops\":%.1f,\"rel_l2_vs_dense\":%s,\"recall\":%s}\n",
               id, stats.density, pm, km, am, call_ms, queued_ms, host_ms, dense_ms, dense_ms / call_ms,
               flops * stats.density / am / 1e9, flops / dense_ms / 1e9, isfinite(rel) ? rb : "null",
               isfinite(recall) ? cb : "null");
    } else {
        printf("svoo bench cuda: %s, %s data, %s, %d heads x %lld tokens x %d, step %lld layer %lld\n", prop.name,
               src, svoo_method_name(method), H, (long long)N, D, step, layer);
        if (method == SVOO_METHOD_SVOO || method == SVOO_METHOD_SVG2)
            cq ? printf("  clusters %lld / %lld, %lld iterations, top-p %.3f, floor [%.3f, %.3f]%s\n", cq, ck,
                        iters, top_p, floor_min, floor_max, ear ? ", EAR" : "")
               : printf("  clusters auto, %lld iterations, top-p %.3f, floor [%.3f, %.3f]%s\n", iters, top_p,
                        floor_min, floor_max, ear ? ", EAR" : "");
        printf("  density          %.4f\n", stats.density);
        printf("  plan             %8.3f ms  (clustering + selection + permutation indices)\n", pm);
        printf("  K/V copy         %8.3f ms  (key-cluster order for TMA key tiles; 0: gathered, or with --ear made inside attend)\n", km);
        printf("  attend           %8.3f ms  (%.1f effective TFLOP/s)\n", am, flops * stats.density / am / 1e9);
        printf("  whole call       %8.3f ms  (median of %lld, no stats; the host enqueues it in %.3f ms)\n",
               call_ms, reps, host_ms);
        printf("  queued           %8.3f ms  (the same call behind a dense one: launches ahead of the GPU)\n",
               queued_ms);
        printf("  own dense        %8.3f ms  (%.1f TFLOP/s)  -> sparse call %.2fx faster\n", dense_ms,
               flops / dense_ms / 1e9, dense_ms / call_ms);
        printf("  rel-L2 vs dense  %.4f\n", rel);
        printf("  recall           %.4f  (dense softmax mass of the computed keys, %d rows per head)\n", recall,
               RECALL_ROWS);
    }
    rc = CLI_OK;
out:
    svoo_ctx_free(ctx);
    svoo_ctx_free(dctx);
    if (syn && svoo_synth_free) svoo_synth_free(syn);
    svoo_profile_free(prof);
    svoo_profile_free(source_prof);
    if (st) cudaStreamDestroy(st);
    cudaFree(d);
    free(hq);
    free(hk);
    free(hv);
    free(ho);
    free(hd);
    return rc;
}
#endif

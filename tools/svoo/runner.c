/* runner.c : the workload driver behind `svoo run` and `svoo demo`. */
#include "runner.h"
#include "core/internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <dirent.h>
#include <unistd.h>

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

void run_method_init(run_method *m, svoo_method method, const char *label) {
    memset(m, 0, sizeof *m);
    m->method = method;
    m->top_p = 0;
    m->floor_ratio = -1;
    snprintf(m->label, sizeof m->label, "%s", label ? label : svoo_method_name(method));
}

typedef struct {
    svoo_synth *synth;
    svoo_profile *profile; /* what SVOO reads (preset-shaped for synth) */
    float *buf[4];         /* q, k, v, dense out: f32 [1, H, N, D] (q, k, v: synth, and f32
                            * copies of 16-bit dumps for the CPU dense reference) */
    void *obuf;            /* method output */
    svoo_tensorfile *file; /* dumps: the current call's file */
    int *step_list;        /* the steps present (synth: 0 .. steps-1), ascending */
    int nsteps;
} source;

static void source_free(source *s) {
    svoo_synth_free(s->synth);
    svoo_profile_free(s->profile);
    for (int i = 0; i < 4; i++) free(s->buf[i]);
    free(s->obuf);
    svoo_tensorfile_free(s->file);
    free(s->step_list);
}

static int dumps_path(char *out, size_t cap, const char *dir, int step, int layer) {
    return snprintf(out, cap, "%s/step%03d_layer%02d.safetensors", dir, step, layer) >= (int)cap;
}

/* dumps: the steps present in `dir` (ascending, into s) and the grid, steps = max step + 1
 * (what the warm-up and reuse schedule see) by layers = max layer + 1; every step present
 * must hold every layer. Names other than stepSSS_layerLL.safetensors are ignored. */
static int dumps_scan(const char *cmd, run_workload *w, source *s) {
    DIR *d = opendir(w->dumps);
    if (!d) {
        fprintf(stderr, "svoo %s: error: cannot open directory %s\n", cmd, w->dumps);
        return CLI_FAIL;
    }
    enum { MAX_STEP = 100000 };
    unsigned char *seen = calloc(MAX_STEP, 1);
    int max_step = -1, max_layer = -1, rc = 0;
    struct dirent *e;
    while (seen && (e = readdir(d))) {
        int st = -1, ly = -1, end = 0;
        char back[4096];
        if (sscanf(e->d_name, "step%d_layer%d.safetensors%n", &st, &ly, &end) != 2 || e->d_name[end] ||
            st < 0 || ly < 0 || st >= MAX_STEP || ly >= RUNNER_MAX_LAYERS)
            continue;
        /* only the canonical spelling (zero-padded) is the file dumps_path reads */
        if (dumps_path(back, sizeof back, ".", st, ly) || strcmp(back + 2, e->d_name)) continue;
        seen[st] = 1;
        if (st > max_step) max_step = st;
        if (ly > max_layer) max_layer = ly;
    }
    closedir(d);
    if (!seen) return cli_fail(cmd, SVOO_ERR_OUT_OF_MEMORY, NULL);
    if (max_step < 0) {
        fprintf(stderr, "svoo %s: error: %s holds no stepSSS_layerLL.safetensors (see docs/PROFILES.md)\n",
                cmd, w->dumps);
        rc = CLI_FAIL;
    }
    int n = 0;
    for (int i = 0; i <= max_step; i++) n += seen[i];
    if (!rc && !(s->step_list = malloc(sizeof(int) * (size_t)n)))
        rc = cli_fail(cmd, SVOO_ERR_OUT_OF_MEMORY, NULL);
    char path[4096];
    for (int i = 0; !rc && i <= max_step; i++) {
        if (!seen[i]) continue;
        s->step_list[s->nsteps++] = i;
        for (int l = 0; !rc && l <= max_layer; l++)
            if (dumps_path(path, sizeof path, w->dumps, i, l) || access(path, R_OK) != 0) {
                fprintf(stderr, "svoo %s: error: %s missing: step %d has files, so it needs layers 0-%d\n", cmd,
                        path, i, max_layer);
                rc = CLI_FAIL;
            }
    }
    free(seen);
    w->steps = max_step + 1;
    w->layers = max_layer + 1;
    return rc;
}

/* resolves shape and grid of the workload */
static int source_open(const char *cmd, run_workload *w, source *s) {
    svoo_status st;
    svoo_profile *drive = NULL;
    svoo_synth_config sc;
    if (w->preset) { /* an unknown name before the profile is read */
        const int rc = cli_synth_preset(cmd, w->preset, &sc);
        if (rc) return rc;
    }
    if (w->profile_path && (st = svoo_profile_load(w->profile_path, &drive)))
        return cli_fail(cmd, st, NULL);
    if (w->preset) {
        sc.seed = w->seed;
        sc.profile = drive;
        st = svoo_synth_create(&sc, &s->synth);
        if (!st) st = svoo_synth_profile(s->synth, &s->profile);
        svoo_profile_free(drive);
        if (st) return cli_fail(cmd, st, NULL);
        w->steps = sc.steps;
        w->layers = sc.layers;
        w->heads = sc.heads;
        w->dim = sc.head_dim;
        w->frames = sc.frames, w->height = sc.height, w->width = sc.width;
        w->text_tokens = sc.text_tokens, w->text_first = sc.text_first;
        w->n = (int64_t)sc.frames * sc.height * sc.width + sc.text_tokens;
        size_t n = (size_t)w->heads * (size_t)w->n * (size_t)w->dim;
        for (int i = 0; i < 4; i++)
            if (!(s->buf[i] = malloc(n * 4))) return cli_fail(cmd, SVOO_ERR_OUT_OF_MEMORY, NULL);
        if (!(s->step_list = malloc(sizeof(int) * (size_t)w->steps)))
            return cli_fail(cmd, SVOO_ERR_OUT_OF_MEMORY, NULL);
        for (s->nsteps = 0; s->nsteps < w->steps; s->nsteps++) s->step_list[s->nsteps] = s->nsteps;
        return 0;
    }
    s->profile = drive;
    /* dumps: grid from the file names present */
    int rc = dumps_scan(cmd, w, s);
    if (rc) return rc;
    char path[4096];
    svoo_tensorfile *f;
    dumps_path(path, sizeof path, w->dumps, s->step_list[0], 0);
    if ((st = svoo_tensorfile_open(path, &f))) return cli_fail(cmd, st, NULL);
    svoo_array a;
    svoo_tensor t;
    if ((st = svoo_tensorfile_find(f, "q", &a)) || (st = svoo_array_view(&a, 0, &t))) {
        svoo_tensorfile_free(f);
        return cli_fail(cmd, st, NULL);
    }
    if (t.shape[0] != 1) {
        svoo_tensorfile_free(f);
        fprintf(stderr, "svoo %s: error: %s: batch %lld; dumps for `run` hold batch 1\n", cmd, path,
                (long long)t.shape[0]);
        return CLI_FAIL;
    }
    w->heads = (int)t.shape[1];
    w->n = t.shape[2];
    w->dim = (int)t.shape[3];
    w->dtype = t.dtype;
    svoo_tensorfile_free(f);
    size_t n = (size_t)w->heads * (size_t)w->n * (size_t)w->dim;
    /* on the CPU the reference is dense attention in f32 (its output is f32, and an output
     * must have the input's dtype): 16-bit dumps get f32 copies for that call */
    const int copies = w->dtype != SVOO_F32 && !w->cuda ? 3 : 0;
    for (int i = 3 - copies; i < 4; i++)
        if (!(s->buf[i] = malloc(n * 4))) return cli_fail(cmd, SVOO_ERR_OUT_OF_MEMORY, NULL);
    return 0;
}

/* views of the call's q, k, v (and the dense output buffer) */
static int source_call(const char *cmd, run_workload *w, source *s, int step, int layer,
                       svoo_tensor qkv[3]) {
    svoo_status st;
    const int64_t H = w->heads, N = w->n, D = w->dim;
    if (s->synth) {
        double t = now_ms();
        if ((st = svoo_synth_generate(s->synth, step, layer, SVOO_F32, s->buf[0], s->buf[1], s->buf[2])))
            return cli_fail(cmd, st, NULL);
        w->synth_ms += now_ms() - t;
        for (int i = 0; i < 3; i++) qkv[i] = svoo_tensor_bhnd(s->buf[i], SVOO_F32, 1, H, N, D);
        return 0;
    }
    char path[4096];
    dumps_path(path, sizeof path, w->dumps, step, layer);
    svoo_tensorfile_free(s->file);
    s->file = NULL;
    if ((st = svoo_tensorfile_open(path, &s->file))) return cli_fail(cmd, st, NULL);
    static const char *const names[3] = {"q", "k", "v"};
    for (int i = 0; i < 3; i++) {
        svoo_array a;
        if ((st = svoo_tensorfile_find(s->file, names[i], &a)) || (st = svoo_array_view(&a, 0, &qkv[i])))
            return cli_fail(cmd, st, NULL);
        if (qkv[i].shape[0] != 1 || qkv[i].shape[1] != H || qkv[i].shape[2] != N ||
            qkv[i].shape[3] != D || qkv[i].dtype != w->dtype) {
            fprintf(stderr,
                    "svoo %s: error: %s: tensor '%s' is [%lld, %lld, %lld, %lld] %s; every q, k, v must be "
                    "[1, %lld, %lld, %lld] %s like q of the first dump (self-attention, one shape)\n",
                    cmd, path, names[i], (long long)qkv[i].shape[0], (long long)qkv[i].shape[1],
                    (long long)qkv[i].shape[2], (long long)qkv[i].shape[3], svoo_dtype_name(qkv[i].dtype),
                    (long long)H, (long long)N, (long long)D, svoo_dtype_name(w->dtype));
            return CLI_FAIL;
        }
    }
    return 0;
}

static svoo_status make_ctx(run_workload *w, run_method *m, const svoo_profile *profile) {
    svoo_config c;
    svoo_config_init(&c, m->method);
    c.head_dim = w->dim;
    c.num_heads = w->heads;
    c.num_layers = w->layers;
    c.num_steps = w->steps;
    c.frames = w->frames, c.height = w->height, c.width = w->width;
    c.text_tokens = w->text_tokens, c.text_first = w->text_first;
    c.num_threads = w->threads;
    /* on the GPU the recall of each plan is measured here (cli_gpu_plan_recall) */
    c.recall_rows = m->method == SVOO_METHOD_DENSE || w->cuda ? 0 : w->recall_rows;
    if (w->cuda) {
        c.device = SVOO_DEVICE_CUDA;
        c.max_batch = 1;
        c.max_tokens = w->n;
    }
    if (m->top_p > 0) c.top_p = m->top_p;
    if (m->floor_ratio >= 0) c.floor_ratio = m->floor_ratio;
    c.ear = m->ear;
    if (m->method == SVOO_METHOD_SVOO) c.profile = profile;
    return svoo_ctx_create(&c, &m->ctx);
}

int runner_execute(const char *cmd, run_workload *w, run_method *methods, int nm) {
    source s;
    memset(&s, 0, sizeof s);
    cli_dev *dev = NULL; /* --device cuda */
    int rc = source_open(cmd, w, &s);
    /* --steps / --layers past the workload's own: a usage error, not a run on fewer */
    if (!rc && (w->max_steps > s.nsteps || w->max_layers > w->layers)) {
        const int steps = w->max_steps > s.nsteps; /* else layers */
        rc = cli_usage_error(cmd, "--%s: %d, the workload has %d", steps ? "steps" : "layers",
                             steps ? w->max_steps : w->max_layers, steps ? s.nsteps : w->layers);
    }
    if (rc) {
        source_free(&s);
        return rc;
    }
    if (w->max_layers > 0 && w->max_layers < w->layers) w->ran_layers = w->max_layers;
    else w->ran_layers = w->layers;
    if (w->ran_layers > RUNNER_MAX_LAYERS) w->ran_layers = RUNNER_MAX_LAYERS;
    w->ran_steps = w->max_steps > 0 && w->max_steps < s.nsteps ? w->max_steps : s.nsteps;

    svoo_ctx *dense = NULL;
    run_method dm;
    run_method_init(&dm, SVOO_METHOD_DENSE, "dense");
    svoo_status st = make_ctx(w, &dm, NULL);
    if (st) {
        source_free(&s);
        return cli_fail(cmd, st, NULL);
    }
    dense = dm.ctx;
    for (int i = 0; i < nm; i++)
        if ((st = make_ctx(w, &methods[i], s.profile))) {
            rc = cli_fail(cmd, st, NULL);
            goto done;
        }
    const int64_t H = w->heads, N = w->n, D = w->dim;
    if (w->cuda && (rc = cli_dev_open(cmd, H, N, (int)D, &dev))) goto done;
    size_t es = svoo_dtype_size(w->dtype);
    /* host output of the methods (on the GPU they write the device buffer) */
    if (!dev && !(s.obuf = malloc((size_t)H * N * D * (es > 4 ? es : 4)))) {
        rc = cli_fail(cmd, SVOO_ERR_OUT_OF_MEMORY, NULL);
        goto done;
    }
    long long total = (long long)w->ran_steps * w->ran_layers, done_calls = 0;
    for (int si = 0; si < w->ran_steps; si++) {
        /* evenly spaced over the steps present; all of them when all are run */
        int step = s.step_list[(int64_t)si * s.nsteps / w->ran_steps];
        for (int layer = 0; layer < w->ran_layers; layer++) {
            svoo_tensor qkv[3];
            if ((rc = source_call(cmd, w, &s, step, layer, qkv))) goto done;
            svoo_tensor ref = svoo_tensor_bhnd(s.buf[3], SVOO_F32, 1, H, N, D), ref_call = ref;
            /* on the GPU: bf16 device copies (q, k, v, ref, out) of the call */
            svoo_tensor dv[5], *in = qkv, ref_in[3], *rin = qkv;
            if (dev) {
                if ((rc = cli_dev_upload(cmd, dev, qkv, dv))) goto done;
                rin = in = dv;
                ref_call = dv[3];
            } else if (qkv[0].dtype != SVOO_F32) {
                for (int i = 0; i < 3; i++) {
                    ref_in[i] = svoo_tensor_bhnd(s.buf[i], SVOO_F32, 1, H, N, D);
                    for (int64_t h = 0; h < H; h++)
                        for (int64_t n = 0; n < N; n++) {
                            const int64_t o = svoo_row_offset(&qkv[i], 0, h, n);
                            for (int64_t d = 0; d < D; d++)
                                s.buf[i][(h * N + n) * D + d] = svoo_load_elem(qkv[i].data, qkv[i].dtype, o + d);
                        }
                }
                rin = ref_in;
            }
            svoo_stats dst;
            svoo_stats_init(&dst);
            double t = now_ms();
            st = svoo_attention(dense, step, layer, &rin[0], &rin[1], &rin[2], &ref_call, dev ? &dst : NULL);
            if (st) {
                rc = cli_fail(cmd, st, dense);
                goto done;
            }
            t = now_ms() - t;
            if (dev) {
                t = dst.ms_plan + dst.ms_permute + dst.ms_attend; /* device time, as the methods' */
                if ((rc = cli_dev_download(cmd, dev, 3, &ref))) goto done;
            }
            const double dense_call_ms = t;
            w->dense_ms += t;
            w->dense_layer_ms[layer] += t;
            for (int i = 0; i < nm; i++) {
                run_method *m = &methods[i];
                svoo_tensor out = dev ? dv[4] : svoo_tensor_bhnd(s.obuf, qkv[0].dtype, 1, H, N, D);
                svoo_stats stt;
                svoo_stats_init(&stt);
                if ((st = svoo_attention(m->ctx, step, layer, &in[0], &in[1], &in[2], &out, &stt))) {
                    rc = cli_fail(cmd, st, m->ctx);
                    goto done;
                }
                /* the call's stages, without the recall diagnostic it was asked for */
                double el = stt.ms_permute + stt.ms_plan + stt.ms_attend;
                m->ms_total += el;
                m->ms_plan += stt.ms_plan;
                m->ms_permute += stt.ms_permute;
                m->ms_attend += stt.ms_attend;
                m->calls++;
                m->layer_ms[layer] += el;
                m->layer_calls[layer]++;
                m->spatial += stt.spatial_heads;
                m->temporal += stt.temporal_heads;
                if (!stt.dense && dev) {
                    if ((rc = cli_dev_download(cmd, dev, 4, &out))) goto done;
                    stt.recall = cli_gpu_plan_recall(m->ctx, layer, cli_dev_host(dev, 0), cli_dev_host(dev, 1), H,
                                                     N, (int)D, w->recall_rows);
                }
                if (!stt.dense) {
                    svoo_compare_result cr;
                    if ((st = svoo_compare(&ref, &out, &cr))) {
                        rc = cli_fail(cmd, st, NULL);
                        goto done;
                    }
                    m->sparse_calls++;
                    m->sp_exec_ms += stt.ms_attend + stt.ms_permute;
                    m->sp_plan_ms += stt.ms_plan;
                    m->sp_dense_ms += dense_call_ms;
                    m->sp_ideal_ms += stt.density * dense_call_ms;
                    m->density += stt.density;
                    m->recall += stt.recall;
                    m->rel_l2 += cr.rel_l2;
                    m->cosine += cr.cosine;
                    m->layer_sparse[layer]++;
                    m->layer_density[layer] += stt.density;
                    m->layer_recall[layer] += stt.recall;
                    m->layer_rel[layer] += cr.rel_l2;
                }
            }
            cli_progress(w->quiet, "calls", ++done_calls, total);
        }
    }
    cli_progress_end(w->quiet);
    for (int i = 0; i < nm; i++) {
        run_method *m = &methods[i];
        if (m->sparse_calls) {
            m->density /= m->sparse_calls;
            m->recall /= m->sparse_calls;
            m->rel_l2 /= m->sparse_calls;
            m->cosine /= m->sparse_calls;
        }
        for (int l = 0; l < w->ran_layers; l++)
            if (m->layer_sparse[l]) {
                m->layer_density[l] /= m->layer_sparse[l];
                m->layer_recall[l] /= m->layer_sparse[l];
                m->layer_rel[l] /= m->layer_sparse[l];
            }
    }
    rc = 0;
done:
    cli_dev_free(dev);
    svoo_ctx_free(dense);
    for (int i = 0; i < nm; i++) {
        svoo_ctx_free(methods[i].ctx);
        methods[i].ctx = NULL;
    }
    source_free(&s);
    return rc;
}

void runner_print_table(const run_workload *w, const run_method *methods, int nm) {
    printf("workload: %s, N = %lld, %d heads x D %d, %d of %d steps x %d layers%s, %s\n",
           w->preset ? w->preset : w->dumps, (long long)w->n, w->heads, w->dim, w->ran_steps, w->steps,
           w->ran_layers, w->profile_path ? "" : " (no profile: default spread)",
           w->cuda ? "CUDA (bf16, device times; reference = dense on the GPU)" : "CPU");
    printf("dense reference: %.1f ms total\n\n", w->dense_ms);
    printf("%-16s %10s %8s %8s %8s %8s %8s %9s %9s\n", "method", "total ms", "speedup", "plan ms",
           "attn ms", "density", "recall", "rel-L2", "cosine");
    for (int i = 0; i < nm; i++) {
        const run_method *m = &methods[i];
        printf("%-16s %10.1f %7.2fx %8.1f %8.1f", m->label, m->ms_total,
               m->ms_total > 0 ? w->dense_ms / m->ms_total : 0.0, m->ms_plan, m->ms_attend);
        if (m->sparse_calls)
            printf(" %8.3f %8.3f %9.4f %9.4f", m->density, m->recall, m->rel_l2, m->cosine);
        else
            printf(" %8s %8s %9s %9s", "1 (dense)", "-", "-", "-");
        if (m->method == SVOO_METHOD_SVG) printf("  heads: %d spatial, %d temporal", m->spatial, m->temporal);
        printf("\n");
    }
    printf("\n%s speed model over the sparse calls (attend+permute vs density x dense; plan vs dense):\n",
           w->cuda ? "GPU" : "CPU");
    for (int i = 0; i < nm; i++) {
        const run_method *m = &methods[i];
        if (!m->sparse_calls || m->sp_ideal_ms <= 0) continue;
        printf("  %-16s exec %.1f ms = %.2f x (density x dense %.1f ms); plan %.1f ms = %.1f%% of dense %.1f ms\n",
               m->label, m->sp_exec_ms, m->sp_exec_ms / m->sp_ideal_ms, m->sp_ideal_ms, m->sp_plan_ms,
               100.0 * m->sp_plan_ms / m->sp_dense_ms, m->sp_dense_ms);
    }
    printf("\nquality columns average the calls after warm-up (%d of %d per method); times include warm-up\n",
           nm ? methods[0].sparse_calls : 0, nm ? methods[0].calls : 0);
}

json_object *runner_json(const run_workload *w, const run_method *methods, int nm) {
    json_object *o = json_object_new_object();
    json_object_object_add(o, "workload", json_object_new_string(w->preset ? w->preset : w->dumps));
    json_object_object_add(o, "device", json_object_new_string(w->cuda ? "cuda" : "cpu"));
    json_object_object_add(o, "seq", json_object_new_int64(w->n));
    json_object_object_add(o, "heads", json_object_new_int(w->heads));
    json_object_object_add(o, "dim", json_object_new_int(w->dim));
    json_object_object_add(o, "steps_run", json_object_new_int(w->ran_steps));
    json_object_object_add(o, "layers_run", json_object_new_int(w->ran_layers));
    json_object_object_add(o, "dense_ms", json_object_new_double(w->dense_ms));
    json_object *arr = json_object_new_array();
    for (int i = 0; i < nm; i++) {
        const run_method *m = &methods[i];
        json_object *j = json_object_new_object();
        json_object_object_add(j, "label", json_object_new_string(m->label));
        json_object_object_add(j, "method", json_object_new_string(svoo_method_name(m->method)));
        json_object_object_add(j, "total_ms", json_object_new_double(m->ms_total));
        json_object_object_add(j, "speedup", json_object_new_double(m->ms_total > 0 ? w->dense_ms / m->ms_total : 0));
        json_object_object_add(j, "plan_ms", json_object_new_double(m->ms_plan));
        json_object_object_add(j, "permute_ms", json_object_new_double(m->ms_permute));
        json_object_object_add(j, "attend_ms", json_object_new_double(m->ms_attend));
        json_object_object_add(j, "calls", json_object_new_int(m->calls));
        json_object_object_add(j, "sparse_calls", json_object_new_int(m->sparse_calls));
        if (m->sparse_calls) {
            json_object_object_add(j, "density", cli_json_double(m->density));
            json_object_object_add(j, "recall", cli_json_double(m->recall));
            json_object_object_add(j, "rel_l2", cli_json_double(m->rel_l2));
            json_object_object_add(j, "cosine", cli_json_double(m->cosine));
            json_object_object_add(j, "sparse_exec_ms", json_object_new_double(m->sp_exec_ms));
            json_object_object_add(j, "sparse_plan_ms", json_object_new_double(m->sp_plan_ms));
            json_object_object_add(j, "sparse_dense_ms", json_object_new_double(m->sp_dense_ms));
            json_object_object_add(j, "sparse_ideal_ms", json_object_new_double(m->sp_ideal_ms));
        }
        if (m->method == SVOO_METHOD_SVG) {
            json_object_object_add(j, "spatial_heads", json_object_new_int(m->spatial));
            json_object_object_add(j, "temporal_heads", json_object_new_int(m->temporal));
        }
        json_object *layers = json_object_new_array();
        for (int l = 0; l < w->ran_layers; l++) {
            json_object *lj = json_object_new_object();
            json_object_object_add(lj, "layer", json_object_new_int(l));
            json_object_object_add(lj, "ms", json_object_new_double(m->layer_ms[l]));
            json_object_object_add(lj, "dense_ms", json_object_new_double(w->dense_layer_ms[l]));
            if (m->layer_sparse[l]) {
                json_object_object_add(lj, "density", cli_json_double(m->layer_density[l]));
                json_object_object_add(lj, "recall", cli_json_double(m->layer_recall[l]));
                json_object_object_add(lj, "rel_l2", cli_json_double(m->layer_rel[l]));
            }
            json_object_array_add(layers, lj);
        }
        json_object_object_add(j, "layers", layers);
        json_object_array_add(arr, j);
    }
    json_object_object_add(o, "methods", arr);
    return o;
}

/* cmd_attn.c : svoo attn : one attention call on Q/K/V files (.npy or
 * .safetensors, detected by content), output written atomically in the format
 * of the --out extension. */
#include "cli.h"
#include "core/internal.h"

#include <getopt.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

static void attn_help(void) {
    printf(
        "usage: svoo attn --q F --k F --v F --out F [options]\n\n"
        "Computes out = attention(q, k, v) for one layer call and writes it to --out.\n"
        "Inputs are .npy or .safetensors files (detected by content); tensors are\n"
        "[B, H, N, D] or [H, N, D] (--layout bhnd), [B, N, H, D] or [N, H, D] (--layout bnhd),\n"
        "all of one dtype (f32, f16, or bf16 = '<u2' in .npy). D must be 64 or 128.\n\n"
        "  --q F, --k F, --v F   input files (required)\n"
        "  --name-q NAME         tensor of a .safetensors file (also --name-k, --name-v); "
        "default:\n"
        "                        the file's only tensor, else the one named q (k, v)\n"
        "  --out F               output (required): .npy or .safetensors by extension; same\n"
        "                        shape and layout as q, q's dtype unless --dtype-out; written\n"
        "                        atomically, nothing is left at F on any error\n"
        "  --name-out NAME       tensor name in a .safetensors output (default out)\n"
        "  --layout L            bhnd (default) or bnhd\n"
        "  --method M            dense (default), svoo, svg2, svg\n"
        "  --profile CSV         SVOO density profile (Step,Layer,Head,Sparsity)\n"
        "  --step S, --layer L   0-based position of the call (default 0, 0)\n"
        "  --steps T, --layers N model grid (default: the profile's, else max(50, S+1) and L+1)\n"
        "  --warmup              keep the method's dense warm-up schedule (first 20%% of steps,\n"
        "                        3%% of layers); by default it is off so that the call runs\n"
        "                        the requested method\n"
        "  --frames F --height H --width W   latent video geometry (required by svg)\n"
        "  --text N              text tokens (default 0); --text-first: they precede the video\n"
        "  --top-p P             top-p of the cluster selection (default 0.9)\n"
        "  --recall-rows R       rows per head sampled to measure recall (default 0 = off)\n"
        "  --compare             also run dense attention and report rel_l2, cosine, max_abs\n"
        "  --check-finite        fail with SVOO_ERR_NONFINITE_INPUT on NaN/Inf inputs\n"
        "  --dtype-out T         f32, f16 or bf16: convert the output (computed in the input "
        "dtype)\n"
        "  --threads T           CPU threads (default: all cores)\n"
        "  --json                one JSON object on stdout instead of the summary on stderr\n"
        "\nExit status: 0 on success, 1 on an error (status name and message on stderr),\n"
        "2 on a usage error.\n");
}

typedef struct {
    const char *path, *name, *role;
    svoo_tensorfile *file;
    svoo_array arr;
} input;

/* opens in->path and picks the tensor */
static svoo_status pick(input *in) {
    svoo_status s = svoo_tensorfile_open(in->path, &in->file);
    if (s) return s;
    if (in->name) return svoo_tensorfile_find(in->file, in->name, &in->arr);
    int n = svoo_tensorfile_count(in->file);
    if (n == 1) return svoo_tensorfile_get(in->file, 0, &in->arr);
    if (n > 1 && svoo_tensorfile_find(in->file, in->role, &in->arr) == SVOO_OK) return SVOO_OK;
    char names[256] = "";
    size_t used = 0;
    for (int i = 0; i < n && used + 4 < sizeof names; i++) {
        svoo_array a;
        svoo_tensorfile_get(in->file, i, &a);
        int w = snprintf(names + used, sizeof names - used, "%s'%s'", i ? ", " : "", a.name);
        if (w < 0) break;
        used += (size_t)w;
    }
    if (used >= sizeof names) strcpy(names + sizeof names - 5, "...");
    return svoo_err(SVOO_ERR_NOT_FOUND,
                    "%s: %d tensors and none named '%s': pick one with --name-%s (%s)", in->path, n,
                    in->role, in->role, n ? names : "the file is empty");
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int parse_dtype(const char *s, svoo_dtype *dt) {
    if (!strcmp(s, "f32"))
        *dt = SVOO_F32;
    else if (!strcmp(s, "f16"))
        *dt = SVOO_F16;
    else if (!strcmp(s, "bf16"))
        *dt = SVOO_BF16;
    else
        return -1;
    return 0;
}

static void convert(const void *src, svoo_dtype sdt, void *dst, svoo_dtype ddt, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float x = svoo_load_elem(src, sdt, (int64_t)i);
        if (ddt == SVOO_F32)
            ((float *)dst)[i] = x;
        else if (ddt == SVOO_F16)
            ((uint16_t *)dst)[i] = svoo_f32_to_f16(x);
        else
            ((uint16_t *)dst)[i] = svoo_f32_to_bf16(x);
    }
}

enum {
    O_Q = 256,
    O_K,
    O_V,
    O_OUT,
    O_NQ,
    O_NK,
    O_NV,
    O_NOUT,
    O_LAYOUT,
    O_METHOD,
    O_PROFILE,
    O_STEP,
    O_LAYER,
    O_STEPS,
    O_LAYERS,
    O_WARMUP,
    O_FRAMES,
    O_HEIGHT,
    O_WIDTH,
    O_TEXT,
    O_TEXT_FIRST,
    O_TOPP,
    O_RECALL,
    O_COMPARE,
    O_CHECK,
    O_DTYPE_OUT,
    O_THREADS,
    O_JSON,
    O_HELP
};

int cmd_attn(int argc, char **argv) {
    static const struct option opts[] = {{"q", 1, 0, O_Q},
                                         {"k", 1, 0, O_K},
                                         {"v", 1, 0, O_V},
                                         {"out", 1, 0, O_OUT},
                                         {"name-q", 1, 0, O_NQ},
                                         {"name-k", 1, 0, O_NK},
                                         {"name-v", 1, 0, O_NV},
                                         {"name-out", 1, 0, O_NOUT},
                                         {"layout", 1, 0, O_LAYOUT},
                                         {"method", 1, 0, O_METHOD},
                                         {"profile", 1, 0, O_PROFILE},
                                         {"step", 1, 0, O_STEP},
                                         {"layer", 1, 0, O_LAYER},
                                         {"steps", 1, 0, O_STEPS},
                                         {"layers", 1, 0, O_LAYERS},
                                         {"warmup", 0, 0, O_WARMUP},
                                         {"frames", 1, 0, O_FRAMES},
                                         {"height", 1, 0, O_HEIGHT},
                                         {"width", 1, 0, O_WIDTH},
                                         {"text", 1, 0, O_TEXT},
                                         {"text-first", 0, 0, O_TEXT_FIRST},
                                         {"top-p", 1, 0, O_TOPP},
                                         {"recall-rows", 1, 0, O_RECALL},
                                         {"compare", 0, 0, O_COMPARE},
                                         {"check-finite", 0, 0, O_CHECK},
                                         {"dtype-out", 1, 0, O_DTYPE_OUT},
                                         {"threads", 1, 0, O_THREADS},
                                         {"json", 0, 0, O_JSON},
                                         {"help", 0, 0, O_HELP},
                                         {0, 0, 0, 0}};
    const char *C = "attn";
    input in[3] = {
        {NULL, NULL, "q", NULL, {0}}, {NULL, NULL, "k", NULL, {0}}, {NULL, NULL, "v", NULL, {0}}};
    const char *out_path = NULL, *name_out = "out", *profile_path = NULL;
    int bnhd = 0, warmup = 0, text_first = 0, compare = 0, check = 0, json = 0;
    int have_dtype_out = 0;
    svoo_dtype dtype_out = SVOO_F32;
    svoo_method method = SVOO_METHOD_DENSE;
    long long step = 0, layer = 0, steps = 0, layers = 0, frames = 0, height = 0, width = 0,
              text = 0, recall = 0, threads = 0;
    double top_p = -1;
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
        switch (c) {
        case O_Q:
            in[0].path = optarg;
            break;
        case O_K:
            in[1].path = optarg;
            break;
        case O_V:
            in[2].path = optarg;
            break;
        case O_NQ:
            in[0].name = optarg;
            break;
        case O_NK:
            in[1].name = optarg;
            break;
        case O_NV:
            in[2].name = optarg;
            break;
        case O_OUT:
            out_path = optarg;
            break;
        case O_NOUT:
            name_out = optarg;
            break;
        case O_PROFILE:
            profile_path = optarg;
            break;
        case O_LAYOUT:
            if (!strcmp(optarg, "bhnd"))
                bnhd = 0;
            else if (!strcmp(optarg, "bnhd"))
                bnhd = 1;
            else
                return cli_usage_error(C, "--layout: '%s' (bhnd or bnhd)", optarg);
            break;
        case O_METHOD:
            if (svoo_method_parse(optarg, &method))
                return cli_usage_error(C, "--method: '%s' (dense, svoo, svg2, svg)", optarg);
            break;
#define INTOPT(code, var, name, lo, hi)                                                            \
    case code:                                                                                     \
        if (cli_parse_int(optarg, lo, hi, &var))                                                   \
            return cli_usage_error(C, "--%s: '%s' is not an integer in [%lld, %lld]", name,        \
                                   optarg, (long long)(lo), (long long)(hi));                      \
        break;
            INTOPT(O_STEP, step, "step", 0, 1000000)
            INTOPT(O_LAYER, layer, "layer", 0, 1000000)
            INTOPT(O_STEPS, steps, "steps", 1, 1000000)
            INTOPT(O_LAYERS, layers, "layers", 1, 1000000)
            INTOPT(O_FRAMES, frames, "frames", 1, 1 << 20)
            INTOPT(O_HEIGHT, height, "height", 1, 1 << 20)
            INTOPT(O_WIDTH, width, "width", 1, 1 << 20)
            INTOPT(O_TEXT, text, "text", 0, 1 << 24)
            INTOPT(O_RECALL, recall, "recall-rows", 0, 1 << 24)
            INTOPT(O_THREADS, threads, "threads", 1, SVOO_MAX_THREADS)
#undef INTOPT
        case O_TOPP:
            if (cli_parse_double(optarg, 1e-9, 1.0, &top_p))
                return cli_usage_error(C, "--top-p: '%s' is not in (0, 1]", optarg);
            break;
        case O_WARMUP:
            warmup = 1;
            break;
        case O_TEXT_FIRST:
            text_first = 1;
            break;
        case O_COMPARE:
            compare = 1;
            break;
        case O_CHECK:
            check = 1;
            break;
        case O_JSON:
            json = 1;
            break;
        case O_DTYPE_OUT:
            if (parse_dtype(optarg, &dtype_out))
                return cli_usage_error(C, "--dtype-out: '%s' (f32, f16, bf16)", optarg);
            have_dtype_out = 1;
            break;
        case 'h':
        case O_HELP:
            attn_help();
            return CLI_OK;
        default:
            return cli_usage_error(C, "bad option");
        }
    }
    if (optind < argc) return cli_usage_error(C, "unexpected argument '%s'", argv[optind]);
    if (!in[0].path || !in[1].path || !in[2].path || !out_path)
        return cli_usage_error(C, "--q, --k, --v and --out are required");
    int out_npy = ends_with(out_path, ".npy");
    if (!out_npy && !ends_with(out_path, ".safetensors"))
        return cli_usage_error(C, "--out: '%s' must end in .npy or .safetensors", out_path);
    if (cli_check_out(C, "--out", out_path)) return CLI_FAIL;
    if (steps && step >= steps)
        return cli_usage_error(C, "--step %lld outside [0, --steps %lld)", step, steps);
    if (layers && layer >= layers)
        return cli_usage_error(C, "--layer %lld outside [0, --layers %lld)", layer, layers);
    if (method == SVOO_METHOD_SVG && !(frames && height && width))
        return cli_usage_error(C, "--method svg needs the latent geometry: --frames, --height and "
                                  "--width (and --text for text tokens)");

    int rc = CLI_FAIL;
    svoo_status s;
    svoo_profile *prof = NULL;
    svoo_ctx *ctx = NULL, *dctx = NULL;
    void *obuf = NULL, *rbuf = NULL, *cbuf = NULL;
    svoo_tensor t[3], to, tr;
    for (int i = 0; i < 3; i++) {
        if ((s = pick(&in[i]))) {
            rc = cli_fail(C, s, NULL);
            goto done;
        }
        if ((s = svoo_array_view(&in[i].arr, bnhd, &t[i]))) {
            /* the message of a view names the array, not the option */
            fprintf(stderr, "svoo attn: error: %s: --%s %s: %s\n", svoo_status_name(s), in[i].role,
                    in[i].path, svoo_last_error(NULL));
            goto done;
        }
    }
    if (profile_path && (s = svoo_profile_load(profile_path, &prof))) {
        rc = cli_fail(C, s, NULL);
        goto done;
    }
    int ps = 0, pl = 0, ph = 0;
    if (prof) svoo_profile_dims(prof, &ps, &pl, &ph);

    svoo_config cfg;
    svoo_config_init(&cfg, method);
    cfg.head_dim = (int)t[0].shape[3];
    cfg.num_heads = (int)t[0].shape[1];
    cfg.num_steps = (int)(steps ? steps : prof ? ps : (step + 1 > 50 ? step + 1 : 50));
    cfg.num_layers = (int)(layers ? layers : prof ? pl : layer + 1);
    cfg.frames = (int)frames;
    cfg.height = (int)height;
    cfg.width = (int)width;
    cfg.text_tokens = (int)text;
    cfg.text_first = text_first;
    cfg.num_threads = (int)threads;
    cfg.profile = prof;
    cfg.recall_rows = (int)recall;
    cfg.check_finite = check;
    if (top_p > 0) cfg.top_p = top_p;
    if (!warmup) cfg.warmup_step_frac = cfg.warmup_layer_frac = 0;
    if ((s = svoo_ctx_create(&cfg, &ctx))) {
        rc = cli_fail(C, s, NULL);
        goto done;
    }
    const svoo_array *qa = &in[0].arr;
    obuf = malloc(qa->nbytes ? qa->nbytes : 1);
    if (!obuf) {
        fprintf(stderr, "svoo attn: out of memory for the %zu-byte output\n", qa->nbytes);
        goto done;
    }
    svoo_array oa = *qa;
    oa.name = name_out;
    oa.data = obuf;
    svoo_array_view(&oa, bnhd, &to);
    svoo_stats st;
    svoo_stats_init(&st);
    if ((s = svoo_attention(ctx, (int)step, (int)layer, &t[0], &t[1], &t[2], &to, &st))) {
        rc = cli_fail(C, s, ctx);
        goto done;
    }
    svoo_compare_result cmp = {NAN, NAN, NAN};
    double ms_dense = NAN;
    if (compare) {
        svoo_config dc = cfg;
        dc.method = SVOO_METHOD_DENSE;
        dc.profile = NULL;
        rbuf = malloc(qa->nbytes ? qa->nbytes : 1);
        svoo_stats ds;
        svoo_stats_init(&ds);
        if (!rbuf) {
            fprintf(stderr, "svoo attn: out of memory for the dense reference\n");
            goto done;
        }
        if ((s = svoo_ctx_create(&dc, &dctx))) {
            rc = cli_fail(C, s, NULL);
            goto done;
        }
        svoo_array ra = oa;
        ra.data = rbuf;
        svoo_array_view(&ra, bnhd, &tr);
        if ((s = svoo_attention(dctx, (int)step, (int)layer, &t[0], &t[1], &t[2], &tr, &ds))) {
            rc = cli_fail(C, s, dctx);
            goto done;
        }
        ms_dense = ds.ms_total;
        if ((s = svoo_compare(&tr, &to, &cmp))) {
            rc = cli_fail(C, s, NULL);
            goto done;
        }
    }
    if (have_dtype_out && dtype_out != qa->dtype) {
        size_t n = qa->nbytes / svoo_dtype_size(qa->dtype);
        cbuf = malloc(n * svoo_dtype_size(dtype_out) + 1);
        if (!cbuf) {
            fprintf(stderr, "svoo attn: out of memory for the converted output\n");
            goto done;
        }
        convert(obuf, qa->dtype, cbuf, dtype_out, n);
        oa.dtype = dtype_out;
        oa.data = cbuf;
        oa.nbytes = n * svoo_dtype_size(dtype_out);
    }
    s = out_npy ? svoo_npy_save(out_path, &oa) : svoo_safetensors_save(out_path, &oa, 1);
    if (s) {
        rc = cli_fail(C, s, NULL);
        goto done;
    }
    const svoo_tensor *q = &t[0];
    if (json) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "method", json_object_new_string(svoo_method_name(method)));
        json_object_object_add(o, "B", json_object_new_int64(q->shape[0]));
        json_object_object_add(o, "H", json_object_new_int64(q->shape[1]));
        json_object_object_add(o, "N", json_object_new_int64(q->shape[2]));
        json_object_object_add(o, "N_kv", json_object_new_int64(t[1].shape[2]));
        json_object_object_add(o, "D", json_object_new_int64(q->shape[3]));
        json_object_object_add(o, "layout", json_object_new_string(bnhd ? "bnhd" : "bhnd"));
        json_object_object_add(o, "dtype", json_object_new_string(svoo_dtype_name(q->dtype)));
        json_object_object_add(o, "dtype_out", json_object_new_string(svoo_dtype_name(oa.dtype)));
        json_object_object_add(o, "step", json_object_new_int64(step));
        json_object_object_add(o, "layer", json_object_new_int64(layer));
        json_object_object_add(o, "num_steps", json_object_new_int(cfg.num_steps));
        json_object_object_add(o, "num_layers", json_object_new_int(cfg.num_layers));
        json_object_object_add(o, "density", cli_json_double(st.density));
        json_object_object_add(o, "dense", json_object_new_boolean(st.dense));
        json_object_object_add(o, "replanned", json_object_new_boolean(st.replanned));
        json_object_object_add(o, "ms_plan", cli_json_double(st.ms_plan));
        json_object_object_add(o, "ms_permute", cli_json_double(st.ms_permute));
        json_object_object_add(o, "ms_attend", cli_json_double(st.ms_attend));
        json_object_object_add(o, "ms_total", cli_json_double(st.ms_total));
        json_object_object_add(o, "recall", cli_json_double(st.recall));
        if (method == SVOO_METHOD_SVG) {
            json_object_object_add(o, "spatial_heads", json_object_new_int(st.spatial_heads));
            json_object_object_add(o, "temporal_heads", json_object_new_int(st.temporal_heads));
        }
        if (compare) {
            json_object_object_add(o, "ms_dense", cli_json_double(ms_dense));
            json_object_object_add(o, "rel_l2", cli_json_double(cmp.rel_l2));
            json_object_object_add(o, "cosine", cli_json_double(cmp.cosine));
            json_object_object_add(o, "max_abs", cli_json_double(cmp.max_abs));
        }
        json_object_object_add(o, "out", json_object_new_string(out_path));
        printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                             JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(o);
    } else {
        fprintf(stderr,
                "svoo attn: %s, B=%lld H=%lld N=%lld (keys %lld) D=%lld %s, step %lld/%d, "
                "layer %lld/%d%s\n",
                svoo_method_name(method), (long long)q->shape[0], (long long)q->shape[1],
                (long long)q->shape[2], (long long)t[1].shape[2], (long long)q->shape[3],
                svoo_dtype_name(q->dtype), step, cfg.num_steps, layer, cfg.num_layers,
                st.dense && method != SVOO_METHOD_DENSE ? " (dense warm-up call)" : "");
        fprintf(stderr,
                "  density %.4f   plan %.2f ms  permute %.2f ms  attend %.2f ms  total %.2f ms\n",
                st.density, st.ms_plan, st.ms_permute, st.ms_attend, st.ms_total);
        if (!isnan(st.recall)) fprintf(stderr, "  recall %.4f\n", st.recall);
        if (method == SVOO_METHOD_SVG)
            fprintf(stderr, "  heads: %d spatial, %d temporal\n", st.spatial_heads,
                    st.temporal_heads);
        if (compare)
            fprintf(stderr, "  vs dense (%.2f ms): rel_l2 %.3e  cosine %.6f  max_abs %.3e\n",
                    ms_dense, cmp.rel_l2, cmp.cosine, cmp.max_abs);
        fprintf(stderr, "  wrote %s (%s)\n", out_path, svoo_dtype_name(oa.dtype));
    }
    rc = CLI_OK;
done:
    free(obuf);
    free(rbuf);
    free(cbuf);
    svoo_ctx_free(ctx);
    svoo_ctx_free(dctx);
    svoo_profile_free(prof);
    for (int i = 0; i < 3; i++)
        svoo_tensorfile_free(in[i].file);
    return rc;
}

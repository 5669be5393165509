/* cmd_synth.c : svoo synth, video-like Q/K/V calibrated to a profile
 * (docs/SYNTH.md). */
#include "cli.h"
#include "synth/synth.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void synth_help(void) {
    printf("usage: svoo synth --preset NAME --out DIR [options]\n\n"
           "Writes video-like Q, K, V for each (step, layer) of a model-shaped run, each\n"
           "head calibrated so that its attention density (tau = 0.95) matches a profile.\n\n"
           "  --preset NAME   model shape (see below; required)\n"
           "  --profile CSV   per-(step, layer, head) target densities (SVOO format); the\n"
           "                  preset takes an evenly spaced subset of its steps, layers, heads.\n"
           "                  Default: a built-in log-uniform spread in [0.004, 0.6]\n"
           "  --steps S       write S evenly spaced steps of the preset (default: all)\n"
           "  --layers L      write the first L layers (default: all)\n"
           "  --seed X        generator seed (default 0)\n"
           "  --dtype T       bf16 | f16 | f32 (default bf16)\n"
           "  --out DIR       output directory (created if missing; required)\n"
           "  --quiet         no progress on stderr\n"
           "  --json          summary as one JSON object on stdout\n\n"
           "Output: DIR/step{SSS}_layer{LL}.safetensors (0-based step and layer) with\n"
           "tensors q, k, v of shape [1, H, N, D]; DIR/profile.csv (the targets, shaped\n"
           "like the preset); DIR/heads.json (per step, layer, head: kind, target,\n"
           "measured density on the calibration rows, beta, source profile index).\n\n"
           "presets:");
    for (const char *const *p = svoo_synth_preset_names(); *p; p++) {
        svoo_synth_config c;
        svoo_synth_config_init(&c);
        svoo_synth_preset(*p, &c);
        printf("\n  %-18s %d x %d x %d%s%.0d%s, %d heads, D %d, %d layers, %d steps", *p, c.frames,
               c.height, c.width, c.text_tokens ? " + " : "", c.text_tokens,
               c.text_tokens ? (c.text_first ? " text first" : " text after") : "", c.heads,
               c.head_dim, c.layers, c.steps);
    }
    printf("\n");
}

static int mkdir_p(const char *dir) {
    char buf[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof buf) {
        errno = n ? ENAMETOOLONG : ENOENT;
        return -1;
    }
    memcpy(buf, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == 0) {
            char c = buf[i];
            buf[i] = 0;
            if (mkdir(buf, 0777) && errno != EEXIST) return -1;
            buf[i] = c;
        }
    }
    struct stat st;
    if (stat(dir, &st)) return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR; /* mkdir's EEXIST would read "File exists" */
        return -1;
    }
    return 0;
}

int cmd_synth(int argc, char **argv) {
    static const struct option opts[] = {
        {"preset", 1, 0, 'p'}, {"profile", 1, 0, 'P'}, {"steps", 1, 0, 's'}, {"layers", 1, 0, 'l'},
        {"seed", 1, 0, 'S'},   {"dtype", 1, 0, 't'},   {"out", 1, 0, 'o'},   {"quiet", 0, 0, 'q'},
        {"json", 0, 0, 'J'},   {"help", 0, 0, 'h'},    {0, 0, 0, 0}};
    const char *preset = NULL, *profile = NULL, *out = NULL;
    long long nsteps = 0, nlayers = 0;
    unsigned long long seed = 0;
    int quiet = 0, json = 0;
    svoo_dtype dt = SVOO_BF16;
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
        switch (c) {
        case 'p':
            preset = optarg;
            break;
        case 'P':
            profile = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 's':
            if (cli_parse_int(optarg, 1, 1000000, &nsteps))
                return cli_usage_error("synth", "--steps: '%s' is not a positive number", optarg);
            break;
        case 'l':
            if (cli_parse_int(optarg, 1, 1000000, &nlayers))
                return cli_usage_error("synth", "--layers: '%s' is not a positive number", optarg);
            break;
        case 'S': {
            char *end;
            errno = 0;
            seed = strtoull(optarg, &end, 0);
            /* (strtoull skips blanks and takes " -5" as 2^64 - 5) */
            if (errno || end == optarg || *end || !isdigit((unsigned char)optarg[0]))
                return cli_usage_error("synth", "--seed: '%s' is not a non-negative number",
                                       optarg);
            break;
        }
        case 't':
            if (!strcmp(optarg, "f32"))
                dt = SVOO_F32;
            else if (!strcmp(optarg, "f16"))
                dt = SVOO_F16;
            else if (!strcmp(optarg, "bf16"))
                dt = SVOO_BF16;
            else
                return cli_usage_error("synth", "--dtype: '%s' (bf16, f16, f32)", optarg);
            break;
        case 'q':
            quiet = 1;
            break;
        case 'J':
            json = 1;
            break;
        case 'h':
            synth_help();
            return CLI_OK;
        default:
            return cli_usage_error("synth", "bad option");
        }
    }
    if (optind < argc) return cli_usage_error("synth", "unexpected argument '%s'", argv[optind]);
    if (!preset) return cli_usage_error("synth", "--preset is required");
    if (!out) return cli_usage_error("synth", "--out is required");

    svoo_synth_config cfg;
    int rc = cli_synth_preset("synth", preset, &cfg);
    if (rc) return rc;
    if (nsteps > cfg.steps)
        return cli_usage_error("synth", "--steps: %lld, preset %s has %d", nsteps, preset, cfg.steps);
    if (nlayers > cfg.layers)
        return cli_usage_error("synth", "--layers: %lld, preset %s has %d", nlayers, preset, cfg.layers);
    svoo_status s = SVOO_OK;
    cfg.seed = seed;
    svoo_profile *prof = NULL;
    if (profile && (s = svoo_profile_load(profile, &prof))) return cli_fail("synth", s, NULL);
    cfg.profile = prof;
    svoo_synth *gen = NULL;
    s = svoo_synth_create(&cfg, &gen);
    svoo_profile_free(prof); /* the generator keeps its own targets */
    if (s) return cli_fail("synth", s, NULL);

    const int T = cfg.steps, L = cfg.layers, H = cfg.heads, D = cfg.head_dim;
    if (!nsteps) nsteps = T;
    if (!nlayers) nlayers = L;
    rc = CLI_FAIL;
    const int64_t N = svoo_synth_tokens(gen);
    const size_t elems = (size_t)N * H * D, es = svoo_dtype_size(dt);
    void *q = malloc(elems * es), *k = malloc(elems * es), *v = malloc(elems * es);
    int *steps = malloc(sizeof(int) * (size_t)nsteps);
    json_object *heads = json_object_new_array();
    svoo_profile *tp = NULL;
    char path[4200];
    long long nkind[3] = {0, 0, 0}, nheads = 0, nwithin = 0, nclamped = 0;
    double sum_rel = 0, worst_rel = 0, total_ms = 0;
    if (!q || !k || !v || !steps || !heads) {
        fprintf(stderr, "svoo synth: out of memory for [1, %d, %lld, %d] tensors\n", H,
                (long long)N, D);
        goto done;
    }
    for (int i = 0; i < nsteps; i++)
        steps[i] = nsteps == 1 ? 0 : (int)((double)i * (T - 1) / (double)(nsteps - 1) + 0.5);
    if (mkdir_p(out)) {
        fprintf(stderr, "svoo synth: error: cannot create directory '%s': %s\n", out,
                strerror(errno));
        goto done;
    }
    if ((s = svoo_synth_profile(gen, &tp))) {
        rc = cli_fail("synth", s, NULL);
        goto done;
    }
    snprintf(path, sizeof path, "%s/profile.csv", out);
    if ((s = svoo_profile_save(tp, path))) {
        rc = cli_fail("synth", s, NULL);
        goto done;
    }
    for (int l = 0; l < nlayers; l++)
        for (int h = 0; h < H; h++) {
            svoo_head_kind kd;
            svoo_synth_head_info(gen, 0, l, h, &kd, NULL, NULL);
            nkind[kd]++;
        }
    const long long total = nsteps * nlayers;
    long long done_pairs = 0;
    for (int si = 0; si < nsteps; si++)
        for (int l = 0; l < nlayers; l++) {
            cli_progress(quiet, "svoo synth: (step, layer)", done_pairs, total);
            double t0 = svoo_now_ms();
            if ((s = svoo_synth_generate(gen, steps[si], l, dt, q, k, v))) {
                cli_progress_end(quiet);
                rc = cli_fail("synth", s, NULL);
                goto done;
            }
            total_ms += svoo_now_ms() - t0;
            svoo_array arr[3];
            const char *names[3] = {"q", "k", "v"};
            void *bufs[3] = {q, k, v};
            for (int i = 0; i < 3; i++) {
                memset(&arr[i], 0, sizeof arr[i]);
                arr[i].name = names[i];
                arr[i].dtype = dt;
                arr[i].rank = 4;
                arr[i].dims[0] = 1, arr[i].dims[1] = H, arr[i].dims[2] = N, arr[i].dims[3] = D;
                arr[i].data = bufs[i];
                arr[i].nbytes = elems * es;
            }
            snprintf(path, sizeof path, "%s/step%03d_layer%02d.safetensors", out, steps[si], l);
            if ((s = svoo_safetensors_save(path, arr, 3))) {
                cli_progress_end(quiet);
                rc = cli_fail("synth", s, NULL);
                goto done;
            }
            for (int h = 0; h < H; h++) {
                svoo_synth_calib cb;
                svoo_head_kind kd;
                int src[3];
                svoo_synth_calib_get(gen, h, &cb);
                svoo_synth_head_info(gen, steps[si], l, h, &kd, NULL, src);
                int ok = svoo_synth_within_tol(cb.target, cb.measured);
                double rel = cb.target > 0 ? fabs(cb.measured - cb.target) / cb.target : 0.0;
                nheads++, nwithin += ok, nclamped += cb.clamped != 0, sum_rel += rel;
                if (rel > worst_rel) worst_rel = rel;
                json_object *o = json_object_new_object();
                json_object_object_add(o, "step", json_object_new_int(steps[si]));
                json_object_object_add(o, "layer", json_object_new_int(l));
                json_object_object_add(o, "head", json_object_new_int(h));
                json_object_object_add(o, "kind", json_object_new_string(svoo_head_kind_name(kd)));
                json_object_object_add(o, "target", json_object_new_double(cb.target));
                json_object_object_add(o, "measured", json_object_new_double(cb.measured));
                json_object_object_add(o, "beta", json_object_new_double(cb.beta));
                json_object_object_add(o, "clamped", json_object_new_int(cb.clamped));
                json_object_object_add(o, "within_tol", json_object_new_boolean(ok));
                json_object *sj = json_object_new_array();
                for (int i = 0; i < 3; i++)
                    json_object_array_add(sj, json_object_new_int(src[i]));
                json_object_object_add(o, "src", sj);
                json_object_array_add(heads, o);
            }
            done_pairs++;
        }
    cli_progress_end(quiet);
    {
        json_object *doc = json_object_new_object();
        json_object_object_add(doc, "preset", json_object_new_string(cfg.preset));
        json_object_object_add(doc, "seed", json_object_new_uint64(seed));
        json_object_object_add(doc, "heads", json_object_get(heads));
        snprintf(path, sizeof path, "%s/heads.json", out);
        int wr = json_object_to_file_ext(path, doc, JSON_C_TO_STRING_PLAIN);
        json_object_put(doc);
        if (wr) {
            fprintf(stderr, "svoo synth: error: cannot write '%s'\n", path);
            goto done;
        }
    }
    int64_t nrows = 0;
    svoo_synth_calib_rows(gen, &nrows);
    double frac = nheads ? (double)nwithin / (double)nheads : 0.0;
    if (json) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "preset", json_object_new_string(cfg.preset));
        json_object_object_add(o, "tokens", json_object_new_int64(N));
        json_object_object_add(o, "pairs", json_object_new_int64(total));
        json_object_object_add(o, "heads", json_object_new_int64(nheads));
        json_object_object_add(o, "spatial", json_object_new_int64(nkind[0]));
        json_object_object_add(o, "temporal", json_object_new_int64(nkind[1]));
        json_object_object_add(o, "semantic", json_object_new_int64(nkind[2]));
        json_object_object_add(o, "calib_rows", json_object_new_int64(nrows));
        json_object_object_add(o, "within_tol", json_object_new_int64(nwithin));
        json_object_object_add(o, "within_frac", json_object_new_double(frac));
        json_object_object_add(o, "clamped", json_object_new_int64(nclamped));
        json_object_object_add(o, "mean_rel_err",
                               json_object_new_double(nheads ? sum_rel / nheads : 0));
        json_object_object_add(o, "max_rel_err", json_object_new_double(worst_rel));
        json_object_object_add(o, "ms_per_pair",
                               json_object_new_double(total ? total_ms / total : 0));
        printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        json_object_put(o);
    } else {
        printf("preset %s: %d x %d x %d + %d text = %lld tokens, %d heads, D %d, dtype %s\n",
               cfg.preset, cfg.frames, cfg.height, cfg.width, cfg.text_tokens, (long long)N, H, D,
               svoo_dtype_name(dt));
        printf("wrote %lld (step, layer) files to %s (%.0f ms per pair)\n", total, out,
               total ? total_ms / total : 0.0);
        printf("head kinds over %d layers x %d heads: %lld spatial, %lld temporal, %lld semantic\n",
               (int)nlayers, H, nkind[0], nkind[1], nkind[2]);
        printf("calibration (%lld rows per head): %lld/%lld heads within tolerance (%.1f%%), "
               "mean rel. error %.3f, max %.3f, %lld clamped (target out of reach)\n",
               (long long)nrows, nwithin, nheads, 100.0 * frac, nheads ? sum_rel / nheads : 0.0,
               worst_rel, nclamped);
    }
    rc = CLI_OK;
done:
    json_object_put(heads);
    svoo_profile_free(tp);
    svoo_synth_free(gen);
    free(q), free(k), free(v), free(steps);
    return rc;
}

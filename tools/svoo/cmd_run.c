/* cmd_run.c : svoo run — every (step, layer) call of a workload through methods. */
#include "runner.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void help(void) {
    printf("usage: svoo run (--preset P | --dumps DIR) [--method M[,M...]] [options]\n\n"
           "Runs every (step, layer) attention call of a synthetic generation (calibrated to\n"
           "a profile) or of your own Q/K/V dumps through each method, against a dense\n"
           "reference computed on the same call, and reports per method: total attention\n"
           "time, speedup vs dense, mean selected density, recall, rel-L2 and cosine.\n\n"
           "  --preset P        synthetic workload (svoo synth --help lists presets)\n"
           "  --dumps DIR       DIR/stepSSS_layerLL.safetensors with q, k, v [1,H,N,D]\n"
           "                    (f32/f16/bf16; any set of steps, each with layers 0..max;\n"
           "                    the schedule sees max step + 1 steps, svoo synth --steps\n"
           "                    writes such a set)\n"
           "  --method LIST     dense, svoo, svg2, svg (comma-separated; default svoo)\n"
           "  --profile CSV     SVOO profile; with --preset it also drives the generator\n"
           "  --steps S         run an evenly spaced subset of S steps (default all)\n"
           "  --layers L        run the first L layers (default all)\n"
           "  --top-p P         top-p of SVOO/SVG2 (default 0.9)\n"
           "  --ear             error-aware compensation of dropped key clusters (SVOO/SVG2)\n"
           "  --recall-rows R   rows per head sampled for recall (default 64)\n"
           "  --frames/--height/--width/--text N   latent geometry (SVG on dumps)\n"
           "  --text-first      the text tokens precede the video tokens (SVG on dumps)\n"
           "  --seed X          generator seed (default 1)\n"
           "  --threads T       CPU threads (default all)\n"
           "  --device D        cpu (default) or cuda: every method and the dense reference\n"
           "                    on GPU 0 in bf16, device times, recall measured on the host\n"
           "  --json            one JSON object with a per-layer breakdown\n"
           "  --quiet           no progress on stderr\n");
}

int cmd_run(int argc, char **argv) {
    static const struct option opts[] = {
        {"preset", 1, 0, 'p'}, {"dumps", 1, 0, 'D'},   {"method", 1, 0, 'm'},  {"profile", 1, 0, 'P'},
        {"steps", 1, 0, 's'},  {"layers", 1, 0, 'l'},  {"top-p", 1, 0, 't'},   {"recall-rows", 1, 0, 'r'},
        {"frames", 1, 0, 'F'}, {"height", 1, 0, 'Y'},  {"width", 1, 0, 'X'},   {"text", 1, 0, 'T'},
        {"seed", 1, 0, 'S'},   {"threads", 1, 0, 'j'}, {"json", 0, 0, 'J'},    {"quiet", 0, 0, 'q'},
        {"help", 0, 0, 'h'},   {"ear", 0, 0, 'E'},     {"device", 1, 0, 'd'},
        {"text-first", 0, 0, 'f'}, {0, 0, 0, 0}};
    run_workload w;
    memset(&w, 0, sizeof w);
    w.seed = 1;
    w.recall_rows = 64;
    w.dtype = SVOO_F32;
    const char *methods = "svoo";
    double top_p = 0;
    int json = 0, ear = 0;
    long long v;
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
        switch (c) {
        case 'p': w.preset = optarg; break;
        case 'D': w.dumps = optarg; break;
        case 'm': methods = optarg; break;
        case 'P': w.profile_path = optarg; break;
        case 's': if (cli_parse_int(optarg, 1, 100000, &v)) return cli_usage_error("run", "--steps: '%s' is not in [1, 100000]", optarg); w.max_steps = (int)v; break;
        case 'l': if (cli_parse_int(optarg, 1, RUNNER_MAX_LAYERS, &v)) return cli_usage_error("run", "--layers: '%s' is not in [1, %d]", optarg, RUNNER_MAX_LAYERS); w.max_layers = (int)v; break;
        case 't': if (cli_parse_double(optarg, 1e-9, 1.0, &top_p)) return cli_usage_error("run", "--top-p: '%s' not in (0, 1]", optarg); break;
        case 'r': if (cli_parse_int(optarg, 0, 1 << 20, &v)) return cli_usage_error("run", "--recall-rows: '%s'", optarg); w.recall_rows = (int)v; break;
        case 'F': if (cli_parse_int(optarg, 0, 1 << 20, &v)) return cli_usage_error("run", "--frames: '%s'", optarg); w.frames = (int)v; break;
        case 'Y': if (cli_parse_int(optarg, 0, 1 << 20, &v)) return cli_usage_error("run", "--height: '%s'", optarg); w.height = (int)v; break;
        case 'X': if (cli_parse_int(optarg, 0, 1 << 20, &v)) return cli_usage_error("run", "--width: '%s'", optarg); w.width = (int)v; break;
        case 'T': if (cli_parse_int(optarg, 0, 1 << 20, &v)) return cli_usage_error("run", "--text: '%s'", optarg); w.text_tokens = (int)v; break;
        case 'S': if (cli_parse_int(optarg, 0, (1LL << 62), &v)) return cli_usage_error("run", "--seed: '%s'", optarg); w.seed = (uint64_t)v; break;
        case 'j': if (cli_parse_int(optarg, 1, 1024, &v)) return cli_usage_error("run", "--threads: '%s'", optarg); w.threads = (int)v; break;
        case 'J': json = 1; break;
        case 'E': ear = 1; break;
        case 'f': w.text_first = 1; break;
        case 'd':
            if (cli_parse_device(optarg, &w.cuda)) return cli_usage_error("run", "--device: '%s' (cpu or cuda)", optarg);
            break;
        case 'q': w.quiet = 1; break;
        case 'h': help(); return CLI_OK;
        default: return cli_usage_error("run", "bad option");
        }
    }
    if (optind < argc) return cli_usage_error("run", "unexpected argument '%s'", argv[optind]);
    if (!w.preset == !w.dumps) return cli_usage_error("run", "give exactly one of --preset and --dumps");
    run_method ms[8];
    int nm = 0;
    char *list = strdup(methods), *save = NULL;
    if (!list) return CLI_FAIL;
    for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        svoo_method m;
        if (nm == 8 || svoo_method_parse(tok, &m)) {
            const int rc = cli_usage_error("run", "--method: '%s' (dense, svoo, svg2, svg; at most 8)", tok);
            free(list); /* (tok points into it) */
            return rc;
        }
        run_method_init(&ms[nm], m, NULL);
        ms[nm].top_p = top_p;
        ms[nm].ear = ear;
        nm++;
    }
    free(list);
    if (nm == 0) return cli_usage_error("run", "--method: '%s' names no method (dense, svoo, svg2, svg)", methods);
    int rc = runner_execute("run", &w, ms, nm);
    if (rc) return rc;
    if (json) {
        json_object *o = runner_json(&w, ms, nm);
        printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        json_object_put(o);
    } else {
        runner_print_table(&w, ms, nm);
    }
    return CLI_OK;
}

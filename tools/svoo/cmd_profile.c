/* cmd_profile.c : svoo profile --dumps DIR --out profile.csv
 * Offline density profile from Q/K dumps of dense runs (docs/PROFILES.md),
 * merged over runs (max as the SVOO reference, or mean), with an optional
 * input-stability report. Nothing is written unless every file is valid. */
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <omp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void profile_help(void) {
    printf("usage: svoo profile --dumps DIR --out PROFILE.csv [options]\n\n"
           "Exact density of every (step, layer, head) of Q/K dumps taken during dense\n"
           "generation, merged over runs into a Step,Layer,Head,Sparsity CSV.\n\n"
           "DIR holds either run subdirectories run*/ (one prompt each) or the dump files\n"
           "directly (one run). Files: stepSSS_layerLL.safetensors (0-based step and layer,\n"
           "e.g. step000_layer00.safetensors) with tensors \"q\" and \"k\" (\"v\" optional) of\n"
           "shape [B,H,N,D] or [H,N,D]. Every run must hold every (step, layer) of the grid.\n\n"
           "  --dumps DIR       dump directory (required)\n"
           "  --out FILE        profile CSV to write (required; written atomically)\n"
           "  --tau T           probability mass the kept keys must reach (default 0.95)\n"
           "  --rows R          use every R-th query row (default 16; 1 = all rows)\n"
           "  --merge M         max (reference) | mean, across runs (default max)\n"
           "  --layout L        bhnd (default) | bnhd: memory layout of the dumps\n"
           "  --threads T       threads (default: all cores)\n"
           "  --report          input-stability table per layer (mean, std, min, max over\n"
           "                    runs; mean spread and CV of each entry across runs)\n"
           "  --json            one JSON object on stdout\n"
           "  --quiet           no progress on stderr\n");
}

typedef struct {
    char *path;
    int run, step, layer;
} dump_file;

typedef struct {
    dump_file *f;
    int n, cap;
} file_list;

static int add_file(file_list *l, const char *dir, const char *name, int run, int step, int layer) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        dump_file *nf = realloc(l->f, (size_t)cap * sizeof *nf);
        if (!nf) return -1;
        l->f = nf;
        l->cap = cap;
    }
    size_t len = strlen(dir) + strlen(name) + 2;
    char *p = malloc(len);
    if (!p) return -1;
    snprintf(p, len, "%s/%s", dir, name);
    l->f[l->n++] = (dump_file){p, run, step, layer};
    return 0;
}

/* stepSSS_layerLL.safetensors -> step, layer; -1 if the name does not match */
static int parse_name(const char *name, int *step, int *layer) {
    int s, l, n = -1;
    if (strncmp(name, "step", 4)) return -1;
    if (sscanf(name, "step%d_layer%d.safetensors%n", &s, &l, &n) != 2 || n < 0 || name[n] != 0 ||
        s < 0 || l < 0 || s > 99999 || l > 99999)
        return -1;
    if (name[4] < '0' || name[4] > '9') return -1;
    *step = s;
    *layer = l;
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* sorted names of DIR's entries (NULL-free array, *n entries); -1 on error */
static char **list_dir(const char *dir, int *n) {
    DIR *d = opendir(dir);
    if (!d) return NULL;
    char **v = NULL;
    int cnt = 0, cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        if (cnt == cap) {
            cap = cap ? 2 * cap : 64;
            char **nv = realloc(v, (size_t)cap * sizeof *nv);
            if (!nv) break;
            v = nv;
        }
        v[cnt] = strdup(e->d_name);
        if (!v[cnt]) break;
        cnt++;
    }
    closedir(d);
    if (cnt > 1) qsort(v, (size_t)cnt, sizeof *v, cmp_str);
    *n = cnt;
    if (!v) v = calloc(1, sizeof *v);
    return v;
}

static void free_names(char **v, int n) {
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* scan one run directory; returns the number of dump files, -1 on error */
static int scan_run(const char *dir, int run, file_list *l) {
    int n = 0, found = 0;
    char **names = list_dir(dir, &n);
    if (!names) {
        fprintf(stderr, "svoo profile: error: SVOO_ERR_IO: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    for (int i = 0; i < n; i++) {
        int s, ly;
        if (parse_name(names[i], &s, &ly)) continue;
        if (add_file(l, dir, names[i], run, s, ly)) {
            free_names(names, n);
            fprintf(stderr, "svoo profile: error: out of memory\n");
            return -1;
        }
        found++;
    }
    free_names(names, n);
    return found;
}

static int fail_msg(svoo_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail_msg(svoo_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "svoo profile: error: %s: ", svoo_status_name(s));
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return CLI_FAIL;
}

/* q and k views of one dump; on failure prints the error naming the file */
static int open_dump(const char *path, int bnhd, svoo_tensorfile **tf, svoo_tensor *q,
                     svoo_tensor *k) {
    svoo_status s = svoo_tensorfile_open(path, tf);
    if (s) return fail_msg(s, "%s", svoo_last_error(NULL));
    svoo_array a;
    const char *names[2] = {"q", "k"};
    svoo_tensor *out[2] = {q, k};
    for (int i = 0; i < 2; i++) {
        if ((s = svoo_tensorfile_find(*tf, names[i], &a)))
            return fail_msg(s, "%s: no tensor \"%s\" (dumps hold \"q\" and \"k\")", path, names[i]);
        if (a.rank != 3 && a.rank != 4)
            return fail_msg(SVOO_ERR_SHAPE_MISMATCH,
                            "%s: tensor \"%s\" has rank %d; [B,H,N,D] or [H,N,D] expected", path,
                            names[i], a.rank);
        if ((s = svoo_array_view(&a, bnhd, out[i])))
            return fail_msg(s, "%s: tensor \"%s\": %s", path, names[i], svoo_last_error(NULL));
    }
    return 0;
}

static int same_shape(const svoo_tensor *a, const svoo_tensor *b) {
    for (int d = 0; d < 4; d++)
        if (a->shape[d] != b->shape[d]) return 0;
    return 1;
}

static void shape_str(const svoo_tensor *t, char *buf, size_t n) {
    snprintf(buf, n, "[B=%lld, H=%lld, N=%lld, D=%lld]", (long long)t->shape[0],
             (long long)t->shape[1], (long long)t->shape[2], (long long)t->shape[3]);
}

static json_object *stab_json(const svoo_stability *s) {
    json_object *o = json_object_new_object();
    json_object_object_add(o, "mean", json_object_new_double(s->mean));
    json_object_object_add(o, "std", json_object_new_double(s->std));
    json_object_object_add(o, "min", json_object_new_double(s->min));
    json_object_object_add(o, "max", json_object_new_double(s->max));
    json_object_object_add(o, "mean_spread", json_object_new_double(s->mean_spread));
    json_object_object_add(o, "mean_cv", json_object_new_double(s->mean_cv));
    return o;
}

int cmd_profile(int argc, char **argv) {
    static const struct option opts[] = {
        {"dumps", 1, 0, 'd'}, {"out", 1, 0, 'o'},    {"tau", 1, 0, 't'},     {"rows", 1, 0, 'r'},
        {"merge", 1, 0, 'm'}, {"layout", 1, 0, 'l'}, {"threads", 1, 0, 'j'}, {"report", 0, 0, 'R'},
        {"json", 0, 0, 'J'},  {"quiet", 0, 0, 'q'},  {"help", 0, 0, 'h'},    {0, 0, 0, 0}};
    const char *dumps = NULL, *outp = NULL;
    double tau = 0.95;
    long long rows = 16, threads = 0;
    svoo_merge merge = SVOO_MERGE_MAX;
    int bnhd = 0, report = 0, json = 0, quiet = 0;
    const char *cmd = "profile";
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
        switch (c) {
        case 'd':
            dumps = optarg;
            break;
        case 'o':
            outp = optarg;
            break;
        case 't':
            if (cli_parse_double(optarg, 1e-9, 1.0, &tau))
                return cli_usage_error(cmd, "--tau: '%s' is not in (0, 1]", optarg);
            break;
        case 'r':
            if (cli_parse_int(optarg, 1, 1 << 30, &rows))
                return cli_usage_error(cmd, "--rows: '%s' is not an integer >= 1", optarg);
            break;
        case 'j':
            if (cli_parse_int(optarg, 1, 1024, &threads))
                return cli_usage_error(cmd, "--threads: '%s' is not in [1, 1024]", optarg);
            break;
        case 'm':
            if (!strcmp(optarg, "max"))
                merge = SVOO_MERGE_MAX;
            else if (!strcmp(optarg, "mean"))
                merge = SVOO_MERGE_MEAN;
            else
                return cli_usage_error(cmd, "--merge: '%s' (max, mean)", optarg);
            break;
        case 'l':
            if (!strcmp(optarg, "bhnd"))
                bnhd = 0;
            else if (!strcmp(optarg, "bnhd"))
                bnhd = 1;
            else
                return cli_usage_error(cmd, "--layout: '%s' (bhnd, bnhd)", optarg);
            break;
        case 'R':
            report = 1;
            break;
        case 'J':
            json = 1;
            break;
        case 'q':
            quiet = 1;
            break;
        case 'h':
            profile_help();
            return CLI_OK;
        default:
            return cli_usage_error(cmd, "bad option");
        }
    }
    if (optind < argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!dumps || !outp) return cli_usage_error(cmd, "--dumps and --out are required");
    if (!is_dir(dumps)) return fail_msg(SVOO_ERR_IO, "%s: not a directory", dumps);
    if (cli_check_out(cmd, "--out", outp)) return CLI_FAIL;

    /* 1. find the runs and their files */
    file_list fl = {0};
    int nruns = 0, rc = CLI_FAIL;
    char **runs = NULL;
    int nnames = 0;
    {
        char **names = list_dir(dumps, &nnames);
        if (!names) return fail_msg(SVOO_ERR_IO, "%s: %s", dumps, strerror(errno));
        runs = calloc((size_t)nnames + 1, sizeof *runs);
        if (!runs) {
            free_names(names, nnames);
            return fail_msg(SVOO_ERR_OUT_OF_MEMORY, "run list");
        }
        for (int i = 0; i < nnames; i++) {
            size_t len = strlen(dumps) + strlen(names[i]) + 2;
            char *p = malloc(len);
            if (!p) break;
            snprintf(p, len, "%s/%s", dumps, names[i]);
            if (!strncmp(names[i], "run", 3) && is_dir(p))
                runs[nruns++] = p;
            else
                free(p);
        }
        free_names(names, nnames);
    }
    if (nruns == 0) { /* the files directly: one run */
        runs[0] = strdup(dumps);
        nruns = runs[0] ? 1 : 0;
    }
    svoo_profiler *pr = NULL;
    svoo_profile *prof = NULL;
    svoo_tensorfile *tf = NULL;
    char *have = NULL;
    int S = 0, L = 0, H = 0;
    svoo_tensor q0 = {0}, k0 = {0};
    for (int r = 0; r < nruns; r++) {
        int n = scan_run(runs[r], r, &fl);
        if (n < 0) goto done;
        if (n == 0) {
            fail_msg(SVOO_ERR_NOT_FOUND, "%s: no stepSSS_layerLL.safetensors dumps", runs[r]);
            goto done;
        }
    }
    for (int i = 0; i < fl.n; i++) {
        S = fl.f[i].step + 1 > S ? fl.f[i].step + 1 : S;
        L = fl.f[i].layer + 1 > L ? fl.f[i].layer + 1 : L;
    }
    /* 2. the grid must be complete in every run, without duplicates */
    have = calloc((size_t)nruns * S * L, 1);
    if (!have) {
        fail_msg(SVOO_ERR_OUT_OF_MEMORY, "grid %d x %d", S, L);
        goto done;
    }
    for (int i = 0; i < fl.n; i++) {
        char *h = &have[((size_t)fl.f[i].run * S + fl.f[i].step) * L + fl.f[i].layer];
        if (*h) {
            fail_msg(SVOO_ERR_DUPLICATE_NAME, "%s: a second dump of step %d, layer %d in this run",
                     fl.f[i].path, fl.f[i].step, fl.f[i].layer);
            goto done;
        }
        *h = 1;
    }
    for (int r = 0; r < nruns; r++)
        for (int s = 0; s < S; s++)
            for (int l = 0; l < L; l++)
                if (!have[((size_t)r * S + s) * L + l]) {
                    fail_msg(SVOO_ERR_NOT_FOUND,
                             "%s/step%03d_layer%02d.safetensors: missing (the dumps span %d steps "
                             "x %d layers)",
                             runs[r], s, l, S, L);
                    goto done;
                }
    /* 3. validate every file's header and shapes before computing anything */
    for (int i = 0; i < fl.n; i++) {
        svoo_tensor q, k;
        cli_progress(quiet, "checking dumps", i, fl.n);
        if (open_dump(fl.f[i].path, bnhd, &tf, &q, &k)) goto done;
        char a[96], b[96];
        if (i == 0) {
            q0 = q;
            k0 = k;
            H = (int)q.shape[1];
            if (!same_shape(&q, &k) && (q.shape[0] != k.shape[0] || q.shape[1] != k.shape[1] ||
                                        q.shape[3] != k.shape[3])) {
                shape_str(&q, a, sizeof a);
                shape_str(&k, b, sizeof b);
                fail_msg(SVOO_ERR_SHAPE_MISMATCH, "%s: q %s and k %s disagree", fl.f[i].path, a, b);
                goto done;
            }
        } else if (!same_shape(&q, &q0) || !same_shape(&k, &k0)) {
            shape_str(same_shape(&q, &q0) ? &k : &q, a, sizeof a);
            shape_str(same_shape(&q, &q0) ? &k0 : &q0, b, sizeof b);
            fail_msg(SVOO_ERR_SHAPE_MISMATCH, "%s: %s %s differs from %s in %s", fl.f[i].path,
                     same_shape(&q, &q0) ? "k" : "q", a, b, fl.f[0].path);
            goto done;
        }
        svoo_tensorfile_free(tf);
        tf = NULL;
    }
    cli_progress_end(quiet);
    /* 4. densities */
    svoo_status st = svoo_profiler_create(S, L, H, tau, rows, &pr);
    if (st) {
        cli_fail(cmd, st, NULL);
        goto done;
    }
    if (threads) {
        /* svoo_profiler_observe uses the OpenMP default thread count */
        omp_set_num_threads((int)threads);
    }
    int last_run = -1;
    for (int i = 0; i < fl.n; i++) {
        svoo_tensor q, k;
        if (fl.f[i].run != last_run) {
            if ((st = svoo_profiler_begin_run(pr))) {
                cli_fail(cmd, st, NULL);
                goto done;
            }
            last_run = fl.f[i].run;
        }
        cli_progress(quiet, "profiling", i, fl.n);
        if (open_dump(fl.f[i].path, bnhd, &tf, &q, &k)) goto done;
        st = svoo_profiler_observe(pr, fl.f[i].step, fl.f[i].layer, &q, &k);
        svoo_tensorfile_free(tf);
        tf = NULL;
        if (st) {
            cli_progress_end(quiet);
            fail_msg(st, "%s: %s", fl.f[i].path, svoo_last_error(NULL));
            goto done;
        }
    }
    cli_progress(quiet, "profiling", fl.n, fl.n);
    cli_progress_end(quiet);
    if ((st = svoo_profiler_result(pr, merge, &prof)) || (st = svoo_profile_save(prof, outp))) {
        cli_fail(cmd, st, NULL);
        goto done;
    }
    svoo_profile_stats ps;
    svoo_profile_stats_get(prof, &ps);
    svoo_stability all, *per = NULL;
    int have_stab = 0;
    if (report) {
        per = calloc((size_t)L, sizeof *per);
        if (!per) {
            fail_msg(SVOO_ERR_OUT_OF_MEMORY, "report");
            goto done;
        }
        have_stab = !svoo_profiler_stability(pr, -1, &all);
        for (int l = 0; l < L && have_stab; l++)
            have_stab = !svoo_profiler_stability(pr, l, &per[l]);
        if (!have_stab) {
            free(per);
            cli_fail(cmd, SVOO_ERR_NOT_FOUND, NULL);
            goto done;
        }
    }
    if (json) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "out", json_object_new_string(outp));
        json_object_object_add(o, "runs", json_object_new_int(nruns));
        json_object_object_add(o, "files", json_object_new_int(fl.n));
        json_object_object_add(o, "steps", json_object_new_int(S));
        json_object_object_add(o, "layers", json_object_new_int(L));
        json_object_object_add(o, "heads", json_object_new_int(H));
        json_object_object_add(o, "tau", json_object_new_double(tau));
        json_object_object_add(o, "row_step", json_object_new_int64(rows));
        json_object_object_add(o, "merge",
                               json_object_new_string(merge == SVOO_MERGE_MAX ? "max" : "mean"));
        json_object_object_add(o, "mean", json_object_new_double(ps.mean));
        json_object_object_add(o, "median", json_object_new_double(ps.median));
        json_object_object_add(o, "min", json_object_new_double(ps.min));
        json_object_object_add(o, "max", json_object_new_double(ps.max));
        if (report) {
            json_object *so = json_object_new_object(), *arr = json_object_new_array();
            json_object_object_add(so, "overall", stab_json(&all));
            for (int l = 0; l < L; l++)
                json_object_array_add(arr, stab_json(&per[l]));
            json_object_object_add(so, "layers", arr);
            json_object_object_add(o, "stability", so);
        }
        printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
        json_object_put(o);
    } else {
        printf("wrote %s: %d steps x %d layers x %d heads from %d run(s), %d files "
               "(tau %.3g, every %lld-th row, merge %s); mean density %.4f, median %.4f\n",
               outp, S, L, H, nruns, fl.n, tau, rows, merge == SVOO_MERGE_MAX ? "max" : "mean",
               ps.mean, ps.median);
        if (report) {
            printf("\ninput stability over %d run(s): per-run mean density of each layer, and "
                   "the spread / CV of each (step, head) entry across runs\n",
                   nruns);
            printf("  %-7s %8s %8s %8s %8s %8s %8s\n", "layer", "mean", "std", "min", "max",
                   "spread", "CV");
            for (int l = 0; l < L; l++)
                printf("  %-7d %8.4f %8.4f %8.4f %8.4f %8.4f %8.3f\n", l, per[l].mean, per[l].std,
                       per[l].min, per[l].max, per[l].mean_spread, per[l].mean_cv);
            printf("  %-7s %8.4f %8.4f %8.4f %8.4f %8.4f %8.3f\n", "all", all.mean, all.std,
                   all.min, all.max, all.mean_spread, all.mean_cv);
            printf("\noverall: entries vary across inputs by %.4f on average (max - min), "
                   "a coefficient of variation of %.1f%%%s\n",
                   all.mean_spread, 100 * all.mean_cv,
                   nruns < 2 ? " (one run: profile more prompts to measure stability)" : "");
        }
    }
    free(per);
    rc = CLI_OK;
done:
    cli_progress_end(quiet);
    svoo_tensorfile_free(tf);
    svoo_profile_free(prof);
    svoo_profiler_free(pr);
    free(have);
    for (int i = 0; i < fl.n; i++)
        free(fl.f[i].path);
    free(fl.f);
    for (int r = 0; r < nruns; r++)
        free(runs[r]);
    free(runs);
    return rc;
}

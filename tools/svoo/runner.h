/* runner.h : drives every (step, layer) call of a workload through several
 * methods, with a dense reference per call; shared by `svoo run` and `svoo demo`. */
#ifndef SVOO_RUNNER_H
#define SVOO_RUNNER_H

#include "cli.h"

#include <json-c/json.h>

#define RUNNER_MAX_LAYERS 256

typedef struct {
    char label[48];
    svoo_method method;
    double top_p;        /* <= 0: the method's default */
    double floor_ratio;  /* < 0: default (SVG2 floor / SVOO fallback) */
    int ear;             /* error-aware compensation of dropped key clusters */
    svoo_ctx *ctx;
    /* totals over all calls (warm-up included: what a user waits for) */
    double ms_total, ms_plan, ms_permute, ms_attend;
    int calls;
    /* quality over the calls that ran sparse */
    int sparse_calls;
    double density, recall, rel_l2, cosine;
    /* CPU speed model over the sparse calls: attend + permute time against
     * density x the dense time of the same call; planning against dense */
    double sp_exec_ms, sp_plan_ms, sp_dense_ms, sp_ideal_ms;
    int spatial, temporal;
    double layer_ms[RUNNER_MAX_LAYERS], layer_density[RUNNER_MAX_LAYERS],
        layer_recall[RUNNER_MAX_LAYERS], layer_rel[RUNNER_MAX_LAYERS];
    int layer_calls[RUNNER_MAX_LAYERS], layer_sparse[RUNNER_MAX_LAYERS];
} run_method;

typedef struct {
    /* exactly one source: a synthetic preset or a dumps directory */
    const char *preset;
    const char *dumps;
    const char *profile_path; /* drives synth and is read by SVOO */
    uint64_t seed;
    int max_steps;            /* 0: all; else an evenly spaced subset */
    int max_layers;           /* 0: all; else the first L */
    int recall_rows;
    int threads;
    int cuda; /* --device cuda: every method and the dense reference on GPU 0, bf16 */
    int quiet;
    svoo_dtype dtype;
    /* geometry for SVG on dumps */
    int frames, height, width, text_tokens, text_first;
    /* resolved */
    int steps, layers, heads, dim;
    int64_t n;
    double dense_ms;          /* dense reference total */
    double dense_layer_ms[RUNNER_MAX_LAYERS];
    int ran_steps, ran_layers;
    double synth_ms;
} run_workload;

/* runs the workload through methods[0..nm); 0 on success (errors printed) */
int runner_execute(const char *cmd, run_workload *w, run_method *methods, int nm);
/* human-readable table on stdout */
void runner_print_table(const run_workload *w, const run_method *methods, int nm);
/* one JSON object (caller json_object_put) */
json_object *runner_json(const run_workload *w, const run_method *methods, int nm);
void run_method_init(run_method *m, svoo_method method, const char *label);

#endif

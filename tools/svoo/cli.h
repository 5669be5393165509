/* cli.h : helpers shared by the subcommands of the svoo tool. */
#ifndef SVOO_CLI_H
#define SVOO_CLI_H

#define SVOO_STATIC_LINKING_ONLY
#include "svoo.h"

#include <stdint.h>
#include <stdio.h>

/* one subcommand: run(argc, argv) with argv[0] = subcommand name */
typedef struct {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} cli_command;

/* exit codes */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* prints "svoo <cmd>: error: <STATUS>: <message>" and returns CLI_FAIL */
int cli_fail(const char *cmd, svoo_status s, const svoo_ctx *ctx);
/* prints "svoo <cmd>: <message>" + "try 'svoo <cmd> --help'" and returns CLI_USAGE */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* an output file that is written atomically (a temporary file renamed to PATH), checked
 * before any work: CLI_OK when PATH is absent or a regular file; else (a device such as
 * /dev/null, a FIFO, a directory, a symbolic link such as /dev/stdout: svoo_output_path_check)
 * prints "svoo <cmd>: error: SVOO_ERR_IO: <opt> <path>: is ..." and returns CLI_FAIL */
int cli_check_out(const char *cmd, const char *opt, const char *path);

/* x as a json-c number, or NULL (JSON null) when x is NaN / Inf (a recall not measured,
 * the rel-L2 of non-finite data): json-c would print the invalid token NaN */
struct json_object *cli_json_double(double x);

/* strict number parsing: whole string, in range; 0 on success */
int cli_parse_int(const char *s, long long lo, long long hi, long long *out);
int cli_parse_double(const char *s, double lo, double hi, double *out);
/* "cpu" -> 0, "cuda" -> 1; 0 on success */
int cli_parse_device(const char *s, int *cuda);
/* cfg <- svoo_synth_config_init + preset `name`; an unknown name is a usage error of cmd
 * (its exit code returned; CLI_OK when found) */
int cli_synth_preset(const char *cmd, const char *name, svoo_synth_config *cfg);

/* progress on stderr, only when stderr is a terminal and not quiet */
void cli_progress(int quiet, const char *what, long long done, long long total);
void cli_progress_end(int quiet);

/* filled with deterministic pseudo-random values in [-1, 1) * scale */
void cli_fill_random(float *x, size_t n, unsigned long long seed, float scale);

/* ---- the device side (cuda_cli.c; every call fails with a message in a
 * build without the CUDA backend) ---- */
/* CLI_OK when the process sees a CUDA device; otherwise CLI_FAIL, printed */
int cli_cuda_device(const char *cmd);
/* prints "svoo CMD: error: CUDA: WHAT: <error name>: <error string>" for the
 * cudaError_t err (and clears it); returns CLI_FAIL */
int cli_cuda_fail(const char *cmd, int err, const char *what);
typedef struct cli_dev cli_dev;
/* bf16 device buffers for q, k, v, a reference output and an output of
 * shape (H, N, D), and their host copies; CLI_OK or CLI_FAIL (printed) */
int cli_dev_open(const char *cmd, int64_t H, int64_t N, int D, cli_dev **out);
/* src: [1, H, N, D] host views (any dtype) -> device; dst: device views of
 * q, k, v, ref, out (indices 0..4) */
int cli_dev_upload(const char *cmd, cli_dev *d, const svoo_tensor src[3], svoo_tensor dst[5]);
/* device buffer `which` (3 = ref, 4 = out) -> its host copy, a bf16 view */
int cli_dev_download(const char *cmd, cli_dev *d, int which, svoo_tensor *host);
/* host bf16 copy of buffer `which` ((H, N, D), valid after upload/download) */
const uint16_t *cli_dev_host(const cli_dev *d, int which);
void cli_dev_free(cli_dev *d);
/* recall of the GPU plan of ctx's last call on `layer` (B = 1): the dense
 * softmax mass of the keys each query computes, averaged over `rows` evenly
 * spaced query rows of every head, in f64 on the host; q, k: (H, N, D) bf16.
 * NaN when it cannot be measured. */
double cli_gpu_plan_recall(svoo_ctx *ctx, int layer, const uint16_t *q, const uint16_t *k, int64_t H, int64_t N,
                           int D, int rows);

int cmd_version(int argc, char **argv);
int cmd_attn(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_profile(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_demo(int argc, char **argv);

#endif

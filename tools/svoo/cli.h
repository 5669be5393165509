/* cli.h : helpers shared by the subcommands of the svoo tool. */
#ifndef SVOO_CLI_H
#define SVOO_CLI_H

#define SVOO_STATIC_LINKING_ONLY
#include "svoo.h"

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

/* strict number parsing: whole string, in range; 0 on success */
int cli_parse_int(const char *s, long long lo, long long hi, long long *out);
int cli_parse_double(const char *s, double lo, double hi, double *out);

/* progress on stderr, only when stderr is a terminal and not quiet */
void cli_progress(int quiet, const char *what, long long done, long long total);
void cli_progress_end(int quiet);

/* filled with deterministic pseudo-random values in [-1, 1) * scale */
void cli_fill_random(float *x, size_t n, unsigned long long seed, float scale);

int cmd_version(int argc, char **argv);
int cmd_attn(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_profile(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_demo(int argc, char **argv);

#endif

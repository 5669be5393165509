/* cli.c : shared helpers of the svoo tool. */
#include "cli.h"
#include "io/io.h"

#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_fail(const char *cmd, svoo_status s, const svoo_ctx *ctx) {
    fprintf(stderr, "svoo %s: error: %s: %s\n", cmd, svoo_status_name(s), svoo_last_error(ctx));
    return CLI_FAIL;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "svoo %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\ntry 'svoo %s --help'\n", cmd);
    va_end(ap);
    return CLI_USAGE;
}

json_object *cli_json_double(double x) {
    return isfinite(x) ? json_object_new_double(x) : NULL;
}

int cli_check_out(const char *cmd, const char *opt, const char *path) {
    const svoo_status s = svoo_output_path_check(path);
    if (!s) return CLI_OK;
    fprintf(stderr, "svoo %s: error: %s: %s %s\n", cmd, svoo_status_name(s), opt, svoo_last_error(NULL));
    return CLI_FAIL;
}

int cli_parse_int(const char *s, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int cli_parse_double(const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int cli_parse_device(const char *s, int *cuda) {
    if (!strcmp(s, "cpu")) *cuda = 0;
    else if (!strcmp(s, "cuda")) *cuda = 1;
    else return -1;
    return 0;
}

int cli_synth_preset(const char *cmd, const char *name, svoo_synth_config *cfg) {
    svoo_synth_config_init(cfg);
    if (svoo_synth_preset(name, cfg))
        return cli_usage_error(cmd, "--preset: unknown preset '%s' (svoo synth --help lists them)",
                               name);
    return CLI_OK;
}

void cli_progress(int quiet, const char *what, long long done, long long total) {
    if (quiet || !isatty(STDERR_FILENO)) return;
    fprintf(stderr, "\r%s %lld/%lld (%3.0f%%)", what, done, total,
            total > 0 ? 100.0 * (double)done / (double)total : 100.0);
    fflush(stderr);
}

void cli_progress_end(int quiet) {
    if (quiet || !isatty(STDERR_FILENO)) return;
    fprintf(stderr, "\r\033[K");
}

void cli_fill_random(float *x, size_t n, unsigned long long seed, float scale) {
    unsigned long long s = seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        x[i] = scale * ((float)(s >> 40) / (float)(1ull << 23) - 1.0f);
    }
}

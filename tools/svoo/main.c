/* main.c : the svoo command-line tool: dispatch to one file per subcommand. */
#include "cli.h"

#include <string.h>

static const cli_command k_commands[] = {
    {"version", "print the library version and build features", cmd_version},
    {"attn", "attention on Q/K/V files (dense or a sparse method)", cmd_attn},
    {"bench", "benchmarks: dense attention vs sgemm, sparse methods, kernels", cmd_bench},
    {"synth", "synthetic video-like Q/K/V calibrated to a profile", cmd_synth},
    {"profile", "offline density profile from Q/K dumps (+ stability report)", cmd_profile},
    {"inspect", "summary table and heat-map PNG of a profile", cmd_inspect},
    {"run", "run every (step, layer) of a workload through a method", cmd_run},
    {"demo", "the main job: all methods on a small calibrated preset", cmd_demo},
};

static void usage(FILE *f) {
    fprintf(f, "usage: svoo <command> [options]   (svoo <command> --help for each)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof k_commands / sizeof *k_commands; i++)
        fprintf(f, "  %-9s %s\n", k_commands[i].name, k_commands[i].summary);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return CLI_OK;
    }
    if (!strcmp(argv[1], "--version")) argv[1] = "version";
    for (size_t i = 0; i < sizeof k_commands / sizeof *k_commands; i++)
        if (!strcmp(argv[1], k_commands[i].name)) return k_commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "svoo: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return CLI_USAGE;
}

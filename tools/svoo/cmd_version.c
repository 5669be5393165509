/* cmd_version.c : svoo version */
#include "cli.h"

#include <string.h>

int cmd_version(int argc, char **argv) {
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: svoo version\n\nPrints the library version and whether the CUDA backend is built.\n");
        return CLI_OK;
    }
    if (argc > 1) return cli_usage_error("version", "unexpected argument '%s'", argv[1]);
    printf("svoo %s (cuda: %s)\n", svoo_version_string(), svoo_has_cuda() ? "yes" : "no");
    return CLI_OK;
}

/* cmd_run.c : placeholder until its issue lands. */
#include "cli.h"

int cmd_run(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "svoo run: not implemented yet\n");
    return CLI_FAIL;
}

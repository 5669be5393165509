/* cmd_inspect.c : placeholder until its issue lands. */
#include "cli.h"

int cmd_inspect(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "svoo inspect: not implemented yet\n");
    return CLI_FAIL;
}

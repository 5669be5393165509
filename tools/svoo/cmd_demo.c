/* cmd_demo.c : placeholder until its issue lands. */
#include "cli.h"

int cmd_demo(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "svoo demo: not implemented yet\n");
    return CLI_FAIL;
}

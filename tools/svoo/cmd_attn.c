/* cmd_attn.c : placeholder until its issue lands. */
#include "cli.h"

int cmd_attn(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "svoo attn: not implemented yet\n");
    return CLI_FAIL;
}

/* cmd_synth.c : placeholder until its issue lands. */
#include "cli.h"

int cmd_synth(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "svoo synth: not implemented yet\n");
    return CLI_FAIL;
}

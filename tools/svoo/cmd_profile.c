/* cmd_profile.c : placeholder until its issue lands. */
#include "cli.h"

int cmd_profile(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "svoo profile: not implemented yet\n");
    return CLI_FAIL;
}

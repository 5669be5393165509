/* fuzz_npy.c : libFuzzer target for the .npy reader (and writer round trip).
 * Input: the bytes of a .npy file. See fuzz_tensorfile.h. */
#include "fuzz_tensorfile.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* the .npy branch of svoo_tensorfile_open: other inputs are the
     * safetensors target's */
    if (size < 6 || memcmp(data, "\x93NUMPY", 6) != 0) return -1;
    return fz_tensorfile_one(data, size, 1);
}

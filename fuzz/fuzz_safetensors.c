/* fuzz_safetensors.c : libFuzzer target for the safetensors reader (and writer
 * round trip). Input: the bytes of a .safetensors file. See fuzz_tensorfile.h. */
#include "fuzz_tensorfile.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size >= 6 && memcmp(data, "\x93NUMPY", 6) == 0) return -1; /* the npy target's */
    return fz_tensorfile_one(data, size, 0);
}

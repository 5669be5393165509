/* test_exp_baseline.c : the executor's softmax exp as a portable build runs it on a CPU
 * without AVX2. CMake compiles this file for baseline x86-64 (-march=x86-64) in every
 * build, so the check runs here whatever the machine: on an AVX2 machine the portable
 * library's ifunc picks its x86-64-v3 copy, and test_numerics sees only that one. */
#include "testutil.h"

#include "attend/exp_shift.h"

static void baseline(float *x, int n, float shift) {
    exp_shift(x, n, shift, 1);
}

static void test_exp_baseline_bits(void **state) {
    (void)state;
#if defined(__AVX2__) || !defined(__x86_64__)
    skip(); /* not compiled for baseline x86-64 (another architecture or compiler flags) */
#else
    tu_check_exp_shift(baseline, TU_EXP_BITS);
#endif
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exp_baseline_bits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* assign_sm90.h : the Hopper (sm_90a, wgmma) assignment kernel of
 * cuda/assign_sm90.cu, run by svoo_cu_assign (cuda/plan_cuda.cu) in place of
 * the mma.sync k_assign for 2-byte rows on compute capability 9.0. */
#ifndef SVOO_ASSIGN_SM90_H
#define SVOO_ASSIGN_SM90_H

#include "cuda_common.h"

/* clusters per weight tile: svoo_cu_weights lays wh out in tiles of this many
 * rows for k_assign90 */
enum { SVOO_CU_ASSIGN90_BN = 128 };

/* the arguments of k_assign (see svoo_cu_assign): ib / trunc are the packed
 * key's slot bits and truncation bound, gap the refinement switch, zero_bias
 * 1 when every cluster below c has bias 0 (Gram weights) */
struct svoo_cu_assign90_args {
    svoo_dview x;
    int BH, d, cpad, ib, c, zero_bias;
    int64_t n;
    float trunc, gap;
    const __half *wh;
    const float *bias_h, *wf, *bias;
    int32_t *label;
};

/* once per device, outside any capture: opt-in shared memory; returns
 * cudaErrorNotSupported where a block cannot have it (optin bytes) */
cudaError_t svoo_cu_assign90_setup(int optin);
/* dtype 1 (f16) or 2 (bf16), d 64 or 128, cpad a multiple of 128; grid: the
 * SMs (one block each); only enqueues on st */
cudaError_t svoo_cu_assign90(int dtype, const svoo_cu_assign90_args *g, int grid, cudaStream_t st);

#endif

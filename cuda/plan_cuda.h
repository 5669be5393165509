/* plan_cuda.h : launchers of the GPU planners (cuda/plan_cuda.cu), batched
 * over bh = b*H + h. Every launcher only enqueues on `st` (no allocation, no
 * synchronisation) and returns cudaGetLastError(). Buffers are device
 * pointers laid out per bh, back to back. dtype: 0 f32, 1 f16, 2 bf16
 * (svoo_dtype). */
#ifndef SVOO_PLAN_CUDA_H
#define SVOO_PLAN_CUDA_H

#include "cuda_common.h"

enum { SVOO_CU_SORT_CHUNK = 1024, SVOO_CU_TILE = 128, SVOO_CU_MAX_SELECT = 4096 };
#define SVOO_CU_MAX_HEADS 512

/* once per process/device, outside any capture: opt-in shared memory sizes */
cudaError_t svoo_cu_plan_setup(void);

/* mu[bh] (c x d f32) = c distinct rows of x sampled exactly as
 * svoo_init_from_samples with seed svoo_call_seed(cfg seed, layer, h, step) ^ xr */
cudaError_t svoo_cu_init_samples(int dtype, svoo_dview x, int BH, int64_t n, int d, int c,
                                 uint64_t cfg_seed, int layer, int step, uint64_t xr, float *mu,
                                 cudaStream_t st);
/* C[bh] = alpha * op(A) op(B)^T, op(A)[m][k] = TA ? A[k][m] : A[m][k],
 * op(B)[n][k] = TB ? B[k][n] : B[n][k]; batch strides in elements */
cudaError_t svoo_cu_gemm(int ta, int tb, const float *A, const float *B, float *C, int BH, int M,
                         int N, int K, float alpha, int64_t sa, int64_t sb, int64_t sc,
                         cudaStream_t st);
/* G[bh] = mu[bh]^T mu[bh] (d x d) over co rows */
cudaError_t svoo_cu_gram(const float *mu, int BH, int co, int d, float *G, cudaStream_t st);
/* assignment weights for argmax_c (x . w_c + bias_c):
 *   gram = 1: w_c = wf_c / |P_c| with wf = mu G (already in wf), |P_c|^2 = mu_c . wf_c
 *   gram = 0: w_c = mu_c, bias_c = -|mu_c|^2 / 2 (k-means)
 * scaled by 1 / max|w| per bh into fp16 wh (cpad rows, pad rows 0, bias -FLT_MAX),
 * laid out for the assignment kernel of rows of dtype (0 f32, 1 f16, 2 bf16) on
 * the current device: *grid90 > 0 is k_assign90's grid (tiles in its shared-memory
 * layout), 0 the mma.sync k_assign's (row-major); svoo_cu_assign takes it, so that
 * the layout and the kernel are decided once */
cudaError_t svoo_cu_weights(int dtype, int gram, const float *mu, float *wf, int BH, int c,
                            int cpad, int d, unsigned *wmax, float *bias, __half *wh, float *bias_h,
                            int *grid90, cudaStream_t st);
/* label[bh][i] = argmax_c (x_i . w_c + bias_c): fp16 tensor cores on wh/bias_h,
 * near ties re-scored in f32 from wf/bias (c x d unscaled; a second kernel,
 * k_refine, after the GEMM); of two scores equal within the fp16 error, the
 * lower index (three or more such: the top two of the packed keys decide);
 * gram: the weights of svoo_cu_weights with gram = 1 (bias 0 below c) */
cudaError_t svoo_cu_assign(int dtype, svoo_dview x, int BH, int64_t n, int d, const __half *wh,
                           const float *bias_h, int cpad, const float *wf, const float *bias, int c,
                           int gram, int grid90, int32_t *label, cudaStream_t st);
/* stable counting sort of labels: perm[bh][pos] = row, off[bh][0..c] */
cudaError_t svoo_cu_sort(const int32_t *label, int BH, int64_t n, int c, int32_t *hist,
                         int32_t *perm, int32_t *off, cudaStream_t st);
/* mu[bh][r] = mean of x rows of cluster r (empty clusters keep their row) */
cudaError_t svoo_cu_centroids(int dtype, svoo_dview x, int BH, int64_t n, int d, int c,
                              const int32_t *perm, const int32_t *off, float *mu, cudaStream_t st);
typedef struct {
    int floor_count[SVOO_CU_MAX_HEADS]; /* per head h */
} svoo_cu_floor;
/* top-p + floor selection from scores A[bh] (cq x ck, already / sqrt(d)):
 * colbuf[bh][r][0..cnt) ascending key clusters; dens[bh] += computed pairs */
cudaError_t svoo_cu_select(const float *A, const int32_t *q_off, const int32_t *k_off, int BH,
                           int H, int cq, int ck, double top_p, const svoo_cu_floor *fl,
                           int32_t *colbuf, int32_t *cnt, double *dens, cudaStream_t st);
/* compact CSR over all bh (global row_ptr offsets, [BH][cq+1]) */
cudaError_t svoo_cu_csr(const int32_t *cnt, const int32_t *colbuf, int BH, int cq, int ck,
                        int32_t *row_ptr, int32_t *col, cudaStream_t st);
/* one cluster each side, every block: q_off/k_off/row_ptr [BH][2], col [BH] */
cudaError_t svoo_cu_dense_plan(int BH, int64_t nq, int64_t nk, int32_t *q_off, int32_t *k_off,
                               int32_t *row_ptr, int32_t *col, double *dens, cudaStream_t st);

#endif

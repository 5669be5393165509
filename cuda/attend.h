/* attend.h : the CUDA sparse attention kernel behind a plain C interface.
 *
 * Semantics are those of the CPU executor (src/attend/sparse.c), applied to
 * every (b, h) of a batch at once and reading/writing the ORIGINAL row order:
 * for each (b, h) and each query cluster r, the permuted query positions
 * i in [q_off[r], q_off[r+1]) (original row q_perm[i]) attend with an exact
 * online softmax to the union of the selected key clusters
 * c in col[row_ptr[r] .. row_ptr[r+1]) (permuted key positions
 * j in [k_off[c], k_off[c+1]), original key row k_perm[j]); the result is
 * stored to output row q_perm[i]. Gather on load / scatter on store: no
 * permuted copies are made. A query cluster that selects no key (or only
 * empty clusters) gets zeros. Query rows that are in no cluster are not
 * written.
 *
 * Non-finite V on Hopper: the kernel packs the tails of a head's query
 * clusters into shared row tiles ("union items", worklist.cu); a key there
 * that a row's cluster did not select may still enter that row's P V with
 * weight 0 (in a key tile that the row's 64-row half of the item computes
 * for another member), so a NaN or Inf in its V row can turn the row NaN
 * too (0 x NaN); with EAR so does a pseudo-key whose cluster another member
 * dropped.
 * The CPU executor, the mma.sync kernel and SVOO_CUDA_PACK=0 keep such a
 * value to the rows that select it.
 *
 * The call is graph-capturable: no allocation, no host synchronisation. The
 * work list (query row tiles, ordered by (b, h) then cost) is built on the
 * device into the caller's workspace by small kernels on the same stream, or
 * beforehand on another (svoo_cuda_attend_worklist, params.worklist_ready).
 *
 * Include from C or C++; needs no CUDA header (the stream is a void *).
 */
#ifndef SVOO_CUDA_ATTEND_H
#define SVOO_CUDA_ATTEND_H

#include <stddef.h>
#include <stdint.h>

#include "svoo.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    /* tensors, device pointers, dtype below; logical shape (B, H, N, D), the
     * innermost dim D contiguous (stride 1). Strides in ELEMENTS.
     *   q: (B, H, N_q, D)   k, v: (B, H, N_k, D)   o: (B, H, N_q, D)
     * Every row start (data + b*stride_b + h*stride_h + n*stride_n) must be
     * 16-byte aligned: pointers 16-byte aligned, strides multiples of 8. */
    const void *q, *k, *v;
    void *o;
    int64_t q_stride_b, q_stride_h, q_stride_n;
    int64_t k_stride_b, k_stride_h, k_stride_n;
    int64_t v_stride_b, v_stride_h, v_stride_n;
    int64_t o_stride_b, o_stride_h, o_stride_n;
    int B, H, N_q, N_k, D; /* D = 64 or 128; N_q, N_k >= 1 */
    int dtype;             /* SVOO_CUDA_BF16 (0) or SVOO_CUDA_F16 (1); q, k, v, o alike */
    float scale;           /* softmax scale > 0, usually 1/sqrt(D) */

    /* The plan of every (b, h), concatenated, index bh = b*H + h. Device
     * pointers. Positions and cluster indices are LOCAL to their (b, h).
     *   q_perm : [B*H * N_q] new (permuted) position -> original query row,
     *            q_perm[bh*N_q + i] in [0, N_q). NULL = identity for all bh.
     *   k_perm : [B*H * N_k] likewise for keys. NULL = identity.
     *   q_off  : [B*H * (Cq+1)] query cluster r of bh = permuted positions
     *            q_off[bh*(Cq+1)+r] .. q_off[bh*(Cq+1)+r+1]-1 (monotone, within [0, N_q]).
     *   k_off  : [B*H * (Ck+1)] likewise for key clusters (within [0, N_k]).
     *   row_ptr: [B*H * (Cq+1)] query cluster r of bh selects key clusters
     *            col[row_ptr[bh*(Cq+1)+r] .. row_ptr[bh*(Cq+1)+r+1]-1];
     *            offsets are GLOBAL into col (bh's rows follow each other).
     *   col    : [total nnz] key cluster indices in [0, Ck); any order,
     *            distinct within a query cluster (duplicates would count twice). */
    const int32_t *q_perm, *k_perm;
    const int32_t *q_off, *k_off;
    const int32_t *row_ptr, *col;
    int Cq, Ck; /* clusters per (b, h), >= 1 */

    /* Optional output, NULL = off (the kernels then do exactly what they did
     * without it). [B*H * N_q] floats: lse[bh*N_q + i] = ln sum_j exp(scale *
     * q_i . k_j) over the selected keys of permuted query position i (the
     * log-sum-exp of the scaled scores), -inf where the row selects no key;
     * positions in no query cluster are not written. (svoo_cuda_attend_ear
     * keeps its own.) */
    float *lse;

    /* Optional, NULL = off: a cudaEvent_t recorded, on another stream, after
     * svoo_cuda_attend_worklist() with these params (plan, shapes, lse) and
     * this workspace, under the same SVOO_CUDA_PACK / SVOO_CUDA_KERNEL
     * settings (the list's shape is not checked again). The call then builds
     * no work list: its stream waits for the event just before the attention
     * kernel (in svoo_cuda_attend_ear, after the means pass), so that the work
     * list is built beside other work (a K/V copy, the means). The call
     * zeroes the list's item counters after the wait (its kernels consume
     * them), so a list may serve several calls with the same plan. A call that
     * fails its argument checks returns before the wait, so a capturing caller
     * joins its other stream itself. */
    void *worklist_ready;
} svoo_cuda_attend_params;

enum { SVOO_CUDA_BF16 = 0, SVOO_CUDA_F16 = 1 };

/*! svoo_cuda_attend_workspace() : device bytes of workspace svoo_cuda_attend
 *  needs for a batch of B*H heads, N_q query rows and Cq query clusters per
 *  head (an upper bound: valid for any plan of that shape). 256-byte aligned
 *  workspace pointer expected. */
size_t svoo_cuda_attend_workspace(int B, int H, int N_q, int Cq);

/*! svoo_cuda_attend() : enqueues the work-list kernels and the attention
 *  kernel on `stream` (a cudaStream_t; NULL = legacy default stream).
 *  Checks arguments on the host (no device memory is read on the host), and
 *  cudaGetLastError after each launch. On Hopper with union items the second
 *  attention launch is a programmatic dependent launch (it starts on the SMs
 *  the first leaves and ends after it); SVOO_CUDA_PDL=0 in the environment
 *  launches it plainly. The Hopper kernel signals dependents at its start: a
 *  caller's kernel launched next as a programmatic dependent must wait
 *  (griddepcontrol.wait) before it reads o or lse.
 *  @return : SVOO_OK, or SVOO_ERR_NULL_POINTER, SVOO_ERR_INVALID_ARGUMENT,
 *            SVOO_ERR_UNSUPPORTED_HEAD_DIM (D not 64/128),
 *            SVOO_ERR_UNKNOWN_DTYPE, SVOO_ERR_MISALIGNED (a row start not
 *            16-byte aligned, or the workspace not 256-byte aligned),
 *            SVOO_ERR_WORKSPACE_TOO_SMALL, SVOO_ERR_CUDA (launch failed; a
 *            sticky error from earlier work is reported here too). The reason
 *            is in svoo_cuda_attend_last_error(). Never aborts. */
svoo_status svoo_cuda_attend(const svoo_cuda_attend_params *p, void *workspace, size_t ws_bytes,
                             void *stream);

/*! svoo_cuda_attend_worklist() : enqueues on `stream` the work-list kernels
 *  of svoo_cuda_attend / svoo_cuda_attend_ear for p into workspace, the same
 *  list those calls would build (it depends on the plan and shapes, p->lse and
 *  the device's kernel), for a later call with worklist_ready set.
 *  @return : as svoo_cuda_attend (the same checks). */
svoo_status svoo_cuda_attend_worklist(const svoo_cuda_attend_params *p, void *workspace,
                                      size_t ws_bytes, void *stream);

/*! svoo_cuda_ear_workspace() : device bytes of the buffers svoo_cuda_attend_ear
 *  needs for B*H heads of N_q query rows, Ck key clusters of dimension D
 *  (pseudo-keys, their values and score biases; row log-sum-exps where the
 *  kernel takes two passes), 256-byte aligned. */
size_t svoo_cuda_ear_workspace(int B, int H, int N_q, int Ck, int D);

/*! svoo_cuda_attend_ear() : svoo_cuda_attend with error-aware routing
 *  (config.ear, src/attend/sparse.c): every key cluster c that query cluster r
 *  did not select (and that is not empty) enters r's softmax as one pseudo-key:
 *  key = mean of the cluster's keys, value = mean of its values, score bias
 *  ln(size_c). Replaces the svoo_cuda_attend call (same p, with p->lse NULL,
 *  same workspace). It first computes the means from p->k, p->v into ear_ws;
 *  on Hopper the attention kernel then takes the pseudo-keys as key tiles after
 *  each query cluster's own (one softmax over both); elsewhere the attention
 *  kernel writes each row's log-sum-exp and a second pass (mma.sync) merges the
 *  pseudo-keys' softmax partial into p->o:
 *  o = (e^lse_a o_a + e^lse_b o_b) / (e^lse_a + e^lse_b). Rows whose cluster
 *  drops nothing get what svoo_cuda_attend gives them, up to the rounding of
 *  a different key order (svoo_cuda_attend may pack union items or load runs
 *  of keys first); bit for bit where both take the keys in the same order,
 *  and in a union item only while the mean V of every cluster another member
 *  dropped is finite (the file head: non-finite V on Hopper).
 *  kv_copy: NULL, or device memory of 2 x B x H x N_k x D elements (16-byte
 *  aligned, overlapping no other buffer of the call) into which the means
 *  pass also copies K, then V, each [B][H][N_k][D] in key-cluster order (row
 *  j of a head = key k_perm[j]; rows in no key cluster are not written); the
 *  attention then reads that copy without k_perm (on Hopper: TMA key tiles),
 *  which saves a caller the separate copy (svoo_cuda_permute_rows).
 *  Graph-capturable (no allocation, no host sync).
 *  @return : as svoo_cuda_attend; SVOO_ERR_INVALID_ARGUMENT with p->lse set,
 *            SVOO_ERR_WORKSPACE_TOO_SMALL if ear_bytes is short,
 *            SVOO_ERR_MISALIGNED if kv_copy is not 16-byte aligned. */
svoo_status svoo_cuda_attend_ear(const svoo_cuda_attend_params *p, void *workspace, size_t ws_bytes,
                                 void *ear_ws, size_t ear_bytes, void *kv_copy, void *stream);

/*! svoo_cuda_attend_params_kv_copy() : points p's keys and values at kv, a
 *  copy laid out as svoo_cuda_attend_ear's kv_copy (K, then V, each
 *  [B][H][N_k][D] contiguous, in key-cluster order), and clears k_perm. */
static inline void svoo_cuda_attend_params_kv_copy(svoo_cuda_attend_params *p, void *kv) {
    const int64_t sh = (int64_t)p->N_k * p->D, sb = p->H * sh;
    p->k = kv;
    p->v = (char *)kv + (size_t)(p->B * sb) * 2;
    p->k_stride_b = p->v_stride_b = sb;
    p->k_stride_h = p->v_stride_h = sh;
    p->k_stride_n = p->v_stride_n = p->D;
    p->k_perm = NULL;
}

/*! svoo_cuda_attend_union_items() : dev hook for tests: the number of union
 *  items (worklist.cu: query-cluster tails of a head packed into shared row
 *  tiles) in the work list that this thread's last svoo_cuda_attend,
 *  svoo_cuda_attend_ear or svoo_cuda_attend_worklist call built in `workspace`
 *  for p, or -1 when that
 *  call did not pack (not the Hopper kernel, p->lse set, SVOO_CUDA_PACK=0,
 *  or a plan past the limits). Synchronises the device. */
int svoo_cuda_attend_union_items(const svoo_cuda_attend_params *p, void *workspace);

/*! svoo_cuda_attend_contiguous_keys() : 1 when svoo_cuda_attend on device
 *  `device` can load key tiles of 128 rows that follow each other with one TMA
 *  copy: the Hopper kernel, for calls with k_perm NULL and lse NULL whose K and
 *  V heads lie at one stride (k_stride_b = H k_stride_h); other calls (and
 *  svoo_cuda_attend_ear) and the
 *  other key tiles gather rows. 0 otherwise: other devices, builds without
 *  sm_90a, SVOO_CUDA_KERNEL=sm80, SVOO_CUDA_TMA=0, a bad ordinal (no error
 *  left behind). A caller that can lay K and V out in key-cluster order and
 *  pass k_perm NULL then gets that path. */
int svoo_cuda_attend_contiguous_keys(int device);

/*! svoo_cuda_attend_last_error() : message of this thread's last failing
 *  svoo_cuda_attend call ("" if none). Valid until the next call. */
const char *svoo_cuda_attend_last_error(void);

/*! svoo_cuda_permute_rows() : helper for the "explicit permute" variant and
 *  tests: dst[bh][i] = src[bh][perm[bh*N + i]] for all bh < B*H, i < N
 *  (inverse = 0), or dst[bh][perm[bh*N + i]] = src[bh][i] (inverse = 1).
 *  Contiguous (B*H, N, D) destination/source on the `contig` side, strided
 *  (strides as above) on the other: inverse = 0 reads strided src, writes
 *  contiguous dst; inverse = 1 reads contiguous src, writes strided dst.
 *  src and dst 16-byte aligned, strides multiples of 8 elements.
 *  @return : SVOO_OK or SVOO_ERR_CUDA / SVOO_ERR_INVALID_ARGUMENT /
 *  SVOO_ERR_MISALIGNED. */
svoo_status svoo_cuda_permute_rows(const void *src, void *dst, int64_t stride_b, int64_t stride_h,
                                   int64_t stride_n, int B, int H, int N, int D, int dtype,
                                   const int32_t *perm, int inverse, void *stream);

#ifdef __cplusplus
}
#endif
#endif

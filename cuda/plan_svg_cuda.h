/* plan_svg_cuda.h : Sparse VideoGen (method svg) on the GPU (plan_svg_cuda.cu).
 *
 * The two candidate block plans (spatial, temporal) depend only on the
 * geometry and the bands, so they are built once on the host with the CPU
 * planner (svoo_svg_build, src/plan/svg_masks.c) and uploaded at context
 * creation. Per call, on the device, batched over bh = b*H + h:
 *   1. svoo_cu_svg_classify: the MSE of each kind's pair-masked output against
 *      the exact output over the sampled video query rows (the CPU's rows and
 *      masks, svoo_svg_classify with pair_level = 1), split over key chunks
 *      (online softmax per chunk, one max per output as on the CPU), combined,
 *      and the decision temporal = mse_t < mse_s (ties and NaN: spatial);
 *   2. svoo_cu_svg_write: the chosen kind's plan into the per-bh arrays the
 *      attention kernel reads (cuda/attend.h): q_perm (= k_perm), q_off
 *      (= k_off), row_ptr (GLOBAL offsets, a fixed stride of max nnz per bh
 *      into col) and col, and the computed pairs into dens[bh].
 * Launchers only enqueue on `st` and return cudaGetLastError(). */
#ifndef SVOO_PLAN_SVG_CUDA_H
#define SVOO_PLAN_SVG_CUDA_H

#include "cuda_common.h"

#include "svoo.h"

enum { SVOO_CU_SVG_ROWS = 16, SVOO_CU_SVG_MAX_CHUNKS = 16 };

/* what the context sizes and keeps (host side) */
struct svoo_cu_svg_info {
    int64_t N, S, V, T, vid0,
        text0; /* tokens: all, per frame, video, text; first video/text index */
    int F;
    int64_t w[2];    /* band of each kind (spatial, temporal) */
    int nb;          /* blocks = clusters per side */
    int nnz[2];      /* CSR entries of each kind's plan */
    int stride;      /* max(nnz): per-bh stride into col */
    double pairs[2]; /* computed (query, key) pairs of each kind */
    int m;           /* sampled rows: min(svg_sample_rows, V) */
    int nch;         /* key chunks of the classification */
};

/* device copies of the two plans + per-call classification buffers */
struct svoo_cu_svg_dev {
    int32_t *off;    /* [nb + 1] block starts, both kinds */
    int32_t *rp[2];  /* [nb + 1] local row_ptr of each kind */
    int32_t *col[2]; /* [nnz[kind]] */
    int32_t *perm_t; /* [N] temporal layout (spatial: identity) */
    int32_t *kind;   /* [BH] 1 temporal */
    double *mse;     /* [BH][2] */
    double *rowerr;  /* [BH][m][2] */
    float *pm, *pl;  /* [BH][nch][3][m] chunk max / sum per (output, row) */
    float *pacc;     /* [BH][nch][3][m][d] chunk P.V */
};

/* geometry, bands, both plans (into p[2] when not NULL: svoo_plan *, the
 * caller releases them) and the sizes; SVOO status with the message set */
svoo_status svoo_cu_svg_prepare(const svoo_config *cfg, struct svoo_cu_svg_info *info,
                                void *plans2);

/* classification of every bh of the call (q, k, v: dtype 1 f16, 2 bf16) */
cudaError_t svoo_cu_svg_classify(int dtype, svoo_dview q, svoo_dview k, svoo_dview v, int BH, int d,
                                 const svoo_cu_svg_info &info, const svoo_cu_svg_dev &sd,
                                 cudaStream_t st);

/* the chosen kind's plan of every bh into the kernel's arrays */
cudaError_t svoo_cu_svg_write(int BH, const svoo_cu_svg_info &info, const svoo_cu_svg_dev &sd,
                              int32_t *q_perm, int32_t *q_off, int32_t *k_off, int32_t *row_ptr,
                              int32_t *col, double *dens, cudaStream_t st);

#endif

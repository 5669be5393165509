/* cuda_cli.c : the tool's device side. Staging of Q/K/V for `svoo run` and
 * `svoo demo` with --device cuda (bf16 device copies of the call's tensors,
 * outputs copied back for the fidelity metrics), and the recall of a GPU plan
 * measured on the host (also `svoo bench cuda`). Without the CUDA backend
 * every entry point fails with a message. */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attend/attend.h"
#include "core/internal.h"

struct cli_dev {
    int64_t H, N;
    int D;
    size_t bytes;   /* one (H, N, D) bf16 buffer */
    void *block;    /* device: q, k, v, ref, out */
    uint16_t *h[5]; /* host bf16 copies */
    float *head;    /* one head's (N, D) rows in f32, for the conversion */
};

#ifndef SVOO_WITH_CUDA
int cli_cuda_device(const char *cmd) {
    fprintf(stderr, "svoo %s: error: this build has no CUDA backend (docs/CUDA.md)\n", cmd);
    return CLI_FAIL;
}
int cli_cuda_fail(const char *cmd, int err, const char *what) {
    fprintf(stderr, "svoo %s: error: CUDA: %s: error %d\n", cmd, what, err);
    return CLI_FAIL;
}
int cli_dev_open(const char *cmd, int64_t H, int64_t N, int D, cli_dev **out) {
    (void)H, (void)N, (void)D;
    *out = NULL;
    fprintf(stderr,
            "svoo %s: error: --device cuda: this build has no CUDA backend (docs/CUDA.md)\n", cmd);
    return CLI_FAIL;
}
int cli_dev_upload(const char *cmd, cli_dev *d, const svoo_tensor src[3], svoo_tensor dst[5]) {
    (void)cmd, (void)d, (void)src, (void)dst;
    return CLI_FAIL;
}
int cli_dev_download(const char *cmd, cli_dev *d, int which, svoo_tensor *host) {
    (void)cmd, (void)d, (void)which, (void)host;
    return CLI_FAIL;
}
const uint16_t *cli_dev_host(const cli_dev *d, int which) {
    (void)d, (void)which;
    return NULL;
}
void cli_dev_free(cli_dev *d) {
    (void)d;
}
double cli_gpu_plan_recall(svoo_ctx *ctx, int layer, const uint16_t *q, const uint16_t *k,
                           int64_t H, int64_t N, int D, int rows) {
    (void)ctx, (void)layer, (void)q, (void)k, (void)H, (void)N, (void)D, (void)rows;
    return NAN;
}
#else
#include <cuda_runtime_api.h>

/* test hook of the CUDA backend (static library only): the plan of the
 * context's last call, every (b, h) concatenated (cuda/backend_cuda.cu) */
svoo_status svoo_cuda_debug_plan(svoo_ctx *ctx, int layer, int64_t B, int64_t n, int32_t *q_label,
                                 int32_t *k_label, int32_t *q_perm, int32_t *k_perm, int32_t *q_off,
                                 int32_t *k_off, int32_t *row_ptr, int32_t *col, int *cq, int *ck);

int cli_cuda_fail(const char *cmd, int err, const char *what) {
    const cudaError_t e = (cudaError_t)err;
    cudaGetLastError();
    fprintf(stderr, "svoo %s: error: CUDA: %s: %s: %s\n", cmd, what, cudaGetErrorName(e),
            cudaGetErrorString(e));
    return CLI_FAIL;
}

int cli_cuda_device(const char *cmd) {
    int ndev = 0;
    const cudaError_t e = cudaGetDeviceCount(&ndev);
    if (e) return cli_cuda_fail(cmd, e, "cudaGetDeviceCount");
    if (ndev > 0) return CLI_OK;
    fprintf(stderr, "svoo %s: error: CUDA: no CUDA device\n", cmd);
    return CLI_FAIL;
}

void cli_dev_free(cli_dev *d) {
    if (!d) return;
    if (d->block) cudaFree(d->block);
    for (int i = 0; i < 5; i++)
        free(d->h[i]);
    free(d->head);
    free(d);
}

int cli_dev_open(const char *cmd, int64_t H, int64_t N, int D, cli_dev **out) {
    *out = NULL;
    cli_dev *d = calloc(1, sizeof *d);
    if (!d) return cli_fail(cmd, SVOO_ERR_OUT_OF_MEMORY, NULL);
    d->H = H, d->N = N, d->D = D;
    d->bytes = (size_t)H * (size_t)N * (size_t)D * 2;
    if (cli_cuda_device(cmd)) {
        cli_dev_free(d);
        return CLI_FAIL;
    }
    cudaError_t e = cudaMalloc(&d->block, 5 * d->bytes);
    if (e) {
        d->block = NULL;
        cli_dev_free(d);
        return cli_cuda_fail(cmd, e, "cudaMalloc of the q, k, v and output buffers");
    }
    int ok = (d->head = malloc((size_t)N * (size_t)D * sizeof(float))) != NULL;
    for (int i = 0; i < 5 && ok; i++)
        ok = (d->h[i] = malloc(d->bytes)) != NULL;
    if (!ok) {
        cli_dev_free(d);
        return cli_fail(cmd, SVOO_ERR_OUT_OF_MEMORY, NULL);
    }
    *out = d;
    return CLI_OK;
}

static svoo_tensor dev_view(const cli_dev *d, int i) {
    svoo_tensor t =
        svoo_tensor_bhnd((char *)d->block + (size_t)i * d->bytes, SVOO_BF16, 1, d->H, d->N, d->D);
    t.device = SVOO_DEVICE_CUDA;
    return t;
}

/* src: [1, H, N, D] host views of any dtype and strides -> bf16 (H, N, D) on
 * the device; dst: device views of q, k, v, ref, out */
int cli_dev_upload(const char *cmd, cli_dev *d, const svoo_tensor src[3], svoo_tensor dst[5]) {
    for (int i = 0; i < 3; i++) {
        uint16_t *h = d->h[i];
        const size_t nd = (size_t)d->N * (size_t)d->D;
        for (int64_t hd = 0; hd < d->H; hd++) {
            svoo_rows_load(&src[i], 0, hd, NULL, 0, d->N, d->head);
            for (size_t j = 0; j < nd; j++)
                *h++ = svoo_f32_to_bf16(d->head[j]);
        }
        cudaError_t e = cudaMemcpy((char *)d->block + (size_t)i * d->bytes, d->h[i], d->bytes,
                                   cudaMemcpyHostToDevice);
        if (e) return cli_cuda_fail(cmd, e, "copy to the device");
    }
    for (int i = 0; i < 5; i++)
        dst[i] = dev_view(d, i);
    return CLI_OK;
}

int cli_dev_download(const char *cmd, cli_dev *d, int which, svoo_tensor *host) {
    cudaError_t e = cudaMemcpy(d->h[which], (char *)d->block + (size_t)which * d->bytes, d->bytes,
                               cudaMemcpyDeviceToHost);
    if (e) return cli_cuda_fail(cmd, e, "copy from the device");
    *host = svoo_tensor_bhnd(d->h[which], SVOO_BF16, 1, d->H, d->N, d->D);
    return CLI_OK;
}

const uint16_t *cli_dev_host(const cli_dev *d, int which) {
    return d->h[which];
}

double cli_gpu_plan_recall(svoo_ctx *ctx, int layer, const uint16_t *q, const uint16_t *k,
                           int64_t H, int64_t N, int D, int rows) {
    int cq = 1, ck = 1; /* the plan's cluster counts (svg: blocks) */
    if (rows <= 0 || svoo_cuda_debug_plan(ctx, layer, 1, N, NULL, NULL, NULL, NULL, NULL, NULL,
                                          NULL, NULL, &cq, &ck))
        return NAN;
    if (rows > N) rows = (int)N;
    const size_t nl = (size_t)(H * N);
    int32_t *qp = malloc(nl * 4), *kp = malloc(nl * 4), *qo = malloc((size_t)H * (cq + 1) * 4),
            *ko = malloc((size_t)H * (ck + 1) * 4), *rp = malloc((size_t)H * (cq + 1) * 4),
            *col = malloc((size_t)H * cq * ck * 4), *rl = malloc((size_t)(cq + 1) * 4),
            *rw = malloc((size_t)rows * 4);
    float *fq = malloc(sizeof(float) * N * D), *fk = malloc(sizeof(float) * N * D);
    double sum = 0;
    int ok = qp && kp && qo && ko && rp && col && rl && rw && fq && fk &&
             !svoo_cuda_debug_plan(ctx, layer, 1, N, NULL, NULL, qp, kp, qo, ko, rp, col, &cq, &ck);
    for (int r = 0; r < rows && ok; r++)
        rw[r] = (int32_t)((int64_t)r * N / rows);
    for (int64_t h = 0; h < H && ok; h++) {
        svoo_plan p;
        memset(&p, 0, sizeof p);
        p.n_q = p.n_k = N;
        p.cq = cq, p.ck = ck;
        p.q_perm = qp + h * N, p.k_perm = kp + h * N;
        p.q_off = qo + h * (cq + 1), p.k_off = ko + h * (ck + 1);
        const int32_t base = rp[h * (cq + 1)];
        for (int r = 0; r <= cq; r++)
            rl[r] = rp[h * (cq + 1) + r] - base;
        p.row_ptr = rl, p.col = col + base, p.nnz = rl[cq];
        for (size_t i = 0; i < (size_t)(N * D); i++)
            fq[i] = svoo_bf16_to_f32(q[h * N * D + i]), fk[i] = svoo_bf16_to_f32(k[h * N * D + i]);
        sum += svoo_plan_recall(&p, fq, fk, D, 1.0f / sqrtf((float)D), rw, rows);
    }
    free(qp), free(kp), free(qo), free(ko), free(rp), free(col), free(rl), free(rw), free(fq),
        free(fk);
    return ok ? sum / (double)H : NAN;
}
#endif

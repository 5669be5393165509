/* backend_cuda.cu : the CUDA backend table. Same flow as the CPU backend
 * (plan -> attend; the kernel gathers Q by the permutation and scatters O,
 * and gathers K and V too, except on Hopper, where they are first copied in
 * key-cluster order for its TMA key tiles, with EAR by the means pass), all
 * (b, h) of a call batched in each launch, on the context's stream.
 *
 * Everything the calls need is allocated on the device at svoo_ctx_create
 * for config.max_batch x config.max_tokens: one block holding the per-call
 * workspace and the per-layer state (labels and centroids of every (b, h) of
 * each layer that can run sparse). svoo_attention allocates nothing and
 * synchronises nothing unless the caller asks for stats (then one sync at the
 * end, for the event times and the density); a call can be captured in a
 * CUDA graph. */
#include <cuda_runtime.h>

#include "attend.h"
#include "plan_cuda.h"
#include "plan_svg_cuda.h"

extern "C" {
#include "core/ctx.h"
}

#include <stdio.h>

/* the attention kernel lives in its own files (cuda.cmake defines
 * SVOO_HAVE_CUDA_ATTEND when they are there); tolerate a build without it */
#ifdef SVOO_HAVE_CUDA_ATTEND
#define ATTEND_LINKED 1
#else
#pragma weak svoo_cuda_attend
#pragma weak svoo_cuda_attend_workspace
#pragma weak svoo_cuda_attend_last_error
#pragma weak svoo_cuda_attend_ear
#pragma weak svoo_cuda_attend_worklist
#pragma weak svoo_cuda_ear_workspace
#pragma weak svoo_cuda_attend_contiguous_keys
#pragma weak svoo_cuda_permute_rows
#define ATTEND_LINKED (svoo_cuda_attend != nullptr)
#endif

namespace {

struct cu_layer {
    int32_t *q_label, *k_label; /* [BH][N] */
    float *mu_q, *mu_k;         /* [BH][cq][d], [BH][ck][d] */
};

struct cu_ws {
    float *G, *wf, *bias, *bias_h, *A;
    __half *wh;
    unsigned *wmax;
    int32_t *hist, *colbuf, *cnt, *col, *q_perm, *k_perm, *q_off, *k_off, *row_ptr;
    double *dens;
    void *att;
    size_t att_bytes;
    void *ear; /* config.ear: pseudo-keys, values, biases (svoo_cuda_attend_ear) */
    size_t ear_bytes;
    uint16_t *kv; /* dm.kvperm: the call's K, then its V, each [B][H][N][d], in key-cluster order */
    svoo_cu_svg_dev svg; /* method svg: the two plans + classification buffers */
};

struct cu_dims {
    int64_t maxB, maxN;
    int H, d, cq, ck, C, cpad, nch;
    int sparse, warm_layers;
    /* K and V copied in key-cluster order before the attention (k_perm then
     * NULL), where the kernel loads runs of key rows by TMA (Hopper) */
    int kvperm;
    int svg; /* method svg: cq = ck = blocks, plans in svgi */
    svoo_cu_svg_info svgi;
};

struct cu_state {
    int dev;
    cu_dims dm;
    void *block;
    size_t bytes;
    cu_ws ws;
    cu_layer *layers;  /* [num_layers], NULL entries for dense-only layers */
    cudaEvent_t ev[4]; /* call start, plan end, attention end, K/V copy end */
    /* the work list is built on `side` beside the K/V copy or EAR's means pass:
     * fork after the plan, wl when it is built */
    cudaStream_t side;
    cudaEvent_t fork, wl;
    double *h_dens;  /* pinned, [BH] */
    int32_t *h_kind; /* pinned, [BH] (svg) */
};

/* 256-byte aligned sub-allocation of one device block (base NULL: sizing) */
struct carver {
    char *base;
    size_t used;
    template <class T> T *take(size_t count) {
        size_t o = (used + 255) & ~(size_t)255;
        used = o + count * sizeof(T);
        return base ? (T *)(base + o) : nullptr;
    }
};

int ceil_frac(double frac, int n) {
    return (int)ceil(frac * n - 1e-9);
}

svoo_status dims_of(const svoo_config *c, int64_t B, int64_t N, cu_dims *dm) {
    dm->maxB = B;
    dm->maxN = N;
    dm->H = c->num_heads;
    dm->d = c->head_dim;
    dm->sparse = c->method != SVOO_METHOD_DENSE;
    dm->warm_layers = ceil_frac(c->warmup_layer_frac, c->num_layers);
    dm->cq = dm->ck = 1;
    dm->svg = c->method == SVOO_METHOD_SVG;
    if (dm->svg) {
        svoo_status s = svoo_cu_svg_prepare(c, &dm->svgi, nullptr);
        if (s) return s;
        dm->cq = dm->ck = dm->svgi.nb;
        if (c->head_dim != 64 && c->head_dim != 128)
            return svoo_err(SVOO_ERR_UNSUPPORTED_HEAD_DIM,
                            "config.head_dim: %d (CUDA svg: 64 or 128)", c->head_dim);
        if ((int64_t)B * c->num_heads * dm->svgi.stride > INT32_MAX)
            return svoo_err(SVOO_ERR_UNSUPPORTED,
                            "svg: %lld x %d heads x %d blocks of plan exceed 2^31", (long long)B,
                            c->num_heads, dm->svgi.stride);
    } else if (dm->sparse) {
        svoo_clusters_resolve(c, N, &dm->cq, &dm->ck);
    }
    /* possible here (svoo_workspace_size: an upper bound, without touching the
     * device); cuda_init keeps it only where the kernel has TMA key tiles */
    dm->kvperm = dm->sparse && c->cuda_kv_order && ATTEND_LINKED;
    dm->C = dm->cq > dm->ck ? dm->cq : dm->ck;
    dm->cpad = (dm->C + SVOO_CU_TILE - 1) / SVOO_CU_TILE * SVOO_CU_TILE;
    dm->nch = (int)((N + SVOO_CU_SORT_CHUNK - 1) / SVOO_CU_SORT_CHUNK);
    if (B <= 0 || N <= 0 || N > INT32_MAX / 2)
        return svoo_err(SVOO_ERR_INVALID_ARGUMENT, "CUDA workspace: batch %lld, tokens %lld",
                        (long long)B, (long long)N);
    if (dm->H > SVOO_CU_MAX_HEADS)
        return svoo_err(SVOO_ERR_UNSUPPORTED, "config.num_heads: %d (CUDA backend: at most %d)",
                        dm->H, SVOO_CU_MAX_HEADS);
    /* planner and svg kernels put (b, h) in a grid's y or z dimension */
    if (B * dm->H > 65535)
        return svoo_err(SVOO_ERR_UNSUPPORTED,
                        "batch x heads: %lld x %d (CUDA backend: at most 65535)", (long long)B,
                        dm->H);
    if (dm->svg && N < dm->svgi.N)
        return svoo_err(
            SVOO_ERR_GEOMETRY,
            "config.max_tokens: %lld, below the %lld tokens of the svg geometry (frames x height "
            "x width + text_tokens)",
            (long long)N, (long long)dm->svgi.N);
    if (dm->sparse && !dm->svg && dm->ck > SVOO_CU_MAX_SELECT)
        return svoo_err(SVOO_ERR_UNSUPPORTED,
                        "config.k_clusters: %d at N = %lld (CUDA backend: at most %d)", dm->ck,
                        (long long)N, SVOO_CU_MAX_SELECT);
    if (dm->sparse && !dm->svg && dm->C > 6144)
        return svoo_err(SVOO_ERR_UNSUPPORTED,
                        "clusters: %d at N = %lld (CUDA backend: at most 6144)", dm->C,
                        (long long)N);
    /* the block map's row_ptr holds offsets over every (b, h) in int32 */
    if (dm->sparse && !dm->svg && (double)B * dm->H * dm->cq * dm->ck > (double)INT32_MAX)
        return svoo_err(SVOO_ERR_UNSUPPORTED,
                        "batch x heads x q_clusters x k_clusters: %lld x %d x %d x %d cluster "
                        "pairs exceed 2^31 (CUDA backend)",
                        (long long)B, dm->H, dm->cq, dm->ck);
    return SVOO_OK;
}

/* lays out (or sizes, with c.base == NULL) workspace + layer states */
void carve_all(const svoo_config *cfg, const cu_dims &dm, carver &c, cu_ws *ws, cu_layer *layers) {
    const size_t BH = (size_t)dm.maxB * dm.H, N = (size_t)dm.maxN, d = (size_t)dm.d;
    cu_ws w = {};
    w.q_off = c.take<int32_t>(BH * (dm.cq + 1));
    w.k_off = c.take<int32_t>(BH * (dm.ck + 1));
    w.row_ptr = c.take<int32_t>(BH * (dm.cq + 1));
    w.col = c.take<int32_t>(dm.svg ? BH * dm.svgi.stride : BH * dm.cq * dm.ck);
    w.dens = c.take<double>(BH);
    if (dm.svg) {
        const svoo_cu_svg_info &si = dm.svgi;
        w.q_perm = w.k_perm = c.take<int32_t>(BH * N); /* q_perm = k_perm */
        w.svg.off = c.take<int32_t>(si.nb + 1);
        for (int kd = 0; kd < 2; kd++) {
            w.svg.rp[kd] = c.take<int32_t>(si.nb + 1);
            w.svg.col[kd] = c.take<int32_t>(si.nnz[kd] > 0 ? si.nnz[kd] : 1);
        }
        w.svg.perm_t = c.take<int32_t>(si.N);
        w.svg.kind = c.take<int32_t>(BH);
        w.svg.mse = c.take<double>(BH * 2);
        w.svg.rowerr = c.take<double>(BH * si.m * 2);
        w.svg.pm = c.take<float>(BH * si.nch * 3 * si.m);
        w.svg.pl = c.take<float>(BH * si.nch * 3 * si.m);
        w.svg.pacc = c.take<float>(BH * si.nch * 3 * si.m * d);
    } else if (dm.sparse) {
        w.G = c.take<float>(BH * d * d);
        w.wf = c.take<float>(BH * dm.C * d);
        w.bias = c.take<float>(BH * dm.C);
        w.bias_h = c.take<float>(BH * dm.cpad);
        w.wh = c.take<__half>(BH * dm.cpad * d);
        w.wmax = c.take<unsigned>(BH);
        w.hist = c.take<int32_t>(BH * dm.nch * dm.C);
        w.A = c.take<float>(BH * dm.cq * dm.ck);
        w.colbuf = c.take<int32_t>(BH * dm.cq * dm.ck);
        w.cnt = c.take<int32_t>(BH * dm.cq);
        w.q_perm = c.take<int32_t>(BH * N);
        w.k_perm = c.take<int32_t>(BH * N);
    }
    w.att_bytes =
        ATTEND_LINKED ? svoo_cuda_attend_workspace((int)dm.maxB, dm.H, (int)dm.maxN, dm.cq) : 0;
    w.att = c.take<char>(w.att_bytes);
    if (cfg->ear && dm.sparse && ATTEND_LINKED) {
        w.ear_bytes = svoo_cuda_ear_workspace((int)dm.maxB, dm.H, (int)dm.maxN, dm.ck, dm.d);
        w.ear = c.take<char>(w.ear_bytes);
    }
    if (dm.kvperm) w.kv = c.take<uint16_t>(2 * BH * N * d);
    if (ws) *ws = w;
    if (dm.sparse && !dm.svg)
        for (int l = dm.warm_layers; l < cfg->num_layers; l++) {
            cu_layer L;
            L.q_label = c.take<int32_t>(BH * N);
            L.k_label = c.take<int32_t>(BH * N);
            L.mu_q = c.take<float>(BH * dm.cq * d);
            L.mu_k = c.take<float>(BH * dm.ck * d);
            if (layers) layers[l] = L;
        }
}

svoo_status limits_of(const svoo_config *cfg, int64_t *B, int64_t *N) {
    *B = cfg->max_batch > 0 ? cfg->max_batch : 1;
    *N = cfg->max_tokens > 0 ? cfg->max_tokens
                             : (int64_t)cfg->frames * cfg->height * cfg->width + cfg->text_tokens;
    if (*N <= 0)
        return svoo_err(
            SVOO_ERR_INVALID_ARGUMENT,
            "config.max_tokens: the CUDA backend sizes its workspace at context creation: "
            "set max_tokens (or frames/height/width)");
    return SVOO_OK;
}

svoo_status cu_fail(svoo_ctx *ctx, cudaError_t e, const char *what) {
    cudaGetLastError(); /* reported here: a non-sticky error must not fail the next call too */
    return svoo_ctx_err(ctx, SVOO_ERR_CUDA, "%s: %s: %s", what, cudaGetErrorName(e),
                        cudaGetErrorString(e));
}

/* switches to the context's device for the scope, restores the caller's */
struct device_guard {
    int prev = -1;
    cudaError_t err = cudaSuccess;
    explicit device_guard(int dev) {
        if ((err = cudaGetDevice(&prev))) return;
        if (prev != dev)
            err = cudaSetDevice(dev);
        else
            prev = -1;
    }
    ~device_guard() {
        if (prev >= 0) cudaSetDevice(prev);
    }
};

void cuda_release(svoo_ctx *ctx);

/* method svg: both candidate plans, built on the host once, into the device */
svoo_status upload_svg(svoo_ctx *ctx, cu_state *cs) {
    svoo_plan p[2];
    svoo_cu_svg_info si;
    svoo_status s = svoo_cu_svg_prepare(&ctx->cfg, &si, p);
    if (s) return svoo_ctx_take_err(ctx, s);
    const svoo_cu_svg_dev &sd = cs->ws.svg;
    const size_t nb1 = (size_t)si.nb + 1;
    cudaError_t e = cudaMemcpy(sd.off, p[0].q_off, nb1 * 4, cudaMemcpyHostToDevice);
    for (int kd = 0; kd < 2 && !e; kd++)
        if (!(e = cudaMemcpy(sd.rp[kd], p[kd].row_ptr, nb1 * 4, cudaMemcpyHostToDevice)))
            e = cudaMemcpy(sd.col[kd], p[kd].col, (size_t)si.nnz[kd] * 4, cudaMemcpyHostToDevice);
    if (!e) e = cudaMemcpy(sd.perm_t, p[1].q_perm, (size_t)si.N * 4, cudaMemcpyHostToDevice);
    svoo_plan_release(&p[0]);
    svoo_plan_release(&p[1]);
    return e ? cu_fail(ctx, e, "svg plans upload") : SVOO_OK;
}

svoo_status cuda_init(svoo_ctx *ctx) {
    const svoo_config *c = &ctx->cfg;
    /* refused rather than ignored: the check would read a device flag back, a host
     * synchronisation in every call */
    if (c->check_finite)
        return svoo_ctx_err(ctx, SVOO_ERR_UNSUPPORTED,
                            "config.check_finite: not available on CUDA");
    int ndev = 0;
    cudaError_t e = cudaGetDeviceCount(&ndev);
    if (e) return cu_fail(ctx, e, "cudaGetDeviceCount"); /* cu_fail clears the error */
    if (c->device_index < 0 || c->device_index >= ndev)
        return svoo_ctx_err(ctx, SVOO_ERR_WRONG_DEVICE,
                            "config.device_index: %d, %d CUDA device(s) present", c->device_index,
                            ndev);
    int64_t B, N;
    cu_dims dm;
    svoo_status s;
    if ((s = limits_of(c, &B, &N)) || (s = dims_of(c, B, N, &dm))) return svoo_ctx_take_err(ctx, s);
    device_guard g(c->device_index);
    if (g.err) return cu_fail(ctx, g.err, "cudaSetDevice");
    dm.kvperm = dm.kvperm && svoo_cuda_attend_contiguous_keys(c->device_index);
    if ((e = svoo_cu_plan_setup())) return cu_fail(ctx, e, "kernel attributes");

    cu_state *cs = (cu_state *)svoo_calloc(1, sizeof *cs);
    if (!cs) return svoo_ctx_err(ctx, SVOO_ERR_OUT_OF_MEMORY, "CUDA backend state");
    ctx->backend_state = cs;
    cs->dev = c->device_index;
    cs->dm = dm;
    cs->layers = (cu_layer *)svoo_calloc((size_t)c->num_layers, sizeof *cs->layers);
    if (!cs->layers) return svoo_ctx_err(ctx, SVOO_ERR_OUT_OF_MEMORY, "CUDA layer table");
    carver sz = {nullptr, 0};
    carve_all(c, dm, sz, nullptr, nullptr);
    cs->bytes = sz.used;
    if ((e = cudaMalloc(&cs->block, cs->bytes))) {
        cudaGetLastError();
        cs->block = nullptr;
        return svoo_ctx_err(
            ctx, e == cudaErrorMemoryAllocation ? SVOO_ERR_OUT_OF_MEMORY : SVOO_ERR_CUDA,
            "CUDA workspace + layer state: %.1f MB for batch %lld x %lld tokens: %s",
            cs->bytes / 1e6, (long long)B, (long long)N, cudaGetErrorString(e));
    }
    carver cv = {(char *)cs->block, 0};
    carve_all(c, dm, cv, &cs->ws, cs->layers);
    for (int i = 0; i < 4; i++)
        if ((e = cudaEventCreate(&cs->ev[i]))) return cu_fail(ctx, e, "cudaEventCreate");
    if ((e = cudaEventCreateWithFlags(&cs->fork, cudaEventDisableTiming)) ||
        (e = cudaEventCreateWithFlags(&cs->wl, cudaEventDisableTiming)))
        return cu_fail(ctx, e, "cudaEventCreate");
    /* the highest priority: the work list's first kernel (one block of 1024
     * threads a head) gets its SMs before the copy's many small blocks fill them */
    int lo = 0, hi = 0;
    if ((e = cudaDeviceGetStreamPriorityRange(&lo, &hi)) ||
        (e = cudaStreamCreateWithPriority(&cs->side, cudaStreamNonBlocking, hi)))
        return cu_fail(ctx, e, "cudaStreamCreate");
    if ((e = cudaMallocHost(&cs->h_dens, (size_t)B * dm.H * sizeof(double))) ||
        (e = cudaMallocHost(&cs->h_kind, (size_t)B * dm.H * sizeof(int32_t))))
        return cu_fail(ctx, e, "cudaMallocHost");
    if (dm.svg && (s = upload_svg(ctx, cs))) return s;
    /* the uploads (svg tables, the planner's constants) are pageable copies on the
     * legacy stream: done before a call on a non-blocking stream may read them */
    if ((e = cudaStreamSynchronize(cudaStreamLegacy))) return cu_fail(ctx, e, "uploads");
#if CUDART_VERSION >= 12080
    int sdev = c->device_index;
    if (c->cuda_stream && (e = cudaStreamGetDevice((cudaStream_t)c->cuda_stream, &sdev)))
        return cu_fail(ctx, e, "config.cuda_stream");
    if (sdev != c->device_index)
        return svoo_ctx_err(ctx, SVOO_ERR_WRONG_DEVICE,
                            "config.cuda_stream: a stream of cuda:%d, the context is on cuda:%d",
                            sdev, c->device_index);
#endif
    return SVOO_OK;
}

void cuda_release(svoo_ctx *ctx) {
    cu_state *cs = (cu_state *)ctx->backend_state;
    if (!cs) return;
    device_guard g(cs->dev);
    if (cs->block) cudaFree(cs->block);
    for (int i = 0; i < 4; i++)
        if (cs->ev[i]) cudaEventDestroy(cs->ev[i]);
    if (cs->fork) cudaEventDestroy(cs->fork);
    if (cs->wl) cudaEventDestroy(cs->wl);
    if (cs->side) cudaStreamDestroy(cs->side);
    if (cs->h_dens) cudaFreeHost(cs->h_dens);
    if (cs->h_kind) cudaFreeHost(cs->h_kind);
    svoo_free(cs->layers);
    svoo_free(cs);
    ctx->backend_state = nullptr;
}

svoo_status check_view(svoo_ctx *ctx, const svoo_tensor *t, const char *name, int dev) {
    cudaPointerAttributes a;
    cudaError_t e = cudaPointerGetAttributes(&a, t->data);
    if (e == cudaErrorInvalidValue) {
        cudaGetLastError(); /* older runtimes: invalid value for plain host memory */
        return svoo_ctx_err(ctx, SVOO_ERR_WRONG_DEVICE, "%s: %p is not CUDA device memory", name,
                            t->data);
    }
    if (e) return cu_fail(ctx, e, "cudaPointerGetAttributes"); /* e.g. a sticky error */
    if (a.type != cudaMemoryTypeDevice && a.type != cudaMemoryTypeManaged)
        return svoo_ctx_err(ctx, SVOO_ERR_WRONG_DEVICE,
                            "%s: %p is host memory, the context is on cuda:%d", name, t->data, dev);
    if (a.type == cudaMemoryTypeDevice && a.device != dev)
        return svoo_ctx_err(ctx, SVOO_ERR_WRONG_DEVICE,
                            "%s: memory of cuda:%d, the context is on cuda:%d", name, a.device,
                            dev);
    if ((uintptr_t)t->data % 16 || t->stride[0] % 8 || t->stride[1] % 8 || t->stride[2] % 8)
        return svoo_ctx_err(
            ctx, SVOO_ERR_MISALIGNED,
            "%s: rows must start on 16-byte boundaries (pointer %p, strides %lld, %lld, %lld "
            "elements must be multiples of 8)",
            name, t->data, (long long)t->stride[0], (long long)t->stride[1],
            (long long)t->stride[2]);
    return SVOO_OK;
}

svoo_dview view_of(const svoo_tensor *t) {
    svoo_dview v;
    v.p = t->data;
    v.sb = t->stride[0];
    v.sh = t->stride[1];
    v.sn = t->stride[2];
    v.H = (int)t->shape[1];
    return v;
}

#define TRY(call, what)                                                                            \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            *what_out = what;                                                                      \
            return e_;                                                                             \
        }                                                                                          \
    } while (0)

/* one side's assignment: mu_o (other side, Gram) or none (k-means) -> labels,
 * then sort + centroid update of this side */
cudaError_t assign_side(cu_state *cs, int gram, svoo_dview x, int dtype, int BH, int64_t n,
                        const float *mu_o, int co, float *mu_s, int cs_, int32_t *label,
                        int32_t *perm, int32_t *off, cudaStream_t st, const char **what_out) {
    const cu_ws &w = cs->ws;
    const int d = cs->dm.d, cpad = (cs_ + SVOO_CU_TILE - 1) / SVOO_CU_TILE * SVOO_CU_TILE;
    if (gram) {
        /* G = mu_o^T mu_o (d x d), wf = mu_s G */
        TRY(svoo_cu_gram(mu_o, BH, co, d, w.G, st), "Gram matrix");
        TRY(svoo_cu_gemm(0, 0, mu_s, w.G, w.wf, BH, cs_, d, d, 1.0f, (int64_t)cs_ * d,
                         (int64_t)d * d, (int64_t)cs_ * d, st),
            "profile weights");
    }
    int grid90 = 0; /* the weights' layout and the assignment kernel, decided once */
    TRY(svoo_cu_weights(dtype, gram, mu_s, w.wf, BH, cs_, cpad, d, w.wmax, w.bias, w.wh, w.bias_h,
                        &grid90, st),
        "weights");
    TRY(svoo_cu_assign(dtype, x, BH, n, d, w.wh, w.bias_h, cpad, w.wf, w.bias, cs_, gram, grid90,
                       label, st),
        "assignment");
    TRY(svoo_cu_sort(label, BH, n, cs_, w.hist, perm, off, st), "counting sort");
    TRY(svoo_cu_centroids(dtype, x, BH, n, d, cs_, perm, off, mu_s, st), "centroids");
    return cudaSuccess;
}

cudaError_t enqueue_plan(svoo_ctx *ctx, cu_state *cs, const svoo_call *call, svoo_dview xq,
                         svoo_dview xk, int dtype, int BH, int64_t n, int replan, int warm,
                         cudaStream_t st, const char **what_out) {
    const svoo_config *c = &ctx->cfg;
    const cu_ws &w = cs->ws;
    const cu_layer &L = cs->layers[call->layer];
    const int d = cs->dm.d, H = cs->dm.H;
    int rq, rk; /* clusters at this n */
    svoo_clusters_resolve(c, n, &rq, &rk);
    /* both sides' first centroids from sampled rows; the key side's seed salted
     * with "key" as in src/plan/cocluster.c */
    auto init = [&]() -> cudaError_t {
        TRY(svoo_cu_init_samples(dtype, xq, BH, n, d, rq, c->seed, call->layer, call->step, 0,
                                 L.mu_q, st),
            "init");
        TRY(svoo_cu_init_samples(dtype, xk, BH, n, d, rk, c->seed, call->layer, call->step,
                                 0x6b6579ull /* "key" */, L.mu_k, st),
            "init");
        return cudaSuccess;
    };
    if (c->method == SVOO_METHOD_SVOO && replan) {
        if (cudaError_t e = init()) return e;
        for (int it = 0; it < c->iters; it++) {
            cudaError_t e;
            if ((e = assign_side(cs, 1, xk, dtype, BH, n, L.mu_q, rq, L.mu_k, rk, L.k_label,
                                 w.k_perm, w.k_off, st, what_out)) ||
                (e = assign_side(cs, 1, xq, dtype, BH, n, L.mu_k, rk, L.mu_q, rq, L.q_label,
                                 w.q_perm, w.q_off, st, what_out)))
                return e;
        }
    } else if (c->method == SVOO_METHOD_SVG2 && replan) {
        int iters = warm ? c->kmeans_iters : c->kmeans_iters_first;
        if (iters < 1) iters = 1;
        if (cudaError_t e = warm ? cudaSuccess : init()) return e;
        for (int it = 0; it < iters; it++) {
            cudaError_t e;
            if ((e = assign_side(cs, 0, xq, dtype, BH, n, nullptr, 0, L.mu_q, rq, L.q_label,
                                 w.q_perm, w.q_off, st, what_out)) ||
                (e = assign_side(cs, 0, xk, dtype, BH, n, nullptr, 0, L.mu_k, rk, L.k_label,
                                 w.k_perm, w.k_off, st, what_out)))
                return e;
        }
    } else {
        /* reuse: cached labels and cached centroids (src/plan/cocluster.c); only
         * the permutation (workspace, shared by the layers) is rebuilt */
        TRY(svoo_cu_sort(L.q_label, BH, n, rq, w.hist, w.q_perm, w.q_off, st), "counting sort");
        TRY(svoo_cu_sort(L.k_label, BH, n, rk, w.hist, w.k_perm, w.k_off, st), "counting sort");
    }
    /* selection: A = mu_q mu_k^T / sqrt(d), top-p + floor, CSR */
    svoo_cu_floor fl;
    for (int h = 0; h < H; h++) {
        double ratio = c->method == SVOO_METHOD_SVOO
                           ? svoo_floor_ratio(ctx, call->step, call->layer, h)
                           : c->floor_ratio;
        fl.floor_count[h] = (int)floor(ratio * rk);
    }
    TRY(cudaMemsetAsync(w.dens, 0, (size_t)BH * sizeof(double), st), "memset");
    TRY(svoo_cu_gemm(0, 0, L.mu_q, L.mu_k, w.A, BH, rq, rk, d, (float)(1.0 / sqrt((double)d)),
                     (int64_t)rq * d, (int64_t)rk * d, (int64_t)rq * rk, st),
        "centroid scores");
    TRY(svoo_cu_select(w.A, w.q_off, w.k_off, BH, H, rq, rk, c->top_p, &fl, w.colbuf, w.cnt, w.dens,
                       st),
        "selection");
    TRY(svoo_cu_csr(w.cnt, w.colbuf, BH, rq, rk, w.row_ptr, w.col, st), "block map");
    return cudaSuccess;
}

svoo_status cuda_attention(svoo_ctx *ctx, const svoo_call *call, const svoo_tensor *q,
                           const svoo_tensor *k, const svoo_tensor *v, svoo_tensor *out,
                           svoo_stats *stats) {
    const svoo_config *c = &ctx->cfg;
    cu_state *cs = (cu_state *)ctx->backend_state;
    const int64_t B = q->shape[0], H = q->shape[1], NQ = q->shape[2], NK = k->shape[2];
    const int d = (int)q->shape[3];
    svoo_status s;
    if (q->dtype != SVOO_BF16 && q->dtype != SVOO_F16)
        return svoo_ctx_err(ctx, SVOO_ERR_UNSUPPORTED,
                            "q: dtype %s (the CUDA backend takes bf16 and f16)",
                            svoo_dtype_name(q->dtype));
    if (B > cs->dm.maxB || NQ > cs->dm.maxN || NK > cs->dm.maxN)
        return svoo_ctx_err(
            ctx, SVOO_ERR_WORKSPACE_TOO_SMALL,
            "batch %lld x %lld queries x %lld keys: the context was sized for batch %lld x %lld "
            "tokens (config.max_batch / max_tokens)",
            (long long)B, (long long)NQ, (long long)NK, (long long)cs->dm.maxB,
            (long long)cs->dm.maxN);
    if (!ATTEND_LINKED)
        return svoo_ctx_err(ctx, SVOO_ERR_UNSUPPORTED,
                            "CUDA attention kernel not built into this library");
    const svoo_tensor *ts[4] = {q, k, v, out};
    const char *names[4] = {"q", "k", "v", "out"};
    for (int i = 0; i < 4; i++)
        if ((s = check_view(ctx, ts[i], names[i], cs->dev))) return s;
    int rq = 1, rk = 1;
    const int svg = c->method == SVOO_METHOD_SVG;
    if (svg && !call->dense) {
        rq = rk = cs->dm.svgi.nb;
    } else if (!call->dense) {
        svoo_clusters_resolve(c, NQ, &rq, &rk);
        if (rq > NQ || rk > NQ)
            return svoo_ctx_err(ctx, SVOO_ERR_INVALID_ARGUMENT,
                                "config.q_clusters/k_clusters: %d / %d exceed N = %lld", rq, rk,
                                (long long)NQ);
    }
    device_guard g(cs->dev);
    if (g.err) return cu_fail(ctx, g.err, "cudaSetDevice");
    cudaError_t e = cudaGetLastError();
    if (e) return cu_fail(ctx, e, "CUDA error pending before svoo_attention");
    cudaStream_t st = (cudaStream_t)c->cuda_stream;
    cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
    if ((e = cudaStreamIsCapturing(st, &cap))) return cu_fail(ctx, e, "cudaStreamIsCapturing");
    const int timed = call->want_stats && cap == cudaStreamCaptureStatusNone;
    const int BH = (int)(B * H);
    const char *what = "event";
    svoo_layer_state *ls = &ctx->layers[call->layer];
    int replan = 0;
    const int prev_planned = ls->planned_step;

    if (timed && (e = cudaEventRecord(cs->ev[0], st))) return cu_fail(ctx, e, what);
    svoo_cuda_attend_params ap = {};
    /* config.ear: svoo_cuda_attend_ear adds the dropped clusters' pseudo-keys
     * (cuda/ear_cuda.cu) */
    const int ear = c->ear && !call->dense;
    if (call->dense) {
        what = "dense plan";
        e = svoo_cu_dense_plan(BH, NQ, NK, cs->ws.q_off, cs->ws.k_off, cs->ws.row_ptr, cs->ws.col,
                               cs->ws.dens, st);
        ap.Cq = ap.Ck = 1;
    } else {
        replan = svoo_layer_should_replan(ctx, ls, call->step, B, NQ);
        const int warm = ls->planned_step >= 0 && ls->B == B && ls->N == NQ;
        ls->planned_step = -1; /* until this call succeeds */
        ls->B = B;
        ls->N = NQ;
        if (svg) {
            /* classification on the sampled rows, then the chosen kind's plan */
            what = "svg classification";
            e = svoo_cu_svg_classify((int)q->dtype, view_of(q), view_of(k), view_of(v), BH, d,
                                     cs->dm.svgi, cs->ws.svg, st);
            if (!e) {
                what = "svg plan";
                e = svoo_cu_svg_write(BH, cs->dm.svgi, cs->ws.svg, cs->ws.q_perm, cs->ws.q_off,
                                      cs->ws.k_off, cs->ws.row_ptr, cs->ws.col, cs->ws.dens, st);
            }
        } else {
            e = enqueue_plan(ctx, cs, call, view_of(q), view_of(k), (int)q->dtype, BH, NQ, replan,
                             warm, st, &what);
        }
        ap.q_perm = cs->ws.q_perm;
        ap.k_perm = cs->ws.k_perm;
        ap.Cq = rq;
        ap.Ck = rk;
    }
    if (e) return cu_fail(ctx, e, what);
    if (timed && (e = cudaEventRecord(cs->ev[1], st))) return cu_fail(ctx, e, "event");

    ap.q = q->data;
    ap.k = k->data;
    ap.v = v->data;
    ap.o = out->data;
    ap.q_stride_b = q->stride[0], ap.q_stride_h = q->stride[1], ap.q_stride_n = q->stride[2];
    ap.k_stride_b = k->stride[0], ap.k_stride_h = k->stride[1], ap.k_stride_n = k->stride[2];
    ap.v_stride_b = v->stride[0], ap.v_stride_h = v->stride[1], ap.v_stride_n = v->stride[2];
    ap.o_stride_b = out->stride[0], ap.o_stride_h = out->stride[1], ap.o_stride_n = out->stride[2];
    ap.B = (int)B;
    ap.H = (int)H;
    ap.N_q = (int)NQ;
    ap.N_k = (int)NK;
    ap.D = d;
    ap.dtype = q->dtype == SVOO_BF16 ? SVOO_CUDA_BF16 : SVOO_CUDA_F16;
    ap.scale = 1.0f / sqrtf((float)d);
    ap.q_off = cs->ws.q_off;
    ap.k_off = cs->ws.k_off;
    ap.row_ptr = cs->ws.row_ptr;
    ap.col = cs->ws.col;
    /* the work list on the side stream, beside the K/V copy (with EAR, the
     * means pass); the attention call waits for it before its kernel. The
     * side stream is joined back on every path, so that a capture of st
     * never ends with it forked */
    auto join = [&] { /* on an error path: st waits for the side stream */
                      if (!call->dense) cudaStreamWaitEvent(st, cs->wl, 0);
    };
    if (!call->dense) {
        if ((e = cudaEventRecord(cs->fork, st)) || (e = cudaStreamWaitEvent(cs->side, cs->fork, 0)))
            return cu_fail(ctx, e, "work-list fork");
        s = svoo_cuda_attend_worklist(&ap, cs->ws.att, cs->ws.att_bytes, cs->side);
        if ((e = cudaEventRecord(cs->wl, cs->side))) return cu_fail(ctx, e, "work-list join");
        if (s) {
            join();
            return svoo_ctx_err(ctx, s, "work list: %s", svoo_cuda_attend_last_error());
        }
        ap.worklist_ready = cs->wl;
    }
    /* K and V in key-cluster order: the kernel loads key tiles by TMA (a tile
     * of adjacent selected clusters is one run of rows, a few boxes). With EAR
     * the means pass makes the copy (svoo_cuda_attend_ear's kv_copy), which
     * reads K and V anyway */
    const int kvcopy = cs->dm.kvperm && !call->dense;
    if (kvcopy && !ear) { /* (bf16 / f16 bits) */
        uint16_t *kc = cs->ws.kv, *vc = kc + B * H * NK * d;
        if ((s = svoo_cuda_permute_rows(k->data, kc, ap.k_stride_b, ap.k_stride_h, ap.k_stride_n,
                                        ap.B, ap.H, ap.N_k, d, ap.dtype, ap.k_perm, 0, st)) ||
            (s = svoo_cuda_permute_rows(v->data, vc, ap.v_stride_b, ap.v_stride_h, ap.v_stride_n,
                                        ap.B, ap.H, ap.N_k, d, ap.dtype, ap.k_perm, 0, st))) {
            join();
            return svoo_ctx_err(ctx, s, "key-cluster order: %s", svoo_cuda_attend_last_error());
        }
        svoo_cuda_attend_params_kv_copy(&ap, kc);
    }
    if (timed && (e = cudaEventRecord(cs->ev[3], st))) {
        join();
        return cu_fail(ctx, e, "event");
    }
    s = ear ? svoo_cuda_attend_ear(&ap, cs->ws.att, cs->ws.att_bytes, cs->ws.ear, cs->ws.ear_bytes,
                                   kvcopy ? cs->ws.kv : nullptr, st)
            : svoo_cuda_attend(&ap, cs->ws.att, cs->ws.att_bytes, st);
    if (s) {
        join(); /* (a check failed before the attention call's wait) */
        return svoo_ctx_err(ctx, s, "attention kernel%s: %s", ear ? " (EAR)" : "",
                            svoo_cuda_attend_last_error());
    }
    if (timed) {
        if ((e = cudaEventRecord(cs->ev[2], st)) ||
            (e = cudaMemcpyAsync(cs->h_dens, cs->ws.dens, (size_t)BH * sizeof(double),
                                 cudaMemcpyDeviceToHost, st)) ||
            (svg && !call->dense &&
             (e = cudaMemcpyAsync(cs->h_kind, cs->ws.svg.kind, (size_t)BH * sizeof(int32_t),
                                  cudaMemcpyDeviceToHost, st))) ||
            (e = cudaEventSynchronize(cs->ev[2])) || (e = cudaStreamSynchronize(st)))
            return cu_fail(ctx, e, "stats");
        float ms0 = 0, ms1 = 0, ms2 = 0;
        cudaEventElapsedTime(&ms0, cs->ev[0], cs->ev[1]);
        cudaEventElapsedTime(&ms1, cs->ev[3], cs->ev[2]);
        cudaEventElapsedTime(&ms2, cs->ev[1], cs->ev[3]);
        stats->ms_plan = ms0;
        stats->ms_attend = ms1;
        /* the K/V copy in key-cluster order (Hopper; with EAR in ms_attend: the
         * means pass makes it); Q and O are gathered and scattered inside the
         * kernel */
        stats->ms_permute = ms2;
        double dsum = 0;
        for (int i = 0; i < BH; i++)
            dsum += cs->h_dens[i] / ((double)NQ * (double)NK);
        stats->density = dsum / BH;
        if (svg && !call->dense)
            for (int i = 0; i < BH; i++) {
                stats->temporal_heads += cs->h_kind[i] != 0;
                stats->spatial_heads += cs->h_kind[i] == 0;
            }
    } else if ((e = cudaGetLastError())) {
        return cu_fail(ctx, e, "launch");
    }
    if (!call->dense) ls->planned_step = replan ? call->step : prev_planned;
    stats->replanned = !call->dense && replan;
    return SVOO_OK;
}

const svoo_backend k_backend = {"cuda", cuda_init, cuda_release, cuda_attention};

} // namespace

extern "C" const svoo_backend *svoo_backend_cuda(void) {
    return &k_backend;
}
extern "C" int svoo_has_cuda(void) {
    return 1;
}

extern "C" svoo_status svoo_workspace_size(const svoo_config *cfg, int64_t B, int64_t N,
                                           size_t *bytes) {
    if (!cfg || !bytes) return svoo_err(SVOO_ERR_NULL_POINTER, "cfg or bytes is NULL");
    *bytes = 0;
    if (cfg->device != SVOO_DEVICE_CUDA) return SVOO_OK;
    svoo_status s = svoo_config_validate(cfg); /* what svoo_ctx_create would refuse */
    if (s) return s;
    cu_dims dm;
    if ((s = dims_of(cfg, B, N, &dm))) return s;
    carver sz = {nullptr, 0};
    carve_all(cfg, dm, sz, nullptr, nullptr);
    *bytes = sz.used;
    return SVOO_OK;
}

/* ---- test hooks (static library only; not part of the API) ---- */
extern "C" svoo_status svoo_cuda_debug_plan(svoo_ctx *ctx, int layer, int64_t B, int64_t n,
                                            int32_t *q_label, int32_t *k_label, int32_t *q_perm,
                                            int32_t *k_perm, int32_t *q_off, int32_t *k_off,
                                            int32_t *row_ptr, int32_t *col, int *cq, int *ck) {
    cu_state *cs = (cu_state *)ctx->backend_state;
    int rq = 1, rk = 1;
    if (cs->dm.svg)
        rq = rk = cs->dm.svgi.nb;
    else
        svoo_clusters_resolve(&ctx->cfg, n, &rq, &rk);
    *cq = rq;
    *ck = rk;
    const size_t BH = (size_t)B * cs->dm.H;
    cudaStream_t st = (cudaStream_t)ctx->cfg.cuda_stream;
    cudaError_t e = cudaStreamSynchronize(st);
    const cu_layer &L = cs->layers[layer];
    const cu_ws &w = cs->ws;
    struct {
        void *dst;
        const void *src;
        size_t n;
    } cp[] = {{q_label, L.q_label, BH * n},       {k_label, L.k_label, BH * n},
              {q_perm, w.q_perm, BH * n},         {k_perm, w.k_perm, BH * n},
              {q_off, w.q_off, BH * (rq + 1)},    {k_off, w.k_off, BH * (rk + 1)},
              {row_ptr, w.row_ptr, BH * (rq + 1)}};
    for (size_t i = 0; i < sizeof cp / sizeof *cp && !e; i++)
        if (cp[i].dst && cp[i].src)
            e = cudaMemcpy(cp[i].dst, cp[i].src, cp[i].n * 4, cudaMemcpyDeviceToHost);
    if (!e && col) {
        int32_t last = 0;
        e = cudaMemcpy(&last, w.row_ptr + BH * (rq + 1) - 1, 4, cudaMemcpyDeviceToHost);
        if (!e) e = cudaMemcpy(col, w.col, (size_t)last * 4, cudaMemcpyDeviceToHost);
    }
    return e ? cu_fail(ctx, e, "debug plan copy") : SVOO_OK;
}

/* test hook: the svg classification of the context's last sparse call:
 * kind[bh] (1 temporal) and mse[bh][2] (spatial, temporal); NULL skips */
extern "C" svoo_status svoo_cuda_debug_svg(svoo_ctx *ctx, int64_t B, int32_t *kind, double *mse) {
    cu_state *cs = (cu_state *)ctx->backend_state;
    if (!cs || !cs->dm.svg)
        return svoo_ctx_err(ctx, SVOO_ERR_INVALID_ARGUMENT, "debug svg: not an svg context");
    const size_t BH = (size_t)B * cs->dm.H;
    cudaError_t e = cudaStreamSynchronize((cudaStream_t)ctx->cfg.cuda_stream);
    if (!e && kind) e = cudaMemcpy(kind, cs->ws.svg.kind, BH * 4, cudaMemcpyDeviceToHost);
    if (!e && mse)
        e = cudaMemcpy(mse, cs->ws.svg.mse, BH * 2 * sizeof(double), cudaMemcpyDeviceToHost);
    return e ? cu_fail(ctx, e, "debug svg copy") : SVOO_OK;
}

/* test_cuda.c : the CUDA backend against the CPU backend on the same bf16
 * inputs (needs a GPU; run by `make test-cuda`, also under compute-sanitizer).
 *   - every method: the GPU plan is valid and the GPU output equals the CPU
 *     executor run on that plan (bf16 tolerance); the GPU planners agree with
 *     the CPU planners (labels >= 99%, density) and the output's error vs
 *     dense is that of the CPU backend (dense: rel-L2 vs the CPU backend);
 *   - reuse steps, batch > 1, [B, N, H, D] views, D = 64;
 *   - config.ear (svoo, svg2 and svg): GPU vs the CPU executor with EAR on the GPU plan; with
 *     top_p = 1 (nothing dropped) the same bytes as without EAR; the EAR
 *     kernels on a hand-made plan (Ck 2100: three 1024-cluster chunks, empty
 *     key clusters, an empty plan row);
 *   - K and V in key-cluster order (Hopper TMA key tiles) = the gathered rows;
 *   - the Hopper kernel's union items (query-cluster tails packed into shared
 *     row tiles) on a hand-made plan, with and without packing, per query
 *     cluster too; with EAR, pseudo-keys that carry weight, and the rows that
 *     drop nothing as without EAR, bit for bit;
 *   - several layers' calls captured in a CUDA graph and replayed = the
 *     uncaptured output, bit for bit;
 *   - bad inputs: host pointers, misaligned rows, f32, too large a batch,
 *     device index out of range.
 * Exit status 0 when every check passes. SVOO_TEST_QUICK=1 runs a subset
 * (memcheck, synccheck), SVOO_TEST_QUICK=2 a few small calls of every kernel
 * (racecheck, which tracks each shared-memory access and needs minutes on
 * the quick subset's 4,133-token heads). */
#include "../../cuda/attend.h" /* svoo_cuda_attend(_ear) (test_ear_direct) */

/* dev hook of cuda/attend_sm80.cu: 0 automatic, 1 the mma.sync kernel (on Hopper
 * too: EAR's two-pass path), 2 the wgmma kernel */
extern int svoo_cuda_attend_kernel;
#include "attend/attend.h"
#include "core/ctx.h"
#include "plan/svg.h"

#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>

static int g_fail, g_checks;
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        g_checks++;                                                                                \
        if (!(cond)) {                                                                             \
            g_fail++;                                                                              \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                            \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
        }                                                                                          \
    } while (0)
#define CU(call)                                                                                   \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_) {                                                                                  \
            printf("FATAL %s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_));    \
            exit(2);                                                                               \
        }                                                                                          \
    } while (0)

svoo_status svoo_cuda_debug_plan(svoo_ctx *ctx, int layer, int64_t B, int64_t n, int32_t *q_label,
                                 int32_t *k_label, int32_t *q_perm, int32_t *k_perm, int32_t *q_off,
                                 int32_t *k_off, int32_t *row_ptr, int32_t *col, int *cq, int *ck);
svoo_status svoo_cuda_debug_svg(svoo_ctx *ctx, int64_t B, int32_t *kind, double *mse);

static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double gauss(uint64_t *s) {
    double u = ((rng_next(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    double v = ((rng_next(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

/* clustered q/k (tokens around 24 centres per head, q and k sharing them) so
 * that attention is concentrated like a video DiT's; v gaussian */
static void make_qkv(uint16_t *q, uint16_t *k, uint16_t *v, int64_t B, int64_t H, int64_t N, int D,
                     uint64_t seed) {
    enum { NC = 24 };
    float *cen = malloc(sizeof(float) * NC * D);
    for (int64_t bh = 0; bh < B * H; bh++) {
        uint64_t s = seed * 1315423911u + (uint64_t)bh;
        for (int i = 0; i < NC * D; i++)
            cen[i] = (float)(gauss(&s) * 1.2);
        for (int64_t n = 0; n < N; n++) {
            int cq = (int)(rng_next(&s) % NC), ck = (int)((n * 7 + rng_next(&s) % 3) % NC);
            for (int j = 0; j < D; j++) {
                size_t o = ((size_t)bh * N + n) * D + j;
                q[o] = svoo_f32_to_bf16(cen[cq * D + j] + (float)(gauss(&s) * 0.6));
                k[o] = svoo_f32_to_bf16(cen[ck * D + j] + (float)(gauss(&s) * 0.6));
                v[o] = svoo_f32_to_bf16((float)gauss(&s));
            }
        }
    }
    free(cen);
}

static svoo_tensor view(void *p, int dev, int64_t B, int64_t H, int64_t N, int64_t D, int bnhd) {
    svoo_tensor t = bnhd ? svoo_tensor_bnhd(p, SVOO_BF16, B, N, H, D)
                         : svoo_tensor_bhnd(p, SVOO_BF16, B, H, N, D);
    if (dev) t.device = SVOO_DEVICE_CUDA;
    return t;
}

static double rel_l2(const uint16_t *a, const uint16_t *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double x = svoo_bf16_to_f32(a[i]), y = svoo_bf16_to_f32(ref[i]);
        num += (x - y) * (x - y);
        den += y * y;
    }
    return sqrt(num / (den > 0 ? den : 1));
}

/* [B,N,H,D] -> [B,H,N,D] */
static void to_bhnd(const uint16_t *src, uint16_t *dst, int64_t B, int64_t H, int64_t N, int D) {
    for (int64_t b = 0; b < B; b++)
        for (int64_t n = 0; n < N; n++)
            for (int64_t h = 0; h < H; h++)
                memcpy(dst + (((b * H + h) * N + n) * D), src + (((b * N + n) * H + h) * D),
                       (size_t)D * 2);
}

/* device copies of q, k, v (`bytes` each) and an output buffer of out_bytes */
static void dev_qkv(const void *q, const void *k, const void *v, size_t bytes, size_t out_bytes,
                    void **dq, void **dk, void **dv, void **dout) {
    CU(cudaMalloc(dq, bytes));
    CU(cudaMalloc(dk, bytes));
    CU(cudaMalloc(dv, bytes));
    CU(cudaMalloc(dout, out_bytes));
    CU(cudaMemcpy(*dq, q, bytes, cudaMemcpyHostToDevice));
    CU(cudaMemcpy(*dk, k, bytes, cudaMemcpyHostToDevice));
    CU(cudaMemcpy(*dv, v, bytes, cudaMemcpyHostToDevice));
}
/* dev_qkv of f16 copies of the bf16 q, k, v (cnt values each; f16 holds the test values
 * exactly but for subnormals); the host arrays stay bf16 */
static void dev_qkv_f16(const uint16_t *q, const uint16_t *k, const uint16_t *v, size_t cnt,
                        size_t out_bytes, void **dq, void **dk, void **dv, void **dout) {
    uint16_t *h = malloc(cnt * 2 * 3);
    const uint16_t *src[3] = {q, k, v};
    for (int t = 0; t < 3; t++)
        for (size_t i = 0; i < cnt; i++)
            h[t * cnt + i] = svoo_f32_to_f16(svoo_bf16_to_f32(src[t][i]));
    dev_qkv(h, h + cnt, h + 2 * cnt, cnt * 2, out_bytes, dq, dk, dv, dout);
    free(h);
}
static void dev_free4(void *a, void *b, void *c, void *d) {
    cudaFree(a);
    cudaFree(b);
    cudaFree(c);
    cudaFree(d);
}

/* runs the CPU executor on the plan the GPU made (copied back), writes the
 * [B,H,N,D] bf16 result to ref; 0 when every plan validates */
static int cpu_exec_gpu_plan(svoo_ctx *g, int layer, const uint16_t *q, const uint16_t *k,
                             const uint16_t *v, int64_t B, int64_t H, int64_t N, int D, int ear,
                             uint16_t *ref) {
    const size_t BH = (size_t)(B * H), nl = BH * N;
    int cq = 1, ck = 1; /* the plan's cluster counts (svg: blocks) */
    if (svoo_cuda_debug_plan(g, layer, B, N, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, &cq,
                             &ck))
        return 1;
    int32_t *qp = malloc(nl * 4), *kp = malloc(nl * 4), *qo = malloc(BH * (cq + 1) * 4),
            *ko = malloc(BH * (ck + 1) * 4), *rp = malloc(BH * (cq + 1) * 4),
            *col = malloc(BH * cq * ck * 4), *rl = malloc((cq + 1) * 4);
    float *fq = malloc(sizeof(float) * N * D), *fk = malloc(sizeof(float) * N * D),
          *fv = malloc(sizeof(float) * N * D), *fo = malloc(sizeof(float) * N * D);
    int bad = 0;
    svoo_status s =
        svoo_cuda_debug_plan(g, layer, B, N, NULL, NULL, qp, kp, qo, ko, rp, col, &cq, &ck);
    if (s) bad = 1;
    for (size_t bh = 0; bh < BH && !bad; bh++) {
        svoo_plan p;
        memset(&p, 0, sizeof p);
        p.n_q = p.n_k = N;
        p.cq = cq;
        p.ck = ck;
        p.q_perm = qp + bh * N;
        p.k_perm = kp + bh * N;
        p.q_off = qo + bh * (cq + 1);
        p.k_off = ko + bh * (ck + 1);
        int32_t base = rp[bh * (cq + 1)];
        for (int r = 0; r <= cq; r++)
            rl[r] = rp[bh * (cq + 1) + r] - base;
        p.row_ptr = rl;
        p.col = col + base;
        p.nnz = rl[cq];
        if (svoo_plan_validate(&p)) {
            printf("  plan of bh %zu invalid: %s\n", bh, svoo_last_error(NULL));
            bad = 1;
            break;
        }
        for (int64_t i = 0; i < N; i++)
            for (int j = 0; j < D; j++) {
                fq[i * D + j] = svoo_bf16_to_f32(q[(bh * N + p.q_perm[i]) * D + j]);
                fk[i * D + j] = svoo_bf16_to_f32(k[(bh * N + p.k_perm[i]) * D + j]);
                fv[i * D + j] = svoo_bf16_to_f32(v[(bh * N + p.k_perm[i]) * D + j]);
            }
        svoo_attend_cpu(&p, fq, fk, fv, D, 1.0f / sqrtf((float)D), ear, fo, 0);
        for (int64_t i = 0; i < N; i++)
            for (int j = 0; j < D; j++)
                ref[(bh * N + p.q_perm[i]) * D + j] = svoo_f32_to_bf16(fo[i * D + j]);
    }
    free(qp), free(kp), free(qo), free(ko), free(rp), free(col), free(rl);
    free(fq), free(fk), free(fv), free(fo);
    return bad;
}

typedef struct {
    const char *name;
    svoo_method method;
    int64_t B, H, N;
    int D, bnhd, cq, ck;
    int steps[4], nsteps; /* steps run in order */
    double tol_out;       /* rel-L2 GPU vs CPU backend */
    int ear;              /* config.ear on both backends */
    int f16;              /* the GPU gets f16 copies of the bf16 data (exact) */
} scenario;

static void base_cfg(svoo_config *c, const scenario *sc, svoo_device dev) {
    svoo_config_init(c, sc->method);
    c->device = dev;
    c->head_dim = sc->D;
    c->num_heads = (int)sc->H;
    c->num_layers = 4;
    c->num_steps = 50;
    c->warmup_step_frac = 0;
    c->warmup_layer_frac = 0;
    c->q_clusters = sc->cq;
    c->k_clusters = sc->ck;
    c->max_batch = (int)sc->B;
    c->max_tokens = sc->N;
    c->ear = sc->ear;
    if (sc->ear) c->top_p = 0.7; /* EAR cases: more dropped clusters, as at the density it is for */
    c->log_fn = NULL;
}

static void quiet(void *u, const char *m) {
    (void)u;
    (void)m;
}

static void run_scenario(const scenario *sc) {
    const int64_t B = sc->B, H = sc->H, N = sc->N;
    const int D = sc->D;
    const size_t cnt = (size_t)B * H * N * D, bytes = cnt * 2;
    uint16_t *q = malloc(bytes), *k = malloc(bytes), *v = malloc(bytes), *oc = malloc(bytes),
             *og = malloc(bytes), *tmp = malloc(bytes), *noear = sc->ear ? malloc(bytes) : NULL;
    make_qkv(q, k, v, B, H, N, D, 1234 + (uint64_t)N);
    /* host data is [B,H,N,D]; for bnhd scenarios, build the [B,N,H,D] buffers */
    uint16_t *hq = q, *hk = k, *hv = v;
    if (sc->bnhd) {
        hq = malloc(bytes), hk = malloc(bytes), hv = malloc(bytes);
        for (int64_t b = 0; b < B; b++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t n = 0; n < N; n++) {
                    size_t s = (((b * H + h) * N + n) * D), d = (((b * N + n) * H + h) * D);
                    memcpy(hq + d, q + s, D * 2);
                    memcpy(hk + d, k + s, D * 2);
                    memcpy(hv + d, v + s, D * 2);
                }
    }
    void *dq, *dk, *dv, *dout;
    if (sc->f16) { /* bf16 -> f16 in place for the upload, then back (both exact) */
        uint16_t *hs[3] = {hq, hk, hv};
        for (int t = 0; t < 3; t++)
            for (size_t i = 0; i < cnt; i++)
                hs[t][i] = svoo_f32_to_f16(svoo_bf16_to_f32(hs[t][i]));
        dev_qkv(hq, hk, hv, bytes, bytes, &dq, &dk, &dv, &dout);
        for (int t = 0; t < 3; t++)
            for (size_t i = 0; i < cnt; i++)
                hs[t][i] = svoo_f32_to_bf16(svoo_f16_to_f32(hs[t][i]));
    } else {
        dev_qkv(hq, hk, hv, bytes, bytes, &dq, &dk, &dv, &dout);
    }

    svoo_config cc, cg;
    base_cfg(&cc, sc, SVOO_DEVICE_CPU);
    base_cfg(&cg, sc, SVOO_DEVICE_CUDA);
    cc.log_fn = cg.log_fn = quiet;
    svoo_ctx *ctx_c = NULL, *ctx_g = NULL;
    svoo_status s1 = svoo_ctx_create(&cc, &ctx_c), s2 = svoo_ctx_create(&cg, &ctx_g);
    CHECK(s1 == SVOO_OK && s2 == SVOO_OK, "%s: ctx create: %s / %s", sc->name, svoo_status_name(s1),
          svoo_last_error(NULL));
    if (s1 || s2) goto done;
    for (int si = 0; si < sc->nsteps; si++) {
        const int step = sc->steps[si], layer = 1;
        svoo_tensor tq = view(hq, 0, B, H, N, D, sc->bnhd), tk = view(hk, 0, B, H, N, D, sc->bnhd),
                    tv = view(hv, 0, B, H, N, D, sc->bnhd), to = view(tmp, 0, B, H, N, D, sc->bnhd);
        svoo_tensor gq = view(dq, 1, B, H, N, D, sc->bnhd), gk = view(dk, 1, B, H, N, D, sc->bnhd),
                    gv = view(dv, 1, B, H, N, D, sc->bnhd),
                    go = view(dout, 1, B, H, N, D, sc->bnhd);
        if (sc->f16) gq.dtype = gk.dtype = gv.dtype = go.dtype = SVOO_F16;
        svoo_stats stc, stg;
        svoo_stats_init(&stc);
        svoo_stats_init(&stg);
        s1 = svoo_attention(ctx_c, step, layer, &tq, &tk, &tv, &to, &stc);
        CU(cudaMemset(dout, 0, bytes));
        s2 = svoo_attention(ctx_g, step, layer, &gq, &gk, &gv, &go, &stg);
        CHECK(s1 == SVOO_OK, "%s step %d: cpu: %s", sc->name, step, svoo_last_error(ctx_c));
        CHECK(s2 == SVOO_OK, "%s step %d: cuda: %s: %s", sc->name, step, svoo_status_name(s2),
              svoo_last_error(ctx_g));
        if (s1 || s2) break;
        CU(cudaMemcpy(og, dout, bytes, cudaMemcpyDeviceToHost));
        if (sc->f16)
            for (size_t i = 0; i < cnt; i++)
                og[i] = svoo_f32_to_bf16(svoo_f16_to_f32(og[i]));
        if (sc->bnhd) {
            to_bhnd(tmp, oc, B, H, N, D);
            to_bhnd(og, tmp, B, H, N, D);
            memcpy(og, tmp, bytes);
        } else {
            memcpy(oc, tmp, bytes);
        }
        double r = rel_l2(og, oc, cnt), rx = 0, eg = 0, ec = 0, en = 0;
        if (sc->method == SVOO_METHOD_DENSE) {
            CHECK(r <= sc->tol_out, "%s step %d: rel-L2 cuda vs cpu %.4g > %.3g", sc->name, step, r,
                  sc->tol_out);
        } else {
            /* the GPU's own plan, executed on the CPU */
            int bad = cpu_exec_gpu_plan(ctx_g, layer, q, k, v, B, H, N, D, sc->ear, tmp);
            CHECK(!bad, "%s step %d: GPU plan invalid", sc->name, step);
            /* EAR: the same plan without it, for the error comparison below */
            if (sc->ear) cpu_exec_gpu_plan(ctx_g, layer, q, k, v, B, H, N, D, 0, noear);
            rx = rel_l2(og, tmp, cnt);
            CHECK(rx <= 1e-2, "%s step %d: rel-L2 cuda vs CPU executor on the GPU plan %.4g",
                  sc->name, step, rx);
            /* error vs dense: that of the CPU backend */
            svoo_config cd;
            base_cfg(&cd, sc, SVOO_DEVICE_CPU);
            cd.method = SVOO_METHOD_DENSE;
            svoo_ctx *dctx = NULL;
            svoo_tensor rq = view(q, 0, B, H, N, D, 0), rk = view(k, 0, B, H, N, D, 0),
                        rv = view(v, 0, B, H, N, D, 0), dov = view(tmp, 0, B, H, N, D, 0);
            if (svoo_ctx_create(&cd, &dctx) == SVOO_OK &&
                svoo_attention(dctx, step, layer, &rq, &rk, &rv, &dov, NULL) == SVOO_OK) {
                eg = rel_l2(og, tmp, cnt);
                ec = rel_l2(oc, tmp, cnt);
                CHECK(eg <= 1.25 * ec + 0.01, "%s step %d: error vs dense cuda %.4g, cpu %.4g",
                      sc->name, step, eg, ec);
                /* EAR lowers the error vs dense, where the plan's error without it is
                 * above twice the bf16 kernel noise (rx: GPU vs the CPU executor, both
                 * EAR); below that (a plan that keeps ~all the mass) there is nothing
                 * for EAR to lower (measured: 0.0004 without, 0.0024 = noise with) */
                if (sc->ear) {
                    en = rel_l2(noear, tmp, cnt);
                    CHECK(en <= 2 * rx || eg < en,
                          "%s step %d: EAR does not lower the error vs dense: %.4g, %.4g "
                          "without EAR on the same plan",
                          sc->name, step, eg, en);
                }
            } else {
                CHECK(0, "dense reference failed");
            }
            svoo_ctx_free(dctx);
        }
        CHECK(stg.replanned == stc.replanned, "%s step %d: replanned %d vs %d", sc->name, step,
              stg.replanned, stc.replanned);
        double dd = fabs(stg.density - stc.density);
        CHECK(dd <= 0.02 + 0.05 * stc.density, "%s step %d: density cuda %.4f vs cpu %.4f",
              sc->name, step, stg.density, stc.density);
        double agree_q = 1, agree_k = 1;
        if (sc->method != SVOO_METHOD_DENSE) {
            size_t nl = (size_t)B * H * N;
            int32_t *ql = malloc(nl * 4), *kl = malloc(nl * 4);
            int cq, ck;
            svoo_status s = svoo_cuda_debug_plan(ctx_g, layer, B, N, ql, kl, NULL, NULL, NULL, NULL,
                                                 NULL, NULL, &cq, &ck);
            CHECK(s == SVOO_OK, "debug plan: %s", svoo_last_error(ctx_g));
            int64_t eq = 0, ek = 0;
            for (int64_t bh = 0; bh < B * H; bh++) {
                const svoo_head_state *hs = &ctx_c->layers[layer].heads[bh];
                for (int64_t i = 0; i < N; i++) {
                    eq += hs->q_label[i] == ql[bh * N + i];
                    ek += hs->k_label[i] == kl[bh * N + i];
                }
            }
            agree_q = (double)eq / nl;
            agree_k = (double)ek / nl;
            CHECK(agree_q >= 0.99 && agree_k >= 0.99, "%s step %d: label agreement q %.4f k %.4f",
                  sc->name, step, agree_q, agree_k);
            free(ql);
            free(kl);
        }
        printf("  %-20s step %2d: vs cpu %.1e, vs cpu-exec %.1e, vs dense %.4f (cpu %.4f), density "
               "%.4f (cpu "
               "%.4f), labels q %.4f k %.4f, plan %.2f ms attend %.2f ms\n",
               sc->name, step, r, rx, eg, ec, stg.density, stc.density, agree_q, agree_k,
               stg.ms_plan, stg.ms_attend);
        if (sc->ear)
            printf("  %-20s          EAR: vs dense %.4f, same plan without EAR %.4f%s\n", sc->name,
                   eg, en, en <= 2 * rx ? " (below 2x the kernel noise: not compared)" : "");
    }
done:
    svoo_ctx_free(ctx_c);
    svoo_ctx_free(ctx_g);
    dev_free4(dq, dk, dv, dout);
    if (sc->bnhd) {
        free(hq);
        free(hk);
        free(hv);
    }
    free(q);
    free(k);
    free(v);
    free(oc);
    free(og);
    free(tmp);
    free(noear);
}

/* several layers' calls captured in one graph, replayed: same bytes as the
 * uncaptured calls on a fresh context */
static void test_graph(svoo_method m, int ear) {
    const int64_t B = 1, H = 2, N = 3001;
    const int D = 128, L = 3, step = 12;
    const size_t cnt = (size_t)B * H * N * D, bytes = cnt * 2;
    uint16_t *q = malloc(bytes), *k = malloc(bytes), *v = malloc(bytes), *o1 = malloc(bytes * L),
             *o2 = malloc(bytes * L);
    make_qkv(q, k, v, B, H, N, D, 77);
    void *dq, *dk, *dv, *dout;
    dev_qkv(q, k, v, bytes, bytes * L, &dq, &dk, &dv, &dout);
    cudaStream_t st;
    CU(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    scenario sc = {"graph", m, B, H, N, D, 0, 0, 0, {0}, 0, 0, ear, 0};
    svoo_ctx *ctx[2] = {NULL, NULL};
    for (int run = 0; run < 2; run++) {
        svoo_config c;
        base_cfg(&c, &sc, SVOO_DEVICE_CUDA);
        c.cuda_stream = st;
        c.log_fn = quiet;
        svoo_status s = svoo_ctx_create(&c, &ctx[run]);
        CHECK(s == SVOO_OK, "graph ctx: %s", svoo_last_error(NULL));
        if (s) goto done;
        cudaGraph_t graph = NULL;
        cudaGraphExec_t exec = NULL;
        CU(cudaMemsetAsync(dout, 0, bytes * L, st));
        if (run == 1) CU(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
        for (int l = 0; l < L; l++) {
            svoo_tensor gq = view(dq, 1, B, H, N, D, 0), gk = view(dk, 1, B, H, N, D, 0),
                        gv = view(dv, 1, B, H, N, D, 0),
                        go = view((char *)dout + bytes * l, 1, B, H, N, D, 0);
            s = svoo_attention(ctx[run], step, l, &gq, &gk, &gv, &go, NULL);
            CHECK(s == SVOO_OK, "graph call layer %d (run %d): %s", l, run,
                  svoo_last_error(ctx[run]));
        }
        if (run == 1) {
            CU(cudaStreamEndCapture(st, &graph));
            CU(cudaGraphInstantiate(&exec, graph, 0));
            for (int rep = 0; rep < 2; rep++)
                CU(cudaGraphLaunch(exec, st));
        }
        CU(cudaStreamSynchronize(st));
        CU(cudaMemcpy(run ? o2 : o1, dout, bytes * L, cudaMemcpyDeviceToHost));
        if (exec) cudaGraphExecDestroy(exec);
        if (graph) cudaGraphDestroy(graph);
    }
    CHECK(memcmp(o1, o2, bytes * L) == 0,
          "%s: graph replay differs from the direct calls (rel-L2 %.3g)", svoo_method_name(m),
          rel_l2(o2, o1, cnt * L));
    printf("  graph capture %-6s%s: %d layers replayed, %s\n", svoo_method_name(m),
           ear ? " ear" : "", L, memcmp(o1, o2, bytes * L) == 0 ? "identical" : "DIFFERENT");
done:
    svoo_ctx_free(ctx[0]);
    svoo_ctx_free(ctx[1]);
    cudaStreamDestroy(st);
    dev_free4(dq, dk, dv, dout);
    free(q);
    free(k);
    free(v);
    free(o1);
    free(o2);
}

/* K and V copied in key-cluster order (Hopper: the kernel's TMA key tiles,
 * config.cuda_kv_order = 1) against the gather of the original rows (0): the
 * same plan, the keys summed in another order, so equal to bf16 rounding; the
 * copy's workspace and time; svoo_cuda_attend_contiguous_keys on bad ordinals */
static void test_kv_order(svoo_method m, int64_t B, int D) {
    const int64_t H = 3, N = 4133;
    const size_t cnt = (size_t)B * H * N * D, bytes = cnt * 2;
    CHECK(svoo_cuda_attend_contiguous_keys(-1) == 0 &&
              svoo_cuda_attend_contiguous_keys(1 << 20) == 0,
          "contiguous keys on a bad ordinal");
    CHECK(cudaGetLastError() == cudaSuccess, "contiguous keys left an error");
    int dev = 0, major = 0, minor = 0;
    CU(cudaGetDevice(&dev));
    CU(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    CU(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
    const int tma = svoo_cuda_attend_contiguous_keys(dev);
    CHECK(tma == 0 || (major == 9 && minor == 0), "contiguous keys on sm_%d%d", major, minor);
    uint16_t *q = malloc(bytes), *k = malloc(bytes), *v = malloc(bytes), *o = malloc(bytes * 2);
    make_qkv(q, k, v, B, H, N, D, 91);
    void *dq, *dk, *dv, *dout;
    dev_qkv(q, k, v, bytes, bytes * 2, &dq, &dk, &dv, &dout);
    /* 24 key clusters of ~170 keys: runs of selected clusters hold whole 128-key
     * tiles (the TMA ones), the rest is gathered; the keys' order then differs */
    scenario sc = {"kv order", m, B, H, N, D, 0, 16, 24, {0}, 0, 0, 0, 0};
    double dens[2] = {0, 0}, perm_ms = 0;
    size_t ws[2] = {0, 0};
    for (int run = 0; run < 2; run++) {
        svoo_config c;
        base_cfg(&c, &sc, SVOO_DEVICE_CUDA);
        c.log_fn = quiet;
        c.cuda_kv_order = run == 0;
        CHECK(svoo_workspace_size(&c, B, N, &ws[run]) == SVOO_OK, "kv order: workspace size");
        svoo_ctx *ctx = NULL;
        svoo_status s = svoo_ctx_create(&c, &ctx);
        CHECK(s == SVOO_OK, "kv order ctx: %s", svoo_last_error(NULL));
        if (s) break;
        svoo_tensor gq = view(dq, 1, B, H, N, D, 0), gk = view(dk, 1, B, H, N, D, 0),
                    gv = view(dv, 1, B, H, N, D, 0),
                    go = view((char *)dout + bytes * run, 1, B, H, N, D, 0);
        svoo_stats st;
        svoo_stats_init(&st);
        s = svoo_attention(ctx, 12, 1, &gq, &gk, &gv, &go, &st);
        CHECK(s == SVOO_OK, "kv order call (run %d): %s", run, svoo_last_error(ctx));
        dens[run] = st.density;
        if (run == 0) perm_ms = st.ms_permute;
        svoo_ctx_free(ctx);
    }
    /* the size query counts the copy (an upper bound: also where it is not made) */
    CHECK(ws[0] >= ws[1] + 2 * bytes, "kv order: workspace %zu with the copy, %zu without", ws[0],
          ws[1]);
    CHECK(!tma || perm_ms > 0, "kv order: the copy took %g ms", perm_ms);
    CU(cudaMemcpy(o, dout, bytes * 2, cudaMemcpyDeviceToHost));
    const double rel = rel_l2(o, o + cnt, cnt);
    CHECK(dens[0] == dens[1] && dens[0] > 0 && dens[0] < 1, "kv order: density %.4f vs %.4f",
          dens[0], dens[1]);
    CHECK(rel < 1e-2, "%s: keys in cluster order vs gathered: rel-L2 %.3g", svoo_method_name(m),
          rel);
    printf("  kv order %-6s d%d b%lld: density %.3f, cluster order (TMA %s) vs gather rel-L2 "
           "%.2g\n",
           svoo_method_name(m), D, (long long)B, dens[0], tma ? "on" : "off", rel);
    dev_free4(dq, dk, dv, dout);
    free(q);
    free(k);
    free(v);
    free(o);
}

/* config.ear with f16 tensors (the bf16 test values, which f16 holds exactly but
 * for subnormals): GPU vs the CPU executor with EAR on the GPU plan */
static void test_ear_f16(int D) {
    const int64_t B = 1, H = 2, N = 3001;
    const int step = 12, layer = 1;
    const size_t cnt = (size_t)B * H * N * D, bytes = cnt * 2;
    uint16_t *q = malloc(bytes), *k = malloc(bytes), *v = malloc(bytes), *og = malloc(bytes),
             *ref = malloc(bytes);
    make_qkv(q, k, v, B, H, N, D, 99);
    void *dq, *dk, *dv, *dout;
    dev_qkv_f16(q, k, v, cnt, bytes, &dq, &dk, &dv, &dout);
    scenario sc = {"ear f16", SVOO_METHOD_SVOO, B, H, N, D, 0, 0, 0, {0}, 0, 0, 1, 0};
    svoo_config cg;
    base_cfg(&cg, &sc, SVOO_DEVICE_CUDA);
    cg.log_fn = quiet;
    svoo_ctx *ctx = NULL;
    svoo_status s = svoo_ctx_create(&cg, &ctx);
    CHECK(s == SVOO_OK, "ear f16 ctx: %s", svoo_last_error(NULL));
    if (!s) {
        svoo_tensor t[4];
        void *ptr[4] = {dq, dk, dv, dout};
        for (int i = 0; i < 4; i++) {
            t[i] = svoo_tensor_bhnd(ptr[i], SVOO_F16, B, H, N, D);
            t[i].device = SVOO_DEVICE_CUDA;
        }
        s = svoo_attention(ctx, step, layer, &t[0], &t[1], &t[2], &t[3], NULL);
        CHECK(s == SVOO_OK, "ear f16 call: %s", svoo_last_error(ctx));
        CU(cudaMemcpy(og, dout, bytes, cudaMemcpyDeviceToHost));
        const int bad = cpu_exec_gpu_plan(ctx, layer, q, k, v, B, H, N, D, 1, ref);
        double num = 0, den = 0;
        for (size_t i = 0; i < cnt; i++) {
            const double x = svoo_f16_to_f32(og[i]), y = svoo_bf16_to_f32(ref[i]);
            num += (x - y) * (x - y);
            den += y * y;
        }
        const double r = sqrt(num / (den > 0 ? den : 1));
        CHECK(!s && !bad && r <= 1e-2,
              "ear f16: rel-L2 vs the CPU executor with EAR on the GPU plan %.3g", r);
        printf("  ear f16 d%-3d          : vs cpu-exec %.1e\n", D, r);
    }
    svoo_ctx_free(ctx);
    dev_free4(dq, dk, dv, dout);
    free(q);
    free(k);
    free(v);
    free(og);
    free(ref);
}

/* config.ear where nothing is dropped (top_p = 1 keeps every non-empty key
 * cluster): the output equals the same call without EAR, bit for bit (on
 * Hopper the EAR instantiation's pseudo-key tiles, of empty clusters only,
 * have bias -inf and leave the softmax state as it is; elsewhere the LSE
 * instantiation writes the same o as the default one, and ear_attend leaves
 * the rows without a dropped cluster as they are) */
static void test_ear_nothing_dropped(svoo_method m, int64_t B, int D) {
    const int64_t H = 2, N = 3001;
    const int step = 12, layer = 1;
    const size_t cnt = (size_t)B * H * N * D, bytes = cnt * 2;
    uint16_t *q = malloc(bytes), *k = malloc(bytes), *v = malloc(bytes), *o[2];
    o[0] = malloc(bytes);
    o[1] = malloc(bytes);
    make_qkv(q, k, v, B, H, N, D, 4242);
    void *dq, *dk, *dv, *dout;
    dev_qkv(q, k, v, bytes, bytes, &dq, &dk, &dv, &dout);
    int ok = 1;
    for (int ear = 0; ear < 2; ear++) {
        scenario sc = {"ear top-p 1", m, B, H, N, D, 0, 0, 0, {0}, 0, 0, ear, 0};
        svoo_config c;
        base_cfg(&c, &sc, SVOO_DEVICE_CUDA);
        c.top_p = 1.0;
        c.log_fn = quiet;
        svoo_ctx *ctx = NULL;
        svoo_status s = svoo_ctx_create(&c, &ctx);
        CHECK(s == SVOO_OK, "ear top-p 1 ctx: %s", svoo_last_error(NULL));
        if (!s) {
            svoo_tensor gq = view(dq, 1, B, H, N, D, 0), gk = view(dk, 1, B, H, N, D, 0),
                        gv = view(dv, 1, B, H, N, D, 0), go = view(dout, 1, B, H, N, D, 0);
            CU(cudaMemset(dout, 0xff, bytes)); /* a row left unwritten shows */
            s = svoo_attention(ctx, step, layer, &gq, &gk, &gv, &go, NULL);
            CHECK(s == SVOO_OK, "ear top-p 1 call (ear %d): %s", ear, svoo_last_error(ctx));
            CU(cudaMemcpy(o[ear], dout, bytes, cudaMemcpyDeviceToHost));
        }
        ok = ok && !s;
        svoo_ctx_free(ctx);
    }
    const int same = ok && memcmp(o[0], o[1], bytes) == 0;
    CHECK(same, "%s d%d b%lld: top-p 1 with EAR differs from without (rel-L2 %.3g)",
          svoo_method_name(m), D, (long long)B, ok ? rel_l2(o[1], o[0], cnt) : -1.0);
    printf("  ear top-p 1 %-6s d%-3d b%lld: %s\n", svoo_method_name(m), D, (long long)B,
           same ? "identical to no EAR" : "DIFFERENT");
    dev_free4(dq, dk, dv, dout);
    free(q);
    free(k);
    free(v);
    free(o[0]);
    free(o[1]);
}

/* one NaN key row in head 0 (check_finite off): on the CPU its key cluster's
 * centroid scores are NaN for every query cluster, which then keeps every key
 * cluster, so every row of head 0 is NaN and head 1 is untouched
 * (docs/RELIABILITY.md). The GPU must do the same, not leave rows with no key. */
static void test_nonfinite(svoo_method m) {
    const int64_t B = 1, H = 2, N = 3001;
    const int D = 128, step = 12, layer = 1;
    const size_t cnt = (size_t)B * H * N * D, bytes = cnt * 2, head = (size_t)N * D;
    uint16_t *q = malloc(bytes), *k = malloc(bytes), *v = malloc(bytes), *oc = malloc(bytes),
             *og = malloc(bytes);
    make_qkv(q, k, v, B, H, N, D, 4242);
    for (int j = 0; j < D; j++)
        k[(size_t)1234 * D + j] = 0x7fc0; /* bf16 NaN, head 0, key 1234 */
    void *dq, *dk, *dv, *dout;
    dev_qkv(q, k, v, bytes, bytes, &dq, &dk, &dv, &dout);
    scenario sc = {"nonfinite", m, B, H, N, D, 0, 0, 0, {0}, 0, 0, 0, 0};
    svoo_config cc, cg;
    base_cfg(&cc, &sc, SVOO_DEVICE_CPU);
    base_cfg(&cg, &sc, SVOO_DEVICE_CUDA);
    cc.log_fn = cg.log_fn = quiet;
    svoo_ctx *ctx_c = NULL, *ctx_g = NULL;
    svoo_status s1 = svoo_ctx_create(&cc, &ctx_c), s2 = svoo_ctx_create(&cg, &ctx_g);
    CHECK(s1 == SVOO_OK && s2 == SVOO_OK, "nonfinite ctx: %s", svoo_last_error(NULL));
    if (!s1 && !s2) {
        svoo_tensor tq = view(q, 0, B, H, N, D, 0), tk = view(k, 0, B, H, N, D, 0),
                    tv = view(v, 0, B, H, N, D, 0), to = view(oc, 0, B, H, N, D, 0);
        svoo_tensor gq = view(dq, 1, B, H, N, D, 0), gk = view(dk, 1, B, H, N, D, 0),
                    gv = view(dv, 1, B, H, N, D, 0), go = view(dout, 1, B, H, N, D, 0);
        s1 = svoo_attention(ctx_c, step, layer, &tq, &tk, &tv, &to, NULL);
        s2 = svoo_attention(ctx_g, step, layer, &gq, &gk, &gv, &go, NULL);
        CHECK(s1 == SVOO_OK && s2 == SVOO_OK, "nonfinite %s: %s / %s", svoo_method_name(m),
              svoo_last_error(ctx_c), svoo_last_error(ctx_g));
        CU(cudaMemcpy(og, dout, bytes, cudaMemcpyDeviceToHost));
        int64_t nan_c = 0, nan_g = 0, nonfinite_h1 = 0;
        for (int64_t i = 0; i < N; i++) {
            nan_c += svoo_bf16_to_f32(oc[(size_t)i * D]) != svoo_bf16_to_f32(oc[(size_t)i * D]);
            nan_g += svoo_bf16_to_f32(og[(size_t)i * D]) != svoo_bf16_to_f32(og[(size_t)i * D]);
        }
        for (size_t i = head; i < cnt; i++)
            nonfinite_h1 += !isfinite(svoo_bf16_to_f32(og[i]));
        const double r1 = rel_l2(og + head, oc + head, head);
        CHECK(nan_c == N && nan_g == N,
              "nonfinite %s: NaN rows of head 0: cpu %lld, cuda %lld of %lld", svoo_method_name(m),
              (long long)nan_c, (long long)nan_g, (long long)N);
        CHECK(nonfinite_h1 == 0 && r1 <= 2e-2,
              "nonfinite %s: head 1: %lld non-finite, rel-L2 vs cpu %.3g", svoo_method_name(m),
              (long long)nonfinite_h1, r1);
        printf(
            "  nonfinite %-6s: NaN rows of head 0 cpu %lld cuda %lld / %lld, head 1 vs cpu %.1e\n",
            svoo_method_name(m), (long long)nan_c, (long long)nan_g, (long long)N, r1);
    }
    svoo_ctx_free(ctx_c);
    svoo_ctx_free(ctx_g);
    dev_free4(dq, dk, dv, dout);
    free(q);
    free(k);
    free(v);
    free(oc);
    free(og);
}

static void test_bad_inputs(void) {
    const int64_t B = 1, H = 2, N = 512;
    const int D = 64;
    const size_t bytes = (size_t)B * H * N * D * 2;
    scenario sc = {"bad", SVOO_METHOD_SVOO, B, H, N, D, 0, 0, 0, {0}, 0, 0, 0, 0};
    svoo_config c;
    base_cfg(&c, &sc, SVOO_DEVICE_CUDA);
    c.log_fn = quiet;
    svoo_ctx *ctx = NULL;
    svoo_status s;
    int ndev = 0;
    cudaGetDeviceCount(&ndev);
    c.device_index = ndev;
    s = svoo_ctx_create(&c, &ctx);
    CHECK(s == SVOO_ERR_WRONG_DEVICE, "device_index out of range: %s", svoo_status_name(s));
    c.device_index = 0;
    c.max_tokens = 0;
    s = svoo_ctx_create(&c, &ctx);
    CHECK(s == SVOO_ERR_INVALID_ARGUMENT, "max_tokens missing: %s", svoo_status_name(s));
    c.max_tokens = N;
    s = svoo_ctx_create(&c, &ctx);
    CHECK(s == SVOO_OK, "ctx: %s", svoo_last_error(NULL));
    if (s) return;
    uint16_t *h = calloc(1, bytes + 64);
    void *d;
    CU(cudaMalloc(&d, bytes * 4 + 64));
    char *dq = d, *dk = dq + bytes, *dv = dk + bytes, *dout = dv + bytes;
    svoo_tensor gq = view(dq, 1, B, H, N, D, 0), gk = view(dk, 1, B, H, N, D, 0),
                gv = view(dv, 1, B, H, N, D, 0), go = view(dout, 1, B, H, N, D, 0);
    svoo_tensor t = gq;
    t.data = h;
    s = svoo_attention(ctx, 3, 1, &t, &gk, &gv, &go, NULL);
    CHECK(s == SVOO_ERR_WRONG_DEVICE, "host pointer as q: %s (%s)", svoo_status_name(s),
          svoo_last_error(ctx));
    t = go;
    t.data = h;
    s = svoo_attention(ctx, 3, 1, &gq, &gk, &gv, &t, NULL);
    CHECK(s == SVOO_ERR_WRONG_DEVICE, "host pointer as out: %s", svoo_status_name(s));
    t = gq;
    t.device_index = 1;
    svoo_tensor tk = gk, tv = gv, to = go;
    tk.device_index = tv.device_index = to.device_index = 1;
    s = svoo_attention(ctx, 3, 1, &t, &tk, &tv, &to, NULL);
    CHECK(s == SVOO_ERR_WRONG_DEVICE, "device index 1: %s", svoo_status_name(s));
    t = gq;
    t.data = dq + 2;
    s = svoo_attention(ctx, 3, 1, &t, &gk, &gv, &go, NULL);
    CHECK(s == SVOO_ERR_MISALIGNED, "misaligned q: %s (%s)", svoo_status_name(s),
          svoo_last_error(ctx));
    /* the same four buffers viewed as f32 of N / 2 rows, and as batch 2 of N / 4 */
    char *bufs[4] = {dq, dk, dv, dout};
    svoo_tensor f[4], big[4];
    for (int i = 0; i < 4; i++) {
        f[i] = view(bufs[i], 1, B, H, N / 2, D, 0);
        f[i].dtype = SVOO_F32;
        big[i] = view(bufs[i], 1, 2, H, N / 4, D, 0);
    }
    s = svoo_attention(ctx, 3, 1, &f[0], &f[1], &f[2], &f[3], NULL);
    CHECK(s == SVOO_ERR_UNSUPPORTED, "f32 on CUDA: %s", svoo_status_name(s));
    s = svoo_attention(ctx, 3, 1, &big[0], &big[1], &big[2], &big[3], NULL);
    CHECK(s == SVOO_ERR_WORKSPACE_TOO_SMALL, "batch 2 > max_batch 1: %s", svoo_status_name(s));
    s = svoo_attention(ctx, 3, 1, &gq, &gk, &gv, &gq, NULL);
    CHECK(s == SVOO_ERR_INVALID_ARGUMENT, "out = q: %s", svoo_status_name(s));
    /* the context still works after the failures */
    CU(cudaMemset(d, 0, bytes * 4));
    s = svoo_attention(ctx, 3, 1, &gq, &gk, &gv, &go, NULL);
    CHECK(s == SVOO_OK, "good call after bad ones: %s", svoo_last_error(ctx));
    size_t ws = 0;
    s = svoo_workspace_size(&c, 1, N, &ws);
    CHECK(s == SVOO_OK && ws > 0, "workspace size %zu", ws);
    printf("  bad inputs: %s\n", g_fail ? "see failures" : "ok");
    svoo_ctx_free(ctx);
    cudaFree(d);
    free(h);
}

/* ---- method svg ---------------------------------------------------------- */

typedef struct {
    const char *name;
    int64_t B, H;
    int D, F, Hh, W, T, text_first, blk;
    int mixed; /* every third head clustered random data (not video-shaped) */
} svg_case;

static void svg_cfg(svoo_config *c, const svg_case *sc, svoo_device dev, int ear) {
    svoo_config_init(c, SVOO_METHOD_SVG);
    c->ear = ear; /* every block a head's band leaves out enters as one pseudo-key */
    c->device = dev;
    c->head_dim = sc->D;
    c->num_heads = (int)sc->H;
    c->num_layers = 4;
    c->num_steps = 50;
    c->warmup_step_frac = 0.1; /* steps 0..4 dense */
    c->warmup_layer_frac = 0;
    c->frames = sc->F;
    c->height = sc->Hh;
    c->width = sc->W;
    c->text_tokens = sc->T;
    c->text_first = sc->text_first;
    c->svg_block = sc->blk;
    c->max_batch = (int)sc->B;
    c->log_fn = quiet;
}

/* head bh of a [B,H,N,D] bf16 buffer (as tests/test_svg.c hand_head):
 * spatial = every token of its own frame, temporal = its own (y, x) in every
 * frame (same-group logit 12); text tokens weak noise; v ~ N(0, 1) */
static void svg_hand_head(const svoo_svg_geom *g, int temporal, uint64_t seed, int d, uint16_t *q,
                          uint16_t *k, uint16_t *v) {
    const double alpha = sqrt(12.0 * sqrt((double)d));
    const int64_t nd = g->S + g->F;
    double *u = malloc(sizeof(double) * nd * d);
    uint64_t s = seed * 2654435761u + 17;
    for (int64_t r = 0; r < nd; r++) {
        double nn = 0;
        for (int x = 0; x < d; x++) {
            u[r * d + x] = gauss(&s);
            nn += u[r * d + x] * u[r * d + x];
        }
        for (int x = 0; x < d; x++)
            u[r * d + x] /= sqrt(nn);
    }
    for (int64_t i = 0; i < g->N; i++) {
        const int video = i >= g->vid0 && i < g->vid0 + g->V;
        const int64_t vi = i - g->vid0;
        const double *dir = !video     ? NULL
                            : temporal ? u + (vi % g->S) * d
                                       : u + (g->S + vi / g->S) * d;
        for (int x = 0; x < d; x++) {
            double a = gauss(&s) * 0.05, b = gauss(&s) * 0.05;
            if (dir) a += alpha * dir[x], b += alpha * dir[x];
            q[i * d + x] = svoo_f32_to_bf16((float)a);
            k[i * d + x] = svoo_f32_to_bf16((float)b);
            v[i * d + x] = svoo_f32_to_bf16((float)gauss(&s));
        }
    }
    free(u);
}

/* ear: config.ear on both backends; the GPU output is then also compared with the
 * CPU executor with EAR on the GPU plan, and the error vs dense is printed with and
 * without EAR on that plan (not checked: v is noise, whose block means EAR uses) */
static void run_svg(const svg_case *sc, int graph, int ear) {
    svoo_config cc, cg;
    svg_cfg(&cc, sc, SVOO_DEVICE_CPU, ear);
    svg_cfg(&cg, sc, SVOO_DEVICE_CUDA, ear);
    svoo_svg_geom g;
    const int64_t B = sc->B, H = sc->H, N = (int64_t)sc->F * sc->Hh * sc->W + sc->T, BH = B * H;
    const int D = sc->D;
    cg.max_tokens = N;
    svoo_status s = svoo_svg_geom_init(&cc, N, &g);
    CHECK(s == SVOO_OK, "%s: geometry", sc->name);
    if (s) return;
    const size_t hs = (size_t)N * D, cnt = (size_t)BH * hs, bytes = cnt * 2;
    uint16_t *q = malloc(bytes), *k = malloc(bytes), *v = malloc(bytes), *oc = malloc(bytes),
             *og = malloc(bytes), *ref = malloc(bytes), *o2 = malloc(bytes),
             *noear = ear ? malloc(bytes) : NULL;
    char name[80];
    snprintf(name, sizeof name, "%s%s", sc->name, ear ? " ear" : "");
    int32_t *kind_g = malloc(BH * 4);
    double *mse_g = malloc(BH * 2 * sizeof(double));
    float *fq = malloc(hs * 4), *fk = malloc(hs * 4), *fv = malloc(hs * 4);
    int *want = malloc(BH * sizeof(int));
    void *dq = NULL, *dk = NULL, *dv = NULL, *dout = NULL;
    CU(cudaMalloc(&dq, bytes));
    CU(cudaMalloc(&dk, bytes));
    CU(cudaMalloc(&dv, bytes));
    CU(cudaMalloc(&dout, bytes * 2));
    svoo_ctx *ctx_c = NULL, *ctx_g = NULL;
    svoo_status s1 = svoo_ctx_create(&cc, &ctx_c), s2 = svoo_ctx_create(&cg, &ctx_g);
    CHECK(s1 == SVOO_OK && s2 == SVOO_OK, "%s: ctx create: %s / %s", name, svoo_status_name(s1),
          svoo_last_error(NULL));
    if (s1 || s2) goto done;
    const int64_t w_s = svoo_svg_band(&g, SVOO_SVG_SPATIAL, cc.svg_sparsity),
                  w_t = svoo_svg_band(&g, SVOO_SVG_TEMPORAL, cc.svg_sparsity);
    const int layer = 1;
    for (int call = 0; call < 2; call++) {
        const int step = call ? 9 : 2; /* step 2: warm-up (dense) */
        for (int64_t bh = 0; bh < BH; bh++) {
            want[bh] = (int)((bh + call) % 2);
            if (sc->mixed && bh % 3 == 2) {
                want[bh] = -1;
                make_qkv(q + bh * hs, k + bh * hs, v + bh * hs, 1, 1, N, D,
                         500 + 10 * (uint64_t)bh + call);
            } else {
                svg_hand_head(&g, want[bh], 100 * (uint64_t)bh + call, D, q + bh * hs, k + bh * hs,
                              v + bh * hs);
            }
        }
        CU(cudaMemcpy(dq, q, bytes, cudaMemcpyHostToDevice));
        CU(cudaMemcpy(dk, k, bytes, cudaMemcpyHostToDevice));
        CU(cudaMemcpy(dv, v, bytes, cudaMemcpyHostToDevice));
        CU(cudaMemset(dout, 0, bytes));
        svoo_tensor tq = view(q, 0, B, H, N, D, 0), tk = view(k, 0, B, H, N, D, 0),
                    tv = view(v, 0, B, H, N, D, 0), to = view(oc, 0, B, H, N, D, 0);
        svoo_tensor gq = view(dq, 1, B, H, N, D, 0), gk = view(dk, 1, B, H, N, D, 0),
                    gv = view(dv, 1, B, H, N, D, 0), go = view(dout, 1, B, H, N, D, 0);
        svoo_stats stc, stg;
        svoo_stats_init(&stc);
        svoo_stats_init(&stg);
        s1 = svoo_attention(ctx_c, step, layer, &tq, &tk, &tv, &to, &stc);
        s2 = svoo_attention(ctx_g, step, layer, &gq, &gk, &gv, &go, &stg);
        CHECK(s1 == SVOO_OK, "%s step %d: cpu: %s", name, step, svoo_last_error(ctx_c));
        CHECK(s2 == SVOO_OK, "%s step %d: cuda: %s: %s", name, step, svoo_status_name(s2),
              svoo_last_error(ctx_g));
        if (s1 || s2) break;
        CU(cudaMemcpy(og, dout, bytes, cudaMemcpyDeviceToHost));
        const double r = rel_l2(og, oc, cnt);
        CHECK(stg.dense == stc.dense && stg.dense == (call == 0), "%s step %d: dense %d / %d", name,
              step, stg.dense, stc.dense);
        if (call == 0) {
            CHECK(r <= 1e-2, "%s step %d (warm-up, dense): rel-L2 cuda vs cpu %.4g", name, step, r);
            printf("  %-26s step %2d: warm-up dense, vs cpu %.1e\n", name, step, r);
            continue;
        }
        /* classification: GPU vs CPU planner, MSE vs svoo_svg_classify */
        s = svoo_cuda_debug_svg(ctx_g, B, kind_g, mse_g);
        CHECK(s == SVOO_OK, "%s: debug svg: %s", name, svoo_last_error(ctx_g));
        int agree = 0, right = 0, hand = 0, decided = 0, decided_agree = 0, kinds_equal = 1;
        double mse_rel = 0;
        for (int64_t bh = 0; bh < BH; bh++) {
            const int kc = ctx_c->layers[layer].heads[bh].svg_temporal;
            agree += kc == kind_g[bh];
            kinds_equal &= kc == kind_g[bh];
            if (want[bh] >= 0) hand++, right += kind_g[bh] == want[bh];
            for (size_t i = 0; i < hs; i++) {
                fq[i] = svoo_bf16_to_f32(q[bh * hs + i]);
                fk[i] = svoo_bf16_to_f32(k[bh * hs + i]);
                fv[i] = svoo_bf16_to_f32(v[bh * hs + i]);
            }
            double mc[2];
            s = svoo_svg_classify(&g, w_s, w_t, 1, fq, fk, fv, D, cc.svg_sample_rows, mc);
            CHECK(s == SVOO_OK, "cpu classify");
            for (int kd = 0; kd < 2; kd++) {
                /* relative, absolute 1e-8 below 1e-6 (f32 accumulation of nearly equal outputs) */
                double rd = fabs(mse_g[bh * 2 + kd] - mc[kd]) / fmax(mc[kd], 1e-6);
                mse_rel = rd > mse_rel ? rd : mse_rel;
            }
            /* heads whose two MSEs are more than 1% apart must be classified alike */
            if (fabs(mc[0] - mc[1]) > 0.01 * fmax(mc[0], mc[1]))
                decided++, decided_agree += kc == kind_g[bh];
        }
        CHECK(right == hand, "%s: hand-built heads classified %d / %d", name, right, hand);
        CHECK(decided_agree == decided, "%s: classification vs cpu %d / %d (clear heads)", name,
              decided_agree, decided);
        CHECK(mse_rel <= 1e-2, "%s: mse cuda vs cpu relative difference %.3g", name, mse_rel);
        CHECK(stg.spatial_heads + stg.temporal_heads == BH &&
                  (!kinds_equal || (stg.temporal_heads == stc.temporal_heads &&
                                    stg.spatial_heads == stc.spatial_heads)),
              "%s: stats heads cuda %d/%d cpu %d/%d", name, stg.spatial_heads, stg.temporal_heads,
              stc.spatial_heads, stc.temporal_heads);
        /* output vs the CPU backend (same plan when the kinds agree) */
        double rmax = 0;
        for (int64_t bh = 0; bh < BH; bh++)
            if (ctx_c->layers[layer].heads[bh].svg_temporal == kind_g[bh]) {
                double rb = rel_l2(og + bh * hs, oc + bh * hs, hs);
                rmax = rb > rmax ? rb : rmax;
            }
        CHECK(rmax <= 1e-2, "%s: rel-L2 cuda vs cpu backend %.4g (worst head)", name, rmax);
        if (kinds_equal)
            CHECK(fabs(stg.density - stc.density) <= 1e-9, "%s: density cuda %.6f cpu %.6f", name,
                  stg.density, stc.density);
        /* the GPU's plan on the CPU executor */
        int bad = cpu_exec_gpu_plan(ctx_g, layer, q, k, v, B, H, N, D, ear, ref);
        CHECK(!bad, "%s: GPU plan invalid", name);
        const double rx = rel_l2(og, ref, cnt);
        CHECK(rx <= 1e-2, "%s: rel-L2 cuda vs CPU executor on the GPU plan %.4g", name, rx);
        if (ear) {
            /* the same plan without EAR (the GPU output must differ from it by more than
             * the kernel noise where EAR moves the output), and the error vs dense */
            bad = cpu_exec_gpu_plan(ctx_g, layer, q, k, v, B, H, N, D, 0, noear);
            CHECK(!bad, "%s: GPU plan invalid (no EAR)", name);
            const double moved = rel_l2(ref, noear, cnt), vs_noear = rel_l2(og, noear, cnt);
            CHECK(moved <= 2 * rx || vs_noear > 2 * rx,
                  "%s: GPU output %.3g from the plan without EAR, EAR moves the CPU output %.3g",
                  name, vs_noear, moved);
            svoo_config cd = cc;
            cd.method = SVOO_METHOD_DENSE;
            svoo_ctx *dctx = NULL;
            svoo_tensor dov = view(o2, 0, B, H, N, D, 0);
            double eg = -1, en = -1;
            if (svoo_ctx_create(&cd, &dctx) == SVOO_OK &&
                svoo_attention(dctx, step, layer, &tq, &tk, &tv, &dov, NULL) == SVOO_OK) {
                eg = rel_l2(og, o2, cnt);
                en = rel_l2(noear, o2, cnt);
            }
            CHECK(eg >= 0, "%s: dense reference failed", name);
            svoo_ctx_free(dctx);
            printf("  %-30s EAR: cpu-exec with vs without EAR %.1e (cuda %.1e); vs dense %.4f, "
                   "same plan without EAR %.4f\n",
                   name, moved, vs_noear, eg, en);
        }
        printf("  %-26s step %2d: vs cpu %.1e (worst head %.1e), vs cpu-exec %.1e, kinds agree "
               "%d/%lld "
               "(clear %d/%d, hand %d/%d), mse rel diff %.1e, density %.4f (cpu %.4f), heads s/t "
               "%d/%d, plan %.2f ms "
               "attend %.2f ms\n",
               name, step, r, rmax, rx, agree, (long long)BH, decided_agree, decided, right, hand,
               mse_rel, stg.density, stc.density, stg.spatial_heads, stg.temporal_heads,
               stg.ms_plan, stg.ms_attend);
        if (!graph) continue;
        /* two layers captured in a graph on a fresh context = direct calls */
        cudaStream_t st;
        CU(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
        svoo_config c2 = cg;
        c2.cuda_stream = st;
        svoo_ctx *gx = NULL;
        s = svoo_ctx_create(&c2, &gx);
        CHECK(s == SVOO_OK, "graph ctx: %s", svoo_last_error(NULL));
        if (!s) {
            svoo_tensor go2 = view((char *)dout + bytes, 1, B, H, N, D, 0);
            cudaGraph_t gr = NULL;
            cudaGraphExec_t ex = NULL;
            CU(cudaMemsetAsync(dout, 0, bytes * 2, st));
            CU(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
            s1 = svoo_attention(gx, step, 2, &gq, &gk, &gv, &go, NULL);
            s2 = svoo_attention(gx, step, 3, &gq, &gk, &gv, &go2, NULL);
            CU(cudaStreamEndCapture(st, &gr));
            CHECK(s1 == SVOO_OK && s2 == SVOO_OK, "graph calls: %s", svoo_last_error(gx));
            CU(cudaGraphInstantiate(&ex, gr, 0));
            CU(cudaGraphLaunch(ex, st));
            CU(cudaStreamSynchronize(st));
            CU(cudaMemcpy(o2, dout, bytes, cudaMemcpyDeviceToHost));
            CHECK(memcmp(o2, og, bytes) == 0, "%s: graph replay differs (rel-L2 %.3g)", name,
                  rel_l2(o2, og, cnt));
            CU(cudaMemcpy(o2, (char *)dout + bytes, bytes, cudaMemcpyDeviceToHost));
            CHECK(memcmp(o2, og, bytes) == 0, "%s: graph replay (layer 3) differs", name);
            printf("  graph capture svg: 2 layers replayed, %s\n",
                   memcmp(o2, og, bytes) == 0 ? "identical" : "DIFFERENT");
            cudaGraphExecDestroy(ex);
            cudaGraphDestroy(gr);
        }
        svoo_ctx_free(gx);
        cudaStreamDestroy(st);
    }
done:
    svoo_ctx_free(ctx_c);
    svoo_ctx_free(ctx_g);
    dev_free4(dq, dk, dv, dout);
    free(q), free(k), free(v), free(oc), free(og), free(ref), free(o2);
    free(noear), free(kind_g), free(mse_g), free(fq), free(fk), free(fv), free(want);
}

/* the query and key permutations of a hand-made plan: random shuffles of 0 .. N-1, in
 * that order, from the generator state *s */
static void plan_perms(uint64_t *s, int64_t N, int32_t *qperm, int32_t *kperm) {
    int32_t *perm[2] = {qperm, kperm};
    for (int t = 0; t < 2; t++) {
        for (int64_t i = 0; i < N; i++)
            perm[t][i] = (int32_t)i;
        for (int64_t i = N - 1; i > 0; i--) {
            const int64_t j = (int64_t)(rng_next(s) % (uint64_t)(i + 1));
            const int32_t x = perm[t][i];
            perm[t][i] = perm[t][j];
            perm[t][j] = x;
        }
    }
}

/* A hand-made plan for test_ear_direct: Ck key clusters with every 7th empty and
 * uneven sizes otherwise, random permutations; query cluster 0 selects nothing (an
 * empty plan row: its rows get the pseudo-keys only), 1 selects every key cluster
 * (nothing dropped), 2 has no rows, the others ~1/8 of the key clusters (ascending,
 * as the planners write them; with share > 0 also every key cluster c with
 * c % share == 0, so that query clusters select largely the same keys, as real
 * plans do). Ck > 1024 reaches the second and third 1024-cluster chunks of
 * pseudo_tiles / ear_attend, which no planner-made test case reaches. row_ptr
 * is LOCAL (starts at 0); returns nnz. */
enum { EAR_R_EMPTY = 0, EAR_R_ALL = 1, EAR_R_NOROWS = 2 };
static int64_t ear_plan(uint64_t seed, int64_t N, int cq, int ck, int share, int32_t *qperm,
                        int32_t *kperm, int32_t *qoff, int32_t *koff, int32_t *rp, int32_t *col) {
    uint64_t s = seed;
    plan_perms(&s, N, qperm, kperm);
    /* key cluster sizes: 0 for c % 7 == 3, else 1 + a random share of the rest */
    int64_t left = N;
    for (int c = 0; c < ck; c++)
        left -= c % 7 != 3;
    koff[0] = 0;
    for (int c = 0; c < ck; c++) {
        int64_t sz = c % 7 != 3;
        if (sz && left > 0) {
            const int64_t extra = c == ck - 1 ? left : (int64_t)(rng_next(&s) % 3);
            sz += extra < left ? extra : left;
            left -= extra < left ? extra : left;
        }
        koff[c + 1] = koff[c] + (int32_t)sz;
    }
    if (left > 0) koff[ck] += (int32_t)left; /* the last cluster (non-empty: ck % 7 != 4) */
    /* query cluster sizes: 150, 200, 0, then the rest spread with >= 1 each */
    int64_t qleft = N - 350 - (cq - 3);
    qoff[0] = 0;
    for (int r = 0; r < cq; r++) {
        int64_t sz = r == EAR_R_EMPTY ? 150 : r == EAR_R_ALL ? 200 : r == EAR_R_NOROWS ? 0 : 1;
        if (r > EAR_R_NOROWS) {
            const int64_t extra = r == cq - 1 ? qleft : (int64_t)(rng_next(&s) % 150);
            sz += extra < qleft ? extra : qleft;
            qleft -= extra < qleft ? extra : qleft;
        }
        qoff[r + 1] = qoff[r] + (int32_t)sz;
    }
    int64_t nnz = 0;
    rp[0] = 0;
    for (int r = 0; r < cq; r++) {
        for (int c = 0; c < ck && r != EAR_R_EMPTY; c++)
            if (r == EAR_R_ALL || (share && c % share == 0) || rng_next(&s) % 8 == 0)
                col[nnz++] = c;
        rp[r + 1] = (int32_t)nnz;
    }
    return nnz;
}

/* a hand-made plan's generator (ear_plan, skip_plan): fills the permutations, offsets and
 * selections of one head (row_ptr LOCAL), returns nnz */
typedef int64_t (*plan_fn)(uint64_t seed, int64_t N, int cq, int ck, int share, int32_t *qperm,
                           int32_t *kperm, int32_t *qoff, int32_t *koff, int32_t *rp, int32_t *col);

/* A hand-made plan whose union items hold key tiles that only one consumer warpgroup's rows
 * selected, which cuda/attend_sm90.cu skips per consumer (SKIP). N = 248 + 128 m rows, cq =
 * 5 + m, Ck = 256 key clusters of 15 keys (the last takes the rest), random permutations.
 * Query clusters, in row order: S (100 rows) selects the even key clusters C and c % 16 in
 * {5, 13}; A (64) C and {1, 9}; B (40) C and {3, 11}; U (24) C and {5}; T (20) C and {1};
 * then m clusters of 128 rows select C (whole items, not packed). wl_pack packs the tails in
 * descending size where they add the least: S opens an item that U joins (nothing added; S
 * straddles row 64, so its own clusters go to both consumers), A opens another that B joins
 * (B alone would cost 0.73 x 19 key tiles, joining 23 - 0.73 x 19) and then T (nothing
 * added). In that item A holds rows 0-63, B and T rows 64-123: after C's 15 tiles come {1}
 * (A and T: both consumers), {9} (A only: tile 17 whole, consumer 1 skips it) and {3, 11}
 * (B only: tiles 19-22, consumer 0 skips them). */
static int64_t skip_plan(uint64_t seed, int64_t N, int cq, int ck, int share, int32_t *qperm,
                         int32_t *kperm, int32_t *qoff, int32_t *koff, int32_t *rp, int32_t *col) {
    (void)share;
    uint64_t s = seed;
    plan_perms(&s, N, qperm, kperm);
    for (int c = 0; c <= ck; c++)
        koff[c] = c < ck ? 15 * c : (int32_t)N;
    /* rows and the two residues mod 16 (-1: none) each of S, A, B, U, T selects beside C */
    static const int rows[5] = {100, 64, 40, 24, 20},
                     own[5][2] = {{5, 13}, {1, 9}, {3, 11}, {5, -1}, {1, -1}};
    int64_t nnz = 0;
    qoff[0] = rp[0] = 0;
    for (int r = 0; r < cq; r++) {
        qoff[r + 1] = qoff[r] + (r < 5 ? rows[r] : 128);
        for (int c = 0; c < ck; c++)
            if (c % 2 == 0 || (r < 5 && (c % 16 == own[r][0] || c % 16 == own[r][1])))
                col[nnz++] = c;
        rp[r + 1] = (int32_t)nnz;
    }
    return nnz;
}

/* A hand-made plan past wl_pack's limits (cuda/worklist.cu): cq = 600 query clusters of N /
 * 600 rows (64 at N = 38,400: every tail <= 64 rows), Ck = 256 key clusters of N / 256 keys,
 * random permutations. Clusters 4p and 4p + 1 select key cluster p (a union item of two
 * members), 4p + 2 and 4p + 3 the clusters (p + 64) % 256 and (p + 128) % 256, which cost
 * less alone than joining an item with other keys. wl_pack considers the first PACK_SM = 512
 * tails (88 stay out), and its PACK_SL = 256 open items are all in use before it reaches the
 * last 64 it considers, which then run as their own row tiles; 192 union items a head
 * (worked out on the CPU with wl_pack's rule). */
static int64_t limits_plan(uint64_t seed, int64_t N, int cq, int ck, int share, int32_t *qperm,
                           int32_t *kperm, int32_t *qoff, int32_t *koff, int32_t *rp,
                           int32_t *col) {
    (void)share;
    uint64_t s = seed;
    plan_perms(&s, N, qperm, kperm);
    for (int c = 0; c <= ck; c++)
        koff[c] = c < ck ? (int32_t)(N / ck * c) : (int32_t)N;
    int64_t nnz = 0;
    qoff[0] = rp[0] = 0;
    for (int r = 0; r < cq; r++) {
        qoff[r + 1] = r + 1 < cq ? qoff[r] + (int32_t)(N / cq) : (int32_t)N;
        const int p = r / 4;
        col[nnz++] = (r % 4 < 2 ? p : p + 64 * (r % 4 - 1)) % ck;
        rp[r + 1] = (int32_t)nnz;
    }
    return nnz;
}

/* the CPU executor with EAR on head bh of that plan (bf16 [BH,N,D] inputs),
 * result in original row order into ref (bf16); 0 when the plan validates */
static int ear_plan_cpu(int64_t N, int D, int cq, int ck, int32_t *qperm, int32_t *kperm,
                        int32_t *qoff, int32_t *koff, int32_t *rp, int32_t *col, int ear,
                        const uint16_t *q, const uint16_t *k, const uint16_t *v, uint16_t *ref) {
    svoo_plan p;
    memset(&p, 0, sizeof p);
    p.n_q = p.n_k = N;
    p.cq = cq;
    p.ck = ck;
    p.q_perm = qperm;
    p.k_perm = kperm;
    p.q_off = qoff;
    p.k_off = koff;
    p.row_ptr = rp;
    p.col = col;
    p.nnz = rp[cq];
    if (svoo_plan_validate(&p)) return 1;
    float *fq = malloc(sizeof(float) * N * D), *fk = malloc(sizeof(float) * N * D),
          *fv = malloc(sizeof(float) * N * D), *fo = malloc(sizeof(float) * N * D);
    for (int64_t i = 0; i < N; i++)
        for (int j = 0; j < D; j++) {
            fq[i * D + j] = svoo_bf16_to_f32(q[(size_t)qperm[i] * D + j]);
            fk[i * D + j] = svoo_bf16_to_f32(k[(size_t)kperm[i] * D + j]);
            fv[i * D + j] = svoo_bf16_to_f32(v[(size_t)kperm[i] * D + j]);
        }
    const svoo_status s = svoo_attend_cpu(&p, fq, fk, fv, D, 1.0f / sqrtf((float)D), ear, fo, 0);
    for (int64_t i = 0; i < N; i++)
        for (int j = 0; j < D; j++)
            ref[(size_t)qperm[i] * D + j] = svoo_f32_to_bf16(fo[i * D + j]);
    free(fq), free(fk), free(fv), free(fo);
    return s != SVOO_OK;
}

/* a hand-made plan of ear_plan's on B*H heads of N rows in device memory with
 * its inputs, the CPU executor's result (with or without EAR) and the
 * parameters and workspace of svoo_cuda_attend; with same_k, the K rows of
 * every odd key cluster are set to its first row's, so that its pseudo-key is
 * each of its keys and takes the weight the cluster's keys would (selections
 * sharing every 4th key cluster leave the odd ones to the pseudo-keys; those
 * of c % 4 == 2 keep the means of distinct rows) */
typedef struct {
    int64_t B, H, N, BH;
    int D, cq, ck, bad, f16; /* f16: the device gets f16 copies of the bf16 values (exact) */
    size_t cnt, bytes, wsb;
    uint16_t *q, *k, *v, *ref, *o;
    int32_t *qperm, *kperm, *qoff, *koff, *rp, *col;
    void *dq, *dk, *dv, *dout, *ws;
    int32_t *dqp, *dkp, *dqo, *dko, *drp, *dcol;
    svoo_cuda_attend_params p;
} direct_case;

static void direct_setup(direct_case *c, plan_fn plan, int64_t B, int D, int64_t N, int cq, int ck,
                         int share, int ear, int same_k, int f16, uint64_t seed) {
    memset(c, 0, sizeof *c);
    const int64_t H = 2, BH = B * H;
    c->B = B, c->H = H, c->N = N, c->BH = BH, c->D = D, c->cq = cq, c->ck = ck, c->f16 = f16;
    c->cnt = (size_t)BH * N * D, c->bytes = c->cnt * 2;
    c->q = malloc(c->bytes), c->k = malloc(c->bytes), c->v = malloc(c->bytes);
    c->ref = malloc(c->bytes), c->o = malloc(c->bytes);
    make_qkv(c->q, c->k, c->v, B, H, N, D, seed + (uint64_t)D);
    c->qperm = malloc(BH * N * 4), c->kperm = malloc(BH * N * 4);
    c->qoff = malloc(BH * (cq + 1) * 4), c->koff = malloc(BH * (ck + 1) * 4);
    c->rp = malloc(BH * (cq + 1) * 4), c->col = malloc((size_t)BH * cq * ck * 4);
    int64_t nnz = 0;
    for (int64_t bh = 0; bh < BH; bh++) {
        int32_t *r = c->rp + bh * (cq + 1);
        const int64_t n =
            plan(4000 + (uint64_t)bh, N, cq, ck, share, c->qperm + bh * N, c->kperm + bh * N,
                 c->qoff + bh * (cq + 1), c->koff + bh * (ck + 1), r, c->col + nnz);
        const int32_t *ko = c->koff + bh * (ck + 1), *kp = c->kperm + bh * N;
        for (int cl = 1; cl < ck && same_k; cl += 2)
            for (int32_t j = ko[cl] + 1; j < ko[cl + 1]; j++)
                memcpy(c->k + (bh * N + kp[j]) * D, c->k + (bh * N + kp[ko[cl]]) * D,
                       (size_t)D * 2);
        c->bad |= ear_plan_cpu(N, D, cq, ck, c->qperm + bh * N, c->kperm + bh * N,
                               c->qoff + bh * (cq + 1), c->koff + bh * (ck + 1), r, c->col + nnz,
                               ear, c->q + bh * N * D, c->k + bh * N * D, c->v + bh * N * D,
                               c->ref + bh * N * D);
        for (int i = 0; i <= cq; i++)
            r[i] += (int32_t)nnz; /* GLOBAL offsets into col for the kernel */
        nnz += n;
    }
    CHECK(!c->bad, "direct plan: hand-made plan invalid or CPU executor failed");
    if (f16)
        dev_qkv_f16(c->q, c->k, c->v, c->cnt, c->bytes, &c->dq, &c->dk, &c->dv, &c->dout);
    else
        dev_qkv(c->q, c->k, c->v, c->bytes, c->bytes, &c->dq, &c->dk, &c->dv, &c->dout);
    c->wsb = svoo_cuda_attend_workspace((int)B, (int)H, (int)N, cq);
    CU(cudaMalloc(&c->ws, c->wsb));
    CU(cudaMalloc((void **)&c->dqp, BH * N * 4));
    CU(cudaMalloc((void **)&c->dkp, BH * N * 4));
    CU(cudaMalloc((void **)&c->dqo, BH * (cq + 1) * 4));
    CU(cudaMalloc((void **)&c->dko, BH * (ck + 1) * 4));
    CU(cudaMalloc((void **)&c->drp, BH * (cq + 1) * 4));
    CU(cudaMalloc((void **)&c->dcol, (size_t)(nnz > 0 ? nnz : 1) * 4));
    CU(cudaMemcpy(c->dqp, c->qperm, BH * N * 4, cudaMemcpyHostToDevice));
    CU(cudaMemcpy(c->dkp, c->kperm, BH * N * 4, cudaMemcpyHostToDevice));
    CU(cudaMemcpy(c->dqo, c->qoff, BH * (cq + 1) * 4, cudaMemcpyHostToDevice));
    CU(cudaMemcpy(c->dko, c->koff, BH * (ck + 1) * 4, cudaMemcpyHostToDevice));
    CU(cudaMemcpy(c->drp, c->rp, BH * (cq + 1) * 4, cudaMemcpyHostToDevice));
    CU(cudaMemcpy(c->dcol, c->col, (size_t)nnz * 4, cudaMemcpyHostToDevice));
    svoo_cuda_attend_params *p = &c->p;
    p->q = c->dq, p->k = c->dk, p->v = c->dv, p->o = c->dout;
    p->q_stride_b = p->k_stride_b = p->v_stride_b = p->o_stride_b = H * N * D;
    p->q_stride_h = p->k_stride_h = p->v_stride_h = p->o_stride_h = N * D;
    p->q_stride_n = p->k_stride_n = p->v_stride_n = p->o_stride_n = D;
    p->B = (int)B, p->H = (int)H, p->N_q = p->N_k = (int)N, p->D = D;
    p->dtype = f16 ? SVOO_CUDA_F16 : SVOO_CUDA_BF16;
    p->scale = 1.0f / sqrtf((float)D);
    p->q_perm = c->dqp, p->k_perm = c->dkp, p->q_off = c->dqo, p->k_off = c->dko;
    p->row_ptr = c->drp, p->col = c->dcol;
    p->Cq = cq, p->Ck = ck;
}

/* svoo_cuda_attend into c->o (outputs preset to NaN: a row left unwritten shows; f16
 * outputs rounded to bf16), or svoo_cuda_attend_ear with the EAR workspace ews when it is
 * not NULL (and kv_copy) */
static svoo_status direct_run_kv(direct_case *c, void *ews, size_t ewsb, void *kv_copy) {
    CU(cudaMemset(c->dout, 0xff, c->bytes));
    const svoo_status s = ews ? svoo_cuda_attend_ear(&c->p, c->ws, c->wsb, ews, ewsb, kv_copy, NULL)
                              : svoo_cuda_attend(&c->p, c->ws, c->wsb, NULL);
    CU(cudaDeviceSynchronize());
    CU(cudaMemcpy(c->o, c->dout, c->bytes, cudaMemcpyDeviceToHost));
    for (size_t i = 0; c->f16 && i < c->cnt; i++)
        c->o[i] = svoo_f32_to_bf16(svoo_f16_to_f32(c->o[i]));
    return s;
}
static svoo_status direct_run(direct_case *c, void *ews, size_t ewsb) {
    return direct_run_kv(c, ews, ewsb, NULL);
}

/* K and V of c copied in key-cluster order into kc, vc (as the CUDA backend
 * lays them out on Hopper) and c->p pointed at them without k_perm; undone by
 * direct_kv_restore */
static svoo_status direct_kv_order(direct_case *c, void *kc, void *vc) {
    svoo_cuda_attend_params *p = &c->p;
    const int64_t sb = p->k_stride_b, sh = p->k_stride_h, sn = p->k_stride_n;
    svoo_status s = svoo_cuda_permute_rows(c->dk, kc, sb, sh, sn, p->B, p->H, p->N_k, p->D,
                                           p->dtype, c->dkp, 0, NULL);
    if (!s)
        s = svoo_cuda_permute_rows(c->dv, vc, sb, sh, sn, p->B, p->H, p->N_k, p->D, p->dtype,
                                   c->dkp, 0, NULL);
    if (!s) p->k = kc, p->v = vc, p->k_perm = NULL;
    return s;
}
static void direct_kv_restore(direct_case *c) {
    c->p.k = c->dk, c->p.v = c->dv, c->p.k_perm = c->dkp;
}

static void direct_free(direct_case *c) {
    cudaFree(c->ws), cudaFree(c->dqp), cudaFree(c->dkp), cudaFree(c->dqo), cudaFree(c->dko);
    cudaFree(c->drp), cudaFree(c->dcol);
    dev_free4(c->dq, c->dk, c->dv, c->dout);
    free(c->q), free(c->k), free(c->v), free(c->o), free(c->ref);
    free(c->qperm), free(c->kperm), free(c->qoff), free(c->koff), free(c->rp), free(c->col);
}

/* svoo_cuda_permute_rows against the host, both directions: (B, H, N, D)
 * rows at padded strides (gaps between rows, heads and batches), N not a
 * multiple of a block's rows, each head its own permutation (and none: the
 * identity); the inverse writes the rows back and leaves the gaps; a stride
 * that is not a multiple of 8 elements is refused */
static void test_permute_rows(int B, int H, int N, int D) {
    const int64_t sn = D + 8, sh = sn * N + 16, sb = sh * H + 24; /* elements */
    const size_t ns = (size_t)sb * B, nc = (size_t)B * H * N * D, np = (size_t)B * H * N;
    uint16_t *hs = malloc(ns * 2), *hc = malloc(nc * 2), *hr = malloc(ns * 2);
    int32_t *hp = malloc(np * 4);
    void *ds = NULL, *dc = NULL, *dr = NULL;
    int32_t *dp = NULL;
    if (!hs || !hc || !hr || !hp) {
        CHECK(0, "permute rows: host allocation");
        free(hs), free(hc), free(hr), free(hp);
        return;
    }
    uint64_t rng = 0x5eed0000u + (uint64_t)N;
    for (size_t i = 0; i < ns; i++)
        hs[i] = (uint16_t)rng_next(&rng);
    for (int bh = 0; bh < B * H; bh++) {
        int32_t *pp = hp + (size_t)bh * N;
        for (int i = 0; i < N; i++)
            pp[i] = i;
        for (int i = N - 1; i > 0; i--) {
            const int j = (int)(rng_next(&rng) % (uint64_t)(i + 1)), t = pp[i];
            pp[i] = pp[j], pp[j] = t;
        }
    }
    CU(cudaMalloc(&ds, ns * 2));
    CU(cudaMalloc(&dr, ns * 2));
    CU(cudaMalloc(&dc, nc * 2));
    CU(cudaMalloc((void **)&dp, np * 4));
    CU(cudaMemcpy(ds, hs, ns * 2, cudaMemcpyHostToDevice));
    CU(cudaMemcpy(dp, hp, np * 4, cudaMemcpyHostToDevice));
    for (int use_perm = 0; use_perm < 2; use_perm++) {
        const int32_t *perm = use_perm ? dp : NULL;
        svoo_status s =
            svoo_cuda_permute_rows(ds, dc, sb, sh, sn, B, H, N, D, SVOO_CUDA_BF16, perm, 0, NULL);
        CU(cudaDeviceSynchronize());
        CHECK(s == SVOO_OK, "permute rows: %s", svoo_cuda_attend_last_error());
        CU(cudaMemcpy(hc, dc, nc * 2, cudaMemcpyDeviceToHost));
        size_t bad = 0;
        for (int bh = 0; bh < B * H; bh++)
            for (int i = 0; i < N; i++) {
                const int64_t j = use_perm ? hp[(size_t)bh * N + i] : i;
                const uint16_t *src = hs + (bh / H) * sb + (bh % H) * sh + j * sn;
                bad += memcmp(hc + ((size_t)bh * N + i) * D, src, (size_t)D * 2) != 0;
            }
        CHECK(bad == 0, "permute rows B %d H %d N %d D %d perm %d: %zu rows wrong", B, H, N, D,
              use_perm, bad);
        /* inverse into a buffer whose gaps hold another pattern: rows back, gaps kept */
        CU(cudaMemset(dr, 0x5a, ns * 2));
        s = svoo_cuda_permute_rows(dc, dr, sb, sh, sn, B, H, N, D, SVOO_CUDA_BF16, perm, 1, NULL);
        CU(cudaDeviceSynchronize());
        CHECK(s == SVOO_OK, "permute rows inverse: %s", svoo_cuda_attend_last_error());
        CU(cudaMemcpy(hr, dr, ns * 2, cudaMemcpyDeviceToHost));
        size_t wrong = 0;
        for (size_t x = 0; x < ns; x++) {
            const int64_t h = (int64_t)x % sb / sh, i = (int64_t)x % sb % sh / sn,
                          d = (int64_t)x % sb % sh % sn; /* h = H, i = N, d >= D: gaps */
            wrong += hr[x] != (h < H && i < N && d < D ? hs[x] : 0x5a5a);
        }
        CHECK(wrong == 0, "permute rows inverse B %d H %d N %d D %d perm %d: %zu elements wrong", B,
              H, N, D, use_perm, wrong);
    }
    CHECK(svoo_cuda_permute_rows(ds, dc, sb, sh, sn + 1, B, H, N, D, SVOO_CUDA_BF16, dp, 0, NULL) ==
              SVOO_ERR_MISALIGNED,
          "permute rows: a stride of %lld elements accepted", (long long)(sn + 1));
    CHECK(svoo_cuda_permute_rows((uint16_t *)ds + 1, dc, sb, sh, sn, B, H, N, D, SVOO_CUDA_BF16, dp,
                                 0, NULL) == SVOO_ERR_MISALIGNED,
          "permute rows: a misaligned source accepted");
    CHECK(svoo_cuda_permute_rows(ds, (uint16_t *)dc + 1, sb, sh, sn, B, H, N, D, SVOO_CUDA_BF16, dp,
                                 0, NULL) == SVOO_ERR_MISALIGNED,
          "permute rows: a misaligned destination accepted");
    cudaFree(ds), cudaFree(dr), cudaFree(dc), cudaFree(dp);
    free(hs), free(hc), free(hr), free(hp);
}

/* more heads than wl_scan's block has threads (it ranks them by work in its
 * stride loops), and more than it orders by work (ORDER_MAX 2048: index
 * order): B x 2 heads of a small hand-made plan against the CPU executor (an
 * item the permuted order lost would leave its rows NaN) */
static void test_many_heads(int64_t B) {
    direct_case c;
    /* (ear_plan: N >= 350 + cq - 3) */
    direct_setup(&c, ear_plan, B, 64, 400, 4, 8, 2, 0, 0, 0, 0x4ead5);
    if (!c.bad) {
        const svoo_status s = direct_run(&c, NULL, 0);
        CHECK(s == SVOO_OK, "many heads b%lld: %s", (long long)B, svoo_cuda_attend_last_error());
        const double r = s ? INFINITY : rel_l2(c.o, c.ref, c.cnt);
        CHECK(r <= 1e-2, "many heads b%lld (%lld heads): rel-L2 vs the CPU executor %.3g",
              (long long)B, (long long)c.BH, r);
        printf("  many heads: %lld, vs cpu-exec %.1e\n", (long long)c.BH, r);
    }
    direct_free(&c);
}

/* the rows of query cluster r of head bh: true when they are the same in a and
 * b (outputs of c's shape) bit for bit */
static int cluster_same(const direct_case *c, const uint16_t *a, const uint16_t *b, int64_t bh,
                        int r) {
    const int32_t *qo = c->qoff + bh * (c->cq + 1), *qp = c->qperm + bh * c->N;
    int same = 1;
    for (int32_t i = qo[r]; i < qo[r + 1]; i++) {
        const size_t x = ((size_t)bh * c->N + qp[i]) * c->D;
        same &= !memcmp(a + x, b + x, (size_t)c->D * 2);
    }
    return same;
}

/* the rows of query cluster r of head bh: adds the squared error of c->o
 * against c->ref to *num and the squares of c->ref to *den */
static void cluster_err(const direct_case *c, int64_t bh, int r, double *num, double *den) {
    const int32_t *qo = c->qoff + bh * (c->cq + 1), *qp = c->qperm + bh * c->N;
    for (int32_t i = qo[r]; i < qo[r + 1]; i++)
        for (int j = 0; j < c->D; j++) {
            const size_t x = ((size_t)bh * c->N + qp[i]) * c->D + j;
            const double a = svoo_bf16_to_f32(c->o[x]), b = svoo_bf16_to_f32(c->ref[x]);
            *num += (a - b) * (a - b);
            *den += b * b;
        }
}

/* the largest rel-L2 of c->o against c->ref over the rows of one query
 * cluster, over every cluster of every head (an error confined to one
 * cluster's rows shows, which the rel-L2 over all rows may average away) */
static double worst_cluster_rel_l2(const direct_case *c) {
    double worst = 0;
    for (int64_t bh = 0; bh < c->BH; bh++)
        for (int r = 0; r < c->cq; r++) {
            double num = 0, den = 0;
            cluster_err(c, bh, r, &num, &den);
            worst = fmax(worst, sqrt(num / (den > 0 ? den : 1)));
        }
    return worst;
}

/* test_ear_direct's checks of one path: o (EAR) against the CPU executor with
 * EAR; the rows of the cluster that drops nothing equal o0 (the same kernel
 * without EAR) bit for bit, the empty plan row's are the pseudo-keys' (zeros
 * in o0) */
static void ear_direct_check(const direct_case *c, const uint16_t *o0, const char *path) {
    const int64_t BH = c->BH, N = c->N, D = c->D;
    const int cq = c->cq;
    const double r = rel_l2(c->o, c->ref, c->cnt);
    int same_all = 1, zero_empty = 1;
    double num = 0, den = 0;
    for (int64_t bh = 0; bh < BH; bh++) {
        const int32_t *qo = c->qoff + bh * (cq + 1), *qp = c->qperm + bh * N;
        same_all &= cluster_same(c, o0, c->o, bh, EAR_R_ALL);
        cluster_err(c, bh, EAR_R_EMPTY, &num, &den);
        for (int32_t i = qo[EAR_R_EMPTY]; i < qo[EAR_R_EMPTY + 1]; i++)
            for (int j = 0; j < D; j++)
                zero_empty &= (o0[((size_t)bh * N + qp[i]) * D + j] & 0x7fff) == 0;
    }
    const double re = sqrt(num / (den > 0 ? den : 1));
    CHECK(r <= 1e-2, "ear direct %s d%lld b%lld: rel-L2 vs the CPU executor with EAR %.3g", path,
          (long long)D, (long long)c->B, r);
    CHECK(same_all, "ear direct %s d%lld b%lld: rows that drop nothing differ from no EAR", path,
          (long long)D, (long long)c->B);
    CHECK(zero_empty && den > 0 && re <= 1e-2,
          "ear direct %s d%lld b%lld: empty plan row: zeros without EAR %d, EAR vs CPU %.3g", path,
          (long long)D, (long long)c->B, zero_empty, re);
    printf("  ear direct %-8s d%-3lld b%lld ck %d: vs cpu-exec %.1e, empty plan row %.1e, "
           "nothing-dropped rows %s\n",
           path, (long long)D, (long long)c->B, c->ck, r, re, same_all ? "identical" : "DIFFERENT");
}

/* svoo_cuda_attend_ear on ear_plan's plans (B*H heads, Ck = 2100: three
 * 1024-cluster chunks, empty key clusters, an empty plan row, a query cluster
 * without rows, N not a multiple of any tile) against the CPU executor with EAR
 * (ear_direct_check), on both paths: the automatic kernel (Hopper: pseudo-key
 * tiles in the wgmma kernel) and the mma.sync kernel with the two-pass EAR;
 * the row log-sum-exps of svoo_cuda_attend (p->lse) of both kernels; then
 * EAR with K and V in key-cluster order (k_perm NULL), and with the copy made
 * by the means pass (kv_copy: the same copy and output). Then the refusals:
 * p->lse set, a short EAR workspace, a misaligned kv_copy, a misaligned k row
 * stride (statuses, no launch). */
static void test_ear_direct(int64_t B, int D) {
    direct_case c;
    direct_setup(&c, ear_plan, B, D, 3001, 40, 2100, 0, 1, 0, 0, 777);
    const int64_t N = c.N;
    uint16_t *o0 = malloc(c.bytes);
    void *ews, *kc, *vc;
    const size_t ewsb = svoo_cuda_ear_workspace((int)B, (int)c.H, (int)N, c.ck, D);
    CU(cudaMalloc(&ews, ewsb));
    CU(cudaMalloc(&kc, c.bytes));
    CU(cudaMalloc(&vc, c.bytes));
    svoo_cuda_attend_params *p = &c.p;
    static const char *const path[2] = {"auto", "two-pass"};
    for (int kern = 0; kern < 2; kern++) {
        svoo_cuda_attend_kernel = kern;
        const svoo_status s0 = direct_run(&c, NULL, 0);
        memcpy(o0, c.o, c.bytes);
        const svoo_status s1 = direct_run(&c, ews, ewsb);
        CHECK(!s0 && !s1, "ear direct %s d%d b%lld: %d %d %s", path[kern], D, (long long)B, s0, s1,
              svoo_cuda_attend_last_error());
        if (!s0 && !s1 && !c.bad) ear_direct_check(&c, o0, path[kern]);
    }
    /* the row log-sum-exps (p->lse, an output of svoo_cuda_attend) of both
     * kernels agree: the same -inf rows, finite ones within 1e-3 */
    const size_t nl = (size_t)c.BH * N;
    float *lse[2] = {malloc(nl * 4), malloc(nl * 4)}, *dl;
    CU(cudaMalloc((void **)&dl, nl * 4));
    p->lse = dl;
    for (int kern = 0; kern < 2; kern++) {
        svoo_cuda_attend_kernel = 2 - kern; /* sm90 where it runs (else sm80), then sm80 */
        CU(cudaMemset(dl, 0, nl * 4));
        CHECK(direct_run(&c, NULL, 0) == SVOO_OK, "lse d%d: %s", D, svoo_cuda_attend_last_error());
        CU(cudaMemcpy(lse[kern], dl, nl * 4, cudaMemcpyDeviceToHost));
    }
    p->lse = NULL;
    double maxd = 0;
    int same_inf = 1, ninf = 0;
    for (size_t i = 0; i < nl; i++) {
        const int i0 = isinf(lse[0][i]) != 0, i1 = isinf(lse[1][i]) != 0; /* (glibc: -1 for -inf) */
        same_inf &= i0 == i1;
        ninf += i0;
        if (!i0 && !i1) maxd = fmax(maxd, fabs((double)lse[0][i] - lse[1][i]));
    }
    CHECK(same_inf && maxd <= 1e-3 && ninf < (int)nl,
          "lse d%d: kernels disagree: same -inf rows %d (%d), max |diff| %.3g", D, same_inf, ninf,
          maxd);
    printf("  lse d%-3d b%lld: sm90 vs sm80 kernel max |diff| %.1e, %d rows without keys\n", D,
           (long long)B, maxd, ninf);
    free(lse[0]), free(lse[1]), cudaFree(dl);
    svoo_cuda_attend_kernel = 0;
    /* K and V in key-cluster order, as the CUDA backend lays them out on Hopper */
    svoo_status s = direct_kv_order(&c, kc, vc);
    if (!s) {
        s = direct_run(&c, ews, ewsb);
        const double r = rel_l2(c.o, c.ref, c.cnt);
        CHECK(!s && r <= 1e-2, "ear direct, keys in cluster order d%d b%lld: %s, rel-L2 %.3g", D,
              (long long)B, svoo_cuda_attend_last_error(), r);
        printf("  ear direct keys in cluster order d%-3d b%lld: vs cpu-exec %.1e\n", D,
               (long long)B, r);
        direct_kv_restore(&c);
        /* the same copy made by the means pass (kv_copy): the same copy, the
         * same output bit for bit */
        uint16_t *o1 = malloc(c.bytes), *h0 = malloc(2 * c.bytes), *h1 = malloc(2 * c.bytes);
        void *kvc = NULL;
        memcpy(o1, c.o, c.bytes);
        CU(cudaMalloc(&kvc, 2 * c.bytes));
        CU(cudaMemset(kvc, 0xff, 2 * c.bytes));
        const svoo_status sk = direct_run_kv(&c, ews, ewsb, kvc);
        CU(cudaMemcpy(h0, kc, c.bytes, cudaMemcpyDeviceToHost));
        CU(cudaMemcpy((char *)h0 + c.bytes, vc, c.bytes, cudaMemcpyDeviceToHost));
        CU(cudaMemcpy(h1, kvc, 2 * c.bytes, cudaMemcpyDeviceToHost));
        const int same_copy = !memcmp(h0, h1, 2 * c.bytes), same_o = !memcmp(o1, c.o, c.bytes);
        CHECK(!sk && same_copy && same_o, "ear direct, kv_copy d%d b%lld: %s, copy %s, output %s",
              D, (long long)B, svoo_cuda_attend_last_error(), same_copy ? "same" : "DIFFERENT",
              same_o ? "same" : "DIFFERENT");
        printf("  ear direct kv_copy d%-3d b%lld: copy and output as with the separate copy: %s\n",
               D, (long long)B, same_copy && same_o ? "yes" : "NO");
        cudaFree(kvc);
        free(o1), free(h0), free(h1);
    }
    CHECK(!s, "ear direct: key-cluster order copy: %s", svoo_cuda_attend_last_error());
    p->lse = (float *)ews;
    CHECK(svoo_cuda_attend_ear(p, c.ws, c.wsb, ews, ewsb, NULL, NULL) == SVOO_ERR_INVALID_ARGUMENT,
          "ear direct: p->lse set not refused");
    p->lse = NULL;
    CHECK(svoo_cuda_attend_ear(p, c.ws, c.wsb, ews, ewsb - 256, NULL, NULL) ==
              SVOO_ERR_WORKSPACE_TOO_SMALL,
          "ear direct: short EAR workspace not refused: %s", svoo_cuda_attend_last_error());
    /* F1 of docs/REVIEW_2026-11-30_EAR.md: a status, not a misaligned-address fault */
    CHECK(svoo_cuda_attend_ear(p, c.ws, c.wsb, ews, ewsb, (char *)kc + 8, NULL) ==
              SVOO_ERR_MISALIGNED,
          "ear direct: misaligned kv_copy not refused: %s", svoo_cuda_attend_last_error());
    p->k_stride_n = D + 4;
    CHECK(svoo_cuda_attend_ear(p, c.ws, c.wsb, ews, ewsb, NULL, NULL) == SVOO_ERR_MISALIGNED,
          "ear direct: misaligned k rows not refused: %s", svoo_cuda_attend_last_error());
    cudaFree(ews), cudaFree(kc), cudaFree(vc);
    free(o0);
    direct_free(&c);
}

/* the call again with its work list built beforehand on another stream
 * (svoo_cuda_attend_worklist, params.worklist_ready; the workspace garbled
 * first): bit-identical output and the same union items as c->o and items;
 * then once more on the same list (its item counters used up by the first
 * call): bit-identical again */
static void direct_prebuilt(direct_case *c, void *ews, size_t ewsb, int items, const char *how) {
    const size_t n = c->cnt * 2;
    uint16_t *o1 = malloc(n);
    if (!o1) return;
    memcpy(o1, c->o, n);
    cudaStream_t s2;
    cudaEvent_t ev;
    CU(cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking));
    CU(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
    CU(cudaMemset(c->ws, 0xa5, c->wsb));
    CU(cudaDeviceSynchronize());
    svoo_status s = svoo_cuda_attend_worklist(&c->p, c->ws, c->wsb, s2);
    CHECK(s == SVOO_OK, "prebuilt work list%s: %s", how, svoo_cuda_attend_last_error());
    if (!s) {
        CU(cudaEventRecord(ev, s2));
        c->p.worklist_ready = ev;
        s = direct_run(c, ews, ewsb);
        c->p.worklist_ready = NULL;
        CHECK(s == SVOO_OK, "prebuilt work list%s: call: %s", how, svoo_cuda_attend_last_error());
        const int it2 = svoo_cuda_attend_union_items(&c->p, c->ws);
        CHECK(!s && it2 == items && !memcmp(o1, c->o, n),
              "prebuilt work list%s d%d: %d union items (inline %d), output %s", how, c->D, it2,
              items, memcmp(o1, c->o, n) ? "differs" : "bit-identical");
        c->p.worklist_ready = ev;
        s = direct_run(c, ews, ewsb);
        c->p.worklist_ready = NULL;
        CHECK(!s && !memcmp(o1, c->o, n), "prebuilt work list%s d%d, second call: output %s", how,
              c->D, memcmp(o1, c->o, n) ? "differs" : "bit-identical");
    }
    memcpy(c->o, o1, n);
    cudaEventDestroy(ev);
    cudaStreamDestroy(s2);
    free(o1);
}

/* a . b over D (a multiple of 4) */
static double dot_d(const double *a, const double *b, int D) {
    double d[4] = {0, 0, 0, 0};
    for (int j = 0; j < D; j += 4)
        for (int u = 0; u < 4; u++)
            d[u] += a[j + u] * b[j + u];
    return d[0] + d[1] + d[2] + d[3];
}

/* EAR on c's plans: the share of a row's softmax mass that the pseudo-keys of
 * the dropped clusters of >= 2 keys take (those whose bias ln size is not 0),
 * the mean over every 4th row of every head, from c's inputs (in double) */
static double pseudo_share(const direct_case *c) {
    const int64_t N = c->N;
    const int D = c->D, cq = c->cq, ck = c->ck;
    const double scale = 1.0 / sqrt((double)D);
    double *fq = malloc(sizeof(double) * N * D), *fk = malloc(sizeof(double) * N * D);
    double *mu = malloc(sizeof(double) * ck * D), *sa = malloc(sizeof(double) * (N + ck));
    double *sb = malloc(sizeof(double) * ck);
    char *sel = malloc((size_t)ck);
    double share = 0;
    int64_t rows = 0;
    for (int64_t bh = 0; bh < c->BH; bh++) {
        const int32_t *qp = c->qperm + bh * N, *kp = c->kperm + bh * N;
        const int32_t *qo = c->qoff + bh * (cq + 1), *ko = c->koff + bh * (ck + 1);
        const int32_t *rp = c->rp + bh * (cq + 1); /* (global offsets into col) */
        for (int64_t i = 0; i < N * D; i++) {      /* in permuted order */
            fq[i] = svoo_bf16_to_f32(c->q[(bh * N + qp[i / D]) * D + i % D]);
            fk[i] = svoo_bf16_to_f32(c->k[(bh * N + kp[i / D]) * D + i % D]);
        }
        for (int cl = 0; cl < ck; cl++)
            for (int j = 0; j < D; j++) {
                double x = 0;
                for (int32_t k = ko[cl]; k < ko[cl + 1]; k++)
                    x += fk[(size_t)k * D + j];
                mu[(size_t)cl * D + j] = x / (ko[cl + 1] > ko[cl] ? ko[cl + 1] - ko[cl] : 1);
            }
        for (int r = 0; r < cq; r++) {
            memset(sel, 0, (size_t)ck);
            for (int32_t e = rp[r]; e < rp[r + 1]; e++)
                sel[c->col[e]] = 1;
            for (int32_t i = qo[r]; i < qo[r + 1]; i++) {
                if (i % 4) continue;
                /* sa: the selected keys' scores and the singletons' pseudo-keys',
                 * sb: the other pseudo-keys' (with their bias) */
                const double *q = fq + (size_t)i * D;
                int na = 0, nb = 0;
                for (int cl = 0; cl < ck; cl++) {
                    const int32_t sz = ko[cl + 1] - ko[cl];
                    if (sel[cl])
                        for (int32_t k = ko[cl]; k < ko[cl + 1]; k++)
                            sa[na++] = scale * dot_d(q, fk + (size_t)k * D, D);
                    else if (sz)
                        *(sz == 1 ? &sa[na++] : &sb[nb++]) =
                            scale * dot_d(q, mu + (size_t)cl * D, D) + log((double)sz);
                }
                double m = -INFINITY;
                for (int k = 0; k < na; k++)
                    m = fmax(m, sa[k]);
                for (int k = 0; k < nb; k++)
                    m = fmax(m, sb[k]);
                double ta = 0, tb = 0;
                for (int k = 0; k < na; k++)
                    ta += exp(sa[k] - m);
                for (int k = 0; k < nb; k++)
                    tb += exp(sb[k] - m);
                share += ta + tb > 0 ? tb / (ta + tb) : 0;
                rows++;
            }
        }
    }
    free(fq), free(fk), free(mu), free(sa), free(sb), free(sel);
    return rows ? share / (double)rows : 0;
}

/* the plans of test_union_direct: own = ear_plan's construction (Ck 300, shared selections,
 * same_k with EAR, the pseudo-key and nothing-dropped checks); skip_plan and limits_plan have
 * their own layouts */
typedef struct {
    plan_fn fn;
    const char *name;
    int ck, own;
} union_plan;
static const union_plan UNION_EAR = {ear_plan, "union direct", 300, 1},
                        UNION_SKIP = {skip_plan, "union skip", 256, 0},
                        UNION_LIMITS = {limits_plan, "union limits", 256, 0};

/* Union items of the Hopper kernel (worklist.cu): the query-cluster tails of a
 * head packed into shared row tiles that run the union of their members' key
 * clusters, each row masked to its own. ear_plan's plans with Ck = 300 (one
 * table), cq clusters of 1-150 rows (N >= 350 + cq) (many tails, items of
 * <= 64 rows, up to 32 members), selections sharing every 4th key cluster (so
 * that packing pays), an empty plan row (not packed), a cluster without rows
 * and one that selects every key cluster: against the CPU executor, with packing (union items must
 * be there on a Hopper GPU) and with SVOO_CUDA_PACK=0. With ear,
 * svoo_cuda_attend_ear against the CPU executor with EAR: each row of a union
 * item sees the pseudo-keys of the clusters its own cluster dropped.
 * Per call: rel-L2 over all rows and over each query cluster's rows (the
 * worst) <= 1e-2. With ear (same_k: direct_setup), the pseudo-keys of >= 2
 * keys must take >= 0.2 of a row's softmax mass on average (pseudo_share;
 * ~0.4 here, ~0.01-0.04 without same_k), so that a wrong bias or drop mask
 * moves rows well past 1e-2 (bias ln size x ln 2 on the CPU executor: rel-L2
 * 0.11, worst cluster 0.46). On Hopper the rows of the cluster that selects
 * every key cluster equal those of the packed call without EAR bit for bit:
 * the work list does not depend on EAR, its 72-row tail opens a union item
 * that smaller tails join without adding keys (2-6 members in each head
 * here, wl_pack's rule worked on the CPU), and the item's pseudo-key tiles
 * are masked for its rows (P = 0, alpha = 1). With skip_plan (its own layout, Ck 256) a
 * union item has key tiles that only one consumer warpgroup's rows selected, which the
 * Hopper kernel's consumers skip (SKIP): consumer 1 one in the middle, consumer 0 the item's
 * last four, before the pseudo-key tiles with EAR; with limits_plan (Ck 256) wl_pack runs
 * past its limits on tails and open items (384 union items on one launch); both with the
 * same checks against the CPU executor, without the pseudo-key and nothing-dropped ones
 * (ear_plan's construction). */
static void test_union_direct(const union_plan *up, int64_t B, int D, int64_t N, int cq, int ear,
                              int f16) {
    const int own = up->own, ck = up->ck;
    char name[48];
    snprintf(name, sizeof name, "%s%s", up->name, f16 ? " f16" : "");
    direct_case c;
    direct_setup(&c, up->fn, B, D, N, cq, ck, own ? 4 : 0, ear, own && ear, f16, 991);
    void *ews = NULL;
    const size_t ewsb = ear ? svoo_cuda_ear_workspace((int)B, (int)c.H, (int)N, c.ck, D) : 0;
    if (ear) CU(cudaMalloc(&ews, ewsb));
    if (own && ear && !c.bad) {
        const double share = pseudo_share(&c);
        CHECK(share >= 0.2,
              "union direct ear d%d b%lld: pseudo-keys of >= 2 keys take %.3f of "
              "the softmax mass (construction too weak)",
              D, (long long)B, share);
        printf("  union direct ear d%-3d b%lld: pseudo-keys of >= 2 keys take %.2f of a row's "
               "softmax mass (mean)\n",
               D, (long long)B, share);
    }
    /* the Hopper kernel runs: an sm_90a image, a 9.0 device, not forced off */
    struct cudaDeviceProp dp;
    cudaGetDeviceProperties(&dp, 0);
    const char *kern = getenv("SVOO_CUDA_KERNEL");
#ifdef SVOO_HAVE_SM90A
    const int hopper = dp.major == 9 && dp.minor == 0 && !(kern && !strcmp(kern, "sm80"));
#else
    const int hopper = 0;
    (void)kern;
#endif
    uint16_t *o0 = own && ear && hopper ? malloc(c.bytes) : NULL; /* packed, without EAR */
    const char *old = getenv("SVOO_CUDA_PACK");
    char keep[16] = "";
    if (old) snprintf(keep, sizeof keep, "%s", old);
    void *kc, *vc;
    CU(cudaMalloc(&kc, c.bytes));
    CU(cudaMalloc(&vc, c.bytes));
    /* packed, packed with keys in cluster order (Hopper: the union items'
     * key tiles by TMA, masked tiles as pieces), not packed */
    for (int pass = 0; pass < 3; pass++) {
        const int pack = pass < 2, ordered = pass == 1, same = o0 && pack;
        if (pack)
            unsetenv("SVOO_CUDA_PACK");
        else
            setenv("SVOO_CUDA_PACK", "0", 1);
        if (ordered) {
            const svoo_status so = direct_kv_order(&c, kc, vc);
            CHECK(so == SVOO_OK, "%s: key-cluster order copy: %s", name,
                  svoo_cuda_attend_last_error());
            if (so) continue;
        }
        const svoo_status s0 = same ? direct_run(&c, NULL, 0) : SVOO_OK;
        if (same) memcpy(o0, c.o, c.bytes);
        const svoo_status s = s0 ? s0 : direct_run(&c, ews, ewsb);
        const char *how = ear ? " ear" : "";
        CHECK(s == SVOO_OK, "%s%s d%d b%lld pack %d%s: %s", name, how, D, (long long)B, pack,
              ordered ? " ordered" : "", svoo_cuda_attend_last_error());
        const int items = svoo_cuda_attend_union_items(&c.p, c.ws);
        if (ordered) direct_kv_restore(&c);
        if (pack && hopper)
            CHECK(items > 0, "%s%s d%d b%lld%s: no union items (%d)", name, how, D, (long long)B,
                  ordered ? " ordered" : "", items);
        if (!pack) CHECK(items == -1, "%s%s: SVOO_CUDA_PACK=0 packed (%d)", name, how, items);
        if (s || c.bad) continue;
        if (pass == 0) direct_prebuilt(&c, ews, ewsb, items, how);
        const double r = rel_l2(c.o, c.ref, c.cnt), rc = worst_cluster_rel_l2(&c);
        CHECK(r <= 1e-2 && rc <= 1e-2,
              "%s%s d%d b%lld pack %d%s: rel-L2 vs the CPU executor %.3g, worst query cluster %.3g",
              name, how, D, (long long)B, pack, ordered ? " ordered" : "", r, rc);
        int same_all = 1;
        for (int64_t bh = 0; bh < c.BH && same; bh++)
            same_all &= cluster_same(&c, o0, c.o, bh, EAR_R_ALL);
        if (same)
            CHECK(same_all,
                  "union direct ear d%d b%lld%s: rows that drop nothing differ from the call "
                  "without EAR",
                  D, (long long)B, ordered ? " ordered" : "");
        printf("  %s%s d%-3d b%lld pack %d%s: %d union items, vs cpu-exec %.1e, worst "
               "query cluster %.1e%s\n",
               name, how, D, (long long)B, pack, ordered ? " keys in cluster order" : "", items, r,
               rc,
               !same      ? ""
               : same_all ? ", nothing-dropped rows as without EAR"
                          : ", nothing-dropped rows DIFFERENT");
    }
    cudaFree(kc), cudaFree(vc), cudaFree(ews);
    free(o0);
    if (old)
        setenv("SVOO_CUDA_PACK", keep, 1);
    else
        unsetenv("SVOO_CUDA_PACK");
    direct_free(&c);
}

int main(void) {
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) || ndev == 0) {
        printf("test_cuda: no CUDA device, skipped\n");
        return 77;
    }
    struct cudaDeviceProp p;
    cudaGetDeviceProperties(&p, 0);
    printf("test_cuda on %s (sm_%d%d)\n", p.name, p.major, p.minor);
    /* the level itself (a bare `getenv && atoi` made SVOO_TEST_QUICK=2 run the =1 subset) */
    const int quick = getenv("SVOO_TEST_QUICK") ? atoi(getenv("SVOO_TEST_QUICK")) : 0;
    /* clang-format off */
    const scenario all[] = {
        {"dense d128", SVOO_METHOD_DENSE, 1, 3, 4133, 128, 0, 0, 0, {0}, 1, 1e-2, 0, 0},
        /* [B, N, H, D] with B > 1, which TMA cannot describe: on Hopper the dense call gathers */
        {"dense d64 bnhd b2", SVOO_METHOD_DENSE, 2, 2, 1999, 64, 1, 0, 0, {3}, 1, 1e-2, 0, 0},
        {"svoo auto", SVOO_METHOD_SVOO, 1, 3, 4133, 128, 0, 0, 0, {0, 11, 12, 31}, 4, 2e-2, 0, 0},
        {"svoo 64/200 d64 b2", SVOO_METHOD_SVOO, 2, 2, 6007, 64, 1, 64, 200, {5}, 1, 2e-2, 0, 0},
        {"svg2 auto", SVOO_METHOD_SVG2, 1, 3, 4133, 128, 0, 0, 0, {0, 1}, 2, 2e-2, 0, 0},
        {"svg2 40/150 d64", SVOO_METHOD_SVG2, 1, 2, 3000, 64, 0, 40, 150, {2}, 1, 2e-2, 0, 0},
        /* config.ear: GPU EAR vs the CPU executor with EAR on the GPU plan, and below
         * the error of that plan without EAR */
        {"svoo ear", SVOO_METHOD_SVOO, 1, 3, 4133, 128, 0, 0, 0, {0, 11, 12}, 3, 2e-2, 1, 0},
        {"svoo ear 64/200 d64 b2", SVOO_METHOD_SVOO, 2, 2, 6007, 64, 1, 64, 200, {5}, 1, 2e-2, 1, 0},
        {"svg2 ear", SVOO_METHOD_SVG2, 1, 3, 4133, 128, 0, 0, 0, {0}, 1, 2e-2, 1, 0},
        {"svg2 ear 40/150 d64", SVOO_METHOD_SVG2, 1, 2, 3000, 64, 0, 40, 150, {2}, 1, 2e-2, 1, 0},
        /* more items (bh x ceil(n / 192)) than an H200 has SMs (132): the persistent
         * k_assign90's blocks take 2-3 items each, so its row copy one item ahead and
         * its mbarrier ring wrap (6 uses of 4 stages on the k side: ck 200, 2 tiles)
         * run; D = 64, ck not a multiple of 128, n not a multiple of 192 */
        {"svoo 64/200 d64 b4 h3", SVOO_METHOD_SVOO, 4, 3, 6007, 64, 1, 64, 200, {5}, 1, 2e-2, 0, 0},
        /* 376 items and 5 weight tiles per item on the k side (ck 600): the ring of 4
         * stages wraps inside an item too */
        {"svoo 64/600 b2 h4", SVOO_METHOD_SVOO, 2, 4, 9001, 128, 0, 64, 600, {5}, 1, 2e-2, 0, 0},
        /* f16 rows: k_assign90<__half>, D = 64 and 128, labels vs the CPU planners */
        {"svoo 64/200 d64 b2 f16", SVOO_METHOD_SVOO, 2, 2, 6007, 64, 1, 64, 200, {5}, 1, 2e-2, 0, 1},
        {"svg2 auto f16", SVOO_METHOD_SVG2, 1, 3, 4133, 128, 0, 0, 0, {0, 1}, 2, 2e-2, 0, 1},
        /* f16 on the dense path (Hopper: the DENSE instantiation, TMA whole tiles) */
        {"dense d128 f16", SVOO_METHOD_DENSE, 1, 2, 1999, 128, 0, 0, 0, {0}, 1, 1e-2, 0, 1},
        {"dense d64 b2 f16", SVOO_METHOD_DENSE, 2, 2, 1999, 64, 0, 0, 0, {0}, 1, 1e-2, 0, 1},
    };
    /* clang-format on */
    const scenario tiny[] = {
        {"dense tiny d128", SVOO_METHOD_DENSE, 1, 1, 700, 128, 0, 0, 0, {0}, 1, 1e-2, 0, 0},
        {"svoo tiny d128", SVOO_METHOD_SVOO, 1, 1, 1100, 128, 0, 16, 48, {5}, 1, 2e-2, 0, 0},
        {"svg2 tiny d64 b2", SVOO_METHOD_SVG2, 2, 1, 900, 64, 1, 12, 40, {2}, 1, 2e-2, 0, 0},
        {"svoo ear tiny d128", SVOO_METHOD_SVOO, 1, 1, 1100, 128, 0, 16, 48, {5}, 1, 2e-2, 1, 0},
    };
    const svg_case svgs[] = {
        {"svg d128 text last", 1, 4, 128, 8, 8, 12, 32, 0, 32, 0},
        {"svg d64 b2 text first", 2, 3, 64, 6, 10, 12, 40, 1, 16, 0},
        {"svg d128 b2 blk128 mixed", 2, 3, 128, 13, 16, 24, 64, 0, 128, 1},
        {"svg d64 b2 text first mixed", 2, 3, 64, 5, 12, 20, 77, 1, 32, 1},
    };
    if (quick >= 2) {
        for (size_t i = 0; i < sizeof tiny / sizeof *tiny; i++)
            run_scenario(&tiny[i]);
        run_svg(&svgs[1], 0, 0);
        test_union_direct(&UNION_EAR, 1, 128, 1200, 24, 0, 0);
        test_union_direct(&UNION_EAR, 1, 128, 1200, 24, 1, 0);
        test_union_direct(&UNION_SKIP, 1, 128, 4088, 35, 0, 0);
        test_union_direct(&UNION_SKIP, 1, 128, 4088, 35, 1, 0);
        test_permute_rows(1, 2, 333, 64);
        test_bad_inputs();
        printf("test_cuda: %d checks, %d failed\n", g_checks, g_fail);
        return g_fail ? 1 : 0;
    }
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
        if (quick && i != 0 && i != 2 && i != 4 && i != 6 && i != 12 && i != 14) continue;
        run_scenario(&all[i]);
    }
    for (size_t i = 0; i < sizeof svgs / sizeof *svgs; i++) {
        if (quick && i > 1) continue;
        run_svg(&svgs[i], i == 1, 0);
    }
    /* svg + EAR: GPU vs the CPU backend and vs the CPU executor with EAR on the GPU
     * plan (mixed: a third of the heads random, where the bands leave mass out) */
    run_svg(&svgs[quick ? 1 : 3], 0, 1);
    if (!quick) run_svg(&svgs[2], 1, 1);
    test_graph(SVOO_METHOD_SVOO, 0);
    test_graph(SVOO_METHOD_SVOO, 1);
    if (!quick) {
        test_graph(SVOO_METHOD_SVG2, 0);
        test_graph(SVOO_METHOD_DENSE, 0);
    }
    test_ear_f16(128);
    test_ear_f16(64);
    test_ear_direct(2, 128);
    if (!quick) test_ear_direct(1, 64);
    for (int ear = 0; ear < 2; ear++) {
        test_union_direct(&UNION_EAR, 2, 128, 3001, 60, ear, 0);
        test_union_direct(&UNION_EAR, 1, 64, 3001, 60, ear, 0);
        /* more union items than an H200's 132 SMs, so that blocks take a second one */
        if (!quick) test_union_direct(&UNION_EAR, 4, 128, 3001, 60, ear, 0);
        test_union_direct(&UNION_SKIP, 1, 128, 4088, 35, ear, 0);
        test_union_direct(&UNION_SKIP, 1, 64, 4088, 35, ear, 0);
        /* f16: the union, gathered and TMA instantiations in f16 (packed, in key-cluster
         * order, not packed) */
        test_union_direct(&UNION_SKIP, 1, 128, 4088, 35, ear, 1);
        if (!quick) test_union_direct(&UNION_SKIP, 1, 64, 4088, 35, ear, 1);
        /* wl_pack's limits: more tails than it considers, more items than it can open */
        if (!quick) test_union_direct(&UNION_LIMITS, 1, 64, 38400, 600, ear, 0);
    }
    test_permute_rows(2, 3, 1001, 128);
    test_permute_rows(1, 2, 333, 64);
    if (!quick) {
        test_many_heads(600);  /* 1200 heads */
        test_many_heads(1100); /* 2200 heads */
    }
    test_kv_order(SVOO_METHOD_SVOO, 2, 128);
    if (!quick) test_kv_order(SVOO_METHOD_SVG2, 1, 64);
    test_ear_nothing_dropped(SVOO_METHOD_SVOO, 2, 128);
    if (!quick) test_ear_nothing_dropped(SVOO_METHOD_SVG2, 1, 64);
    test_nonfinite(SVOO_METHOD_SVOO);
    test_nonfinite(SVOO_METHOD_SVG2);
    test_bad_inputs();
    cudaError_t e = cudaDeviceSynchronize();
    CHECK(e == cudaSuccess, "device: %s", cudaGetErrorString(e));
    printf("test_cuda: %d checks, %d failed\n", g_checks, g_fail);
    return g_fail ? 1 : 0;
}

/* backend_cpu.c : the CPU backend: per (batch, head) load -> plan -> permute
 * -> attend -> inverse-permute, each stage parallel inside (OpenMP). */
#include "../attend/attend.h"
#include "ctx.h"

#include <omp.h>
#include <stdlib.h>

typedef svoo_status (*plan_fn)(const svoo_plan_input *in, svoo_plan *plan);
static const plan_fn k_planners[] = {NULL, svoo_plan_svoo, svoo_plan_svg2, svoo_plan_svg};

typedef struct {
    float *qh, *kh, *vh; /* original order */
    float *qp, *kp, *vp, *op; /* permuted order */
    int64_t cap;
    svoo_plan plan;
} cpu_state;

static svoo_status cpu_init(svoo_ctx *ctx) {
    ctx->backend_state = svoo_calloc(1, sizeof(cpu_state));
    if (!ctx->backend_state) return svoo_err(SVOO_ERR_OUT_OF_MEMORY, "cpu backend state");
    return SVOO_OK;
}

static void free_bufs(cpu_state *cs) {
    float **b[7] = {&cs->qh, &cs->kh, &cs->vh, &cs->qp, &cs->kp, &cs->vp, &cs->op};
    for (int i = 0; i < 7; i++) {
        svoo_free(*b[i]);
        *b[i] = NULL;
    }
    cs->cap = 0;
}

static void cpu_release(svoo_ctx *ctx) {
    cpu_state *cs = ctx->backend_state;
    if (!cs) return;
    free_bufs(cs);
    svoo_plan_release(&cs->plan);
    svoo_free(cs);
    ctx->backend_state = NULL;
}

static svoo_status reserve_bufs(svoo_ctx *ctx, cpu_state *cs, int64_t n, int d) {
    if (n * d <= cs->cap) return SVOO_OK;
    free_bufs(cs);
    float **b[7] = {&cs->qh, &cs->kh, &cs->vh, &cs->qp, &cs->kp, &cs->vp, &cs->op};
    size_t bytes = svoo_mul_size((size_t)n * d, sizeof(float));
    for (int i = 0; i < 7; i++)
        if (!bytes || !(*b[i] = svoo_aligned_alloc(bytes))) {
            free_bufs(cs);
            return svoo_ctx_err(ctx, SVOO_ERR_OUT_OF_MEMORY, "head buffers: 7 x %lld x %d floats",
                                (long long)n, d);
        }
    cs->cap = n * d;
    return SVOO_OK;
}

/* rows of t (head b, h) in the order `rows` (NULL = identity) -> dst */
static void load_par(const svoo_tensor *t, int64_t b, int64_t h, const int32_t *rows, int64_t n,
                     float *dst) {
    const int64_t D = t->shape[3];
#pragma omp parallel for schedule(static)
    for (int64_t i0 = 0; i0 < n; i0 += 256) {
        int64_t cnt = n - i0 < 256 ? n - i0 : 256;
        svoo_rows_load(t, b, h, rows ? rows + i0 : NULL, i0, cnt, dst + i0 * D);
    }
}

static void gather_par(const float *src, const int32_t *perm, int64_t n, int d, float *dst) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) memcpy(dst + i * d, src + (int64_t)perm[i] * d, (size_t)d * 4);
}

static void store_par(svoo_tensor *t, int64_t b, int64_t h, const int32_t *rows, int64_t n,
                      const float *src) {
    const int64_t D = t->shape[3];
#pragma omp parallel for schedule(static)
    for (int64_t i0 = 0; i0 < n; i0 += 256) {
        int64_t cnt = n - i0 < 256 ? n - i0 : 256;
        svoo_rows_store(t, b, h, rows ? rows + i0 : NULL, i0, cnt, src + i0 * D);
    }
}

static svoo_status cpu_attention(svoo_ctx *ctx, const svoo_call *call, const svoo_tensor *q,
                                 const svoo_tensor *k, const svoo_tensor *v, svoo_tensor *out,
                                 svoo_stats *st) {
    const svoo_config *c = &ctx->cfg;
    cpu_state *cs = ctx->backend_state;
    const int64_t B = q->shape[0], H = q->shape[1], NQ = q->shape[2], NK = k->shape[2];
    const int d = (int)q->shape[3];
    const float scale = 1.0f / sqrtf((float)d);
    const int nth = svoo_threads(c->num_threads);
    svoo_status s = reserve_bufs(ctx, cs, NQ > NK ? NQ : NK, d);
    if (s) return s;

    svoo_layer_state *ls = &ctx->layers[call->layer];
    int replan = 0, cq = 1, ck = 1;
    if (!call->dense) {
        if ((s = svoo_layer_state_prepare(ctx, ls, B, NQ))) return s;
        replan = svoo_layer_should_replan(ctx, ls, call->step, B, NQ);
        svoo_clusters_resolve(c, NQ, &cq, &ck);
        if (c->method != SVOO_METHOD_SVG && (cq > NQ || ck > NQ))
            return svoo_ctx_err(ctx, SVOO_ERR_INVALID_ARGUMENT,
                                "config.q_clusters/k_clusters: %d / %d exceed N = %lld", cq, ck,
                                (long long)NQ);
    }
    int32_t *rec_rows = NULL;
    int nrec = c->recall_rows > NQ ? (int)NQ : c->recall_rows;
    if (nrec > 0) {
        rec_rows = svoo_malloc((size_t)nrec * 4);
        if (!rec_rows) return svoo_ctx_err(ctx, SVOO_ERR_OUT_OF_MEMORY, "recall rows");
        for (int i = 0; i < nrec; i++) rec_rows[i] = (int32_t)((int64_t)i * NQ / nrec);
    }

    double dens_sum = 0, rec_sum = 0, t;
    omp_set_num_threads(nth);
    for (int64_t b = 0; b < B && !s; b++)
        for (int64_t h = 0; h < H && !s; h++) {
            svoo_plan *plan = &cs->plan;
            t = svoo_now_ms();
            load_par(q, b, h, NULL, NQ, cs->qh);
            load_par(k, b, h, NULL, NK, cs->kh);
            load_par(v, b, h, NULL, NK, cs->vh);
            st->ms_permute += svoo_now_ms() - t;

            t = svoo_now_ms();
            if (call->dense) {
                s = svoo_plan_dense(plan, NQ, NK);
                if (s) s = svoo_ctx_take_err(ctx, s); /* the message into the context */
            } else {
                svoo_plan_input in = {c, call->step, call->layer, (int)h, cs->qh, cs->kh, cs->vh,
                                      NQ, d, cq, ck, &ls->heads[b * H + h], replan, 0, nth};
                if (c->method == SVOO_METHOD_SVOO)
                    in.floor_ratio = svoo_floor_ratio(ctx, call->step, call->layer, (int)h);
                s = k_planners[c->method](&in, plan);
                if (s) s = svoo_ctx_take_err(ctx, s);
                else if (c->method == SVOO_METHOD_SVG) {
                    if (ls->heads[b * H + h].svg_temporal) st->temporal_heads++;
                    else st->spatial_heads++;
                }
            }
            st->ms_plan += svoo_now_ms() - t;
            if (s) break;

            t = svoo_now_ms();
            const float *qp = cs->qh, *kp = cs->kh, *vp = cs->vh;
            if (!plan->q_identity) {
                gather_par(cs->qh, plan->q_perm, NQ, d, cs->qp);
                qp = cs->qp;
            }
            if (!plan->k_identity) {
                gather_par(cs->kh, plan->k_perm, NK, d, cs->kp);
                gather_par(cs->vh, plan->k_perm, NK, d, cs->vp);
                kp = cs->kp;
                vp = cs->vp;
            }
            st->ms_permute += svoo_now_ms() - t;

            t = svoo_now_ms();
            s = svoo_attend_cpu(plan, qp, kp, vp, d, scale, c->ear && !call->dense, cs->op, nth);
            st->ms_attend += svoo_now_ms() - t;
            if (s) {
                s = svoo_ctx_take_err(ctx, s);
                break;
            }

            t = svoo_now_ms();
            store_par(out, b, h, plan->q_identity ? NULL : plan->q_perm, NQ, cs->op);
            st->ms_permute += svoo_now_ms() - t;

            dens_sum += svoo_plan_density(plan);
            if (nrec > 0) rec_sum += svoo_plan_recall(plan, cs->qh, cs->kh, d, scale, rec_rows, nrec);
        }
    svoo_free(rec_rows);
    if (s) {
        ls->planned_step = -1; /* a failed call leaves no half-updated state */
        return s;
    }
    if (!call->dense && replan) ls->planned_step = call->step;
    st->replanned = !call->dense && replan;
    st->density = dens_sum / (double)(B * H);
    if (nrec > 0) st->recall = rec_sum / (double)(B * H);
    return SVOO_OK;
}

const svoo_backend svoo_backend_cpu = {"cpu", cpu_init, cpu_release, cpu_attention};

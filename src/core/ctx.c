/* ctx.c : context life cycle, the call schedule and svoo_attention. */
#include "ctx.h"

#include <stdio.h>
#include <stdlib.h>

static int ceil_frac(double frac, int n) { return (int)ceil(frac * n - 1e-9); }

svoo_status svoo_ctx_create(const svoo_config *cfg, svoo_ctx **out) {
    if (!out) return svoo_err(SVOO_ERR_NULL_POINTER, "out is NULL");
    *out = NULL;
    if (!cfg) return svoo_err(SVOO_ERR_NULL_POINTER, "cfg is NULL");
    svoo_status s = svoo_config_validate(cfg);
    if (s) return s;
    const svoo_backend *be = &svoo_backend_cpu;
    if (cfg->device == SVOO_DEVICE_CUDA) {
        be = svoo_backend_cuda();
        if (!be) return svoo_err(SVOO_ERR_UNSUPPORTED, "config.device: CUDA (library built without CUDA)");
    }
    svoo_ctx *ctx = svoo_calloc(1, sizeof *ctx);
    if (!ctx) return svoo_err(SVOO_ERR_OUT_OF_MEMORY, "context");
    ctx->cfg = *cfg;
    ctx->backend = be;
    ctx->warm_steps = ceil_frac(cfg->warmup_step_frac, cfg->num_steps);
    ctx->warm_layers = ceil_frac(cfg->warmup_layer_frac, cfg->num_layers);
    ctx->layers = svoo_calloc((size_t)cfg->num_layers, sizeof *ctx->layers);
    if (!ctx->layers) {
        svoo_free(ctx);
        return svoo_err(SVOO_ERR_OUT_OF_MEMORY, "context: %d layer states", cfg->num_layers);
    }
    for (int l = 0; l < cfg->num_layers; l++) ctx->layers[l].planned_step = -1;
    if (be->init && (s = be->init(ctx))) {
        /* the context goes: a message the backend left in it becomes the thread's */
        if (ctx->errmsg[0]) svoo_err(s, "%s", ctx->errmsg);
        svoo_ctx_free(ctx);
        return s;
    }
    *out = ctx;
    return SVOO_OK;
}

static void layer_state_release(svoo_ctx *ctx, svoo_layer_state *ls) {
    if (ls->heads)
        for (int64_t i = 0; i < ls->B * ctx->cfg.num_heads; i++) svoo_head_state_release(&ls->heads[i]);
    svoo_free(ls->heads);
    memset(ls, 0, sizeof *ls);
    ls->planned_step = -1;
}

void svoo_ctx_free(svoo_ctx *ctx) {
    if (!ctx) return;
    if (ctx->backend && ctx->backend->release) ctx->backend->release(ctx);
    if (ctx->layers)
        for (int l = 0; l < ctx->cfg.num_layers; l++) layer_state_release(ctx, &ctx->layers[l]);
    svoo_free(ctx->layers);
    svoo_free(ctx);
}

void svoo_ctx_reset(svoo_ctx *ctx) {
    if (!ctx) return;
    for (int l = 0; l < ctx->cfg.num_layers; l++) {
        svoo_layer_state *ls = &ctx->layers[l];
        ls->planned_step = -1;
        if (ls->heads)
            for (int64_t i = 0; i < ls->B * ctx->cfg.num_heads; i++) ls->heads[i].valid = 0;
    }
}

const svoo_config *svoo_ctx_config(const svoo_ctx *ctx) { return ctx ? &ctx->cfg : NULL; }

svoo_status svoo_layer_state_prepare(svoo_ctx *ctx, svoo_layer_state *ls, int64_t B, int64_t N) {
    if (ls->heads && ls->B == B && ls->N == N) return SVOO_OK;
    layer_state_release(ctx, ls);
    ls->heads = svoo_calloc(svoo_mul_size((size_t)B, (size_t)ctx->cfg.num_heads), sizeof *ls->heads);
    if (!ls->heads)
        return svoo_ctx_err(ctx, SVOO_ERR_OUT_OF_MEMORY, "layer state for batch %lld", (long long)B);
    ls->B = B;
    ls->N = N;
    return SVOO_OK;
}

int svoo_layer_should_replan(const svoo_ctx *ctx, const svoo_layer_state *ls, int step,
                             int64_t B, int64_t N) {
    const svoo_config *c = &ctx->cfg;
    if (ls->planned_step < 0 || ls->B != B || ls->N != N) return 1;
    if (c->method == SVOO_METHOD_SVG) return 1; /* classified per call */
    if (step < c->reuse_start_step || c->reuse_every <= 1) return 1;
    /* the last scheduled re-plan point at or before `step`; reuse only a plan
     * made since then (robust to skipped steps and to steps run backwards) */
    int sched = c->reuse_start_step + (step - c->reuse_start_step) / c->reuse_every * c->reuse_every;
    return !(ls->planned_step >= sched && ls->planned_step <= step);
}

void svoo_log(svoo_ctx *ctx, const char *fmt, ...) {
    char msg[SVOO_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (ctx->cfg.log_fn)
        ctx->cfg.log_fn(ctx->cfg.log_user, msg);
    else
        fprintf(stderr, "svoo: %s\n", msg);
}

double svoo_floor_ratio(svoo_ctx *ctx, int step, int layer, int head) {
    const svoo_config *c = &ctx->cfg;
    double v;
    if (c->profile) {
        int ps, pl, ph;
        svoo_profile_dims(c->profile, &ps, &pl, &ph);
        /* a profile of another step count is read at the same point of the
         * denoising trajectory */
        int pstep = ps == c->num_steps ? step : (int)((int64_t)step * ps / c->num_steps);
        if (svoo_profile_get(c->profile, pstep, layer, head, &v) == SVOO_OK) {
            if (v < c->floor_min) v = c->floor_min;
            if (v > c->floor_max) v = c->floor_max;
            return v;
        }
    }
    if (!ctx->said_fallback) {
        ctx->said_fallback = 1;
        svoo_log(ctx, "%s (step %d, layer %d, head %d): using fallback floor ratio %g",
                 c->profile ? "profile has no entry" : "no profile", step, layer, head,
                 c->floor_ratio);
    }
    return c->floor_ratio;
}

svoo_status svoo_attention(svoo_ctx *ctx, int step, int layer, const svoo_tensor *q,
                           const svoo_tensor *k, const svoo_tensor *v, svoo_tensor *out,
                           svoo_stats *stats) {
    if (!ctx) return svoo_err(SVOO_ERR_NULL_POINTER, "ctx is NULL");
    const svoo_config *c = &ctx->cfg;
    svoo_status s = svoo_qkvo_check(q, k, v, out);
    if (s) return svoo_ctx_take_err(ctx, s);
    if (stats && stats->size != sizeof *stats)
        return svoo_ctx_err(ctx, SVOO_ERR_INVALID_ARGUMENT,
                            "stats: size %zu, expected %zu: call svoo_stats_init first",
                            stats->size, sizeof *stats);
    if (step < 0 || step >= c->num_steps)
        return svoo_ctx_err(ctx, SVOO_ERR_OUT_OF_RANGE, "step %d outside [0, %d)", step, c->num_steps);
    if (layer < 0 || layer >= c->num_layers)
        return svoo_ctx_err(ctx, SVOO_ERR_OUT_OF_RANGE, "layer %d outside [0, %d)", layer, c->num_layers);
    if (q->shape[1] != c->num_heads)
        return svoo_ctx_err(ctx, SVOO_ERR_SHAPE_MISMATCH, "q: %lld heads, config.num_heads = %d",
                            (long long)q->shape[1], c->num_heads);
    if (q->shape[3] != c->head_dim)
        return svoo_ctx_err(ctx, SVOO_ERR_UNSUPPORTED_HEAD_DIM, "q: head dim %lld, config.head_dim = %d",
                            (long long)q->shape[3], c->head_dim);
    if (q->device != c->device || q->device_index != c->device_index)
        return svoo_ctx_err(ctx, SVOO_ERR_WRONG_DEVICE, "q: device %s:%d, context on %s:%d",
                            q->device == SVOO_DEVICE_CPU ? "cpu" : "cuda", q->device_index,
                            c->device == SVOO_DEVICE_CPU ? "cpu" : "cuda", c->device_index);
    if (c->method != SVOO_METHOD_DENSE && q->shape[2] != k->shape[2])
        return svoo_ctx_err(ctx, SVOO_ERR_SHAPE_MISMATCH,
                            "k: %lld keys vs %lld queries: sparse methods need self-attention",
                            (long long)k->shape[2], (long long)q->shape[2]);
    if (c->method == SVOO_METHOD_SVG &&
        (int64_t)c->frames * c->height * c->width + c->text_tokens != q->shape[2])
        return svoo_ctx_err(ctx, SVOO_ERR_GEOMETRY,
                            "config.frames x height x width + text_tokens = %d x %d x %d + %d != N = %lld",
                            c->frames, c->height, c->width, c->text_tokens, (long long)q->shape[2]);
    if (c->check_finite && c->device == SVOO_DEVICE_CPU) {
        const svoo_tensor *ts[3] = {q, k, v};
        const char *names[3] = {"q", "k", "v"};
        for (int i = 0; i < 3; i++)
            if (svoo_tensor_has_nonfinite(ts[i]))
                return svoo_ctx_err(ctx, SVOO_ERR_NONFINITE_INPUT, "%s contains NaN or Inf", names[i]);
    }
    svoo_call call = {step, layer,
                      c->method == SVOO_METHOD_DENSE || step < ctx->warm_steps ||
                          layer < ctx->warm_layers,
                      stats != NULL};
    svoo_stats local;
    svoo_stats_init(&local);
    double t0 = svoo_now_ms();
    s = ctx->backend->attention(ctx, &call, q, k, v, out, &local);
    local.ms_total = svoo_now_ms() - t0;
    local.dense = call.dense;
    if (stats) *stats = local;
    return s;
}

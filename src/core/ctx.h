/* ctx.h : the context, its per-layer state and the backend table. */
#ifndef SVOO_CTX_H
#define SVOO_CTX_H

#include "../plan/plan.h"

typedef struct {
    int64_t B, N;         /* shape the state was built for */
    int planned_step;     /* step of the last re-plan, -1 none */
    svoo_head_state *heads; /* [B * num_heads] */
} svoo_layer_state;

typedef struct svoo_backend svoo_backend;

struct svoo_ctx {
    svoo_config cfg;
    char errmsg[SVOO_ERRMSG_MAX];
    int warm_steps, warm_layers;
    svoo_layer_state *layers; /* [num_layers] */
    int said_fallback;        /* profile fallback logged */
    const svoo_backend *backend;
    void *backend_state;
};

/* what svoo_attention decided for this call */
typedef struct {
    int step, layer;
    int dense;  /* warm-up or method dense */
    int want_stats; /* the caller passed stats (CUDA: per-stage events, one sync) */
} svoo_call;

/* ggml-style table: one per backend */
struct svoo_backend {
    const char *name;
    svoo_status (*init)(svoo_ctx *ctx);
    void (*release)(svoo_ctx *ctx);
    svoo_status (*attention)(svoo_ctx *ctx, const svoo_call *call, const svoo_tensor *q,
                             const svoo_tensor *k, const svoo_tensor *v, svoo_tensor *out,
                             svoo_stats *stats);
};

extern const svoo_backend svoo_backend_cpu;
/* NULL when the library was built without CUDA */
const svoo_backend *svoo_backend_cuda(void);

/* schedule helpers shared by the backends */
int svoo_layer_should_replan(const svoo_ctx *ctx, const svoo_layer_state *ls, int step,
                             int64_t B, int64_t N);
/* SVOO floor ratio of (step, layer, head): profile clipped, or fallback */
double svoo_floor_ratio(svoo_ctx *ctx, int step, int layer, int head);
void svoo_log(svoo_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* (re)sizes ls for B batch elements of N tokens; invalidates on change */
svoo_status svoo_layer_state_prepare(svoo_ctx *ctx, svoo_layer_state *ls, int64_t B, int64_t N);

#endif

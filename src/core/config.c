/* config.c : reference defaults (ALGORITHMS.md) and their validation. */
#include "ctx.h"

#include <strings.h>

static const char *const k_methods[] = {"dense", "svoo", "svg2", "svg"};

const char *svoo_method_name(svoo_method m) {
    if ((unsigned)m >= sizeof k_methods / sizeof *k_methods) return "unknown";
    return k_methods[m];
}

svoo_status svoo_method_parse(const char *name, svoo_method *out) {
    if (!name || !out) return svoo_err(SVOO_ERR_NULL_POINTER, "method name is NULL");
    for (unsigned i = 0; i < sizeof k_methods / sizeof *k_methods; i++)
        if (strcasecmp(name, k_methods[i]) == 0) {
            *out = (svoo_method)i;
            return SVOO_OK;
        }
    return svoo_err(SVOO_ERR_INVALID_ARGUMENT, "method '%s' unknown (dense, svoo, svg2, svg)",
                    name);
}

void svoo_config_init(svoo_config *cfg, svoo_method method) {
    memset(cfg, 0, sizeof *cfg);
    cfg->size = sizeof *cfg;
    cfg->method = method;
    cfg->device = SVOO_DEVICE_CPU;
    cfg->warmup_step_frac = 0.2;
    cfg->warmup_layer_frac = 0.03;
    cfg->reuse_start_step = 11;
    cfg->reuse_every = method == SVOO_METHOD_SVOO ? 20 : 1;
    cfg->q_clusters = 0; /* auto: 256 / 1024 (SVOO), 300 / 1000 (SVG2) at N = 75,600 */
    cfg->k_clusters = 0;
    cfg->iters = 2;
    cfg->kmeans_iters_first = 50;
    cfg->kmeans_iters = 2;
    cfg->top_p = 0.9;
    cfg->floor_ratio = 0.10;
    cfg->floor_min = 0.15;
    cfg->floor_max = 0.20;
    cfg->seed = 0x5000;
    cfg->svg_sparsity = 0.3;
    cfg->svg_sample_rows = 64;
    cfg->svg_block = 128;
    cfg->cuda_kv_order = 1;
}

void svoo_stats_init(svoo_stats *st) {
    memset(st, 0, sizeof *st);
    st->size = sizeof *st;
    st->recall = NAN;
}

#define BAD(field, ...) svoo_err(SVOO_ERR_INVALID_ARGUMENT, "config." field ": " __VA_ARGS__)

svoo_status svoo_config_validate(const svoo_config *c) {
    if (c->size != sizeof *c)
        return BAD("size", "%zu, expected %zu: call svoo_config_init first", c->size, sizeof *c);
    if ((unsigned)c->method > SVOO_METHOD_SVG)
        return BAD("method", "unknown value %d", (int)c->method);
    if (c->device != SVOO_DEVICE_CPU && c->device != SVOO_DEVICE_CUDA)
        return BAD("device", "unknown value %d", (int)c->device);
    if (c->head_dim != 64 && c->head_dim != 128)
        return svoo_err(SVOO_ERR_UNSUPPORTED_HEAD_DIM, "config.head_dim: %d (supported: 64, 128)",
                        c->head_dim);
    if (c->num_heads <= 0) return BAD("num_heads", "%d must be > 0", c->num_heads);
    if (c->num_layers <= 0) return BAD("num_layers", "%d must be > 0", c->num_layers);
    if (c->num_steps <= 0) return BAD("num_steps", "%d must be > 0", c->num_steps);
    if (c->num_threads < 0 || c->num_threads > SVOO_MAX_THREADS)
        return BAD("num_threads", "%d must be in [0, %d]", c->num_threads, SVOO_MAX_THREADS);
    if (c->frames < 0 || c->height < 0 || c->width < 0 || c->text_tokens < 0)
        return svoo_err(SVOO_ERR_GEOMETRY, "config.frames/height/width/text_tokens must be >= 0");
    /* token counts are int64 everywhere: refuse a grid whose product would not fit */
    if ((double)c->frames * c->height * c->width + c->text_tokens > (double)(1LL << 40))
        return svoo_err(SVOO_ERR_GEOMETRY,
                        "config.frames/height/width: %d x %d x %d tokens is beyond 2^40", c->frames,
                        c->height, c->width);
    if (c->method == SVOO_METHOD_SVG && (c->frames == 0 || c->height == 0 || c->width == 0))
        return svoo_err(
            SVOO_ERR_GEOMETRY,
            "config.frames/height/width: SVG needs the latent geometry (got %d x %d x %d)",
            c->frames, c->height, c->width);
    if (!(c->warmup_step_frac >= 0 && c->warmup_step_frac <= 1))
        return BAD("warmup_step_frac", "%g outside [0, 1]", c->warmup_step_frac);
    if (!(c->warmup_layer_frac >= 0 && c->warmup_layer_frac <= 1))
        return BAD("warmup_layer_frac", "%g outside [0, 1]", c->warmup_layer_frac);
    if (c->reuse_start_step < 0)
        return BAD("reuse_start_step", "%d must be >= 0", c->reuse_start_step);
    if (c->reuse_every < 0) return BAD("reuse_every", "%d must be >= 0", c->reuse_every);
    if (c->q_clusters < 0) return BAD("q_clusters", "%d must be >= 0 (0 = auto)", c->q_clusters);
    if (c->k_clusters < 0) return BAD("k_clusters", "%d must be >= 0 (0 = auto)", c->k_clusters);
    if (c->iters < 1) return BAD("iters", "%d must be >= 1", c->iters);
    if (c->kmeans_iters_first < 1)
        return BAD("kmeans_iters_first", "%d must be >= 1", c->kmeans_iters_first);
    if (c->kmeans_iters < 0) return BAD("kmeans_iters", "%d must be >= 0", c->kmeans_iters);
    if (!(c->top_p > 0 && c->top_p <= 1)) return BAD("top_p", "%g outside (0, 1]", c->top_p);
    if (!(c->floor_ratio >= 0 && c->floor_ratio <= 1))
        return BAD("floor_ratio", "%g outside [0, 1]", c->floor_ratio);
    if (!(c->floor_min >= 0 && c->floor_min <= 1))
        return BAD("floor_min", "%g outside [0, 1]", c->floor_min);
    if (!(c->floor_max >= c->floor_min && c->floor_max <= 1))
        return BAD("floor_max", "%g outside [floor_min = %g, 1]", c->floor_max, c->floor_min);
    if (!(c->svg_sparsity > 0 && c->svg_sparsity < 1))
        return BAD("svg_sparsity", "%g outside (0, 1)", c->svg_sparsity);
    if (c->svg_sample_rows < 1)
        return BAD("svg_sample_rows", "%d must be >= 1", c->svg_sample_rows);
    if (c->svg_block < 16 || c->svg_block % 16)
        return BAD("svg_block", "%d must be a positive multiple of 16", c->svg_block);
    if (c->recall_rows < 0) return BAD("recall_rows", "%d must be >= 0", c->recall_rows);
    if (c->max_batch < 0) return BAD("max_batch", "%d must be >= 0 (0 = 1)", c->max_batch);
    if (c->max_tokens < 0)
        return BAD("max_tokens", "%lld must be >= 0 (0 = the geometry's)",
                   (long long)c->max_tokens);
    if (c->cuda_kv_order != 0 && c->cuda_kv_order != 1)
        return BAD("cuda_kv_order", "%d must be 0 or 1", c->cuda_kv_order);
    if (c->profile) {
        int ps, pl, ph;
        svoo_profile_dims(c->profile, &ps, &pl, &ph);
        if (ph != c->num_heads)
            return svoo_err(SVOO_ERR_PROFILE_MISMATCH, "config.profile: %d heads, the model has %d",
                            ph, c->num_heads);
    }
    return SVOO_OK;
}

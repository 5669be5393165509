/* presets.c : the named model shapes of the synthetic workload generator
 * (ALGORITHMS.md "Real shapes", plus small CPU presets for tests and demos). */
#include "synth.h"

typedef struct {
    const char *name;
    int frames, height, width, text_tokens, text_first;
    int heads, head_dim, layers, steps;
} preset;

static const preset k_presets[] = {
    /* small CPU presets */
    {"tiny", 13, 16, 24, 0, 0, 4, 128, 4, 50},           /* 4,992 tokens */
    {"small", 9, 12, 16, 0, 0, 4, 128, 4, 50},           /* 1,728 tokens */
    {"hunyuan-small", 9, 12, 16, 64, 0, 4, 128, 4, 50},  /* 1,728 + 64 text after */
    {"cogvideox-small", 7, 12, 18, 48, 1, 4, 64, 4, 50}, /* 48 text first + 1,512, D 64 */
    /* real shapes */
    {"wan2.1-1.3b-720p", 21, 45, 80, 0, 0, 12, 128, 30, 50}, /* 75,600 */
    {"wan2.1-1.3b-480p", 21, 30, 52, 0, 0, 12, 128, 30, 50}, /* 32,760 */
    {"wan2.1-14b-720p", 21, 45, 80, 0, 0, 40, 128, 40, 50},  /* 75,600 */
    {"wan2.2-a14b-720p", 21, 45, 80, 0, 0, 40, 128, 40, 40}, /* 75,600, 40 steps */
    {"hunyuan-720p", 33, 45, 80, 256, 0, 24, 128, 60, 50},   /* 118,800 + 256 text after */
    {"cogvideox-5b", 13, 30, 45, 226, 1, 48, 64, 42, 50},    /* 226 text first + 17,550 */
};
#define NPRESETS ((int)(sizeof k_presets / sizeof k_presets[0]))

static const char *const k_names[NPRESETS + 1] = {"tiny",
                                                  "small",
                                                  "hunyuan-small",
                                                  "cogvideox-small",
                                                  "wan2.1-1.3b-720p",
                                                  "wan2.1-1.3b-480p",
                                                  "wan2.1-14b-720p",
                                                  "wan2.2-a14b-720p",
                                                  "hunyuan-720p",
                                                  "cogvideox-5b",
                                                  NULL};

const char *const *svoo_synth_preset_names(void) {
    return k_names;
}

void svoo_synth_config_init(svoo_synth_config *cfg) {
    if (!cfg) return;
    memset(cfg, 0, sizeof *cfg);
    cfg->size = sizeof *cfg;
    cfg->seed = 0;
    cfg->tau = 0.95;
    cfg->calib_row_step = 16;
}

svoo_status svoo_synth_preset(const char *name, svoo_synth_config *cfg) {
    if (!name) return svoo_err(SVOO_ERR_NULL_POINTER, "svoo_synth_preset: name is NULL");
    if (!cfg) return svoo_err(SVOO_ERR_NULL_POINTER, "svoo_synth_preset: cfg is NULL");
    for (int i = 0; i < NPRESETS; i++) {
        const preset *p = &k_presets[i];
        if (strcmp(p->name, name)) continue;
        memset(cfg->preset, 0, sizeof cfg->preset);
        strncpy(cfg->preset, p->name, sizeof cfg->preset - 1);
        cfg->frames = p->frames;
        cfg->height = p->height;
        cfg->width = p->width;
        cfg->text_tokens = p->text_tokens;
        cfg->text_first = p->text_first;
        cfg->heads = p->heads;
        cfg->head_dim = p->head_dim;
        cfg->layers = p->layers;
        cfg->steps = p->steps;
        return SVOO_OK;
    }
    return svoo_err(SVOO_ERR_NOT_FOUND, "svoo_synth_preset: unknown preset '%s'", name);
}

const char *svoo_head_kind_name(svoo_head_kind k) {
    switch (k) {
    case SVOO_HEAD_SPATIAL:
        return "spatial";
    case SVOO_HEAD_TEMPORAL:
        return "temporal";
    case SVOO_HEAD_SEMANTIC:
        return "semantic";
    }
    return "unknown";
}

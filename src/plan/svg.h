/* svg.h : internals of the Sparse VideoGen planner (svg_masks.c) shared with
 * the tests. docs/SVG.md defines the masks, the block layout and the band. */
#ifndef SVOO_SVG_H
#define SVOO_SVG_H

#include "plan.h"

/* Token geometry of one call. Original order: text tokens [0, T) then video
 * (text_first) or video then text [V, V + T); video token (f, y, x) at
 * vid0 + f*S + y*W + x. Permuted (block) order, both kinds:
 *   [text][frame 0 in (y, x) order][frames 1.. in the kind's order][text]
 * with text at the side it has in the original order. Spatial kind: the rest
 * in frame-major (f, y, x) order, so the permutation is the identity.
 * Temporal kind: the rest in token-major (y, x, f) order. Each of the three
 * groups (text, sink = frame 0, rest) is cut into blocks of `blk` tokens, the
 * last block of a group possibly shorter. */
typedef struct {
    int F, H, W, blk, text_first;
    int64_t S, V, T, N;                /* tokens per frame, video, text, all */
    int64_t vid0, text0;               /* original index of video token 0 / text token 0 */
    int nb_text, nb_sink, nb_rest, nb; /* blocks per group, total */
    int b_text, b_sink, b_rest;        /* index of each group's first block */
} svoo_svg_geom;

enum { SVOO_SVG_SPATIAL = 0, SVOO_SVG_TEMPORAL = 1 };

/* Geometry of cfg (frames, height, width, text_tokens, text_first, svg_block)
 * for a sequence of n tokens; SVOO_ERR_GEOMETRY / _INVALID_ARGUMENT naming
 * the field when they are inconsistent. */
svoo_status svoo_svg_geom_init(const svoo_config *cfg, int64_t n, svoo_svg_geom *g);

/* Band coordinate of video token v (frame-major video index f*S + s):
 * spatial v itself, temporal s*F + f (token-major). */
int64_t svoo_svg_coord(const svoo_svg_geom *g, int kind, int64_t v);

/* The naive pair mask: 1 if query i attends key j (original indices) under
 * the kind's mask with band half-width w (tokens of the kind's order):
 * i or j text, or j in frame 0 (sink), or |coord(i) - coord(j)| <= w. */
int svoo_svg_mask_pair(const svoo_svg_geom *g, int kind, int64_t w, int64_t i, int64_t j);

/* Fraction of the V x V video-to-video pairs inside the blocks the kind's
 * block mask computes at band w (what the plan's CSR computes). */
double svoo_svg_video_frac(const svoo_svg_geom *g, int kind, int64_t w);

/* The band of a kind for target fraction `target` in (0, 1): w* = the
 * smallest w with video_frac(w) >= target; w* - 1 instead when its fraction
 * is strictly closer to the target. */
int64_t svoo_svg_band(const svoo_svg_geom *g, int kind, double target);

/* The block plan of one kind at band w (reserves the plan). */
svoo_status svoo_svg_build(const svoo_svg_geom *g, int kind, int64_t w, svoo_plan *plan);

/* Classification: MSE, over `rows` sampled video query rows, of the output
 * under each kind's block mask (bands w_s, w_t) against the exact output.
 * q, k, v: (N, d) f32 original order. mse[2] = {spatial, temporal}. */
svoo_status svoo_svg_classify(const svoo_svg_geom *g, int64_t w_s, int64_t w_t, int pair_level,
                              const float *q, const float *k, const float *v, int d, int rows,
                              double mse[2]);

#endif

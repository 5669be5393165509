/* synth.h : internals of the video-like workload generator shared with the
 * svoo tool and the tests (not installed). The public part is the
 * SVOO_STATIC_LINKING_ONLY section of svoo.h; docs/SYNTH.md explains the model. */
#ifndef SVOO_SYNTH_H
#define SVOO_SYNTH_H

#include "../core/internal.h"

/* calibration of one head by the last svoo_synth_generate() call */
typedef struct {
    double target;   /* density asked for (profile value, mapped) */
    double measured; /* exact density at the chosen beta on the calibration rows */
    double beta;     /* temperature multiplying q */
    int clamped;     /* 0, +1: target below what the sharpest head reaches,
                        -1: target above what the flattest head reaches */
    int64_t rows;    /* calibration rows used */
} svoo_synth_calib;

/*! svoo_synth_calib_get() : calibration of `head` in the last generate call
 *  (SVOO_ERR_NOT_FOUND before the first). */
svoo_status svoo_synth_calib_get(const svoo_synth *s, int head, svoo_synth_calib *out);
/*! svoo_synth_tokens() : N = frames*height*width + text_tokens. */
int64_t svoo_synth_tokens(const svoo_synth *s);
/*! svoo_synth_token_pos() : 1 and (f, y, x) for a video token, 0 for a text
 *  token, -1 out of range. Sequence layout: text first (text_first = 1) or
 *  last, video frame-major (f * H * W + y * W + x). */
int svoo_synth_token_pos(const svoo_synth *s, int64_t n, int *f, int *y, int *x);
/*! svoo_synth_token_label() : segment of token n at `step`: 0..5 background
 *  regions, 6.. moving objects, -1 text. */
int svoo_synth_token_label(const svoo_synth *s, int step, int64_t n);
/*! svoo_synth_calib_rows() : the calibration rows (count, and the array that
 *  stays owned by s). */
const int32_t *svoo_synth_calib_rows(const svoo_synth *s, int64_t *count);
/*! svoo_synth_within_tol() : the acceptance tolerance of issue 4: 15 %
 *  relative, or 0.005 absolute for targets below 0.03. */
static inline int svoo_synth_within_tol(double target, double measured) {
    if (target < 0.03) return fabs(measured - target) <= 0.005;
    return fabs(measured - target) <= 0.15 * target;
}

#endif

/* png.h : a tiny RGB canvas for the CLI's plots: rectangles, lines, a 5x7
 * bitmap font, a perceptual colour map, and a libpng writer. */
#ifndef SVOO_CLI_PNG_H
#define SVOO_CLI_PNG_H

#include <stdint.h>

typedef struct {
    int w, h;
    uint8_t *px; /* w * h * 3, row-major RGB */
} canvas;

typedef struct {
    uint8_t r, g, b;
} rgb;

static const rgb RGB_WHITE = {255, 255, 255};
static const rgb RGB_BLACK = {0, 0, 0};
static const rgb RGB_GREY = {128, 128, 128};
static const rgb RGB_LIGHT = {225, 225, 225};

/* 0 on success, -1 when out of memory; filled with `bg` */
int canvas_init(canvas *c, int w, int h, rgb bg);
void canvas_free(canvas *c);
void canvas_pixel(canvas *c, int x, int y, rgb col);
void canvas_rect(canvas *c, int x, int y, int w, int h, rgb col);  /* filled */
void canvas_frame(canvas *c, int x, int y, int w, int h, rgb col); /* 1 px outline */
void canvas_line(canvas *c, int x0, int y0, int x1, int y1, int thick, rgb col);
/* text with its top-left corner at (x, y), glyphs scaled by `scale` (1, 2, ...) */
void canvas_text(canvas *c, int x, int y, int scale, rgb col, const char *s);
/* text rotated 90 degrees counter-clockwise (reads bottom to top), top-left at (x, y) */
void canvas_text_up(canvas *c, int x, int y, int scale, rgb col, const char *s);
int canvas_text_width(int scale, const char *s);
#define CANVAS_TEXT_HEIGHT(scale) (7 * (scale))

/* viridis-like colour map, t in [0, 1] */
rgb colormap(double t);

/* 0 on success; otherwise -1 with a message in err */
int canvas_save_png(const canvas *c, const char *path, char *err, int errlen);

#endif

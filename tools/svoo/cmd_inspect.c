/* cmd_inspect.c : svoo inspect profile.csv [--png out.png] [--json]
 * Summary statistics of a profile, per-layer means, and a heat-map picture. */
#include "cli.h"
#include "png.h"

#include <getopt.h>
#include <json-c/json.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void inspect_help(void) {
    printf("usage: svoo inspect PROFILE.csv [--png OUT.png] [--json]\n\n"
           "Summary of a density profile (Step,Layer,Head,Sparsity CSV): grid, count, mean,\n"
           "median, p10, p90, min, max, std, and the mean density of every layer.\n\n"
           "  --png OUT   heat map: layers x heads panels for a selection of steps (log colour\n"
           "              scale with a colour bar), and mean density vs step, one line per layer\n"
           "  --json      one JSON object on stdout (keys: file, steps, layers, heads, count,\n"
           "              mean, median, p10, p90, min, max, std, layer_mean[], step_mean[])\n");
}

typedef struct {
    int S, L, H;
    double *v;          /* S x L x H */
    double *layer_mean; /* L */
    double *step_mean;  /* S */
    double *sl_mean;    /* S x L, mean over heads */
} grid;

static int grid_load(const svoo_profile *p, grid *g) {
    svoo_profile_dims(p, &g->S, &g->L, &g->H);
    size_t n = (size_t)g->S * g->L * g->H;
    g->v = malloc(n * sizeof(double));
    g->layer_mean = calloc((size_t)g->L, sizeof(double));
    g->step_mean = calloc((size_t)g->S, sizeof(double));
    g->sl_mean = calloc((size_t)g->S * g->L, sizeof(double));
    if (!g->v || !g->layer_mean || !g->step_mean || !g->sl_mean) return -1;
    for (int s = 0; s < g->S; s++)
        for (int l = 0; l < g->L; l++)
            for (int h = 0; h < g->H; h++) {
                double x = NAN;
                svoo_profile_get(p, s, l, h, &x); /* a loaded profile is complete */
                g->v[((size_t)s * g->L + l) * g->H + h] = x;
                g->layer_mean[l] += x / ((double)g->S * g->H);
                g->step_mean[s] += x / ((double)g->L * g->H);
                g->sl_mean[(size_t)s * g->L + l] += x / g->H;
            }
    return 0;
}

static void grid_free(grid *g) {
    free(g->v);
    free(g->layer_mean);
    free(g->step_mean);
    free(g->sl_mean);
}

/* ---- picture ------------------------------------------------------------ */

#define LOG_LO (-3.0) /* colour scale: log10 density from 0.001 ... */
#define LOG_HI 0.0    /* ... to 1 */

static rgb density_colour(double v) {
    double t = v > 0 ? (log10(v) - LOG_LO) / (LOG_HI - LOG_LO) : 0;
    return colormap(t);
}

static int clampi(int x, int lo, int hi) {
    return x < lo ? lo : x > hi ? hi : x;
}

static void text_center(canvas *c, int cx, int y, int sc, rgb col, const char *s) {
    canvas_text(c, cx - canvas_text_width(sc, s) / 2, y, sc, col, s);
}

static void text_right(canvas *c, int rx, int y, int sc, rgb col, const char *s) {
    canvas_text(c, rx - canvas_text_width(sc, s), y, sc, col, s);
}

static int draw_png(const grid *g, const char *title, const char *path, char *err, int errlen) {
    /* panels: up to 10 evenly spaced steps (first and last included) */
    int P = g->S < 10 ? g->S : 10;
    int steps[10];
    for (int i = 0; i < P; i++)
        steps[i] = P == 1 ? 0 : (int)lround((double)i * (g->S - 1) / (P - 1));
    const int cw = clampi(150 / g->H, 2, 14), ch = clampi(150 / g->L, 2, 14);
    const int pw = g->H * cw, ph = g->L * ch;
    const int ncol = P < 5 ? P : 5, nrow = (P + ncol - 1) / ncol;
    const int ml = 80, gapx = 34, top = 84, label_h = 24, below = 44;
    const int heat_w = ncol * pw + (ncol - 1) * gapx;
    const int cb_x = ml + heat_w + 40, cb_w = 22;
    char buf[256];
    snprintf(buf, sizeof buf,
             "%d steps x %d layers x %d heads; layers x heads at %d of %d steps; log colour scale",
             g->S, g->L, g->H, P, g->S);
    const int sub_w = 40 + canvas_text_width(2, buf); /* the subtitle's */
    int W = cb_x + cb_w + 120;
    if (W < 980) W = 980;
    if (W < sub_w) W = sub_w;
    const int row_h = label_h + ph + below;
    const int heat_bottom = top + nrow * row_h;
    const int lp_top = heat_bottom + 70, lp_h = 320, lp_l = 110, lp_r = W - 170;
    const int Hh = lp_top + lp_h + 80;
    canvas c;
    if (canvas_init(&c, W, Hh, RGB_WHITE)) {
        snprintf(err, (size_t)errlen, "out of memory for a %d x %d image", W, Hh);
        return -1;
    }
    canvas_text(&c, 20, 16, 3, RGB_BLACK, title);
    canvas_text(&c, 20, 46, 2, RGB_GREY, buf);

    for (int i = 0; i < P; i++) {
        const int col = i % ncol, row = i / ncol;
        const int x0 = ml + col * (pw + gapx), y0 = top + row * row_h + label_h;
        snprintf(buf, sizeof buf, "step %d", steps[i] + 1);
        text_center(&c, x0 + pw / 2, y0 - 20, 2, RGB_BLACK, buf);
        for (int l = 0; l < g->L; l++)
            for (int h = 0; h < g->H; h++)
                canvas_rect(&c, x0 + h * cw, y0 + l * ch, cw, ch,
                            density_colour(g->v[((size_t)steps[i] * g->L + l) * g->H + h]));
        canvas_frame(&c, x0 - 1, y0 - 1, pw + 2, ph + 2, RGB_GREY);
        /* head ticks under every panel: first and last */
        canvas_text(&c, x0, y0 + ph + 5, 1, RGB_BLACK, "0");
        snprintf(buf, sizeof buf, "%d", g->H - 1);
        text_right(&c, x0 + pw, y0 + ph + 5, 1, RGB_BLACK, buf);
        text_center(&c, x0 + pw / 2, y0 + ph + 16, 2, RGB_BLACK, "head");
        if (col == 0) { /* layer ticks and axis label on the left of each row */
            text_right(&c, x0 - 5, y0, 1, RGB_BLACK, "0");
            snprintf(buf, sizeof buf, "%d", g->L - 1);
            text_right(&c, x0 - 5, y0 + ph - 7, 1, RGB_BLACK, buf);
            canvas_text_up(&c, x0 - 40, y0 + ph / 2 - canvas_text_width(2, "layer") / 2, 2,
                           RGB_BLACK, "layer");
        }
    }
    /* colour bar (log scale) */
    {
        const int y0 = top + label_h, hgt = (heat_bottom - top - label_h - below) > 120
                                                ? heat_bottom - top - label_h - below
                                                : 120;
        for (int y = 0; y < hgt; y++)
            canvas_rect(&c, cb_x, y0 + y, cb_w, 1, colormap(1.0 - (double)y / (hgt - 1)));
        canvas_frame(&c, cb_x - 1, y0 - 1, cb_w + 2, hgt + 2, RGB_GREY);
        static const char *const lab[4] = {"1", "0.1", "0.01", "<=0.001"};
        for (int i = 0; i < 4; i++) {
            int y = y0 + (int)lround((double)i / 3.0 * (hgt - 1));
            canvas_rect(&c, cb_x + cb_w, y, 6, 1, RGB_BLACK);
            canvas_text(&c, cb_x + cb_w + 9, y - 7, 2, RGB_BLACK, lab[i]);
        }
        canvas_text(&c, cb_x - 10, y0 - 22, 2, RGB_BLACK, "density");
    }

    /* density vs step, one line per layer */
    double ymax = 0;
    for (int i = 0; i < g->S * g->L; i++)
        ymax = g->sl_mean[i] > ymax ? g->sl_mean[i] : ymax;
    const double tick = ymax > 0.6 ? 0.2 : ymax > 0.25 ? 0.1 : ymax > 0.1 ? 0.05 : 0.02;
    const int nt = (int)ceil(ymax / tick - 1e-9) > 0 ? (int)ceil(ymax / tick - 1e-9) : 1;
    ymax = nt * tick;
    const int pl = lp_l, pr = lp_r, pt = lp_top, pb = lp_top + lp_h;
    canvas_text(&c, 20, lp_top - 50, 2, RGB_BLACK,
                "mean density over heads vs step (one line per layer; black: all layers)");
    /* grid and y ticks */
    for (int i = 0; i <= nt; i++) {
        double yv = tick * i;
        int y = pb - (int)lround((double)i / nt * (pb - pt));
        canvas_rect(&c, pl, y, pr - pl, 1, RGB_LIGHT);
        snprintf(buf, sizeof buf, "%.2f", yv);
        text_right(&c, pl - 8, y - 7, 2, RGB_BLACK, buf);
    }
    /* x ticks: about 10 */
    int xstep = g->S <= 10 ? 1 : (g->S + 9) / 10;
    if (xstep > 1 && xstep < 5)
        xstep = 5;
    else if (xstep > 5)
        xstep = (xstep + 4) / 5 * 5;
    for (int s = 1; s <= g->S; s++) {
        if (s != 1 && s % xstep != 0 && s != g->S) continue;
        int x = g->S == 1 ? pl : pl + (int)lround((double)(s - 1) / (g->S - 1) * (pr - pl));
        canvas_rect(&c, x, pb, 1, 6, RGB_BLACK);
        snprintf(buf, sizeof buf, "%d", s);
        text_center(&c, x, pb + 10, 2, RGB_BLACK, buf);
    }
    text_center(&c, (pl + pr) / 2, pb + 34, 2, RGB_BLACK, "step");
    canvas_text_up(&c, 16, pt + (pb - pt) / 2 - canvas_text_width(2, "density") / 2, 2, RGB_BLACK,
                   "density");
#define PX(s) (g->S == 1 ? pl : pl + (int)lround((double)(s) / (g->S - 1) * (pr - pl)))
#define PY(v) (pb - (int)lround(((v) > ymax ? ymax : (v)) / ymax * (pb - pt)))
    for (int l = 0; l < g->L; l++) {
        rgb col = colormap(g->L == 1 ? 0.0 : 0.9 * l / (g->L - 1));
        for (int s = 0; s + 1 < g->S; s++)
            canvas_line(&c, PX(s), PY(g->sl_mean[(size_t)s * g->L + l]), PX(s + 1),
                        PY(g->sl_mean[(size_t)(s + 1) * g->L + l]), 2, col);
    }
    for (int s = 0; s + 1 < g->S; s++)
        canvas_line(&c, PX(s), PY(g->step_mean[s]), PX(s + 1), PY(g->step_mean[s + 1]), 3,
                    RGB_BLACK);
#undef PX
#undef PY
    canvas_frame(&c, pl, pt, pr - pl + 1, pb - pt + 1, RGB_GREY);
    /* legend: layer colour ramp */
    {
        const int lx = pr + 30, ly = pt + 30, lh = lp_h - 60;
        canvas_text(&c, lx - 4, pt + 4, 2, RGB_BLACK, "layer");
        for (int y = 0; y < lh; y++)
            canvas_rect(&c, lx, ly + y, 18, 1, colormap(0.9 * y / (lh - 1)));
        canvas_frame(&c, lx - 1, ly - 1, 20, lh + 2, RGB_GREY);
        canvas_text(&c, lx + 24, ly, 2, RGB_BLACK, "0");
        snprintf(buf, sizeof buf, "%d", g->L - 1);
        canvas_text(&c, lx + 24, ly + lh - 14, 2, RGB_BLACK, buf);
    }
    int rc = canvas_save_png(&c, path, err, errlen);
    canvas_free(&c);
    return rc;
}

/* ---- command ------------------------------------------------------------ */

int cmd_inspect(int argc, char **argv) {
    static const struct option opts[] = {
        {"png", 1, 0, 'p'}, {"json", 0, 0, 'J'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *png = NULL;
    int json = 0;
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
        switch (c) {
        case 'p':
            png = optarg;
            break;
        case 'J':
            json = 1;
            break;
        case 'h':
            inspect_help();
            return CLI_OK;
        default:
            return cli_usage_error("inspect", "bad option");
        }
    }
    if (optind >= argc) return cli_usage_error("inspect", "a profile CSV is required");
    if (optind + 1 < argc)
        return cli_usage_error("inspect", "unexpected argument '%s'", argv[optind + 1]);
    const char *path = argv[optind];
    if (png && cli_check_out("inspect", "--png", png)) return CLI_FAIL;

    svoo_profile *p = NULL;
    svoo_status s = svoo_profile_load(path, &p);
    if (s) return cli_fail("inspect", s, NULL);
    svoo_profile_stats st;
    if ((s = svoo_profile_stats_get(p, &st))) {
        svoo_profile_free(p);
        return cli_fail("inspect", s, NULL);
    }
    grid g = {0};
    if (grid_load(p, &g)) {
        grid_free(&g);
        svoo_profile_free(p);
        fprintf(stderr, "svoo inspect: error: out of memory\n");
        return CLI_FAIL;
    }
    svoo_profile_free(p);

    int rc = CLI_OK;
    if (png) {
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        char err[512];
        if (draw_png(&g, base, png, err, sizeof err)) {
            fprintf(stderr, "svoo inspect: error: SVOO_ERR_IO: %s\n", err);
            rc = CLI_FAIL;
        }
    }
    if (json) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "file", json_object_new_string(path));
        json_object_object_add(o, "steps", json_object_new_int(st.steps));
        json_object_object_add(o, "layers", json_object_new_int(st.layers));
        json_object_object_add(o, "heads", json_object_new_int(st.heads));
        json_object_object_add(o, "count", json_object_new_int64(st.count));
        const char *k[] = {"mean", "median", "p10", "p90", "min", "max", "std"};
        const double v[] = {st.mean, st.median, st.p10, st.p90, st.min, st.max, st.std};
        for (int i = 0; i < 7; i++)
            json_object_object_add(o, k[i], json_object_new_double(v[i]));
        json_object *lm = json_object_new_array(), *sm = json_object_new_array();
        for (int l = 0; l < g.L; l++)
            json_object_array_add(lm, json_object_new_double(g.layer_mean[l]));
        for (int i = 0; i < g.S; i++)
            json_object_array_add(sm, json_object_new_double(g.step_mean[i]));
        json_object_object_add(o, "layer_mean", lm);
        json_object_object_add(o, "step_mean", sm);
        if (png && rc == CLI_OK) json_object_object_add(o, "png", json_object_new_string(png));
        printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
        json_object_put(o);
    } else {
        printf("profile  %s\n", path);
        printf("grid     %d steps x %d layers x %d heads (%lld entries)\n", st.steps, st.layers,
               st.heads, (long long)st.count);
        printf("\n  %-8s %-8s %-8s %-8s %-8s %-8s %-8s\n", "mean", "median", "p10", "p90", "min",
               "max", "std");
        printf("  %-8.4f %-8.4f %-8.4f %-8.4f %-8.4f %-8.4f %-8.4f\n", st.mean, st.median, st.p10,
               st.p90, st.min, st.max, st.std);
        printf("\n  oracle attention speedup (1 / mean density): %.2fx\n",
               st.mean > 0 ? 1 / st.mean : 0);
        printf("\nmean density per layer:\n");
        for (int l = 0; l < g.L; l++)
            printf("%s  L%-3d %.4f", l % 6 == 0 ? (l ? "\n" : "") : "", l, g.layer_mean[l]);
        printf("\n");
        if (png && rc == CLI_OK) printf("\nwrote %s\n", png);
    }
    grid_free(&g);
    return rc;
}

/* diag.c : where does SVOO's error come from on the small preset? A development
 * harness (docs/FIDELITY.md), not part of the library or its tests.
 *
 * Runs the planner of src/plan/ (linked from libsvoo.a, internal symbols) on the
 * `small` synthetic preset calibrated to the Wan2.1-1.3B profile, computes the
 * dense attention of every head exactly, and breaks recall and rel-L2 down by
 * layer, head, re-plan vs reuse call, per-row recall, query-cluster size, and
 * missed high-mass key clusters; compares with an oracle block choice on the
 * same clusters. Per-call rel-L2 as `svoo run` (over all heads of the call).
 *
 * usage: diag [layers, e.g. 123] [first step, 10] [last step, 49]
 * env:   DIAG_PROFILE (CSV; default ../shared/data/profiles/sparsity_wan_1.3B_t2v.csv)
 *        DIAG_METHOD=svg2, DIAG_REF_SCHED=1 (reference 1-based reuse schedule),
 *        DIAG_TOPP, DIAG_FLOOR, DIAG_SEED (planner seed), DIAG_VERBOSE=1|2
 * build: see docs/FIDELITY.md */
#include "../../src/core/internal.h"
#include "../../src/plan/plan.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NB 4
int cmpf(const void *a, const void *b);
typedef struct {
    double err, ref, rec, rows, dens;
} acc;
static void add(acc *a, double err, double ref, double rec, double rows) {
    a->err += err, a->ref += ref, a->rec += rec, a->rows += rows;
}

int main(int argc, char **argv) {
    const char *layers = argc > 1 ? argv[1] : "0123";
    int step0 = argc > 2 ? atoi(argv[2]) : 10, step1 = argc > 3 ? atoi(argv[3]) : 49;
    int svg2 = getenv("DIAG_METHOD") && !strcmp(getenv("DIAG_METHOD"), "svg2");
    int refsched = getenv("DIAG_REF_SCHED") != NULL;
    int verbose = getenv("DIAG_VERBOSE") ? atoi(getenv("DIAG_VERBOSE")) : 0;
    svoo_profile *drive;
    const char *ppath = getenv("DIAG_PROFILE")
                            ? getenv("DIAG_PROFILE")
                            : "../shared/data/profiles/sparsity_wan_1.3B_t2v.csv";
    if (svoo_profile_load(ppath, &drive)) {
        fprintf(stderr, "diag: cannot load %s\n", ppath);
        return 1;
    }
    svoo_synth_config sc;
    svoo_synth_config_init(&sc);
    svoo_synth_preset("small", &sc);
    sc.seed = 1;
    sc.profile = drive;
    svoo_synth *syn;
    if (svoo_synth_create(&sc, &syn)) return 1;
    svoo_profile *prof;
    svoo_synth_profile(syn, &prof);
    const int H = sc.heads, D = sc.head_dim, L = sc.layers;
    const int64_t N = (int64_t)sc.frames * sc.height * sc.width + sc.text_tokens;
    svoo_config cfg;
    svoo_config_init(&cfg, svg2 ? SVOO_METHOD_SVG2 : SVOO_METHOD_SVOO);
    cfg.num_steps = sc.steps, cfg.num_layers = L, cfg.num_heads = H, cfg.head_dim = D;
    if (getenv("DIAG_SEED")) cfg.seed = strtoull(getenv("DIAG_SEED"), 0, 0);
    if (getenv("DIAG_TOPP")) cfg.top_p = atof(getenv("DIAG_TOPP"));
    if (getenv("DIAG_FLOOR")) cfg.floor_ratio = atof(getenv("DIAG_FLOOR"));
    int cq, ck;
    svoo_clusters_resolve(&cfg, N, &cq, &ck);
    printf("N %lld H %d cq %d ck %d method %s sched %s\n", (long long)N, H, cq, ck,
           svg2 ? "svg2" : "svoo", refsched ? "ref" : "ours");
    size_t nhd = (size_t)H * N * D;
    float *q = malloc(nhd * 4), *k = malloc(nhd * 4), *v = malloc(nhd * 4);
    float *S = malloc((size_t)N * N * 4), *od = malloc((size_t)N * D * 4),
          *os = malloc((size_t)N * D * 4);
    uint8_t *sel = malloc((size_t)N * N);
    float *LG = malloc((size_t)N * N * 4); /* sel[i*N+j]: key j computed for query i */
    svoo_head_state st[16][16];
    memset(st, 0, sizeof st);
    int planned[16];
    for (int l = 0; l < 16; l++)
        planned[l] = -1;
    svoo_plan plan;
    memset(&plan, 0, sizeof plan);
    /* aggregates */
    acc tot = {0}, phase[2] = {{0}}, lay[16] = {{0}}, hd[16][16] = {{{0}}};
    acc recb[NB] = {{0}}, szb[NB] = {{0}}, missb[2] = {{0}};
    acc orc = {0};
    double call_rel_sum = 0, call_rel_phase[2] = {0}, ncalls = 0, ncalls_phase[2] = {0};
    double lay_rel[16] = {0}, lay_calls[16] = {0}, lay_dens[16] = {0}, hd_dens[16][16] = {{0}};
    double orc_dens = 0, est_kept = 0, est_n = 0, hd_n[16][16] = {{0}};
    double hd_floor[16][16] = {{0}}, hd_target[16][16] = {{0}}, hd_oracle[16][16] = {{0}};
    double phase_dens[2] = {0}, tight[2] = {0}, ntight[2] = {0}, kept_sel = 0, kept_orc = 0,
           kept_n = 0;
    double *rowrec = malloc((size_t)N * 8), *rowerr = malloc((size_t)N * 8),
           *rowref = malloc((size_t)N * 8);
    double *M = malloc((size_t)N * N * 8); /* true block mass [cq][ck] */
    const float scale = 1.0f / sqrtf((float)D);
    for (int step = step0; step <= step1; step++)
        for (const char *lc = layers; *lc; lc++) {
            int layer = *lc - '0';
            svoo_synth_generate(syn, step, layer, SVOO_F32, q, k, v);
            int s1 = refsched ? step + 1 : step, start = 11, every = svg2 ? 1 : 20;
            int replan =
                planned[layer] < 0 || s1 < start || every <= 1 || (s1 - start) % every == 0;
            /* ours: replan if the last plan is older than the last scheduled point */
            if (!replan && !refsched) {
                int sched = start + (step - start) / every * every;
                replan = !(planned[layer] >= sched);
            }
            int ph = replan ? 0 : 1;
            double call_err = 0, call_ref = 0;
            for (int h = 0; h < H; h++) {
                const float *qh = q + (size_t)h * N * D, *kh = k + (size_t)h * N * D,
                            *vh = v + (size_t)h * N * D;
                svoo_plan_input in = {&cfg, step, layer,         h,      qh, kh, vh, N, D,
                                      cq,   ck,   &st[layer][h], replan, 0,  2};
                double fl = 0.10, pv;
                if (svoo_profile_get(prof, step, layer, h, &pv) == SVOO_OK)
                    fl = pv < 0.15 ? 0.15 : pv > 0.20 ? 0.20 : pv;
                in.floor_ratio = svg2 ? cfg.floor_ratio : fl;
                hd_floor[layer][h] += in.floor_ratio;
                svoo_head_kind kind;
                double target;
                int src[3];
                svoo_synth_head_info(syn, step, layer, h, &kind, &target, src);
                hd_target[layer][h] += target;
                if ((svg2 ? svoo_plan_svg2 : svoo_plan_svoo)(&in, &plan)) return 2;
                /* dense probabilities */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, (int)N, D, scale, qh,
                            D, kh, D, 0.0f, S, (int)N);
                memcpy(LG, S, (size_t)N * N * 4);
                for (int64_t i = 0; i < N; i++) {
                    float *r = S + i * N, mx = -INFINITY;
                    for (int64_t j = 0; j < N; j++)
                        mx = r[j] > mx ? r[j] : mx;
                    double sum = 0;
                    for (int64_t j = 0; j < N; j++)
                        sum += r[j] = expf(r[j] - mx);
                    for (int64_t j = 0; j < N; j++)
                        r[j] = (float)(r[j] / sum);
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, D, (int)N, 1.0f, S,
                            (int)N, vh, D, 0.0f, od, D);
                /* selection mask, per-row recall, sparse output = renormalised P over the selected
                 * keys */
                memset(sel, 0, (size_t)N * N);
                int32_t *qlab = st[layer][h].q_label;
                (void)qlab;
                for (int r = 0; r < plan.cq; r++)
                    for (int32_t qi = plan.q_off[r]; qi < plan.q_off[r + 1]; qi++) {
                        int64_t i = plan.q_perm[qi];
                        for (int32_t e = plan.row_ptr[r]; e < plan.row_ptr[r + 1]; e++) {
                            int c = plan.col[e];
                            for (int32_t kj = plan.k_off[c]; kj < plan.k_off[c + 1]; kj++)
                                sel[i * N + plan.k_perm[kj]] = 1;
                        }
                    }
                double dens = svoo_plan_density(&plan);
                float *ps = malloc((size_t)N * N * 4);
                for (int64_t i = 0; i < N; i++) {
                    double rc = 0, z = 0;
                    float mx = -INFINITY;
                    for (int64_t j = 0; j < N; j++) {
                        if (sel[i * N + j]) {
                            rc += S[i * N + j];
                            if (LG[i * N + j] > mx) mx = LG[i * N + j];
                        }
                    }
                    for (int64_t j = 0; j < N; j++) {
                        float x = sel[i * N + j] ? expf(LG[i * N + j] - mx) : 0.0f;
                        ps[i * N + j] = x;
                        z += x;
                    }
                    for (int64_t j = 0; j < N; j++)
                        ps[i * N + j] = (float)(ps[i * N + j] / z);
                    rowrec[i] = rc;
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, D, (int)N, 1.0f, ps,
                            (int)N, vh, D, 0.0f, os, D);
                free(ps);
                for (int64_t i = 0; i < N; i++) {
                    double e2 = 0, r2 = 0;
                    for (int dd = 0; dd < D; dd++) {
                        double o = os[i * D + dd], x = od[i * D + dd];
                        e2 += (o - x) * (o - x);
                        r2 += x * x;
                    }
                    rowerr[i] = e2;
                    rowref[i] = r2;
                }
                /* true block mass per (query cluster, key cluster) */
                double hd_err = 0, hd_ref = 0, hd_rec = 0;
                for (int r = 0; r < plan.cq; r++) {
                    int sz = plan.q_off[r + 1] - plan.q_off[r];
                    if (!sz) continue;
                    double *m = M + (size_t)r * plan.ck;
                    for (int c = 0; c < plan.ck; c++)
                        m[c] = 0;
                    for (int32_t qi = plan.q_off[r]; qi < plan.q_off[r + 1]; qi++) {
                        int64_t i = plan.q_perm[qi];
                        for (int c = 0; c < plan.ck; c++)
                            for (int32_t kj = plan.k_off[c]; kj < plan.k_off[c + 1]; kj++)
                                m[c] += S[i * N + plan.k_perm[kj]];
                    }
                    for (int c = 0; c < plan.ck; c++)
                        m[c] /= sz;
                    /* largest missed block mass */
                    uint8_t *is = calloc(plan.ck, 1);
                    for (int32_t e = plan.row_ptr[r]; e < plan.row_ptr[r + 1]; e++)
                        is[plan.col[e]] = 1;
                    double miss = 0;
                    for (int c = 0; c < plan.ck; c++)
                        if (!is[c] && m[c] > miss) miss = m[c];
                    /* oracle: same clusters, blocks by true mass until top_p */
                    double *tmp = malloc(plan.ck * 8);
                    memcpy(tmp, m, plan.ck * 8);
                    double cum = 0, okeys = 0;
                    while (cum < cfg.top_p) {
                        int b = 0;
                        for (int c = 1; c < plan.ck; c++)
                            if (tmp[c] > tmp[b]) b = c;
                        cum += tmp[b];
                        kept_orc++;
                        okeys += plan.k_off[b + 1] - plan.k_off[b];
                        tmp[b] = -1;
                    }
                    orc_dens += (double)sz * okeys / ((double)N * N);
                    orc.rec += cum * sz;
                    free(tmp);
                    int bi = sz <= 4 ? 0 : sz <= 16 ? 1 : sz <= 64 ? 2 : 3;
                    for (int32_t qi = plan.q_off[r]; qi < plan.q_off[r + 1]; qi++) {
                        int64_t i = plan.q_perm[qi];
                        add(&szb[bi], rowerr[i], rowref[i], rowrec[i], 1);
                        add(&missb[miss > 0.05], rowerr[i], rowref[i], rowrec[i], 1);
                        double rr = rowrec[i];
                        int rb = rr < 0.8 ? 0 : rr < 0.9 ? 1 : rr < 0.95 ? 2 : 3;
                        add(&recb[rb], rowerr[i], rowref[i], rowrec[i], 1);
                        hd_err += rowerr[i], hd_ref += rowref[i], hd_rec += rowrec[i];
                    }
                    free(is);
                }
                orc.rows += N;
                {
                    const svoo_head_state *hs = &st[layer][h];
                    for (int side = 0; side < 2; side++) {
                        const float *x = side ? kh : qh;
                        const int32_t *lab = side ? hs->k_label : hs->q_label;
                        int nc = side ? plan.ck : plan.cq;
                        double *sx = calloc(nc, 8);
                        double *cnt = calloc(nc, 8);
                        double *mux = calloc((size_t)nc * D, 8);
                        for (int64_t i = 0; i < N; i++) {
                            double a = 0;
                            for (int dd = 0; dd < D; dd++)
                                a += (double)x[i * D + dd] * x[i * D + dd],
                                    mux[(size_t)lab[i] * D + dd] += x[i * D + dd];
                            sx[lab[i]] += a, cnt[lab[i]]++;
                        }
                        double num = 0, den = 0;
                        for (int c = 0; c < nc; c++) {
                            if (!cnt[c]) continue;
                            double m2 = 0;
                            for (int dd = 0; dd < D; dd++)
                                m2 += (mux[(size_t)c * D + dd] / cnt[c]) *
                                      (mux[(size_t)c * D + dd] / cnt[c]);
                            num += m2 * cnt[c], den += sx[c];
                        }
                        tight[side] += num / den, ntight[side]++;
                        free(sx), free(cnt), free(mux);
                    }
                    kept_sel += plan.nnz, kept_n += plan.cq;
                }
                /* oracle head density at tau 0.95 (keys per row), for reference */
                {
                    double od95 = 0;
                    float *tmp = malloc(N * 4);
                    for (int64_t i = 0; i < N; i += 8) {
                        memcpy(tmp, S + i * N, N * 4);
                        qsort(tmp, N, 4, cmpf);
                        double cum = 0;
                        int64_t cnt = 0;
                        while (cum < 0.95 && cnt < N)
                            cum += tmp[cnt++];
                        od95 += (double)cnt / N;
                    }
                    hd_oracle[layer][h] += od95 / ((N + 7) / 8);
                    free(tmp);
                }
                if (verbose > 1) {
                    int low = 0;
                    for (int64_t i = 0; i < N; i++)
                        low += rowrec[i] < 0.5;
                    printf("  step %d head %d.%d target %.4f beta-ish |q|/|k| %.2f floor %.3f "
                           "density %.4f recall %.4f rel %.4f rows<0.5 %d\n",
                           step, layer, h, target,
                           sqrt(cblas_sdot((int)(N * D), qh, 1, qh, 1) /
                                cblas_sdot((int)(N * D), kh, 1, kh, 1)),
                           in.floor_ratio, dens, hd_rec / N, sqrt(hd_err / hd_ref), low);
                }
                add(&hd[layer][h], hd_err, hd_ref, hd_rec, N);
                hd_dens[layer][h] += dens;
                hd_n[layer][h]++;
                add(&lay[layer], hd_err, hd_ref, hd_rec, N);
                add(&phase[ph], hd_err, hd_ref, hd_rec, N);
                add(&tot, hd_err, hd_ref, hd_rec, N);
                call_err += hd_err, call_ref += hd_ref;
                lay_dens[layer] += dens / H;
                phase_dens[ph] += dens / H;
                tot.dens += dens / H;
                est_n++;
                (void)est_kept;
            }
            if (replan) planned[layer] = step;
            double cr = sqrt(call_err / call_ref);
            call_rel_sum += cr, ncalls++;
            call_rel_phase[ph] += cr, ncalls_phase[ph]++;
            lay_rel[layer] += cr, lay_calls[layer]++;
            if (verbose)
                printf("step %d layer %d %s rel %.4f\n", step, layer, replan ? "replan" : "reuse",
                       cr);
        }
    printf("TOTAL calls %.0f: density %.4f recall(all rows) %.4f rel-L2(mean of calls) %.4f\n",
           ncalls, tot.dens / ncalls, tot.rec / tot.rows, call_rel_sum / ncalls);
    printf("  oracle block choice on the same clusters (true mass until top_p): density %.4f "
           "recall %.4f\n",
           orc_dens / est_n, orc.rec / orc.rows);
    printf("  cluster tightness |mean|^2/mean|x|^2: query %.3f key %.3f; key clusters kept per "
           "query cluster: selection %.1f oracle %.1f (of %d)\n",
           tight[0] / ntight[0], tight[1] / ntight[1], kept_sel / kept_n, kept_orc / kept_n, ck);
    const char *pn[2] = {"replan", "reuse"};
    for (int p = 0; p < 2; p++)
        if (ncalls_phase[p])
            printf("  %-6s calls %3.0f density %.4f recall %.4f rel-L2 %.4f\n", pn[p],
                   ncalls_phase[p], phase_dens[p] / ncalls_phase[p], phase[p].rec / phase[p].rows,
                   call_rel_phase[p] / ncalls_phase[p]);
    for (int l = 0; l < 16; l++)
        if (lay_calls[l])
            printf("  layer %d: density %.4f recall %.4f rel-L2 %.4f\n", l,
                   lay_dens[l] / lay_calls[l], lay[l].rec / lay[l].rows, lay_rel[l] / lay_calls[l]);
    printf("  per head (layer.head): target-density oracle95 floor | density recall rel-L2(head, "
           "pooled) errshare\n");
    for (int l = 0; l < 16; l++)
        for (int h = 0; h < 16; h++)
            if (hd_n[l][h])
                printf("   %d.%d  %.3f %.3f %.3f | %.3f %.4f %.4f %.3f\n", l, h,
                       hd_target[l][h] / hd_n[l][h], hd_oracle[l][h] / hd_n[l][h],
                       hd_floor[l][h] / hd_n[l][h], hd_dens[l][h] / hd_n[l][h],
                       hd[l][h].rec / hd[l][h].rows, sqrt(hd[l][h].err / hd[l][h].ref),
                       hd[l][h].err / tot.err);
    const char *rbn[NB] = {"<0.8", "0.8-0.9", "0.9-0.95", ">=0.95"};
    printf("  rows by recall: rows%% errshare%%\n");
    for (int b = 0; b < NB; b++)
        printf("   %-9s %6.2f %6.2f\n", rbn[b], 100 * recb[b].rows / tot.rows,
               100 * recb[b].err / tot.err);
    const char *sbn[NB] = {"1-4", "5-16", "17-64", ">64"};
    printf("  rows by query-cluster size: rows%% errshare%% recall rel-L2(pooled)\n");
    for (int b = 0; b < NB; b++)
        if (szb[b].rows)
            printf("   %-6s %6.2f %6.2f %.4f %.4f\n", sbn[b], 100 * szb[b].rows / tot.rows,
                   100 * szb[b].err / tot.err, szb[b].rec / szb[b].rows,
                   sqrt(szb[b].err / szb[b].ref));
    printf("  rows whose query cluster missed a key cluster of true mass > 0.05: rows%% %.2f "
           "errshare%% %.2f recall %.4f (others %.4f)\n",
           100 * missb[1].rows / tot.rows, 100 * missb[1].err / tot.err,
           missb[1].rows ? missb[1].rec / missb[1].rows : 0, missb[0].rec / missb[0].rows);
    return 0;
}

int cmpf(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

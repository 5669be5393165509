/* plan_svg_cuda.cu : Sparse VideoGen (method svg) on the GPU; see
 * plan_svg_cuda.h and docs/CUDA.md. The masks and the layout are those of
 * the CPU planner (src/plan/svg_masks.c, docs/SVG.md), whose host code builds
 * the two candidate plans once per context. */
#include "plan_svg_cuda.h"

extern "C" {
#include "plan/svg.h"
}

#include <math.h>

namespace {

struct svg_geo {
    int64_t N, S, V, vid0;
    int64_t w_s, w_t;
    int F, m, nch, kc;
};

/* 8 consecutive elements of a 16-byte aligned row -> f32 */
template <typename T> __device__ __forceinline__ void load8(const T *p, float *f) {
    uint4 u = *(const uint4 *)p;
    const T *h = (const T *)&u;
#pragma unroll
    for (int e = 0; e < 8; e++)
        f[e] = to_f(h[e]);
}

__device__ __forceinline__ int64_t sample_row(const svg_geo &g, int t) {
    return ((2 * (int64_t)t + 1) * g.V) / (2 * (int64_t)g.m);
}

/* One block: RG sampled rows x one key chunk of one bh. Warp w owns rows w and
 * w + 8 (slots 0, 1) and their three outputs (exact, spatial, temporal: pair
 * p = var * 2 + slot); lane j holds key j of each 32-key tile for the logits
 * and dims [lane * D/32, +D/32) for P.V. Online softmax per output, as the
 * CPU (one max per output, so a mask never underflows). */
template <typename T, int D>
__global__ void __launch_bounds__(256)
    k_svg_partial(svoo_dview xq, svoo_dview xk, svoo_dview xv, svg_geo g, float scale, float *pm,
                  float *pl, float *pacc) {
    constexpr int RG = SVOO_CU_SVG_ROWS, KT = 32, DPL = D / 32;
    static_assert(RG == 16, "two rows per warp, 8 warps");
    __shared__ float qs[RG][D];
    __shared__ float ks[KT][D + 1];
    __shared__ __align__(16) float vs[KT][D];
    __shared__ float P[8][6][KT];
    const int bh = blockIdx.z, t0 = blockIdx.y * RG, ch = blockIdx.x;
    const int tid = threadIdx.x, w = tid >> 5, lane = tid & 31;
    const int64_t j0 = (int64_t)ch * g.kc, j1 = min(g.N, j0 + g.kc);

    for (int idx = tid; idx < RG * D / 8; idx += 256) {
        const int r = idx / (D / 8), x8 = (idx % (D / 8)) * 8, t = t0 + r;
        float f[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        if (t < g.m) load8<T>(dv_row<T>(xq, bh, g.vid0 + sample_row(g, t)) + x8, f);
#pragma unroll
        for (int e = 0; e < 8; e++)
            qs[r][x8 + e] = f[e];
    }
    int64_t cr[2][2]; /* band coordinate of the two rows, per kind */
    bool rv[2];
#pragma unroll
    for (int i = 0; i < 2; i++) {
        const int t = t0 + w + 8 * i;
        rv[i] = t < g.m;
        const int64_t vi = rv[i] ? sample_row(g, t) : 0;
        cr[i][0] = vi;
        cr[i][1] = (vi % g.S) * g.F + vi / g.S;
    }
    float mrun[6], lrun[6], acc[6][DPL];
#pragma unroll
    for (int p = 0; p < 6; p++) {
        mrun[p] = -INFINITY;
        lrun[p] = 0;
#pragma unroll
        for (int e = 0; e < DPL; e++)
            acc[p][e] = 0;
    }

    for (int64_t jt = j0; jt < j1; jt += KT) {
        __syncthreads(); /* qs written / previous tile consumed */
        for (int idx = tid; idx < KT * D / 8; idx += 256) {
            const int jj = idx / (D / 8), x8 = (idx % (D / 8)) * 8;
            const int64_t j = jt + jj;
            float kf[8] = {0, 0, 0, 0, 0, 0, 0, 0}, vf[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            if (j < j1) {
                load8<T>(dv_row<T>(xk, bh, j) + x8, kf);
                load8<T>(dv_row<T>(xv, bh, j) + x8, vf);
            }
#pragma unroll
            for (int e = 0; e < 8; e++)
                ks[jj][x8 + e] = kf[e];
            *(float4 *)&vs[jj][x8] = make_float4(vf[0], vf[1], vf[2], vf[3]);
            *(float4 *)&vs[jj][x8 + 4] = make_float4(vf[4], vf[5], vf[6], vf[7]);
        }
        __syncthreads();
        float l[2] = {0, 0};
#pragma unroll 8
        for (int x = 0; x < D; x++) {
            const float kx = ks[lane][x];
            l[0] += qs[w][x] * kx;
            l[1] += qs[w + 8][x] * kx;
        }
        l[0] *= scale;
        l[1] *= scale;
        const int64_t j = jt + lane, vj = j - g.vid0;
        const bool jv = j < j1;
        const bool always = vj < g.S || vj >= g.V; /* first-frame sink or text */
        int64_t ck[2] = {0, 0};
        if (!always) {
            ck[0] = vj;
            ck[1] = (vj % g.S) * g.F + vj / g.S;
        }
        const int64_t wk[2] = {g.w_s, g.w_t};
#pragma unroll
        for (int p = 0; p < 6; p++) {
            const int var = p >> 1, i = p & 1;
            bool kept = jv;
            if (var > 0 && !always) {
                const int64_t dd = cr[i][var - 1] - ck[var - 1];
                kept = kept && (dd < 0 ? -dd : dd) <= wk[var - 1];
            }
            const float tm = warp_max(kept ? l[i] : -INFINITY);
            const float mnew = fmaxf(mrun[p], tm);
            float alpha = 1.0f, pv = 0.0f;
            if (mnew != -INFINITY) {
                alpha = expf(mrun[p] - mnew);
                pv = kept ? expf(l[i] - mnew) : 0.0f;
            }
            lrun[p] = lrun[p] * alpha + warp_sum(pv);
            mrun[p] = mnew;
            P[w][p][lane] = pv;
#pragma unroll
            for (int e = 0; e < DPL; e++)
                acc[p][e] *= alpha;
        }
        __syncwarp();
#pragma unroll 4
        for (int jj = 0; jj < KT; jj++) {
            float vv[DPL];
            if constexpr (DPL == 4) {
                const float4 f4 = *(const float4 *)&vs[jj][lane * 4];
                vv[0] = f4.x, vv[1] = f4.y, vv[2] = f4.z, vv[3] = f4.w;
            } else {
                const float2 f2 = *(const float2 *)&vs[jj][lane * 2];
                vv[0] = f2.x, vv[1] = f2.y;
            }
#pragma unroll
            for (int p = 0; p < 6; p++) {
                const float pp = P[w][p][jj];
#pragma unroll
                for (int e = 0; e < DPL; e++)
                    acc[p][e] += pp * vv[e];
            }
        }
    }
#pragma unroll
    for (int p = 0; p < 6; p++) {
        const int var = p >> 1, i = p & 1;
        if (!rv[i]) continue;
        const int t = t0 + w + 8 * i;
        const int64_t o = (((int64_t)bh * g.nch + ch) * 3 + var) * g.m + t;
        if (lane == 0) {
            pm[o] = mrun[p];
            pl[o] = lrun[p];
        }
#pragma unroll
        for (int e = 0; e < DPL; e++)
            pacc[o * D + lane * DPL + e] = acc[p][e];
    }
}

/* one block (d threads) per (sampled row, bh): the three outputs from the
 * chunks, squared errors of the two masks -> rowerr[bh][t][2] */
__global__ void k_svg_rowerr(svg_geo g, int d, const float *pm, const float *pl, const float *pacc,
                             double *rowerr) {
    const int t = blockIdx.x, bh = blockIdx.y, x = threadIdx.x;
    double o[3];
    for (int var = 0; var < 3; var++) {
        float M = -INFINITY;
        for (int c = 0; c < g.nch; c++)
            M = fmaxf(M, pm[(((int64_t)bh * g.nch + c) * 3 + var) * g.m + t]);
        double s = 0, a = 0;
        for (int c = 0; c < g.nch; c++) {
            const int64_t idx = (((int64_t)bh * g.nch + c) * 3 + var) * g.m + t;
            const float mc = pm[idx];
            if (mc == -INFINITY) continue;
            const double f = exp((double)mc - (double)M);
            s += pl[idx] * f;
            a += pacc[idx * d + x] * f;
        }
        o[var] = a / s;
    }
    double e[2] = {(o[1] - o[0]) * (o[1] - o[0]), (o[2] - o[0]) * (o[2] - o[0])};
    __shared__ double red[2][4];
    for (int k = 0; k < 2; k++) {
        for (int off = 16; off; off >>= 1)
            e[k] += __shfl_xor_sync(0xffffffffu, e[k], off);
        if ((x & 31) == 0) red[k][x >> 5] = e[k];
    }
    __syncthreads();
    if (x == 0)
        for (int k = 0; k < 2; k++) {
            double s = 0;
            for (int wi = 0; wi < d / 32; wi++)
                s += red[k][wi];
            rowerr[((int64_t)bh * g.m + t) * 2 + k] = s;
        }
}

/* one warp per bh: MSE of each kind, temporal iff mse_t < mse_s */
__global__ void k_svg_decide(svg_geo g, int d, const double *rowerr, double *mse, int32_t *kind) {
    const int bh = blockIdx.x, lane = threadIdx.x;
    double s[2] = {0, 0};
    for (int t = lane; t < g.m; t += 32)
        for (int k = 0; k < 2; k++)
            s[k] += rowerr[((int64_t)bh * g.m + t) * 2 + k];
    for (int k = 0; k < 2; k++)
        for (int off = 16; off; off >>= 1)
            s[k] += __shfl_xor_sync(0xffffffffu, s[k], off);
    if (lane == 0) {
        const double ms = s[0] / ((double)g.m * d), mt = s[1] / ((double)g.m * d);
        mse[bh * 2] = ms;
        mse[bh * 2 + 1] = mt;
        kind[bh] = mt < ms; /* ties and NaN: spatial */
    }
}

struct svg_write_args {
    int64_t N;
    int nb, stride, nnz0, nnz1;
    double pairs0, pairs1;
    const int32_t *off, *rp0, *rp1, *col0, *col1, *perm_t, *kind;
    int32_t *q_perm, *q_off, *k_off, *row_ptr, *col;
    double *dens;
};

__global__ void k_svg_write(svg_write_args a) {
    const int bh = blockIdx.y, tk = a.kind[bh];
    const int64_t gid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x,
                  gs = (int64_t)gridDim.x * blockDim.x;
    int32_t *qp = a.q_perm + (int64_t)bh * a.N;
    for (int64_t i = gid; i < a.N; i += gs)
        qp[i] = tk ? a.perm_t[i] : (int32_t)i;
    const int32_t *cs = tk ? a.col1 : a.col0, *rs = tk ? a.rp1 : a.rp0;
    const int nnz = tk ? a.nnz1 : a.nnz0, base = bh * a.stride;
    for (int64_t e = gid; e < nnz; e += gs)
        a.col[base + e] = cs[e];
    const int64_t r0 = (int64_t)bh * (a.nb + 1);
    for (int64_t r = gid; r <= a.nb; r += gs) {
        a.q_off[r0 + r] = a.k_off[r0 + r] = a.off[r];
        a.row_ptr[r0 + r] = base + rs[r];
    }
    if (gid == 0) a.dens[bh] = tk ? a.pairs1 : a.pairs0;
}

svg_geo geo_of(const svoo_cu_svg_info &info) {
    svg_geo g;
    g.N = info.N, g.S = info.S, g.V = info.V, g.vid0 = info.vid0;
    g.w_s = info.w[0], g.w_t = info.w[1];
    g.F = info.F, g.m = info.m, g.nch = info.nch;
    g.kc = (int)((info.N + info.nch - 1) / info.nch);
    return g;
}

template <typename T, int D>
void launch_partial(svoo_dview q, svoo_dview k, svoo_dview v, int BH, const svg_geo &g,
                    const svoo_cu_svg_dev &sd, cudaStream_t st) {
    dim3 grid(g.nch, (g.m + SVOO_CU_SVG_ROWS - 1) / SVOO_CU_SVG_ROWS, BH);
    k_svg_partial<T, D>
        <<<grid, 256, 0, st>>>(q, k, v, g, 1.0f / sqrtf((float)D), sd.pm, sd.pl, sd.pacc);
}

} // namespace

svoo_status svoo_cu_svg_prepare(const svoo_config *cfg, svoo_cu_svg_info *info, void *plans2) {
    if (cfg->frames <= 0 || cfg->height <= 0 || cfg->width <= 0 || cfg->text_tokens < 0)
        return svoo_err(SVOO_ERR_GEOMETRY,
                        "svg: config.frames/height/width/text_tokens: %d x %d x %d + %d",
                        cfg->frames, cfg->height, cfg->width, cfg->text_tokens);
    const int64_t S = (int64_t)cfg->height * cfg->width;
    if (S > INT32_MAX || (int64_t)cfg->frames * S + cfg->text_tokens > INT32_MAX)
        return svoo_err(SVOO_ERR_GEOMETRY, "svg: %d x %d x %d + %d tokens (at most 2^31 - 1)",
                        cfg->frames, cfg->height, cfg->width, cfg->text_tokens);
    svoo_svg_geom g;
    svoo_status s = svoo_svg_geom_init(cfg, (int64_t)cfg->frames * S + cfg->text_tokens, &g);
    if (s) return s;
    if (!(cfg->svg_sparsity > 0 && cfg->svg_sparsity < 1) || cfg->svg_sample_rows < 1)
        return svoo_err(SVOO_ERR_INVALID_ARGUMENT,
                        "svg: config.svg_sparsity %g / svg_sample_rows %d", cfg->svg_sparsity,
                        cfg->svg_sample_rows);
    memset(info, 0, sizeof *info);
    info->N = g.N, info->S = g.S, info->V = g.V, info->T = g.T, info->vid0 = g.vid0,
    info->text0 = g.text0;
    info->F = g.F;
    info->nb = g.nb;
    info->m = cfg->svg_sample_rows < g.V ? cfg->svg_sample_rows : (int)g.V;
    const int64_t nch = (g.N + 1023) / 1024;
    info->nch = (int)(nch < SVOO_CU_SVG_MAX_CHUNKS ? nch : SVOO_CU_SVG_MAX_CHUNKS);
    svoo_plan p[2];
    memset(p, 0, sizeof p);
    for (int kind = 0; kind < 2 && !s; kind++) {
        info->w[kind] = svoo_svg_band(&g, kind, cfg->svg_sparsity);
        s = svoo_svg_build(&g, kind, info->w[kind], &p[kind]);
        if (s) break;
        info->nnz[kind] = (int)p[kind].nnz;
        double pairs = 0;
        for (int r = 0; r < p[kind].cq; r++) {
            int64_t keys = 0;
            for (int32_t e = p[kind].row_ptr[r]; e < p[kind].row_ptr[r + 1]; e++)
                keys += p[kind].k_off[p[kind].col[e] + 1] - p[kind].k_off[p[kind].col[e]];
            pairs += (double)(p[kind].q_off[r + 1] - p[kind].q_off[r]) * (double)keys;
        }
        info->pairs[kind] = pairs;
    }
    info->stride = info->nnz[0] > info->nnz[1] ? info->nnz[0] : info->nnz[1];
    if (s || !plans2) {
        svoo_plan_release(&p[0]);
        svoo_plan_release(&p[1]);
    } else {
        memcpy(plans2, p, sizeof p);
    }
    return s;
}

cudaError_t svoo_cu_svg_classify(int dtype, svoo_dview q, svoo_dview k, svoo_dview v, int BH, int d,
                                 const svoo_cu_svg_info &info, const svoo_cu_svg_dev &sd,
                                 cudaStream_t st) {
    const svg_geo g = geo_of(info);
    if (d == 128 && dtype == SVOO_BF16)
        launch_partial<__nv_bfloat16, 128>(q, k, v, BH, g, sd, st);
    else if (d == 128 && dtype == SVOO_F16)
        launch_partial<__half, 128>(q, k, v, BH, g, sd, st);
    else if (d == 64 && dtype == SVOO_BF16)
        launch_partial<__nv_bfloat16, 64>(q, k, v, BH, g, sd, st);
    else if (d == 64 && dtype == SVOO_F16)
        launch_partial<__half, 64>(q, k, v, BH, g, sd, st);
    else
        return cudaErrorInvalidValue;
    cudaError_t e = cudaGetLastError();
    if (e) return e;
    k_svg_rowerr<<<dim3(g.m, BH), d, 0, st>>>(g, d, sd.pm, sd.pl, sd.pacc, sd.rowerr);
    if ((e = cudaGetLastError())) return e;
    k_svg_decide<<<BH, 32, 0, st>>>(g, d, sd.rowerr, sd.mse, sd.kind);
    return cudaGetLastError();
}

cudaError_t svoo_cu_svg_write(int BH, const svoo_cu_svg_info &info, const svoo_cu_svg_dev &sd,
                              int32_t *q_perm, int32_t *q_off, int32_t *k_off, int32_t *row_ptr,
                              int32_t *col, double *dens, cudaStream_t st) {
    svg_write_args a;
    a.N = info.N;
    a.nb = info.nb, a.stride = info.stride, a.nnz0 = info.nnz[0], a.nnz1 = info.nnz[1];
    a.pairs0 = info.pairs[0], a.pairs1 = info.pairs[1];
    a.off = sd.off, a.rp0 = sd.rp[0], a.rp1 = sd.rp[1], a.col0 = sd.col[0], a.col1 = sd.col[1];
    a.perm_t = sd.perm_t, a.kind = sd.kind;
    a.q_perm = q_perm, a.q_off = q_off, a.k_off = k_off, a.row_ptr = row_ptr, a.col = col,
    a.dens = dens;
    int64_t work = info.N > info.stride ? info.N : info.stride;
    int gx = (int)((work + 255) / 256);
    gx = gx < 64 ? gx : 64;
    k_svg_write<<<dim3(gx, BH), 256, 0, st>>>(a);
    return cudaGetLastError();
}

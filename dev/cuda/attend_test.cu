// attend_test.cu : standalone harness of cuda/attend_sm80.cu and cuda/attend_sm90.cu.
//   attend_test check                  correctness suite (random plans vs CPU f64 / f32
//                                      references), every case on each kernel the device has
//   attend_test bench [reps] [g] [full] timing at H = 12, N = 75,600, D = 128 (bf16): the
//                                      sm90 wgmma kernel (compute capability 9.0) and the
//                                      sm80 128x64 kernel; `full` adds 64x32 and permute+contig.
//                                      BENCH_CASES=i,j,... picks plans (default 0-4, 10-12:
//                                      random 128x128 blocks, FlexAttention's workload, 13-14:
//                                      random clusters with keys in cluster order; 5-9 and 15-17
//                                      are diagnostic: uniform 64/32/192-row query clusters with
//                                      one key cluster, dense with random perms, all blocks
//                                      without perms; Flex's workload with 64/37/16-key blocks);
//                                      BENCH_SM90_ONLY=1 skips the sm80 kernel;
//                                      BENCH_LSE=1 has the kernels write the row LSE (EAR)
// Build: dev/cuda/build.sh (binary in build-cuda-dev/).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "attend.h"

extern "C" int svoo_cuda_attend_variant;
extern "C" int svoo_cuda_attend_kernel; // 0 auto, 1 sm80, 2 sm90
static bool g_sm90 = false;             // device is compute capability 9.0
static bool g_full = false;             // bench: also 64x32 and permute+contig

#define CK(x)                                                                                      \
    do {                                                                                           \
        cudaError_t e_ = (x);                                                                      \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_));     \
            exit(2);                                                                               \
        }                                                                                          \
    } while (0)

static int g_fail = 0;
static int g_best = 0; // variant used by the permute+contig timing

struct Plan {
    int BH, Nq, Nk, Cq, Ck;
    bool identity;
    std::vector<int> qperm, kperm, qoff, koff, rowptr, col;
    double density() const { // fraction of BH * Nq * Nk computed
        double s = 0;
        for (int bh = 0; bh < BH; bh++)
            for (int r = 0; r < Cq; r++) {
                int rows = qoff[bh * (Cq + 1) + r + 1] - qoff[bh * (Cq + 1) + r];
                long keys = 0;
                for (int e = rowptr[bh * (Cq + 1) + r]; e < rowptr[bh * (Cq + 1) + r + 1]; e++)
                    keys += koff[bh * (Ck + 1) + col[e] + 1] - koff[bh * (Ck + 1) + col[e]];
                s += (double)rows * keys;
            }
        return s / ((double)BH * Nq * Nk);
    }
};

static void cuts(std::mt19937_64 &rng, int n, int c, int *off, int nempty) {
    std::vector<int> x(c - 1);
    std::uniform_int_distribution<int> u(0, n);
    for (auto &v : x)
        v = u(rng);
    std::sort(x.begin(), x.end());
    for (int i = 0; i < nempty && c > 2; i++) { // force some empty clusters
        int j = std::uniform_int_distribution<int>(1, c - 2)(rng);
        x[j] = x[j - 1];
    }
    off[0] = 0;
    for (int i = 0; i < c - 1; i++)
        off[i + 1] = x[i];
    off[c] = n;
}

// density < 0: all blocks; none_row: cluster 1 of each head selects nothing;
// qrows / krows > 0: query / key clusters of that many rows each (the last one shorter)
// instead of random cuts
static Plan make_plan(int BH, int Nq, int Nk, int Cq, int Ck, double density, bool identity,
                      bool none_row, bool shuffle_col, int nempty, uint64_t seed, int qrows = 0,
                      int krows = 0) {
    std::mt19937_64 rng(seed);
    Plan p{BH, Nq, Nk, Cq, Ck, identity, {}, {}, {}, {}, {}, {}};
    p.qoff.resize((size_t)BH * (Cq + 1));
    p.koff.resize((size_t)BH * (Ck + 1));
    p.rowptr.resize((size_t)BH * (Cq + 1));
    if (!identity) {
        p.qperm.resize((size_t)BH * Nq);
        p.kperm.resize((size_t)BH * Nk);
    }
    std::uniform_real_distribution<double> U(0, 1);
    for (int bh = 0; bh < BH; bh++) {
        if (!identity) {
            int *qp = &p.qperm[(size_t)bh * Nq], *kp = &p.kperm[(size_t)bh * Nk];
            for (int i = 0; i < Nq; i++)
                qp[i] = i;
            for (int i = 0; i < Nk; i++)
                kp[i] = i;
            std::shuffle(qp, qp + Nq, rng);
            std::shuffle(kp, kp + Nk, rng);
        }
        cuts(rng, Nq, Cq, &p.qoff[(size_t)bh * (Cq + 1)], nempty);
        if (qrows > 0)
            for (int r = 0; r <= Cq; r++)
                p.qoff[(size_t)bh * (Cq + 1) + r] = r == Cq ? Nq : std::min(Nq, r * qrows);
        cuts(rng, Nk, Ck, &p.koff[(size_t)bh * (Ck + 1)], nempty);
        if (krows > 0)
            for (int c = 0; c <= Ck; c++)
                p.koff[(size_t)bh * (Ck + 1) + c] = c == Ck ? Nk : std::min(Nk, c * krows);
        for (int r = 0; r < Cq; r++) {
            p.rowptr[(size_t)bh * (Cq + 1) + r] = (int)p.col.size();
            size_t first = p.col.size();
            if (!(none_row && r == 1 % Cq && Cq > 1))
                for (int c = 0; c < Ck; c++)
                    if (density < 0 || U(rng) < density) p.col.push_back(c);
            if (shuffle_col) std::shuffle(p.col.begin() + first, p.col.end(), rng);
        }
        p.rowptr[(size_t)bh * (Cq + 1) + Cq] = (int)p.col.size();
    }
    if (p.col.empty()) p.col.push_back(0); // keep a valid pointer
    return p;
}

struct DevPlan {
    int *qperm = nullptr, *kperm = nullptr, *qoff, *koff, *rowptr, *col;
};
template <class T> static T *up(const std::vector<T> &v) {
    T *d;
    CK(cudaMalloc(&d, std::max<size_t>(1, v.size()) * sizeof(T)));
    if (!v.empty()) CK(cudaMemcpy(d, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
    return d;
}
static DevPlan upload(const Plan &p) {
    DevPlan d;
    if (!p.identity) {
        d.qperm = up(p.qperm);
        d.kperm = up(p.kperm);
    }
    d.qoff = up(p.qoff);
    d.koff = up(p.koff);
    d.rowptr = up(p.rowptr);
    d.col = up(p.col);
    return d;
}
static void dfree(DevPlan &d) {
    cudaFree(d.qperm);
    cudaFree(d.kperm);
    cudaFree(d.qoff);
    cudaFree(d.koff);
    cudaFree(d.rowptr);
    cudaFree(d.col);
}

static inline float h2f(uint16_t x, int dtype) {
    if (dtype == 0) {
        uint32_t u = (uint32_t)x << 16;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    __half_raw r;
    r.x = x;
    return __half2float(__half(r));
}
static inline uint16_t f2h(float f, int dtype) {
    if (dtype == 0) {
        __nv_bfloat16 b = __float2bfloat16(f);
        uint16_t u;
        memcpy(&u, &b, 2);
        return u;
    }
    __half h = __float2half(f);
    uint16_t u;
    memcpy(&u, &h, 2);
    return u;
}
static inline float rnd(float f, int dtype) {
    return h2f(f2h(f, dtype), dtype);
}

// Strided layout of one tensor: element (b, h, n, d) at b*sb + h*sh + n*sn + d
struct Layout {
    int64_t sb, sh, sn, size;
};
static Layout layout(int B, int H, int N, int D, bool bnhd) {
    if (bnhd) return {(int64_t)N * H * D, D, (int64_t)H * D, (int64_t)B * N * H * D};
    return {(int64_t)H * N * D, (int64_t)N * D, D, (int64_t)B * H * N * D};
}

// CPU references for rows of (bh, query cluster); ref64: f64 math on the rounded
// inputs; ref32: f32 math, P rounded to the input dtype, output rounded.
static void cpu_ref_row(const Plan &p, const std::vector<uint16_t> &q,
                        const std::vector<uint16_t> &k, const std::vector<uint16_t> &v,
                        const Layout &lq, const Layout &lk, const Layout &lv, int H, int D,
                        int dtype, float scale, int bh, int r, int i, std::vector<int> &keys,
                        double *o64, float *o32) {
    const int b = bh / H, h = bh % H;
    keys.clear();
    for (int e = p.rowptr[bh * (p.Cq + 1) + r]; e < p.rowptr[bh * (p.Cq + 1) + r + 1]; e++) {
        int c = p.col[e];
        for (int j = p.koff[bh * (p.Ck + 1) + c]; j < p.koff[bh * (p.Ck + 1) + c + 1]; j++)
            keys.push_back(p.identity ? j : p.kperm[(size_t)bh * p.Nk + j]);
    }
    const int qi = p.identity ? i : p.qperm[(size_t)bh * p.Nq + i];
    const uint16_t *qr = &q[b * lq.sb + h * lq.sh + (int64_t)qi * lq.sn];
    std::vector<double> s(keys.size());
    std::vector<float> s32(keys.size());
    double mx = -INFINITY;
    float mx32 = -INFINITY;
    for (size_t j = 0; j < keys.size(); j++) {
        const uint16_t *kr = &k[b * lk.sb + h * lk.sh + (int64_t)keys[j] * lk.sn];
        double acc = 0;
        float acc32 = 0;
        for (int d = 0; d < D; d++) {
            float a = h2f(qr[d], dtype), c = h2f(kr[d], dtype);
            acc += (double)a * c;
            acc32 += a * c;
        }
        s[j] = acc * scale;
        s32[j] = acc32 * scale;
        mx = std::max(mx, s[j]);
        mx32 = std::max(mx32, s32[j]);
    }
    double sum = 0;
    float sum32 = 0;
    for (size_t j = 0; j < keys.size(); j++) {
        s[j] = exp(s[j] - mx);
        sum += s[j];
        float e = expf(s32[j] - mx32);
        sum32 += e;
        s32[j] = rnd(e, dtype);
    }
    for (int d = 0; d < D; d++) {
        double acc = 0;
        float acc32 = 0;
        for (size_t j = 0; j < keys.size(); j++) {
            float vv = h2f(v[b * lv.sb + h * lv.sh + (int64_t)keys[j] * lv.sn + d], dtype);
            acc += s[j] * vv;
            acc32 += s32[j] * vv;
        }
        o64[d] = keys.empty() ? 0.0 : acc / sum;
        o32[d] = keys.empty() ? 0.f : rnd(acc32 / sum32, dtype);
    }
}

__global__ void fill_random(uint16_t *x, int64_t n, uint64_t seed, int dtype, float amp) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    for (; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        uint64_t z = (uint64_t)i * 0x9E3779B97F4A7C15ull + seed;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        // sum of 4 uniforms ~ normal-ish, var 1/3 each
        float s = 0;
        for (int k = 0; k < 4; k++)
            s += (float)((z >> (16 * k)) & 0xffff) / 65535.f - 0.5f;
        float f = s * 1.7320508f * amp;
        if (dtype == 0) {
            __nv_bfloat16 b = __float2bfloat16(f);
            x[i] = *reinterpret_cast<uint16_t *>(&b);
        } else {
            __half h = __float2half(f);
            x[i] = *reinterpret_cast<uint16_t *>(&h);
        }
    }
}

static svoo_cuda_attend_params make_params(const Plan &pl, const DevPlan &dp, int B, int H, int D,
                                           int dtype, const void *q, const void *k, const void *v,
                                           void *o, const Layout &lq, const Layout &lk,
                                           const Layout &lv, const Layout &lo) {
    svoo_cuda_attend_params p;
    memset(&p, 0, sizeof p);
    p.q = q;
    p.k = k;
    p.v = v;
    p.o = o;
    p.q_stride_b = lq.sb, p.q_stride_h = lq.sh, p.q_stride_n = lq.sn;
    p.k_stride_b = lk.sb, p.k_stride_h = lk.sh, p.k_stride_n = lk.sn;
    p.v_stride_b = lv.sb, p.v_stride_h = lv.sh, p.v_stride_n = lv.sn;
    p.o_stride_b = lo.sb, p.o_stride_h = lo.sh, p.o_stride_n = lo.sn;
    p.B = B, p.H = H, p.N_q = pl.Nq, p.N_k = pl.Nk, p.D = D, p.dtype = dtype;
    p.scale = 1.0f / sqrtf((float)D);
    p.q_perm = dp.qperm, p.k_perm = dp.kperm, p.q_off = dp.qoff, p.k_off = dp.koff;
    p.row_ptr = dp.rowptr, p.col = dp.col, p.Cq = pl.Cq, p.Ck = pl.Ck;
    return p;
}

struct Case {
    const char *name;
    int B, H, Nq, Nk, D, dtype, Cq, Ck;
    double density;
    bool identity, none_row, shuffle, bnhd;
    int nempty, variant;
    float amp;
};

static void run_case(const Case &c, uint64_t seed, int kernel) {
    const int BH = c.B * c.H;
    Plan pl = make_plan(BH, c.Nq, c.Nk, c.Cq, c.Ck, c.density, c.identity, c.none_row, c.shuffle,
                        c.nempty, seed);
    DevPlan dp = upload(pl);
    Layout lq = layout(c.B, c.H, c.Nq, c.D, c.bnhd), lk = layout(c.B, c.H, c.Nk, c.D, c.bnhd);
    Layout lo = layout(c.B, c.H, c.Nq, c.D, !c.bnhd); // output in the other layout
    std::vector<uint16_t> hq(lq.size), hk(lk.size), hv(lk.size), ho(lo.size);
    std::mt19937_64 rng(seed * 7 + 1);
    std::normal_distribution<float> N01(0, c.amp);
    for (auto &x : hq)
        x = f2h(N01(rng), c.dtype);
    for (auto &x : hk)
        x = f2h(N01(rng), c.dtype);
    for (auto &x : hv)
        x = f2h(N01(rng) / c.amp, c.dtype);
    uint16_t *q = up(hq), *k = up(hk), *v = up(hv), *o;
    CK(cudaMalloc(&o, lo.size * 2));
    CK(cudaMemset(o, 0xFF, lo.size * 2)); // poison: NaN in bf16 and f16
    size_t ws_bytes = svoo_cuda_attend_workspace(c.B, c.H, c.Nq, c.Cq);
    void *ws;
    CK(cudaMalloc(&ws, ws_bytes));
    CK(cudaMemset(ws, 0xAB, ws_bytes));
    svoo_cuda_attend_params p =
        make_params(pl, dp, c.B, c.H, c.D, c.dtype, q, k, v, o, lq, lk, lk, lo);
    svoo_cuda_attend_variant = c.variant;
    svoo_cuda_attend_kernel = kernel;
    svoo_status st = svoo_cuda_attend(&p, ws, ws_bytes, nullptr);
    svoo_cuda_attend_kernel = 0;
    const std::string name = std::string(c.name) + (kernel == 2 ? " [sm90]" : " [sm80]");
    CK(cudaDeviceSynchronize());
    if (st) {
        printf("%-35s FAIL status %d: %s\n", name.c_str(), (int)st, svoo_cuda_attend_last_error());
        g_fail++;
        return;
    }
    CK(cudaMemcpy(ho.data(), o, lo.size * 2, cudaMemcpyDeviceToHost));
    // references
    double e2 = 0, e32 = 0, r2 = 0;
    long nan_count = 0, zero_bad = 0;
    const float scale = p.scale;
#pragma omp parallel reduction(+ : e2, e32, r2, nan_count, zero_bad)
    {
        std::vector<int> keys;
        std::vector<double> o64(c.D);
        std::vector<float> o32(c.D);
#pragma omp for schedule(dynamic, 1) collapse(2)
        for (int bh = 0; bh < BH; bh++)
            for (int r = 0; r < c.Cq; r++) {
                const int b = bh / c.H, h = bh % c.H;
                for (int i = pl.qoff[bh * (c.Cq + 1) + r]; i < pl.qoff[bh * (c.Cq + 1) + r + 1];
                     i++) {
                    cpu_ref_row(pl, hq, hk, hv, lq, lk, lk, c.H, c.D, c.dtype, scale, bh, r, i,
                                keys, o64.data(), o32.data());
                    const int qi = pl.identity ? i : pl.qperm[(size_t)bh * c.Nq + i];
                    const uint16_t *orow = &ho[b * lo.sb + h * lo.sh + (int64_t)qi * lo.sn];
                    for (int d = 0; d < c.D; d++) {
                        float g = h2f(orow[d], c.dtype);
                        if (!std::isfinite(g)) nan_count++;
                        if (keys.empty() && g != 0.f) zero_bad++;
                        e2 += (g - o64[d]) * (g - o64[d]);
                        e32 += (o32[d] - o64[d]) * (o32[d] - o64[d]);
                        r2 += o64[d] * o64[d];
                    }
                }
            }
    }
    const double rel = sqrt(e2 / std::max(r2, 1e-300)), rel32 = sqrt(e32 / std::max(r2, 1e-300));
    const bool ok = nan_count == 0 && zero_bad == 0 && rel <= 2 * rel32 + 1e-6 && rel < 2e-2;
    if (!ok) g_fail++;
    printf(
        "%-35s %s  rel_l2 %.3e  (f32/%s-P ref %.3e, ratio %.2f)  density %.3f  nan/unwritten %ld  "
        "nonzero-empty %ld\n",
        name.c_str(), ok ? "ok  " : "FAIL", rel, c.dtype ? "f16" : "bf16", rel32,
        rel32 > 0 ? rel / rel32 : 0.0, pl.density(), nan_count, zero_bad);
    cudaFree(q);
    cudaFree(k);
    cudaFree(v);
    cudaFree(o);
    cudaFree(ws);
    dfree(dp);
}

static void check_errors() {
    // status for bad input; no device work needed beyond tiny buffers
    Plan pl = make_plan(1, 256, 256, 2, 2, 0.5, true, false, false, 0, 5);
    DevPlan dp = upload(pl);
    uint16_t *buf;
    CK(cudaMalloc(&buf, 256 * 128 * 2 * 4 + 64));
    Layout l = layout(1, 1, 256, 128, false);
    size_t ws_bytes = svoo_cuda_attend_workspace(1, 1, 256, 2);
    void *ws;
    CK(cudaMalloc(&ws, ws_bytes));
    auto P = [&](int D) {
        return make_params(pl, dp, 1, 1, D, 0, buf, buf + 256 * 128, buf + 2 * 256 * 128,
                           buf + 3 * 256 * 128, l, l, l, l);
    };
    struct {
        const char *what;
        svoo_status want;
        svoo_cuda_attend_params p;
        size_t ws;
    } t[6];
    t[0] = {"D = 96", SVOO_ERR_UNSUPPORTED_HEAD_DIM, P(96), ws_bytes};
    t[1] = {"q + 1 element", SVOO_ERR_MISALIGNED, P(128), ws_bytes};
    t[1].p.q = buf + 1;
    t[2] = {"stride_n 100", SVOO_ERR_MISALIGNED, P(128), ws_bytes};
    t[2].p.k_stride_n = 100;
    t[3] = {"workspace - 1", SVOO_ERR_WORKSPACE_TOO_SMALL, P(128), ws_bytes - 1};
    t[4] = {"NULL v", SVOO_ERR_NULL_POINTER, P(128), ws_bytes};
    t[4].p.v = nullptr;
    t[5] = {"dtype 7", SVOO_ERR_UNKNOWN_DTYPE, P(128), ws_bytes};
    t[5].p.dtype = 7;
    for (auto &x : t) {
        svoo_status st = svoo_cuda_attend(&x.p, ws, x.ws, nullptr);
        bool ok = st == x.want;
        if (!ok) g_fail++;
        printf("error case %-16s %s  status %d  \"%s\"\n", x.what, ok ? "ok  " : "FAIL", (int)st,
               svoo_cuda_attend_last_error());
    }
    CK(cudaDeviceSynchronize());
    cudaFree(buf);
    cudaFree(ws);
    dfree(dp);
}

static int do_check() {
    const Case cases[] = {
        // name                      B  H   Nq    Nk    D  dt  Cq   Ck   dens  ident  none  shuf
        // bnhd nempty var amp
        {"bf16 d128 random", 2, 3, 1500, 1500, 128, 0, 16, 40, 0.3, false, true, false, false, 3, 0,
         1.f},
        {"bf16 d128 random v1 128x32", 2, 3, 1500, 1500, 128, 0, 16, 40, 0.3, false, true, false,
         false, 3, 1, 1.f},
        {"bf16 d128 random v2 64x32", 2, 3, 1500, 1500, 128, 0, 16, 40, 0.3, false, true, false,
         false, 3, 2, 1.f},
        {"f16 d128 bnhd v3 64x64", 1, 2, 2100, 1900, 128, 1, 7, 33, 0.25, false, true, true, true,
         4, 3, 1.f},
        {"bf16 d128 >CAP v2 64x32", 1, 2, 700, 2000, 128, 0, 5, 1100, -1, false, false, false,
         false, 5, 2, 1.f},
        {"f16 d64 nq!=nk bnhd", 1, 4, 1300, 1700, 64, 1, 12, 30, 0.4, false, true, true, true, 2, 0,
         1.f},
        {"bf16 d64 random", 2, 2, 2000, 2000, 64, 0, 9, 50, 0.2, false, false, false, false, 2, 0,
         1.f},
        {"f16 d128 bnhd shuffled", 1, 2, 2100, 1900, 128, 1, 7, 33, 0.25, false, true, true, true,
         4, 0, 1.f},
        {"bf16 d128 dense 1 cluster", 1, 2, 1111, 1111, 128, 0, 1, 1, -1, true, false, false, false,
         0, 0, 1.f},
        {"bf16 d128 dense all blocks", 2, 1, 1500, 1500, 128, 0, 16, 40, -1, false, false, false,
         false, 0, 0, 1.f},
        {"bf16 d128 Ck 1100 (>CAP)", 1, 2, 700, 2000, 128, 0, 5, 1100, -1, false, false, false,
         false, 5, 0, 1.f},
        {"f16 d64 tiny N", 3, 1, 37, 5, 64, 1, 3, 2, 0.7, false, false, false, false, 0, 0, 1.f},
        {"bf16 d128 large logits", 1, 2, 900, 900, 128, 0, 6, 20, 0.5, false, false, false, false,
         0, 0, 3.f},
        {"bf16 d128 big clusters", 1, 2, 3000, 3000, 128, 0, 3, 7, 0.5, false, true, false, false,
         0, 0, 1.f},
        // many work items per block of the persistent sm90 kernel
        {"bf16 d128 many tiles", 2, 4, 4000, 3000, 128, 0, 40, 60, 0.3, false, true, true, false, 3,
         0, 1.f},
        {"f16 d64 many tiles bnhd", 2, 4, 4000, 3000, 64, 1, 40, 60, 0.3, false, true, true, true,
         3, 0, 1.f},
        {"f16 d128 Ck 1100 (>CAP) dense", 1, 2, 700, 2000, 128, 1, 5, 1100, -1, false, false, false,
         false, 5, 0, 1.f},
        // no permutation (the sm90 kernel's TMA key tiles where a tile is one run of rows, the
        // gather elsewhere): random cuts with empty clusters, shuffled selections, a (B, N, H, D)
        // layout of one batch, every block of several clusters (runs across their borders)
        {"bf16 d128 identity random", 2, 3, 1500, 1500, 128, 0, 16, 40, 0.3, true, true, false,
         false, 3, 0, 1.f},
        {"f16 d64 identity shuffled bnhd", 1, 3, 2100, 1900, 64, 1, 7, 33, 0.5, true, false, true,
         true, 2, 0, 1.f},
        {"bf16 d128 identity all blocks", 2, 2, 3000, 2500, 128, 0, 8, 12, -1, true, false, false,
         false, 0, 0, 1.f},
        {"f16 d128 identity big clusters", 1, 2, 3000, 3000, 128, 1, 3, 7, 0.6, true, true, false,
         false, 0, 0, 1.f},
        // more selected clusters than one split table holds (512): several segments
        {"bf16 d128 identity Ck 1100", 1, 2, 700, 2000, 128, 0, 5, 1100, -1, true, false, false,
         false, 5, 0, 1.f},
        {"f16 d64 identity Ck 600 long", 1, 1, 300, 40000, 64, 1, 3, 600, 0.9, true, false, true,
         false, 0, 0, 1.f},
    };
    uint64_t seed = 12345;
    for (const Case &c : cases) {
        // variant cases are sm80 tile shapes; the others run on every kernel
        if (g_sm90 && c.variant == 0) run_case(c, seed, 2);
        run_case(c, seed, 1);
        seed++;
    }
    check_errors();
    printf("check: %s (%d failures)\n", g_fail ? "FAILED" : "passed", g_fail);
    return g_fail ? 1 : 0;
}

// ---------------------------------------------------------------- bench
static float time_ms(cudaStream_t s, int reps, const std::function<void()> &fn) {
    fn();
    fn();
    CK(cudaStreamSynchronize(s));
    std::vector<float> t;
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    for (int i = 0; i < reps; i++) {
        CK(cudaEventRecord(a, s));
        fn();
        CK(cudaEventRecord(b, s));
        CK(cudaEventSynchronize(b));
        float ms;
        CK(cudaEventElapsedTime(&ms, a, b));
        t.push_back(ms);
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

// sampled-row check of a bench output (original order, BHND)
static double sample_check(const Plan &pl, const std::vector<uint16_t> &hq,
                           const std::vector<uint16_t> &hk, const std::vector<uint16_t> &hv,
                           const uint16_t *d_o, int H, int D, int nrows, double *rel32_out) {
    Layout l = layout(1, H, pl.Nq, D, false);
    std::mt19937_64 rng(99);
    double e2 = 0, e32 = 0, r2 = 0;
    std::vector<uint16_t> ho((size_t)l.size);
    CK(cudaMemcpy(ho.data(), d_o, l.size * 2, cudaMemcpyDeviceToHost));
    std::vector<std::pair<int, int>> picks; // (bh, permuted i)
    for (int t = 0; t < nrows; t++) {
        int bh = (int)(rng() % pl.BH), i = (int)(rng() % pl.Nq);
        picks.push_back({bh, i});
    }
#pragma omp parallel reduction(+ : e2, e32, r2)
    {
        std::vector<int> keys;
        std::vector<double> o64(D);
        std::vector<float> o32(D);
        std::vector<uint16_t> g(D);
#pragma omp for schedule(dynamic, 1)
        for (int t = 0; t < nrows; t++) {
            int bh = picks[t].first, i = picks[t].second;
            const int *qo = &pl.qoff[bh * (pl.Cq + 1)];
            int r = (int)(std::upper_bound(qo, qo + pl.Cq + 1, i) - qo) - 1;
            cpu_ref_row(pl, hq, hk, hv, l, l, l, H, D, 0, 1.0f / sqrtf((float)D), bh, r, i, keys,
                        o64.data(), o32.data());
            int qi = pl.identity ? i : pl.qperm[(size_t)bh * pl.Nq + i];
            memcpy(g.data(), &ho[bh * l.sh + (int64_t)qi * l.sn], D * 2);
            for (int d = 0; d < D; d++) {
                double x = h2f(g[d], 0);
                if (!std::isfinite(x)) x = 1e30;
                e2 += (x - o64[d]) * (x - o64[d]);
                e32 += (o32[d] - o64[d]) * (o32[d] - o64[d]);
                r2 += o64[d] * o64[d];
            }
        }
    }
    *rel32_out = sqrt(e32 / r2);
    return sqrt(e2 / r2);
}

static int do_bench(int reps) {
    const int H = 12, N = 75600, D = 128, B = 1;
    const int64_t n = (int64_t)B * H * N * D;
    Layout l = layout(B, H, N, D, false);
    uint16_t *q, *k, *v, *o, *qp, *kp, *vp, *op;
    CK(cudaMalloc(&q, n * 2));
    CK(cudaMalloc(&k, n * 2));
    CK(cudaMalloc(&v, n * 2));
    CK(cudaMalloc(&o, n * 2));
    CK(cudaMalloc(&qp, n * 2));
    CK(cudaMalloc(&kp, n * 2));
    CK(cudaMalloc(&vp, n * 2));
    CK(cudaMalloc(&op, n * 2));
    fill_random<<<4096, 256>>>(q, n, 1, 0, 1.f);
    fill_random<<<4096, 256>>>(k, n, 2, 0, 1.f);
    fill_random<<<4096, 256>>>(v, n, 3, 0, 1.f);
    CK(cudaGetLastError());
    std::vector<uint16_t> hq(n), hk(n), hv(n);
    CK(cudaMemcpy(hq.data(), q, n * 2, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(hk.data(), k, n * 2, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(hv.data(), v, n * 2, cudaMemcpyDeviceToHost));
    cudaStream_t s;
    CK(cudaStreamCreate(&s));
    size_t ws_bytes = svoo_cuda_attend_workspace(B, H, N, 4096); // Cq <= 4096
    void *ws;
    CK(cudaMalloc(&ws, ws_bytes));
    const double dense_flops = 4.0 * N * (double)N * D * H;

    struct BCase {
        const char *name;
        int Cq, Ck;
        double density;
        bool identity;
        int qrows; // > 0: query clusters of qrows rows (else random cuts)
        int krows; // > 0: key clusters of krows keys
    } bc[] = {{"dense 1 cluster", 1, 1, -1, true, 0},
              {"dense all blocks 256x1024", 256, 1024, -1, false, 0},
              {"random 0.05", 256, 1024, 0.05, false, 0},
              {"random 0.15", 256, 1024, 0.15, false, 0},
              {"random 0.30", 256, 1024, 0.30, false, 0},
              // diagnostic cases (BENCH_CASES=5,6,... selects them)
              {"dense q64 rows, 1 key cl.", (N + 63) / 64, 1, -1, true, 64},
              {"dense 1 cluster, perms", 1, 1, -1, false, 0},
              {"all blocks 256x1024 no perm", 256, 1024, -1, true, 0},
              {"dense q32 rows, 1 key cl.", (N + 31) / 32, 1, -1, true, 32},
              {"dense q192 rows, 1 key cl.", (N + 191) / 192, 1, -1, true, 192},
              // FlexAttention's workload (attention_anchors.py): random 128 x 128 blocks of
              // contiguous rows, no padding but the last block of a head
              {"blocks128 random 0.05", (N + 127) / 128, (N + 127) / 128, 0.05, true, 128, 128},
              {"blocks128 random 0.15", (N + 127) / 128, (N + 127) / 128, 0.15, true, 128, 128},
              {"blocks128 random 0.30", (N + 127) / 128, (N + 127) / 128, 0.30, true, 128, 128},
              // the library's sparse calls on Hopper: keys in cluster order (no k_perm), random
              // cuts of ~74 keys a cluster as at Wan 720p (TMA pieces where tiles are not runs)
              {"random 0.15 keys in order", 256, 1024, 0.15, true, 0},
              {"random 0.30 keys in order", 256, 1024, 0.30, true, 0},
              // diagnostic: FlexAttention's workload with smaller key blocks, so that the
              // Hopper kernel loads its key tiles as TMA pieces (cost of a piece)
              {"blocks128x64 random 0.15", (N + 127) / 128, (N + 63) / 64, 0.15, true, 128, 64},
              {"blocks128x37 random 0.15", (N + 127) / 128, (N + 36) / 37, 0.15, true, 128, 37},
              {"blocks128x16 random 0.15", (N + 127) / 128, (N + 15) / 16, 0.15, true, 128, 16}};
    // BENCH_CASES=i,j,...: only those cases (default 0-4)
    const char *sel = getenv("BENCH_CASES");
    std::vector<int> which;
    if (sel) {
        for (const char *c = sel; *c;) {
            which.push_back(atoi(c));
            while (*c && *c != ',')
                c++;
            if (*c == ',') c++;
        }
    } else {
        which = {0, 1, 2, 3, 4, 10, 11, 12, 13, 14};
    }
    printf("\n%-28s %-22s %9s %8s %9s  %s\n", "plan", "variant", "ms", "density", "TFLOP/s",
           "sample rel_l2 (bf16-P f32 ref)");
    for (int ci : which) {
        if (ci < 0 || ci >= (int)(sizeof bc / sizeof bc[0])) continue;
        const BCase &c = bc[ci];
        Plan pl = make_plan(B * H, N, N, c.Cq, c.Ck, c.density, c.identity, false, false, 0, 777,
                            c.qrows, c.krows);
        DevPlan dp = upload(pl);
        const double dens = pl.density();
        for (int var : {9, 0, 2, -1}) {
            if (var == -1 && c.identity) continue;
            if (var == 9 && !g_sm90) continue;
            if ((var == 2 || var == -1) && !g_full) continue;
            if (var == 0 && getenv("BENCH_SM90_ONLY")) continue;
            svoo_cuda_attend_variant = var < 0 ? g_best : var;
            CK(cudaMemsetAsync(o, 0xFF, n * 2, s));
            svoo_cuda_attend_params p = make_params(pl, dp, B, H, D, 0, q, k, v, o, l, l, l, l);
            static float *lse_buf = nullptr; // BENCH_LSE=1: the kernels also write the row LSE
            if (getenv("BENCH_LSE")) {
                if (!lse_buf) CK(cudaMalloc(&lse_buf, (size_t)B * H * N * sizeof(float)));
                p.lse = lse_buf;
            }
            float ms;
            const char *vname;
            static const char *names[] = {"gather 128x64", "gather 128x32", "gather 64x32",
                                          "gather 64x64"};
            if (var >= 0) {
                vname = var == 9 ? "sm90 wgmma 128x128" : names[var];
                svoo_cuda_attend_kernel = var == 9 ? 2 : 1;
                ms = time_ms(s, reps, [&] {
                    svoo_status st = svoo_cuda_attend(&p, ws, ws_bytes, s);
                    if (st) {
                        printf("status %d %s\n", (int)st, svoo_cuda_attend_last_error());
                        exit(3);
                    }
                });
            } else {
                // explicit permute: Q, K, V -> contiguous permuted, attend with identity,
                // O <- inverse permute
                vname = g_best == 0 ? "permute+contig 128x64" : "permute+contig 64x32";
                svoo_cuda_attend_kernel = 1;
                svoo_cuda_attend_params pc = p;
                pc.q = qp, pc.k = kp, pc.v = vp, pc.o = op;
                pc.q_perm = pc.k_perm = nullptr;
                ms = time_ms(s, reps, [&] {
                    svoo_cuda_permute_rows(q, qp, l.sb, l.sh, l.sn, B, H, N, D, 0, dp.qperm, 0, s);
                    svoo_cuda_permute_rows(k, kp, l.sb, l.sh, l.sn, B, H, N, D, 0, dp.kperm, 0, s);
                    svoo_cuda_permute_rows(v, vp, l.sb, l.sh, l.sn, B, H, N, D, 0, dp.kperm, 0, s);
                    if (svoo_cuda_attend(&pc, ws, ws_bytes, s)) exit(3);
                    svoo_cuda_permute_rows(op, o, l.sb, l.sh, l.sn, B, H, N, D, 0, dp.qperm, 1, s);
                });
                float ms_perm = time_ms(s, reps, [&] {
                    svoo_cuda_permute_rows(q, qp, l.sb, l.sh, l.sn, B, H, N, D, 0, dp.qperm, 0, s);
                    svoo_cuda_permute_rows(k, kp, l.sb, l.sh, l.sn, B, H, N, D, 0, dp.kperm, 0, s);
                    svoo_cuda_permute_rows(v, vp, l.sb, l.sh, l.sn, B, H, N, D, 0, dp.kperm, 0, s);
                    svoo_cuda_permute_rows(op, o, l.sb, l.sh, l.sn, B, H, N, D, 0, dp.qperm, 1, s);
                });
                printf("%-28s %-22s %9.3f\n", c.name, "  (4 permutes alone)", ms_perm);
            }
            CK(cudaStreamSynchronize(s));
            svoo_cuda_attend_kernel = 0;
            double rel32 = 0;
            double rel = sample_check(pl, hq, hk, hv, o, H, D, 96, &rel32);
            printf("%-28s %-22s %9.3f %8.4f %9.1f  %.3e (%.3e)%s\n", c.name, vname, ms, dens,
                   dense_flops * dens / ms / 1e9, rel, rel32,
                   rel <= 2 * rel32 + 1e-6 ? "" : "  <-- FAIL");
            if (rel > 2 * rel32 + 1e-6) g_fail++;
        }
        dfree(dp);
    }
    printf("bench: %d sample-check failures\n", g_fail);
    return g_fail ? 1 : 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, nullptr, _IOLBF, 0); // lines survive a timeout kill
    std::string mode = argc > 1 ? argv[1] : "check";
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    printf("device %s (cc %d.%d), %d SMs, L2 %d MB\n", prop.name, prop.major, prop.minor,
           prop.multiProcessorCount, prop.l2CacheSize >> 20);
    g_sm90 = prop.major == 9 && prop.minor == 0;
    if (argc > 4 && std::string(argv[4]) == "full") g_full = true;
    int rc = 0;
    if (mode == "check" || mode == "all") rc |= do_check();
    if (argc > 3) g_best = atoi(argv[3]);
    if (mode == "bench" || mode == "all") rc |= do_bench(argc > 2 ? atoi(argv[2]) : 10);
    return rc;
}

/* cuda_common.h : small pieces shared by the CUDA planner sources (C++ only). */
#ifndef SVOO_CUDA_COMMON_H
#define SVOO_CUDA_COMMON_H

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

/* strided (B, H, N, D) view on the device: row n of head bh = b*H + h */
struct svoo_dview {
    const void *p;
    int64_t sb, sh, sn; /* strides in elements */
    int H;
};

template <typename T>
__device__ __forceinline__ const T *dv_row(const svoo_dview &v, int bh, int64_t n) {
    int b = bh / v.H, h = bh - (bh / v.H) * v.H;
    return (const T *)v.p + (int64_t)b * v.sb + (int64_t)h * v.sh + n * v.sn;
}

__device__ __forceinline__ float to_f(float x) {
    return x;
}
__device__ __forceinline__ float to_f(__half x) {
    return __half2float(x);
}
__device__ __forceinline__ float to_f(__nv_bfloat16 x) {
    return __bfloat162float(x);
}

/* butterfly reductions over a full warp: every lane gets the same value */
template <typename T> __device__ __forceinline__ T warp_sum(T x) {
    for (int o = 16; o; o >>= 1)
        x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}
__device__ __forceinline__ float warp_max(float x) {
    for (int o = 16; o; o >>= 1)
        x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}

/* exclusive prefix of each thread's `run` over a block of NTHR threads (this
 * thread: lane, warp), through warp shuffles and scan[NTHR / 32] in shared
 * memory; `bar` synchronises the block; *total = the block's sum */
template <int NTHR, class Bar>
__device__ __forceinline__ int block_exscan(int run, int lane, int warp, int *scan, Bar bar,
                                            int &total) {
    int incl = run;
#pragma unroll
    for (int d = 1; d < 32; d <<= 1) {
        int y = __shfl_up_sync(0xffffffffu, incl, d);
        if (lane >= d) incl += y;
    }
    if (lane == 31) scan[warp] = incl;
    bar();
    int wbase = 0;
    total = 0;
#pragma unroll
    for (int w = 0; w < NTHR / 32; w++) {
        int y = scan[w];
        wbase += w < warp ? y : 0;
        total += y;
    }
    return wbase + incl - run;
}

/* byte offset of (row, 16-byte chunk c) in a [D/64][rows][64] tile of 2-byte
 * elements with the 128-byte swizzle (the Hopper kernels' shared-memory layout) */
template <int ROWS> __host__ __device__ __forceinline__ uint32_t sw128(int row, int c) {
    return (uint32_t)((c >> 3) * ROWS * 128 + row * 128 + (((c & 7) ^ (row & 7)) << 4));
}

/* splitmix64, identical to svoo_rng_next (src/plan/common.c) */
__host__ __device__ __forceinline__ uint64_t svoo_cu_rng(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

#endif

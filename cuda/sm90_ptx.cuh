/* sm90_ptx.cuh : inline-PTX building blocks of the Hopper kernels (attention:
 * cuda/attend_sm90.cu and its kept versions in dev/cuda/; assignment:
 * cuda/assign_sm90.cu): wgmma wrappers, mbarriers, named barriers, proxy
 * fences, shared-memory descriptors with the 128-byte swizzle, and the
 * per-dtype MMA pair of the attention loop.
 * Include only inside the sm_90a device pass (SVOO_SM90_WGMMA). */
#ifndef SVOO_SM90_PTX_CUH
#define SVOO_SM90_PTX_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#include "cuda_common.h" /* sw128 */

/* ---- wgmma wrappers: D (f32, 64 x N over the warpgroup) += A (64 x 16) B (16 x N);
 * ss: A and B from shared-memory descriptors, K-major; rs: A from registers,
 * B MN-major (V) or K-major (K, the assignment's weights). One macro per form,
 * instantiated per input type (bf16, f16): the PTX differs only in the type
 * names. ---- */
#define SVOO_ACC8(d, i)                                                                            \
    "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]),    \
        "+f"(d[i + 6]), "+f"(d[i + 7])
#define SVOO_ACC32(d) SVOO_ACC8(d, 0), SVOO_ACC8(d, 8), SVOO_ACC8(d, 16), SVOO_ACC8(d, 24)
#define SVOO_ACC64(d)                                                                              \
    SVOO_ACC32(d), SVOO_ACC8(d, 32), SVOO_ACC8(d, 40), SVOO_ACC8(d, 48), SVOO_ACC8(d, 56)
// clang-format off
#define SVOO_REG8(a) "%" #a "0, %" #a "1, %" #a "2, %" #a "3, %" #a "4, %" #a "5, %" #a "6, %" #a "7"
/* operand lists {%0, ..., %31} and {%0, ..., %63} */
#define SVOO_D32 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, " SVOO_REG8(1) ", %18, %19, " \
                 SVOO_REG8(2) ", %28, %29, %30, %31}"
#define SVOO_D64 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, " SVOO_REG8(1) ", %18, %19, " \
                 SVOO_REG8(2) ", %28, %29, " SVOO_REG8(3) ", %38, %39, " SVOO_REG8(4) ", %48, %49, " \
                 SVOO_REG8(5) ", %58, %59, %60, %61, %62, %63}"
// clang-format on

#define SVOO_WGMMA_SS_N128(name, T)                                                                \
    __device__ __forceinline__ void name(float(&d)[64], uint64_t da, uint64_t db, int accum) {     \
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"                                  \
                     "wgmma.mma_async.sync.aligned.m64n128k16.f32." T "." T " " SVOO_D64           \
                     ", %64, %65, p, 1, 1, 0, 0;\n}\n"                                             \
                     : SVOO_ACC64(d)                                                               \
                     : "l"(da), "l"(db), "r"(accum));                                              \
    }
/* rs N = 128 with B either MN-major (TB "1", V) or K-major (TB "0", K with Q
 * in registers, the assignment's weights); accum = 0 starts D at zero */
#define SVOO_WGMMA_RS_N128(name, T, TB)                                                            \
    __device__ __forceinline__ void name(float(&d)[64], const uint32_t(&a)[4], uint64_t db,        \
                                         int accum = 1) {                                          \
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"                                  \
                     "wgmma.mma_async.sync.aligned.m64n128k16.f32." T "." T " " SVOO_D64           \
                     ", {%64, %65, %66, %67}, %68, p, 1, 1, " TB ";\n}\n"                          \
                     : SVOO_ACC64(d)                                                               \
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(accum));           \
    }
#define SVOO_WGMMA_RS_N64(name, T)                                                                 \
    __device__ __forceinline__ void name(float(&d)[32], const uint32_t(&a)[4], uint64_t db) {      \
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"                                  \
                     "wgmma.mma_async.sync.aligned.m64n64k16.f32." T "." T " " SVOO_D32            \
                     ", {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"                               \
                     : SVOO_ACC32(d)                                                               \
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));               \
    }
SVOO_WGMMA_SS_N128(wgmma_ss_n128_bf16, "bf16")
SVOO_WGMMA_RS_N128(wgmma_rs_n128_bf16, "bf16", "1")
SVOO_WGMMA_RS_N128(wgmma_rs_kn128_bf16, "bf16", "0")
SVOO_WGMMA_RS_N64(wgmma_rs_n64_bf16, "bf16")
SVOO_WGMMA_SS_N128(wgmma_ss_n128_f16, "f16")
SVOO_WGMMA_RS_N128(wgmma_rs_n128_f16, "f16", "1")
SVOO_WGMMA_RS_N128(wgmma_rs_kn128_f16, "f16", "0")
SVOO_WGMMA_RS_N64(wgmma_rs_n64_f16, "f16")

/* ---- sm_90 device helpers (assembled only where the kernel body is) ---- */
__device__ __forceinline__ void mbar_init(uint32_t bar, int count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count));
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
/* arrive once this thread's earlier cp.async copies have landed (the
 * barrier's count includes this arrival) */
__device__ __forceinline__ void mbar_arrive_cpasync(uint32_t bar) {
    asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
    uint32_t done;
    do {
        asm volatile("{\n.reg .pred p;\n"
                     "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
                     "selp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(done)
                     : "r"(bar), "r"(parity)
                     : "memory");
    } while (!done);
}
/* ---- TMA (cp.async.bulk.tensor): one box of a 3-d tensor map into shared
 * memory, counted on an mbarrier's transaction bytes ---- */
__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes)
                 : "memory");
}
/* adds bytes to the current phase's expected transactions, without arriving */
__device__ __forceinline__ void mbar_add_tx(uint32_t bar, uint32_t bytes) {
    asm volatile("mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(bytes)
                 : "memory");
}
/* bytes (a multiple of 16, 16-byte aligned ends) global -> shared as one bulk
 * copy, counted on the mbarrier's transaction bytes */
__device__ __forceinline__ void bulk_load(uint32_t dst, const void *src, uint32_t bytes,
                                          uint32_t bar) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes"
                 " [%0], [%1], %2, [%3];\n" ::"r"(dst),
                 "l"(src), "r"(bytes), "r"(bar)
                 : "memory");
}
__device__ __forceinline__ void tma_load3(uint32_t dst, const void *map, int c0, int c1, int c2,
                                          uint32_t bar) {
    asm volatile("cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
                 " [%0], [%1, {%2, %3, %4}], [%5];\n" ::"r"(dst),
                 "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(bar)
                 : "memory");
}
__device__ __forceinline__ void named_bar(int id, int n) {
    asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(n) : "memory");
}
__device__ __forceinline__ void named_arrive(int id, int n) {
    asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(n) : "memory");
}
/* 32-bit words of shared memory by their shared-window address (a register
 * where a generic pointer would take two) */
__device__ __forceinline__ void sts32(uint32_t addr, uint32_t v) {
    asm volatile("st.shared.u32 [%0], %1;\n" ::"r"(addr), "r"(v) : "memory");
}
__device__ __forceinline__ uint32_t lds32(uint32_t addr) {
    uint32_t v;
    asm volatile("ld.shared.u32 %0, [%1];\n" : "=r"(v) : "r"(addr) : "memory");
    return v;
}
__device__ __forceinline__ void sts128_zero(uint32_t addr) {
    asm volatile("st.shared.v4.u32 [%0], {%1, %1, %1, %1};\n" ::"r"(addr), "r"(0) : "memory");
}
__device__ __forceinline__ void atom_or_shared(uint32_t addr, uint32_t v) {
    asm volatile("red.shared.or.b32 [%0], %1;\n" ::"r"(addr), "r"(v) : "memory");
}
/* generic-proxy writes (cp.async, st.shared) -> later async-proxy reads (wgmma) */
__device__ __forceinline__ void fence_proxy_async() {
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
__device__ __forceinline__ void wgmma_fence() {
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void wgmma_commit() {
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int N> __device__ __forceinline__ void wgmma_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
/* keeps the compiler from moving register accesses across wgmma issue / wait */
template <int N> __device__ __forceinline__ void reg_fence(float (&r)[N]) {
#pragma unroll
    for (int i = 0; i < N; i++)
        asm volatile("" : "+f"(r[i])::"memory");
}
template <int N> __device__ __forceinline__ void reg_fence(uint32_t (&r)[N][4]) {
#pragma unroll
    for (int i = 0; i < N; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
            asm volatile("" : "+r"(r[i][j])::"memory");
}

/* shared-memory matrix descriptor, 128-byte swizzle. K-major tiles (Q, K):
 * 8-row groups 1024 bytes apart (SBO), LBO unused; MN-major (V): 64-column
 * blocks lbo bytes apart, 8-key groups 1024 bytes apart. */
__device__ __forceinline__ uint64_t sdesc(uint32_t addr, uint32_t lbo) {
    return (uint64_t)((addr & 0x3FFFF) >> 4) | ((uint64_t)(lbo >> 4) << 16) |
           ((uint64_t)(1024 >> 4) << 32) | (1ull << 62);
}
/* k-step kk (16 columns) of a K-major [D/64][rows][64] tile at base: its 64-column
 * blocks rows x 128 bytes apart, four k-steps of 32 bytes in each */
__device__ __forceinline__ uint64_t kmajor_desc(uint32_t base, int rows, int kk) {
    return sdesc(base + (kk >> 2) * rows * 128 + (kk & 3) * 32, 16);
}

template <typename T, int D> struct Mma;
template <int D> struct Mma<__nv_bfloat16, D> {
    static __device__ __forceinline__ void qk(float (&s)[64], uint64_t da, uint64_t db, int acc) {
        wgmma_ss_n128_bf16(s, da, db, acc);
    }
    static __device__ __forceinline__ void qk(float (&s)[64], const uint32_t (&a)[4], uint64_t db,
                                              int acc) {
        wgmma_rs_kn128_bf16(s, a, db, acc);
    }
    static __device__ __forceinline__ void pv(float (&o)[D / 2], const uint32_t (&a)[4],
                                              uint64_t db) {
        if constexpr (D == 128)
            wgmma_rs_n128_bf16(o, a, db);
        else
            wgmma_rs_n64_bf16(o, a, db);
    }
};
template <int D> struct Mma<__half, D> {
    static __device__ __forceinline__ void qk(float (&s)[64], uint64_t da, uint64_t db, int acc) {
        wgmma_ss_n128_f16(s, da, db, acc);
    }
    static __device__ __forceinline__ void qk(float (&s)[64], const uint32_t (&a)[4], uint64_t db,
                                              int acc) {
        wgmma_rs_kn128_f16(s, a, db, acc);
    }
    static __device__ __forceinline__ void pv(float (&o)[D / 2], const uint32_t (&a)[4],
                                              uint64_t db) {
        if constexpr (D == 128)
            wgmma_rs_n128_f16(o, a, db);
        else
            wgmma_rs_n64_f16(o, a, db);
    }
};
#endif

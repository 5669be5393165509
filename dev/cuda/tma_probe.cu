/* tma_probe.cu : does a 128-byte-swizzled TMA box land as wgmma expects when it starts at
 * a shared-memory row that is not a multiple of 8 (address 128-byte but not 1024-byte
 * aligned)? docs/CUDA_KERNEL.md ("Left", lead 3: boxes of fewer rows for the rest of a
 * run). For box heights R and destination rows r0 it loads rows s0.. of a 256 x 64 bf16
 * matrix whose 16-byte chunks hold their (row, chunk) and reports, per case, whether the
 * chunks sit where the stage's swizzle puts them (chunk c of stage row r at
 * ((c ^ (r & 7)) << 4), as sw128 in attend_sm90.cu) or where a swizzle from the box's first
 * row would (c ^ (i & 7)), or elsewhere; a launch error ends the probe (reported).
 * Build: nvcc -std=c++17 -O2 -gencode=arch=compute_90a,code=sm_90a dev/cuda/tma_probe.cu
 *        -o tma_probe   (no -lcuda: cuTensorMapEncodeTiled through the runtime) */
#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_runtime.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

__global__ void probe(const __grid_constant__ CUtensorMap map, int r0, int s0, int R, int *out) {
    extern __shared__ __align__(1024) unsigned char sm_raw[];
    unsigned char *sm =
        sm_raw + ((1024 - ((uint32_t)__cvta_generic_to_shared(sm_raw) & 1023)) & 1023);
    __shared__ __align__(8) uint64_t bar;
    const uint32_t b = (uint32_t)__cvta_generic_to_shared(&bar);
    const uint32_t dst = (uint32_t)__cvta_generic_to_shared(sm) + (uint32_t)r0 * 128;
    for (int i = threadIdx.x; i < 32 * 128 / 4; i += blockDim.x)
        reinterpret_cast<uint32_t *>(sm)[i] = 0xFFFFFFFFu;
    __syncthreads();
    if (threadIdx.x == 0) {
        asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;\n" ::"r"(b));
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
        asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(b),
                     "r"(R * 128)
                     : "memory");
        asm volatile(
            "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
            " [%0], [%1, {%2, %3}], [%4];\n" ::"r"(dst),
            "l"(reinterpret_cast<uint64_t>(&map)), "r"(0), "r"(s0), "r"(b)
            : "memory");
        asm volatile("{\n.reg .pred p;\nW: mbarrier.try_wait.parity.shared::cta.b64 p, [%0], 0;\n"
                     "@!p bra W;\n}\n" ::"r"(b)
                     : "memory");
        /* per loaded row: 1 = stage swizzle, 2 = box-relative swizzle, 0 = neither */
        int stage = 1, boxrel = 1;
        for (int i = 0; i < R; i++)
            for (int c = 0; c < 8; c++) {
                const int r = r0 + i;
                const uint16_t want = (uint16_t)((s0 + i) * 8 + c);
                const uint16_t a =
                    *reinterpret_cast<const uint16_t *>(sm + r * 128 + ((c ^ (r & 7)) << 4));
                const uint16_t x =
                    *reinterpret_cast<const uint16_t *>(sm + r * 128 + ((c ^ (i & 7)) << 4));
                stage &= a == want;
                boxrel &= x == want;
            }
        out[0] = stage, out[1] = boxrel;
    }
}

int main() {
    void *fp = nullptr;
    cudaDriverEntryPointQueryResult q;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fp, 12000, cudaEnableDefault,
                                         &q) ||
        q != cudaDriverEntryPointSuccess) {
        printf("no cuTensorMapEncodeTiled\n");
        return 1;
    }
    auto enc = reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(fp);
    const int ROWS = 256;
    uint16_t h[ROWS * 64];
    for (int r = 0; r < ROWS; r++)
        for (int c = 0; c < 64; c++)
            h[r * 64 + c] = (uint16_t)(r * 8 + c / 8); /* each 16-byte chunk: its (row, chunk) */
    void *g;
    int *out, ho[2];
    cudaMalloc(&g, sizeof h);
    cudaMalloc(&out, 8);
    cudaMemcpy(g, h, sizeof h, cudaMemcpyHostToDevice);
    cudaFuncSetAttribute(probe, cudaFuncAttributeMaxDynamicSharedMemorySize, 32 * 128 + 1024);
    const int Rs[] = {8, 16, 1, 2, 4, 3, 5, 13};
    for (int R : Rs)
        for (int r0 : {0, 8, 1, 3, 5, 7, 12}) {
            CUtensorMap m;
            const cuuint64_t dims[2] = {64, ROWS}, str[1] = {128};
            const cuuint32_t box[2] = {64, (cuuint32_t)R}, es[2] = {1, 1};
            CUresult cr = enc(&m, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, g, dims, str, box, es,
                              CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                              CU_TENSOR_MAP_L2_PROMOTION_NONE, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
            if (cr != CUDA_SUCCESS) {
                printf("R %2d: encode failed (%d)\n", R, (int)cr);
                break;
            }
            const int s0 = 37;
            probe<<<1, 128, 32 * 128 + 1024>>>(m, r0, s0, R, out);
            cudaError_t e = cudaDeviceSynchronize();
            if (e) {
                printf("R %2d r0 %2d: launch error %s (the probe ends)\n", R, r0,
                       cudaGetErrorString(e));
                return 0;
            }
            cudaMemcpy(ho, out, 8, cudaMemcpyDeviceToHost);
            printf("R %2d r0 %2d (dst %s): stage swizzle %s, box-relative %s\n", R, r0,
                   r0 % 8 ? "128-B aligned" : "1024-B aligned", ho[0] ? "yes" : "no",
                   ho[1] ? "yes" : "no");
        }
    return 0;
}

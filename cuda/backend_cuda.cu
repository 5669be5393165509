/* backend_cuda.cu : the CUDA backend table (placeholder until the planners land). */
#include <cuda_runtime.h>

extern "C" {
#include "core/ctx.h"
}

static svoo_status cuda_init(svoo_ctx *ctx) {
    return svoo_ctx_err(ctx, SVOO_ERR_UNSUPPORTED, "CUDA backend: not implemented yet");
}
static void cuda_release(svoo_ctx *) {}
static svoo_status cuda_attention(svoo_ctx *ctx, const svoo_call *, const svoo_tensor *,
                                  const svoo_tensor *, const svoo_tensor *, svoo_tensor *,
                                  svoo_stats *) {
    return svoo_ctx_err(ctx, SVOO_ERR_UNSUPPORTED, "CUDA backend: not implemented yet");
}
static const svoo_backend k_backend = {"cuda", cuda_init, cuda_release, cuda_attention};

extern "C" const svoo_backend *svoo_backend_cuda(void) { return &k_backend; }
extern "C" int svoo_has_cuda(void) { return 1; }
extern "C" svoo_status svoo_workspace_size(const svoo_config *cfg, int64_t, int64_t, size_t *bytes) {
    if (!cfg || !bytes) return svoo_err(SVOO_ERR_NULL_POINTER, "cfg or bytes is NULL");
    *bytes = 0;
    return SVOO_OK;
}

/* cuda_stub.c : the CUDA entry points of a build without CUDA. */
#include "ctx.h"

const svoo_backend *svoo_backend_cuda(void) { return NULL; }

int svoo_has_cuda(void) { return 0; }

svoo_status svoo_workspace_size(const svoo_config *cfg, int64_t B, int64_t N, size_t *bytes) {
    (void)B;
    (void)N;
    if (!cfg || !bytes) return svoo_err(SVOO_ERR_NULL_POINTER, "cfg or bytes is NULL");
    *bytes = 0;
    if (cfg->device == SVOO_DEVICE_CUDA)
        return svoo_err(SVOO_ERR_UNSUPPORTED, "config.device: CUDA (library built without CUDA)");
    return SVOO_OK;
}

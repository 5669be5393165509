/* status.c : status names, error messages (per thread and per context). */
#include "ctx.h"

#include <stdio.h>

static const char *const k_names[SVOO_STATUS_COUNT] = {
    "SVOO_OK",
    "SVOO_ERR_NULL_POINTER",
    "SVOO_ERR_INVALID_ARGUMENT",
    "SVOO_ERR_SHAPE_MISMATCH",
    "SVOO_ERR_DTYPE_MISMATCH",
    "SVOO_ERR_UNSUPPORTED_HEAD_DIM",
    "SVOO_ERR_OVERLAPPING_STRIDES",
    "SVOO_ERR_OUT_OF_MEMORY",
    "SVOO_ERR_IO",
    "SVOO_ERR_FILE_TRUNCATED",
    "SVOO_ERR_FILE_CORRUPT",
    "SVOO_ERR_UNKNOWN_DTYPE",
    "SVOO_ERR_DUPLICATE_NAME",
    "SVOO_ERR_NOT_FOUND",
    "SVOO_ERR_NONFINITE_INPUT",
    "SVOO_ERR_PROFILE_FORMAT",
    "SVOO_ERR_PROFILE_MISMATCH",
    "SVOO_ERR_OUT_OF_RANGE",
    "SVOO_ERR_UNSUPPORTED",
    "SVOO_ERR_WRONG_DEVICE",
    "SVOO_ERR_CUDA",
    "SVOO_ERR_WORKSPACE_TOO_SMALL",
    "SVOO_ERR_MISALIGNED",
    "SVOO_ERR_GEOMETRY",
};

static const char *const k_strings[SVOO_STATUS_COUNT] = {
    "no error",
    "a required pointer is NULL",
    "an argument is out of its valid range",
    "tensor shapes do not match",
    "tensor dtypes do not match",
    "unsupported head dimension",
    "tensor strides overlap",
    "out of memory",
    "input/output error",
    "file is truncated",
    "file is corrupt",
    "unknown dtype",
    "duplicate name",
    "not found",
    "NaN or Inf in the input",
    "malformed profile",
    "profile does not match the model",
    "index out of range",
    "not supported by this build",
    "tensor on the wrong device",
    "CUDA error",
    "workspace too small",
    "misaligned pointer",
    "geometry does not match the sequence length",
};

const char *svoo_status_name(svoo_status s) {
    if ((unsigned)s >= SVOO_STATUS_COUNT) return "SVOO_ERR_UNKNOWN_STATUS";
    return k_names[s];
}

const char *svoo_status_string(svoo_status s) {
    if ((unsigned)s >= SVOO_STATUS_COUNT) return "unknown status";
    return k_strings[s];
}

static _Thread_local char t_errmsg[SVOO_ERRMSG_MAX];

const char *svoo_err_thread(void) { return t_errmsg; }

svoo_status svoo_err(svoo_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t_errmsg, sizeof t_errmsg, fmt, ap);
    va_end(ap);
    return s;
}

svoo_status svoo_ctx_err(svoo_ctx *ctx, svoo_status s, const char *fmt, ...) {
    char *dst = ctx ? ctx->errmsg : t_errmsg;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, SVOO_ERRMSG_MAX, fmt, ap);
    va_end(ap);
    return s;
}

svoo_status svoo_ctx_take_err(svoo_ctx *ctx, svoo_status s) {
    if (ctx) snprintf(ctx->errmsg, SVOO_ERRMSG_MAX, "%s", t_errmsg);
    return s;
}

const char *svoo_last_error(const svoo_ctx *ctx) { return ctx ? ctx->errmsg : t_errmsg; }

unsigned svoo_version_number(void) { return SVOO_VERSION_NUMBER; }

#define SVOO_STR2(x) #x
#define SVOO_STR(x) SVOO_STR2(x)
const char *svoo_version_string(void) {
    return SVOO_STR(SVOO_VERSION_MAJOR) "." SVOO_STR(SVOO_VERSION_MINOR) "." SVOO_STR(
        SVOO_VERSION_PATCH);
}

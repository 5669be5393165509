"""ctypes binding of libsvoo (include/svoo.h).

Locates the shared library, mirrors the public structs exactly (checked at
import against the `size` fields the C init functions set), declares every
function's signature and maps svoo_status codes to Python exceptions.
"""
import ctypes
import ctypes.util
import os
import sys

# --------------------------------------------------------------------------
# Locating the library
# --------------------------------------------------------------------------
_LIBNAMES = ("libsvoo.so", "libsvoo.so.0", "libsvoo.dylib", "svoo.dll")
_HERE = os.path.dirname(os.path.abspath(__file__))


def _candidates():
    """Yield (description, path-or-name) in search order."""
    env = os.environ.get("SVOO_LIBRARY_PATH")
    if env:
        if os.path.isdir(env):
            for n in _LIBNAMES:
                yield "SVOO_LIBRARY_PATH", os.path.join(env, n)
        else:
            yield "SVOO_LIBRARY_PATH", env
        return  # an explicit path is authoritative: never fall back silently
    for n in _LIBNAMES:
        yield "beside the package", os.path.join(_HERE, n)
    # python/svoo/ -> repo root build dir
    root = os.path.dirname(os.path.dirname(_HERE))
    for n in _LIBNAMES:
        yield "repository build dir", os.path.join(root, "build", n)
    name = ctypes.util.find_library("svoo")
    yield "system path (ctypes.util.find_library('svoo'))", name


def _load():
    tried = []
    for where, path in _candidates():
        if path is None:
            tried.append("%s: not found" % where)
            continue
        if os.path.isabs(path) and not os.path.exists(path):
            tried.append("%s: %s (no such file)" % (where, path))
            continue
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            tried.append("%s: %s (%s)" % (where, path, e))
    raise ImportError(
        "svoo: cannot load the shared library libsvoo. Looked in:\n  "
        + "\n  ".join(tried)
        + "\nBuild it (cmake -S . -B build && cmake --build build) and/or set "
        "SVOO_LIBRARY_PATH to the library file or its directory."
    )


lib, library_path = _load()

# --------------------------------------------------------------------------
# Enums
# --------------------------------------------------------------------------
SVOO_OK = 0
STATUS_NAMES = (
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
)
for _i, _n in enumerate(STATUS_NAMES):
    globals()[_n] = _i

F32, F16, BF16 = 0, 1, 2
DEVICE_CPU, DEVICE_CUDA = 0, 1
METHOD_DENSE, METHOD_SVOO, METHOD_SVG2, METHOD_SVG = 0, 1, 2, 3
METHODS = {"dense": 0, "svoo": 1, "svg2": 2, "svg": 3}
MERGE_MAX, MERGE_MEAN = 0, 1
MERGES = {"max": 0, "mean": 1}

c_status = ctypes.c_int
c_enum = ctypes.c_int
c_i64 = ctypes.c_int64
c_i64_p = ctypes.POINTER(ctypes.c_int64)
c_double_p = ctypes.POINTER(ctypes.c_double)
c_int_p = ctypes.POINTER(ctypes.c_int)
vp = ctypes.c_void_p

# --------------------------------------------------------------------------
# Structs (mirror include/svoo.h field by field)
# --------------------------------------------------------------------------


class svoo_tensor(ctypes.Structure):
    _fields_ = [
        ("data", vp),
        ("dtype", c_enum),
        ("device", c_enum),
        ("device_index", ctypes.c_int),
        ("shape", ctypes.c_int64 * 4),
        ("stride", ctypes.c_int64 * 4),
    ]


class svoo_profile_stats(ctypes.Structure):
    _fields_ = [
        ("steps", ctypes.c_int),
        ("layers", ctypes.c_int),
        ("heads", ctypes.c_int),
        ("count", ctypes.c_int64),
        ("mean", ctypes.c_double),
        ("std", ctypes.c_double),
        ("min", ctypes.c_double),
        ("max", ctypes.c_double),
        ("median", ctypes.c_double),
        ("p10", ctypes.c_double),
        ("p90", ctypes.c_double),
    ]


LOG_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_char_p)


class svoo_config(ctypes.Structure):
    _fields_ = [
        ("size", ctypes.c_size_t),
        ("method", c_enum),
        ("device", c_enum),
        ("device_index", ctypes.c_int),
        ("cuda_stream", vp),
        ("num_threads", ctypes.c_int),
        # model
        ("head_dim", ctypes.c_int),
        ("num_heads", ctypes.c_int),
        ("num_layers", ctypes.c_int),
        ("num_steps", ctypes.c_int),
        # geometry
        ("frames", ctypes.c_int),
        ("height", ctypes.c_int),
        ("width", ctypes.c_int),
        ("text_tokens", ctypes.c_int),
        ("text_first", ctypes.c_int),
        # schedule
        ("warmup_step_frac", ctypes.c_double),
        ("warmup_layer_frac", ctypes.c_double),
        ("reuse_start_step", ctypes.c_int),
        ("reuse_every", ctypes.c_int),
        # clustering
        ("q_clusters", ctypes.c_int),
        ("k_clusters", ctypes.c_int),
        ("iters", ctypes.c_int),
        ("kmeans_iters_first", ctypes.c_int),
        ("kmeans_iters", ctypes.c_int),
        ("top_p", ctypes.c_double),
        ("floor_ratio", ctypes.c_double),
        ("floor_min", ctypes.c_double),
        ("floor_max", ctypes.c_double),
        ("profile", vp),
        ("ear", ctypes.c_int),
        ("seed", ctypes.c_uint64),
        # SVG
        ("svg_sparsity", ctypes.c_double),
        ("svg_sample_rows", ctypes.c_int),
        ("svg_block", ctypes.c_int),
        # diagnostics
        ("recall_rows", ctypes.c_int),
        ("check_finite", ctypes.c_int),
        ("log_fn", LOG_FN),
        ("log_user", vp),
        # CUDA workspace sizing
        ("max_batch", ctypes.c_int),
        ("max_tokens", ctypes.c_int64),
        ("cuda_kv_order", ctypes.c_int),
    ]


class svoo_stats(ctypes.Structure):
    _fields_ = [
        ("size", ctypes.c_size_t),
        ("density", ctypes.c_double),
        ("dense", ctypes.c_int),
        ("replanned", ctypes.c_int),
        ("ms_plan", ctypes.c_double),
        ("ms_permute", ctypes.c_double),
        ("ms_attend", ctypes.c_double),
        ("ms_total", ctypes.c_double),
        ("recall", ctypes.c_double),
        ("spatial_heads", ctypes.c_int),
        ("temporal_heads", ctypes.c_int),
    ]


class svoo_compare_result(ctypes.Structure):
    _fields_ = [
        ("rel_l2", ctypes.c_double),
        ("cosine", ctypes.c_double),
        ("max_abs", ctypes.c_double),
    ]


class svoo_stability(ctypes.Structure):
    _fields_ = [
        ("runs", ctypes.c_int),
        ("mean", ctypes.c_double),
        ("std", ctypes.c_double),
        ("min", ctypes.c_double),
        ("max", ctypes.c_double),
        ("mean_spread", ctypes.c_double),
        ("mean_cv", ctypes.c_double),
    ]


SVOO_MAX_RANK = 8


class svoo_array(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("dtype", c_enum),
        ("rank", ctypes.c_int),
        ("dims", ctypes.c_int64 * SVOO_MAX_RANK),
        ("data", vp),
        ("nbytes", ctypes.c_size_t),
    ]


# Config fields a user may set as SparseAttention knobs (the rest are set by
# the wrapper from the tensors, the profile and the logger).
CONFIG_KNOBS = tuple(
    n
    for n, _ in svoo_config._fields_
    if n
    not in (
        "size",
        "method",
        "device",
        "device_index",
        "cuda_stream",
        "head_dim",
        "num_heads",
        "profile",
        "log_fn",
        "log_user",
    )
)

# --------------------------------------------------------------------------
# Function signatures. A symbol missing from an older/partial library is
# recorded (MISSING) instead of failing the import; calling it raises.
# --------------------------------------------------------------------------
MISSING = set()

_P = ctypes.POINTER


def _sig(name, restype, *argtypes):
    try:
        f = getattr(lib, name)
    except AttributeError:
        MISSING.add(name)

        def f(*a, _name=name):
            raise NotImplementedError(
                "svoo: %s is not exported by %s (library older than the binding?)"
                % (_name, library_path)
            )

        globals()[name] = f
        return
    f.restype = restype
    f.argtypes = list(argtypes)
    globals()[name] = f


_sig("svoo_version_number", ctypes.c_uint)
_sig("svoo_version_string", ctypes.c_char_p)
_sig("svoo_has_cuda", ctypes.c_int)
_sig("svoo_status_name", ctypes.c_char_p, c_status)
_sig("svoo_status_string", ctypes.c_char_p, c_status)
_sig("svoo_last_error", ctypes.c_char_p, vp)
_sig("svoo_tensor_bhnd", svoo_tensor, vp, c_enum, c_i64, c_i64, c_i64, c_i64)
_sig("svoo_tensor_bnhd", svoo_tensor, vp, c_enum, c_i64, c_i64, c_i64, c_i64)
_sig("svoo_dtype_size", ctypes.c_size_t, c_enum)
_sig("svoo_dtype_name", ctypes.c_char_p, c_enum)
# profiles
_sig("svoo_profile_load", c_status, ctypes.c_char_p, _P(vp))
_sig("svoo_profile_create", c_status, ctypes.c_int, ctypes.c_int, ctypes.c_int, _P(vp))
_sig("svoo_profile_save", c_status, vp, ctypes.c_char_p)
_sig("svoo_profile_free", None, vp)
_sig("svoo_profile_dims", None, vp, c_int_p, c_int_p, c_int_p)
_sig("svoo_profile_get", c_status, vp, ctypes.c_int, ctypes.c_int, ctypes.c_int, c_double_p)
_sig("svoo_profile_set", c_status, vp, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_double)
_sig("svoo_profile_merge", c_status, vp, vp, c_enum)
_sig("svoo_profile_stats_get", c_status, vp, _P(svoo_profile_stats))
# context
_sig("svoo_method_name", ctypes.c_char_p, c_enum)
_sig("svoo_method_parse", c_status, ctypes.c_char_p, _P(c_enum))
_sig("svoo_config_init", None, _P(svoo_config), c_enum)
_sig("svoo_ctx_create", c_status, _P(svoo_config), _P(vp))
_sig("svoo_ctx_free", None, vp)
_sig("svoo_ctx_reset", None, vp)
_sig("svoo_ctx_config", _P(svoo_config), vp)
_sig("svoo_stats_init", None, _P(svoo_stats))
_sig(
    "svoo_attention",
    c_status,
    vp,
    ctypes.c_int,
    ctypes.c_int,
    _P(svoo_tensor),
    _P(svoo_tensor),
    _P(svoo_tensor),
    _P(svoo_tensor),
    _P(svoo_stats),
)
_sig("svoo_workspace_size", c_status, _P(svoo_config), c_i64, c_i64, _P(ctypes.c_size_t))
# metrics, density, profiler
_sig("svoo_compare", c_status, _P(svoo_tensor), _P(svoo_tensor), _P(svoo_compare_result))
_sig(
    "svoo_density",
    c_status,
    _P(svoo_tensor),
    _P(svoo_tensor),
    ctypes.c_double,
    c_i64,
    ctypes.c_int,
    c_double_p,
)
_sig(
    "svoo_profiler_create",
    c_status,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_double,
    c_i64,
    _P(vp),
)
_sig("svoo_profiler_free", None, vp)
_sig("svoo_profiler_begin_run", c_status, vp)
_sig("svoo_profiler_observe", c_status, vp, ctypes.c_int, ctypes.c_int, _P(svoo_tensor), _P(svoo_tensor))
_sig("svoo_profiler_runs", ctypes.c_int, vp)
_sig("svoo_profiler_result", c_status, vp, c_enum, _P(vp))
_sig("svoo_profiler_stability", c_status, vp, ctypes.c_int, _P(svoo_stability))
# tensor files
_sig("svoo_tensorfile_open", c_status, ctypes.c_char_p, _P(vp))
_sig("svoo_tensorfile_free", None, vp)
_sig("svoo_tensorfile_count", ctypes.c_int, vp)
_sig("svoo_tensorfile_get", c_status, vp, ctypes.c_int, _P(svoo_array))
_sig("svoo_tensorfile_find", c_status, vp, ctypes.c_char_p, _P(svoo_array))
_sig("svoo_safetensors_save", c_status, ctypes.c_char_p, _P(svoo_array), ctypes.c_int)
_sig("svoo_npy_save", c_status, ctypes.c_char_p, _P(svoo_array))
_sig("svoo_array_view", c_status, _P(svoo_array), ctypes.c_int, _P(svoo_tensor))

# --------------------------------------------------------------------------
# ABI check: the C init functions write sizeof(struct) into `size`.
# --------------------------------------------------------------------------


def _abi_check():
    cfg = svoo_config()
    svoo_config_init(ctypes.byref(cfg), METHOD_SVOO)  # noqa: F821
    if cfg.size != ctypes.sizeof(svoo_config):
        raise ImportError(
            "svoo: ABI mismatch: the library's svoo_config is %d bytes, the binding's %d "
            "(%s is of another version than this package)"
            % (cfg.size, ctypes.sizeof(svoo_config), library_path)
        )
    st = svoo_stats()
    svoo_stats_init(ctypes.byref(st))  # noqa: F821
    if st.size != ctypes.sizeof(svoo_stats):
        raise ImportError(
            "svoo: ABI mismatch: the library's svoo_stats is %d bytes, the binding's %d (%s)"
            % (st.size, ctypes.sizeof(svoo_stats), library_path)
        )
    # defaults the binding relies on
    if abs(cfg.top_p - 0.9) > 1e-12 or cfg.svg_block != 128:
        raise ImportError(
            "svoo: ABI mismatch: svoo_config field layout differs from the binding (%s)"
            % library_path
        )


_abi_check()

# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


class SvooError(Exception):
    """An svoo_status other than SVOO_OK. `.status` (int), `.name`
    ("SVOO_ERR_..."), `.message` (the library's svoo_last_error text)."""

    def __init__(self, status, message=""):
        self.status = int(status)
        self.name = status_name(self.status)
        self.message = message
        desc = svoo_status_string(self.status).decode()  # noqa: F821
        text = "%s: %s" % (self.name, message or desc)
        super().__init__(text)


class SvooValueError(SvooError, ValueError):
    """Argument errors: a value out of range, shapes, strides, geometry."""


class SvooTypeError(SvooError, TypeError):
    """A dtype the call cannot take or that differs between q/k/v/out."""


class SvooMemoryError(SvooError, MemoryError):
    """SVOO_ERR_OUT_OF_MEMORY."""


class SvooIOError(SvooError, OSError):
    """File errors: open/read/write failed, truncated or corrupt files."""


class SvooNotFoundError(SvooError, LookupError):
    """SVOO_ERR_NOT_FOUND."""


class SvooUnsupportedError(SvooError, NotImplementedError):
    """SVOO_ERR_UNSUPPORTED (e.g. CUDA in a CPU-only build)."""


_VALUE = {
    "SVOO_ERR_NULL_POINTER",
    "SVOO_ERR_INVALID_ARGUMENT",
    "SVOO_ERR_SHAPE_MISMATCH",
    "SVOO_ERR_UNSUPPORTED_HEAD_DIM",
    "SVOO_ERR_OVERLAPPING_STRIDES",
    "SVOO_ERR_NONFINITE_INPUT",
    "SVOO_ERR_PROFILE_FORMAT",
    "SVOO_ERR_PROFILE_MISMATCH",
    "SVOO_ERR_OUT_OF_RANGE",
    "SVOO_ERR_WRONG_DEVICE",
    "SVOO_ERR_WORKSPACE_TOO_SMALL",
    "SVOO_ERR_MISALIGNED",
    "SVOO_ERR_GEOMETRY",
    "SVOO_ERR_DUPLICATE_NAME",
}
_TYPE = {"SVOO_ERR_DTYPE_MISMATCH", "SVOO_ERR_UNKNOWN_DTYPE"}
_IO = {"SVOO_ERR_IO", "SVOO_ERR_FILE_TRUNCATED", "SVOO_ERR_FILE_CORRUPT"}


def status_name(status):
    return svoo_status_name(int(status)).decode()  # noqa: F821


def error_class(status):
    name = status_name(status)
    if name in _VALUE:
        return SvooValueError
    if name in _TYPE:
        return SvooTypeError
    if name in _IO:
        return SvooIOError
    if name == "SVOO_ERR_OUT_OF_MEMORY":
        return SvooMemoryError
    if name == "SVOO_ERR_NOT_FOUND":
        return SvooNotFoundError
    if name == "SVOO_ERR_UNSUPPORTED":
        return SvooUnsupportedError
    return SvooError


def last_error(ctx=None):
    m = svoo_last_error(ctx)  # noqa: F821
    return m.decode(errors="replace") if m else ""


def make_error(status, ctx=None, prefix=None):
    msg = last_error(ctx)
    if ctx is not None and not msg:
        msg = last_error(None)
    if prefix:
        msg = "%s: %s" % (prefix, msg) if msg else prefix
    return error_class(status)(status, msg)


def check(status, ctx=None, prefix=None):
    """Raise the exception of a non-zero svoo_status."""
    if status != SVOO_OK:
        raise make_error(status, ctx, prefix)


_C_INT_BITS = 8 * ctypes.sizeof(ctypes.c_int)
C_INT_MIN, C_INT_MAX = -(1 << (_C_INT_BITS - 1)), (1 << (_C_INT_BITS - 1)) - 1


def int_arg(value, name):
    """int(value) for a C int parameter. ctypes wraps an int that does not
    fit silently (2**32 would reach the library as 0): raise instead."""
    v = int(value)
    if not C_INT_MIN <= v <= C_INT_MAX:
        raise SvooValueError(
            SVOO_ERR_OUT_OF_RANGE, "%s = %d does not fit in a C int" % (name, v)  # noqa: F821
        )
    return v


def version_string():
    return svoo_version_string().decode()  # noqa: F821


def has_cuda():
    return bool(svoo_has_cuda())  # noqa: F821

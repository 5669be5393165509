"""numpy / torch arrays -> svoo_tensor views, without copies.

A view needs the logical shape [B, H, N, D], the strides in elements and a
stride of 1 for D; anything else the library rejects with a message, which is
raised as SvooValueError / SvooTypeError.
"""
import sys

import numpy as np

from . import _lib as L

_NP_DTYPES = {np.dtype(np.float32): L.F32, np.dtype(np.float16): L.F16}
_DTYPE_ALIASES = {
    "bf16": L.BF16,
    "bfloat16": L.BF16,
    "f16": L.F16,
    "float16": L.F16,
    "half": L.F16,
    "f32": L.F32,
    "float32": L.F32,
    "float": L.F32,
}


def _value_error(msg, status=None):
    return L.SvooValueError(L.SVOO_ERR_INVALID_ARGUMENT if status is None else status, msg)


def _type_error(msg):
    return L.SvooTypeError(L.SVOO_ERR_UNKNOWN_DTYPE, msg)


def torch_module():
    """torch if it is already imported (never imports it: numpy-only users
    pay nothing)."""
    return sys.modules.get("torch")


def is_torch(x):
    t = torch_module()
    return t is not None and isinstance(x, t.Tensor)


def _parse_dtype(dtype):
    if dtype is None:
        return None
    if isinstance(dtype, str):
        key = dtype.lower()
        if key not in _DTYPE_ALIASES:
            raise _type_error("dtype=%r: expected 'f32', 'f16' or 'bf16'" % dtype)
        return _DTYPE_ALIASES[key]
    raise _type_error("dtype=%r: expected a string ('f32', 'f16' or 'bf16')" % (dtype,))


class View:
    """An svoo_tensor plus what it came from (kept alive while in use)."""

    __slots__ = ("t", "obj", "kind", "device", "device_index", "dtype")

    def __init__(self, t, obj, kind, device, device_index, dtype):
        self.t = t
        self.obj = obj
        self.kind = kind  # "numpy" or "torch"
        self.device = device  # "cpu" or "cuda"
        self.device_index = device_index
        self.dtype = dtype  # svoo dtype code

    @property
    def shape(self):
        return tuple(self.t.shape)

    def ref(self):
        return L.ctypes.byref(self.t)


def view(x, name="q", dtype=None, writable=False, rank=4):
    """svoo view of a numpy array or torch tensor of rank 4 ([B, H, N, D])."""
    want = _parse_dtype(dtype)
    if isinstance(x, np.ndarray):
        return _numpy_view(x, name, want, writable, rank)
    if is_torch(x):
        return _torch_view(x, name, want, rank)
    raise TypeError(
        "%s: expected a numpy.ndarray or a torch.Tensor, got %s" % (name, type(x).__name__)
    )


def _fill(t, data, dtype, device, index, shape, strides):
    t.data = data
    t.dtype = dtype
    t.device = device
    t.device_index = index
    for i in range(4):
        t.shape[i] = int(shape[i])
        t.stride[i] = int(strides[i])


def _numpy_view(x, name, want, writable, rank):
    if x.ndim != rank:
        raise _value_error(
            "%s: rank %d, expected %d ([B, H, N, D])" % (name, x.ndim, rank)
        )
    if not x.dtype.isnative:
        raise _type_error("%s: byte order of dtype %s is not native" % (name, x.dtype))
    if x.dtype == np.uint16:
        if want != L.BF16:
            raise _type_error(
                "%s: uint16 array: pass dtype='bf16' to read it as bfloat16 bits" % name
            )
        dt = L.BF16
    elif x.dtype in _NP_DTYPES:
        dt = _NP_DTYPES[x.dtype]
        if want is not None and want != dt:
            raise _type_error(
                "%s: array dtype %s but dtype=%r requested (bf16 needs a uint16 array)"
                % (name, x.dtype, L.svoo_dtype_name(want).decode())
            )
    else:
        raise _type_error(
            "%s: numpy dtype %s is not supported (float32, float16, or uint16 with "
            "dtype='bf16')" % (name, x.dtype)
        )
    if writable and not x.flags.writeable:
        raise _value_error("%s: array is read-only" % name)
    item = x.itemsize
    strides = []
    for i, s in enumerate(x.strides):
        if s % item:
            raise _value_error(
                "%s: stride %d bytes of dim %d is not a multiple of the item size %d"
                % (name, s, i, item)
            )
        strides.append(s // item)
    t = L.svoo_tensor()
    _fill(t, x.ctypes.data, dt, L.DEVICE_CPU, 0, x.shape, strides)
    return View(t, x, "numpy", "cpu", 0, dt)


def _torch_dtype_code(torch, dt):
    if dt == torch.float32:
        return L.F32
    if dt == torch.float16:
        return L.F16
    if dt == torch.bfloat16:
        return L.BF16
    return None


def _torch_view(x, name, want, rank):
    torch = torch_module()
    if x.dim() != rank:
        raise _value_error(
            "%s: rank %d, expected %d ([B, H, N, D])" % (name, x.dim(), rank)
        )
    dt = _torch_dtype_code(torch, x.dtype)
    if dt is None:
        raise _type_error(
            "%s: torch dtype %s is not supported (float32, float16, bfloat16)"
            % (name, x.dtype)
        )
    if want is not None and want != dt:
        raise _type_error("%s: tensor dtype %s differs from dtype=%r" % (name, x.dtype, want))
    if x.layout != torch.strided:
        raise _value_error("%s: layout %s is not supported (strided only)" % (name, x.layout))
    if x.device.type == "cpu":
        dev, idx = L.DEVICE_CPU, 0
    elif x.device.type == "cuda":
        dev, idx = L.DEVICE_CUDA, x.device.index if x.device.index is not None else 0
    else:
        raise L.SvooValueError(
            L.SVOO_ERR_WRONG_DEVICE,
            "%s: device %s is not supported (cpu, cuda)" % (name, x.device),
        )
    if getattr(x, "is_conj", None) is not None and x.is_conj():
        raise _value_error("%s: conjugated views are not supported" % name)
    t = L.svoo_tensor()
    _fill(t, x.data_ptr() or None, dt, dev, idx, x.shape, x.stride())
    return View(t, x, "torch", x.device.type, idx, dt)


def same_place(views, names):
    """q/k/v(/out) must share the framework and the device."""
    v0 = views[0]
    for v, n in zip(views[1:], names[1:]):
        if v.kind != v0.kind:
            raise TypeError(
                "%s is a %s array but %s is a %s array: do not mix numpy and torch"
                % (n, v.kind, names[0], v0.kind)
            )
        if (v.device, v.device_index) != (v0.device, v0.device_index):
            raise L.SvooValueError(
                L.SVOO_ERR_WRONG_DEVICE,
                "%s is on %s:%d but %s is on %s:%d: all tensors must be on one device"
                % (n, v.device, v.device_index, names[0], v0.device, v0.device_index),
            )


def empty_like(v):
    """A new output array with q's layout (a transposed [B, N, H, D] q gets a
    [B, N, H, D] out, so the caller's transpose back is free)."""
    x = v.obj
    if v.kind == "numpy":
        return np.empty_like(x)
    torch = torch_module()
    return torch.empty_like(x)


def cpu_view(x, name="q", dtype=None):
    """View for CPU-only calls (density, compare, the profiler): a CUDA tensor
    is copied to the host first (its layout kept); CPU arrays are used in place."""
    if is_torch(x) and x.device.type != "cpu":
        x = x.detach().to("cpu")
    return view(x, name, dtype)

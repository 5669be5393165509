"""The torch custom op `torch.ops.svoo.attention`.

    torch.ops.svoo.attention(q, k, v, handle: int, step: int, layer: int) -> Tensor

`handle` is the registry id of an svoo.SparseAttention (svoo.torch_ops.register);
`step = -1` reads the object's `current_step` (set by the StepTracker) at run
time, so a compiled graph (torch.compile without CUDA graphs) does not bake the
step in. The fake (meta) implementation returns torch.empty_like(q), so
torch.compile (fullgraph=True) traces through the op and CUDA graphs capture it
as one opaque call; but a captured call keeps the decisions of the step it was
captured at (dense or sparse, re-plan or reuse, each head's profiled floor), as
in the C API (docs/CUDA.md), so capture one graph per step (or per phase of the
schedule) and replay it at that step only.

Imported only when torch is used: `import svoo` never imports torch.
"""
import itertools
import threading
import weakref

import torch

_registry = weakref.WeakValueDictionary()
_ids = itertools.count(1)
_lock = threading.Lock()
_registered = False
_op = None


def register(sparse_attention):
    """Registry id of a SparseAttention (the same id on later calls)."""
    sa = sparse_attention
    if sa._registry_id is None:
        with _lock:
            if sa._registry_id is None:
                i = next(_ids)
                _registry[i] = sa
                sa._registry_id = i
    return sa._registry_id


def lookup(handle):
    sa = _registry.get(int(handle))
    if sa is None:
        raise RuntimeError(
            "svoo::attention: no SparseAttention with handle %d (it was garbage-collected?)" % handle
        )
    return sa


def _impl(q, k, v, handle, step, layer):
    sa = lookup(handle)
    if step < 0:
        step = sa.current_step
        if step is None:
            raise RuntimeError(
                "svoo::attention: step = -1 but no StepTracker has set the step of handle %d" % handle
            )
    return sa(q, k, v, step, layer)


def _fake(q, k, v, handle, step, layer):
    return torch.empty_like(q)


_SCHEMA = "attention(Tensor q, Tensor k, Tensor v, int handle, int step, int layer) -> Tensor"


def _register():
    """Define svoo::attention once, with the newest API the torch has."""
    global _registered, _op, _lib
    if _registered:
        return
    with _lock:
        if _registered:
            return
        if hasattr(torch.library, "custom_op"):  # torch >= 2.4
            op = torch.library.custom_op("svoo::attention", mutates_args=())(_typed_impl())
            op.register_fake(_fake)
        else:  # torch 1.13 .. 2.3
            _lib = torch.library.Library("svoo", "DEF")
            _lib.define(_SCHEMA)
            _lib.impl("attention", _impl, "CPU")
            _lib.impl("attention", _impl, "CUDA")
            if hasattr(torch.library, "impl_abstract"):  # 2.1 .. 2.3
                torch.library.impl_abstract("svoo::attention", _fake, lib=_lib)
            else:
                _lib.impl("attention", _fake, "Meta")
                try:  # torch 1.13 has no fallthrough for meta tensors' autograd key
                    _lib.impl("attention", _fake, "AutogradMeta")
                except Exception:
                    pass
        _op = torch.ops.svoo.attention
        _registered = True


def _typed_impl():
    # custom_op reads the schema from annotations
    def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, handle: int, step: int,
                  layer: int) -> torch.Tensor:
        return _impl(q, k, v, handle, step, layer)

    return attention


def attention(sparse_attention, q, k, v, step, layer):
    """Calls the op (what a processor uses). step=-1: read at run time."""
    _register()
    return _op(q, k, v, register(sparse_attention), int(step), int(layer))


_register()

"""svoo: training-free sparse attention for video diffusion transformers.

numpy-only use needs nothing else; torch is imported only when a torch
tensor, the custom op or a processor is used.

    import svoo
    attn = svoo.SparseAttention("svoo", geometry=(21, 45, 80), num_steps=50,
                                num_layers=30, profile="sparsity_wan_1.3B_t2v.csv")
    out = attn(q, k, v, step, layer)          # [B, H, N, D], like SDPA

    svoo.install(pipe.transformer, attn)      # diffusers Wan pipelines
"""
from . import _lib
from ._lib import (
    SvooError,
    SvooIOError,
    SvooMemoryError,
    SvooNotFoundError,
    SvooTypeError,
    SvooUnsupportedError,
    SvooValueError,
    library_path,
)
from .attention import (
    Profile,
    Profiler,
    SparseAttention,
    compare,
    density,
    load_profile,
    load_tensors,
    save_npy,
    save_safetensors,
)
from .processors import Installation, StepTracker, WanAttnProcessor, install
from .profiling import profiling

__version__ = _lib.version_string()
version_number = _lib.svoo_version_number()


def has_cuda():
    """True when libsvoo was built with the CUDA backend."""
    return _lib.has_cuda()


METHODS = tuple(sorted(_lib.METHODS, key=_lib.METHODS.get))
KNOBS = _lib.CONFIG_KNOBS

__all__ = [
    "SparseAttention",
    "Profile",
    "Profiler",
    "profiling",
    "density",
    "compare",
    "load_profile",
    "load_tensors",
    "save_safetensors",
    "save_npy",
    "install",
    "Installation",
    "StepTracker",
    "WanAttnProcessor",
    "SvooError",
    "SvooValueError",
    "SvooTypeError",
    "SvooMemoryError",
    "SvooIOError",
    "SvooNotFoundError",
    "SvooUnsupportedError",
    "has_cuda",
    "library_path",
    "METHODS",
    "KNOBS",
    "__version__",
]

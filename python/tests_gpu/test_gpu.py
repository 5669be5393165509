"""GPU tests (run on the GPU machine, not in CI):

    SVOO_LIBRARY_PATH=build-cuda/libsvoo.so python3 -m pytest -q -s python/tests_gpu

torch CUDA bf16 through SparseAttention and the Wan processor at the Wan2.1
720p self-attention shape (12 heads x 75,600 tokens x 128), against
torch.nn.functional.scaled_dot_product_attention, and SVOO's speedup over
SDPA timed in the same process with CUDA events. Results are printed and, with
SVOO_GPU_REPORT=path, written as JSON.
"""
import json
import math
import os
import sys

import pytest

torch = pytest.importorskip("torch")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import svoo  # noqa: E402

F = torch.nn.functional
pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
    pytest.mark.skipif(not svoo.has_cuda(), reason="libsvoo built without the CUDA backend"),
]

H, N, D = 12, 75600, 128
GEOMETRY = (21, 45, 80)  # Wan2.1 720p latent after 1x2x2 patches: 21*45*80 = 75,600
REPORT = {}


def _profile_csv():
    root = os.path.dirname(os.path.dirname(HERE))
    for base in (os.path.join(root, "..", "shared"), os.path.join(root, "shared")):
        p = os.path.join(base, "data", "profiles", "sparsity_wan_1.3B_t2v.csv")
        if os.path.exists(p):
            return p
    return None


def _rel(a, b):
    a, b = a.float(), b.float()
    return ((a - b).norm() / b.norm()).item()


def _time(fn, reps=10, warmup=2):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    ms = []
    for _ in range(reps):
        start.record()
        fn()
        end.record()
        end.synchronize()
        ms.append(start.elapsed_time(end))
    ms.sort()
    return ms[len(ms) // 2]


def _video_qkv(seed=0, clusters=64):
    """bf16 [1, N, H, D] q/k/v with the token-cluster structure of video
    attention (each token close to one of a few centres per head), viewed as
    [1, H, N, D] (the processor's layout)."""
    g = torch.Generator(device="cuda").manual_seed(seed)
    dev = "cuda"
    cent = torch.randn(H, clusters, D, device=dev, generator=g) * 1.5
    lab = torch.randint(0, clusters, (H, N), device=dev, generator=g)
    x = torch.gather(cent, 1, lab[..., None].expand(H, N, D)) + 0.6 * torch.randn(H, N, D, device=dev, generator=g)
    q = x.transpose(0, 1)[None].to(torch.bfloat16)  # [1, N, H, D]
    k = (x + 0.1 * torch.randn(H, N, D, device=dev, generator=g)).transpose(0, 1)[None].to(torch.bfloat16)
    v = torch.randn(1, N, H, D, device=dev, generator=g, dtype=torch.bfloat16)
    return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)


@pytest.fixture(scope="module")
def qkv():
    return _video_qkv()


@pytest.fixture(scope="module")
def sdpa_ref(qkv):
    q, k, v = qkv
    return F.scaled_dot_product_attention(q, k, v)


def test_cuda_small_views_and_errors():
    q = torch.randn(1, 40, 2, 64, device="cuda", dtype=torch.bfloat16).transpose(1, 2)
    a = svoo.SparseAttention("dense")
    out = a(q, q, q, 0, 0)
    assert out.device.type == "cuda" and out.stride() == q.stride()
    assert _rel(out, F.scaled_dot_product_attention(q, q, q)) < 1e-2
    with pytest.raises(ValueError, match="one device"):
        a(q, q.cpu(), q, 0, 0)
    with pytest.raises(ValueError, match="stride of D"):
        w = torch.randn(1, 2, 40, 128, device="cuda", dtype=torch.bfloat16)[..., ::2]
        a(w, w, w, 0, 0)


def test_dense_720p_matches_sdpa(qkv, sdpa_ref):
    q, k, v = qkv
    out = svoo.SparseAttention("dense")(q, k, v, 0, 0)
    err = _rel(out, sdpa_ref)
    REPORT["dense_rel_l2_vs_sdpa"] = err
    assert err < 1e-2


def test_svoo_every_block_matches_sdpa(qkv, sdpa_ref):
    q, k, v = qkv
    a = svoo.SparseAttention("svoo", geometry=GEOMETRY, num_steps=50, num_layers=30,
                             warmup_step_frac=0, warmup_layer_frac=0, top_p=1.0,
                             floor_min=1.0, floor_max=1.0, floor_ratio=1.0, stats=True)
    out = a(q, k, v, 20, 10)
    err = _rel(out, sdpa_ref)
    REPORT["svoo_all_blocks_rel_l2_vs_sdpa"] = err
    REPORT["svoo_all_blocks_density"] = a.last_stats["density"]
    assert err < 1e-2


class _WanSelfAttn(torch.nn.Module):
    """A Wan2.1-1.3B self-attention module's interface (dim 1536, 12 heads)."""

    def __init__(self):
        super().__init__()
        dim = H * D
        self.heads = H
        self.to_q = torch.nn.Linear(dim, dim)
        self.to_k = torch.nn.Linear(dim, dim)
        self.to_v = torch.nn.Linear(dim, dim)
        self.to_out = torch.nn.ModuleList([torch.nn.Linear(dim, dim), torch.nn.Dropout(0.0)])
        self.norm_q = torch.nn.LayerNorm(dim)
        self.norm_k = torch.nn.LayerNorm(dim)
        self.add_k_proj = None


def test_processor_720p_all_blocks_vs_sdpa():
    torch.manual_seed(0)
    mod = _WanSelfAttn().cuda().to(torch.bfloat16)
    hs = torch.randn(1, N, H * D, device="cuda", dtype=torch.bfloat16)
    with torch.no_grad():
        ref = svoo.WanAttnProcessor()(mod, hs)  # dense SDPA path
        a = svoo.SparseAttention("svoo", geometry=GEOMETRY, num_steps=50, num_layers=30,
                                 warmup_step_frac=0, warmup_layer_frac=0, top_p=1.0,
                                 floor_min=1.0, floor_max=1.0, floor_ratio=1.0)
        p = svoo.WanAttnProcessor(a, layer=10)
        out = p(mod, hs)
    err = _rel(out, ref)
    REPORT["processor_all_blocks_rel_l2_vs_sdpa"] = err
    assert err < 2e-2


def test_svoo_speedup_over_sdpa(qkv, sdpa_ref):
    q, k, v = qkv
    prof = _profile_csv()
    a = svoo.SparseAttention("svoo", geometry=GEOMETRY, num_steps=50, num_layers=30,
                             profile=prof, stats=True)
    step, layer = 25, 10
    out = a(q, k, v, step, layer)  # plans (k-means) once
    plan_stats = dict(a.last_stats)
    err = _rel(out, sdpa_ref)
    t_sdpa = _time(lambda: F.scaled_dot_product_attention(q, k, v))
    t_svoo_reuse = _time(lambda: a(q, k, v, step, layer))  # plan reused within the window
    reuse_stats = dict(a.last_stats)

    def replan():
        a.reset()
        a(q, k, v, step, layer)

    t_svoo_replan = _time(replan, reps=5, warmup=1)
    REPORT.update(
        sdpa_ms=t_sdpa,
        svoo_reuse_ms=t_svoo_reuse,
        svoo_replan_ms=t_svoo_replan,
        speedup_reuse=t_sdpa / t_svoo_reuse,
        speedup_replan=t_sdpa / t_svoo_replan,
        svoo_density=plan_stats["density"],
        svoo_rel_l2_vs_sdpa=err,
        replanned_first=plan_stats["replanned"],
        replanned_timed=reuse_stats["replanned"],
        profile=prof,
        device=torch.cuda.get_device_name(),
    )
    assert math.isfinite(err) and 0 < plan_stats["density"] < 1


@pytest.mark.skipif(not hasattr(torch, "compile"), reason="torch.compile")
def test_compile_fullgraph_cuda():
    from svoo import torch_ops

    a = svoo.SparseAttention("dense")
    h = torch_ops.register(a)
    q = torch.randn(1, 2, 256, 64, device="cuda", dtype=torch.bfloat16)

    @torch.compile(fullgraph=True)
    def f(q):
        return torch.ops.svoo.attention(q * 2, q, q, h, 0, 0).float().sum(-1)

    ref = F.scaled_dot_product_attention(q * 2, q, q).float().sum(-1)
    assert _rel(f(q), ref) < 1e-2


def teardown_module(module):
    print("\nsvoo GPU report:", json.dumps(REPORT, indent=1, default=str))
    path = os.environ.get("SVOO_GPU_REPORT")
    if path:
        with open(path, "w") as f:
            json.dump(REPORT, f, indent=1, default=str)


def test_cuda_calls_do_not_wait_by_default(qkv):
    """stats=None: no statistics (a device read-back, a host wait) on CUDA calls"""
    q, k, v = qkv
    a = svoo.SparseAttention("dense")
    a(q, k, v, 0, 0)
    assert a.last_stats is None
    b = svoo.SparseAttention("dense", stats=True)
    b(q, k, v, 0, 0)
    assert b.last_stats["dense"] is True and b.last_stats["density"] == 1.0

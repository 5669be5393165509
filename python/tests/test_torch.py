"""torch front end (CPU): tensors, the custom op, the Wan processor and the
installer on a tiny fake Wan transformer, profiling through the processor.
Skipped when torch is not importable."""
import math
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import svoo  # noqa: E402
from svoo import processors as P  # noqa: E402

from conftest import clustered_qkv, needs, ref_attention, rel_err  # noqa: E402

TORCH2 = int(torch.__version__.split(".")[0]) >= 2


def _t(x):
    return torch.from_numpy(np.ascontiguousarray(x))


# ---------------------------------------------------------------------------
# tensors
# ---------------------------------------------------------------------------
def test_torch_cpu_dense_f32_and_layouts():
    g = torch.Generator().manual_seed(0)
    B, N, H, D = 2, 33, 3, 64
    base = [torch.randn(B, N, H, D, generator=g) for _ in range(3)]
    q, k, v = (x.transpose(1, 2) for x in base)  # [B, H, N, D] views of bnhd memory
    a = svoo.SparseAttention("dense")
    out = a(q, k, v, 0, 0)
    assert isinstance(out, torch.Tensor) and out.shape == q.shape
    assert out.stride() == q.stride()  # laid out like q: transpose back is free
    ref = ref_attention(q.numpy(), k.numpy(), v.numpy())
    assert rel_err(out.numpy(), ref) < 1e-5
    # contiguous bhnd
    qc, kc, vc = (x.contiguous() for x in (q, k, v))
    assert rel_err(a(qc, kc, vc, 0, 0).numpy(), ref) < 1e-5


@pytest.mark.parametrize("dt,tol", [("float16", 2e-3), ("bfloat16", 2e-2)])
def test_torch_cpu_half_types(dt, tol):
    dtype = getattr(torch, dt)
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, 2, 40, 64, generator=g).to(dtype) for _ in range(3))
    out = svoo.SparseAttention("dense")(q, k, v, 0, 0)
    assert out.dtype == dtype
    ref = ref_attention(*(x.float().numpy() for x in (q, k, v)))
    assert rel_err(out.float().numpy(), ref) < tol


def test_torch_errors():
    q = torch.randn(1, 2, 16, 64)
    a = svoo.SparseAttention("dense")
    with pytest.raises(ValueError, match="rank 3"):
        a(q[0], q[0], q[0], 0, 0)
    with pytest.raises(TypeError, match="float64"):
        a(q.double(), q, q, 0, 0)
    with pytest.raises(TypeError, match="dtype"):
        a(q, q.half(), q, 0, 0)
    with pytest.raises(TypeError, match="mix numpy and torch"):
        a(q, q.numpy(), q, 0, 0)
    wide = torch.randn(1, 2, 16, 128)
    with pytest.raises(ValueError, match="stride of D must be 1"):
        a(wide[..., ::2], wide[..., ::2], wide[..., ::2], 0, 0)
    with pytest.raises(ValueError, match="SHAPE_MISMATCH"):
        a(q, q[:, :1], q[:, :1], 0, 0)
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="one device"):
            a(q, q.cuda(), q, 0, 0)
    with pytest.raises(ValueError, match="device"):
        svoo.SparseAttention("dense", device="cuda")(q, q, q, 0, 0)


def test_numpy_helpers_take_torch():
    qn, kn, _ = clustered_qkv(H=2, N=256)
    d1 = svoo.density(qn, kn, 0.95, 8)
    d2 = svoo.density(_t(qn).to(torch.bfloat16), _t(kn).to(torch.bfloat16), 0.95, 8)
    np.testing.assert_allclose(d1, d2, atol=0.05)
    r = svoo.compare(_t(qn), _t(qn).half())
    assert r["cosine"] == pytest.approx(1, abs=1e-6)


# ---------------------------------------------------------------------------
# custom op
# ---------------------------------------------------------------------------
def test_custom_op_eager_and_fake():
    from svoo import torch_ops

    a = svoo.SparseAttention("dense")
    q, k, v = (torch.randn(1, 2, 20, 64) for _ in range(3))
    out = torch.ops.svoo.attention(q, k, v, torch_ops.register(a), 0, 0)
    assert rel_err(out.numpy(), ref_attention(q.numpy(), k.numpy(), v.numpy())) < 1e-5
    assert a.last_stats["layer"] == 0
    # the fake/meta implementation: shape and layout without running anything
    qm = torch.empty(1, 20, 2, 64, device="meta").transpose(1, 2)
    om = torch.ops.svoo.attention(qm, qm, qm, torch_ops.register(a), 0, 0)
    assert om.device.type == "meta" and om.shape == qm.shape and om.stride() == qm.stride()
    # step = -1: the step the tracker published
    a.current_step = 0
    torch_ops.attention(a, q, k, v, -1, 0)
    with pytest.raises(RuntimeError, match="handle"):
        torch.ops.svoo.attention(q, k, v, 10 ** 6, 0, 0)


@pytest.mark.skipif(not hasattr(torch, "compile"), reason="torch.compile needs torch >= 2.0")
def test_custom_op_under_torch_compile_fullgraph():
    from svoo import torch_ops

    a = svoo.SparseAttention("dense")
    h = torch_ops.register(a)

    def f(q, k, v):
        return torch.ops.svoo.attention(q * 1.0, k, v, h, 0, 1) + 1

    cf = torch.compile(f, fullgraph=True, backend="aot_eager")
    q, k, v = (torch.randn(1, 2, 24, 64) for _ in range(3))
    out = cf(q, k, v)
    ref = ref_attention(q.numpy(), k.numpy(), v.numpy()) + 1
    assert rel_err(out.numpy(), ref) < 1e-5
    assert a.last_stats["layer"] == 1


# ---------------------------------------------------------------------------
# a tiny fake Wan transformer with diffusers' attribute names
# ---------------------------------------------------------------------------
class FakeAttention(nn.Module):
    def __init__(self, dim, heads, cross=False):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim)
        self.to_k = nn.Linear(dim, dim)
        self.to_v = nn.Linear(dim, dim)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim), nn.Dropout(0.0)])
        self.norm_q = nn.LayerNorm(dim)
        self.norm_k = nn.LayerNorm(dim)
        self.add_k_proj = None
        self.is_cross_attention = cross
        self.processor = ReferenceProcessor()

    def set_processor(self, p):
        self.processor = p

    def forward(self, hidden_states, encoder_hidden_states=None, attention_mask=None, rotary_emb=None):
        return self.processor(self, hidden_states, encoder_hidden_states, attention_mask, rotary_emb)


class ReferenceProcessor:
    """diffusers' WanAttnProcessor2_0 (<= 0.34) math, written out."""

    def __init__(self):
        self.calls = 0

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 rotary_emb=None):
        self.calls += 1
        ctx = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        q = attn.norm_q(attn.to_q(hidden_states))
        k = attn.norm_k(attn.to_k(ctx))
        v = attn.to_v(ctx)
        q, k, v = (x.unflatten(2, (attn.heads, -1)).transpose(1, 2) for x in (q, k, v))
        if rotary_emb is not None:
            def rope(x):
                xc = torch.view_as_complex(x.to(torch.float64).unflatten(3, (-1, 2)))
                return torch.view_as_real(xc * rotary_emb).flatten(3, 4).type_as(x)
            q, k = rope(q), rope(k)
        s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        o = torch.softmax(s, -1) @ v
        o = o.transpose(1, 2).flatten(2, 3)
        return attn.to_out[1](attn.to_out[0](o))


class FakeBlock(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.attn1 = FakeAttention(dim, heads)
        self.attn2 = FakeAttention(dim, heads, cross=True)

    def forward(self, x, ctx, rope):
        x = x + self.attn1(x, rotary_emb=rope)
        return x + self.attn2(x, encoder_hidden_states=ctx)


class FakeWan(nn.Module):
    def __init__(self, channels=4, heads=2, head_dim=64, layers=3):
        super().__init__()
        dim = heads * head_dim
        self.config = types.SimpleNamespace(patch_size=(1, 2, 2))
        self.patch = nn.Linear(channels * 4, dim)
        self.blocks = nn.ModuleList([FakeBlock(dim, heads) for _ in range(layers)])
        self.head_dim = head_dim
        self.forwards = 0

    def forward(self, hidden_states, timestep, encoder_hidden_states):
        self.forwards += 1
        B, C, F, H, W = hidden_states.shape
        x = hidden_states.reshape(B, C, F, H // 2, 2, W // 2, 2).permute(0, 2, 3, 5, 1, 4, 6)
        x = self.patch(x.reshape(B, F * (H // 2) * (W // 2), C * 4))
        n = x.shape[1]
        pos = torch.arange(n, dtype=torch.float64)[:, None]
        inv = 1.0 / (10000 ** (torch.arange(0, self.head_dim, 2, dtype=torch.float64) / self.head_dim))
        rope = torch.polar(torch.ones(n, self.head_dim // 2, dtype=torch.float64), pos * inv)[None, None]
        for b in self.blocks:
            x = b(x, encoder_hidden_states, rope)
        return x


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    return FakeWan(**kw).eval()


def _inputs(seed=1, B=1, C=4, F=2, H=16, W=16, T=7, dim=128):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, C, F, H, W, generator=g), torch.randn(B, T, dim, generator=g)


def _generate(model, x, ctx, timesteps=(999, 666, 333, 100), cfg=True):
    outs = []
    with torch.no_grad():
        for t in timesteps:
            tt = torch.tensor([t])
            outs.append(model(x, tt, ctx))
            if cfg:  # classifier-free guidance: a second forward at the same timestep
                model(x, tt, torch.zeros_like(ctx))
    return outs


def test_processor_dense_matches_reference_model():
    model = _model()
    x, ctx = _inputs()
    ref = _generate(model, x, ctx, cfg=False)
    for method, knobs in (("dense", {}), ("svoo", {"top_p": 1.0, "warmup_step_frac": 0,
                                                 "warmup_layer_frac": 0})):
        attn = svoo.SparseAttention(method, num_steps=4, log=lambda s: None, **knobs)
        inst = svoo.install(model, attn)
        assert attn.num_layers == 3 and inst.num_layers == 3
        assert [p.layer for p in inst.processors] == [0, 1, 2]
        assert [p.name for p in inst.processors] == ["blocks.%d.attn1" % i for i in range(3)]
        out = _generate(model, x, ctx, cfg=False)
        for a, b in zip(out, ref):
            assert rel_err(a.numpy(), b.numpy()) < 1e-5
        assert attn.geometry == {"frames": 2, "height": 8, "width": 8, "text_tokens": 0,
                                 "text_first": 0}
        inst.remove()
        assert isinstance(model.blocks[0].attn1.processor, ReferenceProcessor)


def test_install_tracks_steps_layers_and_generations():
    model = _model()
    x, ctx = _inputs()
    attn = svoo.SparseAttention("svoo", num_steps=4, warmup_step_frac=0, warmup_layer_frac=0,
                                log=lambda s: None)
    seen = []
    orig = attn.__call__

    class Spy:
        def __call__(self, q, k, v, step, layer, **kw):
            seen.append((step, layer))
            return orig(q, k, v, step, layer, **kw)

    inst = svoo.install(model, attn)
    for p in inst.processors:
        p.use_op = False
        p.sparse_attention = Spy()
    cross = model.blocks[0].attn2.processor
    _generate(model, x, ctx)  # 4 steps x 2 forwards (CFG)
    assert seen == [(s, l) for s in range(4) for _ in range(2) for l in range(3)]
    assert cross.calls == 8  # cross-attention still on its own processor
    assert inst.tracker.generation == 1
    seen.clear()
    _generate(model, x, ctx, timesteps=(999, 500))  # timestep went up: new generation
    assert inst.tracker.generation == 2
    assert [s for s, _ in seen] == [0] * 6 + [1] * 6
    inst.tracker.set_step(3)
    assert attn.current_step == 3
    inst.remove()


def test_install_sparse_reports_density():
    model = _model()
    x, ctx = _inputs(H=32, W=32)  # 2 x 16 x 16 = 512 tokens
    attn = svoo.SparseAttention("svoo", num_steps=4, warmup_step_frac=0, warmup_layer_frac=0,
                                log=lambda s: None)
    with svoo.install(model, attn):
        out = _generate(model, x, ctx, cfg=False)
    assert all(torch.isfinite(o).all() for o in out)
    st = attn.last_stats
    assert st["dense"] is False and 0 < st["density"] < 1 and st["layer"] == 2 and st["step"] == 3


def test_processor_rope_formats_agree():
    """diffusers >= 0.35 passes rotary_emb as (cos, sin) on [B, N, H, D]."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 10, 2, 64, generator=g)
    pos = torch.arange(10, dtype=torch.float64)[:, None]
    ang = pos * (1.0 / (10000 ** (torch.arange(0, 64, 2, dtype=torch.float64) / 64)))
    freqs = torch.polar(torch.ones_like(ang), ang)[None, None]  # [1, 1, N, D/2]
    cos = ang.cos().repeat_interleave(2, -1)[None, :, None].float()
    sin = ang.sin().repeat_interleave(2, -1)[None, :, None].float()
    a = P._rope_complex_bnhd(x, freqs)
    b = P._rope_cos_sin_bnhd(x, cos, sin)
    assert torch.allclose(a, b, atol=1e-5)


def test_processor_without_sparse_attention_is_dense():
    attn_mod = FakeAttention(128, 2)
    h = torch.randn(1, 12, 128)
    ref = ReferenceProcessor()(attn_mod, h)
    out = svoo.WanAttnProcessor()(attn_mod, h)
    assert torch.allclose(ref, out, atol=1e-5)
    mask = torch.zeros(1, 1, 12, 12)
    out2 = svoo.WanAttnProcessor(svoo.SparseAttention("dense"))(attn_mod, h, attention_mask=mask)
    assert torch.allclose(ref, out2, atol=1e-5)


def test_install_errors():
    with pytest.raises(ValueError, match="no self-attention module"):
        svoo.install(nn.Linear(2, 2), svoo.SparseAttention("dense"))


@needs("svoo_profiler_create", "svoo_profiler_observe", "svoo_profiler_result")
def test_profiling_through_the_processor(tmp_path):
    model = _model()
    x, ctx = _inputs()
    ref = _generate(model, x, ctx, cfg=False)
    path = tmp_path / "wan_fake.csv"
    with svoo.profiling(path, num_steps=4, module=model, row_step=4) as prof:
        for seed in range(2):
            prof.new_run()
            x, ctx = _inputs(seed=seed + 1)
            out = _generate(model, x, ctx)
            if seed == 0:  # profiling runs dense
                for a, b in zip(out, ref):
                    assert rel_err(a.numpy(), b.numpy()) < 1e-5
        assert prof.runs == 2
        assert prof.observed == 2 * 4 * 2 * 3
    assert isinstance(model.blocks[0].attn1.processor, ReferenceProcessor)
    p = svoo.Profile.load(path)
    assert p.dims == (4, 3, 2)
    a = p.to_numpy()
    assert ((a > 0) & (a <= 1)).all()

"""SparseAttention over numpy arrays: dense accuracy, layouts, sparse methods,
errors."""
import numpy as np
import pytest

import svoo

from conftest import clustered_qkv, ref_attention, rel_err


def _qkv(rng, B=2, H=3, N=77, D=64, dtype=np.float32):
    return [rng.standard_normal((B, H, N, D)).astype(dtype) for _ in range(3)]


def test_dense_f32_matches_reference(rng):
    q, k, v = _qkv(rng)
    attn = svoo.SparseAttention("dense")
    out = attn(q, k, v, 0, 0)
    assert out.shape == q.shape and out.dtype == np.float32
    assert rel_err(out, ref_attention(q, k, v)) < 1e-5
    st = attn.last_stats
    assert st["density"] == 1.0 and st["dense"] is True
    assert st["step"] == 0 and st["layer"] == 0 and st["shape"] == q.shape
    assert st["ms_total"] >= 0


def test_dense_head_dim_128_and_cross_lengths(rng):
    q = rng.standard_normal((1, 2, 40, 128)).astype(np.float32)
    k = rng.standard_normal((1, 2, 90, 128)).astype(np.float32)
    v = rng.standard_normal((1, 2, 90, 128)).astype(np.float32)
    out = svoo.SparseAttention("dense")(q, k, v, 3, 5)
    assert out.shape == q.shape
    assert rel_err(out, ref_attention(q, k, v)) < 1e-5


def test_dense_f16(rng):
    q, k, v = _qkv(rng, dtype=np.float16)
    out = svoo.SparseAttention("dense")(q, k, v, 0, 0)
    assert out.dtype == np.float16
    assert rel_err(out, ref_attention(q, k, v)) < 2e-3


def test_bf16_as_uint16(rng):
    q, k, v = _qkv(rng)

    def to_bf16(x):  # round to nearest even
        u = x.view(np.uint32)
        return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)

    def from_bf16(x):
        return (x.astype(np.uint32) << 16).view(np.float32)

    qb, kb, vb = map(to_bf16, (q, k, v))
    out = svoo.SparseAttention("dense")(qb, kb, vb, 0, 0, dtype="bf16")
    assert out.dtype == np.uint16
    ref = ref_attention(from_bf16(qb), from_bf16(kb), from_bf16(vb))
    assert rel_err(from_bf16(out), ref) < 1e-2
    with pytest.raises(TypeError, match="bf16"):
        svoo.SparseAttention("dense")(qb, kb, vb, 0, 0)


def test_bnhd_transposed_view_no_copy(rng):
    """A [B, N, H, D] buffer viewed as [B, H, N, D]; the output keeps that layout."""
    B, N, H, D = 2, 50, 3, 64
    base = [rng.standard_normal((B, N, H, D)).astype(np.float32) for _ in range(3)]
    q, k, v = (x.transpose(0, 2, 1, 3) for x in base)
    assert not q.flags.c_contiguous
    out = svoo.SparseAttention("dense")(q, k, v, 0, 0)
    assert rel_err(out, ref_attention(q, k, v)) < 1e-5
    # out laid out like q: transposing back is contiguous (free)
    assert out.transpose(0, 2, 1, 3).flags.c_contiguous
    # caller-provided out, in the bhnd layout
    o2 = np.zeros((B, H, N, D), np.float32)
    r = svoo.SparseAttention("dense")(q, k, v, 0, 0, out=o2)
    assert r is o2
    np.testing.assert_allclose(o2, out, rtol=1e-6, atol=1e-6)


def test_strided_views_of_a_bigger_buffer(rng):
    """Any strides for B/H/N: a slice of a fused qkv buffer [B, N, 3, H, D]."""
    B, N, H, D = 1, 40, 2, 64
    qkv = rng.standard_normal((B, N, 3, H, D)).astype(np.float32)
    q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
    out = svoo.SparseAttention("dense")(q, k, v, 0, 0)
    assert rel_err(out, ref_attention(q, k, v)) < 1e-5
    # every other query row
    q2 = q[:, :, ::2]
    out2 = svoo.SparseAttention("dense")(q2, k, v, 0, 0)
    assert rel_err(out2, ref_attention(q2, k, v)) < 1e-5


@pytest.mark.parametrize("method", ["svoo", "svg2"])
def test_sparse_methods_run_and_report(method, quiet):
    log, notes = quiet
    fast = {"kmeans_iters_first": 5} if method == "svg2" else {}
    q, k, v = clustered_qkv()
    ref = ref_attention(q, k, v)
    attn = svoo.SparseAttention(method, num_steps=4, num_layers=2, warmup_step_frac=0,
                                warmup_layer_frac=0, log=log, **fast)
    out = attn(q, k, v, 0, 1)
    st = attn.last_stats
    assert st["dense"] is False and st["replanned"] is True
    assert 0 < st["density"] < 1
    assert np.isfinite(out).all()
    assert st["method"] == method
    # every cluster selected: exact
    exact = svoo.SparseAttention(method, num_steps=4, num_layers=2, warmup_step_frac=0,
                                 warmup_layer_frac=0, top_p=1.0, log=log, **fast)
    assert rel_err(exact(q, k, v, 0, 1), ref) < 1e-5
    # warm-up runs dense with the defaults (first 20% of steps)
    warm = svoo.SparseAttention(method, num_steps=10, num_layers=2, log=log, **fast)
    warm(q, k, v, 0, 1)
    assert warm.last_stats["dense"] is True and warm.last_stats["density"] == 1.0
    attn.reset()
    attn.close()


def test_svoo_profile_and_fallback_note(quiet):
    log, notes = quiet
    q, k, v = clustered_qkv(H=2)
    prof = svoo.Profile(4, 2, 2)
    for s in range(4):
        for l in range(2):
            for h in range(2):
                prof.set(s, l, h, 0.3)
    a = svoo.SparseAttention("svoo", profile=prof, num_steps=4, num_layers=2,
                             warmup_step_frac=0, warmup_layer_frac=0, log=log)
    a(q, k, v, 1, 1)
    assert notes == []  # every entry present: no fallback note
    b = svoo.SparseAttention("svoo", num_steps=4, num_layers=2, warmup_step_frac=0,
                             warmup_layer_frac=0, log=log)
    b(q, k, v, 1, 1)
    assert any("fallback" in n for n in notes)


def test_svg_needs_geometry(quiet):
    log, _ = quiet
    q, k, v = clustered_qkv(N=4 * 16 * 16)
    # geometry may come later (svoo.install reads it from the latent): the
    # call without one fails
    with pytest.raises(ValueError, match="geometry"):
        svoo.SparseAttention("svg", num_steps=4, num_layers=2, log=log)(q, k, v, 0, 1)
    a = svoo.SparseAttention("svg", geometry=(4, 16, 16), num_steps=4, num_layers=2,
                             warmup_step_frac=0, warmup_layer_frac=0, log=log)
    try:
        a(q, k, v, 0, 1)
    except svoo.SvooUnsupportedError as e:
        pytest.skip("SVG not implemented in this libsvoo: %s" % e)
    assert 0 < a.last_stats["density"] <= 1
    a.geometry = dict(frames=3, height=16, width=16)
    with pytest.raises(ValueError, match="GEOMETRY"):
        a(q, k, v, 0, 1)


def test_contexts_per_heads_and_head_dim(rng):
    a = svoo.SparseAttention("dense")
    for H, D in ((2, 64), (4, 64), (2, 128), (2, 64)):
        q, k, v = _qkv(rng, B=1, H=H, N=20, D=D)
        assert rel_err(a(q, k, v, 0, 0), ref_attention(q, k, v)) < 1e-5
    assert len(a._ctxs) == 3


# ---- configuration errors -------------------------------------------------
def test_unknown_knob_is_a_type_error():
    with pytest.raises(TypeError, match="top_pp"):
        svoo.SparseAttention("svoo", top_pp=0.5, num_steps=4, num_layers=2)


def test_bad_knob_value_carries_the_c_message():
    with pytest.raises(svoo.SvooValueError, match="config.top_p"):
        svoo.SparseAttention("svoo", top_p=1.5, num_steps=4, num_layers=2)
    with pytest.raises(ValueError, match="floor_max"):
        svoo.SparseAttention("svoo", floor_min=0.5, floor_max=0.2, num_steps=4, num_layers=2)


def test_bad_method():
    with pytest.raises(ValueError, match="method"):
        svoo.SparseAttention("flash")


def test_sparse_needs_num_steps(rng):
    q, k, v = _qkv(rng)
    with pytest.raises(ValueError, match="num_steps"):
        svoo.SparseAttention("svoo", num_layers=2)(q, k, v, 0, 0)


# ---- input errors -----------------------------------------------------------
def test_wrong_rank(rng):
    q, k, v = _qkv(rng)
    with pytest.raises(ValueError, match="rank 3"):
        svoo.SparseAttention("dense")(q[0], k[0], v[0], 0, 0)


def test_wrong_dtype(rng):
    q, k, v = _qkv(rng)
    with pytest.raises(TypeError, match="float64"):
        svoo.SparseAttention("dense")(q.astype(np.float64), k, v, 0, 0)
    with pytest.raises(TypeError, match="dtype"):
        svoo.SparseAttention("dense")(q, k.astype(np.float16), v, 0, 0)
    with pytest.raises(TypeError):
        svoo.SparseAttention("dense")(q.tolist(), k, v, 0, 0)


def test_mismatched_shapes(rng):
    q, k, v = _qkv(rng)
    with pytest.raises(svoo.SvooValueError, match="SHAPE_MISMATCH"):
        svoo.SparseAttention("dense")(q, k[:, :2], v[:, :2], 0, 0)
    with pytest.raises(ValueError, match="v: N"):
        svoo.SparseAttention("dense")(q, k, v[:, :, :10], 0, 0)
    with pytest.raises(ValueError, match="out"):
        svoo.SparseAttention("dense")(q, k, v, 0, 0, out=np.empty((2, 3, 10, 64), np.float32))


def test_non_contiguous_d(rng):
    q, k, v = _qkv(rng, D=128)
    with pytest.raises(ValueError, match="stride of D must be 1"):
        svoo.SparseAttention("dense")(q[..., ::2], k[..., ::2], v[..., ::2], 0, 0)


def test_unsupported_head_dim(rng):
    q, k, v = _qkv(rng, D=48)
    with pytest.raises(ValueError, match="head_dim"):
        svoo.SparseAttention("dense")(q, k, v, 0, 0)


def test_step_and_layer_range(rng):
    q, k, v = _qkv(rng)
    a = svoo.SparseAttention("svoo", num_steps=4, num_layers=2)
    with pytest.raises(svoo.SvooValueError, match="OUT_OF_RANGE.*step 4"):
        a(q, k, v, 4, 0)
    with pytest.raises(ValueError, match="layer 2"):
        a(q, k, v, 0, 2)


def test_step_layer_and_knobs_beyond_c_int_are_not_wrapped(rng):
    """ctypes used to wrap ints modulo 2**32: step 2**32 silently ran step 0,
    num_steps=2**32 + 4 became 4."""
    q, k, v = _qkv(rng)
    a = svoo.SparseAttention("svoo", num_steps=4, num_layers=2)
    with pytest.raises(svoo.SvooValueError, match="step = 4294967296"):
        a(q, k, v, 2**32, 0)
    with pytest.raises(svoo.SvooValueError, match="layer = 4294967297"):
        a(q, k, v, 0, 2**32 + 1)
    assert a.calls == 0
    with pytest.raises(svoo.SvooValueError, match="num_steps"):
        svoo.SparseAttention("svoo", num_steps=2**32 + 4, num_layers=2)
    with pytest.raises(svoo.SvooValueError, match="reuse_every"):
        svoo.SparseAttention("svoo", num_steps=4, num_layers=2, reuse_every=2**32 + 3)
    with pytest.raises(svoo.SvooValueError, match="frames"):
        svoo.SparseAttention("svg", num_steps=4, num_layers=2, geometry=(2**32 + 1, 8, 8))


_RACE = """
import sys, threading
import numpy as np, svoo
method = sys.argv[1]
rng = np.random.default_rng(0)
qkv = [[rng.standard_normal((1, 2, 1024, 64)).astype(np.float32) for _ in range(3)]
       for _ in range(4)]
kw = dict(num_threads=1, log=lambda m: None)
if method != "dense":
    kw.update(num_steps=50, num_layers=4, warmup_step_frac=0, warmup_layer_frac=0)
ref = [svoo.SparseAttention("dense", num_threads=1)(*x, 10, 1) for x in qkv]
a = svoo.SparseAttention(method, **kw)
bad = []

def work(i):
    for _ in range(10):
        o = a(*qkv[i], 10, 1)
        if method == "dense" and not np.array_equal(o, ref[i]):
            bad.append(i)

ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
[t.start() for t in ts]
[t.join() for t in ts]
print(len(bad))
"""


def test_one_object_called_from_several_threads():
    """svoo.h: one svoo_ctx must not be used by two threads at once, and
    ctypes releases the GIL: concurrent calls of one SparseAttention gave
    wrong dense outputs every time (and crashed svg2/svoo now and then with
    heap corruption). Run apart: the race may kill the interpreter."""
    method = "dense"
    import os
    import subprocess
    import sys

    from conftest import PYDIR

    env = dict(os.environ, PYTHONPATH=PYDIR)
    r = subprocess.run([sys.executable, "-c", _RACE, method], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "0", "wrong outputs under concurrent calls"


def test_contexts_are_freed_when_the_object_is_dropped(rng, quiet):
    """The log callback held a bound method of the object: a reference cycle,
    so `del attn` freed nothing (contexts, i.e. CUDA workspaces) until the
    cyclic GC happened to run."""
    import gc
    import weakref

    q, k, v = _qkv(rng)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for log in (None, quiet[0]):
            a = svoo.SparseAttention("svoo", num_steps=4, num_layers=2, log=log)
            a(q, k, v, 3, 1)
            alive = weakref.ref(a)
            del a
            assert alive() is None
    finally:
        if gc_was_enabled:
            gc.enable()


def test_read_only_out(rng):
    q, k, v = _qkv(rng)
    o = np.empty_like(q)
    o.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        svoo.SparseAttention("dense")(q, k, v, 0, 0, out=o)


def test_nonfinite_check(rng):
    q, k, v = _qkv(rng)
    q[0, 0, 3, 5] = np.nan
    a = svoo.SparseAttention("dense", check_finite=1)
    with pytest.raises(ValueError, match="NaN"):
        a(q, k, v, 0, 0)


def test_cuda_unavailable_in_cpu_build(rng):
    if svoo.has_cuda():
        pytest.skip("library has CUDA")
    # numpy arrays are always CPU; a CUDA context is refused at config time
    a = svoo.SparseAttention("dense")
    with pytest.raises(NotImplementedError):
        a.config(2, 64)  # fine on CPU
        import ctypes

        from svoo import _lib as L
        cfg = a._make_config(2, 64, L.DEVICE_CUDA, 0, None, None)
        ctx = ctypes.c_void_p()
        L.check(L.svoo_ctx_create(ctypes.byref(cfg), ctypes.byref(ctx)))


def test_stats_switch():
    """stats=None fills last_stats on the CPU; stats=False never does"""
    q, k, v = (np.random.default_rng(i).standard_normal((1, 2, 96, 64)).astype(np.float32)
               for i in range(3))
    a = svoo.SparseAttention("dense")
    a(q, k, v, 0, 0)
    assert a.last_stats["dense"] is True and a.last_stats["shape"] == (1, 2, 96, 64)
    b = svoo.SparseAttention("dense", stats=False)
    b(q, k, v, 0, 0)
    assert b.last_stats is None and b.calls == 1

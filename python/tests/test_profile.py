"""Profiles, density, compare, the profiler and svoo.profiling (numpy)."""
import math
import os

import numpy as np
import pytest

import svoo

from conftest import PROFILE_CSV, clustered_qkv, needs


@pytest.mark.skipif(PROFILE_CSV is None, reason="shared/data/profiles/sparsity_wan_1.3B_t2v.csv absent")
def test_load_published_profile():
    p = svoo.Profile.load(PROFILE_CSV)
    assert p.dims == (50, 30, 12)
    assert p.get(0, 0, 0) == pytest.approx(0.7382)  # file row "1,0,0,0.7382"
    assert p.get(0, 0, 1) == pytest.approx(0.0411)
    st = p.stats()
    assert st["count"] == 50 * 30 * 12
    assert st["mean"] == pytest.approx(0.144, abs=2e-3)
    assert st["median"] == pytest.approx(0.051, abs=2e-3)
    with pytest.raises(ValueError, match="OUT_OF_RANGE"):
        p.get(50, 0, 0)
    a = p.to_numpy()
    assert a.shape == (50, 30, 12) and not np.isnan(a).any()
    assert "steps=50" in repr(p)
    # a SparseAttention reads it by path
    sa = svoo.SparseAttention("svoo", profile=PROFILE_CSV, num_steps=50, num_layers=30)
    assert sa.profile.heads == 12


def test_profile_roundtrip(tmp_path):
    p = svoo.Profile(3, 2, 4)
    with pytest.raises(LookupError):
        p.get(0, 0, 0)
    assert p.get(0, 0, 0, default=-1.0) == -1.0
    vals = np.random.default_rng(0).uniform(0, 1, (3, 2, 4))
    q = svoo.Profile.from_numpy(vals)
    path = tmp_path / "prof.csv"
    q.save(path)
    text = path.read_text().splitlines()
    assert text[0] == "Step,Layer,Head,Sparsity"
    assert text[1].startswith("1,0,0,")  # 1-based steps in the file
    r = svoo.Profile.load(str(path))
    np.testing.assert_allclose(r.to_numpy(), vals, atol=1e-6)
    # merge max
    r2 = svoo.Profile.from_numpy(np.full((3, 2, 4), 0.5))
    r.merge(r2, "max")
    np.testing.assert_allclose(r.to_numpy(), np.maximum(vals, 0.5), atol=1e-6)
    with pytest.raises(ValueError):
        r.merge(svoo.Profile(1, 1, 1))


def test_profile_errors(tmp_path):
    with pytest.raises(OSError, match="SVOO_ERR_IO"):
        svoo.Profile.load(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("Step,Layer,Head,Sparsity\n1,0,0,abc\n")
    with pytest.raises(ValueError, match="PROFILE_FORMAT"):
        svoo.Profile.load(bad)
    with pytest.raises(svoo.SvooError):
        svoo.Profile(0, 1, 1)


def test_paths_with_a_nul_byte_are_refused(tmp_path):
    """ctypes passes bytes to a char * up to the first NUL: 'a.csv\\0.bak'
    used to load / overwrite a.csv (Python's open() refuses such a path)."""
    p = svoo.Profile(1, 1, 1)
    p.set(0, 0, 0, 0.5)
    target = tmp_path / "a.csv"
    with pytest.raises(ValueError, match="null byte"):
        p.save(str(target) + "\0.bak")
    assert not target.exists()
    p.save(target)
    with pytest.raises(ValueError, match="null byte"):
        svoo.Profile.load(str(target) + "\0.bak")
    with pytest.raises(ValueError, match="null byte"):
        svoo.save_npy(str(tmp_path / "x.npy") + "\0", np.zeros(3, np.float32))
    assert not (tmp_path / "x.npy").exists()
    st = tmp_path / "t.safetensors"
    with pytest.raises(ValueError, match="null byte"):  # used to be saved as "a"
        svoo.save_safetensors(st, {"a\0b": np.zeros(3, np.float32)})
    with pytest.raises(TypeError, match="str"):  # used to be an AttributeError
        svoo.save_safetensors(st, {1: np.zeros(3, np.float32)})
    assert not st.exists()


def test_profile_indices_beyond_c_int_are_not_wrapped():
    p = svoo.Profile(2, 1, 1)
    p.set(0, 0, 0, 0.3)
    with pytest.raises(svoo.SvooValueError, match="step = 4294967296"):
        p.get(2**32, 0, 0)  # used to return entry (0, 0, 0)
    with pytest.raises(svoo.SvooValueError, match="head"):
        p.set(0, 0, 2**32, 0.5)
    assert p.get(0, 0, 0) == 0.3
    with pytest.raises(svoo.SvooValueError, match="steps"):
        svoo.Profile(2**32 + 1, 1, 1)  # used to make a 1-step grid
    with pytest.raises(svoo.SvooValueError, match="layers"):
        svoo.Profiler(2, 2**32 + 1, 1)
    pr = svoo.Profiler(2, 1, 2)
    pr.new_run()
    q, k, _ = clustered_qkv(H=2, N=64)
    with pytest.raises(svoo.SvooValueError, match="step"):
        pr.observe(2**32, 0, q, k)


def test_wrong_kinds_of_use_raise_the_documented_types(tmp_path):
    p = svoo.Profile(1, 1, 1)
    with pytest.raises(TypeError, match="Profile"):  # was AttributeError: _handle
        p.merge(p.to_numpy())
    prof = svoo.profiling(tmp_path / "x.csv", num_steps=2, num_layers=1)
    with pytest.raises(RuntimeError, match="nothing was observed"):  # was AttributeError
        prof.stability()


def test_profile_heads_must_match_model():
    q, k, v = clustered_qkv(H=2)
    a = svoo.SparseAttention("svoo", profile=svoo.Profile(4, 2, 3), num_steps=4, num_layers=2)
    with pytest.raises(ValueError, match="PROFILE_MISMATCH"):
        a(q, k, v, 0, 0)


def test_profile_closed_or_dropped_while_a_context_reads_it(quiet):
    """A context borrows the profile (svoo_config.profile): closing the Profile
    used to leave it reading freed memory (the call ran on, with fallback
    floors), and dropping the last reference freed it the same way."""
    import gc
    import weakref

    log, notes = quiet
    q, k, v = clustered_qkv(H=2, N=256)
    kw = dict(num_steps=4, num_layers=2, warmup_step_frac=0, warmup_layer_frac=0, log=log)
    p = svoo.Profile.from_numpy(np.full((4, 2, 2), 0.3))
    a = svoo.SparseAttention("svoo", profile=p, **kw)
    ref = a(q, k, v, 3, 1).copy()
    p.close()
    with pytest.raises(svoo.SvooValueError, match="Profile.*closed"):
        a(q, k, v, 3, 1)

    p = svoo.Profile.from_numpy(np.full((4, 2, 2), 0.3))
    a = svoo.SparseAttention("svoo", profile=p, **kw)
    a(q, k, v, 3, 1)
    alive = weakref.ref(p)
    a.profile = None
    del p
    gc.collect()
    assert alive() is not None  # still read by the context made with it
    np.testing.assert_array_equal(a(q, k, v, 3, 1), ref)
    assert not notes  # no fallback floors: the profile was read


@needs("svoo_compare")
def test_compare():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((1, 2, 10, 64)).astype(np.float32)
    r = svoo.compare(a, a)
    assert r["rel_l2"] == 0 and r["max_abs"] == 0 and r["cosine"] == pytest.approx(1)
    b = a.copy()
    b[0, 0, 0, 0] += 1
    r = svoo.compare(a, b.astype(np.float16))  # any dtypes
    assert r["max_abs"] == pytest.approx(1, abs=1e-2)
    with pytest.raises(ValueError):
        svoo.compare(a, a[:, :1])


@needs("svoo_density")
def test_density():
    q, k, _ = clustered_qkv(B=2, H=2, N=512)
    d = svoo.density(q, k, tau=0.95, row_step=8)
    assert d.shape == (2, 2) and ((d > 0) & (d < 0.5)).all()
    # tau = 1 keeps (nearly) everything
    d1 = svoo.density(q, k, tau=1.0, row_step=8)
    assert (d1 >= d).all()
    # uniform attention: every key needed
    z = np.zeros((1, 1, 64, 64), np.float32)
    assert svoo.density(z, z, tau=0.95, row_step=1)[0, 0] == pytest.approx(0.95, abs=0.02)
    with pytest.raises(ValueError):
        svoo.density(q, k, row_step=0)


@needs("svoo_profiler_create", "svoo_profiler_observe", "svoo_profiler_result")
def test_profiler_direct():
    pr = svoo.Profiler(2, 1, 2, tau=0.95, row_step=8)
    for run in range(2):
        pr.new_run()
        for s in range(2):
            q, k, _ = clustered_qkv(H=2, N=256, seed=10 * run + s)
            pr.observe(s, 0, q, k)
    assert pr.runs == 2
    p = pr.result("max")
    assert p.dims == (2, 1, 2)
    a = p.to_numpy()
    assert ((a > 0) & (a <= 1)).all()
    mean = pr.result("mean").to_numpy()
    assert (mean <= a + 1e-9).all()
    st = pr.stability()
    assert st["runs"] == 2
    with pytest.raises(ValueError):
        pr.observe(2, 0, q, k)  # step out of range
    # a step given as a numeric string is taken as its int (the error prefix of the
    # call was formatted with %d from the raw argument and raised TypeError after it)
    with pytest.raises(ValueError, match=r"profiler observe \(step 5, layer 0\)"):
        pr.observe("5", 0, q, k)


@needs("svoo_profiler_create", "svoo_profiler_observe", "svoo_profiler_result")
def test_profiling_context_manager_roundtrip(tmp_path):
    path = tmp_path / "out" / "my_profile.csv"
    path.parent.mkdir()
    with svoo.profiling(path, num_steps=3, num_layers=2, heads=2, row_step=4) as prof:
        for run in range(2):
            prof.new_run()
            for s in range(3):
                for layer in range(2):
                    q, k, _ = clustered_qkv(H=2, N=256, seed=100 * run + 10 * s + layer)
                    prof.observe(s, layer, q, k)
        assert prof.runs == 2
    assert path.exists()
    p = svoo.Profile.load(path)
    assert p.dims == (3, 2, 2)
    # the file holds the max over runs of each head's density
    exp = np.zeros((3, 2, 2))
    for run in range(2):
        for s in range(3):
            for layer in range(2):
                q, k, _ = clustered_qkv(H=2, N=256, seed=100 * run + 10 * s + layer)
                exp[s, layer] = np.maximum(exp[s, layer], svoo.density(q, k, 0.95, 4)[0])
    np.testing.assert_allclose(p.to_numpy(), exp, atol=1e-4)
    assert prof.profile is not None


def test_profiling_writes_nothing_on_error(tmp_path):
    path = tmp_path / "p.csv"
    with pytest.raises(KeyError):
        with svoo.profiling(path, num_steps=2, num_layers=1, heads=2):
            raise KeyError("boom")
    assert not path.exists()
    with pytest.raises(RuntimeError, match="no self-attention call"):
        with svoo.profiling(path, num_steps=2, num_layers=1, heads=2):
            pass
    assert not path.exists()


@needs("svoo_tensorfile_open", "svoo_safetensors_save", "svoo_npy_save")
def test_tensor_files(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"q": rng.standard_normal((2, 3, 4)).astype(np.float32),
              "k": rng.standard_normal((5,)).astype(np.float16)}
    p = tmp_path / "t.safetensors"
    svoo.save_safetensors(p, arrays)
    back = svoo.load_tensors(p)
    assert set(back) == {"q", "k"}
    for n in arrays:
        np.testing.assert_array_equal(back[n], arrays[n])
    n = tmp_path / "a.npy"
    svoo.save_npy(n, arrays["q"])
    np.testing.assert_array_equal(np.load(n), arrays["q"])
    np.testing.assert_array_equal(svoo.load_tensors(n)[""], arrays["q"])
    with pytest.raises(OSError):
        svoo.load_tensors(tmp_path / "none.npy")

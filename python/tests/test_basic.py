"""Import, version, ABI mirror, status mapping, library lookup."""
import ctypes
import os
import subprocess
import sys

import pytest

import svoo
from svoo import _lib as L

from conftest import PYDIR


def test_version():
    assert svoo.__version__ == "%d.%d.%d" % (
        svoo.version_number // 10000, svoo.version_number // 100 % 100, svoo.version_number % 100)
    assert svoo.__version__.count(".") == 2
    assert os.path.exists(svoo.library_path)


def test_struct_sizes_match_the_library():
    cfg = L.svoo_config()
    L.svoo_config_init(ctypes.byref(cfg), L.METHOD_DENSE)
    assert cfg.size == ctypes.sizeof(L.svoo_config)
    st = L.svoo_stats()
    L.svoo_stats_init(ctypes.byref(st))
    assert st.size == ctypes.sizeof(L.svoo_stats)
    # fields land where C put them: defaults of ALGORITHMS.md
    L.svoo_config_init(ctypes.byref(cfg), L.METHOD_SVOO)
    assert cfg.method == L.METHOD_SVOO
    assert cfg.warmup_step_frac == pytest.approx(0.2)
    assert cfg.warmup_layer_frac == pytest.approx(0.03)
    assert (cfg.reuse_start_step, cfg.reuse_every, cfg.iters) == (11, 20, 2)
    assert (cfg.floor_min, cfg.floor_max) == (pytest.approx(0.15), pytest.approx(0.20))
    assert cfg.seed == 0x5000
    assert (cfg.svg_sample_rows, cfg.svg_block) == (64, 128)
    assert not cfg.log_fn and not cfg.profile
    assert ctypes.sizeof(L.svoo_tensor) == 8 + 4 * 3 + 4 + 64  # padding before shape
    assert ctypes.sizeof(L.svoo_compare_result) == 24


def test_status_names_and_exceptions():
    for i, n in enumerate(L.STATUS_NAMES):
        assert L.status_name(i) == n
    e = L.make_error(L.SVOO_ERR_OUT_OF_MEMORY)
    assert isinstance(e, MemoryError) and isinstance(e, svoo.SvooError)
    assert e.name == "SVOO_ERR_OUT_OF_MEMORY" and e.status == 7
    assert isinstance(L.make_error(L.SVOO_ERR_SHAPE_MISMATCH), ValueError)
    assert isinstance(L.make_error(L.SVOO_ERR_DTYPE_MISMATCH), TypeError)
    assert isinstance(L.make_error(L.SVOO_ERR_IO), OSError)
    assert isinstance(L.make_error(L.SVOO_ERR_NOT_FOUND), LookupError)
    assert isinstance(L.make_error(L.SVOO_ERR_UNSUPPORTED), NotImplementedError)


def test_methods_and_knobs():
    assert svoo.METHODS == ("dense", "svoo", "svg2", "svg")
    for k in ("top_p", "floor_min", "q_clusters", "warmup_step_frac", "num_threads", "ear"):
        assert k in svoo.KNOBS
    for k in ("size", "log_fn", "profile", "cuda_stream", "num_heads", "head_dim"):
        assert k not in svoo.KNOBS


def _run_import(env_path):
    env = dict(os.environ, SVOO_LIBRARY_PATH=env_path, PYTHONPATH=PYDIR)
    return subprocess.run([sys.executable, "-c", "import svoo"], env=env,
                          capture_output=True, text=True, timeout=60)


def test_library_not_found_is_an_import_error(tmp_path):
    missing = str(tmp_path / "nowhere" / "libsvoo.so")
    r = _run_import(missing)
    assert r.returncode != 0
    assert "ImportError" in r.stderr
    assert "cannot load the shared library" in r.stderr
    assert missing in r.stderr and "SVOO_LIBRARY_PATH" in r.stderr


def test_library_path_may_be_a_directory():
    d = os.path.dirname(os.path.abspath(svoo.library_path))
    r = _run_import(d)
    assert r.returncode == 0, r.stderr


def test_library_not_a_library(tmp_path):
    bad = tmp_path / "libsvoo.so"
    bad.write_text("not an ELF file")
    r = _run_import(str(bad))
    assert r.returncode != 0 and "ImportError" in r.stderr and str(bad) in r.stderr


def test_import_does_not_import_torch():
    env = dict(os.environ, PYTHONPATH=PYDIR)
    r = subprocess.run([sys.executable, "-c", "import sys, svoo; print('torch' in sys.modules)"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_numpy_example_runs():
    """python/examples/quickstart_numpy.py, the CPU user's first script, as written"""
    ex = os.path.join(PYDIR, "examples", "quickstart_numpy.py")
    r = subprocess.run([sys.executable, ex], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, SVOO_LIBRARY_PATH=svoo.library_path))
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if "rel-L2 vs dense" in ln]
    assert [ln.split(":")[0] for ln in lines] == ["svoo", "svg2"]
    for ln in lines:
        assert 0 < float(ln.split("density ")[1].split(",")[0]) < 1
        assert float(ln.rsplit(" ", 1)[1]) < 0.3

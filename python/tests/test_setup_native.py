"""python/setup.py: SVOO_NATIVE=OFF (a wheel for other machines) must not bundle the
repository's ../build/libsvoo.so, which is a -march=native build by default."""
import os
import runpy
import shutil

import pytest
import setuptools

HERE = os.path.dirname(os.path.abspath(__file__))
SETUP = os.path.join(os.path.dirname(HERE), "setup.py")


@pytest.fixture
def fake_tree(tmp_path, monkeypatch):
    """tmp/python/setup.py beside tmp/build/libsvoo.so (no CMakeLists.txt: no CMake build)"""
    (tmp_path / "python").mkdir()
    (tmp_path / "build").mkdir()
    shutil.copy(SETUP, str(tmp_path / "python" / "setup.py"))
    (tmp_path / "build" / "libsvoo.so").write_bytes(b"native build")
    monkeypatch.setattr(setuptools, "setup", lambda **kw: None)
    for k in ("SVOO_LIBRARY_PATH", "SVOO_NATIVE", "SVOO_NO_BUNDLE"):
        monkeypatch.delenv(k, raising=False)
    return tmp_path


def load(tree):
    return runpy.run_path(str(tree / "python" / "setup.py"), run_name="setup_under_test")


def test_default_takes_the_repository_build(fake_tree):
    m = load(fake_tree)
    assert m["_find_built"]() == str(fake_tree / "build" / "libsvoo.so")


@pytest.mark.parametrize("off", ["OFF", "off", "0", "NO", "false"])
def test_native_off_skips_the_repository_build(fake_tree, monkeypatch, off):
    monkeypatch.setenv("SVOO_NATIVE", off)
    m = load(fake_tree)
    assert m["_find_built"]() is None


def test_native_off_keeps_an_explicit_library(fake_tree, monkeypatch):
    monkeypatch.setenv("SVOO_NATIVE", "OFF")
    monkeypatch.setenv("SVOO_LIBRARY_PATH", str(fake_tree / "build"))
    m = load(fake_tree)
    assert m["_find_built"]() == str(fake_tree / "build" / "libsvoo.so")

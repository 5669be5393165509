"""Build hook: put libsvoo.so inside the package.

Order: $SVOO_LIBRARY_PATH (a file or a directory), an existing build of this
repository (../build/libsvoo.so; skipped when SVOO_NATIVE=OFF), else a CMake build
of the repository into ../build-python (CPU only unless SVOO_CUDA is set, e.g. SVOO_CUDA=AUTO; for this
machine's CPU unless SVOO_NATIVE=OFF, which a wheel meant for other machines needs).
SVOO_NO_BUNDLE=1 bundles nothing: the package then finds the library at run
time (SVOO_LIBRARY_PATH, ../build, the system path).
Metadata lives in pyproject.toml.
"""
import glob
import os
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _native_off():
    """SVOO_NATIVE set to one of CMake's false values"""
    v = os.environ.get("SVOO_NATIVE")
    return v is not None and v.strip().upper() in ("", "0", "OFF", "NO", "FALSE", "N")


def _find_built():
    env = os.environ.get("SVOO_LIBRARY_PATH")
    if env:
        p = os.path.join(env, "libsvoo.so") if os.path.isdir(env) else env
        if not os.path.exists(p):
            raise SystemExit("setup.py: SVOO_LIBRARY_PATH=%s: no library there" % env)
        return p
    if _native_off():
        # ../build is -march=native unless configured otherwise: a portable wheel
        # builds its own library (build-python)
        return None
    p = os.path.join(ROOT, "build", "libsvoo.so")
    return p if os.path.exists(p) else None


def _cmake_build():
    if not os.path.exists(os.path.join(ROOT, "CMakeLists.txt")) or not shutil.which("cmake"):
        return None
    bdir = os.path.join(ROOT, "build-python")
    cuda = os.environ.get("SVOO_CUDA", "OFF")
    native = os.environ.get("SVOO_NATIVE", "ON")
    subprocess.check_call(["cmake", "-S", ROOT, "-B", bdir, "-DCMAKE_BUILD_TYPE=Release",
                           "-DSVOO_CUDA=%s" % cuda, "-DSVOO_NATIVE=%s" % native])
    subprocess.check_call(["cmake", "--build", bdir, "--target", "svoo", "-j",
                           str(os.cpu_count() or 2)])
    p = os.path.join(bdir, "libsvoo.so")
    return p if os.path.exists(p) else None


class BuildPyWithLib(build_py):
    def run(self):
        super().run()
        if os.environ.get("SVOO_NO_BUNDLE") == "1":
            return
        src = _find_built() or _cmake_build()
        if src is None:
            self.announce("libsvoo not found or built: the package will look for it at run time", 3)
            return
        dst_dir = os.path.join(self.build_lib, "svoo")
        os.makedirs(dst_dir, exist_ok=True)
        for old in glob.glob(os.path.join(dst_dir, "libsvoo.so*")):
            os.remove(old)
        # copy the real file under the name the loader looks for
        shutil.copy2(os.path.realpath(src), os.path.join(dst_dir, "libsvoo.so"))
        self.announce("bundled %s" % src, 2)


class BinaryDistribution(Distribution):
    def has_ext_modules(self):  # platform wheel: it carries a shared library
        return True


setup(cmdclass={"build_py": BuildPyWithLib}, distclass=BinaryDistribution)

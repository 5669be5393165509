"""In-tree PEP 517 backend: setuptools.build_meta without downloads.

pip builds in an isolated environment and installs the backend's requirements
from an index first; offline (Debian's python3 with python3-setuptools and
python3-wheel, no index reachable) that step fails. This backend declares no
requirements and uses the interpreter's own setuptools and wheel, found on
its site-packages paths (appended last, so an isolated environment's own
packages still win).
"""
import site
import sys

for _p in list(getattr(site, "getsitepackages", lambda: [])()) + [
    "/usr/lib/python3/dist-packages",
]:
    if _p not in sys.path:
        sys.path.append(_p)

from setuptools import build_meta as _bm  # noqa: E402

build_wheel = _bm.build_wheel
build_sdist = _bm.build_sdist
prepare_metadata_for_build_wheel = _bm.prepare_metadata_for_build_wheel
if hasattr(_bm, "build_editable"):
    build_editable = _bm.build_editable
    prepare_metadata_for_build_editable = _bm.prepare_metadata_for_build_editable


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []

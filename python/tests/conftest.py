import os
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PYDIR = os.path.dirname(HERE)
REPO = os.path.dirname(PYDIR)
# test the tree's package (an installed one would shadow local edits)
if PYDIR not in sys.path:
    sys.path.insert(0, PYDIR)

import svoo  # noqa: E402


def needs(*symbols):
    """Skip when the library does not export a symbol yet."""
    missing = [s for s in symbols if s in svoo._lib.MISSING]
    return pytest.mark.skipif(bool(missing), reason="libsvoo lacks %s" % ", ".join(missing))


def ref_attention(q, k, v):
    """float64 softmax(q k^T / sqrt(D)) v over [B, H, N, D]."""
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    s = np.einsum("bhnd,bhmd->bhnm", q, k) / np.sqrt(q.shape[-1])
    s -= s.max(-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(-1, keepdims=True)
    return np.einsum("bhnm,bhmd->bhnd", p, v)


def rel_err(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def clustered_qkv(B=1, H=2, N=1024, D=64, clusters=16, seed=0, dtype=np.float32):
    """q = k drawn around a few centres (attention concentrated per cluster)."""
    rng = np.random.default_rng(seed)
    q = np.empty((B, H, N, D), np.float64)
    for b in range(B):
        for h in range(H):
            c = rng.standard_normal((clusters, D)) * 2
            lab = rng.integers(0, clusters, N)
            q[b, h] = c[lab] + rng.standard_normal((N, D)) * 0.5
    k = q.copy()
    v = rng.standard_normal((B, H, N, D))
    return q.astype(dtype), k.astype(dtype), v.astype(dtype)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def quiet():
    """log= callback collecting the library's notes."""
    notes = []
    return notes.append, notes


def _profile_csv():
    for base in (os.path.join(REPO, "..", "shared"), os.path.join(REPO, "shared")):
        p = os.path.join(base, "data", "profiles", "sparsity_wan_1.3B_t2v.csv")
        if os.path.exists(p):
            return os.path.normpath(p)
    return None


PROFILE_CSV = _profile_csv()

"""svoo with numpy only (no torch, CPU): one small video-shaped self-attention
call through SVOO and SVG2 against the exact dense result.

    SVOO_LIBRARY_PATH=build/libsvoo.so python3 python/examples/quickstart_numpy.py
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import svoo  # noqa: E402  (after `pip install ./python` a plain `import svoo`)

geometry = (5, 12, 16)  # latent frames x height x width
H, D = 12, 128
N = geometry[0] * geometry[1] * geometry[2]

# video-like q/k: every token near one of 64 centres per head; float32 [B, H, N, D]
rng = np.random.default_rng(0)
cent = rng.standard_normal((H, 64, D)) * 1.5
x = np.take_along_axis(cent, rng.integers(0, 64, (H, N))[..., None], axis=1)
x += 0.6 * rng.standard_normal((H, N, D))
q = x[None].astype(np.float32)
k = (x + 0.1 * rng.standard_normal((H, N, D)))[None].astype(np.float32)
v = rng.standard_normal((1, H, N, D)).astype(np.float32)

ref = svoo.SparseAttention("dense")(q, k, v, step=0, layer=0)
for method in ("svoo", "svg2"):
    attn = svoo.SparseAttention(method, geometry=geometry, num_steps=50, num_layers=30)
    out = attn(q, k, v, step=25, layer=10)  # step and layer drive warm-up and plan reuse
    rel = np.linalg.norm(out - ref) / np.linalg.norm(ref)
    print(f"{method}: {H} heads x {N} tokens x {D}, selected density "
          f"{attn.last_stats['density']:.3f}, rel-L2 vs dense {rel:.4f}")

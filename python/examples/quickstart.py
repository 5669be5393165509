"""svoo from PyTorch in a few lines: one Wan2.1-1.3B-shaped self-attention
call (bf16, [B, H, N, D] like scaled_dot_product_attention) through SVOO,
compared with PyTorch's SDPA. Runs on CUDA when the library has the CUDA
backend and a GPU is present, else on the CPU at a smaller shape.

    SVOO_LIBRARY_PATH=build/libsvoo.so python3 python/examples/quickstart.py
"""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import svoo  # noqa: E402  (after `pip install ./python` a plain `import svoo`)

cuda = torch.cuda.is_available() and svoo.has_cuda()
dev = "cuda" if cuda else "cpu"
geometry = (21, 45, 80) if cuda else (5, 12, 16)  # latent frames x height x width
H, D = 12, 128
N = geometry[0] * geometry[1] * geometry[2]

# video-like q/k: every token near one of 64 centres per head
g = torch.Generator(device=dev).manual_seed(0)
cent = torch.randn(H, 64, D, device=dev, generator=g) * 1.5
lab = torch.randint(0, 64, (H, N), device=dev, generator=g)
x = torch.gather(cent, 1, lab[..., None].expand(H, N, D)) + 0.6 * torch.randn(H, N, D, device=dev, generator=g)
q = x[None].to(torch.bfloat16)
k = (x + 0.1 * torch.randn(H, N, D, device=dev, generator=g))[None].to(torch.bfloat16)
v = torch.randn(1, H, N, D, device=dev, generator=g).to(torch.bfloat16)



def sdpa(q, k, v):
    """torch's SDPA (torch >= 2.0), else the same softmax(q k^T / sqrt(D)) v in f32"""
    f = getattr(torch.nn.functional, "scaled_dot_product_attention", None)
    if f is not None:
        return f(q, k, v)
    s = q.float() @ k.float().transpose(-1, -2) / q.shape[-1] ** 0.5
    return (s.softmax(-1) @ v.float()).to(q.dtype)


# stats=True: last_stats on CUDA too (a host wait per call; off by default there)
attn = svoo.SparseAttention("svoo", geometry=geometry, num_steps=50, num_layers=30, stats=True)
out = attn(q, k, v, step=25, layer=10)  # step and layer drive warm-up and plan reuse
ref = sdpa(q, k, v)
rel = ((out.float() - ref.float()).norm() / ref.float().norm()).item()
print(f"{dev}: {H} heads x {N} tokens x {D}, selected density {attn.last_stats['density']:.3f}, "
      f"rel-L2 vs SDPA {rel:.4f}")


def timed(fn, reps=5):
    fn()
    if cuda:
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    if cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / reps * 1e3


t_svoo = timed(lambda: attn(q, k, v, step=25, layer=10))
t_sdpa = timed(lambda: sdpa(q, k, v))
print(f"svoo {t_svoo:.1f} ms, SDPA {t_sdpa:.1f} ms: {t_sdpa / t_svoo:.2f}x")

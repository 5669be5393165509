#!/usr/bin/env python3
"""cuDNN SDPA timed two ways in one process, the counterpart of `svoo bench cuda`'s
ms_call and ms_call_queued: a call from an idle GPU (as attention_anchors.py times it)
and the same call queued behind one more cuDNN call (the GPU busy and at its power cap
before it, as inside a model's step). The two kinds alternate, so that drift over the
process falls on both. Prints one JSON object.

Usage (GPU machine, torch with CUDA): python3 tools/device/sdpa_queued.py [--heads 12]
    [--seq 75600] [--dim 128] [--reps 5]
"""
import argparse
import json

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--seq", type=int, default=75600)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, a.heads, a.seq, a.dim, device="cuda", dtype=torch.bfloat16)
               for _ in range(3))
    times = {"idle": [], "queued": []}
    with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
        call = lambda: F.scaled_dot_product_attention(q, k, v)
        call()
        torch.cuda.synchronize()
        for _ in range(a.reps):
            for kind in ("idle", "queued"):
                if kind == "queued":
                    call()  # the lead call, not timed
                t0 = torch.cuda.Event(enable_timing=True)
                t1 = torch.cuda.Event(enable_timing=True)
                t0.record()
                call()
                t1.record()
                torch.cuda.synchronize()
                times[kind].append(t0.elapsed_time(t1))
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    print(json.dumps({"name": "sdpa_cudnn", "heads": a.heads, "seq": a.seq, "dim": a.dim,
                      "reps": a.reps, "ms_idle": round(med["idle"], 3),
                      "ms_queued": round(med["queued"], 3)}), flush=True)


if __name__ == "__main__":
    main()

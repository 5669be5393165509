#!/usr/bin/env python3
"""tools/device/bench_table.py : the table of an acceptance run (tools/device/bench.sh).

Reads DIR/bench.jsonl (one `svoo bench cuda --json` object a line, with a "tag") and
DIR/anchors_before.txt, DIR/anchors_after.txt, DIR/anchors40.txt (attention_anchors.py
output) and prints one markdown row per call: density, plan, kernel (effective TFLOP/s),
whole call, its ratio to cuDNN SDPA measured before and after the calls (40 heads: the
40-head figure), the call queued behind a dense one and our dense path (each with its ratio
to the mean of those cuDNN figures: queuing moves cuDNN's call by < 0.1 ms, docs/CUDA.md),
rel-L2, recall. Missing files or fields are named, not guessed."""
import json
import os
import sys

COLS = ("density", "ms_plan", "ms_attend", "attend_eff_tflops", "ms_call", "ms_call_queued",
        "ms_dense", "rel_l2_vs_dense", "recall")


def num(r, k):
    """r[k] when it is a number, else None"""
    v = r.get(k)
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def fmt(v, f):
    return "-" if v is None else f % v


def vs(ms, refs):
    """ms with its ratio to the mean of the cuDNN figures refs (those measured)"""
    refs = [c for c in refs if c]
    if ms is None:
        return "-"
    return "%.2f (%.2fx)" % (ms, sum(refs) / len(refs) / ms) if refs and ms else "%.2f" % ms


def anchors(path):
    """cuDNN ms and Flex {density: TFLOP/s} of one attention_anchors.py output"""
    cudnn, flex = None, {}
    if not os.path.exists(path):
        return cudnn, flex
    for line in open(path):
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if not isinstance(r, dict):
            continue
        if r.get("name") == "sdpa_cudnn" and num(r, "ms") is not None:
            cudnn = r["ms"]
        elif r.get("name") == "flex_block128_random" and None not in (num(r, "density"),
                                                                      num(r, "tflops")):
            flex[r["density"]] = r["tflops"]
    return cudnn, flex


def main(d):
    before, fb = anchors(os.path.join(d, "anchors_before.txt"))
    after, fa = anchors(os.path.join(d, "anchors_after.txt"))
    c40, f40 = anchors(os.path.join(d, "anchors40.txt"))
    for name, v in (("cuDNN before", before), ("cuDNN after", after), ("cuDNN 40 heads", c40)):
        print("%s: %s" % (name, "%.3f ms" % v if v else "not measured"))
    for name, f in (("Flex before", fb), ("Flex after", fa), ("Flex 40 heads", f40)):
        if f:
            print("%s: %s" % (name, ", ".join("%.1f at %.2f" % (t, k) for k, t in sorted(f.items()))))
    print()
    print("| call | density | plan ms | kernel ms (eff. TFLOP/s) | whole call ms | vs cuDNN "
          "(before / after) | queued ms (vs cuDNN) | own dense ms (vs cuDNN) | rel-L2 | recall |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    path = os.path.join(d, "bench.jsonl")
    if not os.path.exists(path):
        sys.exit("bench_table.py: %s missing" % path)
    near_flex = []
    for line in open(path):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except ValueError:
            r = None
        if not isinstance(r, dict):
            print("| (unreadable line: %s) |" % line.strip()[:80])
            continue
        near_flex.append(r)
        v = {k: num(r, k) for k in COLS}
        missing = [k for k in COLS if v[k] is None]
        tag = str(r.get("tag", "?")) + (" (missing: %s)" % ", ".join(missing) if missing else "")
        ref = [c40] if r.get("heads") == 40 else [before, after]
        call = v["ms_call"]
        ratio = " / ".join("%.2fx" % (c / call) if c and call else "-" for c in ref)
        print("| %s | %s | %s | %s (%s) | %s | %s | %s | %s | %s | %s |" % (
            tag, fmt(v["density"], "%.4f"), fmt(v["ms_plan"], "%.2f"), fmt(v["ms_attend"], "%.2f"),
            fmt(v["attend_eff_tflops"], "%.1f"), fmt(call, "%.2f"), ratio,
            vs(v["ms_call_queued"], ref), vs(v["ms_dense"], ref),
            fmt(v["rel_l2_vs_dense"], "%.4f"), fmt(v["recall"], "%.4f")))
    flex_table(near_flex, fb, fa)


def flex_table(calls, fb, fa):
    """the 12-head calls whose density is within 10% of one Flex measured (its random 128 x 128
    blocks at 0.05 / 0.15 / 0.30): our kernel's effective TFLOP/s against Flex's there"""
    rows = []
    for r in calls:
        d, t = num(r, "density"), num(r, "attend_eff_tflops")
        ks = sorted(set(fb) | set(fa), key=lambda k: abs(k - d) if d else 0)
        if r.get("heads") == 40 or d is None or t is None or not ks or abs(ks[0] - d) > 0.1 * ks[0]:
            continue
        f = [x[ks[0]] for x in (fb, fa) if ks[0] in x]
        rows.append("| %s | %.4f | %.1f | %.4f | %s | %.2fx |" % (
            r.get("tag", "?"), d, t, ks[0], " / ".join("%.1f" % x for x in f), t * len(f) / sum(f)))
    if rows:
        print()
        print("| call | density | kernel eff. TFLOP/s | Flex at density | Flex eff. TFLOP/s (before / after) "
              "| vs Flex (mean) |")
        print("|---|---|---|---|---|---|")
        print("\n".join(rows))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: bench_table.py DIR")
    main(sys.argv[1])

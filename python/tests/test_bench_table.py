"""tools/device/bench_table.py on hand-made inputs: damaged lines and fields are named
in the table, never a traceback that loses the rows after them."""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(os.path.dirname(os.path.dirname(HERE)), "tools", "device", "bench_table.py")

FIELDS = {"density": 0.1234, "ms_plan": 1.2, "ms_attend": 3.4, "attend_eff_tflops": 500.1,
          "ms_call": 5.0, "ms_call_queued": 4.9, "ms_dense": 12.0, "rel_l2_vs_dense": 0.01,
          "recall": 0.95}


def run(d):
    p = subprocess.run([sys.executable, SCRIPT, str(d)], capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def line(tag, **kw):
    r = dict(FIELDS, tag=tag, heads=12)
    r.update(kw)
    return json.dumps({k: v for k, v in r.items() if v != "drop"})


def write(d, name, text):
    with open(os.path.join(str(d), name), "w") as f:
        f.write(text)


def test_good_input(tmp_path):
    write(tmp_path, "anchors_before.txt", '{"name":"sdpa_cudnn","ms":10.0}\nnot json\n')
    write(tmp_path, "anchors_after.txt", '{"name":"sdpa_cudnn","ms":10.0}\n')
    write(tmp_path, "bench.jsonl", line("a") + "\n")
    rc, out, err = run(tmp_path)
    assert rc == 0, err
    assert ("| a | 0.1234 | 1.20 | 3.40 (500.1) | 5.00 | 2.00x / 2.00x | 4.90 (2.04x) | "
            "12.00 (0.83x) | 0.0100 | 0.9500 |") in out


def test_ratio_refs(tmp_path):
    # the queued and dense ratios take the mean of the cuDNN figures measured (one here),
    # the 40-head call the 40-head figure
    write(tmp_path, "anchors_after.txt", '{"name":"sdpa_cudnn","ms":9.8}\n')
    write(tmp_path, "anchors40.txt", '{"name":"sdpa_cudnn","ms":40.0}\n')
    write(tmp_path, "bench.jsonl", line("b") + "\n" + line("h40", heads=40, ms_call=20.0,
                                                           ms_call_queued=16.0) + "\n")
    rc, out, err = run(tmp_path)
    assert rc == 0, err
    assert "| b | 0.1234 | 1.20 | 3.40 (500.1) | 5.00 | - / 1.96x | 4.90 (2.00x) |" in out
    assert "| h40 | 0.1234 | 1.20 | 3.40 (500.1) | 20.00 | 2.00x | 16.00 (2.50x) |" in out


def test_damaged_lines_and_fields(tmp_path):
    # an anchors line without its figure, a list instead of an object
    write(tmp_path, "anchors_before.txt", '{"name":"sdpa_cudnn"}\n[1, 2]\n')
    write(tmp_path, "anchors_after.txt", '{"name":"flex_block128_random","density":0.15}\n')
    write(tmp_path, "anchors40.txt", "42\n")
    rows = [line("first"), "", "[1, 2]", "42", line("nofield", ms_call_queued="drop",
            recall="drop"), line("nullcall", ms_call=None), '{"tag":"x","density":nan}',
            line("last")]
    write(tmp_path, "bench.jsonl", "\n".join(rows) + "\n")
    rc, out, err = run(tmp_path)
    assert rc == 0, err
    assert "Traceback" not in err
    assert "cuDNN before: not measured" in out
    assert "| first |" in out and "| last |" in out
    assert out.count("unreadable line") == 3  # the list, the number, the nan; not the blank
    nf = [x for x in out.splitlines() if x.startswith("| nofield")][0]
    assert "missing: ms_call_queued, recall" in nf
    nc = [x for x in out.splitlines() if x.startswith("| nullcall")][0]
    assert "missing: ms_call" in nc


def test_missing_files(tmp_path):
    rc, out, err = run(tmp_path)
    assert rc != 0 and "bench.jsonl missing" in err
    assert "cuDNN before: not measured" in out

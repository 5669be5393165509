#!/usr/bin/env python3
"""phase_prof.py : where the Hopper attention kernel's warps spend their time.

Writes an instrumented copy of cuda/attend_sm90.cu: clock() deltas around every wait of the
consumers (their K / V stages, their turn on the tensor cores, their GEMMs), their Q load and
output, and around the producer's table building, its waits for free stages and its EAR
pseudo-key phase, read by thread 0 of each warpgroup and summed over the blocks of a launch;
a kernel launched after each launch prints one line per role (PROF ... role 0 = producer,
1 / 2 = the consumers; the next launch then waits for it). The instrumentation slows the kernel (the dense path by 31% on an H200, sixteenth
stop), so its shares are indicative, not a timing.

  python3 dev/cuda/phase_prof.py write build-cuda-dev/attend_sm90_prof.cu
  python3 dev/cuda/phase_prof.py summary LOG ...     # shares per launch kind and role

The harness:  SM90_SRC=build-cuda-dev/attend_sm90_prof.cu SM90_FLAGS=-DSVOO_DEV_PROF TAG=prof \
              sh dev/cuda/build.sh   (then build-cuda-dev/attend_test_prof bench ...)
The library:  compile that file with the library's flags, -Icuda and -DSVOO_DEV_PROF in place
of cuda/attend_sm90.cu (the sixteenth stop linked it into a copy of libsvoo.a for `svoo bench
cuda`). Not under cuda/: the build globs nothing there, but a stray copy confuses readers.
A pattern that no longer matches the kernel's source stops the script with its text.
"""
import collections
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
CONSUMER = ["q load", "first K wait", "K wait", "V wait", "pseudo K wait", "pseudo V wait",
            "turn wait", "S wait", "P V wait", "last V wait", "output", "items", "own tiles",
            "pseudo tiles", "cycles", "-"]
PRODUCER = ["-", "tables", "free K wait", "free V wait", "pseudo phase", "pseudo free waits",
            "pseudo list", "end wait", "-", "-", "-", "items", "-", "-", "cycles", "-"]

DECL = r'''
#ifdef SVOO_DEV_PROF
__device__ unsigned long long g_prof[2][3][16];
static __shared__ unsigned long long s_prof[3][16];
#endif
'''
MACROS = r'''
#ifdef SVOO_DEV_PROF
#define PROF_ROLE (threadIdx.x < 128 ? 0 : (int)(threadIdx.x / 128))
#define PROF_ME ((threadIdx.x & 127) == 0)
#define PS(v) const uint32_t v##_ = (uint32_t)clock()
#define PE(v, cat) do { if (PROF_ME) s_prof[PROF_ROLE][cat] += (uint32_t)clock() - v##_; } while (0)
#define PC(cat, n) do { if (PROF_ME) s_prof[PROF_ROLE][cat] += (n); } while (0)
#else
#define PS(v) do {} while (0)
#define PE(v, cat) do {} while (0)
#define PC(cat, n) do {} while (0)
#endif'''
START = r'''#ifdef SVOO_DEV_PROF
    if (threadIdx.x < 48) s_prof[threadIdx.x / 16][threadIdx.x % 16] = 0;
    __syncthreads();
    if (PROF_ME) s_prof[PROF_ROLE][14] = clock64();
#endif
'''
END = r'''#ifdef SVOO_DEV_PROF
    if (PROF_ME) {
        const int role = PROF_ROLE;
        s_prof[role][14] = clock64() - s_prof[role][14];
        for (int c = 0; c < 16; c++) atomicAdd(&g_prof[UNI][role][c], s_prof[role][c]);
    }
#endif
'''
# printed by a kernel of its own after each launch: a printf in the attention kernel is a
# call, across which ptxas serialises every wgmma of the kernel (C7510)
DUMP = r'''
#ifdef SVOO_DEV_PROF
#include <cstdio>
__global__ void svoo_prof_dump(int ear, int tma, int pin) {
    for (int u = 0; u < 2; u++)
        for (int r = 0; r < 3; r++) {
            unsigned long long *g = g_prof[u][r];
            if (g[14] == 0) continue;
            printf("PROF uni %d ear %d tma %d pin %d role %d:"
                   " %llu %llu %llu %llu %llu %llu %llu %llu"
                   " %llu %llu %llu %llu %llu %llu %llu %llu\n",
                   u, ear, tma, pin, r, g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8],
                   g[9], g[10], g[11], g[12], g[13], g[14], g[15]);
            for (int c = 0; c < 16; c++) g[c] = 0;
        }
}
#endif
'''
LAUNCH = r'''
#ifdef SVOO_DEV_PROF
    svoo_prof_dump<<<1, 1, 0, s>>>((int)EAR, (int)TMA, (int)PIN); /* the next launch waits */
#endif'''


def write(out):
    lines = open(os.path.join(ROOT, "cuda", "attend_sm90.cu")).read().split("\n")

    def find(sub, start=0):
        for i in range(start, len(lines)):
            if sub in lines[i]:
                return i
        sys.exit("phase_prof.py: not found in cuda/attend_sm90.cu: " + sub)

    def wrap(i, cat, name):
        ind = lines[i][:len(lines[i]) - len(lines[i].lstrip())]
        lines[i] = "%sPS(%s); %s PE(%s, %s);" % (ind, name, lines[i].strip(), name, cat)

    def after(i, text):
        lines[i] += text

    def before(i, text):
        lines[i] = text + "\n" + lines[i]

    # consumers
    ci = find("for (int ti = blockIdx.x; ti < ntiles; ti = next_item<DYN>(ti, nxt)) {",
              find("__device__ __forceinline__ void consumer("))
    after(find("        if (active) {", ci), " PS(tq); PC(11, 1);")
    after(find("            named_bar(2 + cw, 128);", ci), " PE(tq, 0);")
    k0 = "mbar_wait(bars + Bars<D>::full_k + 8 * kst, (kn / STAGES) & 1);"
    i = find(k0, ci)
    wrap(i, 1, "t1")
    after(find("            have = true;", ci), " PC(12, 1);")
    i = find(k0, i + 1)
    wrap(i, "(BIAS ? 4 : 2)", "t2")
    v0 = "mbar_wait(bars + Bars<D>::full_v + 8 * pvst, (pvn / STAGES) & 1);"
    i = find(v0, i)
    wrap(i, "(BIAS ? 5 : 3)", "t3")
    i = find("if (pp) named_bar(5 + cw, 256);", i)
    wrap(i, 6, "t4")
    i = find("wgmma_wait<1>();", i)
    wrap(i, 7, "t5")
    i = find("wgmma_wait<0>();", i)
    wrap(i, 8, "t6")
    i = find("pvn = vn++;", i)
    after(i, " PC(BIAS ? 13 : 12, 1);")
    i = find(v0, i)
    wrap(i, 9, "t7")
    i = find("/* epilogue: normalise, stage in this warpgroup", i)
    after(i, "\n        PS(te);")
    after(find("named_bar(2 + cw, 128); /* the Q rows are reused by the next work item */", i),
          " PE(te, 10);")
    # producer
    pi = find("producer(const svoo_cuda_attend_params &p")
    i = find("const int total = build_union<CAP>(", pi)
    before(i, "            PS(tb);")
    before(find("key_tiles(total, common, nmem, 0);", i), "            PE(tb, 1);")
    i = find("                int whole = 0;", pi)
    after(i, " PS(tb);")
    before(find("                key_tiles(total, total, 0, whole);", i), "                PE(tb, 1);")
    wrap(find("mbar_wait(bars + Bars<D>::empty_v + 8 * st, ((vn / STAGES) & 1) ^ 1);", pi), 3, "tv")
    ek = "mbar_wait(bars + Bars<D>::empty_k + 8 * st, ((kn / STAGES) & 1) ^ 1);"
    wrap(find(ek, pi), 2, "tk")
    i = find("        if constexpr (EAR) { /* a union item", pi)
    after(i, " PS(tp);")
    i = find("            vn += n;", i)
    after(i, " PE(tp, 4);")
    i = find(ek, i)
    wrap(i, 7, "tz")
    after(find("volatile int *next = reinterpret_cast<volatile int *>(smem + S::next)", i),
          " PC(11, 1);")
    # the EAR pseudo-key phase
    qi = find("__device__ __noinline__ uint32_t pseudo_tiles(")
    after(find("    uint32_t n = 0;", qi), " PS(tl);")
    before(find("        for (int t = 0; t * BN < total; t++, n++) {", qi), "        PE(tl, 6);")
    wrap(find("mbar_wait(bars + Bars<D>::empty_k + 8 * st, ((ku / STAGES) & 1) ^ 1);", qi), 5, "ta")
    wrap(find("mbar_wait(bars + Bars<D>::empty_v + 8 * st, ((vu / STAGES) & 1) ^ 1);", qi), 5, "tw")
    # declarations (outside the anonymous namespace: the runtime registers them), macros,
    # kernel start and end
    after(find("template <bool TMA, bool EAR> constexpr bool kLean"), MACROS)
    ki = find("    attend90_kernel(const svoo_cuda_attend_params p")
    i = find("    __syncthreads();", ki)
    before(i, START.rstrip("\n"))
    before(find("    end_after_first();", i), END.rstrip("\n"))
    i = find("e = cudaLaunchKernelEx(&cfg, attend90_kernel<D, T, LSE, UNI, TMA, EAR, PIN>", ki)
    after(find("cudaGetErrorString(e));", i), LAUNCH)
    text = "\n".join(lines)
    ns = text.index("\nnamespace {")
    text = text[:ns] + DECL + DUMP + text[ns:]
    open(out, "w").write(text)


def summary(paths):
    agg = collections.defaultdict(lambda: [0] * 16)
    for path in paths:
        for line in open(path):
            m = re.match(r"PROF uni (\d) ear (\d) tma (\d) pin (\d) role (\d): (.*)", line)
            if not m:
                continue
            key = m.groups()[:5]
            vals = [int(x) for x in m.group(6).split()]
            acc = agg[key]
            for j in range(16):
                acc[j] += vals[j]
    for key in sorted(agg):
        acc, role = agg[key], int(key[4])
        names = PRODUCER if role == 0 else CONSUMER
        cyc = acc[14] or 1
        shares = ", ".join("%s %.1f%%" % (names[j], 100.0 * acc[j] / cyc)
                           for j in range(11) if acc[j] and names[j] != "-")
        counts = ", ".join("%s %d" % (names[j], acc[j]) for j in (11, 12, 13) if names[j] != "-")
        print("uni %s ear %s tma %s pin %s role %s: %s; %s" % (key + (shares, counts)))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "write":
        write(sys.argv[2])
    elif len(sys.argv) >= 3 and sys.argv[1] == "summary":
        summary(sys.argv[2:])
    else:
        sys.exit(__doc__)

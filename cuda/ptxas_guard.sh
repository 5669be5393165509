#!/bin/sh
# cuda/ptxas_guard.sh COMPILER ARGS... : the CUDA compiler launcher of svoo_cuda (cuda/cuda.cmake).
# Runs the compile and fails it when ptxas serialises wgmma ("wgmma.mma_async instructions are
# serialized due to ...", C7510 / C7512 / C7520 ...). ptxas prints that as info, not as a
# warning, so -Werror misses it, and the Hopper kernels would then run several times slower with
# correct results: e.g. the lean D = 128 consumers have < 8 registers to spare
# (docs/REVIEW_2026-12-02_LEAN_QREG.md, F1). The object is removed, so the next build retries.
out=$("$@" 2>&1)
rc=$?
[ -n "$out" ] && printf '%s\n' "$out" >&2
[ "$rc" -eq 0 ] || exit "$rc"
if printf '%s\n' "$out" | grep -q 'wgmma[._a-z0-9]* instructions are serialized'; then
    obj=
    prev=
    for a in "$@"; do
        [ "$prev" = "-o" ] && obj=$a
        prev=$a
    done
    [ -n "$obj" ] && rm -f "$obj"
    echo "ptxas_guard: ptxas serialised wgmma (above): a Hopper kernel lost its overlap of the tensor cores" >&2
    exit 1
fi
exit 0

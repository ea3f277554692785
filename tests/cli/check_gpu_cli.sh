#!/usr/bin/env bash
# check_gpu_cli.sh — `make check-gpu`'s script (tests/gpu/check_gpu.sh) on a machine without a GPU.
# GPU time is scarce and a check on it short; a script that no longer parses, or a build path
# that no longer compiles, must show here and not there. Checked:
#   - the normal path (make check-gpu-build) builds, then stops with exit 3 and one line naming the
#     missing GPU, and writes its log;
#   - the bare-machine path (no make, no OpenBLAS: nvcc and gcc called directly, the checker's own
#     sgemm) builds the library and both checkers, which then run their CPU-backend cases.
# On a machine with a GPU the script would run the whole check (minutes): nothing is checked there.
set -uo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tpdiff-checkgpu.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

check() { # check NAME CONDITION-RESULT(0=ok) DETAIL
  if [ "$2" -eq 0 ]; then echo "PASS $1"; else echo "FAIL $1: $3"; fi
}

if command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
  echo "check_gpu_cli: this machine has a GPU; run make check-gpu instead"
  exit 0
fi
if ! command -v nvcc >/dev/null && [ ! -x /usr/local/cuda/bin/nvcc ]; then
  echo "check_gpu_cli: no nvcc here; nothing to build"
  exit 0
fi

# expect_no_gpu NAME OUT_DIR STDOUT RC: exit 3, the one "no GPU" line, a log with the build in it
expect_no_gpu() {
  local name=$1 out=$2 stdout=$3 rc=$4 ok=0 why=""
  [ "$rc" -eq 3 ] || { ok=1; why="exit $rc, expected 3"; }
  grep -q '^check_gpu: no GPU backend could be loaded (exit 3): ' "$stdout" || { ok=1; why="$why; no 'no GPU backend' line"; }
  grep -q '^check_gpu: built .*libtpdiff_cuda.so' "$out/check_gpu.log" || { ok=1; why="$why; the log lacks the build line"; }
  [ ! -e "$out/check_kernels.out" ] || { ok=1; why="$why; check_kernels.out left behind"; }
  check "$name: built, then exit 3 naming the missing GPU" $ok "$why; last lines: $(tail -3 "$stdout" | tr '\n' '|')"
}

mkdir -p "$tmp/normal"
OUT="$tmp/normal" bash tests/gpu/check_gpu.sh >"$tmp/normal.stdout" 2>&1
expect_no_gpu "check_gpu.sh" "$tmp/normal" "$tmp/normal.stdout" $?

# the bare-machine path, into its own build folder (removed first: a stale build would hide a broken one)
direct=build/gpucheck-direct
rm -rf "$direct"
mkdir -p "$tmp/direct"
CHECK_GPU_FORCE_FALLBACK=1 CHECK_GPU_FORCE_DIRECT=1 CHECK_GPU_OWN_CBLAS=1 OUT="$tmp/direct" \
  bash tests/gpu/check_gpu.sh >"$tmp/direct.stdout" 2>&1
rc=$?
grep -q '^check_gpu: building without make in build/gpucheck-direct/' "$tmp/direct.stdout"
check "check_gpu.sh without make or OpenBLAS: took the direct build" $? "$(head -5 "$tmp/direct.stdout" | tr '\n' '|')"
expect_no_gpu "check_gpu.sh without make or OpenBLAS" "$tmp/direct" "$tmp/direct.stdout" $rc
for prog in check_kernels check_model; do
  args="--cpu --quick"
  [ "$prog" = check_model ] && args="$args --steps 2"
  if [ -x "$direct/tests/gpu/$prog" ]; then
    # shellcheck disable=SC2086
    "$direct/tests/gpu/$prog" $args >"$tmp/$prog.out" 2>&1
    prc=$?
    summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$tmp/$prog.out" | tail -1)
    [ "$prc" -eq 0 ] && [ -n "$summary" ] && [ "${summary#* passed, }" = "0 failed" ] && [ "${summary%% *}" -gt 0 ]
    check "direct-built $prog (own sgemm) $args: $summary" $? "exit $prc; $(grep -m3 '^FAIL' "$tmp/$prog.out" | tr '\n' '|')"
  else
    check "direct-built $prog exists" 1 "$direct/tests/gpu/$prog was not built"
  fi
done
rm -rf "$direct"

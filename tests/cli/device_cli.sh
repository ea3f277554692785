#!/usr/bin/env bash
# device_cli.sh — train.device (and tpdiff-sample's --device) on a machine without a GPU, as a user
# meets it: the binaries have no CUDA link dependency; `cuda` is refused with one line, exit code 2
# and nothing written; `auto` runs on the CPU after a one-line notice; and every way the CUDA backend library can be wrong
# (missing, not a library, no entry point, no GPU behind it, another backend ABI, a table with holes)
# is one line naming the library, never a crash. The bad libraries are built here from a few lines of
# C, as bad input files are written by the other tests.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin/tpdiff-train}
bin_dir=$(dirname "$BIN")
CC=${CC:-gcc}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tpdiff-device.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

check() { # check NAME CONDITION-RESULT(0=ok) DETAIL
  if [ "$2" -eq 0 ]; then echo "PASS $1"; else echo "FAIL $1: $3"; fi
}

# refused NAME SUBSTRING [ENV=VALUE...]: tpdiff-train --train.device=cuda must exit 2 with exactly one
# stderr line containing SUBSTRING, and write nothing.
refused() {
  local name=$1 needle=$2
  shift 2
  local out="$tmp/out-$RANDOM"
  env "$@" "$BIN" configs/tiny.yaml --train.device=cuda --train.steps=1 --train.out="$out" >"$tmp/stdout" \
    2>"$tmp/stderr"
  local rc=$? lines ok=0 why=""
  lines=$(wc -l <"$tmp/stderr")
  [ "$rc" -eq 2 ] || { ok=1; why="exit $rc, expected 2"; }
  [ "$lines" -eq 1 ] || { ok=1; why="$why; $lines stderr lines"; }
  grep -qF -- "$needle" "$tmp/stderr" || { ok=1; why="$why; message lacks '$needle'"; }
  [ ! -e "$out" ] || { ok=1; why="$why; $out was created"; }
  check "train.device=cuda: $name: refused in one line (exit $rc), nothing written" $ok \
    "$why: $(head -c 400 "$tmp/stderr")"
}

# ---- no CUDA link dependency ---------------------------------------------------------------------
for b in tpdiff-train tpdiff-sample tpdiff-export tpdiff-synth tpdiff-prep; do
  [ -x "$bin_dir/$b" ] || continue
  deps=$(ldd "$bin_dir/$b" 2>&1 | grep -iE 'libcuda|libcudart|libcublas|libnccl|libnvidia')
  [ -z "$deps" ]; check "$b links no CUDA library (the backend is dlopen'ed)" $? "$deps"
done

if [ -e /dev/nvidiactl ] || [ -e /dev/nvidia0 ]; then
  echo "# a GPU driver is present here: the cases below are for machines without one"
  exit 0
fi

# ---- no GPU: cuda refused, auto falls back -------------------------------------------------------
refused "no GPU on this machine" "train.device=cuda: CUDA backend: "
out="$tmp/auto"
"$BIN" configs/tiny.yaml --train.device=auto --train.steps=2 --train.out="$out" >"$tmp/auto.log" 2>"$tmp/auto.err"
rc=$?
ok=0
[ "$rc" -eq 0 ] && [ "$(wc -l <"$tmp/auto.err")" -eq 1 ] && grep -q "^tpdiff-train: train.device=auto: CUDA backend: .*; running on the CPU$" "$tmp/auto.err" &&
  grep -q "^# backend: cpu" "$tmp/auto.log" && [ -f "$out/config.yaml" ] || ok=1
check "train.device=auto without a GPU: one notice line, then the run on the CPU (exit $rc)" $ok \
  "$(head -c 400 "$tmp/auto.err")"
# tpdiff-sample's --device, on the checkpoint of that run
SAMPLE=$bin_dir/tpdiff-sample
ckpt=$(ls "$out"/ckpt-*.h5 2>/dev/null | tail -1)
"$SAMPLE" "$ckpt" --out "$tmp/s-cuda" --device cuda >/dev/null 2>"$tmp/s-cuda.err"
rc=$?
ok=0
[ "$rc" -eq 2 ] && [ "$(wc -l <"$tmp/s-cuda.err")" -eq 1 ] && grep -q "^tpdiff-sample: --device=cuda: CUDA backend: " "$tmp/s-cuda.err" &&
  [ ! -e "$tmp/s-cuda" ] || ok=1
check "tpdiff-sample --device cuda without a GPU: refused in one line (exit $rc), nothing written" $ok \
  "${ckpt:-no checkpoint}: $(head -c 400 "$tmp/s-cuda.err")"
"$SAMPLE" "$ckpt" --out "$tmp/s-auto" --device auto --steps 2 --count 1 >/dev/null 2>"$tmp/s-auto.err"
rc=$?
ok=0
[ "$rc" -eq 0 ] && [ "$(wc -l <"$tmp/s-auto.err")" -eq 1 ] && grep -q "^tpdiff-sample: --device=auto: .*; running on the CPU$" "$tmp/s-auto.err" &&
  [ -f "$tmp/s-auto/video-00.gif" ] || ok=1
check "tpdiff-sample --device auto without a GPU: one notice line, then the videos (exit $rc)" $ok \
  "$(head -c 400 "$tmp/s-auto.err")"

# ---- a wrong library: each failure is one line that names it ---------------------------------------
refused "TPDIFF_CUDA_LIB names no file" "TPDIFF_CUDA_LIB=$tmp/none.so does not exist" TPDIFF_CUDA_LIB="$tmp/none.so"
printf 'not a shared library\n' >"$tmp/text.so"
refused "a file that is not a library" "cannot load $tmp/text.so: " TPDIFF_CUDA_LIB="$tmp/text.so"

# fixture LIBNAME C-BODY: a shared library built from the C below (backend.h included)
fixture() {
  {
    echo '#include <stdio.h>'
    echo '#include "kernels/backend.h"'
    echo "$2"
  } >"$tmp/$1.c"
  $CC -shared -fPIC -I. "$tmp/$1.c" -o "$tmp/$1.so" 2>"$tmp/$1.cc.err" || echo "FAIL building the fixture $1: $(head -c 300 "$tmp/$1.cc.err")"
}
fixture no_entry 'int tpdiff_something_else(void) { return 0; }'
refused "a library without the entry point" "$tmp/no_entry.so has no symbol tpdiff_cuda_backend" \
  TPDIFF_CUDA_LIB="$tmp/no_entry.so"
fixture no_gpu '
__attribute__((visibility("default"))) const tpdiff_backend *tpdiff_cuda_backend(char *err, size_t n) {
  snprintf(err, n, "fixture: no device behind this library");
  return NULL;
}'
refused "a library that finds no GPU says why" "CUDA backend: fixture: no device behind this library" \
  TPDIFF_CUDA_LIB="$tmp/no_gpu.so"
fixture old_abi '
static tpdiff_backend table = {.abi = TPDIFF_BACKEND_ABI - 1, .name = "cuda", .device = "fixture"};
__attribute__((visibility("default"))) const tpdiff_backend *tpdiff_cuda_backend(char *err, size_t n) {
  (void)err, (void)n;
  return &table;
}'
abi=$(sed -n 's/^#define TPDIFF_BACKEND_ABI \([0-9]*\).*/\1/p' kernels/backend.h)
refused "a library of another backend ABI" "speaks backend ABI $((abi - 1)), this binary $abi: rebuild both with make" \
  TPDIFF_CUDA_LIB="$tmp/old_abi.so"
fixture holes '
static tpdiff_backend table = {.abi = TPDIFF_BACKEND_ABI, .name = "cuda", .device = "fixture"};
__attribute__((visibility("default"))) const tpdiff_backend *tpdiff_cuda_backend(char *err, size_t n) {
  (void)err, (void)n;
  return &table;
}'
refused "a library whose table has holes" "backend table lacks alloc (stale library?)" TPDIFF_CUDA_LIB="$tmp/holes.so"

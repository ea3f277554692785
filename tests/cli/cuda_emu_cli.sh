#!/usr/bin/env bash
# cuda_emu_cli.sh — tpdiff-train and tpdiff-sample with train.device: cuda, as a user runs them, on the
# CUDA backend compiled for the CPU (tests/emu: libtpdiff_cuda_emu.so, picked up through
# $TPDIFF_CUDA_LIB as the real library would be). Everything of the GPU path but the GPU itself:
#   - bf16 training on the pyramid (K = 3): the backend and memory plan lines, falling loss;
#   - a run stopped at a checkpoint and continued ends bit-identical to one that never stopped;
#   - tpdiff-sample --device cuda gives the CPU's videos (fp32 sampling, 1e-5);
#   - a config that cannot fit is refused in one line naming the key, with nothing written;
#   - the memory plan the run prints covers the device memory it then holds at its peak, the
#     sampling round at its end included;
#   - two MPI ranks (the gradient through host memory, as without NCCL) give the losses of one rank
#     with both microbatches.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN_DIR=${BIN_DIR:-bin}
LIB=${EMU_LIB:-build/tests/emu/libtpdiff_cuda_emu.so}
PY=${PY:-/usr/bin/python3}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tpdiff-cudaemu.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
source tests/ckpt/ckpt_common.sh

[ -e "$LIB" ] || { echo "FAIL the emulated CUDA backend $LIB was not built (make test-build)"; exit 1; }
export TPDIFF_CUDA_LIB=$PWD/$LIB
export TPDIFF_NCCL_LIB=$tmp/no-nccl.so # NCCL needs a real GPU: the reduction goes through the host
export OMP_NUM_THREADS=1

train=("$BIN_DIR/tpdiff-train" configs/tiny.yaml --train.device=cuda --train.precision=bf16 --pyramid.stages=3
  --train.ckpt_every=4 --sample.count=1)

# ---- bf16 training on the pyramid ----------------------------------------------------------------
"${train[@]}" --train.steps=8 --train.out="$tmp/straight" >"$tmp/straight.log" 2>&1
rc=$?
first=$(awk -F'\t' '$1 == 1 {print $2}' "$tmp/straight/log.tsv" 2>/dev/null)
last=$(awk -F'\t' '$1 == 8 {print $2}' "$tmp/straight/log.tsv" 2>/dev/null)
[ "$rc" -eq 0 ] && grep -q '^# backend: cuda on tpdiff CPU emulator' "$tmp/straight.log" &&
  grep -q '^# memory (cuda, recompute none): activations s0 .* s2 .* total .* free' "$tmp/straight.log" &&
  awk -v a="$first" -v b="$last" 'BEGIN {exit !(a > 0 && b > 0 && b < a)}'
check "train.device=cuda, bf16, K=3: backend and memory plan lines, loss $first -> $last in 8 steps" $? \
  "exit $rc: $(grep -m3 '^# backend\|^# memory\|rror' "$tmp/straight.log" | tr '\n' '|')"

# ---- stopped at a checkpoint, then continued ------------------------------------------------------
"${train[@]}" --train.steps=4 --train.out="$tmp/resumed" >"$tmp/first.log" 2>&1
"${train[@]}" --train.steps=8 --train.out="$tmp/resumed" >"$tmp/second.log" 2>&1
rc=$?
from=$(grep -o 'resumed from [^ ]*' "$tmp/second.log")
cmp -s "$tmp/straight/log.tsv" "$tmp/resumed/log.tsv"
check "train.device=cuda: 4 steps, then the same command to 8 ($from): log.tsv bit-identical" $? \
  "exit $rc: $(diff "$tmp/straight/log.tsv" "$tmp/resumed/log.tsv" | head -4 | tr '\n' ' ')"
out=$("$PY" tests/ckpt/compare_ckpt.py "$tmp/straight/ckpt-0000008.h5" "$tmp/resumed/ckpt-0000008.h5" 2>&1)
check "train.device=cuda: final checkpoints bit-identical ($out)" $? "$out"

# ---- sampling on the CUDA path against the CPU --------------------------------------------------
sample=("$BIN_DIR/tpdiff-sample" "$tmp/straight/ckpt-0000008.h5" --count 2 --steps 3 --save-raw)
"${sample[@]}" --out "$tmp/s-cuda" --device cuda >"$tmp/s-cuda.log" 2>&1
rc_cuda=$?
"${sample[@]}" --out "$tmp/s-cpu" --device cpu >"$tmp/s-cpu.log" 2>&1
rc_cpu=$?
out=$("$PY" - "$tmp/s-cuda" "$tmp/s-cpu" <<'EOF' 2>&1
import sys
import numpy as np
worst = 0.0
for i in range(2):
    a = np.load("%s/video-%02d.npy" % (sys.argv[1], i))
    b = np.load("%s/video-%02d.npy" % (sys.argv[2], i))
    if a.shape != b.shape or not np.isfinite(a).all():
        print("video %d: shape %s vs %s or not finite" % (i, a.shape, b.shape))
        sys.exit(1)
    worst = max(worst, float(np.abs(a - b).max() / np.abs(b).max()))
print("err=%.3g limit=1e-05" % worst)
sys.exit(0 if worst <= 1e-5 else 1)
EOF
)
[ "$rc_cuda" -eq 0 ] && [ "$rc_cpu" -eq 0 ] && grep -q ', cuda) ->' "$tmp/s-cuda.log" && [[ $out == err=* ]] &&
  awk -v e="${out#err=}" 'BEGIN {split(e, p, " "); exit !(p[1] + 0 <= 1e-5)}'
check "tpdiff-sample --device cuda against --device cpu: 2 videos, $out" $? \
  "exit $rc_cuda/$rc_cpu: $out $(tail -1 "$tmp/s-cuda.log")"

# ---- a config that cannot fit -------------------------------------------------------------------
"$BIN_DIR/tpdiff-train" configs/base.yaml --train.device=cuda --train.precision=bf16 --train.clips_per_microbatch=64 \
  --train.steps=1 --train.out="$tmp/too-big" >"$tmp/big.out" 2>"$tmp/big.err"
rc=$?
[ "$rc" -ne 0 ] && [ "$(wc -l <"$tmp/big.err")" -eq 1 ] && grep -q 'train.clips_per_microbatch: the run needs' "$tmp/big.err" &&
  grep -q 'free on tpdiff CPU emulator' "$tmp/big.err" && [ ! -e "$tmp/too-big" ]
check "train.device=cuda: base.yaml with 64 clips refused in one line (exit $rc), nothing written" $? \
  "$(head -c 400 "$tmp/big.err")"

# ---- the memory plan holds -----------------------------------------------------------------------
# The plan promises that what the run allocates after planning stays within its total; what was
# allocated before (the weights, gradients and bf16 copy, which the plan counts, and the backend's
# workspaces, which it does not) is what the free memory it prints lacks of the device's:
# peak <= device - printed free + printed total. The emulator's device is this machine's memory.
TPDIFF_EMU_PEAK=1 "$BIN_DIR/tpdiff-train" configs/tiny.yaml --train.device=cuda --train.precision=bf16 \
  --pyramid.stages=3 --sample.count=16 --sample.steps=2 --train.steps=2 --train.out="$tmp/peak" >"$tmp/peak.log" 2>&1
rc=$?
device_mib=$(awk -v p="$(getconf _PHYS_PAGES)" -v s="$(getconf PAGESIZE)" 'BEGIN {printf "%.1f", p * s / 1048576}')
line=$(grep -m1 '^# memory' "$tmp/peak.log")
total=$(sed -n 's/.*; total \([0-9.]*\) MiB of .*/\1/p' <<<"$line")
free=$(sed -n 's/.* MiB of \([0-9.]*\) MiB free.*/\1/p' <<<"$line")
peak=$(sed -n 's/^emu: device memory peak \([0-9]*\) bytes$/\1/p' "$tmp/peak.log")
verdict=$(awk -v d="$device_mib" -v f="$free" -v t="$total" -v p="$peak" 'BEGIN {
  if (f == "" || t == "" || p == "") { print "bad"; exit }
  bound = d - f + t + 0.2; peak = p / 1048576  # 0.2 MiB: the printed figures round to 0.1
  printf "%s peak %.1f MiB, bound %.1f MiB", (peak <= bound ? "ok" : "over"), peak, bound }')
[ "$rc" -eq 0 ] && [[ $verdict == ok* ]] && grep -q ', sampling [0-9.]* MiB; total' <<<"$line"
check "train.device=cuda: the planned memory covers the run's device memory, sampling included: ${verdict#* }" $? \
  "exit $rc: $verdict | $line | $(grep '^emu: device' "$tmp/peak.log")"

# ---- two ranks ----------------------------------------------------------------------------------
one=("$BIN_DIR/tpdiff-train" configs/tiny.yaml --train.device=cuda --train.steps=2 --train.clips_per_microbatch=2
  --sample.count=1)
"${one[@]}" --train.microbatches=2 --train.out="$tmp/np1" >"$tmp/np1.log" 2>&1
rc1=$?
timeout -k 5 300 mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2 -x TPDIFF_CUDA_LIB -x TPDIFF_NCCL_LIB \
  -x OMP_NUM_THREADS "${one[@]}" --train.microbatches=1 --train.out="$tmp/np2" >"$tmp/np2.log" 2>&1
rc2=$?
losses1=$(cut -f2 "$tmp/np1/log.tsv" 2>/dev/null | tr '\n' ' ')
losses2=$(cut -f2 "$tmp/np2/log.tsv" 2>/dev/null | tr '\n' ' ')
[ "$rc1" -eq 0 ] && [ "$rc2" -eq 0 ] && grep -q 'MPI_Allreduce over 2 ranks.*through host memory' "$tmp/np2.log" &&
  [ -n "$losses1" ] && [ "$losses1" = "$losses2" ]
check "train.device=cuda under mpirun -np 2 (gradient through host memory): the losses of -np 1 with both microbatches" \
  $? "exit $rc1/$rc2; -np 1: $losses1; -np 2: $losses2; $(grep -m2 'rror\|comm:' "$tmp/np2.log" | tr '\n' '|')"

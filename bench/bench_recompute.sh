#!/usr/bin/env bash
# bench_recompute.sh — what train.recompute costs and saves: one full-rate microbatch (forward + MSE +
# backward, build/bench/bench_step) of configs/demo.yaml under none, cheap and blocks, measured side
# by side in one run. The modes run interleaved, REPS rounds of ITERS iterations each, and each mode
# keeps its fastest round's median (the machine is shared). Prints the step time and the activation
# arena of each mode and both as ratios to none; `make bench-recompute` writes the table to
# bench/results/recompute-cpu.txt.
#
#   THREADS=2 ITERS=5 REPS=3 bench/bench_recompute.sh [CONFIG]
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
ITERS=${ITERS:-5}
REPS=${REPS:-3}
cfg=${1:-configs/demo.yaml}
modes=(none cheap blocks)
declare -A best arena
for rep in $(seq "$REPS"); do
  for mode in "${modes[@]}"; do
    out=$(OMP_NUM_THREADS=$THREADS build/bench/bench_step "$cfg" --iters="$ITERS" --train.recompute="$mode")
    ms=$(awk '$1 == "tpdiff_ms_per_step" {print $2}' <<<"$out")
    arena[$mode]=$(awk '$1 == "arena_mib" {print $2}' <<<"$out")
    if [ -z "${best[$mode]:-}" ] || awk -v a="$ms" -v b="${best[$mode]}" 'BEGIN {exit !(a < b)}'; then best[$mode]=$ms; fi
  done
done
echo "# bench-recompute: $cfg, one full-rate microbatch forward + MSE + backward; fastest of $REPS interleaved rounds,"
echo "# each the median of $ITERS; $THREADS threads; $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%Y-%m-%d)"
printf '%-8s %10s %9s %12s %9s\n' recompute ms/step time arena_MiB memory
for mode in "${modes[@]}"; do
  awk -v m="$mode" -v ms="${best[$mode]}" -v ms0="${best[none]}" -v a="${arena[$mode]}" -v a0="${arena[none]}" \
    'BEGIN {printf "%-8s %10.1f %8.3fx %12.1f %8.3fx\n", m, ms, ms / ms0, a, a / a0}'
done
echo "# time and memory are ratios to none. On the CPU attention keeps its B*H*N*N probabilities, which"
echo "# only blocks drops from all but one block; on CUDA attention keeps B*H*N floats, so cheap saves"
echo "# 7 of each block's 18 [B,N,D] rows there (model/dit.h dit_recompute)."

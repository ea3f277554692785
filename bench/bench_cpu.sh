#!/usr/bin/env bash
# bench_cpu.sh — forward+backward time of one full-rate microbatch, tpdiff against the same model
# in PyTorch (tests/ref/dit_ref.py), both with the same thread count, measured side by side in
# one run. Prints one table and writes it to bench/results/cpu.txt.
#
#   THREADS=2 ITERS=5 bench/bench_cpu.sh [CONFIG...]   (default: configs/tiny.yaml configs/demo.yaml)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${TPDIFF_PYTHON:-/usr/bin/python3}
THREADS=${THREADS:-2}
ITERS=${ITERS:-5}
configs=("$@")
((${#configs[@]})) || configs=(configs/tiny.yaml configs/demo.yaml)
mkdir -p bench/results
out=bench/results/cpu.txt

get() { awk -v k="$1" '$1 == k {print $2}' "$2"; }
{
  echo "# bench-cpu: one microbatch forward + MSE + backward at full rate, median of $ITERS, $THREADS threads"
  echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%Y-%m-%d)"
  printf '%-20s %10s %10s %10s %8s %9s %9s %8s\n' config tpdiff_ms torch_ms ratio fwd_ms bwd_ms GFLOP/s sgemm%
  for cfg in "${configs[@]}"; do
    tmp=$(mktemp)
    OMP_NUM_THREADS=$THREADS build/bench/bench_step "$cfg" --iters="$ITERS" >"$tmp"
    torch_ms=$(OMP_NUM_THREADS=$THREADS "$PY" tests/ref/bench_torch.py "$cfg" --threads "$THREADS" --iters "$ITERS" |
      awk '$1 == "torch_ms_per_step" {print $2}')
    ms=$(get tpdiff_ms_per_step "$tmp")
    gflop=$(get step_gflop "$tmp")
    sgemm=$(get sgemm_gflops "$tmp")
    awk -v c="$(basename "$cfg" .yaml)" -v ms="$ms" -v tms="$torch_ms" -v f="$(get forward_ms "$tmp")" \
      -v b="$(get backward_ms "$tmp")" -v g="$gflop" -v s="$sgemm" 'BEGIN {
        rate = g / (ms / 1000);
        printf "%-20s %10.1f %10.1f %10.3f %8.1f %9.1f %9.1f %7.0f%%\n", c, ms, tms, ms / tms, f, b, rate, 100 * rate / s }'
    rm -f "$tmp"
  done
  echo "# ratio = tpdiff_ms / torch_ms (lower is better; target <= 0.5 on demo)."
  echo "# GFLOP/s counts matmul and attention FLOPs (forward x 3); sgemm% is that rate over OpenBLAS sgemm 1024^3 on the same threads."
} | tee "$out"

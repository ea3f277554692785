#!/usr/bin/env bash
# mpi_train.sh — synchronous data-parallel training on the CPU under mpirun -np 1, 2 and 4
# (oversubscribed on a 2-core machine):
#  - the reduced gradient equals the single-process gradient over the same global batch at step 3
#    (1e-6 relative; tests/mpi/mpi_train_check.c), K = 3 balanced with labels, and in several buckets;
#  - after 20 steps every rank holds bit-identical weights, AdamW moments and EMA;
#  - -np 1 and -np 2 with the same global batch and seed give the same loss curve (1e-5 relative),
#    in-process and through tpdiff-train itself (whose rank 0 alone logs and writes samples).
set -u
cd "$(dirname "$0")/../.."
. tests/mpi/mpi_common.sh
work=$(mktemp -d "${TMPDIR:-/tmp}/tpdiff-mpi-train.XXXXXX")
trap 'rm -rf "$work"' EXIT

PYR=(configs/tiny.yaml --pyramid.stages=3 --pyramid.schedule=balanced --train.clips_per_microbatch=2
  --model.classes=4 --model.class_dropout=0.2)

# gradient: 2 ranks x 2 microbatches (one 25 MiB bucket), 4 ranks x 1 microbatch (7 buckets of 0.1 MiB,
# started during the last backward as its layers finish)
mpi 2 120 "$CHECK" grad "${PYR[@]}" --train.grad_clip=0 --train.microbatches=2 | grep -v '^#'
mpi 4 120 "$CHECK" grad "${PYR[@]}" --train.grad_clip=0 --train.comm_bucket_mb=0.1 | grep -v '^#'
# the same with every bucket started after the backward (no comm_grad_ready)
mpi 2 120 -x TPDIFF_CHECK_NO_OVERLAP=1 "$CHECK" grad "${PYR[@]}" --train.grad_clip=0 --train.comm_bucket_mb=0.1 |
  grep -v '^#' | sed 's/^\(PASS\|FAIL\) \(.*\)/\1 \2 [buckets after the backward]/'

# 20 steps: replicas stay bit-identical
mpi 2 120 "$CHECK" steps "${PYR[@]}" --train.steps=20 | grep -v '^#\|^loss'
mpi 4 120 "$CHECK" steps "${PYR[@]}" --train.steps=20 --train.comm_bucket_mb=0.1 | grep -v '^#\|^loss'

# compare_losses NAME FILE_A FILE_B LIMIT: the "step loss" pairs of both files agree to LIMIT relative
compare_losses() {
  awk -v name="$1" -v limit="$4" '
    FNR == 1 { file++ }
    file == 1 { a[$1] = $2; n1++ }
    file == 2 { b[$1] = $2; n2++ }
    END {
      worst = 0; at = 0
      for (s in a) {
        if (!(s in b)) { print "FAIL " name ": step " s " missing in the second run"; exit }
        d = a[s] - b[s]; if (d < 0) d = -d; r = d / (a[s] < 0 ? -a[s] : a[s])
        if (r > worst) { worst = r; at = s }
      }
      if (n1 < 20 || n1 != n2) { print "FAIL " name ": " n1 " and " n2 " steps (wanted 20 each)"; exit }
      printf "%s %s: %d steps, worst relative difference %.2e at step %s, limit %g\n", \
        (worst <= limit ? "PASS" : "FAIL"), name, n1, worst, at, limit
    }' "$2" "$3"
}

# the same global batch of 2 microbatches: 1 rank x 2 and 2 ranks x 1 (train.global_microbatches)
for np in 1 2; do
  mpi $np 120 "$CHECK" steps "${PYR[@]}" --train.steps=20 --train.global_microbatches=2 |
    awk '$1 == "loss" { print $2, $3 }' >"$work/check-np$np.txt"
done
mpi 1 120 "$CHECK" steps "${PYR[@]}" --train.steps=20 --train.microbatches=2 |
  awk '$1 == "loss" { print $2, $3 }' >"$work/check-np1-m2.txt"
compare_losses "loss curve -np 2 x 1 microbatch = -np 1 x 2 microbatches (in-process, %.9e)" \
  "$work/check-np1.txt" "$work/check-np2.txt" 1e-5
cmp -s "$work/check-np1.txt" "$work/check-np1-m2.txt" &&
  pass "train.global_microbatches=2 on 1 rank is train.microbatches=2" ||
  fail "train.global_microbatches=2 on 1 rank differs from train.microbatches=2"

# the same through tpdiff-train, from the full-precision train.out/log.tsv that rank 0 writes
for np in 1 2; do
  mpi $np 180 "$BIN" "${PYR[@]}" --train.steps=20 --train.global_microbatches=2 --train.out="$work/run-np$np" \
    >"$work/run-np$np.log" 2>"$work/run-np$np.err"
  echo "$?" >"$work/run-np$np.status"
  awk '$1 ~ /^[0-9]+$/ { print $1, $2 }' "$work/run-np$np/log.tsv" >"$work/run-np$np.txt" 2>/dev/null
done
if [ "$(cat "$work/run-np1.status")" = 0 ] && [ "$(cat "$work/run-np2.status")" = 0 ]; then
  pass "tpdiff-train -np 1 and -np 2 exit 0"
else
  fail "tpdiff-train exit status: -np 1 $(cat "$work/run-np1.status"), -np 2 $(cat "$work/run-np2.status")"
  tail -3 "$work/run-np2.err"
fi
compare_losses "tpdiff-train loss curve -np 2 = -np 1, global batch 2 microbatches" \
  "$work/run-np1.txt" "$work/run-np2.txt" 1e-5
headers=$(grep -c '^  step ' "$work/run-np2.log")
samples=$(find "$work/run-np2/samples" -name '*.gif' 2>/dev/null | wc -l)
if [ "$headers" -eq 1 ] && [ -f "$work/run-np2/config.yaml" ] && [ "$samples" -eq 2 ] &&
  grep -q '^# ranks: 2 ' "$work/run-np2.log" && grep -q '^# comm: 20 gradient all-reduces' "$work/run-np2.log"; then
  pass "tpdiff-train -np 2: rank 0 alone logs (1 header), writes config.yaml, log.tsv and 2 sample GIFs"
else
  fail "tpdiff-train -np 2 output: $headers log headers, $samples GIFs, config.yaml $([ -f "$work/run-np2/config.yaml" ] && echo present || echo missing)"
fi

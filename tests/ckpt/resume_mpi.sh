#!/usr/bin/env bash
# resume_mpi.sh — checkpoints under mpirun: a 2-rank run whose ranks are all killed with SIGKILL
# after the step-10 checkpoint and started again with the same command ends bit-identical (log.tsv
# and final checkpoint) to a 2-rank run that never stopped; and a checkpoint written by 1 rank
# (2 microbatches per step) resumes with 2 ranks (1 microbatch each, the same global batch) and
# trains on with the losses of the 1-rank run to 1e-5 (only the order of the gradient sum differs),
# on the synthetic set and on HDF5 shards (K = 3, balanced: the loader continues the global stream).
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/mpi/mpi_common.sh
PY=${PY:-/usr/bin/python3}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tpdiff-resume-mpi.XXXXXX")
trap 'pkill -9 -f "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
source tests/ckpt/ckpt_common.sh

args=(configs/tiny.yaml --train.steps=20 --train.ckpt_every=5 --train.keep=2 --sample.count=1
  --train.clips_per_microbatch=8)
mpi 2 300 "$BIN" "${args[@]}" --train.out="$tmp/straight" >"$tmp/straight.log" 2>&1
check "-np 2: the straight run finishes" $? "$(tail -3 "$tmp/straight.log")"

mpi 2 300 "$BIN" "${args[@]}" --train.out="$tmp/killed" >"$tmp/killed.log" 2>&1 &
pid=$!
wait_for "$tmp/killed/ckpt-0000010.h5"
pkill -9 -f "tpdiff-train.*$tmp/killed"
wait "$pid"
rc=$?
last=$(awk '$1 ~ /^[0-9]+$/ {s = $1} END {print s}' "$tmp/killed.log")
[ "$rc" -ne 0 ] && [ ! -e "$tmp/killed/ckpt-0000020.h5" ]
check "-np 2: every rank killed with SIGKILL mid-run (mpirun exit $rc, last logged step $last)" $? \
  "exit $rc: the run finished before the kill"

mpi 2 300 "$BIN" "${args[@]}" --train.out="$tmp/killed" >"$tmp/resumed.log" 2>&1
rc=$?
from=$(grep -o 'resumed from [^ ]*' "$tmp/resumed.log")
[ "$rc" -eq 0 ] && [ -n "$from" ]
check "-np 2: the same command resumes ($from)" $? "exit $rc: $(tail -3 "$tmp/resumed.log")"
cmp -s "$tmp/straight/log.tsv" "$tmp/killed/log.tsv"
check "-np 2: log.tsv of killed+resumed equals the straight run's, bit for bit" $? \
  "$(diff "$tmp/straight/log.tsv" "$tmp/killed/log.tsv" | head -4 | tr '\n' ' ')"
out=$("$PY" tests/ckpt/compare_ckpt.py "$tmp/straight/ckpt-0000020.h5" "$tmp/killed/ckpt-0000020.h5" 2>&1)
check "-np 2: final checkpoints bit-identical ($out)" $? "$out"

# another world size: 1 rank x 2 microbatches writes, 2 ranks x 1 microbatch resume (same global batch)
world_change() {
  local name=$1; shift
  local one=("$@" --train.steps=20 --train.ckpt_every=10 --sample.count=1 --train.clips_per_microbatch=8)
  # one thread like each rank: thread counts change summation order, and where an epoch boundary puts
  # one clip twice into a microbatch, that order breaks the tie of the noise assignment
  OMP_NUM_THREADS=1 "$BIN" "${one[@]}" --train.microbatches=2 --train.out="$tmp/$name-np1" >"$tmp/$name-np1.log" 2>&1
  check "$name: -np 1, 2 microbatches: 20 steps" $? "$(tail -2 "$tmp/$name-np1.log")"
  OMP_NUM_THREADS=1 "$BIN" "${one[@]}" --train.microbatches=2 --train.steps=10 --train.out="$tmp/$name-np2" >"$tmp/$name-np2a.log" 2>&1
  mpi 2 300 "$BIN" "${one[@]}" --train.microbatches=1 --train.out="$tmp/$name-np2" >"$tmp/$name-np2b.log" 2>&1
  local rc=$?
  grep -q "resumed from $tmp/$name-np2/ckpt-0000010.h5 (step 10, written by 1 rank)" "$tmp/$name-np2b.log" &&
    [ "$rc" -eq 0 ] && [ "$(tail -1 "$tmp/$name-np2/log.tsv" | cut -f1)" = 20 ]
  check "$name: a checkpoint written by 1 rank resumes with 2 ranks and trains on to step 20" $? \
    "exit $rc: $(grep -m1 -E 'resumed|tpdiff' "$tmp/$name-np2b.log") $(tail -2 "$tmp/$name-np2b.log")"
  local worst
  worst=$(paste "$tmp/$name-np1/log.tsv" "$tmp/$name-np2/log.tsv" | awk -F'\t' 'NR > 1 {
    n = NF / 2; d = $2 - $(n + 2); if (d < 0) d = -d; r = d / ($2 > 0 ? $2 : 1); if (r > w) w = r }
    END {printf "%.2e", w}')
  awk -v w="$worst" 'BEGIN {exit !(w <= 1e-5)}'
  check "$name: the 2-rank continuation has the 1-rank run's losses (worst relative difference $worst, limit 1e-5)" $? \
    "worst $worst"
}
world_change synthetic configs/tiny.yaml

# shards: the same clips after the switch (one global stream position) or the losses would differ
SYNTH=${SYNTH:-bin/tpdiff-synth}
"$SYNTH" --out "$tmp/set" --kind shapes --count 40 --frames 8 --size 16x16 --channels 3 --levels 3 \
  --clips-per-shard 16 --previews 0 >"$tmp/synth.log" 2>&1
check "tpdiff-synth writes the set" $? "$(tail -2 "$tmp/synth.log")"
world_change shards configs/tiny.yaml --pyramid.stages=3 --pyramid.schedule=balanced --data.path="$tmp/set"

#!/usr/bin/env bash
# mpi_failures.sh — a data-parallel job never hangs: a rank killed mid-run takes the job down
# (non-zero exit within 30 s); a rank that stops answering makes the others abort after
# train.comm_timeout with a line naming the rank and the collective; SIGTERM to one rank stops every
# rank after the same step with a checkpoint that the same command resumes from; the refusals (a world
# size that does not divide train.global_microbatches, more ranks than clips, configs that differ
# between ranks) are one line from rank 0 and a non-zero exit of the job.
set -u
cd "$(dirname "$0")/../.."
. tests/mpi/mpi_common.sh
work=$(mktemp -d "${TMPDIR:-/tmp}/tpdiff-mpi-fail.XXXXXX")
trap 'rm -rf "$work"' EXIT

# start_run NAME EXTRA...: a long -np 2 tiny run in the background; sets launcher (the timeout's pid)
start_run() {
  local name=$1
  shift
  mpi 2 120 "$BIN" configs/tiny.yaml --train.steps=100000 --train.log_every=1 "$@" --train.out="$work/$name" \
    >"$work/$name.log" 2>&1 &
  launcher=$!
}

# finish_run: waits for the job; sets rc and elapsed (seconds since the call)
finish_run() {
  local t0=$SECONDS
  wait "$launcher"
  rc=$?
  elapsed=$((SECONDS - t0))
}

# ---- a rank killed mid-run
start_run killed
if wait_training "$work/killed.log"; then
  victim=$(rank_pid "$work/killed" 1)
  kill -9 "$victim"
  finish_run
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$elapsed" -le 30 ]; then
    pass "a rank killed with SIGKILL mid-run: the job exits with status $rc after ${elapsed} s (limit 30 s)"
  else
    fail "a rank killed mid-run: status $rc after ${elapsed} s (wanted non-zero, not the 124 of timeout, within 30 s)"
  fi
else
  fail "a rank killed mid-run: the run never reached step 3"; tail -5 "$work/killed.log"; kill "$launcher"
fi

# ---- a rank that stops answering (SIGSTOP): the others give up after train.comm_timeout. Rank 1 can
# be stopped while rank 0 waits in either per-step collective: the gradient all-reduce, or the
# stop-signal check that follows it; either is the right name, as long as it is rank 0's
start_run stalled --train.comm_timeout=3
stopped_rank "a stopped rank" "$launcher" "$work/stalled" "the gradient all-reduce|the stop-signal check"

# ---- SIGTERM to one rank (a scheduler's pre-emption reaches ranks at different moments): every rank
# stops after the same step, rank 0 writes that step's checkpoint, and the same command resumes there
start_run sigterm --train.ckpt_every=0
if wait_training "$work/sigterm.log"; then
  kill -TERM "$(rank_pid "$work/sigterm" 1)"
  finish_run
  stopped=$(sed -n 's/^# stopped by SIGTERM after step \([0-9]*\);.*/\1/p' "$work/sigterm.log")
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ -n "$stopped" ] && [ -f "$work/sigterm/ckpt-$(printf %07d "$stopped").h5" ] &&
    ! grep -q 'aborting the job' "$work/sigterm.log"; then
    pass "SIGTERM to rank 1 only: both ranks stop after step $stopped, its checkpoint written, status $rc, no abort"
    mpi 2 120 "$BIN" configs/tiny.yaml --train.steps=$((stopped + 3)) --train.log_every=1 --train.out="$work/sigterm" \
      >"$work/resumed.log" 2>&1
    rc2=$?
    first=$(awk '$1 ~ /^[0-9]+$/ && NF >= 6 { print $1; exit }' "$work/resumed.log")
    if [ "$rc2" -eq 0 ] && [ "$first" = $((stopped + 1)) ] && grep -q "resumed from .*ckpt-$(printf %07d "$stopped").h5" "$work/resumed.log"; then
      pass "the same command on 2 ranks resumes at step $first from rank 0's checkpoint"
    else
      fail "resume after SIGTERM: status $rc2, first step '$first' (wanted 0 and $((stopped + 1)))"; tail -3 "$work/resumed.log"
    fi
  else
    fail "SIGTERM to rank 1: status $rc, stopped after '$stopped', log:"; tail -5 "$work/sigterm.log"
  fi
else
  fail "SIGTERM to rank 1: the run never reached step 3"; kill "$launcher"
fi

# ---- refusals: one line from rank 0, nothing trained, non-zero exit
# refused NAME EXPECTED-TEXT NP ARGS... (ARGS: everything after `mpirun -np NP`)
refused() {
  local name=$1 expected=$2 np=$3
  shift 3
  mpi "$np" 60 "$@" >"$work/out.log" 2>"$work/err.log"
  local status=$? lines
  lines=$(grep -c '^tpdiff-train:' "$work/err.log")
  local first
  first=$(grep -m1 '^tpdiff-train:' "$work/err.log")
  if [ "$status" -ne 0 ] && [ "$status" -ne 124 ] && [ "$lines" -eq 1 ] && echo "$first" | grep -q "rank 0 of [0-9]*: .*$expected" &&
    ! grep -qE '^ +1 ' "$work/out.log"; then
    pass "$name: status $status, one line: $first"
  else
    fail "$name: status $status, $lines lines from tpdiff-train (wanted 1 from rank 0 containing '$expected'):"
    sed 's/^/    /' "$work/err.log" | head -5
  fi
}
refused "world size 2 does not divide train.global_microbatches=3" "train.global_microbatches=3 is not divisible by the world size 2" \
  2 "$BIN" configs/tiny.yaml --train.global_microbatches=3 --train.out="$work/r1"
refused "4 ranks but 3 clips" "data.synth_clips = 3 is fewer than the 4 ranks" \
  4 "$BIN" configs/tiny.yaml --data.synth_clips=3 --train.out="$work/r2"
refused "configs that differ between ranks (train.lr)" "the resolved config differs between ranks" \
  1 "$BIN" configs/tiny.yaml --train.out="$work/r3" : -np 1 -x OMP_NUM_THREADS=1 "$BIN" configs/tiny.yaml \
  --train.out="$work/r3" --train.lr=2e-3
refused "a bad key on every rank" "unknown key" 2 "$BIN" configs/tiny.yaml --train.nope=1

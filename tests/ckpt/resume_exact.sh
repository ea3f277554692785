#!/usr/bin/env bash
# resume_exact.sh — a run killed with SIGKILL at any moment and started again with the same command
# ends bit-identical to a run that never stopped: the same losses in log.tsv (full precision) and
# the same weights, EMA and AdamW moments in the final checkpoint. Checked on the synthetic set
# (K = 1) and on HDF5 shards (K = 3, balanced schedule: the loader's stream position is restored),
# and for SIGTERM, which checkpoints at the next step boundary and exits 143.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin/tpdiff-train}
SYNTH=${SYNTH:-bin/tpdiff-synth}
PY=${PY:-/usr/bin/python3}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tpdiff-resume.XXXXXX")
trap 'kill -9 $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
source tests/ckpt/ckpt_common.sh


# case NAME ARGS...: straight run, then a run killed after its step-10 checkpoint and restarted.
resume_case() {
  local name=$1; shift
  local args=("$@" --train.steps=20 --train.ckpt_every=5 --train.keep=2 --sample.count=1)
  "$BIN" "${args[@]}" --train.out="$tmp/$name-straight" >"$tmp/$name-straight.log" 2>&1
  check "$name: the straight run finishes" $? "$(tail -3 "$tmp/$name-straight.log")"

  "$BIN" "${args[@]}" --train.out="$tmp/$name-killed" >"$tmp/$name-killed.log" 2>&1 &
  local pid=$!
  wait_for "$tmp/$name-killed/ckpt-0000010.h5"
  kill -9 "$pid" 2>/dev/null
  wait "$pid"
  local rc=$?
  local killed_at
  killed_at=$(awk '$1 ~ /^[0-9]+$/ {s = $1} END {print s}' "$tmp/$name-killed.log")
  [ "$rc" -eq 137 ]
  check "$name: killed with SIGKILL mid-run (exit $rc, last logged step $killed_at)" $? \
    "exit $rc: the run was not killed before it finished"

  "$BIN" "${args[@]}" --train.out="$tmp/$name-killed" >"$tmp/$name-resumed.log" 2>&1
  rc=$?
  local from
  from=$(grep -o 'resumed from [^ ]*' "$tmp/$name-resumed.log")
  [ "$rc" -eq 0 ] && [ -n "$from" ]
  check "$name: the same command resumes ($from)" $? "exit $rc: $(tail -3 "$tmp/$name-resumed.log")"

  cmp -s "$tmp/$name-straight/log.tsv" "$tmp/$name-killed/log.tsv"
  check "$name: log.tsv of killed+resumed equals the straight run's, bit for bit" $? \
    "$(diff "$tmp/$name-straight/log.tsv" "$tmp/$name-killed/log.tsv" | head -4 | tr '\n' ' ')"
  local out
  out=$("$PY" tests/ckpt/compare_ckpt.py "$tmp/$name-straight/ckpt-0000020.h5" "$tmp/$name-killed/ckpt-0000020.h5" 2>&1)
  check "$name: final checkpoints bit-identical ($out)" $? "$out"
}

# tiny, slowed down with bigger microbatches so the kill lands mid-run
resume_case synthetic configs/tiny.yaml --train.clips_per_microbatch=8 --train.microbatches=2

"$SYNTH" --out "$tmp/set" --kind shapes --count 40 --frames 8 --size 16x16 --channels 3 --levels 3 \
  --clips-per-shard 16 --previews 0 >"$tmp/synth.log" 2>&1
check "tpdiff-synth writes the set" $? "$(tail -2 "$tmp/synth.log")"
# 40 clips: the balanced stages take 4, 8 or 16 clips, so epochs turn over mid-microbatch during the run
resume_case shards configs/tiny.yaml --pyramid.stages=3 --pyramid.schedule=balanced --data.path="$tmp/set" \
  --train.clips_per_microbatch=4 --train.microbatches=2

# SIGTERM: checkpoint at the next step boundary, exit 143, resume to the same end
args=(configs/tiny.yaml --train.clips_per_microbatch=8 --train.microbatches=2 --train.steps=20 --sample.count=1)
"$BIN" "${args[@]}" --train.out="$tmp/term" >"$tmp/term.log" 2>&1 &
pid=$!
wait_for "$tmp/term/log.tsv"
for _ in $(seq 600); do [ "$(wc -l <"$tmp/term/log.tsv")" -ge 6 ] && break; sleep 0.1; done
kill -TERM "$pid"
wait "$pid"
rc=$?
stopped=$(grep -o 'stopped by SIGTERM after step [0-9]*' "$tmp/term.log")
step=${stopped##* }
[ "$rc" -eq 143 ] && [ -n "$step" ] && [ "$step" -lt 20 ] && [ -e "$tmp/term/$(printf 'ckpt-%07d.h5' "$step")" ]
check "SIGTERM: checkpoint at the step boundary and exit 143 ($stopped)" $? "exit $rc: $(tail -2 "$tmp/term.log")"
"$BIN" "${args[@]}" --train.out="$tmp/term" >"$tmp/term2.log" 2>&1
rc=$?
cmp -s "$tmp/synthetic-straight/log.tsv" "$tmp/term/log.tsv"
check "SIGTERM: the resumed run ends with the straight run's losses" $? "exit $rc; logs differ"

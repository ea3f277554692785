#!/usr/bin/env bash
# train_shards.sh — tpdiff-train on HDF5 shards (data.path): a tiny K = 3 model trains 30 steps on a
# set written by tpdiff-synth and every stage's loss falls; a set whose clip shape differs from the
# config is refused with exit 2 before training; one damaged clip is skipped and counted under
# data.on_error=skip and stops the run, naming the file, under fail.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin/tpdiff-train}
SYNTH=${SYNTH:-bin/tpdiff-synth}
PY=${PY:-/usr/bin/python3}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tpdiff-shards.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
check() { if [ "$2" -eq 0 ]; then echo "PASS $1"; else echo "FAIL $1: $3"; fi; }

# tiny.yaml's clips: 3x8x16x16; K = 3 needs 3 levels
"$SYNTH" --out "$tmp/set" --kind shapes --count 64 --frames 8 --size 16x16 --channels 3 --levels 3 \
  --clips-per-shard 32 --previews 0 >"$tmp/synth.log" 2>&1
check "tpdiff-synth writes the set" $? "$(tail -2 "$tmp/synth.log")"

common=(configs/tiny.yaml --pyramid.stages=3 --train.log_every=5 --train.lr=1e-3 --sample.count=1)
"$BIN" "${common[@]}" --train.steps=30 --data.path="$tmp/set" --train.out="$tmp/run" >"$tmp/log" 2>"$tmp/err"
rc=$?
check "30 steps on shards exit 0" $rc "exit $rc: $(tail -3 "$tmp/err")"
grep -q "^# data: $tmp/set: 64 clips in 2 shards, 3 levels" "$tmp/log"
check "the run names the data set it reads" $? "$(grep '^# data' "$tmp/log")"
for k in 0 1 2; do
  col=$((k + 3))
  read -r first last < <(awk -v c="$col" '$1 ~ /^[0-9]+$/ && $c != "-" {v[++n] = $c} END {print v[1], v[n]}' "$tmp/log")
  awk -v a="$first" -v b="$last" 'BEGIN {exit !(a > 0 && b < a)}'
  check "stage $k loss falls on shards (first window $first, last $last)" $? "did not fall"
done

# shape mismatch: an 8-frame set against data.frames=16
"$BIN" "${common[@]}" --train.steps=2 --data.frames=16 --data.path="$tmp/set" --train.out="$tmp/run2" \
  >"$tmp/log2" 2>"$tmp/err2"
rc=$?
msg=$(cat "$tmp/err2")
[ "$rc" -eq 2 ] && grep -q "index.json" "$tmp/err2" && grep -q "frames" "$tmp/err2" && [ "$(wc -l <"$tmp/err2")" -eq 1 ] &&
  ! grep -q "^ *[0-9]" "$tmp/log2"
check "a set of another shape is refused with exit 2 before training" $? "exit $rc: $msg"

# one damaged clip: flip a byte in the middle of level0's chunk of clip 3 of shard 0 (uncompressed)
cp -r "$tmp/set" "$tmp/bad"
"$PY" - "$tmp/bad/shard-00000.h5" <<'PYEOF'
import sys
import h5py
path = sys.argv[1]
with h5py.File(path, "r") as f:
    info = f["level0"].id.get_chunk_info_by_coord((3, 0, 0, 0, 0))
at = info.byte_offset + info.size // 2
with open(path, "r+b") as f:
    f.seek(at)
    b = f.read(1)
    f.seek(at)
    f.write(bytes([b[0] ^ 0x10]))
PYEOF
check "damage one clip" $? "h5py could not locate the chunk"
# K = 1: every microbatch reads level 0, the damaged one; 20 steps x 4 clips pass every clip of the
# 64 at least once
"$BIN" configs/tiny.yaml --pyramid.stages=1 --train.steps=20 --train.log_every=10 --sample.count=1 \
  --data.on_error=skip --data.path="$tmp/bad" --train.out="$tmp/run3" >"$tmp/log3" 2>"$tmp/err3"
rc=$?
skipped=$(sed -n 's/^# \([0-9]*\) unreadable clips skipped.*/\1/p' "$tmp/log3")
logged=$(grep -c "skipping clip 3 " "$tmp/err3")
[ "$rc" -eq 0 ] && [ "${skipped:-0}" -ge 1 ] && [ "$logged" -eq 1 ]
check "on_error=skip finishes and reports the skip count" $? "exit $rc, skipped '${skipped}', logged $logged: $(tail -2 "$tmp/err3")"
"$BIN" configs/tiny.yaml --pyramid.stages=1 --train.steps=20 --train.log_every=10 --sample.count=1 \
  --data.on_error=fail --data.path="$tmp/bad" --train.out="$tmp/run4" >"$tmp/log4" 2>"$tmp/err4"
rc=$?
[ "$rc" -ne 0 ] && grep -q "$tmp/bad/shard-00000.h5: level0: clip 3" "$tmp/err4"
check "on_error=fail stops non-zero naming the file and clip" $? "exit $rc: $(tail -2 "$tmp/err4")"

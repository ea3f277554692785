#!/usr/bin/env bash
# faults_cli.sh — tpdiff-train against damaged checkpoints and a full disk, as a user meets them:
# automatic resume skips (naming it) a checkpoint that fails its checksum or is truncated and falls
# back to the newest one that verifies; --resume of a damaged file or of a model of another shape
# stops with one line naming the file (and the parameter and both shapes); when no checkpoint
# verifies the run refuses instead of starting over them; a checkpoint write that hits a file-size
# limit fails naming the file and the reason, leaves the previous checkpoint byte-identical, and the
# next start resumes from it.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin/tpdiff-train}
PY=${PY:-/usr/bin/python3}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tpdiff-faults.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
source tests/ckpt/ckpt_common.sh

# flip NAME: flips one byte in the middle of dataset NAME's data in checkpoint FILE
flip() {
  "$PY" - "$1" "$2" <<'PYEOF'
import sys, h5py
path, name = sys.argv[1], sys.argv[2]
with h5py.File(path, "r") as f:
    d = f[name]
    at = d.id.get_offset() + d.id.get_storage_size() // 2
with open(path, "r+b") as fp:
    fp.seek(at)
    b = fp.read(1)
    fp.seek(at)
    fp.write(bytes([b[0] ^ 0x20]))
PYEOF
}

args=(configs/tiny.yaml --train.ckpt_every=5 --train.keep=3 --sample.count=1)
"$BIN" "${args[@]}" --train.steps=15 --train.out="$tmp/straight" >"$tmp/straight.log" 2>&1
check "a 15-step reference run finishes" $? "$(tail -2 "$tmp/straight.log")"
"$BIN" "${args[@]}" --train.steps=10 --train.out="$tmp/run" >"$tmp/run.log" 2>&1
check "a 10-step run writes checkpoints 5 and 10" $? "$(tail -2 "$tmp/run.log")"
cp -r "$tmp/run" "$tmp/pristine"

# a flipped byte in the newest checkpoint: skipped with its reason, the older one resumes
flip "$tmp/run/ckpt-0000010.h5" params/x_embed.weight
"$BIN" "${args[@]}" --train.steps=15 --train.out="$tmp/run" >"$tmp/flip.log" 2>"$tmp/flip.err"
rc=$?
grep -q "skipping a checkpoint that does not verify: $tmp/run/ckpt-0000010.h5: dataset /params/x_embed.weight fails its checksum" "$tmp/flip.err" &&
  grep -q "resumed from $tmp/run/ckpt-0000005.h5" "$tmp/flip.log" && [ "$rc" -eq 0 ]
check "auto-resume skips a checkpoint with a flipped byte and falls back to the previous one" $? \
  "exit $rc: $(head -2 "$tmp/flip.err")"
cmp -s "$tmp/straight/log.tsv" "$tmp/run/log.tsv"
check "the fallback run ends with the straight run's losses" $? "log.tsv differs"

# a truncated newest checkpoint: the same fallback
rm -rf "$tmp/run" && cp -r "$tmp/pristine" "$tmp/run"
truncate -s 100000 "$tmp/run/ckpt-0000010.h5"
"$BIN" "${args[@]}" --train.steps=15 --train.out="$tmp/run" >"$tmp/trunc.log" 2>"$tmp/trunc.err"
rc=$?
grep -q "skipping.*ckpt-0000010.h5: not a readable HDF5 file (truncated or damaged)" "$tmp/trunc.err" &&
  grep -q "resumed from $tmp/run/ckpt-0000005.h5" "$tmp/trunc.log" && [ "$rc" -eq 0 ]
check "auto-resume skips a truncated checkpoint" $? "exit $rc: $(head -2 "$tmp/trunc.err")"

# --resume of a damaged file: one line naming it, non-zero, nothing trained
cp "$tmp/pristine/ckpt-0000010.h5" "$tmp/truncated.h5"
truncate -s 100000 "$tmp/truncated.h5"
"$BIN" "${args[@]}" --train.steps=15 --train.out="$tmp/other" --resume "$tmp/truncated.h5" >"$tmp/r.log" 2>"$tmp/r.err"
rc=$?
[ "$rc" -ne 0 ] && [ "$(wc -l <"$tmp/r.err")" -eq 1 ] && grep -q "$tmp/truncated.h5: not a readable HDF5" "$tmp/r.err" &&
  ! grep -q "^ *[0-9]" "$tmp/r.log"
check "--resume of a truncated checkpoint stops with one line" $? "exit $rc: $(cat "$tmp/r.err")"

# --resume of a checkpoint from a model of another shape
"$BIN" "${args[@]}" --model.dim=32 --train.out="$tmp/other" --resume "$tmp/pristine/ckpt-0000010.h5" \
  >"$tmp/s.log" 2>"$tmp/s.err"
rc=$?
[ "$rc" -ne 0 ] && [ "$(wc -l <"$tmp/s.err")" -eq 1 ] &&
  grep -q "parameter x_embed.weight .*the checkpoint has shape \[64, 12\] but the model has \[32, 12\]" "$tmp/s.err"
check "--resume into another model shape names the parameter and both shapes" $? "exit $rc: $(cat "$tmp/s.err")"

# no checkpoint verifies: refuse, touch nothing
rm -rf "$tmp/run" && cp -r "$tmp/pristine" "$tmp/run"
flip "$tmp/run/ckpt-0000010.h5" adam_v/blocks.0.mlp.fc1.weight
flip "$tmp/run/ckpt-0000005.h5" ema/final.linear.weight
sums=$(md5sum "$tmp"/run/ckpt-*.h5)
"$BIN" "${args[@]}" --train.steps=15 --train.out="$tmp/run" >"$tmp/n.log" 2>"$tmp/n.err"
rc=$?
[ "$rc" -ne 0 ] && grep -q "2 checkpoints found and none verifies" "$tmp/n.err" && [ "$sums" = "$(md5sum "$tmp"/run/ckpt-*.h5)" ]
check "when no checkpoint verifies the run refuses and leaves them" $? "exit $rc: $(tail -1 "$tmp/n.err")"

# a full disk while writing (a file-size limit below a checkpoint's size)
rm -rf "$tmp/run" && cp -r "$tmp/pristine" "$tmp/run"
before=$(md5sum <"$tmp/run/ckpt-0000010.h5")
size_kb=$(( $(stat -c %s "$tmp/run/ckpt-0000010.h5") / 1024 / 2 ))
(ulimit -f "$size_kb"; exec "$BIN" "${args[@]}" --train.steps=15 --train.out="$tmp/run") >"$tmp/d.log" 2>"$tmp/d.err"
rc=$?
grep -q "$tmp/run/ckpt-0000015.h5: cannot write the checkpoint (writing $tmp/run/ckpt-0000015.h5.tmp: File too large)" "$tmp/d.err" &&
  [ "$rc" -ne 0 ] && [ "$before" = "$(md5sum <"$tmp/run/ckpt-0000010.h5")" ] && ! ls "$tmp"/run/*.tmp >/dev/null 2>&1
check "a write over the file-size limit names the file and reason, the previous checkpoint stays" $? \
  "exit $rc: $(tail -1 "$tmp/d.err")"
"$BIN" "${args[@]}" --train.steps=15 --train.out="$tmp/run" >"$tmp/d2.log" 2>&1
rc=$?
grep -q "resumed from $tmp/run/ckpt-0000010.h5" "$tmp/d2.log" && [ "$rc" -eq 0 ] && cmp -s "$tmp/straight/log.tsv" "$tmp/run/log.tsv"
check "after the full disk the next start resumes from the previous checkpoint and ends equal" $? "exit $rc"

# --init: a new run from a checkpoint's weights equals one from its safetensors export
EXPORT=${EXPORT:-$(dirname "$BIN")/tpdiff-export}
"$EXPORT" "$tmp/pristine/ckpt-0000010.h5" --out "$tmp/exported" >/dev/null 2>"$tmp/e.err"
"$BIN" "${args[@]}" --train.steps=3 --train.out="$tmp/init-h5" --init "$tmp/pristine/ckpt-0000010.h5" >"$tmp/i1.log" 2>&1
rc1=$?
"$BIN" "${args[@]}" --train.steps=3 --train.out="$tmp/init-st" --init "$tmp/exported/model.safetensors" >"$tmp/i2.log" 2>&1
rc2=$?
grep -q "start: initialised from $tmp/pristine/ckpt-0000010.h5 (EMA weights)" "$tmp/i1.log" && [ $rc1 -eq 0 ] && [ $rc2 -eq 0 ] &&
  cmp -s "$tmp/init-h5/log.tsv" "$tmp/init-st/log.tsv" &&
  [ "$(sed -n 2p "$tmp/init-h5/log.tsv")" != "$(sed -n 2p "$tmp/straight/log.tsv")" ]
check "--init from a checkpoint and from its safetensors export train identically (and unlike a fresh start)" $? \
  "exit $rc1/$rc2: $(tail -1 "$tmp/i2.log") $(cat "$tmp/e.err")"

#!/usr/bin/env bash
# synth_cli.sh — tpdiff-synth as a user runs it: the written set has the requested shape, values
# in [-1, 1], labels in range, is reproducible from its seed, and bad flags get one line and exit 2
# with nothing written.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin/tpdiff-synth}
PY=${PY:-/usr/bin/python3}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tpdiff-synth.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
check() { if [ "$2" -eq 0 ]; then echo "PASS $1"; else echo "FAIL $1: $3"; fi; }

for kind in shapes fashion; do
  "$BIN" --out "$tmp/$kind" --kind $kind --count 40 --frames 8 --size 24x20 --objects 2 --seed 5 >/dev/null 2>"$tmp/err"
  check "$kind set written" $? "$(cat "$tmp/err")"
  "$PY" - "$tmp/$kind" "$kind" <<'PYEOF'
import sys
import numpy as np
d, kind = sys.argv[1], sys.argv[2]
x, y = np.load(d + "/clips.npy"), np.load(d + "/labels.npy")
classes = 4 if kind == "shapes" else 10
ok = x.shape == (40, 3, 8, 24, 20) and x.dtype == np.float32 and y.shape == (40,)
ok = ok and x.min() >= -1 and x.max() <= 1 and y.min() >= 0 and y.max() < classes
moving = np.abs(np.diff(x, axis=2)).sum(axis=(1, 2, 3, 4)) > 0
ok = ok and moving.all()
print(("PASS" if ok else "FAIL") + f" {kind}: shape {x.shape}, values in [{x.min():.2f}, {x.max():.2f}], "
      f"labels {y.min()}..{y.max()} of {classes}, every clip moves: {bool(moving.all())}")
PYEOF
done
"$BIN" --out "$tmp/again" --kind shapes --count 40 --frames 8 --size 24x20 --objects 2 --seed 5 >/dev/null
cmp -s "$tmp/shapes/clips.npy" "$tmp/again/clips.npy"; check "same seed, same clips (bit for bit)" $? "differ"
"$BIN" --out "$tmp/other" --kind shapes --count 40 --frames 8 --size 24x20 --objects 2 --seed 6 >/dev/null
! cmp -s "$tmp/shapes/clips.npy" "$tmp/other/clips.npy"; check "another seed, other clips" $? "identical"
for bad in "--kind nope" "--count x" "--size 32" "--bogus 1" "--frames"; do
  # shellcheck disable=SC2086
  "$BIN" --out "$tmp/bad" $bad >/dev/null 2>"$tmp/err"
  rc=$?
  [ $rc -eq 2 ] && [ "$(wc -l <"$tmp/err")" -ge 1 ] && [ ! -e "$tmp/bad" ]
  check "refuses '$bad' (exit 2, nothing written)" $? "exit $rc, $(head -2 "$tmp/err")"
done

#!/usr/bin/env bash
# pyramid_e2e.sh — end to end: a tiny K = 3 model trains on the synthetic set with tpdiff-train,
# every stage's loss falls, and the videos it samples at the end are finite and of the right shape
# (checked from their raw .npy values) and were written as GIF and PNG.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin/tpdiff-train}
PY=${PY:-/usr/bin/python3}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tpdiff-e2e.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
check() { if [ "$2" -eq 0 ]; then echo "PASS $1"; else echo "FAIL $1: $3"; fi; }

"$BIN" configs/tiny.yaml --pyramid.stages=3 --train.steps=150 --train.log_every=25 --train.ema=0.9 \
  --model.classes=3 --sample.cfg=2 --sample.count=3 --train.out="$tmp/run" >"$tmp/log" 2>"$tmp/err"
rc=$?
check "tiny K=3 class-conditional run exits 0" $rc "exit $rc: $(tail -3 "$tmp/err")"
# columns: step loss loss_s0 loss_s1 loss_s2 ...; compare the first and the last log window per stage
for k in 0 1 2; do
  col=$((k + 3))
  read -r first last < <(awk -v c="$col" '$1 ~ /^[0-9]+$/ && $c != "-" {v[++n] = $c} END {print v[1], v[n]}' "$tmp/log")
  awk -v a="$first" -v b="$last" 'BEGIN {exit !(a > 0 && b < 0.75 * a)}'
  check "stage $k loss falls by over 25% (first window $first, last $last)" $? "did not fall enough"
done
dir="$tmp/run/samples/step-0000150"
n_gif=$(ls "$dir"/video-*.gif 2>/dev/null | wc -l)
n_png=$(ls "$dir"/video-*_f*.png 2>/dev/null | wc -l)
[ "$n_gif" -eq 3 ] && [ "$n_png" -eq 24 ]
check "3 GIFs and 3 x 8 PNG frames written" $? "$n_gif GIFs, $n_png PNG frames"
"$PY" - "$dir" <<'PYEOF'
import glob, sys
import numpy as np
files = sorted(glob.glob(sys.argv[1] + "/video-*.npy"))
ok = len(files) == 3
shapes = set()
for f in files:
    v = np.load(f)
    shapes.add(v.shape)
    ok = ok and v.shape == (3, 8, 16, 16) and np.all(np.isfinite(v)) and float(v.std()) > 0
print(("PASS" if ok else "FAIL") + f" sampled videos finite, shape (3, 8, 16, 16), not constant: {sorted(shapes)}")
PYEOF

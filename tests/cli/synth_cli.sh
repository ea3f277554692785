#!/usr/bin/env bash
# synth_cli.sh — tpdiff-synth as a user runs it: the written shards (read with h5py) have the requested
# shapes at every pyramid level, pixels that span the range, labels in range, coarse levels that are
# the frame-pair means of level 0, an index.json that lists them; the set is reproducible from its seed
# (bit for bit), and bad flags get one line and exit 2 with nothing written.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin/tpdiff-synth}
PY=${PY:-/usr/bin/python3}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tpdiff-synth.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
check() { if [ "$2" -eq 0 ]; then echo "PASS $1"; else echo "FAIL $1: $3"; fi; }

for kind in shapes fashion; do
  "$BIN" --out "$tmp/$kind" --kind $kind --count 40 --frames 8 --size 24x20 --objects 2 --seed 5 \
    --clips-per-shard 16 >/dev/null 2>"$tmp/err"
  check "$kind set written" $? "$(cat "$tmp/err")"
  "$PY" - "$tmp/$kind" "$kind" <<'PYEOF'
import json, os, sys
import h5py
import numpy as np
d, kind = sys.argv[1], sys.argv[2]
classes = 4 if kind == "shapes" else 10
index = json.load(open(d + "/index.json"))
names = sorted(n for n in os.listdir(d) if n.startswith("shard-"))
ok = index["format"] == "tpdiff-dataset" and index["version"] == 1 and index["levels"] == 4
ok = ok and (index["frames"], index["height"], index["width"], index["channels"]) == (8, 24, 20, 3)
ok = ok and [s["name"] for s in index["shards"]] == names == ["shard-00000.h5", "shard-00001.h5", "shard-00002.h5"]
ok = ok and [s["clips"] for s in index["shards"]] == [16, 16, 8] and index["dtype"] == "uint8"
levels, labels = [[] for _ in range(4)], []
for n in names:
    with h5py.File(f"{d}/{n}", "r") as f:
        ok = ok and f.attrs["format"] == "tpdiff-shard" and f.attrs["dtype"] == "uint8"
        ok = ok and abs(f.attrs["scale"] - 2 / 255) < 1e-12 and f.attrs["shift"] == -1
        for l in range(4):
            levels[l].append(f[f"level{l}"][...])
        ok = ok and "level4" not in f
        labels.append(f["labels"][...])
x = [np.concatenate(a) for a in levels]
y = np.concatenate(labels)
shapes = [a.shape for a in x]
ok = ok and shapes == [(40, 8 >> l, 24, 20, 3) for l in range(4)] and all(a.dtype == np.uint8 for a in x)
ok = ok and y.shape == (40,) and y.dtype == np.int32 and y.min() >= 0 and y.max() < classes
ok = ok and x[0].min() < 40 and x[0].max() > 215  # dark background and bright objects both present
pairs = np.floor(x[0].astype(np.float64).reshape(40, 4, 2, 24, 20, 3).mean(axis=2) + 0.5)
ok = ok and np.array_equal(x[1], pairs.astype(np.uint8))
moving = np.abs(np.diff(x[0].astype(int), axis=1)).sum(axis=(1, 2, 3, 4)) > 0
ok = ok and moving.all()
print(("PASS" if ok else "FAIL") + f" {kind}: {len(names)} shards, levels {shapes}, pixels {x[0].min()}..{x[0].max()}, "
      f"labels {y.min()}..{y.max()} of {classes}, level1 = pair means of level0, every clip moves: {bool(moving.all())}")
PYEOF
done
"$BIN" --out "$tmp/again" --kind shapes --count 40 --frames 8 --size 24x20 --objects 2 --seed 5 \
  --clips-per-shard 16 >/dev/null
same=0
for n in shard-00000.h5 shard-00001.h5 shard-00002.h5 index.json; do cmp -s "$tmp/shapes/$n" "$tmp/again/$n" || same=1; done
check "same seed, same shards (bit for bit)" $same "differ"
"$BIN" --out "$tmp/other" --kind shapes --count 40 --frames 8 --size 24x20 --objects 2 --seed 6 \
  --clips-per-shard 16 >/dev/null
! cmp -s "$tmp/shapes/shard-00000.h5" "$tmp/other/shard-00000.h5"; check "another seed, other clips" $? "identical"
"$BIN" --out "$tmp/defaults" --count 3 --frames 12 --size 16x16 --previews 1 >/dev/null 2>"$tmp/err"
"$PY" -c "
import json, sys
i = json.load(open('$tmp/defaults/index.json'))
sys.exit(0 if i['levels'] == 3 and [s['clips'] for s in i['shards']] == [3] else 1)"
check "defaults: one shard, levels from the frames (12 -> 3)" $? "$(cat "$tmp/err"; cat "$tmp/defaults/index.json")"
[ -s "$tmp/defaults/preview-00.gif" ] && [ -s "$tmp/defaults/preview-00.png" ] && [ ! -e "$tmp/defaults/preview-01.gif" ]
check "previews: --previews 1 writes one GIF and one PNG" $? "$(ls "$tmp/defaults")"
"$BIN" --out "$tmp/two" --count 3 --frames 8 --size 16x16 --levels 2 --previews 0 >/dev/null 2>"$tmp/err"
"$PY" -c "
import h5py, sys
f = h5py.File('$tmp/two/shard-00000.h5', 'r')
sys.exit(0 if 'level1' in f and 'level2' not in f else 1)"
check "--levels 2 writes level0 and level1 only" $? "$(cat "$tmp/err")"
for bad in "--kind nope" "--count x" "--size 32" "--bogus 1" "--frames" "--levels 6" "--levels 0" "--levels 9" \
  "--clips-per-shard 0" "--frames 6 --levels 3"; do
  # shellcheck disable=SC2086
  "$BIN" --out "$tmp/bad" $bad >/dev/null 2>"$tmp/err"
  rc=$?
  [ $rc -eq 2 ] && [ "$(wc -l <"$tmp/err")" -ge 1 ] && [ ! -e "$tmp/bad" ]
  check "refuses '$bad' (exit 2, nothing written)" $? "exit $rc, $(head -2 "$tmp/err")"
  rm -rf "$tmp/bad"
done

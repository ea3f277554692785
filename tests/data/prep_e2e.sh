#!/usr/bin/env bash
# prep_e2e.sh — tpdiff-prep as a user runs it: video files (made here with ffmpeg) -> HDF5 shards ->
# h5py reads them. Checks the shard schema (DESIGN.md "Data: HDF5 shards"), that level 0 equals the
# decoder's own frames (test_video_decode --dump at the same size and rate), that level l averages
# groups of 2^l frames, labels from sub-folders and from a CSV, index.json, --on-error fail/skip, and
# two ranks (OMPI_COMM_WORLD_RANK/SIZE as mpirun sets them) writing one data set.
# Needs bin/tpdiff-prep (built only where data/shard.c exists): without it this test FAILS.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin/tpdiff-prep}
DUMP=${DUMP:-build/tests/test_video_decode}
PY=${PY:-/usr/bin/python3}
check() { if [ "$2" -eq 0 ]; then echo "PASS $1"; else echo "FAIL $1: $3"; fi; }
[ -x "$BIN" ] || { echo "FAIL setup: $BIN is missing (it is built only where data/shard.c exists)"; exit 1; }
[ -x "$DUMP" ] || { echo "FAIL setup: $DUMP is missing (make test-build)"; exit 1; }
"$PY" -c "import h5py, numpy" 2>/dev/null || { echo "FAIL setup: $PY cannot import h5py and numpy (scripts/setup.sh)"; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tpdiff-prep.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
FF=(ffmpeg -hide_banner -loglevel error -nostdin -y)
mkdir -p "$tmp/vids/circles" "$tmp/vids/squares"
# 48 frames at 24 fps -> 24 at 12 fps -> 3 clips of 8; 36 frames -> 18 -> 2 clips
"${FF[@]}" -f lavfi -i testsrc2=size=96x64:rate=24 -frames:v 48 -c:v libx264 -pix_fmt yuv420p "$tmp/vids/circles/a.mp4"
"${FF[@]}" -f lavfi -i testsrc2=size=96x64:rate=24 -frames:v 36 -c:v ffv1 "$tmp/vids/squares/b.mkv"
"${FF[@]}" -f lavfi -i testsrc2=size=64x64:rate=24 -frames:v 48 -c:v gif "$tmp/vids/squares/c.gif"
ARGS=(--frames 8 --size 16x24 --fps 12 --levels 2 --clips-per-shard 4)

"$BIN" --out "$tmp/set" "${ARGS[@]}" --labels-from-folders --deflate 4 "$tmp/vids" >"$tmp/out" 2>"$tmp/err"
check "folders with class sub-folders -> shards" $? "$(tail -2 "$tmp/err")"
grep -q "files 3/3" "$tmp/err"; check "progress line names files done/total" $? "$(tail -2 "$tmp/err")"
"$DUMP" --dump "$tmp/vids/circles/a.mp4" "$tmp/a.rgb" --size 16x24 --fps 12 >/dev/null
"$PY" - "$tmp/set" "$tmp/a.rgb" <<'PYEOF'
import glob, json, os, sys
import h5py
import numpy as np
d, a_rgb = sys.argv[1], sys.argv[2]
def report(name, ok, detail=""):
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else ": " + detail))
idx = json.load(open(os.path.join(d, "index.json")))
want = {"format": "tpdiff-dataset", "version": 1, "frames": 8, "height": 16, "width": 24, "channels": 3, "levels": 3, "dtype": "uint8"}
report("index.json fields", all(idx.get(k) == v for k, v in want.items()), str(idx))
names = [s["name"] for s in idx["shards"]]
report("index.json lists the shards on disk", sorted(names) == sorted(os.path.basename(p) for p in glob.glob(d + "/shard-*.h5")), str(names))
total = sum(s["clips"] for s in idx["shards"])
report("3 + 2 + 3 clips", total == 8, f"{total} clips")
classes = open(os.path.join(d, "classes.txt")).read().split("\n")
report("classes.txt sorted", classes[:2] == ["0 circles", "1 squares"], str(classes))
level0, labels, sources = [], [], []
ok_schema, detail = True, ""
for s in idx["shards"]:
    with h5py.File(os.path.join(d, s["name"]), "r") as f:
        a = f.attrs
        fmt = a["format"].decode() if isinstance(a["format"], bytes) else a["format"]
        if fmt != "tpdiff-shard" or int(a["version"]) != 1 or abs(float(a["fps"]) - 12) > 1e-9:
            ok_schema, detail = False, f"{s['name']}: attrs {dict(a)}"
        x0 = f["level0"][()]
        if x0.shape != (s["clips"], 8, 16, 24, 3) or x0.dtype != np.uint8:
            ok_schema, detail = False, f"{s['name']}: level0 {x0.shape} {x0.dtype}"
        for l in (1, 2):
            xl = f[f"level{l}"][()].astype(np.float64)
            g = 2 ** l
            want_l = x0.astype(np.float64).reshape(x0.shape[0], 8 // g, g, 16, 24, 3).mean(axis=2)
            if xl.shape != want_l.shape or np.abs(xl - want_l).max() > 0.5 + 1e-9:
                ok_schema, detail = False, f"{s['name']}: level{l} is not the mean of groups of {g} frames"
        level0.append(x0)
        labels += list(f["labels"][()])
        sources += [v.decode() if isinstance(v, bytes) else v for v in f["source"][()]]
report("shard schema, level l = mean of 2^l frames", ok_schema, detail)
x = np.concatenate(level0)
a = np.fromfile(a_rgb, np.uint8).reshape(-1, 16, 24, 3)
first = [i for i, s in enumerate(sources) if s.endswith("circles/a.mp4:0")]
report("level0 of a.mp4:0 equals the decoder's frames 0..7", len(first) == 1 and (x[first[0]] == a[:8]).all(), str(sources))
second = [i for i, s in enumerate(sources) if s.endswith("circles/a.mp4:8")]
report("level0 of a.mp4:8 equals frames 8..15", len(second) == 1 and (x[second[0]] == a[8:16]).all())
lab = {s.rsplit(":", 1)[0].split("/")[-2]: l for s, l in zip(sources, labels)}
report("labels from folders", lab == {"circles": 0, "squares": 1}, str(lab))
PYEOF

# labels from a CSV: relative paths from the CSV's folder, class names numbered in sorted order
printf 'path,label\ncircles/a.mp4,zebra\nsquares/b.mkv,ant\n' >"$tmp/vids/labels.csv"
"$BIN" --out "$tmp/csv" "${ARGS[@]}" --labels "$tmp/vids/labels.csv" >/dev/null 2>"$tmp/err"
check "CSV labels -> shards" $? "$(tail -2 "$tmp/err")"
"$PY" - "$tmp/csv" <<'PYEOF'
import glob, sys
import h5py
got = {}
for p in glob.glob(sys.argv[1] + "/shard-*.h5"):
    with h5py.File(p, "r") as f:
        for s, l in zip(f["source"][()], f["labels"][()]):
            s = s.decode() if isinstance(s, bytes) else s
            got[s.rsplit(":", 1)[0].split("/")[-1]] = int(l)
ok = got == {"a.mp4": 1, "b.mkv": 0} and open(sys.argv[1] + "/classes.txt").read() == "0 ant\n1 zebra\n"
print(("PASS" if ok else "FAIL") + f" CSV class names -> sorted integers: {got}")
PYEOF

# bad input: fail stops with one line and no index.json; skip goes on and counts
echo "not a video" >"$tmp/vids/squares/bad.mp4"
"$BIN" --out "$tmp/failset" "${ARGS[@]}" "$tmp/vids" >/dev/null 2>"$tmp/err"
rc=$?
[ $rc -ne 0 ] && grep -q "bad.mp4: not a video" "$tmp/err" && [ ! -e "$tmp/failset/index.json" ] && ! ls "$tmp/failset" | grep -q tmp
check "--on-error fail: one line naming the file, no index.json, no temporary files" $? "exit $rc: $(cat "$tmp/err")"
"$BIN" --out "$tmp/skipset" "${ARGS[@]}" --on-error skip "$tmp/vids" >/dev/null 2>"$tmp/err"
rc=$?
[ $rc -eq 0 ] && grep -q "skipped: .*bad.mp4" "$tmp/err" && grep -q "1 of 4 files skipped" "$tmp/err" && [ -e "$tmp/skipset/index.json" ]
check "--on-error skip: logged, counted, the rest written" $? "exit $rc: $(cat "$tmp/err")"
rm "$tmp/vids/squares/bad.mp4"
"$BIN" --out "$tmp/short" --frames 64 --fps 12 "$tmp/vids/circles/a.mp4" >/dev/null 2>"$tmp/err"
rc=$?
[ $rc -ne 0 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q "24 frames at 12 fps, a clip needs 64" "$tmp/err"
check "video shorter than a clip: one line with both counts" $? "exit $rc: $(cat "$tmp/err")"
for bad in "--frames 6 --levels 2" "--size 16" "--fps x" "--on-error maybe" "--bogus 1"; do
  # shellcheck disable=SC2086
  "$BIN" --out "$tmp/badflags" $bad "$tmp/vids" >/dev/null 2>"$tmp/err"
  rc=$?
  [ $rc -eq 2 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && [ ! -e "$tmp/badflags" ]
  check "refuses '$bad' (exit 2, one line, nothing written)" $? "exit $rc: $(cat "$tmp/err")"
done

# two ranks as mpirun starts them: disjoint files, one index.json from rank 0 listing both ranks' shards
for r in 1 0; do
  OMPI_COMM_WORLD_RANK=$r OMPI_COMM_WORLD_SIZE=2 PMIX_NAMESPACE=prep-e2e-$$ \
    "$BIN" --out "$tmp/ranks" "${ARGS[@]}" --labels-from-folders "$tmp/vids" >/dev/null 2>"$tmp/err$r" &
done
wait
"$PY" - "$tmp/ranks" <<'PYEOF'
import json, os, sys
import h5py
d = sys.argv[1]
idx = json.load(open(os.path.join(d, "index.json")))
names = [s["name"] for s in idx["shards"]]
sources = []
for n in names:
    with h5py.File(os.path.join(d, n), "r") as f:
        sources += [s.decode() if isinstance(s, bytes) else s for s in f["source"][()]]
ranks = sorted({n.split("-")[1] for n in names})
ok = ranks == ["0000", "0001"] and len(sources) == 8 and len(set(sources)) == 8 and not any(n.startswith(".prep-rank") for n in os.listdir(d))
print(("PASS" if ok else "FAIL") + f" two ranks: shards {names}, {len(sources)} distinct clips, markers removed")
PYEOF

#!/usr/bin/env bash
# decode_vs_ffmpeg.sh — tpdiff's video decoder (data/video_decode.c, through test_video_decode --dump)
# against the ffmpeg command line's own decode of the same files. The videos are made here with
# ffmpeg from testsrc2 (48 frames, 96x64, 24 fps) in every container/codec this FFmpeg can write:
#   - at the source size, no resampling: our RGB24 bytes must EQUAL
#     `ffmpeg -i F -sws_flags bicubic+accurate_rnd+full_chroma_int -fps_mode passthrough -f rawvideo
#      -pix_fmt rgb24` (the same libswscale conversion), for lossless and lossy codecs alike (both
#     sides decode the same bitstream with the same decoder);
#   - resized (shrink -> SWS_AREA, enlarge -> SWS_BICUBIC, with and without a centre crop): compared
#     with ffmpeg's crop and scale filters given the same flags; max |difference| <= 1 allowed (the
#     filters may run swscale in slices), the largest seen is printed;
#   - 24 -> 12 fps: keeps source frames 0, 2, 4, ... (and equals ffmpeg's -vf fps=12 where the
#     container's timestamps are exact); 24 fps
#     Matroska (1 ms timestamps) at --fps 24 keeps every frame; a variable-rate file (24 fps, then
#     12 fps) at --fps 24 repeats each later frame twice;
#   - damaged input: a rawvideo AVI cut in the middle of a frame gives one line naming the frame.
# Usage: tests/data/decode_vs_ffmpeg.sh (BIN=path/to/test_video_decode to test another build).
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-build/tests/test_video_decode}
PY=${PY:-/usr/bin/python3}
command -v ffmpeg >/dev/null || { echo "FAIL setup: the ffmpeg command line is missing (scripts/setup.sh installs it)"; exit 1; }
[ -x "$BIN" ] || { echo "FAIL setup: $BIN is missing (make test-build)"; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tpdiff-decode.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
check() { if [ "$2" -eq 0 ]; then echo "PASS $1"; else echo "FAIL $1: $3"; fi; }
FF=(ffmpeg -hide_banner -loglevel error -nostdin -y)
SRC=(-f lavfi -i testsrc2=size=96x64:rate=24 -frames:v 48)
SWS=bicubic+accurate_rnd+full_chroma_int

# ---- the test videos ---------------------------------------------------------------------------
encoders=$(ffmpeg -hide_banner -encoders 2>/dev/null)
has() { grep -q " $1 " <<<"$encoders"; }
videos=()
make_video() { # NAME ENCODER-ARGS...
  local name=$1; shift
  if "${FF[@]}" "${SRC[@]}" "$@" "$tmp/$name" 2>"$tmp/ff.err"; then videos+=("$name")
  else echo "FAIL make $name: $(head -1 "$tmp/ff.err")"; fi
}
make_video src.y4m -pix_fmt yuv420p
make_video raw.avi -c:v rawvideo -pix_fmt yuv420p
make_video ffv1.mkv -c:v ffv1 -pix_fmt yuv420p
if has libx264; then make_video h264.mp4 -c:v libx264 -pix_fmt yuv420p -preset veryfast
else make_video mpeg4.mp4 -c:v mpeg4 -q:v 3; fi
has libvpx-vp9 && make_video vp9.webm -c:v libvpx-vp9 -b:v 200k -deadline realtime -cpu-used 8
has libvpx && make_video vp8.webm -c:v libvpx -b:v 200k
has gif && make_video anim.gif -c:v gif
echo "videos: ${videos[*]}"

# ---- source size: byte-exact ---------------------------------------------------------------------
for v in "${videos[@]}"; do
  "$BIN" --dump "$tmp/$v" "$tmp/ours.rgb" >"$tmp/out" 2>&1 || { echo "FAIL exact $v: $(cat "$tmp/out")"; continue; }
  "${FF[@]}" -i "$tmp/$v" -sws_flags $SWS -fps_mode passthrough -f rawvideo -pix_fmt rgb24 "$tmp/ref.rgb"
  frames=$(($(stat -c %s "$tmp/ref.rgb") / (96 * 64 * 3)))
  cmp -s "$tmp/ours.rgb" "$tmp/ref.rgb"
  check "exact $v: $frames frames equal ffmpeg's rgb24 decode" $? \
    "ours $(stat -c %s "$tmp/ours.rgb") bytes ($(cat "$tmp/out")), ffmpeg $(stat -c %s "$tmp/ref.rgb") bytes"
done

# ---- resized: against ffmpeg's crop + scale with the same flags ----------------------------------
compare() { # NAME OURS REF TOLERANCE: max |ours - ref| over all bytes, equal sizes
  "$PY" - "$@" <<'PYEOF'
import sys
import numpy as np
name, ours, ref, tol = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
a, b = np.fromfile(ours, np.uint8).astype(int), np.fromfile(ref, np.uint8).astype(int)
if a.size != b.size or a.size == 0:
    print(f"FAIL {name}: {a.size} bytes against ffmpeg's {b.size}")
else:
    d = np.abs(a - b)
    ok = d.max() <= tol
    print(("PASS" if ok else "FAIL") + f" {name}: max |diff| {d.max()} (tolerance {tol}), {np.mean(d > 0) * 100:.2f}% of bytes differ")
PYEOF
}
resize_case() { # VIDEO HxW FFMPEG-FILTER
  local v=$1 size=$2 filter=$3
  "$BIN" --dump "$tmp/$v" "$tmp/ours.rgb" --size "$size" >"$tmp/out" 2>&1 || { echo "FAIL resize $v $size: $(cat "$tmp/out")"; return; }
  "${FF[@]}" -i "$tmp/$v" -vf "$filter" -fps_mode passthrough -f rawvideo -pix_fmt rgb24 "$tmp/ref.rgb"
  compare "resize $v to $size ($filter)" "$tmp/ours.rgb" "$tmp/ref.rgb" 1
}
for v in src.y4m "${videos[3]:-}" anim.gif; do
  [ -f "$tmp/$v" ] || continue
  resize_case "$v" 32x48 "scale=48:32:flags=area+accurate_rnd+full_chroma_int"
  resize_case "$v" 32x32 "crop=64:64:16:0,scale=32:32:flags=area+accurate_rnd+full_chroma_int"
  resize_case "$v" 128x128 "crop=64:64:16:0,scale=128:128:flags=bicubic+accurate_rnd+full_chroma_int"
done

# ---- frame rate --------------------------------------------------------------------------------
# ffmpeg's fps filter rounds each timestamp to the nearest output tick, so with Matroska's 1 ms
# timestamps (frame 5 at 208 ms -> tick 2.496 -> 2) it shows frame 5 where frame 4 belongs: the
# comparison with it is made only for containers with exact timestamps (y4m, mp4); every file must
# keep source frames 0, 2, 4, ...
for v in src.y4m ffv1.mkv "${videos[3]:-}"; do
  [ -f "$tmp/$v" ] || continue
  "$BIN" --dump "$tmp/$v" "$tmp/ours12.rgb" --fps 12 >/dev/null 2>&1
  if [ "${v##*.}" != mkv ]; then
    "${FF[@]}" -i "$tmp/$v" -vf fps=12 -sws_flags $SWS -f rawvideo -pix_fmt rgb24 "$tmp/ref12.rgb"
    cmp -s "$tmp/ours12.rgb" "$tmp/ref12.rgb"
    check "fps 24 -> 12 $v equals ffmpeg -vf fps=12" $? "$(stat -c %s "$tmp/ours12.rgb") vs $(stat -c %s "$tmp/ref12.rgb") bytes"
  fi
  "${FF[@]}" -i "$tmp/$v" -vf "select=not(mod(n\,2))" -sws_flags $SWS -fps_mode passthrough -f rawvideo -pix_fmt rgb24 "$tmp/even.rgb"
  cmp -s "$tmp/ours12.rgb" "$tmp/even.rgb"
  check "fps 24 -> 12 $v keeps source frames 0, 2, 4, ..." $? "differs from ffmpeg's select of even frames"
  "$BIN" --dump "$tmp/$v" "$tmp/ours24.rgb" --fps 24 >/dev/null 2>&1
  "$BIN" --dump "$tmp/$v" "$tmp/ours0.rgb" >/dev/null 2>&1
  cmp -s "$tmp/ours24.rgb" "$tmp/ours0.rgb"
  check "fps 24 -> 24 $v keeps every frame (timestamps of its container)" $? "differs from the source-rate decode"
done
# variable rate: frames 0..23 at 1/24 s, frames 24..47 at 2/24 s apart
"${FF[@]}" "${SRC[@]}" -vf "setpts='if(lt(N,24),N,24+2*(N-24))/24/TB'" -fps_mode passthrough -c:v ffv1 "$tmp/vfr.mkv"
"$BIN" --dump "$tmp/vfr.mkv" "$tmp/vfr24.rgb" --fps 24 >/dev/null 2>&1
"$BIN" --dump "$tmp/vfr.mkv" "$tmp/vfr0.rgb" >/dev/null 2>&1
"$PY" - "$tmp/vfr24.rgb" "$tmp/vfr0.rgb" <<'PYEOF'
import sys
import numpy as np
f = 96 * 64 * 3
out, src = np.fromfile(sys.argv[1], np.uint8).reshape(-1, f), np.fromfile(sys.argv[2], np.uint8).reshape(-1, f)
# the last frame lasts one frame at the average rate when the container does not say (71 outputs)
# or its 2/24 s (72)
want = list(range(24)) + [24 + k // 2 for k in range(48)]
ok = src.shape[0] == 48 and out.shape[0] in (71, 72) and all((out[k] == src[want[k]]).all() for k in range(out.shape[0]))
print(("PASS" if ok else "FAIL") + f" variable rate at 24 fps: {out.shape[0]} frames (want 71 or 72), frames 24.. each twice")
PYEOF

# ---- damaged input -----------------------------------------------------------------------------
size=$(stat -c %s "$tmp/raw.avi")
head -c $((size * 6 / 10)) "$tmp/raw.avi" >"$tmp/cut.avi"
"$BIN" --dump "$tmp/cut.avi" "$tmp/cut.rgb" >"$tmp/out" 2>&1
rc=$?
[ $rc -ne 0 ] && [ "$(wc -l <"$tmp/out")" -eq 1 ] && grep -q "^$tmp/cut.avi: decode error at source frame [0-9]" "$tmp/out"
check "avi cut mid-frame: one line naming the frame" $? "exit $rc: $(cat "$tmp/out")"
echo "  $(cat "$tmp/out")"

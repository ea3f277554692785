#!/usr/bin/env bash
# export_checks.sh — tpdiff-export and tpdiff-sample end to end:
#   - fp32 and bf16 exports load into the PyTorch reference with strict=True and its forward equals
#     tpdiff's (1e-4 normwise; bf16 against fp32 to a bf16 tolerance; bf16 bits = torch's rounding),
#     for an unconditional K = 1 model and a class-conditional K = 3 model at stage 1;
#   - tpdiff-sample: the same --noise and weights give bit-identical raw output, --save-raw writes
#     [C, T, H, W] float32 next to the GIF/PNG;
#   - bad input (damaged or mismatched files, bad noise, bad options): one stderr line, exit 2,
#     nothing written.
# BINDIR / TOOLDIR select the binaries (the ASan+UBSan flavour: build-san/bin, build-san/tests/export).
set -uo pipefail
cd "$(dirname "$0")/../.."
BINDIR=${BINDIR:-bin}
TOOLDIR=${TOOLDIR:-build/tests/export}
PY=${PY:-/usr/bin/python3}
# checkpoints come from the normal build's trainer: training is not what this script checks
TRAIN=${TRAIN:-bin/tpdiff-train}
# the safetensors package, when scripts/setup.sh could install it (check_export.py names its reader)
export PYTHONPATH=build/pydeps${PYTHONPATH:+:$PYTHONPATH}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tpdiff-export.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
CHECK="$PY tests/export/check_export.py"

check() { # check NAME STATUS(0 = ok) DETAIL
  if [ "$2" -eq 0 ]; then echo "PASS $1"; else echo "FAIL $1: $3"; fi
}

# refuse NAME NEEDLES... -- COMMAND... : exit 2, exactly one stderr line holding every needle, and
# $tmp/refused (the --out of every refusal case) never created.
refuse() {
  local name=$1; shift
  local needles=()
  while [ "$1" != "--" ]; do needles+=("$1"); shift; done
  shift
  "$@" >"$tmp/stdout" 2>"$tmp/stderr"
  local rc=$? ok=0 why="" lines
  lines=$(wc -l <"$tmp/stderr")
  [ "$rc" -eq 2 ] || { ok=1; why="exit $rc, expected 2"; }
  [ "$lines" -eq 1 ] || { ok=1; why="$why; $lines stderr lines: $(head -c 400 "$tmp/stderr")"; }
  for n in "${needles[@]}"; do grep -qF -- "$n" "$tmp/stderr" || { ok=1; why="$why; message lacks '$n': $(head -c 400 "$tmp/stderr")"; }; done
  [ ! -e "$tmp/refused" ] || { ok=1; why="$why; the output folder was created"; rm -rf "$tmp/refused"; }
  check "refuses $name" $ok "$why"
}

# model_case NAME STAGE OVERRIDES...: random weights -> exports -> PyTorch parity
model_case() {
  local name=$1 stage=$2; shift 2
  local d="$tmp/$name"
  mkdir -p "$d"
  "$TOOLDIR/forward_dump" random configs/tiny.yaml "$d/random.safetensors" --seed=5 "$@" >/dev/null || {
    echo "FAIL $name: forward_dump random failed"; return; }
  "$BINDIR/tpdiff-export" "$d/random.safetensors" --out "$d/f32" >/dev/null &&
    "$BINDIR/tpdiff-export" "$d/random.safetensors" --out "$d/b16" --dtype bf16 >/dev/null || {
    echo "FAIL $name: tpdiff-export failed"; return; }
  cmp -s "$d/random.safetensors" "$d/f32/model.safetensors"
  check "$name: fp32 export of a tpdiff safetensors file is byte-identical to it" $? "files differ"
  "$TOOLDIR/forward_dump" forward "$d/f32/model.safetensors" "$d/fwd32" --stage="$stage" --clips=3 >/dev/null &&
    "$TOOLDIR/forward_dump" forward "$d/b16/model.safetensors" "$d/fwd16" --stage="$stage" --clips=3 >/dev/null || {
    echo "FAIL $name: forward_dump forward failed"; return; }
  $CHECK parity "$name fp32: PyTorch loads strict=True, forward = tpdiff's" "$d/f32/model.safetensors" \
    "$d/f32/config.json" "$d/fwd32" 1e-4
  $CHECK parity "$name bf16: PyTorch loads strict=True, forward = tpdiff's" "$d/b16/model.safetensors" \
    "$d/b16/config.json" "$d/fwd16" 1e-4
  # bf16 keeps 8 significant bits (relative rounding 2^-9 = 2e-3 per weight)
  $CHECK close "$name bf16 weights: forward within bf16 tolerance of fp32" "$d/fwd16" "$d/fwd32" 1e-2
  $CHECK bf16 "$name bf16 export: every value is torch's float32->bfloat16 rounding" \
    "$d/f32/model.safetensors" "$d/b16/model.safetensors"
}

model_case tiny 0
model_case pyramid 1 --pyramid.stages=3 --model.classes=5

# ---- tpdiff-sample from the exported K = 3 model -------------------------------------------------
m="$tmp/pyramid/f32/model.safetensors"
S="$BINDIR/tpdiff-sample"
$PY - "$tmp" <<'EOF'
import sys, numpy as np
d = sys.argv[1]
rng = np.random.default_rng(3)
np.save(f"{d}/noise.npy", rng.standard_normal((2, 3, 2, 16, 16)).astype(np.float32))   # T_0 = 8 / 4
np.save(f"{d}/noise-b.npy", rng.standard_normal((2, 3, 2, 16, 16)).astype(np.float32))
np.save(f"{d}/noise-f64.npy", rng.standard_normal((2, 3, 2, 16, 16)))
np.save(f"{d}/noise-shape.npy", rng.standard_normal((2, 3, 8, 16, 16)).astype(np.float32))
EOF
run_sample() { "$S" "$m" --noise "$1" --steps 3 --device cpu --labels 1,3 --out "$2" "${@:3}" >/dev/null 2>"$tmp/sample.err"; }
run_sample "$tmp/noise.npy" "$tmp/s1" --save-raw && run_sample "$tmp/noise.npy" "$tmp/s2" --save-raw &&
  run_sample "$tmp/noise-b.npy" "$tmp/s3" --save-raw && run_sample "$tmp/noise.npy" "$tmp/s4"
check "tpdiff-sample runs with --noise and --save-raw" $? "$(head -c 300 "$tmp/sample.err")"
cmp -s "$tmp/s1/video-00.npy" "$tmp/s2/video-00.npy" && cmp -s "$tmp/s1/video-01.npy" "$tmp/s2/video-01.npy"
check "same noise + same weights -> bit-identical raw output (CPU)" $? "raw outputs differ"
cmp -s "$tmp/s1/video-00.npy" "$tmp/s3/video-00.npy"
[ $? -ne 0 ]; check "other noise -> other output" $? "outputs equal: the noise file was ignored"
[ -s "$tmp/s4/video-01.gif" ] && [ -s "$tmp/s4/video-01.png" ] && [ ! -e "$tmp/s4/video-00.npy" ]
check "without --save-raw: GIF and PNG, no .npy" $? "$(ls "$tmp/s4")"
$PY - "$tmp/s1" <<'EOF'
import sys, numpy as np
v = np.load(f"{sys.argv[1]}/video-01.npy")
ok = v.shape == (3, 8, 16, 16) and v.dtype == np.float32 and np.isfinite(v).all() and v.std() > 0
print(f"{'PASS' if ok else 'FAIL'} --save-raw writes float32 [C, T, H, W] (shape {v.shape}, {v.dtype}, std {v.std():.3g})")
EOF

# ---- from training checkpoints (tpdiff-train, 5 steps, K = 3, 5 classes; and one without EMA) ------
run="$tmp/run"
ck="$run/ckpt-0000005.h5"
"$TRAIN" configs/tiny.yaml --train.steps=5 --train.out="$run" --pyramid.stages=3 --model.classes=5 \
  --train.device=cpu --train.log_every=5 >/dev/null 2>"$tmp/train.err" &&
  "$TRAIN" configs/tiny.yaml --train.steps=2 --train.out="$tmp/run0" --train.ema=0 --train.device=cpu \
    --train.log_every=5 >/dev/null 2>>"$tmp/train.err"
check "tpdiff-train writes the checkpoints to export" $? "$(head -c 300 "$tmp/train.err")"
E="$BINDIR/tpdiff-export"
"$E" "$ck" --out "$tmp/ck-ema" >/dev/null && "$E" "$ck" --out "$tmp/ck-raw" --weights raw >/dev/null &&
  "$E" "$ck" --out "$tmp/ck-raw16" --weights raw --dtype bf16 >/dev/null &&
  "$E" "$tmp/run0/ckpt-0000002.h5" --out "$tmp/ck0" >/dev/null 2>"$tmp/export.err"
check "tpdiff-export of checkpoints (default, --weights raw, --dtype bf16, a run without EMA)" $? \
  "$(head -c 300 "$tmp/export.err")"
$CHECK h5 "checkpoint export, default: the EMA weights bit for bit" "$ck" ema "$tmp/ck-ema/model.safetensors"
$CHECK h5 "checkpoint export, --weights raw: the master weights bit for bit" "$ck" params "$tmp/ck-raw/model.safetensors"
$CHECK h5 "checkpoint export, raw bf16: torch's rounding of the master weights" "$ck" params \
  "$tmp/ck-raw16/model.safetensors"
$CHECK h5 "checkpoint without EMA: the default export holds the master weights" "$tmp/run0/ckpt-0000002.h5" params \
  "$tmp/ck0/model.safetensors"
$PY - "$tmp" <<'EOF2'
import json, sys
d = sys.argv[1]
a = json.load(open(f"{d}/ck-ema/config.json"))
b = json.load(open(f"{d}/ck0/config.json"))
ok = (a["weights"], a["step"], a["dtype"], b["weights"], b["step"]) == ("ema", 5, "F32", "raw", 2) and \
    a["pyramid"]["stride"] == [4, 2, 1] and a["model"]["classes"] == 5 and a["data"]["frames"] == 8
print(f"{'PASS' if ok else 'FAIL'} config.json names the weights, step, shapes and stage strides "
      f"({a['weights']} step {a['step']}, {b['weights']} step {b['step']}, strides {a['pyramid']['stride']})")
EOF2
"$TOOLDIR/forward_dump" forward "$ck" "$tmp/fwd-ck" --stage=2 --clips=2 >/dev/null
$CHECK parity "PyTorch on the EMA export = tpdiff's forward from the checkpoint" "$tmp/ck-ema/model.safetensors" \
  "$tmp/ck-ema/config.json" "$tmp/fwd-ck" 1e-4
"$S" "$ck" --noise "$tmp/noise.npy" --steps 3 --device cpu --save-raw --out "$tmp/sc1" >/dev/null 2>"$tmp/sample.err" &&
  "$S" "$tmp/ck-ema/model.safetensors" --noise "$tmp/noise.npy" --steps 3 --device cpu --save-raw \
    --out "$tmp/sc2" >/dev/null 2>>"$tmp/sample.err" &&
  "$S" "$ck" --weights raw --noise "$tmp/noise.npy" --steps 3 --device cpu --save-raw \
    --out "$tmp/sc3" >/dev/null 2>>"$tmp/sample.err" &&
  "$S" "$tmp/ck-raw/model.safetensors" --noise "$tmp/noise.npy" --steps 3 --device cpu --save-raw \
    --out "$tmp/sc4" >/dev/null 2>>"$tmp/sample.err"
check "tpdiff-sample from a checkpoint and from its exports" $? "$(head -c 300 "$tmp/sample.err")"
cmp -s "$tmp/sc1/video-01.npy" "$tmp/sc2/video-01.npy" && cmp -s "$tmp/sc3/video-01.npy" "$tmp/sc4/video-01.npy"
check "checkpoint and its fp32 export sample bit-identical videos (EMA and raw)" $? "raw outputs differ"
cmp -s "$tmp/sc1/video-01.npy" "$tmp/sc3/video-01.npy"
[ $? -ne 0 ]; check "EMA and raw weights sample different videos" $? "equal: --weights was ignored"

# ---- refusals ------------------------------------------------------------------------------------
R="$tmp/refused"
head -c 3000 "$m" >"$tmp/truncated.safetensors"
head -c 200000 "$m" >"$tmp/truncated-data.safetensors"
"$TOOLDIR/forward_dump" random configs/tiny.yaml "$tmp/deeper.safetensors" --model.depth=3 --pyramid.stages=3 \
  --model.classes=5 >/dev/null
$CHECK splice "$tmp/spliced.safetensors" "$tmp/deeper.safetensors" "$m" >/dev/null
"$TOOLDIR/forward_dump" random configs/tiny.yaml "$tmp/wider.safetensors" --model.dim=32 --pyramid.stages=3 \
  --model.classes=5 >/dev/null
$CHECK splice "$tmp/narrower.safetensors" "$tmp/wider.safetensors" "$m" >/dev/null
refuse "a safetensors file cut in its header" "truncated.safetensors" "runs past the end" -- \
  "$S" "$tmp/truncated.safetensors" --out "$R"
refuse "a safetensors file cut in its data" "truncated-data.safetensors" "run past the data area" -- \
  "$S" "$tmp/truncated-data.safetensors" --out "$R"
refuse "tensors of a deeper model than the config" "spliced.safetensors" "'blocks.2." "not a parameter" -- \
  "$S" "$tmp/spliced.safetensors" --out "$R"
refuse "tensors of another width than the config" "narrower.safetensors" "x_embed.weight" "[32, 12]" "[64, 12]" -- \
  "$S" "$tmp/narrower.safetensors" --out "$R"
refuse "export of a mismatched file" "narrower.safetensors" "[32, 12]" -- \
  "$BINDIR/tpdiff-export" "$tmp/narrower.safetensors" --out "$R"
refuse "noise of dtype float64" "noise-f64.npy" "<f8" -- "$S" "$m" --noise "$tmp/noise-f64.npy" --out "$R"
refuse "noise of another shape" "noise-shape.npy" "[2, 3, 8, 16, 16]" "[N, 3, 2, 16, 16]" -- \
  "$S" "$m" --noise "$tmp/noise-shape.npy" --out "$R"
refuse "noise count against --count" "noise.npy" "[3, 3, 2, 16, 16]" -- "$S" "$m" --noise "$tmp/noise.npy" --count 3 --out "$R"
refuse "a missing noise file" "nope.npy" "cannot open" -- "$S" "$m" --noise "$tmp/nope.npy" --out "$R"
refuse "a label outside the classes" "--labels" "[0, 5)" -- "$S" "$m" --labels 5 --out "$R"
refuse "EMA asked of a raw export" "raw weights only" -- "$S" "$m" --weights ema --out "$R"
refuse "an unknown device" "--device" -- "$S" "$m" --device tpu --out "$R"
refuse "an unknown option" "--frobnicate" -- "$S" "$m" --frobnicate --out "$R"
refuse "--dtype fp16 on export" "--dtype" "fp16" -- "$BINDIR/tpdiff-export" "$m" --dtype fp16 --out "$R"
head -c 5000 "$ck" >"$tmp/cut.h5"
refuse "a truncated checkpoint" "cut.h5" -- "$S" "$tmp/cut.h5" --out "$R"
refuse "EMA asked of a checkpoint without EMA" "no EMA" -- "$E" "$tmp/run0/ckpt-0000002.h5" --weights ema --out "$R"
refuse "export of a missing file" "missing.h5" "cannot open" -- "$BINDIR/tpdiff-export" "$tmp/missing.h5" --out "$R"

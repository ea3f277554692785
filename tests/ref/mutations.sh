#!/usr/bin/env bash
# mutations.sh — shows that the PyTorch parity check fails when a kernel is broken: each case
# copies the sources, breaks one line on purpose, rebuilds the dump tool and expects
# check_parity.py to report failures. A mutation that no longer applies is itself a failure, so
# this test cannot silently rot.
#
# The rebuild goes through the Makefile (so its flags and libraries are never restated here) into
# a copy of build/: only the mutated file is recompiled. Expects `make test-build` to have run.
# Warnings are errors there too, so a mutation must leave every variable used.
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-/usr/bin/python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/tpdiff-mutations.XXXXXX")
trap 'rm -rf "$work"' EXIT
[ -x build/tests/ref/parity_dump ] || { echo "FAIL mutations: build/ is not built (run make test-build)"; exit 1; }

mutate() { # mutate DESCRIPTION FILE FROM TO
  local desc=$1 file=$2 from=$3 to=$4 src="$work/src" obj="$work/build"
  rm -rf "$src" "$obj" && mkdir -p "$src"
  cp -a Makefile kernels model data comm trainer tests scripts "$src/"
  cp -a build "$obj" # same sources, same flags: make recompiles only the mutated file
  if ! grep -qF -- "$from" "$src/$file"; then
    echo "FAIL mutation '$desc': pattern not found in $file (update this test)"
    return
  fi
  FROM="$from" TO="$to" perl -0pi -e 's/\Q$ENV{FROM}\E/$ENV{TO}/' "$src/$file"
  touch "$src/$file"
  if ! make -s -C "$src" CUDA=0 BUILD="$obj" "$obj/tests/ref/parity_dump" >"$work/cc.log" 2>&1; then
    echo "FAIL mutation '$desc': does not build"; tail -20 "$work/cc.log"; return
  fi
  rm -rf "$work/out"
  "$obj/tests/ref/parity_dump" configs/tiny.yaml "$work/out" --pyramid.stages=3 --model.classes=5 --stage=1 --clips=3 >/dev/null
  "$PY" tests/ref/check_parity.py "$work/out" >"$work/check.log" 2>&1
  local rc=$? nfail
  nfail=$(grep -c '^FAIL' "$work/check.log")
  if [ "$rc" -eq 1 ] && [ "$nfail" -gt 0 ]; then
    echo "PASS mutation '$desc' caught: $nfail checks failed, e.g. $(grep -m1 '^FAIL' "$work/check.log")"
  else
    echo "FAIL mutation '$desc' NOT caught (check exit $rc)"
  fi
}

mutate "GELU backward: 3a x^2 -> 2a x^2" kernels/cpu/pointwise.c \
  'du = GELU_C * (1.0f + 3.0f * GELU_A * x * x)' 'du = GELU_C * (1.0f + 2.0f * GELU_A * x * x)'
mutate "softmax backward without the row-sum term" kernels/cpu/attention.c \
  'dsr[j] = pr[j] * (dsr[j] - dot)' 'dsr[j] = pr[j] * dsr[j]'
mutate "adaLN modulate drops the shift" kernels/cpu/layernorm.c \
  '* (1.0f + sc[d]) + sh[d];' '* (1.0f + sc[d]) + 0.0f * sh[d];'
mutate "linear bias gradient overwrites instead of accumulating" kernels/cpu/matmul.c \
  'd_bias[j] += row[j]' 'd_bias[j] = row[j]'
mutate "AdamW without the second-moment bias correction" kernels/cpu/optim.c \
  'sqrtf(vi) / bc2_sqrt + eps' 'sqrtf(vi) / (0.0f * bc2_sqrt + 1.0f) + eps'
mutate "temporal position without the (m-1)/2 centring" model/dit_activations.c \
  'q[j] = (double)m * j + (m - 1) / 2.0;' 'q[j] = (double)m * j;'

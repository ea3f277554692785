#!/usr/bin/env bash
# mutations.sh — shows that the PyTorch parity check fails when a kernel is broken: each case
# copies the sources, breaks one line on purpose, rebuilds the dump tool and expects
# check_parity.py to report failures. A mutation that no longer applies is itself a failure, so
# this test cannot silently rot.
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-/usr/bin/python3}
MULTIARCH=$(gcc -print-multiarch)
BLAS_INC=/usr/include/$MULTIARCH/openblas-openmp
BLAS_LIB=/usr/lib/$MULTIARCH/openblas-openmp
# data/ also holds the video decoder (FFmpeg) and the shard code (HDF5): link what they need
EXTRA_CFLAGS=$(pkg-config --cflags libavformat libavcodec libswscale libavutil hdf5-serial 2>/dev/null)
EXTRA_LIBS=$(pkg-config --libs libavformat libavcodec libswscale libavutil hdf5-serial 2>/dev/null)
work=$(mktemp -d "${TMPDIR:-/tmp}/tpdiff-mutations.XXXXXX")
trap 'rm -rf "$work"' EXIT

mutate() { # mutate DESCRIPTION FILE FROM TO
  local desc=$1 file=$2 from=$3 to=$4 dir="$work/src"
  rm -rf "$dir" && mkdir -p "$dir"
  cp -r kernels model data trainer tests "$dir/"
  if ! grep -qF -- "$from" "$dir/$file"; then
    echo "FAIL mutation '$desc': pattern not found in $file (update this test)"
    return
  fi
  FROM="$from" TO="$to" perl -0pi -e 's/\Q$ENV{FROM}\E/$ENV{TO}/' "$dir/$file"
  if ! gcc -std=c11 -O1 -fopenmp -D_POSIX_C_SOURCE=200809L -I"$dir" -I"$BLAS_INC" $EXTRA_CFLAGS \
      "$dir"/kernels/cpu/*.c "$dir"/model/*.c "$dir"/data/*.c \
      $(ls "$dir"/trainer/*.c | grep -v _main.c) "$dir"/tests/ref/parity_dump.c \
      -o "$work/dump" -L"$BLAS_LIB" -Wl,-rpath,"$BLAS_LIB" -lopenblas -lyaml $EXTRA_LIBS -lgif -lpng -lz -lm 2>"$work/cc.log"; then
    echo "FAIL mutation '$desc': does not compile"; cat "$work/cc.log"; return
  fi
  rm -rf "$work/out"
  "$work/dump" configs/tiny.yaml "$work/out" --pyramid.stages=3 --model.classes=5 --stage=1 --clips=3 >/dev/null
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
  '* (1.0f + sc[d]) + sh[d];' '* (1.0f + sc[d]);'
mutate "linear bias gradient overwrites instead of accumulating" kernels/cpu/matmul.c \
  'd_bias[j] += row[j]' 'd_bias[j] = row[j]'
mutate "AdamW without the second-moment bias correction" kernels/cpu/optim.c \
  'sqrtf(vi) / bc2_sqrt + eps' 'sqrtf(vi) + eps'
mutate "temporal position without the (m-1)/2 centring" model/dit_activations.c \
  'q[j] = (double)m * j + (m - 1) / 2.0;' 'q[j] = (double)m * j;'

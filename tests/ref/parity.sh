#!/usr/bin/env bash
# parity.sh CASE — dumps the C model (random weights, inputs, outputs, gradients, 10 AdamW steps)
# and compares everything against the PyTorch reference (tests/ref/check_parity.py, float64).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-/usr/bin/python3}
case "${1:-}" in
  tiny) cfg=configs/tiny.yaml; args=() ;;
  # a pyramid-shaped model: stage 1 of 3 runs at half rate (stride 2 positions, stage embedding)
  tiny-pyramid) cfg=configs/tiny.yaml; args=(--pyramid.stages=3 --model.classes=5 --stage=1 --clips=3) ;;
  demo) cfg=configs/demo.yaml; args=(--clips=2) ;;
  *) echo "usage: parity.sh tiny|tiny-pyramid|demo" >&2; exit 2 ;;
esac
dir=$(mktemp -d "${TMPDIR:-/tmp}/tpdiff-parity.XXXXXX")
trap 'rm -rf "$dir"' EXIT
build/tests/ref/parity_dump "$cfg" "$dir" "${args[@]}"
"$PY" tests/ref/check_parity.py "$dir"

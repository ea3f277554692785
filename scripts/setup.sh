#!/usr/bin/env bash
# setup.sh — installs every OS package tpdiff needs on Debian 12 (run as root, or with sudo).
#
#   scripts/setup.sh              install (apt-get update + install) the whole list
#   scripts/setup.sh --if-missing install only when a package of the list is missing (quiet otherwise)
#   scripts/setup.sh --check      exit 1 and name what is missing, install nothing
#
# Python: the tests and benchmarks use the system interpreter /usr/bin/python3, which is where
# Debian's python3-torch, python3-numpy, python3-yaml and python3-h5py install (a python3 earlier on PATH may be a
# different interpreter without them).
set -euo pipefail

PACKAGES=(
  build-essential pkg-config          # gcc, make
  libopenblas-openmp-dev              # sgemm, OpenMP flavour (shares the kernels' thread pool)
  libyaml-dev                         # config files
  libgif-dev libpng-dev zlib1g-dev    # sample videos (GIF, PNG), gzipped data files
  dataset-fashion-mnist               # real garment images for the fashion demo set
  libhdf5-dev                         # data shards and checkpoints
  libopenmpi-dev openmpi-bin          # data-parallel ranks
  slurmctld slurmd slurm-client munge # tests/mpi/slurm_batch.sh starts a one-node SLURM cluster
  libavformat-dev libavcodec-dev libswscale-dev libavutil-dev  # tpdiff-prep decodes real videos (FFmpeg)
  ffmpeg                              # the decode tests make videos and compare with the CLI's decode
  python3-torch python3-numpy python3-yaml   # the PyTorch reference (tests/ref) and bench-cpu
  python3-h5py                        # shard interop tests: h5py writes and reads our shards
  python3-pip                         # installs the safetensors Python package below (not system-wide)
)

# The export tests load tpdiff's model.safetensors with the real `safetensors` Python package. It is
# installed for /usr/bin/python3 into build/pydeps (tests/export puts it on PYTHONPATH), never into the
# system Python. Optional: offline, the tests read the files with their own reader of the format and
# say so in every line.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYDEPS="$ROOT/build/pydeps"
install_pydeps() {
  [ -f "$PYDEPS/safetensors/__init__.py" ] && return 0
  command -v /usr/bin/python3 >/dev/null && /usr/bin/python3 -m pip --version >/dev/null 2>&1 || return 0
  if timeout 180 /usr/bin/python3 -m pip install --quiet --disable-pip-version-check --no-deps --retries 1 \
      --timeout 20 --target "$PYDEPS" "safetensors==0.8.0" >/dev/null 2>&1; then
    echo "setup: installed the safetensors Python package into build/pydeps"
  else
    echo "setup: could not install the safetensors Python package (offline?); the export tests use their own reader"
  fi
}

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then missing+=("$p"); fi
done

mode=${1:-install}
case "$mode" in
  --check)
    if ((${#missing[@]})); then echo "setup: missing packages: ${missing[*]}"; exit 1; fi
    exit 0 ;;
  --if-missing)
    ((${#missing[@]})) || { install_pydeps; exit 0; } ;;
  install) ;;
  *) echo "usage: scripts/setup.sh [--if-missing|--check]" >&2; exit 2 ;;
esac

if ((${#missing[@]})); then echo "setup: installing ${missing[*]}"; else echo "setup: everything is installed"; install_pydeps; exit 0; fi
SUDO=
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
install_pydeps
echo "setup: done"

#!/usr/bin/env bash
# tpdiff-mpirun.sh — tpdiff-train as NP data-parallel ranks on this machine (or on the hosts of
# $HOSTFILE) with Open MPI's mpirun.
#
#   launch/tpdiff-mpirun.sh NP CONFIG [--section.key=value ...] [--resume CKPT | --init CKPT]
#
# The mpirun line it runs (printed first), and why each flag is there:
#   --allow-run-as-root   only as root: Open MPI refuses root without it
#   --oversubscribe       only when NP exceeds the cores (or hardware threads) here: Open MPI refuses
#                         more ranks than slots otherwise
#   --bind-to core --map-by slot:PE=T, -x OMP_NUM_THREADS=T
#                         T = cores / NP (at least 1) OpenMP/OpenBLAS threads per rank, each rank's
#                         threads on cores of their own; when oversubscribed, --bind-to none instead
#   -x TPDIFF_CUDA_LIB -x TPDIFF_NCCL_LIB -x CUDA_VISIBLE_DEVICES
#                         passed through when set; tpdiff-train gives each local rank one GPU itself
# Extra mpirun flags: MPIRUN_ARGS="..." (e.g. "--hostfile hosts --map-by ppr:8:node" for several
# nodes, one rank per GPU). The job exits non-zero when any rank fails (tpdiff-train aborts the
# whole job, naming the rank). Running the same command again resumes from the newest checkpoint in
# train.out (tpdiff-train does this itself).
set -euo pipefail
if [ $# -lt 2 ]; then
  sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
np=$1
shift
case $np in '' | *[!0-9]* | 0) echo "tpdiff-mpirun.sh: NP must be a positive integer, got '$np'" >&2; exit 2 ;; esac
root=$(cd "$(dirname "$0")/.." && pwd)
train=${TPDIFF_TRAIN:-$root/bin/tpdiff-train}
[ -x "$train" ] || { echo "tpdiff-mpirun.sh: $train is missing; run make first" >&2; exit 2; }
command -v mpirun >/dev/null || { echo "tpdiff-mpirun.sh: mpirun not found (apt-get install openmpi-bin)" >&2; exit 2; }

cores=$(nproc)
args=(-np "$np")
[ "$(id -u)" -eq 0 ] && args+=(--allow-run-as-root)
if [ -z "${HOSTFILE:-}" ] && [ "$np" -gt "$cores" ]; then
  threads=1
  args+=(--oversubscribe --bind-to none)
else
  threads=$((cores / np))
  [ "$threads" -ge 1 ] || threads=1
  [ -n "${HOSTFILE:-}" ] && args+=(--hostfile "$HOSTFILE")
  args+=(--bind-to core --map-by "slot:PE=$threads")
fi
threads=${OMP_NUM_THREADS:-$threads}
args+=(-x "OMP_NUM_THREADS=$threads")
for v in TPDIFF_CUDA_LIB TPDIFF_NCCL_LIB CUDA_VISIBLE_DEVICES; do [ -n "${!v:-}" ] && args+=(-x "$v"); done
# shellcheck disable=SC2206 # MPIRUN_ARGS is a list of flags on purpose
[ -n "${MPIRUN_ARGS:-}" ] && args+=($MPIRUN_ARGS)
echo "+ mpirun ${args[*]} $train $*" >&2
exec mpirun "${args[@]}" "$train" "$@"

#!/usr/bin/env bash
# slurm_batch.sh — launch/tpdiff.sbatch on a real single-node SLURM cluster that this test starts
# (munged, slurmctld and slurmd from the OS packages, configured on localhost under a temporary
# folder, stopped by their pid files at the end): a 2-task job (srun --mpi=pmix) trains to
# completion, then a second job with more steps resumes from the first one's checkpoint, and a
# third runs the ranks with mpirun inside the allocation. When SLURM cannot start here, one line
# "SKIP ..." says why and the test counts as neither passed nor failed.
set -u
cd "$(dirname "$0")/../.."
. tests/mpi/mpi_common.sh
for tool in munged slurmctld slurmd sbatch sinfo scontrol; do
  command -v "$tool" >/dev/null || { echo "SKIP slurm: $tool is not installed (scripts/setup.sh installs slurmctld slurmd slurm-client munge)"; exit 0; }
done
work=$(mktemp -d "${TMPDIR:-/tmp}/tpdiff-slurm.XXXXXX")
chmod 755 "$work"
stop_daemons() {
  for p in "$work"/slurmd.pid "$work"/slurmctld.pid "$work"/munged.pid; do
    [ -s "$p" ] && kill "$(cat "$p")" 2>/dev/null
  done
  sleep 0.5
  for p in "$work"/slurmd.pid "$work"/slurmctld.pid "$work"/munged.pid; do
    [ -s "$p" ] && kill -9 "$(cat "$p")" 2>/dev/null
  done
}
trap 'stop_daemons; rm -rf "$work"' EXIT
skip() {
  echo "SKIP slurm: $1"
  for log in "$work"/*.log; do [ -s "$log" ] && tail -3 "$log" | sed "s|^|    $(basename "$log"): |"; done
  exit 0
}

# ---- munge: its own key and socket
mkdir -p "$work/munge" && chmod 700 "$work/munge"
dd if=/dev/urandom of="$work/munge/munge.key" bs=1024 count=1 status=none && chmod 400 "$work/munge/munge.key"
munged --force --key-file="$work/munge/munge.key" --socket="$work/munge/munge.sock" --pid-file="$work/munged.pid" \
  --log-file="$work/munged.log" --seed-file="$work/munge/seed" >/dev/null 2>&1 || skip "munged did not start"

# ---- slurm.conf: one node (this machine), ports picked from the test's pid
port=$((20000 + ($$ % 20000)))
export SLURM_CONF="$work/slurm.conf"
mkdir -p "$work/state" "$work/spool"
cat >"$SLURM_CONF" <<CONF
ClusterName=tpdifftest
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$work/munge/munge.sock
CredType=cred/munge
SlurmctldPort=$port
SlurmdPort=$((port + 1))
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=pmix
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
ReturnToService=2
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=test Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
slurmctld -i >/dev/null 2>&1 || skip "slurmctld did not start"
slurmd -N localhost >/dev/null 2>&1 || skip "slurmd did not start"
# the daemons exit 0 even when they die: wait for the node to be idle
up=0
for _ in $(seq 100); do
  if timeout 5 sinfo -h -o '%t' 2>/dev/null | grep -q idle; then up=1; break; fi
  sleep 0.2
done
[ "$up" = 1 ] || skip "the node never became idle in sinfo"

# submit NAME SBATCH-ARGS... -- TRAIN-ARGS...: sbatch --wait, at most 180 s; sets rc and out
submit() {
  local name=$1
  shift
  local sb=()
  while [ "$1" != "--" ]; do sb+=("$1"); shift; done
  shift
  out="$work/$name.out"
  timeout 180 sbatch --wait --quiet --overcommit --output="$out" --chdir="$PWD" --time=10 --signal=USR1@5 \
    "${sb[@]}" launch/tpdiff.sbatch "$@"
  rc=$?
}
TRAIN=(configs/tiny.yaml --pyramid.stages=3 --train.clips_per_microbatch=2 --train.log_every=1 --train.out="$work/run")

# ---- 2 tasks on one node, srun --mpi=pmix: trains to the end
submit first --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 -- "${TRAIN[@]}" --train.steps=6
steps=$(awk '$1 ~ /^[0-9]+$/ && NF >= 9' "$out" 2>/dev/null | wc -l)
if [ "$rc" -eq 0 ] && grep -q '^# ranks: 2 ' "$out" && [ "$steps" -eq 6 ] && [ -f "$work/run/ckpt-0000006.h5" ]; then
  pass "sbatch tpdiff.sbatch, 2 tasks (srun --mpi=pmix): 6 steps on 2 ranks, checkpoint written"
else
  fail "sbatch tpdiff.sbatch, 2 tasks: status $rc, $steps step lines (wanted 6), ranks line: $(grep -c '^# ranks: 2 ' "$out" 2>/dev/null)"
  tail -8 "$out" 2>/dev/null | sed 's/^/    /'
fi

# ---- the same command with more steps: resumes from the checkpoint (what a requeued job does)
submit second --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 -- "${TRAIN[@]}" --train.steps=9
first_step=$(awk '$1 ~ /^[0-9]+$/ && NF >= 9 { print $1; exit }' "$out" 2>/dev/null)
if [ "$rc" -eq 0 ] && grep -q 'resumed from .*ckpt-0000006.h5' "$out" && [ "$first_step" = 7 ]; then
  pass "a second job with the same arguments resumes from ckpt-0000006.h5 and runs steps 7-9"
else
  fail "second job: status $rc, first step '$first_step' (wanted 7), resume line: $(grep -c 'resumed from' "$out" 2>/dev/null)"
  tail -8 "$out" 2>/dev/null | sed 's/^/    /'
fi

# ---- mpirun inside the allocation
TPDIFF_LAUNCHER=mpirun submit third --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 --export=ALL -- \
  configs/tiny.yaml --train.steps=3 --train.log_every=1 --train.out="$work/run-mpirun"
if [ "$rc" -eq 0 ] && grep -q '^# ranks: 2 ' "$out" && grep -q '^+ mpirun -np 2 ' "$out" && [ -f "$work/run-mpirun/ckpt-0000003.h5" ]; then
  pass "sbatch tpdiff.sbatch with TPDIFF_LAUNCHER=mpirun: 2 ranks from the allocation, 3 steps"
else
  fail "TPDIFF_LAUNCHER=mpirun job: status $rc"
  tail -8 "$out" 2>/dev/null | sed 's/^/    /'
fi

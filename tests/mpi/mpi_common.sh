# mpi_common.sh — sourced by the tests of tests/mpi: mpirun as root and with more ranks than cores,
# every launch under `timeout`, one OpenMP thread per rank, and the PASS/FAIL helpers.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
# Open MPI's own leaks at exit (ENVIRONMENT: ~117 KB per rank) are not tpdiff's
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/mpi/lsan.supp:print_suppressions=0}
BIN=${BIN:-bin/tpdiff-train}
CHECK=${CHECK:-build/tests/mpi/mpi_train_check}

# mpi NP SECONDS PROGRAM ARGS...: mpirun -np NP, killed after SECONDS
mpi() {
  local np=$1 seconds=$2
  shift 2
  timeout -k 5 "$seconds" mpirun --oversubscribe --bind-to none -np "$np" -x OMP_NUM_THREADS=1 -x LSAN_OPTIONS "$@"
}

pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; }

# wait_training LOG: until the log shows step 3 (at most 60 s); 0 when it did
wait_training() {
  for _ in $(seq 600); do
    grep -qE '^ +3 ' "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# rank_pid OUT RANK: the pid of rank RANK of the tpdiff-train run whose train.out is OUT (found by its
# --train.out on the command line and OMPI_COMM_WORLD_RANK in its environment)
rank_pid() {
  local p
  for p in $(pgrep -f -- "--train.out=$1\$"); do
    [ "$(cat /proc/"$p"/comm 2>/dev/null)" = tpdiff-train ] || continue
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2" && echo "$p"
  done
}

# stopped_rank LABEL LAUNCHER OUT NAMES: a 2-rank run with train.comm_timeout=3 writing OUT and its
# log OUT.log, started in the background as LAUNCHER (mpi ... &). Once it logs step 3, rank 1 is
# stopped (SIGSTOP); PASS when the job then ends non-zero (not timeout's 124) within 30 s with rank
# 0's line saying that one of NAMES (an extended regex: the collectives rank 0 may be waiting in)
# did not complete within the timeout.
stopped_rank() {
  local label=$1 launcher=$2 out=$3 names=$4 victim rc elapsed line t0
  if ! wait_training "$out.log"; then
    kill "$launcher" 2>/dev/null
    fail "$label: the run never reached step 3"
    tail -5 "$out.log"
    return
  fi
  victim=$(rank_pid "$out" 1)
  t0=$SECONDS
  kill -STOP "$victim"
  wait "$launcher"
  rc=$?
  elapsed=$((SECONDS - t0))
  kill -KILL "$victim" 2>/dev/null # in case the launcher left it stopped
  line=$(grep -m1 'did not complete within train.comm_timeout = 3 s' "$out.log")
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$elapsed" -le 30 ] &&
    echo "$line" | grep -qE "rank 0 of 2: .*($names) did not complete"; then
    pass "$label: rank 0 aborts the job after train.comm_timeout=3 s (status $rc after ${elapsed} s): $line"
  else
    fail "$label: status $rc after ${elapsed} s, message '$line' (wanted rank 0 naming one of: $names)"
    tail -5 "$out.log"
  fi
}

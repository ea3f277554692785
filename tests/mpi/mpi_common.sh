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

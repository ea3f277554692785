#!/usr/bin/env bash
# nccl_emu.sh — the gradient all-reduce's NCCL path (comm/nccl_reduce.cu: the unique id's broadcast,
# the non-blocking start-up, buckets enqueued on its own stream during the backward, the bf16 wire,
# the deadline) with several ranks, where no GPU is present: the CUDA backend and NCCL emulated on
# the CPU (tests/emu; libtpdiff_cuda_emu.so is both $TPDIFF_CUDA_LIB and $TPDIFF_NCCL_LIB, and the
# ranks of one mpirun share memory where NCCL's would share a network):
#  - tests/mpi/nccl_check (a world of one: fp32 bit-identical, bf16 within its rounding, buckets
#    started while stream 0 still works), under ASan+UBSan;
#  - the reduced gradient at step 3 equals the single-process gradient over the same global batch
#    (tests/mpi/mpi_train_check.c): 2 and 4 ranks, buckets started during the backward, fp32 (1e-6)
#    and bf16 on the wire (2^-8, under ASan+UBSan);
#  - after 10 bf16 steps every rank holds bit-identical weights, AdamW moments and EMA;
#  - tpdiff-train under mpirun -np 2 gives the losses of -np 1 with both microbatches, bit for bit;
#  - a rank that stops answering: rank 0 aborts the job after train.comm_timeout in one line.
set -u
cd "$(dirname "$0")/../.."
. tests/mpi/mpi_common.sh
LIB=${EMU_LIB:-build/tests/emu/libtpdiff_cuda_emu.so}
[ -e "$LIB" ] || { echo "FAIL the emulated CUDA backend $LIB was not built (make test-build)"; exit 1; }
export TPDIFF_CUDA_LIB=$PWD/$LIB TPDIFF_NCCL_LIB=$PWD/$LIB
work=$(mktemp -d "${TMPDIR:-/tmp}/tpdiff-nccl-emu.XXXXXX")
trap 'rm -rf "$work"' EXIT

PYR=(configs/tiny.yaml --train.device=cuda --pyramid.stages=3 --pyramid.schedule=balanced
  --train.clips_per_microbatch=2 --model.classes=4 --model.class_dropout=0.2)

# check_nccl LABEL NP ARGS...: $CHECK on NP ranks; its PASS/FAIL lines (labelled), and a FAIL when it
# exits non-zero without one, or unless rank 0 reported the NCCL path
check_nccl() {
  local label=$1 np=$2
  shift 2
  mpi "$np" 180 -x TPDIFF_CUDA_LIB -x TPDIFF_NCCL_LIB "$@" "$CHECK" "${ARGS[@]}" >"$work/check.log" 2>&1
  local rc=$?
  grep -E '^(PASS|FAIL) ' "$work/check.log" | sed "s/\$/ [$label]/"
  # a crash or a sanitizer's report may leave no FAIL line
  [ "$rc" -eq 0 ] || grep -q '^FAIL ' "$work/check.log" ||
    { fail "$label: exit $rc"; grep -m3 'ERROR\|rror' "$work/check.log"; }
  grep -q "^# comm: gradient all-reduce: NCCL .* over $np ranks" "$work/check.log" ||
    { fail "$label: the reduction did not take the NCCL path"; grep -m3 'comm:\|rror' "$work/check.log"; }
}

# the library's own check (tests/mpi/nccl_check.c, written for one GPU): a world of one, under
# ASan+UBSan (the emulated streams and NCCL included)
SAN_LIB=$PWD/${EMU_SAN_LIB:-build-san/tests/emu/libtpdiff_cuda_emu.so}
NCCL_CHECK=${NCCL_CHECK:-build-san/tests/mpi/nccl_check}
TPDIFF_CUDA_LIB=$SAN_LIB timeout -k 5 120 "$NCCL_CHECK" "$SAN_LIB" >"$work/nccl_check.log" 2>&1
rc=$?
grep -E '^(PASS|FAIL) ' "$work/nccl_check.log" | sed 's/$/ [emulated, world of one, ASan+UBSan]/'
[ "$rc" -eq 0 ] || fail "$NCCL_CHECK on the emulator: exit $rc: $(grep -m1 ERROR "$work/nccl_check.log") $(tail -2 "$work/nccl_check.log" | tr '\n' ' ')"

ARGS=(grad "${PYR[@]}" --train.grad_clip=0 --train.comm_bucket_mb=0.1)
check_nccl "NCCL, 2 ranks, 7 buckets started during the backward" 2
check_nccl "NCCL, 4 ranks" 4
# bf16 on the wire, under ASan+UBSan. Leak checking is off: Open MPI's plugins leak and are unloaded
# before the check, so the suppressions (tests/mpi/lsan.supp) cannot name them
ARGS=(grad "${PYR[@]}" --train.grad_clip=0 --train.comm_bucket_mb=0.1 --train.comm_dtype=bf16)
CHECK=build-san/tests/mpi/mpi_train_check TPDIFF_CUDA_LIB=$SAN_LIB TPDIFF_NCCL_LIB=$SAN_LIB ASAN_OPTIONS=detect_leaks=0 \
  check_nccl "NCCL, 2 ranks, bf16 on the wire, ASan+UBSan" 2 -x ASAN_OPTIONS
ARGS=(steps "${PYR[@]}" --train.steps=10 --train.precision=bf16 --train.comm_bucket_mb=0.1)
check_nccl "NCCL, train.precision=bf16" 2

# ---- tpdiff-train itself: -np 2 over NCCL against -np 1
one=("$BIN" configs/tiny.yaml --train.device=cuda --train.steps=3 --train.clips_per_microbatch=2 --sample.count=1)
timeout -k 5 180 "${one[@]}" --train.microbatches=2 --train.out="$work/np1" >"$work/np1.log" 2>&1
rc1=$?
mpi 2 180 -x TPDIFF_CUDA_LIB -x TPDIFF_NCCL_LIB "${one[@]}" --train.microbatches=1 --train.comm_bucket_mb=0.1 \
  --train.out="$work/np2" >"$work/np2.log" 2>&1
rc2=$?
# the losses bit for bit; the gradient norms to 1e-12 (one process accumulates its two microbatches
# inside the weight-gradient matmuls, two ranks add theirs afterwards: the last bits may differ)
losses1=$(cut -f2 "$work/np1/log.tsv" 2>/dev/null | tr '\n' ' ')
losses2=$(cut -f2 "$work/np2/log.tsv" 2>/dev/null | tr '\n' ' ')
norms=$(paste "$work/np1/log.tsv" "$work/np2/log.tsv" 2>/dev/null | awk -F'\t' -v n="$(head -1 "$work/np1/log.tsv" | tr '\t' '\n' | wc -l)" '
  NR > 1 { a = $4; b = $(n + 4); d = a - b; if (d < 0) d = -d; if (d / a > worst) worst = d / a; rows++ }
  END { printf "%d steps, gradient norms within %.2g", rows, worst; exit !(rows == 3 && worst <= 1e-12) }')
ok=$?
if [ "$rc1" -eq 0 ] && [ "$rc2" -eq 0 ] && grep -q 'NCCL .* over 2 ranks, fp32' "$work/np2.log" && [ -n "$losses1" ] &&
  [ "$losses1" = "$losses2" ] && [ "$ok" -eq 0 ]; then
  pass "tpdiff-train -np 2 over NCCL: the losses of -np 1 with both microbatches, bit for bit; $norms (limit 1e-12)"
else
  fail "tpdiff-train -np 2 over NCCL: exit $rc1/$rc2; -np 1: $losses1; -np 2: $losses2; $norms"
  grep -m3 'comm:\|rror' "$work/np2.log"
fi

# ---- a rank that stops answering (SIGSTOP) while the other waits for its NCCL all-reduce. Rank 1 may
# stop before or after its part of the step's all-reduce: rank 0 then waits in NCCL, in the MPI
# all-reduce of the step's loss beside it, or in the stop-signal check after the step
mpi 2 120 -x TPDIFF_CUDA_LIB -x TPDIFF_NCCL_LIB "$BIN" configs/tiny.yaml --train.device=cuda --train.steps=100000 \
  --train.log_every=1 --train.comm_timeout=3 --train.out="$work/stalled" >"$work/stalled.log" 2>&1 &
stopped_rank "NCCL, a stopped rank" $! "$work/stalled" \
  "NCCL all-reduce|the all-reduce of the step's loss|the stop-signal check"

#!/usr/bin/env bash
# run_all.sh — runs every test of the suite and prints one summary line "N passed, N failed".
#
# A test prints lines "PASS <case> ..." / "FAIL <case> ..."; the summary counts those lines. A test
# program that exits non-zero without a FAIL line (a crash, a sanitizer report) counts as one
# failure. Expects `make test-build` and `make SAN=1 test-build` to have run.
set -u
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
export PY=${TPDIFF_PYTHON:-/usr/bin/python3}
# Sanitizer runs: stop at the first error, with a non-zero exit.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:halt_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
# tpdiff-train links Open MPI, whose own allocations at exit are not tpdiff's leaks
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/mpi/lsan.supp:print_suppressions=0}

passed=0
failed=0
log_dir=$(mktemp -d "${TMPDIR:-/tmp}/tpdiff-tests.XXXXXX")
trap 'rm -rf "$log_dir"' EXIT

run() { # run NAME COMMAND...
  local name=$1; shift
  local out="$log_dir/$(echo "$name" | tr -c 'A-Za-z0-9_.-' '_').log"
  local start=$SECONDS
  "$@" >"$out" 2>&1
  local rc=$?
  local p f
  p=$(grep -c '^PASS ' "$out")
  f=$(grep -c '^FAIL ' "$out")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    echo "FAIL $name: exited with status $rc" >>"$out"
    f=1
  fi
  passed=$((passed + p))
  failed=$((failed + f))
  printf '%-46s %4d passed %3d failed  %4ds\n' "$name" "$p" "$f" $((SECONDS - start))
  if [ "$f" -ne 0 ]; then sed 's/^/    /' "$out" | grep -v '^    PASS ' | tail -40; fi
}

run "kernels vs float64 + finite differences" build/tests/test_kernels
run "pyramid operators, combine3, cost (MATH.md 9)" build/tests/test_pyramid_operators
run "pyramid schedules and renoise (MATH.md 9)" build/tests/test_pyramid_schedules
run "pyramid training pairs, samplers (MATH.md 9)" build/tests/test_pyramid_pairs
run "DiT label contract (ASan+UBSan)" build-san/tests/test_dit_labels
run "train.recompute: same bits, smaller arena" build/tests/test_recompute
run "train.recompute (ASan+UBSan)" build-san/tests/test_recompute
run "noise alignment / linear assignment" build/tests/test_align
run "CUDA bf16 weight copy: address ranges (ASan+UBSan)" build-san/tests/test_master_range
run "CUDA flash attention: ldmatrix lane maps" build/tests/test_flash_fragments
run "pyramid sampler with an oracle model" build/tests/test_sampler
run "video writer: GIF/PNG round trip (ASan+UBSan)" build-san/tests/test_video_write
run "synthetic data sets (ASan+UBSan)" build-san/tests/test_synth
run "HDF5 shards: levels, bad files (ASan+UBSan)" build-san/tests/test_shard
run "HDF5 shards: h5py interop both ways" tests/data/shard_interop.sh
run "shard loader: order, resume, levels, bad clips" build/tests/test_loader
run "shard loader (ASan+UBSan)" build-san/tests/test_loader
run "video decode: frame rate, clips, crop, errors" build/tests/test_video_decode
run "video decode (ASan+UBSan)" build-san/tests/test_video_decode
run "video decode vs the ffmpeg command line" tests/data/decode_vs_ffmpeg.sh
BIN=build-san/tests/test_video_decode run "video decode vs ffmpeg (ASan+UBSan)" tests/data/decode_vs_ffmpeg.sh
run "config loading (ASan+UBSan)" build-san/tests/test_config_load configs
run "config refusals and rules (ASan+UBSan)" build-san/tests/test_config_rules
# make check-gpu's programs with the CPU backend playing the GPU: every case runs end to end (inputs,
# poisoning, comparisons, the recompute and training checks), so a broken checker shows here and not
# in the few minutes of a GPU run
run "check_kernels harness on the CPU backend" build/tests/gpu/check_kernels --cpu --quick
run "check_model harness on the CPU backend" build/tests/gpu/check_model --cpu --quick --steps 3
run "check_kernels: where a failing attention is off" build/tests/test_check_where
# The CUDA backend itself, every .cu file compiled for the CPU against tests/emu (fibers for CUDA
# threads, the PTX instructions, wmma and cuBLASLt carried out as documented): its attention against
# float64 and across TPDIFF_ATTN, then make check-gpu's own programs with it as the GPU. Under
# TPDIFF_EMU_ORDER=check every launch also runs with its blocks and threads in reverse order and
# must leave the same bytes: a race between threads or blocks fails it.
run "emulator: its race check against known races (ASan+UBSan)" build-san/tests/test_emu_order
TPDIFF_EMU_ORDER=check run "CUDA backend on the CPU emulator: attention, race-checked" build/tests/test_attention_emu
run "CUDA backend on the CPU emulator: every op (ASan+UBSan)" \
  build-san/tests/gpu/check_kernels --lib build-san/tests/emu/libtpdiff_cuda_emu.so --quick --no-timing
TPDIFF_EMU_ORDER=check run "CUDA backend on the CPU emulator: every op, race-checked" \
  build/tests/gpu/check_kernels --lib build/tests/emu/libtpdiff_cuda_emu.so --quick --no-timing
run "CUDA backend on the CPU emulator: model, training, fp32" \
  build/tests/gpu/check_model --lib build/tests/emu/libtpdiff_cuda_emu.so --quick --no-timing --no-base --steps 3
run "CUDA backend on the CPU emulator: model, training, bf16" \
  build/tests/gpu/check_model --lib build/tests/emu/libtpdiff_cuda_emu.so --quick --no-timing --no-base --steps 3 --bf16
run "tpdiff-train/-sample --device cuda on the CPU emulator" tests/cli/cuda_emu_cli.sh
run "make check-gpu's script without a GPU, both builds" tests/cli/check_gpu_cli.sh
run "parity checker fails on bad dumps" "$PY" tests/ref/check_parity_selftest.py
run "model vs PyTorch: tiny" tests/ref/parity.sh tiny
run "model vs PyTorch: tiny, K=3 stage 1, classes" tests/ref/parity.sh tiny-pyramid
run "model vs PyTorch: demo shape" tests/ref/parity.sh demo
run "parity tests catch broken kernels" tests/ref/mutations.sh
run "tpdiff-train: tiny K=3 end to end" tests/cli/pyramid_e2e.sh
run "tpdiff-synth command line" tests/cli/synth_cli.sh
run "tpdiff-prep: video files to shards, end to end" tests/data/prep_e2e.sh
run "tpdiff-train command line" tests/cli/train_cli.sh
run "tpdiff-train on HDF5 shards" tests/cli/train_shards.sh
BIN=build-san/bin/tpdiff-train run "tpdiff-train on HDF5 shards (ASan+UBSan)" tests/cli/train_shards.sh
BIN=build-san/bin/tpdiff-train run "tpdiff-train command line (ASan+UBSan)" tests/cli/train_cli.sh
run "train.device without a GPU, bad CUDA libraries" tests/cli/device_cli.sh
BIN=build-san/bin/tpdiff-train run "train.device, bad CUDA libraries (ASan+UBSan)" tests/cli/device_cli.sh
run "checkpoints: round trip, damaged files, full disk" build/tests/test_checkpoint
run "checkpoints (ASan+UBSan)" build-san/tests/test_checkpoint
run "resume after kill -9 / SIGTERM is bit-identical" tests/ckpt/resume_exact.sh
run "resume under mpirun, and with another world size" tests/ckpt/resume_mpi.sh
run "tpdiff-train against damaged checkpoints" tests/ckpt/faults_cli.sh
BIN=build-san/bin/tpdiff-train run "damaged checkpoints (ASan+UBSan)" tests/ckpt/faults_cli.sh
run "safetensors format, bad files, weights vs model (ASan+UBSan)" build-san/tests/export/test_safetensors configs/tiny.yaml
run "export: PyTorch strict load + forward, sampling" tests/export/export_checks.sh
BINDIR=build-san/bin TOOLDIR=build-san/tests/export run "export and sampling (ASan+UBSan)" tests/export/export_checks.sh
run "MPI: reduced gradient, replicas, loss curves" tests/mpi/mpi_train.sh
run "MPI: killed/stopped rank, bad input" tests/mpi/mpi_failures.sh
run "NCCL path with several ranks, on the CPU emulator" tests/mpi/nccl_emu.sh
run "SLURM: launch/tpdiff.sbatch on a local cluster" tests/mpi/slurm_batch.sh

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

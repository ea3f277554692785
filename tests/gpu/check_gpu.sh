#!/usr/bin/env bash
# check_gpu.sh — builds the CUDA backend and the two checkers, runs every backend op against its
# CPU twin on this machine's GPU (tests/gpu/check_kernels.c, fp32 then the bf16 rung), then the
# whole model: forward, every gradient and 50 training steps GPU against CPU, and the base
# workload's timing per pyramid stage (tests/gpu/check_model.c), then the same model in bf16
# (check_model --bf16 --no-base: forward and gradients at bf16 limits, and the timing); prints a
# short report with the two timing tables (fp32, bf16) last.
#
#   bash tests/gpu/check_gpu.sh [CHECK_KERNELS_ARGS...]     (or: make check-gpu)
#
# Arguments go to check_kernels, e.g. `--only attention` or `--quick` (see tests/gpu/check_kernels.c);
# CHECK_MODEL_ARGS="..." go to the fp32 check_model (e.g. "--quick", "--no-base"),
# CHECK_MODEL_BF16_ARGS="..." to the bf16 one. CHECK_GPU_LIB=PATH checks that library instead of
# the one just built.
#
# The full log goes to ${OUT:-bench/results}/check_gpu.log. Exit status: 0 every check passed,
# 1 a check failed, 2 the build failed, 3 no GPU backend could be loaded (no GPU/driver), 124 a
# checker ran past its time limit. Takes about 6 minutes on one H100, build included: the whole
# script keeps within CHECK_GPU_BUDGET_S (default 420 s, counted from its start) by giving the fp32
# check_model what is left less the bf16 run's CHECK_MODEL_BF16_TIMEOUT_S (default 90 s; at least
# 60 s each), less CHECK_GPU_PYRAMID_TIMEOUT_S (default 60 s) for the pyramid benchmark and twice
# CHECK_GPU_PRECISION_TIMEOUT_S (default 30 s) for the two training runs below, and letting it skip,
# with a SKIP line, base-shape stages whose CPU reference would not finish in time.
#
# Last, where the trainer's libraries are installed, two benchmarks, not checks (they never change
# the exit status): bench_pyramid measures what the pyramid saves on this GPU (configs/base.yaml in
# bf16: training time per clip and sampling latency, K = 3 against K = 1; make bench-pyramid-gpu)
# into ${OUT:-bench/results}/pyramid-gpu.txt; and tpdiff-train trains configs/demo.yaml for 400
# steps in fp32 and in bf16 from the same seed and data, into precision-gpu.txt: the mean loss of
# the last 100 steps and the median ms per step of each, the measured loss curve on which to choose
# train.precision for the reference configs. Where the trainer's libraries are missing on the GPU
# machine, CHECK_GPU_PREBUILT=DIR names tpdiff-train and bench_pyramid built elsewhere (see below).
#
# Robust to a bare GPU machine: it builds only the CUDA library and the checker (not the trainer,
# whose libyaml/HDF5 may be missing there); if that build fails it retries once without -Werror
# (a newer gcc may warn about code this gcc accepts) and, where OpenBLAS is missing, with a plain C
# sgemm compiled into the checker as the CPU reference; and without make if that fails too. To test
# those paths: CHECK_GPU_FORCE_FALLBACK=1 skips the normal build, CHECK_GPU_FORCE_DIRECT=1 also the
# relaxed make build, CHECK_GPU_OWN_CBLAS=1 forces the own sgemm. Where the bf16 flash attention fails,
# the report says which of its variants (TPDIFF_ATTN=flash-scalar, flash-wide) fail too.
set -u -o pipefail
cd "$(dirname "$0")/../.."

out_dir=${OUT:-bench/results}
mkdir -p "$out_dir"
log=$out_dir/check_gpu.log
: >"$log"
jobs=$(nproc 2>/dev/null || echo 4)
checker_limit_s=${CHECK_GPU_TIMEOUT_S:-150}

say() { echo "$@" | tee -a "$log"; }
section() { echo "== $*" >>"$log"; }

start=$SECONDS
section "environment"
{
  date -u
  uname -srm
  command -v nvidia-smi >/dev/null && timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  nvcc_path=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
  [ -n "$nvcc_path" ] && "$nvcc_path" --version | tail -2
  ${CC:-gcc} --version | head -1
} >>"$log" 2>&1

# ---- build ------------------------------------------------------------------------------------
# Three rungs: (1) the Makefile as is; (2) the Makefile without -Werror, in build/gpucheck, with the
# checker's own sgemm where OpenBLAS is missing; (3) no make at all (missing, or the Makefile broken
# by work in progress): nvcc and gcc called directly with the flags of kernels/cuda/cuda.mk.
cc=${CC:-gcc}
nvcc=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
multiarch=$($cc -print-multiarch 2>/dev/null)
blas_inc="" blas_libs="-lopenblas" own_cblas=0
if [ -d "/usr/include/$multiarch/openblas-openmp" ] && [ -d "/usr/lib/$multiarch/openblas-openmp" ]; then
  blas_inc="-I/usr/include/$multiarch/openblas-openmp"
  blas_libs="-L/usr/lib/$multiarch/openblas-openmp -Wl,-rpath,/usr/lib/$multiarch/openblas-openmp -lopenblas"
fi
# Decides between OpenBLAS and the checker's own sgemm (writes a cblas.h shim for the latter).
choose_blas() { # choose_blas BUILD_DIR
  if [ "${CHECK_GPU_OWN_CBLAS:-0}" != 1 ] &&
    printf '#include <cblas.h>\nint main(void){return 0;}\n' | $cc -x c - $blas_inc $blas_libs -o /dev/null 2>/dev/null; then
    own_cblas=0
    return
  fi
  own_cblas=1
  mkdir -p "$1/cblas_shim"
  # Just what kernels/cpu needs; the definition of cblas_sgemm is tests/gpu/own_sgemm.c.
  cat >"$1/cblas_shim/cblas.h" <<'EOF'
#ifndef TPDIFF_CBLAS_SHIM_H
#define TPDIFF_CBLAS_SHIM_H
enum CBLAS_ORDER { CblasRowMajor = 101, CblasColMajor = 102 };
enum CBLAS_TRANSPOSE { CblasNoTrans = 111, CblasTrans = 112, CblasConjTrans = 113 };
void cblas_sgemm(const enum CBLAS_ORDER order, const enum CBLAS_TRANSPOSE ta, const enum CBLAS_TRANSPOSE tb,
                 const int M, const int N, const int K, const float alpha, const float *A, const int lda,
                 const float *B, const int ldb, const float beta, float *C, const int ldc);
#endif
EOF
  blas_inc="-I$1/cblas_shim"
  blas_libs=""
  say "check_gpu: no usable OpenBLAS here; the CPU reference uses the checker's own sgemm"
}
relaxed_cflags="-std=c11 -O3 -g -march=native -fopenmp -Wall -D_POSIX_C_SOURCE=200809L -I."

build_cuda_direct() { # build_cuda_direct BUILD_DIR: the CUDA library, nvcc alone
  local dir=$1 f pids=() failed=0
  [ -n "$nvcc" ] || { echo "nvcc not found"; return 1; }
  local cuda_home=${nvcc%/bin/nvcc}
  mkdir -p "$dir/cuda" "$dir/lib"
  for f in kernels/cuda/*.cu; do
    "$nvcc" -O3 -std=c++17 -lineinfo -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
      -gencode arch=compute_90,code=compute_90 -I. -Xcompiler -fPIC,-fvisibility=hidden,-ffp-contract=off \
      -c "$f" -o "$dir/cuda/$(basename "$f" .cu).o" &
    pids+=($!)
  done
  for f in "${pids[@]}"; do wait "$f" || failed=1; done
  [ "$failed" = 0 ] || return 1
  "$nvcc" -shared -cudart static -Xlinker --exclude-libs=ALL \
    -Xlinker -rpath="$cuda_home/lib64:$cuda_home/lib:$cuda_home/targets/x86_64-linux/lib" \
    "$dir"/cuda/*.o -o "$dir/lib/libtpdiff_cuda.so" -lcublasLt
}

build_direct() { # build_direct BUILD_DIR: no make
  local dir=$1
  build_cuda_direct "$dir" || return 1
  mkdir -p "$dir/tests/gpu"
  local own_src=""
  [ "$own_cblas" = 1 ] && own_src=tests/gpu/own_sgemm.c
  $cc $relaxed_cflags $blas_inc $own_src tests/gpu/check_kernels*.c kernels/backend_loader.c kernels/cpu/*.c \
    -o "$dir/tests/gpu/check_kernels" $blas_libs -fopenmp -lm -ldl || return 1
  # check_model is worth having but not worth losing check_kernels for: its failure is reported later
  $cc $relaxed_cflags $blas_inc $own_src tests/gpu/check_model*.c kernels/backend_loader.c kernels/cpu/*.c \
    model/*.c trainer/trainer.c trainer/optimizer.c trainer/batch.c \
    -o "$dir/tests/gpu/check_model" $blas_libs -fopenmp -lm -ldl || echo "check_model did not build"
  return 0
}

build_dir=build
built=0
if command -v make >/dev/null; then
  section "build: make check-gpu-build"
  if [ "${CHECK_GPU_FORCE_FALLBACK:-0}" != 1 ] && make -j"$jobs" check-gpu-build >>"$log" 2>&1; then
    built=1
  else
    say "check_gpu: the normal build failed (see $log); retrying without -Werror in build/gpucheck/"
    build_dir=build/gpucheck
    choose_blas "$build_dir"
    section "build (make, relaxed): own_cblas=$own_cblas"
    if [ "${CHECK_GPU_FORCE_DIRECT:-0}" != 1 ] &&
      make -j"$jobs" BUILD="$build_dir" CHECK_OWN_CBLAS=$own_cblas CFLAGS="$relaxed_cflags $blas_inc" \
        check-gpu-build >>"$log" 2>&1; then
      built=1
    fi
  fi
fi
if [ "$built" = 0 ]; then
  say "check_gpu: building without make in build/gpucheck-direct/"
  build_dir=build/gpucheck-direct
  [ -d "$build_dir/cblas_shim" ] || [ "$own_cblas" = 1 ] || choose_blas "$build_dir"
  section "build (direct, no make): own_cblas=$own_cblas"
  if ! build_direct "$build_dir" >>"$log" 2>&1; then
    say "check_gpu: BUILD FAILED; the last lines of $log:"
    tail -25 "$log"
    exit 2
  fi
fi
build_s=$((SECONDS - start))
lib=${CHECK_GPU_LIB:-$build_dir/lib/libtpdiff_cuda.so}
checker=$build_dir/tests/gpu/check_kernels
model_checker=$build_dir/tests/gpu/check_model
say "check_gpu: built $lib, $checker and $model_checker in ${build_s}s"
section "exported symbols and kernel resources"
{
  nm -D --defined-only "$lib" | grep -i tpdiff
  command -v cuobjdump >/dev/null && cuobjdump --dump-resource-usage "$lib" 2>&1 | grep -E "Function|REG|STACK" | head -120
} >>"$log" 2>&1

# ---- run ----------------------------------------------------------------------------------------
section "check_kernels"
run_start=$SECONDS
timeout -k 10 "$checker_limit_s" "$checker" --lib "$lib" "$@" >"$out_dir/check_kernels.out" 2>&1
rc=$?
cat "$out_dir/check_kernels.out" >>"$log"
kernels_s=$((SECONDS - run_start))

# ---- short report: check_kernels ----------------------------------------------------------------
echo
if [ "$rc" -eq 3 ]; then
  say "check_gpu: no GPU backend could be loaded (exit 3): $(grep -m1 'no GPU backend' "$out_dir/check_kernels.out")"
  rm -f "$out_dir/check_kernels.out"
  exit 3
fi
head -1 "$out_dir/check_kernels.out"
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
  say "check_gpu: check_kernels did not finish within ${checker_limit_s}s (killed); last lines:"
  tail -5 "$out_dir/check_kernels.out"
  exit 124
fi
# a failing attention check is followed by "  where:" lines: which rows, columns, heads and parts are off
grep -E '^(FAIL|stopping|  where:)' "$out_dir/check_kernels.out" | head -60
# the backend's own notices (a cuBLASLt fallback, ...): correct results, but worth knowing
grep -E '^tpdiff cuda:' "$out_dir/check_kernels.out" | sort | uniq -c | head -10
sed -n -e '/^bf16 ops and their variants/,/^$/p' -e '/^slowest ops/,/^$/p' "$out_dir/check_kernels.out"
# The bf16 flash attention failing: check_kernels ran the same kernels with their default ldmatrix
# fragment loads, with plain loads (TPDIFF_ATTN=flash-scalar) and with two m-tiles per warp in the
# forward and dQ (flash-wide), and compared the variants' bits with the default's; which of them fail tells a
# fault of the ldmatrix lane maps, of the wide forward or of the rest of the kernels apart.
attention_fails=$(grep -E '^FAIL attention_' "$out_dir/check_kernels.out" | grep 'bf16-mode' | grep -v ' simple')
if [ -n "$attention_fails" ]; then
  n_mismatch=$(grep -c 'the same bits as TPDIFF_ATTN=flash' <<<"$attention_fails")
  others=$(grep -v 'the same bits as TPDIFF_ATTN=flash' <<<"$attention_fails")
  n_scalar=$(grep -c 'flash-scalar' <<<"$others")
  n_wide=$(grep -c 'flash-wide' <<<"$others")
  n_default=$(grep -v -e 'flash-scalar' -e 'flash-wide' <<<"$others" | grep -c .)
  say "check_gpu: bf16 flash attention failures: $n_default with the default (ldmatrix) kernels, $n_scalar with" \
    "TPDIFF_ATTN=flash-scalar, $n_wide with flash-wide, $n_mismatch where a variant's bits differ from the" \
    "default's$([ "$n_default" != 0 ] && [ "$n_scalar" = 0 ] &&
      echo '; the scalar loads pass: TPDIFF_ATTN=flash-scalar works around the fault')"
fi
summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out_dir/check_kernels.out" | tail -1)
if [ -z "$summary" ]; then
  summary="no summary line (checker exit status $rc: crashed?)"
  tail -8 "$out_dir/check_kernels.out"
fi
rm -f "$out_dir/check_kernels.out"

# ---- run and report: check_model, fp32 then bf16 ---------------------------------------------------
# The fp32 run gets what is left of the budget less the bf16 run's share (at least 60 s each);
# check_model starts no base-shape stage that would end past its deadline, 30 s before the kill.
# The bf16 run (--bf16 --no-base: tiny forward/gradients at bf16 limits, then the base timing)
# should need about 40 s on an H100.
budget_s=${CHECK_GPU_BUDGET_S:-420}
bf16_limit_s=${CHECK_MODEL_BF16_TIMEOUT_S:-90}
pyramid_limit_s=${CHECK_GPU_PYRAMID_TIMEOUT_S:-60}
precision_limit_s=${CHECK_GPU_PRECISION_TIMEOUT_S:-30} # each of the two training runs
model_limit_s=${CHECK_MODEL_TIMEOUT_S:-$((budget_s - (SECONDS - start) - bf16_limit_s - pyramid_limit_s - 2 * precision_limit_s))}
[ "$model_limit_s" -ge 60 ] || model_limit_s=60
model_rc=0 model_s=0 model_summary="" bf16_rc=0 bf16_s=0 bf16_summary=""
# run_model NAME LIMIT_S ARGS...: runs check_model into $out_dir/NAME.out, prints its short report
# and sets run_rc, run_s, run_summary.
run_model() {
  local name=$1 limit=$2
  shift 2
  section "check_model $* (limit ${limit}s)"
  local t0=$SECONDS
  timeout -k 10 "$limit" "$model_checker" --lib "$lib" --deadline-s $((limit - 30)) "$@" >"$out_dir/$name.out" 2>&1
  run_rc=$?
  run_s=$((SECONDS - t0))
  cat "$out_dir/$name.out" >>"$log"
  echo
  head -1 "$out_dir/$name.out"
  grep -E '^(FAIL|SKIP|stopping)' "$out_dir/$name.out" | head -40
  grep -E '^PASS (training|gradients|forward|recompute|bf16 weights|memory)' "$out_dir/$name.out"
  grep -E '^memory (plan|base)' "$out_dir/$name.out" # activations per stage, before the timing
  grep -E '^tpdiff cuda:' "$out_dir/$name.out" | sort | uniq -c | head -10
  run_summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out_dir/$name.out" | tail -1)
  if [ "$run_rc" -eq 124 ] || [ "$run_rc" -eq 137 ]; then
    say "check_gpu: check_model $* did not finish within ${limit}s (killed); last lines:"
    tail -5 "$out_dir/$name.out"
    grep -E '^timing ' "$out_dir/$name.out" | tee -a "$log" # the rows measured before the kill
    run_summary="killed after ${limit}s"
  elif [ -z "$run_summary" ]; then
    run_summary="no summary line (exit status $run_rc: crashed?)"
    tail -8 "$out_dir/$name.out"
  fi
}
if [ ! -x "$model_checker" ]; then
  model_rc=2 bf16_rc=2
  model_summary="not built (see $log)" bf16_summary=$model_summary
else
  # shellcheck disable=SC2086 # CHECK_MODEL_ARGS is a list of options
  run_model check_model "$model_limit_s" ${CHECK_MODEL_ARGS:-}
  model_rc=$run_rc model_s=$run_s model_summary=$run_summary
  # shellcheck disable=SC2086
  run_model check_model_bf16 "$bf16_limit_s" --bf16 --no-base ${CHECK_MODEL_BF16_ARGS:-}
  bf16_rc=$run_rc bf16_s=$run_s bf16_summary=$run_summary
fi

# ---- the trainer's binaries for the two benchmarks below: built here with make where the trainer's
# libraries (libyaml, giflib, HDF5, libav) are installed and the normal build was used; or, with
# CHECK_GPU_PREBUILT=DIR, tpdiff-train and bench_pyramid built on another machine for this one's CPU
# (e.g. make ARCH=-march=x86-64-v3 CUDA=0), with the shared libraries this machine lacks in DIR/lib.
# Either way they load the CUDA library checked above. --------------------------------------------------
prebuilt=${CHECK_GPU_PREBUILT:-}
if [ -n "$prebuilt" ]; then
  export LD_LIBRARY_PATH="$prebuilt/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  # built against another 1.10.x release of HDF5 (the same ABI), whose version check would abort
  export HDF5_DISABLE_VERSION_CHECK=1
fi
case "$lib" in /*) TPDIFF_CUDA_LIB=$lib ;; *) TPDIFF_CUDA_LIB=$PWD/$lib ;; esac
export TPDIFF_CUDA_LIB
# trainer_binary TARGET: prints the binary's path, building it if needed; fails where it cannot
trainer_binary() {
  if [ -n "$prebuilt" ]; then
    section "prebuilt: $prebuilt/$(basename "$1")"
    [ -x "$prebuilt/$(basename "$1")" ] && echo "$prebuilt/$(basename "$1")"
    return
  fi
  [ "$build_dir" = build ] && [ -z "${CHECK_GPU_LIB:-}" ] || return 1
  section "build: $1"
  make -j"$jobs" "$1" >>"$log" 2>&1 && echo "$1"
}

# ---- benchmark: the pyramid's savings on this GPU (needs the trainer's binaries) -------------------
pyramid_s=0 pyramid_summary="not run"
if [ "$build_dir" = build ] || [ -n "$prebuilt" ]; then
  if pyramid_bin=$(trainer_binary build/bench/bench_pyramid); then
    section "bench_pyramid configs/base.yaml --train.device=cuda --train.precision=bf16 (limit ${pyramid_limit_s}s)"
    t0=$SECONDS
    timeout -k 10 "$pyramid_limit_s" "$pyramid_bin" configs/base.yaml --train.device=cuda \
      --train.precision=bf16 >"$out_dir/pyramid-gpu.txt" 2>&1
    pyramid_rc=$? pyramid_s=$((SECONDS - t0))
    cat "$out_dir/pyramid-gpu.txt" >>"$log"
    if [ "$pyramid_rc" -eq 0 ]; then pyramid_summary="$out_dir/pyramid-gpu.txt"
    else pyramid_summary="exit status $pyramid_rc: $(tail -1 "$out_dir/pyramid-gpu.txt")"; fi
  else
    pyramid_summary="bench_pyramid did not build here (the trainer's libraries?; CHECK_GPU_PREBUILT); see $log"
  fi
fi

# ---- benchmark: bf16 training against fp32 on this GPU (configs/demo.yaml, the same seed and data,
# 400 steps each): the mean loss of steps 301-400 and the median ms per step of each, so that the
# choice of train.precision in configs/base.yaml can rest on a measured loss curve. Needs the trainer
# (as bench_pyramid); never changes the exit status. -------------------------------------------------
precision_s=0 precision_summary="not run"
if [ "$build_dir" = build ] || [ -n "$prebuilt" ]; then
  if train_bin=$(trainer_binary bin/tpdiff-train); then
    t0=$SECONDS
    runs=$(mktemp -d "${TMPDIR:-/tmp}/tpdiff-precision.XXXXXX")
    {
      echo "# bf16 against fp32 training: tpdiff-train configs/demo.yaml --train.device=cuda, 400 steps each"
      printf '%-10s %6s %22s %12s\n' precision status "mean loss steps 301-400" "ms/step"
    } >"$out_dir/precision-gpu.txt"
    for p in fp32 bf16; do
      section "tpdiff-train configs/demo.yaml --train.device=cuda --train.precision=$p (limit ${precision_limit_s}s)"
      timeout -k 10 "$precision_limit_s" "$train_bin" configs/demo.yaml --train.device=cuda \
        --train.precision="$p" --train.steps=400 --train.log_every=10 --train.ckpt_every=0 \
        --train.out="$runs/$p" >"$runs/$p.log" 2>&1
      p_rc=$?
      cat "$runs/$p.log" >>"$log"
      # the step rows: step, loss, 3 stage losses, grad norm, lr, ms/step, tokens/s, clips/s (plain
      # POSIX awk and sort: the GPU machine's awk may not be gawk)
      rows=$(awk '$1 ~ /^[0-9]+$/ && NF == 10' "$runs/$p.log")
      loss=$(awk 'NF && $1 > 300 { n++; l += $2 } END { if (n) printf "%.5f (%d rows)", l / n, n; else printf "-" }' \
        <<<"$rows")
      ms=$(awk 'NF { print $8 }' <<<"$rows" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "-" }')
      printf '%-10s %6d %22s %12s\n' "$p" "$p_rc" "$loss" "$ms" >>"$out_dir/precision-gpu.txt"
    done
    rm -rf "$runs"
    precision_s=$((SECONDS - t0))
    cat "$out_dir/precision-gpu.txt" >>"$log"
    precision_summary="$out_dir/precision-gpu.txt"
  else
    precision_summary="tpdiff-train did not build here (the trainer's libraries?; CHECK_GPU_PREBUILT); see $log"
  fi
fi

say "check_gpu: build ${build_s}s, check_kernels ${kernels_s}s, check_model ${model_s}s + bf16 ${bf16_s}s, bench_pyramid ${pyramid_s}s, bf16 vs fp32 training ${precision_s}s, full log $log"
say "check_kernels: $summary"
say "check_model: $model_summary"
say "check_model --bf16: $bf16_summary"
say "bench_pyramid (base, bf16): $pyramid_summary"
say "bf16 vs fp32 training (demo): $precision_summary"
# the base workload's timing tables, fp32 then bf16, last (measured even when a later check was
# skipped or failed)
for name in check_model check_model_bf16; do
  if [ -f "$out_dir/$name.out" ]; then
    sed -n '/^base workload on/,/^$/p' "$out_dir/$name.out" | tee -a "$log"
    rm -f "$out_dir/$name.out"
  fi
done
# and what the pyramid saves on this GPU, and bf16 training against fp32
[ "$pyramid_summary" = "$out_dir/pyramid-gpu.txt" ] && cat "$out_dir/pyramid-gpu.txt"
[ "$precision_summary" = "$out_dir/precision-gpu.txt" ] && cat "$out_dir/precision-gpu.txt"
for r in "$model_rc" "$bf16_rc"; do
  if [ "$r" -eq 124 ] || [ "$r" -eq 137 ]; then exit 124; fi
done
if [ "$rc" -ne 0 ] || [ "$model_rc" -eq 1 ] || [ "$bf16_rc" -eq 1 ]; then exit 1; fi
if [ "$model_rc" -eq 2 ]; then exit 2; fi
if [ "$model_rc" -ne 0 ] || [ "$bf16_rc" -ne 0 ]; then exit 1; fi
exit 0

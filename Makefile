# tpdiff — build, test and benchmark.
#
#   make              every binary into bin/ (objects under build/)
#   make test         the whole suite; ends with one line "N passed, N failed"
#   make demo         a short CPU training run on configs/demo.yaml
#   make bench-cpu    tpdiff against PyTorch, forward+backward per step
#   make bench-loader the shard loader's clips/s and MB/s per level against training's clips/s
#   make bench-mpi    -np 1 against -np 2 on the CPU, and the all-reduce's projected share on GPUs
#   make bench-recompute  step time and activation memory of train.recompute none, cheap, blocks
#   make bench-pyramid    training time per clip and sampling latency, K=3 against K=1 (demo, CPU);
#                         bench-pyramid-gpu: the same for configs/base.yaml in bf16 on this machine's GPU
#   make check-gpu    the CUDA backend's ops and the whole model against the CPU on this machine's
#                     GPU, and the base workload's timing (tests/gpu/check_gpu.sh; needs a GPU)
#   make SAN=1 ...    AddressSanitizer + UBSan build (objects under build-san/)
#   make CUDA=0       never build the CUDA backend, even where nvcc exists
#   make ARCH=...     target flags (default -march=native)

SHELL := /bin/bash
CC ?= gcc
ifeq ($(CC),cc)
CC := gcc
endif
ARCH ?= -march=native
CUDA ?= 1
SAN ?= 0
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null)

# ---- optional pieces: detect and say what was found ------------------------------------------
NVCC := $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA_HOME ?= $(if $(NVCC),$(patsubst %/bin/nvcc,%,$(NVCC)),/usr/local/cuda)
NCCL_HEADER := $(firstword $(wildcard $(CUDA_HOME)/include/nccl.h /usr/include/nccl.h))
MPICC := $(shell command -v mpicc 2>/dev/null)
HDF5_CFLAGS := $(shell pkg-config --cflags hdf5-serial 2>/dev/null)
HDF5_LIBS := $(shell pkg-config --libs hdf5-serial 2>/dev/null)
YAML_LIBS := $(shell pkg-config --libs yaml-0.1 2>/dev/null || echo -lyaml)
# FFmpeg's libraries decode real videos for tpdiff-prep (data/video_decode.c).
AV_PACKAGES := libavformat libavcodec libswscale libavutil
AV_CFLAGS := $(shell pkg-config --cflags $(AV_PACKAGES) 2>/dev/null)
AV_LIBS := $(shell pkg-config --libs $(AV_PACKAGES) 2>/dev/null || echo -lavformat -lavcodec -lswscale -lavutil)
# OpenBLAS's OpenMP build shares the OpenMP thread pool with our kernels; the pthread build would
# keep its own spinning threads that fight OpenMP regions for the same cores.
OPENBLAS_OMP_LIB := $(wildcard /usr/lib/$(MULTIARCH)/openblas-openmp/libopenblas.so)
OPENBLAS_OMP_INC := $(wildcard /usr/include/$(MULTIARCH)/openblas-openmp/cblas.h)
ifneq ($(and $(OPENBLAS_OMP_LIB),$(OPENBLAS_OMP_INC)),)
BLAS_KIND := openblas-openmp
BLAS_CFLAGS := -I/usr/include/$(MULTIARCH)/openblas-openmp
BLAS_LIBS := -L/usr/lib/$(MULTIARCH)/openblas-openmp -Wl,-rpath,/usr/lib/$(MULTIARCH)/openblas-openmp -lopenblas
else
BLAS_KIND := openblas
BLAS_CFLAGS :=
BLAS_LIBS := -lopenblas
endif

ifeq ($(CUDA),0)
BUILD_CUDA :=
else
BUILD_CUDA := $(NVCC)
endif


# ---- flags -----------------------------------------------------------------------------------
ifeq ($(SAN),1)
BUILD := build-san
SAN_FLAGS := -fsanitize=address,undefined
OPT := -O1 -g -fno-omit-frame-pointer $(SAN_FLAGS) -fno-sanitize-recover=undefined
else
BUILD := build
OPT := -O3 -g $(ARCH)
endif
BIN := $(if $(filter 1,$(SAN)),$(BUILD)/bin,bin)
# -Wno-format-truncation: error lines are built with snprintf into fixed buffers on purpose; a
# path longer than the buffer is cut, never overflowed.
CFLAGS := -std=c11 $(OPT) -fopenmp -Wall -Wextra -Werror -Wshadow -Wno-format-truncation -D_POSIX_C_SOURCE=200809L -I. $(BLAS_CFLAGS) $(HDF5_CFLAGS) $(AV_CFLAGS)
LDLIBS := $(BLAS_LIBS) $(YAML_LIBS) $(HDF5_LIBS) $(AV_LIBS) -lgif -lpng -lz -ldl -fopenmp -lm
LDFLAGS := $(SAN_FLAGS)

# ---- sources ---------------------------------------------------------------------------------
KERNEL_SRCS := $(wildcard kernels/cpu/*.c) kernels/backend_loader.c
MODEL_SRCS := $(wildcard model/*.c)
DATA_SRCS := $(wildcard data/*.c)
COMM_SRCS := $(wildcard comm/*.c)
TRAINER_SRCS := $(filter-out %_main.c,$(wildcard trainer/*.c))
LIB_SRCS := $(KERNEL_SRCS) $(MODEL_SRCS) $(DATA_SRCS) $(COMM_SRCS) $(TRAINER_SRCS)
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
LIB := $(BUILD)/libtpdiff.a

BINARIES := $(BIN)/tpdiff-train $(BIN)/tpdiff-synth $(BIN)/tpdiff-prep $(BIN)/tpdiff-export $(BIN)/tpdiff-sample
TEST_SRCS := $(wildcard tests/unit/*.c)
TEST_BINS := $(TEST_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
BENCH_BINS := $(BUILD)/bench/bench_step $(BUILD)/bench/bench_pyramid $(BUILD)/bench/bench_loader
TOOL_BINS := $(BUILD)/tests/ref/parity_dump
MPI_TEST_BINS := $(BUILD)/tests/mpi/mpi_train_check $(BUILD)/tests/mpi/nccl_check
# safetensors, export and sample tests (tests/export/*.c: one program each)
EXPORT_TEST_BINS := $(patsubst tests/export/%.c,$(BUILD)/tests/export/%,$(wildcard tests/export/*.c))

# CUDA backend (libtpdiff_cuda.so) and `make check-gpu`: rules live in kernels/cuda/cuda.mk, which
# defines CUDA_SRCS and CUDA_LIB (empty when nvcc is absent or CUDA=0).
CUDA_SRCS :=
CUDA_LIB :=
-include kernels/cuda/cuda.mk
# MPI flags for comm/ and its users, and libtpdiff_nccl.so (NCCL_LIB).
include comm/comm.mk
# The CUDA backend on the CPU (EMU_TEST_BIN, EMU_ORDER_BIN, EMU_LIB).
include tests/emu/emu.mk

ifeq ($(MAKELEVEL),0)
$(info tpdiff build: blas=$(BLAS_KIND) hdf5=$(if $(HDF5_LIBS),yes,no) mpi=$(if $(MPICC),yes,no) nvcc=$(if $(NVCC),yes,no) nccl=$(if $(NCCL_HEADER),yes,no)$(if $(NCCL_LIB), (libtpdiff_nccl.so),) cuda-backend=$(if $(BUILD_CUDA),$(if $(CUDA_SRCS),build,no-sources-yet),off))
endif

# Keep objects of chained rules (tests, bench) so a rebuild is incremental.
.SECONDARY:

.PHONY: all test test-build demo bench bench-cpu bench-pyramid bench-pyramid-gpu bench-loader bench-mpi bench-recompute \
	clean setup
all: $(BINARIES) $(CUDA_LIB) $(NCCL_LIB)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BIN)/tpdiff-%: $(BUILD)/trainer/%_main.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/ref/%: $(BUILD)/tests/ref/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/export/%: $(BUILD)/tests/export/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

# check_kernels' account of where a failing attention result is off, tested without a GPU
$(BUILD)/tests/test_check_where: $(BUILD)/tests/gpu/check_kernels_where.o

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/mpi/%: $(BUILD)/tests/mpi/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS) $(MPI_LIBS)

test-build: all $(TEST_BINS) $(BENCH_BINS) $(TOOL_BINS) $(EXPORT_TEST_BINS) $(MPI_TEST_BINS) $(CHECK_GPU_BIN) $(CHECK_MODEL_BIN) \
	$(EMU_TEST_BIN) $(EMU_ORDER_BIN) $(EMU_LIB)

# The suite: installs what is missing (scripts/setup.sh), builds the normal and the sanitizer
# flavours, runs every test and prints the summary line.
test:
	@scripts/setup.sh --if-missing
	@$(MAKE) --no-print-directory test-build
	@$(MAKE) --no-print-directory SAN=1 test-build
	@tests/run_all.sh

demo:
	@scripts/setup.sh --if-missing
	@$(MAKE) --no-print-directory all
	$(BIN)/tpdiff-train configs/demo.yaml

bench-cpu:
	@scripts/setup.sh --if-missing
	@$(MAKE) --no-print-directory test-build
	@bench/bench_cpu.sh

# Pyramid savings on the demo model: training time per clip and sampling latency, K=3 vs K=1.
bench-pyramid:
	@scripts/setup.sh --if-missing
	@$(MAKE) --no-print-directory test-build
	@mkdir -p bench/results $(dir $(LOADER_DATA))
	OMP_NUM_THREADS=$${THREADS:-2} $(BUILD)/bench/bench_pyramid configs/demo.yaml --train.device=cpu | \
	  tee bench/results/pyramid-cpu.txt

# The same on this machine's GPU for configs/base.yaml in bf16 (make check-gpu runs it too).
bench-pyramid-gpu: all $(BUILD)/bench/bench_pyramid
	@mkdir -p bench/results
	$(BUILD)/bench/bench_pyramid configs/base.yaml --train.device=cuda --train.precision=bf16 | \
	  tee bench/results/pyramid-gpu.txt

# Shard loader throughput per level (one reader thread) on 2048 synthetic demo-shape clips, next to
# raw read() speed and to the clips/s a 20-step demo training run consumes (TRAIN_CLIPS_S=... skips
# that run).
LOADER_DATA := build/bench-data/loader-2048
bench-loader:
	@scripts/setup.sh --if-missing
	@$(MAKE) --no-print-directory test-build
	@mkdir -p bench/results $(dir $(LOADER_DATA))
	@[ -f $(LOADER_DATA)/index.json ] || $(BIN)/tpdiff-synth --out $(LOADER_DATA) --count 2048 --frames 16 \
	  --size 32x32 --channels 3 --levels 4 --previews 0 >/dev/null
	@clips_s=$${TRAIN_CLIPS_S:-$$(OMP_NUM_THREADS=$${THREADS:-2} $(BIN)/tpdiff-train configs/demo.yaml \
	  --train.steps=20 --train.log_every=20 --train.out=$(BUILD)/bench-data/demo-run | \
	  awk '$$1 == "20" { print $$NF }')}; \
	$(BUILD)/bench/bench_loader $(LOADER_DATA) $$clips_s | tee bench/results/loader-cpu.txt

# Data-parallel weak scaling on the CPU (-np 1 against -np 2) and the all-reduce projection to GPUs.
bench-mpi:
	@scripts/setup.sh --if-missing
	@$(MAKE) --no-print-directory all
	@mkdir -p bench/results
	@bench/bench_mpi.sh | tee bench/results/mpi-cpu.txt

# train.recompute on the demo model: step time and activation arena of none, cheap and blocks.
bench-recompute:
	@scripts/setup.sh --if-missing
	@$(MAKE) --no-print-directory test-build
	@mkdir -p bench/results
	@bench/bench_recompute.sh | tee bench/results/recompute-cpu.txt

bench: bench-cpu bench-pyramid bench-loader bench-mpi bench-recompute

setup:
	scripts/setup.sh

clean:
	rm -rf build build-san bin

# header dependencies of every object built so far (library, mains, tests, benchmarks)
-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

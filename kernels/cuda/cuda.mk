# kernels/cuda/cuda.mk — the CUDA backend (libtpdiff_cuda.so) and `make check-gpu`.
#
# Included by the top-level Makefile before its first rule, with BUILD, NVCC, BUILD_CUDA, CUDA_HOME,
# CC, CFLAGS, LDFLAGS and BLAS_LIBS already set. Defines CUDA_SRCS and CUDA_LIB (empty when nvcc is
# absent or CUDA=0) and the rules that build them:
#
#   $(BUILD)/lib/libtpdiff_cuda.so   nvcc, static cudart, linked with cuBLASLt; dlopen'ed by the binaries
#   $(BUILD)/tests/gpu/check_kernels every backend op against its CPU twin (a plain C program: no CUDA
#                                    headers or libraries, it loads the backend with dlopen)
#   $(BUILD)/tests/gpu/check_model   the DiT, its gradients and training steps, GPU against CPU, and the
#                                    base workload's timing (same kind of program)
#   make check-gpu                   builds all three and runs tests/gpu/check_gpu.sh (needs a GPU)

# This file is read before the Makefile's `all:` rule; keep `all` the default goal even though the
# rules below come first.
ifeq ($(.DEFAULT_GOAL),)
.DEFAULT_GOAL := all
endif

CUDA_SRCS := $(wildcard kernels/cuda/*.cu)
CUDA_HDRS := $(wildcard kernels/cuda/*.cuh kernels/cuda/*.h) kernels/backend.h
CUDA_LIB := $(if $(and $(BUILD_CUDA),$(CUDA_SRCS)),$(BUILD)/lib/libtpdiff_cuda.so,)

# One set of CUDA objects serves both flavours (build/ and build-san/): the sanitizers do not
# instrument device code, and nvcc is by far the slowest step of the build.
CUDA_OBJ_DIR := build/kernels/cuda
CUDA_OBJS := $(CUDA_SRCS:kernels/cuda/%.cu=$(CUDA_OBJ_DIR)/%.o)
CUDA_LIB_MAIN := build/lib/libtpdiff_cuda.so

# sm_80 and sm_90 machine code, plus compute_90 PTX for newer GPUs.
CUDA_ARCH_FLAGS := -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
	-gencode arch=compute_90,code=compute_90
# -fvisibility=hidden: the library exports tpdiff_cuda_backend only. -ffp-contract=off: host-side
# float arithmetic (AdamW's step size, ...) rounds like the CPU's -std=c11 build. NVCC_EXTRA: e.g.
# `make NVCC_EXTRA=--Werror=all-warnings` or `-Xptxas -v` for register/spill reports.
NVCC_EXTRA ?=
NVCC_FLAGS := -O3 -std=c++17 -lineinfo $(CUDA_ARCH_FLAGS) -I. \
	-Xcompiler -fPIC,-fvisibility=hidden,-ffp-contract=off,-Wall,-Wextra -Xptxas -warn-spills $(NVCC_EXTRA)
# cuBLASLt stays a shared library (no static one ships); the runpath lets dlopen find it where the
# toolkit is not on the loader path. --exclude-libs keeps the static cudart's symbols private.
CUDA_RPATH := $(CUDA_HOME)/lib64:$(CUDA_HOME)/lib:$(CUDA_HOME)/targets/x86_64-linux/lib
NVCC_LDFLAGS := -shared -cudart static -Xlinker --exclude-libs=ALL -Xlinker -rpath=$(CUDA_RPATH)

ifneq ($(BUILD_CUDA),)
$(CUDA_OBJ_DIR)/%.o: kernels/cuda/%.cu $(CUDA_HDRS)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCC_FLAGS) -c $< -o $@

# Linked to a temporary name and renamed, so an interrupted build never leaves a broken library
# that the binaries would then try to load.
$(CUDA_LIB_MAIN): $(CUDA_OBJS)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCC_FLAGS) $(NVCC_LDFLAGS) $^ -o $@.tmp -lcublasLt
	mv -f $@.tmp $@

ifneq ($(BUILD),build)
$(BUILD)/lib/libtpdiff_cuda.so: $(CUDA_LIB_MAIN)
	@mkdir -p $(dir $@)
	cp -f $< $@.tmp && mv -f $@.tmp $@
endif
endif

# ---- the GPU check programs ---------------------------------------------------------------------
# Linked with the CPU kernels, the model and the trainer's step only (not all of $(LIB)), so they
# build on a GPU machine that lacks the trainer's other libraries (libyaml, HDF5, giflib, libpng).
# CHECK_OWN_CBLAS=1 (used by tests/gpu/check_gpu.sh when no OpenBLAS is installed) compiles a plain
# C sgemm (tests/gpu/own_sgemm.c) into the programs instead.
CHECK_GPU_BIN := $(BUILD)/tests/gpu/check_kernels
CHECK_MODEL_BIN := $(BUILD)/tests/gpu/check_model
CHECK_CPU_OBJS := $(BUILD)/kernels/backend_loader.o $(patsubst %.c,$(BUILD)/%.o,$(wildcard kernels/cpu/*.c)) \
	$(if $(filter 1,$(CHECK_OWN_CBLAS)),$(BUILD)/tests/gpu/own_sgemm.o,)
# check_kernels is tests/gpu/check_kernels*.c: main and harness, and the files of op cases.
CHECK_GPU_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(wildcard tests/gpu/check_kernels*.c)) $(CHECK_CPU_OBJS)
# check_model is tests/gpu/check_model*.c: main and the stage checks, training, timing.
CHECK_MODEL_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(wildcard tests/gpu/check_model*.c)) $(CHECK_CPU_OBJS) \
	$(patsubst %.c,$(BUILD)/%.o,$(wildcard model/*.c)) \
	$(BUILD)/trainer/trainer.o $(BUILD)/trainer/optimizer.o $(BUILD)/trainer/batch.o
CHECK_GPU_CFLAGS := $(if $(filter 1,$(CHECK_OWN_CBLAS)),-DTPDIFF_CHECK_OWN_CBLAS,)
CHECK_GPU_LIBS := $(if $(filter 1,$(CHECK_OWN_CBLAS)),,$(BLAS_LIBS)) -fopenmp -lm -ldl

$(BUILD)/tests/gpu/%.o: tests/gpu/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CHECK_GPU_CFLAGS) -MMD -MP -c $< -o $@

$(CHECK_GPU_BIN): $(CHECK_GPU_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(CHECK_GPU_LIBS)

$(CHECK_MODEL_BIN): $(CHECK_MODEL_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(CHECK_GPU_LIBS)

.PHONY: check-gpu check-gpu-build
# What check_gpu.sh builds; fails with one line where there is no CUDA backend to build.
check-gpu-build: $(CUDA_LIB) $(CHECK_GPU_BIN) $(CHECK_MODEL_BIN)
	@if [ -z "$(CUDA_LIB)" ]; then \
	  echo "check-gpu: no CUDA backend to build ($(if $(NVCC),CUDA=0 was given,nvcc not found; set PATH or CUDA_HOME))"; \
	  exit 1; fi

check-gpu:
	@bash tests/gpu/check_gpu.sh

-include $(patsubst %.c,$(BUILD)/%.d,$(wildcard tests/gpu/check_kernels*.c tests/gpu/check_model*.c)) \
	$(BUILD)/kernels/backend_loader.d

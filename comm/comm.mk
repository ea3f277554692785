# comm/comm.mk — MPI flags for comm/ and the NCCL library (libtpdiff_nccl.so).
#
# Included by the top-level Makefile after kernels/cuda/cuda.mk, with BUILD, NVCC, BUILD_CUDA,
# CUDA_HOME and NCCL_HEADER set. Only comm/*.c, tests/mpi/*.c and the binaries that use them see
# MPI's flags, so the rest of the tree builds without mpi.h. Defines MPI_CFLAGS, MPI_LIBS and
# NCCL_LIB (empty where nvcc or nccl.h is missing, or CUDA=0):
#
#   build/lib/libtpdiff_nccl.so   nvcc, static cudart, linked with NCCL; dlopen'ed by comm/ on GPU
#                                 runs, so tpdiff-train itself has no CUDA or NCCL dependency

MPI_CFLAGS := $(shell pkg-config --cflags ompi-c 2>/dev/null || mpicc --showme:compile 2>/dev/null)
MPI_LIBS := $(shell pkg-config --libs ompi-c 2>/dev/null || mpicc --showme:link 2>/dev/null)

$(BUILD)/comm/%.o: CFLAGS += $(MPI_CFLAGS)
$(BUILD)/trainer/train_main.o: CFLAGS += $(MPI_CFLAGS)
$(BUILD)/tests/mpi/%.o: CFLAGS += $(MPI_CFLAGS)
$(BIN)/tpdiff-train: LDLIBS += $(MPI_LIBS)

NCCL_LIB := $(if $(and $(BUILD_CUDA),$(NCCL_HEADER)),build/lib/libtpdiff_nccl.so,)
NCCL_ARCH_FLAGS := -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
	-gencode arch=compute_90,code=compute_90
NCCL_RPATH := $(CUDA_HOME)/lib64:$(CUDA_HOME)/lib:$(CUDA_HOME)/targets/x86_64-linux/lib

ifneq ($(NCCL_LIB),)
# Linked to a temporary name and renamed, so an interrupted build never leaves a library to load.
build/lib/libtpdiff_nccl.so: comm/nccl_reduce.cu comm/nccl_api.h
	@mkdir -p $(dir $@)
	$(NVCC) -O3 -std=c++17 $(NCCL_ARCH_FLAGS) -I. -Xcompiler -fPIC,-fvisibility=hidden,-Wall,-Wextra \
	  -shared -cudart static -Xlinker --exclude-libs=ALL -Xlinker -rpath=$(NCCL_RPATH) \
	  $< -o $@.tmp -L$(CUDA_HOME)/lib64 -lnccl
	mv -f $@.tmp $@
endif

# tests/mpi/nccl_check: the NCCL library on one GPU; like the GPU check programs it links only the
# backend loader (no MPI, HDF5 or YAML), so it runs on a GPU machine that lacks those libraries.
$(BUILD)/tests/mpi/nccl_check: $(BUILD)/tests/mpi/nccl_check.o $(BUILD)/kernels/backend_loader.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ -ldl -lm

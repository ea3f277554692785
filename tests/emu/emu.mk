# tests/emu/emu.mk — the CUDA backend run on the CPU.
#
# Included by the top-level Makefile with BUILD, OPT, LIB, LDFLAGS, LDLIBS and BLAS_CFLAGS set.
# kernels/cuda/*.cu are compiled as C++ by the host compiler against tests/emu/include (the CUDA
# runtime, bf16, wmma, cuBLASLt and the flash kernels' PTX instructions, carried out by
# tests/emu/*.cc), which comes before the real headers on the include path; no GPU or nvcc is
# needed. Defines:
#
#   EMU_TEST_BIN  $(BUILD)/tests/test_attention_emu: the attention kernels against the CPU
#                 backend's attention (tests/run_all.sh)
#   EMU_ORDER_BIN $(BUILD)/tests/test_emu_order: the race check (TPDIFF_EMU_ORDER) against kernels
#                 with known races and their correct twins
#   EMU_LIB       $(BUILD)/tests/emu/libtpdiff_cuda_emu.so: the whole backend, for check_kernels and
#                 check_model --lib (tests/run_all.sh); it is also the NCCL library (comm/nccl_reduce.cu
#                 over tests/emu/emu_nccl.cc) for $$TPDIFF_NCCL_LIB, one library so that both share one
#                 emulated runtime (tests/mpi/nccl_emu.sh)

EMU_CXX := $(if $(filter default,$(origin CXX)),g++,$(CXX))
EMU_CXXFLAGS := -std=c++20 $(OPT) -fPIC -ffp-contract=off -Wall -Wextra -Werror -Wshadow -Wno-unknown-pragmas \
	-Itests/emu/include -I. $(BLAS_CFLAGS)
EMU_KERNEL_OBJS := $(patsubst kernels/cuda/%.cu,$(BUILD)/tests/emu/cuda/%.o,$(wildcard kernels/cuda/*.cu))
EMU_RUNTIME_OBJS := $(patsubst tests/emu/%.cc,$(BUILD)/tests/emu/%.o,$(filter-out tests/emu/test_%,$(wildcard tests/emu/*.cc)))
EMU_NCCL_OBJ := $(BUILD)/tests/emu/comm/nccl_reduce.o
EMU_TEST_BIN := $(BUILD)/tests/test_attention_emu
EMU_ORDER_BIN := $(BUILD)/tests/test_emu_order
EMU_LIB := $(BUILD)/tests/emu/libtpdiff_cuda_emu.so

$(BUILD)/tests/emu/cuda/%.o: kernels/cuda/%.cu
	@mkdir -p $(dir $@)
	$(EMU_CXX) $(EMU_CXXFLAGS) -MMD -MP -x c++ -c $< -o $@

$(EMU_NCCL_OBJ): comm/nccl_reduce.cu
	@mkdir -p $(dir $@)
	$(EMU_CXX) $(EMU_CXXFLAGS) -MMD -MP -x c++ -c $< -o $@

$(BUILD)/tests/emu/%.o: tests/emu/%.cc
	@mkdir -p $(dir $@)
	$(EMU_CXX) $(EMU_CXXFLAGS) -MMD -MP -c $< -o $@

$(EMU_TEST_BIN): $(BUILD)/tests/emu/test_attention_emu.o $(EMU_KERNEL_OBJS) $(EMU_RUNTIME_OBJS) $(LIB)
	@mkdir -p $(dir $@)
	$(EMU_CXX) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(EMU_ORDER_BIN): $(BUILD)/tests/emu/test_emu_order.o $(EMU_RUNTIME_OBJS)
	@mkdir -p $(dir $@)
	$(EMU_CXX) $(LDFLAGS) $^ -o $@

$(EMU_LIB): $(EMU_KERNEL_OBJS) $(EMU_NCCL_OBJ) $(EMU_RUNTIME_OBJS)
	@mkdir -p $(dir $@)
	$(EMU_CXX) $(LDFLAGS) -shared $^ -o $@

-include $(EMU_KERNEL_OBJS:.o=.d) $(EMU_NCCL_OBJ:.o=.d) $(EMU_RUNTIME_OBJS:.o=.d) $(BUILD)/tests/emu/test_attention_emu.d \
	$(BUILD)/tests/emu/test_emu_order.d

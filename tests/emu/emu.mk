# tests/emu/emu.mk — the CUDA backend's attention kernels run on the CPU.
#
# Included by the top-level Makefile with BUILD, OPT, LIB, LDFLAGS, LDLIBS and BLAS_CFLAGS set.
# kernels/cuda/attention*.cu are compiled as C++ by the host compiler against tests/emu/include (a
# CUDA runtime, bf16 type, wmma and PTX instructions carried out by tests/emu/emu.cc),
# which comes before the real headers on the include path; no GPU or nvcc is needed. Defines
# EMU_TEST_BIN:
#
#   $(BUILD)/tests/test_attention_emu   the kernels against the CPU backend's attention (tests/run_all.sh)

EMU_CXX := $(if $(filter default,$(origin CXX)),g++,$(CXX))
EMU_CXXFLAGS := -std=c++20 $(OPT) -ffp-contract=off -Wall -Wextra -Werror -Wshadow -Wno-unknown-pragmas -Itests/emu/include -I. \
	$(BLAS_CFLAGS)
EMU_KERNEL_SRCS := kernels/cuda/attention.cu kernels/cuda/attention_bf16.cu kernels/cuda/attention_flash.cu \
	kernels/cuda/attention_flash_bwd.cu
EMU_OBJS := $(EMU_KERNEL_SRCS:kernels/cuda/%.cu=$(BUILD)/tests/emu/%.o) \
	$(patsubst tests/emu/%.cc,$(BUILD)/tests/emu/%.o,$(wildcard tests/emu/*.cc))
EMU_TEST_BIN := $(BUILD)/tests/test_attention_emu

$(BUILD)/tests/emu/%.o: kernels/cuda/%.cu
	@mkdir -p $(dir $@)
	$(EMU_CXX) $(EMU_CXXFLAGS) -MMD -MP -x c++ -c $< -o $@

$(BUILD)/tests/emu/%.o: tests/emu/%.cc
	@mkdir -p $(dir $@)
	$(EMU_CXX) $(EMU_CXXFLAGS) -MMD -MP -c $< -o $@

$(EMU_TEST_BIN): $(EMU_OBJS) $(LIB)
	@mkdir -p $(dir $@)
	$(EMU_CXX) $(LDFLAGS) $^ -o $@ $(LDLIBS)

-include $(EMU_OBJS:.o=.d)

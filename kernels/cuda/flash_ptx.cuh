/* flash_ptx.cuh — the few GPU instructions the bf16 flash attention kernels (attention_flash.cuh,
 * attention_flash.cu, attention_flash_bwd.cu) use beyond plain C++, each as one inline function:
 * the tensor-core product, the fragment loads from shared memory and cp.async. Everything else of
 * the kernels is ordinary code.
 *
 * Kept apart so that the CPU test suite can run the kernels themselves: tests/emu compiles the
 * attention sources with a host compiler and its own versions of these functions (and of the
 * macros TCU_LAUNCH and TCU_DYNAMIC_SMEM), which carry out the instructions as the PTX ISA defines
 * them for a whole warp at a time. */
#ifndef TPDIFF_FLASH_PTX_CUH
#define TPDIFF_FLASH_PTX_CUH

#include <cuda_bf16.h>
#include <stdint.h>

namespace flash {

/* c += a b, one m16n8k16 tensor-core product, bf16 in, fp32 accumulate */
__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16: four 8x8 matrices of 16-bit elements, lane
 * 8i + r naming row r of matrix i (flash_fragments.h) */
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const __nv_bfloat16 *p) {
  const uint32_t s = (uint32_t)__cvta_generic_to_shared(p);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
}
__device__ __forceinline__ void ldsm_x4_trans(uint32_t (&r)[4], const __nv_bfloat16 *p) {
  const uint32_t s = (uint32_t)__cvta_generic_to_shared(p);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
}

/* One 32-bit shared-memory load that names the shared window explicitly (as ldmatrix does): as a
 * generic load it costs the forward at head dimension 64 a 12-byte register spill on sm_80. */
__device__ __forceinline__ uint32_t lds32(const __nv_bfloat16 *p) {
  uint32_t r;
  asm volatile("ld.shared.b32 %0, [%1];\n" : "=r"(r) : "r"((uint32_t)__cvta_generic_to_shared(p)));
  return r;
}

/* cp.async (sm_80+): global -> shared without a register round trip */
__device__ __forceinline__ void cp_async16(void *smem, const void *gmem) {
  const uint32_t s = (uint32_t)__cvta_generic_to_shared(smem);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
/* Waits for every cp.async this thread issued; a __syncthreads() after it publishes all threads' copies. */
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

}  // namespace flash

#endif

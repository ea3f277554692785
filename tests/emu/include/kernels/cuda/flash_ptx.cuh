/* kernels/cuda/flash_ptx.cuh, as tests/emu sees it: the flash kernels' GPU instructions carried out
 * on the CPU (tests/emu/emu.cc) as the PTX ISA defines them. The warp-wide ones (mma.sync, ldmatrix)
 * wait until all 32 lanes of the warp have arrived, then compute every lane's result from all lanes'
 * operands; the shared-memory accesses are checked against the block's dynamic shared memory and
 * their alignment; a cp.async lands only when its thread waits for it (the latest the hardware
 * may), so a tile read before its wait reads the poison the shared memory starts with. */
#ifndef TPDIFF_FLASH_PTX_CUH
#define TPDIFF_FLASH_PTX_CUH

#include <cuda_bf16.h>
#include <stdint.h>

#include "tests/emu/emu.h"

namespace flash {

inline void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) { emu::mma_bf16(c, a, b0, b1); }
inline void ldsm_x4(uint32_t (&r)[4], const __nv_bfloat16 *p) { emu::ldmatrix_x4(r, p, false); }
inline void ldsm_x4_trans(uint32_t (&r)[4], const __nv_bfloat16 *p) { emu::ldmatrix_x4(r, p, true); }
inline uint32_t lds32(const __nv_bfloat16 *p) { return emu::lds32(p); }
inline void cp_async16(void *smem, const void *gmem) { emu::cp_async16(smem, gmem); }
inline void cp_async_commit() {}
inline void cp_async_wait_all() { emu::cp_async_wait_all(); }

}  // namespace flash

#endif

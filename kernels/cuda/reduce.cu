/* reduce.cu — deterministic sums over the token axis for parameter-like gradients: the linear bias
 * gradient (column sums), the adaLN gate gradient (sum_n d_out·f) and the layernorm shift/scale
 * gradients (sum_n d_out, sum_n d_out·xhat).
 *
 * Why not atomics: atomicAdd order varies from run to run, so the gradient bits and everything
 * after them would too, and exact resume (same losses bit for bit) would be lost. Instead:
 *   1. the rows (tokens) of each group (clip) are cut into `chunks` runs of `chunk_rows` rows; one
 *      thread per (group, chunk, column) sums its run in row order into a partial (coalesced: the
 *      threads of a warp read neighbouring columns of the same row);
 *   2. one thread per (group, column) adds the partials in chunk order and accumulates the result
 *      into the destination (+=, parameter-gradient contract).
 * The chunking depends only on (groups, rows, width), never on the device, so the bits are the
 * same on every run and every GPU model. */
#include "kernels/cuda/cuda_internal.cuh"

namespace {

constexpr int kColumnsPerBlock = 128;
/* About this many threads in pass 1: several waves on a 132-SM H100, while the partials stay small
 * (chunks x width floats). */
constexpr long long kTargetThreads = 1 << 17;
/* A chunk never has fewer rows than this: shorter runs would make pass 2 the bottleneck. */
constexpr int kMinChunkRows = 16;

template <tcu_colsum_kind KIND>
__global__ void colsum_partial_kernel(tcu_colsum_source src, float *partials, int groups, int rows, int width,
                                      int chunks, int chunk_rows) {
  int d = blockIdx.x * blockDim.x + threadIdx.x;
  int c = blockIdx.y, g = blockIdx.z;
  if (d >= width) return;
  int r0 = c * chunk_rows, r1 = min(rows, r0 + chunk_rows);
  float acc0 = 0.0f, acc1 = 0.0f;
  for (int r = r0; r < r1; r++) {
    size_t row = (size_t)g * (size_t)rows + (size_t)r;
    size_t i = row * (size_t)width + (size_t)d;
    if (KIND == TCU_COLSUM_ROWS) {
      acc0 += src.a[i];
    } else if (KIND == TCU_COLSUM_PRODUCT) {
      acc0 += src.a[i] * src.b[i];
    } else {
      float dy = src.a[i];
      acc0 += dy;
      acc1 += dy * (src.b[i] - src.mean[row]) * src.rstd[row];
    }
  }
  size_t at = ((size_t)g * (size_t)chunks + (size_t)c) * (size_t)width + (size_t)d;
  partials[at] = acc0;
  if (KIND == TCU_COLSUM_LAYERNORM) partials[(size_t)groups * (size_t)chunks * (size_t)width + at] = acc1;
}

__global__ void colsum_finish_kernel(const float *partials, int groups, int chunks, int width, float *dst0, float *dst1,
                                     long long dst_stride) {
  int d = blockIdx.x * blockDim.x + threadIdx.x;
  int g = blockIdx.y;
  if (d >= width) return;
  size_t plane = (size_t)groups * (size_t)chunks * (size_t)width;
  const float *p = partials + (size_t)g * (size_t)chunks * (size_t)width + (size_t)d;
  float s0 = 0.0f, s1 = 0.0f;
  for (int c = 0; c < chunks; c++) {
    s0 += p[(size_t)c * width];
    if (dst1) s1 += p[plane + (size_t)c * width];
  }
  dst0[(long long)g * dst_stride + d] += s0;
  if (dst1) dst1[(long long)g * dst_stride + d] += s1;
}

}  // namespace

size_t tcu_colsum_scratch_bound(size_t columns) {
  /* below: chunks <= kTargetThreads / columns + 1, and two planes at most (layernorm) */
  return 2 * ((size_t)kTargetThreads + columns) * sizeof(float);
}

void tcu_colsum_accumulate(const tcu_colsum_source &src, int groups, int rows, int width, float *dst0, float *dst1,
                           long long dst_stride) {
  if (groups <= 0 || rows <= 0 || width <= 0) return; /* nothing to add */
  if (groups > 65535) {
    TCU_FAIL("token sum: %d groups exceed the grid limit of 65535", groups);
    return;
  }
  bool two = src.kind == TCU_COLSUM_LAYERNORM;
  if (two && !dst1) {
    TCU_FAIL("token sum: layernorm needs two destinations");
    return;
  }
  long long columns = (long long)groups * width;
  long long chunks = tcu_ceil_div(kTargetThreads, columns);
  long long max_chunks = tcu_ceil_div(rows, kMinChunkRows);
  if (chunks > max_chunks) chunks = max_chunks;
  if (chunks > 65535) chunks = 65535;
  if (chunks < 1) chunks = 1;
  int chunk_rows = (int)tcu_ceil_div(rows, chunks);
  chunks = tcu_ceil_div(rows, chunk_rows);

  size_t count = (size_t)(two ? 2 : 1) * (size_t)groups * (size_t)chunks * (size_t)width;
  float *partials = (float *)tcu_scratch(TCU_SCRATCH_COLSUM, count * sizeof(float));
  if (!partials) return;
  dim3 grid1((unsigned)tcu_ceil_div(width, kColumnsPerBlock), (unsigned)chunks, (unsigned)groups);
  switch (src.kind) {
    case TCU_COLSUM_ROWS:
      TCU_LAUNCH(grid1, kColumnsPerBlock, 0, colsum_partial_kernel<TCU_COLSUM_ROWS>)
      (src, partials, groups, rows, width, (int)chunks, chunk_rows);
      break;
    case TCU_COLSUM_PRODUCT:
      TCU_LAUNCH(grid1, kColumnsPerBlock, 0, colsum_partial_kernel<TCU_COLSUM_PRODUCT>)
      (src, partials, groups, rows, width, (int)chunks, chunk_rows);
      break;
    case TCU_COLSUM_LAYERNORM:
      TCU_LAUNCH(grid1, kColumnsPerBlock, 0, colsum_partial_kernel<TCU_COLSUM_LAYERNORM>)
      (src, partials, groups, rows, width, (int)chunks, chunk_rows);
      break;
  }
  if (!LAUNCH_OK("colsum_partial_kernel")) return;
  dim3 grid2((unsigned)tcu_ceil_div(width, kColumnsPerBlock), (unsigned)groups);
  TCU_LAUNCH(grid2, kColumnsPerBlock, 0, colsum_finish_kernel)
  (partials, groups, (int)chunks, width, dst0, two ? dst1 : NULL, dst_stride);
  LAUNCH_OK("colsum_finish_kernel");
}

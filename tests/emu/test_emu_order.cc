/* test_emu_order.cc — the emulator's race check (TPDIFF_EMU_ORDER, emu.h) against small kernels with
 * a known answer: each racy kernel must stop its process with one "FAIL emu:" line naming it, and
 * its barrier-correct twin must run clean and give the right values, in every order.
 *
 * A failing check ends its process (emu exits at once, as a GPU fault would end the context), so
 * each case runs as a child: this program runs itself with the case's name. The cases:
 *
 *   block-barrier   threads read a neighbour's shared-memory slot; without __syncthreads the warp
 *                   that runs first reads slots the others have not written (wrong in forward
 *                   order already: warps run as far as they can, one after another)
 *   warp-barrier    lanes read a neighbour lane's element of a wmma store without __syncwarp
 *                   (each lane stores its own share)
 *   wmma-load       lanes write a tile and load it with wmma without __syncwarp
 *   blocks          a block reads the previous block's output: no order of blocks is promised, and
 *                   forward order alone gives the right values */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cuda_bf16.h>
#include <mma.h>

#include "tests/emu/emu.h"

using namespace nvcuda;

constexpr int kThreads = 128;

/* out[i] = 2 * i + 1, read from the next thread's slot of shared memory */
template <bool kBarrier>
__global__ void neighbour_kernel(float *out) {
  __shared__ float slot[kThreads];
  const int i = threadIdx.x;
  slot[i] = 2.0f * i;
  if (kBarrier) __syncthreads();
  out[i] = slot[(i + 1) % kThreads] - 1.0f;
}

/* each warp stores a 16x16 tile of ones times its lane count through wmma; lane l then reads
 * element l + 1 of its warp's tile, stored by the next lane */
template <bool kBarrier>
__global__ void tile_kernel(float *out) {
  TCU_DYNAMIC_SMEM(smem);
  float *tile = (float *)smem + 256 * (threadIdx.x / 32);
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
  wmma::fill_fragment(acc, 3.0f);
  wmma::store_matrix_sync(tile, acc, 16, wmma::mem_row_major);
  if (kBarrier) __syncwarp();
  out[threadIdx.x] = tile[threadIdx.x % 32 + 1];
}

/* lanes write a bf16 tile (row r: the value r), load it as matrix A and multiply by ones: row r of
 * the product is 16 r */
template <bool kBarrier>
__global__ void wmma_load_kernel(float *out) {
  TCU_DYNAMIC_SMEM(smem);
  __nv_bfloat16 *a = (__nv_bfloat16 *)smem, *b = a + 256;
  float *c = (float *)(b + 256);
  for (int e = 8 * (int)threadIdx.x; e < 8 * (int)threadIdx.x + 8; e++) { /* not the lanes' shares of the load */
    a[e] = __float2bfloat16_rn((float)(e / 16));
    b[e] = __float2bfloat16_rn(1.0f);
  }
  if (kBarrier) __syncwarp();
  wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> fb;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
  wmma::load_matrix_sync(fa, a, 16);
  wmma::load_matrix_sync(fb, b, 16);
  wmma::fill_fragment(acc, 0.0f);
  wmma::mma_sync(acc, fa, fb, acc);
  wmma::store_matrix_sync(c, acc, 16, wmma::mem_row_major);
  __syncwarp();
  for (int e = threadIdx.x; e < 256; e += 32) out[e] = c[e];
}

/* out[b] = b; the racy twin computes it as out[b - 1] + 1, reading another block's output */
template <bool kRacy>
__global__ void blocks_kernel(float *out) {
  const int b = blockIdx.x;
  if (threadIdx.x == 0) out[b] = kRacy && b > 0 ? out[b - 1] + 1.0f : (float)b;
}

static float *device_floats(int n) {
  void *p = NULL;
  if (cudaMalloc(&p, n * sizeof(float)) != cudaSuccess) {
    printf("FAIL cudaMalloc\n");
    exit(1);
  }
  return (float *)p;
}

/* Runs one case in this process; prints the values' check; 0 when they are right. */
static int run_case(const char *name) {
  float *out = device_floats(256);
  int bad = 0;
  if (!strcmp(name, "block-barrier") || !strcmp(name, "block-barrier-ok")) {
    if (strstr(name, "-ok"))
      TCU_LAUNCH(dim3(1), dim3(kThreads), 0, neighbour_kernel<true>)(out);
    else
      TCU_LAUNCH(dim3(1), dim3(kThreads), 0, neighbour_kernel<false>)(out);
    for (int i = 0; i < kThreads; i++) bad += out[i] != 2.0f * ((i + 1) % kThreads) - 1.0f;
  } else if (!strcmp(name, "warp-barrier") || !strcmp(name, "warp-barrier-ok")) {
    if (strstr(name, "-ok"))
      TCU_LAUNCH(dim3(1), dim3(64), 2 * 256 * sizeof(float), tile_kernel<true>)(out);
    else
      TCU_LAUNCH(dim3(1), dim3(64), 2 * 256 * sizeof(float), tile_kernel<false>)(out);
    for (int i = 0; i < 64; i++) bad += out[i] != 3.0f;
  } else if (!strcmp(name, "wmma-load") || !strcmp(name, "wmma-load-ok")) {
    if (strstr(name, "-ok"))
      TCU_LAUNCH(dim3(1), dim3(32), 2048, wmma_load_kernel<true>)(out);
    else
      TCU_LAUNCH(dim3(1), dim3(32), 2048, wmma_load_kernel<false>)(out);
    for (int e = 0; e < 256; e++) bad += out[e] != 16.0f * (e / 16);
  } else if (!strcmp(name, "blocks") || !strcmp(name, "blocks-ok")) {
    if (strstr(name, "-ok"))
      TCU_LAUNCH(dim3(8), dim3(32), 0, blocks_kernel<false>)(out);
    else
      TCU_LAUNCH(dim3(8), dim3(32), 0, blocks_kernel<true>)(out);
    for (int b = 0; b < 8; b++) bad += out[b] != (float)b;
  } else {
    printf("FAIL test_emu_order: no case %s\n", name);
    return 2;
  }
  printf("%s: %d wrong values\n", name, bad);
  cudaFree(out);
  return bad ? 1 : 0;
}

static int passed, failed;

/* Runs `self case` with TPDIFF_EMU_ORDER=order. With a needle, the child must fail and its first
 * line hold the needle; without, it must exit 0. */
static void expect(const char *self, const char *name, const char *order, const char *needle) {
  char cmd[1024], out[4096] = "";
  snprintf(cmd, sizeof cmd, "TPDIFF_EMU_ORDER=%s '%s' %s 2>&1", order, self, name);
  FILE *p = popen(cmd, "r");
  size_t n = p ? fread(out, 1, sizeof out - 1, p) : 0;
  out[n] = '\0';
  const int status = p ? pclose(p) : -1;
  char *nl = strchr(out, '\n');
  if (nl) *nl = '\0';
  const bool ok = needle ? status != 0 && strstr(out, needle) != NULL : status == 0;
  printf("%s %s, TPDIFF_EMU_ORDER=%s: %s%s (%s)\n", ok ? "PASS" : "FAIL", name, order,
         needle ? "must fail with " : "must run clean", needle ? needle : "", out);
  ok ? passed++ : failed++;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc > 1) return run_case(argv[1]);
  const char *self = "/proc/self/exe";
  char path[4096];
  const ssize_t len = readlink(self, path, sizeof path - 1);
  if (len > 0) {
    path[len] = '\0';
    self = path;
  }
  /* the racy kernels: caught by the order check */
  expect(self, "block-barrier", "check", "FAIL emu: neighbour_kernel<false>");
  expect(self, "warp-barrier", "check", "FAIL emu: tile_kernel<false>");
  expect(self, "wmma-load", "check", "FAIL emu: wmma_load_kernel<false>");
  expect(self, "blocks", "check", "FAIL emu: blocks_kernel<true>");
  /* forward only: the missing __syncthreads gives wrong values, the blocks' race does not show */
  expect(self, "block-barrier", "forward", "wrong values");
  expect(self, "blocks", "forward", NULL);
  /* the correct twins, in every order */
  const char *orders[] = {"forward", "reverse", "check"};
  for (const char *order : orders) {
    expect(self, "block-barrier-ok", order, NULL);
    expect(self, "warp-barrier-ok", order, NULL);
    expect(self, "wmma-load-ok", order, NULL);
    expect(self, "blocks-ok", order, NULL);
  }
  /* a misspelt order is refused */
  expect(self, "blocks-ok", "backwards", "TPDIFF_EMU_ORDER=backwards: expected forward, reverse or check");
  printf("test_emu_order: %d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}

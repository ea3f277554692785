/* emu_runtime.cc — the CUDA runtime API of include/cuda_runtime.h on the CPU: one device (an
 * "sm_90" with one multiprocessor, so that grid-stride kernels need few emulated blocks), whose
 * memory is host memory, 256-byte aligned as cudaMalloc's and NaN-filled. Allocations are tracked
 * so that a cudaFree of something never allocated, or freed twice, fails as on a GPU, and so that
 * TPDIFF_EMU_ORDER=check can compare all of device memory. */
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <map>
#include <mutex>

namespace {
std::map<void *, size_t> g_allocations;
size_t g_allocated = 0, g_peak = 0;
std::mutex g_lock;

/* TPDIFF_EMU_PEAK=1: the most device memory held at once, on stderr at exit (to hold against a
 * memory plan) */
void report_peak() { fprintf(stderr, "emu: device memory peak %zu bytes\n", g_peak); }

size_t physical_bytes() { return (size_t)sysconf(_SC_PHYS_PAGES) * (size_t)sysconf(_SC_PAGESIZE); }
}  // namespace

void emu::for_each_allocation(const std::function<void(unsigned char *, size_t)> &fn) {
  std::lock_guard<std::mutex> hold(g_lock);
  for (const auto &a : g_allocations) fn(static_cast<unsigned char *>(a.first), a.second);
}

cudaError_t cudaGetDeviceCount(int *count) {
  *count = 1;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : cudaErrorInvalidDevice; }
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int device) {
  if (device != 0) return cudaErrorInvalidDevice;
  memset(prop, 0, sizeof *prop);
  snprintf(prop->name, sizeof prop->name, "tpdiff CPU emulator");
  prop->totalGlobalMem = physical_bytes();
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = 1;
  return cudaSuccess;
}
cudaError_t cudaMalloc(void **ptr, size_t bytes) {
  void *p = nullptr;
  if (posix_memalign(&p, 256, bytes ? bytes : 1) != 0) return cudaErrorMemoryAllocation;
  /* NaN bytes, as emu's shared memory: a kernel that reads device memory nobody wrote gives NaN
   * results, the same in every run, instead of whatever the host heap held */
  memset(p, 0xFF, bytes);
  std::lock_guard<std::mutex> hold(g_lock);
  g_allocations[p] = bytes;
  g_allocated += bytes;
  if (g_allocated > g_peak) g_peak = g_allocated;
  static bool reporting = false;
  if (!reporting && getenv("TPDIFF_EMU_PEAK")) {
    reporting = true;
    atexit(report_peak);
  }
  *ptr = p;
  return cudaSuccess;
}
cudaError_t cudaFree(void *ptr) {
  if (!ptr) return cudaSuccess;
  std::lock_guard<std::mutex> hold(g_lock);
  auto it = g_allocations.find(ptr);
  if (it == g_allocations.end()) return cudaErrorInvalidValue;
  g_allocated -= it->second;
  g_allocations.erase(it);
  free(ptr);
  return cudaSuccess;
}
/* the synchronous copies and sets are work on the legacy default stream */
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
  (void)kind;
  emu::default_stream_wait();
  if (bytes) memmove(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemset(void *ptr, int value, size_t bytes) {
  emu::default_stream_wait();
  memset(ptr, value, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes) {
  std::lock_guard<std::mutex> hold(g_lock);
  *total_bytes = physical_bytes();
  *free_bytes = *total_bytes > g_allocated ? *total_bytes - g_allocated : 0;
  return cudaSuccess;
}
cudaError_t cudaGetLastError() { return emu::take_launch_error(); }
const char *cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotReady: return "device not ready";
    default: return "unspecified launch failure";
  }
}
const char *cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    default: return "cudaErrorLaunchFailure";
  }
}

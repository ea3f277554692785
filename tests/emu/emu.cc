/* emu.cc — the fibers, the scheduler, the launches and the warp-wide instructions of emu.h. */
#include "tests/emu/emu.h"

#include <cuda_bf16.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <ucontext.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define EMU_ASAN 1
#else
#define EMU_ASAN 0
#endif

namespace emu {
namespace {

enum class Wait { None, Barrier, Warp, Done };
enum class Op { None, Shfl, Ldsm, LdsmTrans, Mma, SyncWarp, Wmma, WmmaLoad };
const char *op_name(Op op) {
  switch (op) {
    case Op::Shfl: return "shfl.sync.bfly";
    case Op::Ldsm: return "ldmatrix.x4";
    case Op::LdsmTrans: return "ldmatrix.x4.trans";
    case Op::Mma: return "mma.sync.m16n8k16";
    case Op::SyncWarp: return "__syncwarp";
    case Op::Wmma: return "a wmma function";
    case Op::WmmaLoad: return "wmma::load_matrix_sync";
    default: return "(none)";
  }
}

/* ---- fiber contexts ----------------------------------------------------------------------------
 * On x86-64 a switch saves the callee-saved registers, MXCSR and the x87 control word on the old
 * stack and loads the new stack pointer: no system call (glibc's swapcontext saves the signal mask
 * with one at every switch, which made the emulator spend a third of its time in the kernel).
 * Elsewhere, ucontext. */
#if defined(__x86_64__)
struct Context {
  void *sp;
};
extern "C" void emu_switch_stacks(void **save_sp, void *load_sp);
asm(R"(
  .text
  .globl emu_switch_stacks
  .type emu_switch_stacks, @function
emu_switch_stacks:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size emu_switch_stacks, .-emu_switch_stacks
)");
void switch_context(Context *save, Context *load) { emu_switch_stacks(&save->sp, load->sp); }
/* A fresh stack whose first switch "returns" into entry, with the stack aligned as after a call. */
void make_context(Context *c, char *stack, size_t bytes, void (*entry)()) {
  uintptr_t top = ((uintptr_t)(stack + bytes)) & ~(uintptr_t)15;
  uint64_t *at = reinterpret_cast<uint64_t *>(top - 16); /* 16-aligned: entry starts at 8 mod 16 */
  at[1] = 0;                                            /* entry's own return address: none */
  at[0] = (uint64_t)(uintptr_t)entry;
  for (int r = 1; r <= 6; r++) at[-r] = 0; /* rbp, rbx, r12 .. r15 */
  uint32_t *control = reinterpret_cast<uint32_t *>(at - 7);
  control[0] = 0x1F80;                     /* MXCSR: exceptions masked, round to nearest */
  control[1] = 0x037F;                     /* x87 control word, the default */
  c->sp = at - 7;
}
#else
struct Context {
  ucontext_t uc;
};
void switch_context(Context *save, Context *load) { swapcontext(&save->uc, &load->uc); }
void make_context(Context *c, char *stack, size_t bytes, void (*entry)()) {
  getcontext(&c->uc);
  c->uc.uc_stack.ss_sp = stack;
  c->uc.uc_stack.ss_size = bytes;
  c->uc.uc_link = nullptr;
  makecontext(&c->uc, entry, 0);
}
#endif

struct Copy {
  void *dst;
  const void *src;
};

struct Fiber {
  Context ctx;
  char *stack = nullptr;
  uint3 tid{0, 0, 0};
  int linear = 0;
  Wait wait = Wait::None;
  /* a warp-wide instruction: its kind and this lane's operands, then its result */
  Op op = Op::None;
  double f = 0.0; /* a shuffle's value (float or double) */
  int mask = 0;
  const unsigned char *addr = nullptr;
  uint32_t a[4] = {0, 0, 0, 0}, b[2] = {0, 0};
  float c[4] = {0, 0, 0, 0};
  uint32_t r[4] = {0, 0, 0, 0};
  const float *share = nullptr; /* a wmma load: this lane's share of the tile, and where the tile goes */
  float *tile = nullptr;
  std::vector<Copy> pending; /* cp.async issued, not yet waited for */
};

/* The kernels keep their register arrays (a few KiB) on these stacks; a sanitizer build adds redzones.
 * Small stacks matter: the address sanitizer clears a stack's shadow at every switch to it. */
constexpr size_t kStackBytes = 64 * 1024;
constexpr size_t kGuardBytes = 4096; /* below each stack, inaccessible: an overflow faults at once */
std::vector<Fiber *> g_pool;
/* The pool lives for the process; given back at exit so that a leak check sees none. */
struct PoolOwner {
  ~PoolOwner() {
    for (Fiber *f : g_pool) {
      munmap(f->stack - kGuardBytes, kStackBytes + kGuardBytes);
      delete f;
    }
    g_pool.clear();
  }
} g_pool_owner;
Context g_scheduler;
Fiber *g_cur = nullptr;
uint3 g_block_idx{0, 0, 0};
dim3 g_block_dim, g_grid_dim;
unsigned char *g_smem = nullptr;
size_t g_smem_bytes = 0;
const std::function<void()> *g_body = nullptr;
cudaError_t g_error = cudaSuccess;
std::map<const void *, int> g_max_smem;
Stats g_stats = {0, 0, 0};
#if EMU_ASAN
void *g_fake_stack = nullptr;
const void *g_sched_stack_bottom = nullptr;
size_t g_sched_stack_size = 0;
#endif

/* A kernel that breaks a rule of the hardware ends the test: one FAIL line, exit status 1. */
[[noreturn]] __attribute__((format(printf, 1, 2))) void die(const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  printf("FAIL emu: block (%u, %u, %u)%s%d: %s\n", g_block_idx.x, g_block_idx.y, g_block_idx.z,
         g_cur ? " thread " : "", g_cur ? g_cur->linear : -1, msg);
  fflush(stdout);
  _exit(1); /* not exit(): this may run on a fiber's stack, which the exit handlers would unmap */
}

/* From a fiber to the scheduler (and back when the scheduler resumes it). */
void yield_to_scheduler() {
  Fiber *self = g_cur;
#if EMU_ASAN
  void *fake = nullptr;
  __sanitizer_start_switch_fiber(self->wait == Wait::Done ? nullptr : &fake, g_sched_stack_bottom, g_sched_stack_size);
#endif
  switch_context(&self->ctx, &g_scheduler);
#if EMU_ASAN
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
  g_cur = self;
}

void fiber_main() {
#if EMU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &g_sched_stack_bottom, &g_sched_stack_size);
#endif
  (*g_body)();
  if (!g_cur->pending.empty()) die("exits with %zu cp.async never waited for", g_cur->pending.size());
  g_cur->wait = Wait::Done;
  yield_to_scheduler();
  die("resumed after its exit");
}

void resume(Fiber *f) {
  g_cur = f;
#if EMU_ASAN
  __sanitizer_start_switch_fiber(&g_fake_stack, f->stack, kStackBytes);
#endif
  switch_context(&g_scheduler, &f->ctx);
#if EMU_ASAN
  __sanitizer_finish_switch_fiber(g_fake_stack, nullptr, nullptr);
#endif
  g_cur = nullptr;
}

/* Waits, in the calling fiber, until the whole warp has reached the same instruction and emu has
 * carried it out. */
void warp_wait(Op op) {
  g_cur->op = op;
  g_cur->wait = Wait::Warp;
  yield_to_scheduler();
}

void check_smem(const void *p, size_t bytes, size_t align, const char *what) {
  const unsigned char *u = static_cast<const unsigned char *>(p);
  if (u < g_smem || u + bytes > g_smem + g_smem_bytes)
    die("%s at %p: outside the block's %zu bytes of dynamic shared memory", what, p, g_smem_bytes);
  if ((uintptr_t)u % align != 0) die("%s at %p: not %zu-byte aligned", what, p, align);
}

uint16_t load16(const unsigned char *p) {
  uint16_t v;
  memcpy(&v, p, sizeof v);
  return v;
}

/* Carries out one warp-wide instruction for lanes[0..31], all waiting at it. */
void execute(Fiber **lanes) {
  const Op op = lanes[0]->op;
  for (int i = 1; i < 32; i++)
    if (lanes[i]->op != op)
      die("warp %d diverged: lane 0 at %s, lane %d at %s", lanes[0]->linear / 32, op_name(op), i,
          op_name(lanes[i]->op));
  switch (op) {
    case Op::Shfl: { /* every lane reads its partner's input before any lane's changes */
      double got[32];
      for (int i = 0; i < 32; i++) {
        if (lanes[i]->mask != lanes[0]->mask) die("shuffle with different lane masks in one warp");
        got[i] = lanes[i ^ (lanes[i]->mask & 31)]->f;
      }
      for (int i = 0; i < 32; i++) lanes[i]->f = got[i];
      break;
    }
    case Op::Ldsm:
    case Op::LdsmTrans: {
      /* lane 8j + q names row q of matrix j (16 bytes); lane 4q + w receives in register j the pair
       * (row q, columns 2w, 2w+1) of matrix j, or with .trans (rows 2w, 2w+1, column q) */
      const unsigned char *rows[32];
      for (int i = 0; i < 32; i++) {
        check_smem(lanes[i]->addr, 16, 16, op_name(op));
        rows[i] = lanes[i]->addr;
      }
      for (int i = 0; i < 32; i++) {
        const int q = i / 4, w = i % 4;
        for (int j = 0; j < 4; j++) {
          uint32_t lo, hi;
          if (op == Op::Ldsm) {
            lo = load16(rows[8 * j + q] + 4 * w);
            hi = load16(rows[8 * j + q] + 4 * w + 2);
          } else {
            lo = load16(rows[8 * j + 2 * w] + 2 * q);
            hi = load16(rows[8 * j + 2 * w + 1] + 2 * q);
          }
          lanes[i]->r[j] = lo | (hi << 16);
        }
      }
      break;
    }
    case Op::Mma: {
      /* m16n8k16, A row-major 16x16, B 16x8 (k x n), C/D 16x8 fp32; g = lane / 4, t = lane % 4:
       * a[0] (row g, k 2t..2t+1), a[1] (row g+8, k 2t..), a[2] (row g, k 2t+8..), a[3] (row g+8, k 2t+8..);
       * b[0] (k 2t..2t+1, n g), b[1] (k 2t+8..2t+9, n g); c[0..1] (row g, n 2t..2t+1), c[2..3] (row g+8, ...);
       * the lower k (or n) of a pair in the low 16 bits */
      float A[16][16], B[16][8];
      auto half = [](uint32_t reg, int hi) {
        __nv_bfloat16 h;
        h.bits = (uint16_t)(hi ? reg >> 16 : reg & 0xffffu);
        return __bfloat162float(h);
      };
      for (int row = 0; row < 16; row++)
        for (int k = 0; k < 16; k++)
          A[row][k] = half(lanes[(row % 8) * 4 + (k % 8) / 2]->a[(row >= 8) + 2 * (k >= 8)], k % 2);
      for (int k = 0; k < 16; k++)
        for (int n = 0; n < 8; n++) B[k][n] = half(lanes[n * 4 + (k % 8) / 2]->b[k >= 8], k % 2);
      for (int i = 0; i < 32; i++) {
        const int g = i / 4, t = i % 4;
        for (int e = 0; e < 4; e++) {
          const int row = g + 8 * (e >= 2), n = 2 * t + (e & 1);
          float acc = lanes[i]->c[e];
          for (int k = 0; k < 16; k++) acc += A[row][k] * B[k][n]; /* bf16 products are exact in fp32 */
          lanes[i]->c[e] = acc;
        }
      }
      break;
    }
    case Op::WmmaLoad:
      for (int i = 0; i < 32; i++)
        for (int e = 0; e < 16 * 16; e++) lanes[i]->tile[e] = lanes[e % 32]->share[e];
      break;
    case Op::SyncWarp:
    case Op::Wmma: break; /* only the meeting: each lane then goes on with its own work */
    default: die("warp waits at no instruction");
  }
  for (int i = 0; i < 32; i++) {
    lanes[i]->op = Op::None;
    lanes[i]->wait = Wait::None;
  }
}

/* reverse: resume the block's threads from the last, each time round (TPDIFF_EMU_ORDER) */
void run_block(int nthreads, bool reverse) {
  while ((int)g_pool.size() < nthreads) {
    void *mem = mmap(nullptr, kStackBytes + kGuardBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED || mprotect(mem, kGuardBytes, PROT_NONE) != 0) die("out of memory for fiber stacks");
    Fiber *f = new Fiber;
    f->stack = static_cast<char *>(mem) + kGuardBytes;
    g_pool.push_back(f);
  }
  for (int i = 0; i < nthreads; i++) {
    Fiber *f = g_pool[i];
    f->linear = i;
    f->tid = uint3{i % g_block_dim.x, (i / g_block_dim.x) % g_block_dim.y, i / (g_block_dim.x * g_block_dim.y)};
    f->wait = Wait::None;
    f->op = Op::None;
    f->pending.clear();
#if EMU_ASAN
    /* the last fiber on this stack left its frames' redzones poisoned */
    __asan_unpoison_memory_region(f->stack, kStackBytes);
#endif
    make_context(&f->ctx, f->stack, kStackBytes, fiber_main);
  }
  /* Warp by warp: each runs as far as it can (through its warp-wide instructions) before the next
   * starts, up to a block barrier or its exit. A GPU may schedule warps that way, and it is the
   * order in which a missing __syncthreads shows: a warp reads shared memory that the others have
   * not written yet. */
  const int warps = (nthreads + 31) / 32;
  for (;;) {
    for (int k = 0; k < warps; k++) {
      const int w = reverse ? warps - 1 - k : k;
      Fiber **lanes = &g_pool[32 * w];
      const int count = nthreads - 32 * w < 32 ? nthreads - 32 * w : 32;
      for (;;) {
        for (int q = 0; q < count; q++) {
          Fiber *f = lanes[reverse ? count - 1 - q : q];
          if (f->wait == Wait::None) resume(f);
        }
        int at = 0, gone = 0;
        for (int i = 0; i < count; i++) {
          at += lanes[i]->wait == Wait::Warp;
          gone += lanes[i]->wait == Wait::Done;
        }
        if (at == count && count < 32) die("warp %d has %d threads: a full-warp instruction needs 32", w, count);
        if (at == 32) {
          execute(lanes);
          continue;
        }
        if (at > 0 && gone > 0)
          die("warp %d: %d lanes wait at %s while %d have exited", w, at, op_name(lanes[0]->op), gone);
        break; /* at a barrier, exited, or stuck */
      }
    }
    int done = 0, barrier = 0, warp = 0;
    for (int i = 0; i < nthreads; i++) {
      done += g_pool[i]->wait == Wait::Done;
      barrier += g_pool[i]->wait == Wait::Barrier;
      warp += g_pool[i]->wait == Wait::Warp;
    }
    if (done == nthreads) return;
    if (barrier > 0 && barrier + done == nthreads) {
      if (done > 0) die("__syncthreads reached by %d threads while %d have exited", barrier, done);
      for (int i = 0; i < nthreads; i++) g_pool[i]->wait = Wait::None;
      continue;
    }
    die("deadlock: %d threads at __syncthreads, %d at a warp instruction (not the whole warp), %d exited", barrier,
        warp, done);
  }
}

enum class Order { Forward, Reverse, Check };

Order order_from_environment() {
  const char *v = getenv("TPDIFF_EMU_ORDER");
  if (!v || !*v || !strcmp(v, "forward")) return Order::Forward;
  if (!strcmp(v, "reverse")) return Order::Reverse;
  if (!strcmp(v, "check")) return Order::Check;
  printf("FAIL emu: TPDIFF_EMU_ORDER=%s: expected forward, reverse or check\n", v);
  fflush(stdout);
  _exit(2);
}

/* Every block of the grid, by index or from the last. */
void run_blocks(dim3 grid, int threads, bool reverse) {
  const size_t blocks = (size_t)grid.x * grid.y * grid.z;
  for (size_t k = 0; k < blocks; k++) {
    const size_t b = reverse ? blocks - 1 - k : k;
    g_block_idx = uint3{(unsigned)(b % grid.x), (unsigned)(b / grid.x % grid.y), (unsigned)(b / grid.x / grid.y)};
    memset(g_smem, 0xFF, g_smem_bytes); /* bf16 NaN: a tile element read before it is written shows */
    run_block(threads, reverse);
    g_stats.blocks++;
  }
}

struct Region {
  unsigned char *p;
  size_t bytes;
  std::vector<unsigned char> saved;
};

/* TPDIFF_EMU_ORDER=check: the launch forward, then in reverse from the same device memory; every
 * byte must agree. */
void run_blocks_both_ways(const char *name, dim3 grid, dim3 block, int threads) {
  std::vector<Region> regions;
  for_each_allocation([&regions](unsigned char *p, size_t bytes) { regions.push_back(Region{p, bytes, {}}); });
  for (Region &r : regions) r.saved.assign(r.p, r.p + r.bytes);
  run_blocks(grid, threads, false);
  for (Region &r : regions) std::swap_ranges(r.p, r.p + r.bytes, r.saved.begin()); /* saved: forward's results */
  run_blocks(grid, threads, true);
  for (const Region &r : regions) {
    if (!memcmp(r.p, r.saved.data(), r.bytes)) continue;
    size_t at = 0;
    while (r.p[at] == r.saved[at]) at++;
    const size_t word = at / 4 * 4;
    float fwd = 0.0f, rev = 0.0f;
    if (word + 4 <= r.bytes) {
      memcpy(&fwd, &r.saved[word], 4);
      memcpy(&rev, r.p + word, 4);
    }
    printf("FAIL emu: %s, grid (%u, %u, %u), block (%u, %u, %u): device memory differs when its blocks and threads "
           "run in reverse order (threads or blocks racing: a missing barrier?): byte %zu of a %zu-byte allocation "
           "(as float %zu: %.9g forward, %.9g reverse)\n",
           name, grid.x, grid.y, grid.z, block.x, block.y, block.z, at, r.bytes, word / 4, (double)fwd, (double)rev);
    fflush(stdout);
    _exit(1);
  }
}

}  // namespace

const uint3 &thread_idx() { return g_cur->tid; }
const uint3 &block_idx() { return g_block_idx; }
const dim3 &block_dim() { return g_block_dim; }
const dim3 &grid_dim() { return g_grid_dim; }

void syncthreads() {
  g_cur->wait = Wait::Barrier;
  yield_to_scheduler();
}

void syncwarp() { warp_wait(Op::SyncWarp); }
int lane_id() { return g_cur->linear % 32; }
void warp_collective_sync() { warp_wait(Op::Wmma); }

void wmma_pool_shares(float *tile, const float *share) {
  g_cur->tile = tile;
  g_cur->share = share;
  warp_wait(Op::WmmaLoad);
}

void wmma_check(const void *p, size_t ld_bytes, size_t extent_bytes) {
  if ((uintptr_t)p % 32 != 0) die("wmma tile at %p: not 256-bit aligned", p);
  if (ld_bytes % 16 != 0) die("wmma leading dimension of %zu bytes: not a multiple of 16", ld_bytes);
  const unsigned char *u = static_cast<const unsigned char *>(p);
  if (g_smem && u >= g_smem && u < g_smem + g_smem_bytes && u + extent_bytes > g_smem + g_smem_bytes)
    die("wmma tile at %p (%zu bytes): past the block's %zu bytes of dynamic shared memory", p, extent_bytes,
        g_smem_bytes);
}

double shfl_xor(double v, int lane_mask) {
  g_cur->f = v;
  g_cur->mask = lane_mask;
  warp_wait(Op::Shfl);
  return g_cur->f;
}
float shfl_xor(float v, int lane_mask) { return (float)shfl_xor((double)v, lane_mask); }

void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  memcpy(g_cur->a, a, sizeof g_cur->a);
  g_cur->b[0] = b0;
  g_cur->b[1] = b1;
  memcpy(g_cur->c, c, sizeof g_cur->c);
  warp_wait(Op::Mma);
  memcpy(c, g_cur->c, sizeof g_cur->c);
}

void ldmatrix_x4(uint32_t (&r)[4], const __nv_bfloat16 *p, bool trans) {
  g_cur->addr = reinterpret_cast<const unsigned char *>(p);
  warp_wait(trans ? Op::LdsmTrans : Op::Ldsm);
  memcpy(r, g_cur->r, sizeof g_cur->r);
}

uint32_t lds32(const __nv_bfloat16 *p) {
  check_smem(p, 4, 4, "ld.shared.b32");
  uint32_t v;
  memcpy(&v, p, sizeof v);
  return v;
}

void cp_async16(void *smem, const void *gmem) {
  check_smem(smem, 16, 16, "cp.async destination");
  if ((uintptr_t)gmem % 16 != 0) die("cp.async source %p: not 16-byte aligned", gmem);
  g_cur->pending.push_back(Copy{smem, gmem});
}

void cp_async_wait_all() {
  for (const Copy &c : g_cur->pending) memcpy(c.dst, c.src, 16);
  g_cur->pending.clear();
}

unsigned char *dynamic_smem() { return g_smem; }

cudaError_t set_max_dynamic_smem(const void *kernel, int bytes) {
  if (bytes < 0 || bytes > kSm90MaxDynamicSmem) return cudaErrorInvalidValue;
  g_max_smem[kernel] = bytes;
  return cudaSuccess;
}

cudaError_t take_launch_error() {
  cudaError_t e = g_error;
  g_error = cudaSuccess;
  return e;
}

void run_grid(const void *kernel, const char *name, dim3 grid, dim3 block, size_t smem_bytes,
              const std::function<void()> &body) {
  static const Order order = order_from_environment();
  /* one launch at a time, as on one stream: the running block's state is global */
  static std::mutex launch_lock;
  std::lock_guard<std::mutex> hold(launch_lock);
  const size_t threads = (size_t)block.x * block.y * block.z;
  const auto it = g_max_smem.find(kernel);
  const size_t allowed = it != g_max_smem.end() && it->second > 48 * 1024 ? (size_t)it->second : 48 * 1024;
  if (threads == 0 || threads > 1024 || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
      grid.y > 65535 || grid.z > 65535 || smem_bytes > allowed) {
    printf("emu: launch refused: grid (%u, %u, %u), block (%u, %u, %u), %zu bytes of dynamic shared memory (allowed "
           "%zu)\n",
           grid.x, grid.y, grid.z, block.x, block.y, block.z, smem_bytes, allowed);
    g_error = cudaErrorInvalidValue;
    return;
  }
  g_stats.launches++;
  if (smem_bytes > g_stats.max_smem_bytes) g_stats.max_smem_bytes = smem_bytes;
  g_body = &body;
  g_block_dim = block;
  g_grid_dim = grid;
  g_smem_bytes = smem_bytes;
  /* aligned as the kernels declare it (__align__(128)); wmma tiles inside need 32 bytes */
  void *smem = nullptr;
  if (posix_memalign(&smem, 128, smem_bytes ? smem_bytes : 1) != 0) die("out of memory for %zu bytes of shared memory", smem_bytes);
  g_smem = static_cast<unsigned char *>(smem);
  if (order == Order::Check)
    run_blocks_both_ways(name, grid, block, (int)threads);
  else
    run_blocks(grid, (int)threads, order == Order::Reverse);
  free(g_smem);
  g_smem = nullptr;
  g_body = nullptr;
}

Stats stats() { return g_stats; }

}  // namespace emu

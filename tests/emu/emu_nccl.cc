/* emu_nccl.cc — NCCL's communicators and all-reduce (include/nccl.h) between the processes of one
 * machine, so that comm/nccl_reduce.cu, compiled into the emulated backend, runs with the several
 * ranks of an mpirun where no GPU is present: the unique id and its broadcast, the non-blocking
 * start-up polled against train.comm_timeout, buckets enqueued during the backward on the library's
 * own stream and ordered by events, the bf16 wire, and the timeouts and aborts when a peer stops.
 *
 * A communicator is a POSIX shared-memory board named by the unique id: each rank's pid, one slot
 * of kSlotBytes per rank, and per rank the last chunk it deposited and the last it has read. An
 * all-reduce is a step on its stream (emu_streams.cc) that goes chunk by chunk: wait until every
 * rank has read the previous chunk, deposit this rank's part, wait until every rank has deposited,
 * reduce all slots in rank order into the output. The step returns unfinished while peers are
 * missing, so the host sees an operation in progress, as with NCCL on a GPU. A peer whose process
 * has exited makes the communicator's state ncclRemoteError (NCCL notices a closed connection); a
 * stopped peer leaves the operation pending until the caller's deadline aborts it.
 *
 * Arithmetic: each contribution is converted to float, multiplied by 1/nranks for ncclAvg, and
 * summed in rank order; bf16 results are rounded once (NCCL's ring may round at every hop, so bf16
 * results can differ from a GPU's by an ulp). Every rank computes the same bits, as with NCCL.
 * Unlike NCCL, several ranks may share the one emulated device. */
#include <cuda_bf16.h>
#include <errno.h>
#include <fcntl.h>
#include <nccl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>

namespace {
constexpr int kMaxRanks = 64;
constexpr size_t kSlotBytes = (size_t)1 << 20;
constexpr char kIdPrefix[] = "/tpdiff-emu-nccl-";
constexpr double kHangSeconds = 600; /* a blocking wait past this is a hang: give up */

/* The shared board. A fresh shared-memory object is zero bytes, which is every field's start state
 * (lock-free atomics of integers are plain memory on x86-64). */
struct Board {
  std::atomic<int> world, joined;
  std::atomic<int> pid[kMaxRanks];
  std::atomic<unsigned long long> deposited[kMaxRanks], consumed[kMaxRanks];
};
constexpr size_t kBoardBytes = (sizeof(Board) + 4095) & ~(size_t)4095;

struct CommState {
  Board *board = nullptr;
  size_t map_bytes = 0;
  int rank = 0, world = 0;
  std::string name;
  bool joined = false;   /* every rank has arrived */
  bool dropped = false;  /* aborted or destroyed: pending operations end without effect */
  int pending = 0;       /* operations enqueued and not finished */
  unsigned long long chunks_issued = 0;
  ncclResult_t error = ncclSuccess;
  std::string last_error;
  ~CommState() {
    if (board) munmap(board, map_bytes);
  }
  unsigned char *slot(int r) const { return (unsigned char *)board + kBoardBytes + (size_t)r * kSlotBytes; }
};
}  // namespace

struct ncclComm {
  std::shared_ptr<CommState> state;
};

namespace {
double now_seconds() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A rank whose process has exited: the communicator fails with ncclRemoteError. */
bool peers_alive(CommState &c) {
  for (int r = 0; r < c.world; r++) {
    int pid = c.board->pid[r].load();
    if (pid > 0 && kill(pid, 0) != 0 && errno == ESRCH) {
      if (c.error == ncclSuccess || c.error == ncclInProgress) {
        c.error = ncclRemoteError;
        c.last_error = "rank " + std::to_string(r) + " (pid " + std::to_string(pid) + ") has exited";
      }
      return false;
    }
  }
  return true;
}

bool all_at_least(const std::atomic<unsigned long long> *v, int world, unsigned long long want) {
  for (int r = 0; r < world; r++)
    if (v[r].load(std::memory_order_acquire) < want) return false;
  return true;
}

/* The state after start-up progress: joined once every rank has arrived. */
ncclResult_t init_state(CommState &c) {
  if (c.error != ncclSuccess) return c.error;
  if (c.joined) return ncclSuccess;
  if (c.board->joined.load() == c.world) {
    c.joined = true;
    shm_unlink(c.name.c_str()); /* every rank has it mapped; the name is no longer needed */
    return ncclSuccess;
  }
  return peers_alive(c) ? ncclInProgress : c.error;
}

float to_float(const void *p, size_t i, ncclDataType_t t) {
  if (t == ncclBfloat16) return __bfloat162float(static_cast<const __nv_bfloat16 *>(p)[i]);
  return static_cast<const float *>(p)[i];
}

/* One all-reduce: a step of its stream, chunk by chunk (see the file's comment). */
struct AllReduce {
  std::shared_ptr<CommState> comm;
  const unsigned char *send;
  unsigned char *recv;
  size_t count, elem_bytes;
  ncclDataType_t type;
  ncclRedOp_t op;
  unsigned long long first_chunk, chunks;
  unsigned long long done = 0;
  bool deposited = false;

  bool operator()() {
    CommState &c = *comm;
    for (;;) {
      if (c.dropped || done == chunks) {
        c.pending--;
        return true;
      }
      unsigned long long chunk = first_chunk + done;
      size_t per = kSlotBytes / elem_bytes, begin = (size_t)done * per;
      size_t n = count - begin < per ? count - begin : per;
      if (!deposited) {
        if (!all_at_least(c.board->consumed, c.world, chunk - 1)) {
          peers_alive(c);
          return false;
        }
        memcpy(c.slot(c.rank), send + begin * elem_bytes, n * elem_bytes);
        c.board->deposited[c.rank].store(chunk, std::memory_order_release);
        deposited = true;
      }
      if (!all_at_least(c.board->deposited, c.world, chunk)) {
        peers_alive(c);
        return false;
      }
      float scale = op == ncclAvg ? (float)(1.0 / c.world) : 1.0f;
      for (size_t i = 0; i < n; i++) {
        float acc = to_float(c.slot(0), i, type) * scale;
        for (int r = 1; r < c.world; r++) acc += to_float(c.slot(r), i, type) * scale;
        if (type == ncclBfloat16)
          reinterpret_cast<__nv_bfloat16 *>(recv)[begin + i] = __float2bfloat16_rn(acc);
        else
          reinterpret_cast<float *>(recv)[begin + i] = acc;
      }
      c.board->consumed[c.rank].store(chunk, std::memory_order_release);
      deposited = false;
      done++;
    }
  }
};

void drop(ncclComm_t comm) {
  comm->state->dropped = true;
  shm_unlink(comm->state->name.c_str()); /* a start-up that never completed leaves the name */
  delete comm;                           /* operations still queued hold the state */
}
}  // namespace

/* 0: no NCCL release; nccl_reduce.cu prints it as "0.0.0" */
ncclResult_t ncclGetVersion(int *version) {
  *version = 0;
  return ncclSuccess;
}

ncclResult_t ncclGetUniqueId(ncclUniqueId *id) {
  static unsigned serial = 0;
  memset(id, 0, sizeof *id);
  snprintf(id->internal, sizeof id->internal, "%s%d-%u-%lld", kIdPrefix, (int)getpid(), serial++,
           (long long)(now_seconds() * 1e9));
  return ncclSuccess;
}

ncclResult_t ncclCommInitRankConfig(ncclComm_t *out, int nranks, ncclUniqueId id, int rank, ncclConfig_t *config) {
  *out = nullptr;
  if (nranks < 1 || nranks > kMaxRanks || rank < 0 || rank >= nranks) return ncclInvalidArgument;
  if (memchr(id.internal, 0, sizeof id.internal) == nullptr || strncmp(id.internal, kIdPrefix, strlen(kIdPrefix)) != 0)
    return ncclInvalidArgument; /* not from ncclGetUniqueId */
  auto c = std::make_shared<CommState>();
  c->rank = rank;
  c->world = nranks;
  c->name = id.internal;
  c->map_bytes = kBoardBytes + (size_t)nranks * kSlotBytes;
  int fd = shm_open(c->name.c_str(), O_CREAT | O_RDWR, 0600);
  if (fd < 0) return ncclSystemError;
  void *map = ftruncate(fd, (off_t)c->map_bytes) == 0
                ? mmap(nullptr, c->map_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
                : MAP_FAILED;
  close(fd);
  if (map == MAP_FAILED) return ncclSystemError;
  c->board = static_cast<Board *>(map);
  int expected = 0, none = 0;
  if ((!c->board->world.compare_exchange_strong(expected, nranks) && expected != nranks) ||
      !c->board->pid[rank].compare_exchange_strong(none, (int)getpid())) { /* another world size; rank taken */
    shm_unlink(c->name.c_str()); /* the communicator cannot start: leave no board behind */
    return ncclInvalidUsage;
  }
  c->board->joined.fetch_add(1);
  *out = new ncclComm{c};
  if (config && !config->blocking) return init_state(*c) == ncclSuccess ? ncclSuccess : ncclInProgress;
  double start = now_seconds();
  ncclResult_t state;
  while ((state = init_state(*c)) == ncclInProgress) {
    if (now_seconds() - start > kHangSeconds) {
      c->error = ncclSystemError;
      c->last_error = "not every rank joined within " + std::to_string((int)kHangSeconds) + " s";
      return c->error;
    }
    usleep(100);
  }
  return state;
}

ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t *state) {
  if (!comm) return ncclInvalidArgument;
  emu::streams_progress();
  *state = init_state(*comm->state);
  return ncclSuccess;
}

ncclResult_t ncclAllReduce(const void *sendbuff, void *recvbuff, size_t count, ncclDataType_t datatype, ncclRedOp_t op,
                           ncclComm_t comm, cudaStream_t stream) {
  if (!comm) return ncclInvalidArgument;
  CommState &c = *comm->state;
  if (!c.joined || c.error != ncclSuccess) {
    c.last_error = "all-reduce on a communicator that is not ready";
    return ncclInvalidUsage;
  }
  if ((datatype != ncclFloat32 && datatype != ncclBfloat16) || (op != ncclSum && op != ncclAvg)) {
    c.last_error = "emu carries out float32 and bfloat16 sums and averages only";
    return ncclInvalidArgument;
  }
  size_t elem = datatype == ncclBfloat16 ? 2 : 4, per = kSlotBytes / elem;
  unsigned long long chunks = (count + per - 1) / per;
  AllReduce step{comm->state, static_cast<const unsigned char *>(sendbuff), static_cast<unsigned char *>(recvbuff),
                 count, elem, datatype, op, c.chunks_issued + 1, chunks};
  c.chunks_issued += chunks;
  c.pending++;
  emu::stream_enqueue(stream, step);
  return ncclSuccess;
}

ncclResult_t ncclCommAbort(ncclComm_t comm) {
  if (comm) drop(comm);
  return ncclSuccess;
}

/* NCCL's destroy first completes what was enqueued; a lost peer ends the wait */
ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  if (!comm) return ncclInvalidArgument;
  CommState &c = *comm->state;
  double start = now_seconds();
  while (c.pending > 0 && c.error == ncclSuccess && peers_alive(c) && now_seconds() - start < kHangSeconds) {
    emu::streams_progress();
    usleep(100);
  }
  drop(comm);
  return ncclSuccess;
}

const char *ncclGetErrorString(ncclResult_t result) {
  switch (result) {
    case ncclSuccess: return "no error";
    case ncclUnhandledCudaError: return "unhandled cuda error (run with NCCL_DEBUG=INFO for details)";
    case ncclSystemError: return "unhandled system error (run with NCCL_DEBUG=INFO for details)";
    case ncclInternalError: return "internal error - please report this issue to the NCCL developers";
    case ncclInvalidArgument: return "invalid argument (run with NCCL_DEBUG=WARN for details)";
    case ncclInvalidUsage: return "invalid usage (run with NCCL_DEBUG=WARN for details)";
    case ncclRemoteError: return "remote process exited or there was a network error";
    case ncclInProgress: return "NCCL operation in progress";
    default: return "unknown result code";
  }
}

const char *ncclGetLastError(ncclComm_t comm) { return comm ? comm->state->last_error.c_str() : ""; }

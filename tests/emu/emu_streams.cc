/* emu_streams.cc — CUDA streams and events on the CPU (include/cuda_runtime.h). The backend itself
 * computes on the legacy default stream, which emu runs at once; a created stream (the NCCL
 * library's) holds a queue of steps that runs in order as far as it can whenever emu makes progress.
 * A step that cannot finish yet (an event not reached, an all-reduce whose peers have not arrived)
 * stays at the head of its queue, so the host code around it meets the same states as on a GPU: an
 * event that is not ready, work that completes while the host goes on with other launches. */
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <deque>
#include <memory>
#include <vector>

struct emu_stream {
  std::deque<emu::Step> queue;
  bool blocking; /* cudaStreamDefault: the legacy default stream waits for it */
};

namespace {
struct EventState {
  unsigned long long recorded = 0, completed = 0; /* records made, and the last one reached */
};
}  // namespace

struct emu_event {
  std::shared_ptr<EventState> state;
};

namespace {
std::vector<emu_stream *> g_streams;
/* the events (and the record each must reach) that the legacy default stream was made to wait for */
std::vector<std::pair<std::shared_ptr<EventState>, unsigned long long>> g_default_waits;
bool g_progressing = false;

/* past this, a wait can only be a hang (a GPU would hang too): stop the test with one line */
constexpr double kHangSeconds = 600;

double now_seconds() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

bool known(cudaStream_t s) {
  for (emu_stream *t : g_streams)
    if (t == s) return true;
  return false;
}

/* the legacy default stream may go on: its events were reached and the blocking streams are idle */
bool default_ready() {
  for (const auto &w : g_default_waits)
    if (w.first->completed < w.second) return false;
  for (emu_stream *s : g_streams)
    if (s->blocking && !s->queue.empty()) return false;
  return true;
}

/* makes progress until done() holds */
template <class F>
void wait_until(F done, const char *what) {
  double start = now_seconds();
  for (;;) {
    emu::streams_progress();
    if (done()) return;
    if (now_seconds() - start > kHangSeconds) {
      fprintf(stderr, "FAIL emu: %s waited %.0f s for stream work that never completed\n", what, kHangSeconds);
      abort();
    }
    struct timespec ts = {0, 20000};
    nanosleep(&ts, nullptr);
  }
}
}  // namespace

void emu::streams_progress() {
  if (g_progressing) return; /* a step's own launches do not recurse */
  g_progressing = true;
  bool moved = true;
  while (moved) {
    moved = false;
    for (emu_stream *s : g_streams)
      while (!s->queue.empty() && s->queue.front()()) {
        s->queue.pop_front();
        moved = true;
      }
  }
  g_progressing = false;
}

void emu::default_stream_wait() {
  emu::streams_progress();
  if (!default_ready()) wait_until(default_ready, "the legacy default stream");
  g_default_waits.clear();
}

void emu::stream_enqueue(cudaStream_t stream, Step step) {
  if (!stream) {
    default_stream_wait();
    if (!step()) wait_until([&step] { return step(); }, "a step on the legacy default stream");
    return;
  }
  stream->queue.push_back(std::move(step));
  emu::streams_progress();
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned flags) {
  if (flags & ~cudaStreamNonBlocking) return cudaErrorInvalidValue;
  *stream = new emu_stream{{}, !(flags & cudaStreamNonBlocking)};
  g_streams.push_back(*stream);
  return cudaSuccess;
}

/* A GPU finishes the stream's work after the call returns; emu finishes it first (an aborted NCCL
 * communicator's operations complete without effect, so this does not wait for a lost peer). */
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  if (!known(stream)) return cudaErrorInvalidResourceHandle;
  wait_until([stream] { return stream->queue.empty(); }, "cudaStreamDestroy");
  for (size_t i = 0; i < g_streams.size(); i++)
    if (g_streams[i] == stream) g_streams.erase(g_streams.begin() + (long)i);
  delete stream;
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() {
  emu::default_stream_wait();
  wait_until([] {
    for (emu_stream *s : g_streams)
      if (!s->queue.empty()) return false;
    return true;
  }, "cudaDeviceSynchronize");
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  if (!stream) {
    emu::default_stream_wait();
    return cudaSuccess;
  }
  if (!known(stream)) return cudaErrorInvalidResourceHandle;
  wait_until([stream] { return stream->queue.empty(); }, "cudaStreamSynchronize");
  return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned flags) {
  if (flags & ~cudaEventDisableTiming) return cudaErrorInvalidValue;
  *event = new emu_event{std::make_shared<EventState>()};
  return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  if (!event) return cudaErrorInvalidResourceHandle;
  delete event; /* steps still queued hold the state */
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  if (!event || (stream && !known(stream))) return cudaErrorInvalidResourceHandle;
  std::shared_ptr<EventState> state = event->state;
  unsigned long long record = ++state->recorded;
  emu::stream_enqueue(stream, [state, record] {
    if (state->completed < record) state->completed = record;
    return true;
  });
  return cudaSuccess;
}

cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned flags) {
  if (!event || (stream && !known(stream))) return cudaErrorInvalidResourceHandle;
  if (flags) return cudaErrorInvalidValue;
  std::shared_ptr<EventState> state = event->state;
  unsigned long long record = state->recorded; /* the record made last, as CUDA's */
  if (!stream) {
    g_default_waits.emplace_back(state, record);
    return cudaSuccess;
  }
  stream->queue.push_back([state, record] { return state->completed >= record; });
  emu::streams_progress();
  return cudaSuccess;
}

cudaError_t cudaEventQuery(cudaEvent_t event) {
  if (!event) return cudaErrorInvalidResourceHandle;
  emu::streams_progress();
  return event->state->completed >= event->state->recorded ? cudaSuccess : cudaErrorNotReady;
}

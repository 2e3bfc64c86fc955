// Tracer: one BPF object, its links and the ring buffer thread.
#pragma once
#include <bpf/libbpf.h>
#include <napi.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <cstdint>
#include <thread>
#include <vector>

#include "attach_modes.h"

namespace netwhy {

// A batch of raw records on its way to JS; nullptr marks the end of the stream.
using Batch = std::vector<uint8_t>;
class Tracer;
void DeliverBatch(Napi::Env env, Napi::Function fn, Tracer *tracer, Batch *batch);
using BatchTsfn = Napi::TypedThreadSafeFunction<Tracer, Batch, DeliverBatch>;

// Return the pages of freed heap memory to the kernel (glibc keeps them otherwise).
void ReleaseFreedMemory();
// Few malloc arenas: see tracer.cc.
void SetMallocPolicy();

std::string SetRodata(bpf_object *obj, const std::string &name, uint64_t value);

class Tracer : public Napi::ObjectWrap<Tracer> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit Tracer(const Napi::CallbackInfo &info);
  ~Tracer() override;
  // The end of load(): on failure the tracer is closed.
  void Loaded(int err);
  // A delivered batch's vector, emptied for the reader to fill again.
  void Recycle(Batch *batch);

 private:
  Napi::Value Load(const Napi::CallbackInfo &info);
  Napi::Value Probes(const Napi::CallbackInfo &info);
  Napi::Value UpdateMap(const Napi::CallbackInfo &info);
  Napi::Value DeleteMapKey(const Napi::CallbackInfo &info);
  Napi::Value ReadPercpu(const Napi::CallbackInfo &info);
  Napi::Value Attach(const Napi::CallbackInfo &info);
  Napi::Value Start(const Napi::CallbackInfo &info);
  Napi::Value Stop(const Napi::CallbackInfo &info);
  Napi::Value Ack(const Napi::CallbackInfo &info);
  Napi::Value Close(const Napi::CallbackInfo &info);
  Napi::Value Ref(const Napi::CallbackInfo &info);
  Napi::Value Unref(const Napi::CallbackInfo &info);
  Napi::Value Stats(const Napi::CallbackInfo &info);

  bpf_map *FindMap(Napi::Env env, const Napi::Value &name);
  void RequireLoaded(Napi::Env env) const;
  static int OnRecord(void *ctx, void *data, size_t size);
  void PollLoop();
  void Flush();
  void Shutdown();  // hard stop: abort delivery, join, free everything
  static void CleanupHook(void *self);

  bpf_object *obj_ = nullptr;
  // Close() while loading waits for the end of the load (Shutdown() runs then).
  enum class State { kOpen, kLoading, kLoaded } state_ = State::kOpen;
  bool close_after_load_ = false;
  std::vector<Probe> probes_;
  std::vector<bpf_link *> links_;
  ring_buffer *rb_ = nullptr;
  int epfd_ = -1;  // edge-triggered wait on the ring buffer (PollLoop)
  BatchTsfn tsfn_;
  bool tsfn_live_ = false;
  bool cleanup_hook_ = false;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  // Flow control: batches in flight to JS. JS returns the credit (ack())
  // once it has handled a batch and let the event loop turn.
  std::mutex credit_mu_;
  std::condition_variable credit_cv_;
  int credits_ = 1;
  std::atomic<bool> abort_{false};
  bool WaitForCredit();
  void DetachAll();
  Batch *pending_ = nullptr;
  Batch *spare_ = nullptr;  // under credit_mu_: with one batch in flight, two vectors serve
  // ~800 drop records: with wake-ups batched (PollLoop), 64 KiB batches cost a
  // thread hand-off per ~110 records; 1 MiB ones (~10k records) lived to V8's
  // old generation under a storm and held ~30 MiB more RSS.
  size_t flush_bytes_ = 256 << 10;
  int poll_ms_ = 100;
  std::atomic<uint64_t> records_{0};
  std::atomic<uint64_t> batches_{0};
  std::atomic<uint64_t> bytes_{0};
  Napi::Env env_;
};

}  // namespace netwhy

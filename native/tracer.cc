#include "tracer.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <linux/types.h>

#include <malloc.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "errors.h"
#include "netwhy.h"

namespace netwhy {

void DeliverBatch(Napi::Env env, Napi::Function fn, Tracer *tracer, Batch *batch) {
  if (env == nullptr) {  // delivery aborted by close(): just free
    delete batch;
    return;
  }
  if (batch == nullptr) {
    fn.Call({env.Null()});
    return;
  }
  // A copy into memory V8 allocates and accounts for (its GC sees the
  // pressure), and the vector handed back to the reader at once: handed over
  // zero-copy, batches waited for a GC to free them, and under a storm tens of
  // MB of them piled up in the reader thread's malloc arena. A 256 KiB memcpy
  // per batch is ~0.1 ns per byte, nothing beside decoding it.
  auto buf = Napi::Buffer<uint8_t>::Copy(env, batch->data(), batch->size());
  tracer->Recycle(batch);
  fn.Call({buf});
}

Napi::Function Tracer::Init(Napi::Env env) {
  return DefineClass(env, "Tracer",
                     {
                         InstanceMethod("load", &Tracer::Load),
                         InstanceMethod("probes", &Tracer::Probes),
                         InstanceMethod("updateMap", &Tracer::UpdateMap),
                         InstanceMethod("deleteMapKey", &Tracer::DeleteMapKey),
                         InstanceMethod("readPercpu", &Tracer::ReadPercpu),
                         InstanceMethod("attach", &Tracer::Attach),
                         InstanceMethod("start", &Tracer::Start),
                         InstanceMethod("stop", &Tracer::Stop),
                         InstanceMethod("ack", &Tracer::Ack),
                         InstanceMethod("close", &Tracer::Close),
                         InstanceMethod("ref", &Tracer::Ref),
                         InstanceMethod("unref", &Tracer::Unref),
                         InstanceMethod("stats", &Tracer::Stats),
                     });
}

// new Tracer({ object, ringBytes, flushBytes?, disable?, avoidModes?, rodata?, pollMs? }): open, set,
// choose attach modes; load() then loads.
Tracer::Tracer(const Napi::CallbackInfo &info) : Napi::ObjectWrap<Tracer>(info), env_(info.Env()) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw Napi::TypeError::New(env, "Tracer: options object expected");
  Napi::Object opts = info[0].As<Napi::Object>();
  std::string path = opts.Get("object").As<Napi::String>();
  uint32_t ring_bytes = opts.Get("ringBytes").As<Napi::Number>().Uint32Value();
  if (opts.Has("flushBytes")) flush_bytes_ = opts.Get("flushBytes").As<Napi::Number>().Uint32Value();
  if (opts.Has("pollMs")) poll_ms_ = opts.Get("pollMs").As<Napi::Number>().Int32Value();

  CaptureLibbpfLog();
  obj_ = bpf_object__open_file(path.c_str(), nullptr);
  if (!obj_) throw ErrnoError(env, "cannot open BPF object " + path, errno);

  bpf_map *events = bpf_object__find_map_by_name(obj_, "events");
  if (!events) {
    Shutdown();
    throw Napi::Error::New(env, "BPF object has no 'events' ring buffer");
  }
  if (int err = bpf_map__set_max_entries(events, ring_bytes)) {
    Shutdown();
    throw ErrnoError(env, "ring buffer size " + std::to_string(ring_bytes), err);
  }

  if (opts.Has("rodata")) {
    Napi::Object ro = opts.Get("rodata").As<Napi::Object>();
    Napi::Array names = ro.GetPropertyNames();
    for (uint32_t i = 0; i < names.Length(); i++) {
      std::string name = names.Get(i).As<Napi::String>();
      Napi::Value v = ro.Get(name);
      uint64_t value = v.IsBoolean() ? v.As<Napi::Boolean>().Value() : static_cast<uint64_t>(v.As<Napi::Number>().Int64Value());
      if (std::string err = SetRodata(obj_, name, value); !err.empty()) {
        Shutdown();
        throw Napi::Error::New(env, err);
      }
    }
  }

  std::vector<std::string> avoid;
  if (opts.Has("avoidModes")) {
    Napi::Array modes = opts.Get("avoidModes").As<Napi::Array>();
    for (uint32_t i = 0; i < modes.Length(); i++) avoid.push_back(modes.Get(i).As<Napi::String>());
  }
  std::vector<std::string> disabled;
  if (opts.Has("disable")) {
    Napi::Array off = opts.Get("disable").As<Napi::Array>();
    for (uint32_t i = 0; i < off.Length(); i++) disabled.push_back(off.Get(i).As<Napi::String>());
  }
  probes_ = ChooseAttachModes(obj_, avoid, disabled);
  for (auto &p : probes_)
    for (size_t i = 0; i < p.variants.size(); i++) {
      bool load = static_cast<int>(i) == p.chosen;
      bpf_program__set_autoload(p.variants[i].prog, load);
      if (p.variants[i].entry) bpf_program__set_autoload(p.variants[i].entry, load);
    }
}

// Loading (the verifier, CO-RE against the kernel's BTF) takes ~0.1 s: it runs
// on a thread of libuv's pool, so the caller reads kernel symbols meanwhile.
class LoadWorker : public Napi::AsyncWorker {
 public:
  LoadWorker(Napi::Object tracer, Napi::Function done, bpf_object *obj)
      : Napi::AsyncWorker(tracer, done, "netwhy-load"), obj_(obj) {}
  void Execute() override { err_ = bpf_object__load(obj_); }
  void OnOK() override {
    Napi::Env env = Env();
    Tracer *t = Tracer::Unwrap(Receiver().Value());
    t->Loaded(err_);
    Callback().Call({err_ ? ErrnoError(env, "loading BPF programs failed", err_).Value() : env.Null()});
  }

 private:
  bpf_object *obj_;
  int err_ = 0;
};

// load(done): done(null) once loaded, done(Error) if the kernel refused (the tracer is closed then).
Napi::Value Tracer::Load(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (!obj_) throw Napi::Error::New(env, "tracer is closed");
  if (state_ != State::kOpen) throw Napi::Error::New(env, "tracer already loaded");
  state_ = State::kLoading;
  (new LoadWorker(info.This().As<Napi::Object>(), info[0].As<Napi::Function>(), obj_))->Queue();
  return env.Undefined();
}

void Tracer::Loaded(int err) {
  if (err || close_after_load_) {
    Shutdown();
    return;
  }
  state_ = State::kLoaded;
  napi_add_env_cleanup_hook(env_, CleanupHook, this);
  cleanup_hook_ = true;
  // Loading parsed the kernel's BTF (tens of MB, freed by now): give the
  // freed pages back, or they stay in the process's RSS for its lifetime.
  ReleaseFreedMemory();
}

// Set a `const volatile` global of the object's .rodata before load, by name
// (its offset and size from the BTF datasec). "" or what went wrong.
std::string SetRodata(bpf_object *obj, const std::string &name, uint64_t value) {
  const btf *b = bpf_object__btf(obj);
  bpf_map *map = nullptr;
  for (bpf_map *m = bpf_object__next_map(obj, nullptr); m; m = bpf_object__next_map(obj, m)) {
    std::string n = bpf_map__name(m);
    if (bpf_map__is_internal(m) && n.size() >= 7 && n.compare(n.size() - 7, 7, ".rodata") == 0) map = m;
  }
  int sec = b ? btf__find_by_name_kind(b, ".rodata", BTF_KIND_DATASEC) : -1;
  if (!map || sec < 0) return "BPF object has no .rodata (ABI drift?)";
  const btf_type *t = btf__type_by_id(b, sec);
  const btf_var_secinfo *vs = btf_var_secinfos(t);
  for (uint16_t i = 0; i < btf_vlen(t); i++, vs++) {
    const char *vn = btf__name_by_offset(b, btf__type_by_id(b, vs->type)->name_off);
    if (name != vn) continue;
    size_t size = 0;
    auto *cur = static_cast<const uint8_t *>(bpf_map__initial_value(map, &size));
    if (!cur || vs->offset + vs->size > size) return "cannot set " + name + " in .rodata";
    std::vector<uint8_t> data(cur, cur + size);
    uint8_t *at = data.data() + vs->offset;
    switch (vs->size) {  // in the host's byte order, as the program reads it
      case 1: *at = static_cast<uint8_t>(value); break;
      case 2: { uint16_t v = static_cast<uint16_t>(value); std::memcpy(at, &v, 2); break; }
      case 4: { uint32_t v = static_cast<uint32_t>(value); std::memcpy(at, &v, 4); break; }
      case 8: std::memcpy(at, &value, 8); break;
      default: return name + " in .rodata is not an integer";
    }
    if (int err = bpf_map__set_initial_value(map, data.data(), size)) return "setting " + name + " in .rodata: " + DescribeErrno(err);
    return "";
  }
  return "BPF object has no read-only setting named " + name + " (ABI drift?)";
}

void ReleaseFreedMemory() { malloc_trim(0); }

// Threads (libuv's pool, V8's, the ring reader) share two malloc arenas
// instead of one each, whose freed pages would stay resident apiece. (A fixed
// mmap threshold, tried too, cost ~20 % more CPU per event in the bench's
// pipeline section for no RSS the memory section could tell apart.)
void SetMallocPolicy() { mallopt(M_ARENA_MAX, 2); }

Tracer::~Tracer() {
  Shutdown();
  if (cleanup_hook_) napi_remove_env_cleanup_hook(env_, CleanupHook, this);
}

void Tracer::CleanupHook(void *self) {
  auto *t = static_cast<Tracer *>(self);
  t->cleanup_hook_ = false;  // the environment runs (and forgets) it now
  t->Shutdown();
}

// [{ probe, chosen, variants: [{ program, mode, target, usable, reason, attached }] }]
Napi::Value Tracer::Probes(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Array out = Napi::Array::New(env, probes_.size());
  for (size_t i = 0; i < probes_.size(); i++) {
    const Probe &p = probes_[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("probe", p.name);
    o.Set("chosen", p.chosen);
    Napi::Array vs = Napi::Array::New(env, p.variants.size());
    for (size_t j = 0; j < p.variants.size(); j++) {
      const Variant &v = p.variants[j];
      Napi::Object vo = Napi::Object::New(env);
      vo.Set("program", v.program);
      vo.Set("mode", v.mode);
      vo.Set("target", v.target);
      vo.Set("usable", v.usable);
      vo.Set("reason", v.reason);
      vs.Set(j, vo);
    }
    o.Set("variants", vs);
    out.Set(i, o);
  }
  return out;
}

bpf_map *Tracer::FindMap(Napi::Env env, const Napi::Value &name) {
  RequireLoaded(env);
  std::string n = name.As<Napi::String>();
  bpf_map *m = bpf_object__find_map_by_name(obj_, n.c_str());
  if (!m) throw Napi::Error::New(env, "no BPF map named " + n);
  return m;
}

Napi::Value Tracer::UpdateMap(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  bpf_map *m = FindMap(env, info[0]);
  auto key = info[1].As<Napi::Buffer<uint8_t>>();
  auto val = info[2].As<Napi::Buffer<uint8_t>>();
  if (key.Length() != bpf_map__key_size(m) || val.Length() != bpf_map__value_size(m))
    throw Napi::Error::New(env, std::string("map ") + bpf_map__name(m) + ": key/value size mismatch (ABI drift?)");
  if (bpf_map_update_elem(bpf_map__fd(m), key.Data(), val.Data(), BPF_ANY))
    throw ErrnoError(env, std::string("updating map ") + bpf_map__name(m), errno);
  return env.Undefined();
}

Napi::Value Tracer::DeleteMapKey(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  bpf_map *m = FindMap(env, info[0]);
  auto key = info[1].As<Napi::Buffer<uint8_t>>();
  if (key.Length() != bpf_map__key_size(m)) throw Napi::Error::New(env, "key size mismatch");
  bool gone = bpf_map_delete_elem(bpf_map__fd(m), key.Data()) == 0;
  return Napi::Boolean::New(env, gone);
}

// One Buffer per possible CPU with that CPU's value.
Napi::Value Tracer::ReadPercpu(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  bpf_map *m = FindMap(env, info[0]);
  auto key = info[1].As<Napi::Buffer<uint8_t>>();
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu < 0) throw ErrnoError(env, "counting CPUs", ncpu);
  size_t vsize = (bpf_map__value_size(m) + 7) & ~size_t(7);
  std::vector<uint8_t> all(vsize * ncpu);
  if (bpf_map_lookup_elem(bpf_map__fd(m), key.Data(), all.data()))
    throw ErrnoError(env, std::string("reading map ") + bpf_map__name(m), errno);
  Napi::Array out = Napi::Array::New(env, ncpu);
  for (int c = 0; c < ncpu; c++)
    out.Set(c, Napi::Buffer<uint8_t>::Copy(env, all.data() + c * vsize, bpf_map__value_size(m)));
  return out;
}

// Attach every chosen program; returns [{ program, error? }] for the ones that failed.
Napi::Value Tracer::Attach(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  RequireLoaded(env);
  Napi::Array failed = Napi::Array::New(env);
  for (auto &p : probes_) {
    if (p.chosen < 0) continue;
    Variant &v = p.variants[p.chosen];
    // The companion first, so the return probe never misses its arguments.
    bpf_link *entry = v.entry ? bpf_program__attach(v.entry) : nullptr;
    bpf_link *link = v.entry && !entry ? nullptr : bpf_program__attach(v.prog);
    if (!link) {
      int err = errno;
      if (entry) bpf_link__destroy(entry);
      Napi::Object f = Napi::Object::New(env);
      f.Set("program", v.program);
      f.Set("error", DescribeErrno(err));
      failed.Set(failed.Length(), f);
      v.usable = false;
      v.reason = "attach failed: " + DescribeErrno(err);
      p.chosen = -1;
      continue;
    }
    if (entry) links_.push_back(entry);
    links_.push_back(link);
  }
  return failed;
}

void Tracer::Recycle(Batch *batch) {
  batch->clear();
  std::lock_guard<std::mutex> lock(credit_mu_);
  if (spare_) delete batch;
  else spare_ = batch;
}

int Tracer::OnRecord(void *ctx, void *data, size_t size) {
  auto *self = static_cast<Tracer *>(ctx);
  if (!self->pending_) {
    {
      std::lock_guard<std::mutex> lock(self->credit_mu_);
      std::swap(self->pending_, self->spare_);
    }
    if (!self->pending_) {
      self->pending_ = new Batch();
      self->pending_->reserve(self->flush_bytes_ + 4096);
    }
  }
  const uint8_t *p = static_cast<const uint8_t *>(data);
  self->pending_->insert(self->pending_->end(), p, p + size);
  self->records_.fetch_add(1, std::memory_order_relaxed);
  if (self->pending_->size() >= self->flush_bytes_) self->Flush();
  return 0;
}

// Wait until JS has handled the previous batch. While it has not, the ring
// buffer fills and the BPF side counts what it cannot reserve: back-pressure
// becomes counted loss, never a stalled event loop. False when closing.
bool Tracer::WaitForCredit() {
  std::unique_lock<std::mutex> lock(credit_mu_);
  while (credits_ == 0) {
    if (abort_.load()) return false;
    credit_cv_.wait_for(lock, std::chrono::milliseconds(100));
  }
  credits_--;
  return true;
}

void Tracer::Flush() {
  if (!pending_ || pending_->empty()) return;
  if (!WaitForCredit()) return;  // closing: the batch is dropped with the tracer
  Batch *b = pending_;
  pending_ = nullptr;
  bytes_.fetch_add(b->size(), std::memory_order_relaxed);
  batches_.fetch_add(1, std::memory_order_relaxed);
  if (tsfn_.BlockingCall(b) != napi_ok) delete b;
}

// ack(): JS has handled a batch (called from setImmediate, after the event loop turned).
Napi::Value Tracer::Ack(const Napi::CallbackInfo &info) {
  {
    std::lock_guard<std::mutex> lock(credit_mu_);
    credits_++;
  }
  credit_cv_.notify_one();
  return info.Env().Undefined();
}

// Records below the BPF side's wake-up threshold (nw_wakeup_bytes) come
// without a wake-up. The thread waits on its own edge-triggered epoll: it
// wakes on the threshold's forced wake-up or after poll_ms, then drains the
// ring in flush_bytes batches. (libbpf's ring_buffer__poll is level-triggered:
// under load it returns at once, every time, and batches stay small.)
void Tracer::PollLoop() {
  epoll_event ev;
  while (!stop_.load()) {
    int n = epoll_wait(epfd_, &ev, 1, poll_ms_);
    if (n < 0 && errno != EINTR) break;
    if (ring_buffer__consume(rb_) < 0) break;
    Flush();
  }
  if (ring_buffer__consume(rb_) > 0) Flush();  // what was left when stop() came
  tsfn_.BlockingCall(static_cast<Batch *>(nullptr));  // end of stream
  // No Release() here: Shutdown() releases the function exactly once.
}

// start(onBatch): onBatch(Buffer) per batch, onBatch(null) once after stop().
void Tracer::RequireLoaded(Napi::Env env) const {
  if (!obj_) throw Napi::Error::New(env, "tracer is closed");
  if (state_ != State::kLoaded) throw Napi::Error::New(env, "tracer is not loaded yet (load() first)");
}

Napi::Value Tracer::Start(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  RequireLoaded(env);
  if (tsfn_live_) throw Napi::Error::New(env, "tracer already started");
  bpf_map *events = bpf_object__find_map_by_name(obj_, "events");
  rb_ = ring_buffer__new(bpf_map__fd(events), OnRecord, this, nullptr);
  if (!rb_) throw ErrnoError(env, "creating ring buffer reader", errno);
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLET;
  if (epfd_ < 0 || epoll_ctl(epfd_, EPOLL_CTL_ADD, bpf_map__fd(events), &ev) < 0) throw ErrnoError(env, "watching the ring buffer", errno);
  tsfn_ = BatchTsfn::New(env, info[0].As<Napi::Function>(), "netwhy-ringbuf", 8, 1, this);
  tsfn_live_ = true;
  thread_ = std::thread([this] { PollLoop(); });
  return env.Undefined();
}

// In reverse: a kretprobe goes before the companion kprobe that feeds it, so
// no return ever runs without its entry.
void Tracer::DetachAll() {
  for (auto it = links_.rbegin(); it != links_.rend(); ++it) bpf_link__destroy(*it);
  links_.clear();
}

// Graceful: detach first, so nothing new arrives and the drain is bounded
// by what the ring buffer holds; the thread delivers it, then sends null.
Napi::Value Tracer::Stop(const Napi::CallbackInfo &info) {
  DetachAll();
  stop_.store(true);
  return info.Env().Undefined();
}

Napi::Value Tracer::Close(const Napi::CallbackInfo &info) {
  if (state_ == State::kLoading) {
    close_after_load_ = true;  // the pool thread still uses the object
    return info.Env().Undefined();
  }
  Shutdown();
  return info.Env().Undefined();
}

void Tracer::Shutdown() {
  stop_.store(true);
  abort_.store(true);
  credit_cv_.notify_all();
  if (tsfn_live_) {
    // The one release of the function; a BlockingCall still waiting for JS
    // returns napi_closing, so the thread can finish.
    tsfn_.Abort();
    if (thread_.joinable()) thread_.join();
    tsfn_live_ = false;
  }
  delete pending_;
  pending_ = nullptr;
  delete spare_;
  spare_ = nullptr;
  if (rb_) ring_buffer__free(rb_);
  rb_ = nullptr;
  if (epfd_ >= 0) close(epfd_);
  epfd_ = -1;
  DetachAll();
  if (obj_) bpf_object__close(obj_);
  obj_ = nullptr;
}

Napi::Value Tracer::Ref(const Napi::CallbackInfo &info) {
  if (tsfn_live_) tsfn_.Ref(info.Env());
  return info.Env().Undefined();
}

Napi::Value Tracer::Unref(const Napi::CallbackInfo &info) {
  if (tsfn_live_) tsfn_.Unref(info.Env());
  return info.Env().Undefined();
}

Napi::Value Tracer::Stats(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("records", Napi::Number::New(env, static_cast<double>(records_.load())));
  o.Set("batches", Napi::Number::New(env, static_cast<double>(batches_.load())));
  o.Set("bytes", Napi::Number::New(env, static_cast<double>(bytes_.load())));
  o.Set("links", Napi::Number::New(env, static_cast<double>(links_.size())));
  return o;
}

}  // namespace netwhy

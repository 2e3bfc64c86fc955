// netwhy native addon: the Tracer class, the kernel's features, and a memory release.
#include <napi.h>

#include "netwhy.h"
#include "attach_modes.h"
#include "tracer.h"

namespace {

// kernelFeatures(): [{ name, available, reason }]
Napi::Value KernelFeatures(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto features = netwhy::KernelFeatures();
  Napi::Array out = Napi::Array::New(env, features.size());
  for (size_t i = 0; i < features.size(); i++) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", features[i].name);
    o.Set("available", features[i].available);
    o.Set("reason", features[i].reason);
    out.Set(i, o);
  }
  return out;
}

// releaseMemory(): after start-up's big temporary buffers (kallsyms, BTF) are freed.
Napi::Value ReleaseMemory(const Napi::CallbackInfo &info) {
  netwhy::ReleaseFreedMemory();
  return info.Env().Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  netwhy::SetMallocPolicy();
  exports.Set("Tracer", netwhy::Tracer::Init(env));
  exports.Set("kernelFeatures", Napi::Function::New(env, KernelFeatures));
  exports.Set("releaseMemory", Napi::Function::New(env, ReleaseMemory));
  exports.Set("abiVersion", Napi::Number::New(env, NW_ABI_VERSION));
  return exports;
}

}  // namespace

NODE_API_MODULE(netwhy, Init)

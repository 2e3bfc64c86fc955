// netwhy native addon: registers the Tracer class, nothing else.
#include <napi.h>

#include "netwhy.h"
#include "tracer.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Tracer", netwhy::Tracer::Init(env));
  exports.Set("abiVersion", Napi::Number::New(env, NW_ABI_VERSION));
  return exports;
}

}  // namespace

NODE_API_MODULE(netwhy, Init)

#include "errors.h"

#include <bpf/libbpf.h>
#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <mutex>

namespace netwhy {
namespace {

std::mutex log_mu;
std::string log_buf;
constexpr size_t kLogMax = 16 * 1024;

int LibbpfPrint(enum libbpf_print_level level, const char *fmt, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  char line[1024];
  int n = vsnprintf(line, sizeof(line), fmt, args);
  std::lock_guard<std::mutex> lock(log_mu);
  log_buf.append(line, n < 0 ? 0 : std::min<size_t>(n, sizeof(line) - 1));
  if (log_buf.size() > kLogMax) log_buf.erase(0, log_buf.size() - kLogMax);
  return 0;
}

const char *ErrnoName(int err) {
  switch (err) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EINVAL: return "EINVAL";
    case EACCES: return "EACCES";
    case EBUSY: return "EBUSY";
    case E2BIG: return "E2BIG";
    case ENOMEM: return "ENOMEM";
    case EEXIST: return "EEXIST";
    case ENOSPC: return "ENOSPC";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case 524: return "ENOTSUPP";  // kernel-internal, seen at fentry attach
    case ENOSYS: return "ENOSYS";
    case EBADF: return "EBADF";
    default: return "EUNKNOWN";
  }
}

}  // namespace

void CaptureLibbpfLog() {
  libbpf_set_print(LibbpfPrint);
  std::lock_guard<std::mutex> lock(log_mu);
  log_buf.clear();
}

std::string TakeLibbpfLog() {
  std::lock_guard<std::mutex> lock(log_mu);
  std::string out;
  out.swap(log_buf);
  return out;
}

std::string DescribeErrno(int err) {
  if (err < 0) err = -err;
  std::string msg = err == 524 ? "Operation not supported by this kernel" : strerror(err);
  return msg + " (" + ErrnoName(err) + ")";
}

Napi::Error ErrnoError(Napi::Env env, const std::string &what, int err) {
  if (err < 0) err = -err;
  Napi::Error e = Napi::Error::New(env, what + ": " + DescribeErrno(err));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("code", Napi::String::New(env, ErrnoName(err)));
  std::string log = TakeLibbpfLog();
  if (!log.empty()) e.Set("libbpfLog", Napi::String::New(env, log));
  return e;
}

}  // namespace netwhy

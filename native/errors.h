// Errors from libbpf and the kernel become JS errors carrying errno.
#pragma once
#include <napi.h>
#include <string>

namespace netwhy {

// Start keeping libbpf's warnings so the next error can quote them.
void CaptureLibbpfLog();
// What libbpf said since CaptureLibbpfLog(), last lines first trimmed to fit.
std::string TakeLibbpfLog();

// A JS Error with .errno (positive) and .code ("EPERM", ...).
Napi::Error ErrnoError(Napi::Env env, const std::string &what, int err);

// "Operation not permitted (EPERM)"
std::string DescribeErrno(int err);

}  // namespace netwhy

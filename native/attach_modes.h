// Kernel differences on the native side, all in one place: which attach
// mechanism each probe can use on the running kernel.
#pragma once
#include <bpf/libbpf.h>
#include <string>
#include <vector>

namespace netwhy {

struct Variant {
  bpf_program *prog = nullptr;
  std::string program;  // C function name, e.g. "kfree_skb__tp_btf"
  std::string mode;     // "fentry", "kprobe", "tp_btf", "raw_tp", ...
  std::string target;   // function or tracepoint name
  bool usable = false;
  std::string reason;   // why not usable
  // A kretprobe sees the return value only: its companion kprobe (program
  // "<program>_entry") keeps the arguments, and is loaded and attached with it.
  bpf_program *entry = nullptr;
};

struct Probe {
  std::string name;               // program name before "__"
  std::vector<Variant> variants;  // best mode first
  int chosen = -1;                // index into variants, -1 = none usable
};

// Groups the programs of an opened (not yet loaded) object into probes and
// checks each variant against this kernel, preferring
// fentry/fexit → kprobe/kretprobe → tp_btf → raw_tp → tracepoint.
// Modes in `avoid` are passed over (to work around a kernel's broken
// mechanism, and to test the fallbacks on a kernel that has the better one).
// Probes named in `disabled` get no variant (reason "not requested") and no checks.
std::vector<Probe> ChooseAttachModes(bpf_object *obj, const std::vector<std::string> &avoid,
                                     const std::vector<std::string> &disabled);

struct Feature {
  std::string name;    // "btf", "fentry", "kprobe", "tp_btf", "raw_tp"
  bool available;
  std::string reason;  // why not
};

// Each attach mechanism, tried on a function and tracepoint every kernel has.
std::vector<Feature> KernelFeatures();

}  // namespace netwhy

#include "attach_modes.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <string>
#include <unordered_set>

#include "errors.h"

namespace netwhy {
namespace {

struct ModeInfo {
  const char *prefix;
  const char *mode;
  int rank;
};

constexpr ModeInfo kModes[] = {
    {"fentry/", "fentry", 0},    {"fexit/", "fexit", 0},     {"kprobe/", "kprobe", 1},
    {"kretprobe/", "kretprobe", 1}, {"tp_btf/", "tp_btf", 2}, {"raw_tp/", "raw_tp", 3},
    {"raw_tracepoint/", "raw_tp", 3}, {"tracepoint/", "tracepoint", 4}, {"tp/", "tracepoint", 4},
};

int RankOf(const std::string &mode) {
  for (const auto &m : kModes)
    if (mode == m.mode) return m.rank;
  return 9;
}

// The running kernel's BTF, loaded once for all checks.
struct KernelBtf {
  btf *vmlinux = nullptr;
  int err = 0;
  KernelBtf() {
    vmlinux = btf__load_vmlinux_btf();
    err = vmlinux ? 0 : -errno;
  }
  ~KernelBtf() { btf__free(vmlinux); }
  bool HasType(const std::string &name, int kind) const {
    return vmlinux && btf__find_by_name_kind(vmlinux, name.c_str(), kind) >= 0;
  }
};

bool Exists(const std::string &path) { return access(path.c_str(), F_OK) == 0; }

bool TracepointExists(const std::string &cat_name) {
  for (const char *root : {"/sys/kernel/tracing/events/", "/sys/kernel/debug/tracing/events/"})
    if (Exists(root + cat_name)) return true;
  return false;
}

// A function's BTF id and the fd of the BTF object (vmlinux or a module) that holds it.
struct FuncBtf {
  int id = -1;
  int obj_fd = 0;  // 0 = vmlinux
  ~FuncBtf() {
    if (obj_fd > 0) close(obj_fd);
  }
};

void FindFuncBtf(const KernelBtf &kb, const std::string &func, FuncBtf *out) {
  if (!kb.vmlinux) return;
  int id = btf__find_by_name_kind(kb.vmlinux, func.c_str(), BTF_KIND_FUNC);
  if (id >= 0) {
    out->id = id;
    return;
  }
  // Loaded modules (ip_vs, nf_conntrack, ...) carry split BTF of their own.
  __u32 obj_id = 0;
  while (bpf_btf_get_next_id(obj_id, &obj_id) == 0) {
    int fd = bpf_btf_get_fd_by_id(obj_id);
    if (fd < 0) continue;
    char name[64] = {};
    bpf_btf_info info = {};
    info.name = reinterpret_cast<__u64>(name);
    info.name_len = sizeof(name);
    __u32 len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) || !info.kernel_btf ||
        std::string(name) == "vmlinux") {
      close(fd);
      continue;
    }
    btf *mod = btf__load_from_kernel_by_id_split(obj_id, kb.vmlinux);
    int fid = mod ? btf__find_by_name_kind(mod, func.c_str(), BTF_KIND_FUNC) : -1;
    btf__free(mod);
    if (fid >= 0) {
      out->id = fid;
      out->obj_fd = fd;
      return;
    }
    close(fd);
  }
}

// Load and attach a two-instruction fentry/fexit program: the only honest
// test (a kernel may refuse the load, or the trampoline for > 6 arguments).
std::string CheckFentry(const KernelBtf &kb, const std::string &func, bool exit) {
  if (!kb.vmlinux) return "no kernel BTF: " + DescribeErrno(kb.err);
  FuncBtf fb;
  FindFuncBtf(kb, func, &fb);
  if (fb.id < 0) return "function " + func + " not in kernel or module BTF (module not loaded?)";
  const bpf_insn insns[] = {
      {BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 0},
      {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
  };
  LIBBPF_OPTS(bpf_prog_load_opts, opts);
  opts.expected_attach_type = exit ? BPF_TRACE_FEXIT : BPF_TRACE_FENTRY;
  opts.attach_btf_obj_fd = static_cast<__u32>(fb.obj_fd);
  opts.attach_btf_id = static_cast<__u32>(fb.id);
  int prog = bpf_prog_load(BPF_PROG_TYPE_TRACING, "nw_probe", "GPL", insns, 2, &opts);
  if (prog < 0) return std::string(exit ? "fexit" : "fentry") + " program load failed: " + DescribeErrno(errno);
  int link = bpf_raw_tracepoint_open(nullptr, prog);
  int err = link < 0 ? errno : 0;
  if (link >= 0) close(link);
  close(prog);
  if (err) return "attach to " + func + " failed: " + DescribeErrno(err);
  return "";
}

class Kallsyms {
 public:
  bool Has(const std::string &func) {
    if (!loaded_) Load();
    return syms_.count(func) > 0;
  }

 private:
  void Load() {
    loaded_ = true;
    std::ifstream in("/proc/kallsyms");
    std::string addr, type, name;
    while (in >> addr >> type) {
      std::getline(in, name);
      size_t b = name.find_first_not_of(" \t");
      size_t e = name.find_first_of(" \t", b);
      if (b == std::string::npos) continue;
      if (type == "t" || type == "T") syms_.insert(name.substr(b, e == std::string::npos ? e : e - b));
    }
  }
  bool loaded_ = false;
  std::unordered_set<std::string> syms_;
};

std::string CheckKprobe(Kallsyms &ks, const std::string &func) {
  if (!Exists("/sys/bus/event_source/devices/kprobe/type"))
    return "kprobes are not available on this kernel (no kprobe PMU)";
  if (!ks.Has(func)) return "function " + func + " not in /proc/kallsyms (module not loaded?)";
  return "";
}

std::string CheckVariant(const KernelBtf &kb, Kallsyms &ks, const Variant &v) {
  if (v.mode == "fentry" || v.mode == "fexit") return CheckFentry(kb, v.target, v.mode == "fexit");
  if (v.mode == "kprobe" || v.mode == "kretprobe") return CheckKprobe(ks, v.target);
  if (v.mode == "tp_btf") {
    if (!kb.vmlinux) return "no kernel BTF: " + DescribeErrno(kb.err);
    if (!kb.HasType("btf_trace_" + v.target, BTF_KIND_TYPEDEF))
      return "tracepoint " + v.target + " not in kernel BTF";
    return "";
  }
  if (v.mode == "raw_tp") {
    if (kb.HasType("btf_trace_" + v.target, BTF_KIND_TYPEDEF)) return "";
    return "raw tracepoint " + v.target + " not found";
  }
  if (v.mode == "tracepoint")
    return TracepointExists(v.target) ? "" : "tracepoint " + v.target + " not found in tracefs";
  return "unknown attach mode";
}

}  // namespace

std::vector<Probe> ChooseAttachModes(bpf_object *obj, const std::vector<std::string> &avoid,
                                     const std::vector<std::string> &disabled) {
  static const std::string kEntry = "_entry";
  KernelBtf kb;
  Kallsyms ks;
  std::vector<Probe> probes;
  std::vector<bpf_program *> entries;
  bpf_program *prog;
  bpf_object__for_each_program(prog, obj) {
    Variant v;
    v.prog = prog;
    v.program = bpf_program__name(prog);
    if (v.program.size() > kEntry.size() && v.program.compare(v.program.size() - kEntry.size(), kEntry.size(), kEntry) == 0) {
      entries.push_back(prog);  // a companion, not a variant of its own
      continue;
    }
    std::string sec = bpf_program__section_name(prog);
    for (const auto &m : kModes) {
      if (sec.rfind(m.prefix, 0) == 0) {
        v.mode = m.mode;
        v.target = sec.substr(strlen(m.prefix));
        break;
      }
    }
    size_t sep = v.program.find("__");
    std::string probe = sep == std::string::npos ? v.program : v.program.substr(0, sep);
    auto it = std::find_if(probes.begin(), probes.end(), [&](const Probe &p) { return p.name == probe; });
    if (it == probes.end()) {
      probes.push_back(Probe{probe, {}, -1});
      it = probes.end() - 1;
    }
    it->variants.push_back(std::move(v));
  }
  for (auto &p : probes) {
    for (auto &v : p.variants)
      for (bpf_program *e : entries)
        if (bpf_program__name(e) == v.program + kEntry) v.entry = e;
    std::stable_sort(p.variants.begin(), p.variants.end(),
                     [](const Variant &a, const Variant &b) { return RankOf(a.mode) < RankOf(b.mode); });
    // A probe the command does not want is not checked at all: the checks
    // load test programs and read module BTF, start-up time for nothing.
    if (std::find(disabled.begin(), disabled.end(), p.name) != disabled.end()) {
      for (auto &v : p.variants) v.reason = "not requested";
      continue;
    }
    for (size_t i = 0; i < p.variants.size(); i++) {
      Variant &v = p.variants[i];
      auto avoids = [&](const std::string &m) { return std::find(avoid.begin(), avoid.end(), m) != avoid.end(); };
      if (avoids(v.mode))
        v.reason = v.mode + " avoided on request (NETWHY_AVOID_MODES)";
      else if (v.entry && avoids("kprobe"))
        v.reason = v.mode + " needs a companion kprobe, avoided on request (NETWHY_AVOID_MODES)";
      else
        v.reason = CheckVariant(kb, ks, v);
      v.usable = v.reason.empty();
      if (v.usable) {
        p.chosen = static_cast<int>(i);
        break;  // better modes were checked first; worse ones need no check
      }
    }
  }
  return probes;
}

std::vector<Feature> KernelFeatures() {
  KernelBtf kb;
  Kallsyms ks;
  auto feature = [](const char *name, const std::string &reason) { return Feature{name, reason.empty(), reason}; };
  Variant tp;
  tp.mode = "tp_btf";
  tp.target = "kfree_skb";
  Variant raw = tp;
  raw.mode = "raw_tp";
  return {
      feature("btf", kb.vmlinux ? "" : "no kernel BTF: " + DescribeErrno(kb.err)),
      feature("fentry", CheckFentry(kb, "ip_rcv", false)),
      feature("kprobe", CheckKprobe(ks, "ip_rcv")),
      feature("tp_btf", CheckVariant(kb, ks, tp)),
      feature("raw_tp", CheckVariant(kb, ks, raw)),
  };
}

}  // namespace netwhy

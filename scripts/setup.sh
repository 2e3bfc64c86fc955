#!/usr/bin/env bash
# Install what netwhy needs on a Debian machine, then build it. Idempotent and
# quick when everything is already there. Needs root (apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."

# build: clang, libbpf, bpftool, cmake; lab and tests: iproute2, iptables,
# ipset, conntrack, curl, dig, jq; the agent test's real Prometheus; peers for
# the benchmarks: bpftrace, iperf3;
# the microVM: qemu, kmod, busybox, cpio; the lab's pods: the CNI plugins
# and containerd (busybox also makes the pods' image).
PACKAGES=(
  clang-16 libbpf-dev libelf-dev zlib1g-dev bpftool cmake make g++ pkg-config
  iproute2 iptables nftables ipset ipvsadm conntrack curl dnsutils util-linux procps jq
  bpftrace iperf3 prometheus
  qemu-system-x86 kmod busybox-static cpio
  containernetworking-plugins containerd
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: these Debian packages are missing and installing them needs root: ${missing[*]}" >&2
    exit 3
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ ! -d node_modules || package-lock.json -nt node_modules/.package-lock.json ]]; then
  # Not `npm ci`: npm 11.19 writes lockfiles without rollup's optional
  # platform packages and then refuses them in `npm ci`. `npm install`
  # still takes the locked versions.
  echo "setup: npm install"
  npm install --no-audit --no-fund --loglevel=error
fi

echo "setup: building (BPF objects, addon, TypeScript)"
npm run --silent build >/dev/null
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf 2>/dev/null || true

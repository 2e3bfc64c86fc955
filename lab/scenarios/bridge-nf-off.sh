# shellcheck shell=bash
# bridge-nf-off: pod3 asks the kube-dns ClusterIP. The query goes up to
# node2's IP layer (its destination MAC is cni0's), where kube-proxy DNATs
# 10.96.0.10 -> 10.244.2.3. CoreDNS is on the same bridge, so its reply to
# 10.244.2.4 is *bridged*. With net.bridge.bridge-nf-call-iptables=0 the
# bridged reply never meets conntrack, is not un-DNATed, and reaches pod3
# from 10.244.2.3 instead of 10.96.0.10; dig's socket does not take it.
#
# On this kernel the sysctl is per network namespace (a new netns starts at
# 1) and what counts is the value in the netns that holds the bridge, nw-node2.
# The per-bridge option (ip link ... type bridge nf_call_iptables) is ORed
# with it, so pin that to 0 too.

apply() {
  in_ns nw-node2 ip link set cni0 type bridge nf_call_iptables 0
  ns_sysctl nw-node2 net.bridge.bridge-nf-call-iptables 0
  ns_flush_conntrack nw-node2
}

revert() {
  ns_sysctl nw-node2 net.bridge.bridge-nf-call-iptables 1
  ns_flush_conntrack nw-node2
}

# Standalone use: bash lab/scenarios/THIS.sh apply|revert
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  # shellcheck source=lab/lib.sh
  source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
  "${1:?usage: $0 apply|revert}"
fi

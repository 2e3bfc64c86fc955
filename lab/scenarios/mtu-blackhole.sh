# shellcheck shell=bash
# mtu-blackhole: node2's pod bridge (cni0) has a smaller MTU (1000) than the
# pods and the LAN (1500), as after a CNI MTU change half rolled out, and
# node2's firewall drops the ICMP "fragmentation needed" it sends back. The
# handshake passes; the first full-size segment of a POST is too big to
# forward, and the client never learns why: a PMTU black hole.

apply() {
  ns_flush_conntrack nw-node1
  ns_flush_conntrack nw-node2
  in_ns nw-node2 ip link set cni0 mtu 1000
  in_ns nw-node2 iptables -I OUTPUT -p icmp --icmp-type fragmentation-needed -m comment --comment "block ICMP errors" -j DROP
}

revert() {
  in_ns nw-node2 iptables -D OUTPUT -p icmp --icmp-type fragmentation-needed -m comment --comment "block ICMP errors" -j DROP 2>/dev/null || true
  in_ns nw-node2 ip link set cni0 mtu 1500
  ns_flush_conntrack nw-node1
  ns_flush_conntrack nw-node2
}

# Standalone use: bash lab/scenarios/THIS.sh apply|revert
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  # shellcheck source=lab/lib.sh
  source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
  "${1:?usage: $0 apply|revert}"
fi

# shellcheck shell=bash
# neigh-failed: node1's host-gw route to node2's pod CIDR points at a next hop
# nobody has on the LAN (a mistyped node address, a node that was replaced).
# The DNATed NodePort request waits in node1's neighbour queue for an ARP
# answer that never comes and is dropped there (NEIGH_FAILED); no device
# ever sends it.

apply() {
  ns_flush_conntrack nw-node1
  in_ns nw-node1 ip route replace 10.244.2.0/24 via 192.168.0.99 dev "$(lan_dev eth0)"
}

revert() {
  in_ns nw-node1 ip route replace 10.244.2.0/24 via 192.168.0.12 dev "$(lan_dev eth0)"
  in_ns nw-node1 ip neigh flush dev "$(lan_dev eth0)" 2>/dev/null || true
  ns_flush_conntrack nw-node1
}

# Standalone use: bash lab/scenarios/THIS.sh apply|revert
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  # shellcheck source=lab/lib.sh
  source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
  "${1:?usage: $0 apply|revert}"
fi

# shellcheck shell=bash
# no-route: node1 loses its host-gw route to node2's pod CIDR and has no
# default route. The NodePort request is DNATed to 10.244.2.2, the forward
# lookup fails, and node1 answers ICMP net unreachable.

apply() {
  ns_flush_conntrack nw-node1
  in_ns nw-node1 ip route del 10.244.2.0/24 2>/dev/null || true
}

revert() {
  in_ns nw-node1 ip route replace 10.244.2.0/24 via 192.168.0.12 dev "$(lan_dev eth0)"
  ns_flush_conntrack nw-node1
}

# Standalone use: bash lab/scenarios/THIS.sh apply|revert
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  # shellcheck source=lab/lib.sh
  source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
  "${1:?usage: $0 apply|revert}"
fi

# shellcheck shell=bash
# no-route-v6: node1 loses its IPv6 host-gw route to node2's pod CIDR
# (fd00:10:244:2::/64) and has no IPv6 default route: the DNATed IPv6 NodePort
# request has nowhere to go, node1 answers ICMPv6 no route.

apply() {
  ns_flush_conntrack nw-node1
  in_ns nw-node1 ip -6 route del fd00:10:244:2::/64 2>/dev/null || true
}

revert() {
  in_ns nw-node1 ip -6 route replace fd00:10:244:2::/64 via fd00::12 dev "$(lan_dev eth0)"
  ns_flush_conntrack nw-node1
}

# Standalone use: bash lab/scenarios/THIS.sh apply|revert
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  # shellcheck source=lab/lib.sh
  source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
  "${1:?usage: $0 apply|revert}"
fi

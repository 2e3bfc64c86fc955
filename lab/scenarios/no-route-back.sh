# shellcheck shell=bash
# no-route-back: the web pod (nw-pod2) has lost its default route, so it
# knows only its own subnet. The NodePort request reaches it (DNAT and
# MASQUERADE on node1), but its SYN-ACK has no route back to node1: the SYN
# is consumed without an answer and without a drop.

apply() {
  ns_flush_conntrack nw-node1
  ns_flush_conntrack nw-node2
  in_ns nw-pod2 ip route del default 2>/dev/null || true
}

revert() {
  in_ns nw-pod2 ip route replace default via 10.244.2.1 dev eth0
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

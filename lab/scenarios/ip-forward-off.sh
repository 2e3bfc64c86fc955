# shellcheck shell=bash
# ip-forward-off: node1 stops forwarding. The NodePort request is DNATed to a
# pod on node2, so it must be forwarded; with forwarding off the kernel drops
# it silently (no ICMP), and the client times out.

apply() {
  ns_flush_conntrack nw-node1
  ns_sysctl nw-node1 net.ipv4.ip_forward 0
}

revert() {
  # Writing ip_forward resets every conf.*.forwarding back to 1 as well.
  ns_sysctl nw-node1 net.ipv4.ip_forward 1
  ns_flush_conntrack nw-node1
}

# Standalone use: bash lab/scenarios/THIS.sh apply|revert
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  # shellcheck source=lab/lib.sh
  source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
  "${1:?usage: $0 apply|revert}"
fi

# shellcheck shell=bash
# rp-filter-strict: asymmetric routing on a multi-homed node. The client sends
# pod traffic to node2's eth1 but with its eth0 source address; node2's route
# back to 192.168.0.10 is via eth0, so strict reverse-path filtering
# (effective value max(conf.all, conf.eth1) = 1) drops the request.
# Loose mode (2) only asks for *some* route back and lets it through.

apply() {
  ns_flush_conntrack nw-node2
  in_ns nw-client ip route replace 10.244.2.0/24 via 192.168.1.12 dev "$(lan_dev eth1)" src 192.168.0.10
  ns_sysctl nw-node2 net.ipv4.conf.all.rp_filter 1
}

revert() {
  ns_sysctl nw-node2 net.ipv4.conf.all.rp_filter 0
  in_ns nw-client ip route del 10.244.2.0/24 2>/dev/null || true
  ns_flush_conntrack nw-node2
}

# Standalone use: bash lab/scenarios/THIS.sh apply|revert
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  # shellcheck source=lab/lib.sh
  source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
  "${1:?usage: $0 apply|revert}"
fi

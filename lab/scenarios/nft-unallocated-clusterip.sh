# shellcheck shell=bash
# nft-unallocated-clusterip: a client keeps using the ClusterIP of a Service
# that was deleted (10.96.0.99; a hard-coded address, a stale DNS cache).
# node1 routes the service CIDR on (as a node's default route would), so the
# SYN reaches the forward hook, where kube-proxy's cluster-ips-check drops
# every address of the service CIDR that is not in @cluster-ips: the client
# times out.

apply() {
  in_ns nw-node1 ip route replace 10.96.0.0/12 via 192.168.0.12 dev "$(lan_dev eth0)"
  ns_flush_conntrack nw-node1
}

revert() {
  ns_here nw-node1 || return 0
  in_ns nw-node1 ip route del 10.96.0.0/12 2>/dev/null || true
  ns_flush_conntrack nw-node1
}

# Standalone use: bash lab/scenarios/THIS.sh apply|revert
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  # shellcheck source=lab/lib.sh
  source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
  "${1:?usage: $0 apply|revert}"
fi

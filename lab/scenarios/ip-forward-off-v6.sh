# shellcheck shell=bash
# ip-forward-off-v6: the IPv6 twin of ip-forward-off. node1 DNATs the IPv6
# NodePort request to [fd00:10:244:2::2]:80 on node2 but net.ipv6.conf.all.forwarding
# is 0: ip6_forward drops it (IP_INADDRERRORS, no ICMPv6 back) and the client
# times out. A device's own conf.eth0.forwarding stays 1: it does not matter.

apply() {
  ns_flush_conntrack nw-node1
  ns_sysctl nw-node1 net.ipv6.conf.all.forwarding 0
  ns_sysctl nw-node1 net.ipv6.conf.eth0.forwarding 1
}

revert() {
  ns_sysctl nw-node1 net.ipv6.conf.all.forwarding 1
  ns_flush_conntrack nw-node1
}

# Standalone use: bash lab/scenarios/THIS.sh apply|revert
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  # shellcheck source=lab/lib.sh
  source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
  "${1:?usage: $0 apply|revert}"
fi

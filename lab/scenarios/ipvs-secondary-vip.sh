# shellcheck shell=bash
# ipvs-secondary-vip (IPVS mode): keepalived puts VIP 192.168.0.200 on node1's
# LAN interface. It is in the same /24 as the node address, so the kernel makes
# it a *secondary* address. kube-proxy binds NodePorts only to the node
# addresses it found (here: the primary ones; also any address added after its
# last sync), so there is no IPVS virtual service for 192.168.0.200:30080.
# The SYN is still marked by KUBE-NODE-PORT (the address is local and the
# port is in KUBE-NODE-PORT-TCP) but IPVS has nothing for it, nothing listens
# on :30080, and node1 answers with a TCP reset (drop reason NO_SOCKET).

VIP=192.168.0.200

apply() {
  ns_flush_conntrack nw-node1
  in_ns nw-node1 ip addr replace "$VIP/24" dev "$(lan_dev eth0)"
}

revert() {
  in_ns nw-node1 ip addr del "$VIP/24" dev "$(lan_dev eth0)" 2>/dev/null || true
  ns_flush_conntrack nw-node1
}

evidence() {
  in_ns nw-node1 ip -4 -o addr show dev "$(lan_dev eth0)" | awk '{ $1 = ""; print }'
  in_ns nw-node1 ipvsadm -Ln | awk 'NR <= 3 || /:30080 /'
}

# Standalone use: bash lab/scenarios/THIS.sh apply|revert|evidence
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  # shellcheck source=lab/lib.sh
  source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
  "${1:?usage: $0 apply|revert|evidence}"
fi

# shellcheck shell=bash
# ipvs-nodeport-curl (IPVS mode): no fault. The NodePort path with kube-proxy
# in IPVS mode: the SYN for 192.168.0.11:30080 is marked 0x4000 by
# KUBE-NODE-PORT (port in ipset KUBE-NODE-PORT-TCP), IPVS on node1's INPUT
# hook picks real server 10.244.2.2:80 of virtual service
# "TCP 192.168.0.11:30080 rr" and NATs it, KUBE-POSTROUTING masquerades it to
# node1's address, the host-gw route takes it to pod2 on node2; the reply
# comes back through node1, where conntrack undoes the masquerade and IPVS
# (FORWARD hook) the DNAT.

apply() {
  # A fresh conntrack entry; IPVS keeps its own connection table, which a new
  # client port never matches.
  ns_flush_conntrack nw-node1
  ns_flush_conntrack nw-node2
}

revert() {
  :
}

evidence() {
  in_ns nw-node1 ipvsadm -Ln -t 192.168.0.11:30080
  in_ns nw-node1 ipvsadm -Lnc | awk 'NR <= 2 || / 192\.168\.0\.11:30080 /'
}

# Standalone use: bash lab/scenarios/THIS.sh apply|revert|evidence
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  # shellcheck source=lab/lib.sh
  source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
  "${1:?usage: $0 apply|revert|evidence}"
fi

# shellcheck shell=bash
# ipvs-no-endpoints (IPVS mode): the Service default/api (ClusterIP
# 10.96.0.30:80) has no ready pod. kube-proxy keeps its virtual service, its
# address on kube-ipvs0 and its ipset entries, and removes every real server.
# pod1 on node1 connects: the address is local, the filter table lets it
# through (KUBE-CLUSTER-IP), IPVS on the INPUT hook finds no destination
# ("ip_vs_rr_schedule(): no destination available"), answers ICMP port
# unreachable and drops the SYN (NF_DROP, drop reason NETFILTER_DROP). curl
# says "Couldn't connect to server".

VIP=10.96.0.30

apply() {
  ns_flush_conntrack nw-node1
  in_ns nw-node1 ip addr replace "$VIP/32" dev kube-ipvs0
  in_ns nw-node1 ipset -exist add KUBE-CLUSTER-IP "$VIP,tcp:80"
  in_ns nw-node1 ipset -exist add KUBE-IPVS-IPS "$VIP"
  in_ns nw-node1 ipvsadm -A -t "$VIP:80" -s rr
}

revert() {
  in_ns nw-node1 ipvsadm -D -t "$VIP:80" 2>/dev/null || true
  in_ns nw-node1 ipset -exist del KUBE-IPVS-IPS "$VIP" 2>/dev/null || true
  in_ns nw-node1 ipset -exist del KUBE-CLUSTER-IP "$VIP,tcp:80" 2>/dev/null || true
  in_ns nw-node1 ip addr del "$VIP/32" dev kube-ipvs0 2>/dev/null || true
  ns_flush_conntrack nw-node1
}

evidence() {
  in_ns nw-node1 ipvsadm -Ln -t "$VIP:80"
}

# Standalone use: bash lab/scenarios/THIS.sh apply|revert|evidence
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  # shellcheck source=lab/lib.sh
  source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
  "${1:?usage: $0 apply|revert|evidence}"
fi

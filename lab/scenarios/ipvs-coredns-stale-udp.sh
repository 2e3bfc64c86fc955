# shellcheck shell=bash
# ipvs-coredns-stale-udp (IPVS mode): CoreDNS timeouts after the CoreDNS pod
# restarts with a new IP. pod1 on node1 queries the kube-dns ClusterIP from a
# fixed source port (10.244.1.2:5353, as a resolver reusing its socket does),
# which leaves an IPVS UDP connection entry on node1:
#   UDP 10.244.1.2:5353 -> 10.96.0.10:53 -> real server 10.244.2.3:53
# CoreDNS then restarts as 10.244.2.5. kube-proxy replaces the real server
# (adds 10.244.2.5:53, deletes 10.244.2.3:53 at once, as it does for UDP) and
# clears the UDP conntrack entries, but not IPVS's own connection table. With
# net.ipv4.vs.expire_nodest_conn=0 (and conn_reuse_mode=0, the values
# kube-proxy and kernels < 5.9 had then) IPVS keeps matching the next query
# from the same port to the stale entry, whose real server is gone, and drops
# it on node1's INPUT hook (NETFILTER_DROP) until the entry times out (UDP:
# 5 minutes, and the drops do not refresh it). dig times out.

OLD_EP=10.244.2.3:53
NEW_EP=10.244.2.5:53
SVC=10.96.0.10:53
CLIENT=10.244.1.2#5353

# coredns_move FROM TO : the CoreDNS pod restarts with address TO.
coredns_move() {
  local from="$1" to="$2"
  stop_server coredns-dns
  in_ns nw-coredns ip addr del "$from/24" dev eth0 2>/dev/null || true
  in_ns nw-coredns ip addr replace "$to/24" dev eth0
  in_ns nw-coredns ip route replace default via 10.244.2.1
  start_server nw-coredns coredns-dns dns 53 --answer 10.96.0.1
  coredns_ready "$to"
}

# kube_proxy_endpoint FROM TO : both nodes' kube-proxy see the new endpoint.
kube_proxy_endpoint() {
  local node
  for node in nw-node1 nw-node2; do
    ipvs_move_dest "$node" udp "$SVC" "$1" "$2"
    ipvs_move_dest "$node" tcp "$SVC" "$1" "$2"
  done
}

apply() {
  ns_sysctl nw-node1 net.ipv4.vs.expire_nodest_conn 0
  ns_sysctl nw-node1 net.ipv4.vs.conn_reuse_mode 0
  # The resolver's query that leaves the IPVS connection entry behind.
  wait_until 30 "a first answer from CoreDNS via $SVC" in_ns nw-pod1 \
    dig -b "$CLIENT" +tries=1 +time=2 +short "@${SVC%:*}" kubernetes.default.svc.cluster.local
  coredns_move "${OLD_EP%:*}" "${NEW_EP%:*}"
  kube_proxy_endpoint "$OLD_EP" "$NEW_EP"
}

revert() {
  kube_proxy_endpoint "$NEW_EP" "$OLD_EP"
  coredns_move "${NEW_EP%:*}" "${OLD_EP%:*}"
  # Back to what kube-proxy sets at start (conn_reuse_mode: the kernel's 1).
  ns_sysctl nw-node1 net.ipv4.vs.expire_nodest_conn 1
  ns_sysctl nw-node1 net.ipv4.vs.conn_reuse_mode 1
}

evidence() {
  in_ns nw-node1 sysctl net.ipv4.vs.expire_nodest_conn net.ipv4.vs.conn_reuse_mode
  in_ns nw-node1 ipvsadm -Ln -u "$SVC"
  in_ns nw-node1 ipvsadm -Lnc | awk -v c="${CLIENT/\#/:}" 'NR <= 2 || index($0, " " c " ")'
}

# Standalone use: bash lab/scenarios/THIS.sh apply|revert|evidence
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  # shellcheck source=lab/lib.sh
  source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
  "${1:?usage: $0 apply|revert|evidence}"
fi

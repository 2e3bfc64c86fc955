# shellcheck shell=bash
# ipvs-coredns-ip-forward-off (IPVS mode): CoreDNS "i/o timeout" after
# switching kube-proxy to IPVS on a node whose net.ipv4.ip_forward is 0
# (kubekey on Debian 11 / Ubuntu 22.04). pod1 on node1 asks the kube-dns
# ClusterIP 10.96.0.10 (on kube-ipvs0, so local): IPVS on node1's INPUT hook
# NATs the query to CoreDNS 10.244.2.3 on node2 and sends it out; that needs
# no forwarding. The answer comes back to node1 addressed to pod1 and must be
# forwarded, which node1 refuses: ip_route_input_slow -> ip_error, drop reason
# IP_INADDRERRORS, no ICMP. dig times out; the IPVS connection entry shows
# the query did go to the real server.

# The fault, apply and revert, is ip-forward-off's.
# shellcheck source=lab/scenarios/ip-forward-off.sh
source "$(dirname "${BASH_SOURCE[0]}")/ip-forward-off.sh"

evidence() {
  in_ns nw-node1 sysctl net.ipv4.ip_forward
  in_ns nw-node1 ipvsadm -Ln -u 10.96.0.10:53
  in_ns nw-node1 ipvsadm -Lnc | awk 'NR <= 2 || / 10\.96\.0\.10:53 /'
}

# Standalone use: bash lab/scenarios/THIS.sh apply|revert|evidence
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  # shellcheck source=lab/lib.sh
  source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
  "${1:?usage: $0 apply|revert|evidence}"
fi

# shellcheck shell=bash
# nft-inet-firewall: node1's own firewall, a native nftables table of family
# inet (as firewalld or nftables.service write them, beside kube-proxy's),
# drops the ports of its named interval set @blocked-tcp on input. The
# apiserver port 6443 is in it: the client's SYN to 192.168.0.100:6443 dies in
# the input chain and curl times out.

NFT_FIREWALL='
table inet nw-firewall {
  set blocked-tcp {
    type inet_service
    flags interval
    comment "ports closed to the LAN"
    elements = { 6443 comment "apiserver: admin network only", 10250-10259 }
  }
  chain input {
    type filter hook input priority filter; policy accept;
    ct state established,related accept
    iifname "lo" accept
    tcp dport @blocked-tcp counter drop comment "closed ports"
  }
}
'

apply() {
  in_ns nw-node1 nft -f - <<<"$NFT_FIREWALL"
  ns_flush_conntrack nw-node1
}

revert() {
  ns_here nw-node1 || return 0
  in_ns nw-node1 nft delete table inet nw-firewall 2>/dev/null || true
  ns_flush_conntrack nw-node1
}

# Standalone use: bash lab/scenarios/THIS.sh apply|revert
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  # shellcheck source=lab/lib.sh
  source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
  "${1:?usage: $0 apply|revert}"
fi

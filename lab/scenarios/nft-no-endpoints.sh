# shellcheck shell=bash
# nft-no-endpoints: default/web's only pod stops being ready. kube-proxy
# (nftables mode) removes the Service's elements from @service-ips and
# @service-nodeports and adds elements to @no-endpoint-services and
# @no-endpoint-nodeports whose value is "goto reject-chain" and whose comment
# names the Service port ("default/web:http"). The client's SYN to NodePort
# 30080 on node1 goes filter-input → nodeport-endpoints-check →
# @no-endpoint-nodeports → reject-chain: ICMP port unreachable, curl says
# "Connection refused".

NFT_NO_EP_ADD='
delete element ip kube-proxy service-ips { 10.96.0.20 . tcp . 80 }
delete element ip kube-proxy service-nodeports { tcp . 30080 }
add element ip kube-proxy no-endpoint-services { 10.96.0.20 . tcp . 80 comment "default/web:http" : goto reject-chain }
add element ip kube-proxy no-endpoint-nodeports { tcp . 30080 comment "default/web:http" : goto reject-chain }
'

apply() {
  ns_flush_conntrack nw-node1
  in_ns nw-node1 nft -f - <<<"$NFT_NO_EP_ADD"
}

revert() {
  ns_here nw-node1 || return 0
  in_ns nw-node1 nft delete element ip kube-proxy no-endpoint-services '{ 10.96.0.20 . tcp . 80 }' 2>/dev/null || true
  in_ns nw-node1 nft delete element ip kube-proxy no-endpoint-nodeports '{ tcp . 30080 }' 2>/dev/null || true
  in_ns nw-node1 nft add element ip kube-proxy service-ips "{ 10.96.0.20 . tcp . 80 : goto $(kp_nft_name service default/web:http tcp) }" 2>/dev/null || true
  in_ns nw-node1 nft add element ip kube-proxy service-nodeports "{ tcp . 30080 : goto $(kp_nft_name external default/web:http tcp) }" 2>/dev/null || true
  ns_flush_conntrack nw-node1
}

# Standalone use: bash lab/scenarios/THIS.sh apply|revert
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  # shellcheck source=lab/lib.sh
  source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
  "${1:?usage: $0 apply|revert}"
fi

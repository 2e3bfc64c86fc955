# shellcheck shell=bash
# nft-source-ranges: default/web becomes a LoadBalancer Service with
# loadBalancerIP 192.168.0.240 (announced by node1, as MetalLB's L2 mode
# does) and loadBalancerSourceRanges [203.0.113.0/25]. kube-proxy (nftables
# mode) adds the LB IP to @service-ips and to @firewall-ips, whose element
# goes to the Service's firewall chain, which drops every source outside the
# ranges. The client (192.168.0.2) is outside: its SYN dies in node1's
# filter-prerouting-pre-dnat → firewall-check → @firewall-ips → firewall-…
# chain, and curl times out.

LB_IP=192.168.0.240

nft_lb_rules() {
  local fw ext
  fw="$(kp_nft_name firewall default/web:http tcp)"
  ext="$(kp_nft_name external default/web:http tcp)"
  cat <<NFT
add chain ip kube-proxy $fw
add rule ip kube-proxy $fw ip saddr != { 203.0.113.0/25 } drop
add element ip kube-proxy service-ips { $LB_IP . tcp . 80 : goto $ext }
add element ip kube-proxy firewall-ips { $LB_IP . tcp . 80 : goto $fw }
NFT
}

apply() {
  in_ns nw-node1 ip addr add "$LB_IP/32" dev "$(lan_dev eth0)"
  in_ns nw-node1 nft -f - <<<"$(nft_lb_rules)"
  ns_flush_conntrack nw-node1
}

revert() {
  ns_here nw-node1 || return 0
  in_ns nw-node1 nft delete element ip kube-proxy firewall-ips "{ $LB_IP . tcp . 80 }" 2>/dev/null || true
  in_ns nw-node1 nft delete element ip kube-proxy service-ips "{ $LB_IP . tcp . 80 }" 2>/dev/null || true
  in_ns nw-node1 nft flush chain ip kube-proxy "$(kp_nft_name firewall default/web:http tcp)" 2>/dev/null || true
  in_ns nw-node1 nft delete chain ip kube-proxy "$(kp_nft_name firewall default/web:http tcp)" 2>/dev/null || true
  in_ns nw-node1 ip addr del "$LB_IP/32" dev "$(lan_dev eth0)" 2>/dev/null || true
  ns_flush_conntrack nw-node1
}

# Standalone use: bash lab/scenarios/THIS.sh apply|revert
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  # shellcheck source=lab/lib.sh
  source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
  "${1:?usage: $0 apply|revert}"
fi

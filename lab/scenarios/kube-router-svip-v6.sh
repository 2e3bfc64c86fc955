# shellcheck shell=bash
# kube-router-svip-v6: seed 003 as reported, on IPv6. kube-router's service
# firewall on node1 puts the API server address fd00::100 in ipset
# inet6:kube-router-svip, so INPUT sends it to KUBE-ROUTER-SERVICES (ip6tables);
# :6443 is not in inet6:kube-router-svip-prt and fd00::100 is not in
# inet6:kube-router-local-ips, so the last rule REJECTs with
# icmp6-port-unreachable. Names, chains and comments are kube-router's (its
# IPv6 ipsets carry the inet6: prefix).

SVIP6_JUMP=(-m comment --comment "handle traffic to IPVS service IPs in custom chain"
  -m set --match-set inet6:kube-router-svip dst -j KUBE-ROUTER-SERVICES)
NETPOL6_JUMP=(-m comment --comment "kube-router netpol - 4IA2OSFRMVNDXBVV" -j KUBE-ROUTER-INPUT)

apply() {
  ns_flush_conntrack nw-node1
  # timeout 0 as kube-router creates them (entries may carry timeouts).
  in_ns nw-node1 ipset restore -exist <<'IPSET'
create inet6:kube-router-svip hash:ip family inet6 hashsize 1024 maxelem 65536 timeout 0
add inet6:kube-router-svip fd00:10:96::a timeout 0
add inet6:kube-router-svip fd00:10:96::20 timeout 0
add inet6:kube-router-svip fd00::100 timeout 0
create inet6:kube-router-svip-prt hash:ip,port family inet6 hashsize 1024 maxelem 65536 timeout 0
add inet6:kube-router-svip-prt fd00:10:96::a,udp:53 timeout 0
add inet6:kube-router-svip-prt fd00:10:96::a,tcp:53 timeout 0
add inet6:kube-router-svip-prt fd00:10:96::20,tcp:80 timeout 0
create inet6:kube-router-local-ips hash:ip family inet6 hashsize 1024 maxelem 65536 timeout 0
add inet6:kube-router-local-ips ::1 timeout 0
add inet6:kube-router-local-ips fd00::11 timeout 0
add inet6:kube-router-local-ips fd00:10:244:1::1 timeout 0
IPSET

  in_ns nw-node1 ip6tables-restore --noflush <<'RULES'
*filter
:KUBE-ROUTER-INPUT - [0:0]
:KUBE-ROUTER-SERVICES - [0:0]
-A KUBE-ROUTER-INPUT -d fd00:10:96::/112 -m comment --comment "allow traffic to primary/secondary cluster IP range - 4IA2OSFRMVNDXBVV" -j RETURN
-A KUBE-ROUTER-INPUT -p tcp -m comment --comment "allow LOCAL TCP traffic to node ports - LR7XO7NXDBGQJD2M" -m addrtype --dst-type LOCAL -m multiport --dports 30000:32767 -j RETURN
-A KUBE-ROUTER-INPUT -p udp -m comment --comment "allow LOCAL UDP traffic to node ports - 76UCBPIZNGJNWNUZ" -m addrtype --dst-type LOCAL -m multiport --dports 30000:32767 -j RETURN
-A KUBE-ROUTER-SERVICES -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A KUBE-ROUTER-SERVICES -m comment --comment "allow input traffic to ipvs services" -m set --match-set inet6:kube-router-svip-prt dst,dst -j ACCEPT
-A KUBE-ROUTER-SERVICES -p ipv6-icmp -m comment --comment "allow icmp echo requests to service IPs" -m icmp6 --icmpv6-type 128 -j ACCEPT
-A KUBE-ROUTER-SERVICES -p ipv6-icmp -m comment --comment "allow icmp destination unreachable messages to service IPs" -m icmp6 --icmpv6-type 1 -j ACCEPT
-A KUBE-ROUTER-SERVICES -p ipv6-icmp -m comment --comment "allow icmp ttl exceeded messages to service IPs" -m icmp6 --icmpv6-type 3 -j ACCEPT
-A KUBE-ROUTER-SERVICES -m comment --comment "reject all unexpected traffic to service IPs" -m set ! --match-set inet6:kube-router-local-ips dst -j REJECT --reject-with icmp6-port-unreachable
COMMIT
RULES
  # kube-router inserts both jumps at the top of INPUT, ahead of kube-proxy.
  in_ns nw-node1 ip6tables -I INPUT 1 "${NETPOL6_JUMP[@]}"
  in_ns nw-node1 ip6tables -I INPUT 1 "${SVIP6_JUMP[@]}"
}

revert() {
  # Rules first: an ipset referenced by a rule cannot be destroyed. (ns_here:
  # in the local backend in_ns succeeds without running on other machines.)
  while ns_here nw-node1 && in_ns nw-node1 ip6tables -D INPUT "${SVIP6_JUMP[@]}" 2>/dev/null; do :; done
  while ns_here nw-node1 && in_ns nw-node1 ip6tables -D INPUT "${NETPOL6_JUMP[@]}" 2>/dev/null; do :; done
  local chain set
  for chain in KUBE-ROUTER-SERVICES KUBE-ROUTER-INPUT; do
    in_ns nw-node1 ip6tables -F "$chain" 2>/dev/null || true
    in_ns nw-node1 ip6tables -X "$chain" 2>/dev/null || true
  done
  for set in inet6:kube-router-svip inet6:kube-router-svip-prt inet6:kube-router-local-ips; do
    in_ns nw-node1 ipset destroy "$set" 2>/dev/null || true
  done
  ns_flush_conntrack nw-node1
}

# Standalone use: bash lab/scenarios/THIS.sh apply|revert
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  # shellcheck source=lab/lib.sh
  source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
  "${1:?usage: $0 apply|revert}"
fi

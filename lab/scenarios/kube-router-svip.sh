# shellcheck shell=bash
# kube-router-svip: kube-router's service firewall on node1 mistakes the API
# server address for a service VIP. 192.168.0.100 sits in ipset
# kube-router-svip, so INPUT sends it to KUBE-ROUTER-SERVICES; :6443 is not in
# kube-router-svip-prt and 192.168.0.100 is not in kube-router-local-ips
# (the VIP arrived after kube-router last synced them), so the last rule
# REJECTs with icmp-port-unreachable. Chains, comments and ipset types are
# the ones kube-router writes.

SVIP_JUMP=(-m comment --comment "handle traffic to IPVS service IPs in custom chain"
  -m set --match-set kube-router-svip dst -j KUBE-ROUTER-SERVICES)
NETPOL_JUMP=(-m comment --comment "kube-router netpol - 4IA2OSFRMVNDXBVV" -j KUBE-ROUTER-INPUT)

apply() {
  ns_flush_conntrack nw-node1
  # timeout 0 as kube-router creates them (entries may carry timeouts).
  in_ns nw-node1 ipset restore -exist <<'IPSET'
create kube-router-svip hash:ip family inet hashsize 1024 maxelem 65536 timeout 0
add kube-router-svip 10.96.0.10 timeout 0
add kube-router-svip 10.96.0.20 timeout 0
add kube-router-svip 192.168.0.100 timeout 0
create kube-router-svip-prt hash:ip,port family inet hashsize 1024 maxelem 65536 timeout 0
add kube-router-svip-prt 10.96.0.10,udp:53 timeout 0
add kube-router-svip-prt 10.96.0.10,tcp:53 timeout 0
add kube-router-svip-prt 10.96.0.20,tcp:80 timeout 0
create kube-router-local-ips hash:ip family inet hashsize 1024 maxelem 65536 timeout 0
add kube-router-local-ips 127.0.0.1 timeout 0
add kube-router-local-ips 192.168.0.11 timeout 0
add kube-router-local-ips 10.244.1.1 timeout 0
IPSET

  in_ns nw-node1 iptables-restore --noflush <<'RULES'
*filter
:KUBE-ROUTER-INPUT - [0:0]
:KUBE-ROUTER-SERVICES - [0:0]
-A KUBE-ROUTER-INPUT -d 10.96.0.0/12 -m comment --comment "allow traffic to primary/secondary cluster IP range - 4IA2OSFRMVNDXBVV" -j RETURN
-A KUBE-ROUTER-INPUT -p tcp -m comment --comment "allow LOCAL TCP traffic to node ports - LR7XO7NXDBGQJD2M" -m addrtype --dst-type LOCAL -m multiport --dports 30000:32767 -j RETURN
-A KUBE-ROUTER-INPUT -p udp -m comment --comment "allow LOCAL UDP traffic to node ports - 76UCBPIZNGJNWNUZ" -m addrtype --dst-type LOCAL -m multiport --dports 30000:32767 -j RETURN
-A KUBE-ROUTER-SERVICES -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A KUBE-ROUTER-SERVICES -m comment --comment "allow input traffic to ipvs services" -m set --match-set kube-router-svip-prt dst,dst -j ACCEPT
-A KUBE-ROUTER-SERVICES -p icmp -m comment --comment "allow icmp echo requests to service IPs" -m icmp --icmp-type 8 -j ACCEPT
-A KUBE-ROUTER-SERVICES -p icmp -m comment --comment "allow icmp destination unreachable messages to service IPs" -m icmp --icmp-type 3 -j ACCEPT
-A KUBE-ROUTER-SERVICES -p icmp -m comment --comment "allow icmp ttl exceeded messages to service IPs" -m icmp --icmp-type 11 -j ACCEPT
-A KUBE-ROUTER-SERVICES -m comment --comment "reject all unexpected traffic to service IPs" -m set ! --match-set kube-router-local-ips dst -j REJECT --reject-with icmp-port-unreachable
COMMIT
RULES
  # kube-router inserts both jumps at the top of INPUT, ahead of kube-proxy.
  in_ns nw-node1 iptables -I INPUT 1 "${NETPOL_JUMP[@]}"
  in_ns nw-node1 iptables -I INPUT 1 "${SVIP_JUMP[@]}"
}

revert() {
  # Rules first: an ipset referenced by a rule cannot be destroyed. (ns_here:
  # in the local backend in_ns succeeds without running on other machines.)
  while ns_here nw-node1 && in_ns nw-node1 iptables -D INPUT "${SVIP_JUMP[@]}" 2>/dev/null; do :; done
  while ns_here nw-node1 && in_ns nw-node1 iptables -D INPUT "${NETPOL_JUMP[@]}" 2>/dev/null; do :; done
  local chain set
  for chain in KUBE-ROUTER-SERVICES KUBE-ROUTER-INPUT; do
    in_ns nw-node1 iptables -F "$chain" 2>/dev/null || true
    in_ns nw-node1 iptables -X "$chain" 2>/dev/null || true
  done
  for set in kube-router-svip kube-router-svip-prt kube-router-local-ips; do
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

# shellcheck shell=bash
# svc-no-endpoints: default/web's only pod stops being ready, so the Service
# has no endpoints. kube-proxy (iptables mode) then drops the Service from the
# nat table and writes, in the filter table, a REJECT for its ClusterIP
# (KUBE-SERVICES) and one for its NodePort on every local address
# (KUBE-EXTERNAL-SERVICES, reached from INPUT), with the comment
# "<ns>/<svc>:<port> has no endpoints". The client's SYN to the NodePort is
# answered with ICMP port unreachable: curl says "Connection refused".
# Rules as kube-proxy's iptables proxier writes them (pkg/proxy/iptables).

WEB_SPN=default/web:http

web_nat_rules() {
  local svc ext
  svc="KUBE-SVC-$(kp_hash "$WEB_SPN" tcp)"
  ext="KUBE-EXT-$(kp_hash "$WEB_SPN" tcp)"
  printf '%s\n' \
    "KUBE-SERVICES -d 10.96.0.20/32 -p tcp -m comment --comment \"$WEB_SPN cluster IP\" -m tcp --dport 80 -j $svc" \
    "KUBE-NODEPORTS -p tcp -m comment --comment \"$WEB_SPN\" -m tcp --dport 30080 -j $ext"
}

no_endpoint_rules() {
  printf '%s\n' \
    "KUBE-SERVICES -d 10.96.0.20/32 -p tcp -m comment --comment \"$WEB_SPN has no endpoints\" -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable" \
    "KUBE-EXTERNAL-SERVICES -p tcp -m comment --comment \"$WEB_SPN has no endpoints\" -m addrtype --dst-type LOCAL -m tcp --dport 30080 -j REJECT --reject-with icmp-port-unreachable"
}

# iptables_each NODE TABLE OP : run `iptables -t TABLE OP <rule>` for each
# rule line on stdin (the quotes in the comments are the shell's).
iptables_each() {
  local node="$1" table="$2" op="$3" line
  while IFS= read -r line; do
    eval "in_ns \"\$node\" iptables -t \"\$table\" $op $line"
  done
}

# delete_each NODE TABLE : delete every copy of each rule line on stdin.
delete_each() {
  local node="$1" table="$2" line
  ns_here "$node" || return 0 # in_ns would succeed without deleting anything
  while IFS= read -r line; do
    while eval "in_ns \"\$node\" iptables -t \"\$table\" -D $line" 2>/dev/null; do :; done
  done
}

apply() {
  ns_flush_conntrack nw-node1
  web_nat_rules | iptables_each nw-node1 nat -D
  no_endpoint_rules | iptables_each nw-node1 filter -I
}

revert() {
  no_endpoint_rules | delete_each nw-node1 filter
  # Back where kube-proxy writes them: ahead of the nodeports jump that ends
  # KUBE-SERVICES (deleted first, so a half-applied fault is not doubled).
  web_nat_rules | delete_each nw-node1 nat
  web_nat_rules | iptables_each nw-node1 nat -I
  ns_flush_conntrack nw-node1
}

# Standalone use: bash lab/scenarios/THIS.sh apply|revert
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  # shellcheck source=lab/lib.sh
  source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
  "${1:?usage: $0 apply|revert}"
fi

# shellcheck shell=bash
# svc-wrong-targetport: default/web's Service sends port http to targetPort
# 8081, but the web container listens on 80. kube-proxy (on node1, where the
# NodePort is hit) DNATs to 10.244.2.2:8081; the SYN crosses to node2 and
# into the pod, where no socket takes it: the pod answers with a reset and
# curl says "Connection refused". The fault rewrites the endpoint chain's
# DNAT the way kube-proxy writes it for that targetPort.

sep_chain() {
  printf 'KUBE-SEP-%s\n' "$(kp_hash default/web:http tcp 10.244.2.2:80)"
}

# set_web_target NODE PORT : the DNAT of default/web's only endpoint (rule 2
# of its KUBE-SEP chain, after the hairpin KUBE-MARK-MASQ).
set_web_target() {
  in_ns "$1" iptables -t nat -R "$(sep_chain)" 2 -p tcp -m comment --comment "default/web:http" -m tcp -j DNAT --to-destination "10.244.2.2:$2"
}

apply() {
  ns_flush_conntrack nw-node1
  set_web_target nw-node1 8081
}

revert() {
  set_web_target nw-node1 80
  ns_flush_conntrack nw-node1
}

# Standalone use: bash lab/scenarios/THIS.sh apply|revert
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  # shellcheck source=lab/lib.sh
  source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
  "${1:?usage: $0 apply|revert}"
fi

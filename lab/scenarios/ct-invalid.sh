# shellcheck shell=bash
# ct-invalid: node2 loses the conntrack entry of an established NodePort
# connection while it idles (a conntrack flush, an agent that restarts), and
# with net.netfilter.nf_conntrack_tcp_loose=0 conntrack does not pick the
# connection up again: the next segment is INVALID, and kube-proxy's
# KUBE-FORWARD rule (--ctstate INVALID -j DROP) drops it silently.

apply() {
  ns_flush_conntrack nw-node1
  ns_flush_conntrack nw-node2
  ns_sysctl nw-node2 net.netfilter.nf_conntrack_tcp_loose 0
  # While the client's connection idles (it waits 6 s before its request).
  (sleep 3.5; in_ns nw-node2 conntrack -F) >/dev/null 2>&1 &
}

revert() {
  ns_sysctl nw-node2 net.netfilter.nf_conntrack_tcp_loose 1
  ns_flush_conntrack nw-node1
  ns_flush_conntrack nw-node2
}

# Standalone use: bash lab/scenarios/THIS.sh apply|revert
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  # shellcheck source=lab/lib.sh
  source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
  "${1:?usage: $0 apply|revert}"
fi

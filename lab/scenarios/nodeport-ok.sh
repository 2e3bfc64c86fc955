# shellcheck shell=bash
# nodeport-ok: no fault. The baseline path a NodePort request takes:
# client -> node1:30080, DNAT to 10.244.2.2:80 and MASQUERADE on node1,
# host-gw route to node2, cni0, pod2; the reply comes back through node1.

apply() {
  # Only forget stale conntrack state so the request is a fresh NEW flow.
  ns_flush_conntrack nw-node1
  ns_flush_conntrack nw-node2
}

revert() {
  :
}

# Standalone use: bash lab/scenarios/THIS.sh apply|revert
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  # shellcheck source=lab/lib.sh
  source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
  "${1:?usage: $0 apply|revert}"
fi

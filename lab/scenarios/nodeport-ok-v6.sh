# shellcheck shell=bash
# nodeport-ok-v6: baseline. The IPv6 NodePort [fd00::11]:30080 on node1 is
# DNATed by kube-proxy's ip6tables rules to [fd00:10:244:2::2]:80 on node2,
# masqueraded, and delivered over the IPv6 host-gw route. No fault.

apply() {
  ns_flush_conntrack nw-node1
}

revert() {
  ns_flush_conntrack nw-node1
}

# Standalone use: bash lab/scenarios/THIS.sh apply|revert
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  # shellcheck source=lab/lib.sh
  source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
  "${1:?usage: $0 apply|revert}"
fi

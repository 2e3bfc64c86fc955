# shellcheck shell=bash
# netpol-allowlist-cross-node: NetworkPolicy default/allow-tools selects
# app=web and allows ingress only from app=tools. The client pod on node1 is
# not in the rule's source set KUBE-SRC-…: its SYN, routed into node2 and
# forwarded to cni0, goes through web's KUBE-POD-FW chain at the FORWARD hook,
# allow-tools' chain does not mark it, and the pod chain REJECTs it.

# shellcheck source=lab/netpol.sh
source "$(dirname "${BASH_SOURCE[0]}")/../netpol.sh"

NP_POLICIES=("default allow-tools app=web app=tools")

apply() { np_apply nw-node2 "${NP_POLICIES[@]}"; }
revert() { np_revert nw-node2; }

# Standalone use: bash lab/scenarios/THIS.sh apply|revert
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  # shellcheck source=lab/lib.sh
  source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
  "${1:?usage: $0 apply|revert}"
fi

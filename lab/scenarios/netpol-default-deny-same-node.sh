# shellcheck shell=bash
# netpol-default-deny-same-node: NetworkPolicy default/default-deny
# (podSelector {}, policyTypes [Ingress], no ingress rule) isolates every pod
# of namespace default. tools (nw-pod3) and web (nw-pod2) share node2's
# bridge cni0, so the SYN is bridged; br_netfilter hands it to iptables'
# FORWARD hook, where KUBE-ROUTER-FORWARD's physdev rule (and the plain -d
# rule) send it to web's KUBE-POD-FW chain. default-deny's chain allows
# nothing, the 0x10000 mark stays clear, and the pod chain REJECTs it.

# shellcheck source=lab/netpol.sh
source "$(dirname "${BASH_SOURCE[0]}")/../netpol.sh"

NP_POLICIES=("default default-deny - none")

apply() { np_apply nw-node2 "${NP_POLICIES[@]}"; }
revert() { np_revert nw-node2; }

# Standalone use: bash lab/scenarios/THIS.sh apply|revert
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  # shellcheck source=lab/lib.sh
  source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
  "${1:?usage: $0 apply|revert}"
fi

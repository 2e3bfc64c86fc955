# shellcheck shell=bash
# nft-nodeport-ok: the baseline of the nftables mode. NodePort 30080 on node1
# is in kube-proxy's @service-nodeports map; its external chain marks the
# packet for masquerading and goes to the service chain, whose numgen vmap
# picks the one endpoint chain, whose rule DNATs to default/web's pod on node2
# (10.244.2.2:80); nat-postrouting's masquerading chain SNATs it. No fault.

apply() { :; }
revert() { :; }

# Standalone use: bash lab/scenarios/THIS.sh apply|revert
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  # shellcheck source=lab/lib.sh
  source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
  "${1:?usage: $0 apply|revert}"
fi

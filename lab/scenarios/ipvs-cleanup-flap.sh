# shellcheck shell=bash
# ipvs-cleanup-flap (IPVS mode): kube-vip and kube-proxy fight over the API
# server VIP. kube-vip (control-plane load balancing) keeps an IPVS virtual
# service 192.168.0.100:6443 -> API server 192.168.0.12:6443 on node1, its
# leader, and re-creates it every second when it is missing; kube-proxy in
# IPVS mode deletes, at every sync, the virtual services it did not create
# (unless --ipvs-exclude-cidrs covers them). So the service flaps: while it
# exists a connection reaches the API server, while it is gone the SYN to
# the VIP (a local address, with no listener) gets a TCP reset.
#
# Both controllers are lab/ipvs-actor.sh processes on node1 whose IPVS
# changes come from tasks named kube-vip and kube-proxy. kube-proxy syncs
# every second, half a second after kube-vip: the service is there about half
# of the time. The lab masquerades the load-balanced traffic on node1 (rule
# commented netwhy-lab) so the API server's replies return through it.

VIP=192.168.0.100:6443
BACKEND=192.168.0.12:6443
SNAT_RULE=(POSTROUTING -d 192.168.0.12/32 -p tcp -m tcp --dport 6443
  -m comment --comment "netwhy-lab: SNAT kube-vip control-plane LB traffic" -j MASQUERADE)

apply() {
  ns_flush_conntrack nw-node1
  in_ns nw-node1 iptables -t nat -A "${SNAT_RULE[@]}"
  start_actor nw-node1 kube-vip kube-vip "$STATE_DIR/bin" 1 "$VIP" "$BACKEND"
  wait_until 30 "kube-vip's service $VIP" in_ns nw-node1 ipvsadm -Ln -t "$VIP"
  start_actor nw-node1 kube-proxy kube-proxy "$STATE_DIR/bin" 1 \
    "$(ipvs_known_file nw-node1)" 0.5
}

revert() {
  stop_actor kube-proxy
  stop_actor kube-vip
  in_ns nw-node1 ipvsadm -D -t "$VIP" 2>/dev/null || true
  in_ns nw-node1 iptables -t nat -D "${SNAT_RULE[@]}" 2>/dev/null || true
  ns_flush_conntrack nw-node1
}

evidence() {
  local f
  in_ns nw-node1 ipvsadm -Ln -t "$VIP" 2>&1 || true
  for f in kube-vip kube-proxy; do
    [[ -e "$STATE_DIR/$f.log" ]] || continue
    printf '%s: %s changes; last: %s\n' "$f" \
      "$(grep -c -e 'created' -e 'deleted' "$STATE_DIR/$f.log" || true)" \
      "$(grep -e 'created' -e 'deleted' "$STATE_DIR/$f.log" | tail -n1)"
  done
  local pgid
  for f in kube-vip kube-proxy; do
    pgid="$(actor_pgid "$STATE_DIR/$f.actor")"
    [[ -n "$pgid" ]] && ps -o pid=,comm=,args= -s "$pgid" | sed "s/^/$f process: /"
  done
  return 0
}

# Standalone use: bash lab/scenarios/THIS.sh apply|revert|evidence
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  # shellcheck source=lab/lib.sh
  source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
  "${1:?usage: $0 apply|revert|evidence}"
fi

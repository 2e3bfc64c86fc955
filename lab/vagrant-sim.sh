#!/usr/bin/env bash
# Check the Vagrant layout without Vagrant: the three VMs become network
# namespaces nwv-client, nwv-node1, nwv-node2 (with a NAT-like eth0 and a
# default route, the LANs on eth1/eth2 with the Vagrantfile's addresses, on
# bridges in nwv-lan), and each runs lab.sh with NW_LAB_BACKEND=local and its
# role, in the order lab/vagrant-lab.sh uses. Meant for the microVM (IPVS):
#
#   NETWHY_IN_VM=1 lab/vagrant-sim.sh [--ipvs|--iptables] [RUNS]
#
# Prints "RESULT <scenario> run <n> on <machine>: exit <code>: <last line>"
# per client run. Everything it creates is removed at exit.
set -euo pipefail

[[ "${NETWHY_IN_VM:-}" == 1 ]] || {
  echo "vagrant-sim.sh makes namespaces outside the lab's nw- prefix: run it in the microVM (NETWHY_IN_VM=1)" >&2
  exit 2
}
mode="${1:---ipvs}"
runs="${2:-1}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
machines=(node1 node2 client)

for m in ip_vs ip_vs_rr ip_vs_wrr ip_vs_sh nf_conntrack br_netfilter dummy; do
  modprobe -q "$m" 2>/dev/null || true
done

# vm MACHINE CMD... : run CMD "on" a simulated VM. nsenter, not ip netns exec:
# the pods a VM creates (ip netns add) must outlive the command.
vm() {
  local m="$1"
  shift
  nsenter --net="/run/netns/nwv-$m" "$@"
}

cleanup() {
  local m
  for m in "${machines[@]}"; do
    lab "$m" down >/dev/null 2>&1 || true
  done
  for m in "${machines[@]}" lan; do
    ip netns del "nwv-$m" 2>/dev/null || true
  done
}
trap cleanup EXIT

ip netns add nwv-lan
vm lan ip link set lo up
for br in br0 br1; do
  vm lan ip link add "$br" type bridge
  vm lan ip link set "$br" up
done
vm lan sysctl -qw net.bridge.bridge-nf-call-iptables=0

# cable MACHINE BRIDGE IFNAME ADDR/PREFIX
cable() {
  vm lan ip link add "v-$1-$3" type veth peer name "$3" netns "nwv-$1"
  vm lan ip link set "v-$1-$3" master "$2" up
  vm "$1" ip addr add "$4" dev "$3"
  vm "$1" ip link set "$3" up
}
for m in "${machines[@]}"; do
  ip netns add "nwv-$m"
  vm "$m" ip link set lo up
  vm "$m" ip link add eth0 type dummy # Vagrant's NAT interface
  vm "$m" ip addr add 10.0.2.15/24 dev eth0
  vm "$m" ip link set eth0 up
  vm "$m" ip route add default via 10.0.2.2 dev eth0
done
cable client br0 eth1 192.168.0.10/24
cable client br1 eth2 192.168.1.10/24
cable node1 br0 eth1 192.168.0.11/24
cable node2 br0 eth1 192.168.0.12/24
cable node2 br1 eth2 192.168.1.12/24

# lab MACHINE ARGS... : lab.sh as /usr/local/sbin/nw-lab runs it on a VM.
lab() {
  local m="$1"
  shift
  vm "$m" env NW_LAB_BACKEND=local NW_LAB_ROLE="$m" NW_LAB_LAN_IF=eth1 \
    NW_LAB_LAN2_IF="$([[ "$m" == node1 ]] && echo none || echo eth2)" \
    NW_LAB_STATE_DIR="/run/nwv-state-$m" bash "$here/lab.sh" "$@"
}

everywhere() {
  local m
  for m in "${machines[@]}"; do
    lab "$m" "$@"
  done
}

everywhere up "$mode"
fails=0
while read -r name; do
  for ((r = 1; r <= runs; r++)); do
    everywhere apply "$name"
    machine="$(lab node1 client-machine "$name")"
    rc=0
    out="$(lab "$machine" run-client "$name" 2>/dev/null)" || rc=$?
    echo "RESULT $name run $r on $machine: exit $rc: $(tail -n 1 <<<"$out")"
    everywhere revert "$name"
  done
done < <(lab node1 list "$mode")
everywhere down
for m in "${machines[@]}"; do
  left="$(vm "$m" iptables-save | grep -c -e KUBE- -e kube- || true)"
  echo "after down, $m: $left lab iptables lines, $(vm "$m" ip -4 -o addr show | grep -c -e 192.168.0.100 -e 192.168.0.200 || true) lab addresses"
  ((left == 0)) || fails=$((fails + 1))
done
((fails == 0))

# shellcheck shell=bash
# Shared helpers for the netwhy lab. Sourced by lab.sh and by scenario scripts;
# never executed directly.
#
# The lab is a tiny Kubernetes-shaped network built from network namespaces:
#
#   nw-client --eth0-- br-lan  (in nw-lan) --eth0-- nw-node1 --cni0-- nw-pod1
#            \                             \-eth0-- nw-node2 --cni0-- nw-pod2, nw-coredns, nw-pod3
#             \-eth1-- br-lan2 (in nw-lan) ---eth1-- nw-node2
#
# Every command that must run "on" a machine goes through in_ns. Two backends
# (NW_LAB_BACKEND):
#   netns  (default) every machine is a network namespace on this host.
#   local  every machine is a real host (the Vagrant VMs, see lab/VAGRANT.md);
#          this host is the one named by NW_LAB_ROLE (client, node1, node2).
#          in_ns runs commands for this machine (and for the pods it hosts,
#          which stay network namespaces) and skips everything else, so every
#          VM runs the same scripts and each does its own part. The LAN is the
#          VMs' private network (NW_LAB_LAN_IF, NW_LAB_LAN2_IF name its NICs).
#          "vagrant" is accepted as another name for it.
#
# Two modes (lab.sh up [--ipvs]): kube-proxy in iptables mode (default) or in
# IPVS mode (see "kube-proxy (IPVS mode)" below); the mode is kept in
# $STATE_DIR/mode and each scenario belongs to one mode (ipvs-* to IPVS).

# Guard against double sourcing (scenario scripts source this too).
if [[ -n "${NW_LIB_LOADED:-}" ]]; then
  return 0
fi
NW_LIB_LOADED=1

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE_DIR="${NW_LAB_STATE_DIR:-/run/netwhy-lab}"
LAB_BACKEND="${NW_LAB_BACKEND:-netns}"
if [[ "$LAB_BACKEND" == vagrant ]]; then
  LAB_BACKEND=local
fi
# local backend: which machine this host is, and the NICs on the two LANs.
LAB_ROLE="${NW_LAB_ROLE:-}"
LAN_IF="${NW_LAB_LAN_IF:-eth0}"
LAN2_IF="${NW_LAB_LAN2_IF:-eth1}"
# All lab namespaces share this prefix; down removes exactly these.
NS_PREFIX="nw-"

# The machines, in creation order. Pods come after their node because the
# CNI plugins that wire them run inside the node.
LAB_NAMESPACES=(nw-lan nw-client nw-node1 nw-node2 nw-pod1 nw-pod2 nw-coredns nw-pod3)

# ---------------------------------------------------------------- logging --

log() { printf '[lab] %s\n' "$*" >&2; }
warn() { printf '[lab] WARNING: %s\n' "$*" >&2; }
die() {
  printf '[lab] ERROR: %s\n' "$*" >&2
  exit 1
}

# ------------------------------------------------------------- execution --

# lab_machine NAME : the machine (local backend) that hosts namespace NAME;
# empty for nw-lan, which is the VMs' private network there.
lab_machine() {
  case "$1" in
    nw-client) echo client ;;
    nw-node1 | nw-pod1) echo node1 ;;
    nw-node2 | nw-pod2 | nw-coredns | nw-pod3) echo node2 ;;
    *) echo "" ;;
  esac
}

# is_machine_ns NAME : true if NAME is a whole machine (a VM's own root
# namespace in the local backend) rather than a pod.
is_machine_ns() {
  case "$1" in
    nw-client | nw-node1 | nw-node2) return 0 ;;
    *) return 1 ;;
  esac
}

# ns_here NAME : true if commands for NAME run on this host.
ns_here() {
  [[ "$LAB_BACKEND" == netns ]] || [[ -n "$LAB_ROLE" && "$(lab_machine "$1")" == "$LAB_ROLE" ]]
}

# lan_dev IFNAME : the device that plays the lab's LAN interface IFNAME
# (eth0: the 192.168.0.0/24 LAN, eth1: the 192.168.1.0/24 one).
lan_dev() {
  case "$1" in
    eth0) echo "$LAN_IF" ;;
    eth1) echo "$LAN2_IF" ;;
    *) echo "$1" ;;
  esac
}

# netns_argv NAME : print, NUL-separated, the argv prefix that runs a command
# on NAME from this host (for wrappers such as netwhy explain -- ...).
netns_argv() {
  if [[ "$LAB_BACKEND" == local ]] && is_machine_ns "$1"; then
    return 0
  fi
  printf '%s\0' ip netns exec "$1"
}

# in_ns NAME CMD... : run CMD on machine NAME. The one place that knows what
# "a machine" is. netns backend: the network namespace NAME on this host.
# local backend: this host if it is NAME (or a pod namespace on this host if
# NAME is one of its pods); a command for another machine is skipped (that
# machine runs it when it runs the same step).
in_ns() {
  local name="$1"
  shift
  case "$LAB_BACKEND" in
    netns)
      ip netns exec "$name" "$@"
      ;;
    local)
      [[ -n "$LAB_ROLE" ]] || die "NW_LAB_BACKEND=local needs NW_LAB_ROLE (client, node1 or node2)"
      ns_here "$name" || return 0
      if is_machine_ns "$name"; then
        "$@"
      else
        ip netns exec "$name" "$@"
      fi
      ;;
    *)
      die "unknown NW_LAB_BACKEND '$LAB_BACKEND'"
      ;;
  esac
}

# in_ns_bg NAME LOGFILE CMD... : start a long-lived process on NAME, detached
# from our stdio (so callers capturing our output, e.g. a test runner, do not
# wait for it) and in its own session (so the caller's Ctrl-C does not reach it).
in_ns_bg() {
  local name="$1" logfile="$2"
  shift 2
  in_ns "$name" setsid "$@" </dev/null >>"$logfile" 2>&1 &
}

# ns_sysctl NAME KEY VALUE : set a sysctl on machine NAME (quietly).
ns_sysctl() {
  in_ns "$1" sysctl -qw "$2=$3" >/dev/null
}

# ns_sysctl_get NAME KEY : print the value of a sysctl on machine NAME.
ns_sysctl_get() {
  in_ns "$1" sysctl -n "$2"
}

# ns_rp_filter NAME VALUE : set rp_filter on all, default and every existing
# interface. The kernel uses max(conf.all, conf.<dev>), so setting only "all"
# would not lower a per-device value inherited from the host.
ns_rp_filter() {
  ns_conf_all "$1" rp_filter "$2"
}

# ns_flush_conntrack NAME : forget NAT/conntrack state so a scenario starts
# clean (otherwise an old entry could mask or fake a fault).
ns_flush_conntrack() {
  in_ns "$1" conntrack -F >/dev/null 2>&1 || true
}

# ns_exists NAME : true if the namespace exists on this host (local backend:
# a machine is always there; another machine's pods are not checked).
ns_exists() {
  if [[ "$LAB_BACKEND" == local ]]; then
    is_machine_ns "$1" || ! ns_here "$1" || [[ -e "/run/netns/$1" ]]
    return
  fi
  [[ -e "/run/netns/$1" ]]
}

# lab_namespaces : every namespace on the host that belongs to the lab, found
# by prefix rather than from LAB_NAMESPACES so a crashed older layout is also
# cleaned up.
lab_namespaces() {
  local ns
  while read -r ns _; do
    # local backend: only this machine's pods (another machine's are not ours
    # to delete, should they be visible here).
    if [[ "$ns" == "$NS_PREFIX"* ]] && { [[ "$LAB_BACKEND" == netns ]] || ns_here "$ns"; }; then
      printf '%s\n' "$ns"
    fi
  done < <(ip netns list 2>/dev/null)
}

# --------------------------------------------------------------- topology --

# make_ns NAME : create an empty namespace with lo up, dual-stack. IPv6 without
# duplicate address detection (every address is usable at once, so runs are
# deterministic), router solicitations or router advertisements: the lab's
# addresses and routes are all static.
make_ns() {
  local name="$1"
  if [[ "$LAB_BACKEND" == netns ]] || { ns_here "$name" && ! is_machine_ns "$name"; }; then
    ip netns add "$name"
  fi
  in_ns "$name" sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0 \
    net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
    net.ipv6.conf.all.router_solicitations=0 net.ipv6.conf.default.router_solicitations=0 \
    net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0 >/dev/null
  in_ns "$name" ip link set lo up
}

# addr6 NS DEV ADDR/PREFIX : a static IPv6 address, usable at once (nodad).
addr6() {
  in_ns "$1" ip -6 addr replace "$3" dev "$(lan_dev "$2")" nodad
}

# wire_veth NS_A IF_A NS_B IF_B : a cable between two machines. The pair is
# created inside NS_A with the peer placed straight into NS_B, so no device
# ever appears in the host namespace.
wire_veth() {
  local ns_a="$1" if_a="$2" ns_b="$3" if_b="$4"
  in_ns "$ns_a" ip link add "$if_a" type veth peer name "$if_b" netns "$ns_b"
  in_ns "$ns_a" ip link set "$if_a" up
  in_ns "$ns_b" ip link set "$if_b" up
}

# make_bridge NS BRIDGE [ADDR/PREFIX]
make_bridge() {
  local ns="$1" br="$2" addr="${3:-}"
  in_ns "$ns" ip link add "$br" type bridge
  if [[ -n "$addr" ]]; then
    in_ns "$ns" ip addr add "$addr" dev "$br"
  fi
  in_ns "$ns" ip link set "$br" up
}

# plug NS_SWITCH BRIDGE PORT NS_HOST IF ADDR/PREFIX : connect a machine's
# interface IF to a bridge port and give it an address.
plug() {
  local sw="$1" br="$2" port="$3" host="$4" ifname="$5" addr="$6"
  if [[ "$LAB_BACKEND" == local && "$sw" == nw-lan ]]; then
    # The VMs' private network is the cable and the switch.
    in_ns "$host" ip addr replace "$addr" dev "$(lan_dev "$ifname")"
    return 0
  fi
  wire_veth "$sw" "$port" "$host" "$ifname"
  in_ns "$sw" ip link set "$port" master "$br"
  in_ns "$host" ip addr add "$addr" dev "$ifname"
}

# ns_conf_all NAME KEY VALUE : set net.ipv4.conf.*.KEY on all, default and
# every existing interface (for keys the kernel combines across all/<dev>).
# One command on the machine (each exec is costly in the microVM).
ns_conf_all() {
  local name="$1" key="$2" value="$3"
  # shellcheck disable=SC2016 # expanded by the inner bash, from its argv
  in_ns "$name" bash -c 'for d in /proc/sys/net/ipv4/conf/*/; do printf "%s\n" "$1" >"$d$0" || exit 1; done' \
    "$key" "$value"
}

# node_defaults NAME : the sysctls a Kubernetes node gets from its installer.
node_defaults() {
  local name="$1"
  ns_sysctl "$name" net.ipv4.ip_forward 1
  ns_rp_filter "$name" 0
  # NodePort traffic enters and leaves node1 on eth0 (host-gw), which makes
  # the kernel send ICMP redirects to the client. They share the per-peer
  # ICMP rate limit with the unreachables the faults produce and would make
  # those flaky, so turn them off (effective value is all OR <dev>).
  ns_conf_all "$name" send_redirects 0
  # Lab determinism: the per-destination ICMP limiter (1/s, burst 6) shares
  # its tokens with ip_error()'s own limiter, so a few no-route runs in a row
  # starve the client of "net unreachable" and it times out instead. Turn
  # the icmp_send() limiter off so every fault answers the same way each run.
  ns_sysctl "$name" net.ipv4.icmp_ratelimit 0
  # Dual-stack: IPv6 forwarding (only conf.all counts in ip6_forward), and
  # the same determinism for ICMPv6 errors.
  ns_sysctl "$name" net.ipv6.conf.all.forwarding 1
  ns_sysctl "$name" net.ipv6.icmp.ratelimit 0
}

# ------------------------------------------------------------------ pods --
#
# The lab is the container runtime here: for each pod it creates the netns,
# calls the real CNI plugins per the CNI spec (as containerd's CRI does through
# libcni: a loopback network, then the pod network), writes libcni's result
# cache, and, where containerd is installed, runs the pod's sandbox as a real
# containerd container in namespace k8s.io joined to that netns. Everything
# lives under $STATE_DIR: nothing in /etc/cni, /var/lib/cni or /etc/containerd.

# The pods: NETNS NODE ADDRESS K8S_NAMESPACE K8S_NAME. Other code relies on
# these names (netwhy names pods from the CNI cache and containerd labels).
LAB_PODS=(
  "nw-pod1 nw-node1 10.244.1.2 default client-5f7b9c6d8-k2xqp"
  "nw-pod2 nw-node2 10.244.2.2 default web-7c9f5b6d4-x8mzt"
  "nw-coredns nw-node2 10.244.2.3 kube-system coredns-5d78c9869d-q8x2k"
  "nw-pod3 nw-node2 10.244.2.4 default tools-6b8f7d9c5-p4wz7"
)

CNI_BIN_DIR="${NW_LAB_CNI_PATH:-/usr/lib/cni}"
# libcni's cache dir layout: results/<network>-<containerID>-<ifname>.
CNI_DIR="$STATE_DIR/cni"
# flannel's network name; its bridge is cni0 as here.
CNI_NETWORK=cbr0

# pod_spec NETNS : the LAB_PODS line of a pod netns.
pod_spec() {
  local line
  for line in "${LAB_PODS[@]}"; do
    [[ "${line%% *}" == "$1" ]] && { printf '%s\n' "$line"; return 0; }
  done
  die "not a lab pod: $1"
}

# pod_container_id K8S_NAMESPACE K8S_NAME : the sandbox's container ID, 64
# hex characters like a CRI sandbox ID, stable across ups.
pod_container_id() {
  printf '%s/%s' "$1" "$2" | sha256sum | cut -c1-64
}

# pod_uid K8S_NAMESPACE K8S_NAME : a stable UUID-shaped pod UID.
pod_uid() {
  local h
  h="$(printf 'uid:%s/%s' "$1" "$2" | sha256sum)"
  printf '%s-%s-%s-%s-%s\n' "${h:0:8}" "${h:8:4}" "${h:12:4}" "${h:16:4}" "${h:20:12}"
}

# cni_conflist NODE : the node's pod network, as a node's /etc/cni/net.d
# conflist would hold it. hairpinMode as flannel's bridge config sets it
# (kubelet's hairpin-veth); no promiscMode: a promiscuous cni0 passes flooded
# frames up to its own IP stack, where they die as OTHERHOST and would add
# drops to traces. No ipMasq: host-gw routes pod addresses unchanged. The
# "ips" capability lets the runtime ask host-local for each pod's fixed
# address (runtimeConfig.ips, as podman --ip does).
cni_conflist() {
  local node="$1" cidr gw cidr6
  cidr="$(node_pod_cidr "$node")"
  gw="${cidr%.*}.1"
  cidr6="$(node_pod_cidr6 "$node")"
  # Dual-stack as flannel/Calico host-local configs write it: a second range
  # set in the same ipam (each pod gets one address of each), a default
  # route of each family.
  printf '{"cniVersion":"1.0.0","name":"%s","plugins":[{"type":"bridge","bridge":"cni0","isGateway":true,"ipMasq":false,"hairpinMode":true,"capabilities":{"ips":true},"ipam":{"type":"host-local","dataDir":"%s","ranges":[[{"subnet":"%s","gateway":"%s"}],[{"subnet":"%s","gateway":"%s"}]],"routes":[{"dst":"0.0.0.0/0"},{"dst":"::/0"}]}}]}\n' \
    "$CNI_NETWORK" "$CNI_DIR/networks/$node" "$cidr" "$gw" "$cidr6" "${cidr6%/*}1"
}

# pod_addr6 10.244.N.X : the pod's IPv6 address, fd00:10:244:N::X.
pod_addr6() {
  local a="$1" n x
  n="$(cut -d. -f3 <<<"$a")"
  x="$(cut -d. -f4 <<<"$a")"
  printf 'fd00:10:244:%s::%s\n' "$n" "$x"
}

# containerd's CRI sets up lo through this network before the pod's own.
CNI_LOOPBACK_CONFLIST='{"cniVersion":"0.3.1","name":"cni-loopback","plugins":[{"type":"loopback"}]}'

# cni_args_json K8S_NAMESPACE K8S_NAME CONTAINER_ID UID : CNI_ARGS as the
# [key, value] pairs libcni keeps (the order CRI passes them).
cni_args_json() {
  printf '[["IgnoreUnknown","1"],["K8S_POD_NAMESPACE","%s"],["K8S_POD_NAME","%s"],["K8S_POD_INFRA_CONTAINER_ID","%s"],["K8S_POD_UID","%s"]]' "$@"
}

# cni_plugins NODE COMMAND CONFLIST_FILE CONTAINER_ID NETNS_PATH IFNAME
#   CNI_ARGS_JSON CAPABILITY_ARGS_JSON PREV_RESULT_JSON : run each plugin of
# the list on NODE as libcni does (ADD in order, chaining prevResult; DEL in
# reverse order with the cached result as prevResult); print the last ADD
# result.
cni_plugins() {
  local node="$1" cmd="$2" conf="$3" cid="$4" netns="$5" ifname="$6" args="$7" caps="$8" prev="$9"
  local n i order env_args stdin type out
  n="$(jq '.plugins | length' "$conf")"
  env_args="$(jq -r 'map("\(.[0])=\(.[1])") | join(";")' <<<"$args")"
  if [[ "$cmd" == ADD ]]; then order=$(seq 0 $((n - 1))); else order=$(seq $((n - 1)) -1 0); fi
  for i in $order; do
    # libcni's buildOneConfig: the plugin's entry plus the list's name and
    # cniVersion, prevResult, and the capability args the plugin declares.
    stdin="$(jq -c --argjson i "$i" --argjson prev "$prev" --argjson caps "$caps" '
      .plugins[$i] as $p
      | ([($p.capabilities // {}) | to_entries[] | select(.value) | .key
          | select($caps[.] != null) | {(.): $caps[.]}] | add) as $rc
      | $p + {name: .name, cniVersion: .cniVersion}
      + (if $prev == null then {} else {prevResult: $prev} end)
      + (if $rc == null then {} else {runtimeConfig: $rc} end)' "$conf")"
    type="$(jq -r '.type' <<<"$stdin")"
    out="$(in_ns "$node" env CNI_COMMAND="$cmd" CNI_CONTAINERID="$cid" CNI_NETNS="$netns" \
      CNI_IFNAME="$ifname" CNI_PATH="$CNI_BIN_DIR" CNI_ARGS="$env_args" \
      "$CNI_BIN_DIR/$type" <<<"$stdin")" || {
      warn "CNI $cmd of $type for $netns failed: $out"
      return 1
    }
    [[ "$cmd" != ADD ]] || prev="$out"
  done
  [[ "$cmd" != ADD ]] || printf '%s\n' "$prev"
}

# cni_add NODE CONFLIST_FILE CONTAINER_ID NETNS_PATH IFNAME CNI_ARGS_JSON
#   CAPABILITY_ARGS_JSON : libcni's AddNetworkList: the plugins, then the
# cache file (cachedInfo, kind cniCacheV1: the list's bytes base64, the
# runtime's arguments, the result with its keys sorted as Go writes a map).
cni_add() {
  local node="$1" conf="$2" cid="$3" netns="$4" ifname="$5" args="$6" caps="$7" result name
  result="$(cni_plugins "$node" ADD "$conf" "$cid" "$netns" "$ifname" "$args" "$caps" null)"
  name="$(jq -r .name "$conf")"
  mkdir -p -m 0700 "$CNI_DIR/results"
  (
    umask 077
    jq -cn --arg cid "$cid" --arg config "$(base64 -w0 "$conf")" --arg ifname "$ifname" \
      --arg name "$name" --arg netns "$netns" --argjson args "$args" --argjson caps "$caps" \
      --argjson result "$(jq -cS . <<<"$result")" '
      {kind: "cniCacheV1", containerId: $cid, config: $config, ifName: $ifname,
       networkName: $name, netns: $netns, cniArgs: $args}
      + (if $caps == {} then {} else {capabilityArgs: $caps} end)
      + {result: $result}' >"$CNI_DIR/results/$name-$cid-$ifname"
  )
}

# cni_del CACHE_FILE : libcni's DelNetworkList for one cached attachment:
# everything it needs (config, args, result) comes from the cache, as when a
# runtime tears a pod down after a restart. The plugins run on the pod's node.
cni_del() {
  local file="$1" conf cid netns ifname args caps prev node
  conf="$(mktemp)"
  jq -r .config "$file" | base64 -d >"$conf"
  cid="$(jq -r .containerId "$file")"
  netns="$(jq -r .netns "$file")"
  ifname="$(jq -r .ifName "$file")"
  args="$(jq -c .cniArgs "$file")"
  caps="$(jq -c '.capabilityArgs // {}' "$file")"
  prev="$(jq -c '.result // null' "$file")"
  node="nw-$(lab_machine "${netns##*/}")"
  if [[ "$node" != nw- ]] && ns_exists "$node"; then
    cni_plugins "$node" DEL "$conf" "$cid" "$netns" "$ifname" "$args" "$caps" "$prev" ||
      warn "CNI DEL failed for $file"
  fi
  rm -f "$conf" "$file"
}

# cni_del_all : DEL every cached attachment on this machine, each pod's own
# network before its loopback (the reverse of ADD).
cni_del_all() {
  local f
  [[ -d "$CNI_DIR/results" ]] || return 0
  for f in "$CNI_DIR"/results/*; do
    [[ -e "$f" && "$f" != */cni-loopback-* ]] && cni_del "$f"
  done
  for f in "$CNI_DIR"/results/cni-loopback-*; do
    [[ -e "$f" ]] && cni_del "$f"
  done
  return 0
}

# add_pod POD : what kubelet and the runtime do for a pod sandbox: the netns,
# CNI ADD of the loopback and the pod network (eth0 on the node's cni0 with
# the pod's address, default route via cni0), then the sandbox container.
add_pod() {
  local pod="$1" node addr k8s_ns k8s_name cid uid args conf
  read -r _ node addr k8s_ns k8s_name <<<"$(pod_spec "$pod")"
  ns_here "$pod" || return 0
  make_ns "$pod"
  cid="$(pod_container_id "$k8s_ns" "$k8s_name")"
  uid="$(pod_uid "$k8s_ns" "$k8s_name")"
  args="$(cni_args_json "$k8s_ns" "$k8s_name" "$cid" "$uid")"
  mkdir -p "$CNI_DIR/net.d/$node"
  conf="$CNI_DIR/net.d/$node/10-$CNI_NETWORK.conflist"
  [[ -e "$conf" ]] || cni_conflist "$node" >"$conf"
  printf '%s\n' "$CNI_LOOPBACK_CONFLIST" >"$CNI_DIR/net.d/99-loopback.conflist"
  cni_add "$node" "$CNI_DIR/net.d/99-loopback.conflist" "$cid" "/run/netns/$pod" lo "$args" '{}'
  cni_add "$node" "$conf" "$cid" "/run/netns/$pod" eth0 "$args" "{\"ips\":[\"$addr/24\",\"$(pod_addr6 "$addr")/64\"]}"
  if containerd_enabled; then
    sandbox_run "$pod" "$k8s_ns" "$k8s_name" "$cid" "$uid"
  fi
}

# ------------------------------------------------------------ containerd --
#
# Where containerd is installed, each pod's sandbox is a real containerd
# container in namespace k8s.io, labelled as CRI labels sandboxes, whose netns
# is the pod's. The lab runs its own containerd: its own root, state, sockets
# and config (CRI plugin off, so it reads nothing in /etc/cni; no
# /etc/containerd), beside any system containerd. The sandbox runs
# `sleep infinity` from a busybox image built here; the pod's servers still
# run through ip netns exec: the container is what names the pod.

CTRD_DIR="$STATE_DIR/containerd"
CTRD_SOCK="$CTRD_DIR/containerd.sock"
CTRD_NS=k8s.io
CTRD_IMAGE=netwhy.local/lab-pause:1
# The sandboxes' cgroup parent (v1: one per hierarchy), removed at down.
CTRD_CGROUP=netwhy-lab

ctr_lab() {
  ctr -a "$CTRD_SOCK" -n "$CTRD_NS" "$@"
}

# containerd_enabled : this up runs the pods as containers.
containerd_enabled() {
  [[ -e "$CTRD_DIR/containerd.pid" ]]
}

# containerd_wanted : whether to run containerd here; says once why not.
containerd_wanted() {
  if [[ "$LAB_BACKEND" == local ]]; then
    # The VMs' pods stay network namespaces on their node (lab/VAGRANT.md).
    [[ "$LAB_ROLE" != node* ]] || log "local backend: pods are network namespaces wired by CNI, without containers"
    return 1
  fi
  if [[ "${NW_LAB_CONTAINERD:-auto}" == 0 ]]; then
    log "NW_LAB_CONTAINERD=0: pods are network namespaces wired by CNI, without containers"
    return 1
  fi
  if [[ "${NETWHY_IN_VM:-}" == 1 ]]; then
    # Every exec is slow under emulation, and the pods need no containers
    # for the IPVS scenarios.
    log "microVM: pods are network namespaces wired by CNI, without containers"
    return 1
  fi
  if ! command -v containerd >/dev/null || ! command -v ctr >/dev/null || ! command -v runc >/dev/null; then
    log "containerd is not installed: pods are network namespaces wired by CNI, without containers"
    return 1
  fi
}

# containerd_pid : the pid of the lab's containerd, if it is still ours.
containerd_pid() {
  local pid
  pid="$(cat "$CTRD_DIR/containerd.pid" 2>/dev/null || true)"
  if [[ "$pid" =~ ^[0-9]+$ ]] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "--address $CTRD_SOCK"; then
    printf '%s\n' "$pid"
  fi
}

containerd_start() {
  containerd_wanted || return 0
  mkdir -p "$CTRD_DIR/root" "$CTRD_DIR/state" "$CTRD_DIR/opt"
  # containerd 1.6 puts its shims' sockets in /run/containerd/s whatever its
  # state dir; remember to remove the directory if it is ours.
  [[ -e /run/containerd ]] || : >"$CTRD_DIR/made-run-containerd"
  printf '%s\n' \
    'version = 2' \
    "root = \"$CTRD_DIR/root\"" \
    "state = \"$CTRD_DIR/state\"" \
    'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]' \
    '[grpc]' "  address = \"$CTRD_SOCK\"" \
    '[ttrpc]' "  address = \"$CTRD_SOCK.ttrpc\"" \
    '[plugins."io.containerd.internal.v1.opt"]' "  path = \"$CTRD_DIR/opt\"" \
    >"$CTRD_DIR/config.toml"
  # On the host (the node), not in a lab namespace, like a node's own;
  # in its own session so the caller's Ctrl-C does not reach it.
  setsid containerd --config "$CTRD_DIR/config.toml" --root "$CTRD_DIR/root" \
    --state "$CTRD_DIR/state" --address "$CTRD_SOCK" </dev/null >>"$STATE_DIR/containerd.log" 2>&1 &
  echo $! >"$CTRD_DIR/containerd.pid"
  wait_until 30 "containerd on $CTRD_SOCK" ctr_lab version
  containerd_image
  log "containerd: $CTRD_SOCK, namespace $CTRD_NS, image $CTRD_IMAGE"
}

# oci_blob DIR FILE : move FILE into the OCI layout DIR as a blob; print
# "sha256:HEX SIZE".
oci_blob() {
  local hex size
  hex="$(sha256sum "$2" | cut -c1-64)"
  size="$(stat -c %s "$2")"
  mv "$2" "$1/blobs/sha256/$hex"
  printf 'sha256:%s %s\n' "$hex" "$size"
}

# containerd_image : the sandbox image, built from busybox-static (one layer:
# /bin/busybox and its applet links), as an OCI image layout, imported.
containerd_image() {
  local d="$CTRD_DIR/image" arch applet layer layer_size cfg cfg_size mf mf_size
  case "$(uname -m)" in
    x86_64) arch=amd64 ;;
    aarch64) arch=arm64 ;;
    *) arch="$(uname -m)" ;;
  esac
  rm -rf "$d"
  mkdir -p "$d/rootfs/bin" "$d/rootfs/proc" "$d/rootfs/sys" "$d/rootfs/dev" "$d/rootfs/etc" \
    "$d/rootfs/tmp" "$d/oci/blobs/sha256"
  cp /bin/busybox "$d/rootfs/bin/busybox"
  while read -r applet; do
    [[ "$applet" == bin/busybox ]] && continue
    mkdir -p "$d/rootfs/${applet%/*}"
    ln -sf /bin/busybox "$d/rootfs/$applet"
  done < <(/bin/busybox --list-full)
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$d/rootfs" -cf "$d/layer.tar" .
  read -r layer layer_size <<<"$(oci_blob "$d/oci" "$d/layer.tar")"
  printf '{"architecture":"%s","os":"linux","config":{"Cmd":["sleep","infinity"]},"rootfs":{"type":"layers","diff_ids":["%s"]}}' \
    "$arch" "$layer" >"$d/config.json"
  read -r cfg cfg_size <<<"$(oci_blob "$d/oci" "$d/config.json")"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%s}]}' \
    "$cfg" "$cfg_size" "$layer" "$layer_size" >"$d/manifest.json"
  read -r mf mf_size <<<"$(oci_blob "$d/oci" "$d/manifest.json")"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%s,"platform":{"architecture":"%s","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$mf" "$mf_size" "$arch" "$CTRD_IMAGE" "${CTRD_IMAGE##*:}" >"$d/oci/index.json"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$d/oci/oci-layout"
  tar -C "$d/oci" -cf "$d/image.tar" .
  ctr_lab images import "$d/image.tar" >/dev/null
  rm -rf "$d"
}

# sandbox_run POD K8S_NAMESPACE K8S_NAME CONTAINER_ID UID : the pod's
# sandbox, with the labels and annotations CRI gives one, in the pod's netns.
sandbox_run() {
  local pod="$1" k8s_ns="$2" k8s_name="$3" cid="$4" uid="$5"
  ctr_lab run -d --null-io --cgroup "/$CTRD_CGROUP/$cid" --runc-root "$CTRD_DIR/runc" \
    --with-ns "network:/run/netns/$pod" \
    --label "io.kubernetes.pod.name=$k8s_name" --label "io.kubernetes.pod.namespace=$k8s_ns" \
    --label "io.kubernetes.pod.uid=$uid" --label io.kubernetes.container.name=POD \
    --label io.cri-containerd.kind=sandbox \
    --annotation io.kubernetes.cri.container-type=sandbox --annotation "io.kubernetes.cri.sandbox-id=$cid" \
    --annotation "io.kubernetes.cri.sandbox-name=$k8s_name" \
    --annotation "io.kubernetes.cri.sandbox-namespace=$k8s_ns" \
    --annotation "io.kubernetes.cri.sandbox-uid=$uid" \
    "$CTRD_IMAGE" "$cid" sleep infinity >/dev/null
}

# containerd_stop : the sandboxes (through containerd), then containerd itself,
# waiting for it to exit; after a crash also its orphaned shims, mounts and
# cgroups. Nothing of it stays.
containerd_stop() {
  local pid id cg _
  pid="$(containerd_pid)"
  if [[ -n "$pid" && -S "$CTRD_SOCK" ]] && ctr_lab version >/dev/null 2>&1; then
    for id in $(ctr_lab tasks ls -q 2>/dev/null); do
      ctr_lab tasks delete -f "$id" >/dev/null 2>&1 || warn "could not delete task $id"
    done
    for id in $(ctr_lab containers ls -q 2>/dev/null); do
      ctr_lab containers delete "$id" >/dev/null 2>&1 || warn "could not delete container $id"
    done
  fi
  if [[ -n "$pid" ]]; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in {1..100}; do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  containerd_orphans
  # A shim killed after a crash leaves its socket (named by
  # sha256(address/namespace/id)).
  local line k8s_ns k8s_name
  [[ -d /run/containerd/s ]] && for line in "${LAB_PODS[@]}"; do
    read -r _ _ _ k8s_ns k8s_name <<<"$line"
    id="$(pod_container_id "$k8s_ns" "$k8s_name")"
    rm -f "/run/containerd/s/$(printf '%s' "$CTRD_SOCK/$CTRD_NS/$id" | sha256sum | cut -c1-64)"
  done
  if [[ -e "$CTRD_DIR/made-run-containerd" ]]; then
    rmdir /run/containerd/s /run/containerd 2>/dev/null || true
  fi
  umount_under "$CTRD_DIR"
  for cg in /sys/fs/cgroup/*/"$CTRD_CGROUP" /sys/fs/cgroup/"$CTRD_CGROUP"; do
    [[ -d "$cg" ]] || continue
    find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || warn "cgroup $cg still in use"
  done
  rm -rf "$CTRD_DIR"
}

# containerd_orphans : processes started for the lab's socket that outlived
# its containerd (a crash): shims, found by their -address, with their
# sandboxes. Works without the state dir too.
containerd_orphans() {
  local f p procs=() kids=()
  for f in $(grep -lsaF -- "$CTRD_SOCK" /proc/[0-9]*/cmdline); do
    p="${f#/proc/}"
    procs+=("${p%/cmdline}")
  done
  ((${#procs[@]} > 0)) || return 0
  for p in "${procs[@]}"; do
    mapfile -t -O "${#kids[@]}" kids < <(pgrep -P "$p" || true)
  done
  if ((${#kids[@]} > 0)); then
    # A sandbox is its pid namespace's init: only KILL reaches it.
    kill -KILL "${kids[@]}" 2>/dev/null || true
    for p in {1..50}; do
      kill -0 "${kids[@]}" 2>/dev/null || break
      sleep 0.1
    done
  fi
  kill_pids "${procs[@]}"
}

# umount_under DIR : unmount whatever is mounted below DIR, deepest first.
umount_under() {
  local m
  while read -r m; do
    umount -l "$m" 2>/dev/null || warn "could not unmount $m"
  done < <(awk -v d="$1/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
}

build_topology() {
  local ns
  for ns in "${LAB_NAMESPACES[@]}"; do
    case "$ns" in
      nw-pod* | nw-coredns) ;; # created by add_pod below
      *) make_ns "$ns" ;;
    esac
  done

  # The LAN switches are plain L2: no iptables on them, so turn off
  # br_netfilter there (it is per-netns here and defaults to 1 in a new one).
  make_bridge nw-lan br-lan
  make_bridge nw-lan br-lan2
  ns_sysctl nw-lan net.bridge.bridge-nf-call-iptables 0

  plug nw-lan br-lan client-e0 nw-client eth0 192.168.0.10/24
  plug nw-lan br-lan node1-e0 nw-node1 eth0 192.168.0.11/24
  plug nw-lan br-lan node2-e0 nw-node2 eth0 192.168.0.12/24
  plug nw-lan br-lan2 client-e1 nw-client eth1 192.168.1.10/24
  plug nw-lan br-lan2 node2-e1 nw-node2 eth1 192.168.1.12/24

  # The API server address: a second address in the node subnet, so the
  # kernel lists it as "secondary" on eth0 (as keepalived/kube-vip VIPs are).
  in_ns nw-node1 ip addr replace 192.168.0.100/24 dev "$(lan_dev eth0)"

  # Dual-stack: the same machines on fd00::/64 (node N is fd00::1N, the API
  # server fd00::100 on node1, as in seed 003).
  addr6 nw-client eth0 fd00::10/64
  addr6 nw-node1 eth0 fd00::11/64
  addr6 nw-node2 eth0 fd00::12/64
  addr6 nw-node1 eth0 fd00::100/64

  # Client: everything via node1. rp_filter off so replies arriving on the
  # "other" interface in the multi-homed scenario are accepted here; ARP
  # announces the interface's own address so node2's rp_filter judges the IP
  # packet, not the ARP request.
  if [[ "$LAB_BACKEND" == local ]]; then
    # A VM keeps its default route (Vagrant reaches it through it).
    in_ns nw-client ip route replace 10.244.0.0/16 via 192.168.0.11
    in_ns nw-client ip route replace 10.96.0.0/12 via 192.168.0.11
  else
    in_ns nw-client ip route add default via 192.168.0.11
  fi
  in_ns nw-client ip -6 route replace fd00:10:244::/48 via fd00::11
  in_ns nw-client ip -6 route replace fd00:10:96::/112 via fd00::11
  ns_rp_filter nw-client 0
  ns_sysctl nw-client net.ipv4.conf.all.arp_announce 2

  # The CNI bridge plugin makes each node's cni0 (10.244.N.1/24) at its
  # first pod.
  containerd_start
  local line
  for line in "${LAB_PODS[@]}"; do
    add_pod "${line%% *}"
  done

  # host-gw: each node routes the other's pod CIDR via the other's LAN
  # address. Deliberately no default route on the nodes.
  in_ns nw-node1 ip route replace 10.244.2.0/24 via 192.168.0.12 dev "$(lan_dev eth0)"
  in_ns nw-node2 ip route replace 10.244.1.0/24 via 192.168.0.11 dev "$(lan_dev eth0)"
  in_ns nw-node1 ip -6 route replace fd00:10:244:2::/64 via fd00::12 dev "$(lan_dev eth0)"
  in_ns nw-node2 ip -6 route replace fd00:10:244:1::/64 via fd00::11 dev "$(lan_dev eth0)"

  # After all interfaces exist, so per-device rp_filter is covered too.
  node_defaults nw-node1
  node_defaults nw-node2
  # kubeadm's preflight requires this; it is per-netns on this kernel and a
  # new netns starts at 1, but be explicit since bridge-nf-off flips it.
  ns_sysctl nw-node2 net.bridge.bridge-nf-call-iptables 1
  ns_sysctl nw-node1 net.bridge.bridge-nf-call-iptables 1
}

# --------------------------------------------------------- kube-proxy ------

# kp_hash NAME PROTO [ENDPOINT] : kube-proxy's chain suffix, i.e. the first 16
# characters of base32(sha256(servicePortName + protocol [+ endpoint])).
kp_hash() {
  printf '%s' "$1$2${3:-}" | sha256sum | cut -c1-64 | tr 'a-f' 'A-F' |
    basenc --base16 -d | base32 | cut -c1-16
}

# kp_service CLUSTER_IP PORT PROTO SVCPORTNAME ENDPOINT_IP:PORT [NODEPORT]
# Prints the nat-table rules kube-proxy (iptables mode, 1.2x) writes for one
# service port with one endpoint.
kp_service() {
  local vip="$1" port="$2" proto="$3" spn="$4" ep="$5" nodeport="${6:-}"
  local svc sep ext host=/32 cluster=10.244.0.0/16 ep_ip="${5%:*}"
  # IPv6 (ip6tables-restore input): /128 hosts, the IPv6 cluster CIDR, and
  # the endpoint written [addr]:port as kube-proxy writes it.
  if [[ "$vip" == *:* ]]; then
    host=/128 cluster=fd00:10:244::/56
    ep_ip="${ep_ip#[}" ep_ip="${ep_ip%]}"
  fi
  svc="KUBE-SVC-$(kp_hash "$spn" "$proto")"
  ext="KUBE-EXT-$(kp_hash "$spn" "$proto")"
  sep="KUBE-SEP-$(kp_hash "$spn" "$proto" "$ep")"
  printf -- '-A KUBE-SERVICES -d %s%s -p %s -m comment --comment "%s cluster IP" -m %s --dport %s -j %s\n' \
    "$vip" "$host" "$proto" "$spn" "$proto" "$port" "$svc"
  if [[ -n "$nodeport" ]]; then
    printf -- '-A KUBE-NODEPORTS -p %s -m comment --comment "%s" -m %s --dport %s -j %s\n' \
      "$proto" "$spn" "$proto" "$nodeport" "$ext"
    # externalTrafficPolicy=Cluster: external traffic is always SNATed, so
    # the reply returns through the node that received it.
    printf -- '-A %s -m comment --comment "masquerade traffic for %s external destinations" -j KUBE-MARK-MASQ\n' \
      "$ext" "$spn"
    printf -- '-A %s -j %s\n' "$ext" "$svc"
  fi
  printf -- '-A %s ! -s %s -d %s%s -p %s -m comment --comment "%s cluster IP" -m %s --dport %s -j KUBE-MARK-MASQ\n' \
    "$svc" "$cluster" "$vip" "$host" "$proto" "$spn" "$proto" "$port"
  printf -- '-A %s -m comment --comment "%s -> %s" -j %s\n' "$svc" "$spn" "$ep" "$sep"
  printf -- '-A %s -s %s%s -m comment --comment "%s" -j KUBE-MARK-MASQ\n' "$sep" "$ep_ip" "$host" "$spn"
  printf -- '-A %s -p %s -m comment --comment "%s" -m %s -j DNAT --to-destination %s\n' \
    "$sep" "$proto" "$spn" "$proto" "$ep"
}

# kp_nat_head CHAIN... : how kube-proxy's nat table starts in both modes: the
# built-in chains, CHAIN... declared, and the service-portal jumps.
kp_nat_head() {
  printf '%s\n' '*nat' ':PREROUTING ACCEPT [0:0]' ':INPUT ACCEPT [0:0]' ':OUTPUT ACCEPT [0:0]' ':POSTROUTING ACCEPT [0:0]'
  printf ':%s - [0:0]\n' "$@"
  cat <<'EOF'
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
EOF
}

# kp_masquerade : KUBE-POSTROUTING's masquerade of traffic KUBE-MARK-MASQ marked.
kp_masquerade() {
  cat <<'EOF'
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
EOF
}

# kube_proxy_rules [6] : the full iptables-restore input for a node, or with 6
# the ip6tables-restore input (kube-proxy's IPv6 proxier in a dual-stack
# cluster: the IPv6 ClusterIPs of the same Services, NodePorts on the node's
# IPv6 addresses).
kube_proxy_rules() {
  local chains rules v6="${1:-}"
  if [[ "$v6" == 6 ]]; then
    rules="$(
      kp_service fd00:10:96::a 53 udp kube-system/kube-dns:dns '[fd00:10:244:2::3]:53'
      kp_service fd00:10:96::a 53 tcp kube-system/kube-dns:dns-tcp '[fd00:10:244:2::3]:53'
      kp_service fd00:10:96::20 80 tcp default/web:http '[fd00:10:244:2::2]:80' 30080
    )"
  else
    rules="$(
      kp_service 10.96.0.10 53 udp kube-system/kube-dns:dns 10.244.2.3:53
      kp_service 10.96.0.10 53 tcp kube-system/kube-dns:dns-tcp 10.244.2.3:53
      kp_service 10.96.0.20 80 tcp default/web:http 10.244.2.2:80 30080
    )"
  fi
  # iptables-restore wants every per-service chain declared before use.
  chains="$(grep -oE '^-A KUBE-(SVC|SEP|EXT)-[A-Z2-7]{16}' <<<"$rules" | awk '{ print $2 }' | sort -u)"
  # shellcheck disable=SC2086 # one chain name a word
  kp_nat_head KUBE-SERVICES KUBE-NODEPORTS KUBE-POSTROUTING KUBE-MARK-MASQ $chains
  kp_masquerade
  cat <<EOF
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
${rules}
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-FIREWALL - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS
-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
-A INPUT -j KUBE-FIREWALL
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -j KUBE-FIREWALL
$([[ "$v6" == 6 ]] || echo '-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP')
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
EOF
}

apply_kube_proxy() {
  local node="$1"
  # A here-string, not a pipe: in the local backend in_ns may skip the
  # command without reading its input.
  in_ns "$node" iptables-restore --noflush <<<"$(kube_proxy_rules)"
  in_ns "$node" ip6tables-restore --noflush <<<"$(kube_proxy_rules 6)"
}

# ---------------------------------------------------- kube-proxy (IPVS mode) --
#
# What kube-proxy --proxy-mode=ipvs (1.2x/1.3x) leaves on a node, written the
# way it writes it:
#   - sysctls: net.ipv4.vs.conntrack=1, expire_nodest_conn=1,
#     expire_quiescent_template=1, ip_forward=1, and with strictARP (which
#     kube-vip and MetalLB require) conf.all.arp_ignore=1, arp_announce=2.
#     conn_reuse_mode is left as the kernel has it on >= 5.9 (kube-proxy only
#     forced it to 0 on older kernels).
#   - the dummy device kube-ipvs0 (left down), holding every ClusterIP as a
#     /32 so the kernel treats them as local; node addresses are not on it.
#   - IPVS virtual services (rr, masquerading real servers) for each ClusterIP
#     and, for NodePorts, one per node address.
#   - its ipsets (all of them, like kube-proxy; most stay empty here).
#   - its nat and filter chains, with the ipset matches.
#
# Node addresses for NodePorts: this lab emulates the kube-proxy releases
# behind the field report (lab/scenarios/ipvs-secondary-vip.sh), which took
# the node IPs from the local routing table's preferred sources and so bound
# NodePorts to *primary* addresses only. Current releases list every address
# at each sync; an address added after the last sync (a keepalived failover)
# is missing there in the same way until the next one.

CLUSTER_CIDR=10.244.0.0/16

# The service ports, one per line: PROTO CLUSTER_IP PORT ENDPOINT NODEPORT
# (NODEPORT "-" for none). Same services as the iptables mode.
KP_IPVS_SERVICES=(
  "tcp 10.96.0.20 80 10.244.2.2:80 30080"
  "udp 10.96.0.10 53 10.244.2.3:53 -"
  "tcp 10.96.0.10 53 10.244.2.3:53 -"
)

# Every ipset kube-proxy creates in IPVS mode, with the type it gives it.
KP_IPSETS=(
  "KUBE-LOOP-BACK hash:ip,port,ip"
  "KUBE-CLUSTER-IP hash:ip,port"
  "KUBE-EXTERNAL-IP hash:ip,port"
  "KUBE-EXTERNAL-IP-LOCAL hash:ip,port"
  "KUBE-LOAD-BALANCER hash:ip,port"
  "KUBE-LOAD-BALANCER-FW hash:ip,port"
  "KUBE-LOAD-BALANCER-LOCAL hash:ip,port"
  "KUBE-LOAD-BALANCER-SOURCE-IP hash:ip,port,ip"
  "KUBE-LOAD-BALANCER-SOURCE-CIDR hash:ip,port,net"
  "KUBE-NODE-PORT-TCP bitmap:port"
  "KUBE-NODE-PORT-LOCAL-TCP bitmap:port"
  "KUBE-NODE-PORT-UDP bitmap:port"
  "KUBE-NODE-PORT-LOCAL-UDP bitmap:port"
  "KUBE-NODE-PORT-SCTP-HASH hash:ip,port"
  "KUBE-NODE-PORT-LOCAL-SCTP-HASH hash:ip,port"
  "KUBE-HEALTH-CHECK-NODE-PORT bitmap:port"
  "KUBE-IPVS-IPS hash:ip"
)

# ipvs_flag PROTO : ipvsadm's service flag for a protocol.
ipvs_flag() {
  case "$1" in
    tcp) echo -t ;;
    udp) echo -u ;;
    *) die "no IPVS flag for protocol $1" ;;
  esac
}

# node_pod_cidr NODE : the pod CIDR of a node (host-gw, one /24 per node).
node_pod_cidr() {
  case "$1" in
    nw-node1) echo 10.244.1.0/24 ;;
    nw-node2) echo 10.244.2.0/24 ;;
    *) die "not a node: $1" ;;
  esac
}

node_pod_cidr6() {
  case "$1" in
    nw-node1) echo fd00:10:244:1::/64 ;;
    nw-node2) echo fd00:10:244:2::/64 ;;
    *) die "not a node: $1" ;;
  esac
}

# ip_in_24 IP CIDR/24 : true if IP is in the /24.
ip_in_24() {
  [[ "${1%.*}" == "${2%.*}" ]]
}

# ipvs_node_ips NODE : the addresses kube-proxy binds NodePorts to: every
# primary IPv4 address except loopback and kube-ipvs0's.
ipvs_node_ips() {
  in_ns "$1" ip -4 -o addr show |
    awk '$2 != "lo" && $2 != "kube-ipvs0" && !/ secondary / { sub(/\/.*/, "", $4); print $4 }'
}

# kp_ipvs_restore NODE : ipvsadm -R input for the node's virtual services.
kp_ipvs_restore() {
  local node="$1" line proto vip port ep np flag ip
  local nodeips=()
  mapfile -t nodeips < <(ipvs_node_ips "$node")
  for line in "${KP_IPVS_SERVICES[@]}"; do
    read -r proto vip port ep np <<<"$line"
    flag="$(ipvs_flag "$proto")"
    printf -- '-A %s %s:%s -s rr\n' "$flag" "$vip" "$port"
    printf -- '-a %s %s:%s -r %s -m -w 1\n' "$flag" "$vip" "$port" "$ep"
    [[ "$np" != - ]] || continue
    for ip in "${nodeips[@]}"; do
      printf -- '-A %s %s:%s -s rr\n' "$flag" "$ip" "$np"
      printf -- '-a %s %s:%s -r %s -m -w 1\n' "$flag" "$ip" "$np" "$ep"
    done
  done
}

# kp_ipset_restore NODE : ipset restore input (sets and members).
kp_ipset_restore() {
  local node="$1" line name type proto vip port ep np cidr
  cidr="$(node_pod_cidr "$node")"
  for line in "${KP_IPSETS[@]}"; do
    read -r name type <<<"$line"
    case "$type" in
      bitmap:port) printf 'create %s %s range 0-65535\n' "$name" "$type" ;;
      *) printf 'create %s %s family inet hashsize 1024 maxelem 65536\n' "$name" "$type" ;;
    esac
  done
  for line in "${KP_IPVS_SERVICES[@]}"; do
    read -r proto vip port ep np <<<"$line"
    printf 'add KUBE-CLUSTER-IP %s,%s:%s\n' "$vip" "$proto" "$port"
    printf 'add KUBE-IPVS-IPS %s\n' "$vip"
    if [[ "$np" != - ]]; then
      printf 'add KUBE-NODE-PORT-%s %s\n' "${proto^^}" "$np"
    fi
    # Endpoints on this node: hairpin traffic (pod to its own service) is
    # masqueraded.
    if ip_in_24 "${ep%:*}" "$cidr"; then
      printf 'add KUBE-LOOP-BACK %s,%s:%s,%s\n' "${ep%:*}" "$proto" "${ep#*:}" "${ep%:*}"
    fi
  done | sort -u
}

# kube_proxy_ipvs_rules NODE : the iptables-restore input for a node.
kube_proxy_ipvs_rules() {
  local node="$1" loopback="" line proto vip port ep np cidr
  cidr="$(node_pod_cidr "$node")"
  for line in "${KP_IPVS_SERVICES[@]}"; do
    read -r proto vip port ep np <<<"$line"
    if ip_in_24 "${ep%:*}" "$cidr"; then
      loopback='-A KUBE-POSTROUTING -m comment --comment "Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose" -m set --match-set KUBE-LOOP-BACK dst,dst,src -j MASQUERADE'
    fi
  done
  kp_nat_head KUBE-SERVICES KUBE-POSTROUTING KUBE-NODE-PORT KUBE-LOAD-BALANCER KUBE-MARK-MASQ
  # the hairpin rule goes before the masquerade's RETURN
  [[ -z "$loopback" ]] || printf '%s\n' "$loopback"
  kp_masquerade
  cat <<EOR
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ
-A KUBE-NODE-PORT -p tcp -m comment --comment "Kubernetes nodeport TCP port for masquerade purpose" -m set --match-set KUBE-NODE-PORT-TCP dst -j KUBE-MARK-MASQ
-A KUBE-SERVICES -s 127.0.0.0/8 -j RETURN
-A KUBE-SERVICES ! -s ${CLUSTER_CIDR} -m comment --comment "Kubernetes service cluster ip + port for masquerade purpose" -m set --match-set KUBE-CLUSTER-IP dst,dst -j KUBE-MARK-MASQ
-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT
-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-FIREWALL - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-NODE-PORT - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
:KUBE-SOURCE-RANGES-FIREWALL - [0:0]
:KUBE-IPVS-FILTER - [0:0]
:KUBE-IPVS-OUT-FILTER - [0:0]
-A INPUT -m comment --comment "kubernetes ipvs access filter" -j KUBE-IPVS-FILTER
-A INPUT -m comment --comment "kube-proxy firewall rules" -j KUBE-PROXY-FIREWALL
-A INPUT -m comment --comment "kubernetes health check rules" -j KUBE-NODE-PORT
-A INPUT -j KUBE-FIREWALL
-A FORWARD -m comment --comment "kube-proxy firewall rules" -j KUBE-PROXY-FIREWALL
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A OUTPUT -m comment --comment "kubernetes ipvs access filter" -j KUBE-IPVS-OUT-FILTER
-A OUTPUT -j KUBE-FIREWALL
-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A KUBE-NODE-PORT -m comment --comment "Kubernetes health check node port" -m set --match-set KUBE-HEALTH-CHECK-NODE-PORT dst -j ACCEPT
-A KUBE-SOURCE-RANGES-FIREWALL -j DROP
-A KUBE-IPVS-FILTER -m set --match-set KUBE-LOAD-BALANCER dst,dst -j RETURN
-A KUBE-IPVS-FILTER -m set --match-set KUBE-CLUSTER-IP dst,dst -j RETURN
-A KUBE-IPVS-FILTER -m set --match-set KUBE-EXTERNAL-IP dst,dst -j RETURN
-A KUBE-IPVS-FILTER -m set --match-set KUBE-EXTERNAL-IP-LOCAL dst,dst -j RETURN
-A KUBE-IPVS-FILTER -m set --match-set KUBE-HEALTH-CHECK-NODE-PORT dst -j RETURN
-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set KUBE-IPVS-IPS dst -j REJECT --reject-with icmp-port-unreachable
COMMIT
EOR
}

# ipvs_available : IPVS can be used here (loads ip_vs if it can).
ipvs_available() {
  [[ -e /proc/net/ip_vs ]] || modprobe -q ip_vs 2>/dev/null || true
  [[ -e /proc/net/ip_vs ]] && command -v ipvsadm >/dev/null 2>&1
}

# ipvs_known_file NODE : the virtual services kube-proxy made on NODE, as
# "-t ADDR:PORT" lines (what the kube-proxy actor of ipvs-cleanup-flap keeps).
ipvs_known_file() {
  printf '%s/ipvs-services.%s\n' "$STATE_DIR" "$1"
}

# apply_kube_proxy_ipvs NODE : set a node up the way kube-proxy in IPVS mode
# does (strictARP on, no --ipvs-exclude-cidrs, cluster CIDR 10.244.0.0/16).
apply_kube_proxy_ipvs() {
  local node="$1" line proto vip port ep np
  in_ns "$node" sysctl -qw net.ipv4.vs.conntrack=1 net.ipv4.vs.expire_nodest_conn=1 \
    net.ipv4.vs.expire_quiescent_template=1 net.ipv4.ip_forward=1 \
    net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 >/dev/null
  in_ns "$node" ip link add kube-ipvs0 type dummy
  for line in "${KP_IPVS_SERVICES[@]}"; do
    read -r proto vip port ep np <<<"$line"
    in_ns "$node" ip addr replace "$vip/32" dev kube-ipvs0
  done
  # Here-strings, not pipes: in the local backend in_ns may skip a command
  # without reading its input.
  in_ns "$node" ipset restore -exist <<<"$(kp_ipset_restore "$node")"
  in_ns "$node" iptables-restore --noflush <<<"$(kube_proxy_ipvs_rules "$node")"
  local services
  services="$(kp_ipvs_restore "$node")"
  in_ns "$node" ipvsadm -R <<<"$services"
  if ns_here "$node"; then
    awk '$1 == "-A" { print $2, $3 }' <<<"$services" >"$(ipvs_known_file "$node")"
  fi
}

# ipvs_move_dest NODE PROTO VIP:PORT OLD_EP NEW_EP : what kube-proxy does when
# a service's endpoint changes: add the new real server, delete the old one
# (UDP real servers are deleted at once: kube-proxy's graceful termination
# only waits for TCP), and clear the UDP conntrack entries of the old
# endpoint. The IPVS connection table is not touched.
ipvs_move_dest() {
  local node="$1" proto="$2" svc="$3" old="$4" new="$5" flag
  flag="$(ipvs_flag "$proto")"
  in_ns "$node" ipvsadm -a "$flag" "$svc" -r "$new" -m -w 1 2>/dev/null || true
  in_ns "$node" ipvsadm -d "$flag" "$svc" -r "$old" 2>/dev/null || true
  if [[ "$proto" == udp ]] && ns_here "$node" && command -v conntrack >/dev/null 2>&1; then
    in_ns "$node" conntrack -D -p udp --orig-dst "${svc%:*}" --reply-src "${old%:*}" >/dev/null 2>&1 || true
  fi
  local cidr
  cidr="$(node_pod_cidr "$node")"
  if ip_in_24 "${old%:*}" "$cidr"; then
    in_ns "$node" ipset -exist del KUBE-LOOP-BACK "${old%:*},$proto:${old#*:},${old%:*}" 2>/dev/null || true
  fi
  if ip_in_24 "${new%:*}" "$cidr"; then
    in_ns "$node" ipset -exist add KUBE-LOOP-BACK "${new%:*},$proto:${new#*:},${new%:*}"
  fi
}

# ------------------------------------------------------------- servers -----

# start_server NS NAME ARGS... : run lab/servers.mjs ARGS on NS in the
# background; servers.mjs writes its own pidfile so the pid is exact even when
# in_ns goes through extra wrappers.
start_server() {
  local ns="$1" name="$2"
  shift 2
  in_ns_bg "$ns" "$STATE_DIR/$name.log" \
    node "$LAB_DIR/servers.mjs" "$@" --pidfile "$STATE_DIR/$name.pid"
}

# wait_until SECONDS DESCRIPTION CMD... : poll CMD until it succeeds; fail
# loudly (with the server logs) after SECONDS.
wait_until() {
  local limit="$1" what="$2"
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      warn "timed out after ${limit}s waiting for: $what"
      local f
      for f in "$STATE_DIR"/*.log; do
        [[ -e "$f" ]] && sed "s|^|[$(basename "$f")] |" "$f" >&2
      done
      return 1
    fi
    sleep 0.1
  done
}

tcp_open() {
  local ns="$1" host="$2" port="$3"
  # shellcheck disable=SC2016 # expanded by the inner bash, from its argv
  in_ns "$ns" timeout 1 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port"
}

# stop_server NAME : stop the server started as NAME (its pidfile is exact).
stop_server() {
  local f="$STATE_DIR/$1.pid" pid
  [[ -e "$f" ]] || return 0
  pid="$(cat "$f" 2>/dev/null || true)"
  if [[ "$pid" =~ ^[0-9]+$ ]] && grep -qs servers.mjs "/proc/$pid/cmdline"; then
    kill_pids "$pid"
  fi
  rm -f "$f"
}

# coredns_ready ADDR : the CoreDNS stand-in answers on ADDR, asked from its pod.
coredns_ready() {
  wait_until 30 "dns on nw-coredns ($1)" in_ns nw-coredns \
    dig +short +tries=1 +time=1 "@$1" kubernetes.default.svc.cluster.local
}

# start_servers [MODE] : the pods' servers, CoreDNS and the API server. In
# IPVS mode the API server runs on control-plane node2 (192.168.0.12:6443,
# HTTP so a client sees success) behind kube-vip's VIP 192.168.0.100:6443,
# which only the ipvs-cleanup-flap scenario creates; nothing listens on the
# VIP itself, so without its IPVS service a SYN to it finds no socket.
start_servers() {
  local mode="${1:-iptables}"
  start_server nw-pod1 pod1-http http 80 --name nw-pod1
  start_server nw-pod2 pod2-http http 80 --name nw-pod2
  start_server nw-pod2 pod2-http6 http 80 --host fd00:10:244:2::2 --name nw-pod2
  start_server nw-coredns coredns-dns dns 53 --answer 10.96.0.1
  if [[ "$mode" == ipvs ]]; then
    start_server nw-node2 apiserver-http http 6443 --host 192.168.0.12 --name apiserver-node2
  else
    start_server nw-node1 apiserver-tcp tcp 6443 --host 192.168.0.100
    start_server nw-node1 apiserver-tcp6 tcp 6443 --host fd00::100
  fi

  # Each server is checked from inside its own machine, so a readiness
  # failure means the server, not the network.
  wait_until 30 "http on nw-pod1" in_ns nw-pod1 curl -sf -m 1 http://10.244.1.2/
  wait_until 30 "http on nw-pod2" in_ns nw-pod2 curl -sf -m 1 http://10.244.2.2/
  wait_until 30 "http on nw-pod2 (IPv6)" in_ns nw-pod2 curl -sf -m 1 'http://[fd00:10:244:2::2]/'
  coredns_ready 10.244.2.3
  if [[ "$mode" == ipvs ]]; then
    wait_until 30 "http 6443 on nw-node2" in_ns nw-node2 curl -sf -m 1 http://192.168.0.12:6443/
  else
    wait_until 30 "tcp 6443 on nw-node1" tcp_open nw-node1 192.168.0.100 6443
  fi
}

# start_actor NS NAME ARGS... : run lab/ipvs-actor.sh ARGS on NS in the
# background, in its own session; the actor writes its pid (= its process
# group) to $STATE_DIR/NAME.actor, so it and its children stop together.
start_actor() {
  local ns="$1" name="$2"
  shift 2
  rm -f "$STATE_DIR/$name.actor"
  : >"$STATE_DIR/$name.log"
  in_ns_bg "$ns" "$STATE_DIR/$name.log" \
    bash "$LAB_DIR/ipvs-actor.sh" --pidfile "$STATE_DIR/$name.actor" "$@"
  if ns_here "$ns"; then
    wait_until 30 "actor $name" test -s "$STATE_DIR/$name.actor"
  fi
}

# actor_pgid FILE : the process group in an actor pidfile, if it is still ours.
actor_pgid() {
  local pid
  pid="$(cat "$1" 2>/dev/null || true)"
  if [[ "$pid" =~ ^[0-9]+$ ]] && grep -qs ipvs-actor.sh "/proc/$pid/cmdline"; then
    printf '%s\n' "$pid"
  fi
}

# stop_actor NAME : stop an actor and everything it started.
stop_actor() {
  local f="$STATE_DIR/$1.actor" pgid _
  [[ -e "$f" ]] || return 0
  pgid="$(actor_pgid "$f")"
  if [[ -n "$pgid" ]]; then
    kill -TERM -- "-$pgid" 2>/dev/null || true
    for _ in {1..20}; do
      kill -0 -- "-$pgid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL -- "-$pgid" 2>/dev/null || true
  fi
  rm -f "$f"
}

# --------------------------------------------------------------- teardown --

# kill_pids PID... : TERM, then KILL if it lingers.
kill_pids() {
  local pid alive=()
  for pid in "$@"; do
    kill -TERM "$pid" 2>/dev/null && alive+=("$pid")
  done
  local _
  for _ in {1..20}; do
    local still=()
    for pid in "${alive[@]}"; do
      kill -0 "$pid" 2>/dev/null && still+=("$pid")
    done
    ((${#still[@]} == 0)) && return 0
    alive=("${still[@]}")
    sleep 0.1
  done
  for pid in "${alive[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
  done
}

teardown() {
  local pids=() pid f ns

  # Pidfiles first: they are exact.
  if [[ -d "$STATE_DIR" ]]; then
    for f in "$STATE_DIR"/*.actor; do
      [[ -e "$f" ]] && stop_actor "$(basename "$f" .actor)"
    done
    for f in "$STATE_DIR"/*.pid; do
      [[ -e "$f" ]] || continue
      pid="$(cat "$f" 2>/dev/null || true)"
      # Only ours: the pid could have been recycled after a crash.
      if [[ "$pid" =~ ^[0-9]+$ ]] && grep -qs servers.mjs "/proc/$pid/cmdline"; then
        pids+=("$pid")
      fi
    done
  fi
  # The sandbox containers, through containerd, before the sweep below.
  containerd_stop
  # Then anything else still living in a lab namespace (e.g. a server started
  # before its pidfile was written, or a client the caller left behind).
  while read -r ns; do
    [[ -n "$ns" ]] || continue
    while read -r pid; do
      [[ -n "$pid" ]] && pids+=("$pid")
    done < <(ip netns pids "$ns" 2>/dev/null || true)
  done < <(lab_namespaces)
  if ((${#pids[@]} > 0)); then
    kill_pids "${pids[@]}"
  fi
  # Then the pods as a runtime removes a sandbox: its network (CNI DEL),
  # then the netns.
  cni_del_all

  # Deleting a namespace takes its veths, bridges, routes, iptables rules,
  # ipsets and per-netns sysctls (including bridge-nf-call-iptables) with it.
  while read -r ns; do
    [[ -n "$ns" ]] || continue
    ip netns del "$ns" 2>/dev/null || warn "could not delete namespace $ns"
  done < <(lab_namespaces)

  if [[ "$LAB_BACKEND" == local ]]; then
    teardown_machine
  fi
  rm -rf "$STATE_DIR"
}

# teardown_machine : local backend: undo what up and the scenarios did to this
# machine's own namespace (there is no namespace to delete). Sysctls keep
# their lab values; vagrant destroy is the complete reset.
teardown_machine() {
  local t set
  if command -v ipvsadm >/dev/null 2>&1; then
    ipvsadm -C 2>/dev/null || true
  fi
  ip link del kube-ipvs0 2>/dev/null || true
  ip link del cni0 2>/dev/null || true
  # Every lab rule and chain names KUBE-/kube- or carries "netwhy-lab" in a
  # comment; keep everything else in the tables.
  for t in nat filter; do
    iptables-save -t "$t" 2>/dev/null | grep -v -e 'KUBE-' -e 'kube-' -e 'netwhy-lab' |
      iptables-restore -T "$t" 2>/dev/null || true
  done
  while read -r set; do
    case "$set" in
      KUBE-* | kube-router-*) ipset destroy "$set" 2>/dev/null || true ;;
    esac
  done < <(ipset list -n 2>/dev/null || true)
  ip addr del 192.168.0.100/24 dev "$LAN_IF" 2>/dev/null || true
  ip addr del 192.168.0.200/24 dev "$LAN_IF" 2>/dev/null || true
  ip route del 10.244.1.0/24 via 192.168.0.11 2>/dev/null || true
  ip route del 10.244.2.0/24 via 192.168.0.12 2>/dev/null || true
  ip route del 10.244.2.0/24 via 192.168.1.12 2>/dev/null || true
  ip route del 10.244.0.0/16 via 192.168.0.11 2>/dev/null || true
  ip route del 10.96.0.0/12 via 192.168.0.11 2>/dev/null || true
}

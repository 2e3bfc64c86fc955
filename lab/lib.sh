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
# Every command that must run "on" a machine goes through in_ns, so a later
# Vagrant backend only has to change that one function (plus the wiring in
# wire_veth, which has no VM equivalent: Vagrant builds the cables itself).

# Guard against double sourcing (scenario scripts source this too).
if [[ -n "${NW_LIB_LOADED:-}" ]]; then
  return 0
fi
NW_LIB_LOADED=1

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE_DIR="${NW_LAB_STATE_DIR:-/run/netwhy-lab}"
LAB_BACKEND="${NW_LAB_BACKEND:-netns}"
# All lab namespaces share this prefix; down removes exactly these.
NS_PREFIX="nw-"

# The machines, in creation order. Pods come after their node because their
# veth is created from inside the node.
LAB_NAMESPACES=(nw-lan nw-client nw-node1 nw-node2 nw-pod1 nw-pod2 nw-coredns nw-pod3)

# ---------------------------------------------------------------- logging --

log() { printf '[lab] %s\n' "$*" >&2; }
warn() { printf '[lab] WARNING: %s\n' "$*" >&2; }
die() {
  printf '[lab] ERROR: %s\n' "$*" >&2
  exit 1
}

# ------------------------------------------------------------- execution --

# in_ns NAME CMD... : run CMD on machine NAME. The one place that knows what
# "a machine" is. netns backend: the network namespace NAME on this host.
in_ns() {
  local name="$1"
  shift
  case "$LAB_BACKEND" in
    netns)
      ip netns exec "$name" "$@"
      ;;
    vagrant)
      # Untested sketch for the VM backend: same command line, quoted for
      # the remote shell. Machine names drop the nw- prefix.
      local quoted
      quoted="$(printf '%q ' "$@")"
      vagrant ssh "${name#"$NS_PREFIX"}" -c "sudo ${quoted}"
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

# ns_exists NAME : true if the namespace exists on this host.
ns_exists() {
  [[ -e "/run/netns/$1" ]]
}

# lab_namespaces : every namespace on the host that belongs to the lab, found
# by prefix rather than from LAB_NAMESPACES so a crashed older layout is also
# cleaned up.
lab_namespaces() {
  local ns
  while read -r ns _; do
    if [[ "$ns" == "$NS_PREFIX"* ]]; then
      printf '%s\n' "$ns"
    fi
  done < <(ip netns list 2>/dev/null)
}

# --------------------------------------------------------------- topology --

# make_ns NAME : create an empty namespace with lo up and IPv6 disabled (IPv6
# DAD, router solicitations and MLD would only add noise to traces).
make_ns() {
  local name="$1"
  ip netns add "$name"
  ns_sysctl "$name" net.ipv6.conf.all.disable_ipv6 1
  ns_sysctl "$name" net.ipv6.conf.default.disable_ipv6 1
  in_ns "$name" ip link set lo up
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
  wire_veth "$sw" "$port" "$host" "$ifname"
  in_ns "$sw" ip link set "$port" master "$br"
  in_ns "$host" ip addr add "$addr" dev "$ifname"
}

# ns_conf_all NAME KEY VALUE : set net.ipv4.conf.*.KEY on all, default and
# every existing interface (for keys the kernel combines across all/<dev>).
ns_conf_all() {
  local name="$1" key="$2" value="$3" conf
  for conf in $(in_ns "$name" ls /proc/sys/net/ipv4/conf); do
    ns_sysctl "$name" "net.ipv4.conf.${conf}.${key}" "$value"
  done
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
}

# add_pod NODE POD ADDR GW : a pod is a namespace whose eth0 is a port on the
# node's cni0 bridge, with a default route via the bridge address.
add_pod() {
  local node="$1" pod="$2" addr="$3" gw="$4"
  local port="veth-${pod#"$NS_PREFIX"}"
  make_ns "$pod"
  plug "$node" cni0 "$port" "$pod" eth0 "$addr/24"
  in_ns "$pod" ip route add default via "$gw"
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
  in_ns nw-node1 ip addr add 192.168.0.100/24 dev eth0

  # Client: everything via node1. rp_filter off so replies arriving on the
  # "other" interface in the multi-homed scenario are accepted here; ARP
  # announces the interface's own address so node2's rp_filter judges the IP
  # packet, not the ARP request.
  in_ns nw-client ip route add default via 192.168.0.11
  ns_rp_filter nw-client 0
  ns_sysctl nw-client net.ipv4.conf.all.arp_announce 2

  make_bridge nw-node1 cni0 10.244.1.1/24
  make_bridge nw-node2 cni0 10.244.2.1/24
  add_pod nw-node1 nw-pod1 10.244.1.2 10.244.1.1
  add_pod nw-node2 nw-pod2 10.244.2.2 10.244.2.1
  add_pod nw-node2 nw-coredns 10.244.2.3 10.244.2.1
  add_pod nw-node2 nw-pod3 10.244.2.4 10.244.2.1

  # host-gw: each node routes the other's pod CIDR via the other's LAN
  # address. Deliberately no default route on the nodes.
  in_ns nw-node1 ip route add 10.244.2.0/24 via 192.168.0.12 dev eth0
  in_ns nw-node2 ip route add 10.244.1.0/24 via 192.168.0.11 dev eth0

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
  local svc sep ext
  svc="KUBE-SVC-$(kp_hash "$spn" "$proto")"
  ext="KUBE-EXT-$(kp_hash "$spn" "$proto")"
  sep="KUBE-SEP-$(kp_hash "$spn" "$proto" "$ep")"
  printf -- '-A KUBE-SERVICES -d %s/32 -p %s -m comment --comment "%s cluster IP" -m %s --dport %s -j %s\n' \
    "$vip" "$proto" "$spn" "$proto" "$port" "$svc"
  if [[ -n "$nodeport" ]]; then
    printf -- '-A KUBE-NODEPORTS -p %s -m comment --comment "%s" -m %s --dport %s -j %s\n' \
      "$proto" "$spn" "$proto" "$nodeport" "$ext"
    # externalTrafficPolicy=Cluster: external traffic is always SNATed, so
    # the reply returns through the node that received it.
    printf -- '-A %s -m comment --comment "masquerade traffic for %s external destinations" -j KUBE-MARK-MASQ\n' \
      "$ext" "$spn"
    printf -- '-A %s -j %s\n' "$ext" "$svc"
  fi
  printf -- '-A %s ! -s 10.244.0.0/16 -d %s/32 -p %s -m comment --comment "%s cluster IP" -m %s --dport %s -j KUBE-MARK-MASQ\n' \
    "$svc" "$vip" "$proto" "$spn" "$proto" "$port"
  printf -- '-A %s -m comment --comment "%s -> %s" -j %s\n' "$svc" "$spn" "$ep" "$sep"
  printf -- '-A %s -s %s/32 -m comment --comment "%s" -j KUBE-MARK-MASQ\n' "$sep" "${ep%:*}" "$spn"
  printf -- '-A %s -p %s -m comment --comment "%s" -m %s -j DNAT --to-destination %s\n' \
    "$sep" "$proto" "$spn" "$proto" "$ep"
}

# kube_proxy_rules : the full iptables-restore input for a node.
kube_proxy_rules() {
  local chains rules
  rules="$(
    kp_service 10.96.0.10 53 udp kube-system/kube-dns:dns 10.244.2.3:53
    kp_service 10.96.0.10 53 tcp kube-system/kube-dns:dns-tcp 10.244.2.3:53
    kp_service 10.96.0.20 80 tcp default/web:http 10.244.2.2:80 30080
  )"
  # iptables-restore wants every per-service chain declared before use.
  chains="$(grep -oE '^-A KUBE-(SVC|SEP|EXT)-[A-Z2-7]{16}' <<<"$rules" |
    awk '{ print ":" $2 " - [0:0]" }' | sort -u)"
  cat <<EOF
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-MARK-MASQ - [0:0]
${chains}
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
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
-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
EOF
}

apply_kube_proxy() {
  local node="$1"
  kube_proxy_rules | in_ns "$node" iptables-restore --noflush
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

start_servers() {
  start_server nw-pod1 pod1-http http 80 --name nw-pod1
  start_server nw-pod2 pod2-http http 80 --name nw-pod2
  start_server nw-coredns coredns-dns dns 53 --answer 10.96.0.1
  start_server nw-node1 apiserver-tcp tcp 6443 --host 192.168.0.100

  # Each server is checked from inside its own machine, so a readiness
  # failure means the server, not the network.
  wait_until 10 "http on nw-pod1" in_ns nw-pod1 curl -sf -m 1 http://10.244.1.2/
  wait_until 10 "http on nw-pod2" in_ns nw-pod2 curl -sf -m 1 http://10.244.2.2/
  wait_until 10 "dns on nw-coredns" in_ns nw-coredns \
    dig +short +tries=1 +time=1 @10.244.2.3 kubernetes.default.svc.cluster.local
  wait_until 10 "tcp 6443 on nw-node1" tcp_open nw-node1 192.168.0.100 6443
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
    for f in "$STATE_DIR"/*.pid; do
      [[ -e "$f" ]] || continue
      pid="$(cat "$f" 2>/dev/null || true)"
      # Only ours: the pid could have been recycled after a crash.
      if [[ "$pid" =~ ^[0-9]+$ ]] && grep -qs servers.mjs "/proc/$pid/cmdline"; then
        pids+=("$pid")
      fi
    done
  fi
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

  # Deleting a namespace takes its veths, bridges, routes, iptables rules,
  # ipsets and per-netns sysctls (including bridge-nf-call-iptables) with it.
  while read -r ns; do
    [[ -n "$ns" ]] || continue
    ip netns del "$ns" 2>/dev/null || warn "could not delete namespace $ns"
  done < <(lab_namespaces)

  rm -rf "$STATE_DIR"
}

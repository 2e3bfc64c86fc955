# shellcheck shell=bash
# kube-router's NetworkPolicy firewall (iptables mode, v2.x up to v2.10), as
# its network policy controller writes it on a node: per-policy chains
# KUBE-NWPLCY-<hash> and ipsets KUBE-DST-/KUBE-SRC-<hash>, per-pod chains
# KUBE-POD-FW-<hash> reached from KUBE-ROUTER-{INPUT,FORWARD,OUTPUT}. Chain
# and set names are the controller's own hashes (base32 of sha256, 16 chars);
# comments are its texts. Sourced by lab/scenarios/netpol-*.sh after lib.sh.
#
# The policies a scenario applies are lines "NAMESPACE NAME SELECTOR FROM":
# SELECTOR is the podSelector (app=web, or - for all pods of the namespace),
# FROM the one ingress rule's podSelector (app=tools), or "none" for a policy
# with policyTypes [Ingress] and no ingress rule (deny all ingress).

# The lab's pods: key, namespace, name, IP, node, label.
NP_PODS=(
  "client default client-5f7b9c6d8-k2xqp 10.244.1.2 nw-node1 app=client"
  "web default web-7c9f5b6d4-x8mzt 10.244.2.2 nw-node2 app=web"
  "coredns kube-system coredns-5d78c9869d-q8x2k 10.244.2.3 nw-node2 k8s-app=kube-dns"
  "tools default tools-6b8f7d9c5-p4wz7 10.244.2.4 nw-node2 app=tools"
)
# kube-router's sync version (a UnixNano timestamp) is part of every chain hash.
NP_VERSION=1718000000000000000

# np_pods NAMESPACE SELECTOR : "ns name ip node" of the pods a podSelector picks.
np_pods() {
  local ns="$1" sel="$2" line key pns name ip node label
  for line in "${NP_PODS[@]}"; do
    read -r key pns name ip node label <<<"$line"
    [[ "$pns" == "$ns" ]] || continue
    [[ "$sel" == - || "$sel" == "$label" ]] || continue
    printf '%s %s %s %s\n' "$pns" "$name" "$ip" "$node"
  done
}

# np_hash TEXT : kube-router's name hash (kp_hash's, of one string).
np_hash() { kp_hash "$1" ""; }
np_policy_chain() { printf 'KUBE-NWPLCY-%s' "$(np_hash "$1$2${NP_VERSION}IPv4")"; }
np_dst_set() { printf 'KUBE-DST-%s' "$(np_hash "$1$2IPv4")"; }
np_src_set() { printf 'KUBE-SRC-%s' "$(np_hash "$1$2ingressrule0IPv4pod")"; }
np_pod_chain() { printf 'KUBE-POD-FW-%s' "$(np_hash "$1$2${NP_VERSION}")"; }
# The jump from a built-in chain carries a hash of itself in its comment.
np_builtin_jump() {
  printf -- '-m comment --comment kube-router\\ netpol\\ -\\ %s -j KUBE-ROUTER-%s' \
    "$(np_hash "$1-mcomment--commentkube-router netpol-jKUBE-ROUTER-$1")" "$1"
}

# np_ipsets POLICY... : ipset restore input for the policies' sets.
np_ipsets() {
  local p ns name sel from set
  for p in "$@"; do
    read -r ns name sel from <<<"$p"
    set="$(np_dst_set "$ns" "$name")"
    printf 'create %s hash:ip family inet hashsize 1024 maxelem 65536 timeout 0\n' "$set"
    np_pods "$ns" "$sel" | while read -r _ _ ip _; do printf 'add %s %s timeout 0\n' "$set" "$ip"; done
    [[ "$from" != none ]] || continue
    set="$(np_src_set "$ns" "$name")"
    printf 'create %s hash:ip family inet hashsize 1024 maxelem 65536 timeout 0\n' "$set"
    np_pods "$ns" "$from" | while read -r _ _ ip _; do printf 'add %s %s timeout 0\n' "$set" "$ip"; done
  done
}

# np_filter NODE POLICY... : the filter table kube-router keeps on NODE, in
# the order iptables-save lists it (kube-router inserts some with -I 1).
np_filter() {
  local node="$1" p ns name sel from line key pns pod ip pnode label chain comment
  shift
  local chains=() rules=() fwd=() out=() inp=()
  for p in "$@"; do
    read -r ns name sel from <<<"$p"
    chain="$(np_policy_chain "$ns" "$name")"
    chains+=("$chain")
    [[ "$from" != none ]] || continue
    comment="rule to ACCEPT traffic from source pods to dest pods selected by policy name $name namespace $ns"
    local match="-m comment --comment \"$comment\" -m set --match-set $(np_src_set "$ns" "$name") src -m set --match-set $(np_dst_set "$ns" "$name") dst"
    rules+=("-A $chain $match -j MARK --set-xmark 0x10000/0x10000")
    rules+=("-A $chain $match -m mark --mark 0x10000/0x10000 -j RETURN")
  done
  for line in "${NP_PODS[@]}"; do
    read -r key pns pod ip pnode label <<<"$line"
    [[ "$pnode" == "$node" ]] || continue
    chain="$(np_pod_chain "$pns" "$pod")"
    chains+=("$chain")
    rules+=("-A $chain -m comment --comment \"common bi-directional traffic policy rules\" -j KUBE-NWPLCY-COMMON")
    rules+=("-A $chain -d $ip/32 -m comment --comment \"rule to permit the traffic traffic to pods when source is the pod's local node\" -m addrtype --src-type LOCAL -j ACCEPT")
    rules+=("-A $chain -s $ip/32 -m comment --comment \"run through default egress network policy chain\" -j KUBE-NWPLCY-DEFAULT")
    # Policies that select the pod, the last one first (each is inserted at 1).
    local jumps=()
    for p in "$@"; do
      read -r ns name sel from <<<"$p"
      np_pods "$ns" "$sel" | grep -q " $ip " || continue
      jumps=("-A $chain -d $ip/32 -m comment --comment \"run through nw policy $name\" -j $(np_policy_chain "$ns" "$name")" "${jumps[@]}")
    done
    if [[ ${#jumps[@]} -eq 0 ]]; then
      rules+=("-A $chain -d $ip/32 -m comment --comment \"run through default ingress network policy chain\" -j KUBE-NWPLCY-DEFAULT")
    fi
    rules+=("${jumps[@]}")
    rules+=("-A $chain -m comment --comment \"rule to log dropped traffic POD name:$pod namespace: $pns\" -m mark ! --mark 0x10000/0x10000 -m limit --limit 10/min --limit-burst 10 -j NFLOG --nflog-group 100")
    rules+=("-A $chain -m comment --comment \"rule to REJECT traffic destined for POD name:$pod namespace: $pns\" -m mark ! --mark 0x10000/0x10000 -j REJECT --reject-with icmp-port-unreachable")
    rules+=("-A $chain -j MARK --set-xmark 0x0/0x10000")
    rules+=("-A $chain -m comment --comment \"set mark to ACCEPT traffic that comply to network policies\" -j MARK --set-xmark 0x20000/0x20000")
    comment="rule to jump traffic destined to POD name:$pod namespace: $pns to chain $chain"
    fwd+=("-A KUBE-ROUTER-FORWARD -d $ip/32 -m comment --comment \"$comment\" -j $chain")
    out+=("-A KUBE-ROUTER-OUTPUT -d $ip/32 -m comment --comment \"$comment\" -j $chain")
    fwd+=("-A KUBE-ROUTER-FORWARD -d $ip/32 -m physdev --physdev-is-bridged -m comment --comment \"$comment\" -j $chain")
    comment="rule to jump traffic from POD name:$pod namespace: $pns to chain $chain"
    inp+=("-A KUBE-ROUTER-INPUT -s $ip/32 -m comment --comment \"$comment\" -j $chain")
    fwd+=("-A KUBE-ROUTER-FORWARD -s $ip/32 -m comment --comment \"$comment\" -j $chain")
    out+=("-A KUBE-ROUTER-OUTPUT -s $ip/32 -m comment --comment \"$comment\" -j $chain")
    fwd+=("-A KUBE-ROUTER-FORWARD -s $ip/32 -m physdev --physdev-is-bridged -m comment --comment \"$comment\" -j $chain")
  done
  local tail='-m comment --comment "rule to explicitly handle traffic for network policies ACCEPT/REJECT decision" -j KUBE-NWPLCY-TAIL'
  printf '%s\n' '*filter' ':KUBE-ROUTER-INPUT - [0:0]' ':KUBE-ROUTER-FORWARD - [0:0]' ':KUBE-ROUTER-OUTPUT - [0:0]' \
    ':KUBE-NWPLCY-DEFAULT - [0:0]' ':KUBE-NWPLCY-COMMON - [0:0]' ':KUBE-NWPLCY-TAIL - [0:0]'
  printf ':%s - [0:0]\n' "${chains[@]}"
  cat <<'EOF'
-A KUBE-ROUTER-INPUT -d 10.96.0.0/12 -m comment --comment "allow traffic to primary/secondary cluster IP range - 4IA2OSFRMVNDXBVV" -j RETURN
-A KUBE-ROUTER-INPUT -p tcp -m comment --comment "allow LOCAL TCP traffic to node ports - LR7XO7NXDBGQJD2M" -m addrtype --dst-type LOCAL -m multiport --dports 30000:32767 -j RETURN
-A KUBE-ROUTER-INPUT -p udp -m comment --comment "allow LOCAL UDP traffic to node ports - 76UCBPIZNGJNWNUZ" -m addrtype --dst-type LOCAL -m multiport --dports 30000:32767 -j RETURN
-A KUBE-NWPLCY-DEFAULT -m comment --comment "rule to mark traffic matching a network policy" -j MARK --set-xmark 0x10000/0x10000
-A KUBE-NWPLCY-COMMON -m comment --comment "rule to drop invalid state for pod" -m conntrack --ctstate INVALID -j DROP
-A KUBE-NWPLCY-COMMON -m comment --comment "rule for stateful firewall for pod" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A KUBE-NWPLCY-COMMON -p icmp -m comment --comment "allow icmp echo requests" -m icmp --icmp-type 8 -j ACCEPT
-A KUBE-NWPLCY-COMMON -p icmp -m comment --comment "allow icmp destination unreachable messages" -m icmp --icmp-type 3 -j ACCEPT
-A KUBE-NWPLCY-COMMON -p icmp -m comment --comment "allow icmp time exceeded messages" -m icmp --icmp-type 11 -j ACCEPT
-A KUBE-NWPLCY-TAIL -m comment --comment "rule to explicitly ACCEPT traffic that comply to network policies" -m mark --mark 0x20000/0x20000 -j ACCEPT
EOF
  printf '%s\n' "${inp[@]}" "-A KUBE-ROUTER-INPUT $tail" "${fwd[@]}" "-A KUBE-ROUTER-FORWARD $tail" \
    "${out[@]}" "-A KUBE-ROUTER-OUTPUT $tail" "${rules[@]}" COMMIT
}

# np_apply NODE POLICY... : load the sets and chains, then hook them in at the
# top of INPUT, FORWARD and OUTPUT as kube-router does.
np_apply() {
  local node="$1" hook
  ns_flush_conntrack "$node"
  np_ipsets "${@:2}" | in_ns "$node" ipset restore -exist
  np_filter "$@" | in_ns "$node" iptables-restore --noflush
  for hook in INPUT FORWARD OUTPUT; do
    eval "in_ns \"\$node\" iptables -I $hook 1 $(np_builtin_jump "$hook")"
  done
}

# np_revert NODE : remove every kube-router netpol chain and set from NODE.
np_revert() {
  local node="$1" hook chain set
  ns_here "$node" || return 0
  for hook in INPUT FORWARD OUTPUT; do
    while eval "in_ns \"\$node\" iptables -D $hook $(np_builtin_jump "$hook")" 2>/dev/null; do :; done
  done
  for chain in $(in_ns "$node" iptables-save -t filter 2>/dev/null | sed -n 's/^:\(KUBE-ROUTER-[A-Z]*\|KUBE-NWPLCY-[A-Z0-9]*\|KUBE-POD-FW-[A-Z0-9]*\) .*/\1/p'); do
    in_ns "$node" iptables -F "$chain" 2>/dev/null || true
  done
  for chain in $(in_ns "$node" iptables-save -t filter 2>/dev/null | sed -n 's/^:\(KUBE-ROUTER-[A-Z]*\|KUBE-NWPLCY-[A-Z0-9]*\|KUBE-POD-FW-[A-Z0-9]*\) .*/\1/p'); do
    in_ns "$node" iptables -X "$chain" 2>/dev/null || true
  done
  for set in $(in_ns "$node" ipset list -n 2>/dev/null | grep -E '^KUBE-(SRC|DST)-'); do
    in_ns "$node" ipset destroy "$set" 2>/dev/null || true
  done
  ns_flush_conntrack "$node"
}

#!/usr/bin/env bash
# Provisioning of one lab VM (run by the Vagrantfile as root, once per VM):
#
#   vagrant-provision.sh ROLE        ROLE: client, node1 or node2
#
# Installs what the lab scripts use, loads the kernel modules kube-proxy's IPVS
# mode needs (and keeps them loaded across reboots), finds which NICs carry the
# lab's LANs, and writes /etc/netwhy-lab.env plus the command nw-lab, which runs
# /vagrant/lab/lab.sh with this machine's role (NW_LAB_BACKEND=local).
#
# With NW_BUILD_NETWHY=1 (nodes only) it also builds netwhy from the synced
# repository in /vagrant with scripts/setup.sh (Debian packages, npm ci,
# build) and links /usr/local/bin/netwhy: the nodes are where netwhy traces.
# netwhy needs Node.js >= 20; Debian 12 ships 18, which is enough for the lab's
# servers. Put a Node.js 20+ linux-x64 tarball in the repository and name it in
# NW_NODE_TARBALL (a path under /vagrant) to have it installed in /usr/local.
set -euo pipefail

role="${1:?usage: vagrant-provision.sh client|node1|node2}"
case "$role" in
  client | node1 | node2) ;;
  *)
    echo "unknown role $role" >&2
    exit 2
    ;;
esac
export DEBIAN_FRONTEND=noninteractive

apt-get update -q
# The pods are wired by the CNI plugins (containernetworking-plugins; jq
# composes their input and libcni's cache).
apt-get install -y -q --no-install-recommends \
  iproute2 iptables ipset ipvsadm conntrack curl bind9-dnsutils nodejs \
  kmod procps psmisc ca-certificates containernetworking-plugins jq

# kube-proxy's IPVS mode: ip_vs and its schedulers, conntrack; the lab's
# bridges need br_netfilter (bridge-nf-call-iptables), kube-ipvs0 is a dummy.
modules=(ip_vs ip_vs_rr ip_vs_wrr ip_vs_sh nf_conntrack br_netfilter dummy)
printf '%s\n' "${modules[@]}" >/etc/modules-load.d/netwhy-lab.conf
modprobe -a "${modules[@]}"

# The NICs Vagrant gave the lab's private networks, found by their address
# (eth0 is Vagrant's own NAT interface).
nic_for() {
  ip -o -4 addr show to "$1" | awk '{ print $2; exit }'
}
lan_if="$(nic_for 192.168.0.0/24)"
lan2_if="$(nic_for 192.168.1.0/24)"
[[ -n "$lan_if" ]] || {
  echo "no interface with an address in 192.168.0.0/24: check the Vagrantfile's private_network" >&2
  exit 1
}

cat >/etc/netwhy-lab.env <<EOF
NW_LAB_BACKEND=local
NW_LAB_ROLE=$role
NW_LAB_LAN_IF=$lan_if
NW_LAB_LAN2_IF=${lan2_if:-none}
EOF

cat >/usr/local/sbin/nw-lab <<'EOF'
#!/bin/sh
# lab.sh for this machine's part of the netwhy lab (see /vagrant/lab/VAGRANT.md).
set -a
. /etc/netwhy-lab.env
set +a
exec bash /vagrant/lab/lab.sh "$@"
EOF
chmod 755 /usr/local/sbin/nw-lab

echo "netwhy lab: $role, LAN on $lan_if${lan2_if:+, second LAN on $lan2_if}"

[[ "${NW_BUILD_NETWHY:-0}" == 1 && "$role" != client ]] || exit 0

# --- netwhy itself ------------------------------------------------------------
if [[ -n "${NW_NODE_TARBALL:-}" ]]; then
  tar -xf "$NW_NODE_TARBALL" -C /usr/local --strip-components=1 --no-same-owner
  hash -r
fi
major="$(node -p 'process.versions.node.split(".")[0]')"
if ((major < 20)); then
  echo "netwhy needs Node.js >= 20, this VM has $(node --version): set NW_NODE_TARBALL (see lab/VAGRANT.md)" >&2
  exit 1
fi
# The project's own installer: Debian packages (clang, libbpf, bpftool, ...),
# npm ci, build.
bash /vagrant/scripts/setup.sh
ln -sfn /vagrant/dist/cli.js /usr/local/bin/netwhy
chmod 755 /vagrant/dist/cli.js
echo "netwhy built: /usr/local/bin/netwhy -> /vagrant/dist/cli.js"

#!/usr/bin/env bash
# Stand-ins for the two controllers that fight over one IPVS virtual service
# in the field (lab/scenarios/ipvs-cleanup-flap.sh): kube-vip, which keeps
# re-creating the API server VIP's service, and kube-proxy in IPVS mode, whose
# sync deletes every virtual service it did not create itself (its
# cleanLegacyService, unless --ipvs-exclude-cidrs covers the address).
#
# Each controller is one long-lived process named like the real one: its
# IPVS changes go through an "ipvsadm -R" that reads commands on stdin and was
# started through a symlink called kube-vip or kube-proxy, so the task that
# sends the netlink requests has comm "kube-vip" / "kube-proxy" (what a kprobe
# on ip_vs_add_service / ip_vs_del_service reports). A small loop in this
# script decides what to send, from "ipvsadm -Sn".
#
#   ipvs-actor.sh --pidfile F kube-vip   BINDIR PERIOD VIP:PORT BACKEND:PORT
#   ipvs-actor.sh --pidfile F kube-proxy BINDIR PERIOD KNOWN_FILE [DELAY]
#
# BINDIR receives the symlink; PERIOD and DELAY are seconds (fractions ok);
# KNOWN_FILE lists kube-proxy's own services as "-t ADDR:PORT" lines. The
# pidfile gets this process's pid, which is also its process group (the lab
# starts it with setsid): the lab stops it with kill -- -PID.
set -euo pipefail

log() { printf '[%s] %s\n' "$(date +%T.%N | cut -c1-12)" "$*" >&2; }

[[ "${1:-}" == --pidfile ]] || {
  echo "usage: $0 --pidfile FILE kube-vip|kube-proxy ARGS..." >&2
  exit 2
}
pidfile="$2"
role="${3:?role}"
bindir="${4:?bindir}"
period="${5:?period}"
shift 5

ipvsadm_bin="$(command -v ipvsadm)" || {
  echo "ipvsadm not found" >&2
  exit 1
}
mkdir -p "$bindir"
ln -sfn "$ipvsadm_bin" "$bindir/$role"

# kube-vip: make sure VIP:PORT exists with BACKEND as a masqueraded real
# server; re-create it whenever it is gone.
feed_kube_vip() {
  local vip="$1" backend="$2"
  while :; do
    if ! ipvsadm -Sn | grep -qxF -- "-A -t $vip -s rr"; then
      printf -- '-A -t %s -s rr\n-a -t %s -r %s -m -w 1\n' "$vip" "$vip" "$backend"
      log "kube-vip: created IPVS service TCP $vip -> $backend"
    fi
    sleep "$period"
  done
}

# kube-proxy: every sync, delete each virtual service that is not one of its
# own.
feed_kube_proxy() {
  local known="$1" delay="${2:-0}" cmd flag svc
  sleep "$delay"
  while :; do
    while read -r cmd flag svc _; do
      [[ "$cmd" == -A ]] || continue
      if ! grep -qxF -- "$flag $svc" "$known"; then
        printf -- '-D %s %s\n' "$flag" "$svc"
        log "kube-proxy: deleted IPVS service $flag $svc (not created by kube-proxy)"
      fi
    done < <(ipvsadm -Sn)
    sleep "$period"
  done
}

echo "$$" >"$pidfile"
log "$role: started (pid $$, IPVS changes by $bindir/$role -R)"
case "$role" in
  kube-vip) feed_kube_vip "$@" | "$bindir/kube-vip" -R ;;
  kube-proxy) feed_kube_proxy "$@" | "$bindir/kube-proxy" -R ;;
  *)
    echo "unknown role $role" >&2
    exit 2
    ;;
esac

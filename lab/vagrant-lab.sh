#!/usr/bin/env bash
# Drive the lab on the Vagrant VMs from the host (run it next to the
# Vagrantfile). Each step runs "nw-lab ..." (lab/lab.sh with the VM's role)
# on every VM that has a part in it, in the order node1, node2, client.
#
#   lab/vagrant-lab.sh up [--ipvs]
#   lab/vagrant-lab.sh down
#   lab/vagrant-lab.sh status
#   lab/vagrant-lab.sh list [--ipvs|--iptables]
#   lab/vagrant-lab.sh apply NAME | revert NAME | evidence NAME
#   lab/vagrant-lab.sh run NAME [--explain]   the client, on its machine;
#                                             --explain: under netwhy explain
#   lab/vagrant-lab.sh scenario NAME [--explain]   apply, run, evidence, revert
set -euo pipefail

MACHINES=(node1 node2 client)

# on MACHINE ARGS... : sudo nw-lab ARGS on a VM (arguments quoted for its shell).
on() {
  local machine="$1" quoted
  shift
  quoted="$(printf '%q ' "$@")"
  vagrant ssh "$machine" -c "sudo ${quoted}" -- -q
}

everywhere() {
  local m
  for m in "${MACHINES[@]}"; do
    echo "--- $m: nw-lab $*" >&2
    on "$m" nw-lab "$@"
  done
}

run_client() {
  local name="$1" explain="${2:-}" machine
  machine="$(on node1 nw-lab client-machine "$name" | tr -d '\r')"
  [[ -n "$machine" ]] || {
    echo "no machine for the client of $name" >&2
    exit 1
  }
  echo "--- $machine: client of $name" >&2
  if [[ "$explain" == --explain ]]; then
    on "$machine" env NW_CLIENT_WRAPPER="netwhy explain --" nw-lab run-client "$name"
  else
    on "$machine" nw-lab run-client "$name"
  fi
}

cmd="${1:-}"
shift || true
case "$cmd" in
  up | down | apply | revert) everywhere "$cmd" "$@" ;;
  status)
    for m in "${MACHINES[@]}"; do
      echo "--- $m" >&2
      on "$m" nw-lab status
    done
    ;;
  list) on node1 nw-lab list "$@" ;;
  evidence) on node1 nw-lab evidence "${1:?usage: evidence NAME}" ;;
  run) run_client "${1:?usage: run NAME [--explain]}" "${2:-}" ;;
  scenario)
    name="${1:?usage: scenario NAME [--explain]}"
    everywhere apply "$name"
    rc=0
    run_client "$name" "${2:-}" || rc=$?
    on node1 nw-lab evidence "$name" || true
    everywhere revert "$name"
    echo "--- $name: client exit code $rc" >&2
    ;;
  *)
    sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac

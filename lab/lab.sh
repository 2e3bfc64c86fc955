#!/usr/bin/env bash
# netwhy lab: a Kubernetes-shaped network in network namespaces.
#
#   lab.sh up [--ipvs]          build the topology, kube-proxy, servers
#   lab.sh down                 remove everything the lab made (idempotent)
#   lab.sh status               list lab namespaces, servers, applied faults
#   lab.sh list [--ipvs|--iptables]  scenario names, one per line
#   lab.sh apply NAME           inject a scenario's fault
#   lab.sh revert NAME          undo it
#   lab.sh run-client NAME      run the scenario's client command in its netns
#   lab.sh evidence NAME        print the scenario's own evidence (IPVS state...)
#   lab.sh client-machine NAME  where the client runs (client, node1, node2)
#   lab.sh exec NS CMD...       run CMD on a lab machine (debugging, tests)
#
# kube-proxy mode: iptables by default; "up --ipvs" (or NW_LAB_MODE=ipvs)
# emulates kube-proxy in IPVS mode instead (needs a kernel with IPVS, e.g. the
# microVM: lab/vm-run.sh). Scenarios named ipvs-* need the IPVS mode, the
# others the iptables mode; apply/run-client refuse the wrong one.
# NW_CLIENT_WRAPPER="WORDS..." makes run-client run the client under a wrapper
# command, e.g. "node dist/cli.js explain --json --".
# NW_LAB_BACKEND=local and NW_LAB_ROLE run the same steps on real machines
# (lab/VAGRANT.md). Pods: the CNI plugins come from NW_LAB_CNI_PATH (default
# /usr/lib/cni); NW_LAB_CONTAINERD=0 makes them without containerd.
#
# Scenario metadata (client command, expected verdict) lives in
# lab/scenarios.json; the fault itself in lab/scenarios/NAME.sh.
set -euo pipefail

# shellcheck source=lab/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SCENARIOS_JSON="$LAB_DIR/scenarios.json"

require_root() {
  ((EUID == 0)) || die "must run as root (network namespaces)"
}

require_up() {
  local ns
  if [[ "$LAB_BACKEND" == local ]]; then
    [[ -d "$STATE_DIR" ]] || die "lab is not up on this machine; run: lab.sh up"
  fi
  for ns in "${LAB_NAMESPACES[@]}"; do
    ns_exists "$ns" || die "lab is not up (missing $ns); run: lab.sh up"
  done
}

# lab_mode : iptables or ipvs, as the last lab.sh up chose.
lab_mode() {
  local mode=iptables
  if [[ -r "$STATE_DIR/mode" ]]; then
    read -r mode <"$STATE_DIR/mode" || true
  fi
  printf '%s\n' "$mode"
}

# scenario_mode NAME : the kube-proxy mode a scenario is written for.
scenario_mode() {
  if [[ "$1" == ipvs-* ]]; then
    echo ipvs
  else
    echo iptables
  fi
}

require_mode_for() {
  local want have
  want="$(scenario_mode "$1")"
  have="$(lab_mode)"
  [[ "$want" == "$have" ]] ||
    die "scenario $1 needs the lab in $want mode, it is up in $have mode (run: lab.sh up$([[ "$want" == ipvs ]] && echo ' --ipvs'))"
}

scenario_file() {
  local name="$1"
  [[ "$name" =~ ^[a-z0-9-]+$ ]] || die "bad scenario name '$name'"
  local file="$LAB_DIR/scenarios/$name.sh"
  [[ -f "$file" ]] || die "unknown scenario '$name' (see: lab.sh list)"
  printf '%s\n' "$file"
}

up_failed() {
  if [[ "${NW_LAB_KEEP:-0}" == 1 ]]; then
    warn "up failed; NW_LAB_KEEP=1 so the partial lab stays (lab.sh down removes it)"
  else
    warn "up failed; tearing down"
    teardown
  fi
}

cmd_up() {
  local mode="${NW_LAB_MODE:-iptables}"
  while (($# > 0)); do
    case "$1" in
      --ipvs) mode=ipvs ;;
      --iptables) mode=iptables ;;
      *) die "usage: lab.sh up [--ipvs|--iptables]" ;;
    esac
    shift
  done
  [[ "$mode" == iptables || "$mode" == ipvs ]] || die "NW_LAB_MODE must be iptables or ipvs, not '$mode'"
  require_root
  if [[ "$mode" == ipvs ]] && { [[ "$LAB_BACKEND" == netns ]] || [[ "$LAB_ROLE" == node* ]]; }; then
    ipvs_available || die "IPVS mode needs a kernel with IPVS (modprobe ip_vs) and ipvsadm; this one ($(uname -r)) has none: use the microVM (lab/vm-run.sh, test/vm/ipvs-lab.test.ts)"
  fi
  [[ -x "$CNI_BIN_DIR/bridge" && -x "$CNI_BIN_DIR/host-local" && -x "$CNI_BIN_DIR/loopback" ]] ||
    die "the pods need the CNI plugins in $CNI_BIN_DIR (Debian: apt-get install containernetworking-plugins; or set NW_LAB_CNI_PATH)"
  command -v jq >/dev/null || die "the lab needs jq (apt-get install jq)"
  # Always start from a clean slate: a half-built lab from a crash would
  # otherwise make "ip netns add" fail halfway through.
  teardown
  mkdir -p "$STATE_DIR/applied"
  echo "$mode" >"$STATE_DIR/mode"
  # If anything below fails (set -e exits the shell), do not leave a
  # half-built lab behind; NW_LAB_KEEP=1 keeps it for debugging.
  trap up_failed EXIT
  log "building topology"
  build_topology
  if [[ "$mode" == ipvs ]]; then
    log "setting up kube-proxy (IPVS mode): kube-ipvs0, ipsets, IPVS services, iptables"
    apply_kube_proxy_ipvs nw-node1
    apply_kube_proxy_ipvs nw-node2
  else
    log "loading kube-proxy rules"
    apply_kube_proxy nw-node1
    apply_kube_proxy nw-node2
  fi
  log "starting servers"
  start_servers "$mode"
  trap - EXIT
  log "lab is up ($mode mode)"
}

cmd_down() {
  require_root
  teardown
  local left
  left="$(lab_namespaces)"
  [[ -z "$left" ]] || die "namespaces left behind: $left"
  log "lab is down"
}

cmd_status() {
  local ns f pid
  echo "mode: $(lab_mode)"
  echo "namespaces:"
  lab_namespaces | sed 's/^/  /'
  echo "servers:"
  for f in "$STATE_DIR"/*.pid; do
    [[ -e "$f" ]] || continue
    pid="$(cat "$f")"
    if kill -0 "$pid" 2>/dev/null; then
      echo "  $(basename "$f" .pid) pid $pid running"
    else
      echo "  $(basename "$f" .pid) pid $pid DEAD"
    fi
  done
  echo "pods:"
  local line netns k8s_ns k8s_name
  for line in "${LAB_PODS[@]}"; do
    read -r netns _ _ k8s_ns k8s_name <<<"$line"
    ns_here "$netns" && echo "  $netns $k8s_ns/$k8s_name $(pod_container_id "$k8s_ns" "$k8s_name")"
  done
  if containerd_enabled; then
    echo "containerd: $CTRD_SOCK (namespace $CTRD_NS)"
    ctr_lab tasks ls 2>&1 | sed 's/^/  /'
  fi
  echo "applied scenarios:"
  for f in "$STATE_DIR"/applied/*; do
    [[ -e "$f" ]] && echo "  $(basename "$f")"
  done
  return 0
}

cmd_list() {
  local f name want="${1:-}"
  case "$want" in
    "" | --ipvs | --iptables) ;;
    *) die "usage: lab.sh list [--ipvs|--iptables]" ;;
  esac
  for f in "$LAB_DIR"/scenarios/*.sh; do
    name="${f##*/}"
    name="${name%.sh}"
    if [[ -z "$want" || "--$(scenario_mode "$name")" == "$want" ]]; then
      printf '%s\n' "$name"
    fi
  done
}

# run_scenario_fn NAME apply|revert|evidence : source the scenario in a
# subshell so its functions cannot leak into (or clash with) ours. A scenario
# need not define evidence.
run_scenario_fn() {
  local name="$1" fn="$2" file
  file="$(scenario_file "$name")"
  (
    # shellcheck source=/dev/null
    source "$file"
    if [[ "$fn" == evidence ]] && ! declare -F evidence >/dev/null; then
      exit 0
    fi
    "$fn"
  )
}

cmd_apply() {
  local name="${1:?usage: lab.sh apply NAME}"
  require_root
  require_up
  scenario_file "$name" >/dev/null
  require_mode_for "$name"
  log "apply $name"
  run_scenario_fn "$name" apply
  touch "$STATE_DIR/applied/$name"
}

cmd_revert() {
  local name="${1:?usage: lab.sh revert NAME}"
  require_root
  require_up
  scenario_file "$name" >/dev/null
  require_mode_for "$name"
  log "revert $name"
  run_scenario_fn "$name" revert
  rm -f "$STATE_DIR/applied/$name"
}

# client_spec NAME : print the client netns, then each argv element,
# NUL-separated, from scenarios.json.
client_spec() {
  # shellcheck disable=SC2016 # JavaScript, not shell: no expansion wanted
  node -e '
    const [file, name] = process.argv.slice(1);
    const { scenarios } = JSON.parse(require("fs").readFileSync(file, "utf8"));
    const s = scenarios.find((x) => x.name === name);
    if (!s) { console.error(`no scenario ${name} in ${file}`); process.exit(1); }
    process.stdout.write([s.client.netns, ...s.client.argv].map((a) => a + "\0").join(""));
  ' "$SCENARIOS_JSON" "$1"
}

cmd_run_client() {
  local name="${1:?usage: lab.sh run-client NAME}"
  require_root
  require_up
  scenario_file "$name" >/dev/null
  require_mode_for "$name"
  local spec=()
  mapfile -d '' spec < <(client_spec "$name")
  ((${#spec[@]} >= 2)) || die "no client command for '$name'"
  local netns="${spec[0]}"
  if ! ns_here "$netns"; then
    log "run-client $name: the client runs on $(lab_machine "$netns"), not here ($LAB_ROLE)"
    return 0
  fi
  # Exit with the client's own status so callers can assert on it.
  local rc=0
  if [[ -n "${NW_CLIENT_WRAPPER:-}" ]]; then
    # The wrapper (e.g. netwhy explain --json --) runs on this host and gets
    # the whole command, netns entry included.
    local wrapper=() prefix=()
    read -r -a wrapper <<<"$NW_CLIENT_WRAPPER"
    mapfile -d '' prefix < <(netns_argv "$netns")
    log "run-client $name: ${wrapper[*]} ${prefix[*]} ${spec[*]:1}"
    "${wrapper[@]}" "${prefix[@]}" "${spec[@]:1}" || rc=$?
  else
    log "run-client $name: [$netns] ${spec[*]:1}"
    in_ns "$netns" "${spec[@]:1}" || rc=$?
  fi
  return "$rc"
}

# cmd_client_machine NAME : the machine the scenario's client runs on
# (local backend: where run-client must be called).
cmd_client_machine() {
  local name="${1:?usage: lab.sh client-machine NAME}" spec=()
  scenario_file "$name" >/dev/null
  mapfile -d '' spec < <(client_spec "$name")
  lab_machine "${spec[0]}"
}

cmd_evidence() {
  local name="${1:?usage: lab.sh evidence NAME}"
  require_root
  require_up
  scenario_file "$name" >/dev/null
  require_mode_for "$name"
  run_scenario_fn "$name" evidence
}

cmd_exec() {
  local ns="${1:?usage: lab.sh exec NS CMD...}"
  shift
  [[ "$ns" == "$NS_PREFIX"* ]] || die "not a lab namespace: $ns"
  ns_exists "$ns" || die "no such namespace: $ns"
  ns_here "$ns" || die "$ns is on machine $(lab_machine "$ns"), not here ($LAB_ROLE)"
  in_ns "$ns" "$@"
}

main() {
  local cmd="${1:-}"
  shift || true
  case "$cmd" in
    up) cmd_up "$@" ;;
    down) cmd_down ;;
    status) cmd_status ;;
    list) cmd_list "$@" ;;
    apply) cmd_apply "$@" ;;
    revert) cmd_revert "$@" ;;
    run-client) cmd_run_client "$@" ;;
    evidence) cmd_evidence "$@" ;;
    client-machine) cmd_client_machine "$@" ;;
    exec) cmd_exec "$@" ;;
    *)
      sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
      exit 2
      ;;
  esac
}

main "$@"

#!/usr/bin/env bash
# Run the IPVS scenarios of the lab on a machine whose kernel has IPVS (the
# Debian 6.1 microVM: test/vm/ipvs-lab.test.ts runs this in one boot).
#
#   lab/vm-run.sh [SCENARIO...]      default: every ipvs-* scenario
#
# lab.sh up --ipvs, then for each scenario and run: apply, evidence, run the
# client, evidence, revert; finally lab.sh down. For each run it prints
#
#   === NW_CLIENT_BEGIN <name> <run> ===
#   <the client's stdout, as-is (under a wrapper: the wrapper's)>
#   === NW_CLIENT_END <name> <run> exit=<code> ===
# and, after the last run, one line per run
#   NW_RESULT {"name","run","exitCode","stdout","stderr","before","after",
#              "ipvs","conns","counter","error"}
#
# (one JSON line: stdout/stderr cut to 4000 characters; before/after are the
# scenario's evidence lines; ipvs and conns are nw-node1's ipvsadm -Ln and
# -Lnc lines after the client; counter is {name, netns, before, after} when
# the scenario names an nstat counter) and at the end
#   NW_DONE {"runs":N,"errors":M}
#
# Environment:
#   NW_LAB_RUNS=N        runs of each scenario (default 1)
#   NW_CLIENT_WRAPPER    run the client under this command, e.g.
#                        "node dist/cli.js explain --json --" (it gets
#                        "ip netns exec NS CLIENT..." as its arguments)
# Exit code: 0 when every run could be applied, run and reverted; 1 otherwise
# (whether the clients behaved as expected is for the caller to judge).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
lab="$here/lab.sh"
runs="${NW_LAB_RUNS:-1}"
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || {
  echo "NW_LAB_RUNS must be a positive integer" >&2
  exit 2
}
((EUID == 0)) || {
  echo "vm-run.sh: must run as root" >&2
  exit 2
}

for m in ip_vs ip_vs_rr ip_vs_wrr ip_vs_sh nf_conntrack br_netfilter dummy; do
  modprobe -q "$m" 2>/dev/null || true
done

scenarios=("$@")
if ((${#scenarios[@]} == 0)); then
  mapfile -t scenarios < <(bash "$lab" list --ipvs)
fi

work="$(mktemp -d)"
cleanup() {
  bash "$lab" down >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# Process starts are slow in the microVM (an exec costs ~0.2 s, node ~1 s),
# so the lab's functions are called directly and node runs twice in all.
# shellcheck source=lab/lib.sh
source "$here/lib.sh"

# counter_specs NAME... : "NAME COUNTER NETNS" for scenarios naming a counter.
counter_specs() {
  # shellcheck disable=SC2016 # JavaScript
  node -e '
    const [file, ...names] = process.argv.slice(1);
    const all = JSON.parse(require("fs").readFileSync(file, "utf8")).scenarios;
    for (const s of all) {
      if (names.includes(s.name) && s.expect && s.expect.counter && s.expect.verdictNetns) console.log(s.name, s.expect.counter, s.expect.verdictNetns);
    }
  ' "$here/scenarios.json" "$@"
}

# counter_value NETNS NAME : absolute nstat counter in a lab namespace.
counter_value() {
  in_ns "$1" nstat -asz "$2" 2>/dev/null | awk -v n="$2" '$1 == n { print $2; found = 1 } END { if (!found) print 0 }'
}

# report DIR... : one NW_RESULT line per run directory (DIR/meta: name run).
report() {
  # shellcheck disable=SC2016 # JavaScript
  node -e '
    const fs = require("fs");
    for (const dir of process.argv.slice(1)) {
      const read = (f) => { try { return fs.readFileSync(`${dir}/${f}`, "utf8"); } catch { return ""; } };
      const lines = (f) => read(f).split("\n").filter((l) => l.trim() !== "");
      const cut = (s) => (s.length > 4000 ? s.slice(0, 4000) + "...[cut]" : s);
      const num = (f) => { const t = read(f).trim(); return t === "" ? null : Number(t); };
      const [name, run] = read("meta").trim().split(" ");
      const counter = read("counter.name").trim()
        ? { name: read("counter.name").trim(), netns: read("counter.netns").trim(), before: num("counter.before"), after: num("counter.after") }
        : null;
      const out = {
        name, run: Number(run), exitCode: num("rc"),
        stdout: cut(read("stdout")), stderr: cut(read("stderr")),
        before: lines("before"), after: lines("after"),
        ipvs: lines("ipvs"), conns: lines("conns"), counter,
        error: read("error").trim() || null,
      };
      console.log("NW_RESULT " + JSON.stringify(out));
    }
  ' "$@"
}

echo "[vm-run] kernel $(uname -r); scenarios: ${scenarios[*]}; runs: $runs" >&2
bash "$lab" up --ipvs >&2

declare -A counter_of=()
while read -r sname cname cns; do
  counter_of[$sname]="$cname $cns"
done < <(counter_specs "${scenarios[@]}")

total=0
errors=0
dirs=()
for name in "${scenarios[@]}"; do
  spec="${counter_of[$name]:-}"
  for ((run = 1; run <= runs; run++)); do
    total=$((total + 1))
    d="$work/$total"
    mkdir -p "$d"
    dirs+=("$d")
    echo "$name $run" >"$d/meta"
    if [[ -n "$spec" ]]; then
      read -r cname cns <<<"$spec"
      echo "$cname" >"$d/counter.name"
      echo "$cns" >"$d/counter.netns"
      counter_value "$cns" "$cname" >"$d/counter.before"
    fi
    echo "[vm-run] $name run $run: apply" >&2
    if ! bash "$lab" apply "$name" >&2 2>"$d/apply.log"; then
      echo "apply failed: $(tail -n 5 "$d/apply.log")" >"$d/error"
    fi
    if [[ ! -s "$d/error" ]]; then
      bash "$lab" evidence "$name" >"$d/before" 2>&1 || true
      rc=0
      bash "$lab" run-client "$name" >"$d/stdout" 2>"$d/stderr" || rc=$?
      echo "$rc" >"$d/rc"
      bash "$lab" evidence "$name" >"$d/after" 2>&1 || true
      in_ns nw-node1 ipvsadm -Ln >"$d/ipvs" 2>&1 || true
      in_ns nw-node1 ipvsadm -Lnc >"$d/conns" 2>&1 || true
      if [[ -n "$spec" ]]; then
        counter_value "$cns" "$cname" >"$d/counter.after"
      fi
      echo "=== NW_CLIENT_BEGIN $name $run ==="
      cat "$d/stdout"
      echo "=== NW_CLIENT_END $name $run exit=$rc ==="
    fi
    echo "[vm-run] $name run $run: revert" >&2
    if ! bash "$lab" revert "$name" >&2 2>"$d/revert.log"; then
      echo "revert failed: $(tail -n 5 "$d/revert.log")" >>"$d/error"
    fi
    if [[ -s "$d/error" ]]; then
      errors=$((errors + 1))
    fi
    echo "[vm-run] $name run $run: done at ${SECONDS}s" >&2
  done
done

report "${dirs[@]}"

echo "NW_DONE {\"runs\":$total,\"errors\":$errors}"
((errors == 0))

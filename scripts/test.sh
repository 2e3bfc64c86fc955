#!/usr/bin/env bash
# Set up, then run every test: unit (no privileges), integration (root, real
# namespaces and BPF) and VM tests. Ends with one "N passed, N failed" line.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit $?
results=$(mktemp)
npx vitest run --reporter=default --reporter=json --outputFile.json="$results" "$@"
code=$?
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const skipped = r.numPendingTests + r.numTodoTests;
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed` + (skipped ? `, ${skipped} skipped` : ""));
' "$results" 2>/dev/null || echo "0 passed, 1 failed"
rm -f "$results"
exit $code

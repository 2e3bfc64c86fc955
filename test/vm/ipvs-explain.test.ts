// The IPVS scenarios, explained: in one boot of the 6.1 microVM the lab comes
// up in kube-proxy IPVS mode and each scenario's client runs under
// `netwhy explain --json`; each verdict must be the scenario's (lab/scenarios.json).
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type Scenario, VM_MODULES, checkVerdict, loadScenarios } from '../../src/commands/lab.js';
import type { ExplainDoc } from '../../src/explain/document.js';
import { runInVm, vmUnavailableReason } from '../../src/vm/runner.js';

const ROOT = resolve(__dirname, '../..');
const unavailable = await vmUnavailableReason();
if (unavailable) console.warn(`skipping the IPVS explain VM test: ${unavailable}`);

/** The explain document each client printed, by scenario name. */
function clientDocs(stdout: string): Map<string, ExplainDoc> {
  const docs = new Map<string, ExplainDoc>();
  const re = /=== NW_CLIENT_BEGIN (\S+) \d+ ===\n([\s\S]*?)\n=== NW_CLIENT_END \1 \d+ exit=\d+ ===/g;
  for (const m of stdout.matchAll(re)) {
    try {
      docs.set(m[1], JSON.parse(m[2]));
    } catch {
      // not JSON: the assertion below reports the scenario as missing
    }
  }
  return docs;
}

describe.skipIf(unavailable !== null)('IPVS scenarios explained in the microVM', () => {
  const scenarios: Scenario[] = loadScenarios().filter((s) => s.ipvs);
  let docs: Map<string, ExplainDoc>;
  let output = '';

  it('boots once and runs every IPVS scenario under netwhy explain', { timeout: 960_000 }, async () => {
    const r = await runInVm({
      command: ['bash', resolve(ROOT, 'lab/vm-run.sh')],
      cwd: ROOT,
      env: { NW_CLIENT_WRAPPER: `${process.execPath} ${resolve(ROOT, 'dist/cli.js')} explain --json --` },
      modules: VM_MODULES,
      timeoutMs: 900_000,
    });
    output = r.stdout + r.stderr;
    docs = clientDocs(r.stdout);
    expect(r.stdout, output.slice(-3000)).toContain('NW_DONE');
    expect(scenarios.length).toBeGreaterThanOrEqual(5);
  });

  for (const name of ['ipvs-nodeport-curl', 'ipvs-coredns-ip-forward-off', 'ipvs-secondary-vip', 'ipvs-cleanup-flap', 'ipvs-coredns-stale-udp']) {
    it(`${name}: the verdict is the scenario's`, () => {
      const s = scenarios.find((x) => x.name === name);
      expect(s, `${name} in lab/scenarios.json`).toBeDefined();
      const doc = docs?.get(name);
      expect(doc, `no explain document for ${name}\n${output.slice(-2000)}`).toBeDefined();
      expect(checkVerdict(s!, doc!).problems, JSON.stringify(doc!.flows[0]?.verdict, null, 1)).toEqual([]);
      if (name === 'ipvs-nodeport-curl') {
        // every hop and the IPVS NAT with the real server chosen
        const nat = doc!.flows[0].nat.find((n) => n.by.type === 'ipvs-service');
        expect(nat).toMatchObject({ kind: 'dnat', to: { dst: '10.244.2.2', dport: 80 }, by: { ref: 'TCP 192.168.0.11:30080 rr' }, netns: 'nw-node1' });
        const netns = new Set(doc!.flows[0].hops.map((h) => h.netns));
        for (const n of ['nw-client', 'nw-node1', 'nw-node2', 'nw-pod2']) expect(netns.has(n), n).toBe(true);
      }
    });
  }
});

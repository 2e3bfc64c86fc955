// Every lab scenario, explained on this kernel: the verdict netwhy prints must
// be the one the scenario was built to produce (lab/scenarios.json).
import { execFileSync, spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type ClientRun, checkVerdict, loadScenarios } from '../../src/lab/scenarios.js';
import type { ExplainDoc } from '../../src/explain/document.js';
import { isRoot, run } from '../helpers/netns.js';
import { expectValid } from '../helpers/schema.js';

const ROOT = resolve(__dirname, '../..');
const CLI = resolve(ROOT, 'dist/cli.js');
const LAB = resolve(ROOT, 'lab/lab.sh');

/** What lab run measured besides the document (its 'lab: measured {...}' stderr line). */
function measured(stderr: string): ClientRun {
  const m = /^lab: measured (.*)$/m.exec(stderr);
  if (!m) throw new Error(`lab run printed no measurements\n${stderr.slice(-2000)}`);
  return JSON.parse(m[1]) as ClientRun;
}

/** An nstat counter's absolute value in a namespace. */
function nstat(netns: string, counter: string): number {
  const out = execFileSync('ip', ['netns', 'exec', netns, 'nstat', '-asz', counter], { encoding: 'utf8' });
  return Number(out.split('\n').find((l) => l.split(/\s+/)[0] === counter)?.split(/\s+/)[1] ?? 0);
}

function labNamespaces(): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0]).filter((n) => n.startsWith('nw-'));
}

describe.skipIf(!isRoot())('lab scenarios explained', () => {
  afterAll(() => {
    spawnSync('bash', [LAB, 'down']);
  });

  for (const s of loadScenarios().filter((x) => !x.ipvs)) { // IPVS ones run in the microVM (test/vm)
    it(`${s.name} (fault: ${s.fault}): lab run matches every expect field and leaves no namespace`, async () => {
      const r = await run(process.execPath, [CLI, 'lab', 'run', s.name, '--json'], 60_000);
      const doc = expectValid('explain', JSON.parse(r.stdout) as ExplainDoc);
      const check = checkVerdict(s, doc, measured(r.stderr));
      expect(check.problems, r.stderr.slice(-2000)).toEqual([]);
      expect(r.status).toBe(0);
      if (s.name === 'nodeport-ok' || s.name === 'ip-forward-off') {
        // the NodePort DNAT to the pod on node2, and the rule that did it
        const dnat = doc.flows[0].nat.find((n) => n.kind === 'dnat');
        expect(dnat).toMatchObject({ to: { dst: '10.244.2.2', dport: 80 }, netns: 'nw-node1', by: { type: 'iptables-rule' } });
        expect(dnat!.by.ref).toMatch(/^-A KUBE-SEP-\w+ .*-j DNAT --to-destination 10\.244\.2\.2:80$/);
      }
      if (s.name === 'nodeport-ok') {
        // Names from the lab's runtime (CNI result cache, containerd) and kube-proxy's rules.
        const web = { kind: 'pod', namespace: 'default', name: 'web-7c9f5b6d4-x8mzt' };
        expect(doc.flows[0].orig.k8s?.dst).toEqual({ kind: 'service', namespace: 'default', name: 'web', port: 'http' });
        expect(doc.flows[0].nat.find((n) => n.kind === 'dnat')?.k8s).toEqual(web);
        expect(doc.flows[0].hops.filter((h) => h.netns === 'nw-pod2').every((h) => JSON.stringify(h.k8s) === JSON.stringify(web))).toBe(true);
        expect(doc.flows[0].hops.filter((h) => h.netns !== 'nw-pod2').some((h) => h.k8s)).toBe(false);
        expect(doc.flows[0].nat.find((n) => n.kind === 'snat')?.by.ref).toMatch(/MASQUERADE/);
        const netns = new Set(doc.flows[0].hops.map((h) => h.netns));
        for (const n of ['nw-client', 'nw-node1', 'nw-node2', 'nw-pod2']) expect(netns.has(n), n).toBe(true);
      }
      expect(labNamespaces()).toEqual([]);
    });
  }

  it('the same verdict when the topology is up by hand and the client runs under explain', () => {
    const s = loadScenarios().find((x) => x.name === 'rp-filter-strict')!;
    try {
      execFileSync('bash', [LAB, 'up'], { stdio: 'ignore' });
      execFileSync('bash', [LAB, 'apply', s.name], { stdio: 'ignore' });
      const { counter, verdictNetns } = s.expect as { counter: string; verdictNetns: string };
      const before = nstat(verdictNetns, counter);
      const r = spawnSync(process.execPath, [CLI, 'explain', '--json', '--', 'ip', 'netns', 'exec', s.client.netns, ...s.client.argv], { encoding: 'utf8', timeout: 60_000 });
      // under explain --json the client's output goes to stderr
      const client: ClientRun = { stdout: r.stderr, counter: { name: counter, netns: verdictNetns, before, after: nstat(verdictNetns, counter) } };
      expect(checkVerdict(s, expectValid('explain', JSON.parse(r.stdout)), client).problems).toEqual([]);
    } finally {
      execFileSync('bash', [LAB, 'down'], { stdio: 'ignore' });
    }
    expect(labNamespaces()).toEqual([]);
  });
});

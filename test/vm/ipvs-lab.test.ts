// The lab in kube-proxy IPVS mode, explained, in the Debian 6.1 microVM (this
// host's kernel has no IPVS). One boot runs lab/vm-run.sh: it brings the IPVS
// lab up, then applies, runs and reverts every ipvs-* scenario with its client
// under `netwhy explain --json`, and prints the explain document and one
// NW_RESULT line (client output, IPVS state, evidence) per run. Each scenario
// must behave as lab/scenarios.json says, with the IPVS state that makes it so,
// and netwhy's verdict must be the scenario's. Skipped, with the reason,
// without qemu, ipvsadm or what preparing the VM needs (test/vm/helpers.ts).
//
//   NW_IPVS_LAB_RUNS=3   runs of each scenario in the boot (default 1; the
//                        TCG guest needs 1-2 min for the lab and ~1 min per
//                        scenario under explain)
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { VM_MODULES } from '../../src/commands/lab.js';
import { checkVerdict, loadScenarios } from '../../src/lab/scenarios.js';
import type { ExplainDoc } from '../../src/explain/document.js';
import { runInVm, type VmRunResult } from '../../src/vm/runner.js';
import { expectValid } from '../helpers/schema.js';
import { prepareVmBeforeAll, vmSkipReason } from './helpers.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** What lab/scenarios.json says the client does (beyond netwhy's verdict). */
interface ClientExpect {
  exitCode: number;
  stdoutIncludes?: string;
}

interface RunResult {
  name: string;
  run: number;
  exitCode: number | null;
  stdout: string;
  stderr: string;
  before: string[];
  after: string[];
  ipvs: string[];
  conns: string[];
  counter: { name: string; netns: string; before: number | null; after: number | null } | null;
  error: string | null;
}

const scenarios = loadScenarios().filter((s) => s.ipvs);
const runs = Number(process.env.NW_IPVS_LAB_RUNS ?? '1');
// Boot ~10 s, lab up 1-2 min, each scenario under explain ~1 min (TCG), plus margin.
const TIMEOUT_MS = 240_000 + runs * scenarios.length * 120_000;

const ipvsadm = ['/usr/sbin/ipvsadm', '/sbin/ipvsadm'].find((p) => existsSync(p));
const vmSkip = await vmSkipReason('the IPVS lab');
const skip = vmSkip ?? (ipvsadm ? null : 'ipvsadm is not installed on the host (the guest uses the host root)');
if (skip && !vmSkip) console.warn(`skipping the IPVS lab: ${skip}`);

/** ipvsadm prints two spaces after the protocol; compare with one. */
const squeeze = (lines: string[]): string[] => lines.map((l) => l.replace(/\s+/g, ' ').trim());

describe.skipIf(skip !== null)('IPVS lab in the microVM, explained', () => {
  let vm: VmRunResult;
  const results = new Map<string, RunResult[]>();
  /** explain documents by "name run". */
  const docs = new Map<string, ExplainDoc>();

  prepareVmBeforeAll();
  beforeAll(async () => {
    vm = await runInVm({
      command: ['bash', 'lab/vm-run.sh', ...scenarios.map((s) => s.name)],
      cwd: repo,
      modules: VM_MODULES,
      timeoutMs: TIMEOUT_MS,
      env: { NW_LAB_RUNS: String(runs), NW_CLIENT_WRAPPER: `${process.execPath} ${path.join(repo, 'dist/cli.js')} explain --json --` },
    });
    console.log(`[vm] IPVS lab: accel=${vm.accel} kernel=${vm.kernel} boot=${vm.bootMs}ms total=${vm.totalMs}ms exit=${vm.exitCode}`);
    for (const line of vm.stdout.split('\n')) {
      if (!line.startsWith('NW_RESULT ')) continue;
      const r = JSON.parse(line.slice('NW_RESULT '.length)) as RunResult;
      results.set(r.name, [...(results.get(r.name) ?? []), r]);
    }
    const re = /=== NW_CLIENT_BEGIN (\S+) (\d+) ===\n([\s\S]*?)\n=== NW_CLIENT_END \1 \2 exit=\d+ ===/g;
    for (const m of vm.stdout.matchAll(re)) {
      try {
        docs.set(`${m[1]} ${m[2]}`, JSON.parse(m[3]));
      } catch {
        // not JSON: the assertions report the document as missing
      }
    }
  }, TIMEOUT_MS + 60_000);

  it('the driver brought the lab up, ran every scenario and tore it down', () => {
    expect(vm.exitCode, vm.stderr.slice(-3000)).toBe(0);
    expect(vm.stdout).toMatch(/^NW_DONE \{"runs":\d+,"errors":0\}$/m);
    expect([...results.keys()].sort()).toEqual(scenarios.map((s) => s.name).sort());
    for (const rs of results.values()) expect(rs).toHaveLength(runs);
  });

  for (const s of scenarios) {
    const want = s.expect as unknown as ClientExpect;
    it(`${s.name}: the client ${s.expect.outcome === 'success' ? 'succeeds' : `fails (${s.expect.outcome})`}, the IPVS state shows why, netwhy says so`, () => {
      const rs = results.get(s.name) ?? [];
      expect(rs).toHaveLength(runs);
      for (const r of rs) {
        const doc = docs.get(`${s.name} ${r.run}`);
        // Under explain --json the client's output goes to stderr, its exit code into the document.
        const ctx = `${s.name} run ${r.run}\n${r.stderr}\n${r.after.join('\n')}\n${JSON.stringify(doc?.flows.map((f) => f.verdict), null, 1)}`;
        expect(r.error, ctx).toBeNull();
        // explain exits with the client's own status, like time(1).
        expect(r.exitCode, ctx).toBe(want.exitCode);
        expect(doc, `no explain document\n${ctx}\n${vm.stderr.slice(-2000)}`).toBeDefined();
        expectValid('explain', doc);
        expect(doc!.exitCode, ctx).toBe(want.exitCode);
        if (want.stdoutIncludes) expect(r.stderr, ctx).toContain(want.stdoutIncludes);
        if (r.counter) expect(r.counter.after!, ctx).toBeGreaterThan(r.counter.before!);
        checkIpvs(s.name, r, ctx);
        expect(checkVerdict(s, doc!, { stdout: r.stderr, counter: r.counter }).problems, ctx).toEqual([]);
        if (s.name === 'ipvs-nodeport-curl') {
          // every hop, and the IPVS NAT with the real server chosen
          const flow = doc!.flows[0];
          expect(flow.nat.find((n) => n.by.type === 'ipvs-service'), ctx).toMatchObject({
            kind: 'dnat', to: { dst: '10.244.2.2', dport: 80 }, by: { ref: 'TCP 192.168.0.11:30080 rr' }, netns: 'nw-node1',
          });
          const netns = new Set(flow.hops.map((h) => h.netns));
          for (const n of ['nw-client', 'nw-node1', 'nw-node2', 'nw-pod2']) expect(netns.has(n), `${n}\n${ctx}`).toBe(true);
        }
      }
    });
  }
});

/** The IPVS state each scenario is about, as the driver saw it after the client ran. */
function checkIpvs(name: string, r: RunResult, ctx: string): void {
  const ipvs = squeeze(r.ipvs);
  const conns = squeeze(r.conns);
  const after = squeeze(r.after);
  switch (name) {
    case 'ipvs-nodeport-curl':
      expect(ipvs, ctx).toContain('TCP 192.168.0.11:30080 rr');
      expect(conns.some((c) => / 192\.168\.0\.10:\d+ 192\.168\.0\.11:30080 10\.244\.2\.2:80$/.test(c)), ctx).toBe(true);
      break;
    case 'ipvs-coredns-ip-forward-off':
      expect(after, ctx).toContain('net.ipv4.ip_forward = 0');
      // IPVS did schedule the query to CoreDNS: the drop is the way back.
      expect(conns.some((c) => /^UDP .* 10\.244\.1\.2:\d+ 10\.96\.0\.10:53 10\.244\.2\.3:53$/.test(c)), ctx).toBe(true);
      break;
    case 'ipvs-secondary-vip':
      expect(after.some((l) => /inet 192\.168\.0\.200\/24 .*secondary/.test(l)), ctx).toBe(true);
      expect(ipvs, ctx).toContain('TCP 192.168.0.11:30080 rr');
      expect(ipvs.some((l) => l.includes('192.168.0.200:30080')), ctx).toBe(false);
      break;
    case 'ipvs-cleanup-flap': {
      // Some requests got through, some were refused, and the processes named
      // kube-vip / kube-proxy kept re-creating / deleting the service.
      const m = /ok=(\d+) failed=(\d+)/.exec(r.stderr);
      expect(m, ctx).not.toBeNull();
      expect(Number(m![2]), ctx).toBeGreaterThan(0);
      expect(Number(m![1]), ctx).toBeGreaterThan(0);
      const changes = (who: string) => Number(new RegExp(`^${who}: (\\d+) changes`).exec(after.find((l) => l.startsWith(`${who}:`)) ?? '')?.[1] ?? 0);
      expect(changes('kube-vip'), ctx).toBeGreaterThan(1);
      expect(changes('kube-proxy'), ctx).toBeGreaterThan(1);
      expect(after.some((l) => /^kube-proxy process: \d+ kube-proxy /.test(l)), ctx).toBe(true);
      expect(after.some((l) => /^kube-vip process: \d+ kube-vip /.test(l)), ctx).toBe(true);
      break;
    }
    case 'ipvs-coredns-stale-udp':
      // The real server moved to 10.244.2.5, the connection entry did not.
      expect(ipvs, ctx).toContain('UDP 10.96.0.10:53 rr');
      expect(ipvs.some((l) => l.startsWith('-> 10.244.2.5:53 Masq')), ctx).toBe(true);
      expect(ipvs.some((l) => l.startsWith('-> 10.244.2.3:53')), ctx).toBe(false);
      expect(conns.some((c) => /^UDP \S+ UDP 10\.244\.1\.2:5353 10\.96\.0\.10:53 10\.244\.2\.3:53$/.test(c)), ctx).toBe(true);
      expect(after, ctx).toContain('net.ipv4.vs.expire_nodest_conn = 0');
      break;
    case 'ipvs-no-endpoints':
      // the virtual service is there, with no real server
      expect(after, ctx).toContain('TCP 10.96.0.30:80 rr');
      expect(after.some((l) => l.startsWith('->') && !l.startsWith('-> RemoteAddress')), ctx).toBe(false);
      break;
    default:
      throw new Error(`no IPVS check for scenario ${name}`);
  }
}

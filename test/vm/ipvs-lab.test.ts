// The lab in kube-proxy IPVS mode, in the Debian 6.1 microVM (this host's
// kernel has no IPVS): one boot runs lab/vm-run.sh, which brings the IPVS lab
// up, applies, runs and reverts every ipvs-* scenario and prints one NW_RESULT
// line per run. Each scenario must behave as lab/scenarios.json says, with the
// IPVS state that explains it. Skipped, with the reason, without qemu/kernel.
//
//   NW_IPVS_LAB_RUNS=3   runs of each scenario in the boot (default 1; the
//                        TCG guest needs ~1 min for the lab and ~1 min per
//                        round of the five scenarios)
//   NW_CLIENT_WRAPPER    passed to the driver: run the clients under e.g.
//                        "node dist/cli.js explain --json --"
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { runInVm, vmUnavailableReason, type VmRunResult } from '../../src/vm/runner.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

interface Scenario {
  name: string;
  ipvs?: boolean;
  client: { netns: string; argv: string[] };
  expect: {
    outcome: string;
    exitCode: number;
    stdoutIncludes?: string;
    counter?: string;
    verdictNetns: string | null;
  };
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

const scenarios = (
  JSON.parse(readFileSync(path.join(repo, 'lab', 'scenarios.json'), 'utf8')) as { scenarios: Scenario[] }
).scenarios.filter((s) => s.ipvs);

const runs = Number(process.env.NW_IPVS_LAB_RUNS ?? '1');
// Boot ~10 s, lab up ~60 s, a round of the five scenarios ~80 s (TCG), plus margin.
const TIMEOUT_MS = 180_000 + runs * 150_000;

const unavailable = await vmUnavailableReason();
const ipvsadm = ['/usr/sbin/ipvsadm', '/sbin/ipvsadm'].find((p) => existsSync(p));
const skip = unavailable ?? (ipvsadm ? null : 'ipvsadm is not installed on the host (the guest uses the host root)');
if (skip) console.warn(`skipping the IPVS lab: ${skip}`);

/** ipvsadm prints two spaces after the protocol; compare with one. */
const squeeze = (lines: string[]): string[] => lines.map((l) => l.replace(/\s+/g, ' ').trim());

describe.skipIf(skip !== null)('IPVS lab in the microVM', () => {
  let vm: VmRunResult;
  const results = new Map<string, RunResult[]>();

  beforeAll(async () => {
    const env: Record<string, string> = { NW_LAB_RUNS: String(runs) };
    if (process.env.NW_CLIENT_WRAPPER) env.NW_CLIENT_WRAPPER = process.env.NW_CLIENT_WRAPPER;
    vm = await runInVm({
      command: ['bash', 'lab/vm-run.sh', ...scenarios.map((s) => s.name)],
      cwd: repo,
      modules: ['ip_vs', 'ip_vs_rr', 'ip_vs_wrr', 'ip_vs_sh', 'nf_conntrack', 'br_netfilter', 'dummy'],
      timeoutMs: TIMEOUT_MS,
      env,
    });
    console.log(`[vm] IPVS lab: accel=${vm.accel} kernel=${vm.kernel} boot=${vm.bootMs}ms total=${vm.totalMs}ms exit=${vm.exitCode}`);
    for (const line of vm.stdout.split('\n')) {
      if (!line.startsWith('NW_RESULT ')) continue;
      const r = JSON.parse(line.slice('NW_RESULT '.length)) as RunResult;
      results.set(r.name, [...(results.get(r.name) ?? []), r]);
    }
  }, TIMEOUT_MS + 60_000);

  it('the driver brought the lab up, ran every scenario and tore it down', () => {
    expect(vm.exitCode, vm.stderr.slice(-3000)).toBe(0);
    expect(vm.stdout).toMatch(/^NW_DONE \{"runs":\d+,"errors":0\}$/m);
    expect([...results.keys()].sort()).toEqual(scenarios.map((s) => s.name).sort());
    for (const rs of results.values()) expect(rs).toHaveLength(runs);
  });

  for (const s of scenarios) {
    it(`${s.name}: ${s.expect.outcome} (exit ${s.expect.exitCode}) every run`, () => {
      const rs = results.get(s.name) ?? [];
      expect(rs).toHaveLength(runs);
      for (const r of rs) {
        const ctx = `${s.name} run ${r.run}\n${r.stdout}\n${r.stderr}\n${r.after.join('\n')}`;
        expect(r.error, ctx).toBeNull();
        if (!process.env.NW_CLIENT_WRAPPER) {
          // Under a wrapper the exit code and stdout are the wrapper's.
          expect(r.exitCode, ctx).toBe(s.expect.exitCode);
          if (s.expect.stdoutIncludes) expect(r.stdout, ctx).toContain(s.expect.stdoutIncludes);
        }
        if (r.counter) expect(r.counter.after!, ctx).toBeGreaterThan(r.counter.before!);
        checkIpvs(s.name, r, ctx);
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
      const m = /ok=(\d+) failed=(\d+)/.exec(r.stdout);
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
    default:
      throw new Error(`no IPVS check for scenario ${name}`);
  }
}

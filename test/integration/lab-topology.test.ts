// The lab (lab/lab.sh) builds a Kubernetes-shaped network out of network
// namespaces. This checks that every scenario behaves as scenarios.json says,
// without netwhy: apply the fault, run the client, compare, revert. Needs root.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../helpers/netns.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const labSh = path.join(repo, 'lab', 'lab.sh');
const serversMjs = path.join(repo, 'lab', 'servers.mjs');
const stateDir = '/run/netwhy-lab';

interface Scenario {
  name: string;
  fault: string;
  client: { netns: string; argv: string[] };
  expect: {
    outcome: string;
    exitCode: number;
    stdoutIncludes?: string;
    verdictNetns: string | null;
    counter?: string;
    cause: { type: string; ref: string; netns: string; value?: string } | null;
  };
}

const { scenarios } = JSON.parse(
  readFileSync(path.join(repo, 'lab', 'scenarios.json'), 'utf8'),
) as { scenarios: Scenario[] };

// Asynchronous: a file of long synchronous steps starves vitest's worker RPC.
function lab(...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return run('bash', [labSh, ...args], 60_000);
}

/** Run a lab command that must succeed; show its output if it does not. */
async function labOk(...args: string[]): Promise<string> {
  const r = await lab(...args);
  if (r.status !== 0) {
    throw new Error(`lab.sh ${args.join(' ')} exited ${r.status}\n${r.stdout}\n${r.stderr}`);
  }
  return r.stdout;
}

async function inNs(ns: string, ...cmd: string[]): Promise<string> {
  return (await labOk('exec', ns, ...cmd)).trim();
}

/** Absolute value of one nstat counter in a lab namespace. */
async function counter(ns: string, name: string): Promise<number> {
  const out = await inNs(ns, 'nstat', '-asz', name);
  const line = out.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(/\s+/)[1]) : 0;
}

function labNamespaces(): string[] {
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  return r.stdout
    .split('\n')
    .map((l) => l.split(' ')[0])
    .filter((n) => n.startsWith('nw-'));
}

/** PIDs of lab servers still alive, found by command line. */
function labProcesses(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmdline.includes(serversMjs)) pids.push(Number(entry));
    } catch {
      // The process exited while we looked.
    }
  }
  return pids;
}

function assertClean(): void {
  expect(labNamespaces()).toEqual([]);
  expect(labProcesses()).toEqual([]);
  expect(existsSync(stateDir)).toBe(false);
}

const hostBridgeNf = () => readFileSync('/proc/sys/net/bridge/bridge-nf-call-iptables', 'utf8').trim();
const isRoot = process.getuid?.() === 0;

describe.skipIf(!isRoot)('lab topology and scenarios', () => {
  let hostBridgeNfBefore = '';

  beforeAll(async () => {
    hostBridgeNfBefore = hostBridgeNf();
    await labOk('up');
  }, 120_000);

  afterAll(async () => {
    // Even when a test failed half-way: nothing may outlive the file.
    await lab('down');
    assertClean();
    expect(hostBridgeNf()).toBe(hostBridgeNfBefore);
  });

  it('lists every scenario file in scenarios.json', async () => {
    const files = (await labOk('list')).trim().split('\n').sort();
    expect(scenarios.map((s) => s.name).sort()).toEqual(files);
  });

  // This lab is up in iptables mode. The ipvs-* scenarios need a kernel with IPVS
  // (test/vm/ipvs-lab.test.ts runs them); the nft-* ones the nftables mode, which
  // lab run brings up for them (test/integration/lab-explain.test.ts).
  for (const s of scenarios.filter((x) => !(x as { ipvs?: boolean }).ipvs && !(x as { nft?: boolean }).nft)) {
    it(`${s.name}: ${s.expect.outcome}`, async () => {
      const before = s.expect.counter && s.expect.verdictNetns
        ? await counter(s.expect.verdictNetns, s.expect.counter)
        : 0;
      await labOk('apply', s.name);
      try {
        const r = await lab('run-client', s.name);
        expect(r.status, r.stderr).toBe(s.expect.exitCode);
        if (s.expect.outcome === 'success') {
          expect(r.status).toBe(0);
        } else {
          expect(r.status).not.toBe(0);
        }
        if (s.expect.stdoutIncludes) expect(r.stdout).toContain(s.expect.stdoutIncludes);
        if (s.expect.counter && s.expect.verdictNetns) {
          // The counter named in scenarios.json really moved where we say.
          expect(await counter(s.expect.verdictNetns, s.expect.counter)).toBeGreaterThan(before);
        }
        if (s.expect.cause?.type === 'sysctl') {
          const value = await inNs(s.expect.cause.netns, 'sysctl', '-n', s.expect.cause.ref);
          expect(value).toBe(s.expect.cause.value);
        }
      } finally {
        await labOk('revert', s.name);
      }
    });
  }

  it('nodeport-ok is served by pod2 through node1', async () => {
    const r = await lab('run-client', 'nodeport-ok');
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe('nw-pod2');
  });

  it('rp-filter-strict: drops are rp_filter, loose mode (2) lets it through', async () => {
    await labOk('apply', 'rp-filter-strict');
    try {
      const before = await counter('nw-node2', 'TcpExtIPReversePathFilter');
      expect((await lab('run-client', 'rp-filter-strict')).status).toBe(28);
      expect(await counter('nw-node2', 'TcpExtIPReversePathFilter')).toBeGreaterThan(before);

      await inNs('nw-node2', 'sysctl', '-qw', 'net.ipv4.conf.all.rp_filter=2');
      const loose = await lab('run-client', 'rp-filter-strict');
      expect(loose.status, loose.stderr).toBe(0);
      expect(loose.stdout.trim()).toBe('nw-pod2');
    } finally {
      await labOk('revert', 'rp-filter-strict');
    }
    expect(await inNs('nw-node2', 'sysctl', '-n', 'net.ipv4.conf.all.rp_filter')).toBe('0');
    expect(await inNs('nw-client', 'ip', 'route', 'show', '10.244.2.0/24')).toBe('');
  });

  it('kube-router-svip: the API server answers again after revert', async () => {
    await labOk('apply', 'kube-router-svip');
    await labOk('revert', 'kube-router-svip');
    // The "API server" accepts and closes: curl reports an empty reply.
    expect((await lab('run-client', 'kube-router-svip')).status).toBe(52);
    expect(await inNs('nw-node1', 'ipset', 'list', '-n')).toBe('');
  });

  it('bridge-nf-off: per-netns sysctl, host untouched, DNS works after revert', async () => {
    await labOk('apply', 'bridge-nf-off');
    try {
      expect(await inNs('nw-node2', 'sysctl', '-n', 'net.bridge.bridge-nf-call-iptables')).toBe('0');
      expect(hostBridgeNf()).toBe(hostBridgeNfBefore);
    } finally {
      await labOk('revert', 'bridge-nf-off');
    }
    const r = await lab('run-client', 'bridge-nf-off');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('10.96.0.1');
  });

  it('ip-forward-off and no-route: NodePort works again after revert', async () => {
    for (const name of ['ip-forward-off', 'no-route']) {
      await labOk('apply', name);
      await labOk('revert', name);
      expect((await lab('run-client', 'nodeport-ok')).status).toBe(0);
    }
  });

  it('down removes every namespace, process and the state dir, twice', async () => {
    expect(labProcesses().length).toBe(6); // pod1, pod2 (IPv4 and IPv6), coredns, the API server on node1 (IPv4 and IPv6)
    await labOk('down');
    assertClean();
    await labOk('down');
    assertClean();
  });
});

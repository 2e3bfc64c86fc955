// netwhy agent on the real kernel, scraped by a real Prometheus: a lab failure
// is counted by cause, explained once in the log and at /explanations; under a
// drop storm it keeps answering and SIGTERM ends it in time; bad input is one
// clear line. Every process started here (prometheus, the agent, the lab) is
// stopped in afterAll/finally. Run under `flock /tmp/netwhy-lab.lock`.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Storm } from '../../bench/src/storm.js';
import { NetnsPair, eventually, isRoot, netwhyBpfObjects, run } from '../helpers/netns.js';
import { expectValid, expectValidFlow } from '../helpers/schema.js';
import { labNameSources } from '../../src/commands/lab.js';

const ROOT = resolve(__dirname, '../..');
const CLI = join(ROOT, 'dist/cli.js');
const LAB = join(ROOT, 'lab/lab.sh');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const STACK_TRACE = /\bat .*\.[cm]?js:\d+/;
const hasPrometheus = spawnSync('sh', ['-c', 'command -v prometheus']).status === 0;

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
  });
}

/** Poll until fn answers something truthy, or give up after ms; resolves the last answer. */
async function until<T>(fn: () => Promise<T | undefined | false>, ms: number, every = 250): Promise<T | undefined | false> {
  const end = Date.now() + ms;
  let last: T | undefined | false;
  for (;;) {
    try {
      last = await fn();
    } catch {
      last = undefined;
    }
    if (last || Date.now() > end) return last;
    await sleep(every);
  }
}

interface Agent {
  child: ChildProcess;
  port: number;
  out: () => string;
  err: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  get(path: string): Promise<{ status: number; body: string }>;
}

async function startAgent(args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Agent> {
  const port = await freePort();
  const child = spawn(process.execPath, [CLI, 'agent', '--listen', `127.0.0.1:${port}`, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
  const get = async (path: string) => {
    const r = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(5000) });
    return { status: r.status, body: await r.text() };
  };
  const agent = { child, port, out: () => out, err: () => err, exited, get };
  const ready = await until(async () => child.exitCode === null && (await get('/readyz')).status === 200, 20_000);
  if (!ready) {
    child.kill('SIGKILL');
    throw new Error(`netwhy agent did not become ready: ${err}`);
  }
  return agent;
}

/** Signal the agent; resolves its exit and how long it took (SIGKILL after ms). */
async function stopAgent(a: Agent, signal: NodeJS.Signals = 'SIGTERM', ms = 5000) {
  if (a.child.exitCode !== null || a.child.signalCode !== null) return { ...(await a.exited), waited: 0, inTime: true };
  const t0 = Date.now();
  a.child.kill(signal);
  const inTime = await Promise.race([a.exited.then(() => true), sleep(ms).then(() => false)]);
  const waited = Date.now() - t0;
  if (!inTime) a.child.kill('SIGKILL');
  return { ...(await a.exited), waited, inTime };
}

/** A Prometheus of its own: config and data in a temp dir, on a free loopback port, scraping `target` every second. */
async function startPrometheus(target: string) {
  const dir = mkdtempSync(join(tmpdir(), 'nw-prom-'));
  const port = await freePort();
  writeFileSync(
    join(dir, 'prometheus.yml'),
    `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: netwhy\n    scrape_interval: 1s\n    static_configs:\n      - targets: ['${target}']\n`,
  );
  const child = spawn('prometheus', [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (d) => (log += d));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      if (!(await Promise.race([gone.then(() => true), sleep(5000).then(() => false)]))) child.kill('SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const base = `http://127.0.0.1:${port}`;
  const ready = await until(async () => child.exitCode === null && (await fetch(`${base}/-/ready`)).ok, 30_000);
  if (!ready) {
    await stop();
    throw new Error(`prometheus did not start: ${log.slice(-2000)}`);
  }
  /** Instant query; resolves the result vector. */
  const query = async (q: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> => {
    const r = await fetch(`${base}/api/v1/query?query=${encodeURIComponent(q)}`);
    const j = (await r.json()) as { status: string; data: { result: { metric: Record<string, string>; value: [number, string] }[] } };
    if (j.status !== 'success') throw new Error(JSON.stringify(j));
    return j.data.result;
  };
  return { child, stop, query, log: () => log };
}

/** lab.sh, asynchronously (up starts containerd and calls CNI: a slow machine must not starve vitest's worker). */
function lab(...args: string[]) {
  return run('bash', [LAB, ...args], 120_000);
}

/** An nstat counter's absolute value in a namespace (as `lab run` reads it). */
function nstat(netns: string, counter: string): number {
  const r = spawnSync('ip', ['netns', 'exec', netns, 'nstat', '-asz', counter], { encoding: 'utf8', timeout: 10_000 });
  const line = r.stdout.split('\n').find((l) => l.split(/\s+/)[0] === counter);
  return line ? Number(line.split(/\s+/)[1]) : 0;
}

interface FlowLine {
  type: string;
  time: string;
  hops: { what: string; netns: string }[];
  verdict: { outcome: string; where?: { netns: string; reason: string }; cause: { type: string; ref: string; value?: string; netns?: string } };
}

/** Every complete line the agent logged on stdout, each valid against docs/schemas/agent-line.schema.json. */
const flowLines = (out: string): FlowLine[] => out.slice(0, out.lastIndexOf('\n') + 1).split('\n').filter(Boolean).map((l) => expectValid('agent-line', JSON.parse(l) as FlowLine));
const isIpForward = (f: { verdict: FlowLine['verdict'] }) => f.verdict.cause.type === 'sysctl' && f.verdict.cause.ref === 'net.ipv4.ip_forward' && f.verdict.cause.netns === 'nw-node1';

describe.skipIf(!isRoot() || !hasPrometheus)('netwhy agent, scraped by a real Prometheus', () => {
  let agent: Agent | undefined;
  let prom: Awaited<ReturnType<typeof startPrometheus>> | undefined;

  beforeAll(async () => {
    // The lab plays the container runtime: its containerd and CNI cache name the pods (read again on
    // SIGHUP once it is up). Given in the environment, not argv: `lab.sh up` stops every process
    // whose command line names the lab's containerd socket, as a shim left by a crash.
    const { containerdSocket, cniCache } = labNameSources();
    agent = await startAgent([], { NETWHY_CONTAINERD_SOCK: containerdSocket, NETWHY_CNI_CACHE: cniCache });
    prom = await startPrometheus(`127.0.0.1:${agent.port}`);
  }, 60_000);
  afterAll(async () => {
    if (agent) await stopAgent(agent, 'SIGKILL');
    await prom?.stop();
  });

  it('/healthz answers 200 and /readyz 200 once the probes are attached; /metrics has probe_info for each attached probe', async () => {
    expect((await agent!.get('/healthz')).status).toBe(200);
    expect((await agent!.get('/readyz')).status).toBe(200);
    const m = await agent!.get('/metrics');
    expect(m.status).toBe(200);
    expect(m.body).toMatch(/^netwhy_probe_info\{probe="kfree_skb",mode="[a-z_]+"\} 1$/m);
    expect(m.body).toMatch(/^process_resident_memory_bytes \d/m);
  });

  it('SIGHUP re-reads the name sources and says so on stderr; the agent keeps running', async () => {
    agent!.child.kill('SIGHUP');
    expect(await eventually(() => /netwhy: agent: SIGHUP: name sources read/.test(agent!.err()), 15_000), agent!.err()).toBe(true);
    expect(agent!.child.exitCode).toBeNull();
    expect((await agent!.get('/healthz')).status).toBe(200);
  });

  it('ip_forward off on node1: netwhy_drops_total{cause_type="sysctl",cause="net.ipv4.ip_forward"} in Prometheus equals the SYNs node1 dropped (≥ 1) and the drops the agent logged; after SIGHUP the lab pods are named in it; /explanations has the flow, valid against the schema', async () => {
    try {
      expect((await lab('up')).status, 'lab up').toBe(0);
      expect((await lab('apply', 'ip-forward-off')).status, 'lab apply').toBe(0);
      // The lab's pods exist now: SIGHUP makes the agent read its name sources again.
      const reads = () => [...agent!.err().matchAll(/SIGHUP: name sources read \((\d+) pods/g)].map((m) => Number(m[1]));
      const before = reads().length;
      agent!.child.kill('SIGHUP');
      expect(await eventually(() => reads().length > before, 15_000), agent!.err()).toBe(true);
      expect(reads().at(-1), 'pods named after SIGHUP').toBeGreaterThan(0);
      const counted = nstat('nw-node1', 'IpInAddrErrors');
      const client = await lab('run-client', 'ip-forward-off');
      expect(client.status, `the client should time out: ${client.stderr}`).toBe(28);
      const dropped = nstat('nw-node1', 'IpInAddrErrors') - counted;
      expect(dropped).toBeGreaterThanOrEqual(1);

      // The flow is judged once idle (2 s): one log line, its drops in node1 all counted.
      const logged = await until(async () => {
        const l = flowLines(agent!.out()).filter(isIpForward);
        return l.length ? l : undefined;
      }, 20_000);
      expect(logged && logged.length, `agent log: ${agent!.out().slice(-3000)}\n${agent!.err()}`).toBe(1);
      const line = (logged as FlowLine[])[0];
      expect(line.verdict.outcome).toBe('dropped');
      expect(line.verdict.where).toMatchObject({ netns: 'nw-node1', reason: 'IP_INADDRERRORS' });
      expect(Number.isNaN(Date.parse(line.time))).toBe(false);
      const loggedDrops = line.hops.filter((h) => h.what === 'drop IP_INADDRERRORS' && h.netns === 'nw-node1').length;
      expect(loggedDrops).toBe(dropped);
      // names re-read on SIGHUP are in the explanation: the pod the NodePort DNATs to
      expect((line as unknown as { nat: { k8s?: { kind: string } }[] }).nat[0]?.k8s?.kind, JSON.stringify(line)).toBe('pod');

      const q = 'netwhy_drops_total{cause_type="sysctl",cause="net.ipv4.ip_forward"}';
      const result = await until(async () => {
        const r = await prom!.query(q);
        return r.length === 1 && Number(r[0].value[1]) === dropped ? r : undefined;
      }, 20_000, 500);
      const seen = await prom!.query(q);
      console.log(`Prometheus ${q}:\n${JSON.stringify(seen)}`);
      expect(result, `Prometheus answered ${JSON.stringify(seen)}; expected ${dropped}`).toBeTruthy();
      expect(seen[0].metric).toMatchObject({ reason: 'IP_INADDRERRORS', netns: 'nw-node1', job: 'netwhy' });
      expect(seen[0].metric.pod_namespace, 'no pod owns nw-node1: an empty label, which Prometheus drops').toBeUndefined();

      const metrics = (await agent!.get('/metrics')).body;
      console.log(`agent /metrics (netwhy_*):\n${metrics.split('\n').filter((l) => /^netwhy_(drops|flows|shed|probe)/.test(l)).join('\n')}`);

      const ex = await agent!.get('/explanations?limit=50');
      expect(ex.status).toBe(200);
      const docs = ex.body.split('\n').filter(Boolean).map((l) => JSON.parse(l));
      for (const d of docs) expectValidFlow(d);
      expect(docs.filter(isIpForward)).toHaveLength(1);
      expect((await agent!.get('/explanations?limit=0')).body).toBe('');
      expect((await agent!.get('/explanations?limit=x')).status).toBe(400);
    } finally {
      await lab('down');
    }
  }, 120_000);
});

describe.skipIf(!isRoot())('netwhy agent under a drop storm', () => {
  let pair: NetnsPair;
  const running = new Set<Agent>();
  const storms = new Set<Storm>();
  beforeAll(() => {
    pair = new NetnsPair(`nwg${process.pid % 10000}`, 63);
  });
  afterAll(async () => {
    await Promise.all([...storms].map((s) => s.stop()));
    for (const a of running) a.child.kill('SIGKILL');
    pair?.destroy();
  });

  it('still answers /metrics during 8 s of storm, exports lost events per probe and shed counts, and SIGTERM in the storm ends it with exit 0 within 2 s leaving no program', async () => {
    const a = await startAgent(['--ring-mb', '1', 'host', pair.addrB]);
    running.add(a);
    const s = new Storm(pair, { procs: 2, secs: 10, port: 9 });
    storms.add(s);
    await sleep(3000);
    const answers: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = Date.now();
      const m = await a.get('/metrics');
      expect(m.status).toBe(200);
      answers.push(Date.now() - t0);
      await sleep(1000);
    }
    const m = (await a.get('/metrics')).body;
    // SIGTERM while the storm still rages
    const r = await stopAgent(a, 'SIGTERM', 5000);
    const { sent } = await s.stop();
    const lost = [...m.matchAll(/^netwhy_events_lost_total\{probe="([^"]+)"\} (\d+)/gm)].reduce((n, x) => n + Number(x[2]), 0);
    const drops = [...m.matchAll(/^netwhy_drops_total\{reason="NO_SOCKET"[^}]*\} (\d+)/gm)].reduce((n, x) => n + Number(x[1]), 0);
    const rss = Number(/^process_resident_memory_bytes (\d+)/m.exec(m)?.[1]) / 2 ** 20;
    console.log(`agent under a storm of ${sent} datagrams: /metrics in ${answers.join(', ')} ms; ${drops} NO_SOCKET drops counted, ${lost} events lost; RSS ${rss.toFixed(0)} MiB; SIGTERM → exit ${r.waited} ms`);
    expect(m).toMatch(/^netwhy_events_lost_total\{probe="kfree_skb"\} \d+$/m);
    expect(lost, 'a 1 MiB ring under a storm loses events, and says so').toBeGreaterThan(0);
    for (const what of ['flows', 'label-sets', 'explained-keys']) expect(m).toMatch(new RegExp(`^netwhy_shed_total\\{what="${what}"\\} \\d+$`, 'm'));
    expect(drops).toBeGreaterThan(0);
    expect(r.code, a.err()).toBe(0);
    expect(r.waited, `SIGTERM took ${r.waited} ms`).toBeLessThan(2000);
    expect(a.err()).toContain('SIGTERM: detached');
    expect(await eventually(() => netwhyBpfObjects().programs.length === 0, 5000)).toBe(true);
  }, 60_000);
});

describe.skipIf(!isRoot())('netwhy agent --log text', () => {
  let pair: NetnsPair;
  let agent: Agent | undefined;
  beforeAll(() => {
    pair = new NetnsPair(`nwh${process.pid % 10000}`, 64);
  });
  afterAll(() => {
    agent?.child.kill('SIGKILL');
    pair?.destroy();
  });

  it('a datagram to a closed port is explained as text on stdout (time, flow, verdict, cause: the socket), never as JSON; SIGINT ends it with exit 0', async () => {
    agent = await startAgent(['--log', 'text', 'udp', 'and', 'host', pair.addrB]);
    const logged = await eventually(() => {
      pair.sendUdp(pair.addrB, 7301);
      return /verdict\s+DROPPED/.test(agent!.out());
    }, 20_000);
    expect(logged, `stdout: ${agent.out()}\nstderr: ${agent.err()}`).toBe(true);
    const out = agent.out();
    expect(out).toMatch(/^\d{4}-\d{2}-\d{2}T[\d:.]+Z$/m);
    expect(out).toMatch(new RegExp(`^flow \\d+: udp ${pair.addrA.replace(/\./g, '\\.')}:\\d+ > ${pair.addrB.replace(/\./g, '\\.')}:7301$`, 'm'));
    expect(out).toMatch(/^ {2}cause {5}socket .*= no listener/m);
    expect(out).not.toContain('{"type"');
    const r = await stopAgent(agent, 'SIGINT', 5000);
    expect(r.code).toBe(0);
    expect(agent.err()).toContain('SIGINT: detached');
  }, 60_000);
});

describe('netwhy agent: bad input is one clear line and a non-zero exit', () => {
  const run = (args: string[]) => spawnSync(process.execPath, [CLI, 'agent', ...args], { encoding: 'utf8', timeout: 30_000 });
  const oneLine = (stderr: string) => {
    expect(stderr).toMatch(/^netwhy: /);
    expect(stderr).not.toContain('internal error');
    expect(stderr).not.toMatch(STACK_TRACE);
  };

  for (const listen of ['nonsense', '127.0.0.1', '127.0.0.1:70000', '127.0.0.1:-1', '[::1:9965']) {
    it(`--listen ${listen}: a usage error (exit 2)`, () => {
      const r = run(['--listen', listen]);
      expect(r.status, r.stderr).toBe(2);
      oneLine(r.stderr);
      expect(r.stderr).toContain('--listen');
    });
  }

  it('a bad filter: a usage error (exit 2) that points at the column', () => {
    const r = run(['port', '99999']);
    expect(r.status).toBe(2);
    oneLine(r.stderr);
    expect(r.stderr).toContain('bad filter');
  });

  it('--log yaml: a usage error (exit 2)', () => {
    const r = run(['--log', 'yaml']);
    expect(r.status).toBe(2);
    oneLine(r.stderr);
  });

  it.skipIf(!isRoot())('a port in use: "cannot listen ... already in use", exit 1, nothing loaded', async () => {
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
    const port = (busy.address() as { port: number }).port;
    try {
      const r = await new Promise<{ status: number | null; stderr: string }>((res) => {
        const c = spawn(process.execPath, [CLI, 'agent', '--listen', `127.0.0.1:${port}`], { stdio: ['ignore', 'ignore', 'pipe'] });
        let stderr = '';
        c.stderr.on('data', (d) => (stderr += d));
        c.on('exit', (status) => res({ status, stderr }));
      });
      expect(r.status).toBe(1);
      oneLine(r.stderr);
      expect(r.stderr).toContain(`cannot listen on 127.0.0.1:${port}: the address is already in use`);
    } finally {
      busy.close();
    }
  });
});

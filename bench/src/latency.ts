// Start-up (process start → first event), memory under load, and explain's
// latency (the command's exit → the verdict on screen).
import { Bpftrace, PRINT_DROP, PRINT_PATH, inNetns } from './bpftrace.js';
import type { BenchEnv } from './env.js';
import { netwhyArgs } from './overhead.js';
import type { Row } from './report.js';
import { STORM_PORT, Storm } from './storm.js';
import { exited, median, memoryOf, onLines, sleep, spawnTracked, stopChild, until } from './util.js';

/** ms from spawn until `first(line)` holds for a stdout line; NaN on timeout. */
async function timeToLine(cmd: string, args: string[], first: (line: string) => boolean, timeoutMs = 15_000): Promise<number> {
  const t0 = performance.now();
  const child = spawnTracked(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let t1 = NaN;
  onLines(child.stdout, (l) => {
    if (Number.isNaN(t1) && first(l)) t1 = performance.now();
  });
  child.stderr?.resume();
  await until(() => !Number.isNaN(t1) || child.exitCode !== null, timeoutMs);
  await stopChild(child, 'SIGINT', 5000);
  return t1 - t0;
}

const START = 'start-up (process start → first event of a packet sent every 5 ms)';

export async function startupRows(env: BenchEnv, o: { rounds: number }, log: (s: string) => void): Promise<Row[]> {
  const pinger = new Storm(env, { procs: 1, pps: 200, secs: 600 });
  const nw: number[] = [];
  const bt: number[] = [];
  const bare: number[] = [];
  try {
    await sleep(300);
    for (let i = 0; i < o.rounds; i++) {
      log(`start-up: round ${i + 1}/${o.rounds}`);
      bare.push(await timeToLine(process.execPath, ['-e', 'console.log(1)'], () => true));
      nw.push(await timeToLine(process.execPath, netwhyArgs('trace', '--json', 'udp', 'and', 'dst', 'host', env.addrB, 'and', 'dst', 'port', String(STORM_PORT)), (l) => l.includes('"type":"event"')));
      if (env.tools.bpftrace) {
        bt.push(await timeToLine('bpftrace', ['-e', `tracepoint:skb:kfree_skb /${inNetns([env.inodeB])}/ { printf("first\\n"); exit(); }`], (l) => l === 'first'));
      }
    }
  } finally {
    await pinger.stop();
  }
  const n = median(nw);
  const p = env.tools.bpftrace ? median(bt) : null;
  return [
    {
      section: START, metric: 'netwhy trace --json → first event', unit: 'ms', netwhy: n, peer: p, peerName: 'bpftrace', ratio: p ? n / p : null,
      target: '≤ 300 ms', ok: n <= 300,
      note: `runs ${nw.map((v) => v.toFixed(0)).join(', ')} ms; a bare \`node -e\` takes ${median(bare).toFixed(0)} ms here${p ? `; bpftrace runs ${bt.map((v) => v.toFixed(0)).join(', ')} ms` : ''}`,
    },
  ];
}

const MEM = 'memory (peak RSS, VmHWM, while ~100k events/s are offered)';

/** Peak RSS of `netwhy trace --json ARGS` over secs of load, then Ctrl-C (bounded). */
async function netwhyPeak(args: string[], secs: number): Promise<{ hwm: number; rate: number; lost: number; stopped: boolean }> {
  const child = spawnTracked(process.execPath, netwhyArgs('trace', '--json', ...args), { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = { n: 0 };
  let tail = '';
  child.stdout?.on('data', (d: Buffer) => {
    for (let i = d.indexOf(10); i >= 0; i = d.indexOf(10, i + 1)) lines.n++;
    tail = (tail + d.toString('latin1')).slice(-4096);
  });
  child.stderr?.resume();
  const pid = child.pid ?? 0;
  let hwm = NaN;
  const sample = () => {
    const m = memoryOf(pid);
    if (m) hwm = Math.max(Number.isNaN(hwm) ? 0 : hwm, m.hwm);
  };
  await sleep(1500); // start-up, attach
  const n0 = lines.n;
  const t0 = performance.now();
  const end = Date.now() + secs * 1000;
  while (Date.now() < end && child.exitCode === null) {
    sample();
    await sleep(100);
  }
  const rate = (lines.n - n0) / ((performance.now() - t0) / 1000);
  sample();
  const stopped = await stopChild(child, 'SIGINT', 5000);
  let lost = NaN;
  try {
    const s = JSON.parse(tail.trim().split('\n').at(-1) ?? '') as { type: string; lost: { ringbuf: number } };
    if (s.type === 'summary') lost = s.lost.ringbuf;
  } catch {
    // killed before its summary: the row says so
  }
  return { hwm, rate, lost, stopped };
}

export async function memoryRows(env: BenchEnv, o: { secs: number; eventsPerPacket: number }, log: (s: string) => void): Promise<Row[]> {
  const pps = Math.round(100_000 / o.eventsPerPacket);
  const rows: Row[] = [];
  const storm = new Storm(env, { procs: 1, pps, secs: 3 * o.secs + 30 });
  try {
    let peer: { hwm: number; rate: number } | undefined;
    if (env.tools.bpftrace) {
      log('memory: bpftrace printing the same events');
      const bt = await Bpftrace.printer(
        [
          { probe: 'tracepoint:net:netif_receive_skb', action: PRINT_PATH },
          { probe: 'tracepoint:net:net_dev_queue', action: PRINT_PATH },
          { probe: 'tracepoint:skb:kfree_skb', action: PRINT_DROP },
        ],
        inNetns([env.inodeA, env.inodeB]),
      );
      const n0 = bt.lines.n;
      const t0 = performance.now();
      let hwm = 0;
      const end = Date.now() + o.secs * 1000;
      while (Date.now() < end) {
        hwm = Math.max(hwm, memoryOf(bt.pid())?.hwm ?? 0);
        await sleep(100);
      }
      peer = { hwm, rate: (bt.lines.n - n0) / ((performance.now() - t0) / 1000) };
      await bt.stop();
    }
    for (const [what, args] of [
      ['netwhy trace --json (defaults: verdicts on)', ['host', env.addrB]],
      ['netwhy trace --json --no-verdicts', ['--no-verdicts', 'host', env.addrB]],
    ] as const) {
      log(`memory: ${what}, ${pps} datagrams/s (~${o.eventsPerPacket.toFixed(1)} events each)`);
      const r = await netwhyPeak([...args], o.secs);
      rows.push({
        section: MEM, metric: what, unit: 'MiB', netwhy: r.hwm, peer: peer?.hwm ?? null, peerName: 'bpftrace printf', ratio: peer ? r.hwm / peer.hwm : null,
        target: '≤ 100 MiB', ok: r.hwm <= 100,
        note: `netwhy wrote ${Math.round(r.rate)} events/s, ${Number.isNaN(r.lost) ? 'no summary' : `${r.lost} lost`}${r.stopped ? '' : ', did not stop within 5 s of Ctrl-C (killed)'}` +
          (peer ? `; bpftrace printed ${Math.round(peer.rate)} events/s (no route lookups)` : ''),
      });
    }
  } finally {
    await storm.stop();
  }
  return rows;
}

const EXPLAIN = 'explain (traced command exits → verdict printed)';

/** ms from the command's own exit (a marker line it prints) to explain's verdict line, and the total. */
async function explainOnce(env: BenchEnv, url: string, settle: number | undefined): Promise<{ exitToVerdict: number; total: number }> {
  const t0 = performance.now();
  const settleArgs = settle === undefined ? [] : ['--settle', String(settle)];
  const cmd = `ip netns exec ${env.a} curl -s -m 1 ${url}; echo NWB-EXITED`;
  const child = spawnTracked(process.execPath, netwhyArgs('explain', ...settleArgs, '--', 'sh', '-c', cmd), { stdio: ['ignore', 'pipe', 'pipe'] });
  let tExit = NaN;
  let tVerdict = NaN;
  onLines(child.stdout, (l) => {
    if (l === 'NWB-EXITED') tExit = performance.now();
    else if (Number.isNaN(tVerdict) && /^\s+verdict\s/.test(l)) tVerdict = performance.now();
  });
  child.stderr?.resume();
  const done = exited(child);
  await Promise.race([done, sleep(30_000)]);
  await stopChild(child, 'SIGKILL');
  return { exitToVerdict: tVerdict - tExit, total: performance.now() - t0 };
}

export async function explainRows(env: BenchEnv, o: { rounds: number }, log: (s: string) => void): Promise<Row[]> {
  if (!env.tools.curl) return [{ section: EXPLAIN, metric: 'curl not installed', unit: '', netwhy: null }];
  const url = `http://${env.addrB}/`; // nothing listens: the SYN dies in nwb-b
  const alone: number[] = [];
  const def: { exitToVerdict: number; total: number }[] = [];
  const zero: { exitToVerdict: number; total: number }[] = [];
  for (let i = 0; i < o.rounds; i++) {
    log(`explain: round ${i + 1}/${o.rounds}`);
    const t0 = performance.now();
    await exited(env.spawnIn(env.a, 'curl', ['-s', '-m', '1', url]));
    alone.push(performance.now() - t0);
    def.push(await explainOnce(env, url, undefined));
    zero.push(await explainOnce(env, url, 0));
  }
  const m = (xs: { exitToVerdict: number }[]) => median(xs.map((x) => x.exitToVerdict));
  return [
    {
      section: EXPLAIN, metric: 'exit → verdict, default --settle (500 ms)', unit: 'ms', netwhy: m(def),
      note: `runs ${def.map((x) => x.exitToVerdict.toFixed(0)).join(', ')} ms; includes the 500 ms it keeps tracing for late replies`,
    },
    {
      section: EXPLAIN, metric: 'exit → verdict, --settle 0', unit: 'ms', netwhy: m(zero),
      note: `runs ${zero.map((x) => x.exitToVerdict.toFixed(0)).join(', ')} ms: drain, namespace snapshots, analysis, print`,
    },
    {
      section: EXPLAIN, metric: 'explain wall time vs the command alone', unit: 'ms',
      netwhy: median(def.map((x) => x.total)), peer: median(alone), peerName: 'command alone', ratio: median(def.map((x) => x.total)) / median(alone),
    },
  ];
}

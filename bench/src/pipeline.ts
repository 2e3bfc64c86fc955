// Pipeline throughput: a drop storm in the bench's namespaces, traced by a
// TraceSession on a worker thread of this process (ring buffer → addon thread
// → decoded records), side by side with bpftrace printing the same drops, and
// bpftrace counting them in the kernel as the ground truth.
import { Worker } from 'node:worker_threads';
import { Bpftrace, PRINT_DROP, inNetns } from './bpftrace.js';
import type { BenchEnv } from './env.js';
import type { Row } from './report.js';
import type { WorkerInput, WorkerReply } from './session-worker.js';
import { STORM_PORT, Storm } from './storm.js';
import { type ProgStat, cpuSecondsOf, median, nsPerRun, progStats, sleep, spread } from './util.js';

const PROBES = ['kfree_skb', 'netif_receive_skb', 'net_dev_queue', 'fib_table_lookup'];
// bpftool shows program names cut to 15 characters.
const progProbe = (name: string) => PROBES.find((p) => name.startsWith(p.slice(0, 12)));

export interface PipelineOptions {
  secs: number;
  senders: number;
  /** Rounds of (storm alone, storm traced by the drop probe), alternating so drift hits both alike. */
  rounds: number;
}

interface Phase {
  /** Events delivered per second during the measured window. */
  rate: number;
  /** Drops per second the kernel counted (bpftrace @count) in the window. */
  stormRate: number;
  delivered: number;
  lost: number;
  /** Kernel count of matching drops over the whole storm (bpftrace). */
  kernelDrops: number;
  cpuUsPerEvent: number;
  bpfNs: Record<string, { ns: number; runs: number }>;
  perProbe: Record<string, { events: number; lost: number }>;
}

const SECTION = 'pipeline (drop storm: UDP to a closed port across a veth, 2 senders)';

function stormFilter(env: BenchEnv): string {
  return `udp and dst host ${env.addrB} and dst port ${STORM_PORT}`;
}

/** A kernel counter of the storm's drops, when bpftrace is here. */
async function counter(env: BenchEnv): Promise<Bpftrace | undefined> {
  return env.tools.bpftrace ? Bpftrace.counter('tracepoint:skb:kfree_skb', inNetns([env.inodeB])) : undefined;
}

async function stormOnly(env: BenchEnv, o: PipelineOptions): Promise<number> {
  const count = await counter(env);
  const storm = new Storm(env, { procs: o.senders, secs: o.secs + 2 });
  try {
    await sleep(700);
    const c0 = count?.count ?? 0;
    const t0 = performance.now();
    await sleep(o.secs * 1000);
    const secs = (performance.now() - t0) / 1000;
    if (count) return (count.count - c0) / secs;
    const s = await storm.stop();
    return s.sent / s.secs;
  } finally {
    await storm.stop();
    await count?.stop();
  }
}

/** A TraceSession on a worker thread (see session-worker.ts), attached. */
export async function workerSession(input: Omit<WorkerInput, 'shared'>): Promise<{
  delivered: () => number;
  batches: () => number;
  stop: () => Promise<Extract<WorkerReply, { type: 'done' }>>;
}> {
  const shared = new SharedArrayBuffer(16);
  const counts = new Float64Array(shared);
  const worker = new Worker(new URL('./session-worker.js', import.meta.url), { workerData: { ...input, shared } satisfies WorkerInput });
  const replies: WorkerReply[] = [];
  let waiting: (() => void) | undefined;
  worker.on('message', (m: WorkerReply) => {
    replies.push(m);
    waiting?.();
  });
  worker.on('error', (e) => {
    replies.push({ type: 'error', message: e.message });
    waiting?.();
  });
  const next = () => (replies.length ? Promise.resolve(replies.shift()!) : new Promise<WorkerReply>((r) => (waiting = () => ((waiting = undefined), r(replies.shift()!)))));
  const first = await next();
  if (first.type !== 'ready') {
    await worker.terminate();
    throw new Error(first.type === 'error' ? first.message : 'worker: unexpected reply');
  }
  return {
    delivered: () => counts[0],
    batches: () => counts[1],
    stop: async () => {
      worker.postMessage('stop');
      const done = await Promise.race([next(), sleep(120_000).then((): WorkerReply => ({ type: 'error', message: 'worker did not stop in 120 s' }))]);
      await worker.terminate();
      if (done.type !== 'done') throw new Error(done.type === 'error' ? done.message : 'worker: unexpected reply');
      return done;
    },
  };
}

export async function netwhyPhase(env: BenchEnv, o: PipelineOptions, opts: { disable: string[]; filter: string; keepBytes?: number }): Promise<Phase & { kept: Uint8Array[] }> {
  const count = await counter(env);
  const before = new Set(progStats().map((p) => p.id));
  let storm: Storm | undefined;
  try {
    const s = await workerSession({ ringBytes: 8 << 20, disable: [...opts.disable, 'sched_process_fork'], filter: opts.filter, keepBytes: opts.keepBytes ?? 0 });
    const ours = (p: ProgStat) => !before.has(p.id);
    storm = new Storm(env, { procs: o.senders, secs: o.secs + 3 });
    await sleep(700);
    const w0 = { d: s.delivered(), k: count?.count ?? 0, cpu: process.cpuUsage(), progs: progStats(), t: performance.now() };
    await sleep(o.secs * 1000);
    const w1 = { d: s.delivered(), k: count?.count ?? 0, cpu: process.cpuUsage(w0.cpu), progs: progStats(), t: performance.now() };
    await storm.stop();
    await sleep(300); // the last datagrams land
    const done = await s.stop();
    const c = done.counters;
    const secs = (w1.t - w0.t) / 1000;
    const bpfNs: Phase['bpfNs'] = {};
    for (const probe of PROBES) {
      const r = nsPerRun(w0.progs, w1.progs, (p) => ours(p) && progProbe(p.name) === probe);
      if (r.runs) bpfNs[probe] = r;
    }
    const perProbe: Phase['perProbe'] = {};
    for (const p of c.probes) if (p.events || p.lost) perProbe[p.probe] = { events: p.events, lost: p.lost };
    const winDelivered = w1.d - w0.d;
    await count?.stop(); // after netwhy detached: the storm lies inside both
    return {
      rate: winDelivered / secs,
      stormRate: count ? (w1.k - w0.k) / secs : NaN,
      delivered: s.delivered(),
      lost: c.lost,
      kernelDrops: count ? count.count : NaN,
      cpuUsPerEvent: (w1.cpu.user + w1.cpu.system) / winDelivered,
      bpfNs,
      perProbe,
      kept: done.kept,
    };
  } finally {
    await storm?.stop();
    await count?.stop();
  }
}

async function bpftracePhase(env: BenchEnv, o: PipelineOptions): Promise<Phase> {
  const count = await counter(env);
  const before = new Set(progStats().map((p) => p.id));
  const bt = await Bpftrace.printer([{ probe: 'tracepoint:skb:kfree_skb', action: PRINT_DROP }], inNetns([env.inodeB]));
  let storm: Storm | undefined;
  try {
    storm = new Storm(env, { procs: o.senders, secs: o.secs + 3 });
    await sleep(700);
    const w0 = { d: bt.lines.n, k: count?.count ?? 0, cpu: cpuSecondsOf(bt.pid()), progs: progStats(), t: performance.now() };
    await sleep(o.secs * 1000);
    const w1 = { d: bt.lines.n, k: count?.count ?? 0, cpu: cpuSecondsOf(bt.pid()), progs: progStats(), t: performance.now() };
    await storm.stop();
    await sleep(300);
    const secs = (w1.t - w0.t) / 1000;
    const r = nsPerRun(w0.progs, w1.progs, (p) => !before.has(p.id));
    await bt.stop();
    await count?.stop();
    return {
      rate: (w1.d - w0.d) / secs,
      stormRate: count ? (w1.k - w0.k) / secs : NaN,
      delivered: bt.lines.n - 1, // "Attaching 1 probe..."
      lost: bt.lost,
      kernelDrops: count ? count.count : NaN,
      cpuUsPerEvent: ((w1.cpu - w0.cpu) * 1e6) / (w1.d - w0.d),
      bpfNs: { kfree_skb: r },
      perProbe: {},
    };
  } finally {
    await storm?.stop();
    await bt.stop();
    await count?.stop();
  }
}

/** The round whose traced storm rate is the median one (its figures belong together). */
function medianPhase(runs: Phase[]): Phase {
  const sorted = [...runs].sort((a, b) => a.stormRate - b.stormRate);
  return sorted[(sorted.length - 1) >> 1];
}

const pct = (a: number, b: number) => (b > 0 ? (100 * a) / b : NaN);

/** The rows, and how many events one storm datagram makes with every probe on. */
export async function pipelineRows(env: BenchEnv, o: PipelineOptions, keep: (b: Uint8Array) => void, log: (s: string) => void): Promise<{ rows: Row[]; eventsPerPacket: number }> {
  const rows: Row[] = [];
  let eventsPerPacket = NaN;
  const bt = env.tools.bpftrace;
  const stats = env.enableBpfStats();
  try {
    const bases: number[] = [];
    const dropRuns: Phase[] = [];
    for (let round = 0; round < o.rounds; round++) {
      log(`pipeline: round ${round + 1}/${o.rounds}, storm alone`);
      bases.push(await stormOnly(env, o));
      log(`pipeline: round ${round + 1}/${o.rounds}, netwhy, drop probe only`);
      dropRuns.push(await netwhyPhase(env, o, { disable: PROBES.filter((p) => p !== 'kfree_skb'), filter: stormFilter(env) }));
    }
    const base = median(bases);
    const drop = medianPhase(dropRuns);
    const kept = dropRuns.map((r, i) => (100 * r.stormRate) / bases[i]);
    log('pipeline: netwhy, all probes');
    const all = await netwhyPhase(env, o, { disable: [], filter: `host ${env.addrB}`, keepBytes: 4 << 20 });
    for (const b of all.kept) keep(b);
    log('pipeline: bpftrace printing each drop');
    const peer = bt ? await bpftracePhase(env, o) : undefined;

    rows.push({ section: SECTION, metric: 'storm, untraced (kernel count)', unit: 'drops/s', netwhy: null, peer: base, peerName: bt ? 'bpftrace count' : 'sent', note: spread(bases, (v) => `${(v / 1e3).toFixed(0)}k`) });
    rows.push({
      section: SECTION, metric: 'drops delivered as records, drop probe', unit: 'ev/s',
      netwhy: drop.rate, peer: peer?.rate ?? null, peerName: 'bpftrace printf', ratio: peer ? drop.rate / peer.rate : null,
      note: 'netwhy decodes each record (tuple, conntrack; a kernel stack only where it is evidence); bpftrace prints 4 fields. Both slow the storm they trace: on 2 cores the senders, the softirq and the tracer share the CPUs.',
    });
    rows.push({
      section: SECTION, metric: 'storm rate while traced (kernel count)', unit: 'drops/s',
      netwhy: drop.stormRate, peer: peer?.stormRate ?? null, peerName: 'bpftrace printf', ratio: peer ? drop.stormRate / peer.stormRate : null,
      note: spread(dropRuns.map((r) => r.stormRate), (v) => `${(v / 1e3).toFixed(0)}k`),
    });
    rows.push({
      section: SECTION, metric: 'storm rate kept while traced (traced / untraced, per round)', unit: '%',
      netwhy: median(kept), peer: peer && base ? (100 * peer.stormRate) / base : null, peerName: 'bpftrace printf',
      target: '≥ 80 %', ok: bt ? median(kept) >= 80 : null,
      note: `${spread(kept, (v) => `${v.toFixed(0)} %`)}; each round's traced storm against the untraced one just before it`,
    });
    const sum = dropRuns.reduce((a, r) => ({ delivered: a.delivered + r.delivered, lost: a.lost + r.lost, kernelDrops: a.kernelDrops + r.kernelDrops }), { delivered: 0, lost: 0, kernelDrops: 0 });
    rows.push({
      section: SECTION, metric: 'lost events, drop probe (reported)', unit: '',
      netwhy: sum.lost, peer: peer?.lost ?? null, peerName: 'bpftrace', ratio: null,
    });
    rows.push({
      section: SECTION, metric: 'delivered + lost = kernel count', unit: '%',
      netwhy: pct(sum.delivered + sum.lost, sum.kernelDrops), peer: peer ? pct(peer.delivered + peer.lost, peer.kernelDrops) : null, peerName: 'bpftrace',
      target: '100 %', ok: bt ? Math.abs(pct(sum.delivered + sum.lost, sum.kernelDrops) - 100) < 0.1 : null,
      note: bt ? `netwhy ${sum.delivered} delivered + ${sum.lost} lost, kernel ${sum.kernelDrops} (${o.rounds} rounds)${peer ? `; bpftrace ${peer.delivered} + ${peer.lost} lost, kernel ${peer.kernelDrops}` : ''}` : 'needs bpftrace for the kernel count',
    });
    rows.push({
      section: SECTION, metric: 'user-space CPU per event', unit: 'µs',
      netwhy: drop.cpuUsPerEvent, peer: peer?.cpuUsPerEvent ?? null, peerName: 'bpftrace printf', ratio: peer ? drop.cpuUsPerEvent / peer.cpuUsPerEvent : null,
      target: '≤ 2 µs', ok: drop.cpuUsPerEvent <= 2,
      note: `${spread(dropRuns.map((r) => r.cpuUsPerEvent))} µs; the whole process: decoding thread, the addon's ring buffer thread, system time`,
    });
    if (stats) {
      const nw = drop.bpfNs.kfree_skb?.ns ?? NaN;
      const pe = peer?.bpfNs.kfree_skb?.ns ?? NaN;
      rows.push({
        section: SECTION, metric: 'BPF time per drop event', unit: 'ns',
        netwhy: nw, peer: peer ? pe : null, peerName: 'bpftrace printf', ratio: peer ? nw / pe : null,
        target: '≤ 1500 ns', ok: nw <= 1500,
        note: `${spread(dropRuns.map((r) => r.bpfNs.kfree_skb?.ns ?? NaN), (v) => v.toFixed(0))} ns; kernel.bpf_stats_enabled run_time_ns/run_cnt; netwhy parses the packet, reads conntrack, runs the filter (a NO_SOCKET drop takes no kernel stack)`,
      });
    }
    const probeNote = Object.entries(all.perProbe).map(([p, v]) => `${p} ${v.events}${v.lost ? ` (+${v.lost} lost)` : ''}`).join(', ');
    const bpfNote = Object.entries(all.bpfNs).map(([p, v]) => `${p} ${v.ns.toFixed(0)} ns`).join(', ');
    rows.push({
      section: SECTION, metric: 'records, all 4 probes (host filter)', unit: 'ev/s', netwhy: all.rate,
      note: `per probe: ${probeNote}; storm ${Math.round(all.stormRate) || '?'} drops/s while traced${bpfNote ? `; BPF per run: ${bpfNote}` : ''}`,
    });
    rows.push({ section: SECTION, metric: 'lost events, all 4 probes (reported)', unit: '', netwhy: all.lost });
    const total = Object.values(all.perProbe).reduce((n, p) => n + p.events + p.lost, 0);
    const drops = all.perProbe.kfree_skb;
    if (drops) eventsPerPacket = total / (drops.events + drops.lost);
  } finally {
    env.restoreBpfStats();
  }
  return { rows, eventsPerPacket };
}

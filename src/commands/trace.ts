// netwhy trace [filter]: every event, live, one line (or JSON line) each.
import { type NwRecord, PROBES, type ProbeName } from '../abi.js';
import { compileFilter } from '../filter/compile.js';
import { usesK8s } from '../filter/k8s.js';
import { FilterError, parseFilter } from '../filter/parse.js';
import { NameResolver } from '../model/names.js';
import { type NameOptions, gatherNames } from './names.js';
import { UsageError } from '../errors.js';
import { kernelDropReasons, kernelSymbols, reasonName } from '../kernel/symbols.js';
import { NetnsNames } from '../kernel/netns.js';
import { requireTracing } from '../preflight.js';
import { EVENT_HEADER, type ViewContext, eventLine, eventView, summarize, summaryText } from '../render/events.js';
import { TraceSession } from '../tracer.js';
import { LiveJudge } from '../explain/live-judge.js';

export interface TraceOptions extends NameOptions {
  json?: boolean;
  /** Per-flow verdicts as flows finish (default: with a filter). */
  verdicts?: boolean;
  count?: number;
  duration?: number;
  ringMb: number;
  events?: string;
  /** The kernel stack of every drop, not only where it is evidence. */
  stacks?: boolean;
}

export const EVENT_KINDS = ['drop', 'rx', 'tx', 'route'] as const;
const EXIT_VERDICTS = 50;
type EventKind = (typeof EVENT_KINDS)[number];

// Which probe gives which event kind.
const PROBE_OF = Object.fromEntries(PROBES.filter((p) => p.event && p.event !== 'ipvs').map((p) => [p.event, p.name])) as Record<EventKind, ProbeName>;

export function parseEventKinds(spec: string | undefined, filtered: boolean): EventKind[] {
  if (spec === undefined) return filtered ? [...EVENT_KINDS] : ['drop'];
  const kinds = spec.split(',').map((s) => s.trim()).filter(Boolean);
  for (const k of kinds) {
    if (!(EVENT_KINDS as readonly string[]).includes(k)) throw new UsageError(`unknown event kind '${k}' (choose from ${EVENT_KINDS.join(', ')})`);
  }
  if (kinds.length === 0) throw new UsageError('--events needs at least one event kind');
  return kinds as EventKind[];
}

export interface Io {
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
}

export async function runTrace(filterWords: string[], opts: TraceOptions, io: Io = { out: process.stdout, err: process.stderr }): Promise<number> {
  const netns = new NetnsNames();
  const filterText = filterWords.join(' ').trim();
  let filterValue: Uint8Array | undefined;
  // Names are asked for at once, but only a pod/svc filter waits for them.
  const names = gatherNames(opts).then((f) => f && new NameResolver(f));
  if (filterText) {
    try {
      const needNames = usesK8s(parseFilter(filterText));
      filterValue = compileFilter(filterText, (n) => netns.inode(n), needNames ? await names : undefined).value;
    } catch (e) {
      if (e instanceof FilterError) throw new UsageError(`bad filter: ${e.message}`);
      throw e;
    }
  }
  const kinds = parseEventKinds(opts.events, !!filterText);
  if (opts.count !== undefined && !(opts.count > 0)) throw new UsageError('--count must be a positive number');
  if (opts.duration !== undefined && !(opts.duration > 0)) throw new UsageError('--duration must be a positive number of seconds');
  requireTracing();

  const disable = [...Object.entries(PROBE_OF).filter(([k]) => !kinds.includes(k as EventKind)).map(([, p]) => p), 'sched_process_fork' satisfies ProbeName, 'inet_sock_set_state' satisfies ProbeName, 'sock_send_length' satisfies ProbeName];
  const opening = TraceSession.open({ ringBytes: opts.ringMb * 1024 * 1024, disable, stackAlways: opts.stacks });
  // Read on this thread while the BPF object loads on another.
  const syms = kernelSymbols();
  const reasons = kernelDropReasons();
  const session = await opening;
  session.releaseFreedMemory();
  const events: Record<string, number> = {};
  const drops: Record<string, number> = {};
  let seen = 0;
  let stopping: Promise<void> | undefined;
  const started = Date.now();

  const ctx: ViewContext = {
    t0: -1,
    netnsName: (i) => netns.name(i),
    reasonName: (v) => reasonName(reasons, v),
    symbol: (a) => syms.name(a),
  };

  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  const stop = (): Promise<void> => (stopping ??= session.stop());
  const verdicts = opts.verdicts ?? !!filterText;
  const judge = new LiveJudge({
    netns,
    reasonName: (v) => reasonName(reasons, v),
    func: (a) => syms.func(a),
    symbol: (a) => syms.name(a),
    onJudged: async (judged) => {
      // The text renderer loads at the first verdict: the first event need not wait for it.
      const flowText = opts.json ? undefined : (await import('../render/explanation.js')).flowText;
      let text = '';
      for (const { flow, doc } of judged) {
        text += flowText ? `\n${flowText(doc, flow.id)}\n\n` : JSON.stringify({ type: 'flow', ...doc }) + '\n';
      }
      if (text) io.out.write(text);
    },
  });
  // Events and verdicts name pods and Services from when the sources answer.
  void names.then((n) => {
    ctx.names = n;
    judge.names = n;
  });
  if (verdicts) judge.start();
  try {
    if (filterValue) session.setFilter(filterValue);
    const probes = session.attach();
    if (!opts.json) {
      const modes = probes.filter((p) => p.attached).map((p) => `${p.probe} (${p.mode})`).join(', ');
      io.err.write(`netwhy: tracing ${filterText ? `'${filterText}'` : 'all drops'} with ${modes}; Ctrl-C to stop\n`);
      if (!filterText && opts.events === undefined) io.err.write('netwhy: no filter, so only drops are shown; give one (e.g. "host 10.0.0.1") to see every hop\n');
      io.out.write(EVENT_HEADER + '\n');
    }
    const onRecords = (records: NwRecord[]): void | Promise<void> => {
      if (stopping && opts.count !== undefined && seen >= opts.count) return;
      let text = '';
      for (const r of records) {
        if (ctx.t0 < 0) ctx.t0 = r.ts;
        const journey = judge.add(r);
        if (r.kind === 'lost' || r.kind === 'sock') continue; // not events: the summary and the verdicts see them
        const v = eventView(r, journey, ctx);
        events[v.event] = (events[v.event] ?? 0) + 1;
        if (v.drop) drops[v.drop.reason] = (drops[v.drop.reason] ?? 0) + 1;
        text += (opts.json ? JSON.stringify(v) : eventLine(v)) + '\n';
        if (opts.count !== undefined && ++seen >= opts.count) {
          void stop();
          done();
          break;
        }
      }
      const waits: Promise<void>[] = [];
      const crowded = judge.batchDone(records[records.length - 1].ts, verdicts);
      if (crowded) waits.push(crowded);
      // Honour back-pressure: the next batch waits until stdout has drained.
      if (text && !io.out.write(text)) waits.push(new Promise<void>((resolve) => io.out.once('drain', resolve)));
      if (waits.length) return Promise.all(waits).then(() => undefined);
    };
    session.start(onRecords);

    await untilDone(finished, done, opts.duration, io.out);
    await stop();
    if (verdicts) {
      // Ctrl-C must end the trace promptly: judge only the last few open flows.
      const unjudged = await judge.finish(EXIT_VERDICTS);
      if (unjudged.length) io.err.write(`netwhy: ${unjudged.length} flows still open at exit were not judged\n`);
    }
  } finally {
    judge.stop();
    const summary = summarize(session.counters(), events, drops, (Date.now() - started) / 1000);
    session.close();
    io[opts.json ? 'out' : 'err'].write((opts.json ? JSON.stringify(summary) : summaryText(summary)) + '\n');
  }
  return 0;
}

/** Resolve on `finished`, SIGINT, SIGTERM, the duration, or a closed stdout. */
export async function untilDone(finished: Promise<void>, done: () => void, durationSec: number | undefined, out: NodeJS.WritableStream): Promise<void> {
  const timer = durationSec ? setTimeout(done, durationSec * 1000) : undefined;
  const onPipe = (e: NodeJS.ErrnoException) => e.code === 'EPIPE' && done();
  process.once('SIGINT', done);
  process.once('SIGTERM', done);
  out.on('error', onPipe);
  try {
    await finished;
  } finally {
    if (timer) clearTimeout(timer);
    process.off('SIGINT', done);
    process.off('SIGTERM', done);
    out.off('error', onPipe);
  }
}

// netwhy agent [filter]: the node-wide, long-running tracer. Every drop (that
// matches the filter) seeds its flow in the kernel, so the flow's next packets
// are traced hop by hop; flows are judged with explain's rules once idle, each
// distinct (flow, cause) is logged once, and drops are counted by cause for
// Prometheus. Bounded: journeys held, flows queued for a verdict, label sets,
// remembered explanations; what is let go is counted (netwhy_shed_total).
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { FilterMode, type NwRecord, type ProbeName } from '../abi.js';
import { compileFilter, filterValue } from '../filter/compile.js';
import { usesK8s } from '../filter/k8s.js';
import { FilterError, parseFilter } from '../filter/parse.js';
import { NetwhyError, UsageError } from '../errors.js';
import { kernelDropReasons, kernelSymbols, reasonName } from '../kernel/symbols.js';
import { NetnsNames } from '../kernel/netns.js';
import type { K8sFacts } from '../model/k8s.js';
import { NameResolver } from '../model/names.js';
import { requireTracing } from '../preflight.js';
import { TraceSession } from '../tracer.js';
import type { FlowDoc } from '../explain/document.js';
import { hasStrongDrop } from '../explain/explain.js';
import type { Flow } from '../explain/flows.js';
import { type Judged, LiveJudge } from '../explain/live-judge.js';
import { flowText } from '../render/explanation.js';
import { AgentMetrics, dropLabels } from '../render/metrics.js';
import { DEFAULT_LISTEN } from './defaults.js';
import { type NameOptions, gatherNames } from './names.js';
import type { Io } from './trace.js';

export interface AgentOptions extends NameOptions {
  listen: string;
  log: string;
  ringMb: number;
  /** Explanations kept for GET /explanations. */
  recent: number;
  /** Distinct label sets of netwhy_drops_total at most. */
  maxSeries: number;
}

/** (flow, cause) pairs remembered, so a flow that keeps failing the same way is logged once. */
const MAX_EXPLAINED_KEYS = 10_000;
/** Flows waiting for a verdict at most; past it they are counted and let go. */
const MAX_QUEUED_FLOWS = 2_000;
/**
 * Journeys held for verdicts in all (trace holds 2,000); each flow holds a
 * bounded sample of its own (see LiveFlows). Past it, as under a storm of
 * many distinct flows, the oldest flows are judged early.
 */
const MAX_HELD_JOURNEYS = 500;
/** A flow that never goes quiet (a storm, a client retrying) is judged, and its drops counted, this often. */
const MAX_FLOW_AGE_NS = 3e9;
/** At exit, the open flows judged at most (SIGTERM must end the agent within 2 s). */
const EXIT_VERDICTS = 20;
/** What the flush after SIGTERM may take (the exit comes within 2 s: kubelet waits 30, a human less). */
const EXIT_BUDGET_MS = 1200;

export interface Listen {
  host: string;
  port: number;
}

/** `127.0.0.1:9965`, `[::1]:9965`, `:9965` (every address); port 0 takes a free one. */
export function parseListen(s: string): Listen {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(s.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new UsageError(`bad --listen '${s}': give ADDRESS:PORT, e.g. ${DEFAULT_LISTEN} or [::1]:9965 or :9965`);
  const host = m[1] ?? (m[2] || '0.0.0.0');
  return { host, port };
}

function parseLog(s: string): 'json' | 'text' {
  if (s !== 'json' && s !== 'text') throw new UsageError(`bad --log '${s}': choose json or text`);
  return s;
}

/** A map that forgets its oldest key past max. */
class Lru<K> {
  private readonly m = new Map<K, true>();
  constructor(private readonly max: number, private readonly onEvict: () => void) {}
  /** true when the key was there already (and is now the newest). */
  touch(k: K): boolean {
    const had = this.m.delete(k);
    this.m.set(k, true);
    if (this.m.size > this.max) {
      this.m.delete(this.m.keys().next().value as K);
      this.onEvict();
    }
    return had;
  }
}

/** A fixed-size ring of the latest items. */
class Ring<T> {
  private readonly items: T[] = [];
  constructor(private readonly max: number) {}
  push(x: T): void {
    this.items.push(x);
    if (this.items.length > this.max) this.items.shift();
  }
  last(n: number): T[] {
    return n <= 0 ? [] : this.items.slice(-n);
  }
}

function flowKey(doc: FlowDoc): string {
  const o = doc.orig;
  const c = doc.verdict.cause;
  return `${doc.proto} ${o.src}:${o.sport ?? ''} ${o.dst}:${o.dport ?? ''} ${c.type} ${c.ref} ${c.netns ?? ''}`;
}

export interface AgentDeps {
  /** The name sources, read at start and on SIGHUP (default: gatherNames); undefined when none answers. */
  loadNames?: () => Promise<K8sFacts | undefined>;
}

export async function runAgent(filterWords: string[], opts: AgentOptions, io: Io = { out: process.stdout, err: process.stderr }, deps: AgentDeps = {}): Promise<number> {
  const listen = parseListen(opts.listen);
  const log = parseLog(opts.log);
  if (!Number.isInteger(opts.recent) || opts.recent < 1) throw new UsageError('--recent must be a positive whole number');
  if (!Number.isInteger(opts.maxSeries) || opts.maxSeries < 1) throw new UsageError('--max-series must be a positive whole number');
  const netns = new NetnsNames();
  const filterText = filterWords.join(' ').trim();
  let filter = filterValue(FilterMode.DROPS);
  // The name sources: read at start (a pod/svc filter waits for them) and again on SIGHUP.
  const loadNames = deps.loadNames ?? (() => gatherNames(opts));
  let firstNames: Promise<K8sFacts | undefined> | undefined;
  if (filterText) {
    try {
      const needNames = usesK8s(parseFilter(filterText));
      const facts = needNames ? await (firstNames = loadNames()) : undefined;
      filter = compileFilter(filterText, (n) => netns.inode(n), facts && new NameResolver(facts), FilterMode.DROPS).value;
    } catch (e) {
      if (e instanceof FilterError) throw new UsageError(`bad filter: ${e.message}`);
      throw e;
    }
  }
  requireTracing();
  // From here on SIGINT and SIGTERM end the agent cleanly, even while it loads.
  let onSignal!: (s: string) => void;
  const signalled = new Promise<string>((resolve) => (onSignal = resolve));
  const onInt = () => onSignal('SIGINT');
  const onTerm = () => onSignal('SIGTERM');
  process.once('SIGINT', onInt);
  process.once('SIGTERM', onTerm);
  // SIGHUP re-reads the names (once the judge exists); never the default, which ends the process.
  let reread = () => {};
  const onHup = () => reread();
  process.on('SIGHUP', onHup);

  let session: TraceSession | undefined;
  let ready = false;
  const recent = new Ring<FlowDoc>(opts.recent);
  const metrics = new AgentMetrics({ maxSeries: opts.maxSeries, lost: () => session?.counters().probes ?? [] });
  // Listen before loading anything: a port in use is a sentence at once, not after the probes.
  let server: Server;
  try {
    server = await serve(listen, (req, res) => route(req, res, { metrics, recent, ready: () => ready }));
  } catch (e) {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    process.off('SIGHUP', onHup);
    throw e;
  }
  const addr = server.address();
  const where = typeof addr === 'object' && addr ? `${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}` : opts.listen;

  const disable: ProbeName[] = ['sched_process_fork'];
  let stopping = false;
  try {
    const opening = TraceSession.open({ ringBytes: opts.ringMb * 1024 * 1024, disable });
    // Read on this thread while the BPF object loads on another.
    const syms = kernelSymbols();
    const reasons = kernelDropReasons();
    session = await opening;
    session.releaseFreedMemory();
    const reason = (v: number) => reasonName(reasons, v);
    const explainedKeys = new Lru<string>(MAX_EXPLAINED_KEYS, () => metrics.shed('explained-keys'));
    let logged = 0;

    // Each drop held, and those counted but not kept (a long flow's middle).
    const dropOf = (r: number, ns: number, count: number) => ({ reason: reason(r), netns: netns.name(ns), pod: judge.deps.names?.netns(ns)?.namespace, count });
    const dropsOf = (f: Flow) => [...f.drops.map((d) => dropOf(d.drop.reason, d.drop.pkt.netns, 1)), ...[...(f.shed?.drops.values() ?? [])].map((d) => dropOf(d.reason, d.netns, d.count))];
    const onJudged = (judged: Judged[]): void | Promise<void> => {
      let text = '';
      const time = new Date().toISOString();
      for (const { flow, doc } of judged) {
        const drops = dropsOf(flow);
        dropLabels(doc, drops).forEach((l, i) => metrics.drop(l, drops[i].count));
        // Logged: flows a packet of which died for a reason that blames something. Not the
        // tail of a followed flow that dropped nothing since, nor weak frees alone (counted above).
        if (!hasStrongDrop(flow, reason)) continue;
        if (doc.verdict.outcome === 'delivered') {
          metrics.explainedFlow('delivered');
          continue;
        }
        if (explainedKeys.touch(flowKey(doc))) {
          metrics.explainedFlow('repeat');
          continue;
        }
        metrics.explainedFlow(doc.verdict.outcome);
        recent.push(doc);
        text += log === 'json' ? `${JSON.stringify({ type: 'flow', ...doc, time })}\n` : `\n${time}\n${flowText(doc, ++logged)}\n`;
      }
      // A slow reader (a full pipe) holds the next verdicts back; past the queue's bound flows are shed.
      if (text && !io.out.write(text)) return new Promise<void>((resolve) => io.out.once('drain', resolve));
    };
    const judge = new LiveJudge({
      netns,
      reasonName: reason,
      func: (a) => syms.func(a),
      symbol: (a) => syms.name(a),
      onJudged,
      maxQueued: MAX_QUEUED_FLOWS,
      maxPending: MAX_HELD_JOURNEYS,
      maxAgeNs: MAX_FLOW_AGE_NS,
      onShed: (flows) => {
        metrics.shed('flows', flows.length);
        for (const f of flows) for (const { pod, count, ...d } of dropsOf(f)) metrics.drop({ ...d, cause_type: 'unjudged', cause: '', pod_namespace: pod ?? '' }, count);
      },
      onError: (e) => io.err.write(`netwhy: agent: a verdict failed: ${(e as Error).message}\n`),
    });

    const readNames = async (why: string, pending?: Promise<K8sFacts | undefined>) => {
      try {
        const facts = await (pending ?? loadNames());
        judge.names = facts && new NameResolver(facts);
        io.err.write(`netwhy: agent: ${why}: name sources read (${facts ? `${facts.pods.length} pods, ${facts.services.length} services` : 'none answered'})\n`);
      } catch (e) {
        io.err.write(`netwhy: agent: ${why}: reading the name sources failed: ${(e as Error).message}\n`);
      }
    };
    void readNames('start', firstNames);
    reread = () => void readNames('SIGHUP');

    session.setFilter(filter);
    const probes = session.attach();
    for (const p of probes) if (p.attached && p.mode) metrics.probe(p.probe, p.mode);
    ready = true;
    const modes = probes.filter((p) => p.attached).map((p) => `${p.probe} (${p.mode})`).join(', ');
    io.err.write(`netwhy: agent: tracing ${filterText ? `drops matching '${filterText}'` : 'every drop'} and the path of their flows with ${modes}; metrics on http://${where}/metrics\n`);

    const onRecords = (records: NwRecord[]): void | Promise<void> => {
      if (stopping) return;
      for (const r of records) judge.add(r);
      return judge.batchDone(records[records.length - 1].ts);
    };
    session.start(onRecords);
    judge.start();
    const onPipe = (e: NodeJS.ErrnoException) => void e; // a reader that went away: metrics and /explanations still serve
    io.out.on('error', onPipe);

    const signal = await signalled;
    stopping = true;
    ready = false;
    reread = () => {};
    const t0 = Date.now();
    // Detach first, then flush what can be judged in the time left.
    const left = () => Math.max(0, EXIT_BUDGET_MS - (Date.now() - t0));
    await Promise.race([session.stop(), sleep(left() / 2)]);
    judge.stop();
    const unjudged = await Promise.race([judge.finish(EXIT_VERDICTS), sleep(left()).then(() => null)]);
    io.err.write(`netwhy: agent: ${signal}: detached${unjudged === null ? ', verdicts still pending were dropped' : unjudged.length ? `, ${unjudged.length} open flows not judged` : ''}\n`);
    io.out.off('error', onPipe);
  } finally {
    stopping = true;
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    process.off('SIGHUP', onHup);
    session?.close();
    server.closeAllConnections();
    server.close();
  }
  return 0;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

function serve(l: Listen, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer(handler);
    server.once('error', (e: NodeJS.ErrnoException) => {
      const why = e.code === 'EADDRINUSE' ? 'the address is already in use' : e.code === 'EADDRNOTAVAIL' ? 'no such local address' : e.code === 'EACCES' ? 'permission denied' : e.message;
      reject(new NetwhyError(`cannot listen on ${l.host}:${l.port}: ${why}`, undefined, e.code === 'EADDRINUSE' ? 'another netwhy agent (or something else) serves that port: choose another with --listen' : undefined));
    });
    server.listen(l.port, l.host, () => resolve(server));
  });
}

interface Routes {
  metrics: AgentMetrics;
  recent: Ring<FlowDoc>;
  ready(): boolean;
}

function route(req: IncomingMessage, res: ServerResponse, r: Routes): void {
  const url = new URL(req.url ?? '/', 'http://agent');
  const send = (code: number, type: string, body: string) => {
    res.writeHead(code, { 'content-type': type });
    res.end(body);
  };
  if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain', 'only GET\n');
  switch (url.pathname) {
    case '/metrics':
      r.metrics.text().then((t) => send(200, r.metrics.contentType, t), (e) => send(500, 'text/plain', `${(e as Error).message}\n`));
      return;
    case '/explanations': {
      const limit = url.searchParams.has('limit') ? Number(url.searchParams.get('limit')) : 100;
      if (!Number.isInteger(limit) || limit < 0) return send(400, 'text/plain', 'limit must be a whole number\n');
      return send(200, 'application/x-ndjson', r.recent.last(limit).map((d) => JSON.stringify(d) + '\n').join(''));
    }
    case '/healthz':
      return send(200, 'text/plain', 'ok\n');
    case '/readyz':
      return r.ready() ? send(200, 'text/plain', 'ready\n') : send(503, 'text/plain', 'probes not attached\n');
    default:
      return send(404, 'text/plain', 'not found: try /metrics, /explanations, /healthz, /readyz\n');
  }
}

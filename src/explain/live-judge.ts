// Verdicts while tracing, shared by `trace` and `agent`: records go in, flows
// come out judged once they go idle, with the namespace state they touched
// (snapshots cached, never taken per drop) and the same rules as `explain`.
import type { NwRecord } from '../abi.js';
import type { NetnsNames } from '../kernel/netns.js';
import type { NameLookup } from '../model/k8s.js';
import type { FlowDoc } from './document.js';
import type { ExplainDeps } from './explain.js';
import type { Flow } from './flows.js';
import { LiveFlows } from './live.js';
import { FlowPipeline } from './pipeline.js';
import type { LiveStates } from './state.js';

/**
 * The rules and the state readers, loaded at the first judgement: a trace's
 * first event need not wait for them (~65 ms of module loading).
 */
let verdictCode: Promise<[typeof import('./judge.js'), typeof import('./state.js')]> | undefined;
const loadVerdictCode = () => (verdictCode ??= Promise.all([import('./judge.js'), import('./state.js')]));

/** IPVS and loss records older than this cannot concern a held flow (flows are judged within maxAgeNs + idleNs). */
const FORGET_NS = 60e9;

export interface Judged {
  flow: Flow;
  doc: FlowDoc;
}

export interface LiveJudgeOptions {
  netns: NetnsNames;
  reasonName(value: number): string;
  func(addr: bigint): string | undefined;
  symbol(addr: bigint): string;
  /** Judged flows, in the order they were due; the next judgement waits for a returned promise. */
  onJudged(judged: Judged[]): void | Promise<void>;
  /** A judgement that failed; without it the failure ends the chain (and surfaces at finish()). */
  onError?(e: unknown): void;
  /** Flows due but not judged because the queue was full (the agent counts them). Default: judged anyway. */
  onShed?(flows: Flow[]): void;
  /** Flows waiting for a verdict at most (with onShed); past it the newest are shed. */
  maxQueued?: number;
  /** LiveFlows' limits: idle, age, journeys held. */
  idleNs?: number;
  maxAgeNs?: number;
  maxPending?: number;
  /** How long a namespace snapshot is trusted before it is taken again. */
  snapshotTtlMs?: number;
}

/**
 * A live journey with no event for this long is finished. A delivered packet
 * has no last event (its journey ends at its last hop), so every journey of a
 * busy flow waits this long: at 1 s, an iperf3 stream's journeys lived long
 * enough for V8 to promote them all, and collecting them took ~15 % of the
 * thread. A packet held longer (a neighbour queue, ~1-3 s) continues as a
 * journey of its own in the same flow, as it did at 1 s.
 */
const LIVE_JOURNEY_IDLE_NS = 0.2e9;

export class LiveJudge {
  readonly pipeline = new FlowPipeline(LIVE_JOURNEY_IDLE_NS);
  private states?: LiveStates;
  readonly deps: ExplainDeps;
  private readonly live: LiveFlows;
  private out: Promise<void> = Promise.resolve();
  private queued = 0;
  private timer?: NodeJS.Timeout;

  constructor(private readonly opts: LiveJudgeOptions) {
    this.live = new LiveFlows(opts.idleNs, opts.maxAgeNs, opts.maxPending, (j) => this.pipeline.flows(j));
    this.deps = {
      state: (ino) => this.states?.get(ino),
      netnsName: (i) => opts.netns.name(i),
      reasonName: opts.reasonName,
      func: opts.func,
      symbol: opts.symbol,
      ipvs: this.pipeline.ipvs,
      losses: this.pipeline.losses,
    };
  }

  /** Kubernetes names for verdicts from now on (the sources answer after the trace has started). */
  set names(n: NameLookup | undefined) {
    this.deps.names = n;
  }

  /** Feed one record; returns the journey number it joined (0 for IPVS records). */
  add(r: NwRecord): number {
    return this.pipeline.add(r);
  }

  /**
   * After a batch: finished journeys wait for their flows to go idle. In a
   * storm the oldest flows are judged now and the returned promise resolves
   * once they are out: the caller takes the next batch then, so held journeys
   * stay bounded (what the ring cannot hold meanwhile is counted lost).
   */
  batchDone(lastTs: number, judging = true): Promise<void> | undefined {
    const finished = this.pipeline.takeFinished(lastTs);
    this.pipeline.forgetBefore(lastTs - FORGET_NS);
    if (!judging) return undefined; // events only: finished journeys are let go
    this.live.add(finished);
    if (!this.live.crowded) return undefined;
    this.judge(this.live.due(now()));
    return this.out;
  }

  /** Judge what is due every intervalMs until stop(). */
  start(intervalMs = 500): void {
    this.timer ??= setInterval(() => this.judge(this.live.due(now())), intervalMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * End of the trace: the last `max` open flows are judged (so a signal ends it
   * promptly); returns how many open flows were left unjudged.
   */
  async finish(max: number): Promise<Flow[]> {
    this.stop();
    this.live.add(this.pipeline.flushJourneys());
    const open = this.live.flush();
    this.judge(open.slice(-max));
    await this.out;
    return open.slice(0, Math.max(0, open.length - max));
  }

  /** Everything handed out so far has been judged and delivered. */
  settled(): Promise<void> {
    return this.out;
  }

  private judge(flows: Flow[]): void {
    if (!flows.length) return;
    const { onShed, maxQueued } = this.opts;
    if (onShed && maxQueued !== undefined && this.queued + flows.length > maxQueued) {
      const room = Math.max(0, maxQueued - this.queued);
      onShed(flows.slice(room));
      flows = flows.slice(0, room);
      if (!flows.length) return;
    }
    this.queued += flows.length;
    this.out = this.out.then(async () => {
      try {
        const [{ judgeFlows }, { LiveStates }] = await loadVerdictCode();
        this.states ??= new LiveStates(this.opts.netns, this.opts.snapshotTtlMs);
        await this.states.load(flows);
        const judged = judgeFlows(flows, this.deps);
        if (judged.length) await this.opts.onJudged(judged);
      } catch (e) {
        if (!this.opts.onError) throw e;
        this.opts.onError(e);
      } finally {
        this.queued -= flows.length;
      }
    });
  }
}

function now(): number {
  return Number(process.hrtime.bigint());
}

// Verdicts while tracing: flows are built from finished journeys and handed
// out once nothing has happened on them for a while. What is held is bounded
// twice: per flow (its first packets, its latest, and each new kind of drop;
// the rest only counted) and in all (past maxPending the oldest flows are due).
import type { DropRecord } from '../abi.js';
import { type Journey, recordPkt } from '../journey.js';
import { type Flow, type FlowShed, buildFlows, dropKind } from './flows.js';

/** Journeys of one flow key kept from its start, and from its end. */
export const KEEP_FIRST = 32;
export const KEEP_LATEST = 32;
/** Journeys kept past KEEP_FIRST because they carry a drop of a kind the flow had not shown yet. */
export const KEEP_NEW_DROPS = 16;

function journeyDrop(j: Journey): DropRecord | undefined {
  for (const r of j.records) if (r.kind === 'drop') return r;
  return undefined;
}

/** The journeys held for one flow key (its first key: the packet's own tuple). */
interface Held {
  first: Journey[];
  latest: Journey[];
  kinds: Set<string>;
  extra: number;
  shed?: FlowShed;
}

/** The key a journey is held under: its first (the packet's own tuple). */
function heldKey(j: Journey): string | undefined {
  return j.keys.values().next().value;
}

function countDrops(into: FlowShed['drops'], reason: number, netns: number, count: number): void {
  const kind = dropKind(reason, netns);
  const seen = into.get(kind);
  if (seen) seen.count += count;
  else into.set(kind, { reason, netns, count });
}

function shedInto(h: Held, j: Journey): void {
  const s = (h.shed ??= { journeys: 0, hops: 0, drops: new Map() });
  s.journeys++;
  for (const r of j.records) if (recordPkt(r)) s.hops++;
  const d = journeyDrop(j);
  if (d) countDrops(s.drops, d.reason, d.pkt.netns, 1);
}

function mergeShed(into: Flow, s: FlowShed | undefined): void {
  if (!s) return;
  const f = (into.shed ??= { journeys: 0, hops: 0, drops: new Map() });
  f.journeys += s.journeys;
  f.hops += s.hops;
  for (const d of s.drops.values()) countDrops(f.drops, d.reason, d.netns, d.count);
}

export class LiveFlows {
  private held = new Map<string, Held>();
  private count = 0;

  /**
   * idleNs: a flow quiet this long gets its verdict. maxAgeNs: one that never
   * goes quiet gets one anyway (what follows starts a new flow). maxPending:
   * journeys held at most; past it the oldest flows are judged early, so many
   * flows at once cannot grow memory without bound either.
   */
  constructor(
    private readonly idleNs = 2e9,
    private readonly maxAgeNs = 10e9,
    private readonly maxPending = 2_000,
    /** How journeys become flows: the pipeline's, which knows the trace's IPVS connections. */
    private readonly build: (journeys: Journey[]) => Flow[] = (j) => buildFlows(j),
  ) {}

  add(journeys: Journey[]): void {
    for (const j of journeys) {
      const key = heldKey(j);
      if (key === undefined) continue;
      let h = this.held.get(key);
      if (!h) this.held.set(key, (h = { first: [], latest: [], kinds: new Set(), extra: 0 }));
      const d = journeyDrop(j);
      const kind = d && dropKind(d.reason, d.pkt.netns);
      this.count++;
      if (h.first.length < KEEP_FIRST) h.first.push(j);
      else if (kind && !h.kinds.has(kind) && h.extra < KEEP_NEW_DROPS) {
        h.first.push(j);
        h.extra++;
      } else {
        h.latest.push(j);
        if (h.latest.length > KEEP_LATEST) {
          shedInto(h, h.latest.shift()!);
          this.count--;
        }
      }
      if (kind) h.kinds.add(kind);
    }
  }

  /** More journeys held than maxPending: call due() now rather than at the next tick. */
  get crowded(): boolean {
    return this.count > this.maxPending;
  }

  /** Journeys held now (at most KEEP_FIRST + KEEP_NEW_DROPS + KEEP_LATEST per flow key). */
  get pending(): number {
    return this.count;
  }

  /** Flows idle (or old) at nowNs; their journeys leave the buffer. */
  due(nowNs: number): Flow[] {
    const flows = this.flows();
    const oldest = this.crowded ? [...flows].sort((a, b) => a.start - b.start)[Math.floor(flows.length / 2)]?.start ?? 0 : -Infinity;
    const done = flows.filter((f) => nowNs - f.end > this.idleNs || nowNs - f.start > this.maxAgeNs || f.start <= oldest);
    for (const f of done) this.release(f);
    return done;
  }

  /** End of trace: every flow is due. */
  flush(): Flow[] {
    const flows = this.flows();
    this.held.clear();
    this.count = 0;
    return flows;
  }

  /** Flows of what is held, each with the counts of what its keys shed. */
  private flows(): Flow[] {
    const journeys: Journey[] = [];
    for (const h of this.held.values()) journeys.push(...h.first, ...h.latest);
    const flows = this.build(journeys);
    const inFlows = new Set<string>();
    for (const f of flows) {
      for (const key of this.keysOf(f)) {
        inFlows.add(key);
        mergeShed(f, this.held.get(key)!.shed);
      }
    }
    // Journeys no flow could take (no tuple at all) would wait forever: let them go.
    for (const [key, h] of this.held) {
      if (inFlows.has(key)) continue;
      this.held.delete(key);
      this.count -= h.first.length + h.latest.length;
    }
    return flows;
  }

  /** The held keys of a flow's journeys, each once. */
  private keysOf(f: Flow): Set<string> {
    const keys = new Set<string>();
    for (const j of f.journeys) {
      const key = heldKey(j);
      if (key !== undefined && this.held.has(key)) keys.add(key);
    }
    return keys;
  }

  private release(f: Flow): void {
    for (const key of this.keysOf(f)) {
      const h = this.held.get(key)!;
      this.count -= h.first.length + h.latest.length;
      this.held.delete(key);
    }
  }
}

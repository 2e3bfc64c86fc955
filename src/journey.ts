// Journeys: the records of one skb, in order. An skb address is reused once
// the kernel frees it, so a journey ends at its drop, after an idle gap, or
// when the same address shows up carrying an unrelated flow.
import { hostPort } from './model/ip.js';
import { FibFlag, type FibRecord, type PacketRecord, type Pkt, type SockRecord, type Tuple } from './abi.js';

export interface Journey {
  id: number;
  skb: number;
  records: PacketRecord[];
  start: number;
  last: number;
  /** Canonical flow keys of every tuple seen (header and conntrack). */
  keys: Set<string>;
  ended: boolean;
}

/** Both directions of a flow give one key. */
export function flowKey(t: Tuple): string {
  const a = hostPort(t.src, t.sport);
  const b = hostPort(t.dst, t.dport);
  return a <= b ? `${t.proto}|${a}|${b}` : `${t.proto}|${b}|${a}`;
}

export function pktKeys(p: Pkt): string[] {
  const keys: string[] = [];
  if (p.tuple.family) keys.push(flowKey(p.tuple));
  if (p.ctOrig) keys.push(flowKey(p.ctOrig));
  if (p.ctReply) keys.push(flowKey(p.ctReply));
  return keys;
}

export function recordPkt(r: PacketRecord): Pkt | undefined {
  return r.kind === 'fib' || r.kind === 'sock' ? undefined : r.pkt;
}

/** The namespace a record happened in. */
export function recordNetns(r: PacketRecord): number {
  return r.kind === 'fib' || r.kind === 'sock' ? r.netns : r.pkt.netns;
}

/**
 * A socket's state change joins its flow by the socket (every record of one
 * socket shares `sk:<address>`) and, once both ports are chosen, by its tuple.
 */
export function sockKeys(r: SockRecord): string[] {
  const keys = [`sk:${r.sk.toString(16)}`];
  if (r.tuple.sport && r.tuple.dport && r.tuple.src !== '0.0.0.0') keys.push(flowKey(r.tuple));
  return keys;
}

/**
 * A route lookup belongs to a journey when the BPF side tied it to that skb
 * by the packet's source (forward lookup: the lookup's source; reverse-path
 * check: its destination). The destination of a forward lookup may already
 * be DNAT-ed, so it cannot be compared with what the journey saw on receive.
 */
function fibFits(f: FibRecord, j: Journey): boolean {
  // forward: the lookup's source is the packet's; reverse-path check and reply (SYN-ACK, ICMP error): its destination
  const src = f.flags & FibFlag.TIED_FORWARD ? f.src : f.flags & (FibFlag.TIED_REVERSE | FibFlag.TIED_REPLY) ? f.dst : undefined;
  if (src === undefined) return false;
  return j.records.some((r) => {
    const p = recordPkt(r);
    return !!p && (p.tuple.src === src || p.ctOrig?.src === src || p.ctReply?.src === src);
  });
}

/** Records of one journey at most (a packet crossing ten namespaces makes ~30). */
export const MAX_JOURNEY_RECORDS = 64;

export interface JourneyOptions {
  /** A journey idle this long (ns) is finished. */
  idleNs?: number;
  /**
   * Unfinished journeys held at most; past it the oldest are finished. Under
   * loss many never see their last event (its drop was not recorded) and
   * would each wait idleNs.
   */
  maxLive?: number;
}

export class JourneyBuilder {
  private live = new Map<number, Journey>();
  private nextId = 1;
  private readonly idleNs: number;
  private readonly maxLive: number;
  private done: Journey[] = [];

  constructor(opts: JourneyOptions = {}) {
    this.idleNs = opts.idleNs ?? 1e9;
    this.maxLive = opts.maxLive ?? 50_000;
  }

  private finish(j: Journey): void {
    j.ended = true;
    this.live.delete(j.skb);
    this.done.push(j);
  }

  private open(skb: number, ts: number): Journey {
    const j: Journey = { id: this.nextId++, skb, records: [], start: ts, last: ts, keys: new Set(), ended: false };
    if (skb) this.live.set(skb, j);
    return j;
  }

  /** Add a record; returns the journey it joined. */
  add(r: PacketRecord): Journey {
    if (r.kind === 'fib') {
      const j = r.skb ? this.live.get(r.skb) : undefined;
      if (j && fibFits(r, j)) {
        j.records.push(r);
        j.last = r.ts;
        return j;
      }
      // A lookup with no packet yet (connect(), sendmsg()) stands alone.
      const alone = this.open(0, r.ts);
      alone.records.push(r);
      this.done.push(alone);
      alone.ended = true;
      return alone;
    }
    if (r.kind === 'sock') {
      // No skb: a journey of its own, tied to its flow by the socket and its tuple.
      const alone = this.open(0, r.ts);
      alone.records.push(r);
      for (const k of sockKeys(r)) alone.keys.add(k);
      alone.ended = true;
      this.done.push(alone);
      return alone;
    }
    const keys = pktKeys(r.pkt);
    let j = this.live.get(r.pkt.skb);
    // A freed skb leaves no event: its address, reused at once by the next
    // packet of the same flow, would continue one journey for as long as the
    // flow runs. No one packet's path is this long.
    const full = j !== undefined && j.records.length >= MAX_JOURNEY_RECORDS;
    if (j && (full || r.ts - j.last > this.idleNs || (keys.length > 0 && j.keys.size > 0 && !keys.some((k) => j!.keys.has(k))))) {
      this.finish(j);
      j = undefined;
    }
    if (!j) {
      j = this.open(r.pkt.skb, r.ts);
      if (this.live.size > this.maxLive) this.finish(this.live.values().next().value!);
    }
    j.records.push(r);
    j.last = r.ts;
    for (const k of keys) j.keys.add(k);
    if (r.kind === 'drop') this.finish(j);
    return j;
  }

  /** Journeys finished since the last call, plus live ones idle at `nowNs`. */
  takeFinished(nowNs: number): Journey[] {
    // The live map is in the order journeys started: only those started over
    // idleNs ago can be idle, so the walk stops at the first younger one.
    for (const j of this.live.values()) {
      if (nowNs - j.start <= this.idleNs) break;
      if (nowNs - j.last > this.idleNs) this.finish(j);
    }
    const out = this.done;
    this.done = [];
    return out;
  }

  /** End of trace: everything is finished. */
  flush(): Journey[] {
    for (const j of [...this.live.values()]) this.finish(j);
    return this.takeFinished(Number.MAX_SAFE_INTEGER);
  }
}

// Flows: the journeys of one connection, request and reply, joined across NAT.
// Two journeys belong together when they share a flow key: a header tuple or a
// conntrack tuple (original or reply). After DNAT the request's conntrack
// entry carries both the original and the rewritten tuple, which is what ties
// the client's packet to the pod's reply.
import { AF_INET, type DropRecord, type FibRecord, type IpvsConnRecord, type IpvsRecord, type Pkt, PktFlag, type Tuple } from '../abi.js';
import { serviceRef } from '../model/ipvs.js';
import { type Journey, flowKey, recordPkt } from '../journey.js';

export interface NatStep {
  kind: 'dnat' | 'snat';
  netns: number;
  /** The tuple before the rewrite (conntrack original direction). */
  orig: Tuple;
  /** What the packet's destination (dnat) or source (snat) became. */
  to: { addr: string; port: number };
  /** Known from the event itself (an IPVS connection names its virtual service). */
  by?: { type: 'ipvs-service'; ref: string };
}

/** What a verdict compares drops by: reason and namespace. */
export function dropKind(reason: number, netns: number): string {
  return `${reason}|${netns}`;
}

/** What a live trace let go of a long flow to bound its memory: counted, not kept. */
export interface FlowShed {
  journeys: number;
  /** Packet events (hops) of those journeys. */
  hops: number;
  /** Their drops by kind (see dropKind). */
  drops: Map<string, { reason: number; netns: number; count: number }>;
}

export interface Flow {
  id: number;
  journeys: Journey[];
  /** The first packet's tuple as the sender wrote it. */
  orig: Tuple;
  nat: NatStep[];
  drops: { drop: DropRecord; journey: Journey }[];
  start: number;
  end: number;
  /** Journeys a live trace did not keep (a long flow's middle). */
  shed?: FlowShed;
}

class UnionFind {
  private parent: number[] = [];
  add(): number {
    this.parent.push(this.parent.length);
    return this.parent.length - 1;
  }
  find(x: number): number {
    while (this.parent[x] !== x) x = this.parent[x] = this.parent[this.parent[x]];
    return x;
  }
  union(a: number, b: number): void {
    this.parent[this.find(a)] = this.find(b);
  }
}

/** NAT seen in a packet's conntrack entry, in the direction the packet travels. */
export function natOf(p: Pkt): NatStep[] {
  const o = p.ctOrig;
  const r = p.ctReply;
  if (!o || !r) return [];
  const out: NatStep[] = [];
  // DNAT: the reply comes from the real destination, not the original one.
  if (p.flags & PktFlag.CT_DNAT && (r.src !== o.dst || r.sport !== o.dport)) {
    out.push({ kind: 'dnat', netns: p.netns, orig: o, to: { addr: r.src, port: r.sport } });
  }
  // SNAT/MASQUERADE: the reply goes to the rewritten source.
  if (p.flags & PktFlag.CT_SNAT && (r.dst !== o.src || r.dport !== o.sport)) {
    out.push({ kind: 'snat', netns: p.netns, orig: o, to: { addr: r.dst, port: r.dport } });
  }
  return out;
}

/** The two tuples an IPVS connection joins: as the client sent it, and as NAT-ed to the real server. */
function ipvsKeys(c: IpvsConnRecord): [string, string] {
  return [flowKey(c.client), flowKey({ ...c.client, dst: c.daddr, dport: c.dport })];
}

function ipvsNat(c: IpvsConnRecord): NatStep {
  return { kind: 'dnat', netns: c.netns, orig: c.client, to: { addr: c.daddr, port: c.dport }, by: { type: 'ipvs-service', ref: serviceRef(c.svc) } };
}

function sameNat(a: NatStep, b: NatStep): boolean {
  return a.kind === b.kind && a.netns === b.netns && a.to.addr === b.to.addr && a.to.port === b.to.port;
}

/** The tuple the sender wrote: a local socket's first packet, else the earliest packet, else its socket's. */
function originalTuple(journeys: Journey[]): Tuple | undefined {
  return packetTuple(journeys) ?? socketTuple(journeys);
}

/** A flow that never sent a packet: the tuple of its socket, once both ports were known. */
function socketTuple(journeys: Journey[]): Tuple | undefined {
  const socks = journeys.flatMap((j) => j.records).filter((r) => r.kind === 'sock');
  return (socks.find((r) => r.tuple.sport && r.tuple.dport) ?? socks[0])?.tuple;
}

function packetTuple(journeys: Journey[]): Tuple | undefined {
  let best: { ts: number; t: Tuple; local: boolean } | undefined;
  for (const j of journeys) {
    for (const r of j.records) {
      const p = recordPkt(r);
      if (!p || !p.tuple.family) continue;
      const local = (p.flags & PktFlag.LOCAL_SK) !== 0 && r.kind === 'tx';
      const t = p.ctOrig ?? p.tuple;
      if (!best || (local && !best.local) || (local === best.local && r.ts < best.ts)) best = { ts: r.ts, t, local };
    }
  }
  return best?.t;
}

/** An output route lookup a process made for its socket (connect(), sendmsg()): no skb yet, loopback as iif, a protocol. */
export function isSocketLookup(f: FibRecord): boolean {
  return !f.skb && f.iif === 1 && f.proto !== 0;
}

/**
 * Sockets whose route lookups all failed: connect() or sendmsg() returned an
 * error (ENETUNREACH, EHOSTUNREACH, ...) before any packet existed. Each is a
 * flow of its own, made of those lookups (one per process, protocol and
 * destination); a later lookup that succeeded means the packet left after all.
 */
function failedConnects(journeys: Journey[]): Journey[][] {
  const lookups = journeys.filter((j) => j.keys.size === 0).flatMap((j) => j.records.filter((r): r is FibRecord => r.kind === 'fib' && isSocketLookup(r)).map((f) => ({ f, j })));
  const key = (f: FibRecord) => `${f.netns}|${f.pid}|${f.proto}|${f.dst}|${f.dport}`;
  const ok = new Set(lookups.filter(({ f }) => f.err === 0).map(({ f }) => key(f)));
  const failed = new Map<string, Journey[]>();
  for (const { f, j } of lookups) {
    if (f.err >= 0 || ok.has(key(f))) continue;
    const g = failed.get(key(f));
    if (g) g.push(j);
    else failed.set(key(f), [j]);
  }
  return [...failed.values()];
}

/**
 * The sender's own route lookups for a flow (connect(), sendmsg(): no skb,
 * so the kernel could not tie them): same protocol and destination, a source
 * and port not yet chosen or the flow's own, in the namespace the flow was
 * sent from. They say where the first packet was routed, even when it never
 * left.
 */
function senderLookups(journeys: Journey[], orig: Tuple, flow: Journey[]): Journey[] {
  const from = new Set(flow.flatMap((j) => j.records.flatMap((r) => (r.kind === 'sock' ? [r.netns] : r.kind === 'fib' ? [] : r.pkt.flags & PktFlag.LOCAL_SK && r.pkt.tuple.src === orig.src ? [r.pkt.netns] : []))));
  return journeys.filter((j) => j.keys.size === 0 && j.records.every((r) => r.kind === 'fib' && isSocketLookup(r) && r.err === 0 && from.has(r.netns) && r.proto === orig.proto
    && r.dst === orig.dst && r.dport === orig.dport && (r.sport === 0 || r.sport === orig.sport) && (r.src === '0.0.0.0' || r.src === orig.src)));
}

/** The tuple of a socket's lookup, as its connect() asked for it (source 0.0.0.0 and port 0 until chosen). */
export function lookupTuple(f: FibRecord): Tuple {
  return { family: AF_INET, proto: f.proto, src: f.src, dst: f.dst, sport: f.sport, dport: f.dport };
}

export function buildFlows(journeys: Journey[], ipvs: IpvsRecord[] = []): Flow[] {
  const conns = ipvs.filter((r): r is IpvsConnRecord => r.kind === 'ipvs-conn');
  const uf = new UnionFind();
  const idx = journeys.map(() => uf.add());
  const owner = new Map<string, number>();
  journeys.forEach((j, i) => {
    for (const k of j.keys) {
      const o = owner.get(k);
      if (o === undefined) owner.set(k, i);
      else uf.union(i, o);
    }
  });
  for (const c of conns) {
    const [a, b] = ipvsKeys(c).map((k) => owner.get(k));
    if (a !== undefined && b !== undefined) uf.union(a, b);
  }
  const groups = new Map<number, Journey[]>();
  journeys.forEach((j, i) => {
    if (j.keys.size === 0) return; // route lookups without a packet: see senderLookups
    const root = uf.find(idx[i]);
    const g = groups.get(root);
    if (g) g.push(j);
    else groups.set(root, [j]);
  });
  const flows: Flow[] = [];
  for (const js of [...groups.values(), ...failedConnects(journeys)]) {
    js.sort((a, b) => a.start - b.start);
    const first = js[0].records[0];
    const orig = originalTuple(js) ?? (first?.kind === 'fib' ? lookupTuple(first) : undefined);
    if (!orig) continue;
    const nat: NatStep[] = [];
    const drops: Flow['drops'] = [];
    for (const j of js) {
      for (const r of j.records) {
        if (r.kind === 'drop') drops.push({ drop: r, journey: j });
        const p = recordPkt(r);
        if (!p) continue;
        for (const n of natOf(p)) if (!nat.some((m) => sameNat(m, n))) nat.push(n);
      }
    }
    if (js.some((j) => j.keys.size > 0)) js.push(...senderLookups(journeys, orig, js));
    const keys = new Set(js.flatMap((j) => [...j.keys]));
    for (const c of conns) {
      if (!ipvsKeys(c).some((k) => keys.has(k))) continue;
      const n = ipvsNat(c);
      const i = nat.findIndex((m) => sameNat(m, n));
      if (i >= 0) nat[i] = n; // conntrack saw it too; the IPVS event names the service
      else nat.push(n);
    }
    drops.sort((a, b) => a.drop.ts - b.drop.ts);
    flows.push({ id: flows.length + 1, journeys: js, orig, nat, drops, start: js[0].start, end: Math.max(...js.map((j) => j.last)) });
  }
  return flows;
}

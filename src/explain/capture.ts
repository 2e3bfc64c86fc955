// The pure core of `explain`: a capture (records, names, state) in, the
// explanation document out. The same for a live run and a replayed recording;
// no IO, so the rules are tested on recordings without privileges.
import { FibFlag, type LostRecord, type NwRecord, PktFlag, decodeBatch, isIpvs } from '../abi.js';
import { reasonName } from '../kernel/symbols.js';
import type { NetnsState } from '../model/netns.js';
import { NameResolver } from '../model/names.js';
import type { Capture } from '../recording.js';
import { netfilterEvaluator } from '../state/netfilter.js';
import { recordNetns } from '../journey.js';
import { DOCUMENT_VERSION, type ExplainDoc } from './document.js';
import type { ExplainDeps, LossWindow } from './explain.js';
import { judgeFlows } from './judge.js';
import { FlowPipeline } from './pipeline.js';
import { netnsState } from './state.js';

/**
 * The namespaces whose state a verdict can need: where a packet was dropped,
 * rewritten (NAT, IPVS) or routed through (received and sent again by the
 * same skb after a route lookup). A namespace the packets only left or
 * reached, or an L2 bridge they crossed, needs no snapshot: each costs a
 * dozen processes.
 */
export function netnsToSnapshot(records: NwRecord[]): Set<number> {
  const out = new Set<number>();
  const seen = new Map<number, { rx: Set<number>; tx: Set<number>; fib: Set<number> }>();
  const at = (ns: number) => {
    let e = seen.get(ns);
    if (!e) seen.set(ns, (e = { rx: new Set(), tx: new Set(), fib: new Set() }));
    return e;
  };
  for (const r of records) {
    if (r.kind === 'lost') continue;
    if (isIpvs(r)) out.add(r.netns);
    else if (r.kind === 'sock') continue;
    else if (r.kind === 'fib') {
      at(r.netns).fib.add(r.skb);
      // a socket's failed lookup (connect() refused before any packet): its routes are the evidence
      if (!r.skb && r.err < 0 && r.proto) out.add(r.netns);
      // an answer (SYN-ACK, ICMP error) that found no route back: the receiver's routes are the evidence
      if (r.err < 0 && r.flags & FibFlag.TIED_REPLY) out.add(r.netns);
    }
    else {
      const p = r.pkt;
      if (r.kind === 'drop' || p.flags & (PktFlag.CT_DNAT | PktFlag.CT_SNAT)) out.add(p.netns);
      at(p.netns)[r.kind === 'rx' ? 'rx' : 'tx'].add(p.skb);
    }
  }
  for (const [ns, e] of seen) {
    if ([...e.rx].some((skb) => e.tx.has(skb) && e.fib.has(skb))) out.add(ns);
  }
  out.delete(0);
  return out;
}

/** Explain a capture: the same for a live run and a replayed recording. */
export function explainCapture(c: Capture): ExplainDoc {
  const { records } = decodeBatch(c.records);
  const pipeline = new FlowPipeline(5e9);
  for (const r of records) pipeline.add(r);
  const flows = pipeline.flush();
  return {
    version: DOCUMENT_VERSION,
    command: c.command,
    exitCode: c.exitCode,
    flows: judgeFlows(flows, captureDeps(c, pipeline), c.exitCode ?? undefined).map((j) => j.doc),
    lost: { ringbuf: c.lost },
  };
}

/** What the rules may ask, answered from a capture's names and state, with what the pipeline saw (IPVS, losses). */
export function captureDeps(c: Capture, pipeline: FlowPipeline): ExplainDeps {
  const names = new Map(c.netns);
  const reasons = new Map(c.dropReasons);
  const syms = new Map(c.symbols.map(([addr, name, func]) => [addr, { name, func }]));
  const states = new Map<number, NetnsState>();
  const before = new Map(c.conntrackBefore ?? []);
  const rulesBefore = new Map(c.netfilterBefore ?? []);
  for (const snap of c.snapshots) {
    for (const [ino, name] of c.netns) if (name === snap.netns) states.set(ino, netnsState(snap, netfilterEvaluator(snap, rulesBefore.get(snap.netns)), before.get(snap.netns)));
  }
  return {
    state: (ino) => states.get(ino),
    netnsName: (ino) => names.get(ino) ?? String(ino),
    reasonName: (v) => reasonName(reasons, v),
    func: (a) => syms.get(a.toString(16))?.func,
    symbol: (a) => syms.get(a.toString(16))?.name ?? `0x${a.toString(16)}`,
    ipvs: pipeline.ipvs,
    names: c.k8s ? new NameResolver(c.k8s) : undefined,
    losses: lossWindows(pipeline.losses, c.lost),
  };
}

/**
 * When events were lost: each NW_REC_LOST record is a window; what the
 * counters lost beyond them (losses still pending on a CPU when the trace
 * ended) cannot be placed and counts for the whole trace.
 */
export function lossWindows(records: LostRecord[], total: number): LossWindow[] {
  const out: LossWindow[] = records.map((r) => ({ count: r.count, first: r.first, last: r.last }));
  const placed = out.reduce((n, w) => n + w.count, 0);
  if (total > placed) out.push({ count: total - placed, first: -Infinity, last: Infinity });
  return out;
}

/** Every namespace a record names. */
export function allNetns(records: NwRecord[]): Set<number> {
  const out = new Set<number>();
  for (const r of records) if (r.kind !== 'lost') out.add(isIpvs(r) ? r.netns : recordNetns(r));
  out.delete(0);
  return out;
}

/** Kernel addresses a capture must symbolize: drop locations and their stacks. */
export function dropAddresses(records: NwRecord[]): bigint[] {
  return records.flatMap((r) => (r.kind === 'drop' ? [r.location, ...r.stack] : []));
}

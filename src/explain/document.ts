// The explanation as a document: the JSON contract of docs/json.md.
import type { PacketRecord } from '../abi.js';
import { recordPkt } from '../journey.js';
import { protoName } from '../model/protocols.js';
import { type ExplainDeps, type NatAttribution, attributeNat, verdictFor } from './explain.js';
import type { Flow } from './flows.js';
import type { Verdict } from './types.js';

/** The version of the explain --json document (docs/json.md: additive changes keep it). */
export const DOCUMENT_VERSION = 1;

export interface Hop {
  t: number;
  netns: string;
  dev: string;
  what: string;
}

export interface FlowDoc {
  proto: string;
  orig: { src: string; sport?: number; dst: string; dport?: number };
  nat: { kind: string; to: Record<string, string | number>; by: { type: string; ref: string }; netns: string }[];
  hops: Hop[];
  /** Hops left out of `hops` (a flow of many packets: the first MAX_HOPS and the last are kept). */
  hopsOmitted?: number;
  verdict: Verdict;
}

/** Hops a flow document lists at most: a storm's one flow must not become a megabyte line. */
export const MAX_HOPS = 256;

export interface ExplainDoc {
  version: number;
  command?: string[];
  exitCode?: number | null;
  flows: FlowDoc[];
  lost: { ringbuf: number };
}

function hopOf(r: PacketRecord, t0: number, deps: ExplainDeps): Hop | undefined {
  const t = Math.round((r.ts - t0) / 1e3) / 1e6;
  if (r.kind === 'fib') return undefined;
  const p = recordPkt(r)!;
  const what = r.kind === 'drop' ? `drop ${deps.reasonName(r.reason)}` : r.kind;
  return { t, netns: deps.netnsName(p.netns), dev: p.dev || '?', what };
}

function natDoc(n: NatAttribution, deps: ExplainDeps): FlowDoc['nat'][number] {
  const to: Record<string, string | number> = n.step.kind === 'dnat' ? { dst: n.step.to.addr, dport: n.step.to.port } : { src: n.step.to.addr, sport: n.step.to.port };
  return { kind: n.step.kind, to, by: n.by, netns: deps.netnsName(n.step.netns) };
}

export function flowDoc(flow: Flow, deps: ExplainDeps, exitCode?: number): FlowDoc {
  const o = flow.orig;
  const ports = o.proto === 6 || o.proto === 17;
  const records = flow.journeys.flatMap((j) => j.records).filter((r) => r.kind !== 'fib').sort((a, b) => a.ts - b.ts);
  const kept = records.length > MAX_HOPS ? [...records.slice(0, MAX_HOPS - 1), records[records.length - 1]] : records;
  const doc: FlowDoc = {
    proto: protoName(o.proto),
    orig: ports ? { src: o.src, sport: o.sport, dst: o.dst, dport: o.dport } : { src: o.src, dst: o.dst },
    nat: attributeNat(flow, deps).map((n) => natDoc(n, deps)),
    hops: kept.map((r) => hopOf(r, flow.start, deps)).filter((h): h is Hop => !!h),
    verdict: verdictFor(flow, deps, exitCode),
  };
  if (kept.length < records.length) doc.hopsOmitted = records.length - kept.length;
  return doc;
}

// The explanation as a document: the JSON contract of docs/json.md.
import type { PacketRecord } from '../abi.js';
import { recordPkt } from '../journey.js';
import type { K8sRef, NameLookup } from '../model/k8s.js';
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
  /** the pod that owns netns */
  k8s?: K8sRef;
}

/** Where a packet came from and went to, with the Kubernetes objects behind the addresses. */
export interface OrigDoc {
  src: string;
  sport?: number;
  dst: string;
  dport?: number;
  k8s?: { src?: K8sRef; dst?: K8sRef };
}

export interface NatDoc {
  kind: string;
  to: Record<string, string | number>;
  by: { type: string; ref: string };
  netns: string;
  /** the object at the address the packet was rewritten to */
  k8s?: K8sRef;
}

export interface FlowDoc {
  proto: string;
  orig: OrigDoc;
  nat: NatDoc[];
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
  const p = recordPkt(r);
  if (!p) return undefined; // route lookups and socket states are evidence, not hops
  const what = r.kind === 'drop' ? `drop ${deps.reasonName(r.reason)}` : r.kind;
  const hop: Hop = { t, netns: deps.netnsName(p.netns), dev: p.dev || '?', what };
  const pod = deps.names?.netns(p.netns);
  if (pod) hop.k8s = pod;
  return hop;
}

type L4 = 'tcp' | 'udp' | 'sctp';

function l4(proto: number): L4 | undefined {
  return proto === 6 ? 'tcp' : proto === 17 ? 'udp' : proto === 132 ? 'sctp' : undefined;
}

function natDoc(n: NatAttribution, proto: number, deps: ExplainDeps): NatDoc {
  const to: Record<string, string | number> = n.step.kind === 'dnat' ? { dst: n.step.to.addr, dport: n.step.to.port } : { src: n.step.to.addr, sport: n.step.to.port };
  const doc: NatDoc = { kind: n.step.kind, to, by: n.by, netns: deps.netnsName(n.step.netns) };
  const k8s = deps.names?.endpoint(n.step.to.addr, n.step.to.port || undefined, l4(proto));
  if (k8s) doc.k8s = k8s;
  return doc;
}

function origDoc(o: Flow['orig'], names: NameLookup | undefined): OrigDoc {
  const ports = o.proto === 6 || o.proto === 17;
  const doc: OrigDoc = ports ? { src: o.src, sport: o.sport, dst: o.dst, dport: o.dport } : { src: o.src, dst: o.dst };
  // A source port is ephemeral: the source is named by its address alone.
  const src = names?.endpoint(o.src);
  const dst = names?.endpoint(o.dst, ports ? o.dport : undefined, l4(o.proto));
  if (src || dst) doc.k8s = { ...(src && { src }), ...(dst && { dst }) };
  return doc;
}

export function flowDoc(flow: Flow, deps: ExplainDeps, exitCode?: number): FlowDoc {
  const records = flow.journeys.flatMap((j) => j.records).filter((r) => r.kind !== 'fib' && r.kind !== 'sock').sort((a, b) => a.ts - b.ts);
  const kept = records.length > MAX_HOPS ? [...records.slice(0, MAX_HOPS - 1), records[records.length - 1]] : records;
  const doc: FlowDoc = {
    proto: protoName(flow.orig.proto),
    orig: origDoc(flow.orig, deps.names),
    nat: attributeNat(flow, deps).map((n) => natDoc(n, flow.orig.proto, deps)),
    hops: kept.map((r) => hopOf(r, flow.start, deps)).filter((h): h is Hop => !!h),
    verdict: verdictFor(flow, deps, exitCode),
  };
  const omitted = records.length - kept.length + (flow.shed?.hops ?? 0);
  if (omitted) doc.hopsOmitted = omitted;
  return doc;
}

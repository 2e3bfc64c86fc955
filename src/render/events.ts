// Records as people and scripts read them: one line per event, or JSON lines.
import { type LostRecord, type NwRecord, PktFlag, type SockRecord, isIpvs, type Tuple } from '../abi.js';
import { endpointText } from '../model/ip.js';
import { type K8sRef, type NameLookup, refText } from '../model/k8s.js';
import { hasPorts, protoName } from '../model/protocols.js';
import { isReversePathCheck, routeResult } from '../model/route.js';
import type { SessionCounters } from '../tracer.js';
import { ipvsText } from '../model/ipvs.js';

/** The version of trace --json lines, carried by the summary line (docs/json.md). */
export const OUTPUT_VERSION = 1;

export interface Endpoint {
  src: string;
  sport?: number;
  dst: string;
  dport?: number;
}

export interface EventView {
  type: 'event';
  t: number; // seconds since the first event
  event: 'rx' | 'tx' | 'drop' | 'route' | 'ipvs';
  journey: number;
  netns: string;
  dev: string;
  proto: string;
  packet: Endpoint;
  conntrack?: { orig: Endpoint; reply: Endpoint; nat: string[] };
  drop?: { reason: string; location: string; stack: string[] };
  route?: { table: number; result: string; dev: string; gw: string | null; iif: number; reverse: boolean };
  ipvs?: string;
  pid?: number;
  /** the pod whose network namespace this is */
  k8s?: K8sRef;
}

export interface ViewContext {
  t0: number;
  netnsName(inode: number): string;
  reasonName(value: number): string;
  symbol(addr: bigint): string;
  /** Kubernetes names, when a name source answered */
  names?: NameLookup;
}

function endpoint(t: Tuple, ports: boolean): Endpoint {
  return ports ? { src: t.src, sport: t.sport, dst: t.dst, dport: t.dport } : { src: t.src, dst: t.dst };
}

/**
 * A record as an event line. 'lost' records are not events (the summary and
 * the verdicts report them), nor are 'sock' records (explain's evidence; trace
 * does not load that probe).
 */
export function eventView(r: Exclude<NwRecord, LostRecord | SockRecord>, journey: number, ctx: ViewContext): EventView {
  const t = (r.ts - ctx.t0) / 1e9;
  if (isIpvs(r)) {
    const p = r.kind === 'ipvs-err' ? r.pkt : undefined;
    const tuple = r.kind === 'ipvs-conn' ? r.client : p?.tuple;
    return {
      type: 'event', t, event: 'ipvs', journey,
      netns: ctx.netnsName(r.netns), dev: p?.dev || '-', proto: tuple ? protoName(tuple.proto) : 'ip',
      packet: tuple ? endpoint(tuple, hasPorts(tuple.proto)) : { src: '-', dst: '-' },
      ipvs: ipvsText(r),
      pid: r.kind === 'ipvs-ctl' ? r.pid : undefined,
    };
  }
  if (r.kind === 'fib') {
    return {
      type: 'event', t, event: 'route', journey,
      netns: ctx.netnsName(r.netns), dev: r.nhDev || '-', proto: r.proto ? protoName(r.proto) : 'ip',
      packet: endpoint({ family: r.family, proto: r.proto, src: r.src, dst: r.dst, sport: r.sport, dport: r.dport }, hasPorts(r.proto) && (r.sport !== 0 || r.dport !== 0)),
      route: { table: r.table, result: routeResult(r.err, r.nhDev, r.gw), dev: r.nhDev, gw: r.gw, iif: r.iif, reverse: isReversePathCheck(r) },
      pid: r.pid || undefined,
    };
  }
  const p = r.pkt;
  const ports = (p.flags & PktFlag.HAS_L4) !== 0;
  const v: EventView = {
    type: 'event', t, event: r.kind, journey,
    netns: ctx.netnsName(p.netns), dev: p.dev || '-',
    proto: p.tuple.family ? protoName(p.tuple.proto) : 'non-ip',
    packet: endpoint(p.tuple, ports),
  };
  if (p.ctOrig && p.ctReply) {
    const nat: string[] = [];
    if (p.flags & PktFlag.CT_DNAT) nat.push('dnat');
    if (p.flags & PktFlag.CT_SNAT) nat.push('snat');
    const cp = hasPorts(p.ctOrig.proto);
    v.conntrack = { orig: endpoint(p.ctOrig, cp), reply: endpoint(p.ctReply, cp), nat };
  }
  if (r.kind === 'drop') {
    v.drop = { reason: ctx.reasonName(r.reason), location: ctx.symbol(r.location), stack: r.stack.map((a) => ctx.symbol(a)) };
  }
  const pod = ctx.names?.netns(p.netns);
  if (pod) v.k8s = pod;
  return v;
}

export function eventLine(v: EventView): string {
  const head = `${v.t.toFixed(6).padStart(11)} ${v.netns.padEnd(10)} ${v.dev.padEnd(10)} ${v.event.padEnd(5)} ${v.proto.padEnd(5)} `;
  let tail = endpointText(v.packet);
  if (v.route) tail += `  ${v.route.reverse ? 'reverse-path check' : 'route'} table ${v.route.table}: ${v.route.result}`;
  if (v.conntrack && v.conntrack.nat.length) {
    tail += `  [${v.conntrack.nat.join('+')}: ${endpointText(v.conntrack.orig)} | reply ${endpointText(v.conntrack.reply)}]`;
  }
  if (v.drop) tail += `  DROP ${v.drop.reason} at ${v.drop.location}`;
  if (v.ipvs) tail = `${v.packet.src === '-' ? '' : `${tail}  `}IPVS ${v.ipvs}`;
  if (v.k8s) tail += `  (${refText(v.k8s)})`;
  return head + tail + `  #${v.journey}`;
}

export const EVENT_HEADER = `${'TIME(s)'.padStart(11)} ${'NETNS'.padEnd(10)} ${'DEV'.padEnd(10)} ${'EVENT'.padEnd(5)} ${'PROTO'.padEnd(5)} PACKET  (#journey)`;

export interface Summary {
  type: 'summary';
  version: number;
  durationSec: number;
  events: Record<string, number>;
  drops: Record<string, number>;
  lost: { ringbuf: number; perProbe: Record<string, number> };
  undecodable: number;
}

export function summarize(counters: SessionCounters, events: Record<string, number>, drops: Record<string, number>, durationSec: number): Summary {
  const perProbe: Record<string, number> = {};
  for (const p of counters.probes) if (p.lost) perProbe[p.probe] = p.lost;
  return {
    type: 'summary', version: OUTPUT_VERSION, durationSec: Math.round(durationSec * 1000) / 1000,
    events, drops, lost: { ringbuf: counters.lost, perProbe }, undecodable: counters.undecodable,
  };
}

export function summaryText(s: Summary): string {
  const lines = [`--- netwhy: ${Object.values(s.events).reduce((a, b) => a + b, 0)} events in ${s.durationSec.toFixed(1)} s`];
  const ev = Object.entries(s.events).map(([k, v]) => `${k} ${v}`).join(', ');
  if (ev) lines.push(`    events: ${ev}`);
  const top = Object.entries(s.drops).sort((a, b) => b[1] - a[1]);
  if (top.length) lines.push(`    drops by reason: ${top.map(([k, v]) => `${k} ${v}`).join(', ')}`);
  const lostBy = Object.entries(s.lost.perProbe).map(([k, v]) => `${k} ${v}`).join(', ');
  lines.push(`    lost (ring buffer full): ${s.lost.ringbuf}${lostBy ? ` (${lostBy})` : ''}${s.lost.ringbuf ? ' — raise --ring-mb or narrow the filter' : ''}`);
  if (s.undecodable) lines.push(`    undecodable records: ${s.undecodable}`);
  return lines.join('\n');
}


// The agent's Prometheus metrics: drops counted by cause, not by 5-tuple.
//
// Cardinality is the design constraint: a label value must name something
// bounded by the node's configuration (a sysctl key, a route, a rule line, an
// IPVS service), never by its traffic (an address, a port). A cause whose ref
// carries the packet's own address (a missing route to one destination, a
// socket that is not listening, a stale real server) is collapsed to what
// kind of thing it is. On top of that, distinct label sets are capped: past
// the cap, drops count in one series with cause="overflow" (and the shed is
// counted), so a misbehaving node cannot grow the agent's memory or the
// Prometheus server's.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { FlowDoc } from '../explain/document.js';
import type { Cause } from '../explain/types.js';

/** Longest label value for a rule line: enough to tell kube-proxy's rules apart. */
export const MAX_CAUSE_LABEL = 120;

/** The `cause` label of a cause: its ref when the ref is a bounded identity, else its kind. */
export function causeLabel(c: Cause): string {
  switch (c.type) {
    case 'sysctl': // a sysctl key: net.ipv4.ip_forward, net.ipv4.conf.eth0.rp_filter
    case 'conntrack': // insert_failed
    case 'ipvs-service': // `TCP 10.96.0.10:53 rr`: one per virtual service of the node
    case 'unknown': // the drop reason's name, or 'no drop seen'
      return trim(c.ref);
    case 'iptables-rule':
    case 'nft-rule':
    case 'ipset':
      return trim(c.ref.replace(/\s+/g, ' ').trim()); // a line of the ruleset: bounded by the ruleset
    case 'route':
      // `unreachable 10.0.0.0/8` names a route of the table; `no route to 10.1.2.3` names a destination
      return c.ref.startsWith('no route to ') ? 'no route' : trim(c.ref);
    case 'address':
      return 'not a local address';
    case 'socket':
      return 'no listener';
    case 'ipvs-dest':
      return 'stale real server';
    case 'hop-limit':
      return 'hop limit exceeded'; // the ref holds the packet's hop limit: no label of its own
    default:
      return 'other';
  }
}

function trim(s: string): string {
  return s.length > MAX_CAUSE_LABEL ? `${s.slice(0, MAX_CAUSE_LABEL - 1)}…` : s;
}

/** One drop the agent counts, and what it is blamed on. */
export interface DropLabels {
  reason: string;
  cause_type: string;
  cause: string;
  netns: string;
  pod_namespace: string;
}

/**
 * The labels of each drop of a judged flow: the drops the verdict is about
 * (its reason in its namespace) carry its cause and the namespace of the pod
 * where it died (verdict.where.k8s); any other drop of the flow (a different
 * reason or place) counts as unknown under its own reason, with the pod
 * namespace of where it happened (`pod`, from the name sources) when known.
 */
export function dropLabels(doc: FlowDoc, drops: { reason: string; netns: string; pod?: string }[]): DropLabels[] {
  const v = doc.verdict;
  return drops.map((d) => {
    const mine = v.where && d.reason === v.where.reason && d.netns === v.where.netns && v.outcome === 'dropped';
    return mine
      ? { reason: d.reason, cause_type: v.cause.type, cause: causeLabel(v.cause), netns: d.netns, pod_namespace: v.where?.k8s?.namespace ?? d.pod ?? '' }
      : { reason: d.reason, cause_type: 'unknown', cause: trim(d.reason), netns: d.netns, pod_namespace: d.pod ?? '' };
  });
}

export const OVERFLOW = 'overflow';
/**
 * flows: judged never (the verdict queue was full); label-sets: drops counted in
 * the overflow series; explained-keys: (flow, cause) pairs forgotten (such a
 * flow is logged again if it fails again).
 */
export const SHED_WHAT = ['flows', 'label-sets', 'explained-keys'] as const;
export type ShedWhat = (typeof SHED_WHAT)[number];

export interface AgentMetricsOptions {
  /** Distinct label sets of netwhy_drops_total at most (then cause="overflow"). */
  maxSeries?: number;
  /** Read at each scrape: lost records per probe since the start (the kernel's counters). */
  lost?: () => { probe: string; lost: number }[];
  /** Process metrics (prom-client's defaults); off in unit tests. */
  processMetrics?: boolean;
}

export class AgentMetrics {
  readonly registry = new Registry();
  private readonly drops: Counter<keyof DropLabels>;
  private readonly explained: Counter<'outcome'>;
  private readonly shedTotal: Counter<'what'>;
  private readonly probeInfo: Gauge<'probe' | 'mode'>;
  private readonly series = new Set<string>();
  private readonly maxSeries: number;

  constructor(opts: AgentMetricsOptions = {}) {
    const registers = [this.registry];
    this.maxSeries = opts.maxSeries ?? 1000;
    if (opts.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
    this.drops = new Counter({
      name: 'netwhy_drops_total',
      help: 'Packets dropped, by kernel drop reason and by the cause netwhy proved (cause_type, cause), per network namespace and Kubernetes namespace',
      labelNames: ['reason', 'cause_type', 'cause', 'netns', 'pod_namespace'],
      registers,
    });
    this.explained = new Counter({ name: 'netwhy_flows_explained_total', help: 'Flows with a drop that blames something, judged, by outcome (repeat: a flow and cause already explained recently; delivered: it recovered)', labelNames: ['outcome'], registers });
    this.shedTotal = new Counter({ name: 'netwhy_shed_total', help: 'What the agent let go to stay within its memory bounds', labelNames: ['what'], registers });
    this.probeInfo = new Gauge({ name: 'netwhy_probe_info', help: 'Each attached probe and the attach mode this kernel gave it (value 1)', labelNames: ['probe', 'mode'], registers });
    // Series that exist (at 0) from the start, so a dashboard or an alert sees them before the first event.
    for (const what of SHED_WHAT) this.shedTotal.inc({ what }, 0);
    for (const outcome of ['dropped', 'unknown', 'delivered', 'repeat']) this.explained.inc({ outcome }, 0);
    const lost = opts.lost;
    const seen = new Map<string, number>();
    new Counter({
      name: 'netwhy_events_lost_total',
      help: 'Events the kernel could not put in the ring buffer (full), per probe',
      labelNames: ['probe'],
      registers,
      collect() {
        for (const { probe, lost: n } of lost?.() ?? []) {
          const delta = n - (seen.get(probe) ?? 0);
          seen.set(probe, n);
          // touch every probe so the series exists at 0 before the first loss
          this.inc({ probe }, Math.max(0, delta));
        }
      },
    });
  }

  probe(probe: string, mode: string): void {
    this.probeInfo.set({ probe, mode }, 1);
  }

  /** Count a drop; a label set past the cap counts in the overflow series. */
  drop(l: DropLabels, n = 1): void {
    const key = `${l.reason}\0${l.cause_type}\0${l.cause}\0${l.netns}\0${l.pod_namespace}`;
    if (!this.series.has(key)) {
      if (this.series.size >= this.maxSeries) {
        this.drops.inc({ reason: OVERFLOW, cause_type: OVERFLOW, cause: OVERFLOW, netns: OVERFLOW, pod_namespace: OVERFLOW }, n);
        this.shed('label-sets', n);
        return;
      }
      this.series.add(key);
    }
    this.drops.inc(l, n);
  }

  explainedFlow(outcome: string): void {
    this.explained.inc({ outcome });
  }

  shed(what: ShedWhat, n = 1): void {
    this.shedTotal.inc({ what }, n);
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

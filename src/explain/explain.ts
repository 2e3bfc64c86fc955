// From flows to verdicts: outcome, where, cause (first rule that can prove
// one), evidence and fix. What no rule can prove is 'unknown', with evidence.
import { hostPort } from '../model/ip.js';
import { type DropRecord, type IpvsRecord, PktFlag, type Tuple } from '../abi.js';
import { recordPkt } from '../journey.js';
import type { NameLookup } from '../model/k8s.js';
import { lookupText, tupleText } from './evidence.js';
import type { Flow, NatStep } from './flows.js';
import { conntrackInsertRule } from './rules/conntrack.js';
import { forwardingRule } from './rules/forwarding.js';
import { hopLimitRule } from './rules/hop-limit.js';
import { ipv6DisabledRule } from './rules/ipv6-disabled.js';
import { netfilterRule, hookFromStack } from './rules/netfilter.js';
import { routeRule } from './rules/route.js';
import { rpFilterRule } from './rules/rpfilter.js';
import { socketRule } from './rules/socket.js';
import type { ExplainRule, FlowRule, Hook, NetfilterPacket, NetnsState, RuleInput, Verdict, Where } from './types.js';
import { ipvsFlapRule, ipvsMissingServiceRule, ipvsNoDestRule, ipvsStaleDestRule } from './rules/ipvs.js';

export const RULES: ExplainRule[] = [forwardingRule, routeRule, ipv6DisabledRule, hopLimitRule, rpFilterRule, netfilterRule, conntrackInsertRule, ipvsMissingServiceRule, socketRule];

/** Rules about a failed flow as a whole; they go first, drop or not. */
export const FLOW_RULES: FlowRule[] = [ipvsFlapRule, ipvsNoDestRule, ipvsStaleDestRule];

/** Frees that are not losses of the traced packet, or too vague to blame alone. */
const WEAK_REASONS = new Set(['NOT_SPECIFIED', 'CONSUMED', 'NOT_DROPPED_YET', 'TCP_OLD_DATA', 'TCP_OLD_ACK', 'DUP_FRAG', 'QUEUE_PURGE']);

export interface ExplainDeps {
  state(netns: number): NetnsState | undefined;
  /** IPVS events of the trace: new connections, errors, control-plane changes. */
  ipvs: IpvsRecord[];
  netnsName(inode: number): string;
  /** Kubernetes names, when a name source answered (absent: addresses only). */
  names?: NameLookup;
  reasonName(value: number): string;
  func(addr: bigint): string | undefined;
  symbol(addr: bigint): string;
}

export interface NatAttribution {
  step: NatStep;
  by: { type: 'iptables-rule' | 'ipvs-service' | 'conntrack'; ref: string };
}

const TCP_RST = 0x04;

/**
 * Did the reply reach the sender as the sender expects it (un-NAT-ed)? A TCP
 * reset is not one: it is the refusal (without a command's exit status to go
 * by, a live verdict would call a refused connection delivered).
 */
export function replyDelivered(flow: Flow): boolean {
  const o = flow.orig;
  const dropped = new Set(flow.drops.map((d) => d.journey));
  return flow.journeys.some(
    (j) => !dropped.has(j) && j.records.some((r) => {
      const p = recordPkt(r);
      return !!p && r.kind === 'rx' && p.tuple.src === o.dst && p.tuple.dst === o.src && p.tuple.sport === o.dport && p.tuple.dport === o.sport &&
        !(p.tuple.proto === 6 && (p.flags & PktFlag.HAS_L4) !== 0 && (p.tcpFlags & TCP_RST) !== 0);
    }),
  );
}

/** Did a packet of the flow die for a reason that blames something (not a weak free)? */
export function hasStrongDrop(flow: Flow, reasonName: (v: number) => string): boolean {
  return flow.drops.some((x) => !WEAK_REASONS.has(reasonName(x.drop.reason)));
}

/** A flow seen only as weak frees (a purged ICMP error queue) has nothing to explain. */
export function isNoise(flow: Flow, reasonName: (v: number) => string): boolean {
  return flow.journeys.every((j) => j.records.every((r) => r.kind === 'drop' && WEAK_REASONS.has(reasonName(r.reason))));
}

function deciding(flow: Flow, reasonName: (v: number) => string): Flow['drops'][number] | undefined {
  return flow.drops.find((d) => !WEAK_REASONS.has(reasonName(d.drop.reason))) ?? flow.drops[0];
}

function genericEvidence(d: DropRecord, input: RuleInput, deps: ExplainDeps): string[] {
  const ns = deps.netnsName(d.pkt.netns);
  const ev = [`${tupleText(d.pkt.tuple)} dropped in ${ns} on ${d.pkt.dev || '?'} with ${deps.reasonName(d.reason)} at ${deps.symbol(d.location)}`];
  const funcs = [deps.func(d.location), ...d.stack.map((a) => deps.func(a))];
  // only a drop under nf_hook_slow is netfilter's (ip6_forward's own drops are not)
  const hook = funcs.includes('nf_hook_slow') ? hookFromStack(funcs) : undefined;
  if (hook) ev.push(`the drop happened in netfilter's ${hook} hook`);
  for (const f of input.journey.records) if (f.kind === 'fib' && f.ts <= d.ts) ev.push(lookupText(f, deps.netnsName(f.netns)));
  const st = deps.state(d.pkt.netns);
  if (!st) ev.push(`the state of ${ns} could not be read`);
  else if (st.errors.length) ev.push(`state of ${ns} incomplete: ${st.errors.join('; ')}`);
  return ev;
}

function whereOf(d: DropRecord, deps: ExplainDeps): NonNullable<Verdict['where']> {
  const where: Where = { netns: deps.netnsName(d.pkt.netns), dev: d.pkt.dev, function: deps.func(d.location) ?? deps.symbol(d.location), reason: deps.reasonName(d.reason) };
  const pod = deps.names?.netns(d.pkt.netns);
  if (pod) where.k8s = pod;
  return where;
}

/**
 * A flow's verdict. exitCode is the traced command's, when there is one: a
 * command that succeeded delivered its flows even if a packet was lost on the
 * way (retransmitted); one that failed with a drop on its flow was dropped.
 */
export function verdictFor(flow: Flow, deps: ExplainDeps, exitCode?: number): Verdict {
  const d = deciding(flow, deps.reasonName);
  const delivered = replyDelivered(flow);
  const strong = hasStrongDrop(flow, deps.reasonName);
  // A command runs many flows: one that got its reply without a real loss is
  // delivered even when another one failed the command.
  const failed = delivered && !strong ? false : exitCode !== undefined ? exitCode !== 0 : !delivered;
  if (failed) {
    for (const rule of FLOW_RULES) {
      const f = rule.explain({ flow, ...deps });
      if (f) return { outcome: 'dropped', where: d ? whereOf(d.drop, deps) : undefined, ...f };
    }
  }
  if (!d || !failed) {
    if (delivered || exitCode === 0) {
      const evidence = [`the reply reached ${hostPort(flow.orig.src, flow.orig.sport)} from ${hostPort(flow.orig.dst, flow.orig.dport)}`];
      if (!delivered) evidence[0] = `the command succeeded${flow.drops.length ? '' : ' and no packet of this flow was dropped'}`;
      const lost = flow.drops.filter((x) => !WEAK_REASONS.has(deps.reasonName(x.drop.reason)));
      if (lost.length) evidence.push(`${lost.length} packet(s) of this flow were dropped on the way (${[...new Set(lost.map((x) => deps.reasonName(x.drop.reason)))].join(', ')}) and recovered`);
      return { outcome: 'delivered', cause: { type: 'unknown', ref: 'none' }, evidence };
    }
    const last = flow.journeys.flatMap((j) => j.records).filter((r) => recordPkt(r)).sort((a, b) => b.ts - a.ts)[0];
    const p = last && recordPkt(last);
    return {
      outcome: 'unknown',
      cause: { type: 'unknown', ref: 'no drop seen' },
      evidence: [
        'no packet of this flow was dropped where netwhy can see it, and no reply reached the sender',
        p ? `last seen: ${last.kind} on ${p.dev || '?'} in ${deps.netnsName(p.netns)}` : 'no packet of this flow was seen at all',
      ],
    };
  }
  const input: RuleInput = { flow, drop: d.drop, journey: d.journey, ...deps };
  const reason = deps.reasonName(d.drop.reason);
  const where = whereOf(d.drop, deps);
  const same = flow.drops.filter((x) => x.drop.reason === d.drop.reason && x.drop.pkt.netns === d.drop.pkt.netns);
  // The deciding drop first; then its retransmissions, whose journeys may hold
  // more (the agent traces a flow's path only from its first drop on).
  for (const x of same.includes(d) ? [d, ...same.filter((y) => y !== d)] : [d]) {
    const at: RuleInput = x === d ? input : { ...input, drop: x.drop, journey: x.journey };
    for (const rule of RULES) {
      if (!rule.reasons.includes(reason)) continue;
      const f = rule.explain(at);
      if (f) {
        if (same.length > 1) f.evidence.push(`${same.length} packets of this flow were dropped the same way (retransmissions)`);
        return { outcome: 'dropped', where: x === d ? where : whereOf(x.drop, deps), cause: f.cause, evidence: f.evidence, fix: f.fix };
      }
    }
  }
  return {
    outcome: 'dropped',
    where,
    cause: { type: 'unknown', ref: reason, netns: where.netns },
    evidence: [...genericEvidence(d.drop, input, deps), `no rule of netwhy could prove a cause for ${reason} here`],
  };
}

/** DNAT of a packet a local socket of that namespace sent happens at OUTPUT, else at PREROUTING. */
function firstHook(step: NatStep, flow: Flow): Hook {
  const localSend = flow.journeys.some((j) => j.records.some((r) => {
    const p = recordPkt(r);
    return !!p && p.netns === step.netns && r.kind === 'tx' && (p.flags & PktFlag.LOCAL_SK) !== 0 && p.tuple.src === step.orig.src;
  }));
  return localSend ? 'OUTPUT' : 'PREROUTING';
}

function natPacket(orig: Tuple, iif: string | undefined): NetfilterPacket {
  return { proto: orig.proto, src: orig.src, dst: orig.dst, sport: orig.sport, dport: orig.dport, iif, mark: 0, ctstate: ['NEW'] };
}

/** The device the flow's first packet arrived on in a namespace. */
function arrivalDev(flow: Flow, netns: number): string | undefined {
  for (const j of flow.journeys) {
    for (const r of j.records) {
      const p = recordPkt(r);
      if (p && r.kind === 'rx' && p.netns === netns) return p.dev;
    }
  }
  return undefined;
}

/** Which rule made each NAT step, from the namespace's ruleset; conntrack's word otherwise. */
export function attributeNat(flow: Flow, deps: ExplainDeps): NatAttribution[] {
  return flow.nat.map((step): NatAttribution => {
    if (step.by) return { step, by: step.by };
    const nf = deps.state(step.netns)?.netfilter;
    const hook = firstHook(step, flow);
    const found = nf?.natRules(hook, natPacket(step.orig, hook === 'PREROUTING' ? arrivalDev(flow, step.netns) : undefined))[step.kind];
    if (found) return { step, by: { type: 'iptables-rule', ref: found.rule } };
    return { step, by: { type: 'conntrack', ref: `${tupleText(step.orig)} → ${step.kind === 'dnat' ? 'dst' : 'src'} ${hostPort(step.to.addr, step.to.port)}` } };
  });
}

// From flows to verdicts: outcome, where, cause (first rule that can prove
// one), evidence and fix. What no rule can prove is 'unknown', with evidence.
import { hostPort } from '../model/ip.js';
import { type DropRecord, type IpvsRecord, PktFlag, type Tuple } from '../abi.js';
import { recordPkt } from '../journey.js';
import { reasonMeaning } from '../model/drop-reasons.js';
import type { NameLookup } from '../model/k8s.js';
import { lookupText, tupleText } from './evidence.js';
import { type Flow, type NatStep, dropKind } from './flows.js';
import { conntrackInsertRule } from './rules/conntrack.js';
import { forwardingRule } from './rules/forwarding.js';
import { hopLimitRule } from './rules/hop-limit.js';
import { ipv6DisabledRule } from './rules/ipv6-disabled.js';
import { netfilterRule, hookFromStack } from './rules/netfilter.js';
import { routeRule } from './rules/route.js';
import { rpFilterRule } from './rules/rpfilter.js';
import { socketRule } from './rules/socket.js';
import { connectFailedRule } from './rules/connect.js';
import { noRouteBackRule } from './rules/reply-route.js';
import { neighbourRule } from './rules/neighbour.js';
import { mtuRule } from './rules/mtu.js';
import { conntrackFullRule, conntrackInvalidRule } from './rules/conntrack-state.js';
import type { ExplainRule, FlowRule, Hook, NetfilterPacket, NetnsState, RuleInput, Verdict, Where } from './types.js';
import { ipvsFlapRule, ipvsMissingServiceRule, ipvsNoDestRule, ipvsStaleDestRule } from './rules/ipvs.js';

export const RULES: ExplainRule[] = [forwardingRule, routeRule, ipv6DisabledRule, hopLimitRule, rpFilterRule, conntrackInvalidRule, netfilterRule, conntrackInsertRule, conntrackFullRule, ipvsMissingServiceRule, socketRule, neighbourRule, mtuRule];

/** Rules about a failed flow as a whole; they go first, drop or not. */
export const FLOW_RULES: FlowRule[] = [ipvsFlapRule, ipvsNoDestRule, ipvsStaleDestRule, connectFailedRule, noRouteBackRule];

/** Frees that are not losses of the traced packet, or too vague to blame alone. */
export const WEAK_REASONS: ReadonlySet<string> = new Set(['NOT_SPECIFIED', 'CONSUMED', 'NOT_DROPPED_YET', 'TCP_OLD_DATA', 'TCP_OLD_ACK', 'DUP_FRAG', 'QUEUE_PURGE']);

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
  /** When events were lost (ring buffer full); a window may be unbounded (losses the trace could not place). */
  losses?: LossWindow[];
}

/** Events lost between first and last (ns since boot). */
export interface LossWindow {
  count: number;
  first: number;
  last: number;
}

/** A packet that never got recorded can be a retransmission's original, up to this long (ns) before the flow's first event. */
const LOSS_MARGIN_NS = 1e9;

/**
 * Events lost while a flow was traced: windows that end at or after `from`
 * (less the margin) and begin before `to`. A failed flow is traced until the
 * trace ends (its last event may be the one lost); a delivered one until its
 * last event.
 */
export function lostDuring(losses: LossWindow[] | undefined, from: number, to = Infinity): number {
  let n = 0;
  for (const w of losses ?? []) if (w.last >= from - LOSS_MARGIN_NS && w.first <= to) n += w.count;
  return n;
}

const incompleteText = (n: number) => `trace incomplete: ${n} event${n === 1 ? '' : 's'} lost while this flow was traced (ring buffer full; raise --ring-mb or narrow the command)`;

/**
 * The verdict of a flow traced while events were lost (docs/json.md, "trace
 * incomplete"). A delivered flow stays delivered: its reply was seen. A failed
 * flow keeps the cause the rules found only when every loss ended before the
 * deciding drop's journey began: that journey is whole and everything after
 * it was recorded, so no lost event can be a later drop or a missing hop of
 * it. Otherwise the drop seen stays the `where`, but no cause is concluded:
 * cause unknown, ref 'trace incomplete', with what the rules would have said
 * in the evidence.
 */
function honestAboutLoss(v: Verdict, flow: Flow, d: Flow['drops'][number] | undefined, losses: LossWindow[] | undefined, delivered: boolean): Verdict {
  if (!losses?.length) return v;
  if (v.outcome === 'delivered') {
    const n = lostDuring(losses, flow.start, delivered ? flow.end : Infinity);
    return n ? { ...v, evidence: [...v.evidence, `${incompleteText(n)}; the outcome stands, it was seen`] } : v;
  }
  const n = lostDuring(losses, flow.start);
  if (!n) return v;
  const sinceJourney = d ? lostDuring(losses, d.journey.start + LOSS_MARGIN_NS) : n;
  if (d && v.cause.type !== 'unknown' && sinceJourney === 0) {
    return { ...v, evidence: [...v.evidence, `${incompleteText(n)}; all before the packet that decided it, so the cause stands`] };
  }
  if (v.cause.type === 'unknown') {
    return { ...v, evidence: [incompleteText(n) + (d ? '' : ': the drop that ended this flow may be among them'), ...v.evidence] };
  }
  const candidate = `${v.cause.type} ${v.cause.ref}${v.cause.value ? ` = ${v.cause.value}` : ''}${v.cause.netns ? ` (${v.cause.netns})` : ''}`;
  return {
    outcome: v.outcome,
    where: v.where,
    cause: { type: 'unknown', ref: 'trace incomplete', netns: v.cause.netns },
    evidence: [`${incompleteText(n)}: a lost event could be the drop that ended this flow, so no cause is concluded`, `the events seen point to ${candidate}`, ...v.evidence],
    fix: 'trace again with a larger --ring-mb (or less traffic in the traced command) so that no event is lost',
  };
}

export interface NatAttribution {
  step: NatStep;
  by: { type: 'iptables-rule' | 'nft-rule' | 'ipvs-service' | 'conntrack'; ref: string };
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

/** Whether a firewall rule told the sender (REJECT) or left it to time out (DROP): what the client saw. */
function refusedOrFiltered(c: Verdict['cause']): string | undefined {
  if (c.type !== 'iptables-rule' && c.type !== 'nft-rule') return undefined;
  if (c.value === 'REJECT') return 'refused, not filtered: the rule answers with an ICMP error or a TCP reset, so the sender fails at once ("connection refused", "host unreachable")';
  if (c.value === 'DROP') return 'filtered, not refused: the rule drops silently, so the sender hears nothing and times out';
  return undefined;
}

/** A packet of the flow itself (its protocol), not a side message such as an ICMP error about it. */
function ownPacket(flow: Flow, d: DropRecord): boolean {
  return d.pkt.tuple.proto === flow.orig.proto;
}

/**
 * The drop that ended the flow: the last real drop of the flow's own packets
 * (a retransmission dies where the first try died; what died last is what
 * the sender gave up on), else the last real drop of anything tied to it (an
 * ICMP error about it), else the first weak free. An earlier drop of a side
 * message (the ICMP error a router sent back) is secondary.
 */
export function deciding(flow: Flow, reasonName: (v: number) => string): Flow['drops'][number] | undefined {
  const real = flow.drops.filter((d) => !WEAK_REASONS.has(reasonName(d.drop.reason)));
  const own = real.filter((d) => ownPacket(flow, d.drop));
  return own.at(-1) ?? real.at(-1) ?? flow.drops[0];
}

/** The flow's other real drops, one line per kind (packet, namespace, reason, location), for the evidence. */
function secondaryDrops(flow: Flow, d: Flow['drops'][number], deps: ExplainDeps): string[] {
  const kinds = new Map<string, { text: string; n: number }>();
  const key = (x: DropRecord) => `${x.pkt.tuple.proto}|${x.pkt.netns}|${x.reason}|${deps.func(x.location) ?? x.location}`;
  const decidingKey = key(d.drop);
  for (const x of flow.drops) {
    const k = key(x.drop);
    if (k === decidingKey || WEAK_REASONS.has(deps.reasonName(x.drop.reason))) continue;
    const e = kinds.get(k);
    if (e) e.n++;
    else kinds.set(k, { text: `${tupleText(x.drop.pkt.tuple)} dropped in ${deps.netnsName(x.drop.pkt.netns)} on ${x.drop.pkt.dev || '?'} with ${deps.reasonName(x.drop.reason)} at ${deps.symbol(x.drop.location)}`, n: 1 });
  }
  return [...kinds.values()].map((e) => `secondary drop (not the one that ended the flow): ${e.text}${e.n > 1 ? ` (${e.n}×)` : ''}`);
}

function genericEvidence(d: DropRecord, input: RuleInput, deps: ExplainDeps): string[] {
  const ns = deps.netnsName(d.pkt.netns);
  const reason = deps.reasonName(d.reason);
  const ev = [`${tupleText(d.pkt.tuple)} dropped in ${ns} on ${d.pkt.dev || '?'} with ${reason} at ${deps.symbol(d.location)}`];
  const meaning = reasonMeaning(reason);
  if (meaning) ev.push(`${reason}, as the kernel means it: ${meaning}`);
  const funcs = [deps.func(d.location), ...d.stack.map((a) => deps.func(a))];
  // A hook only when netfilter dropped it (its reason, or nf_hook_slow on the stack): ip_forward's and ip6_forward's own drops
  // (an MTU drop, hop limit) are no FORWARD hook drops.
  const hook = reason === 'NETFILTER_DROP' || funcs.includes('nf_hook_slow') ? hookFromStack(funcs) : undefined;
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
  return honestAboutLoss(judge(flow, d, delivered, deps, exitCode), flow, d, deps.losses, delivered);
}

function judge(flow: Flow, d: Flow['drops'][number] | undefined, delivered: boolean, deps: ExplainDeps, exitCode?: number): Verdict {
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
  // and those a live trace counted but did not keep
  const sameCount = same.length + (flow.shed?.drops.get(dropKind(d.drop.reason, d.drop.pkt.netns))?.count ?? 0);
  const secondary = secondaryDrops(flow, d, deps);
  // The deciding drop first; then its retransmissions, whose journeys may hold
  // more (the agent traces a flow's path only from its first drop on).
  for (const x of same.includes(d) ? [d, ...same.filter((y) => y !== d)] : [d]) {
    const at: RuleInput = x === d ? input : { ...input, drop: x.drop, journey: x.journey };
    for (const rule of RULES) {
      if (!rule.reasons.includes(reason)) continue;
      const f = rule.explain(at);
      if (f) {
        if (sameCount > 1) f.evidence.push(`${sameCount} packets of this flow were dropped the same way (retransmissions)`);
        const how = refusedOrFiltered(f.cause);
        if (how) f.evidence.push(how);
        return { outcome: 'dropped', where: x === d ? where : whereOf(x.drop, deps), cause: f.cause, evidence: [...f.evidence, ...secondary], fix: f.fix };
      }
    }
  }
  return {
    outcome: 'dropped',
    where,
    cause: { type: 'unknown', ref: reason, netns: where.netns },
    evidence: [...genericEvidence(d.drop, input, deps), `no rule of netwhy could prove a cause for ${reason} here`, ...secondary],
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
    if (found) return { step, by: { type: found.source === 'nft' ? 'nft-rule' : 'iptables-rule', ref: found.rule } };
    return { step, by: { type: 'conntrack', ref: `${tupleText(step.orig)} → ${step.kind === 'dnat' ? 'dst' : 'src'} ${hostPort(step.to.addr, step.to.port)}` } };
  });
}

// What an explanation is made of (the JSON contract in DESIGN.md) and what a
// rule may look at. Rules are pure: state arrives already captured.
import type { DropRecord, FibRecord, IpvsRecord } from '../abi.js';
import type { IpvsState } from '../state/parsers.js';
import type { Journey } from '../journey.js';
import type { Hook, PacketContext } from '../state/iptables.js';
import type { Flow } from './flows.js';

export type CauseType =
  | 'sysctl' | 'route' | 'address' | 'iptables-rule' | 'nft-rule' | 'ipset'
  | 'ipvs-service' | 'ipvs-dest' | 'conntrack' | 'socket' | 'unknown';

export interface Cause {
  type: CauseType;
  ref: string;
  value?: string;
  netns?: string;
  /** For a netfilter rule that matched through an ipset. */
  ipset?: { name: string; member: string };
}

export interface Where {
  netns: string;
  dev: string;
  function: string;
  reason: string;
}

export interface Verdict {
  outcome: 'dropped' | 'delivered' | 'unknown';
  where?: Where;
  cause: Cause;
  evidence: string[];
  fix?: string;
}

/** The part of a verdict a rule decides. */
export interface Finding {
  cause: Cause;
  evidence: string[];
  fix?: string;
}

export interface AddrInfo {
  dev: string;
  address: string;
  prefixlen: number;
  secondary: boolean;
}

export interface RouteInfo {
  table: string;
  dst: string;
  dev?: string;
  gateway?: string;
  type: string;
}

/** What the rules may know of one network namespace. */
export interface NetnsState {
  name: string;
  sysctl(key: string): string | undefined;
  addrs: AddrInfo[];
  routes: RouteInfo[];
  /** Evaluate a packet through a netfilter hook; undefined when no ruleset could be read. */
  netfilter?: NetfilterEvaluator;
  /** IPVS services and connections; null when the namespace has no IPVS. */
  ipvs: IpvsState | null;
  /** conntrack insert_failed before the traced command and after it. */
  insertFailed?: { before?: number; after?: number };
  errors: string[];
}

export type { Hook };

/** A packet as a netfilter hook sees it; the namespace's own addresses are added by the evaluator. */
export type NetfilterPacket = Omit<PacketContext, 'localAddrs'>;

export interface NetfilterFinding {
  verdict: string; // ACCEPT, DROP, REJECT
  table: string;
  chain: string;
  /** The rule line as iptables-save prints it, or "policy DROP" of a chain. */
  rule: string;
  packets?: number;
  ipset?: { name: string; member: string };
  uncertain: string[];
  trail: string[];
}

export interface NatFinding {
  rule: string;
  table: string;
  chain: string;
  to?: string;
}

export interface NetfilterEvaluator {
  backend: string;
  evaluate(hook: Hook, pkt: NetfilterPacket): NetfilterFinding;
  /** The NAT rules that rewrite a new connection entering at `first` (PREROUTING or OUTPUT). */
  natRules(first: Hook, pkt: NetfilterPacket): { dnat?: NatFinding; snat?: NatFinding };
}

export interface RuleInput {
  flow: Flow;
  drop: DropRecord;
  journey: Journey;
  state(netns: number): NetnsState | undefined;
  netnsName(inode: number): string;
  reasonName(value: number): string;
  func(addr: bigint): string | undefined;
}

/** A rule that looks at a failed flow as a whole, with or without a drop. */
export interface FlowRule {
  name: string;
  explain(input: FlowRuleInput): Finding | null;
}

export interface FlowRuleInput {
  flow: Flow;
  ipvs: IpvsRecord[];
  state(netns: number): NetnsState | undefined;
  netnsName(inode: number): string;
}

export interface ExplainRule {
  name: string;
  /** Drop reasons this rule can explain. */
  reasons: string[];
  explain(input: RuleInput): Finding | null;
}

export type { FibRecord };

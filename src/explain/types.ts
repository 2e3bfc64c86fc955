// What an explanation is made of (the JSON contract in docs/json.md) and what a
// rule may look at. Rules are pure: state arrives already captured.
import type { DropRecord, FibRecord, IpvsRecord } from '../abi.js';
import type { Journey } from '../journey.js';
import type { K8sRef, NameLookup } from '../model/k8s.js';
import type { NetnsState } from '../model/netns.js';
import type { Flow } from './flows.js';

export type { Hook, NatFinding, NetfilterEvaluator, NetfilterFinding, NetfilterPacket } from '../model/netfilter.js';
export type { AddrInfo, NetnsState, RouteInfo } from '../model/netns.js';

export type CauseType =
  | 'sysctl' | 'route' | 'address' | 'iptables-rule' | 'nft-rule' | 'ipset'
  | 'ipvs-service' | 'ipvs-dest' | 'conntrack' | 'socket' | 'hop-limit' | 'unknown';

export interface Cause {
  type: CauseType;
  ref: string;
  value?: string;
  netns?: string;
  /** The Kubernetes objects behind the cause (a NetworkPolicy and the pod it isolates; a Service). */
  k8s?: K8sRef[];
  /** For a netfilter rule that matched through an ipset. */
  ipset?: { name: string; member: string };
}

export interface Where {
  netns: string;
  dev: string;
  function: string;
  reason: string;
  /** the pod that owns netns */
  k8s?: K8sRef;
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

export interface RuleInput {
  flow: Flow;
  drop: DropRecord;
  journey: Journey;
  state(netns: number): NetnsState | undefined;
  netnsName(inode: number): string;
  names?: NameLookup;
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

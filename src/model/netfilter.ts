// A packet as a netfilter hook sees it, and what evaluating a namespace's
// ruleset says about it. The rulesets and walkers are in model/netfilter/,
// the evaluator built from a snapshot in state/netfilter.ts, the rules that
// ask it in explain/.

export type Hook = 'PREROUTING' | 'INPUT' | 'FORWARD' | 'OUTPUT' | 'POSTROUTING';

import type { ReversePath, ReversePathQuery } from './route.js';

export interface PacketContext {
  proto: number; // 6 tcp, 17 udp, 1 icmp
  src: string;
  dst: string;
  sport?: number;
  dport?: number;
  /** device names; absent when not known at that hook */
  iif?: string;
  oif?: string;
  mark: number;
  /** e.g. ['NEW'] or ['ESTABLISHED']; also 'DNAT', 'SNAT' for --ctstate DNAT/SNAT */
  ctstate: string[];
  /** addresses local to this netns (for -m addrtype --dst-type LOCAL) */
  localAddrs: string[];
  icmpType?: number;
  icmpCode?: number;
  /** TCP flag bits (TCP_FLAGS); absent = unknown, so --syn / --tcp-flags are uncertain */
  tcpFlags?: number;
  /** conntrack mark; absent = unknown */
  ctmark?: number;
  /** true for a non-first fragment (-f); absent = unknown */
  fragment?: boolean;
  /** The bridge port the packet came in by (br_netfilter), null when it did not come in by a
   * bridge port; absent = unknown, so -m physdev is uncertain. */
  physIn?: string | null;
  /** The bridge port a bridged packet leaves by (FORWARD, POSTROUTING), null when the packet is
   * not bridged out (routed, or not yet switched); absent = unknown. */
  physOut?: string | null;
  /** -m rpfilter's reverse-path lookup on the namespace's routes (set by the evaluator; absent: not modelled) */
  reversePath?: (q: ReversePathQuery) => ReversePath;
  /** set by the evaluator when a rule made the mark unknowable (CONNMARK --restore-mark without ctmark) */
  markUnknown?: boolean;
}

/** TCP flag bits for PacketContext.tcpFlags. */
export const TCP_FLAGS = { FIN: 1, SYN: 2, RST: 4, PSH: 8, ACK: 16, URG: 32, ECE: 64, CWR: 128 } as const;

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
  /** what the evaluator decided on the way that a rule line does not show (-m rpfilter's route back) */
  notes?: string[];
  trail: string[];
  /** every rule that matched on the way, in order (the trail, as data) */
  steps: RuleStep[];
  /** which front-end's rule decided: iptables (named by its iptables-save line) or a native nftables table */
  source?: 'iptables' | 'nft';
  /** for an nft rule: where it is, the path that led there and the set or map element it matched */
  nft?: NftDecision;
  /** the deciding rule's counter before the traced command, when it was read then */
  packetsBefore?: number;
}

export interface NftDecision {
  family: string;
  table: string;
  chain: string;
  handle?: number;
  /** the chains (and `@maps`) that led to the decision, from the base chain */
  path: string[];
  /** the set or map element the packet matched on the way (the deciding one, else the last) */
  element?: { set: string; key: string; comment?: string; value?: string };
  /** true when the chain's policy decided */
  policy?: boolean;
}

export interface RuleStep {
  table: string;
  chain: string;
  /** the rule line as iptables-save prints it */
  rule: string;
  comment?: string;
  /** the chain it jumped (or went) to */
  jump?: string;
  /** true when the rule ended the hook (ACCEPT, DROP, REJECT) */
  final?: boolean;
}

/** A rule of a chain, and whether the packet matched it. */
export interface RuleView {
  rule: string;
  comment?: string;
  /** the target as written: a chain, MARK, REJECT… */
  target?: string;
  /** the first condition the packet does not meet, by its text and what it tests */
  miss?: { text: string; set?: { name: string; dirs: string[]; negated: boolean } };
  /** a condition that cannot be evaluated for this packet, and why */
  uncertain?: string;
}

export interface NatFinding {
  /** the iptables-save line, or for nft the rule as `nft -a list ruleset` prints it with its table and chain */
  rule: string;
  source?: 'iptables' | 'nft';
  table: string;
  chain: string;
  to?: string;
}

export interface NetfilterEvaluator {
  backend: string;
  /** the ruleset a packet of that family is evaluated against (`ip6tables (nf_tables)`) */
  backendFor?(family: 4 | 6): string;
  evaluate(hook: Hook, pkt: NetfilterPacket): NetfilterFinding;
  /** The rules of a chain, each with the first condition the packet fails; undefined: no such chain. */
  chainRules(table: string, chain: string, hook: Hook, pkt: NetfilterPacket): RuleView[] | undefined;
  /** The NAT rules that rewrite a new connection entering at `first` (PREROUTING or OUTPUT). */
  natRules(first: Hook, pkt: NetfilterPacket): { dnat?: NatFinding; snat?: NatFinding };
}

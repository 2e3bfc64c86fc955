// What a walk of iptables' tables at one hook answers: the verdict and the rule or policy that
// decided it, every rule that matched on the way, NAT rewrites, and what the walk was not sure of.
import type { Hook, PacketContext } from '../netfilter.js';
import type { SetDirection } from './ipset.js';
import type { NatKind, Rule, TableName, Verdict } from './xt-ruleset.js';

export interface SetMatchInfo {
  set: string;
  /** member that matched, null for a negated match (`! --match-set`: the set does *not* hold the packet) */
  member: string | null;
  flags: SetDirection[];
  negated: boolean;
  /** list:set member set that held the member */
  via?: string;
  /** the `add` line of the member in the ipset save text */
  memberLine?: number;
}

export type Decision =
  | { kind: 'rule'; table: TableName; chain: string; rule: Rule; verdict: Verdict }
  | {
      kind: 'policy';
      table: TableName;
      chain: string;
      policy: 'ACCEPT' | 'DROP';
      verdict: Verdict;
      /** a RETURN in the built-in chain that led to the policy */
      viaReturn?: Rule;
    }
  | { kind: 'none'; reason: string };

export interface TableOutcome {
  table: TableName;
  verdict?: Verdict;
  decision?: Decision;
  /** why this table did not run at this hook */
  skipped?: string;
}

export interface TrailEntry {
  table: TableName;
  chain: string;
  rule: Rule;
  /** what the matching rule did: `jump KUBE-SERVICES`, `mark 0x0 -> 0x4000`, `DNAT to 10.244.2.2:80` */
  effect: string;
  setMatches: SetMatchInfo[];
}

export interface Uncertainty {
  table: TableName;
  chain: string;
  rule: Rule;
  reason: string;
  /** what the evaluator assumed to go on */
  assumed: 'match' | 'no match' | 'continue' | 'stop';
}

export interface NatRewrite {
  kind: NatKind;
  table: TableName;
  chain: string;
  rule: Rule;
  /** as written in the rule (`10.244.2.2:80`), null for MASQUERADE without --to-ports */
  to: string | null;
  addr?: string;
  port?: number;
}

export interface HookResult {
  hook: Hook;
  verdict: Verdict;
  /** for DROP/REJECT the rule or policy that dropped; for ACCEPT the last table decision made by a
   * rule (ACCEPT or NAT), else the filter table's policy, else the last policy */
  decidedBy: Decision;
  rejectWith?: string;
  /** ipset members that matched in the deciding rule */
  setMatches: SetMatchInfo[];
  nat: NatRewrite[];
  /** every rule that matched on the way, in order */
  trail: TrailEntry[];
  tables: TableOutcome[];
  uncertain: Uncertainty[];
  /** no uncertainty was met on the way */
  certain: boolean;
  /** the packet as it leaves the hook: mark, NAT rewrites, conntrack state */
  packet: PacketContext;
}

export interface EvalOptions {
  /** what to assume for a rule with an uncertain match (default 'match'). `-m statistic` always
   * counts as a match (kube-proxy's endpoint spreading); it is still listed as uncertain. */
  uncertainAs?: 'match' | 'nomatch';
  /** evaluate only these tables (one stage of a hook shared with nftables base chains); default all */
  tables?: readonly TableName[];
}

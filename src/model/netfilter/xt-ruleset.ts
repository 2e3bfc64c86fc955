// iptables' rulesets (x_tables: iptables-save, ip6tables-save) in the common model: tables at
// the hooks in the kernel's priority order, chains, rules, each rule's conditions (one kind per
// match the evaluator knows, xt-match/) and target. The parser is state/netfilter/iptables-save.ts.
import type { Family } from '../ip.js';
import type { Hook } from '../netfilter.js';
import type { SetDirection } from './ipset.js';
import { iptablesPriority } from './ruleset.js';

export type TableName = 'raw' | 'mangle' | 'nat' | 'filter' | 'security';
export type Verdict = 'ACCEPT' | 'DROP' | 'REJECT' | 'UNKNOWN';

export const BUILTIN_CHAINS: Record<TableName, readonly Hook[]> = {
  raw: ['PREROUTING', 'OUTPUT'],
  mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
  security: ['INPUT', 'FORWARD', 'OUTPUT'],
};

/** Tables in the order the kernel runs them at each hook (by hook priority: raw -300, mangle -150,

/** Tables in the order the kernel runs them at each hook: by hook priority (raw -300, mangle -150,
 * nat dst -100, filter 0, security 50, nat src 100 — so nat runs *last* at INPUT). */
export const HOOK_TABLES: Record<Hook, readonly TableName[]> = {
  PREROUTING: tablesAt('PREROUTING'),
  INPUT: tablesAt('INPUT'),
  FORWARD: tablesAt('FORWARD'),
  OUTPUT: tablesAt('OUTPUT'),
  POSTROUTING: tablesAt('POSTROUTING'),
};

function tablesAt(hook: Hook): TableName[] {
  const tables = (Object.keys(BUILTIN_CHAINS) as TableName[]).filter((t) => BUILTIN_CHAINS[t].includes(hook));
  return tables.sort((a, b) => iptablesPriority(a, hook) - iptablesPriority(b, hook));
}

export interface Counters {
  packets: number;
  bytes: number;
}

export interface Ruleset {
  tables: Map<TableName, Table>;
}

export interface Table {
  name: TableName;
  /** line of `*name` */
  line: number;
  chains: Map<string, Chain>;
}

export interface Chain {
  table: TableName;
  name: string;
  builtin: boolean;
  /** ACCEPT/DROP for built-in chains, null for user chains */
  policy: 'ACCEPT' | 'DROP' | null;
  counters?: Counters;
  line: number;
  rules: Rule[];
}

export interface Rule {
  table: TableName;
  chain: string;
  /** 1-based position in its chain, as `iptables -L --line-numbers` counts */
  index: number;
  /** line in the iptables-save text */
  line: number;
  /** the rule as iptables-save prints it, without the `[pkts:bytes]` prefix */
  text: string;
  counters?: Counters;
  conditions: Condition[];
  /** null: a rule without -j/-g (counts packets only) */
  target: Target | null;
  /** text of `-m comment --comment` */
  comment?: string;
  /** why some part of this rule cannot be evaluated (unknown match, option or target) */
  unevaluable?: string;
}

export interface AddrMatch {
  family: Family;
  addr: bigint;
  mask: bigint;
}

/** Every condition of a rule; `neg` is a `!` in front of it; `text` is the fragment of the rule. */
export type Condition = (
  | { kind: 'proto'; proto: number }
  | { kind: 'addr'; dir: 'src' | 'dst'; net: AddrMatch }
  | { kind: 'iface'; dir: 'in' | 'out'; name: string }
  | { kind: 'fragment' }
  | { kind: 'port'; dir: 'src' | 'dst' | 'either'; ranges: [number, number][]; protos: readonly number[] }
  | { kind: 'tcpflags'; mask: number; comp: number }
  | { kind: 'set'; set: string; flags: SetDirection[]; returnNomatch: boolean; counterTests: boolean }
  | { kind: 'addrtype'; dir: 'src' | 'dst'; types: string[] }
  | { kind: 'ctstate'; states: string[] }
  | { kind: 'ctproto'; proto: number }
  | { kind: 'mark'; conn: boolean; value: number; mask: number }
  | { kind: 'icmp'; type: number; code: number | null; /** ip6tables -m icmp6 */ v6?: boolean }
  | { kind: 'iprange'; dir: 'src' | 'dst'; family: Family; lo: bigint; hi: bigint }
  | { kind: 'statistic' }
  /** -m physdev: the bridge ports of a bridged packet (br_netfilter) */
  | { kind: 'physdev'; op: PhysdevOp; name?: string }
  /** -m rpfilter (neg is --invert): the reverse-path lookup, decided from the namespace's routes */
  | { kind: 'rpfilter'; loose: boolean; acceptLocal: boolean; validmark: boolean }
  /** understood, but needs information a PacketContext does not carry */
  | { kind: 'opaque'; why: string }
  /** not understood: the rule is unevaluable */
  | { kind: 'unknown'; why: string }
) & { neg: boolean; text: string };

export type PhysdevOp = 'in' | 'out' | 'is-in' | 'is-out' | 'is-bridged';

export type NatKind = 'dnat' | 'snat' | 'masquerade' | 'redirect' | 'netmap';

/** `name` is the target as written (`DNAT`, `KUBE-MARK-MASQ`); `args` the words after it. */
export type Target = (
  | { kind: 'chain'; chain: string; goto: boolean }
  | { kind: 'accept' }
  | { kind: 'drop' }
  | { kind: 'return' }
  | { kind: 'reject'; with: string }
  /** mark = (mark & ~mask) ^ value — every MARK form reduces to this */
  | { kind: 'mark'; value: number; mask: number }
  /** the target sets the mark to something we cannot compute (HMARK) */
  | { kind: 'mark-unknown' }
  | { kind: 'connmark'; op: 'set'; value: number; mask: number }
  | { kind: 'connmark'; op: 'save' | 'restore'; nfmask: number; ctmask: number }
  | { kind: 'nat'; nat: NatKind; to: string | null; addr?: string; port?: number; range: boolean }
  | { kind: 'notrack' }
  /** LOG, NFLOG, TCPMSS, CT --zone …: no effect on the verdict */
  | { kind: 'passive' }
  /** NFQUEUE / QUEUE: user space decides */
  | { kind: 'queue' }
  /** TPROXY, SYNPROXY, …: ends the hook with a verdict we cannot predict */
  | { kind: 'opaque-terminal'; why: string }
  | { kind: 'unknown'; why: string }
) & { name: string; args: string[] };

/** The rule at `table`/`chain`/1-based `index`, if any. */
export function findRule(rs: Ruleset, table: TableName, chain: string, index: number): Rule | undefined {
  return rs.tables.get(table)?.chains.get(chain)?.rules[index - 1];
}

/** Every rule of the ruleset, table by table, chain by chain. */
export function allRules(rs: Ruleset): Rule[] {
  const out: Rule[] = [];
  for (const t of rs.tables.values()) for (const c of t.chains.values()) out.push(...c.rules);
  return out;
}

// The common representation of a namespace's netfilter rules: hooks, base
// chains ordered by priority, chains, rules and their expressions. nftables
// tables are held as nft's JSON expressions (the parser in
// state/netfilter/nft-json.ts checks their shape); iptables' tables take the
// fixed priorities the kernel gives them, so both run in one order.
import type { Hook } from '../netfilter.js';

export type NftFamily = 'ip' | 'ip6' | 'inet' | 'bridge' | 'arp' | 'netdev';

/** nft's hook names for the five IP hooks. */
export const NFT_HOOKS: Record<string, Hook> = {
  prerouting: 'PREROUTING',
  input: 'INPUT',
  forward: 'FORWARD',
  output: 'OUTPUT',
  postrouting: 'POSTROUTING',
};

/** The kernel's order of the hooks a routed packet meets (NF_INET_*). */
export const HOOK_ORDER: readonly Hook[] = ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'];

/**
 * iptables' tables at their kernel priorities (NF_IP_PRI_*): raw -300, mangle -150, nat -100 at
 * PREROUTING/OUTPUT (DNAT) and 100 at INPUT/POSTROUTING (SNAT), filter 0, security 50.
 */
export function iptablesPriority(table: string, hook: Hook): number {
  switch (table) {
    case 'raw':
      return -300;
    case 'mangle':
      return -150;
    case 'nat':
      return hook === 'PREROUTING' || hook === 'OUTPUT' ? -100 : 100;
    case 'security':
      return 50;
    default:
      return 0;
  }
}

/** One expression or statement of a rule, as nft -j writes it: `{ "match": {...} }`, `{ "counter": {...} }`. */
export type NftExpr = Record<string, unknown>;

export interface NftRule {
  family: NftFamily;
  table: string;
  chain: string;
  handle?: number;
  expr: NftExpr[];
  comment?: string;
}

export interface NftBase {
  /** filter, nat, route */
  type: string;
  /** nft's hook name (prerouting…, ingress) */
  hook: string;
  prio: number;
  policy: 'accept' | 'drop';
}

export interface NftChain {
  family: NftFamily;
  table: string;
  name: string;
  handle?: number;
  base?: NftBase;
  rules: NftRule[];
}

/** A set or map element: its key (an nft JSON value) and, for a map, what it maps to. */
export interface NftElement {
  key: unknown;
  value?: unknown;
  comment?: string;
  packets?: number;
}

export interface NftSet {
  family: NftFamily;
  table: string;
  name: string;
  /** `verdict` for a verdict map, the data type for a data map; absent for a set */
  map?: string;
  flags: string[];
  elements: NftElement[];
}

export interface NftTable {
  family: NftFamily;
  name: string;
  chains: Map<string, NftChain>;
  sets: Map<string, NftSet>;
  /** made by iptables-nft (its rules hold `xt` compat expressions, or it is one of iptables' tables with iptables' chains) */
  iptablesNft: boolean;
}

export interface NftRuleset {
  tables: NftTable[];
  /** table-less counters, metainfo and such are not kept */
  version?: string;
}

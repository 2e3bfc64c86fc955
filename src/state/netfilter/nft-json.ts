// `nft -j list ruleset` → the netfilter model's tables, chains, rules and
// sets (model/netfilter/ruleset.ts). The expressions stay nft's JSON; only
// the shape around them is checked here. Whatever is not a JSON object with
// an `nftables` array is an NftParseError; items of kinds the model does not
// use (flowtables, ct helpers, named counters) are skipped.
import { NetwhyError } from '../../errors.js';
import type { NftChain, NftElement, NftFamily, NftRuleset, NftSet, NftTable } from '../../model/netfilter/ruleset.js';

export class NftParseError extends NetwhyError {
  constructor(message: string) {
    super(`nft -j list ruleset: ${message}`);
    this.name = 'NftParseError';
  }
}

type Json = Record<string, unknown>;
const obj = (v: unknown): Json | undefined => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : undefined);
const FAMILIES = new Set<NftFamily>(['ip', 'ip6', 'inet', 'bridge', 'arp', 'netdev']);
/** iptables' own tables and their built-in chains: what iptables-nft creates. */
const IPTABLES_TABLES = new Set(['filter', 'nat', 'mangle', 'raw', 'security']);
const IPTABLES_CHAINS = new Set(['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING']);

function element(e: unknown, isMap: boolean): NftElement {
  let key = isMap && Array.isArray(e) ? e[0] : e;
  const value = isMap && Array.isArray(e) ? e[1] : undefined;
  const wrapped = obj(obj(key)?.elem);
  let comment: string | undefined;
  let packets: number | undefined;
  if (wrapped) {
    if (typeof wrapped.comment === 'string') comment = wrapped.comment;
    const c = obj(wrapped.counter);
    if (c && typeof c.packets === 'number') packets = c.packets;
    key = wrapped.val;
  }
  return { key, ...(value !== undefined ? { value } : {}), ...(comment !== undefined ? { comment } : {}), ...(packets !== undefined ? { packets } : {}) };
}

/** Parse the JSON text or the document already parsed (a snapshot's `nftJson`). */
export function parseNftRuleset(input: unknown): NftRuleset {
  let doc = input;
  if (typeof input === 'string') {
    try {
      doc = JSON.parse(input);
    } catch (e) {
      throw new NftParseError(`invalid JSON: ${(e as Error).message}`);
    }
  }
  const items = obj(doc)?.nftables;
  if (!Array.isArray(items)) throw new NftParseError("no top-level 'nftables' array");
  const tables = new Map<string, NftTable>();
  const rs: NftRuleset = { tables: [] };
  const tableOf = (o: Json, what: string): NftTable => {
    const family = o.family as NftFamily;
    const name = typeof o.table === 'string' ? o.table : typeof o.name === 'string' && what === 'table' ? o.name : undefined;
    if (!FAMILIES.has(family) || name === undefined) throw new NftParseError(`${what} without a family and table: ${JSON.stringify(o).slice(0, 120)}`);
    let t = tables.get(`${family} ${name}`);
    if (!t) {
      t = { family, name, chains: new Map(), sets: new Map(), iptablesNft: false };
      tables.set(`${family} ${name}`, t);
      rs.tables.push(t);
    }
    return t;
  };
  const chainOf = (t: NftTable, name: string): NftChain => {
    let c = t.chains.get(name);
    if (!c) t.chains.set(name, (c = { family: t.family, table: t.name, name, rules: [] }));
    return c;
  };
  for (const it of items) {
    const o = obj(it);
    if (!o) throw new NftParseError(`an item that is not an object: ${JSON.stringify(it)?.slice(0, 80)}`);
    const kind = Object.keys(o)[0];
    const a = obj(o[kind]);
    if (!a) continue;
    switch (kind) {
      case 'metainfo':
        if (typeof a.version === 'string') rs.version = a.version;
        break;
      case 'table':
        tableOf(a, 'table');
        break;
      case 'chain': {
        const t = tableOf(a, 'chain');
        if (typeof a.name !== 'string') throw new NftParseError('a chain without a name');
        const c = chainOf(t, a.name);
        if (typeof a.handle === 'number') c.handle = a.handle;
        if (typeof a.hook === 'string') {
          const prio = typeof a.prio === 'number' ? a.prio : Number(a.prio);
          c.base = { type: String(a.type ?? 'filter'), hook: a.hook, prio: Number.isFinite(prio) ? prio : 0, policy: a.policy === 'drop' ? 'drop' : 'accept' };
        }
        break;
      }
      case 'rule': {
        const t = tableOf(a, 'rule');
        if (typeof a.chain !== 'string' || !Array.isArray(a.expr)) throw new NftParseError(`a rule without chain or expressions: ${JSON.stringify(a).slice(0, 120)}`);
        const expr = a.expr.map((e) => {
          const x = obj(e);
          if (!x) throw new NftParseError(`an expression that is not an object in chain ${a.chain}`);
          return x;
        });
        if (expr.some((x) => 'xt' in x)) t.iptablesNft = true;
        chainOf(t, a.chain).rules.push({
          family: t.family,
          table: t.name,
          chain: a.chain,
          ...(typeof a.handle === 'number' ? { handle: a.handle } : {}),
          expr,
          ...(typeof a.comment === 'string' ? { comment: a.comment } : {}),
        });
        break;
      }
      case 'set':
      case 'map': {
        const t = tableOf(a, kind);
        if (typeof a.name !== 'string') throw new NftParseError(`a ${kind} without a name`);
        const isMap = kind === 'map';
        const elems = Array.isArray(a.elem) ? a.elem : [];
        const s: NftSet = {
          family: t.family,
          table: t.name,
          name: a.name,
          ...(isMap ? { map: String(a.map ?? '') } : {}),
          flags: Array.isArray(a.flags) ? a.flags.map(String) : typeof a.flags === 'string' ? [a.flags] : [],
          elements: elems.map((e) => element(e, isMap)),
        };
        t.sets.set(a.name, s);
        break;
      }
      default:
        break; // flowtables, ct helpers, counters, quotas: not part of a packet's path here
    }
  }
  for (const t of rs.tables) {
    if ((t.family === 'ip' || t.family === 'ip6') && IPTABLES_TABLES.has(t.name) && [...t.chains.values()].some((c) => c.base && IPTABLES_CHAINS.has(c.name))) t.iptablesNft = true;
  }
  return rs;
}

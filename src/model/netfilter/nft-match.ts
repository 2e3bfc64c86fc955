// What each nft expression says about a packet: one small unit per kind
// (payload, meta, ct, fib, numgen, binary operations) that gives the
// packet's value, and one comparison of a value with nft's JSON literals
// (addresses, prefixes, ranges, concatenations, anonymous and named sets).
// What cannot be known from the packet is `unknown`, with the reason; a
// header the packet does not have is `absent` (the rule does not match, as
// nft's implicit protocol dependency would make it).
import { type IpAddr, cidrRange, parseIp, rangeContains } from '../ip.js';
import type { PacketContext } from '../netfilter.js';
import { PROTOCOLS } from '../protocols.js';
import { exprKind, valueText } from './nft-text.js';
import type { NftElement, NftSet } from './ruleset.js';
import { PORT_PROTOS, type Tri } from './walk.js';

export type Val =
  | { k: 'addr'; a: IpAddr }
  | { k: 'num'; n: number }
  | { k: 'str'; s: string }
  | { k: 'flags'; f: string[] }
  | { k: 'cat'; parts: Val[] }
  /** a fib type that is not `local` (unicast, broadcast… cannot be told from the snapshot) */
  | { k: 'notlocal' };

export type Got = { v: Val } | { absent: string } | { unknown: string };

/** The packet as the walker holds it while rules rewrite it. */
export interface WalkPacket {
  pkt: PacketContext;
  family: 4 | 6;
  /** null: the mark became unknowable on the way */
  mark: number | null;
}

type Json = Record<string, unknown>;
const obj = (v: unknown): Json | undefined => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : undefined);

const L4_NAMES: Record<string, number> = { ...PROTOCOLS, 'ipv6-icmp': 58, icmpv6: 58, udplite: 136, dccp: 33 };
const ICMP_TYPES: Record<string, number> = {
  'echo-reply': 0, 'destination-unreachable': 3, 'source-quench': 4, redirect: 5, 'echo-request': 8,
  'router-advertisement': 9, 'router-solicitation': 10, 'time-exceeded': 11, 'parameter-problem': 12,
  'packet-too-big': 2, 'nd-router-solicit': 133, 'nd-router-advert': 134, 'nd-neighbor-solicit': 135, 'nd-neighbor-advert': 136,
};

const num = (n: number): Got => ({ v: { k: 'num', n } });
const str = (s: string): Got => ({ v: { k: 'str', s } });

function payload(a: Json, w: WalkPacket): Got {
  const p = w.pkt;
  const proto = String(a.protocol ?? '');
  const field = String(a.field ?? '');
  if (!proto) return { unknown: `raw payload @${a.base},${a.offset},${a.len}` };
  if (proto === 'ip' || proto === 'ip6') {
    if ((proto === 'ip') !== (w.family === 4)) return { absent: `not an ${proto === 'ip' ? 'IPv4' : 'IPv6'} packet` };
    if (field === 'saddr' || field === 'daddr') {
      const a2 = parseIp(field === 'saddr' ? p.src : p.dst);
      return a2 ? { v: { k: 'addr', a: a2 } } : { unknown: `${proto} ${field} is not an address` };
    }
    if (field === 'protocol' || field === 'nexthdr') return num(p.proto);
    return { unknown: `${proto} ${field}` };
  }
  if (proto === 'th' || proto === 'tcp' || proto === 'udp' || proto === 'sctp' || proto === 'udplite' || proto === 'dccp') {
    if (proto !== 'th' && L4_NAMES[proto] !== p.proto) return { absent: `not a ${proto} packet` };
    if (!PORT_PROTOS.includes(p.proto)) return { absent: 'the packet has no ports' };
    if (field === 'sport' || field === 'dport') {
      const v = field === 'sport' ? p.sport : p.dport;
      return v === undefined ? { unknown: `${proto} ${field} of this packet is not known` } : num(v);
    }
    if (proto === 'tcp' && field === 'flags' && p.tcpFlags !== undefined) return num(p.tcpFlags);
    return { unknown: `${proto} ${field}` };
  }
  if (proto === 'icmp' || proto === 'icmpv6') {
    if (p.proto !== (proto === 'icmp' ? 1 : 58)) return { absent: `not an ${proto} packet` };
    const v = field === 'type' ? p.icmpType : field === 'code' ? p.icmpCode : undefined;
    return v === undefined ? { unknown: `${proto} ${field} of this packet is not known` } : num(v);
  }
  return { unknown: `payload ${proto} ${field}` };
}

function device(name: string | undefined, what: string): Got {
  return name === undefined ? { unknown: `${what} is not known at this hook` } : str(name);
}

function meta(a: Json, w: WalkPacket): Got {
  const p = w.pkt;
  switch (a.key) {
    case 'l4proto':
      return num(p.proto);
    case 'nfproto':
      return str(w.family === 4 ? 'ipv4' : 'ipv6');
    case 'protocol':
      return str(w.family === 4 ? 'ip' : 'ip6');
    case 'iifname':
    case 'iif':
      return device(p.iif, 'the input device');
    case 'oifname':
    case 'oif':
      return device(p.oif, 'the output device');
    case 'mark':
      return w.mark === null ? { unknown: 'the mark was made unknowable on the way' } : num(w.mark);
    default:
      return { unknown: `meta ${a.key}` };
  }
}

function ct(a: Json, w: WalkPacket): Got {
  const s = w.pkt.ctstate;
  if (a.dir) return { unknown: `ct ${a.dir} ${a.key}` };
  switch (a.key) {
    case 'state':
      return { v: { k: 'flags', f: s.filter((x) => !['DNAT', 'SNAT'].includes(x)).map((x) => x.toLowerCase()) } };
    case 'status': {
      const f = s.filter((x) => x === 'DNAT' || x === 'SNAT').map((x) => x.toLowerCase());
      if (s.includes('ESTABLISHED')) f.push('seen-reply');
      if (s.includes('RELATED')) f.push('expected');
      return { v: { k: 'flags', f } };
    }
    case 'mark':
      return w.pkt.ctmark === undefined ? { unknown: 'the conntrack mark is not known' } : num(w.pkt.ctmark);
    default:
      return { unknown: `ct ${a.key}` };
  }
}

function fib(a: Json, w: WalkPacket): Got {
  const flags = (Array.isArray(a.flags) ? a.flags : [a.flags]).filter(Boolean).map(String);
  if (a.result === 'type' && flags.length === 1 && flags[0] === 'daddr') {
    return w.pkt.localAddrs.includes(w.pkt.dst) ? str('local') : { v: { k: 'notlocal' } };
  }
  return { unknown: `fib ${flags.join(' . ')} ${a.result} (a route lookup the snapshot does not replay)` };
}

/** The packet's value of an expression on the left of a match, a vmap key or a mangle. */
export function valueOf(e: unknown, w: WalkPacket): Got {
  const k = exprKind(e);
  const a = obj((e as Json)?.[k ?? '']) ?? {};
  switch (k) {
    case 'payload':
      return payload(a, w);
    case 'meta':
      return meta(a, w);
    case 'ct':
      return ct(a, w);
    case 'fib':
      return fib(a, w);
    case 'numgen':
      return a.mod === 1 ? num(Number(a.offset ?? 0)) : { unknown: `numgen ${a.mode} mod ${a.mod}: a random choice` };
    case 'concat': {
      const parts: Val[] = [];
      for (const x of ((e as Json).concat as unknown[]) ?? []) {
        const g = valueOf(x, w);
        if (!('v' in g)) return g;
        parts.push(g.v);
      }
      return { v: { k: 'cat', parts } };
    }
    case '&':
    case '|':
    case '^': {
      const ops = (e as Json)[k] as unknown[];
      if (!Array.isArray(ops) || ops.length !== 2) return { unknown: `binary ${k}` };
      const l = valueOf(ops[0], w);
      if (!('v' in l)) return l;
      const r = typeof ops[1] === 'number' ? ops[1] : undefined;
      if (l.v.k !== 'num' || r === undefined) return { unknown: valueText(e) };
      return num((k === '&' ? l.v.n & r : k === '|' ? l.v.n | r : l.v.n ^ r) >>> 0);
    }
    default:
      return { unknown: `expression ${k ?? JSON.stringify(e)?.slice(0, 60)}` };
  }
}

function litNumber(lit: unknown): number | undefined {
  if (typeof lit === 'number') return lit;
  if (typeof lit !== 'string') return undefined;
  if (/^0x[0-9a-f]+$/i.test(lit)) return parseInt(lit, 16);
  if (/^\d+$/.test(lit)) return Number(lit);
  return L4_NAMES[lit] ?? ICMP_TYPES[lit];
}

const and = (a: Tri, b: Tri): Tri => (a === 'no' || b === 'no' ? 'no' : a === 'unknown' || b === 'unknown' ? 'unknown' : 'yes');
const or = (a: Tri, b: Tri): Tri => (a === 'yes' || b === 'yes' ? 'yes' : a === 'unknown' || b === 'unknown' ? 'unknown' : 'no');

/** Does the value equal (or fall in) the literal? `sets` resolves `@name`. */
export function matches(v: Val, lit: unknown, sets: (name: string) => NftSet | undefined): Tri {
  if (typeof lit === 'string' && lit.startsWith('@')) {
    const s = sets(lit.slice(1));
    if (!s) return 'unknown';
    const f = findElement(v, s.elements, sets);
    return f.element ? 'yes' : f.unknown ? 'unknown' : 'no';
  }
  const o = obj(lit);
  const k = o && exprKind(o);
  if (k === 'elem') return matches(v, obj(o!.elem)?.val, sets);
  if (k === 'set') {
    const items = Array.isArray(o!.set) ? (o!.set as unknown[]) : [o!.set];
    return items.reduce<Tri>((acc, it) => or(acc, matches(v, Array.isArray(it) ? it[0] : it, sets)), 'no');
  }
  if (Array.isArray(lit)) {
    // a list on the right of a flags match (`ct state established,related`): any of them
    return lit.reduce<Tri>((acc, it) => or(acc, matches(v, it, sets)), 'no');
  }
  switch (v.k) {
    case 'cat': {
      const parts = k === 'concat' ? (o!.concat as unknown[]) : undefined;
      if (!parts || parts.length !== v.parts.length) return 'no';
      return v.parts.reduce<Tri>((acc, p, i) => and(acc, matches(p, parts[i], sets)), 'yes');
    }
    case 'addr': {
      if (typeof lit === 'string') {
        const a = parseIp(lit);
        return a && a.family === v.a.family && a.value === v.a.value ? 'yes' : 'no';
      }
      if (k === 'prefix') {
        const p = obj(o!.prefix)!;
        const a = typeof p.addr === 'string' ? parseIp(p.addr) : null;
        if (!a || typeof p.len !== 'number') return 'unknown';
        return a.family === v.a.family && rangeContains(cidrRange(a.family, a.value, p.len), v.a) ? 'yes' : 'no';
      }
      if (k === 'range' && Array.isArray(o!.range)) {
        const [lo, hi] = (o!.range as unknown[]).map((x) => (typeof x === 'string' ? parseIp(x) : null));
        if (!lo || !hi) return 'unknown';
        return lo.family === v.a.family && v.a.value >= lo.value && v.a.value <= hi.value ? 'yes' : 'no';
      }
      return 'unknown';
    }
    case 'num': {
      if (k === 'range' && Array.isArray(o!.range)) {
        const [lo, hi] = (o!.range as unknown[]).map(litNumber);
        return lo === undefined || hi === undefined ? 'unknown' : v.n >= lo && v.n <= hi ? 'yes' : 'no';
      }
      const n = litNumber(lit);
      return n === undefined ? 'unknown' : (n >>> 0) === (v.n >>> 0) ? 'yes' : 'no';
    }
    case 'str': {
      if (typeof lit !== 'string') return 'unknown';
      if (lit.endsWith('*') && !lit.endsWith('\\*')) return v.s.startsWith(lit.slice(0, -1)) ? 'yes' : 'no';
      return v.s === lit.replace(/\\\*$/, '*') ? 'yes' : 'no';
    }
    case 'flags':
      return typeof lit === 'string' ? (v.f.includes(lit) ? 'yes' : 'no') : 'unknown';
    case 'notlocal':
      return lit === 'local' ? 'no' : 'unknown';
  }
}

/** The element of a set or map the value falls in; `unknown` when an element could not be compared. */
export function findElement(v: Val, elements: NftElement[], sets: (name: string) => NftSet | undefined): { element?: NftElement; unknown?: boolean } {
  let unknown = false;
  for (const e of elements) {
    const t = matches(v, e.key, sets);
    if (t === 'yes') return { element: e };
    if (t === 'unknown') unknown = true;
  }
  return { unknown };
}

/** A comparison by its operator. */
export function compare(op: string, v: Val, lit: unknown, sets: (name: string) => NftSet | undefined): Tri {
  if (op === '==' || op === 'in') return matches(v, lit, sets);
  if (op === '!=') {
    const t = matches(v, lit, sets);
    return t === 'unknown' ? t : t === 'yes' ? 'no' : 'yes';
  }
  const n = litNumber(lit);
  if (v.k !== 'num' || n === undefined) return 'unknown';
  const r = op === '<' ? v.n < n : op === '>' ? v.n > n : op === '<=' ? v.n <= n : op === '>=' ? v.n >= n : undefined;
  return r === undefined ? 'unknown' : r ? 'yes' : 'no';
}

// A namespace's ipsets and set membership, the way the kernel's set match sees it.
//
// A set has one dimension per comma-separated part of its type (hash:ip,port → ip, port). The
// iptables set match (`-m set --match-set NAME src,dst`) picks, per dimension, the packet's source
// or destination (address, port or interface). The `ipset save` parser is
// state/netfilter/ipset-save.ts. Pure code: no IO.
import { type AddrRange, type Family, familyBits, parseIp } from '../ip.js';
import type { Tri } from './walk.js';

/** Dimension kinds of set types. `mac` is parsed but cannot be checked (packets carry no MAC here). */
export type DimKind = 'ip' | 'net' | 'port' | 'iface' | 'mark' | 'mac' | 'set';

export type Elem =
  | { kind: 'addr'; range: AddrRange }
  /** proto null: bitmap:port, which matches TCP, UDP, SCTP and UDPLITE ports alike */
  | { kind: 'port'; proto: number | null; lo: number; hi: number }
  | { kind: 'icmp'; proto: 1 | 58; type: number; code: number | null }
  | { kind: 'iface'; name: string; physdev: boolean }
  | { kind: 'mark'; value: number }
  | { kind: 'mac'; text: string }
  | { kind: 'set'; name: string };

export interface IpsetMember {
  /** the element exactly as `ipset save` prints it, e.g. `10.96.0.10,udp:53` */
  text: string;
  elems: Elem[];
  /** `nomatch` entries of hash:net types exclude a sub-range */
  nomatch: boolean;
  timeout?: number;
  comment?: string;
  packets?: number;
  bytes?: number;
  /** line of the `add` command */
  line: number;
}

export interface IpSet {
  name: string;
  /** as written, e.g. `hash:ip,port` */
  type: string;
  dims: DimKind[];
  family: 'inet' | 'inet6';
  /** create options as written: `{ hashsize: '1024', timeout: '0', comment: true }` */
  options: Record<string, string | true>;
  members: IpsetMember[];
  /** reasons membership cannot be decided for this set (unknown type, MAC dimension) */
  unsupported?: string;
  line: number;
}

export type SetDirection = 'src' | 'dst';

/** The packet fields a set lookup may read. */
export interface SetPacket {
  proto: number;
  src: string;
  dst: string;
  sport?: number;
  dport?: number;
  icmpType?: number;
  icmpCode?: number;
  iif?: string;
  oif?: string;
  mark?: number;
}

export type SetTestResult =
  | { outcome: 'member'; member: IpsetMember; /** the list:set member set that held it */ via?: string }
  | { outcome: 'not-member'; /** a `nomatch` entry that excluded the packet */ excludedBy?: IpsetMember; note?: string }
  | { outcome: 'unknown'; reason: string };


/**
 * Is the packet in the set, looked up with these `--match-set` flags? Each dimension takes the
 * packet's source or destination as its flag says. Net entries match by prefix (most specific
 * entry wins; a `nomatch` entry excludes). Returns `unknown` when the packet lacks a value the
 * set needs, or the set type cannot be checked.
 */
export function testSetMembership(
  set: IpSet,
  flags: SetDirection[],
  pkt: SetPacket,
  sets?: Map<string, IpSet>,
  depth = 0,
): SetTestResult {
  if (set.dims[0] === 'set') return testListSet(set, flags, pkt, sets, depth);
  if (set.unsupported) return { outcome: 'unknown', reason: set.unsupported };
  // The kernel gives up (no match) when the rule names fewer directions than the set has dimensions.
  if (flags.length < set.dims.length) {
    return { outcome: 'not-member', note: `--match-set names ${flags.length} direction(s), set ${set.name} has ${set.dims.length} dimensions` };
  }
  const markmask = typeof set.options.markmask === 'string' ? Number(set.options.markmask) : 0xffffffff;
  const values = set.dims.map((dim, i) => {
    const v = packetValue(dim, flags[i], pkt);
    return 'mark' in v ? { mark: (v.mark & markmask) >>> 0 } : v;
  });
  const famWant: Family = set.family === 'inet' ? 4 : 6;
  for (const v of values) {
    if ('addr' in v && v.addr.family !== famWant) return { outcome: 'not-member', note: `set ${set.name} is ${set.family}` };
  }
  let best: IpsetMember | undefined;
  let bestSpecificity = -1;
  let undecided: string | undefined;
  for (const m of set.members) {
    let verdict: Tri = 'yes';
    let why: string | undefined;
    for (let d = 0; d < m.elems.length && verdict !== 'no'; d++) {
      const r = elemMatches(m.elems[d], values[d], pkt.proto);
      if (r === 'no') verdict = 'no';
      else if (typeof r === 'object') {
        verdict = 'unknown';
        why ??= r.unknown;
      }
    }
    if (verdict === 'no') continue;
    if (verdict === 'unknown') {
      undecided ??= why;
      continue;
    }
    const spec = specificity(m);
    if (spec > bestSpecificity) {
      best = m;
      bestSpecificity = spec;
    }
  }
  if (undecided !== undefined) {
    // A member we could not check might have matched, or (nomatch) might have excluded the packet.
    const noExclusions = !set.members.some((m) => m.nomatch);
    if (!(best && !best.nomatch && noExclusions)) return { outcome: 'unknown', reason: undecided };
  }
  if (!best) return { outcome: 'not-member' };
  if (best.nomatch) return { outcome: 'not-member', excludedBy: best };
  return { outcome: 'member', member: best };
}


/** Convenience: the matching member's text, or null when not a member *or undecidable*. */
export function findSetMember(set: IpSet, flags: SetDirection[], pkt: SetPacket, sets?: Map<string, IpSet>): string | null {
  const r = testSetMembership(set, flags, pkt, sets);
  return r.outcome === 'member' ? r.member.text : null;
}

function testListSet(set: IpSet, flags: SetDirection[], pkt: SetPacket, sets: Map<string, IpSet> | undefined, depth: number): SetTestResult {
  if (!sets) return { outcome: 'unknown', reason: `list:set ${set.name} needs the other sets` };
  if (depth > 8) return { outcome: 'unknown', reason: `list:set ${set.name} nests too deeply` };
  let unknown: string | undefined;
  for (const m of set.members) {
    const e = m.elems[0];
    if (e?.kind !== 'set') continue;
    const inner = sets.get(e.name);
    if (!inner) {
      unknown ??= `set ${e.name} (member of ${set.name}) is not in the snapshot`;
      continue;
    }
    const r = testSetMembership(inner, flags, pkt, sets, depth + 1);
    if (r.outcome === 'member') return { outcome: 'member', member: r.member, via: r.via ?? inner.name };
    if (r.outcome === 'unknown') unknown ??= r.reason;
  }
  return unknown ? { outcome: 'unknown', reason: unknown } : { outcome: 'not-member' };
}

type DimValue =
  | { addr: { family: Family; value: bigint } }
  | { port: number }
  | { icmp: { type: number | undefined; code: number | undefined } }
  | { iface: string }
  | { mark: number }
  | { unknown: string };

const PORT_PROTOS = new Set([6, 17, 132, 136]);

function packetValue(dim: DimKind, dir: SetDirection, pkt: SetPacket): DimValue {
  switch (dim) {
    case 'ip':
    case 'net': {
      const text = dir === 'src' ? pkt.src : pkt.dst;
      const a = parseIp(text);
      if (!a) return { unknown: `packet ${dir} address ${JSON.stringify(text)} is not an address` };
      return { addr: a };
    }
    case 'port': {
      if (pkt.proto === 1 || pkt.proto === 58) return { icmp: { type: pkt.icmpType, code: pkt.icmpCode } };
      // Protocols without ports are looked up with port 0 (and their protocol number).
      if (!PORT_PROTOS.has(pkt.proto)) return { port: 0 };
      const p = dir === 'src' ? pkt.sport : pkt.dport;
      if (p === undefined) return { unknown: `the packet's ${dir === 'src' ? 'source' : 'destination'} port is not known` };
      return { port: p };
    }
    case 'iface': {
      const n = dir === 'src' ? pkt.iif : pkt.oif;
      if (n === undefined) return { unknown: `the packet's ${dir === 'src' ? 'input' : 'output'} interface is not known` };
      return { iface: n };
    }
    case 'mark':
      if (pkt.mark === undefined) return { unknown: 'the packet mark is not known' };
      return { mark: pkt.mark };
    default:
      return { unknown: `cannot check a ${dim} dimension` };
  }
}

function elemMatches(e: Elem, v: DimValue, proto: number): 'yes' | 'no' | { unknown: string } {
  const tri = (b: boolean) => (b ? 'yes' : 'no');
  switch (e.kind) {
    case 'addr':
      if (!('addr' in v)) return 'unknown' in v ? v : 'no';
      return tri(v.addr.family === e.range.family && v.addr.value >= e.range.lo && v.addr.value <= e.range.hi);
    case 'port':
      if (e.proto === null ? !PORT_PROTOS.has(proto) : e.proto !== proto) return 'no';
      if (!('port' in v)) return 'unknown' in v ? v : 'no';
      return tri(v.port >= e.lo && v.port <= e.hi);
    case 'icmp':
      if (e.proto !== proto || !('icmp' in v)) return 'no';
      if (v.icmp.type === undefined) return { unknown: "the packet's ICMP type is not known" };
      if (v.icmp.type !== e.type) return 'no';
      if (e.code === null) return 'yes';
      if (v.icmp.code === undefined) return { unknown: "the packet's ICMP code is not known" };
      return tri(v.icmp.code === e.code);
    case 'iface':
      if (!('iface' in v)) return 'unknown' in v ? v : 'no';
      // physdev: entries name a bridge port, which the packet context does not carry.
      if (e.physdev) return { unknown: `member interface physdev:${e.name} is a bridge port, which is not known` };
      return tri(e.name === v.iface);
    case 'mark':
      if (!('mark' in v)) return 'unknown' in v ? v : 'no';
      return tri(e.value === v.mark);
    default:
      return { unknown: `cannot check a ${e.kind} element` };
  }
}

function specificity(m: IpsetMember): number {
  let s = 0;
  for (const e of m.elems) {
    if (e.kind === 'addr') {
      const size = e.range.hi - e.range.lo + 1n;
      s += familyBits(e.range.family) - (size.toString(2).length - 1);
    }
  }
  return s;
}

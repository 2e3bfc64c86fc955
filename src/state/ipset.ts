// `ipset save` parser and set membership, the way the kernel's set match sees it.
//
//   create kube-router-svip hash:ip family inet hashsize 1024 maxelem 65536 timeout 0 bucketsize 12 initval 0x1f794545
//   add kube-router-svip 10.96.0.1 timeout 0
//   create kube-router-svip-prt hash:ip,port family inet hashsize 1024 maxelem 65536 timeout 0
//   add kube-router-svip-prt 10.96.0.10,udp:53 timeout 0
//
// A set has one dimension per comma-separated part of its type (hash:ip,port → ip, port). The
// iptables set match (`-m set --match-set NAME src,dst`) picks, per dimension, the packet's source
// or destination (address, port or interface). Pure code: no IO.
import { NetwhyError } from '../errors.js';
import { type AddrRange, type Family, cidrRange, familyBits, parseAddrRange, parseIp } from '../model/ip.js';

// ---------------------------------------------------------------------------------------------
// Errors

export class IpsetParseError extends NetwhyError {
  constructor(
    readonly reason: string,
    readonly line: number,
    readonly text: string,
  ) {
    super(`ipset save line ${line}: ${reason}: ${JSON.stringify(text)}`);
    this.name = 'IpsetParseError';
  }
}

// ---------------------------------------------------------------------------------------------
// Shared helpers (also used by the iptables parser)

/** Split one line into words the way iptables-restore / ipset restore do: whitespace separates,
 * double quotes group, a backslash inside quotes escapes the next character. */
export function splitArgs(line: string): { ok: true; words: string[] } | { ok: false; reason: string } {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '\\' && i + 1 < line.length) {
        cur += line[++i];
      } else if (c === '"') {
        quoted = false;
      } else {
        cur += c;
      }
    } else if (c === '"') {
      quoted = true;
      inWord = true;
    } else if (c === ' ' || c === '\t') {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (quoted) return { ok: false, reason: 'unterminated quote' };
  if (inWord) words.push(cur);
  return { ok: true, words };
}

const PROTO_NUMBERS: Record<string, number> = {
  all: 0, ip: 0, icmp: 1, igmp: 2, ipencap: 4, ipip: 4, tcp: 6, udp: 17, gre: 47, esp: 50, ah: 51,
  icmpv6: 58, 'ipv6-icmp': 58, icmp6: 58, sctp: 132, udplite: 136, dccp: 33,
};

/** Protocol number for a name or a decimal number as iptables / ipset print them, else null. */
export function protoNumber(text: string): number | null {
  const t = text.toLowerCase();
  if (t in PROTO_NUMBERS) return PROTO_NUMBERS[t];
  if (/^\d{1,3}$/.test(t) && Number(t) <= 255) return Number(t);
  return null;
}

/** Parse a number the way the netfilter tools do: decimal or 0x-hex, unsigned 32 bit. */
export function parseU32(text: string): number | null {
  if (!/^(0x[0-9a-fA-F]{1,8}|\d{1,10})$/.test(text)) return null;
  const n = Number(text);
  return n <= 0xffffffff ? n : null;
}

// ---------------------------------------------------------------------------------------------
// Model

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

const TYPE_DIMS: Record<string, DimKind[]> = {
  'hash:ip': ['ip'],
  'hash:net': ['net'],
  'hash:mac': ['mac'],
  'hash:ip,port': ['ip', 'port'],
  'hash:ip,port,ip': ['ip', 'port', 'ip'],
  'hash:ip,port,net': ['ip', 'port', 'net'],
  'hash:ip,mark': ['ip', 'mark'],
  'hash:ip,mac': ['ip', 'mac'],
  'hash:net,port': ['net', 'port'],
  'hash:net,net': ['net', 'net'],
  'hash:net,port,net': ['net', 'port', 'net'],
  'hash:net,iface': ['net', 'iface'],
  'bitmap:ip': ['ip'],
  'bitmap:ip,mac': ['ip', 'mac'],
  'bitmap:port': ['port'],
  'list:set': ['set'],
};

const CREATE_VALUE_OPTS = new Set([
  'family', 'hashsize', 'maxelem', 'timeout', 'netmask', 'bitmask', 'range', 'markmask', 'size',
  'bucketsize', 'initval',
]);
const CREATE_FLAG_OPTS = new Set(['counters', 'comment', 'skbinfo', 'forceadd', 'nomatch']);
const ADD_VALUE_OPTS = new Set(['timeout', 'packets', 'bytes', 'comment', 'skbmark', 'skbprio', 'skbqueue', 'before', 'after']);

// ---------------------------------------------------------------------------------------------
// Parser

export function parseIpsetSave(text: string): Map<string, IpSet> {
  const sets = new Map<string, IpSet>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const raw = lines[i].replace(/\r$/, '');
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const fail = (reason: string): never => {
      throw new IpsetParseError(reason, lineNo, raw);
    };
    try {
      const split = splitArgs(trimmed);
      if (!split.ok) fail(split.reason);
      // `-exist` may be written anywhere on a line; it only changes error handling of `ipset restore`.
      const words = (split as { words: string[] }).words.filter((w) => w !== '-exist');
      if (words.length === 0) continue;
      const [cmd, ...args] = words;
      switch (cmd) {
        case 'create':
        case '-N':
        case 'n': {
          const set = parseCreate(args, lineNo, fail);
          if (sets.has(set.name)) fail(`set ${set.name} is created twice`);
          sets.set(set.name, set);
          break;
        }
        case 'add':
        case '-A':
        case 'a':
        case 'del':
        case '-D':
        case 'd': {
          const [name, memberText, ...opts] = args;
          if (name === undefined) fail('missing set name');
          if (memberText === undefined) fail('missing member');
          const set = sets.get(name);
          if (!set) fail(`set ${name} was not created before this line`);
          const member = parseMember(set!, memberText, opts, lineNo, fail);
          if (cmd === 'add' || cmd === '-A' || cmd === 'a') {
            set!.members.push(member);
          } else {
            const key = elemsKey(member.elems);
            set!.members = set!.members.filter((m) => elemsKey(m.elems) !== key);
          }
          break;
        }
        case 'flush':
        case '-F':
        case 'destroy':
        case '-X':
        case 'x': {
          if (args.length > 1) fail('too many arguments');
          const names = args.length === 1 ? [args[0]] : [...sets.keys()];
          for (const n of names) {
            const set = sets.get(n);
            if (!set) fail(`set ${n} does not exist`);
            if (cmd === 'flush' || cmd === '-F') set!.members = [];
            else sets.delete(n);
          }
          break;
        }
        case 'swap':
        case '-W':
        case 'w':
        case 'rename':
        case '-E':
        case 'e': {
          if (args.length !== 2) fail(`${cmd} needs two set names`);
          const [a, b] = args;
          const sa = sets.get(a);
          if (!sa) fail(`set ${a} does not exist`);
          if (cmd === 'swap' || cmd === '-W' || cmd === 'w') {
            const sb = sets.get(b);
            if (!sb) fail(`set ${b} does not exist`);
            sets.set(a, { ...sb!, name: a });
            sets.set(b, { ...sa!, name: b });
          } else {
            if (sets.has(b)) fail(`set ${b} already exists`);
            sets.delete(a);
            sets.set(b, { ...sa!, name: b });
          }
          break;
        }
        case 'COMMIT':
          break;
        default:
          fail(`unknown command ${JSON.stringify(cmd)}`);
      }
    } catch (e) {
      if (e instanceof IpsetParseError) throw e;
      // A bug in this parser must still name the line it choked on.
      throw new IpsetParseError(`internal parser error (${(e as Error).message})`, lineNo, raw);
    }
  }
  return sets;
}

type Fail = (reason: string) => never;

function parseCreate(args: string[], lineNo: number, fail: Fail): IpSet {
  const [name, type, ...opts] = args;
  if (name === undefined) fail('missing set name');
  if (type === undefined) fail('missing set type');
  if (name.length > 31) fail('set name longer than 31 characters');
  const options: Record<string, string | true> = {};
  for (let i = 0; i < opts.length; i++) {
    const o = opts[i];
    if (CREATE_VALUE_OPTS.has(o)) {
      if (i + 1 >= opts.length) fail(`option ${o} needs a value`);
      options[o] = opts[++i];
    } else if (CREATE_FLAG_OPTS.has(o)) {
      options[o] = true;
    } else {
      // A newer ipset may print options this parser does not know; they do not change membership.
      options[o] = true;
    }
  }
  const fam = options.family ?? 'inet';
  if (fam !== 'inet' && fam !== 'inet6') fail(`unknown family ${String(fam)}`);
  for (const k of ['timeout', 'hashsize', 'maxelem', 'netmask', 'markmask', 'size', 'bucketsize', 'initval']) {
    const v = options[k];
    if (v !== undefined && (v === true || parseU32(v) === null)) fail(`option ${k} needs a number`);
  }
  const dims = TYPE_DIMS[type];
  const set: IpSet = {
    name,
    type,
    dims: dims ?? [],
    family: fam as 'inet' | 'inet6',
    options,
    members: [],
    line: lineNo,
  };
  if (!dims) {
    if (!/^(hash|bitmap|list):[a-z,]+$/.test(type)) fail(`malformed set type ${type}`);
    set.unsupported = `set type ${type} is not supported`;
  } else if (dims.includes('mac')) {
    set.unsupported = `set type ${type} matches MAC addresses, which the packet context does not carry`;
  }
  if (options.netmask !== undefined && set.dims[0] === 'ip') {
    const nm = Number(options.netmask);
    if (nm > (set.family === 'inet' ? 32 : 128)) fail('netmask too long');
  }
  return set;
}

function parseMember(set: IpSet, memberText: string, opts: string[], lineNo: number, fail: Fail): IpsetMember {
  const member: IpsetMember = { text: memberText, elems: [], nomatch: false, line: lineNo };
  for (let i = 0; i < opts.length; i++) {
    const o = opts[i];
    if (o === 'nomatch') {
      member.nomatch = true;
    } else if (ADD_VALUE_OPTS.has(o)) {
      if (i + 1 >= opts.length) fail(`option ${o} needs a value`);
      const v = opts[++i];
      if (o === 'comment') member.comment = v;
      else if (o === 'timeout' || o === 'packets' || o === 'bytes') {
        if (!/^\d+$/.test(v)) fail(`option ${o} needs a number`);
        member[o] = Number(v);
      }
    } else {
      fail(`unknown member option ${JSON.stringify(o)}`);
    }
  }
  if (set.unsupported && !TYPE_DIMS[set.type]) return member; // unknown type: keep the text only
  const parts = set.dims[0] === 'set' ? [memberText] : memberText.split(',');
  if (parts.length !== set.dims.length) {
    fail(`member ${memberText} does not have the ${set.dims.length} part(s) of ${set.type}`);
  }
  const famBits: Family = set.family === 'inet' ? 4 : 6;
  set.dims.forEach((dim, d) => {
    const p = parts[d];
    switch (dim) {
      case 'ip':
      case 'net': {
        const r = parseAddrRange(p);
        if (!r) fail(`bad address ${p}`);
        if (r!.family !== famBits) fail(`address ${p} is not of the set's family ${set.family}`);
        let range = r!;
        const nm = set.options.netmask;
        if (dim === 'ip' && typeof nm === 'string' && range.prefix !== undefined) {
          const n = Math.min(Number(nm), range.prefix);
          range = cidrRange(range.family, range.lo, n);
        }
        member.elems.push({ kind: 'addr', range });
        break;
      }
      case 'port':
        member.elems.push(parsePortElem(p, set.type === 'bitmap:port', fail));
        break;
      case 'iface': {
        const physdev = p.startsWith('physdev:');
        const name = physdev ? p.slice('physdev:'.length) : p;
        if (name === '' || name.length > 15) fail(`bad interface name ${p}`);
        member.elems.push({ kind: 'iface', name, physdev });
        break;
      }
      case 'mark': {
        const v = parseU32(p);
        if (v === null) fail(`bad mark ${p}`);
        member.elems.push({ kind: 'mark', value: v! });
        break;
      }
      case 'mac':
        if (!/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(p)) fail(`bad MAC address ${p}`);
        member.elems.push({ kind: 'mac', text: p.toLowerCase() });
        break;
      case 'set':
        member.elems.push({ kind: 'set', name: p });
        break;
    }
  });
  return member;
}

const ICMP_NAMES: Record<string, [number, number | null]> = {
  'echo-reply': [0, 0], pong: [0, 0], 'destination-unreachable': [3, null], 'network-unreachable': [3, 0],
  'host-unreachable': [3, 1], 'protocol-unreachable': [3, 2], 'port-unreachable': [3, 3],
  'fragmentation-needed': [3, 4], 'source-route-failed': [3, 5], 'network-unknown': [3, 6],
  'host-unknown': [3, 7], 'network-prohibited': [3, 9], 'host-prohibited': [3, 10],
  'communication-prohibited': [3, 13], 'source-quench': [4, 0], redirect: [5, null],
  'echo-request': [8, 0], ping: [8, 0], 'router-advertisement': [9, 0], 'router-solicitation': [10, 0],
  'time-exceeded': [11, null], 'ttl-exceeded': [11, null], 'ttl-zero-during-transit': [11, 0],
  'ttl-zero-during-reassembly': [11, 1], 'parameter-problem': [12, null], 'timestamp-request': [13, 0],
  'timestamp-reply': [14, 0], 'address-mask-request': [17, 0], 'address-mask-reply': [18, 0],
};

/** `8`, `3/4`, `echo-request`: ICMP type and optional code (null = any code). */
export function parseIcmpType(text: string): { type: number; code: number | null } | null {
  const named = ICMP_NAMES[text.toLowerCase()];
  if (named) return { type: named[0], code: named[1] };
  const m = /^(\d{1,3})(?:\/(\d{1,3}))?$/.exec(text);
  if (!m || Number(m[1]) > 255 || (m[2] !== undefined && Number(m[2]) > 255)) return null;
  return { type: Number(m[1]), code: m[2] === undefined ? null : Number(m[2]) };
}

const ICMPV6_NAMES: Record<string, [number, number | null]> = {
  'destination-unreachable': [1, null], 'no-route': [1, 0], 'communication-prohibited': [1, 1],
  'beyond-scope': [1, 2], 'address-unreachable': [1, 3], 'port-unreachable': [1, 4],
  'failed-policy': [1, 5], 'reject-route': [1, 6], 'packet-too-big': [2, 0], 'time-exceeded': [3, null],
  'ttl-exceeded': [3, null], 'ttl-zero-during-transit': [3, 0], 'ttl-zero-during-reassembly': [3, 1],
  'parameter-problem': [4, null], 'bad-header': [4, 0], 'unknown-header-type': [4, 1], 'unknown-option': [4, 2],
  'echo-request': [128, 0], ping: [128, 0], 'echo-reply': [129, 0], pong: [129, 0],
  'router-solicitation': [133, 0], 'router-advertisement': [134, 0], 'neighbour-solicitation': [135, 0],
  'neighbor-solicitation': [135, 0], 'neighbour-advertisement': [136, 0], 'neighbor-advertisement': [136, 0],
  redirect: [137, 0],
};

/** `128`, `1/4`, `echo-request`: an ICMPv6 type (ip6tables --icmpv6-type names) and optional code. */
export function parseIcmpv6Type(text: string): { type: number; code: number | null } | null {
  const named = ICMPV6_NAMES[text.toLowerCase()];
  if (named) return { type: named[0], code: named[1] };
  const m = /^(\d{1,3})(?:\/(\d{1,3}))?$/.exec(text);
  if (!m || Number(m[1]) > 255 || (m[2] !== undefined && Number(m[2]) > 255)) return null;
  return { type: Number(m[1]), code: m[2] === undefined ? null : Number(m[2]) };
}

function parsePortElem(text: string, bitmap: boolean, fail: Fail): Elem {
  let proto: number | null = bitmap ? null : 6; // hash types default to tcp
  let rest = text;
  const colon = text.indexOf(':');
  if (colon >= 0) {
    const p = protoNumber(text.slice(0, colon));
    if (p === null) fail(`unknown protocol in ${text}`);
    proto = p;
    rest = text.slice(colon + 1);
    if (p === 1 || p === 58) {
      const t = parseIcmpType(rest);
      if (!t) fail(`bad ICMP type in ${text}`);
      return { kind: 'icmp', proto: p as 1 | 58, type: t!.type, code: t!.code };
    }
  }
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(rest);
  if (!m) fail(`bad port ${text}`);
  const lo = Number(m![1]);
  const hi = m![2] === undefined ? lo : Number(m![2]);
  if (lo > 65535 || hi > 65535 || lo > hi) fail(`bad port ${text}`);
  return { kind: 'port', proto, lo, hi };
}

function elemsKey(elems: Elem[]): string {
  return JSON.stringify(elems, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
}

// ---------------------------------------------------------------------------------------------
// Membership

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

/** Parse `src,dst` / `dst,dst,src` flags of `--match-set`. */
export function parseSetFlags(text: string): SetDirection[] | null {
  const parts = text.split(',');
  if (parts.length === 0 || parts.length > 6 || parts.some((p) => p !== 'src' && p !== 'dst')) return null;
  return parts as SetDirection[];
}

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

type Tri = 'yes' | 'no' | 'unknown';

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

// The match modules of iptables-save rules (`-m tcp --dport 80`, `-m set --match-set …`): which
// options each module has, and each module's options as model Conditions. Modules whose tests
// need what a packet context does not carry (rate limits, owners, TTL) become `opaque`
// conditions; an unknown module or option an `unknown` one. Pure code: no IO.
import { familyBits, parseAddrRange, parseIp } from '../../model/ip.js';
import { TCP_FLAGS } from '../../model/netfilter.js';
import type { AddrMatch, Condition, PhysdevOp } from '../../model/netfilter/xt-ruleset.js';
import { PORT_PROTOS } from '../../model/netfilter/walk.js';
import { parseIcmpType, parseIcmpv6Type, parseMarkMask, parseSetFlags, protoNumber } from './syntax.js';

/** arity of each option, per match module; aliases map to the canonical name in OPT_ALIASES */
export const MODULE_OPTS: Record<string, Record<string, number>> = {
  tcp: { '--sport': 1, '--dport': 1, '--tcp-flags': 2, '--syn': 0, '--tcp-option': 1 },
  udp: { '--sport': 1, '--dport': 1 },
  sctp: { '--sport': 1, '--dport': 1, '--chunk-types': 2 },
  icmp: { '--icmp-type': 1 },
  icmp6: { '--icmpv6-type': 1 },
  multiport: { '--dports': 1, '--sports': 1, '--ports': 1 },
  set: {
    '--match-set': 2, '--return-nomatch': 0, '--update-counters': 0, '--update-subcounters': 0,
    '--packets-eq': 1, '--packets-lt': 1, '--packets-gt': 1, '--bytes-eq': 1, '--bytes-lt': 1, '--bytes-gt': 1,
  },
  comment: { '--comment': 1 },
  addrtype: { '--src-type': 1, '--dst-type': 1, '--limit-iface-in': 0, '--limit-iface-out': 0 },
  conntrack: {
    '--ctstate': 1, '--ctproto': 1, '--ctorigsrc': 1, '--ctorigdst': 1, '--ctreplsrc': 1, '--ctrepldst': 1,
    '--ctorigsrcport': 1, '--ctorigdstport': 1, '--ctreplsrcport': 1, '--ctrepldstport': 1, '--ctstatus': 1,
    '--ctexpire': 1, '--ctdir': 1,
  },
  state: { '--state': 1 },
  mark: { '--mark': 1 },
  connmark: { '--mark': 1 },
  physdev: { '--physdev-in': 1, '--physdev-out': 1, '--physdev-is-in': 0, '--physdev-is-out': 0, '--physdev-is-bridged': 0 },
  statistic: { '--mode': 1, '--probability': 1, '--every': 1, '--packet': 1 },
  iprange: { '--src-range': 1, '--dst-range': 1 },
  // Understood, never evaluated: what they test is not in a PacketContext.
  limit: { '--limit': 1, '--limit-burst': 1 },
  pkttype: { '--pkt-type': 1 },
  owner: { '--uid-owner': 1, '--gid-owner': 1, '--socket-exists': 0, '--suppl-groups': 0 },
  length: { '--length': 1 },
  ttl: { '--ttl-eq': 1, '--ttl-gt': 1, '--ttl-lt': 1 },
  socket: { '--transparent': 0, '--nowildcard': 0, '--restore-skmark': 0 },
  rpfilter: { '--loose': 0, '--validmark': 0, '--accept-local': 0, '--invert': 0 },
  connlimit: { '--connlimit-upto': 1, '--connlimit-above': 1, '--connlimit-mask': 1, '--connlimit-saddr': 0, '--connlimit-daddr': 0 },
  recent: {
    '--name': 1, '--set': 0, '--rcheck': 0, '--update': 0, '--remove': 0, '--seconds': 1, '--reap': 0,
    '--hitcount': 1, '--rttl': 0, '--rsource': 0, '--rdest': 0, '--mask': 1,
  },
  hashlimit: {
    '--hashlimit-upto': 1, '--hashlimit-above': 1, '--hashlimit-burst': 1, '--hashlimit-mode': 1,
    '--hashlimit-srcmask': 1, '--hashlimit-dstmask': 1, '--hashlimit-name': 1, '--hashlimit-htable-size': 1,
    '--hashlimit-htable-max': 1, '--hashlimit-htable-expire': 1, '--hashlimit-htable-gcinterval': 1,
    '--hashlimit-rate-match': 0, '--hashlimit-rate-interval': 1,
  },
  dscp: { '--dscp': 1, '--dscp-class': 1 },
  tos: { '--tos': 1 },
  helper: { '--helper': 1 },
  cgroup: { '--path': 1, '--cgroup': 1 },
  u32: { '--u32': 1 },
  policy: { '--dir': 1, '--pol': 1, '--strict': 0, '--reqid': 1, '--spi': 1, '--proto': 1, '--mode': 1, '--tunnel-src': 1, '--tunnel-dst': 1, '--next': 0 },
};

const OPAQUE_MODULES: Record<string, string> = {
  limit: 'rate-limit state is not known',
  hashlimit: 'rate-limit state is not known',
  pkttype: 'the link-layer packet type is not known',
  owner: 'the owning socket is not known',
  length: 'the packet length is not known',
  ttl: 'the TTL is not known',
  socket: 'socket lookup is not modelled',
  connlimit: 'connection counts are not known',
  recent: 'the recent-list state is not known',
  dscp: 'the DSCP field is not known',
  tos: 'the TOS field is not known',
  helper: 'the conntrack helper is not known',
  cgroup: 'the socket cgroup is not known',
  u32: 'raw packet bytes are not known',
  policy: 'IPsec policy is not known',
};

export interface ModOpt {
  name: string;
  args: string[];
  neg: boolean;
}
export interface ModInst {
  name: string;
  opts: ModOpt[];
  /** words of options this module does not have */
  unknown: string[];
}

export function quoteWord(w: string): string {
  return /[\s"]/.test(w) || w === '' ? `"${w.replace(/(["\\])/g, '\\$1')}"` : w;
}

function optText(o: ModOpt): string {
  return [o.neg ? '!' : '', o.name, ...o.args.map(quoteWord)].filter((s) => s !== '').join(' ');
}

/** `10.0.0.0/8`, `10.0.0.1`, `10.0.0.0/255.0.0.0`, IPv6 too. */
export function parseAddrMask(text: string): AddrMatch | null {
  const slash = text.indexOf('/');
  const ip = parseIp(slash >= 0 ? text.slice(0, slash) : text);
  if (!ip) return null;
  const bits = familyBits(ip.family);
  const all = (1n << BigInt(bits)) - 1n;
  let mask = all;
  if (slash >= 0) {
    const m = text.slice(slash + 1);
    if (/^\d{1,3}$/.test(m) && Number(m) <= bits) {
      mask = (all << BigInt(bits - Number(m))) & all;
    } else {
      const dotted = parseIp(m);
      if (!dotted || dotted.family !== ip.family) return null;
      mask = dotted.value;
    }
  }
  return { family: ip.family, addr: ip.value & mask, mask };
}

function parsePortList(text: string): [number, number][] | null {
  const out: [number, number][] = [];
  for (const part of text.split(',')) {
    const m = /^(\d{0,5})(?::(\d{0,5}))?$/.exec(part);
    if (!m || part === '') return null;
    const lo = m[1] === '' ? 0 : Number(m[1]);
    const hi = m[2] === undefined ? lo : m[2] === '' ? 65535 : Number(m[2]);
    if (lo > 65535 || hi > 65535) return null;
    // iptables swaps a reversed range
    out.push(lo <= hi ? [lo, hi] : [hi, lo]);
  }
  return out;
}

const TCP_FLAG_BITS: Record<string, number> = { ...TCP_FLAGS, ALL: 0x3f, NONE: 0 };

function parseTcpFlags(text: string): number | null {
  let v = 0;
  for (const f of text.split(',')) {
    const b = TCP_FLAG_BITS[f.toUpperCase()];
    if (b === undefined) return null;
    v |= b;
  }
  return v;
}

const ADDR_TYPES = new Set([
  'UNSPEC', 'UNICAST', 'LOCAL', 'BROADCAST', 'ANYCAST', 'MULTICAST', 'BLACKHOLE', 'UNREACHABLE', 'PROHIBIT',
  'THROW', 'NAT', 'XRESOLVE',
]);
const CT_STATES = new Set(['INVALID', 'NEW', 'ESTABLISHED', 'RELATED', 'UNTRACKED', 'SNAT', 'DNAT']);

export function buildModule(mod: ModInst): { conditions: Condition[]; comment?: string } {
  const conditions: Condition[] = [];
  let comment: string | undefined;
  const prefix = `-m ${mod.name}`;
  const unknown = (why: string, o?: ModOpt) =>
    conditions.push({ kind: 'unknown', why, neg: o?.neg ?? false, text: o ? `${prefix} ${optText(o)}` : prefix });
  if (!MODULE_OPTS[mod.name]) {
    conditions.push({ kind: 'unknown', why: `match -m ${mod.name} is not supported`, neg: false, text: [prefix, ...mod.unknown.map(quoteWord)].join(' ') });
    return { conditions };
  }
  if (mod.unknown.length > 0) {
    conditions.push({
      kind: 'unknown',
      why: `unknown option ${mod.unknown.find((w) => w !== '!')} for -m ${mod.name}`,
      neg: false,
      text: [prefix, ...mod.unknown.map(quoteWord)].join(' '),
    });
  }
  const opaque = OPAQUE_MODULES[mod.name];
  if (opaque) {
    conditions.push({ kind: 'opaque', why: `${prefix}: ${opaque}`, neg: false, text: [prefix, ...mod.opts.map(optText)].join(' ') });
    return { conditions };
  }
  if (mod.name === 'rpfilter') {
    const has = (n: string) => mod.opts.some((o) => o.name === n);
    conditions.push({ kind: 'rpfilter', loose: has('--loose'), acceptLocal: has('--accept-local'), validmark: has('--validmark'), neg: has('--invert'), text: [prefix, ...mod.opts.map(optText)].join(' ') });
    return { conditions };
  }
  if (mod.name === 'statistic') {
    conditions.push({ kind: 'statistic', neg: false, text: [prefix, ...mod.opts.map(optText)].join(' ') });
    return { conditions };
  }
  const modProto: Record<string, readonly number[]> = { tcp: [6], udp: [17], sctp: [132], multiport: PORT_PROTOS };
  let setCond: Extract<Condition, { kind: 'set' }> | undefined;
  for (const o of mod.opts) {
    const text = `${prefix} ${optText(o)}`;
    const [a0, a1] = o.args;
    switch (o.name) {
      case '--sport':
      case '--dport':
      case '--sports':
      case '--dports':
      case '--ports': {
        const ranges = parsePortList(a0);
        const multi = mod.name === 'multiport';
        if (!ranges || (!multi && (ranges.length !== 1 || a0.includes(',')))) {
          unknown(`bad port ${a0}`, o);
          break;
        }
        const dir = o.name.startsWith('--s') ? 'src' : o.name.startsWith('--d') ? 'dst' : 'either';
        conditions.push({ kind: 'port', dir, ranges, protos: modProto[mod.name], neg: o.neg, text });
        break;
      }
      case '--tcp-flags': {
        const mask = parseTcpFlags(a0);
        const comp = parseTcpFlags(a1);
        if (mask === null || comp === null) unknown(`bad TCP flags ${a0} ${a1}`, o);
        else conditions.push({ kind: 'tcpflags', mask, comp, neg: o.neg, text });
        break;
      }
      case '--syn':
        conditions.push({ kind: 'tcpflags', mask: 0x17, comp: 0x02, neg: o.neg, text });
        break;
      case '--tcp-option':
      case '--chunk-types':
        conditions.push({ kind: 'opaque', why: `${o.name}: TCP options / SCTP chunks are not known`, neg: o.neg, text });
        break;
      case '--icmp-type': {
        const t = a0 === 'any' ? { type: 255, code: null } : parseIcmpType(a0);
        if (!t) unknown(`unknown ICMP type ${a0}`, o);
        else conditions.push({ kind: 'icmp', type: t.type, code: t.code, neg: o.neg, text });
        break;
      }
      case '--icmpv6-type': {
        const t = parseIcmpv6Type(a0);
        if (!t) unknown(`unknown ICMPv6 type ${a0}`, o);
        else conditions.push({ kind: 'icmp', type: t.type, code: t.code, v6: true, neg: o.neg, text });
        break;
      }
      case '--match-set': {
        const flags = parseSetFlags(a1);
        if (!flags) {
          unknown(`bad --match-set flags ${a1}`, o);
          break;
        }
        setCond = { kind: 'set', set: a0, flags, returnNomatch: false, counterTests: false, neg: o.neg, text };
        conditions.push(setCond);
        break;
      }
      case '--return-nomatch':
        if (setCond) setCond.returnNomatch = true;
        break;
      case '--update-counters':
      case '--update-subcounters':
        break; // only whether counters are updated
      case '--packets-eq':
      case '--packets-lt':
      case '--packets-gt':
      case '--bytes-eq':
      case '--bytes-lt':
      case '--bytes-gt':
        conditions.push({ kind: 'opaque', why: `${o.name}: the set member's counters are not known`, neg: o.neg, text });
        break;
      case '--comment':
        comment = a0;
        break;
      case '--physdev-in':
      case '--physdev-out':
      case '--physdev-is-in':
      case '--physdev-is-out':
      case '--physdev-is-bridged':
        conditions.push({ kind: 'physdev', op: o.name.slice('--physdev-'.length) as PhysdevOp, name: a0, neg: o.neg, text });
        break;
      case '--src-type':
      case '--dst-type': {
        const types = a0.split(',').map((s) => s.toUpperCase());
        if (types.some((s) => !ADDR_TYPES.has(s))) unknown(`unknown address type ${a0}`, o);
        else conditions.push({ kind: 'addrtype', dir: o.name === '--src-type' ? 'src' : 'dst', types, neg: o.neg, text });
        break;
      }
      case '--limit-iface-in':
      case '--limit-iface-out':
        conditions.push({ kind: 'opaque', why: `${o.name}: the addresses of the ${o.name.endsWith('in') ? 'input' : 'output'} interface are not known`, neg: false, text });
        break;
      case '--ctstate':
      case '--state': {
        const states = a0.split(',').map((s) => s.toUpperCase());
        if (states.some((s) => !CT_STATES.has(s))) unknown(`unknown conntrack state ${a0}`, o);
        else conditions.push({ kind: 'ctstate', states, neg: o.neg, text });
        break;
      }
      case '--ctproto': {
        const p = protoNumber(a0);
        if (p === null) unknown(`unknown protocol ${a0}`, o);
        else conditions.push({ kind: 'ctproto', proto: p, neg: o.neg, text });
        break;
      }
      case '--ctorigsrc':
      case '--ctorigdst':
      case '--ctreplsrc':
      case '--ctrepldst':
      case '--ctorigsrcport':
      case '--ctorigdstport':
      case '--ctreplsrcport':
      case '--ctrepldstport':
      case '--ctstatus':
      case '--ctexpire':
      case '--ctdir':
        conditions.push({ kind: 'opaque', why: `${o.name}: the conntrack entry is not known`, neg: o.neg, text });
        break;
      case '--mark': {
        const mm = parseMarkMask(a0);
        if (!mm) unknown(`bad mark ${a0}`, o);
        else conditions.push({ kind: 'mark', conn: mod.name === 'connmark', value: mm.value, mask: mm.mask, neg: o.neg, text });
        break;
      }
      case '--src-range':
      case '--dst-range': {
        const r = parseAddrRange(a0);
        if (!r || !a0.includes('-')) unknown(`bad address range ${a0}`, o);
        else conditions.push({ kind: 'iprange', dir: o.name === '--src-range' ? 'src' : 'dst', family: r.family, lo: r.lo, hi: r.hi, neg: o.neg, text });
        break;
      }
      default:
        unknown(`option ${o.name} of -m ${mod.name} is not evaluated`, o);
    }
  }
  return { conditions, comment };
}

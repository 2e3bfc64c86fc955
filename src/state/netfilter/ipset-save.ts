// `ipset save` parser: the text into the sets of model/netfilter/ipset.ts.
//
//   create kube-router-svip hash:ip family inet hashsize 1024 maxelem 65536 timeout 0 bucketsize 12 initval 0x1f794545
//   add kube-router-svip 10.96.0.1 timeout 0
//   create kube-router-svip-prt hash:ip,port family inet hashsize 1024 maxelem 65536 timeout 0
//   add kube-router-svip-prt 10.96.0.10,udp:53 timeout 0
//
// Pure code: no IO.
import { NetwhyError } from '../../errors.js';
import { type Family, cidrRange, parseAddrRange } from '../../model/ip.js';
import type { DimKind, Elem, IpSet, IpsetMember } from '../../model/netfilter/ipset.js';
import { eachSaveLine, parseIcmpType, parseU32, protoNumber, splitArgs } from './syntax.js';

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

export function parseIpsetSave(text: string): Map<string, IpSet> {
  const sets = new Map<string, IpSet>();
  eachSaveLine(text, IpsetParseError, ({ no: lineNo, text: trimmed, fail }) => {
    const split = splitArgs(trimmed);
    if (!split.ok) fail(split.reason);
    // `-exist` may be written anywhere on a line; it only changes error handling of `ipset restore`.
    const words = (split as { words: string[] }).words.filter((w) => w !== '-exist');
    if (words.length === 0) return;
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
  });
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

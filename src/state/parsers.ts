// Pure parsers for the state that `snapshot.ts` captures from a network namespace.
// No IO here: every function takes the text a tool printed and returns typed data, or throws
// a StateParseError that says what was wrong and where.

import { NetwhyError } from '../errors.js';
import { ipFamily } from '../model/ip.js';
import type { IpvsConnEntry, IpvsRealServer, IpvsState, IpvsVirtualService } from '../model/ipvs.js';

export type { IpvsConnEntry, IpvsRealServer, IpvsState, IpvsVirtualService };

export interface Addr {
  dev: string;
  ifindex: number;
  family: 4 | 6;
  address: string;
  prefixlen: number;
  secondary: boolean;
  scope: string;
  /** IPv6 DAD still running (the address cannot be used as a source yet). */
  tentative?: boolean;
  /** IPv6 DAD failed: the address is unusable. */
  dadfailed?: boolean;
}

export interface Link {
  ifindex: number;
  name: string;
  /** `linkinfo.info_kind` (veth, bridge, vxlan, ...); absent for lo and physical NICs. */
  kind?: string;
  master?: string;
  /** Administratively up (the UP flag). */
  up: boolean;
  /** Carrier (LOWER_UP flag). */
  lowerUp?: boolean;
  operstate?: string;
  mtu?: number;
}

export interface Nexthop {
  gateway?: string;
  dev?: string;
  weight?: number;
}

export interface Route {
  /** 'main', 'local', 'default', or the table number as a string. */
  table: string;
  /** 'default', a CIDR, or a bare address (a host route). */
  dst: string;
  dev?: string;
  gateway?: string;
  /** unicast, local, broadcast, multicast, blackhole, unreachable, prohibit, throw, anycast, nat. */
  type: string;
  prefsrc?: string;
  protocol?: string;
  scope?: string;
  metric?: number;
  /** From the -4/-6 the routes were listed with, else guessed from the addresses. */
  family?: 4 | 6;
  /** Multipath routes: one entry per nexthop (then dev/gateway are absent). */
  nexthops?: Nexthop[];
}

export interface RouteRule {
  priority: number;
  /** The table looked up, '' when the rule has another action (see `action`). */
  table: string;
  /** Absent for 'all'. CIDR, or a bare address for a host prefix. */
  src?: string;
  dst?: string;
  /** '0x10' or '0x10/0xff' (mask shown only when it is not all ones). */
  fwmark?: string;
  iif?: string;
  oif?: string;
  /** Absent for a plain table lookup; otherwise blackhole, unreachable, prohibit, goto, nop, l3mdev. */
  action?: string;
  /** Target priority of a `goto` rule. */
  goto?: number;
  /** The rule has `not`: it matches what the selectors do NOT match. */
  invert?: boolean;
  ipproto?: string;
  /** '80' or '80-90'. */
  sport?: string;
  dport?: string;
  /** '100-200'. */
  uidrange?: string;
  tos?: string;
  family?: 4 | 6;
}

export interface ConntrackStats {
  found: number;
  invalid: number;
  insert: number;
  insertFailed: number;
  drop: number;
  earlyDrop: number;
  /** `error` in `conntrack -S`, `icmp_error` in /proc/net/stat/nf_conntrack. */
  error: number;
  searchRestart: number;
  clashResolve?: number;
  chainTooLong?: number;
  /** Number of per-CPU lines summed. */
  cpus?: number;
}

/** Input a parser could not make sense of. `source` names the tool output being parsed. */
export class StateParseError extends NetwhyError {
  constructor(
    readonly source: string,
    detail: string,
    readonly line?: number,
  ) {
    super(`cannot parse ${source}${line !== undefined ? ` (line ${line})` : ''}: ${detail}`);
    this.name = 'StateParseError';
  }
}

// ---------------------------------------------------------------------------------------------
// sysctl

/**
 * The dotted sysctl key of a per-interface IPv4 setting. Device names are kept verbatim (a VLAN
 * device `eth0.100` gives `net.ipv4.conf.eth0.100.rp_filter`, not sysctl(8)'s `eth0/100`), so
 * build lookups with this function rather than splitting keys on dots.
 */
export function confKey(dev: string, name: string): string {
  return `net.ipv4.conf.${dev}.${name}`;
}

/** The IPv6 twin of confKey: `net.ipv6.conf.<dev>.<name>` (dev may be `all` or `default`). */
export function confKey6(dev: string, name: string): string {
  return `net.ipv6.conf.${dev}.${name}`;
}

/** A neighbour (ARP / NDP) entry: `ip -j neigh show`. */
export interface Neigh {
  family: 4 | 6;
  dst: string;
  dev: string;
  lladdr?: string;
  /** REACHABLE, STALE, FAILED, INCOMPLETE, PERMANENT, NOARP… */
  state: string[];
  router?: boolean;
}

/** `ip -j neigh show` (both families) */
export function parseIpNeigh(text: string): Neigh[] {
  const src = 'ip neigh';
  const out: Neigh[] = [];
  parseJsonArray(src, text).forEach((o, i) => {
    const at = `entry [${i}]`;
    const dst = reqString(src, o, 'dst', at);
    const family = ipFamily(dst);
    if (!family) return; // not an IP neighbour (bridge fdb-like entries)
    const state = Array.isArray(o['state']) ? (o['state'] as unknown[]).filter((x): x is string => typeof x === 'string') : [];
    const n: Neigh = { family, dst, dev: optString(src, o, 'dev', at) ?? '', state };
    const ll = optString(src, o, 'lladdr', at);
    if (ll !== undefined) n.lladdr = ll;
    if (o['router'] === true || o['router'] === null) n.router = true;
    out.push(n);
  });
  return out;
}

/**
 * Parse a sysctl dump. Two line forms:
 *  - `path:value` as `grep -H '' FILES` prints it, the path relative to /proc/sys or absolute
 *    (`net/ipv4/ip_forward:1`). Split at the first ':' (device names cannot contain ':' or '/',
 *    but may contain '=' and '.'); the path becomes a dotted key by turning '/' into '.', which
 *    keeps device names with dots intact.
 *  - `dotted.key=value`, also `sysctl -a`'s `key = value`.
 * Blank lines are skipped. A key seen twice (a multi-line value) gets its lines joined by '\n'.
 */
export function parseSysctlDump(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.replace(/\r$/, '');
    if (raw.trim() === '') continue;
    let key: string;
    let value: string;
    if (/^\/?[A-Za-z0-9_-]+\//.test(raw)) {
      const colon = raw.indexOf(':');
      if (colon < 0) throw new StateParseError('sysctl dump', `no ':' after the path in ${JSON.stringify(raw)}`, i + 1);
      const path = raw.slice(0, colon);
      if (/\s/.test(path) || path.endsWith('/') || path.includes('//')) {
        throw new StateParseError('sysctl dump', `bad path ${JSON.stringify(path)}`, i + 1);
      }
      key = path.replace(/^\/proc\/sys\//, '').split('/').join('.');
      value = raw.slice(colon + 1).trim();
    } else {
      const eq = raw.indexOf('=');
      if (eq < 0) throw new StateParseError('sysctl dump', `neither 'path:value' nor 'key=value': ${JSON.stringify(raw)}`, i + 1);
      key = raw.slice(0, eq).trim();
      value = raw.slice(eq + 1).trim();
      if (key === '' || /\s/.test(key) || key.startsWith('.') || key.endsWith('.') || key.includes('..')) {
        throw new StateParseError('sysctl dump', `bad key ${JSON.stringify(raw.slice(0, eq))}`, i + 1);
      }
    }
    out[key] = key in out ? `${out[key]}\n${value}` : value;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// ip -j ...

type Json = Record<string, unknown>;

function parseJsonArray(source: string, text: string): Json[] {
  if (text.trim() === '') throw new StateParseError(source, 'empty input (expected a JSON array)');
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new StateParseError(source, `invalid JSON: ${(e as Error).message}`);
  }
  if (!Array.isArray(v)) throw new StateParseError(source, `expected a JSON array, got ${typeOf(v)}`);
  v.forEach((el, i) => {
    if (el === null || typeof el !== 'object' || Array.isArray(el)) {
      throw new StateParseError(source, `element [${i}] is ${typeOf(el)}, expected an object`);
    }
  });
  return v as Json[];
}

function typeOf(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v;
}

function reqString(source: string, o: Json, field: string, where: string): string {
  const v = o[field];
  if (typeof v !== 'string' || v === '') {
    throw new StateParseError(source, `${where}: field '${field}' is ${v === undefined ? 'missing' : `not a non-empty string (${JSON.stringify(v)})`}`);
  }
  return v;
}

function reqInt(source: string, o: Json, field: string, where: string): number {
  const v = o[field];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
    throw new StateParseError(source, `${where}: field '${field}' is ${v === undefined ? 'missing' : `not a non-negative integer (${JSON.stringify(v)})`}`);
  }
  return v;
}

function optString(source: string, o: Json, field: string, where: string): string | undefined {
  const v = o[field];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new StateParseError(source, `${where}: field '${field}' is not a string (${JSON.stringify(v)})`);
  return v;
}

function optInt(source: string, o: Json, field: string, where: string): number | undefined {
  return o[field] === undefined ? undefined : reqInt(source, o, field, where);
}

function strArray(source: string, o: Json, field: string, where: string): string[] {
  const v = o[field];
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) {
    throw new StateParseError(source, `${where}: field '${field}' is not an array of strings`);
  }
  return v as string[];
}

/** `ip -j -d link show` */
export function parseIpLinks(text: string): Link[] {
  const src = 'ip link';
  return parseJsonArray(src, text).map((o, i) => {
    const where = `link [${i}]`;
    const name = reqString(src, o, 'ifname', where);
    const at = `link [${i}] '${name}'`;
    const flags = strArray(src, o, 'flags', at);
    const link: Link = { ifindex: reqInt(src, o, 'ifindex', at), name, up: flags.includes('UP'), lowerUp: flags.includes('LOWER_UP') };
    const info = o['linkinfo'];
    if (info !== undefined) {
      if (info === null || typeof info !== 'object') throw new StateParseError(src, `${at}: field 'linkinfo' is not an object`);
      const kind = optString(src, info as Json, 'info_kind', `${at} linkinfo`);
      if (kind) link.kind = kind;
    }
    const master = optString(src, o, 'master', at);
    if (master) link.master = master;
    const oper = optString(src, o, 'operstate', at);
    if (oper) link.operstate = oper;
    const mtu = optInt(src, o, 'mtu', at);
    if (mtu !== undefined) link.mtu = mtu;
    return link;
  });
}

/** `ip -j addr show` */
export function parseIpAddrs(text: string): Addr[] {
  const src = 'ip addr';
  const out: Addr[] = [];
  parseJsonArray(src, text).forEach((o, i) => {
    const dev = reqString(src, o, 'ifname', `link [${i}]`);
    const at = `link [${i}] '${dev}'`;
    const ifindex = reqInt(src, o, 'ifindex', at);
    const infos = o['addr_info'] ?? [];
    if (!Array.isArray(infos)) throw new StateParseError(src, `${at}: field 'addr_info' is not an array`);
    infos.forEach((a: unknown, j) => {
      const aw = `${at} addr_info[${j}]`;
      if (a === null || typeof a !== 'object' || Array.isArray(a)) throw new StateParseError(src, `${aw} is ${typeOf(a)}, expected an object`);
      const ai = a as Json;
      const fam = reqString(src, ai, 'family', aw);
      // Other families (e.g. link-layer entries on some devices) are not addresses we route on.
      if (fam !== 'inet' && fam !== 'inet6') return;
      const family = fam === 'inet' ? 4 : 6;
      const address = reqString(src, ai, 'local', aw);
      if (ipFamily(address) !== family) {
        throw new StateParseError(src, `${aw}: 'local' ${JSON.stringify(address)} is not an IPv${family} address`);
      }
      const prefixlen = reqInt(src, ai, 'prefixlen', aw);
      if (prefixlen > (family === 4 ? 32 : 128)) throw new StateParseError(src, `${aw}: prefixlen ${prefixlen} out of range`);
      const addr: Addr = {
        dev,
        ifindex,
        family,
        address,
        prefixlen,
        secondary: ai['secondary'] === true,
        scope: optString(src, ai, 'scope', aw) ?? 'global',
      };
      if (ai['tentative'] === true) addr.tentative = true;
      if (ai['dadfailed'] === true) addr.dadfailed = true;
      out.push(addr);
    });
  });
  return out;
}

function familyOf(s: string | undefined): 4 | 6 | undefined {
  if (s === undefined || s === 'default') return undefined;
  return s.includes(':') ? 6 : 4;
}

/**
 * `ip -j route show table all` (optionally with -4 / -6: pass `family` to record it; otherwise
 * it is guessed from dst / gateway / prefsrc, and left out when nothing tells, e.g. an
 * `unreachable default`).
 */
export function parseIpRoutes(text: string, family?: 4 | 6): Route[] {
  const src = 'ip route';
  return parseJsonArray(src, text).map((o, i) => {
    const at = `route [${i}]`;
    const dst = reqString(src, o, 'dst', at);
    const r: Route = {
      table: optString(src, o, 'table', at) ?? 'main',
      dst,
      type: optString(src, o, 'type', at) ?? 'unicast',
    };
    const dev = optString(src, o, 'dev', at);
    if (dev) r.dev = dev;
    const gw = optString(src, o, 'gateway', at);
    if (gw) r.gateway = gw;
    const prefsrc = optString(src, o, 'prefsrc', at);
    if (prefsrc) r.prefsrc = prefsrc;
    const proto = optString(src, o, 'protocol', at);
    if (proto) r.protocol = proto;
    const scope = optString(src, o, 'scope', at);
    if (scope) r.scope = scope;
    const metric = optInt(src, o, 'metric', at);
    if (metric !== undefined) r.metric = metric;
    if (o['nexthops'] !== undefined) {
      const nhs = o['nexthops'];
      if (!Array.isArray(nhs)) throw new StateParseError(src, `${at} '${dst}': field 'nexthops' is not an array`);
      r.nexthops = nhs.map((n: unknown, j) => {
        const nw = `${at} '${dst}' nexthops[${j}]`;
        if (n === null || typeof n !== 'object' || Array.isArray(n)) throw new StateParseError(src, `${nw} is ${typeOf(n)}, expected an object`);
        const nh: Nexthop = {};
        const g = optString(src, n as Json, 'gateway', nw);
        if (g) nh.gateway = g;
        const d = optString(src, n as Json, 'dev', nw);
        if (d) nh.dev = d;
        const w = optInt(src, n as Json, 'weight', nw);
        if (w !== undefined) nh.weight = w;
        return nh;
      });
    }
    const fam = family ?? familyOf(dst) ?? familyOf(gw) ?? familyOf(prefsrc) ?? familyOf(r.nexthops?.[0]?.gateway);
    if (fam) r.family = fam;
    return r;
  });
}

function withLen(addr: string, len: number | undefined): string {
  return len === undefined ? addr : `${addr}/${len}`;
}

function portSpec(source: string, o: Json, name: 'sport' | 'dport', where: string): string | undefined {
  const single = optInt(source, o, name, where);
  if (single !== undefined) return String(single);
  const lo = optInt(source, o, `${name}_start`, where);
  const hi = optInt(source, o, `${name}_end`, where);
  if (lo === undefined && hi === undefined) return undefined;
  if (lo === undefined || hi === undefined) throw new StateParseError(source, `${where}: ${name}_start without ${name}_end or the reverse`);
  return lo === hi ? String(lo) : `${lo}-${hi}`;
}

const RULE_ACTIONS = ['blackhole', 'unreachable', 'prohibit'];

/** `ip -j rule show` (pass `family` when listed with -4 / -6). */
export function parseIpRules(text: string, family?: 4 | 6): RouteRule[] {
  const src = 'ip rule';
  return parseJsonArray(src, text).map((o, i) => {
    const at0 = `rule [${i}]`;
    const priority = reqInt(src, o, 'priority', at0);
    const at = `rule [${i}] priority ${priority}`;
    const r: RouteRule = { priority, table: '' };

    const table = optString(src, o, 'table', at);
    const action = optString(src, o, 'action', at);
    if (table) {
      r.table = table;
    } else if (action) {
      if (!RULE_ACTIONS.includes(action)) throw new StateParseError(src, `${at}: unknown action ${JSON.stringify(action)}`);
      r.action = action;
    } else if (o['goto'] !== undefined) {
      r.action = 'goto';
      r.goto = reqInt(src, o, 'goto', at);
    } else if ('nop' in o) {
      r.action = 'nop';
    } else if ('l3mdev' in o) {
      r.action = 'l3mdev';
    } else {
      throw new StateParseError(src, `${at}: no table, action, goto, nop or l3mdev`);
    }

    const s = optString(src, o, 'src', at);
    if (s && s !== 'all') r.src = withLen(s, optInt(src, o, 'srclen', at));
    const d = optString(src, o, 'dst', at);
    if (d && d !== 'all') r.dst = withLen(d, optInt(src, o, 'dstlen', at));
    const mark = optString(src, o, 'fwmark', at);
    if (mark) {
      const mask = optString(src, o, 'fwmask', at);
      r.fwmark = mask && mask !== '0xffffffff' ? `${mark}/${mask}` : mark;
    }
    const iif = optString(src, o, 'iif', at);
    if (iif) r.iif = iif;
    const oif = optString(src, o, 'oif', at);
    if (oif) r.oif = oif;
    if ('not' in o) r.invert = true;
    const ipproto = optString(src, o, 'ipproto', at);
    if (ipproto) r.ipproto = ipproto;
    const sport = portSpec(src, o, 'sport', at);
    if (sport) r.sport = sport;
    const dport = portSpec(src, o, 'dport', at);
    if (dport) r.dport = dport;
    const u0 = optInt(src, o, 'uid_start', at);
    const u1 = optInt(src, o, 'uid_end', at);
    if (u0 !== undefined || u1 !== undefined) r.uidrange = `${u0 ?? u1}-${u1 ?? u0}`;
    const tos = optString(src, o, 'tos', at);
    if (tos) r.tos = tos;
    const fam = family ?? familyOf(r.src?.split('/')[0]) ?? familyOf(r.dst?.split('/')[0]);
    if (fam) r.family = fam;
    return r;
  });
}

// ---------------------------------------------------------------------------------------------
// conntrack statistics

/** Fields every `conntrack -S` line must carry (clash_resolve and chaintoolong are newer). */
const CT_REQUIRED: ReadonlyArray<[string, keyof ConntrackStats]> = [
  ['found', 'found'],
  ['invalid', 'invalid'],
  ['insert', 'insert'],
  ['insert_failed', 'insertFailed'],
  ['drop', 'drop'],
  ['early_drop', 'earlyDrop'],
  ['error', 'error'],
  ['search_restart', 'searchRestart'],
];
const CT_OPTIONAL: ReadonlyArray<[string, 'clashResolve' | 'chainTooLong']> = [
  ['clash_resolve', 'clashResolve'],
  ['chaintoolong', 'chainTooLong'],
];

function zeroStats(): ConntrackStats {
  return { found: 0, invalid: 0, insert: 0, insertFailed: 0, drop: 0, earlyDrop: 0, error: 0, searchRestart: 0 };
}

/** `conntrack -S`: one `cpu=N key=value ...` line per CPU, summed. */
export function parseConntrackStats(text: string): ConntrackStats {
  const src = 'conntrack -S';
  const total = zeroStats();
  let cpus = 0;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    const kv = new Map<string, number>();
    for (const tok of line.split(/\s+/)) {
      const m = /^([a-z_]+)=(\d+)$/.exec(tok);
      if (!m) throw new StateParseError(src, `bad token ${JSON.stringify(tok)}`, i + 1);
      kv.set(m[1]!, Number(m[2]));
    }
    if (!kv.has('cpu')) throw new StateParseError(src, `no cpu= field`, i + 1);
    for (const [name, field] of CT_REQUIRED) {
      const v = kv.get(name);
      if (v === undefined) throw new StateParseError(src, `missing field '${name}'`, i + 1);
      total[field] = (total[field] as number) + v;
    }
    for (const [name, field] of CT_OPTIONAL) {
      const v = kv.get(name);
      if (v !== undefined) total[field] = (total[field] ?? 0) + v;
    }
    cpus++;
  }
  if (cpus === 0) throw new StateParseError(src, 'no per-CPU lines');
  total.cpus = cpus;
  return total;
}

/**
 * /proc/net/stat/nf_conntrack: a header naming the columns, then one row of hex numbers per CPU.
 * `entries` is the global entry count repeated on every row (returned as `entries`, not summed);
 * the other columns are summed.
 */
export function parseProcConntrackStat(text: string): ConntrackStats & { entries: number } {
  const src = '/proc/net/stat/nf_conntrack';
  const lines = text.split('\n').map((l) => l.trim());
  const headerIdx = lines.findIndex((l) => l !== '');
  if (headerIdx < 0) throw new StateParseError(src, 'empty input');
  const header = lines[headerIdx]!.split(/\s+/);
  if (!header.includes('entries')) throw new StateParseError(src, `header has no 'entries' column`, headerIdx + 1);
  const col = (name: string): number => header.indexOf(name);
  const need = ['found', 'invalid', 'insert', 'insert_failed', 'drop', 'early_drop', 'icmp_error', 'search_restart'];
  for (const n of need) if (col(n) < 0) throw new StateParseError(src, `header has no '${n}' column`, headerIdx + 1);

  const total = zeroStats();
  let entries = 0;
  let cpus = 0;
  let clash: number | undefined;
  for (let i = headerIdx + 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '') continue;
    const cells = line.split(/\s+/);
    if (cells.length !== header.length) {
      throw new StateParseError(src, `${cells.length} columns, header has ${header.length}`, i + 1);
    }
    const nums = cells.map((c, j) => {
      if (!/^[0-9a-fA-F]+$/.test(c)) throw new StateParseError(src, `column '${header[j]}' is not hex: ${JSON.stringify(c)}`, i + 1);
      return parseInt(c, 16);
    });
    const at = (name: string): number => nums[col(name)]!;
    entries = at('entries');
    total.found += at('found');
    total.invalid += at('invalid');
    total.insert += at('insert');
    total.insertFailed += at('insert_failed');
    total.drop += at('drop');
    total.earlyDrop += at('early_drop');
    total.error += at('icmp_error');
    total.searchRestart += at('search_restart');
    if (col('clashres') >= 0) clash = (clash ?? 0) + at('clashres');
    cpus++;
  }
  if (cpus === 0) throw new StateParseError(src, 'no per-CPU rows after the header');
  if (clash !== undefined) total.clashResolve = clash;
  total.cpus = cpus;
  return { ...total, entries };
}

// ---------------------------------------------------------------------------------------------
// iptables --version, nft -j

/** `iptables v1.8.9 (nf_tables)` → 'nf_tables'; `iptables v1.8.9 (legacy)` → 'legacy'. */
export function parseIptablesBackend(text: string): 'nf_tables' | 'legacy' {
  const m = /^iptables v\S+(?:\s+\((nf_tables|legacy)\))?/m.exec(text.trim());
  if (!m) throw new StateParseError('iptables --version', `unexpected output ${JSON.stringify(text.trim().slice(0, 80))}`);
  // iptables before 1.8 had only the legacy backend and printed no suffix.
  return (m[1] as 'nf_tables' | 'legacy' | undefined) ?? 'legacy';
}

/** `nft -j list ruleset`: JSON with a top-level `nftables` array. */
export function parseNftJson(text: string): { nftables: unknown[] } {
  const src = 'nft -j list ruleset';
  if (text.trim() === '') throw new StateParseError(src, 'empty input');
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new StateParseError(src, `invalid JSON: ${(e as Error).message}`);
  }
  if (v === null || typeof v !== 'object' || !Array.isArray((v as Json)['nftables'])) {
    throw new StateParseError(src, `no top-level 'nftables' array`);
  }
  return v as { nftables: unknown[] };
}

// ---- IPVS: `ipvsadm -Ln` and `ipvsadm -Lnc` ----

function splitHostPort(s: string, what: string): { addr: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(s);
  if (!m) throw new StateParseError('ipvsadm', `${what} '${s}' is not address:port`);
  return { addr: m[1], port: Number(m[2]) };
}

/** `ipvsadm -Ln`: services and their real servers. */
export function parseIpvsadm(text: string): IpvsVirtualService[] {
  const out: IpvsVirtualService[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (!line || line.startsWith('IP Virtual Server') || line.startsWith('Prot ') || line.trimStart().startsWith('-> RemoteAddress')) continue;
    const dest = /^\s+->\s+(\S+)\s+(\S+)\s+(-?\d+)\s+(\d+)\s+(\d+)\s*$/.exec(line);
    if (dest) {
      const svc = out.at(-1);
      if (!svc) throw new StateParseError('ipvsadm', `real server before any service: '${line.trim()}'`);
      svc.dests.push({ ...splitHostPort(dest[1], 'real server'), forward: dest[2], weight: Number(dest[3]), active: Number(dest[4]), inactive: Number(dest[5]) });
      continue;
    }
    const svc = /^(TCP|UDP|SCTP|FWM)\s+(\S+)\s+(\S+)(?:\s+(.*))?$/.exec(line);
    if (!svc) throw new StateParseError('ipvsadm', `unexpected line '${line.trim()}'`);
    const fwm = svc[1] === 'FWM';
    const hp = fwm ? { addr: svc[2], port: 0 } : splitHostPort(svc[2], 'service');
    out.push({ ref: `${svc[1]} ${svc[2]} ${svc[3]}`, protocol: svc[1], ...hp, scheduler: svc[3], flags: (svc[4] ?? '').trim(), dests: [] });
  }
  return out;
}

/** `ipvsadm -Lnc`: the connection table. */
export function parseIpvsConns(text: string): IpvsConnEntry[] {
  const out: IpvsConnEntry[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('IPVS connection entries') || line.startsWith('pro ')) continue;
    const f = line.split(/\s+/);
    if (f.length !== 6) throw new StateParseError('ipvsadm -Lnc', `expected 6 fields in '${line}'`);
    out.push({ protocol: f[0], expire: f[1], state: f[2], source: f[3], virtual: f[4], destination: f[5], line });
  }
  return out;
}

/** Both tables, as the snapshot script prints them separated by a line '---'. */
export function parseIpvsDump(text: string): IpvsState | null {
  if (!text.trim()) return null; // no IPVS in this namespace
  const [svc, conns = ''] = text.split(/^---$/m);
  return { services: parseIpvsadm(svc), conns: parseIpvsConns(conns) };
}

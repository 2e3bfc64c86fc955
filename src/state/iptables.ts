// `iptables-save [-c]` parser and a packet evaluator that walks a hook's tables the way the kernel
// does, so netwhy can name the exact rule line (and ipset member) that decided a packet's fate.
//
// What the evaluator cannot know it says: rules whose syntax we do not understand are kept and
// marked `unevaluable`; matches that need information the packet context lacks (`-i` without an
// input device, rate limits, `-m statistic`) are listed in `uncertain` together with
// the assumption made. Pure code: no IO.
import { NetwhyError } from '../errors.js';
import type { Hook, PacketContext } from '../model/netfilter.js';

export type { Hook, PacketContext };
import { type Family, familyBits, parseAddrRange, parseIp } from '../model/ip.js';
import {
  type IpSet,
  type SetDirection,
  parseIcmpType,
  parseIcmpv6Type,
  parseSetFlags,
  parseU32,
  protoNumber,
  splitArgs,
  testSetMembership,
} from './ipset.js';

// ---------------------------------------------------------------------------------------------
// Errors

export class IptablesParseError extends NetwhyError {
  constructor(
    readonly reason: string,
    readonly line: number,
    readonly text: string,
  ) {
    super(`iptables-save line ${line}: ${reason}: ${JSON.stringify(text)}`);
    this.name = 'IptablesParseError';
  }
}

// ---------------------------------------------------------------------------------------------
// Model

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
 * nat dst -100, filter 0, security 50, nat src 100 — so nat runs *last* at INPUT). */
export const HOOK_TABLES: Record<Hook, readonly TableName[]> = {
  PREROUTING: ['raw', 'mangle', 'nat'],
  INPUT: ['mangle', 'filter', 'security', 'nat'],
  FORWARD: ['mangle', 'filter', 'security'],
  OUTPUT: ['raw', 'mangle', 'nat', 'filter', 'security'],
  POSTROUTING: ['mangle', 'nat'],
};

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

// ---------------------------------------------------------------------------------------------
// Parser

const TABLE_NAMES = new Set<string>(['raw', 'mangle', 'nat', 'filter', 'security']);

interface PendingTarget {
  name: string;
  goto: boolean;
  args: string[];
}

interface PendingRule {
  rule: Rule;
  target: PendingTarget | null;
  /** -I CHAIN [n]: 1-based insert position, else append */
  insertAt?: number;
}

interface OpenTable {
  table: Table;
  rules: PendingRule[];
  raw: string;
}

export function parseIptablesSave(text: string): Ruleset {
  const rs: Ruleset = { tables: new Map() };
  let open: OpenTable | null = null;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const raw = lines[i].replace(/\r$/, '');
    const t = raw.trim();
    if (t === '' || t.startsWith('#')) continue;
    const fail = (reason: string): never => {
      throw new IptablesParseError(reason, lineNo, raw);
    };
    try {
      if (t.startsWith('*')) {
        if (open) {
          fail(`table ${open.table.name} (line ${open.table.line}) has no COMMIT before the next table`);
        }
        const name = t.slice(1).trim();
        if (!TABLE_NAMES.has(name)) fail(`unknown table ${JSON.stringify(name)}`);
        open = { table: { name: name as TableName, line: lineNo, chains: new Map() }, rules: [], raw };
      } else if (t === 'COMMIT') {
        if (!open) fail('COMMIT outside a table');
        commitTable(open!, lines);
        // Like iptables-restore without --noflush: a table given twice is replaced.
        rs.tables.set(open!.table.name, open!.table);
        open = null;
      } else if (t.startsWith(':')) {
        if (!open) fail('chain declaration outside a table (no *table line before it)');
        parseChainLine(open!.table, t, lineNo, fail);
      } else if (t.startsWith('[') || t.startsWith('-')) {
        if (!open) fail('rule outside a table (no *table line before it)');
        open!.rules.push(parseRuleLine(open!.table, t, lineNo, fail));
      } else {
        fail('not a table, chain, rule, COMMIT or comment line');
      }
    } catch (e) {
      if (e instanceof IptablesParseError) throw e;
      // A bug in this parser must still name the line it choked on.
      throw new IptablesParseError(`internal parser error (${(e as Error).message})`, lineNo, raw);
    }
  }
  if (open) {
    throw new IptablesParseError(`table ${open.table.name} has no COMMIT`, open.table.line, open.raw);
  }
  return rs;
}

function parseCounters(s: string): Counters | null {
  const m = /^\[(\d+):(\d+)\]$/.exec(s);
  return m ? { packets: Number(m[1]), bytes: Number(m[2]) } : null;
}

function parseChainLine(table: Table, t: string, lineNo: number, fail: (r: string) => never): void {
  const words = t.slice(1).split(/\s+/);
  const [name, policy, counterText, ...extra] = words;
  if (!name) fail('chain declaration without a name');
  if (policy === undefined) fail(`chain ${name} has no policy (ACCEPT, DROP or -)`);
  if (extra.length > 0) fail('unexpected words after the chain counters');
  let counters: Counters | undefined;
  if (counterText !== undefined) {
    const c = parseCounters(counterText);
    if (!c) fail(`bad counters ${counterText}`);
    counters = c!;
  }
  const builtin = (BUILTIN_CHAINS[table.name] as readonly string[]).includes(name);
  if (builtin && policy !== 'ACCEPT' && policy !== 'DROP') {
    fail(`built-in chain ${name} needs policy ACCEPT or DROP, not ${policy}`);
  }
  if (!builtin && policy !== '-') {
    fail(`user chain ${name} cannot have a policy (${policy}); ${name} is not a built-in chain of table ${table.name}`);
  }
  if (table.chains.has(name)) fail(`chain ${name} declared twice in table ${table.name}`);
  table.chains.set(name, {
    table: table.name,
    name,
    builtin,
    policy: builtin ? (policy as 'ACCEPT' | 'DROP') : null,
    counters,
    line: lineNo,
    rules: [],
  });
}

function parseRuleLine(table: Table, t: string, lineNo: number, fail: (r: string) => never): PendingRule {
  let counters: Counters | undefined;
  let text = t;
  if (t.startsWith('[')) {
    const m = /^(\[[^\]]*\])\s+(.*)$/.exec(t);
    if (!m) fail('counters without a rule after them');
    const c = parseCounters(m![1]);
    if (!c) fail(`bad counters ${m![1]}`);
    counters = c!;
    text = m![2].trim();
  }
  const split = splitArgs(text);
  if (!split.ok) fail(split.reason);
  const words = (split as { words: string[] }).words;
  const cmd = words[0];
  if (cmd !== '-A' && cmd !== '--append' && cmd !== '-I' && cmd !== '--insert') {
    fail(`expected -A CHAIN or -I CHAIN, found ${JSON.stringify(cmd)}`);
  }
  const chainName = words[1];
  if (chainName === undefined || chainName.startsWith('-') || chainName === '!') fail(`${cmd} without a chain name`);
  if (!table.chains.has(chainName)) fail(`chain ${chainName} is not declared in table ${table.name}`);
  let rest = words.slice(2);
  let insertAt: number | undefined;
  if (cmd === '-I' || cmd === '--insert') {
    insertAt = 1;
    if (rest.length > 0 && /^\d+$/.test(rest[0])) {
      insertAt = Number(rest[0]);
      if (insertAt < 1) fail('insert position must be 1 or more');
      rest = rest.slice(1);
    }
  }
  const parsed = parseRuleArgs(rest, fail);
  if (parsed.counters) {
    if (counters) fail('counters given twice ([..] prefix and -c)');
    counters = parsed.counters;
  }
  const rule: Rule = {
    table: table.name,
    chain: chainName,
    index: 0,
    line: lineNo,
    text,
    counters,
    conditions: parsed.conditions,
    target: null,
    comment: parsed.comment,
  };
  const reasons = parsed.conditions.filter((c) => c.kind === 'unknown').map((c) => (c as { why: string }).why);
  if (reasons.length > 0) rule.unevaluable = reasons.join('; ');
  return { rule, target: parsed.target, insertAt };
}

/** At COMMIT: order rules (for -I), number them and resolve -j/-g against the table's chains. */
function commitTable(open: OpenTable, lines: string[]): void {
  const { table } = open;
  for (const p of open.rules) {
    const chain = table.chains.get(p.rule.chain)!;
    if (p.insertAt !== undefined) {
      if (p.insertAt > chain.rules.length + 1) {
        throw new IptablesParseError(`insert position ${p.insertAt} is past the end of chain ${chain.name}`, p.rule.line, lines[p.rule.line - 1]);
      }
      chain.rules.splice(p.insertAt - 1, 0, p.rule);
    } else {
      chain.rules.push(p.rule);
    }
    if (p.target) {
      const target = resolveTarget(table, p.target);
      if (target === 'bad-goto') {
        throw new IptablesParseError(`goto (-g) to ${p.target.name}, which is not a chain of table ${table.name}`, p.rule.line, lines[p.rule.line - 1].replace(/\r$/, ''));
      }
      p.rule.target = target;
      if (target.kind === 'unknown') {
        p.rule.unevaluable = p.rule.unevaluable ? `${p.rule.unevaluable}; ${target.why}` : target.why;
      }
    }
  }
  for (const chain of table.chains.values()) chain.rules.forEach((r, i) => (r.index = i + 1));
}

const GENERIC_OPTS = new Set([
  '-p', '--protocol', '-s', '--source', '--src', '-d', '--destination', '--dst', '-i', '--in-interface',
  '-o', '--out-interface', '-f', '--fragment', '-m', '--match', '-j', '--jump', '-g', '--goto', '-c',
  '--set-counters',
]);

/** arity of each option, per match module; aliases map to the canonical name in OPT_ALIASES */
const MODULE_OPTS: Record<string, Record<string, number>> = {
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

const OPT_ALIASES: Record<string, string> = {
  '--source-port': '--sport', '--destination-port': '--dport', '--source-ports': '--sports',
  '--destination-ports': '--dports', '--set': '--match-set',
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

const IMPLICIT_PROTO_MODULE: Record<number, string> = { 6: 'tcp', 17: 'udp', 1: 'icmp', 58: 'icmp6', 132: 'sctp' };
const PORT_PROTOS_MULTIPORT = [6, 17, 132, 136, 33] as const;

interface ModOpt {
  name: string;
  args: string[];
  neg: boolean;
}
interface ModInst {
  name: string;
  opts: ModOpt[];
  /** words of options this module does not have */
  unknown: string[];
}

interface ParsedArgs {
  conditions: Condition[];
  target: PendingTarget | null;
  comment?: string;
  counters?: Counters;
}

function quoteWord(w: string): string {
  return /[\s"]/.test(w) || w === '' ? `"${w.replace(/(["\\])/g, '\\$1')}"` : w;
}

function optText(o: ModOpt): string {
  return [o.neg ? '!' : '', o.name, ...o.args.map(quoteWord)].filter((s) => s !== '').join(' ');
}

function parseRuleArgs(words: string[], fail: (r: string) => never): ParsedArgs {
  const conditions: Condition[] = [];
  const mods: ModInst[] = [];
  let target: PendingTarget | null = null;
  let counters: Counters | undefined;
  let implicitProto: string | undefined;
  let neg = false;
  let i = 0;
  const value = (opt: string): string => {
    if (i >= words.length) fail(`option ${opt} needs a value`);
    return words[i++];
  };
  /** Is the word at j the start of another option (so not a value of an unknown option)? */
  const startsOption = (j: number) =>
    words[j].startsWith('-') || (words[j] === '!' && j + 1 < words.length && words[j + 1].startsWith('-'));
  while (i < words.length) {
    const w = words[i++];
    if (w === '!') {
      if (neg) fail('two ! in a row');
      neg = true;
      continue;
    }
    const n = neg;
    neg = false;
    switch (w) {
      case '-p':
      case '--protocol': {
        let v = value(w);
        let pn = n;
        if (v === '!') {
          pn = true; // old syntax: -p ! tcp
          v = value(w);
        }
        const proto = protoNumber(v);
        const text = `${pn ? '! ' : ''}-p ${v}`;
        if (proto === null) {
          conditions.push({ kind: 'unknown', why: `unknown protocol ${v}`, neg: pn, text });
        } else {
          conditions.push({ kind: 'proto', proto, neg: pn, text });
          if (!pn) implicitProto = IMPLICIT_PROTO_MODULE[proto];
        }
        break;
      }
      case '-s':
      case '--source':
      case '--src':
      case '-d':
      case '--destination':
      case '--dst': {
        const v = value(w);
        const dir = w === '-s' || w === '--source' || w === '--src' ? 'src' : 'dst';
        const text = `${n ? '! ' : ''}${dir === 'src' ? '-s' : '-d'} ${v}`;
        const net = parseAddrMask(v);
        conditions.push(net ? { kind: 'addr', dir, net, neg: n, text } : { kind: 'unknown', why: `bad address ${v}`, neg: n, text });
        break;
      }
      case '-i':
      case '--in-interface':
      case '-o':
      case '--out-interface': {
        const v = value(w);
        const dir = w === '-i' || w === '--in-interface' ? 'in' : 'out';
        conditions.push({ kind: 'iface', dir, name: v, neg: n, text: `${n ? '! ' : ''}${dir === 'in' ? '-i' : '-o'} ${v}` });
        break;
      }
      case '-f':
      case '--fragment':
        conditions.push({ kind: 'fragment', neg: n, text: `${n ? '! ' : ''}-f` });
        break;
      case '-m':
      case '--match': {
        if (n) fail('! before -m');
        mods.push({ name: value(w), opts: [], unknown: [] });
        const mod = mods[mods.length - 1];
        if (!MODULE_OPTS[mod.name]) {
          // Unknown match: its options run until the next generic option.
          while (i < words.length && !(GENERIC_OPTS.has(words[i]) || (words[i] === '!' && GENERIC_OPTS.has(words[i + 1] ?? '')))) {
            mod.unknown.push(words[i++]);
          }
        }
        break;
      }
      case '-j':
      case '--jump':
      case '-g':
      case '--goto': {
        if (n) fail(`! before ${w}`);
        if (target) fail('more than one -j/-g');
        const name = value(w);
        const args: string[] = [];
        while (i < words.length && !GENERIC_OPTS.has(words[i]) && words[i] !== '!') args.push(words[i++]);
        target = { name, goto: w === '-g' || w === '--goto', args };
        break;
      }
      case '-c':
      case '--set-counters': {
        if (n) fail('! before -c');
        const p = value(w);
        const b = value(w);
        if (!/^\d+$/.test(p) || !/^\d+$/.test(b)) fail('-c needs two numbers');
        counters = { packets: Number(p), bytes: Number(b) };
        break;
      }
      default: {
        if (!w.startsWith('--')) fail(`unexpected word ${JSON.stringify(w)}`);
        const opt = OPT_ALIASES[w] ?? w;
        // The option belongs to the most recent match that has it, else to the -p protocol's match.
        let owner: ModInst | undefined;
        for (let k = mods.length - 1; k >= 0 && !owner; k--) {
          if (MODULE_OPTS[mods[k].name]?.[opt] !== undefined) owner = mods[k];
        }
        if (!owner && implicitProto && MODULE_OPTS[implicitProto][opt] !== undefined) {
          owner = { name: implicitProto, opts: [], unknown: [] };
          mods.push(owner);
        }
        if (!owner) {
          const unknown = [n ? '!' : '', w].filter((s) => s !== '');
          while (i < words.length && !startsOption(i)) unknown.push(words[i++]);
          const last = mods[mods.length - 1];
          if (last) last.unknown.push(...unknown);
          else conditions.push({ kind: 'unknown', why: `unknown option ${w}`, neg: false, text: unknown.join(' ') });
          break;
        }
        const arity = MODULE_OPTS[owner.name][opt];
        const args: string[] = [];
        for (let k = 0; k < arity; k++) args.push(value(w));
        owner.opts.push({ name: opt, args, neg: n });
      }
    }
  }
  if (neg) fail('! at the end of the rule');
  let comment: string | undefined;
  for (const mod of mods) {
    const built = buildModule(mod);
    conditions.push(...built.conditions);
    if (built.comment !== undefined) comment = comment === undefined ? built.comment : `${comment}; ${built.comment}`;
  }
  return { conditions, target, comment, counters };
}

/** `10.0.0.0/8`, `10.0.0.1`, `10.0.0.0/255.0.0.0`, IPv6 too. */
function parseAddrMask(text: string): AddrMatch | null {
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

const TCP_FLAG_BITS: Record<string, number> = { FIN: 1, SYN: 2, RST: 4, PSH: 8, ACK: 16, URG: 32, ECE: 64, CWR: 128, ALL: 0x3f, NONE: 0 };

/** TCP flag bits for PacketContext.tcpFlags. */
export const TCP_FLAGS = { FIN: 1, SYN: 2, RST: 4, PSH: 8, ACK: 16, URG: 32, ECE: 64, CWR: 128 } as const;

function parseTcpFlags(text: string): number | null {
  let v = 0;
  for (const f of text.split(',')) {
    const b = TCP_FLAG_BITS[f.toUpperCase()];
    if (b === undefined) return null;
    v |= b;
  }
  return v;
}

/** `0x4000`, `0x4000/0x4000` → value and mask (mask defaults to all ones). */
function parseMarkMask(text: string): { value: number; mask: number } | null {
  const [v, m, ...rest] = text.split('/');
  if (rest.length > 0) return null;
  const value = parseU32(v);
  const mask = m === undefined ? 0xffffffff : parseU32(m);
  if (value === null || mask === null) return null;
  return { value, mask };
}

const ADDR_TYPES = new Set([
  'UNSPEC', 'UNICAST', 'LOCAL', 'BROADCAST', 'ANYCAST', 'MULTICAST', 'BLACKHOLE', 'UNREACHABLE', 'PROHIBIT',
  'THROW', 'NAT', 'XRESOLVE',
]);
const CT_STATES = new Set(['INVALID', 'NEW', 'ESTABLISHED', 'RELATED', 'UNTRACKED', 'SNAT', 'DNAT']);

function buildModule(mod: ModInst): { conditions: Condition[]; comment?: string } {
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
  const modProto: Record<string, readonly number[]> = { tcp: [6], udp: [17], sctp: [132], multiport: PORT_PROTOS_MULTIPORT };
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

const PASSIVE_TARGETS = new Set([
  'LOG', 'NFLOG', 'ULOG', 'TRACE', 'AUDIT', 'TCPMSS', 'CHECKSUM', 'DSCP', 'TOS', 'TTL', 'HL', 'CLASSIFY',
  'SECMARK', 'CONNSECMARK', 'IDLETIMER', 'LED', 'RATEEST', 'SET', 'TEE', 'TCPOPTSTRIP', 'ECN',
]);
const OPAQUE_TERMINAL_TARGETS: Record<string, string> = {
  TPROXY: 'TPROXY accepts only if a transparent socket is found',
  SYNPROXY: 'SYNPROXY answers or drops the packet itself',
  TARPIT: 'TARPIT holds the connection',
  CLUSTERIP: 'CLUSTERIP decides by cluster node hash',
};

/** `--opt value` pairs of a target (values are words not starting with `--`). */
function targetOpts(args: string[]): Map<string, string | true> | null {
  const out = new Map<string, string | true>();
  for (let i = 0; i < args.length; i++) {
    if (!args[i].startsWith('--')) return null;
    if (i + 1 < args.length && !args[i + 1].startsWith('--')) {
      out.set(args[i], args[i + 1]);
      i++;
    } else {
      out.set(args[i], true);
    }
  }
  return out;
}

function resolveTarget(table: Table, p: PendingTarget): Target | 'bad-goto' {
  const base = { name: p.name, args: p.args };
  const unknown = (why: string): Target => ({ ...base, kind: 'unknown', why });
  if (table.chains.has(p.name)) {
    if (p.args.length > 0) return unknown(`jump to chain ${p.name} with target options`);
    return { ...base, kind: 'chain', chain: p.name, goto: p.goto };
  }
  if (p.goto) return 'bad-goto';
  const opts = targetOpts(p.args);
  if (!opts) return unknown(`cannot read the options of target ${p.name}`);
  const str = (k: string) => {
    const v = opts.get(k);
    return typeof v === 'string' ? v : undefined;
  };
  const onlyKnown = (...known: string[]) => [...opts.keys()].every((k) => known.includes(k));
  switch (p.name) {
    case 'ACCEPT':
    case 'DROP':
    case 'RETURN':
      if (opts.size > 0) return unknown(`${p.name} takes no options`);
      return { ...base, kind: p.name === 'ACCEPT' ? 'accept' : p.name === 'DROP' ? 'drop' : 'return' };
    case 'REJECT':
      if (!onlyKnown('--reject-with')) return unknown('unknown REJECT option');
      return { ...base, kind: 'reject', with: str('--reject-with') ?? 'icmp-port-unreachable' };
    case 'MARK': {
      if (opts.size !== 1) return unknown('MARK needs exactly one operation');
      const [[k, v]] = [...opts.entries()];
      if (typeof v !== 'string') return unknown(`MARK ${k} needs a value`);
      const mm = parseMarkMask(v);
      if (!mm) return unknown(`bad MARK value ${v}`);
      const op = markOp(k, mm);
      return op ? { ...base, kind: 'mark', ...op } : unknown(`unknown MARK option ${k}`);
    }
    case 'HMARK':
      return { ...base, kind: 'mark-unknown' };
    case 'CONNMARK': {
      const save = opts.has('--save-mark');
      const restore = opts.has('--restore-mark');
      if (save || restore) {
        const all = str('--mask');
        const nf = parseU32(str('--nfmask') ?? all ?? '0xffffffff');
        const ct = parseU32(str('--ctmask') ?? all ?? '0xffffffff');
        if (nf === null || ct === null || !onlyKnown('--save-mark', '--restore-mark', '--nfmask', '--ctmask', '--mask')) {
          return unknown('unknown CONNMARK options');
        }
        return { ...base, kind: 'connmark', op: save ? 'save' : 'restore', nfmask: nf, ctmask: ct };
      }
      if (opts.size !== 1) return unknown('unknown CONNMARK options');
      const [[k, v]] = [...opts.entries()];
      const mm = typeof v === 'string' ? parseMarkMask(v) : null;
      const op = mm ? markOp(k, mm) : null;
      return op ? { ...base, kind: 'connmark', op: 'set', ...op } : unknown(`unknown CONNMARK option ${k}`);
    }
    case 'DNAT':
    case 'SNAT':
    case 'MASQUERADE':
    case 'REDIRECT':
    case 'NETMAP': {
      const key = { DNAT: '--to-destination', SNAT: '--to-source', MASQUERADE: '--to-ports', REDIRECT: '--to-ports', NETMAP: '--to' }[p.name];
      if (!onlyKnown(key, '--random', '--random-fully', '--persistent')) return unknown(`unknown ${p.name} option`);
      const to = str(key) ?? null;
      const nat = p.name.toLowerCase() as NatKind;
      if ((nat === 'dnat' || nat === 'snat' || nat === 'netmap') && to === null) return unknown(`${p.name} without ${key}`);
      if (to === null) return { ...base, kind: 'nat', nat, to, range: false };
      if (nat === 'masquerade' || nat === 'redirect') {
        const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(to);
        if (!m) return unknown(`bad ${key} ${to}`);
        return { ...base, kind: 'nat', nat, to, port: Number(m[1]), range: m[2] !== undefined };
      }
      if (nat === 'netmap') return { ...base, kind: 'nat', nat, to, range: true };
      const spec = parseNatTo(to);
      if (!spec) return unknown(`bad ${key} ${to}`);
      return { ...base, kind: 'nat', nat, to, ...spec };
    }
    case 'CT':
      return { ...base, kind: opts.has('--notrack') ? 'notrack' : 'passive' };
    case 'NOTRACK':
      return { ...base, kind: 'notrack' };
    case 'NFQUEUE':
    case 'QUEUE':
      return { ...base, kind: 'queue' };
    default:
      if (PASSIVE_TARGETS.has(p.name)) return { ...base, kind: 'passive' };
      if (OPAQUE_TERMINAL_TARGETS[p.name]) return { ...base, kind: 'opaque-terminal', why: OPAQUE_TERMINAL_TARGETS[p.name] };
      return unknown(`target ${p.name} is neither a chain of table ${table.name} nor a known target`);
  }
}

function markOp(opt: string, mm: { value: number; mask: number }): { value: number; mask: number } | null {
  switch (opt) {
    case '--set-xmark':
      return mm;
    case '--set-mark':
      return { value: mm.value, mask: (mm.mask | mm.value) >>> 0 };
    case '--and-mark':
      return { value: 0, mask: ~mm.value >>> 0 };
    case '--or-mark':
      return { value: mm.value, mask: mm.value };
    case '--xor-mark':
      return { value: mm.value, mask: 0 };
    default:
      return null;
  }
}

/** `10.244.2.2:80`, `10.0.0.1-10.0.0.5:1000-2000`, `[fd00::1]:80`, `:8080` */
function parseNatTo(to: string): { addr?: string; port?: number; range: boolean } | null {
  let addrPart = to;
  let portPart: string | undefined;
  const v6 = /^\[([^\]]+)\](?::(.*))?$/.exec(to);
  if (v6) {
    addrPart = v6[1];
    portPart = v6[2];
  } else if ((to.match(/:/g) ?? []).length === 1) {
    [addrPart, portPart] = to.split(':');
  }
  let range = false;
  let addr: string | undefined;
  if (addrPart !== '') {
    const [a, b] = addrPart.split('-');
    if (!parseIp(a) || (b !== undefined && !parseIp(b))) return null;
    addr = a;
    range = b !== undefined && b !== a;
  }
  let port: number | undefined;
  if (portPart !== undefined) {
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(portPart);
    if (!m || Number(m[1]) > 65535) return null;
    port = Number(m[1]);
    range ||= m[2] !== undefined && m[2] !== m[1];
  }
  if (addr === undefined && port === undefined) return null;
  return { addr, port, range };
}

// ---------------------------------------------------------------------------------------------
// Evaluation

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

const MAX_STEPS = 200_000;
const MAX_DEPTH = 64;

interface State {
  hook: Hook;
  pkt: PacketContext;
  src: { family: Family; value: bigint };
  dst: { family: Family; value: bigint };
  mark: number | null;
  ctmark: number | null;
  sets: Map<string, IpSet>;
  uncertainAs: 'match' | 'nomatch';
  trail: TrailEntry[];
  uncertain: Uncertainty[];
  nat: NatRewrite[];
}

type Tri = 'yes' | 'no' | 'unknown';

interface RuleMatch {
  result: 'match' | 'nomatch';
  reasons: string[];
  statistic: boolean;
  setMatches: SetMatchInfo[];
}

function initialState(sets: Map<string, IpSet>, hook: Hook, pkt: PacketContext, opts: EvalOptions): State {
  const src = parseIp(pkt.src);
  const dst = parseIp(pkt.dst);
  if (!src || !dst) throw new TypeError(`PacketContext needs IP addresses, got src=${pkt.src} dst=${pkt.dst}`);
  return {
    hook,
    pkt: { ...pkt, ctstate: [...pkt.ctstate], localAddrs: [...pkt.localAddrs] },
    src,
    dst,
    mark: pkt.markUnknown ? null : pkt.mark >>> 0,
    ctmark: pkt.ctmark ?? null,
    sets,
    uncertainAs: opts.uncertainAs ?? 'match',
    trail: [],
    uncertain: [],
    nat: [],
  };
}

/** How the packet fares against one rule's conditions: the first it fails, else what is uncertain. */
export function ruleMiss(rule: Rule, sets: Map<string, IpSet>, hook: Hook, pkt: PacketContext): { miss?: Condition; uncertain?: string } {
  const st = initialState(sets, hook, pkt, {});
  const reasons: string[] = [];
  for (const c of rule.conditions) {
    if (c.kind === 'statistic') continue;
    const r = evalCondition(c, st);
    let t = r.t;
    if (c.neg && t !== 'unknown') t = t === 'yes' ? 'no' : 'yes';
    if (t === 'no') return { miss: c };
    if (t === 'unknown') reasons.push(`${c.text}: ${r.why}`);
  }
  return reasons.length ? { uncertain: reasons.join('; ') } : {};
}

export function evaluateHook(
  rs: Ruleset,
  sets: Map<string, IpSet>,
  hook: Hook,
  pkt: PacketContext,
  opts: EvalOptions = {},
): HookResult {
  const st = initialState(sets, hook, pkt, opts);
  const tables: TableOutcome[] = [];
  let final: { verdict: Verdict; decision: Decision } | undefined;
  const accepts: Decision[] = [];
  for (const tn of HOOK_TABLES[hook]) {
    if (opts.tables && !opts.tables.includes(tn)) continue;
    const table = rs.tables.get(tn);
    const base = table?.chains.get(hook);
    if (!table) {
      tables.push({ table: tn, skipped: 'table not in the ruleset' });
      continue;
    }
    if (!base) {
      tables.push({ table: tn, skipped: `table has no ${hook} chain` });
      continue;
    }
    if (tn === 'nat' && !st.pkt.ctstate.includes('NEW')) {
      tables.push({
        table: tn,
        skipped: st.pkt.ctstate.includes('UNTRACKED')
          ? 'untracked packets are never NATed'
          : 'nat rules see only the first packet of a connection (ctstate NEW); later packets follow the NAT decided then',
      });
      continue;
    }
    const out = runTable(table, base, st);
    tables.push({ table: tn, verdict: out.verdict, decision: out.decision });
    if (out.verdict !== 'ACCEPT') {
      final = out;
      break;
    }
    accepts.push(out.decision);
  }
  // An accepted packet passed every table: name the last rule that accepted (or NATed) it, else the
  // filter table's policy (the one people set), else the last policy.
  const accepted =
    [...accepts].reverse().find((d) => d.kind === 'rule') ??
    accepts.find((d) => d.kind === 'policy' && d.table === 'filter') ??
    accepts[accepts.length - 1];
  const decidedBy: Decision = final?.decision ??
    accepted ?? { kind: 'none', reason: `no table has a ${hook} chain, so netfilter accepts` };
  const verdict: Verdict = final?.verdict ?? 'ACCEPT';
  const packet: PacketContext = { ...st.pkt, mark: st.mark ?? pkt.mark, markUnknown: st.mark === null ? true : undefined };
  if (packet.markUnknown === undefined) delete packet.markUnknown;
  if (st.ctmark !== null) packet.ctmark = st.ctmark;
  const decidingEntry = decidedBy.kind === 'rule' ? [...st.trail].reverse().find((t) => t.rule === decidedBy.rule) : undefined;
  const result: HookResult = {
    hook,
    verdict,
    decidedBy,
    setMatches: decidingEntry?.setMatches ?? [],
    nat: st.nat,
    trail: st.trail,
    tables,
    uncertain: st.uncertain,
    certain: st.uncertain.length === 0,
    packet,
  };
  if (decidedBy.kind === 'rule' && decidedBy.rule.target?.kind === 'reject') result.rejectWith = decidedBy.rule.target.with;
  return result;
}

function runTable(table: Table, base: Chain, st: State): { verdict: Verdict; decision: Decision } {
  const stack: { chain: Chain; pos: number }[] = [];
  let chain = base;
  let pos = 0;
  let steps = 0;
  const policy = (viaReturn?: Rule): { verdict: Verdict; decision: Decision } => {
    const p = base.policy ?? 'ACCEPT';
    return { verdict: p, decision: { kind: 'policy', table: table.name, chain: base.name, policy: p, verdict: p, viaReturn } };
  };
  const byRule = (rule: Rule, verdict: Verdict) => ({ verdict, decision: { kind: 'rule', table: table.name, chain: rule.chain, rule, verdict } as Decision });
  const uncertain = (rule: Rule, reason: string, assumed: Uncertainty['assumed']) =>
    st.uncertain.push({ table: table.name, chain: rule.chain, rule, reason, assumed });
  for (;;) {
    if (pos >= chain.rules.length) {
      const top = stack.pop();
      if (!top) return policy();
      chain = top.chain;
      pos = top.pos;
      continue;
    }
    const rule = chain.rules[pos++];
    if (++steps > MAX_STEPS) {
      uncertain(rule, `gave up after ${MAX_STEPS} rules (a jump loop?)`, 'stop');
      return byRule(rule, 'UNKNOWN');
    }
    const m = matchRule(rule, st);
    if (m.result === 'nomatch') continue;
    // LOG/NFLOG change nothing: an uncertain match of one (a rate limit) does not make the verdict uncertain.
    if (m.reasons.length > 0 && rule.target?.kind === 'passive') continue;
    if (m.reasons.length > 0) {
      if (st.uncertainAs === 'nomatch') {
        uncertain(rule, m.reasons.join('; '), 'no match');
        continue;
      }
      uncertain(rule, m.reasons.join('; '), 'match');
    }
    if (m.statistic) {
      uncertain(rule, '-m statistic picks this rule only for some packets (random or nth); treated as matching', 'match');
    }
    const trail = (effect: string) =>
      st.trail.push({ table: table.name, chain: rule.chain, rule, effect, setMatches: m.setMatches });
    const t = rule.target;
    if (!t) {
      trail('matched (no target: counts only)');
      continue;
    }
    switch (t.kind) {
      case 'chain': {
        const next = table.chains.get(t.chain)!;
        if (!t.goto && stack.length >= MAX_DEPTH) {
          uncertain(rule, `jumps nest deeper than ${MAX_DEPTH} chains (a jump loop?)`, 'stop');
          return byRule(rule, 'UNKNOWN');
        }
        trail(`${t.goto ? 'goto' : 'jump'} ${t.chain}`);
        if (!t.goto) stack.push({ chain, pos });
        chain = next;
        pos = 0;
        continue;
      }
      case 'return': {
        const top = stack.pop();
        trail(top ? `return to ${top.chain.name}` : `return from built-in chain ${base.name}: policy ${base.policy}`);
        if (!top) return policy(rule);
        chain = top.chain;
        pos = top.pos;
        continue;
      }
      case 'accept':
        trail('ACCEPT');
        return byRule(rule, 'ACCEPT');
      case 'drop':
        trail('DROP');
        return byRule(rule, 'DROP');
      case 'reject':
        trail(`REJECT with ${t.with}`);
        return byRule(rule, 'REJECT');
      case 'mark': {
        const before = st.mark;
        if (st.mark !== null) st.mark = ((st.mark & ~t.mask) ^ t.value) >>> 0;
        else if (t.mask === 0xffffffff) st.mark = t.value; // a full-mask set makes the mark known again
        trail(`mark ${hex(before)} -> ${hex(st.mark)}`);
        continue;
      }
      case 'mark-unknown':
        st.mark = null;
        trail(`${t.name}: mark set to a value that is not computed`);
        uncertain(rule, `${t.name} sets the mark to a value that is not computed; later mark matches are uncertain`, 'continue');
        continue;
      case 'connmark':
        if (t.op === 'set') {
          if (st.ctmark !== null) st.ctmark = ((st.ctmark & ~t.mask) ^ t.value) >>> 0;
          else if (t.mask === 0xffffffff) st.ctmark = t.value;
          trail(`ctmark -> ${hex(st.ctmark)}`);
        } else if (t.op === 'save') {
          st.ctmark = st.mark === null || st.ctmark === null ? null : ((st.ctmark & ~t.ctmask) ^ (st.mark & t.nfmask)) >>> 0;
          trail(`save mark to ctmark -> ${hex(st.ctmark)}`);
        } else {
          const before = st.mark;
          st.mark = st.mark === null || st.ctmark === null ? null : ((st.mark & ~t.nfmask) ^ (st.ctmark & t.ctmask)) >>> 0;
          trail(`restore mark from ctmark: ${hex(before)} -> ${hex(st.mark)}`);
          if (st.mark === null) uncertain(rule, 'CONNMARK --restore-mark without a known ctmark: later mark matches are uncertain', 'continue');
        }
        continue;
      case 'notrack':
        st.pkt.ctstate = ['UNTRACKED'];
        trail('NOTRACK: conntrack will not track this packet');
        continue;
      case 'nat': {
        if (table.name !== 'nat') {
          uncertain(rule, `${t.name} outside the nat table has no effect`, 'continue');
          continue;
        }
        applyNat(t, rule, table.name, st, uncertain);
        trail(`${t.name}${t.to ? ` to ${t.to}` : ''}`);
        return byRule(rule, 'ACCEPT');
      }
      case 'passive':
        trail(`${t.name} (does not change the verdict)`);
        continue;
      case 'queue':
        trail(`${t.name}: the verdict comes from a user-space program`);
        uncertain(rule, `${t.name} hands the packet to user space, which decides`, 'stop');
        return byRule(rule, 'UNKNOWN');
      case 'opaque-terminal':
        trail(t.name);
        uncertain(rule, t.why, 'stop');
        return byRule(rule, 'UNKNOWN');
      case 'unknown':
        trail(`${t.name} (unknown target, assumed not to end the chain)`);
        uncertain(rule, t.why, 'continue');
        continue;
    }
  }
}

function hex(v: number | null): string {
  return v === null ? 'unknown' : `0x${v.toString(16)}`;
}

function applyNat(
  t: Extract<Target, { kind: 'nat' }>,
  rule: Rule,
  table: TableName,
  st: State,
  uncertain: (rule: Rule, reason: string, assumed: Uncertainty['assumed']) => void,
): void {
  const rw: NatRewrite = { kind: t.nat, table, chain: rule.chain, rule, to: t.to };
  if (t.addr !== undefined) rw.addr = t.addr;
  if (t.port !== undefined) rw.port = t.port;
  st.nat.push(rw);
  if (t.range) uncertain(rule, `${t.name} to a range (${t.to}): the packet was rewritten to the first address/port`, 'continue');
  const ports = st.pkt.proto === 6 || st.pkt.proto === 17 || st.pkt.proto === 132 || st.pkt.proto === 136;
  switch (t.nat) {
    case 'dnat':
    case 'redirect':
      if (t.addr !== undefined) {
        st.pkt.dst = t.addr;
        st.dst = parseIp(t.addr)!;
      } else if (t.nat === 'redirect' && st.hook === 'OUTPUT') {
        st.pkt.dst = st.dst.family === 4 ? '127.0.0.1' : '::1';
        st.dst = parseIp(st.pkt.dst)!;
      }
      if (t.port !== undefined && ports) st.pkt.dport = t.port;
      if (!st.pkt.ctstate.includes('DNAT')) st.pkt.ctstate.push('DNAT');
      break;
    case 'snat':
    case 'masquerade':
      if (t.addr !== undefined) {
        st.pkt.src = t.addr;
        st.src = parseIp(t.addr)!;
      }
      if (t.port !== undefined && ports) st.pkt.sport = t.port;
      if (!st.pkt.ctstate.includes('SNAT')) st.pkt.ctstate.push('SNAT');
      break;
    case 'netmap':
      uncertain(rule, 'NETMAP rewrites by prefix; the new address is not computed', 'continue');
      break;
  }
}

function matchRule(rule: Rule, st: State): RuleMatch {
  const reasons: string[] = [];
  const setMatches: SetMatchInfo[] = [];
  let statistic = false;
  for (const c of rule.conditions) {
    if (c.kind === 'statistic') {
      statistic = true;
      continue;
    }
    const r = evalCondition(c, st);
    let t = r.t;
    if (c.neg && t !== 'unknown') t = t === 'yes' ? 'no' : 'yes';
    if (t === 'no') return { result: 'nomatch', reasons: [], statistic: false, setMatches: [] };
    if (t === 'unknown') reasons.push(`${c.text}: ${r.why}`);
    if (t === 'yes' && c.kind === 'set') {
      setMatches.push({
        set: c.set,
        member: c.neg ? null : r.member ?? null,
        flags: c.flags,
        negated: c.neg,
        ...(r.via ? { via: r.via } : {}),
        ...(!c.neg && r.memberLine !== undefined ? { memberLine: r.memberLine } : {}),
      });
    }
  }
  return { result: 'match', reasons, statistic, setMatches };
}

interface CondResult {
  t: Tri;
  why?: string;
  member?: string;
  memberLine?: number;
  via?: string;
}

const yes: CondResult = { t: 'yes' };
const no: CondResult = { t: 'no' };
const tri = (b: boolean): CondResult => (b ? yes : no);
const unknown = (why: string): CondResult => ({ t: 'unknown', why });

function evalCondition(c: Condition, st: State): CondResult {
  const pkt = st.pkt;
  switch (c.kind) {
    case 'proto':
      return tri(c.proto === 0 || c.proto === pkt.proto);
    case 'addr': {
      const a = c.dir === 'src' ? st.src : st.dst;
      return tri(a.family === c.net.family && (a.value & c.net.mask) === c.net.addr);
    }
    case 'iface': {
      const dev = c.dir === 'in' ? pkt.iif : pkt.oif;
      if (dev === undefined) return unknown(`the ${c.dir === 'in' ? 'input' : 'output'} interface is not known at ${st.hook}`);
      return tri(c.name.endsWith('+') ? dev.startsWith(c.name.slice(0, -1)) : dev === c.name);
    }
    case 'fragment':
      return pkt.fragment === undefined ? unknown('whether the packet is a fragment is not known') : tri(pkt.fragment);
    case 'port': {
      if (!c.protos.includes(pkt.proto)) return no;
      const want = c.dir === 'either' ? [pkt.sport, pkt.dport] : [c.dir === 'src' ? pkt.sport : pkt.dport];
      if (want.some((p) => p === undefined)) return unknown('the packet\'s port is not known');
      const inRanges = (p: number) => c.ranges.some(([lo, hi]) => p >= lo && p <= hi);
      return tri((want as number[]).some(inRanges));
    }
    case 'tcpflags':
      if (pkt.proto !== 6) return no;
      if (pkt.tcpFlags === undefined) return unknown('the packet\'s TCP flags are not known (PacketContext.tcpFlags)');
      return tri((pkt.tcpFlags & c.mask) === c.comp);
    case 'set': {
      const set = st.sets.get(c.set);
      if (!set) return unknown(`ipset ${c.set} is not in the ipset snapshot`);
      const r = testSetMembership(set, c.flags, { ...pkt, src: pkt.src, dst: pkt.dst, mark: st.mark ?? undefined }, st.sets);
      if (r.outcome === 'unknown') return unknown(r.reason);
      if (r.outcome === 'member') return { t: 'yes', member: r.member.text, memberLine: r.member.line, via: r.via };
      if (r.excludedBy && c.returnNomatch) return { t: 'yes', member: r.excludedBy.text, memberLine: r.excludedBy.line };
      return no;
    }
    case 'addrtype':
      return evalAddrType(c.types, c.dir === 'src' ? st.src : st.dst, pkt.localAddrs);
    case 'ctstate':
      if (pkt.ctstate.length === 0) return unknown('the conntrack state is not known');
      return tri(pkt.ctstate.some((s) => c.states.includes(s.toUpperCase())));
    case 'ctproto':
      return tri(c.proto === 0 || c.proto === pkt.proto);
    case 'mark': {
      const v = c.conn ? st.ctmark : st.mark;
      if (v === null) return unknown(c.conn ? 'the conntrack mark is not known (PacketContext.ctmark)' : 'the packet mark is not known');
      return tri(((v & c.mask) >>> 0) === c.value);
    }
    case 'icmp':
      if (pkt.proto !== (c.v6 ? 58 : 1)) return no;
      if (c.type === 255) return yes;
      if (pkt.icmpType === undefined) return unknown('the ICMP type is not known');
      if (pkt.icmpType !== c.type) return no;
      if (c.code === null) return yes;
      if (pkt.icmpCode === undefined) return unknown('the ICMP code is not known');
      return tri(pkt.icmpCode === c.code);
    case 'iprange': {
      const a = c.dir === 'src' ? st.src : st.dst;
      return tri(a.family === c.family && a.value >= c.lo && a.value <= c.hi);
    }
    case 'statistic':
      return yes;
    case 'physdev':
      return evalPhysdev(c, pkt);
    case 'rpfilter': {
      if (!pkt.reversePath) return unknown('-m rpfilter: the reverse-path route lookup is not modelled');
      const r = pkt.reversePath({ src: pkt.src, iif: pkt.iif, loose: c.loose, acceptLocal: c.acceptLocal });
      return 'unknown' in r ? unknown(`-m rpfilter: ${r.unknown}`) : tri(r.ok);
    }
    case 'opaque':
      return unknown(c.why);
    case 'unknown':
      return unknown(`not understood: ${c.why}`);
  }
}

/** xt_physdev on what the packet context knows of the bridge ports (physIn/physOut: a port's
 * name, null for none, absent for unknown). */
function evalPhysdev(c: Extract<Condition, { kind: 'physdev' }>, pkt: PacketContext): CondResult {
  const port = c.op === 'in' || c.op === 'is-in' ? pkt.physIn : pkt.physOut;
  if (port === undefined) return unknown(`whether the packet was bridged, and by which ports, is not known at this hook`);
  if (c.op !== 'in' && c.op !== 'out') return tri(port !== null);
  if (port === null) {
    // The kernel: no bridge info at all fails every non-inverted option; with bridge info but no
    // output port yet (PREROUTING), --physdev-out matches whatever its `!`.
    if (c.op === 'out' && pkt.physIn) return tri(!c.neg);
    return no;
  }
  const want = c.name ?? '';
  return tri(want.endsWith('+') ? port.startsWith(want.slice(0, -1)) : port === want);
}

/** Route type of an address as far as the context tells: LOCAL (in localAddrs), MULTICAST and
 * limited broadcast are certain; any other type needs the routing table. */
function evalAddrType(types: string[], a: { family: Family; value: bigint }, localAddrs: string[]): CondResult {
  const isLocal = localAddrs.some((l) => {
    const p = parseIp(l);
    return p !== null && p.family === a.family && p.value === a.value;
  });
  let known: string | null = null;
  if (isLocal) known = 'LOCAL';
  else if (a.family === 4 && a.value >> 28n === 0xen) known = 'MULTICAST';
  else if (a.family === 6 && a.value >> 120n === 0xffn) known = 'MULTICAST';
  else if (a.family === 4 && (a.value === 0xffffffffn || a.value === 0n)) known = 'BROADCAST';
  if (known) return tri(types.includes(known));
  // Not local, not multicast: only the route types we cannot tell apart remain.
  const undecidable = types.filter((t) => t !== 'LOCAL' && t !== 'MULTICAST');
  if (undecidable.length === 0) return no;
  return unknown(`whether the address is of type ${undecidable.join(',')} needs the routing table`);
}

// ---------------------------------------------------------------------------------------------
// Small helpers for callers

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

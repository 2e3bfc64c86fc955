// The targets of iptables-save rules (`-j`/`-g` and their options) as model Targets: a chain of
// the table, a verdict, MARK/CONNMARK as value and mask, NAT with its address and port, or what
// the evaluator cannot predict. Pure code: no IO.
import { parseIp } from '../../model/ip.js';
import type { NatKind, Table, Target } from '../../model/netfilter/xt-ruleset.js';
import { parseMarkMask, parseU32 } from './syntax.js';

/** `-j NAME args…` / `-g NAME` as written, before NAME is resolved against the table's chains. */
export interface PendingTarget {
  name: string;
  goto: boolean;
  args: string[];
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

export function resolveTarget(table: Table, p: PendingTarget): Target | 'bad-goto' {
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

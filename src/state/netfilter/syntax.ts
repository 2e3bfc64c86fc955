// The words of the netfilter tools' save formats (iptables-save, ipset save): quoting,
// protocol names, numbers, ICMP type names, --match-set flags, mark/mask pairs. Pure code: no IO.
import type { SetDirection } from '../../model/netfilter/ipset.js';

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
  return icmpType(ICMP_NAMES, text);
}

/** A type by its name in `names`, or `type[/code]` in numbers. */
function icmpType(names: Record<string, [number, number | null]>, text: string): { type: number; code: number | null } | null {
  const named = names[text.toLowerCase()];
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
  return icmpType(ICMPV6_NAMES, text);
}

/** Parse `src,dst` / `dst,dst,src` flags of `--match-set`. */
export function parseSetFlags(text: string): SetDirection[] | null {
  const parts = text.split(',');
  if (parts.length === 0 || parts.length > 6 || parts.some((p) => p !== 'src' && p !== 'dst')) return null;
  return parts as SetDirection[];
}

/** `0x4000`, `0x4000/0x4000` → value and mask (mask defaults to all ones). */
export function parseMarkMask(text: string): { value: number; mask: number } | null {
  const [v, m, ...rest] = text.split('/');
  if (rest.length > 0) return null;
  const value = parseU32(v);
  const mask = m === undefined ? 0xffffffff : parseU32(m);
  if (value === null || mask === null) return null;
  return { value, mask };
}

/** One line of a save file as a parser reads it: its number, the text as written (without a
 * trailing CR), trimmed, and a `fail` that throws the parser's error naming the line. */
export interface SaveLine {
  no: number;
  raw: string;
  text: string;
  fail: (reason: string) => never;
}

/**
 * Read a save file line by line, skipping blank and comment lines. Anything but the parser's own
 * error thrown on a line (a bug in the parser) is turned into that error, so it still names the
 * line it choked on.
 */
export function eachSaveLine<E extends Error>(
  text: string,
  ParseError: new (reason: string, line: number, text: string) => E,
  read: (line: SaveLine, lines: string[]) => void,
): void {
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const no = i + 1;
    const raw = lines[i].replace(/\r$/, '');
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const fail = (reason: string): never => {
      throw new ParseError(reason, no, raw);
    };
    try {
      read({ no, raw, text: trimmed, fail }, lines);
    } catch (e) {
      if (e instanceof ParseError) throw e;
      throw new ParseError(`internal parser error (${(e as Error).message})`, no, raw);
    }
  }
}

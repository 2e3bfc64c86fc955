// One IP address type for all of netwhy: parsed and printed by ipaddr.js
// (IPv6 in the RFC 5952 form `ip` and inet_ntop print), held as a number so
// ranges, CIDRs and set members compare cheaply; and one host:port formatter.
import ipaddr from 'ipaddr.js';

export type Family = 4 | 6;

/** An IPv4 or IPv6 address as a number. */
export interface IpAddr {
  family: Family;
  value: bigint;
}

export function familyBits(family: Family): number {
  return family === 4 ? 32 : 128;
}

function toBigint(bytes: number[]): bigint {
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}

/** A dotted quad (four parts only, as the kernel tools print them) or an IPv6 address. */
export function parseIp(text: string): IpAddr | null {
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) return { family: 4, value: toBigint(ipaddr.IPv4.parse(text).toByteArray()) };
  if (text.includes(':') && !text.includes('%') && ipaddr.IPv6.isValid(text)) return { family: 6, value: toBigint(ipaddr.IPv6.parse(text).toByteArray()) };
  return null;
}

/** The address family of a text, or undefined when it is not an address. */
export function ipFamily(text: string): Family | undefined {
  return parseIp(text)?.family;
}

/** The address as 4 or 16 bytes, network order. */
export function ipBytes(a: IpAddr): Uint8Array {
  const n = familyBits(a.family) / 8;
  const out = new Uint8Array(n);
  let v = a.value;
  for (let i = n - 1; i >= 0; i--, v >>= 8n) out[i] = Number(v & 0xffn);
  return out;
}

export function formatIp(family: Family, value: bigint): string {
  return ipaddr.fromByteArray([...ipBytes({ family, value })]).toString();
}

/** An inclusive address range; a CIDR or a single address is a range too. */
export interface AddrRange {
  family: Family;
  lo: bigint;
  hi: bigint;
  /** prefix length when the range is one CIDR block */
  prefix?: number;
}

export function cidrRange(family: Family, value: bigint, prefix: number): AddrRange {
  const host = (1n << BigInt(familyBits(family) - prefix)) - 1n;
  const lo = value & ~host;
  return { family, lo, hi: lo | host, prefix };
}

/** `10.0.0.1`, `10.244.0.0/16`, `10.0.0.1-10.0.0.9`, `fd00::/64` (IPv4 or IPv6). */
export function parseAddrRange(text: string): AddrRange | null {
  const dash = text.indexOf('-');
  if (dash > 0) {
    const a = parseIp(text.slice(0, dash));
    const b = parseIp(text.slice(dash + 1));
    if (!a || !b || a.family !== b.family || a.value > b.value) return null;
    return { family: a.family, lo: a.value, hi: b.value };
  }
  const slash = text.indexOf('/');
  const ip = parseIp(slash >= 0 ? text.slice(0, slash) : text);
  if (!ip) return null;
  const bits = familyBits(ip.family);
  let prefix = bits;
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > bits) return null;
    prefix = Number(p);
  }
  return cidrRange(ip.family, ip.value, prefix);
}

export function rangeContains(r: AddrRange, a: IpAddr): boolean {
  return r.family === a.family && a.value >= r.lo && a.value <= r.hi;
}

/** `10.0.0.1:80`, `[fd00::1]:80`; the address alone without a port. */
export function hostPort(addr: string, port?: number): string {
  if (port === undefined) return addr;
  return addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`;
}

/** `src:sport > dst:dport`, the way every netwhy output writes a packet. */
export function endpointText(e: { src: string; sport?: number; dst: string; dport?: number }): string {
  return `${hostPort(e.src, e.sport)} > ${hostPort(e.dst, e.dport)}`;
}

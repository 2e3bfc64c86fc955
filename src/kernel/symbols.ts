// Kernel symbols: drop reason names from BTF, addresses from /proc/kallsyms.
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { readEnum } from './btf.js';

export const KERNEL_BTF = process.env.NETWHY_KERNEL_BTF ?? '/sys/kernel/btf/vmlinux';

/** value → name without the SKB_DROP_REASON_ prefix ("NO_SOCKET", "NETFILTER_DROP"). */
export function dropReasonNames(enumValues: Map<string, number>): Map<number, string> {
  const out = new Map<number, string>();
  for (const [name, value] of enumValues) {
    // Not reasons: the end marker and the subsystem mask (6.5+).
    if (name === 'SKB_DROP_REASON_MAX' || name === 'SKB_DROP_REASON_SUBSYS_MASK') continue;
    out.set(value, name.replace(/^SKB_DROP_REASON_/, '').replace(/^SKB_/, ''));
  }
  return out;
}

let reasonCache: Map<number, string> | undefined;

/** Drop reason names of the running kernel (empty if its BTF has no such enum). */
export function kernelDropReasons(): Map<number, string> {
  if (!reasonCache) {
    const values = readEnum(readFileSync(KERNEL_BTF), 'skb_drop_reason');
    reasonCache = values ? dropReasonNames(values) : new Map();
  }
  return reasonCache;
}

export function reasonName(reasons: Map<number, string>, value: number): string {
  return reasons.get(value) ?? `reason#${value}`;
}

export interface Symbolizer {
  /** "ip_local_deliver+0x4c", or the hex address when unknown. */
  name(addr: bigint): string;
  /** Just the function: "ip_local_deliver". */
  func(addr: bigint): string | undefined;
}

/** Value of a hex digit's char code, -1 for anything else. */
function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48; // 0-9
  if (c >= 97 && c <= 102) return c - 87; // a-f
  if (c >= 65 && c <= 70) return c - 55; // A-F
  return -1;
}

/** Text symbols of kallsyms, sorted by address, as columns (transferable between threads). */
export interface KallsymsColumns {
  /** The names, one after the other (off and len index them). */
  bytes: Uint8Array;
  n: number;
  hi: Uint32Array;
  lo: Uint32Array;
  off: Uint32Array;
  len: Uint16Array;
  /** False when every address reads 0 (kptr_restrict): nothing can be resolved. */
  visible: boolean;
}

/**
 * Parse /proc/kallsyms (text symbols only) into typed arrays, fed in chunks:
 * each address as two 32-bit halves, each name as an offset and length into
 * one byte array (a few MB for ~100k symbols, no allocation per line, and
 * never the whole file in memory).
 */
export class KallsymsParser {
  private n = 0;
  private hi = new Uint32Array(1 << 16);
  private lo = new Uint32Array(1 << 16);
  private off = new Uint32Array(1 << 16);
  private len = new Uint16Array(1 << 16);
  private names = new Uint8Array(1 << 20);
  private used = 0;
  private sorted = true;
  private visible = false;
  /** The start of a line the last chunk cut. */
  private carry = new Uint8Array(0);

  push(chunk: Uint8Array): void {
    let start = 0;
    if (this.carry.length) {
      // Only the cut line is put together; the rest is parsed where it lies.
      const nl = chunk.indexOf(10);
      const line = new Uint8Array(this.carry.length + (nl < 0 ? chunk.length : nl));
      line.set(this.carry);
      line.set(chunk.subarray(0, nl < 0 ? chunk.length : nl), this.carry.length);
      if (nl < 0) {
        this.carry = line;
        return;
      }
      this.line(line, 0, line.length);
      start = nl + 1;
    }
    for (let end = chunk.indexOf(10, start); end >= 0; start = end + 1, end = chunk.indexOf(10, start)) this.line(chunk, start, end);
    this.carry = chunk.slice(start);
  }

  finish(): KallsymsColumns {
    if (this.carry.length) this.line(this.carry, 0, this.carry.length);
    this.carry = new Uint8Array(0);
    let { hi, lo, off, len } = this;
    const n = this.n;
    if (!this.sorted) {
      // Module symbols follow the kernel's; sort an index, then the columns by it.
      const order = Uint32Array.from({ length: n }, (_, i) => i).sort((a, b) => hi[a] - hi[b] || lo[a] - lo[b]);
      const by = <T extends Uint32Array | Uint16Array>(col: T): T => {
        const out = new (col.constructor as new (n: number) => T)(n);
        for (let i = 0; i < n; i++) out[i] = col[order[i]];
        return out;
      };
      [hi, lo, off, len] = [by(hi), by(lo), by(off), by(len)];
    }
    return { bytes: this.names.slice(0, this.used), n, hi: hi.slice(0, n), lo: lo.slice(0, n), off: off.slice(0, n), len: len.slice(0, n), visible: this.visible };
  }

  // "ffffffff81a00000 t ip_local_deliver[\t[module]]"
  private line(buf: Uint8Array, start: number, end: number): void {
    let sp = start;
    while (sp < end && buf[sp] !== 32) sp++;
    const type = sp > start && sp + 3 < end ? buf[sp + 1] : 0;
    if ((type !== 116 && type !== 84) || sp - start > 16) return; // t, T
    let h = 0;
    let l = 0;
    for (let i = start; i < sp; i++) {
      const v = hexValue(buf[i]);
      if (v < 0) return;
      h = ((h << 4) | (l >>> 28)) >>> 0;
      l = ((l << 4) | v) >>> 0;
    }
    let e = sp + 3;
    while (e < end && buf[e] > 32) e++;
    if (e === sp + 3) return;
    const n = this.n;
    if (n === this.hi.length) this.grow();
    if (n > 0 && (h < this.hi[n - 1] || (h === this.hi[n - 1] && l < this.lo[n - 1]))) this.sorted = false;
    if (h || l) this.visible = true;
    const size = Math.min(e - sp - 3, 0xffff);
    if (this.used + size > this.names.length) {
      const more = new Uint8Array(this.names.length * 2);
      more.set(this.names.subarray(0, this.used));
      this.names = more;
    }
    this.names.set(buf.subarray(sp + 3, sp + 3 + size), this.used);
    this.hi[n] = h;
    this.lo[n] = l;
    this.off[n] = this.used;
    this.len[n] = size;
    this.used += size;
    this.n++;
  }

  private grow(): void {
    const twice = <T extends Uint32Array | Uint16Array>(col: T): T => {
      const out = new (col.constructor as new (n: number) => T)(col.length * 2);
      out.set(col);
      return out;
    };
    this.hi = twice(this.hi);
    this.lo = twice(this.lo);
    this.off = twice(this.off);
    this.len = twice(this.len);
  }
}

export function kallsymsColumns(input: string | Uint8Array): KallsymsColumns {
  const p = new KallsymsParser();
  p.push(typeof input === 'string' ? Buffer.from(input, 'latin1') : input);
  return p.finish();
}

function symbolizer(c: KallsymsColumns): Symbolizer {
  const { n, hi, lo, off, len } = c;
  const bytes = Buffer.from(c.bytes.buffer, c.bytes.byteOffset, c.bytes.byteLength);
  /** Index of the last symbol at or below addr, -1 if none (or kallsyms is hidden). */
  const find = (addr: bigint): number => {
    if (!c.visible) return -1;
    const h = Number(addr >> 32n);
    const l = Number(addr & 0xffffffffn);
    let a = 0;
    let b = n - 1;
    let best = -1;
    while (a <= b) {
      const mid = (a + b) >> 1;
      if (hi[mid] < h || (hi[mid] === h && lo[mid] <= l)) {
        best = mid;
        a = mid + 1;
      } else b = mid - 1;
    }
    return best;
  };
  const nameAt = (i: number): string => bytes.toString('latin1', off[i], off[i] + len[i]);
  return {
    name(addr) {
      const i = find(addr);
      if (i < 0) return '0x' + addr.toString(16);
      const base = (BigInt(hi[i]) << 32n) | BigInt(lo[i]);
      return `${nameAt(i)}+0x${(addr - base).toString(16)}`;
    },
    func(addr) {
      const i = find(addr);
      return i < 0 ? undefined : nameAt(i);
    },
  };
}

export function parseKallsyms(input: string | Uint8Array): Symbolizer {
  return symbolizer(kallsymsColumns(input));
}

const KALLSYMS = '/proc/kallsyms';

/** /proc/kallsyms parsed as it is read, 64 KiB at a time; no symbols when unreadable. */
export function readKallsymsColumns(path = KALLSYMS): KallsymsColumns {
  const p = new KallsymsParser();
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const chunk = new Uint8Array(64 << 10);
    for (let got = readSync(fd, chunk); got > 0; got = readSync(fd, chunk)) p.push(chunk.subarray(0, got));
  } catch {
    // hidden from us: addresses stay hex
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  return p.finish();
}

let symbols: Symbolizer | undefined;

/**
 * The running kernel's symbols, read once. kallsyms costs ~40 ms of kernel
 * time to read (4 KiB per read()) and as much to parse: call this while the
 * BPF object loads (TraceSession.open() loads on another thread) and it costs
 * no start-up time. Never throws: unreadable, addresses stay hex.
 */
export function kernelSymbols(): Symbolizer {
  return (symbols ??= symbolizer(readKallsymsColumns()));
}

// Kernel symbols: drop reason names from BTF, addresses from /proc/kallsyms.
import { readFileSync } from 'node:fs';
import { readEnum } from './btf.js';

export const KERNEL_BTF = process.env.NETWHY_KERNEL_BTF ?? '/sys/kernel/btf/vmlinux';

/** value → name without the SKB_DROP_REASON_ prefix ("NO_SOCKET", "NETFILTER_DROP"). */
export function dropReasonNames(enumValues: Map<string, number>): Map<number, string> {
  const out = new Map<number, string>();
  for (const [name, value] of enumValues) {
    if (name === 'SKB_DROP_REASON_MAX') continue;
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

/**
 * Build a symbolizer from /proc/kallsyms (text symbols only). The ~100k
 * symbols are kept in typed arrays: each address as two 32-bit halves, each
 * name as an offset and length into the file's bytes (a few MB in all, and no
 * allocation per line, so a trace starts sooner).
 */
export function parseKallsyms(input: string | Uint8Array): Symbolizer {
  const buf = typeof input === 'string' ? Buffer.from(input, 'latin1') : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  let lines = 1;
  for (let i = buf.indexOf(10); i >= 0; i = buf.indexOf(10, i + 1)) lines++;
  let hi = new Uint32Array(lines);
  let lo = new Uint32Array(lines);
  let off = new Uint32Array(lines);
  let len = new Uint16Array(lines);
  let n = 0;
  let sorted = true;
  let nonZero = false;
  for (let start = 0; start < buf.length; ) {
    let end = buf.indexOf(10, start);
    if (end < 0) end = buf.length;
    // "ffffffff81a00000 t ip_local_deliver[\t[module]]"
    let sp = start;
    while (sp < end && buf[sp] !== 32) sp++;
    const type = sp > start && sp + 3 < end ? buf[sp + 1] : 0;
    if ((type === 116 || type === 84) && sp - start <= 16) {
      // t, T
      let h = 0;
      let l = 0;
      let ok = true;
      for (let i = start; i < sp; i++) {
        const v = hexValue(buf[i]);
        if (v < 0) ok = false;
        h = ((h << 4) | (l >>> 28)) >>> 0;
        l = ((l << 4) | v) >>> 0;
      }
      let e = sp + 3;
      while (e < end && buf[e] > 32) e++;
      if (ok && e > sp + 3) {
        if (n > 0 && (h < hi[n - 1] || (h === hi[n - 1] && l < lo[n - 1]))) sorted = false;
        if (h || l) nonZero = true;
        hi[n] = h;
        lo[n] = l;
        off[n] = sp + 3;
        len[n] = Math.min(e - sp - 3, 0xffff);
        n++;
      }
    }
    start = end + 1;
  }
  if (!sorted) {
    // Module symbols follow the kernel's; sort an index, then the columns by it.
    const order = Uint32Array.from({ length: n }, (_, i) => i).sort((a, b) => hi[a] - hi[b] || lo[a] - lo[b]);
    const by = <T extends Uint32Array | Uint16Array>(col: T): T => {
      const out = new (col.constructor as new (n: number) => T)(n);
      for (let i = 0; i < n; i++) out[i] = col[order[i]];
      return out;
    };
    [hi, lo, off, len] = [by(hi), by(lo), by(off), by(len)];
  }
  /** Index of the last symbol at or below addr, -1 if none (or kallsyms is hidden). */
  const find = (addr: bigint): number => {
    if (!nonZero) return -1;
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
  const nameAt = (i: number): string => buf.toString('latin1', off[i], off[i] + len[i]);
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

let symCache: Symbolizer | undefined;

/**
 * The running kernel's symbols (read once; unreadable, addresses stay hex).
 * Read synchronously on purpose: /proc/kallsyms gives ~4 KiB per read(), and
 * an asynchronous read pays a thread-pool round trip for each (5x slower).
 */
export function kernelSymbols(): Symbolizer {
  if (!symCache) {
    let bytes: Uint8Array = new Uint8Array(0);
    try {
      bytes = readFileSync('/proc/kallsyms');
    } catch {
      // hidden from us: hex addresses
    }
    symCache = parseKallsyms(bytes);
  }
  return symCache;
}

// Kernel symbols: drop reason names from BTF, addresses from /proc/kallsyms.
import { readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
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
 * Parse /proc/kallsyms (text symbols only) into typed arrays: each address as
 * two 32-bit halves, each name as an offset and length into the bytes (a few
 * MB for ~100k symbols, and no allocation per line).
 */
export function kallsymsColumns(input: string | Uint8Array): KallsymsColumns {
  const buf = typeof input === 'string' ? Buffer.from(input, 'latin1') : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  let lines = 1;
  for (let i = buf.indexOf(10); i >= 0; i = buf.indexOf(10, i + 1)) lines++;
  let hi = new Uint32Array(lines);
  let lo = new Uint32Array(lines);
  let off = new Uint32Array(lines);
  let len = new Uint16Array(lines);
  let n = 0;
  let sorted = true;
  let visible = false;
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
        if (h || l) visible = true;
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
  // Keep only the names (a third of the file) and n rows: the rest is garbage now.
  let total = 0;
  for (let i = 0; i < n; i++) total += len[i];
  const names = new Uint8Array(total);
  const noff = new Uint32Array(n);
  for (let i = 0, at = 0; i < n; at += len[i], i++) {
    names.set(buf.subarray(off[i], off[i] + len[i]), at);
    noff[i] = at;
  }
  return { bytes: names, n, hi: hi.slice(0, n), lo: lo.slice(0, n), off: noff, len: len.slice(0, n), visible };
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

/** kallsyms in an ArrayBuffer of its own (transferable to this thread); empty when unreadable. */
export function readKallsyms(): Uint8Array {
  try {
    const b = readFileSync(KALLSYMS);
    return b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? b : new Uint8Array(b);
  } catch {
    return new Uint8Array(0); // hidden from us: addresses stay hex
  }
}

// The worker: read and parse, then hand the columns over without copying.
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
import(workerData.module).then((m) => {
  const c = m.kallsymsColumns(m.readKallsyms());
  parentPort.postMessage(c, [c.bytes.buffer, c.hi.buffer, c.lo.buffer, c.off.buffer, c.len.buffer]);
});
`;

let symbols: Promise<Symbolizer> | undefined;

/**
 * The running kernel's symbols, read once. /proc/kallsyms costs ~0.1 s of
 * kernel time to read (4 KiB per read(), so an async read is 5x slower
 * still) plus the parse: call this before loading the BPF object and it runs
 * on a worker thread meanwhile. Never rejects: unreadable, addresses stay hex.
 */
export function kernelSymbols(): Promise<Symbolizer> {
  symbols ??= new Promise<KallsymsColumns>((resolve) => {
    let settled = false;
    const settle = (c: () => KallsymsColumns) => {
      if (settled) return;
      settled = true;
      resolve(c());
    };
    // No worker (or it failed, e.g. running from sources): the same on this thread.
    const here = () => settle(() => kallsymsColumns(readKallsyms()));
    try {
      const w = new Worker(WORKER, { eval: true, workerData: { module: import.meta.url } });
      w.once('message', (c: KallsymsColumns) => {
        settle(() => c);
        void w.terminate();
      });
      w.once('error', here);
      w.once('exit', here);
    } catch {
      here();
    }
  }).then(symbolizer);
  return symbols;
}

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

/**
 * Build a symbolizer from /proc/kallsyms text (text symbols only). Addresses
 * stay 16-digit hex strings, which sort and compare like the numbers, so the
 * ~150k lines need no BigInt each.
 */
export function parseKallsyms(text: string): Symbolizer {
  const entries: [string, string][] = [];
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const sp = text.indexOf(' ', start);
    if (sp > start && sp + 3 < end) {
      const type = text[sp + 1];
      if (type === 't' || type === 'T') {
        const rest = text.slice(sp + 3, end);
        const cut = rest.search(/\s/);
        entries.push([text.slice(start, sp).padStart(16, '0'), cut < 0 ? rest : rest.slice(0, cut)]);
      }
    }
    start = end + 1;
  }
  entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const hidden = entries.length === 0 || entries[entries.length - 1][0] === '0000000000000000';
  const find = (addr: bigint): number => {
    if (hidden) return -1;
    const key = addr.toString(16).padStart(16, '0');
    let lo = 0, hi = entries.length - 1, best = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (entries[mid][0] <= key) { best = mid; lo = mid + 1; } else hi = mid - 1;
    }
    return best;
  };
  return {
    name(addr) {
      const i = find(addr);
      return i < 0 ? '0x' + addr.toString(16) : `${entries[i][1]}+0x${(addr - BigInt('0x' + entries[i][0])).toString(16)}`;
    },
    func(addr) {
      const i = find(addr);
      return i < 0 ? undefined : entries[i][1];
    },
  };
}

let symCache: Symbolizer | undefined;

export function kernelSymbols(): Symbolizer {
  symCache ??= parseKallsyms(readFileSync('/proc/kallsyms', 'utf8'));
  return symCache;
}

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

/** Build a symbolizer from /proc/kallsyms text (text symbols only). */
export function parseKallsyms(text: string): Symbolizer {
  const addrs: bigint[] = [];
  const names: string[] = [];
  for (const line of text.split('\n')) {
    const a = line.indexOf(' ');
    if (a < 0) continue;
    const type = line[a + 1];
    if (type !== 't' && type !== 'T') continue;
    const rest = line.slice(a + 3);
    const tab = rest.search(/[\s]/);
    addrs.push(BigInt('0x' + line.slice(0, a)));
    names.push(tab < 0 ? rest : rest.slice(0, tab));
  }
  const order = addrs.map((_, i) => i).sort((x, y) => (addrs[x] < addrs[y] ? -1 : addrs[x] > addrs[y] ? 1 : 0));
  const sortedAddrs = order.map((i) => addrs[i]);
  const sortedNames = order.map((i) => names[i]);
  const find = (addr: bigint): number => {
    let lo = 0, hi = sortedAddrs.length - 1, best = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (sortedAddrs[mid] <= addr) { best = mid; lo = mid + 1; } else hi = mid - 1;
    }
    return best;
  };
  const allZero = sortedAddrs.length > 0 && sortedAddrs[sortedAddrs.length - 1] === 0n;
  return {
    name(addr) {
      const i = allZero ? -1 : find(addr);
      return i < 0 ? '0x' + addr.toString(16) : `${sortedNames[i]}+0x${(addr - sortedAddrs[i]).toString(16)}`;
    },
    func(addr) {
      const i = allZero ? -1 : find(addr);
      return i < 0 ? undefined : sortedNames[i];
    },
  };
}

let symCache: Symbolizer | undefined;

export function kernelSymbols(): Symbolizer {
  symCache ??= parseKallsyms(readFileSync('/proc/kallsyms', 'utf8'));
  return symCache;
}

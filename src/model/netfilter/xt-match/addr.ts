// -s/-d, -m iprange and -m addrtype: the packet's addresses.
import { type Family, parseIp } from '../../ip.js';
import { type CondEval, type CondResult, no, tri, unknown } from './types.js';

export const addr: CondEval<'addr'> = (c, st) => {
  const a = c.dir === 'src' ? st.src : st.dst;
  return tri(a.family === c.net.family && (a.value & c.net.mask) === c.net.addr);
};

export const iprange: CondEval<'iprange'> = (c, st) => {
  const a = c.dir === 'src' ? st.src : st.dst;
  return tri(a.family === c.family && a.value >= c.lo && a.value <= c.hi);
};

export const addrtype: CondEval<'addrtype'> = (c, st) => evalAddrType(c.types, c.dir === 'src' ? st.src : st.dst, st.pkt.localAddrs);

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

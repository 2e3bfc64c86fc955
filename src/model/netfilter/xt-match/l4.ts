// -p, -f and the protocol matches: ports (tcp/udp/sctp and -m multiport), TCP flags, ICMP types.
import { type CondEval, no, tri, unknown, yes } from './types.js';

export const proto: CondEval<'proto'> = (c, st) => tri(c.proto === 0 || c.proto === st.pkt.proto);

export const fragment: CondEval<'fragment'> = (_c, { pkt }) =>
  pkt.fragment === undefined ? unknown('whether the packet is a fragment is not known') : tri(pkt.fragment);

export const port: CondEval<'port'> = (c, { pkt }) => {
  if (!c.protos.includes(pkt.proto)) return no;
  const want = c.dir === 'either' ? [pkt.sport, pkt.dport] : [c.dir === 'src' ? pkt.sport : pkt.dport];
  if (want.some((p) => p === undefined)) return unknown('the packet\'s port is not known');
  const inRanges = (p: number) => c.ranges.some(([lo, hi]) => p >= lo && p <= hi);
  return tri((want as number[]).some(inRanges));
};

export const tcpflags: CondEval<'tcpflags'> = (c, { pkt }) => {
  if (pkt.proto !== 6) return no;
  if (pkt.tcpFlags === undefined) return unknown('the packet\'s TCP flags are not known (PacketContext.tcpFlags)');
  return tri((pkt.tcpFlags & c.mask) === c.comp);
};

export const icmp: CondEval<'icmp'> = (c, { pkt }) => {
  if (pkt.proto !== (c.v6 ? 58 : 1)) return no;
  if (c.type === 255) return yes;
  if (pkt.icmpType === undefined) return unknown('the ICMP type is not known');
  if (pkt.icmpType !== c.type) return no;
  if (c.code === null) return yes;
  if (pkt.icmpCode === undefined) return unknown('the ICMP code is not known');
  return tri(pkt.icmpCode === c.code);
};

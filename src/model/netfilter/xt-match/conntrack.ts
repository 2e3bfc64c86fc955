// -m conntrack/-m state (--ctstate, --ctproto) and -m mark/-m connmark.
import { type CondEval, tri, unknown } from './types.js';

export const ctstate: CondEval<'ctstate'> = (c, { pkt }) => {
  if (pkt.ctstate.length === 0) return unknown('the conntrack state is not known');
  return tri(pkt.ctstate.some((s) => c.states.includes(s.toUpperCase())));
};

export const ctproto: CondEval<'ctproto'> = (c, st) => tri(c.proto === 0 || c.proto === st.pkt.proto);

export const mark: CondEval<'mark'> = (c, st) => {
  const v = c.conn ? st.ctmark : st.mark;
  if (v === null) return unknown(c.conn ? 'the conntrack mark is not known (PacketContext.ctmark)' : 'the packet mark is not known');
  return tri(((v & c.mask) >>> 0) === c.value);
};

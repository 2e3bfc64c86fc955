// -m set --match-set: ipset membership (model/netfilter/ipset.ts), naming the member that matched.
import { testSetMembership } from '../ipset.js';
import { type CondEval, no, unknown } from './types.js';

export const set: CondEval<'set'> = (c, st) => {
  const pkt = st.pkt;
  const s = st.sets.get(c.set);
  if (!s) return unknown(`ipset ${c.set} is not in the ipset snapshot`);
  const r = testSetMembership(s, c.flags, { ...pkt, src: pkt.src, dst: pkt.dst, mark: st.mark ?? undefined }, st.sets);
  if (r.outcome === 'unknown') return unknown(r.reason);
  if (r.outcome === 'member') return { t: 'yes', member: r.member.text, memberLine: r.member.line, via: r.via };
  if (r.excludedBy && c.returnNomatch) return { t: 'yes', member: r.excludedBy.text, memberLine: r.excludedBy.line };
  return no;
};

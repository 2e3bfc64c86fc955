// -i/-o and -m physdev: the devices and bridge ports the packet goes by.
import { type CondEval, ifaceMatches, no, tri, unknown } from './types.js';

export const iface: CondEval<'iface'> = (c, st) => {
  const dev = c.dir === 'in' ? st.pkt.iif : st.pkt.oif;
  if (dev === undefined) return unknown(`the ${c.dir === 'in' ? 'input' : 'output'} interface is not known at ${st.hook}`);
  return tri(ifaceMatches(c.name, dev));
};

/** xt_physdev on what the packet context knows of the bridge ports (physIn/physOut: a port's
 * name, null for none, absent for unknown). */
export const physdev: CondEval<'physdev'> = (c, { pkt }) => {
  const port = c.op === 'in' || c.op === 'is-in' ? pkt.physIn : pkt.physOut;
  if (port === undefined) return unknown(`whether the packet was bridged, and by which ports, is not known at this hook`);
  if (c.op !== 'in' && c.op !== 'out') return tri(port !== null);
  if (port === null) {
    // The kernel: no bridge info at all fails every non-inverted option; with bridge info but no
    // output port yet (PREROUTING), --physdev-out matches whatever its `!`.
    if (c.op === 'out' && pkt.physIn) return tri(!c.neg);
    return no;
  }
  return tri(ifaceMatches(c.name ?? '', port));
};

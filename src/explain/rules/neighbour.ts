// The next hop never answered ARP/ND: the packet waited in the neighbour
// queue and was dropped there (NEIGH_FAILED), or the queue was full
// (NEIGH_QUEUEFULL). Nothing left the host, so only the drop and the
// neighbour table tell it.
import type { FibRecord } from '../../abi.js';
import { isSocketLookup } from '../flows.js';
import { lookupText, socketEvidence } from '../evidence.js';
import type { ExplainRule } from '../types.js';
import { bestRoute } from '../../model/route.js';

const WHY: Record<string, string> = {
  NEIGH_FAILED: 'nobody answered the address resolution, so the packets waiting for it were dropped',
  NEIGH_QUEUEFULL: 'the queue of packets waiting for the answer was full (net.ipv4.neigh.<dev>.unres_qlen_bytes), so this one was dropped',
  NEIGH_DEAD: 'the neighbour entry was being removed while the packet waited for it',
  NEIGH_CREATEFAIL: 'the kernel could not create a neighbour entry for it (the neighbour table is full: net.ipv4.neigh.default.gc_thresh3)',
};

export const neighbourRule: ExplainRule = {
  name: 'neighbour',
  reasons: Object.keys(WHY),
  explain({ flow, drop, state, netnsName, reasonName }) {
    const reason = reasonName(drop.reason);
    const ns = netnsName(drop.pkt.netns);
    const dev = drop.pkt.dev;
    const dst = drop.pkt.tuple.dst;
    const st = state(drop.pkt.netns);
    const route = st ? bestRoute(st.routes, dst) : undefined;
    const hop = route?.gateway ?? dst;
    const entry = st?.neigh?.find((n) => n.dst === hop && (!dev || n.dev === dev));
    const nstate = entry?.state.join(',');
    const evidence: string[] = [];
    const sent = flow.journeys.flatMap((j) => j.records).filter((r): r is FibRecord => r.kind === 'fib' && isSocketLookup(r) && r.netns === drop.pkt.netns && r.err === 0);
    for (const f of sent.slice(-1)) evidence.push(`the sender's ${lookupText(f, ns)}`);
    if (route) evidence.push(`the next hop of ${dst} in ${ns} is ${hop}${route.gateway ? ` (route ${route.dst} via ${route.gateway}${route.dev ? ` dev ${route.dev}` : ''})` : ' itself (on-link)'}`);
    else evidence.push(`the packet to ${dst} left by ${dev || '?'} in ${ns}; its next hop is not known from the routes`);
    if (entry) evidence.push(`the neighbour entry of ${hop} on ${entry.dev} in ${ns} is ${nstate}${entry.lladdr ? ` (${entry.lladdr})` : ' (no link-layer address)'}${nstate === 'INCOMPLETE' ? ' after the drop: a later packet started the resolution again' : ''}`);
    else if (st?.neigh) evidence.push(`${ns} has no neighbour entry for ${hop} any more`);
    evidence.push(`dropped with ${reason} on ${dev || '?'}: ${WHY[reason]}; the packet never left ${ns}`);
    evidence.push(...socketEvidence(flow));
    const arp = drop.pkt.tuple.family === 10 ? 'neighbour discovery (ND)' : 'ARP';
    const ref = `${hop}${dev ? ` dev ${dev}` : ''}`;
    if (reason === 'NEIGH_CREATEFAIL' || reason === 'NEIGH_DEAD') {
      return { cause: { type: 'address', ref, value: `neighbour ${reason === 'NEIGH_DEAD' ? 'dead' : 'not created'}`, netns: ns }, evidence };
    }
    evidence.unshift(`nobody answers ${arp} for ${hop} on ${dev || '?'} in ${ns}`);
    return {
      // The drop itself says what the entry was then; the snapshot after it may be resolving again.
      cause: { type: 'address', ref, value: reason === 'NEIGH_FAILED' ? 'neighbour FAILED' : 'neighbour queue full', netns: ns },
      evidence,
      fix: `make ${hop} answer ${arp} on ${dev || 'that link'} (is it up, on this layer-2 segment, with that address?), or fix the route that sends ${dst} via ${hop} (ip -n ${ns} route get ${dst}; ip -n ${ns} neigh show ${hop})`,
    };
  },
};

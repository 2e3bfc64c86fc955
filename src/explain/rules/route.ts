// No route: every table the lookup tried came back empty (IP_INNOROUTES), or
// the route that matched is unreachable/blackhole/prohibit.
import { parseIp } from '../../model/ip.js';
import { bestRoute, isReversePathCheck, routeFamily } from '../../model/route.js';
import { lookupText, lookupsBefore, mainTableText } from '../evidence.js';
import type { ExplainRule } from '../types.js';


const REFUSING = new Set(['unreachable', 'blackhole', 'prohibit', 'throw']);

export const routeRule: ExplainRule = {
  name: 'no-route',
  reasons: ['IP_INNOROUTES', 'IP_INADDRERRORS', 'IP_OUTNOROUTES', 'NOT_SPECIFIED'],
  explain({ drop, journey, state, netnsName, reasonName, func }) {
    const ns = netnsName(drop.pkt.netns);
    const dst = drop.pkt.tuple.dst;
    const reason = reasonName(drop.reason);
    const lookups = lookupsBefore(journey, drop.ts).filter((f) => f.dst === dst && !isReversePathCheck(f));
    const found = lookups.filter((f) => f.err === 0);
    const st = state(drop.pkt.netns);
    const route = st ? bestRoute(st.routes, dst) : undefined;
    if (route && REFUSING.has(route.type) && (reason !== 'NOT_SPECIFIED' || func(drop.location) === 'ip_error')) {
      return {
        cause: { type: 'route', ref: `${route.type} ${route.dst}`, value: route.type, netns: ns },
        evidence: [...lookups.map((f) => lookupText(f, ns)), `table main in ${ns} has "${route.type} ${route.dst}" for ${dst}`],
        fix: `remove or replace the ${route.type} route ${route.dst} in ${ns} (ip ${routeFamily(route) === 6 ? '-6 ' : ''}route del ${route.type} ${route.dst})`,
      };
    }
    if (reason !== 'IP_INNOROUTES' && reason !== 'IP_OUTNOROUTES') return null;
    if (found.length) return null; // something matched after all: not a missing route
    const evidence = lookups.length
      ? lookups.map((f) => lookupText(f, ns))
      : [`no route lookup for ${dst} was seen in ${ns}`];
    if (st) {
      const family = parseIp(dst)?.family;
      evidence.push(`table main in ${ns}: ${mainTableText(st.routes.filter((r) => routeFamily(r) === family))} — nothing covers ${dst} and there is no default route`);
    }
    const icmp = parseIp(dst)?.family === 6 ? 'an ICMPv6 no-route' : 'an ICMP network unreachable';
    evidence.push(`dropped with ${reason}${reason === 'IP_INNOROUTES' ? ` (${icmp} goes back)` : ''}`);
    return {
      cause: { type: 'route', ref: `no route to ${dst}`, value: 'unreachable', netns: ns },
      evidence,
      fix: `add a route covering ${dst} in ${ns} (for a pod network: the other node's pod CIDR via that node, as host-gw/flannel would), or a default route`,
    };
  },
};

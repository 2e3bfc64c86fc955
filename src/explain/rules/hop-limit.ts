// Hop limit (IPv6) or TTL (IPv4) exceeded on a router: ip6_forward drops a
// packet whose hop limit is 1 or 0 before forwarding it (ip_forward the same
// for a TTL), sends an ICMP time exceeded back and frees it with IP_INHDR.
// IP_INHDR also covers malformed headers: this rule speaks only when the
// packet's recorded hop limit proves it.
import { AF_INET6, PktFlag, type Pkt } from '../../abi.js';
import { recordPkt } from '../../journey.js';
import { isReversePathCheck } from '../../model/route.js';
import { lookupText, lookupsBefore, tupleText } from '../evidence.js';
import { baseName } from './netfilter.js';
import type { ExplainRule } from '../types.js';

export const hopLimitRule: ExplainRule = {
  name: 'hop-limit',
  reasons: ['IP_INHDR'],
  explain({ flow, drop, journey, netnsName, func }) {
    const fn = baseName(func(drop.location) ?? '');
    const hops = drop.pkt.ttl;
    if ((fn !== 'ip6_forward' && fn !== 'ip_forward') || hops === undefined || hops > 1) return null;
    const v6 = drop.pkt.tuple.family === AF_INET6;
    const what = v6 ? 'hop limit' : 'TTL';
    const ns = netnsName(drop.pkt.netns);
    const t = drop.pkt.tuple;
    const same = (p: Pkt) => p.tuple.src === t.src && p.tuple.dst === t.dst && p.tuple.sport === t.sport && p.tuple.dport === t.dport && p.tuple.proto === t.proto;
    // The packet's way here: where its sender put it out, and every namespace it was received in.
    const seen = flow.journeys.flatMap((j) => j.records).filter((r) => r.ts <= drop.ts).sort((a, b) => a.ts - b.ts)
      .map((r) => ({ r, p: recordPkt(r) })).filter((x): x is { r: typeof x.r; p: Pkt } => !!x.p && same(x.p));
    const sent = seen.find((x) => x.r.kind === 'tx' && (x.p.flags & PktFlag.LOCAL_SK) !== 0 && x.p.ttl !== undefined);
    const sentNs = sent && netnsName(sent.p.netns);
    const lookup = lookupsBefore(journey, drop.ts).reverse().find((f) => f.dst === t.dst && f.err === 0 && !isReversePathCheck(f));
    const evidence = [`${tupleText(t)} arrived on ${drop.pkt.dev} in ${ns} with ${what} ${hops}${lookup ? `, to be forwarded (${lookupText(lookup, ns)})` : ''}`];
    let fix: string;
    const sentHops = sent?.p.ttl;
    if (sent && sentHops !== undefined && sentHops <= hops + 1) {
      const knob = v6 ? `net.ipv6.conf.${sent.p.dev}.hop_limit` : 'net.ipv4.ip_default_ttl';
      evidence.push(`its sender in ${sentNs} put it out on ${sent.p.dev} with ${what} ${sentHops}: set that low by the socket (${v6 ? 'IPV6_UNICAST_HOPS' : 'IP_TTL'}) or by ${knob} in ${sentNs}`);
      fix = `raise the sender's ${what} in ${sentNs}: ${knob} (default 64), or the application's ${v6 ? 'IPV6_UNICAST_HOPS' : 'IP_TTL'} socket option; it must exceed the number of routers on the way`;
    } else if (sent && sentHops !== undefined) {
      const rx = seen.filter((x) => x.r.kind === 'rx' && x.r.ts >= sent.r.ts).map((x) => netnsName(x.p.netns));
      const loop = rx.length !== new Set(rx).size;
      evidence.push(`its sender in ${sentNs} put it out with ${what} ${sentHops}, and it was received ${rx.length} time(s) on the way (${[...new Set(rx)].join(', ')})${loop ? ': it passed the same namespaces again and again, a routing loop' : ''}`);
      fix = loop
        ? `find the routing loop for ${t.dst}: ip ${v6 ? '-6 ' : ''}route get ${t.dst} in each of ${[...new Set(rx)].join(', ')}; one of them must not send it back`
        : `the path to ${t.dst} has more routers than the sender's ${what} ${sentHops} allows: raise it in ${sentNs}, or shorten the path`;
    } else {
      fix = `find who sends with ${what} ${hops} or loops the packet: ip ${v6 ? '-6 ' : ''}route get ${t.dst} on each router of the path, and the sender's ${v6 ? 'hop_limit' : 'ip_default_ttl'}`;
    }
    evidence.push(`dropped in ${fn} with IP_INHDR: a router does not forward a packet whose ${what} would reach 0 (${v6 ? 'an ICMPv6 time exceeded' : 'an ICMP time exceeded'} goes back to ${t.src})`);
    return { cause: { type: 'hop-limit', ref: `${what} ${hops}`, value: 'exceeded', netns: ns }, evidence, fix };
  },
};

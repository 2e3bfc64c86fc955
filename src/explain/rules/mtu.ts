// Too big to forward: a packet larger than the next hop's MTU that may not be
// fragmented (DF set; IPv6 never is) is dropped with PKT_TOO_BIG, and an ICMP
// "fragmentation needed" (type 3 code 4; IPv6: packet too big) goes back so
// the sender lowers its segment size. When that ICMP error is itself dropped,
// the sender never learns: a PMTU black hole, and the rule that dropped the
// ICMP error is the cause.
import type { DropRecord } from '../../abi.js';
import { isReversePathCheck } from '../../model/route.js';
import { lookupsBefore, tupleText } from '../evidence.js';
import type { ExplainRule, RuleInput } from '../types.js';
import { netfilterRule } from './netfilter.js';

/** An ICMP "fragmentation needed" (IPv4 3/4) or ICMPv6 "packet too big" (2/0): type and code ride in the port fields. */
function isFragNeeded(d: DropRecord): boolean {
  const t = d.pkt.tuple;
  return (t.proto === 1 && t.sport === 3 && t.dport === 4) || (t.proto === 58 && t.sport === 2 && t.dport === 0);
}

export const mtuRule: ExplainRule = {
  name: 'mtu',
  reasons: ['PKT_TOO_BIG', 'FRAG_FAILED'],
  explain(input: RuleInput) {
    const { flow, drop, journey, state, netnsName, reasonName } = input;
    const ns = netnsName(drop.pkt.netns);
    const t = drop.pkt.tuple;
    const st = state(drop.pkt.netns);
    const out = lookupsBefore(journey, drop.ts).reverse().find((f) => f.err === 0 && f.dst === t.dst && !isReversePathCheck(f) && f.nhDev);
    const dev = out?.nhDev;
    const mtu = dev ? st?.links?.find((l) => l.name === dev)?.mtu : undefined;
    const evidence = [
      `${tupleText(t)}: a ${drop.pkt.len}-byte packet${drop.pkt.len > 1500 ? ' (segments merged by GRO/GSO, each still larger than the MTU)' : ''} to be forwarded by ${dev ?? '?'} in ${ns}${mtu ? `, whose MTU is ${mtu}` : ''}`,
      `it may not be fragmented (${t.family === 10 ? 'IPv6 routers never fragment' : 'DF set: the kernel drops only such packets'} with ${reasonName(drop.reason)}), so an ICMP "fragmentation needed"${mtu ? ` (mtu ${mtu})` : ''} goes back to ${t.src}`,
    ];
    const icmp = flow.drops.find((d) => isFragNeeded(d.drop) && d.drop.ts >= drop.ts - 5e9);
    if (icmp) {
      const icmpNs = netnsName(icmp.drop.pkt.netns);
      const found = netfilterRule.explain({ ...input, drop: icmp.drop, journey: icmp.journey });
      evidence.push(`that ICMP error (${tupleText(icmp.drop.pkt.tuple)}) was dropped in ${icmpNs} with ${reasonName(icmp.drop.reason)}: the sender never learns the smaller MTU and keeps sending full-size packets (a PMTU black hole)`);
      if (found && found.cause.type === 'iptables-rule') {
        return {
          cause: found.cause,
          evidence: [...evidence, ...found.evidence.map((e) => `the ICMP error: ${e}`)],
          fix: `let ICMP "fragmentation needed" (type 3 code 4) through in ${icmpNs}${found.fix ? ` (${found.fix})` : ''}; or make the MTUs on the path agree${dev ? ` (${dev} in ${ns} has ${mtu ?? '?'})` : ''}, or clamp TCP MSS to the path MTU (iptables -t mangle -A FORWARD -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu)`,
        };
      }
    } else {
      evidence.push(`no drop of that ICMP error was seen: if the sender still sends full-size packets, the ICMP error is lost further on (a firewall outside netwhy's view) or ignored`);
    }
    if (!dev || mtu === undefined) return null;
    return {
      cause: { type: 'route', ref: `dev ${dev} mtu ${mtu}`, value: `mtu ${mtu}`, netns: ns },
      evidence,
      fix: `make the MTUs on the path agree (${dev} in ${ns} has ${mtu}, the endpoints send larger packets: ip link set ${dev} mtu <the endpoints' MTU>, or lower the pods' MTU in the CNI configuration), or clamp TCP MSS to the path MTU`,
    };
  },
};

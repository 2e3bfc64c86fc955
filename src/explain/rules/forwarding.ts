// ip_forward / per-device forwarding off: the kernel found a route that
// forwards the packet, then refused to forward (ip_route_input_slow sets
// -EHOSTUNREACH when !IN_DEV_FORWARD(in_dev); ip_error drops it as
// IP_INADDRERRORS). IN_DEV_FORWARD is the ingress device's own
// conf.<dev>.forwarding; writing net.ipv4.ip_forward sets all of them.
import { isReversePathCheck } from '../../model/route.js';
import { lookupText, lookupsBefore } from '../evidence.js';
import { confKey, confKey6 } from '../../state/parsers.js';
import { AF_INET6 } from '../../abi.js';
import type { ExplainRule, Finding, FibRecord, NetnsState } from '../types.js';

/**
 * IPv6: ip6_forward() refuses unless net.ipv6.conf.all.forwarding is on (or,
 * since 6.17, force_forwarding on the ingress device), counts
 * IPSTATS_MIB_INADDRERRORS and drops with IP_INADDRERRORS, sending nothing
 * back. A device's own conf.<dev>.forwarding does not gate forwarding in
 * IPv6: it makes the device act as a router (no RAs accepted, routers' NA
 * flag), unlike IPv4's IN_DEV_FORWARD.
 */
function ipv6Forwarding(st: NetnsState, ns: string, iif: string, lookup: FibRecord): Finding | null {
  const all = st.sysctl(confKey6('all', 'forwarding'));
  const force = st.sysctl(confKey6(iif, 'force_forwarding'));
  const dev = st.sysctl(confKey6(iif, 'forwarding'));
  if (all !== '0' || force === '1') return null; // on now: cannot confirm
  const key = 'net.ipv6.conf.all.forwarding';
  const devNote = dev === undefined ? '' : `; net.ipv6.conf.${iif}.forwarding = ${dev}${dev === '1' ? ' does not change that: in IPv6 a device\'s own forwarding only makes it act as a router' : ''}`;
  const forceNote = force === undefined ? '' : ` (net.ipv6.conf.${iif}.force_forwarding = ${force})`;
  return {
    cause: { type: 'sysctl', ref: key, value: '0', netns: ns },
    evidence: [
      `${lookupText(lookup, ns)}: the packet is not for this host, it must be forwarded`,
      `${key} = 0 in ${ns}${forceNote}: ip6_forward forwards nothing that arrives on ${iif}${devNote}`,
      `dropped in ip6_forward with IP_INADDRERRORS: IPv6 forwarding is disabled (no ICMPv6 error goes back)`,
    ],
    fix: `sysctl -w ${key}=1 in ${ns}, and persist it in /etc/sysctl.d/ (it sets every device's forwarding too; a node that must keep accepting router advertisements needs accept_ra=2)`,
  };
}

export const forwardingRule: ExplainRule = {
  name: 'forwarding-off',
  reasons: ['IP_INADDRERRORS'],
  explain({ drop, journey, state, netnsName }) {
    const st = state(drop.pkt.netns);
    if (!st) return null;
    const ns = netnsName(drop.pkt.netns);
    const dst = drop.pkt.tuple.dst;
    const lookup = lookupsBefore(journey, drop.ts).reverse().find((f) => f.dst === dst && f.err === 0 && !isReversePathCheck(f));
    if (!lookup) return null;
    const iif = drop.pkt.dev;
    if (drop.pkt.tuple.family === AF_INET6) return ipv6Forwarding(st, ns, iif, lookup);
    const devFwd = st.sysctl(confKey(iif, 'forwarding'));
    const ipForward = st.sysctl('net.ipv4.ip_forward');
    if (devFwd !== '0') return null; // forwarding is on now: cannot confirm, let the fallback say so
    const key = ipForward === '0' ? 'net.ipv4.ip_forward' : `net.ipv4.conf.${iif}.forwarding`;
    const evidence = [
      `${lookupText(lookup, ns)}: the packet is not for this host, it must be forwarded`,
      `${key} = 0 in ${ns}${key === 'net.ipv4.ip_forward' ? '' : ` (net.ipv4.ip_forward = ${ipForward ?? '?'})`}: the kernel does not forward what arrives on ${iif}`,
      `dropped in ip_error with IP_INADDRERRORS: the kernel's forwarding-disabled path (an ICMP host unreachable goes back)`,
    ];
    const fix = key === 'net.ipv4.ip_forward'
      ? `sysctl -w net.ipv4.ip_forward=1 in ${ns}, and persist it in /etc/sysctl.d/ (kube-proxy, IPVS and every CNI need forwarding on)`
      : `sysctl -w net.ipv4.conf.${iif}.forwarding=1 in ${ns}, and persist it in /etc/sysctl.d/`;
    return { cause: { type: 'sysctl', ref: key, value: '0', netns: ns }, evidence, fix };
  },
};

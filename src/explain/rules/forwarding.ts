// ip_forward / per-device forwarding off: the kernel found a route that
// forwards the packet, then refused to forward (ip_route_input_slow sets
// -EHOSTUNREACH when !IN_DEV_FORWARD(in_dev); ip_error drops it as
// IP_INADDRERRORS). IN_DEV_FORWARD is the ingress device's own
// conf.<dev>.forwarding; writing net.ipv4.ip_forward sets all of them.
import { isReversePathCheck } from '../../model/route.js';
import { lookupText, lookupsBefore } from '../evidence.js';
import { confKey } from '../../state/parsers.js';
import type { ExplainRule } from '../types.js';

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

// disable_ipv6 on a device: ip6_rcv_core drops every IPv6 packet the device
// receives, and ip6_output / ip6_finish_output every one it would send, both
// with IPV6DISABLED (idev->cnf.disable_ipv6 is the device's own key; writing
// net.ipv6.conf.all.disable_ipv6 sets it on every device). Turning it on also
// removes the device's IPv6 addresses, and turning it off does not bring them back.
import { ipFamily } from '../../model/ip.js';
import { confKey6 } from '../../state/parsers.js';
import { tupleText } from '../evidence.js';
import type { ExplainRule } from '../types.js';

export const ipv6DisabledRule: ExplainRule = {
  name: 'ipv6-disabled',
  reasons: ['IPV6DISABLED'],
  explain({ drop, state, netnsName, func }) {
    const st = state(drop.pkt.netns);
    if (!st) return null;
    const dev = drop.pkt.dev;
    const devKey = confKey6(dev, 'disable_ipv6');
    if (st.sysctl(devKey) !== '1') return null; // on again now: cannot confirm
    const ns = netnsName(drop.pkt.netns);
    const allKey = confKey6('all', 'disable_ipv6');
    const all = st.sysctl(allKey);
    const key = all === '1' ? allKey : devKey;
    const fn = func(drop.location) ?? 'the IPv6 stack';
    const received = !/output|xmit/.test(fn);
    const addrs = st.addrs.filter((a) => a.dev === dev && ipFamily(a.address) === 6).map((a) => `${a.address}/${a.prefixlen}`);
    return {
      cause: { type: 'sysctl', ref: key, value: '1', netns: ns },
      evidence: [
        `${tupleText(drop.pkt.tuple)} ${received ? 'arrived on' : 'was to leave by'} ${dev} in ${ns}`,
        `${devKey} = 1 in ${ns}${all === '1' ? ` (${allKey} = 1 sets it on every device)` : ''}: IPv6 is off on ${dev}, the kernel ${received ? 'drops every IPv6 packet the device receives' : 'sends no IPv6 packet out of it'}`,
        addrs.length ? `${dev} still lists ${addrs.join(', ')}` : `${dev} has no IPv6 address: disabling IPv6 removed them`,
        `dropped in ${fn} with IPV6DISABLED (nothing goes back to the sender)`,
      ],
      fix: `sysctl -w ${key}=0${key === devKey ? '' : ` ${devKey}=0`} in ${ns}, then add ${dev}'s IPv6 addresses and routes back (disabling removed them), and remove what sets it (/etc/sysctl.d/, a CNI or NetworkManager's ipv6.method=disabled)`,
    };
  },
};

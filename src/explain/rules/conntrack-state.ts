// Conntrack's own verdicts on a packet: INVALID (a packet that does not fit
// the TCP state conntrack tracks, dropped by a `--ctstate INVALID -j DROP`
// rule such as kube-proxy's in KUBE-FORWARD), and a full table (no entry can
// be made for a new connection: conntrack itself drops it). The sysctls and
// counters that explain each go in the evidence.
import { PktFlag } from '../../abi.js';
import type { ExplainRule, NetnsState } from '../types.js';
import { tupleText } from '../evidence.js';
import type { Finding, RuleInput } from '../types.js';
import { ctStates, hookSiteFromStack, netfilterRule, packetAt } from './netfilter.js';

const num = (v: string | undefined) => (v === undefined || v === '' || Number.isNaN(Number(v)) ? undefined : Number(v));

function sysctlLine(st: NetnsState, key: string, ns: string, meaning: (v: string) => string): string[] {
  const v = st.sysctl(key);
  return v === undefined ? [] : [`${key} = ${v} in ${ns}: ${meaning(v)}`];
}

const INVALID_RULE = /--ctstate (\S+,)?INVALID\b/;

/**
 * The netfilter rule's finding when the rule that dropped the packet matches
 * INVALID. A packet conntrack gave no entry to (none on the skb where the
 * hook ran) is INVALID to `-m conntrack`; the netfilter rule takes a packet
 * without an entry for NEW, so it is evaluated again as INVALID here.
 */
function invalidDrop(input: RuleInput): Finding | null {
  const found = netfilterRule.explain(input);
  if (found) return found.cause.type === 'iptables-rule' && INVALID_RULE.test(found.cause.ref) ? found : null;
  const { drop, state, netnsName, func } = input;
  const st = state(drop.pkt.netns);
  const site = hookSiteFromStack([func(drop.location), ...drop.stack.map((a) => func(a))]);
  if (drop.pkt.flags & PktFlag.HAS_CT || !site || !st?.netfilter) return null;
  const pkt = { ...packetAt(site, input), ctstate: ['INVALID'] };
  const f = st.netfilter.evaluate(site.hook, pkt);
  if ((f.verdict !== 'DROP' && f.verdict !== 'REJECT') || !INVALID_RULE.test(f.rule) || f.packets === 0) return null;
  const ns = netnsName(drop.pkt.netns);
  const evidence = [
    `${tupleText(drop.pkt.tuple)} (no conntrack entry: INVALID) was dropped at the ${site.hook} hook in ${ns} (nf_hook_slow called from ${site.caller})`,
    `evaluating it against the ${st.netfilter.backend} ruleset of ${ns}: ${f.verdict} by table ${f.table}, chain ${f.chain}: ${f.rule}`,
  ];
  if (f.trail.length) evidence.push(`on the way: ${f.trail.join(' → ')}`);
  if (f.packets !== undefined) evidence.push(`the rule's counter shows ${f.packets} packet${f.packets === 1 ? '' : 's'}`);
  const fix = f.chain.startsWith('KUBE-')
    ? `the rule is kube-proxy's (chain ${f.chain}) and comes back when deleted: keep it, and stop the packets from being INVALID`
    : `change or delete the rule in ${ns}: ${f.rule.replace(/^-A /, 'iptables -D ')}`;
  return { cause: { type: 'iptables-rule', ref: f.rule, value: f.verdict, netns: ns }, evidence, fix };
}

/** A `--ctstate INVALID` drop: the rule stays the cause, with why conntrack called the packet invalid. */
export const conntrackInvalidRule: ExplainRule = {
  name: 'conntrack-invalid',
  reasons: ['NETFILTER_DROP'],
  explain(input) {
    const found = invalidDrop(input);
    if (!found) return null;
    const { drop, state, netnsName } = input;
    const ns = netnsName(drop.pkt.netns);
    const st = state(drop.pkt.netns);
    const evidence = [
      ...found.evidence,
      `conntrack judged the packet INVALID: it does not fit the state conntrack keeps for its connection (a TCP segment outside the window it tracks, a reply whose entry was lost or never made, an ICMP error about nothing known)`,
    ];
    if (st) {
      evidence.push(...sysctlLine(st, 'net.netfilter.nf_conntrack_tcp_be_liberal', ns, (v) => (v === '0' ? 'out-of-window TCP segments are INVALID (1 would let them pass)' : 'out-of-window segments are accepted, so the packet was invalid for another reason')));
      evidence.push(...sysctlLine(st, 'net.netfilter.nf_conntrack_tcp_loose', ns, (v) => (v === '0' ? 'a connection whose entry was lost is not picked up mid-stream: its packets are INVALID' : 'connections are picked up mid-stream')));
      if (st.conntrack) evidence.push(`conntrack's invalid counter in ${ns}: ${st.conntrack.invalid} (conntrack -S)`);
    }
    const liberal = st?.sysctl('net.netfilter.nf_conntrack_tcp_be_liberal') === '0';
    return {
      cause: found.cause,
      evidence,
      fix: `${found.fix ?? `change the rule in ${ns}`}${liberal ? `; or accept out-of-window TCP: sysctl -w net.netfilter.nf_conntrack_tcp_be_liberal=1 in ${ns} (kube-proxy's --conntrack-tcp-be-liberal)` : ''}; and find what makes the packets invalid (asymmetric routing past this conntrack, a flushed table)`,
    };
  },
};

/** No rule dropped a new connection's packet, and the conntrack table is full. */
export const conntrackFullRule: ExplainRule = {
  name: 'conntrack-full',
  reasons: ['NETFILTER_DROP'],
  explain({ drop, state, netnsName }) {
    const st = state(drop.pkt.netns);
    if (!st) return null;
    const max = num(st.sysctl('net.netfilter.nf_conntrack_max'));
    const count = num(st.sysctl('net.netfilter.nf_conntrack_count'));
    if (max === undefined || count === undefined || count < max) return null;
    if (!ctStates(drop.pkt.flags, drop.pkt.ctStatus).includes('NEW') || drop.pkt.flags & PktFlag.HAS_CT) return null;
    const ns = netnsName(drop.pkt.netns);
    const evidence = [
      `net.netfilter.nf_conntrack_count = ${count} and net.netfilter.nf_conntrack_max = ${max} in ${ns}: the conntrack table is full`,
      `the dropped packet opened a new connection and has no conntrack entry: conntrack could not make one, so it dropped the packet (no rule of ${ns} did)`,
    ];
    if (st.conntrack) evidence.push(`conntrack's drop counter in ${ns}: ${st.conntrack.drop}, early_drop: ${st.conntrack.earlyDrop} (conntrack -S)`);
    return {
      cause: { type: 'conntrack', ref: 'nf_conntrack_max', value: `${count}/${max}`, netns: ns },
      evidence,
      fix: `raise net.netfilter.nf_conntrack_max (kube-proxy's --conntrack-max-per-core), or find what fills the table (conntrack -L | sort | uniq -c); shorter timeouts for short-lived UDP help`,
    };
  },
};

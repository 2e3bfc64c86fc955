// A netfilter verdict (NETFILTER_DROP from nf_hook_slow). The hook is read
// from the kernel stack: nf_hook_slow's caller names it (NF_HOOK is inlined
// into ip_rcv, ip_local_deliver, ip_forward, __ip_local_out, ip_output). The
// rule is found by evaluating the packet, as the kernel saw it, against the
// ruleset captured from that namespace, and confirmed by the rule's counter.
import { isReversePathCheck } from '../../model/route.js';
import { PktFlag } from '../../abi.js';
import { lookupsBefore, tupleText } from '../evidence.js';
import { kubeProxyMeaning } from '../kube-proxy.js';
import type { Cause, ExplainRule, Hook, NetfilterPacket, RuleInput } from '../types.js';

const HOOK_OF_CALLER: Record<string, Hook> = {
  ip_rcv: 'PREROUTING',
  ip_rcv_core: 'PREROUTING',
  ip_list_rcv: 'PREROUTING',
  ip_sublist_rcv: 'PREROUTING',
  ip_local_deliver: 'INPUT',
  ip_forward: 'FORWARD',
  __ip_local_out: 'OUTPUT',
  ip_local_out: 'OUTPUT',
  ip_output: 'POSTROUTING',
  ip_mc_output: 'POSTROUTING',
};

/** The hook whose nf_hook_slow dropped the packet, from the symbolized stack. */
export function hookFromStack(funcs: (string | undefined)[]): Hook | undefined {
  const i = funcs.indexOf('nf_hook_slow');
  for (const f of i >= 0 ? funcs.slice(i + 1) : funcs) {
    if (f && HOOK_OF_CALLER[f]) return HOOK_OF_CALLER[f];
  }
  return undefined;
}

const IPS_EXPECTED = 1 << 0;
const IPS_SEEN_REPLY = 1 << 1;

export function ctStates(flags: number, status: number): string[] {
  if (!(flags & PktFlag.HAS_CT)) return ['NEW'];
  const s = [status & IPS_EXPECTED ? 'RELATED' : status & IPS_SEEN_REPLY ? 'ESTABLISHED' : 'NEW'];
  if (flags & PktFlag.CT_DNAT) s.push('DNAT');
  if (flags & PktFlag.CT_SNAT) s.push('SNAT');
  return s;
}

function packetAt(hook: Hook, { drop, journey }: RuleInput): NetfilterPacket {
  const p = drop.pkt;
  // The device the packet leaves by, from the route lookup that sent it on.
  const out = lookupsBefore(journey, drop.ts).reverse().find((f) => f.err === 0 && f.dst === p.tuple.dst && !isReversePathCheck(f))?.nhDev;
  const ingress = hook === 'PREROUTING' || hook === 'INPUT' || hook === 'FORWARD';
  return {
    proto: p.tuple.proto,
    src: p.tuple.src,
    dst: p.tuple.dst,
    sport: p.flags & PktFlag.HAS_L4 ? p.tuple.sport : undefined,
    dport: p.flags & PktFlag.HAS_L4 ? p.tuple.dport : undefined,
    iif: ingress ? p.dev : undefined,
    oif: hook === 'POSTROUTING' ? p.dev : hook === 'FORWARD' || hook === 'OUTPUT' ? out : undefined,
    mark: p.mark,
    ctstate: ctStates(p.flags, p.ctStatus),
  };
}

function fixFor(chain: string, rule: string, ipset: { name: string; member: string } | undefined, ns: string): string {
  if (ipset && chain.startsWith('KUBE-ROUTER')) {
    return `${ipset.member} is in kube-router's ipset ${ipset.name} (it holds service/LoadBalancer IPs), so kube-router rejects traffic to it that is not for a service port: give the LoadBalancer service another IP (it must not reuse the API server or a node address), or exclude that address from kube-router's service IPs`;
  }
  if (chain.startsWith('KUBE-')) return `the rule belongs to kube-proxy (chain ${chain}); fix the Service/Endpoints it was generated from rather than the rule`;
  return `change or delete the rule in ${ns}: ${rule.replace(/^-A /, 'iptables -D ')}`;
}

export const netfilterRule: ExplainRule = {
  name: 'netfilter',
  reasons: ['NETFILTER_DROP'],
  explain(input) {
    const { drop, state, netnsName, func } = input;
    const ns = netnsName(drop.pkt.netns);
    const funcs = [func(drop.location), ...drop.stack.map((a) => func(a))];
    const hook = hookFromStack(funcs);
    const st = state(drop.pkt.netns);
    if (!hook || !st?.netfilter) return null;
    const pkt = packetAt(hook, input);
    const f = st.netfilter.evaluate(hook, pkt);
    if (f.verdict !== 'DROP' && f.verdict !== 'REJECT') return null;
    const evidence = [
      `${tupleText(drop.pkt.tuple)} (conntrack ${pkt.ctstate.join(',')}) was dropped at the ${hook} hook in ${ns} (nf_hook_slow called from ${funcs.find((x) => x && HOOK_OF_CALLER[x]) ?? '?'})`,
      `evaluating it against the ${st.netfilter.backend} ruleset of ${ns}: ${f.verdict} by table ${f.table}, chain ${f.chain}: ${f.rule}`,
    ];
    if (f.trail.length) evidence.push(`on the way: ${f.trail.join(' → ')}`);
    if (f.ipset) evidence.push(`ipset ${f.ipset.name} contains ${f.ipset.member}, which is what the rule matched`);
    if (f.packets !== undefined) evidence.push(f.packets > 0 ? `the rule's counter shows ${f.packets} packet${f.packets === 1 ? '' : 's'}` : `the rule's counter is 0: the match is not confirmed by the kernel`);
    if (f.uncertain.length) evidence.push(`not certain: ${f.uncertain.join('; ')}`);
    const confirmed = f.packets === undefined || f.packets > 0;
    if (!confirmed) return null;
    const cause: Cause = { type: 'iptables-rule', ref: f.rule, value: f.verdict, netns: ns, ipset: f.ipset };
    // kube-proxy says in the rule's comment which Service it was written for, and why.
    const kp = kubeProxyMeaning(f.rule, (svc) => input.names?.endpointsOf(svc.namespace ?? '', svc.name) ?? []);
    if (kp) {
      cause.k8s = [kp.service];
      evidence.push(...kp.evidence);
    }
    return { cause, evidence, fix: kp?.fix ?? fixFor(f.chain, f.rule, f.ipset, ns) };
  },
};

// A netfilter verdict (NETFILTER_DROP from nf_hook_slow). The hook is read
// from the kernel stack: nf_hook_slow's caller names it (NF_HOOK is inlined
// into ip_rcv, ip_local_deliver, ip_forward, __ip_local_out, ip_output; a
// bridged packet meets iptables from br_netfilter's br_nf_forward_ip and
// kin). The rule is found by evaluating the packet, as the kernel saw it,
// against the ruleset captured from that namespace, and confirmed by the
// rule's counter.
import { isReversePathCheck } from '../../model/route.js';
import { AF_INET6, PktFlag } from '../../abi.js';
import { lookupsBefore, tupleText } from '../evidence.js';
import { kubeProxyMeaning } from '../kube-proxy.js';
import { namePolicy } from '../netpol.js';
import { nftMeaning } from '../nft.js';
import type { Cause, ExplainRule, Finding, Hook, NetfilterFinding, NetfilterPacket, RuleInput } from '../types.js';

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
  // IPv6 (net/ipv6/ip6_input.c, ip6_output.c)
  ipv6_rcv: 'PREROUTING',
  ipv6_list_rcv: 'PREROUTING',
  ip6_sublist_rcv: 'PREROUTING',
  ip6_input: 'INPUT',
  ip6_forward: 'FORWARD',
  __ip6_local_out: 'OUTPUT',
  ip6_local_out: 'OUTPUT',
  ip6_xmit: 'OUTPUT',
  ip6_output: 'POSTROUTING',
};

/** br_netfilter runs the IPv4 hooks for bridged frames (net.bridge.bridge-nf-call-iptables=1). */
const BRIDGED_HOOK_OF_CALLER: Record<string, Hook> = {
  br_nf_pre_routing: 'PREROUTING',
  br_nf_pre_routing_ipv6: 'PREROUTING',
  br_nf_forward_ip: 'FORWARD',
  br_nf_forward: 'FORWARD',
  br_nf_post_routing: 'POSTROUTING',
};

/** The bridge family's own hooks (ebtables, nft bridge tables): not iptables. */
const BRIDGE_FAMILY_CALLERS = new Set(['__br_forward', 'br_forward_finish', 'br_handle_frame', 'br_handle_frame_finish', 'br_pass_frame_up', 'br_dev_queue_push_xmit', 'br_forward']);

/** `br_nf_forward_ip.part.0` → `br_nf_forward_ip`: the compiler's clone suffixes. */
export const baseName = (f: string): string => f.replace(/\.(part|isra|constprop|cold|llvm)(\.\d+)?/g, '');

export interface HookSite {
  hook: Hook;
  /** the function that ran the hook (nf_hook_slow's caller) */
  caller: string;
  /** run by br_netfilter for a frame crossing a bridge */
  bridged: boolean;
}

/** Where nf_hook_slow dropped the packet, from the symbolized stack: the first known caller after it. */
export function hookSiteFromStack(funcs: (string | undefined)[]): HookSite | undefined {
  const i = funcs.indexOf('nf_hook_slow');
  for (const raw of i >= 0 ? funcs.slice(i + 1) : funcs) {
    if (!raw) continue;
    const f = baseName(raw);
    if (HOOK_OF_CALLER[f]) return { hook: HOOK_OF_CALLER[f], caller: raw, bridged: false };
    if (BRIDGED_HOOK_OF_CALLER[f]) return { hook: BRIDGED_HOOK_OF_CALLER[f], caller: raw, bridged: true };
    if (BRIDGE_FAMILY_CALLERS.has(f)) return undefined;
  }
  return undefined;
}

/** The hook whose nf_hook_slow dropped the packet, from the symbolized stack. */
export function hookFromStack(funcs: (string | undefined)[]): Hook | undefined {
  return hookSiteFromStack(funcs)?.hook;
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

/**
 * The bridge ports of the packet at the hook, as br_netfilter records them: physIn is the port it
 * came in by (the last device it was received on in this namespace, when that is a bridge port),
 * physOut the port a bridged packet leaves by (skb->dev when br_nf_forward_ip hands it to the
 * FORWARD hook). Undefined when the namespace's links are not known.
 */
export function bridgePorts(site: HookSite, { drop, journey, state }: RuleInput): { physIn?: string | null; physOut?: string | null; bridge?: string } {
  const links = state(drop.pkt.netns)?.links;
  if (!links) return {};
  const master = (dev: string | undefined) => links.find((l) => l.name === dev)?.master;
  const isBridge = (dev: string | undefined) => links.some((l) => l.name === dev && l.kind === 'bridge');
  // The last receive in this namespace, passing over the bridge's own rx when a port's came first
  // (a frame the bridge passes up is received twice: on the port, then on the bridge).
  const rxs = journey.records.filter((r) => r.kind === 'rx' && r.ts <= drop.ts && r.pkt.netns === drop.pkt.netns);
  let inDev: string | undefined;
  for (const r of rxs.reverse()) {
    if (r.kind !== 'rx') continue;
    inDev = r.pkt.dev;
    if (!isBridge(inDev)) break;
  }
  if (inDev === undefined) return site.bridged ? {} : { physIn: null, physOut: null };
  const inBridge = isBridge(master(inDev));
  const physIn = inBridge ? inDev : null;
  if (!site.bridged) return { physIn, physOut: null };
  if (!inBridge) return {};
  const bridge = master(inDev);
  const out = site.hook === 'FORWARD' || site.hook === 'POSTROUTING' ? drop.pkt.dev : undefined;
  const physOut = out === undefined ? null : master(out) === bridge ? out : undefined;
  return { physIn, physOut, bridge };
}

export function packetAt(site: HookSite, input: RuleInput): NetfilterPacket {
  const { drop, journey } = input;
  const { hook } = site;
  const p = drop.pkt;
  // The device the packet leaves by, from the route lookup that sent it on.
  const ports = bridgePorts(site, input);
  // A bridged packet's IP devices are the bridge itself (br_netfilter's logical devices).
  const out = site.bridged ? ports.bridge : lookupsBefore(journey, drop.ts).reverse().find((f) => f.err === 0 && f.dst === p.tuple.dst && !isReversePathCheck(f))?.nhDev;
  const ingress = hook === 'PREROUTING' || hook === 'INPUT' || hook === 'FORWARD';
  const dev = site.bridged ? ports.bridge : p.dev;
  return {
    ...(ports.physIn !== undefined ? { physIn: ports.physIn } : {}),
    ...(ports.physOut !== undefined ? { physOut: ports.physOut } : {}),
    proto: p.tuple.proto,
    src: p.tuple.src,
    dst: p.tuple.dst,
    sport: p.flags & PktFlag.HAS_L4 ? p.tuple.sport : undefined,
    dport: p.flags & PktFlag.HAS_L4 ? p.tuple.dport : undefined,
    iif: ingress ? dev : undefined,
    oif: hook === 'POSTROUTING' ? dev : hook === 'FORWARD' || hook === 'OUTPUT' ? out : undefined,
    mark: p.mark,
    ctstate: ctStates(p.flags, p.ctStatus),
  };
}

function bridgedText(p: NetfilterPacket, tool: string): string {
  const ports = p.physIn && p.physOut ? ` from port ${p.physIn} to port ${p.physOut}` : p.physIn ? ` in by port ${p.physIn}` : '';
  const bridge = p.iif ?? p.oif;
  return `the packet was bridged${bridge ? ` by ${bridge}` : ''}${ports}: br_netfilter (net.bridge.bridge-nf-call-${tool}=1) ran ${tool} for it, where -m physdev sees those ports`;
}

function fixFor(chain: string, rule: string, ipset: { name: string; member: string } | undefined, ns: string, tool: string): string {
  if (ipset && chain.startsWith('KUBE-ROUTER')) {
    return `${ipset.member} is in kube-router's ipset ${ipset.name} (it holds service/LoadBalancer IPs), so kube-router rejects traffic to it that is not for a service port: give the LoadBalancer service another IP (it must not reuse the API server or a node address), or exclude that address from kube-router's service IPs`;
  }
  if (chain.startsWith('KUBE-')) return `the rule belongs to kube-proxy (chain ${chain}); fix the Service/Endpoints it was generated from rather than the rule`;
  return `change or delete the rule in ${ns}: ${rule.replace(/^-A /, `${tool} -D `)}`;
}

/**
 * What the rule's counter says. With a reading from before the command, only the rule's own
 * growth confirms it; with none (older recordings), any count does, as before.
 */
function counterEvidence(f: NetfilterFinding): { text?: string; confirmed: boolean } {
  if (f.packets === undefined) return { confirmed: true };
  const plural = (n: number) => `${n} packet${n === 1 ? '' : 's'}`;
  if (f.packetsBefore !== undefined) {
    const grew = f.packets - f.packetsBefore;
    return grew > 0
      ? { text: `the rule's counter grew by ${plural(grew)} during the command (${f.packetsBefore} → ${f.packets})`, confirmed: true }
      : { text: `the rule's counter did not move during the command (${f.packets}): the match is not confirmed by the kernel`, confirmed: false };
  }
  return f.packets > 0 ? { text: `the rule's counter shows ${plural(f.packets)}`, confirmed: true } : { text: `the rule's counter is 0: the match is not confirmed by the kernel`, confirmed: false };
}

/** A drop decided by a native nftables rule: the rule as nft prints it, the path, the element. */
function nftFinding(f: NetfilterFinding, site: HookSite, pkt: NetfilterPacket, ns: string, backend: string, input: RuleInput): Finding | null {
  const { drop } = input;
  const evidence = [
    `${tupleText(drop.pkt.tuple)} (conntrack ${pkt.ctstate.join(',')}) was dropped at the ${site.hook} hook in ${ns} (nf_hook_slow called from ${site.caller})`,
    `evaluating it against the ${backend} ruleset of ${ns}: ${f.verdict} by ${f.rule}`,
  ];
  if (site.bridged) evidence.push(bridgedText(pkt, drop.pkt.tuple.family === AF_INET6 ? 'ip6tables' : 'iptables'));
  if (f.trail.length > 1) evidence.push(`on the way: ${f.trail.join(' → ')}`);
  const el = f.nft?.element;
  if (el) evidence.push(`the packet matched element ${el.key}${el.comment !== undefined ? ` (comment "${el.comment}")` : ''} of ${el.set === 'anonymous map' ? 'an anonymous map' : `@${el.set}`}${el.value ? `, which says ${el.value}` : ''}`);
  const counted = counterEvidence(f);
  if (counted.text) evidence.push(counted.text);
  if (f.uncertain.length) evidence.push(`not certain: ${f.uncertain.join('; ')}`);
  if (!counted.confirmed) return null;
  const cause: Cause = { type: 'nft-rule', ref: f.rule, value: f.verdict, netns: ns };
  const meaning = nftMeaning(f, pkt, (svc) => input.names?.endpointsOf(svc.namespace ?? '', svc.name) ?? []);
  if (meaning?.service) cause.k8s = [meaning.service];
  if (meaning) evidence.push(...meaning.evidence);
  const n = f.nft!;
  const fix = meaning?.fix ?? (n.policy
    ? `the packet fell through to the policy of chain ${n.chain} in table ${n.family} ${n.table}: add a rule that accepts it there, or change the policy (nft list chain ${n.family} ${n.table} ${n.chain})`
    : `change or delete the rule in ${ns}: nft delete rule ${n.family} ${n.table} ${n.chain} handle ${n.handle ?? '?'}${el ? `, or delete the element: nft delete element ${n.family} ${n.table} ${el.set} { ${el.key} }` : ''}`);
  return { cause, evidence, fix };
}

/** A reverse-path DROP that was decided: the path is what to fix, not the rule. */
function rpfilterFix(f: NetfilterFinding, pkt: NetfilterPacket, ns: string): string | undefined {
  if (!/(^| )-m rpfilter( |$)/.test(f.rule) || !f.notes?.some((n) => n.startsWith('-m rpfilter: the route back'))) return undefined;
  return `make the path symmetric in ${ns}: the route back to ${pkt.src} should leave by ${pkt.iif}, where its packets arrive (ip -6 route get ${pkt.src}); or add --loose to this rule if the asymmetry is intended (deleting the rule turns reverse-path filtering off)`;
}

export const netfilterRule: ExplainRule = {
  name: 'netfilter',
  reasons: ['NETFILTER_DROP'],
  explain(input) {
    const { drop, state, netnsName, func } = input;
    const ns = netnsName(drop.pkt.netns);
    const funcs = [func(drop.location), ...drop.stack.map((a) => func(a))];
    const site = hookSiteFromStack(funcs);
    const st = state(drop.pkt.netns);
    if (!site || !st?.netfilter) return null;
    const { hook } = site;
    const pkt = packetAt(site, input);
    const f = st.netfilter.evaluate(hook, pkt);
    if (f.verdict !== 'DROP' && f.verdict !== 'REJECT') return null;
    if (f.source === 'nft') return nftFinding(f, site, pkt, ns, st.netfilter.backendFor?.(drop.pkt.tuple.family === AF_INET6 ? 6 : 4) ?? st.netfilter.backend, input);
    const v6 = drop.pkt.tuple.family === AF_INET6;
    const tool = v6 ? 'ip6tables' : 'iptables';
    const backend = st.netfilter.backendFor?.(v6 ? 6 : 4) ?? st.netfilter.backend;
    const evidence = [
      `${tupleText(drop.pkt.tuple)} (conntrack ${pkt.ctstate.join(',')}) was dropped at the ${hook} hook in ${ns} (nf_hook_slow called from ${site.caller})`,
      `evaluating it against the ${backend} ruleset of ${ns}: ${f.verdict} by table ${f.table}, chain ${f.chain}: ${f.rule}`,
    ];
    if (site.bridged) evidence.push(bridgedText(pkt, tool));
    if (f.trail.length) evidence.push(`on the way: ${f.trail.join(' → ')}`);
    if (f.ipset) evidence.push(`ipset ${f.ipset.name} contains ${f.ipset.member}, which is what the rule matched`);
    const counted = counterEvidence(f);
    if (counted.text) evidence.push(counted.text);
    if (f.notes) evidence.push(...f.notes);
    if (f.uncertain.length) evidence.push(`not certain: ${f.uncertain.join('; ')}`);
    if (!counted.confirmed) return null;
    const cause: Cause = { type: 'iptables-rule', ref: f.rule, value: f.verdict, netns: ns, ipset: f.ipset };
    // The rule's writer says whom it was for: a NetworkPolicy controller (the policies
    // that isolate the pod), or kube-proxy (the Service, and why) in its comment.
    const policy = namePolicy(f, st.netfilter, hook, pkt);
    const kp = policy ? undefined : kubeProxyMeaning(f.rule, (svc) => input.names?.endpointsOf(svc.namespace ?? '', svc.name) ?? []);
    const named = policy ? { refs: policy.refs, evidence: policy.evidence, fix: policy.fix } : kp && { refs: [kp.service], evidence: kp.evidence, fix: kp.fix };
    if (named) {
      cause.k8s = named.refs;
      evidence.push(...named.evidence);
    }
    return { cause, evidence, fix: named?.fix ?? rpfilterFix(f, pkt, ns) ?? fixFor(f.chain, f.rule, f.ipset, ns, tool) };
  },
};

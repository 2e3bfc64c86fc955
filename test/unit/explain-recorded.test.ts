// The explanation rules on recorded journeys and captured state: each capture
// was recorded on this kernel by test/fixtures/recordings/make.sh (a client,
// a router and a server in namespaces, one fault each).
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { explainCapture } from '../../src/explain/capture.js';
import { effectiveRpFilter } from '../../src/explain/rules/rpfilter.js';
import { bridgePorts, hookFromStack, hookSiteFromStack, ctStates } from '../../src/explain/rules/netfilter.js';
import { bestRoute } from '../../src/model/route.js';
import { ipv6ReversePath } from '../../src/model/route.js';
import { PktFlag } from '../../src/abi.js';
import { RecordingError, decodeCapture, encodeCapture } from '../../src/recording.js';
import { netfilterEvaluator } from '../../src/state/netfilter.js';
import { expectValid } from '../helpers/schema.js';
import { documentText } from '../../src/render/explanation.js';

const DIR = resolve(__dirname, '../fixtures/recordings');
const load = (name: string) => decodeCapture(readFileSync(`${DIR}/${name}.nwrec`));
/** The document of a recording, valid against docs/schemas/explain.schema.json. */
const explain = (name: string) => expectValid('explain', explainCapture(load(name)));

describe('explain on recorded captures', () => {
  it('a delivered request: one flow, delivered, no cause', () => {
    const doc = explain('delivered');
    expect(doc.exitCode).toBe(0);
    expect(doc.flows).toHaveLength(1);
    expect(doc.flows[0].verdict.outcome).toBe('delivered');
    expect(doc.flows[0].orig).toMatchObject({ dst: '10.199.2.2', dport: 80 });
    // the path crosses all three namespaces and comes back
    const ns = new Set(doc.flows[0].hops.map((h) => h.netns));
    expect([...ns].sort()).toEqual(['nwr-client', 'nwr-router', 'nwr-server']);
  });

  it('ip_forward off on the router: sysctl net.ipv4.ip_forward', () => {
    const [f] = explain('ip-forward-off').flows;
    expect(f.verdict).toMatchObject({
      outcome: 'dropped',
      where: { netns: 'nwr-router', dev: 'eth0', function: 'ip_error', reason: 'IP_INADDRERRORS' },
      cause: { type: 'sysctl', ref: 'net.ipv4.ip_forward', value: '0', netns: 'nwr-router' },
    });
    expect(f.verdict.evidence[0]).toContain('route lookup 10.199.1.1 > 10.199.2.2 in nwr-router');
    expect(f.verdict.fix).toContain('sysctl -w net.ipv4.ip_forward=1');
  });

  it('forwarding off on the ingress device only: the per-device key', () => {
    const [f] = explain('dev-forwarding-off').flows;
    expect(f.verdict.cause).toMatchObject({ type: 'sysctl', ref: 'net.ipv4.conf.eth0.forwarding', value: '0' });
  });

  it('no route on the router: route cause with the failed lookups as evidence', () => {
    const doc = explain('no-route');
    expect(doc.flows).toHaveLength(1); // the ICMP error purged at close is not a flow of its own
    const [f] = doc.flows;
    expect(f.verdict).toMatchObject({ outcome: 'dropped', where: { reason: 'IP_INNOROUTES' }, cause: { type: 'route', ref: 'no route to 10.199.9.9', netns: 'nwr-router' } });
    expect(f.verdict.evidence.join('\n')).toContain('no default route');
  });

  it('strict rp_filter: the key in force, its value, and the reverse lookup', () => {
    const [f] = explain('rp-filter-strict').flows;
    expect(f.verdict).toMatchObject({ outcome: 'dropped', where: { reason: 'IP_RPFILTER' }, cause: { type: 'sysctl', ref: 'net.ipv4.conf.all.rp_filter', value: '1' } });
    const ev = f.verdict.evidence.join('\n');
    expect(ev).toContain('reverse-path lookup of 10.199.2.77');
    expect(ev).toContain('the route back leaves by eth1, not by eth0');
    expect(ev).toContain('= 1 (strict');
  });

  it('no listener: socket cause; a secondary address is named as such', () => {
    expect(explain('no-socket').flows[0].verdict.cause).toMatchObject({ type: 'socket', ref: 'tcp 10.199.2.2:81', value: 'no listener', netns: 'nwr-server' });
    const sec = explain('no-socket-secondary').flows[0].verdict;
    expect(sec.cause).toMatchObject({ type: 'socket', ref: 'tcp 10.199.2.50:81', value: 'no listener (secondary address)' });
    expect(sec.evidence.join('\n')).toContain('10.199.2.50 is a secondary address on eth0 (primary 10.199.2.2)');
  });

  it('no drop and no reply: an honest unknown that says where the flow was last seen', () => {
    const [f] = explain('unknown-no-drop').flows;
    expect(f.verdict.outcome).toBe('unknown');
    expect(f.verdict.cause.type).toBe('unknown');
    expect(f.verdict.evidence.join('\n')).toContain('last seen: rx on eth0 in nwr-server');
  });

  it('an iptables REJECT: the hook from the stack, the rule line, its counter', () => {
    const [f] = explain('iptables-reject').flows;
    expect(f.verdict).toMatchObject({
      outcome: 'dropped',
      where: { reason: 'NETFILTER_DROP', netns: 'nwr-router' },
      cause: { type: 'iptables-rule', value: 'REJECT', netns: 'nwr-router', ref: '-A FORWARD -d 10.199.2.2/32 -p tcp -m tcp --dport 80 -m comment --comment "block web" -j REJECT --reject-with icmp-port-unreachable' },
    });
    const ev = f.verdict.evidence.join('\n');
    expect(ev).toContain('at the FORWARD hook in nwr-router (nf_hook_slow called from ip_forward)');
    expect(ev).toContain("the rule's counter shows 1 packet");
  });

  it("kube-proxy's REJECT of a Service without endpoints names the Service (cause.k8s) and gives the Service-level fix", () => {
    const [f] = explain('kube-proxy-no-endpoints').flows;
    expect(f.verdict).toMatchObject({
      outcome: 'dropped',
      where: { reason: 'NETFILTER_DROP', netns: 'nwr-router' },
      cause: { type: 'iptables-rule', value: 'REJECT', k8s: [{ kind: 'service', namespace: 'shop', name: 'cart', port: 'http' }] },
    });
    expect(f.verdict.evidence).toContain("kube-proxy wrote this rule because Service shop/cart port http has no ready endpoints: it rejects the Service's traffic instead of forwarding it");
    expect(f.verdict.fix).toContain('kubectl get endpointslices -n shop -l kubernetes.io/service-name=cart');
  });

  it('DNAT on the router: the flow keeps its original tuple and names the rule that rewrote it', () => {
    const [f] = explain('dnat-delivered').flows;
    expect(f.orig).toMatchObject({ dst: '10.199.1.2', dport: 8080 });
    expect(f.nat[0]).toMatchObject({
      kind: 'dnat', to: { dst: '10.199.2.2', dport: 80 }, netns: 'nwr-router',
      by: { type: 'iptables-rule', ref: '-A PREROUTING -d 10.199.1.2/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.199.2.2:80' },
    });
    expect(f.verdict.outcome).toBe('delivered');
  });
});

// The IPv6 twins, recorded on the same topology's IPv6 plan by `make.sh v6`:
// client fd00:199:1::1, router fd00:199:1::2 | fd00:199:2::1, server fd00:199:2::2.
describe('explain on recorded IPv6 captures', () => {
  const text = (name: string) => documentText(explain(name));

  it('a delivered request: one flow through all three namespaces, bracketed in text', () => {
    const doc = explain('delivered-v6');
    expect(doc.exitCode).toBe(0);
    expect(doc.flows).toHaveLength(1);
    const [f] = doc.flows;
    expect(f.verdict.outcome).toBe('delivered');
    expect(f.orig).toMatchObject({ src: 'fd00:199:1::1', dst: 'fd00:199:2::2', dport: 80 });
    expect([...new Set(f.hops.map((h) => h.netns))].sort()).toEqual(['nwr-client', 'nwr-router', 'nwr-server']);
    expect(text('delivered-v6')).toMatch(/flow 1: tcp \[fd00:199:1::1\]:\d+ > \[fd00:199:2::2\]:80\n/);
    expect(text('delivered-v6')).toMatch(/the reply reached \[fd00:199:1::1\]:\d+ from \[fd00:199:2::2\]:80/);
  });

  it('no listener: the socket cause at tcp_v6_rcv, with the bracketed address:port', () => {
    const [f] = explain('no-socket-v6').flows;
    expect(f.verdict).toMatchObject({
      outcome: 'dropped',
      where: { netns: 'nwr-server', dev: 'eth0', function: 'tcp_v6_rcv', reason: 'NO_SOCKET' },
      cause: { type: 'socket', ref: 'tcp [fd00:199:2::2]:81', value: 'no listener', netns: 'nwr-server' },
    });
    expect(f.verdict.evidence.join('\n')).toMatch(/no tcp socket is bound to \[fd00:199:2::2\]:81/);
    expect(f.verdict.fix).toContain('start a listener on [fd00:199:2::2]:81 (tcp) in nwr-server');
    expect(text('no-socket-v6')).toContain('cause     socket tcp [fd00:199:2::2]:81 = no listener (netns nwr-server)');
  });

  it('IPv6 forwarding off on the router: net.ipv6.conf.all.forwarding, dropped in ip6_forward', () => {
    const [f] = explain('ip-forward-off-v6').flows;
    expect(f.verdict).toMatchObject({
      outcome: 'dropped',
      where: { netns: 'nwr-router', dev: 'eth0', function: 'ip6_forward', reason: 'IP_INADDRERRORS' },
      cause: { type: 'sysctl', ref: 'net.ipv6.conf.all.forwarding', value: '0', netns: 'nwr-router' },
    });
    expect(f.verdict.evidence[0]).toBe('route lookup fd00:199:1::1 > fd00:199:2::2 in nwr-router (table 254): dev eth1: the packet is not for this host, it must be forwarded');
    expect(f.verdict.evidence.join('\n')).toContain('ip6_forward forwards nothing that arrives on eth0');
    expect(f.verdict.fix).toContain('sysctl -w net.ipv6.conf.all.forwarding=1 in nwr-router');
    expect(text('ip-forward-off-v6')).toContain('cause     sysctl net.ipv6.conf.all.forwarding = 0 (netns nwr-router)');
  });

  it('no IPv6 route on the router: the route cause lists only IPv6 routes', () => {
    const doc = explain('no-route-v6');
    expect(doc.flows).toHaveLength(1);
    const [f] = doc.flows;
    expect(f.verdict).toMatchObject({
      outcome: 'dropped',
      where: { netns: 'nwr-router', dev: 'eth0', reason: 'IP_INNOROUTES' },
      cause: { type: 'route', ref: 'no route to fd00:199:9::9', netns: 'nwr-router' },
    });
    const ev = f.verdict.evidence.join('\n');
    expect(ev).toContain('nothing covers fd00:199:9::9 and there is no default route');
    expect(ev).toContain('fd00:199:2::/64 dev eth1');
    expect(ev).not.toContain('10.199.'); // the router's IPv4 routes are no evidence for an IPv6 drop
    expect(text('no-route-v6')).toMatch(/flow 1: tcp \[fd00:199:1::1\]:\d+ > \[fd00:199:9::9\]:80/);
  });

  it('an ip6tables REJECT: the IPv6 ruleset, the hook from ip6_forward, the rule line and its counter', () => {
    const [f] = explain('ip6tables-reject-v6').flows;
    const rule = '-A FORWARD -d fd00:199:2::2/128 -p tcp -m tcp --dport 80 -m comment --comment "block web" -j REJECT --reject-with icmp6-port-unreachable';
    expect(f.verdict).toMatchObject({
      outcome: 'dropped',
      where: { netns: 'nwr-router', reason: 'NETFILTER_DROP' },
      cause: { type: 'iptables-rule', ref: rule, value: 'REJECT', netns: 'nwr-router' },
    });
    const ev = f.verdict.evidence.join('\n');
    expect(ev).toContain('at the FORWARD hook in nwr-router (nf_hook_slow called from ip6_forward)');
    expect(ev).toContain('evaluating it against the ip6tables (nf_tables) ruleset of nwr-router');
    expect(ev).toContain("the rule's counter shows 1 packet");
    expect(ev).not.toContain('not certain');
    expect(f.verdict.fix).toBe(`change or delete the rule in nwr-router: ip6tables -D ${rule.slice(3)}`);
  });
  it('ip6tables -m rpfilter --invert -j DROP in raw PREROUTING: decided from the IPv6 routes, with the route back and a path fix', () => {
    const [f] = explain('rpfilter-v6').flows;
    expect(f.verdict).toMatchObject({
      outcome: 'dropped',
      where: { netns: 'nwr-router', dev: 'eth0', reason: 'NETFILTER_DROP' },
      cause: { type: 'iptables-rule', ref: '-A PREROUTING -m rpfilter --invert -j DROP', value: 'DROP', netns: 'nwr-router' },
    });
    const ev = f.verdict.evidence.join('\n');
    expect(ev).toContain('at the PREROUTING hook in nwr-router (nf_hook_slow called from ipv6_rcv)');
    expect(ev).toContain('DROP by table raw, chain PREROUTING');
    expect(ev).toContain('-m rpfilter: the route back to fd00:199:2::77 is fd00:199:2::/64 dev eth1 (table main): it leaves by eth1, not by eth0 where the packet came in');
    expect(ev).not.toContain('not certain');
    expect(f.verdict.fix).toContain('make the path symmetric in nwr-router: the route back to fd00:199:2::77 should leave by eth0');
  });

  it('the recorded rpfilter rule lets a symmetric source through, and stays uncertain where it cannot be decided', () => {
    const snap = load('rpfilter-v6').snapshots.find((x) => x.netns === 'nwr-router')!;
    const ev = netfilterEvaluator(snap)!;
    const pkt = { proto: 6, src: 'fd00:199:1::1', sport: 40000, dst: 'fd00:199:2::2', dport: 80, mark: 0, ctstate: ['NEW'], iif: 'eth0' };
    expect(ev.evaluate('PREROUTING', pkt)).toMatchObject({ verdict: 'ACCEPT', uncertain: [] });
    expect(ev.evaluate('PREROUTING', { ...pkt, src: 'fd00:199:2::77' })).toMatchObject({ verdict: 'DROP', uncertain: [] });
    // no route back at all (only the /64s, no default): strict or loose, it fails
    expect(ev.evaluate('PREROUTING', { ...pkt, src: 'fd00:199:7::7' })).toMatchObject({ verdict: 'DROP', notes: ['-m rpfilter: there is no route back to fd00:199:7::7'] });
    // the arrival device not known: uncertain
    expect(ev.evaluate('PREROUTING', { ...pkt, iif: undefined }).uncertain.join()).toContain('-m rpfilter: the input interface is not known');
  });

  it('the IPv6 reverse-path model: loose, local sources, link-local, reject routes, policy routing', () => {
    const routes = [
      { table: 'main', dst: 'fd00:1::/64', family: 6 as const, dev: 'eth0', type: 'unicast' },
      { table: 'main', dst: 'fd00:2::/64', family: 6 as const, dev: 'eth1', type: 'unicast' },
      { table: 'main', dst: 'fd00:9::/64', family: 6 as const, type: 'unreachable' },
      { table: 'main', dst: 'fe80::/64', family: 6 as const, dev: 'eth0', type: 'unicast' },
      { table: 'main', dst: 'fe80::/64', family: 6 as const, dev: 'eth1', type: 'unicast' },
      { table: 'main', dst: '10.0.0.0/8', family: 4 as const, dev: 'eth0', type: 'unicast' },
    ];
    const rules = [{ priority: 0, table: 'local' }, { priority: 32766, table: 'main' }];
    const q = (src: string, o: Partial<{ iif: string; loose: boolean; acceptLocal: boolean }> = {}) =>
      ipv6ReversePath({ src, iif: 'eth0', loose: false, acceptLocal: false, ...o }, routes, ['fd00:1::1'], rules);
    expect(q('fd00:2::5')).toMatchObject({ ok: false });
    expect(q('fd00:2::5', { loose: true })).toMatchObject({ ok: true });
    expect(q('fd00:1::5')).toMatchObject({ ok: true });
    expect(q('fd00:9::5', { loose: true })).toMatchObject({ ok: false, why: expect.stringContaining('unreachable fd00:9::/64') });
    expect(q('fd00:1::1')).toMatchObject({ ok: false, why: expect.stringContaining('is an address of this host') });
    expect(q('fd00:1::1', { acceptLocal: true })).toMatchObject({ ok: true });
    expect(q('fe80::1', { iif: 'eth1' })).toMatchObject({ ok: true }); // link-local: looked up on the arrival device
    expect(q('fd00:2::5', { iif: 'lo' })).toMatchObject({ ok: true });
    expect(ipv6ReversePath({ src: 'fd00:2::5', iif: 'eth0', loose: false, acceptLocal: false }, routes, [], [...rules, { priority: 100, table: '7', fwmark: '0x1' }])).toEqual({ unknown: 'policy routing (ip -6 rule priority 100) is not modelled' });
    expect(ipv6ReversePath({ src: 'fd00:2::5', iif: 'eth0', loose: false, acceptLocal: false }, routes, [], [])).toMatchObject({ unknown: expect.stringContaining('not captured') });
  });

  it('hop limit exceeded on the router: the packet\'s hop limit, the sender that set it, the fix at the sender', () => {
    const [f] = explain('hop-limit-v6').flows;
    expect(f.verdict).toMatchObject({
      outcome: 'dropped',
      where: { netns: 'nwr-router', dev: 'eth0', function: 'ip6_forward', reason: 'IP_INHDR' },
      cause: { type: 'hop-limit', ref: 'hop limit 1', value: 'exceeded', netns: 'nwr-router' },
    });
    const ev = f.verdict.evidence.join('\n');
    expect(ev).toMatch(/tcp \[fd00:199:1::1\]:\d+ > \[fd00:199:2::2\]:80 arrived on eth0 in nwr-router with hop limit 1, to be forwarded/);
    expect(ev).toContain('its sender in nwr-client put it out on eth0 with hop limit 1');
    expect(ev).toContain('an ICMPv6 time exceeded goes back to fd00:199:1::1');
    expect(f.verdict.fix).toContain("raise the sender's hop limit in nwr-client: net.ipv6.conf.eth0.hop_limit");
    expect(text('hop-limit-v6')).toContain('cause     hop-limit hop limit 1 = exceeded (netns nwr-router)');
  });

  it('disable_ipv6 on the router\'s ingress device: IPV6DISABLED in ip6_rcv_core, the device\'s key', () => {
    const [f] = explain('disable-ipv6-v6').flows;
    expect(f.verdict).toMatchObject({
      outcome: 'dropped',
      where: { netns: 'nwr-router', dev: 'eth0', function: 'ip6_rcv_core', reason: 'IPV6DISABLED' },
      cause: { type: 'sysctl', ref: 'net.ipv6.conf.eth0.disable_ipv6', value: '1', netns: 'nwr-router' },
    });
    const ev = f.verdict.evidence.join('\n');
    expect(ev).toContain('net.ipv6.conf.eth0.disable_ipv6 = 1 in nwr-router: IPv6 is off on eth0, the kernel drops every IPv6 packet the device receives');
    expect(ev).toContain('eth0 has no IPv6 address: disabling IPv6 removed them');
    expect(ev).not.toContain('netfilter');
    expect(f.verdict.fix).toMatch(/^sysctl -w net\.ipv6\.conf\.eth0\.disable_ipv6=0 in nwr-router, then add eth0's IPv6 addresses/);
  });

});

describe('NetworkPolicy drops recorded in the lab (kube-router on nw-node2)', () => {
  const web = { kind: 'pod', namespace: 'default', name: 'web-7c9f5b6d4-x8mzt' };
  const reject = '-A KUBE-POD-FW-VIUSDJHHPT4FB6F7 -m comment --comment "rule to REJECT traffic destined for POD name:web-7c9f5b6d4-x8mzt namespace: default" -m mark ! --mark 0x10000/0x10000 -j REJECT --reject-with icmp-port-unreachable';

  it('default-deny, same node: the bridged SYN, its ports, the policy and the pod it isolates', () => {
    const [f] = explain('netpol-default-deny-same-node').flows;
    expect(f.verdict).toMatchObject({
      outcome: 'dropped',
      where: { netns: 'nw-node2', dev: 'veth-pod2', reason: 'NETFILTER_DROP' },
      cause: { type: 'iptables-rule', ref: reject, value: 'REJECT', netns: 'nw-node2', k8s: [{ kind: 'networkpolicy', namespace: 'default', name: 'default-deny' }, web] },
    });
    const ev = f.verdict.evidence;
    expect(ev).toContain('the packet was bridged by cni0 from port veth-pod3 to port veth-pod2: br_netfilter (net.bridge.bridge-nf-call-iptables=1) ran iptables for it, where -m physdev sees those ports');
    expect(ev.join('\n')).toContain('at the FORWARD hook in nw-node2 (nf_hook_slow called from br_nf_forward_ip');
    expect(ev).toContain('pod default/web-7c9f5b6d4-x8mzt is isolated for ingress by NetworkPolicy default/default-deny (kube-router chain KUBE-NWPLCY-WHMDS4Y2XC4A7JYO)');
    expect(ev).toContain('NetworkPolicy default/default-deny has no ingress rule: it allows no ingress at all');
    expect(ev.join('\n')).not.toContain('not certain');
    expect(f.verdict.fix).toContain('NetworkPolicy default/default-deny');
  });

  it('allow-tools, across nodes: the routed SYN, the source not in the policy\'s ipset', () => {
    const [f] = explain('netpol-allowlist-cross-node').flows;
    expect(f.verdict).toMatchObject({
      outcome: 'dropped',
      where: { netns: 'nw-node2', reason: 'NETFILTER_DROP' },
      cause: { type: 'iptables-rule', ref: reject, value: 'REJECT', netns: 'nw-node2', k8s: [{ kind: 'networkpolicy', namespace: 'default', name: 'allow-tools' }, web] },
    });
    const ev = f.verdict.evidence.join('\n');
    expect(ev).toContain('(nf_hook_slow called from ip_forward)');
    expect(ev).not.toContain('bridged');
    expect(ev).toMatch(/no rule of NetworkPolicy default\/allow-tools allows 10\.244\.1\.2:\d+ → 10\.244\.2\.2:80\/tcp \(source 10\.244\.1\.2 not in ipset KUBE-SRC-ILDSMT3PHMHPYQ6U\)/);
    expect(f.verdict.fix).toMatch(/^allow 10\.244\.1\.2 in NetworkPolicy default\/allow-tools/);
  });

  it('allow-tools lets tools (same node, bridged) reach web: the recorded ruleset of nw-node2 accepts it, certainly', () => {
    const snap = load('netpol-allowlist-cross-node').snapshots.find((x) => x.netns === 'nw-node2')!;
    const ev = netfilterEvaluator(snap)!;
    const pkt = { proto: 6, src: '10.244.2.4', sport: 40000, dst: '10.244.2.2', dport: 80, mark: 0, ctstate: ['NEW'], iif: 'cni0', oif: 'cni0', physIn: 'veth-pod3', physOut: 'veth-pod2' };
    const f = ev.evaluate('FORWARD', pkt);
    expect(f).toMatchObject({ verdict: 'ACCEPT', chain: 'KUBE-NWPLCY-TAIL', uncertain: [] });
    // and the client on node1 is still rejected when bridged ports are unknown: the plain -d jump decides, no guess needed
    expect(ev.evaluate('FORWARD', { ...pkt, src: '10.244.1.2', iif: 'eth0', physIn: undefined, physOut: undefined })).toMatchObject({ verdict: 'REJECT' });
  });
});

describe('rule helpers', () => {
  it('rp_filter in force is the larger of all and the device: 1 strict, 2 loose', () => {
    expect(effectiveRpFilter(0, 1)).toBe(1);
    expect(effectiveRpFilter(2, 1)).toBe(2);
    expect(effectiveRpFilter(1, 0)).toBe(1);
  });

  it('finds the netfilter hook from the caller of nf_hook_slow', () => {
    expect(hookFromStack(['kfree_skb_reason', 'nf_hook_slow', 'ip_local_deliver', 'ip_rcv'])).toBe('INPUT');
    expect(hookFromStack(['nf_hook_slow', 'ip_forward'])).toBe('FORWARD');
    expect(hookFromStack(['nf_hook_slow', '__ip_local_out'])).toBe('OUTPUT');
    expect(hookFromStack(['tcp_v4_rcv'])).toBeUndefined();
  });

  it('a bridged packet: br_netfilter ran the IPv4 hook; the bridge family\'s own hooks are not iptables', () => {
    // as recorded on 6.18 for a same-node pod-to-pod SYN rejected by kube-router
    const stack = ['sk_skb_reason_drop', 'nft_do_chain', 'nft_do_chain_ipv4', 'nf_hook_slow', 'br_nf_forward_ip.part.0', 'nf_hook_slow', '__br_forward', 'br_handle_frame_finish'];
    expect(hookSiteFromStack(stack)).toEqual({ hook: 'FORWARD', caller: 'br_nf_forward_ip.part.0', bridged: true });
    expect(hookSiteFromStack(['nf_hook_slow', 'br_nf_pre_routing', 'br_handle_frame'])).toMatchObject({ hook: 'PREROUTING', bridged: true });
    expect(hookSiteFromStack(['nf_hook_slow', 'ip_forward', 'ip_rcv'])).toEqual({ hook: 'FORWARD', caller: 'ip_forward', bridged: false });
    // an ebtables / nft bridge-table drop: nf_hook_slow called from the bridge itself, deeper frames do not count
    expect(hookSiteFromStack(['nf_hook_slow', '__br_forward', 'br_handle_frame_finish', 'ip_output'])).toBeUndefined();
  });

  it('bridge ports at the hook: bridged between two ports; routed after coming in by a port (the bridge\'s own rx passed over); routed from a NIC', () => {
    const links = [{ name: 'cni0', kind: 'bridge' }, { name: 'veth-a', kind: 'veth', master: 'cni0' }, { name: 'veth-b', kind: 'veth', master: 'cni0' }, { name: 'eth0', kind: 'veth' }];
    const rx = (dev: string, ts: number) => ({ kind: 'rx', ts, pkt: { netns: 7, dev } });
    const input = (dev: string, ...records: unknown[]) =>
      ({ drop: { ts: 10, pkt: { netns: 7, dev } }, journey: { records }, state: () => ({ links }) }) as unknown as Parameters<typeof bridgePorts>[1];
    const fwd = (bridged: boolean) => ({ hook: 'FORWARD' as const, caller: '', bridged });
    expect(bridgePorts(fwd(true), input('veth-b', rx('veth-a', 1)))).toEqual({ physIn: 'veth-a', physOut: 'veth-b', bridge: 'cni0' });
    expect(bridgePorts(fwd(false), input('cni0', rx('veth-a', 1), rx('cni0', 2)))).toEqual({ physIn: 'veth-a', physOut: null });
    expect(bridgePorts(fwd(false), input('eth0', rx('eth0', 1)))).toEqual({ physIn: null, physOut: null });
    // no links captured: unknown, so -m physdev stays uncertain
    expect(bridgePorts(fwd(true), { ...input('veth-b', rx('veth-a', 1)), state: () => ({}) } as unknown as Parameters<typeof bridgePorts>[1])).toEqual({});
  });

  it('reads conntrack states from the status bits', () => {
    expect(ctStates(0, 0)).toEqual(['NEW']);
    expect(ctStates(PktFlag.HAS_CT, 1 << 1)).toEqual(['ESTABLISHED']);
    expect(ctStates(PktFlag.HAS_CT | PktFlag.CT_DNAT, 0)).toEqual(['NEW', 'DNAT']);
  });

  it('picks the most specific route', () => {
    const routes = [
      { table: 'main', dst: 'default', type: 'unicast', gateway: '10.0.0.1' },
      { table: 'main', dst: '10.244.0.0/16', type: 'unicast', dev: 'eth0' },
      { table: 'main', dst: '10.244.2.0/24', type: 'unreachable' },
      { table: 'local', dst: '10.244.2.2', type: 'local' },
    ];
    expect(bestRoute(routes, '10.244.2.2')?.type).toBe('unreachable');
    expect(bestRoute(routes, '10.244.9.1')?.dst).toBe('10.244.0.0/16');
    expect(bestRoute(routes, '8.8.8.8')?.dst).toBe('default');
  });
});

describe('recordings', () => {
  it('round-trip', () => {
    const c = load('no-socket');
    expect(decodeCapture(encodeCapture(c))).toEqual(c);
  });

  it.each([
    ['not a recording', Buffer.from('hello world, this is not netwhy'), 'bad magic'],
    ['truncated', encodeCapture(load('no-socket')).slice(0, 40), 'truncated'],
  ])('rejects %s with a clear error', (_, buf, msg) => {
    expect(() => decodeCapture(buf)).toThrow(RecordingError);
    expect(() => decodeCapture(buf)).toThrow(msg);
  });

  it('survives corrupted record bytes without a crash', () => {
    const c = load('no-route');
    let seed = 7;
    for (let i = 0; i < 50; i++) {
      const records = Uint8Array.from(c.records);
      for (let k = 0; k < 20; k++) records[(seed = (seed * 48271) % 2147483647) % records.length] ^= 0xff;
      expectValid('explain', explainCapture({ ...c, records }));
    }
  });
});


describe('the drop that ended the flow', () => {
  it('a PMTU black hole: the ICMP error died first, the full-size segment last; the segment decides, the ICMP is secondary', () => {
    const doc = explain('mtu-blackhole');
    expect(doc.flows).toHaveLength(1);
    const v = doc.flows[0].verdict;
    expect(v.where).toMatchObject({ netns: 'nwr-router', dev: 'eth0', function: 'ip_forward', reason: 'PKT_TOO_BIG' });
    const secondary = v.evidence.filter((e) => e.startsWith('secondary drop'));
    expect(secondary).toHaveLength(1);
    expect(secondary[0]).toMatch(/^secondary drop \(not the one that ended the flow\): icmp 10\.199\.1\.2 > 10\.199\.1\.1 dropped in nwr-router on \? with NETFILTER_DROP at nft_do_chain/);
    expect(v.evidence.join('\n')).not.toContain("netfilter's FORWARD hook");
  });

  it('the PMTU black hole\'s cause is the rule that dropped the ICMP error, with the MTU that made the packet too big', () => {
    const v = explain('mtu-blackhole').flows[0].verdict;
    expect(v.cause).toMatchObject({ type: 'iptables-rule', ref: '-A OUTPUT -p icmp -m icmp --icmp-type 3/4 -j DROP', value: 'DROP', netns: 'nwr-router' });
    expect(v.evidence[0]).toMatch(/^tcp 10\.199\.1\.1:\d+ > 10\.199\.2\.2:80: a \d+-byte packet.* to be forwarded by eth1 in nwr-router, whose MTU is 1000$/);
    expect(v.evidence[1]).toContain('DF set');
    expect(v.evidence[2]).toMatch(/^that ICMP error \(icmp 10\.199\.1\.2 > 10\.199\.1\.1\) was dropped in nwr-router with NETFILTER_DROP: .*a PMTU black hole/);
    expect(v.fix).toContain('--clamp-mss-to-pmtu');
  });
});

describe('flows known before their first packet', () => {
  it('the next hop never answers ARP: the flow is reported (not "0 flows"), the SYN died in the neighbour queue', () => {
    const doc = explain('neigh-failed');
    expect(doc.flows).toHaveLength(1);
    const [f] = doc.flows;
    expect(f.orig).toMatchObject({ src: '10.199.1.1', dst: '10.199.7.7', dport: 80 });
    expect(f.orig.sport).toBeGreaterThan(0);
    expect(f.hops.every((h) => h.netns === 'nwr-client' && h.what === 'drop NEIGH_FAILED')).toBe(true);
    expect(f.verdict).toMatchObject({
      outcome: 'dropped',
      where: { netns: 'nwr-client', dev: 'eth0', reason: 'NEIGH_FAILED' },
      cause: { type: 'address', ref: '10.199.1.7 dev eth0', value: 'neighbour FAILED', netns: 'nwr-client' },
    });
    const ev = f.verdict.evidence;
    expect(ev[0]).toBe('nobody answers ARP for 10.199.1.7 on eth0 in nwr-client');
    expect(ev).toContain('the next hop of 10.199.7.7 in nwr-client is 10.199.1.7 (route 10.199.7.0/24 via 10.199.1.7 dev eth0)');
    // the sender's own lookup (connect(): no skb yet) is tied to the flow in user space
    expect(ev.find((e) => e.startsWith("the sender's route lookup"))).toMatch(/^the sender's route lookup 10\.199\.1\.1 > 10\.199\.7\.7 in nwr-client \(table 254\): via 10\.199\.1\.7 dev eth0$/);
    expect(ev).toContain('the neighbour entry of 10.199.1.7 on eth0 in nwr-client is FAILED (no link-layer address)');
    expect(ev).toContain('connect() failed with EHOSTUNREACH (No route to host)');
    expect(ev.find((e) => e.startsWith('the socket went'))).toMatch(/SYN_SENT → CLOSE/);
  });

  it('connect() fails before any packet: the failed lookup is the evidence, ENETUNREACH, the route cause', () => {
    const doc = explain('connect-no-route');
    expect(doc.flows).toHaveLength(1);
    const [f] = doc.flows;
    expect(f.hops).toEqual([]);
    expect(f.orig).toMatchObject({ dst: '10.199.9.9', dport: 80 });
    expect(f.verdict).toMatchObject({ outcome: 'dropped', cause: { type: 'route', ref: 'no route to 10.199.9.9', value: 'unreachable', netns: 'nwr-client' } });
    expect(f.verdict.where).toBeUndefined();
    const ev = f.verdict.evidence;
    expect(ev[0]).toBe('connect() to 10.199.9.9:80 failed before any packet existed: no device saw one');
    expect(ev).toContain('route lookup 10.199.9.9 in nwr-client (table 254): no match in this table');
    expect(ev.find((e) => e.startsWith('the kernel returned'))).toMatch(/^the kernel returned ENETUNREACH \(Network is unreachable\) to the process/);
    expect(ev.at(-1)).toBe('table main in nwr-client: 10.199.1.0/24 dev eth0 — nothing covers 10.199.9.9 and there is no default route');
  });
});

describe('output route lookups tied to their flow', () => {
  it('no route back: the SYN arrived, the SYN-ACK\'s lookup failed in the receiver\'s namespace: a route cause with table and netns', () => {
    const doc = explain('no-route-back');
    expect(doc.flows).toHaveLength(1);
    const v = doc.flows[0].verdict;
    expect(v).toMatchObject({ outcome: 'dropped', cause: { type: 'route', ref: 'no route back to 10.199.1.1 (table main)', value: 'unreachable', netns: 'nwr-server' } });
    expect(v.evidence[0]).toMatch(/^the request tcp 10\.199\.1\.1:\d+ > 10\.199\.2\.2:80 reached nwr-server on eth0$/);
    expect(v.evidence[1]).toBe('its answer (SYN-ACK or reply) needs a route from nwr-server back to 10.199.1.1: route lookup 10.199.2.2 > 10.199.1.1 in nwr-server (table 254): no match in this table');
    expect(v.evidence).toContain('table main in nwr-server: 10.199.2.0/24 dev eth0 — nothing covers 10.199.1.1');
    expect(v.fix).toContain('add a route back to 10.199.1.1 in nwr-server');
  });

  it('a delivered request\'s SYN-ACK lookup joins its journey (tied as a reply in the kernel), a failed one is not invented', () => {
    const doc = explain('delivered');
    expect(doc.flows[0].verdict.outcome).toBe('delivered');
  });
});

describe('conntrack\'s own verdicts, refused or filtered', () => {
  it('conntrack INVALID (a flushed entry, nf_conntrack_tcp_loose=0): the INVALID rule, the sysctls and the counter', () => {
    const v = explain('ct-invalid').flows[0].verdict;
    expect(v).toMatchObject({ outcome: 'dropped', where: { netns: 'nwr-router', reason: 'NETFILTER_DROP' }, cause: { type: 'iptables-rule', ref: '-A FORWARD -m conntrack --ctstate INVALID -j DROP', value: 'DROP', netns: 'nwr-router' } });
    const ev = v.evidence;
    expect(ev[0]).toMatch(/\(no conntrack entry: INVALID\) was dropped at the FORWARD hook in nwr-router/);
    expect(ev).toContain('net.netfilter.nf_conntrack_tcp_be_liberal = 0 in nwr-router: out-of-window TCP segments are INVALID (1 would let them pass)');
    expect(ev).toContain('net.netfilter.nf_conntrack_tcp_loose = 0 in nwr-router: a connection whose entry was lost is not picked up mid-stream: its packets are INVALID');
    expect(ev.find((e) => e.startsWith("conntrack's invalid counter in nwr-router: "))).toBeDefined();
    expect(ev).toContain('filtered, not refused: the rule drops silently, so the sender hears nothing and times out');
    expect(v.fix).toContain('nf_conntrack_tcp_be_liberal=1');
  });

  it('a full conntrack table: no rule dropped the new packet, count is at max: cause conntrack nf_conntrack_max with both values', () => {
    const c = load('ct-invalid');
    // the same drop, as if no INVALID rule existed and the router's table were full
    const snapshots = c.snapshots.map((s) => (s.netns !== 'nwr-router' ? s : {
      ...s,
      iptablesSave: s.iptablesSave!.split('\n').filter((l) => !l.includes('INVALID')).join('\n'),
      sysctl: { ...s.sysctl, 'net.netfilter.nf_conntrack_max': '65536', 'net.netfilter.nf_conntrack_count': '65536' },
    }));
    const v = explainCapture({ ...c, snapshots }).flows[0].verdict;
    expect(v.cause).toEqual({ type: 'conntrack', ref: 'nf_conntrack_max', value: '65536/65536', netns: 'nwr-router' });
    expect(v.evidence[0]).toBe('net.netfilter.nf_conntrack_count = 65536 and net.netfilter.nf_conntrack_max = 65536 in nwr-router: the conntrack table is full');
  });

  it('a REJECT is refused, not filtered', () => {
    const v = explain('iptables-reject').flows[0].verdict;
    expect(v.evidence).toContain('refused, not filtered: the rule answers with an ICMP error or a TCP reset, so the sender fails at once ("connection refused", "host unreachable")');
  });
});

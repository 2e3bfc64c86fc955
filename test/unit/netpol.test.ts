// Naming the NetworkPolicy behind a drop from the policy controller's own
// rules, on rulesets written from kube-router's and Calico's rule shapes (two
// differently built ones each, test/fixtures/netpol/), and on the lab's
// kube-router ruleset for the flow its allow-list lets through.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { namePolicy } from '../../src/explain/netpol.js';
import type { Hook, NetfilterEvaluator, NetfilterPacket } from '../../src/model/netfilter.js';
import { netfilterEvaluator } from '../../src/state/netfilter.js';
import type { Snapshot } from '../../src/state/snapshot.js';

const DIR = resolve(__dirname, '../fixtures/netpol');

function evaluator(name: string): NetfilterEvaluator {
  const snap = {
    netns: name,
    iptablesSave: readFileSync(`${DIR}/${name}.rules`, 'utf8'),
    iptablesBackend: 'nf_tables',
    ipsetSave: readFileSync(`${DIR}/${name}.ipset`, 'utf8'),
    addrs: [],
    errors: [],
  } as unknown as Snapshot;
  const ev = netfilterEvaluator(snap);
  expect(snap.errors).toEqual([]);
  return ev!;
}

const tcp = (src: string, dst: string, dport: number, over: Partial<NetfilterPacket> = {}): NetfilterPacket =>
  ({ proto: 6, src, sport: 40000, dst, dport, mark: 0, ctstate: ['NEW'], ...over });

function judge(ev: NetfilterEvaluator, pkt: NetfilterPacket, hook: Hook = 'FORWARD') {
  const f = ev.evaluate(hook, pkt);
  return { f, named: namePolicy(f, ev, hook, pkt) };
}

describe('kube-router (≤ v2.10 comments), routed into the node', () => {
  const ev = evaluator('kube-router-v2.10-routed');
  const routed = { iif: 'eth0', oif: 'cni0', physIn: null, physOut: null };

  it('names both policies that select the pod, the pod, and why neither allows the flow', () => {
    const { f, named } = judge(ev, tcp('10.42.1.5', '10.42.3.7', 8080, routed));
    expect(f.verdict).toBe('REJECT');
    expect(f.uncertain).toEqual([]);
    expect(f.rule).toBe('-A KUBE-POD-FW-2ZP5QWXNYV7HUK3D -m comment --comment "rule to REJECT traffic destined for POD name:cart-6d8f7b9c4-abcde namespace: shop" -m mark ! --mark 0x10000/0x10000 -j REJECT --reject-with icmp-port-unreachable');
    expect(named!.refs).toEqual([
      { kind: 'networkpolicy', namespace: 'shop', name: 'cart-metrics' },
      { kind: 'networkpolicy', namespace: 'shop', name: 'cart-from-frontend' },
      { kind: 'pod', namespace: 'shop', name: 'cart-6d8f7b9c4-abcde' },
    ]);
    expect(named!.evidence).toEqual([
      'pod shop/cart-6d8f7b9c4-abcde is isolated for ingress by NetworkPolicy shop/cart-metrics (kube-router chain KUBE-NWPLCY-Q7TXHD3LCN4BKZ2P)',
      // the source is in the ipBlock set: only the port stops it
      'no rule of NetworkPolicy shop/cart-metrics allows 10.42.1.5:40000 → 10.42.3.7:8080/tcp (-m tcp --dport 9090 does not match)',
      'pod shop/cart-6d8f7b9c4-abcde is isolated for ingress by NetworkPolicy shop/cart-from-frontend (kube-router chain KUBE-NWPLCY-MF2RTC7YVZ3EHB5W)',
      'no rule of NetworkPolicy shop/cart-from-frontend allows 10.42.1.5:40000 → 10.42.3.7:8080/tcp (source 10.42.1.5 not in ipset KUBE-SRC-CJ4VQ7ZB2KXH6NDW)',
      'so KUBE-POD-FW-2ZP5QWXNYV7HUK3D REJECTs it: no policy set the 0x10000 mark that lets a packet through',
    ]);
    expect(named!.fix).toContain('allow 10.42.1.5 in NetworkPolicy shop/cart-metrics, NetworkPolicy shop/cart-from-frontend (an ingress `from` that selects it, for port 8080/tcp)');
  });

  it('the frontend pod, on the same bridge, is allowed by cart-from-frontend', () => {
    const { f, named } = judge(ev, tcp('10.42.3.9', '10.42.3.7', 8080, { iif: 'cni0', oif: 'cni0', physIn: 'veth9a', physOut: 'veth7c' }));
    expect(f.verdict).toBe('ACCEPT');
    expect(f.uncertain).toEqual([]);
    expect(named).toBeUndefined();
  });

  it('a pod no policy selects is not isolated: KUBE-NWPLCY-DEFAULT marks it, the tail chain accepts it', () => {
    const { f, named } = judge(ev, tcp('10.42.1.5', '10.42.3.9', 80, routed));
    expect(f).toMatchObject({ verdict: 'ACCEPT', chain: 'KUBE-NWPLCY-TAIL', uncertain: [] });
    expect(named).toBeUndefined();
  });
});

describe('kube-router (v2.11 comments), bridged on the node', () => {
  const ev = evaluator('kube-router-v2.11-bridged');
  const bridged = { iif: 'cbr0', oif: 'cbr0', physIn: 'veth3f0a', physOut: 'veth14b2' };

  it('names deny-all and ledger-ingress, the pod, from "<namespace>/<name> <kind>" comments', () => {
    const { f, named } = judge(ev, tcp('172.20.5.30', '172.20.5.14', 5432, bridged));
    expect(f.verdict).toBe('REJECT');
    expect(f.uncertain).toEqual([]);
    expect(named!.refs).toEqual([
      { kind: 'networkpolicy', namespace: 'payments', name: 'deny-all' },
      { kind: 'networkpolicy', namespace: 'payments', name: 'ledger-ingress' },
      { kind: 'pod', namespace: 'payments', name: 'ledger-6f8d9c7b5-m3n4p' },
    ]);
    expect(named!.evidence).toContain('NetworkPolicy payments/deny-all has no ingress rule: it allows no ingress at all');
    expect(named!.evidence).toContain('no rule of NetworkPolicy payments/ledger-ingress allows 172.20.5.30:40000 → 172.20.5.14:5432/tcp (source 172.20.5.30 not in ipset KUBE-SRC-P3KD7XW2QZ6MNRTB)');
  });

  it('the api pod is allowed (its own chain passes it out, ledger-ingress lets it in)', () => {
    expect(judge(ev, tcp('172.20.5.20', '172.20.5.14', 5432, bridged)).f).toMatchObject({ verdict: 'ACCEPT', uncertain: [] });
  });

  it('the pod is reached only by the physdev jump: a routed packet is not judged by it; unknown ports are uncertain, naming the match', () => {
    expect(judge(ev, tcp('10.1.0.9', '172.20.5.14', 5432, { iif: 'eth0', oif: 'cbr0', physIn: null, physOut: null })).f.verdict).toBe('ACCEPT');
    const { f, named } = judge(ev, tcp('172.20.5.30', '172.20.5.14', 5432, { iif: 'cbr0', oif: 'cbr0' }));
    expect(f.verdict).toBe('REJECT');
    expect(f.uncertain.join('\n')).toContain('-m physdev --physdev-is-bridged: whether the packet was bridged, and by which ports, is not known at this hook (assumed match)');
    // the policy chain structure is certain; the evidence of the rule says what was assumed
    expect(named!.refs.map((r) => r.name)).toEqual(['deny-all', 'ledger-ingress', 'ledger-6f8d9c7b5-m3n4p']);
  });
});

describe('Calico', () => {
  it('felix ≤ 3.2x: "Policy <ns>/knp.default.<name> ingress" names the policy; the rules name the interface, not the pod', () => {
    const ev = evaluator('calico-v3.26-policy');
    const to = { iif: 'eth0', oif: 'cali8f2a1b3c4d5', physIn: null, physOut: null };
    const { f, named } = judge(ev, tcp('192.168.50.3', '192.168.41.7', 8080, to));
    expect(f.verdict).toBe('DROP');
    expect(f.rule).toBe('-A cali-tw-cali8f2a1b3c4d5 -m comment --comment "cali:As8dFg3hJk5lZx1C" -m comment --comment "Drop if no policies passed packet" -m mark --mark 0x0/0x20000 -j DROP');
    expect(named!.refs).toEqual([{ kind: 'networkpolicy', namespace: 'default', name: 'allow-frontend' }]);
    expect(named!.evidence).toEqual([
      'the workload on cali8f2a1b3c4d5 (192.168.41.7) is isolated for ingress by NetworkPolicy default/allow-frontend (Calico chain cali-pi-_Kz3aQ9vXr2LmN7bT1cYe)',
      'no rule of NetworkPolicy default/allow-frontend allows 192.168.50.3:40000 → 192.168.41.7:8080/tcp (source 192.168.50.3 not in ipset cali40s:Hq2LbN7xKp4RtY9mWs3Ze1A)',
      'so cali-tw-cali8f2a1b3c4d5 DROPs it: no policy set the 0x10000 mark that lets a packet through',
    ]);
    expect(judge(ev, tcp('192.168.41.12', '192.168.41.7', 8080, to)).f).toMatchObject({ verdict: 'ACCEPT', uncertain: [] });
  });

  it('felix 3.30 tiers: a policy group chain with two KubernetesNetworkPolicy chains, both named', () => {
    const ev = evaluator('calico-v3.30-tiers');
    const to = { iif: 'eth0', oif: 'cali3e9d7c1a0b2', physIn: null, physOut: null };
    const { f, named } = judge(ev, tcp('10.88.1.20', '10.88.2.15', 9100, to));
    expect(f.verdict).toBe('DROP');
    expect(f.rule).toContain('End of tier default. Drop if no policies passed packet');
    expect(named!.refs).toEqual([
      { kind: 'networkpolicy', namespace: 'prod', name: 'api-allow-web' },
      { kind: 'networkpolicy', namespace: 'prod', name: 'api-allow-monitoring' },
    ]);
    expect(named!.evidence).toContain('no rule of NetworkPolicy prod/api-allow-web allows 10.88.1.20:40000 → 10.88.2.15:9100/tcp (-m multiport --dports 443 does not match)');
    expect(named!.evidence).toContain('no rule of NetworkPolicy prod/api-allow-monitoring allows 10.88.1.20:40000 → 10.88.2.15:9100/tcp (source 10.88.1.20 not in ipset cali40s:Us2Vt4Wu6Xv8Yw0Zx2Ay4Bz)');
    expect(judge(ev, tcp('10.88.4.7', '10.88.2.15', 9100, to)).f).toMatchObject({ verdict: 'ACCEPT', uncertain: [] });
  });
});

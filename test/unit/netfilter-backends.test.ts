// Which netfilter front-ends a snapshot shows, and the kube-proxy mode of its rules.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { backendsText, netfilterBackends } from '../../src/state/netfilter/backends.js';
import type { Snapshot } from '../../src/state/snapshot.js';

const FIX = resolve(__dirname, '../fixtures');
const kubeProxyIptables = readFileSync(`${FIX}/iptables/kube-proxy-iptables.rules`, 'utf8');
const kubeProxyNft = JSON.parse(readFileSync(`${FIX}/k8s/kube-proxy-nftables.json`, 'utf8'));
const EMPTY_SAVE = '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n';

function snap(over: Partial<Snapshot>): Snapshot {
  return {
    netns: 'node', takenAt: 0, sysctl: {}, links: [], addrs: [], routes: [], rules: [],
    iptablesSave: EMPTY_SAVE, iptablesBackend: 'nf_tables', ipsetSave: null, ipvs: null, nftJson: { nftables: [] },
    conntrack: null, errors: [], durationMs: 0, ...over,
  } as Snapshot;
}

describe('netfilter front-ends and kube-proxy mode', () => {
  it("kube-proxy's iptables mode on iptables-nft: iptables-nft live, mode iptables", () => {
    const b = netfilterBackends(snap({ iptablesSave: kubeProxyIptables }));
    expect(b).toMatchObject({ iptablesNft: true, iptablesLegacy: false, kubeProxy: 'iptables', unread: [] });
    expect(backendsText(b)).toBe('node: iptables-nft; kube-proxy mode iptables');
  });

  it('the same rules in legacy xtables: iptables-legacy', () => {
    expect(netfilterBackends(snap({ iptablesSave: kubeProxyIptables, iptablesBackend: 'legacy' }))).toMatchObject({ iptablesNft: false, iptablesLegacy: true, kubeProxy: 'iptables' });
  });

  it("kube-proxy's nftables mode: native tables ip kube-proxy and ip6 kube-proxy, mode nftables, no iptables rules", () => {
    const b = netfilterBackends(snap({ nftJson: kubeProxyNft }));
    expect(b.kubeProxy).toBe('nftables');
    expect(b.nftTables).toContain('ip kube-proxy');
    expect(b.iptablesNft).toBe(false);
  });

  it("kube-proxy's IPVS mode: its ipsets or kube-ipvs0", () => {
    expect(netfilterBackends(snap({ ipsetSave: 'create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536\n' })).kubeProxy).toBe('ipvs');
    expect(netfilterBackends(snap({ links: [{ ifindex: 5, name: 'kube-ipvs0', kind: 'dummy' }] as Snapshot['links'] })).kubeProxy).toBe('ipvs');
  });

  it('a host without rules, and what could not be read', () => {
    const b = netfilterBackends(snap({ iptablesSave: null, nftJson: null }));
    expect(b).toMatchObject({ iptablesNft: false, iptablesLegacy: false, nftTables: [], kubeProxy: null });
    expect(backendsText(b)).toBe('node: no netfilter rules; no kube-proxy rules (not read: nft -j list ruleset; iptables-save)');
  });
});

// The nft JSON parser and walker on rulesets dumped by nft -j on this machine
// (test/fixtures/k8s/make-nft-fixture.sh, test/fixtures/nft/make.sh).
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { NetfilterPacket } from '../../src/model/netfilter.js';
import { NftParseError, parseNftRuleset } from '../../src/state/netfilter/nft-json.js';
import { netfilterEvaluator } from '../../src/state/netfilter.js';
import type { Snapshot } from '../../src/state/snapshot.js';
import { nftMeaning } from '../../src/explain/nft.js';

const K8S = resolve(__dirname, '../fixtures/k8s');

function evaluator(nftJson: unknown, extra: Partial<Snapshot> = {}) {
  const snap = { netns: 'node', iptablesSave: null, iptablesBackend: null, ipsetSave: null, nftJson, addrs: [{ address: '192.168.0.2' }], errors: [], ...extra } as unknown as Snapshot;
  const ev = netfilterEvaluator(snap);
  expect(snap.errors).toEqual([]);
  return ev!;
}

const tcp = (src: string, dst: string, dport: number, over: Partial<NetfilterPacket> = {}): NetfilterPacket => ({ proto: 6, src, sport: 40000, dst, dport, mark: 0, ctstate: ['NEW'], ...over });

describe('kube-proxy nftables mode (TestOverallNFTablesRules shape)', () => {
  const doc = JSON.parse(readFileSync(`${K8S}/kube-proxy-nftables.json`, 'utf8'));
  const ev = evaluator(doc);

  it('a Service without endpoints: reject-chain, reached through the element of @no-endpoint-services', () => {
    const f = ev.evaluate('FORWARD', tcp('10.0.0.5', '172.30.0.46', 80));
    expect(f.verdict).toBe('REJECT');
    expect(f.source).toBe('nft');
    expect(f.rule).toMatch(/^table ip kube-proxy chain reject-chain handle \d+: reject$/);
    expect(f.trail).toEqual(['filter-forward', 'service-endpoints-check', '@no-endpoint-services', 'reject-chain']);
    expect(f.nft?.element).toEqual({ set: 'no-endpoint-services', key: '172.30.0.46 . tcp . 80', comment: 'ns6/svc6:p80', value: 'goto reject-chain' });
    expect(nftMeaning(f, tcp('10.0.0.5', '172.30.0.46', 80))?.service).toEqual({ kind: 'service', namespace: 'ns6', name: 'svc6', port: 'p80' });
  });

  it('a drop element of the map decides in the chain that looked it up', () => {
    const f = ev.evaluate('FORWARD', tcp('10.0.0.5', '1.2.3.4', 80));
    expect(f.verdict).toBe('DROP');
    expect(f.rule).toMatch(/^table ip kube-proxy chain service-endpoints-check handle \d+: ip daddr \. meta l4proto \. th dport vmap @no-endpoint-services$/);
    expect(f.trail).toEqual(['filter-forward', 'service-endpoints-check', '@no-endpoint-services']);
    expect(f.nft?.element?.comment).toBe('ns2/svc2:p80');
  });

  it('an unallocated ClusterIP is dropped by cluster-ips-check; a live one on a wrong port rejected', () => {
    const f = ev.evaluate('FORWARD', tcp('10.0.0.5', '172.30.0.99', 80));
    expect(f.verdict).toBe('DROP');
    expect(f.rule).toMatch(/chain cluster-ips-check handle \d+: ip daddr 172\.30\.0\.0\/16 drop comment "Drop traffic to unallocated ClusterIPs"$/);
    expect(f.trail).toEqual(['filter-forward', 'cluster-ips-check']);
    const r = ev.evaluate('FORWARD', tcp('10.0.0.5', '172.30.0.41', 81));
    expect(r.verdict).toBe('REJECT');
    expect(r.nft?.element).toEqual({ set: 'cluster-ips', key: '172.30.0.41' });
  });

  it('a packet of an established connection passes (ct state new only)', () => {
    expect(ev.evaluate('FORWARD', tcp('10.0.0.5', '172.30.0.99', 80, { ctstate: ['ESTABLISHED'] })).verdict).toBe('ACCEPT');
  });

  it('IPv6 packets meet the ip6 table only', () => {
    const f = ev.evaluate('FORWARD', tcp('fd00::5', 'fd00:10:96::46', 80));
    expect(f.verdict).toBe('ACCEPT'); // the ip6 table of the fixture has no base chains
  });
});

describe('parser errors', () => {
  it('bad JSON and wrong shapes are NftParseError', () => {
    expect(() => parseNftRuleset('{')).toThrow(NftParseError);
    expect(() => parseNftRuleset({})).toThrow(NftParseError);
    expect(() => parseNftRuleset({ nftables: [1] })).toThrow(NftParseError);
    expect(() => parseNftRuleset({ nftables: [{ rule: { family: 'ip', table: 't' } }] })).toThrow(NftParseError);
  });

  it('an unreadable ruleset is noted in the snapshot, not thrown', () => {
    const snap = { netns: 'x', iptablesSave: null, nftJson: { nftables: [{ chain: { family: 'nope' } }] }, addrs: [], errors: [] } as unknown as Snapshot;
    expect(netfilterEvaluator(snap)).toBeUndefined();
    expect(snap.errors[0]).toMatch(/nft -j list ruleset of x could not be read/);
  });
});

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
import { ruleText } from '../../src/model/netfilter/nft-text.js';

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

const NFT = resolve(__dirname, '../fixtures/nft');
const fixture = (name: string) => JSON.parse(readFileSync(`${NFT}/${name}.json`, 'utf8'));

describe('rule text: as nft -a list ruleset prints it (fixtures dumped on this machine, test/fixtures/nft/make.sh)', () => {
  for (const name of ['kube-proxy-lab', 'inet-firewall', 'iptables-nft']) {
    it(name, () => {
      const printed = new Map<number, string>();
      let table = '';
      for (const line of readFileSync(`${NFT}/${name}.txt`, 'utf8').split('\n')) {
        const t = /^table (\S+ \S+) \{/.exec(line);
        if (t) table = t[1];
        const m = /^\s+(.*\S) # handle (\d+)$/.exec(line);
        if (m && !/^(chain|set|map) /.test(m[1])) printed.set(Number(m[2]) * 1000 + table.length, m[1].replace(/counter packets \d+ bytes \d+/, 'counter'));
      }
      const rs = parseNftRuleset(fixture(name));
      const rendered = rs.tables.flatMap((t) => [...t.chains.values()].flatMap((c) => c.rules.map((r) => [r.handle! * 1000 + `${t.family} ${t.name}`.length, ruleText(r)] as const)));
      expect(rendered.length).toBeGreaterThan(2);
      // xt compat expressions have no nft text of their own (nft prints them as comments)
      for (const [k, text] of rendered) if (!text.includes('xt ')) expect(text).toBe(printed.get(k));
    });
  }
});

describe('a native inet firewall', () => {
  const ev = evaluator(fixture('inet-firewall'), { addrs: [{ address: '192.168.0.11' }] } as Partial<Snapshot>);
  const input = (dport: number, over: Partial<NetfilterPacket> = {}) => ev.evaluate('INPUT', tcp('192.168.0.10', '192.168.0.11', dport, { iif: 'eth0', ...over }));

  it('names the rule and the interval set element with its comment; the uncertain rule before it is listed', () => {
    const f = input(6443);
    expect(f.verdict).toBe('DROP');
    expect(f.rule).toBe('table inet fw chain input handle 14: tcp dport @blocked-tcp counter log prefix "blocked " drop comment "closed ports"');
    expect(f.nft?.element).toEqual({ set: 'blocked-tcp', key: '6443', comment: 'apiserver: admin network only' });
    expect(f.packets).toBe(0);
    expect(f.uncertain).toEqual([expect.stringMatching(/handle 13: cannot evaluate meta skuid in "meta skuid 0"; the rule was taken as not matching/)]);
    expect(input(10255).nft?.element?.key).toBe('10250-10259');
  });

  it('verdict map elements decide, with their comment; the policy when nothing matches', () => {
    expect(input(8080).nft?.element).toEqual({ set: 'port-policy', key: '192.168.0.11 . tcp . 8080', comment: 'legacy app', value: 'drop' });
    expect(input(80).verdict).toBe('ACCEPT');
    const p = input(9999);
    expect(p.verdict).toBe('DROP');
    expect(p.rule).toBe('table inet fw chain input: policy drop');
    expect(p.nft?.policy).toBe(true);
  });

  it('ct state, prefixes in named sets, wildcard interface names, reject with', () => {
    expect(input(9999, { ctstate: ['ESTABLISHED'] }).verdict).toBe('ACCEPT');
    expect(ev.evaluate('INPUT', tcp('10.1.2.3', '192.168.0.11', 22, { iif: 'eth0' })).verdict).toBe('ACCEPT');
    const u = ev.evaluate('INPUT', { proto: 17, src: '192.168.0.10', sport: 5353, dst: '192.168.0.11', dport: 5353, iif: 'eth1', mark: 0, ctstate: ['NEW'] });
    expect(u.verdict).toBe('REJECT');
    expect(u.rule).toMatch(/handle 17: iifname "eth\*" udp dport 5353 reject with icmpx admin-prohibited$/);
  });

  it('an unknown input device makes iifname uncertain, never a guessed match', () => {
    const f = input(9999, { iif: undefined });
    expect(f.uncertain.some((u) => /the input device is not known/.test(u))).toBe(true);
  });

  it('the mark through a binary and; return to the base chain; IPv6 packets meet the inet table too', () => {
    const fwd = (mark: number, src: string) => ev.evaluate('FORWARD', tcp(src, '10.244.2.2', 80, { oif: 'cni0', mark }));
    expect(fwd(0x4000, '192.168.0.10').rule).toMatch(/chain pods handle 20: meta l4proto tcp reject with tcp reset/);
    expect(fwd(0x4000, '10.244.1.2').verdict).toBe('ACCEPT');
    expect(fwd(0, '192.168.0.10').verdict).toBe('ACCEPT');
    expect(ev.evaluate('INPUT', tcp('fd00::1', 'fd00::2', 6443, { iif: 'eth0' })).nft?.element?.comment).toBe('apiserver: admin network only');
  });

  it('NAT by nft rules: dnat at prerouting, masquerade at postrouting', () => {
    const n = ev.natRules('PREROUTING', tcp('192.168.0.10', '192.168.0.11', 8443, { iif: 'eth0', oif: 'eth0' }));
    expect(n.dnat).toMatchObject({ source: 'nft', rule: 'table ip natty chain pre handle 3: tcp dport 8443 dnat to 10.244.2.2:443', to: '10.244.2.2:443' });
    const s = ev.natRules('PREROUTING', tcp('10.244.1.2', '8.8.8.8', 53, { iif: 'cni0' }));
    expect(s.snat).toBeUndefined(); // the output device is not known at postrouting here: oifname is uncertain
  });
});

describe('iptables-nft tables are evaluated once, by their iptables-save form', () => {
  const save = '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 22 -m comment --comment ssh -j ACCEPT\n-A INPUT -m conntrack --ctstate INVALID -j DROP\nCOMMIT\n';
  it('the xt tables are marked and skipped when iptables-save shows them', () => {
    const rs = parseNftRuleset(fixture('iptables-nft'));
    expect(rs.tables.every((t) => t.iptablesNft)).toBe(true);
    const ev = evaluator(fixture('iptables-nft'), { iptablesSave: save, iptablesBackend: 'nf_tables' } as Partial<Snapshot>);
    const f = ev.evaluate('INPUT', tcp('10.0.0.1', '10.0.0.2', 22, { ctstate: ['INVALID'] }));
    expect(f.source).toBeUndefined(); // the iptables finding, as before
    expect(f.rule).toBe('-A INPUT -p tcp -m tcp --dport 22 -m comment --comment ssh -j ACCEPT');
  });
  it('without iptables-save, the xt expressions make the finding uncertain', () => {
    const f = evaluator(fixture('iptables-nft')).evaluate('INPUT', tcp('10.0.0.1', '10.0.0.2', 22));
    expect(f.uncertain.some((u) => /iptables-nft compat expression/.test(u))).toBe(true);
  });
});

describe('huge rulesets', () => {
  it('a chain of 100k rules and a jump loop end with an answer', () => {
    const rules = Array.from({ length: 100_000 }, (_, i) => ({ rule: { family: 'ip', table: 't', chain: 'c', handle: i + 2, expr: [{ match: { op: '==', left: { payload: { protocol: 'tcp', field: 'dport' } }, right: i + 1 } }, { drop: null }] } }));
    const loop = { rule: { family: 'ip', table: 't', chain: 'l', handle: 1, expr: [{ jump: { target: 'l' } }] } };
    const doc = { nftables: [{ table: { family: 'ip', name: 't' } }, { chain: { family: 'ip', table: 't', name: 'c', type: 'filter', hook: 'input', prio: 0, policy: 'accept' } }, { chain: { family: 'ip', table: 't', name: 'l', type: 'filter', hook: 'forward', prio: 0, policy: 'accept' } }, ...rules, loop] };
    const ev = evaluator(doc);
    expect(ev.evaluate('INPUT', tcp('1.1.1.1', '2.2.2.2', 99_999)).verdict).toBe('DROP');
    const l = ev.evaluate('FORWARD', tcp('1.1.1.1', '2.2.2.2', 1));
    expect(l.uncertain[0]).toMatch(/too deep/);
  });
});

describe('counters as deltas', () => {
  const doc = fixture('inet-firewall');
  /** The same ruleset with the drop rule's counter at n packets. */
  const counted = (n: number) => JSON.parse(JSON.stringify(doc).replace(/"counter":\{"packets":0,"bytes":0\}/g, `"counter":{"packets":${n},"bytes":${n * 60}}`));
  const judge = (after: number, before?: number) => {
    const snap = { netns: 'n', iptablesSave: null, nftJson: counted(after), addrs: [{ address: '192.168.0.11' }], errors: [] } as unknown as Snapshot;
    return netfilterEvaluator(snap, before === undefined ? undefined : { nftJson: counted(before) })!.evaluate('INPUT', tcp('192.168.0.10', '192.168.0.11', 6443, { iif: 'eth0' }));
  };
  it('the reading from before the command is carried, so only the rule\'s own growth confirms it', () => {
    expect(JSON.stringify(doc)).toMatch(/"counter"/);
    expect(judge(7, 4)).toMatchObject({ packets: 7, packetsBefore: 4 });
    expect(judge(7, 7)).toMatchObject({ packets: 7, packetsBefore: 7 });
    expect(judge(7).packetsBefore).toBeUndefined(); // an older recording: as before
  });
  it('iptables rules too, by table and rule line', () => {
    const save = (n: number) => `*filter\n:INPUT ACCEPT [0:0]\n[${n}:${n * 60}] -A INPUT -p tcp -m tcp --dport 22 -j DROP\nCOMMIT\n`;
    const snap = { netns: 'n', iptablesSave: save(5), iptablesBackend: 'legacy', nftJson: null, addrs: [], errors: [] } as unknown as Snapshot;
    const f = netfilterEvaluator(snap, { iptablesSave: save(5) })!.evaluate('INPUT', tcp('1.1.1.1', '2.2.2.2', 22));
    expect(f).toMatchObject({ verdict: 'DROP', packets: 5, packetsBefore: 5 });
  });
});

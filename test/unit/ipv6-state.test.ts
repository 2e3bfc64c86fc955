// IPv6 state: the ip6tables ruleset evaluated for IPv6 packets (and only for them),
// ICMPv6 matches, neighbour entries.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { evaluateHook } from '../../src/model/netfilter/xt-walk.js';
import { parseIpsetSave } from '../../src/state/netfilter/ipset-save.js';
import { parseIptablesSave } from '../../src/state/netfilter/iptables-save.js';
import { netfilterEvaluator } from '../../src/state/netfilter.js';
import { confKey6, parseIpNeigh } from '../../src/state/parsers.js';
import type { Snapshot } from '../../src/state/snapshot.js';

const FIX = resolve(__dirname, '../fixtures/iptables');
const ip6Save = readFileSync(`${FIX}/kube-router-svip-v6.ip6tables-save`, 'utf8');
const setsSave = readFileSync(`${FIX}/kube-router-svip-v6.ipset-save`, 'utf8');
const v4Save = '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n[7:420] -A INPUT -p tcp -m tcp --dport 6443 -j DROP\nCOMMIT\n';

const snap = (over: Partial<Snapshot>): Snapshot => ({
  netns: 'nw-node1', takenAt: 0, sysctl: {}, links: [], addrs: [], routes: [], rules: [], iptablesSave: null, iptablesBackend: 'nf_tables',
  ipsetSave: null, nftJson: null, conntrack: null, errors: [], durationMs: 0, ...over,
});
const syn6 = { proto: 6, src: 'fd00::10', dst: 'fd00::11', sport: 40000, dport: 6443, iif: 'eth0', mark: 0, ctstate: ['NEW'], tcpFlags: 2 };

describe('IPv6 netfilter state', () => {
  it('an IPv6 packet is evaluated against ip6tables-save, an IPv4 one against iptables-save', () => {
    const ev = netfilterEvaluator(snap({ iptablesSave: v4Save, ip6tablesSave: ip6Save, ipsetSave: setsSave }))!;
    const f6 = ev.evaluate('INPUT', syn6);
    expect(f6.verdict).toBe('REJECT');
    expect(f6.rule).toContain('--reject-with icmp6-port-unreachable');
    expect(f6.ipset).toEqual({ name: 'inet6:kube-router-svip', member: 'fd00::11' });
    expect(ev.backendFor?.(6)).toBe('ip6tables (nf_tables)');
    const f4 = ev.evaluate('INPUT', { ...syn6, src: '192.168.0.10', dst: '192.168.0.11' });
    expect(f4.verdict).toBe('DROP');
    expect(f4.rule).toBe('-A INPUT -p tcp -m tcp --dport 6443 -j DROP');
  });

  it('without an ip6tables ruleset an IPv6 packet gets no verdict from the IPv4 one', () => {
    const ev = netfilterEvaluator(snap({ iptablesSave: v4Save }))!;
    const f = ev.evaluate('INPUT', syn6);
    expect(f.verdict).toBe('UNKNOWN');
    expect(f.rule).toMatch(/no ip6tables ruleset/);
  });

  it('-m icmp6 --icmpv6-type matches ICMPv6 only, by the ICMPv6 numbers', () => {
    const rs = parseIptablesSave(ip6Save);
    const sets = parseIpsetSave(setsSave);
    const echo = { proto: 58, src: 'fd00::10', dst: 'fd00::11', iif: 'eth0', mark: 0, ctstate: ['NEW'], icmpType: 128, icmpCode: 0, localAddrs: [] };
    expect(evaluateHook(rs, sets, 'INPUT', echo).verdict).toBe('ACCEPT');
    expect(evaluateHook(rs, sets, 'INPUT', { ...echo, icmpType: 8 }).verdict).toBe('REJECT');
    expect(evaluateHook(rs, sets, 'INPUT', { ...echo, proto: 1 }).verdict).toBe('REJECT');
  });

  it('ip -j neigh: both families, states and link-layer address', () => {
    const n = parseIpNeigh(JSON.stringify([
      { dst: 'fd00::12', dev: 'eth0', lladdr: '5a:1b:00:00:00:12', router: null, state: ['REACHABLE'] },
      { dst: '192.168.0.12', dev: 'eth0', state: ['FAILED'] },
    ]));
    expect(n).toEqual([
      { family: 6, dst: 'fd00::12', dev: 'eth0', lladdr: '5a:1b:00:00:00:12', router: true, state: ['REACHABLE'] },
      { family: 4, dst: '192.168.0.12', dev: 'eth0', state: ['FAILED'] },
    ]);
    expect(confKey6('all', 'forwarding')).toBe('net.ipv6.conf.all.forwarding');
  });
});

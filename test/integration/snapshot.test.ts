// Builds a network namespace with known state and checks that a snapshot reads it back.
// Needs root, iproute2, iptables, ipset, nft and conntrack. Everything it creates is prefixed
// `nwsnap-` and removed in afterAll, whatever the tests did.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { confKey, takeSnapshot, type Snapshot } from '../../src/state/snapshot.js';

const isRoot = process.getuid?.() === 0;
const NS = `nwsnap-it-${process.pid}`;
const SET = 'nwsnap-set';
const dev = 'nws0';
let devKind = 'dummy';

function sh(...argv: string[]): string {
  return execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}
const inNs = (...argv: string[]): string => sh('ip', 'netns', 'exec', NS, ...argv);

function removeNs(): void {
  try {
    sh('ip', 'netns', 'del', NS);
  } catch {
    /* not there */
  }
}

describe.skipIf(!isRoot)('takeSnapshot on a namespace built for it', () => {
  let snap: Snapshot;

  beforeAll(async () => {
    removeNs();
    sh('ip', 'netns', 'add', NS);
    sh('ip', '-n', NS, 'link', 'set', 'lo', 'up');
    try {
      sh('ip', '-n', NS, 'link', 'add', dev, 'type', 'dummy');
    } catch {
      // Kernels built without CONFIG_DUMMY (this VM's): a veth pair, both ends in the namespace.
      devKind = 'veth';
      sh('ip', '-n', NS, 'link', 'add', dev, 'type', 'veth', 'peer', 'name', 'nws1');
      sh('ip', '-n', NS, 'link', 'set', 'nws1', 'up');
    }
    sh('ip', '-n', NS, 'link', 'set', dev, 'up');
    sh('ip', '-n', NS, 'addr', 'add', '10.20.0.1/24', 'dev', dev);
    sh('ip', '-n', NS, 'addr', 'add', '10.20.0.2/24', 'dev', dev);
    sh('ip', '-n', NS, 'route', 'add', '192.168.50.0/24', 'via', '10.20.0.254', 'dev', dev);
    sh('ip', '-n', NS, 'route', 'add', 'blackhole', '10.30.0.0/16', 'table', '77');
    sh('ip', '-n', NS, 'rule', 'add', 'from', '10.20.0.0/24', 'fwmark', '0x4/0xf', 'table', '77', 'pref', '900');
    inNs('sysctl', '-qw', 'net.ipv4.ip_forward=1', `net.ipv4.conf.${dev}.rp_filter=2`);
    inNs('ipset', 'create', SET, 'hash:ip');
    inNs('ipset', 'add', SET, '10.20.0.7');
    inNs('iptables', '-A', 'INPUT', '-s', '10.20.0.0/24', '-m', 'set', '--match-set', SET, 'src', '-j', 'DROP');
    // A conntrack-using rule makes the namespace track connections; one UDP datagram on its own
    // loopback then leaves one entry (30 s timeout).
    inNs('iptables', '-A', 'OUTPUT', '-m', 'conntrack', '--ctstate', 'INVALID', '-j', 'DROP');
    inNs(process.execPath, '-e', "const s=require('dgram').createSocket('udp4');s.send('x',9,'127.0.0.1',()=>s.close())");
    snap = await takeSnapshot(NS);
    console.log(`snapshot of ${NS} took ${snap.durationMs.toFixed(1)} ms`);
  });

  afterAll(() => {
    removeNs();
  });

  it('names the namespace and reads everything without errors', () => {
    expect(snap.netns).toBe(NS);
    expect(Math.abs(snap.takenAt - Date.now())).toBeLessThan(60_000);
    expect(snap.errors).toEqual([]);
  });

  it('reads the sysctls of the namespace, not of the host', () => {
    expect(snap.sysctl['net.ipv4.ip_forward']).toBe('1');
    expect(snap.sysctl[confKey(dev, 'rp_filter')]).toBe('2');
    expect(snap.sysctl[confKey('all', 'rp_filter')]).toMatch(/^[012]$/);
    expect(snap.sysctl[confKey('lo', 'forwarding')]).toBe('1');
    expect(snap.sysctl[confKey(dev, 'arp_announce')]).toBe('0');
    expect(Number(snap.sysctl['net.netfilter.nf_conntrack_udp_timeout'])).toBeGreaterThan(0);
  });

  it('reads the link and both addresses, the second one secondary', () => {
    const link = snap.links.find((l) => l.name === dev);
    expect(link).toMatchObject({ kind: devKind, up: true });
    expect(snap.links.find((l) => l.name === 'lo')).toMatchObject({ ifindex: 1, up: true });
    const v4 = snap.addrs.filter((a) => a.dev === dev && a.family === 4);
    expect(v4).toEqual([
      { dev, ifindex: link!.ifindex, family: 4, address: '10.20.0.1', prefixlen: 24, secondary: false, scope: 'global' },
      { dev, ifindex: link!.ifindex, family: 4, address: '10.20.0.2', prefixlen: 24, secondary: true, scope: 'global' },
    ]);
  });

  it('reads routes of all tables and the rule', () => {
    expect(snap.routes.find((r) => r.dst === '192.168.50.0/24')).toMatchObject({ table: 'main', type: 'unicast', dev, gateway: '10.20.0.254', family: 4 });
    expect(snap.routes.find((r) => r.dst === '10.30.0.0/16')).toMatchObject({ table: '77', type: 'blackhole', family: 4 });
    expect(snap.routes.find((r) => r.dst === '10.20.0.2' && r.table === 'local')).toMatchObject({ type: 'local', dev, prefsrc: '10.20.0.1' });
    expect(snap.routes.some((r) => r.family === 6 && r.dst === '::1')).toBe(true);
    expect(snap.rules.find((r) => r.priority === 900)).toEqual({ priority: 900, table: '77', src: '10.20.0.0/24', fwmark: '0x4/0xf', family: 4 });
    expect(snap.rules.filter((r) => r.family === 6).map((r) => r.table)).toEqual(['local', 'main']);
  });

  it('captures iptables, ipset and nft rulesets', () => {
    expect(snap.iptablesBackend).toMatch(/^(nf_tables|legacy)$/);
    expect(snap.iptablesSave).toMatch(/^\[\d+:\d+\] -A INPUT -s 10\.20\.0\.0\/24 -m set --match-set nwsnap-set src -j DROP$/m);
    expect(snap.ipsetSave).toMatch(/^create nwsnap-set hash:ip family inet /m);
    expect(snap.ipsetSave).toMatch(/^add nwsnap-set 10\.20\.0\.7$/m);
    const nft = snap.nftJson as { nftables: Array<Record<string, { name?: string; family?: string }>> };
    if (snap.iptablesBackend === 'nf_tables') {
      expect(nft.nftables.some((x) => x['table']?.name === 'filter' && x['table']?.family === 'ip')).toBe(true);
    }
  });

  it('reads conntrack statistics and the entry count of the namespace', () => {
    expect(snap.conntrack).not.toBeNull();
    expect(snap.conntrack!.cpus).toBeGreaterThan(0);
    expect(snap.conntrackMax).toBeGreaterThan(0);
    expect(snap.conntrackCount).toBe(1);
  });

  it('falls back to /proc for conntrack stats and records missing tools', async () => {
    // A PATH with only what the namespace plumbing needs: the rule tools are "not installed".
    const bin = mkdtempSync(join(tmpdir(), 'nwsnap-bin-'));
    const oldPath = process.env.PATH;
    try {
      for (const tool of ['ip', 'sh', 'grep', 'cat']) symlinkSync(sh('sh', '-c', `command -v ${tool}`).trim(), join(bin, tool));
      process.env.PATH = bin;
      const s = await takeSnapshot(NS);
      expect(s.iptablesSave).toBeNull();
      expect(s.iptablesBackend).toBeNull();
      expect(s.ipsetSave).toBeNull();
      expect(s.nftJson).toBeNull();
      expect(s.errors).toEqual(expect.arrayContaining([expect.stringMatching(/^iptables-save: .*iptables-save/), expect.stringMatching(/^ipset: /), expect.stringMatching(/^nft: /)]));
      expect(s.errors.some((e) => e.startsWith('conntrack'))).toBe(false);
      expect(s.conntrack).toMatchObject({ cpus: snap.conntrack!.cpus });
      expect(s.sysctl[confKey(dev, 'rp_filter')]).toBe('2');
      expect(s.addrs.filter((a) => a.dev === dev && a.family === 4)).toHaveLength(2);
    } finally {
      process.env.PATH = oldPath;
      rmSync(bin, { recursive: true, force: true });
    }
  });

  it('snapshots the host without the namespace state', async () => {
    const host = await takeSnapshot('host');
    expect(host.netns).toBe('host');
    expect(host.sysctl[confKey(dev, 'rp_filter')]).toBeUndefined();
    expect(host.addrs.some((a) => a.address === '10.20.0.2')).toBe(false);
    expect(host.sysctl[confKey('lo', 'rp_filter')]).toMatch(/^\d$/);
    console.log(`snapshot of host took ${host.durationMs.toFixed(1)} ms`);
  });

  it('rejects an unknown namespace, listing the known ones', async () => {
    const err = await takeSnapshot('nwsnap-does-not-exist').then(
      () => null,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(new RegExp(`^network namespace 'nwsnap-does-not-exist' does not exist \\(ip netns list: .*${NS}`));
    await expect(takeSnapshot('../etc')).rejects.toThrow(/network namespace '\.\.\/etc' does not exist/);
  });
});

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  StateParseError,
  confKey,
  parseConntrackStats,
  parseIpAddrs,
  parseIpLinks,
  parseIpRoutes,
  parseIpRules,
  parseIptablesBackend,
  parseNftJson,
  parseProcConntrackStat,
  parseSysctlDump,
} from '../../src/state/parsers.js';
import { SnapshotCache, type Snapshot } from '../../src/state/snapshot.js';

// Fixtures were recorded from a namespace on kernel 6.18 / iproute2 6.1: veth pair v0/v1, v1
// enslaved to bridge br0, 10.9.0.1/24 + 10.9.0.2/24 (secondary) + fd00::1/64 on v0, and a few
// routes and rules of every kind.
const fixture = (name: string): string => readFileSync(new URL(`../fixtures/state/${name}`, import.meta.url), 'utf8');

/** Run `fn`, expect a StateParseError, return its message. */
function parseError(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(StateParseError);
    return (e as Error).message;
  }
  throw new Error('expected a StateParseError, nothing was thrown');
}

describe('parseSysctlDump', () => {
  it('reads the grep -H dump the snapshot takes', () => {
    const s = parseSysctlDump(fixture('sysctl-dump.txt'));
    expect(Object.keys(s)).toHaveLength(42);
    expect(s['net.ipv4.ip_forward']).toBe('1');
    expect(s['net.ipv4.conf.v0.rp_filter']).toBe('2');
    expect(s[confKey('v1', 'arp_ignore')]).toBe('1');
    expect(s['net.ipv4.conf.all.rp_filter']).toBe('0');
    expect(s['net.netfilter.nf_conntrack_max']).toBe('262144');
    expect(s['net.netfilter.nf_conntrack_udp_timeout']).toBe('30');
    expect(s['net.bridge.bridge-nf-call-iptables']).toBe('1');
  });

  it('keeps device names with dots and = intact, values with colons whole', () => {
    const s = parseSysctlDump(
      ['net/ipv4/conf/eth0.100/rp_filter:1', '/proc/sys/net/ipv4/conf/we=ird/forwarding:0', 'net/ipv4/vs/sync_ports:a:b', ''].join('\n'),
    );
    expect(s).toEqual({
      'net.ipv4.conf.eth0.100.rp_filter': '1',
      'net.ipv4.conf.we=ird.forwarding': '0',
      'net.ipv4.vs.sync_ports': 'a:b',
    });
    expect(s[confKey('eth0.100', 'rp_filter')]).toBe('1');
  });

  it('accepts key=value and sysctl -a lines, tabs inside values', () => {
    expect(parseSysctlDump('net.ipv4.ip_forward=1\r\nnet.ipv4.ip_local_port_range = 32768\t60999\n')).toEqual({
      'net.ipv4.ip_forward': '1',
      'net.ipv4.ip_local_port_range': '32768\t60999',
    });
  });

  it('joins the lines of a multi-line value', () => {
    expect(parseSysctlDump('net/x/y:a\nnet/x/y:b\n')).toEqual({ 'net.x.y': 'a\nb' });
  });

  it('rejects lines it cannot read, naming the line', () => {
    expect(parseError(() => parseSysctlDump('net.ipv4.ip_forward=1\ngarbage here\n'))).toMatch(/line 2.*garbage here/);
    expect(parseError(() => parseSysctlDump('net/ipv4/ip_forward\n'))).toMatch(/\(line 1\): no ':' after the path/);
    expect(parseError(() => parseSysctlDump('=1'))).toMatch(/bad key/);
    expect(parseError(() => parseSysctlDump('net..x=1'))).toMatch(/bad key/);
    expect(parseError(() => parseSysctlDump('net/ipv4 /x:1'))).toMatch(/bad path/);
  });
});

describe('parseIpLinks', () => {
  it('reads kind, master and state', () => {
    const links = parseIpLinks(fixture('ip-link.json'));
    expect(links.map((l) => [l.ifindex, l.name, l.kind, l.master])).toEqual([
      [1, 'lo', undefined, undefined],
      [3, 'br0', 'bridge', undefined],
      [5, 'v1', 'veth', 'br0'],
      [6, 'v0', 'veth', undefined],
    ]);
    expect(links.every((l) => l.up)).toBe(true);
    expect(links.find((l) => l.name === 'br0')).toMatchObject({ operstate: 'UP', mtu: 1500, lowerUp: true });
  });

  it('reads a down link without carrier', () => {
    const [l] = parseIpLinks('[{"ifindex":9,"ifname":"eth9","flags":["BROADCAST","NO-CARRIER"],"operstate":"DOWN"}]');
    expect(l).toEqual({ ifindex: 9, name: 'eth9', up: false, lowerUp: false, operstate: 'DOWN' });
  });

  it('rejects malformed input, naming the element and field', () => {
    expect(parseError(() => parseIpLinks(''))).toMatch(/ip link.*empty input/);
    expect(parseError(() => parseIpLinks('[{"ifindex":1,'))).toMatch(/ip link.*invalid JSON/);
    expect(parseError(() => parseIpLinks('{"ifindex":1}'))).toMatch(/expected a JSON array, got object/);
    expect(parseError(() => parseIpLinks('[{"ifindex":1,"ifname":"lo"}, 7]'))).toMatch(/element \[1\] is number/);
    expect(parseError(() => parseIpLinks('[{"ifname":"lo"}]'))).toMatch(/link \[0\] 'lo': field 'ifindex' is missing/);
    expect(parseError(() => parseIpLinks('[{"ifindex":"1","ifname":"lo"}]'))).toMatch(/'ifindex' is not a non-negative integer/);
    expect(parseError(() => parseIpLinks('[{"ifindex":1}]'))).toMatch(/link \[0\]: field 'ifname' is missing/);
    expect(parseError(() => parseIpLinks('[{"ifindex":1,"ifname":"x","flags":"UP"}]'))).toMatch(/'flags' is not an array of strings/);
    expect(parseError(() => parseIpLinks('[{"ifindex":1,"ifname":"x","linkinfo":{"info_kind":5}}]'))).toMatch(/linkinfo: field 'info_kind'/);
  });
});

describe('parseIpAddrs', () => {
  it('flattens addr_info and marks the secondary address', () => {
    const addrs = parseIpAddrs(fixture('ip-addr.json'));
    expect(addrs).toHaveLength(8);
    const v4 = addrs.filter((a) => a.dev === 'v0' && a.family === 4);
    expect(v4).toEqual([
      { dev: 'v0', ifindex: 6, family: 4, address: '10.9.0.1', prefixlen: 24, secondary: false, scope: 'global' },
      { dev: 'v0', ifindex: 6, family: 4, address: '10.9.0.2', prefixlen: 24, secondary: true, scope: 'global' },
    ]);
    expect(addrs.find((a) => a.address === 'fd00::1')).toMatchObject({ family: 6, prefixlen: 64, scope: 'global', secondary: false });
    expect(addrs.find((a) => a.dev === 'lo' && a.family === 4)).toMatchObject({ address: '127.0.0.1', prefixlen: 8, scope: 'host' });
    expect(addrs.filter((a) => a.scope === 'link').map((a) => a.dev).sort()).toEqual(['br0', 'v0', 'v1']);
  });

  it('keeps IPv6 DAD state', () => {
    const [a] = parseIpAddrs(
      '[{"ifindex":4,"ifname":"e","addr_info":[{"family":"inet6","local":"fe80::1","prefixlen":64,"scope":"link","tentative":true,"dadfailed":true}]}]',
    );
    expect(a).toMatchObject({ tentative: true, dadfailed: true });
  });

  it('rejects malformed addresses', () => {
    const one = (ai: string): string => `[{"ifindex":4,"ifname":"e0","addr_info":[${ai}]}]`;
    expect(parseError(() => parseIpAddrs(one('{"family":"inet","prefixlen":24}')))).toMatch(/link \[0\] 'e0' addr_info\[0\]: field 'local' is missing/);
    expect(parseError(() => parseIpAddrs(one('{"family":"inet","local":"10.1.2","prefixlen":24}')))).toMatch(/not an IPv4 address/);
    expect(parseError(() => parseIpAddrs(one('{"family":"inet6","local":"10.1.2.3","prefixlen":64}')))).toMatch(/not an IPv6 address/);
    expect(parseError(() => parseIpAddrs(one('{"family":"inet","local":"10.1.2.3","prefixlen":33}')))).toMatch(/prefixlen 33 out of range/);
    expect(parseError(() => parseIpAddrs(one('"x"')))).toMatch(/addr_info\[0\] is string/);
    expect(parseError(() => parseIpAddrs('[{"ifindex":4,"ifname":"e0","addr_info":{}}]'))).toMatch(/'addr_info' is not an array/);
  });
});

describe('parseIpRoutes', () => {
  const routes = parseIpRoutes(fixture('ip-route-all.json'));

  it('fills in the implicit main table and unicast type', () => {
    expect(routes.find((r) => r.dst === '192.168.77.0/24')).toEqual({
      table: 'main',
      dst: '192.168.77.0/24',
      type: 'unicast',
      dev: 'v0',
      gateway: '10.9.0.254',
      protocol: 'static',
      family: 4,
    });
    expect(routes.find((r) => r.dst === '10.8.0.0/16')).toMatchObject({ table: 'main', prefsrc: '10.9.0.2', scope: 'link' });
  });

  it('reads special route types and numbered tables', () => {
    expect(routes.find((r) => r.dst === '10.66.0.0/16')).toEqual({ table: 'main', dst: '10.66.0.0/16', type: 'blackhole', family: 4 });
    // No address tells the family of an `unreachable default` listed without -4/-6.
    expect(routes.find((r) => r.dst === 'default')).toEqual({ table: '100', dst: 'default', type: 'unreachable' });
    expect(routes.find((r) => r.dst === '10.44.0.0/16')).toMatchObject({ table: '100', type: 'throw' });
    expect(routes.find((r) => r.dst === '10.9.0.2')).toMatchObject({ table: 'local', type: 'local', dev: 'v0', prefsrc: '10.9.0.1' });
    expect(routes.filter((r) => r.type === 'broadcast').map((r) => r.dst)).toEqual(['10.9.0.255', '127.255.255.255']);
  });

  it('reads multipath nexthops', () => {
    const mp = routes.find((r) => r.dst === '10.77.0.0/24')!;
    expect(mp.dev).toBeUndefined();
    expect(mp.nexthops).toEqual([
      { gateway: '10.9.0.253', dev: 'v0', weight: 1 },
      { gateway: '10.9.0.252', dev: 'v0', weight: 2 },
    ]);
    expect(mp.family).toBe(4);
  });

  it('records the family it is given, or guesses it from the addresses', () => {
    expect(routes.find((r) => r.dst === 'fd01::/64')).toMatchObject({ family: 6, gateway: 'fd00::fe', metric: 1024 });
    const v6 = parseIpRoutes(fixture('ip-route6-all.json'), 6);
    expect(v6).toHaveLength(13);
    expect(v6.every((r) => r.family === 6)).toBe(true);
    expect(v6.filter((r) => r.type === 'multicast')).toHaveLength(3);
    expect(parseIpRoutes('[{"type":"unreachable","dst":"default","table":"100"}]', 4)[0]!.family).toBe(4);
    expect(parseIpRoutes('[]')).toEqual([]);
  });

  it('rejects malformed routes', () => {
    // What `ip -j route show table N` prints for a table that does not exist.
    expect(parseError(() => parseIpRoutes('['))).toMatch(/ip route: invalid JSON/);
    expect(parseError(() => parseIpRoutes('[{"dev":"eth0"}]'))).toMatch(/route \[0\]: field 'dst' is missing/);
    expect(parseError(() => parseIpRoutes('[{"dst":"default","metric":-1}]'))).toMatch(/'metric' is not a non-negative integer/);
    expect(parseError(() => parseIpRoutes('[{"dst":"default","gateway":5}]'))).toMatch(/'gateway' is not a string/);
    expect(parseError(() => parseIpRoutes('[{"dst":"10.0.0.0/8","nexthops":{}}]'))).toMatch(/route \[0\] '10.0.0.0\/8': field 'nexthops' is not an array/);
    expect(parseError(() => parseIpRoutes('[{"dst":"10.0.0.0/8","nexthops":[null]}]'))).toMatch(/nexthops\[0\] is null/);
  });
});

describe('parseIpRules', () => {
  const rules = parseIpRules(fixture('ip-rule.json'), 4);
  const at = (p: number) => rules.find((r) => r.priority === p);

  it('reads lookups with selectors', () => {
    expect(rules.map((r) => r.priority)).toEqual([0, 1000, 1100, 1200, 1300, 1400, 1500, 1550, 1600, 1700, 1701, 1800, 1900, 1901, 32766, 32767]);
    expect(at(0)).toEqual({ priority: 0, table: 'local', family: 4 });
    expect(at(1000)).toEqual({ priority: 1000, table: '100', src: '10.9.0.0/24', fwmark: '0x10/0xff', family: 4 });
    expect(at(1100)).toEqual({ priority: 1100, table: 'main', iif: 'v0', oif: 'br0', family: 4 });
    expect(at(1300)).toEqual({ priority: 1300, table: '200', fwmark: '0x1', invert: true, family: 4 });
    expect(at(1500)).toEqual({ priority: 1500, table: '7', dst: '10.2.3.4', ipproto: 'tcp', dport: '80', uidrange: '100-200', family: 4 });
    // A full mask (fwmark 0x7/0xffffffff) is printed without fwmask.
    expect(at(1800)).toMatchObject({ table: '9', fwmark: '0x7', sport: '1000-2000', tos: '0x10' });
    expect(at(1900)).toMatchObject({ dport: '80-90' });
    expect(at(1901)).toMatchObject({ sport: '53' });
  });

  it('reads non-lookup actions', () => {
    expect(at(1200)).toEqual({ priority: 1200, table: '', action: 'prohibit', dst: '10.1.0.0/16', family: 4 });
    expect(at(1400)).toEqual({ priority: 1400, table: '', action: 'goto', goto: 1600, family: 4 });
    expect(at(1600)).toMatchObject({ action: 'blackhole', table: '' });
    expect(at(1700)).toMatchObject({ action: 'l3mdev', iif: 'lo' });
    expect(at(1701)).toMatchObject({ action: 'nop' });
    expect(at(32766)!.action).toBeUndefined();
  });

  it('reads IPv6 rules', () => {
    const r6 = parseIpRules(fixture('ip-rule6.json'));
    expect(r6).toEqual([
      { priority: 0, table: 'local' },
      { priority: 1801, table: '9', src: 'fd00::/16', dst: 'fd01::5', family: 6 },
      { priority: 32766, table: 'main' },
    ]);
  });

  it('rejects malformed rules', () => {
    expect(parseError(() => parseIpRules('[{"src":"all","table":"main"}]'))).toMatch(/rule \[0\]: field 'priority' is missing/);
    expect(parseError(() => parseIpRules('[{"priority":5,"src":"all"}]'))).toMatch(/rule \[0\] priority 5: no table, action/);
    expect(parseError(() => parseIpRules('[{"priority":5,"action":"explode"}]'))).toMatch(/unknown action "explode"/);
    expect(parseError(() => parseIpRules('[{"priority":5,"table":"main","sport_start":1}]'))).toMatch(/sport_start without sport_end/);
    expect(parseError(() => parseIpRules('[{"priority":5,"goto":"x"}]'))).toMatch(/'goto' is not a non-negative integer/);
    expect(parseError(() => parseIpRules('[{"priority":5,"table":"main","src":"10.0.0.0","srclen":"8"}]'))).toMatch(/'srclen'/);
  });
});

describe('parseConntrackStats', () => {
  it('sums the per-CPU lines', () => {
    expect(parseConntrackStats(fixture('conntrack-S-busy.txt'))).toEqual({
      found: 42,
      invalid: 7,
      insert: 0,
      insertFailed: 1,
      drop: 3,
      earlyDrop: 6,
      error: 5,
      searchRestart: 8,
      clashResolve: 3,
      chainTooLong: 9,
      cpus: 3,
    });
    expect(parseConntrackStats(fixture('conntrack-S.txt'))).toMatchObject({ found: 0, drop: 0, cpus: 2 });
  });

  it('leaves out counters an older conntrack does not print', () => {
    const s = parseConntrackStats('cpu=0 found=1 invalid=2 ignore=9 insert=3 insert_failed=4 drop=5 early_drop=6 error=7 search_restart=8\n');
    expect(s).toEqual({ found: 1, invalid: 2, insert: 3, insertFailed: 4, drop: 5, earlyDrop: 6, error: 7, searchRestart: 8, cpus: 1 });
  });

  it('rejects malformed lines, naming line and field', () => {
    expect(parseError(() => parseConntrackStats(''))).toMatch(/no per-CPU lines/);
    expect(parseError(() => parseConntrackStats('cpu=0 found=1 invalid=x'))).toMatch(/line 1.*bad token "invalid=x"/);
    expect(parseError(() => parseConntrackStats('found=1 invalid=1'))).toMatch(/line 1.*no cpu= field/);
    expect(parseError(() => parseConntrackStats('cpu=0 found=0 invalid=0 insert=0 insert_failed=0 drop=0 early_drop=0 error=0 search_restart=0\ncpu=1 found=1'))).toMatch(
      /line 2.*missing field 'invalid'/,
    );
  });
});

describe('parseProcConntrackStat', () => {
  it('sums hex rows and maps the column names', () => {
    expect(parseProcConntrackStat(fixture('proc-nf_conntrack-busy.txt'))).toEqual({
      entries: 42,
      found: 42,
      invalid: 7,
      insert: 0,
      insertFailed: 1,
      drop: 3,
      earlyDrop: 6,
      error: 5,
      searchRestart: 8,
      clashResolve: 3,
      cpus: 2,
    });
    expect(parseProcConntrackStat(fixture('proc-nf_conntrack.txt'))).toMatchObject({ entries: 0, found: 0, cpus: 2 });
  });

  it('reads the older layout without clashres', () => {
    const s = parseProcConntrackStat(fixture('proc-nf_conntrack-old.txt'));
    expect(s).toMatchObject({ entries: 16, found: 256, invalid: 255, cpus: 1 });
    expect(s.clashResolve).toBeUndefined();
  });

  it('rejects malformed tables', () => {
    expect(parseError(() => parseProcConntrackStat(''))).toMatch(/empty input/);
    expect(parseError(() => parseProcConntrackStat('found invalid\n0 0'))).toMatch(/line 1.*no 'entries' column/);
    expect(parseError(() => parseProcConntrackStat('entries found\n0 0'))).toMatch(/no 'invalid' column/);
    const head = fixture('proc-nf_conntrack-old.txt').split('\n')[0]!;
    expect(parseError(() => parseProcConntrackStat(`${head}\n`))).toMatch(/no per-CPU rows/);
    expect(parseError(() => parseProcConntrackStat(`${head}\n00000001 00000002`))).toMatch(/\(line 2\): 2 columns, header has 17/);
    const badRow = Array(17).fill('00000000');
    badRow[2] = '0000zz00';
    expect(parseError(() => parseProcConntrackStat(`${head}\n${badRow.join(' ')}`))).toMatch(/\(line 2\): column 'found' is not hex: "0000zz00"/);
  });
});

describe('parseIptablesBackend / parseNftJson', () => {
  it('reads the backend', () => {
    expect(parseIptablesBackend(fixture('iptables-version.txt'))).toBe('nf_tables');
    expect(parseIptablesBackend('iptables v1.8.9 (legacy)\n')).toBe('legacy');
    expect(parseIptablesBackend('iptables v1.6.1\n')).toBe('legacy');
    expect(parseError(() => parseIptablesBackend('nft v1.0.6'))).toMatch(/iptables --version.*unexpected output/);
  });

  it('reads the nft ruleset', () => {
    const j = parseNftJson(fixture('nft-ruleset.json'));
    const rule = j.nftables.find((x) => typeof x === 'object' && x !== null && 'rule' in x) as { rule: { chain: string } };
    expect(rule.rule.chain).toBe('INPUT');
    expect(parseError(() => parseNftJson('{"tables":[]}'))).toMatch(/no top-level 'nftables' array/);
    expect(parseError(() => parseNftJson('{'))).toMatch(/invalid JSON/);
    expect(parseError(() => parseNftJson(' '))).toMatch(/empty input/);
  });
});

describe('SnapshotCache', () => {
  const fake = (netns: string, n: number): Snapshot => ({
    netns, takenAt: n, sysctl: {}, links: [], addrs: [], routes: [], rules: [], iptablesSave: null, iptablesBackend: null,
    ipsetSave: null, nftJson: null, conntrack: null, errors: [], durationMs: 0,
  });

  it('reuses a fresh snapshot, shares in-flight reads, re-reads after invalidate or expiry', async () => {
    let calls = 0;
    const cache = new SnapshotCache(50, async (ns) => fake(ns, ++calls));
    const [a, b] = await Promise.all([cache.get('x'), cache.get('x')]);
    expect(a.takenAt).toBe(1);
    expect(b).toBe(a);
    expect((await cache.get('y')).takenAt).toBe(2);
    expect((await cache.get('x')).takenAt).toBe(1);
    cache.invalidate('x');
    expect((await cache.get('x')).takenAt).toBe(3);
    expect((await cache.get('y')).takenAt).toBe(2);
    cache.invalidate();
    expect((await cache.get('y')).takenAt).toBe(4);
    await new Promise((r) => setTimeout(r, 70));
    expect((await cache.get('y')).takenAt).toBe(5);
  });

  it('does not cache a failed read', async () => {
    let calls = 0;
    const cache = new SnapshotCache(10_000, async (ns) => {
      calls++;
      if (calls === 1) throw new Error('no such netns');
      return fake(ns, calls);
    });
    await expect(cache.get('x')).rejects.toThrow('no such netns');
    expect((await cache.get('x')).takenAt).toBe(2);
  });
});

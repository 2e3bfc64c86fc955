// The one IP address type: parsing, printing, ranges, host:port.
import { describe, expect, it } from 'vitest';
import { formatIPv6 } from '../../src/abi.js';
import { endpointText, formatIp, hostPort, ipBytes, parseAddrRange, parseIp, rangeContains } from '../../src/model/ip.js';
import { bestRoute } from '../../src/model/route.js';

describe('model/ip', () => {
  it('parses dotted quads and IPv6 (with an embedded IPv4), and refuses what the kernel tools never print', () => {
    expect(parseIp('10.244.2.2')).toEqual({ family: 4, value: 0x0af40202n });
    expect(parseIp('::ffff:10.0.0.1')).toEqual({ family: 6, value: 0xffff0a000001n });
    for (const bad of ['10.1', '256.1.1.1', 'fd00::1::2', 'fe80::1%eth0', 'nonsense', '']) expect(parseIp(bad), bad).toBeNull();
  });

  it('prints IPv6 compressed the way inet_ntop does, the same as the record decoder', () => {
    for (const text of ['fd00::1', '2001:db8:0:0:1:0:0:1', 'fe80::a:b:c:d', '::', '1:2:3:4:5:6:7:8']) {
      const a = parseIp(text)!;
      expect(formatIp(6, a.value), text).toBe(formatIPv6(ipBytes(a), 0));
    }
    expect(formatIp(6, parseIp('2001:db8:0:0:1:0:0:1')!.value)).toBe('2001:db8::1:0:0:1');
    expect(formatIp(4, 0xc0a8000bn)).toBe('192.168.0.11');
  });

  it('ranges: a CIDR, a dash range, one address; containment respects the family', () => {
    const r = parseAddrRange('10.244.0.0/16')!;
    expect(rangeContains(r, parseIp('10.244.9.9')!)).toBe(true);
    expect(rangeContains(r, parseIp('10.245.0.1')!)).toBe(false);
    expect(rangeContains(parseAddrRange('fd00::/64')!, parseIp('fd00::5')!)).toBe(true);
    expect(rangeContains(parseAddrRange('0.0.0.0/0')!, parseIp('::1')!)).toBe(false);
    expect(parseAddrRange('10.0.0.9-10.0.0.1')).toBeNull();
    expect(parseAddrRange('10.0.0.0/33')).toBeNull();
  });

  it('host:port brackets IPv6 only; a packet without ports is shown without them', () => {
    expect(hostPort('10.0.0.1', 80)).toBe('10.0.0.1:80');
    expect(hostPort('fd00::1', 80)).toBe('[fd00::1]:80');
    expect(endpointText({ src: 'fd00::1', sport: 4000, dst: '10.0.0.1', dport: 53 })).toBe('[fd00::1]:4000 > 10.0.0.1:53');
    expect(endpointText({ src: '10.0.0.1', dst: '10.0.0.2' })).toBe('10.0.0.1 > 10.0.0.2');
  });

  it('the most specific route covers an address of its own family only', () => {
    const routes = [
      { table: 'main', dst: 'default', family: 6 as const, type: 'unicast', dev: 'eth1' },
      { table: 'main', dst: '10.244.0.0/16', family: 4 as const, type: 'unicast', dev: 'cni0' },
      { table: 'main', dst: 'fd00:244::/64', family: 6 as const, type: 'unicast', dev: 'cni0' },
    ];
    expect(bestRoute(routes, '10.244.1.1')?.dst).toBe('10.244.0.0/16');
    expect(bestRoute(routes, '192.168.0.1')).toBeUndefined(); // the IPv6 default does not cover it
    expect(bestRoute(routes, 'fd00:244::7')?.dst).toBe('fd00:244::/64');
    expect(bestRoute(routes, '2001:db8::1')?.dst).toBe('default');
  });
});

describe('one tuple formatter: IPv6 in brackets everywhere', () => {
  it('packet lines, IPVS lines, socket and NAT evidence bracket an IPv6 address with a port', async () => {
    const { ipvsText } = await import('../../src/model/ipvs.js');
    const { tupleText } = await import('../../src/explain/evidence.js');
    expect(endpointText({ src: 'fd00::10', sport: 40000, dst: 'fd00::11', dport: 80 })).toBe('[fd00::10]:40000 > [fd00::11]:80');
    expect(tupleText({ family: 10, proto: 6, src: 'fd00::10', sport: 1, dst: 'fd00::2', dport: 80 })).toBe('tcp [fd00::10]:1 > [fd00::2]:80');
    expect(tupleText({ family: 10, proto: 58, src: 'fd00::10', sport: 128, dst: 'fd00::2', dport: 0 })).toBe('icmp6 fd00::10 > fd00::2');
    const svc = { af: 10, protocol: 6, addr: 'fd00:10:96::20', port: 80, fwmark: 0, flags: 0, scheduler: 'rr' };
    const conn = { kind: 'ipvs-conn' as const, ts: 0, cpu: 0, probe: 5, client: { family: 10, proto: 6, src: 'fd00::10', sport: 5, dst: 'fd00:10:96::20', dport: 80 }, daddr: 'fd00:10:244:2::2', dport: 80, connFlags: 0, netns: 1, svc };
    expect(ipvsText(conn)).toBe('new connection [fd00::10]:5 > TCP [fd00:10:96::20]:80 rr -> [fd00:10:244:2::2]:80');
  });
});

describe('route rule and families', () => {
  it('a default route of the other family, given without its family, covers nothing', () => {
    const routes = [
      { table: 'main', dst: 'default', gateway: 'fe80::1', dev: 'eth0', type: 'unicast' },
      { table: 'main', dst: 'fe80::/64', dev: 'eth0', type: 'unicast' },
      { table: 'main', dst: '192.168.0.0/24', dev: 'eth0', type: 'unicast' },
    ];
    expect(bestRoute(routes, '10.244.2.2')).toBeUndefined();
    expect(bestRoute(routes, 'fd00:10:244:2::2')?.gateway).toBe('fe80::1');
  });
});

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { type ParseErrorCase, parseErrorCases, parseErrorOf } from '../helpers/parse-errors.js';
import { type IpSet, type SetPacket, findSetMember, testSetMembership } from '../../src/model/netfilter/ipset.js';
import { IpsetParseError, parseIpsetSave } from '../../src/state/netfilter/ipset-save.js';

const fixture = (name: string) =>
  readFileSync(fileURLToPath(new URL(`../fixtures/iptables/${name}`, import.meta.url)), 'utf8');

const kubeRouter = parseIpsetSave(fixture('kube-router.ipset'));
const kubeProxy = parseIpsetSave(fixture('kube-proxy-ipvs.ipset'));

const set = (sets: Map<string, IpSet>, name: string): IpSet => {
  const s = sets.get(name);
  if (!s) throw new Error(`no set ${name}`);
  return s;
};

const tcp = (src: string, sport: number, dst: string, dport: number): SetPacket => ({ proto: 6, src, sport, dst, dport });

const parseError = (text: string): IpsetParseError => parseErrorOf(parseIpsetSave, IpsetParseError, text);

describe('parseIpsetSave', () => {
  it('reads kube-router sets with their type, options and members', () => {
    expect([...kubeRouter.keys()]).toEqual([
      'kube-router-local-ips',
      'kube-router-svip',
      'kube-router-svip-prt',
      'kube-router-ipvs-services',
      'kube-router-pod-subnets',
      'kube-router-node-ips',
      'KUBE-SRC-VX7Q2DUKL66R4LIG',
      'KUBE-DST-KNT4FDYPNLOSLHPY',
      'inet6:kube-router-svip',
      'inet6:kube-router-svip-prt',
    ]);
    const svip = set(kubeRouter, 'kube-router-svip');
    expect(svip.type).toBe('hash:ip');
    expect(svip.dims).toEqual(['ip']);
    expect(svip.family).toBe('inet');
    expect(svip.line).toBe(6);
    expect(svip.options).toMatchObject({ hashsize: '1024', maxelem: '65536', timeout: '0', bucketsize: '12', initval: '0x1c5e83f4' });
    expect(svip.members.map((m) => m.text)).toEqual(['10.96.0.1', '10.96.0.10', '10.106.44.211', '192.168.0.12', '192.168.0.100']);
    expect(svip.members[4]).toMatchObject({ text: '192.168.0.100', timeout: 0, line: 11, nomatch: false });
    const prt = set(kubeRouter, 'kube-router-svip-prt');
    expect(prt.dims).toEqual(['ip', 'port']);
    expect(prt.members[1].elems[1]).toEqual({ kind: 'port', proto: 17, lo: 53, hi: 53 });
    expect(set(kubeRouter, 'inet6:kube-router-svip').family).toBe('inet6');
    expect(set(kubeRouter, 'KUBE-SRC-VX7Q2DUKL66R4LIG').members[1]).toMatchObject({ text: '10.244.2.0/24', nomatch: true });
  });

  it('reads kube-proxy IPVS-mode sets: comments, bitmap:port, three-dimension types', () => {
    const cip = set(kubeProxy, 'KUBE-CLUSTER-IP');
    expect(cip.options.comment).toBe(true);
    expect(cip.members[0]).toMatchObject({ text: '10.96.0.1,tcp:443', comment: 'default/kubernetes:https' });
    const np = set(kubeProxy, 'KUBE-NODE-PORT-TCP');
    expect(np).toMatchObject({ type: 'bitmap:port', dims: ['port'], options: { range: '0-65535', comment: true } });
    expect(np.members.map((m) => m.text)).toEqual(['30080', '31443']);
    expect(set(kubeProxy, 'KUBE-LOAD-BALANCER-SOURCE-CIDR').dims).toEqual(['ip', 'port', 'net']);
    expect(set(kubeProxy, 'KUBE-LOOP-BACK').members[0].elems).toHaveLength(3);
    expect(set(kubeProxy, 'KUBE-EXTERNAL-IP').members).toEqual([]);
  });

  it('accepts -exist, blank lines, comments, del/flush/destroy/swap', () => {
    const sets = parseIpsetSave(
      [
        '# ipset restore input',
        'create a hash:ip family inet -exist',
        'add a 10.0.0.1 -exist',
        'add a 10.0.0.2',
        '',
        'del a 10.0.0.1',
        'create b hash:net',
        'add b 10.1.0.0/16',
        'create c hash:ip',
        'add c 1.1.1.1',
        'destroy c',
        'swap a b',
      ].join('\n'),
    );
    expect([...sets.keys()]).toEqual(['a', 'b']);
    expect(sets.get('a')!.members.map((m) => m.text)).toEqual(['10.1.0.0/16']);
    expect(sets.get('b')!.members.map((m) => m.text)).toEqual(['10.0.0.2']);
  });

  it('accepts IPv6 hash:ip and hash:net members and CRLF line ends', () => {
    const sets = parseIpsetSave('create v6 hash:net family inet6\r\nadd v6 fd00:10:96::/112\r\nadd v6 ::ffff:10.0.0.1\r\n');
    const v6 = sets.get('v6')!;
    expect(v6.members.map((m) => m.text)).toEqual(['fd00:10:96::/112', '::ffff:10.0.0.1']);
    expect(findSetMember(v6, ['dst'], { proto: 6, src: 'fd00::1', dst: 'fd00:10:96::a', dport: 80 })).toBe('fd00:10:96::/112');
  });

  it('keeps sets of unknown types but says membership cannot be checked', () => {
    const sets = parseIpsetSave('create m hash:ip,mac\nadd m 10.0.0.1,00:11:22:33:44:55\ncreate x hash:foo,bar\nadd x whatever');
    expect(testSetMembership(sets.get('m')!, ['src', 'src'], tcp('10.0.0.1', 1, '10.0.0.2', 2))).toEqual({
      outcome: 'unknown',
      reason: 'set type hash:ip,mac matches MAC addresses, which the packet context does not carry',
    });
    expect(sets.get('x')!.unsupported).toBe('set type hash:foo,bar is not supported');
    expect(sets.get('x')!.members[0].text).toBe('whatever');
  });

  describe('malformed input gives IpsetParseError with the line number and the line', () => {
    const cases: ParseErrorCase[] = [
      ['add before create', 'create a hash:ip\nadd b 10.0.0.1', 2, 'add b 10.0.0.1', /set b was not created/],
      ['bad address', 'create a hash:ip\n\nadd a 10.0.0.256', 3, 'add a 10.0.0.256', /bad address/],
      ['member of wrong shape', 'create a hash:ip,port\nadd a 10.0.0.1', 2, 'add a 10.0.0.1', /2 part/],
      ['bad port', 'create a hash:ip,port\nadd a 10.0.0.1,tcp:70000', 2, 'add a 10.0.0.1,tcp:70000', /bad port/],
      ['unknown protocol', 'create a hash:ip,port\nadd a 10.0.0.1,foo:53', 2, 'add a 10.0.0.1,foo:53', /unknown protocol/],
      ['family mismatch', 'create a hash:ip family inet\nadd a fd00::1', 2, 'add a fd00::1', /family inet/],
      ['unterminated quote', 'create a hash:ip comment\nadd a 10.0.0.1 comment "oops', 2, 'add a 10.0.0.1 comment "oops', /unterminated quote/],
      ['unknown command', 'create a hash:ip\nlist a', 2, 'list a', /unknown command/],
      ['missing type', 'create a', 1, 'create a', /missing set type/],
      ['duplicate create', 'create a hash:ip\ncreate a hash:net', 2, 'create a hash:net', /created twice/],
      ['option without value', 'create a hash:ip\nadd a 10.0.0.1 timeout', 2, 'add a 10.0.0.1 timeout', /needs a value/],
      ['non-numeric timeout', 'create a hash:ip timeout x', 1, 'create a hash:ip timeout x', /needs a number/],
      ['unknown member option', 'create a hash:ip\nadd a 10.0.0.1 colour red', 2, 'add a 10.0.0.1 colour red', /unknown member option/],
      ['malformed type', 'create a 12345', 1, 'create a 12345', /malformed set type/],
    ];
    parseErrorCases(cases, parseError);
  });
});

describe('testSetMembership', () => {
  it('hash:ip: the kube-router service VIP set holds the API server address', () => {
    const svip = set(kubeRouter, 'kube-router-svip');
    const r = testSetMembership(svip, ['dst'], tcp('192.168.0.50', 40000, '192.168.0.100', 6443));
    expect(r.outcome).toBe('member');
    expect(r.outcome === 'member' && r.member.text).toBe('192.168.0.100');
    expect(r.outcome === 'member' && r.member.line).toBe(11);
    // src flag looks at the source address instead
    expect(findSetMember(svip, ['src'], tcp('192.168.0.50', 40000, '192.168.0.100', 6443))).toBeNull();
    expect(findSetMember(svip, ['dst'], tcp('192.168.0.50', 40000, '192.168.0.101', 6443))).toBeNull();
  });

  it('hash:ip,port with dst,dst checks destination address, protocol and destination port', () => {
    const prt = set(kubeRouter, 'kube-router-svip-prt');
    expect(findSetMember(prt, ['dst', 'dst'], { proto: 17, src: '10.244.1.7', sport: 5353, dst: '10.96.0.10', dport: 53 })).toBe('10.96.0.10,udp:53');
    expect(findSetMember(prt, ['dst', 'dst'], tcp('10.244.1.7', 5353, '10.96.0.10', 9153))).toBe('10.96.0.10,tcp:9153');
    // protocol matters: no udp:9153 member
    expect(findSetMember(prt, ['dst', 'dst'], { proto: 17, src: '10.244.1.7', sport: 1, dst: '10.96.0.10', dport: 9153 })).toBeNull();
    // the API server VIP is a member only on port 443
    expect(findSetMember(prt, ['dst', 'dst'], tcp('192.168.0.50', 40000, '192.168.0.100', 6443))).toBeNull();
    expect(findSetMember(prt, ['dst', 'dst'], tcp('192.168.0.50', 40000, '192.168.0.100', 443))).toBe('192.168.0.100,tcp:443');
    // dst,src takes the port from the source side
    expect(findSetMember(prt, ['dst', 'src'], tcp('192.168.0.50', 443, '192.168.0.100', 40000))).toBe('192.168.0.100,tcp:443');
  });

  it('says unknown when the packet lacks a value the set needs, and no-member when a definite part differs', () => {
    const prt = set(kubeRouter, 'kube-router-svip-prt');
    expect(testSetMembership(prt, ['dst', 'dst'], { proto: 6, src: '10.0.0.1', dst: '10.96.0.10' })).toEqual({
      outcome: 'unknown',
      reason: "the packet's destination port is not known",
    });
    // no member has this address, so the missing port does not matter
    expect(testSetMembership(prt, ['dst', 'dst'], { proto: 6, src: '10.0.0.1', dst: '10.1.2.3' })).toEqual({ outcome: 'not-member' });
  });

  it('fewer --match-set directions than set dimensions never match (as in the kernel)', () => {
    const prt = set(kubeRouter, 'kube-router-svip-prt');
    expect(testSetMembership(prt, ['dst'], tcp('1.1.1.1', 1, '10.96.0.1', 443)).outcome).toBe('not-member');
  });

  it('hash:net matches by prefix, most specific entry first, nomatch entries exclude', () => {
    const pods = set(kubeRouter, 'kube-router-pod-subnets');
    expect(findSetMember(pods, ['src'], tcp('10.244.2.17', 1, '1.1.1.1', 2))).toBe('10.244.2.0/24');
    expect(findSetMember(pods, ['src'], tcp('10.244.3.17', 1, '1.1.1.1', 2))).toBeNull();
    const src = set(kubeRouter, 'KUBE-SRC-VX7Q2DUKL66R4LIG');
    expect(findSetMember(src, ['src'], tcp('10.9.9.9', 1, '1.1.1.1', 2))).toBe('10.0.0.0/8');
    const excluded = testSetMembership(src, ['src'], tcp('10.244.2.8', 1, '1.1.1.1', 2));
    expect(excluded.outcome).toBe('not-member');
    expect(excluded.outcome === 'not-member' && excluded.excludedBy?.text).toBe('10.244.2.0/24');
    // a /32 inside the nomatch /24 is more specific again
    expect(findSetMember(src, ['src'], tcp('10.244.2.9', 1, '1.1.1.1', 2))).toBe('10.244.2.9');
  });

  it('hash:ip,port,ip and hash:ip,port,net (kube-proxy IPVS sets)', () => {
    const loop = set(kubeProxy, 'KUBE-LOOP-BACK');
    // hairpin: pod talks to its own service, after DNAT dst == src
    expect(findSetMember(loop, ['dst', 'dst', 'src'], tcp('10.244.1.7', 40000, '10.244.1.7', 80))).toBe('10.244.1.7,tcp:80,10.244.1.7');
    expect(findSetMember(loop, ['dst', 'dst', 'src'], tcp('10.244.1.8', 40000, '10.244.1.7', 80))).toBeNull();
    const cidr = set(kubeProxy, 'KUBE-LOAD-BALANCER-SOURCE-CIDR');
    expect(findSetMember(cidr, ['dst', 'dst', 'src'], tcp('203.0.113.77', 50000, '192.168.0.200', 443))).toBe('192.168.0.200,tcp:443,203.0.113.0/24');
    expect(findSetMember(cidr, ['dst', 'dst', 'src'], tcp('198.51.100.1', 50000, '192.168.0.200', 443))).toBeNull();
    const ipportip = parseIpsetSave('create np hash:ip,port,ip\nadd np 192.168.0.11,tcp:30080,10.244.1.2').get('np')!;
    expect(findSetMember(ipportip, ['dst', 'dst', 'src'], tcp('10.244.1.2', 1234, '192.168.0.11', 30080))).toBe('192.168.0.11,tcp:30080,10.244.1.2');
  });

  it('bitmap:port matches TCP and UDP ports; hash:net,port combines both', () => {
    const np = set(kubeProxy, 'KUBE-NODE-PORT-TCP');
    expect(findSetMember(np, ['dst'], tcp('1.2.3.4', 5555, '192.168.0.11', 30080))).toBe('30080');
    expect(findSetMember(np, ['dst'], tcp('1.2.3.4', 5555, '192.168.0.11', 30081))).toBeNull();
    expect(testSetMembership(np, ['dst'], { proto: 1, src: '1.2.3.4', dst: '192.168.0.11', icmpType: 8, icmpCode: 0 }).outcome).toBe('not-member');
    const netport = parseIpsetSave('create allow hash:net,port\nadd allow 10.0.0.0/8,udp:53\nadd allow 10.1.0.0/16,tcp:80-90').get('allow')!;
    expect(findSetMember(netport, ['src', 'dst'], { proto: 17, src: '10.3.3.3', sport: 999, dst: '8.8.8.8', dport: 53 })).toBe('10.0.0.0/8,udp:53');
    expect(findSetMember(netport, ['src', 'dst'], tcp('10.1.2.3', 999, '8.8.8.8', 85))).toBe('10.1.0.0/16,tcp:80-90');
    expect(findSetMember(netport, ['src', 'dst'], tcp('10.2.2.3', 999, '8.8.8.8', 85))).toBeNull();
  });

  it('ICMP members of hash:ip,port compare type and code', () => {
    const s = parseIpsetSave('create i hash:ip,port\nadd i 10.0.0.1,icmp:8/0\nadd i 10.0.0.2,icmp:echo-reply').get('i')!;
    expect(findSetMember(s, ['dst', 'dst'], { proto: 1, src: '1.1.1.1', dst: '10.0.0.1', icmpType: 8, icmpCode: 0 })).toBe('10.0.0.1,icmp:8/0');
    expect(findSetMember(s, ['dst', 'dst'], { proto: 1, src: '1.1.1.1', dst: '10.0.0.1', icmpType: 0, icmpCode: 0 })).toBeNull();
    expect(findSetMember(s, ['dst', 'dst'], { proto: 1, src: '1.1.1.1', dst: '10.0.0.2', icmpType: 0, icmpCode: 0 })).toBe('10.0.0.2,icmp:echo-reply');
  });

  it('IPv4 packets are never members of inet6 sets', () => {
    const v6 = set(kubeRouter, 'inet6:kube-router-svip');
    expect(testSetMembership(v6, ['dst'], tcp('10.0.0.1', 1, '10.96.0.1', 443)).outcome).toBe('not-member');
    expect(findSetMember(v6, ['dst'], { proto: 6, src: '2001:db8::5', sport: 1, dst: '2001:db8:42:1200::', dport: 5000 })).toBe('2001:db8:42:1200::');
  });

  it('list:set looks through its member sets in order', () => {
    const sets = parseIpsetSave('create a hash:ip\nadd a 10.0.0.1\ncreate b hash:net\nadd b 10.0.0.0/8\ncreate l list:set\nadd l a\nadd l b');
    const r = testSetMembership(sets.get('l')!, ['dst'], tcp('1.1.1.1', 1, '10.0.0.1', 2), sets);
    expect(r).toMatchObject({ outcome: 'member', via: 'a', member: { text: '10.0.0.1' } });
    const r2 = testSetMembership(sets.get('l')!, ['dst'], tcp('1.1.1.1', 1, '10.9.0.1', 2), sets);
    expect(r2).toMatchObject({ outcome: 'member', via: 'b', member: { text: '10.0.0.0/8' } });
  });

  it('hash:ip with netmask stores and looks up network addresses', () => {
    const s = parseIpsetSave('create nm hash:ip netmask 24\nadd nm 10.5.5.0').get('nm')!;
    expect(findSetMember(s, ['src'], tcp('10.5.5.77', 1, '1.1.1.1', 2))).toBe('10.5.5.0');
    expect(findSetMember(s, ['src'], tcp('10.5.6.77', 1, '1.1.1.1', 2))).toBeNull();
  });
});

// IPVS: ipvsadm parsing, naming, the node preflight, and the rules.
import { describe, expect, it } from 'vitest';
import { type IpvsCtlRecord, type IpvsRecord, IpvsErrKind, IpvsOp, PktFlag, type Pkt } from '../../src/abi.js';
import { ipvsPreflight } from '../../src/commands/doctor.js';
import { verdictFor } from '../../src/explain/explain.js';
import { buildFlows } from '../../src/explain/flows.js';
import type { NetnsState } from '../../src/explain/types.js';
import { ctlText, serviceRef } from '../../src/model/ipvs.js';
import { JourneyBuilder } from '../../src/journey.js';
import { StateParseError, parseIpvsDump, parseIpvsadm, parseIpvsConns } from '../../src/state/parsers.js';

const IPVSADM = `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  192.168.0.11:30080 rr
  -> 10.244.2.2:80                Masq    1      0          0
UDP  10.96.0.10:53 rr
  -> 10.244.2.5:53                Masq    1      0          1
TCP  10.96.0.20:80 rr persistent 360
FWM  5 wrr
`;
const CONNS = `IPVS connection entries
pro expire state       source             virtual            destination
UDP 04:58  UDP         10.244.1.2:5353    10.96.0.10:53      10.244.2.3:53
TCP 14:59  ESTABLISHED 192.168.0.10:40000 192.168.0.11:30080 10.244.2.2:80
`;

describe('ipvsadm parsing', () => {
  it('reads services, flags and real servers', () => {
    const s = parseIpvsadm(IPVSADM);
    expect(s.map((x) => x.ref)).toEqual(['TCP 192.168.0.11:30080 rr', 'UDP 10.96.0.10:53 rr', 'TCP 10.96.0.20:80 rr', 'FWM 5 wrr']);
    expect(s[0].dests).toEqual([{ addr: '10.244.2.2', port: 80, forward: 'Masq', weight: 1, active: 0, inactive: 0 }]);
    expect(s[2].flags).toBe('persistent 360');
    expect(s[3].dests).toEqual([]);
  });

  it('reads the connection table', () => {
    expect(parseIpvsConns(CONNS)[0]).toMatchObject({ protocol: 'UDP', source: '10.244.1.2:5353', virtual: '10.96.0.10:53', destination: '10.244.2.3:53' });
    expect(parseIpvsDump(`${IPVSADM}---\n${CONNS}`)?.conns).toHaveLength(2);
    expect(parseIpvsDump('')).toBeNull();
  });

  /** The error `parse` throws for `text`: a StateParseError, whose message the caller compares whole. */
  function parseError(parse: (text: string) => unknown, text: string): StateParseError {
    try {
      parse(text);
    } catch (e) {
      expect(e).toBeInstanceOf(StateParseError);
      return e as StateParseError;
    }
    throw new Error('expected a StateParseError');
  }

  it.each([
    ['  -> 10.0.0.1:80 Masq 1 0 0\n', "cannot parse ipvsadm: real server before any service: '-> 10.0.0.1:80 Masq 1 0 0'"],
    ['TCP nonsense rr\n', "cannot parse ipvsadm: service 'nonsense' is not address:port"],
    ['garbage line here\n', "cannot parse ipvsadm: unexpected line 'garbage line here'"],
  ])('rejects %j with the message %j, naming ipvsadm as the source', (text, msg) => {
    const e = parseError(parseIpvsadm, text);
    expect(e.message).toBe(msg);
    expect(e.source).toBe('ipvsadm');
  });

  it('rejects a connection line without 6 fields, naming ipvsadm -Lnc as the source', () => {
    const e = parseError(parseIpvsConns, 'UDP 04:58 UDP 10.244.1.2:5353\n');
    expect(e.message).toBe("cannot parse ipvsadm -Lnc: expected 6 fields in 'UDP 04:58 UDP 10.244.1.2:5353'");
    expect(e.source).toBe('ipvsadm -Lnc');
  });
});

const svc = { af: 2, protocol: 6, addr: '192.168.0.100', port: 6443, fwmark: 0, flags: 0, scheduler: 'rr' };
const ctl = (op: number, comm: string, pid: number, ts: number): IpvsCtlRecord => ({
  kind: 'ipvs-ctl', ts, cpu: 0, probe: 9, op, ret: 0, pid, comm, netns: 7, svc, daddr: '', dport: 0, weight: 0,
});

describe('naming', () => {
  it('names services as ipvsadm -Ln does', () => {
    expect(serviceRef(svc)).toBe('TCP 192.168.0.100:6443 rr');
    expect(serviceRef({ ...svc, fwmark: 5, scheduler: 'wrr' })).toBe('FWM 5 wrr');
  });
  it('says who changed what', () => {
    expect(ctlText(ctl(IpvsOp.DEL_SERVICE, 'kube-proxy', 42, 0))).toBe('kube-proxy[42] deleted service TCP 192.168.0.100:6443 rr');
  });
});

describe('IPVS-mode preflight', () => {
  it('passes a node set up for kube-proxy IPVS mode', () => {
    const checks = ipvsPreflight({
      modules: new Set(['ip_vs', 'ip_vs_rr', 'ip_vs_wrr', 'ip_vs_sh', 'nf_conntrack']),
      sysctl: { 'net.ipv4.ip_forward': '1', 'net.bridge.bridge-nf-call-iptables': '1', 'net.ipv4.conf.all.rp_filter': '2', 'net.ipv4.conf.default.rp_filter': '0', 'net.ipv4.vs.conntrack': '1' },
    });
    expect(checks.filter((c) => !c.ok)).toEqual([]);
  });
  it('names each missing piece with its fix', () => {
    const bad = ipvsPreflight({ modules: new Set(['nf_conntrack']), sysctl: { 'net.ipv4.ip_forward': '0', 'net.ipv4.conf.all.rp_filter': '1' } }).filter((c) => !c.ok);
    expect(bad.map((c) => c.name)).toEqual(['module ip_vs', 'module ip_vs_rr', 'module ip_vs_wrr', 'module ip_vs_sh', 'net.ipv4.ip_forward', 'net.bridge.bridge-nf-call-iptables', 'net.ipv4.conf.{all,default}.rp_filter', 'net.ipv4.vs.conntrack']);
    expect(bad.find((c) => c.name === 'net.bridge.bridge-nf-call-iptables')?.found).toBe('absent (br_netfilter not loaded)');
    expect(bad.find((c) => c.name === 'module ip_vs')?.fix).toContain('modprobe ip_vs');
  });
});

// A client in namespace 1 sends a SYN that dies with NO_SOCKET in namespace 7 (the node).
function failedFlow(dst: string, dport: number, reason = 3) {
  const pkt = (netns: number, dev: string): Pkt => ({
    skb: 1, netns, ifindex: 2, dev, tuple: { family: 2, proto: 6, src: '192.168.0.10', sport: 40000, dst, dport },
    ctStatus: 0, mark: 0, len: 60, pid: 0, flags: PktFlag.HAS_L4 | (netns === 1 ? PktFlag.LOCAL_SK : 0), tcpFlags: 2,
  });
  const b = new JourneyBuilder();
  b.add({ kind: 'tx', ts: 1e9, cpu: 0, probe: 2, pkt: pkt(1, 'eth0') });
  b.add({ kind: 'rx', ts: 1.1e9, cpu: 0, probe: 1, pkt: pkt(7, 'eth0') });
  b.add({ kind: 'drop', ts: 1.2e9, cpu: 0, probe: 0, pkt: pkt(7, 'eth0'), location: 1n, reason, stack: [] });
  return b.flush();
}

function node(ipvsText: string, addrs: NetnsState['addrs'], sysctl: Record<string, string> = {}): NetnsState {
  return { name: 'nw-node1', sysctl: (k) => sysctl[k], addrs, routes: [], ipvs: parseIpvsDump(ipvsText), errors: [] };
}

function deps(state: NetnsState, ipvs: IpvsRecord[] = []) {
  return {
    state: (ino: number) => (ino === 7 ? state : undefined), ipvs,
    netnsName: (ino: number) => (ino === 7 ? 'nw-node1' : 'nw-client'),
    reasonName: (v: number) => ({ 3: 'NO_SOCKET' })[v] ?? `reason#${v}`,
    func: () => 'tcp_v4_rcv', symbol: () => 'tcp_v4_rcv+0x1',
  };
}

describe('IPVS rules', () => {
  const addrs = [
    { dev: 'eth0', address: '192.168.0.11', prefixlen: 24, secondary: false },
    { dev: 'eth0', address: '192.168.0.200', prefixlen: 24, secondary: true },
  ];

  it('a keepalived VIP with no NodePort virtual service: ipvs-service, secondary address named', () => {
    const [flow] = buildFlows(failedFlow('192.168.0.200', 30080));
    const v = verdictFor(flow, deps(node(`${IPVSADM}---\n`, addrs)), 7);
    expect(v.cause).toEqual({ type: 'ipvs-service', ref: 'TCP 192.168.0.200:30080', value: 'missing (secondary address)', netns: 'nw-node1' });
    expect(v.evidence.join('\n')).toContain('serves port 30080 as TCP 192.168.0.11:30080 rr');
    expect(v.fix).toContain('--nodeport-addresses');
  });

  it('a port IPVS knows nothing of is a plain missing socket', () => {
    const [flow] = buildFlows(failedFlow('192.168.0.200', 9999));
    expect(verdictFor(flow, deps(node(`${IPVSADM}---\n`, addrs)), 7).cause.type).toBe('socket');
  });

  it('a service deleted and re-created under the flow: who and how often', () => {
    const [flow] = buildFlows(failedFlow('192.168.0.100', 6443));
    const events = [ctl(IpvsOp.DEL_SERVICE, 'kube-proxy', 42, 1.05e9), ctl(IpvsOp.ADD_SERVICE, 'kube-vip', 7, 1.3e9), ctl(IpvsOp.DEL_SERVICE, 'kube-proxy', 42, 1.6e9)];
    const v = verdictFor(flow, deps(node(`${IPVSADM}---\n`, addrs), events), 7);
    expect(v.outcome).toBe('dropped');
    expect(v.cause).toEqual({ type: 'ipvs-service', ref: 'TCP 192.168.0.100:6443 rr', value: 'deleted 2× by kube-proxy', netns: 'nw-node1' });
    expect(v.evidence[0]).toContain('deleted 2 times during the trace, by kube-proxy[42] 2×');
    expect(v.evidence[1]).toContain('re-created 1 time by kube-vip[7] 1×');
    expect(v.fix).toContain('--ipvs-exclude-cidrs=192.168.0.100/32');
  });

  it('no destination available: ipvs-service with the scheduler\'s message', () => {
    const [flow] = buildFlows(failedFlow('10.96.0.20', 80));
    const err: IpvsRecord = { kind: 'ipvs-err', ts: 1.1e9, cpu: 0, probe: 6, err: IpvsErrKind.NO_DEST, ret: 0, netns: 7, daddr: '', dport: 0, svc: { ...svc, addr: '10.96.0.20', port: 80 }, msg: 'no destination available' };
    const v = verdictFor(flow, deps(node(`${IPVSADM}---\n`, addrs), [err]), 7);
    expect(v.cause).toMatchObject({ type: 'ipvs-service', ref: 'TCP 10.96.0.20:80 rr', value: 'no destination available' });
  });

  it('a stale UDP entry pinned to a removed CoreDNS pod: ipvs-dest', () => {
    const b = new JourneyBuilder();
    const p: Pkt = { skb: 9, netns: 7, ifindex: 3, dev: 'cni0', tuple: { family: 2, proto: 17, src: '10.244.1.2', sport: 5353, dst: '10.96.0.10', dport: 53 }, ctStatus: 0, mark: 0, len: 80, pid: 0, flags: PktFlag.HAS_L4, tcpFlags: 0 };
    b.add({ kind: 'rx', ts: 1e9, cpu: 0, probe: 1, pkt: p });
    const [flow] = buildFlows(b.flush());
    const v = verdictFor(flow, deps(node(`${IPVSADM}---\n${CONNS}`, addrs, { 'net.ipv4.vs.expire_nodest_conn': '0' })), 9);
    expect(v.cause).toEqual({ type: 'ipvs-dest', ref: '-> 10.244.2.3:53', value: 'stale: not a real server of UDP 10.96.0.10:53 rr', netns: 'nw-node1' });
    expect(v.evidence.join('\n')).toContain('net.ipv4.vs.expire_nodest_conn = 0');
  });
});

describe('conntrack insert failure (CoreDNS A/AAAA race)', () => {
  function udpDrop(flags: number) {
    const p: Pkt = { skb: 3, netns: 7, ifindex: 2, dev: 'cni0', tuple: { family: 2, proto: 17, src: '10.244.1.2', sport: 41000, dst: '10.244.2.3', dport: 53 }, ctStatus: 0, mark: 0, len: 80, pid: 0, flags, tcpFlags: 0 };
    const b = new JourneyBuilder();
    b.add({ kind: 'drop', ts: 1e9, cpu: 0, probe: 0, pkt: p, location: 1n, reason: 9, stack: [] });
    return buildFlows(b.flush())[0];
  }
  const st = (before: number, after: number): NetnsState => ({ ...node('', []), insertFailed: { before, after } });
  const d = (s: NetnsState) => ({ ...deps(s), reasonName: (v: number) => ({ 9: 'NETFILTER_DROP' })[v] ?? `reason#${v}` });

  it('names conntrack when insert_failed grew while a new UDP flow was dropped', () => {
    const v = verdictFor(udpDrop(PktFlag.HAS_CT | PktFlag.HAS_L4), d(st(3, 5)), 9);
    expect(v.cause).toEqual({ type: 'conntrack', ref: 'insert_failed', value: '+2', netns: 'nw-node1' });
    expect(v.fix).toContain('single-request-reopen');
  });

  it('stays unknown when insert_failed did not grow, or the packet had no conntrack entry', () => {
    expect(verdictFor(udpDrop(PktFlag.HAS_CT | PktFlag.HAS_L4), d(st(3, 3)), 9).cause.type).toBe('unknown');
    expect(verdictFor(udpDrop(PktFlag.HAS_L4), d(st(3, 5)), 9).cause.type).toBe('unknown');
  });
});

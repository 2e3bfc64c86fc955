// Services from kube-proxy's rules: iptables comments (a captured node ruleset)
// and the nftables maps (kube-proxy's own test expectations, loaded and dumped by nft).
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NameResolver } from '../../src/model/names.js';
import { emptyFacts, refText } from '../../src/model/k8s.js';
import { kubeProxySource, servicesFromIptables, servicesFromNft } from '../../src/state/k8s/kube-proxy.js';

const FIX = resolve(__dirname, '../fixtures');
const IPT = readFileSync(`${FIX}/iptables/kube-proxy-iptables.rules`, 'utf8');
const NFT = JSON.parse(readFileSync(`${FIX}/k8s/kube-proxy-nftables.json`, 'utf8'));
const byName = <T extends { namespace: string; name: string }>(l: T[]) => Object.fromEntries(l.map((s) => [`${s.namespace}/${s.name}`, s]));

describe('kube-proxy iptables comments', () => {
  const svcs = byName(servicesFromIptables(IPT));

  it('cluster IPs with named and unnamed ports, a NodePort joined to its port', () => {
    expect(svcs['kube-system/kube-dns']).toMatchObject({ clusterIPs: ['10.96.0.10'], ports: [{ name: 'dns', protocol: 'UDP', port: 53 }], source: 'kube-proxy-rules' });
    expect(svcs['default/kubernetes']).toMatchObject({ clusterIPs: ['10.96.0.1'], ports: [{ name: 'https', protocol: 'TCP', port: 443 }] });
    expect(svcs['default/web']).toEqual({
      namespace: 'default', name: 'web', clusterIPs: ['10.96.45.10'], externalIPs: [], loadBalancerIPs: [],
      ports: [{ protocol: 'TCP', port: 80, nodePort: 30080 }], source: 'kube-proxy-rules',
    });
  });

  it('a Service with no endpoints, from the filter table REJECT rules: its cluster IP and NodePort', () => {
    expect(svcs['default/empty']).toMatchObject({ clusterIPs: ['10.96.77.7'], ports: [{ protocol: 'TCP', port: 80, nodePort: 30999 }] });
    expect(Object.keys(svcs).sort()).toEqual(['default/empty', 'default/kubernetes', 'default/web', 'kube-system/kube-dns']);
  });

  it('external IPs, load-balancer IPs, IPv6 (kube-proxy\'s comment forms)', () => {
    const text = [
      '*nat', ':KUBE-SERVICES - [0:0]', ':KUBE-EXT-X - [0:0]', ':KUBE-FW-X - [0:0]', ':KUBE-SVC-X - [0:0]',
      '-A KUBE-SERVICES -d 192.168.99.33/32 -p tcp -m comment --comment "ns5/svc5:p80 external IP" -m tcp --dport 80 -j KUBE-EXT-X',
      '-A KUBE-SERVICES -d 5.6.7.8/32 -p tcp -m comment --comment "ns5/svc5:p80 loadbalancer IP" -m tcp --dport 80 -j KUBE-FW-X',
      '-A KUBE-SERVICES -d 172.30.0.45/32 -p tcp -m comment --comment "ns5/svc5:p80 cluster IP" -m tcp --dport 80 -j KUBE-SVC-X',
      'COMMIT', '',
    ].join('\n');
    expect(servicesFromIptables(text)).toEqual([{ namespace: 'ns5', name: 'svc5', clusterIPs: ['172.30.0.45'], externalIPs: ['192.168.99.33'], loadBalancerIPs: ['5.6.7.8'], ports: [{ name: 'p80', protocol: 'TCP', port: 80 }], source: 'kube-proxy-rules' }]);
    const v6 = ['*nat', ':KUBE-SERVICES - [0:0]', ':KUBE-SVC-Y - [0:0]', '-A KUBE-SERVICES -d fd00:10:96::a/128 -p tcp -m comment --comment "default/web cluster IP" -m tcp --dport 80 -j KUBE-SVC-Y', 'COMMIT', ''].join('\n');
    expect(servicesFromIptables(v6)[0].clusterIPs).toEqual(['fd00:10:96::a']);
  });

  it('a ruleset without kube-proxy: no Services', () => {
    expect(servicesFromIptables('*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n')).toEqual([]);
  });
});

describe('kube-proxy nftables maps', () => {
  const svcs = byName(servicesFromNft(NFT));

  it('service-ips and service-nodeports: cluster IPs (IPv4 and IPv6 tables), ports from the chain names, NodePorts', () => {
    expect(svcs['ns1/svc1']).toMatchObject({ clusterIPs: ['172.30.0.41', 'fd00:10:96::41'], ports: [{ name: 'p80', protocol: 'TCP', port: 80 }] });
    expect(svcs['ns3/svc3']).toMatchObject({ clusterIPs: ['172.30.0.43'], ports: [{ name: 'p80', protocol: 'TCP', port: 80, nodePort: 3003 }] });
  });

  it('external and load-balancer IPs: firewall-ips marks a load-balancer IP; others are external', () => {
    expect(svcs['ns5/svc5']).toMatchObject({ clusterIPs: ['172.30.0.45'], externalIPs: [], loadBalancerIPs: ['5.6.7.8'], ports: [{ port: 80, nodePort: 3002 }] });
    expect(svcs['ns2/svc2']).toMatchObject({ clusterIPs: ['172.30.0.42'], externalIPs: ['1.2.3.4', '192.168.99.22'], ports: [{ port: 80, nodePort: 3001 }] });
  });

  it('no-endpoint maps: the element comment names a Service that has no chain', () => {
    expect(svcs['ns6/svc6']).toMatchObject({ clusterIPs: ['172.30.0.46', 'fd00:10:96::46'], ports: [{ name: 'p80', port: 80 }] });
  });

  it('an unnamed port (chain name ending in "/")', () => {
    expect(svcs['default/web']).toMatchObject({ clusterIPs: ['172.30.0.47'], ports: [{ protocol: 'TCP', port: 80 }] });
    expect(svcs['default/web'].ports[0].name).toBeUndefined();
  });

  it('takes the document or its nftables array; anything else gives nothing', () => {
    expect(servicesFromNft(NFT.nftables)).toHaveLength(Object.keys(svcs).length);
    expect(servicesFromNft(null)).toEqual([]);
    expect(servicesFromNft({ nftables: [{ map: { family: 'inet', table: 'kube-proxy', name: 'service-ips', elem: 'x' } }] })).toEqual([]);
  });

  it('names resolve through them', () => {
    const r = new NameResolver({ ...emptyFacts(), services: servicesFromNft(NFT) });
    expect(refText(r.endpoint('172.30.0.41', 80, 'tcp')!)).toBe('svc ns1/svc1:p80');
    expect(refText(r.endpoint('192.168.0.2', 3003, 'tcp')!)).toBe('svc ns3/svc3:p80');
  });
});

describe('kubeProxySource', () => {
  it('from given rules: ok with counts; the same Service from iptables and nft is one', async () => {
    const r = await kubeProxySource({ iptablesSave: [IPT], nftJson: [NFT] });
    expect(r.report).toMatchObject({ source: 'kube-proxy-rules', status: 'ok', services: 9 }); // 4 + 6, default/web in both
    expect(r.report.detail).toContain('4 from iptables comments');
  });

  it('no rules: absent; an unparsable ruleset: error, not an exception', async () => {
    expect((await kubeProxySource({ iptablesSave: [], nftJson: [] })).report.status).toBe('absent');
    const bad = await kubeProxySource({ iptablesSave: ['-A NOWHERE -j DROP\n'], nftJson: [] });
    expect(bad.report.status).toBe('error');
    expect(bad.report.detail).toMatch(/iptables-save line 1/);
  });
});

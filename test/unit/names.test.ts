// The resolver over merged facts: Services by VIP and port, NodePorts on any
// node address, pods, nodes, netns inodes; merging sources; IPv6 forms.
import { describe, expect, it } from 'vitest';
import { type K8sFacts, type PodFact, type ServiceFact, emptyFacts, refText } from '../../src/model/k8s.js';
import { canonicalIp, mergeK8sFacts } from '../../src/model/k8s-merge.js';
import { NameResolver } from '../../src/model/names.js';

const facts = (f: Partial<K8sFacts>): K8sFacts => ({ ...emptyFacts(), ...f });
const pod = (ns: string, name: string, ips: string[], more: Partial<PodFact> = {}): PodFact => ({ namespace: ns, name, ips, source: 'api', ...more });
const svc = (ns: string, name: string, more: Partial<ServiceFact>): ServiceFact => ({
  namespace: ns, name, clusterIPs: [], externalIPs: [], loadBalancerIPs: [], ports: [], source: 'api', ...more,
});

const web = svc('default', 'web', {
  type: 'NodePort',
  clusterIPs: ['10.96.45.10', 'fd00:10:96::a'],
  ports: [{ protocol: 'TCP', port: 80, nodePort: 30080 }],
});
const dns = svc('kube-system', 'kube-dns', {
  clusterIPs: ['10.96.0.10'],
  ports: [{ name: 'dns', protocol: 'UDP', port: 53 }, { name: 'dns-tcp', protocol: 'TCP', port: 53 }, { name: 'metrics', protocol: 'TCP', port: 9153 }],
});
const lb = svc('shop', 'cart', {
  type: 'LoadBalancer',
  clusterIPs: ['10.96.7.7'],
  externalIPs: ['192.168.99.22'],
  loadBalancerIPs: ['1.2.3.4'],
  ports: [{ name: 'http', protocol: 'TCP', port: 80, nodePort: 31001 }],
});
const base = facts({
  pods: [
    pod('default', 'web-7c9f', ['10.244.2.2', 'fd00:10:244:2::2'], { netnsInode: 4026532301 }),
    pod('kube-system', 'coredns-1', ['10.244.0.5']),
    pod('kube-system', 'kube-proxy-x', ['192.168.0.11'], { hostNetwork: true }),
  ],
  services: [web, dns, lb],
  nodes: [{ name: 'node1', addresses: ['192.168.0.11', '2001:db8::11'], source: 'api' }],
  endpointSlices: [{ namespace: 'default', service: 'web', endpoints: [{ addresses: ['10.244.2.2'], ready: true }, { addresses: ['10.244.3.4'], ready: false }], ports: [{ port: 80, protocol: 'TCP' }], source: 'api' }],
});
const r = new NameResolver(base);
const text = (ref: ReturnType<NameResolver['endpoint']>) => (ref ? refText(ref) : undefined);

describe('NameResolver.endpoint', () => {
  it('a cluster IP and a Service port: the Service, with the port name, or the number when the port has none', () => {
    expect(text(r.endpoint('10.96.0.10', 53, 'udp'))).toBe('svc kube-system/kube-dns:dns');
    expect(text(r.endpoint('10.96.0.10', 53, 'tcp'))).toBe('svc kube-system/kube-dns:dns-tcp');
    expect(text(r.endpoint('10.96.45.10', 80, 'tcp'))).toBe('svc default/web:80');
    expect(r.endpoint('10.96.45.10', 80)).toEqual({ kind: 'service', namespace: 'default', name: 'web', port: '80' });
  });

  it('external and load-balancer IPs name the Service too', () => {
    expect(text(r.endpoint('192.168.99.22', 80, 'tcp'))).toBe('svc shop/cart:http');
    expect(text(r.endpoint('1.2.3.4', 80))).toBe('svc shop/cart:http');
  });

  it('a VIP at a port the Service does not have, or the wrong protocol: not the Service', () => {
    expect(r.endpoint('10.96.0.10', 9999)).toBeUndefined();
    expect(r.endpoint('10.96.45.10', 80, 'udp')).toBeUndefined();
  });

  it('a NodePort on a node address, on a secondary address no source lists, and on IPv6', () => {
    expect(text(r.endpoint('192.168.0.11', 30080, 'tcp'))).toBe('svc default/web:80');
    expect(text(r.endpoint('192.168.0.200', 30080, 'tcp'))).toBe('svc default/web:80'); // a keepalived VIP
    expect(text(r.endpoint('2001:db8:0:0:0:0:0:11', 31001))).toBe('svc shop/cart:http');
    expect(r.endpoint('192.168.0.200', 30080, 'udp')).toBeUndefined();
  });

  it('a pod IP at a port that happens to be a NodePort is the pod (pods do not answer NodePorts)', () => {
    expect(text(r.endpoint('10.244.2.2', 30080))).toBe('pod default/web-7c9f');
  });

  it('a pod IP, a node address (a hostNetwork pod does not shadow its node), nothing', () => {
    expect(text(r.endpoint('10.244.0.5', 8080))).toBe('pod kube-system/coredns-1');
    expect(text(r.endpoint('192.168.0.11', 22))).toBe('node node1');
    expect(r.endpoint('8.8.8.8', 53)).toBeUndefined();
  });

  it('without a port: pod, Service by cluster IP (no port in the ref), node', () => {
    expect(text(r.endpoint('10.244.2.2'))).toBe('pod default/web-7c9f');
    expect(r.endpoint('10.96.0.10')).toEqual({ kind: 'service', namespace: 'kube-system', name: 'kube-dns' });
    expect(text(r.endpoint('192.168.0.11'))).toBe('node node1');
    expect(r.endpoint('1.2.3.4')).toBeUndefined(); // a load-balancer IP is not a cluster IP
  });

  it('IPv6 in any spelling', () => {
    expect(text(r.endpoint('FD00:10:96:0:0:0:0:A', 80, 'tcp'))).toBe('svc default/web:80');
    expect(text(r.endpoint('fd00:10:244:2:0::2'))).toBe('pod default/web-7c9f');
    expect(r.podByIp('fd00:0010:0244:0002::0002')?.name).toBe('web-7c9f');
  });
});

describe('NameResolver lookups', () => {
  it('netns inode → pod', () => {
    expect(r.netns(4026532301)).toEqual({ kind: 'pod', namespace: 'default', name: 'web-7c9f' });
    expect(r.netns(1)).toBeUndefined();
  });

  it('pod and svc NS/NAME give what a filter needs (IPs, netns inode, ports)', () => {
    expect(r.pod('default', 'web-7c9f')).toMatchObject({ ips: ['10.244.2.2', 'fd00:10:244:2::2'], netnsInode: 4026532301 });
    expect(r.service('shop', 'cart')).toMatchObject({ clusterIPs: ['10.96.7.7'], ports: [{ name: 'http', port: 80, nodePort: 31001 }] });
    expect(r.pod('default', 'nope')).toBeUndefined();
    expect(r.service('nope', 'web')).toBeUndefined();
  });

  it('endpointsOf: the EndpointSlices, ready and not', () => {
    const [slice] = r.endpointsOf('default', 'web');
    expect(slice.endpoints.map((e) => [e.addresses[0], e.ready])).toEqual([['10.244.2.2', true], ['10.244.3.4', false]]);
    expect(r.endpointsOf('default', 'other')).toEqual([]);
  });

  it('empty facts: every lookup is undefined, nothing throws', () => {
    const e = new NameResolver(emptyFacts());
    expect([e.endpoint('10.0.0.1', 80), e.endpoint('10.0.0.1'), e.netns(5), e.podByIp('x'), e.pod('a', 'b'), e.service('a', 'b')]).toEqual([undefined, undefined, undefined, undefined, undefined, undefined]);
    expect(e.endpointsOf('a', 'b')).toEqual([]);
  });
});

describe('merging sources', () => {
  it('the API wins field by field; the runtime and the CNI cache fill the netns inode', () => {
    const m = new NameResolver(facts({
      pods: [
        pod('default', 'web-7c9f', ['10.244.9.9'], { source: 'cni-cache', netnsInode: 111, netnsPath: '/var/run/netns/cni-1' }),
        pod('default', 'web-7c9f', ['10.244.2.2'], { node: 'node2', uid: 'u-1' }),
        pod('default', 'web-7c9f', [], { source: 'containerd', netnsInode: 222, uid: 'u-stale' }),
      ],
    }));
    expect(m.facts.pods).toHaveLength(1);
    expect(m.pod('default', 'web-7c9f')).toEqual({
      namespace: 'default', name: 'web-7c9f', ips: ['10.244.2.2'], uid: 'u-1', node: 'node2',
      netnsInode: 222, netnsPath: '/var/run/netns/cni-1', source: 'api',
    });
    expect(m.podByIp('10.244.9.9')).toBeUndefined();
    expect(text(m.netns(222))).toBe('pod default/web-7c9f');
  });

  it('without the API, the runtime IP stands; a stale CNI entry for another pod does not steal an API pod\'s IP', () => {
    const m = new NameResolver(facts({
      pods: [
        pod('default', 'old-1', ['10.244.2.2'], { source: 'cni-cache' }),
        pod('default', 'new-1', ['10.244.2.2']),
        pod('default', 'only-cri', ['10.244.5.5'], { source: 'crictl' }),
      ],
    }));
    expect(m.podByIp('10.244.2.2')?.name).toBe('new-1');
    expect(m.podByIp('10.244.5.5')?.name).toBe('only-cri');
  });

  it('kube-proxy IPv4 and IPv6 rules of one Service add up; the API\'s ports and IPs replace them', () => {
    const kp = (ips: string[], ports: ServiceFact['ports']) => svc('default', 'web', { clusterIPs: ips, ports, source: 'kube-proxy-rules' });
    const rulesOnly = mergeK8sFacts([facts({ services: [kp(['10.96.45.10'], [{ protocol: 'TCP', port: 80 }]), kp(['fd00::a'], [{ protocol: 'TCP', port: 0, nodePort: 30080 }])] })]);
    expect(rulesOnly.services).toEqual([{ namespace: 'default', name: 'web', clusterIPs: ['10.96.45.10', 'fd00::a'], externalIPs: [], loadBalancerIPs: [], ports: [{ protocol: 'TCP', port: 80, nodePort: 30080 }], source: 'kube-proxy-rules' }]);
    const withApi = mergeK8sFacts([rulesOnly, facts({ services: [web] })]);
    expect(withApi.services[0]).toMatchObject({ clusterIPs: ['10.96.45.10', 'fd00:10:96::a'], type: 'NodePort', source: 'api' });
  });

  it('reports of every source are kept; node addresses are merged and canonical', () => {
    const m = mergeK8sFacts([
      facts({ nodes: [{ name: 'n1', addresses: ['2001:DB8::1'], source: 'api' }], sources: [{ source: 'api', status: 'ok', detail: 'x' }] }),
      facts({ nodes: [{ name: 'n1', addresses: ['10.0.0.1'], source: 'api' }], sources: [{ source: 'cni-cache', status: 'absent', detail: 'y' }] }),
    ]);
    expect(m.nodes).toEqual([{ name: 'n1', addresses: ['2001:db8::1', '10.0.0.1'], source: 'api' }]);
    expect(m.sources.map((s) => s.source)).toEqual(['api', 'cni-cache']);
  });

  it('canonicalIp: RFC 5952, CIDR suffix dropped, a non-address left alone', () => {
    expect(canonicalIp('FD00:0:0:0:0:0:0:1')).toBe('fd00::1');
    expect(canonicalIp('10.244.2.2/24')).toBe('10.244.2.2');
    expect(canonicalIp('not-an-ip')).toBe('not-an-ip');
  });
});

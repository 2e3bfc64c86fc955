// kube-proxy's own words in its rule comments: the Service behind a drop.
import { describe, expect, it } from 'vitest';
import { kubeProxyMeaning } from '../../src/explain/kube-proxy.js';
import type { EndpointSliceFact } from '../../src/model/k8s.js';

// Rule lines in the form kube-proxy's iptables proxier writes them (its proxier_test.go expectations).
const NO_EP = '-A KUBE-SERVICES -d 172.30.0.42/32 -p tcp -m comment --comment "ns2/svc2:p80 has no endpoints" -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable';
const NO_EP_UNNAMED = '-A KUBE-EXTERNAL-SERVICES -p udp -m comment --comment "shop/cart has no endpoints" -m addrtype --dst-type LOCAL -m udp --dport 31053 -j REJECT --reject-with icmp-port-unreachable';
const NO_LOCAL = '-A KUBE-EXTERNAL-SERVICES -p tcp -m comment --comment "default/web:http has no local endpoints" -m addrtype --dst-type LOCAL -m tcp --dport 30080 -j DROP';
const SOURCE_RANGES = '-A KUBE-PROXY-FIREWALL -d 5.6.7.8/32 -p tcp -m comment --comment "ns5/svc5:p80 traffic not accepted by KUBE-FW-NUKIZ6OKUXPJNT4C" -m tcp --dport 80 -j DROP';

const slice = (endpoints: EndpointSliceFact['endpoints']): EndpointSliceFact => ({ namespace: 'default', service: 'web', endpoints, ports: [{ name: 'http', port: 8080, protocol: 'TCP' }], source: 'api' });

describe('kube-proxy rule meanings', () => {
  it('"has no endpoints" names the Service and port, with a fix about selectors and readiness', () => {
    const m = kubeProxyMeaning(NO_EP)!;
    expect(m.service).toEqual({ kind: 'service', namespace: 'ns2', name: 'svc2', port: 'p80' });
    expect(m.evidence[0]).toBe('kube-proxy wrote this rule because Service ns2/svc2 port p80 has no ready endpoints: it rejects the Service\'s traffic instead of forwarding it');
    expect(m.fix).toContain('kubectl get endpointslices -n ns2 -l kubernetes.io/service-name=svc2');
  });

  it('a Service with one unnamed port has no port in the ref', () => {
    expect(kubeProxyMeaning(NO_EP_UNNAMED)!.service).toEqual({ kind: 'service', namespace: 'shop', name: 'cart' });
  });

  it('"has no local endpoints" is externalTrafficPolicy: Local, counted from the EndpointSlices on this node', () => {
    const m = kubeProxyMeaning(NO_LOCAL, () => [slice([{ addresses: ['10.244.2.2'], ready: true, node: 'node2' }, { addresses: ['10.244.3.9'], ready: false, node: 'node1' }])], 'node1')!;
    expect(m.service).toEqual({ kind: 'service', namespace: 'default', name: 'web', port: 'http' });
    expect(m.evidence[0]).toBe('kube-proxy wrote this rule because Service default/web port http has externalTrafficPolicy: Local and no ready endpoint on this node (its EndpointSlices list 2 endpoints, 1 ready, 0 of them on node node1): external traffic that arrives here is dropped, not forwarded to another node');
    expect(m.fix).toContain('externalTrafficPolicy: Cluster');
  });

  it('loadBalancerSourceRanges: the firewall chain is named', () => {
    const m = kubeProxyMeaning(SOURCE_RANGES)!;
    expect(m.service.name).toBe('svc5');
    expect(m.evidence[0]).toContain('chain KUBE-FW-NUKIZ6OKUXPJNT4C');
    expect(m.fix).toContain('spec.loadBalancerSourceRanges of Service ns5/svc5');
  });

  it('other rules (kube-proxy\'s own or anyone\'s) mean nothing here', () => {
    expect(kubeProxyMeaning('-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP')).toBeUndefined();
    expect(kubeProxyMeaning('-A KUBE-SERVICES -d 10.96.0.20/32 -p tcp -m comment --comment "default/web:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-X')).toBeUndefined();
    expect(kubeProxyMeaning('-A INPUT -s 10.0.0.0/8 -j DROP')).toBeUndefined();
  });
});

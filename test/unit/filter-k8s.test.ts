// `pod NS/NAME` and `svc NS/NAME` in filters: expanded to addresses, ports and
// network namespaces from the name facts, or refused with the column.
import { describe, expect, it } from 'vitest';
import { compileFilter } from '../../src/filter/compile.js';
import { type K8sFilterNames, expandK8s } from '../../src/filter/k8s.js';
import { FilterError, parseFilter } from '../../src/filter/parse.js';
import type { PodFact, ServiceFact } from '../../src/model/k8s.js';

const web: PodFact = { namespace: 'default', name: 'web-7c9f5b6d4-x8mzt', ips: ['10.244.2.2', 'fd00:10:244:2::2'], netnsInode: 4026532999, source: 'cni-cache' };
const cart: ServiceFact = {
  namespace: 'shop', name: 'cart', clusterIPs: ['10.96.44.10'], externalIPs: [], loadBalancerIPs: ['172.18.0.50'],
  ports: [{ name: 'http', protocol: 'TCP', port: 80, nodePort: 31080 }, { name: 'dns', protocol: 'UDP', port: 53 }], source: 'api',
};
const names: K8sFilterNames = {
  pod: (ns, n) => (ns === web.namespace && n === web.name ? web : undefined),
  service: (ns, n) => (ns === cart.namespace && n === cart.name ? cart : undefined),
};
const netns = () => undefined;

/** The DNF as readable strings, one per clause. */
function clauses(src: string): string[] {
  const { dnf } = compileFilter(src, netns, names);
  return dnf.map((c) => c.map(({ term: t, negate }) => {
    const s = t.t === 'addr' ? `host/${t.prefix}:${[...t.addr].join('.')}` : t.t === 'port' ? `${t.dir}port ${t.lo}` : t.t === 'proto' ? `proto ${t.proto}` : t.t === 'netns' ? `netns ${t.name}` : t.t;
    return negate ? `not ${s}` : s;
  }).join(' & '));
}

describe('Kubernetes names in filters', () => {
  it('parses pod NS/NAME and svc NS/NAME (and service) with the column of the name', () => {
    expect(parseFilter('tcp and pod default/web-7c9f5b6d4-x8mzt')).toMatchObject({ op: 'and', b: { op: 'term', term: { t: 'k8s', kind: 'pod', namespace: 'default', name: 'web-7c9f5b6d4-x8mzt', col: 12 } } });
    expect(parseFilter('svc shop/cart')).toMatchObject({ op: 'term', term: { t: 'k8s', kind: 'service', namespace: 'shop', name: 'cart' } });
    expect(parseFilter('service shop/cart')).toMatchObject({ op: 'term', term: { kind: 'service' } });
  });

  it.each([
    ['pod web', "'web' is not NAMESPACE/NAME (e.g. default/web) at column 5"],
    ['pod Default/Web', "'Default/Web' is not NAMESPACE/NAME (e.g. default/web) at column 5"],
    ['svc', 'expected a Service as NAMESPACE/NAME, found the end of the filter at column 4'],
  ])('refuses %s: %s', (src, msg) => {
    expect(() => parseFilter(src)).toThrow(FilterError);
    expect(() => parseFilter(src)).toThrow(msg);
  });

  it('a pod is its addresses (both families) or its network namespace', () => {
    expect(clauses('pod default/web-7c9f5b6d4-x8mzt')).toEqual([
      'host/32:10.244.2.2',
      'host/128:253.0.0.16.2.68.0.2.0.0.0.0.0.0.0.2', // fd00:10:244:2::2, byte by byte
      'netns 4026532999',
    ]);
  });

  it('a Service is each address with each port and protocol, and its NodePorts on any address', () => {
    expect(clauses('svc shop/cart')).toEqual([
      'host/32:10.96.44.10 & proto 6 & dstport 80',
      'host/32:10.96.44.10 & proto 17 & dstport 53',
      'host/32:172.18.0.50 & proto 6 & dstport 80',
      'host/32:172.18.0.50 & proto 17 & dstport 53',
      'proto 6 & dstport 31080',
    ]);
  });

  it('combines with the rest of the filter (not, and) like any term', () => {
    expect(clauses('not icmp and pod default/web-7c9f5b6d4-x8mzt')).toEqual([
      'not proto 1 & host/32:10.244.2.2',
      'not proto 1 & host/128:253.0.0.16.2.68.0.2.0.0.0.0.0.0.0.2',
      'not proto 1 & netns 4026532999',
    ]);
  });

  it('says which name is unknown, and when no name source answered at all', () => {
    expect(() => compileFilter('tcp and pod default/nope', netns, names)).toThrow("pod default/nope is not known to the name sources (see netwhy doctor) at column 13");
    expect(() => expandK8s(parseFilter('svc shop/cart'), undefined, 'svc shop/cart')).toThrow('svc shop/cart: no Kubernetes name source answered (see netwhy doctor) at column 5');
  });

  it('refuses an object with nothing to trace', () => {
    const empty: K8sFilterNames = { pod: () => ({ namespace: 'a', name: 'b', ips: [], source: 'api' }), service: () => undefined };
    expect(() => compileFilter('pod a/b', netns, empty)).toThrow('pod a/b has no address, port or network namespace to trace');
  });
});

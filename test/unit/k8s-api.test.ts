// The API source: conversion of `kubectl get -o json` shaped lists (pure), where
// it looks for a kubeconfig, and the IO for real on loopback: a fake API server
// serving the fixtures, a closed port, a server that never answers.
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { NameResolver } from '../../src/model/names.js';
import { emptyFacts, refText } from '../../src/model/k8s.js';
import { factsFromApi } from '../../src/state/k8s/api-convert.js';
import { apiSource, findKubeconfig } from '../../src/state/k8s/api.js';

const API = resolve(__dirname, '../fixtures/k8s/api');
const list = (n: string) => JSON.parse(readFileSync(`${API}/${n}.json`, 'utf8'));
const lists = { pods: list('pods'), services: list('services'), endpointSlices: list('endpointslices'), nodes: list('nodes'), policies: list('networkpolicies') };
const tmp = mkdtempSync(join(tmpdir(), 'netwhy-api-'));
const servers: (Server | ReturnType<typeof createTcpServer>)[] = [];
afterAll(() => {
  for (const s of servers) s.close();
  rmSync(tmp, { recursive: true, force: true });
});

function kubeconfig(server: string): string {
  const path = join(tmp, `config-${servers.length}-${Math.random().toString(36).slice(2)}`);
  writeFileSync(path, [
    'apiVersion: v1', 'kind: Config', 'current-context: t',
    'clusters:', '- name: t', '  cluster:', `    server: ${server}`, ...(server.startsWith('http:') ? ['    insecure-skip-tls-verify: true'] : []),
    'users:', '- name: u', '  user:', '    token: not-a-secret',
    'contexts:', '- name: t', '  context:', '    cluster: t', '    user: u', '',
  ].join('\n'));
  return path;
}

const listen = (s: Server | ReturnType<typeof createTcpServer>) => new Promise<number>((r) => s.listen(0, '127.0.0.1', () => r((s.address() as AddressInfo).port)));

describe('factsFromApi', () => {
  const f = factsFromApi(lists);
  const pods = Object.fromEntries(f.pods.map((p) => [p.name, p]));

  it('pods: IPs (dual stack), node, uid, container ports; a finished pod keeps no IP; hostNetwork marked', () => {
    expect(pods['web-7c9f']).toMatchObject({ namespace: 'default', ips: ['10.244.2.2', 'fd00:10:244:2::2'], node: 'node2', uid: '1c2d3e4f-0000-4a5b-8c9d-0e1f2a3b4c5d', ports: [{ name: 'http', port: 80, protocol: 'TCP' }], source: 'api' });
    expect(pods['migrate-29041-abcde'].ips).toEqual([]);
    expect(pods['pending-1'].ips).toEqual([]);
    expect(pods['kube-proxy-x2k9p']).toMatchObject({ hostNetwork: true, ips: ['192.168.0.11'] });
  });

  it('Services of each type: named and unnamed ports, nodePorts, external and load-balancer IPs; headless has no cluster IP', () => {
    const s = Object.fromEntries(f.services.map((x) => [x.name, x]));
    expect(s.web).toEqual({ namespace: 'default', name: 'web', type: 'NodePort', clusterIPs: ['10.96.45.10', 'fd00:10:96::a'], externalIPs: [], loadBalancerIPs: [], ports: [{ protocol: 'TCP', port: 80, targetPort: 'http', nodePort: 30080 }], externalTrafficPolicy: 'Cluster', source: 'api' });
    expect(s.cart).toMatchObject({ type: 'LoadBalancer', externalIPs: ['192.168.99.22'], loadBalancerIPs: ['1.2.3.4'], externalTrafficPolicy: 'Local', ports: [{ name: 'http', nodePort: 31001 }, { name: 'grpc', nodePort: 31002 }] });
    expect(s['kube-dns'].ports.map((p) => `${p.name}/${p.protocol}/${p.port}`)).toEqual(['dns/UDP/53', 'dns-tcp/TCP/53', 'metrics/TCP/9153']);
    expect(s.db.clusterIPs).toEqual([]);
    expect(s.ext).toMatchObject({ type: 'ExternalName', clusterIPs: [], ports: [] });
  });

  it('EndpointSlices: ready and not ready, a missing ready condition is ready, pod and node names, IPv6 canonical', () => {
    expect(f.endpointSlices.map((e) => e.endpoints.map((x) => `${x.addresses[0]} ${x.ready} ${x.node} ${x.pod}`))).toEqual([
      ['10.244.2.2 true node2 web-7c9f', '10.244.3.4 false node3 web-7c9f-2'],
      ['fd00:10:244:2::2 true node2 web-7c9f'],
      ['10.244.0.5 true node1 coredns-5d78c9869d-79bfv'],
    ]);
    expect(f.endpointSlices[0].ports).toEqual([{ port: 80, protocol: 'TCP' }]);
  });

  it('nodes: InternalIP and ExternalIP, not the hostname; a NetworkPolicy with its spec as is', () => {
    expect(f.nodes).toEqual([{ name: 'node1', addresses: ['192.168.0.11', '2001:db8::11'], source: 'api' }, { name: 'node2', addresses: ['192.168.0.12', '203.0.113.12'], source: 'api' }]);
    expect(f.policies[0]).toMatchObject({ namespace: 'shop', name: 'cart-allow-web', spec: { podSelector: { matchLabels: { app: 'cart' } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'web' } } }] }] } });
  });

  it('the resolver over them: a hostNetwork pod leaves its address to the node, a finished pod to nobody', () => {
    const r = new NameResolver({ ...emptyFacts(), ...f });
    expect(refText(r.endpoint('192.168.0.11')!)).toBe('node node1');
    expect(r.endpoint('10.244.0.9')).toBeUndefined();
    expect(refText(r.endpoint('1.2.3.4', 9090)!)).toBe('svc shop/cart:grpc');
  });

  it('empty or odd lists: nothing, no exception', () => {
    expect(factsFromApi({})).toEqual({ pods: [], services: [], endpointSlices: [], nodes: [], policies: [] });
    expect(factsFromApi({ endpointSlices: { items: [{ metadata: { namespace: 'x', labels: {} } }] } }).endpointSlices).toEqual([]);
  });
});

describe('findKubeconfig', () => {
  const has = (...files: string[]) => (p: string) => files.includes(p);
  it('--kubeconfig, then $KUBECONFIG (first existing of a list), then ~/.kube/config, then the service account', () => {
    expect(findKubeconfig({ kubeconfig: '/a', env: { KUBECONFIG: '/b' }, home: '/h', exists: has('/a', '/b') }).path).toBe('/a');
    expect(findKubeconfig({ env: { KUBECONFIG: '/x:/b' }, home: '/h', exists: has('/b', '/h/.kube/config') }).path).toBe('/b');
    expect(findKubeconfig({ env: {}, home: '/h', exists: has('/h/.kube/config') }).path).toBe('/h/.kube/config');
    expect(findKubeconfig({ env: { KUBERNETES_SERVICE_HOST: '10.96.0.1' }, home: '/h', exists: has('/var/run/secrets/kubernetes.io/serviceaccount/token') }).inCluster).toBe(true);
  });

  it('nothing: where it looked; a --kubeconfig that is not there is named', () => {
    expect(findKubeconfig({ env: {}, home: '/h', exists: has() }).looked).toEqual(['$KUBECONFIG unset', '/h/.kube/config missing', 'not in a pod (no KUBERNETES_SERVICE_HOST or service account token)']);
    expect(findKubeconfig({ kubeconfig: '/nope', env: {}, home: '/h', exists: has() }).missing).toBe('/nope');
  });
});

describe('apiSource on loopback', () => {
  it('a server that answers: every list, through the real client', async () => {
    const paths: Record<string, unknown> = {
      '/api/v1/pods': lists.pods, '/api/v1/services': lists.services, '/api/v1/nodes': lists.nodes,
      '/apis/discovery.k8s.io/v1/endpointslices': lists.endpointSlices, '/apis/networking.k8s.io/v1/networkpolicies': lists.policies,
    };
    const seen: string[] = [];
    const s = createServer((req, res) => {
      const path = (req.url ?? '').split('?')[0];
      seen.push(`${req.method} ${path} ${req.headers.authorization}`);
      res.writeHead(paths[path] ? 200 : 404, { 'content-type': 'application/json' }).end(JSON.stringify(paths[path] ?? { kind: 'Status', message: 'not found' }));
    });
    servers.push(s);
    const port = await listen(s);
    // A deadline far off: this asserts what is listed, not how fast (a loaded machine imports the client slowly).
    const r = await apiSource({ kubeconfig: kubeconfig(`http://127.0.0.1:${port}`), timeoutMs: 20_000 });
    expect(r.report).toMatchObject({ source: 'api', status: 'ok', pods: 5, services: 6 });
    expect(r.report.detail).toMatch(new RegExp(`^http://127.0.0.1:${port} \\(.*\\): 2 nodes, 3 EndpointSlices, 1 NetworkPolicies$`));
    expect(r.policies![0].spec).toMatchObject({ ingress: [{ from: [{ namespaceSelector: {} }] }] });
    expect(seen.sort()).toEqual(Object.keys(paths).map((p) => `GET ${p} Bearer not-a-secret`).sort());
  }, 30_000);

  it('a closed port: error with the connection message', async () => {
    const probe = createTcpServer();
    const port = await listen(probe);
    await new Promise((r) => probe.close(r));
    const r = await apiSource({ kubeconfig: kubeconfig(`https://127.0.0.1:${port}`) });
    expect(r.report.status).toBe('error');
    expect(r.report.detail).toContain(`https://127.0.0.1:${port}`);
    expect(r.report.detail).toMatch(/ECONNREFUSED/);
  });

  it('a server that accepts and never answers: error after the deadline, not a hang', async () => {
    const mute = createTcpServer(() => {});
    servers.push(mute);
    const port = await listen(mute);
    // Without the deadline this would wait forever (the test's own timeout would fail it).
    const r = await apiSource({ kubeconfig: kubeconfig(`http://127.0.0.1:${port}`), timeoutMs: 400 });
    expect(r.report).toMatchObject({ status: 'error' });
    expect(r.report.detail).toContain('no answer within 400 ms');
  });

  it('an explicit --kubeconfig that is missing: error; an unreadable one: error', async () => {
    expect((await apiSource({ kubeconfig: '/nonexistent/kubeconfig' })).report).toEqual({ source: 'api', status: 'error', detail: '--kubeconfig /nonexistent/kubeconfig: no such file' });
    const bad = join(tmp, 'bad');
    writeFileSync(bad, ': : not yaml [');
    expect((await apiSource({ kubeconfig: bad })).report.status).toBe('error');
  });
});

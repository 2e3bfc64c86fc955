// Kubernetes names in explanations: recorded captures replayed with name facts
// (as the name sources would have given them), in the JSON and in the text.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { explainCapture } from '../../src/explain/capture.js';
import type { K8sFacts } from '../../src/model/k8s.js';
import { decodeCapture, encodeCapture } from '../../src/recording.js';
import { documentText } from '../../src/render/explanation.js';
import { expectValid } from '../helpers/schema.js';

const DIR = resolve(__dirname, '../fixtures/recordings');
const load = (name: string) => decodeCapture(readFileSync(`${DIR}/${name}.nwrec`));
const inodeOf = (c: ReturnType<typeof load>, name: string) => c.netns.find(([, n]) => n === name)![0];

/** dnat-delivered: client 10.199.1.1 → 10.199.1.2:8080, DNAT on the router to the server 10.199.2.2:80. */
function cartFacts(serverInode: number): K8sFacts {
  return {
    pods: [
      { namespace: 'shop', name: 'cart-5d4f8b7c9-qz2lx', ips: ['10.199.2.2'], netnsInode: serverInode, source: 'cni-cache' },
      { namespace: 'default', name: 'loadgen-7f9c', ips: ['10.199.1.1'], source: 'containerd' },
    ],
    services: [{ namespace: 'shop', name: 'cart', clusterIPs: ['10.96.44.10'], externalIPs: ['10.199.1.2'], loadBalancerIPs: [], ports: [{ name: 'http', protocol: 'TCP', port: 8080, targetPort: 80 }], source: 'api' }],
    endpointSlices: [], nodes: [], policies: [], sources: [],
  };
}

describe('Kubernetes names in explanations', () => {
  it('a Service DNAT-ed to a pod: orig.k8s names the client pod and the Service port, nat[].k8s the pod, hops the pod namespace', () => {
    const c = load('dnat-delivered');
    const server = inodeOf(c, 'nwr-server');
    const [f] = expectValid('explain', explainCapture({ ...c, k8s: cartFacts(server) })).flows;
    expect(f.orig.k8s).toEqual({
      src: { kind: 'pod', namespace: 'default', name: 'loadgen-7f9c' },
      dst: { kind: 'service', namespace: 'shop', name: 'cart', port: 'http' },
    });
    expect(f.nat[0].k8s).toEqual({ kind: 'pod', namespace: 'shop', name: 'cart-5d4f8b7c9-qz2lx' });
    const named = f.hops.filter((h) => h.k8s);
    expect(named.length).toBeGreaterThan(0);
    expect(new Set(named.map((h) => h.netns))).toEqual(new Set(['nwr-server']));
    expect(f.hops.filter((h) => h.netns !== 'nwr-server').every((h) => !h.k8s)).toBe(true);
  });

  it('the text shows names beside addresses: header, NAT and path', () => {
    const c = load('dnat-delivered');
    const text = documentText(explainCapture({ ...c, k8s: cartFacts(inodeOf(c, 'nwr-server')) }));
    expect(text).toMatch(/flow 1: tcp pod default\/loadgen-7f9c \(10\.199\.1\.1:\d+\) > svc shop\/cart:http \(10\.199\.1\.2:8080\)/);
    expect(text).toContain('nat       dnat to pod shop/cart-5d4f8b7c9-qz2lx (10.199.2.2:80) in nwr-router, by iptables rule:');
    expect(text).toContain('pod shop/cart-5d4f8b7c9-qz2lx/eth0 rx');
  });

  it('without facts nothing changes: no k8s field anywhere', () => {
    const doc = explainCapture(load('dnat-delivered'));
    expect(JSON.stringify(doc)).not.toContain('"k8s"');
  });

  it('a drop in a pod namespace: where.k8s names the pod, and the text says which netns it is', () => {
    const c = load('no-socket');
    const server = inodeOf(c, 'nwr-server');
    const facts: K8sFacts = { ...cartFacts(server), services: [] };
    const doc = expectValid('explain', explainCapture({ ...c, k8s: facts }));
    expect(doc.flows[0].verdict.where).toMatchObject({ netns: 'nwr-server', k8s: { kind: 'pod', namespace: 'shop', name: 'cart-5d4f8b7c9-qz2lx' } });
    expect(documentText(doc)).toContain('DROPPED in pod shop/cart-5d4f8b7c9-qz2lx (netns nwr-server) on eth0');
  });

  it("kube-proxy's no-endpoints REJECT counts the Service's endpoints from its EndpointSlices", () => {
    const c = load('kube-proxy-no-endpoints');
    const facts: K8sFacts = {
      pods: [], services: [], nodes: [], policies: [], sources: [],
      endpointSlices: [{ namespace: 'shop', service: 'cart', endpoints: [{ addresses: ['10.244.3.7'], ready: false, node: 'n3' }], ports: [{ name: 'http', port: 8080, protocol: 'TCP' }], source: 'api' }],
    };
    const [f] = explainCapture({ ...c, k8s: facts }).flows;
    expect(f.verdict.evidence).toContain("kube-proxy wrote this rule because Service shop/cart port http has no ready endpoints (its EndpointSlices list 1 endpoint, 0 ready): it rejects the Service's traffic instead of forwarding it");
  });

  it('a recording keeps the name facts: a replay elsewhere names the same objects', () => {
    const c = load('dnat-delivered');
    const withNames = { ...c, k8s: cartFacts(inodeOf(c, 'nwr-server')) };
    const again = decodeCapture(encodeCapture(withNames));
    expect(again.k8s).toEqual(withNames.k8s);
    expect(explainCapture(again)).toEqual(explainCapture(withNames));
  });
});

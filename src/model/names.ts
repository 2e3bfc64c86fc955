// The resolver: an address (and port), or a network namespace inode, to the
// pod, Service or node it belongs to, over the merged facts of every source.
// Pure lookups over indexes built once.
import { canonicalIp, mergeK8sFacts } from './k8s-merge.js';
import type { EndpointSliceFact, K8sFacts, K8sRef, PodFact, ServiceFact, ServicePortFact } from './k8s.js';

export type L4Proto = 'tcp' | 'udp' | 'sctp';

/** What a ref names: a Service port and how it is reached. */
interface PortHit {
  svc: ServiceFact;
  port: ServicePortFact;
}

const sameProto = (p: ServicePortFact, proto?: L4Proto) => proto === undefined || p.protocol.toLowerCase() === proto;
const portLabel = (p: ServicePortFact) => p.name ?? String(p.port);
const svcRef = (s: ServiceFact, p?: ServicePortFact): K8sRef => ({ kind: 'service', namespace: s.namespace, name: s.name, ...(p ? { port: portLabel(p) } : {}) });
const podRef = (p: PodFact): K8sRef => ({ kind: 'pod', namespace: p.namespace, name: p.name });

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const l = m.get(k);
  if (l) l.push(v);
  else m.set(k, [v]);
}

export class NameResolver {
  /** The facts after merging: one object per (namespace, name). */
  readonly facts: K8sFacts;
  private readonly podsByIp = new Map<string, PodFact>();
  private readonly podsByNetns = new Map<number, PodFact>();
  private readonly nodesByAddr = new Map<string, string>();
  /** cluster, external and load-balancer IPs → the Services on them */
  private readonly vips = new Map<string, ServiceFact[]>();
  private readonly clusterIps = new Map<string, ServiceFact>();
  private readonly nodePorts = new Map<number, PortHit[]>();

  /** `facts` may come straight from several sources: they are merged here (merging twice changes nothing). */
  constructor(facts: K8sFacts) {
    this.facts = mergeK8sFacts([facts]);
    // mergeK8sFacts sorts each object's sources, not the objects: the API's pods claim an IP first.
    const api = (p: PodFact) => (p.source === 'api' ? 0 : 1);
    for (const p of [...this.facts.pods].sort((a, b) => api(a) - api(b))) {
      // A hostNetwork pod's IP is its node's: the address names the node, not the pod.
      if (!p.hostNetwork) for (const ip of p.ips) if (!this.podsByIp.has(ip)) this.podsByIp.set(ip, p);
      if (p.netnsInode !== undefined && !this.podsByNetns.has(p.netnsInode)) this.podsByNetns.set(p.netnsInode, p);
    }
    for (const n of this.facts.nodes) for (const a of n.addresses) if (!this.nodesByAddr.has(a)) this.nodesByAddr.set(a, n.name);
    for (const s of this.facts.services) {
      for (const ip of [...s.clusterIPs, ...s.externalIPs, ...s.loadBalancerIPs]) push(this.vips, ip, s);
      for (const ip of s.clusterIPs) if (!this.clusterIps.has(ip)) this.clusterIps.set(ip, s);
      for (const p of s.ports) if (p.nodePort) push(this.nodePorts, p.nodePort, { svc: s, port: p });
    }
  }

  /**
   * Who answers at addr[:port]: a Service port on one of its IPs; a NodePort (on
   * any address that is not a pod's or a Service's: NodePorts answer on every
   * local address, secondary ones included); else the pod with that IP; else the
   * node. Without a port: a pod, a Service by cluster IP, or a node.
   */
  endpoint(addr: string, port?: number, proto?: L4Proto): K8sRef | undefined {
    const ip = canonicalIp(addr);
    const pod = this.podsByIp.get(ip);
    const node = this.nodesByAddr.get(ip);
    const nodeRef: K8sRef | undefined = node === undefined ? undefined : { kind: 'node', name: node };
    if (port === undefined) {
      const svc = this.clusterIps.get(ip);
      return pod ? podRef(pod) : svc ? svcRef(svc) : nodeRef;
    }
    const onVip = this.vips.get(ip);
    for (const s of onVip ?? []) {
      const p = s.ports.find((x) => x.port === port && sameProto(x, proto));
      if (p) return svcRef(s, p);
    }
    if (!pod && !onVip) {
      const hit = this.nodePorts.get(port)?.find((h) => sameProto(h.port, proto));
      if (hit) return svcRef(hit.svc, hit.port);
    }
    return pod ? podRef(pod) : nodeRef;
  }

  /** The pod whose network namespace has this inode. */
  netns(inode: number): K8sRef | undefined {
    const p = this.podsByNetns.get(inode);
    return p && podRef(p);
  }

  pod(namespace: string, name: string): PodFact | undefined {
    return this.facts.pods.find((p) => p.namespace === namespace && p.name === name);
  }

  service(namespace: string, name: string): ServiceFact | undefined {
    return this.facts.services.find((s) => s.namespace === namespace && s.name === name);
  }

  /** The EndpointSlices of a Service (the API's; none without it). */
  endpointsOf(namespace: string, service: string): EndpointSliceFact[] {
    return this.facts.endpointSlices.filter((e) => e.namespace === namespace && e.service === service);
  }

  podByIp(ip: string): PodFact | undefined {
    return this.podsByIp.get(canonicalIp(ip));
  }
}

// API objects (as `kubectl get -o json` prints them) to facts. Pure.
import type { ContainerProtocol, EndpointSliceFact, K8sFacts, NetworkPolicyFact, NodeFact, PodFact, ServiceFact, ServicePortFact } from '../../model/k8s.js';
import { canonicalIp } from '../../model/k8s-merge.js';

type Json = Record<string, any>;
export interface ApiLists {
  pods?: Json;
  services?: Json;
  endpointSlices?: Json;
  nodes?: Json;
  policies?: Json;
}

const items = (l?: Json): Json[] => (Array.isArray(l?.items) ? l.items : []);
const proto = (p: unknown): ContainerProtocol => (p === 'UDP' || p === 'SCTP' ? p : 'TCP');
const strings = (l: unknown): string[] => (Array.isArray(l) ? l.filter((x): x is string => typeof x === 'string' && x !== '') : []);

export function podFromApi(p: Json): PodFact {
  const md = p.metadata ?? {};
  const st = p.status ?? {};
  // A finished pod keeps its IP in status, and that IP now belongs to another pod.
  const done = st.phase === 'Succeeded' || st.phase === 'Failed';
  const ips = done ? [] : strings((st.podIPs ?? []).map((x: Json) => x?.ip)).concat(st.podIPs ? [] : strings([st.podIP]));
  const pod: PodFact = { namespace: md.namespace, name: md.name, ips: [...new Set(ips.map(canonicalIp))], source: 'api' };
  if (md.uid) pod.uid = md.uid;
  if (p.spec?.nodeName) pod.node = p.spec.nodeName;
  if (p.spec?.hostNetwork) pod.hostNetwork = true;
  if (md.labels) pod.labels = md.labels;
  const ports = (p.spec?.containers ?? []).flatMap((c: Json) => c.ports ?? []).map((x: Json) => ({ ...(x.name ? { name: x.name } : {}), port: x.containerPort, protocol: proto(x.protocol) }));
  if (ports.length) pod.ports = ports;
  return pod;
}

export function serviceFromApi(s: Json): ServiceFact {
  const spec = s.spec ?? {};
  const ips = (l: unknown) => strings(l).filter((x) => x !== 'None').map(canonicalIp);
  const ports: ServicePortFact[] = (spec.ports ?? []).map((p: Json) => ({
    ...(p.name ? { name: p.name } : {}), protocol: proto(p.protocol), port: p.port,
    ...(p.targetPort !== undefined ? { targetPort: p.targetPort } : {}), ...(p.nodePort ? { nodePort: p.nodePort } : {}),
  }));
  const svc: ServiceFact = {
    namespace: s.metadata?.namespace, name: s.metadata?.name,
    clusterIPs: ips(spec.clusterIPs ?? [spec.clusterIP]),
    externalIPs: ips(spec.externalIPs),
    loadBalancerIPs: ips((s.status?.loadBalancer?.ingress ?? []).map((i: Json) => i?.ip)),
    ports, source: 'api',
  };
  if (spec.type) svc.type = spec.type;
  if (spec.externalTrafficPolicy) svc.externalTrafficPolicy = spec.externalTrafficPolicy;
  return svc;
}

export function endpointSliceFromApi(e: Json): EndpointSliceFact | undefined {
  const service = e.metadata?.labels?.['kubernetes.io/service-name'];
  if (!service) return undefined;
  return {
    namespace: e.metadata.namespace, service,
    endpoints: (e.endpoints ?? []).map((x: Json) => ({
      addresses: strings(x.addresses).map(canonicalIp),
      // The API: a nil ready condition means ready.
      ready: x.conditions?.ready !== false,
      ...(x.nodeName ? { node: x.nodeName } : {}),
      ...(x.targetRef?.kind === 'Pod' ? { pod: x.targetRef.name } : {}),
    })),
    ports: (e.ports ?? []).map((p: Json) => ({ ...(p.name ? { name: p.name } : {}), port: p.port, protocol: proto(p.protocol) })),
    source: 'api',
  };
}

export function nodeFromApi(n: Json): NodeFact {
  const addrs = (n.status?.addresses ?? []).filter((a: Json) => a.type === 'InternalIP' || a.type === 'ExternalIP').map((a: Json) => a.address);
  return { name: n.metadata?.name, addresses: strings(addrs).map(canonicalIp), source: 'api' };
}

export function policyFromApi(p: Json): NetworkPolicyFact {
  return { namespace: p.metadata?.namespace, name: p.metadata?.name, spec: p.spec ?? {}, source: 'api' };
}

export function factsFromApi(l: ApiLists): Omit<K8sFacts, 'sources'> {
  return {
    pods: items(l.pods).map(podFromApi),
    services: items(l.services).map(serviceFromApi),
    endpointSlices: items(l.endpointSlices).map(endpointSliceFromApi).filter((e) => e !== undefined),
    nodes: items(l.nodes).map(nodeFromApi),
    policies: items(l.policies).map(policyFromApi),
  };
}

// Kubernetes names for what netwhy sees: the facts a node offers (container
// runtime, CNI result cache, kube-proxy's rule comments, the API server) and
// the one resolver that turns an address or a network namespace into a pod,
// a Service or a node. Pure: the facts are collected by src/state/k8s/.

/** A Kubernetes object as a verdict names it (`pod default/web-7c9f`, `svc shop/cart:http`). */
export interface K8sRef {
  kind: 'pod' | 'service' | 'node' | 'networkpolicy';
  /** absent for cluster-scoped objects (nodes) */
  namespace?: string;
  name: string;
  /** a Service port: its name, or its number when it has no name */
  port?: string;
}

export type ContainerProtocol = 'TCP' | 'UDP' | 'SCTP';

export interface PodFact {
  namespace: string;
  name: string;
  uid?: string;
  ips: string[];
  /** inode of the pod's network namespace, when the source knows it (runtime task pid, CNI_NETNS path) */
  netnsInode?: number;
  /** the netns path the runtime gave the CNI plugins (/var/run/netns/cni-…) */
  netnsPath?: string;
  node?: string;
  /** containerPorts of the pod spec (API only) */
  ports?: { name?: string; port: number; protocol: ContainerProtocol }[];
  labels?: Record<string, string>;
  /** the pod shares its node's network namespace: its IPs are the node's (API only) */
  hostNetwork?: boolean;
  /** which source said so (a NameSource) */
  source: NameSource;
}

export interface ServicePortFact {
  /** the port's name; absent for a single unnamed port */
  name?: string;
  protocol: ContainerProtocol;
  port: number;
  targetPort?: number | string;
  nodePort?: number;
}

export interface ServiceFact {
  namespace: string;
  name: string;
  type?: 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'ExternalName';
  clusterIPs: string[];
  externalIPs: string[];
  loadBalancerIPs: string[];
  ports: ServicePortFact[];
  externalTrafficPolicy?: 'Cluster' | 'Local';
  source: NameSource;
}

export interface EndpointSliceFact {
  namespace: string;
  /** the Service it belongs to (label kubernetes.io/service-name) */
  service: string;
  endpoints: { addresses: string[]; ready: boolean; node?: string; pod?: string }[];
  ports: { name?: string; port: number; protocol: ContainerProtocol }[];
  source: NameSource;
}

export interface NodeFact {
  name: string;
  addresses: string[];
  source: NameSource;
}

/** A NetworkPolicy object as the API returns it (spec kept as is). */
export interface NetworkPolicyFact {
  namespace: string;
  name: string;
  spec: Record<string, unknown>;
  source: NameSource;
}

export type NameSource = 'containerd' | 'crictl' | 'cni-cache' | 'kube-proxy-rules' | 'api';

/** What one source gave, or why it gave nothing: doctor prints these. */
export interface NameSourceReport {
  source: NameSource;
  status: 'ok' | 'absent' | 'error';
  /** where it looked and what it found, or why not ("no kubeconfig: $KUBECONFIG unset, ~/.kube/config missing") */
  detail: string;
  pods?: number;
  services?: number;
}

/** Everything the node told us about names: JSON-serialisable (recordings carry it). */
export interface K8sFacts {
  pods: PodFact[];
  services: ServiceFact[];
  endpointSlices: EndpointSliceFact[];
  nodes: NodeFact[];
  policies: NetworkPolicyFact[];
  sources: NameSourceReport[];
}

export function emptyFacts(): K8sFacts {
  return { pods: [], services: [], endpointSlices: [], nodes: [], policies: [], sources: [] };
}

/** `pod default/web-7c9f`, `svc shop/cart:http`, `node node1`, `networkpolicy default/deny-all`. */
export function refText(r: K8sRef): string {
  const kind = r.kind === 'service' ? 'svc' : r.kind;
  const name = r.namespace ? `${r.namespace}/${r.name}` : r.name;
  return `${kind} ${name}${r.port ? `:${r.port}` : ''}`;
}

/** The two questions every output asks of the names (NameResolver in model/names.ts answers them). */
export interface NameLookup {
  /** the Service, pod or node behind addr (and port: a Service port or a NodePort) */
  endpoint(addr: string, port?: number, proto?: 'tcp' | 'udp' | 'sctp'): K8sRef | undefined;
  /** the pod whose network namespace has this inode */
  netns(inode: number): K8sRef | undefined;
  pod(namespace: string, name: string): PodFact | undefined;
  service(namespace: string, name: string): ServiceFact | undefined;
  /** the EndpointSlices of a Service (API only; empty when unknown) */
  endpointsOf(namespace: string, service: string): EndpointSliceFact[];
}

// kube-proxy's names for what it writes: comments and nft chain names.

/** `ns/svc:port` or `ns/svc` (an unnamed port), then what the rule is for. */
export const KUBE_PROXY_COMMENT = /^([a-z0-9][a-z0-9.-]*)\/([a-z0-9][a-z0-9.-]*)(?::([a-z0-9-]+))?(?: (.*))?$/;

/** The Service port a kube-proxy comment (`ns/svc:port`) names; undefined for other text. */
export function serviceOfComment(comment: string): { namespace: string; name: string; port?: string } | undefined {
  const m = KUBE_PROXY_COMMENT.exec(comment);
  return m ? { namespace: m[1], name: m[2], ...(m[3] ? { port: m[3] } : {}) } : undefined;
}

/** The Service port of one of kube-proxy's per-Service nft chains (`service-`, `external-`, `firewall-`, `endpoint-HASH-ns/svc/proto/port[__ip/port]`). */
export function serviceOfNftChain(chain: string): { namespace: string; name: string; port?: string; kind: string } | undefined {
  const m = /^(service|external|firewall|endpoint)-[A-Z0-9]+-([a-z0-9.-]+)\/([a-z0-9.-]+)\/(?:tcp|udp|sctp)\/([a-z0-9-]*)(?:__.*)?$/.exec(chain);
  return m ? { kind: m[1], namespace: m[2], name: m[3], ...(m[4] ? { port: m[4] } : {}) } : undefined;
}

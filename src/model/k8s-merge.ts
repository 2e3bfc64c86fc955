// Several sources describe the same pod or Service (the API, the runtime, the
// CNI cache, kube-proxy's rules): one object per (namespace, name), each field
// from the most trusted source that has it. Pure.
import { formatIp, parseIp } from './ip.js';
import type { K8sFacts, NameSource, NodeFact, PodFact, ServiceFact, ServicePortFact } from './k8s.js';

/** Most trusted first: the API is the truth; the runtime knows the live netns; the CNI cache may be stale. */
export const SOURCE_RANK: readonly NameSource[] = ['api', 'containerd', 'crictl', 'cni-cache', 'kube-proxy-rules'];

const rank = (s: NameSource) => SOURCE_RANK.indexOf(s);

/** An address in the one form netwhy prints (RFC 5952 for IPv6); a non-address as it came, without a CIDR suffix. */
export function canonicalIp(text: string): string {
  const bare = text.replace(/\/\d+$/, '');
  const ip = parseIp(bare);
  return ip ? formatIp(ip.family, ip.value) : bare;
}

const canon = (ips: string[]) => [...new Set(ips.map(canonicalIp))];

/** The first value that is set, most trusted source first. */
function pick<T, K extends keyof T>(sorted: T[], key: K, isSet: (v: T[K]) => boolean = (v) => v !== undefined): T[K] | undefined {
  for (const f of sorted) if (isSet(f[key])) return f[key];
  return undefined;
}

/** Group by key, most trusted source first within each group. */
function groups<T extends { source: NameSource }>(items: T[], key: (t: T) => string): T[][] {
  const m = new Map<string, T[]>();
  for (const it of items) {
    const k = key(it);
    const g = m.get(k);
    if (g) g.push(it);
    else m.set(k, [it]);
  }
  return [...m.values()].map((g) => g.sort((a, b) => rank(a.source) - rank(b.source)));
}

/** The union of one source's arrays (kube-proxy's IPv4 and IPv6 rules each give half of a dual-stack Service). */
function sameSourceUnion<T extends { source: NameSource }>(g: T[], ips: (t: T) => string[]): string[] {
  const best = g.filter((f) => f.source === g.find((x) => ips(x).length > 0)?.source);
  return canon(best.flatMap(ips));
}

function mergePods(pods: PodFact[]): PodFact[] {
  return groups(pods, (p) => `${p.namespace}/${p.name}`).map((g) => {
    const out: PodFact = { namespace: g[0].namespace, name: g[0].name, ips: sameSourceUnion(g, (p) => p.ips), source: g[0].source };
    for (const k of ['uid', 'netnsInode', 'netnsPath', 'node', 'ports', 'labels', 'hostNetwork'] as const) {
      const v = pick(g, k);
      if (v !== undefined) (out as unknown as Record<string, unknown>)[k] = v;
    }
    return out;
  });
}

/** Ports by protocol and name: a NodePort rule and a cluster-IP rule of the same port are one port. */
export function mergePorts(ports: ServicePortFact[]): ServicePortFact[] {
  const m = new Map<string, ServicePortFact>();
  for (const p of ports) {
    const k = `${p.protocol}/${p.name ?? ''}`;
    const had = m.get(k);
    if (!had) {
      m.set(k, { ...p });
      continue;
    }
    if (!had.port && p.port) had.port = p.port;
    had.nodePort ??= p.nodePort;
    had.targetPort ??= p.targetPort;
  }
  return [...m.values()];
}

function mergeServices(services: ServiceFact[]): ServiceFact[] {
  return groups(services, (s) => `${s.namespace}/${s.name}`).map((g) => {
    // The API's port list is the whole truth; kube-proxy's rules only show ports they program.
    const portSource = g.find((s) => s.ports.length > 0)?.source;
    const out: ServiceFact = {
      namespace: g[0].namespace,
      name: g[0].name,
      clusterIPs: sameSourceUnion(g, (s) => s.clusterIPs),
      externalIPs: sameSourceUnion(g, (s) => s.externalIPs),
      loadBalancerIPs: sameSourceUnion(g, (s) => s.loadBalancerIPs),
      ports: mergePorts(g.filter((s) => s.source === portSource).flatMap((s) => s.ports)),
      source: g[0].source,
    };
    const type = pick(g, 'type');
    if (type) out.type = type;
    const etp = pick(g, 'externalTrafficPolicy');
    if (etp) out.externalTrafficPolicy = etp;
    return out;
  });
}

function mergeNodes(nodes: NodeFact[]): NodeFact[] {
  return groups(nodes, (n) => n.name).map((g) => ({ name: g[0].name, addresses: canon(g.flatMap((n) => n.addresses)), source: g[0].source }));
}

/** One K8sFacts from many: objects merged by (namespace, name), addresses canonical, every report kept. */
export function mergeK8sFacts(parts: K8sFacts[]): K8sFacts {
  const all = <K extends keyof K8sFacts>(k: K): K8sFacts[K] => parts.flatMap((p) => p[k] as unknown[]) as K8sFacts[K];
  return {
    pods: mergePods(all('pods')),
    services: mergeServices(all('services')),
    endpointSlices: all('endpointSlices').map((e) => ({ ...e, endpoints: e.endpoints.map((x) => ({ ...x, addresses: canon(x.addresses) })) })),
    nodes: mergeNodes(all('nodes')),
    policies: all('policies'),
    sources: all('sources'),
  };
}

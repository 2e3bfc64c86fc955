// What a drop by kube-proxy's nftables table (`ip kube-proxy`, `ip6
// kube-proxy`, pkg/proxy/nftables) says about the Service it was written
// for: the element comment of its no-endpoint maps (`ns/svc:port`), the
// per-Service chain names (`firewall-HASH-ns/svc/tcp/port`), and the fixed
// chains (cluster-ips-check). Pure: the finding in, the words out.
import { type EndpointSliceFact, type K8sRef, serviceOfComment, serviceOfNftChain } from '../model/k8s.js';
import type { NetfilterFinding, NetfilterPacket } from '../model/netfilter.js';

export interface NftMeaning {
  service?: K8sRef;
  evidence: string[];
  fix: string;
}

const svcText = (r: K8sRef) => `${r.namespace}/${r.name}${r.port ? ` port ${r.port}` : ''}`;

function slicesText(slices: EndpointSliceFact[]): string | undefined {
  if (!slices.length) return undefined;
  const eps = slices.flatMap((s) => s.endpoints);
  return `its EndpointSlices list ${eps.length} endpoint${eps.length === 1 ? '' : 's'}, ${eps.filter((e) => e.ready).length} ready`;
}

export function nftMeaning(f: NetfilterFinding, pkt: NetfilterPacket, slicesOf: (svc: K8sRef) => EndpointSliceFact[] = () => []): NftMeaning | undefined {
  const n = f.nft;
  if (!n || n.table !== 'kube-proxy') return undefined;
  const el = n.element;
  const dst = `${pkt.dst}${pkt.dport !== undefined ? `:${pkt.dport}` : ''}`;
  const fromComment = el?.comment !== undefined ? serviceOfComment(el.comment) : undefined;
  if (el && fromComment && /^no-endpoint-(services|nodeports)$/.test(el.set)) {
    const service: K8sRef = { kind: 'service', ...fromComment };
    const counted = slicesText(slicesOf(service));
    return {
      service,
      evidence: [`kube-proxy put ${dst} in @${el.set} for Service ${svcText(service)}: the Service has no ready endpoints, so kube-proxy ${el.value === 'drop' ? 'drops' : 'rejects'} its traffic${counted ? ` (${counted})` : ''}`],
      fix: `Service ${svcText(service)} has no ready endpoints: make its pods ready (check the Service's selector, the pods' readiness probes and targetPort), or scale the workload up`,
    };
  }
  if (n.chain === 'cluster-ips-check') {
    if (f.verdict === 'DROP') {
      return {
        evidence: [`${pkt.dst} is in the service CIDR kube-proxy guards, but no Service has it as its ClusterIP (it is not in @cluster-ips): kube-proxy drops traffic to unallocated ClusterIPs`],
        fix: `no Service has ClusterIP ${pkt.dst}: use the ClusterIP of the Service you mean (kubectl get svc -A -o wide), or the Service's DNS name, which follows it when it is recreated`,
      };
    }
    return {
      evidence: [`${pkt.dst} is the ClusterIP of a live Service, but it serves no ${pkt.proto === 17 ? 'UDP' : 'TCP'} port ${pkt.dport ?? '?'}: kube-proxy rejects traffic to the invalid ports of ClusterIPs`],
      fix: `connect to a port the Service at ${pkt.dst} declares (kubectl get svc -A -o wide), or add the port to the Service`,
    };
  }
  // The per-Service chain the packet was in when it died (the firewall chain of loadBalancerSourceRanges, …).
  const chain = [...n.path].reverse().find((c) => serviceOfNftChain(c)) ?? n.chain;
  const fromChain = serviceOfNftChain(chain);
  const fromAny = fromChain ?? fromComment;
  const service: K8sRef | undefined = fromAny && { kind: 'service', namespace: fromAny.namespace, name: fromAny.name, ...(fromAny.port ? { port: fromAny.port } : {}) };
  if (fromChain?.kind === 'firewall' && service) {
    return {
      service,
      evidence: [`kube-proxy sends traffic to ${dst} through ${chain} (from @firewall-ips), which drops sources outside Service ${svcText(service)}'s loadBalancerSourceRanges; ${pkt.src} is not in them`],
      fix: `add ${pkt.src} (or its network) to spec.loadBalancerSourceRanges of Service ${svcText(service)}, or connect from an allowed source`,
    };
  }
  return {
    ...(service ? { service } : {}),
    evidence: service ? [`the rule belongs to kube-proxy's handling of Service ${svcText(service)}`] : [],
    fix: `the rule belongs to kube-proxy (table ${n.family} kube-proxy, chain ${n.chain}); fix the Service or EndpointSlices it was generated from rather than the rule`,
  };
}

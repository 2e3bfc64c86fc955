// What a kube-proxy rule that dropped or rejected a packet says about the
// Service it was written for. kube-proxy (iptables mode, pkg/proxy/iptables)
// states its reason in the rule's comment: "ns/svc:port has no endpoints"
// (REJECT), "ns/svc:port has no local endpoints" (externalTrafficPolicy:
// Local, DROP or KUBE-MARK-DROP), "ns/svc:port traffic not accepted by
// KUBE-FW-…" (loadBalancerSourceRanges). Pure: the rule line and the name
// facts in, the Service and the words for the verdict out.
import type { EndpointSliceFact, K8sRef } from '../model/k8s.js';

export interface KubeProxyMeaning {
  service: K8sRef;
  evidence: string[];
  fix: string;
}

const COMMENT = /--comment "?([a-z0-9][-a-z0-9]*)\/([a-z0-9][-.a-z0-9]*)(?::([^\s"]+))? (has no endpoints|has no local endpoints|traffic not accepted by (KUBE-FW-[A-Z0-9]+))"?/;

function svcText(r: K8sRef): string {
  return `${r.namespace}/${r.name}${r.port ? ` port ${r.port}` : ''}`;
}

/** Ready and total endpoints of the Service's slices, as evidence; undefined without slices. */
function slicesText(slices: EndpointSliceFact[], node: string | undefined): string | undefined {
  if (!slices.length) return undefined;
  const eps = slices.flatMap((s) => s.endpoints);
  const ready = eps.filter((e) => e.ready);
  const local = node ? ready.filter((e) => e.node === node).length : undefined;
  return `its EndpointSlices list ${eps.length} endpoint${eps.length === 1 ? '' : 's'}, ${ready.length} ready${local !== undefined ? `, ${local} of them on node ${node}` : ''}`;
}

/**
 * The Service behind a kube-proxy rule and what its comment means; undefined
 * for any other rule. `slicesOf` gives the Service's EndpointSlices when the
 * API was reachable; `node` is this node's name, when known.
 */
export function kubeProxyMeaning(rule: string, slicesOf: (service: K8sRef) => EndpointSliceFact[] = () => [], node?: string): KubeProxyMeaning | undefined {
  const m = COMMENT.exec(rule);
  if (!m) return undefined;
  const service: K8sRef = { kind: 'service', namespace: m[1], name: m[2], ...(m[3] && { port: m[3] }) };
  const counted = slicesText(slicesOf(service), node);
  const s = svcText(service);
  if (m[4] === 'has no endpoints') {
    return {
      service,
      evidence: [`kube-proxy wrote this rule because Service ${s} has no ready endpoints${counted ? ` (${counted})` : ''}: it rejects the Service's traffic instead of forwarding it`],
      fix: `give Service ${s} a ready pod: check that its selector matches the pods' labels (kubectl get endpointslices -n ${service.namespace} -l kubernetes.io/service-name=${service.name}) and that the pods pass their readiness probes`,
    };
  }
  if (m[4] === 'has no local endpoints') {
    return {
      service,
      evidence: [`kube-proxy wrote this rule because Service ${s} has externalTrafficPolicy: Local and no ready endpoint on this node${counted ? ` (${counted})` : ''}: external traffic that arrives here is dropped, not forwarded to another node`],
      fix: `send the traffic only to nodes that run a ready pod of ${service.namespace}/${service.name} (the load balancer's health check on the Service's healthCheckNodePort does this), or set externalTrafficPolicy: Cluster if the client's source address need not be kept`,
    };
  }
  return {
    service,
    evidence: [`kube-proxy wrote this rule for Service ${s}'s loadBalancerSourceRanges (chain ${m[5]}): the source address is not in them`],
    fix: `add the client's address range to spec.loadBalancerSourceRanges of Service ${service.namespace}/${service.name}, or reach it from an allowed address`,
  };
}

// A packet delivered to this host where no socket wants it (NO_SOCKET).
// Before blaming a missing listener: was it a reply whose DNAT was never
// undone because it was bridged past iptables (bridge-nf-call-iptables=0)?
import { hostPort } from '../../model/ip.js';
import { protoName } from '../../model/protocols.js';
import { tupleText } from '../evidence.js';
import type { K8sRef } from '../../model/k8s.js';
import { refText } from '../../model/k8s.js';
import type { Cause, ExplainRule, Finding, RuleInput } from '../types.js';

/**
 * A Service that sent the packet to a port where its pod has no listener
 * (the targetPort is wrong, or the container listens elsewhere): the Service
 * and the pod, by name, when the name sources know them.
 */
function serviceTarget({ flow, drop, names }: RuleInput): { k8s: K8sRef[]; evidence: string[]; fix: string } | null {
  const t = drop.pkt.tuple;
  const dnat = flow.nat.find((n) => n.kind === 'dnat' && n.to.addr === t.dst && n.to.port === t.dport);
  const proto = t.proto === 6 ? 'tcp' : t.proto === 17 ? 'udp' : t.proto === 132 ? 'sctp' : undefined;
  if (!dnat || !names) return null;
  const svc = names.endpoint(dnat.orig.dst, dnat.orig.dport, proto);
  if (svc?.kind !== 'service') return null;
  const pod = names.endpoint(t.dst);
  const podFact = pod?.kind === 'pod' ? names.pod(pod.namespace ?? '', pod.name) : undefined;
  const where = pod?.kind === 'pod' ? `pod ${pod.namespace}/${pod.name}` : t.dst;
  const evidence = [`${refText(svc)} (${hostPort(dnat.orig.dst, dnat.orig.dport)}) sends its traffic to port ${t.dport} of ${where}, and nothing listens there`];
  const declared = podFact?.ports?.filter((p) => p.protocol.toLowerCase() === protoName(t.proto));
  if (declared?.length) evidence.push(`${where} declares containerPort ${declared.map((p) => `${p.port}${p.name ? ` (${p.name})` : ''}`).join(', ')}`);
  const svcName = `${svc.namespace}/${svc.name}`;
  return {
    k8s: pod?.kind === 'pod' ? [svc, pod] : [svc],
    evidence,
    fix: `make the targetPort of Service ${svcName}${svc.port ? ` port ${svc.port}` : ''} the port the container listens on${declared?.length ? ` (${declared.map((p) => p.name ?? p.port).join(' or ')})` : ''}, or make the container listen on ${t.dport} (kubectl get svc -n ${svc.namespace} ${svc.name} -o yaml; ss -lnt in the pod)`,
  };
}

function bridgeNfFinding({ flow, drop, state, netnsName }: RuleInput): Finding | null {
  const t = drop.pkt.tuple;
  const dnat = flow.nat.find((n) => n.kind === 'dnat' && n.to.addr === t.src && n.to.port === t.sport);
  if (!dnat) return null;
  const st = state(dnat.netns);
  const value = st?.sysctl('net.bridge.bridge-nf-call-iptables');
  if (value !== '0') return null;
  const ns = netnsName(dnat.netns);
  const service = hostPort(dnat.orig.dst, dnat.orig.dport);
  return {
    cause: { type: 'sysctl', ref: 'net.bridge.bridge-nf-call-iptables', value: '0', netns: ns },
    evidence: [
      `the request to ${service} was DNAT-ed in ${ns} to ${hostPort(dnat.to.addr, dnat.to.port)}`,
      `the reply came back from ${hostPort(t.src, t.sport)} un-NAT-ed: the client's socket expects ${service}, so no socket took it (NO_SOCKET in ${netnsName(drop.pkt.netns)})`,
      `net.bridge.bridge-nf-call-iptables = 0 in ${ns}: the reply was bridged between two pods of one bridge without passing iptables and conntrack, so the DNAT was never reversed`,
    ],
    fix: `modprobe br_netfilter; sysctl -w net.bridge.bridge-nf-call-iptables=1 in ${ns}, and persist both (kube-proxy requires it)`,
  };
}

export const socketRule: ExplainRule = {
  name: 'no-socket',
  reasons: ['NO_SOCKET'],
  explain(input) {
    const bridged = bridgeNfFinding(input);
    if (bridged) return bridged;
    const { drop, state, netnsName } = input;
    const t = drop.pkt.tuple;
    const ns = netnsName(drop.pkt.netns);
    const proto = protoName(t.proto);
    const ref = `${proto} ${hostPort(t.dst, t.dport)}`;
    const st = state(drop.pkt.netns);
    const evidence = [`${tupleText(t)} was delivered to ${ns} and no ${proto} socket is bound to ${hostPort(t.dst, t.dport)}`];
    if (!st) return { cause: { type: 'socket', ref, value: 'no listener', netns: ns }, evidence };
    const addr = st.addrs.find((a) => a.address === t.dst);
    if (!addr) {
      evidence.push(`${t.dst} is not an address of ${ns} (it was delivered locally anyway, e.g. by a local route)`);
      return { cause: { type: 'address', ref: t.dst, value: 'not local', netns: ns }, evidence, fix: `add ${t.dst} to a device in ${ns} or stop routing it here` };
    }
    if (addr.secondary) {
      const primary = st.addrs.find((a) => a.dev === addr.dev && !a.secondary && a.prefixlen === addr.prefixlen);
      evidence.push(`${t.dst} is a secondary address on ${addr.dev}${primary ? ` (primary ${primary.address})` : ''}: a service bound to the node's primary address, or one nobody set up for this VIP, does not answer on it`);
    }
    evidence.push(`dropped with NO_SOCKET${proto === 'tcp' ? ' (a TCP reset went back: "connection refused")' : proto === 'udp' ? ' (an ICMP port unreachable went back)' : ''}`);
    const cause: Cause = { type: 'socket', ref, value: addr.secondary ? 'no listener (secondary address)' : 'no listener', netns: ns };
    const target = serviceTarget(input);
    if (target) {
      cause.k8s = target.k8s;
      evidence.push(...target.evidence);
    }
    return { cause, evidence, fix: target?.fix ?? `start a listener on ${hostPort(t.dst, t.dport)} (${proto}) in ${ns}, or check the service's bind address (ip netns exec ${ns} ss -lntup)` };
  },
};

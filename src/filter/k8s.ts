// `pod NS/NAME` and `svc NS/NAME` in a filter: replaced, before the filter is
// compiled for the kernel, by the addresses, ports and network namespace the
// name sources give for that object. Pure: the lookups are passed in.
import { AF_INET, AF_INET6 } from '../abi.js';
import type { NameLookup, PodFact, ServiceFact } from '../model/k8s.js';
import { ipBytes, parseIp } from '../model/ip.js';
import { PROTOCOLS } from '../model/protocols.js';
import { type Expr, FilterError, type Term } from './parse.js';

/** What the filter needs of the names (NameResolver answers it). */
export type K8sFilterNames = Pick<NameLookup, 'pod' | 'service'>;

function host(ip: string): Expr | undefined {
  const a = parseIp(ip);
  return a ? { op: 'term', term: { t: 'addr', dir: 'any', family: a.family === 4 ? AF_INET : AF_INET6, addr: ipBytes(a), prefix: a.family === 4 ? 32 : 128 } } : undefined;
}

function term(t: Term): Expr {
  return { op: 'term', term: t };
}

function anyOf(list: Expr[]): Expr | undefined {
  return list.reduce<Expr | undefined>((acc, e) => (acc ? { op: 'or', a: acc, b: e } : e), undefined);
}

function allOf(...list: Expr[]): Expr {
  return list.reduce((acc, e) => ({ op: 'and', a: acc, b: e }));
}

/** A pod's traffic: to or from any of its addresses, or anything inside its network namespace. */
function podExpr(p: PodFact): Expr | undefined {
  const parts = p.ips.map(host).filter((e): e is Expr => !!e);
  if (p.netnsInode) parts.push(term({ t: 'netns', name: String(p.netnsInode) }));
  return anyOf(parts);
}

/**
 * A Service's traffic: each of its addresses (cluster, external, load
 * balancer) with each of its ports, and its NodePorts on any address. The
 * kernel side also matches a packet by its conntrack original tuple, so
 * packets already DNAT-ed to a pod stay in.
 */
function serviceExpr(s: ServiceFact): Expr | undefined {
  const parts: Expr[] = [];
  for (const ip of [...s.clusterIPs, ...s.externalIPs, ...s.loadBalancerIPs]) {
    const h = host(ip);
    if (!h) continue;
    for (const p of s.ports) {
      parts.push(allOf(h, term({ t: 'proto', proto: PROTOCOLS[p.protocol.toLowerCase()] }), term({ t: 'port', dir: 'dst', lo: p.port, hi: p.port })));
    }
    if (!s.ports.length) parts.push(h);
  }
  for (const p of s.ports) {
    if (p.nodePort) parts.push(allOf(term({ t: 'proto', proto: PROTOCOLS[p.protocol.toLowerCase()] }), term({ t: 'port', dir: 'dst', lo: p.nodePort, hi: p.nodePort })));
  }
  return anyOf(parts);
}

/** Does the expression name a pod or a Service (so the names must be known before compiling)? */
export function usesK8s(e: Expr): boolean {
  if (e.op === 'term') return e.term.t === 'k8s';
  if (e.op === 'not') return usesK8s(e.e);
  return usesK8s(e.a) || usesK8s(e.b);
}

/** The expression with every pod/svc term replaced; throws FilterError for a name nothing knows. */
export function expandK8s(e: Expr, names: K8sFilterNames | undefined, src: string): Expr {
  switch (e.op) {
    case 'and':
    case 'or':
      return { op: e.op, a: expandK8s(e.a, names, src), b: expandK8s(e.b, names, src) };
    case 'not':
      return { op: 'not', e: expandK8s(e.e, names, src) };
    case 'term': {
      const t = e.term;
      if (t.t !== 'k8s') return e;
      const what = `${t.kind === 'pod' ? 'pod' : 'svc'} ${t.namespace}/${t.name}`;
      if (!names) throw new FilterError(`${what}: no Kubernetes name source answered (see netwhy doctor)`, src, t.col);
      const fact = t.kind === 'pod' ? names.pod(t.namespace, t.name) : names.service(t.namespace, t.name);
      if (!fact) throw new FilterError(`${what} is not known to the name sources (see netwhy doctor)`, src, t.col);
      const out = t.kind === 'pod' ? podExpr(fact as PodFact) : serviceExpr(fact as ServiceFact);
      if (!out) throw new FilterError(`${what} has no address, port or network namespace to trace`, src, t.col);
      return out;
    }
  }
}

// IPVS (kube-proxy's IPVS mode): a virtual service missing for an address,
// deleted under a flow by another process, without destinations, or an old
// connection entry still pinned to a real server that is gone.
import { type IpvsCtlRecord, IpvsErrKind, IpvsOp } from '../../abi.js';
import { hostPort } from '../../model/ip.js';
import { serviceRef } from '../../model/ipvs.js';
import { protoName } from '../../model/protocols.js';
import type { IpvsVirtualService } from '../../state/parsers.js';
import type { ExplainRule, FlowRule, FlowRuleInput, NetnsState } from '../types.js';

const PROTO_NAME: Record<number, string> = { 6: 'TCP', 17: 'UDP', 132: 'SCTP' };

/** Namespaces the flow crossed that have IPVS, first seen first. */
function ipvsNamespaces(input: FlowRuleInput): { ino: number; st: NetnsState }[] {
  const seen = new Set<number>();
  const out: { ino: number; st: NetnsState }[] = [];
  for (const j of input.flow.journeys) {
    for (const r of j.records) {
      const ino = r.kind === 'fib' || r.kind === 'sock' ? r.netns : r.pkt.netns;
      if (seen.has(ino)) continue;
      seen.add(ino);
      const st = input.state(ino);
      if (st?.ipvs) out.push({ ino, st });
    }
  }
  return out;
}

function findService(services: IpvsVirtualService[], proto: number, addr: string, port: number): IpvsVirtualService | undefined {
  const p = PROTO_NAME[proto];
  return services.find((s) => s.protocol === p && s.addr === addr && s.port === port);
}

/** NO_SOCKET at an address IPVS has no virtual service for, while the same port is served elsewhere. */
export const ipvsMissingServiceRule: ExplainRule = {
  name: 'ipvs-missing-service',
  reasons: ['NO_SOCKET'],
  explain({ drop, state, netnsName }) {
    const st = state(drop.pkt.netns);
    if (!st?.ipvs) return null;
    const t = drop.pkt.tuple;
    if (findService(st.ipvs.services, t.proto, t.dst, t.dport)) return null;
    const samePort = st.ipvs.services.filter((s) => s.protocol === PROTO_NAME[t.proto] && s.port === t.dport);
    if (!samePort.length) return null; // nothing IPVS about this port: a plain missing socket
    const ns = netnsName(drop.pkt.netns);
    const addr = st.addrs.find((a) => a.address === t.dst);
    const primary = addr && st.addrs.find((a) => a.dev === addr.dev && !a.secondary && a.prefixlen === addr.prefixlen);
    const ref = `${PROTO_NAME[t.proto]} ${hostPort(t.dst, t.dport)}`;
    const evidence = [
      `IPVS in ${ns} serves port ${t.dport} as ${samePort.map((s) => s.ref).join(', ')}, but has no virtual service for ${hostPort(t.dst, t.dport)}`,
      `so the ${protoName(t.proto)} packet to ${hostPort(t.dst, t.dport)} went to the local stack, where no socket listens (NO_SOCKET)`,
    ];
    if (addr?.secondary) {
      evidence.push(`${t.dst} is a secondary address on ${addr.dev}${primary ? ` (primary ${primary.address})` : ''}, like a keepalived VIP: kube-proxy made NodePort services only for the node addresses it selected`);
    } else if (!addr) {
      evidence.push(`${t.dst} is not an address of ${ns}`);
    }
    return {
      cause: { type: 'ipvs-service', ref, value: addr?.secondary ? 'missing (secondary address)' : 'missing', netns: ns },
      evidence,
      fix: `let kube-proxy create the service for ${t.dst}: include it in --nodeport-addresses (nodePortAddresses), or expose the VIP as a Service externalIP/LoadBalancer IP; kube-proxy picks node addresses when it syncs, so it must run after the VIP exists`,
    };
  },
};

function sameService(r: IpvsCtlRecord, proto: number, addr: string, port: number): boolean {
  return r.svc.protocol === proto && r.svc.addr === addr && r.svc.port === port;
}

function who(rs: IpvsCtlRecord[]): string {
  const by = new Map<string, number>();
  for (const r of rs) by.set(`${r.comm}[${r.pid}]`, (by.get(`${r.comm}[${r.pid}]`) ?? 0) + 1);
  return [...by].map(([k, n]) => `${k} ${n}×`).join(', ');
}

/** The flow's virtual service was deleted (and maybe re-created) while it ran. */
export const ipvsFlapRule: FlowRule = {
  name: 'ipvs-service-deleted',
  explain({ flow, ipvs, netnsName }) {
    const o = flow.orig;
    const ctl = ipvs.filter((r): r is IpvsCtlRecord => r.kind === 'ipvs-ctl' && sameService(r, o.proto, o.dst, o.dport));
    const dels = ctl.filter((r) => r.op === IpvsOp.DEL_SERVICE);
    if (!dels.length) return null;
    const adds = ctl.filter((r) => r.op === IpvsOp.ADD_SERVICE && r.ret === 0);
    const ref = serviceRef(dels[0].svc);
    const ns = netnsName(dels[0].netns);
    const t0 = flow.start;
    const when = (rs: IpvsCtlRecord[]) => rs.map((r) => `${((r.ts - t0) / 1e9).toFixed(2)} s`).join(', ');
    const evidence = [
      `${ref} was deleted ${dels.length} time${dels.length === 1 ? '' : 's'} during the trace, by ${who(dels)} (at ${when(dels)}, relative to this flow's first packet)`,
    ];
    if (adds.length) evidence.push(`and re-created ${adds.length} time${adds.length === 1 ? '' : 's'} by ${who(adds)} (at ${when(adds)}): the virtual service flaps`);
    evidence.push(`a connection to ${hostPort(o.dst, o.dport)} that arrives while the service is gone finds no IPVS service`);
    const kubeProxy = dels.some((r) => /kube-proxy/.test(r.comm));
    return {
      cause: { type: 'ipvs-service', ref, value: `deleted ${dels.length}× by ${[...new Set(dels.map((r) => r.comm))].join(', ')}`, netns: ns },
      evidence,
      fix: kubeProxy
        ? `kube-proxy in IPVS mode deletes virtual services it did not create: exclude this VIP with kube-proxy --ipvs-exclude-cidrs=${o.dst}/32, or run kube-vip in ARP/BGP mode without its IPVS load balancer`
        : `find why ${[...new Set(dels.map((r) => r.comm))].join(', ')} deletes ${ref}, and let one owner manage it`,
    };
  },
};

/** The scheduler found no destination for the flow's service. */
export const ipvsNoDestRule: FlowRule = {
  name: 'ipvs-no-destination',
  explain({ flow, ipvs, state, netnsName }) {
    const o = flow.orig;
    const err = ipvs.find((r) => r.kind === 'ipvs-err' && r.err === IpvsErrKind.NO_DEST && r.svc.protocol === o.proto && r.svc.addr === o.dst && r.svc.port === o.dport);
    if (!err || err.kind !== 'ipvs-err') return null;
    const ref = serviceRef(err.svc);
    const ns = netnsName(err.netns);
    const svc = state(err.netns)?.ipvs?.services.find((s) => s.ref === ref);
    const evidence = [`the IPVS scheduler of ${ref} in ${ns} said: ${err.msg || 'no destination available'}`];
    if (svc) evidence.push(svc.dests.length ? `its real servers: ${svc.dests.map((d) => `${hostPort(d.addr, d.port)} weight ${d.weight}`).join(', ')} (weight 0 takes no new connections)` : 'it has no real servers');
    return {
      cause: { type: 'ipvs-service', ref, value: 'no destination available', netns: ns },
      evidence,
      fix: 'check the Service\'s Endpoints: no ready pod backs it (kube-proxy removes real servers of unready pods and sets weight 0 while they terminate)',
    };
  },
};

/** An IPVS connection entry for the flow points at a real server its service no longer has. */
export const ipvsStaleDestRule: FlowRule = {
  name: 'ipvs-stale-destination',
  explain(input) {
    const o = input.flow.orig;
    for (const { ino, st } of ipvsNamespaces(input)) {
      const svc = findService(st.ipvs!.services, o.proto, o.dst, o.dport);
      if (!svc) continue;
      const entry = st.ipvs!.conns.find((c) => c.source === hostPort(o.src, o.sport) && c.virtual === hostPort(o.dst, o.dport));
      if (!entry) continue;
      if (svc.dests.some((d) => hostPort(d.addr, d.port) === entry.destination)) continue;
      const ns = input.netnsName(ino);
      const sys = (k: string) => st.sysctl(k) ?? '?';
      return {
        cause: { type: 'ipvs-dest', ref: `-> ${entry.destination}`, value: `stale: not a real server of ${svc.ref}`, netns: ns },
        evidence: [
          `IPVS in ${ns} still has a connection entry for ${hostPort(o.src, o.sport)} > ${hostPort(o.dst, o.dport)}: ${entry.line}`,
          `it sends the flow to ${entry.destination}, which is no longer a real server of ${svc.ref} (now: ${svc.dests.map((d) => hostPort(d.addr, d.port)).join(', ') || 'none'})`,
          `net.ipv4.vs.expire_nodest_conn = ${sys('net.ipv4.vs.expire_nodest_conn')}, net.ipv4.vs.conn_reuse_mode = ${sys('net.ipv4.vs.conn_reuse_mode')}: the entry lives until its ${o.proto === 17 ? 'UDP ' : ''}timeout while the client keeps its source port`,
        ],
        fix: `sysctl -w net.ipv4.vs.expire_nodest_conn=1 in ${ns} (kube-proxy sets it) so entries to removed real servers expire at once; clear this one now with: ipvsadm -Lnc | grep ${entry.destination} and conntrack -D -p ${o.proto === 17 ? 'udp' : 'tcp'} --orig-src ${o.src} --orig-port-src ${o.sport}`,
      };
    }
    return null;
  },
};

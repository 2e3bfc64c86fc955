// Services as kube-proxy programmed them: the comments of its iptables rules
// ("ns/svc:port cluster IP") and the maps of its nftables tables (`ip
// kube-proxy`, `ip6 kube-proxy`). The rules carry no pod names and no
// EndpointSlices; IPVS virtual services carry no names at all (not read).
import { type ContainerProtocol, type ServiceFact, type ServicePortFact, KUBE_PROXY_COMMENT as NAME, emptyFacts } from '../../model/k8s.js';
import { canonicalIp, mergeK8sFacts, mergePorts } from '../../model/k8s-merge.js';
import { formatIp } from '../../model/ip.js';
import { allRules, type Rule } from '../../model/netfilter/xt-ruleset.js';
import { parseIptablesSave } from '../netfilter/iptables-save.js';
import { runCommand } from '../run.js';
import { type SourceResult, errorText, found } from './source.js';

const SOURCE = 'kube-proxy-rules';
const PROTO_NUM: Record<number, ContainerProtocol> = { 6: 'TCP', 17: 'UDP', 132: 'SCTP' };

/** Collects Services by (namespace, name) as rules reveal them piece by piece. */
class ServiceBook {
  private readonly byKey = new Map<string, ServiceFact>();

  add(ns: string, name: string, part: { clusterIP?: string; externalIP?: string; lbIP?: string; port?: ServicePortFact }): void {
    const key = `${ns}/${name}`;
    let s = this.byKey.get(key);
    if (!s) this.byKey.set(key, (s = { namespace: ns, name, clusterIPs: [], externalIPs: [], loadBalancerIPs: [], ports: [], source: SOURCE }));
    const addTo = (l: string[], ip?: string) => ip && !l.includes(canonicalIp(ip)) && l.push(canonicalIp(ip));
    addTo(s.clusterIPs, part.clusterIP);
    addTo(s.externalIPs, part.externalIP);
    addTo(s.loadBalancerIPs, part.lbIP);
    if (part.port) s.ports = mergePorts([...s.ports, part.port]);
  }

  services(): ServiceFact[] {
    return [...this.byKey.values()];
  }
}

function ruleFacts(r: Rule): { addr?: string; proto?: ContainerProtocol; dport?: number; local: boolean } {
  let addr: string | undefined;
  let proto: ContainerProtocol | undefined;
  let dport: number | undefined;
  let local = false;
  for (const c of r.conditions) {
    if (c.neg) continue;
    if (c.kind === 'addr' && c.dir === 'dst') addr = formatIp(c.net.family, c.net.addr);
    else if (c.kind === 'proto') proto = PROTO_NUM[c.proto];
    else if (c.kind === 'port' && c.dir === 'dst' && c.ranges.length === 1 && c.ranges[0][0] === c.ranges[0][1]) dport = c.ranges[0][0];
    else if (c.kind === 'addrtype' && c.dir === 'dst' && c.types.includes('LOCAL')) local = true;
  }
  return { addr, proto, dport, local };
}

/** Services from `iptables-save` text (IPv4 or IPv6): cluster, external and load-balancer IPs, ports, NodePorts. */
export function servicesFromIptables(text: string): ServiceFact[] {
  const book = new ServiceBook();
  for (const r of allRules(parseIptablesSave(text))) {
    const m = r.comment ? NAME.exec(r.comment) : null;
    if (!m) continue;
    const [, ns, name, portName, what = ''] = m;
    const { addr, proto, dport, local } = ruleFacts(r);
    if (!proto || !dport) continue;
    const port = (n: { port?: number; nodePort?: number }): ServicePortFact => ({ ...(portName ? { name: portName } : {}), protocol: proto, port: n.port ?? 0, ...(n.nodePort ? { nodePort: n.nodePort } : {}) });
    const noEndpoints = /^has no (local )?endpoints$/.test(what);
    if (r.chain === 'KUBE-SERVICES' && addr && (what === 'cluster IP' || noEndpoints)) book.add(ns, name, { clusterIP: addr, port: port({ port: dport }) });
    else if (what === 'external IP' && addr) book.add(ns, name, { externalIP: addr, port: port({ port: dport }) });
    else if (what === 'loadbalancer IP' && addr) book.add(ns, name, { lbIP: addr, port: port({ port: dport }) });
    else if (r.chain === 'KUBE-EXTERNAL-SERVICES' && noEndpoints && addr) book.add(ns, name, { externalIP: addr, port: port({ port: dport }) });
    else if ((r.chain === 'KUBE-NODEPORTS' && what === '') || (r.chain === 'KUBE-EXTERNAL-SERVICES' && noEndpoints && local)) book.add(ns, name, { port: port({ nodePort: dport }) });
  }
  return book.services();
}

type Json = Record<string, unknown>;
const obj = (v: unknown): Json | undefined => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : undefined);

/** kube-proxy's chain names: `service-HASH-ns/svc/proto/port` (port empty when unnamed); truncated names end in "...". */
const CHAIN = /^(service|external)-[A-Z0-9]+-([a-z0-9.-]+)\/([a-z0-9.-]+)\/(tcp|udp|sctp)\/([a-z0-9-]*)$/;

/** One map element: its key parts, its comment, the chain it goes to. */
function element(e: unknown): { key: unknown[]; comment?: string; target?: string } | undefined {
  if (!Array.isArray(e) || e.length !== 2) return undefined;
  let k = obj(e[0]);
  let comment: string | undefined;
  const wrapped = obj(k?.elem);
  if (wrapped) {
    comment = typeof wrapped.comment === 'string' ? wrapped.comment : undefined;
    k = obj(wrapped.val);
  }
  const key = Array.isArray(k?.concat) ? (k!.concat as unknown[]) : undefined;
  if (!key) return undefined;
  const v = obj(e[1]);
  const target = (obj(v?.goto) ?? obj(v?.jump))?.target;
  return { key, comment, target: typeof target === 'string' ? target : undefined };
}

/** Services from `nft -j list ruleset` (the document or its `nftables` array): kube-proxy's nftables mode. */
export function servicesFromNft(doc: unknown): ServiceFact[] {
  const items = Array.isArray(doc) ? doc : Array.isArray(obj(doc)?.nftables) ? (obj(doc)!.nftables as unknown[]) : [];
  const book = new ServiceBook();
  const clusterIps = new Set<string>();
  const maps = new Map<string, unknown[]>();
  for (const it of items) {
    const set = obj(obj(it)?.set) ?? obj(obj(it)?.map);
    if (!set || set.table !== 'kube-proxy' || (set.family !== 'ip' && set.family !== 'ip6')) continue;
    const elems = Array.isArray(set.elem) ? set.elem : [];
    if (set.name === 'cluster-ips') for (const a of elems) if (typeof a === 'string') clusterIps.add(canonicalIp(a));
    maps.set(`${set.family}/${set.name}`, [...(maps.get(`${set.family}/${set.name}`) ?? []), ...elems]);
  }
  const elementsOf = (name: string) => ['ip', 'ip6'].flatMap((f) => maps.get(`${f}/${name}`) ?? []).map(element).filter((e) => e !== undefined);
  const lbIps = new Set(elementsOf('firewall-ips').map((e) => canonicalIp(String(e.key[0]))));
  const vip = (addr: string) => (clusterIps.has(addr) ? { clusterIP: addr } : lbIps.has(addr) ? { lbIP: addr } : { externalIP: addr });
  const protoOf = (p: unknown) => (typeof p === 'string' ? (p.toUpperCase() as ContainerProtocol) : undefined);
  const named = (portName: string, proto: ContainerProtocol, n: { port?: number; nodePort?: number }): ServicePortFact => ({
    ...(portName ? { name: portName } : {}), protocol: proto, port: n.port ?? 0, ...(n.nodePort ? { nodePort: n.nodePort } : {}),
  });
  for (const [mapName, withAddr] of [['service-ips', true], ['service-nodeports', false]] as const) {
    for (const e of elementsOf(mapName)) {
      const m = e.target ? CHAIN.exec(e.target) : null;
      if (!m) continue;
      const [, , ns, name, , portName] = m;
      const [addr, proto, port] = withAddr ? e.key : [undefined, ...e.key];
      const protocol = protoOf(proto);
      if (!protocol || typeof port !== 'number') continue;
      if (withAddr) book.add(ns, name, { ...vip(canonicalIp(String(addr))), port: named(portName, protocol, { port }) });
      else book.add(ns, name, { port: named(portName, protocol, { nodePort: port }) });
    }
  }
  // Services without endpoints have no chain: only the element comment names them.
  for (const [mapName, withAddr] of [['no-endpoint-services', true], ['no-endpoint-nodeports', false]] as const) {
    for (const e of elementsOf(mapName)) {
      const m = e.comment ? NAME.exec(e.comment) : null;
      if (!m) continue;
      const [, ns, name, portName = ''] = m;
      const [addr, proto, port] = withAddr ? e.key : [undefined, ...e.key];
      const protocol = protoOf(proto);
      if (!protocol || typeof port !== 'number') continue;
      if (withAddr) book.add(ns, name, { ...vip(canonicalIp(String(addr))), port: named(portName, protocol, { port }) });
      else book.add(ns, name, { port: named(portName, protocol, { nodePort: port }) });
    }
  }
  return book.services();
}

/** Services from rules already read (a snapshot's), else from this namespace's iptables-save, ip6tables-save and nft. */
export async function kubeProxySource(opts: { iptablesSave?: string[]; nftJson?: unknown[]; timeoutMs?: number } = {}): Promise<SourceResult> {
  const t = opts.timeoutMs ?? 3000;
  let saves = opts.iptablesSave;
  let nfts = opts.nftJson;
  const missing: string[] = [];
  if (!saves) {
    const rs = await Promise.all([runCommand(['iptables-save'], t), runCommand(['ip6tables-save'], t)]);
    saves = rs.filter((r) => r.ok).map((r) => r.stdout);
    missing.push(...rs.filter((r) => !r.ok).map((r) => r.reason!));
  }
  if (!nfts) {
    const r = await runCommand(['nft', '-j', 'list', 'ruleset'], t);
    nfts = [];
    if (!r.ok) missing.push(r.reason!);
    else {
      try {
        nfts.push(JSON.parse(r.stdout));
      } catch (e) {
        missing.push(`nft -j: ${errorText(e)}`);
      }
    }
  }
  const services: ServiceFact[] = [];
  const problems = [...missing];
  for (const s of saves) {
    try {
      services.push(...servicesFromIptables(s));
    } catch (e) {
      problems.push(errorText(e));
    }
  }
  const fromIpt = services.length;
  for (const d of nfts) services.push(...servicesFromNft(d));
  if (services.length === 0 && problems.length > 0) return { report: { source: SOURCE, status: 'error', detail: problems.join('; ') } };
  if (services.length === 0) return { report: { source: SOURCE, status: 'absent', detail: 'no kube-proxy rules (no KUBE-SERVICES comments, no kube-proxy nftables table)' } };
  const detail = `${fromIpt} from iptables comments, ${services.length - fromIpt} from nftables table kube-proxy${problems.length ? `; ${problems.join('; ')}` : ''}`;
  // IPv4 and IPv6 rules each give half of a dual-stack Service.
  return found(SOURCE, detail, { services: mergeK8sFacts([{ ...emptyFacts(), services }]).services });
}

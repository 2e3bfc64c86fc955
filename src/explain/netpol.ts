// The NetworkPolicy behind a netfilter drop, named from the policy
// controller's own rules: kube-router (per-pod KUBE-POD-FW-* chains that run
// per-policy KUBE-NWPLCY-* chains, then REJECT what no policy marked) and
// Calico (per-endpoint cali-tw-/cali-fw-* chains that run cali-pi-/cali-po-*
// policy chains, then drop "if no policies passed packet"). The names come
// from the rules' comments, which both controllers write for people; nothing
// is guessed: a comment that does not parse names nothing.
import { hostPort } from '../model/ip.js';
import type { K8sRef } from '../model/k8s.js';
import { refText } from '../model/k8s.js';
import type { Hook, NetfilterEvaluator, NetfilterFinding, NetfilterPacket, RuleStep, RuleView } from '../model/netfilter.js';

export interface PolicyFinding {
  /** every policy that isolates the pod in this direction, then the pod when the rules name it */
  refs: K8sRef[];
  evidence: string[];
  fix: string;
}

type Direction = 'ingress' | 'egress';

interface Isolation {
  controller: string;
  direction: Direction;
  pod?: K8sRef;
  /** what to call the endpoint when the rules do not name its pod */
  endpoint: string;
  policies: { ref: K8sRef; chain: string }[];
  /** the mark a policy's rule sets to allow */
  allowMark: string;
}

const PROTO: Record<number, string> = { 6: 'tcp', 17: 'udp', 1: 'icmp', 132: 'sctp' };

const comments = (c: string | undefined): string[] => (c === undefined ? [] : c.split('; '));

/** The step that led into `chain` (the last jump to it). */
const entry = (steps: RuleStep[], chain: string) => [...steps].reverse().find((s) => s.jump === chain);

// kube-router up to v2.10 writes sentences; v2.11 writes "<namespace>/<name> <kind>".
const KR_POD = [/POD name:(\S+) namespace: (\S+)/, /^([^/\s]+)\/(\S+) (?:reject|log-drop|in|out)$/];

function kubeRouterPod(...texts: (string | undefined)[]): K8sRef | undefined {
  for (const c of texts.flatMap(comments)) {
    const old = KR_POD[0].exec(c);
    if (old) return { kind: 'pod', namespace: old[2], name: old[1] };
    const v211 = KR_POD[1].exec(c);
    if (v211) return { kind: 'pod', namespace: v211[1], name: v211[2] };
  }
  return undefined;
}

function kubeRouterPolicy(comment: string | undefined, podNs: string | undefined): K8sRef | undefined {
  for (const c of comments(comment)) {
    const old = /^run through nw policy (\S+)$/.exec(c);
    // A NetworkPolicy selects pods of its own namespace only.
    if (old && podNs) return { kind: 'networkpolicy', namespace: podNs, name: old[1] };
    const v211 = /^([^/\s]+)\/(\S+) policy$/.exec(c);
    if (v211) return { kind: 'networkpolicy', namespace: v211[1], name: v211[2] };
  }
  return undefined;
}

/** Which way the jump into a pod's chain took the packet: to the pod (ingress) or from it (egress). */
function kubeRouterDirection(into: RuleStep | undefined): Direction {
  const cs = comments(into?.comment);
  if (cs.some((c) => /destined to POD|^[^/\s]+\/\S+ in$/.test(c))) return 'ingress';
  if (cs.some((c) => /from POD|^[^/\s]+\/\S+ out$/.test(c))) return 'egress';
  return /^-A \S+ -d /.test(into?.rule ?? '') ? 'ingress' : 'egress';
}

const KR_SPECIAL = new Set(['KUBE-NWPLCY-DEFAULT', 'KUBE-NWPLCY-COMMON', 'KUBE-NWPLCY-TAIL']);

function kubeRouter(f: NetfilterFinding): Isolation | undefined {
  if (!f.chain.startsWith('KUBE-POD-FW-')) return undefined;
  const into = entry(f.steps, f.chain);
  const deciding = f.steps.find((s) => s.final && s.rule === f.rule);
  const pod = kubeRouterPod(deciding?.comment, into?.comment);
  const direction = kubeRouterDirection(into);
  // The policy chains this pod's chain ran the packet through (a chain run twice counts once).
  const seen = new Set<string>();
  const policies: Isolation['policies'] = [];
  for (const s of f.steps) {
    if (s.chain !== f.chain || !s.jump?.startsWith('KUBE-NWPLCY-') || KR_SPECIAL.has(s.jump) || seen.has(s.jump)) continue;
    seen.add(s.jump);
    const ref = kubeRouterPolicy(s.comment, pod?.namespace);
    if (ref) policies.push({ ref, chain: s.jump });
  }
  if (!policies.length) return undefined;
  return { controller: 'kube-router', direction, pod, endpoint: pod ? refText(pod) : f.chain, policies, allowMark: '0x10000' };
}

/** Calico names a policy in its chain's first rule: "Policy default/knp.default.web ingress" (≤3.2x), "KubernetesNetworkPolicy default/web ingress". */
function calicoPolicy(comment: string | undefined): K8sRef | undefined {
  for (const c of comments(comment)) {
    const m = /^(Policy|NetworkPolicy|KubernetesNetworkPolicy|GlobalNetworkPolicy) (?:([^/\s]+)\/)?(\S+) (?:ingress|egress)$/.exec(c);
    if (!m) continue;
    const name = m[3].replace(/^knp\.default\./, '');
    return m[2] ? { kind: 'networkpolicy', namespace: m[2], name } : { kind: 'networkpolicy', name };
  }
  return undefined;
}

function calico(f: NetfilterFinding, ev: NetfilterEvaluator, hook: Hook, pkt: NetfilterPacket): Isolation | undefined {
  const m = /^cali-(tw|fw)-(.+)$/.exec(f.chain);
  if (!m || !/if no policies passed packet/.test(comments(f.steps.find((s) => s.final && s.rule === f.rule)?.comment).join(' '))) return undefined;
  const direction: Direction = m[1] === 'tw' ? 'ingress' : 'egress';
  const seen = new Set<string>();
  const policies: Isolation['policies'] = [];
  for (const s of f.steps) {
    if (!s.jump || !/^cali-p[io]-/.test(s.jump) || seen.has(s.jump)) continue;
    seen.add(s.jump);
    const ref = calicoPolicy(ev.chainRules('filter', s.jump, hook, pkt)?.[0]?.comment);
    if (ref) policies.push({ ref, chain: s.jump });
  }
  if (!policies.length) return undefined;
  const addr = direction === 'ingress' ? pkt.dst : pkt.src;
  // Calico's rules name the workload's interface, not its pod.
  return { controller: 'Calico', direction, endpoint: `the workload on ${m[2]} (${addr})`, policies, allowMark: '0x10000' };
}

function flowText(p: NetfilterPacket): string {
  return `${hostPort(p.src, p.sport)} → ${hostPort(p.dst, p.dport)}/${PROTO[p.proto] ?? p.proto}`;
}

/** Why one of a policy's allow rules does not take the packet, in words. */
function missText(v: RuleView, p: NetfilterPacket): string {
  if (v.uncertain) return `not certain: ${v.uncertain}`;
  if (!v.miss) return `${v.rule} would match`;
  const s = v.miss.set;
  if (s) {
    const dir = s.dirs[0] === 'dst' ? 'destination' : 'source';
    const addr = s.dirs[0] === 'dst' ? p.dst : p.src;
    return s.negated ? `${dir} ${addr} is in ipset ${s.name}` : `${dir} ${addr} not in ipset ${s.name}`;
  }
  return `${v.miss.text} does not match`;
}

/** The allow rules of a policy chain: those that set the allow mark. */
const allowRules = (rules: RuleView[], mark: string) => rules.filter((r) => r.target === 'MARK' && new RegExp(`--set-x?mark ${mark}/`).test(r.rule));

/** The NetworkPolicies (and the pod) behind a drop decided in a policy controller's chain; undefined when the drop is not one. */
export function namePolicy(f: NetfilterFinding, ev: NetfilterEvaluator, hook: Hook, pkt: NetfilterPacket): PolicyFinding | undefined {
  const iso = kubeRouter(f) ?? calico(f, ev, hook, pkt);
  if (!iso) return undefined;
  const evidence: string[] = [];
  const flow = flowText(pkt);
  const peer = iso.direction === 'ingress' ? pkt.src : pkt.dst;
  let allowsNothing = true;
  for (const { ref, chain } of iso.policies) {
    const by = `${refText(ref).replace(/^networkpolicy /, 'NetworkPolicy ')} (${iso.controller} chain ${chain})`;
    evidence.push(`${iso.endpoint} is isolated for ${iso.direction} by ${by}`);
    const rules = allowRules(ev.chainRules('filter', chain, hook, pkt) ?? [], iso.allowMark);
    if (!rules.length) {
      evidence.push(`${by.split(' (')[0]} has no ${iso.direction} rule: it allows no ${iso.direction} at all`);
      continue;
    }
    allowsNothing = false;
    const why = [...new Set(rules.map((r) => missText(r, pkt)))];
    evidence.push(`no rule of ${by.split(' (')[0]} allows ${flow} (${why.join('; ')})`);
  }
  evidence.push(`so ${f.chain} ${f.verdict === 'REJECT' ? 'REJECTs' : 'DROPs'} it: no policy set the ${iso.allowMark} mark that lets a packet through`);
  const names = iso.policies.map((p) => `NetworkPolicy ${refText(p.ref).replace(/^networkpolicy /, '')}`).join(', ');
  const from = iso.direction === 'ingress' ? 'ingress `from`' : 'egress `to`';
  const fix = allowsNothing
    ? `${names} allow${iso.policies.length === 1 ? 's' : ''} no ${iso.direction}: if ${peer} should reach ${iso.endpoint}, add a NetworkPolicy that selects the pod with an ${from} that selects ${peer} (policies add up, and any one that allows the flow lets it through), or drop the isolation if it is not wanted`
    : `allow ${peer} in ${names} (an ${from} that selects it${pkt.dport !== undefined ? `, for port ${pkt.dport}/${PROTO[pkt.proto] ?? pkt.proto}` : ''}), or in another NetworkPolicy that selects ${iso.endpoint}: policies add up, and any one that allows the flow lets it through`;
  return { refs: [...iso.policies.map((p) => p.ref), ...(iso.pod ? [iso.pod] : [])], evidence, fix };
}

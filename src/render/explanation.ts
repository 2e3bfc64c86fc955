// An explanation as people read it: the flow documents of explain/document.ts
// in text (the JSON form is the document itself).
import type { ExplainDoc, FlowDoc, Hop } from '../explain/document.js';
import { type K8sRef, refText } from '../model/k8s.js';
import { hostPort } from '../model/ip.js';

/** `pod default/web-7c9f (10.244.2.2:80)` when a name is known, else the address. */
function named(addr: string, port: number | undefined, k8s: K8sRef | undefined): string {
  return k8s ? `${refText(k8s)} (${hostPort(addr, port)})` : hostPort(addr, port);
}

/** A namespace as people know it: `pod default/web-7c9f` for a pod's, else its name. */
function netnsText(netns: string, k8s: K8sRef | undefined): string {
  return k8s ? refText(k8s) : netns;
}

/** "nw-client/eth0 tx → nw-node1/eth0 rx → ..." with repeats folded. */
export function pathText(hops: Hop[], max = 12): string {
  const parts: string[] = [];
  for (const h of hops) {
    const s = `${netnsText(h.netns, h.k8s)}/${h.dev} ${h.what}`;
    if (parts.at(-1) !== s) parts.push(s);
  }
  return parts.length > max ? [...parts.slice(0, max), `… (${parts.length - max} more)`].join(' → ') : parts.join(' → ');
}

export function flowText(f: FlowDoc, n: number): string {
  const v = f.verdict;
  const o = f.orig;
  const L = [`flow ${n}: ${f.proto} ${named(o.src, o.sport, o.k8s?.src)} > ${named(o.dst, o.dport, o.k8s?.dst)}`];
  for (const x of f.nat) {
    const [addr, port] = Object.values(x.to) as [string, number];
    L.push(`  nat       ${x.kind} to ${named(addr, port, x.k8s)} in ${x.netns}, by ${x.by.type === 'iptables-rule' ? `${addr.includes(':') ? 'ip6tables' : 'iptables'} rule: ${x.by.ref}` : `${x.by.type}: ${x.by.ref}`}`);
  }
  L.push(`  path      ${pathText(f.hops)}${f.hopsOmitted ? ` (${f.hopsOmitted} hops not kept)` : ''}`);
  const where = v.where ? ` in ${v.where.k8s ? `${refText(v.where.k8s)} (netns ${v.where.netns})` : v.where.netns} on ${v.where.dev} at ${v.where.function} (${v.where.reason})` : '';
  L.push(`  verdict   ${v.outcome.toUpperCase()}${where}`);
  if (v.outcome !== 'delivered') {
    const c = v.cause;
    L.push(`  cause     ${c.type} ${c.ref}${c.value !== undefined ? ` = ${c.value}` : ''}${c.netns ? ` (netns ${c.netns})` : ''}${c.ipset ? `, ipset ${c.ipset.name} member ${c.ipset.member}` : ''}`);
    if (c.k8s?.length) L.push(`  k8s       ${c.k8s.map(refText).join(', ')}`);
  }
  L.push('  evidence');
  for (const e of v.evidence) L.push(`    - ${e}`);
  if (v.fix) L.push(`  fix       ${v.fix}`);
  return L.join('\n');
}

export function documentText(doc: ExplainDoc): string {
  const head = doc.command ? `netwhy explain: \`${doc.command.join(' ')}\` exited ${doc.exitCode ?? 'by a signal'}; ${doc.flows.length} flow${doc.flows.length === 1 ? '' : 's'}` : `${doc.flows.length} flows`;
  const body = doc.flows.map((f, i) => flowText(f, i + 1)).join('\n\n');
  const lost = doc.lost.ringbuf ? `\n\nwarning: ${doc.lost.ringbuf} events were lost (ring buffer full): verdicts may be incomplete` : '';
  const none = doc.exitCode === 127 ? '(no packets: the command was not found, exit 127)' : '(no packets of this command were seen)';
  return `${head}\n\n${body || none}${lost}`;
}

// Pods from any CRI runtime through crictl, when it is installed: `crictl pods`
// lists the sandboxes, `crictl inspectp` gives each one's name, IPs and network
// namespace (path in the runtime spec, and the sandbox pid on containerd).
import type { PodFact } from '../../model/k8s.js';
import { canonicalIp } from '../../model/k8s-merge.js';
import { runCommand } from '../run.js';
import { type SourceResult, absent, errorText, failed, found, sandboxNetnsInode } from './source.js';

/** Ids of the ready sandboxes in `crictl pods -o json`. */
export function parseCrictlPods(text: string): string[] {
  const v = JSON.parse(text) as { items?: { id?: string; state?: string }[] };
  return (v.items ?? []).filter((p) => typeof p.id === 'string' && p.state === 'SANDBOX_READY').map((p) => p.id!);
}

/** The pod of `crictl inspectp -o json ID` (PodSandboxStatus plus the runtime's verbose info), and its sandbox pid. */
export function parseCrictlInspectp(text: string): { pod: PodFact; pid?: number } | undefined {
  const v = JSON.parse(text) as {
    status?: { metadata?: { name?: string; namespace?: string; uid?: string }; network?: { ip?: string; additionalIps?: { ip?: string }[] } };
    info?: { pid?: number; runtimeSpec?: { linux?: { namespaces?: { type?: string; path?: string }[] } } };
  };
  const md = v.status?.metadata;
  if (!md?.name || !md.namespace) return undefined;
  const net = v.status?.network;
  const ips = [net?.ip, ...(net?.additionalIps ?? []).map((a) => a.ip)].filter((ip): ip is string => !!ip).map(canonicalIp);
  const pod: PodFact = { namespace: md.namespace, name: md.name, ips, source: 'crictl' };
  if (md.uid) pod.uid = md.uid;
  const path = v.info?.runtimeSpec?.linux?.namespaces?.find((n) => n.type === 'network')?.path;
  if (path) pod.netnsPath = path;
  const pid = typeof v.info?.pid === 'number' && v.info.pid > 0 ? v.info.pid : undefined;
  return { pod, pid };
}

export async function crictlSource(opts: { endpoint?: string; timeoutMs?: number } = {}): Promise<SourceResult> {
  const t = opts.timeoutMs ?? 3000;
  const crictl = (...args: string[]) => runCommand(['crictl', ...(opts.endpoint ? ['--runtime-endpoint', `unix://${opts.endpoint}`] : []), '--timeout', `${Math.ceil(t / 1000)}s`, ...args], t);
  const ls = await crictl('pods', '-o', 'json');
  if (!ls.ok) return (ls.reason ?? '').endsWith('not installed') ? absent('crictl', 'crictl: not installed') : failed('crictl', ls.reason ?? 'crictl failed');
  let ids: string[];
  try {
    ids = parseCrictlPods(ls.stdout);
  } catch (e) {
    return failed('crictl', `crictl pods -o json: ${errorText(e)}`);
  }
  const pods: PodFact[] = [];
  for (const r of await Promise.all(ids.map((id) => crictl('inspectp', '-o', 'json', id)))) {
    let got: ReturnType<typeof parseCrictlInspectp>;
    try {
      got = r.ok ? parseCrictlInspectp(r.stdout) : undefined;
    } catch {
      got = undefined;
    }
    if (!got) continue;
    const ino = await sandboxNetnsInode(got.pid, got.pod.netnsPath);
    if (ino !== undefined) got.pod.netnsInode = ino;
    pods.push(got.pod);
  }
  return found('crictl', `${ids.length} ready sandboxes`, { pods });
}

// Pods from containerd, through its own CLI: the CRI plugin keeps one sandbox
// container per pod in namespace k8s.io, labelled with the pod's name,
// namespace and uid; its task's pid gives the pod's network namespace inode.
import { existsSync } from 'node:fs';
import type { PodFact } from '../../model/k8s.js';
import { runCommand } from '../run.js';
import { type SourceResult, absent, failed, found, sandboxNetnsInode } from './source.js';

export const DEFAULT_CONTAINERD_SOCK = '/run/containerd/containerd.sock';
const SANDBOX_FILTER = 'labels."io.cri-containerd.kind"==sandbox';

/** The pod of one `ctr containers info` document, when the container is a pod sandbox. */
export function parseCtrContainerInfo(text: string): (PodFact & { containerId: string }) | undefined {
  let v: { ID?: unknown; Labels?: Record<string, string>; Spec?: { linux?: { namespaces?: { type?: string; path?: string }[] } } };
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  const l = v?.Labels ?? {};
  const namespace = l['io.kubernetes.pod.namespace'];
  const name = l['io.kubernetes.pod.name'];
  // Every container of a pod carries the pod labels: only the sandbox stands for the pod.
  if (typeof v?.ID !== 'string' || !namespace || !name || l['io.cri-containerd.kind'] !== 'sandbox') return undefined;
  const pod: PodFact & { containerId: string } = { containerId: v.ID, namespace, name, ips: [], source: 'containerd' };
  if (l['io.kubernetes.pod.uid']) pod.uid = l['io.kubernetes.pod.uid'];
  const net = v.Spec?.linux?.namespaces?.find((n) => n.type === 'network')?.path;
  if (net) pod.netnsPath = net;
  return pod;
}

/** `ctr tasks ls`: task id → pid of the running ones. */
export function parseCtrTasks(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n').slice(1)) {
    const [id, pid, status] = line.trim().split(/\s+/);
    if (id && /^\d+$/.test(pid ?? '') && Number(pid) > 0 && status === 'RUNNING') out.set(id, Number(pid));
  }
  return out;
}

export async function containerdSource(opts: { socket?: string; timeoutMs?: number } = {}): Promise<SourceResult> {
  const socket = opts.socket || process.env.NETWHY_CONTAINERD_SOCK || DEFAULT_CONTAINERD_SOCK;
  const t = opts.timeoutMs ?? 3000;
  if (!existsSync(socket)) return absent('containerd', `no socket at ${socket}`);
  const ctr = (...args: string[]) => runCommand(['ctr', '--address', socket, '--namespace', 'k8s.io', ...args], t);
  const [ls, tasks] = await Promise.all([ctr('containers', 'ls', '-q', SANDBOX_FILTER), ctr('tasks', 'ls')]);
  if (!ls.ok) return (ls.reason ?? '').endsWith('not installed') ? absent('containerd', `${socket} exists, but ${ls.reason}`) : failed('containerd', ls.reason ?? 'ctr failed');
  const pids = tasks.ok ? parseCtrTasks(tasks.stdout) : new Map<string, number>();
  const ids = ls.stdout.split('\n').map((s) => s.trim()).filter(Boolean);
  const infos = await Promise.all(ids.map((id) => ctr('containers', 'info', id)));
  const pods: PodFact[] = [];
  for (const info of infos) {
    const p = info.ok ? parseCtrContainerInfo(info.stdout) : undefined;
    if (!p) continue;
    const { containerId, ...pod } = p;
    const pid = pids.get(containerId);
    const ino = await sandboxNetnsInode(pid, pod.netnsPath);
    if (ino !== undefined) pod.netnsInode = ino;
    pods.push(pod);
  }
  const note = tasks.ok ? '' : `; tasks: ${tasks.reason}`;
  return found('containerd', `${socket}, namespace k8s.io: ${pods.length} pod sandboxes${note}`, { pods });
}

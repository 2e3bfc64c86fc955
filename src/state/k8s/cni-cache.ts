// Pods from the CNI result cache libcni keeps (/var/lib/cni/results, one file
// per attachment: "cniCacheV1" JSON with the pod's K8S_POD_* args, the netns
// path and the plugin's result). Entries outlive deleted pods: the merge lets
// the API and the runtime win, and a netns path that is gone gives no inode.
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { type PodFact, emptyFacts } from '../../model/k8s.js';
import { canonicalIp, mergeK8sFacts } from '../../model/k8s-merge.js';
import { type SourceResult, absent, errorText, failed, found, netnsInode } from './source.js';

export const DEFAULT_CNI_CACHE = '/var/lib/cni/results';

function isLoopback(ip: string): boolean {
  return ip.startsWith('127.') || ip === '::1';
}

/** One cache file's pod, IPs and netns path; undefined for a file that is not a pod's attachment. */
export function parseCniCacheEntry(text: string): PodFact | undefined {
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (v?.kind !== 'cniCacheV1') return undefined;
  const args = new Map<string, string>();
  if (Array.isArray(v.cniArgs)) for (const a of v.cniArgs) if (Array.isArray(a) && typeof a[0] === 'string') args.set(a[0], String(a[1]));
  const namespace = args.get('K8S_POD_NAMESPACE');
  const name = args.get('K8S_POD_NAME');
  if (!namespace || !name) return undefined;
  // containerd caches the pod's loopback attachment too (network cni-loopback, ifName lo): it names no address.
  if (v.ifName === 'lo') return undefined;
  const result = v.result as { ips?: { address?: unknown }[] } | undefined;
  const ips = (Array.isArray(result?.ips) ? result.ips : [])
    .flatMap((i) => (typeof i?.address === 'string' ? [canonicalIp(i.address)] : []))
    .filter((ip) => !isLoopback(ip));
  const pod: PodFact = { namespace, name, ips, source: 'cni-cache' };
  const uid = args.get('K8S_POD_UID');
  if (uid) pod.uid = uid;
  if (typeof v.netns === 'string' && v.netns) pod.netnsPath = v.netns;
  return pod;
}

export async function cniCacheSource(dir = process.env.NETWHY_CNI_CACHE || DEFAULT_CNI_CACHE): Promise<SourceResult> {
  let files: string[];
  try {
    files = await readdir(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return absent('cni-cache', `${dir}: no such directory`);
    return failed('cni-cache', `${dir}: ${errorText(e)}`);
  }
  const pods: PodFact[] = [];
  await Promise.all(
    files.map(async (f) => {
      const pod = parseCniCacheEntry(await readFile(join(dir, f), 'utf8').catch(() => ''));
      if (!pod) return;
      if (pod.netnsPath) {
        const ino = await netnsInode(pod.netnsPath);
        if (ino !== undefined) pod.netnsInode = ino;
      }
      pods.push(pod);
    }),
  );
  const live = pods.filter((p) => p.netnsInode !== undefined).length;
  // One pod may have several attachments (networks, interfaces): the merge makes one fact of them.
  const merged = mergeK8sFacts([{ ...emptyFacts(), pods }]).pods;
  return found('cni-cache', `${dir}: ${files.length} files, ${pods.length} pod attachments (${live} with a live netns)`, { pods: merged });
}

// What every name source returns, and the small IO they share. A source never
// throws: what it could not read is its report's `absent` or `error`.
import { stat } from 'node:fs/promises';
import { type K8sFacts, type NameSource, type NameSourceReport, emptyFacts } from '../../model/k8s.js';

/** The facts one source found (no `sources`: its one report says how it went). */
export type SourceResult = Partial<Omit<K8sFacts, 'sources'>> & { report: NameSourceReport };

export function toFacts(r: SourceResult): K8sFacts {
  return { ...emptyFacts(), ...r, sources: [r.report] };
}

export function absent(source: NameSource, detail: string): SourceResult {
  return { report: { source, status: 'absent', detail } };
}

export function failed(source: NameSource, detail: string): SourceResult {
  return { report: { source, status: 'error', detail } };
}

/** An ok report with its counts. */
export function found(source: NameSource, detail: string, facts: Omit<SourceResult, 'report'>): SourceResult {
  const counts = { ...(facts.pods ? { pods: facts.pods.length } : {}), ...(facts.services ? { services: facts.services.length } : {}) };
  return { ...facts, report: { source, status: 'ok', detail, ...counts } };
}

/** The inode of a network namespace file (/proc/PID/ns/net, /var/run/netns/cni-…); undefined when it is gone. */
export async function netnsInode(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).ino;
  } catch {
    return undefined;
  }
}

/** A sandbox's netns inode: through its live pid when the runtime gives one, else through the netns path. */
export async function sandboxNetnsInode(pid?: number, path?: string): Promise<number | undefined> {
  if (pid !== undefined) return netnsInode(`/proc/${pid}/ns/net`);
  return path ? netnsInode(path) : undefined;
}

export const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e)).split('\n')[0];

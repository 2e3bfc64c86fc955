// Names from the API server, when a kubeconfig or a service account gives us
// one: pods, Services, EndpointSlices, nodes and NetworkPolicies, listed once,
// all within one short deadline. Never required: no config is `absent`, an
// unreachable server or a refusal is `error`.
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { type ApiLists, factsFromApi } from './api-convert.js';
import { type SourceResult, absent, errorText, failed, found } from './source.js';

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface KubeconfigChoice {
  /** the file to load; absent with inCluster or when nothing was found */
  path?: string;
  inCluster?: boolean;
  /** an explicit --kubeconfig that does not exist */
  missing?: string;
  /** every place looked at, in order, for the report */
  looked: string[];
}

/** --kubeconfig, then $KUBECONFIG (its first existing file), then ~/.kube/config, then the pod's service account. */
export function findKubeconfig(o: { kubeconfig?: string; env: NodeJS.ProcessEnv; home: string; exists: (p: string) => boolean }): KubeconfigChoice {
  const looked: string[] = [];
  if (o.kubeconfig) return o.exists(o.kubeconfig) ? { path: o.kubeconfig, looked: [`--kubeconfig ${o.kubeconfig}`] } : { missing: o.kubeconfig, looked: [`--kubeconfig ${o.kubeconfig}: no such file`] };
  const fromEnv = (o.env.KUBECONFIG ?? '').split(':').filter(Boolean);
  const hit = fromEnv.find(o.exists);
  if (hit) return { path: hit, looked: [`$KUBECONFIG ${hit}`] };
  looked.push(fromEnv.length ? `$KUBECONFIG ${fromEnv.join(':')}: no such file` : '$KUBECONFIG unset');
  const home = join(o.home, '.kube/config');
  if (o.exists(home)) return { path: home, looked: [...looked, home] };
  looked.push(`${home} missing`);
  if (o.env.KUBERNETES_SERVICE_HOST && o.exists(`${SA_DIR}/token`)) return { inCluster: true, looked: [...looked, `in-cluster service account (${o.env.KUBERNETES_SERVICE_HOST})`] };
  looked.push('not in a pod (no KUBERNETES_SERVICE_HOST or service account token)');
  return { looked };
}

/** One line of what went wrong: the HTTP status and the API's own message, or the connection error. */
function apiError(e: unknown): string {
  const ex = e as { code?: unknown; body?: unknown; name?: string };
  if (typeof ex?.code === 'number') {
    let msg = '';
    try {
      msg = JSON.parse(String(ex.body)).message ?? '';
    } catch {
      msg = typeof ex.body === 'object' && ex.body ? String((ex.body as { message?: unknown }).message ?? '') : '';
    }
    return `HTTP ${ex.code}${msg ? `: ${msg}` : ''}`;
  }
  return errorText(e);
}

/** The client returns model objects: back to the API's JSON (its one rename that matters here is NetworkPolicy `from`). */
function wire(v: unknown): any {
  return JSON.parse(JSON.stringify(v ?? {}), (_k, x) => {
    if (x && typeof x === 'object' && '_from' in x) {
      x.from = x._from;
      delete x._from;
    }
    return x;
  });
}

export async function apiSource(opts: { kubeconfig?: string; timeoutMs?: number } = {}): Promise<SourceResult> {
  const t = opts.timeoutMs ?? 3000;
  const choice = findKubeconfig({ kubeconfig: opts.kubeconfig, env: process.env, home: homedir(), exists: existsSync });
  if (choice.missing) return failed('api', `--kubeconfig ${choice.missing}: no such file`);
  if (!choice.path && !choice.inCluster) return absent('api', `no kubeconfig: ${choice.looked.join(', ')}`);
  const where = choice.path ?? 'in-cluster service account';
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), t);
  try {
    // Loaded only when there is a server to ask: the client takes ~0.5 s to import.
    const k8s = await import('@kubernetes/client-node');
    const kc = new k8s.KubeConfig();
    if (choice.path) kc.loadFromFile(choice.path);
    else kc.loadFromCluster();
    const server = kc.getCurrentCluster()?.server ?? '?';
    const core = kc.makeApiClient(k8s.CoreV1Api);
    // The object-parameter API takes the client's Observable-based middleware.
    const settle = <T>(v: T) => new k8s.Observable(Promise.resolve(v));
    const signal = {
      middleware: [{ pre: (c: { setSignal(s: AbortSignal): void }) => (c.setSignal(abort.signal), settle(c)), post: settle }],
      middlewareMergeStrategy: 'append',
    } as unknown as Parameters<typeof core.listNode>[1];
    const calls: [keyof ApiLists, () => Promise<unknown>][] = [
      ['pods', () => core.listPodForAllNamespaces({}, signal)],
      ['services', () => core.listServiceForAllNamespaces({}, signal)],
      ['nodes', () => core.listNode({}, signal)],
      ['endpointSlices', () => kc.makeApiClient(k8s.DiscoveryV1Api).listEndpointSliceForAllNamespaces({}, signal)],
      ['policies', () => kc.makeApiClient(k8s.NetworkingV1Api).listNetworkPolicyForAllNamespaces({}, signal)],
    ];
    const settled = await Promise.allSettled(calls.map(([, call]) => call()));
    const lists: ApiLists = {};
    const problems: string[] = [];
    settled.forEach((s, i) => {
      const what = calls[i][0];
      if (s.status === 'fulfilled') lists[what] = wire(s.value);
      else problems.push(`${what}: ${abort.signal.aborted ? `no answer within ${t} ms` : apiError(s.reason)}`);
    });
    if (!lists.pods && !lists.services) return failed('api', `${server} (${where}): ${[...new Set(problems.map((p) => p.replace(/^\w+: /, '')))].join('; ')}`);
    const facts = factsFromApi(lists);
    const detail = `${server} (${where}): ${facts.nodes.length} nodes, ${facts.endpointSlices.length} EndpointSlices, ${facts.policies.length} NetworkPolicies${problems.length ? `; ${problems.join('; ')}` : ''}`;
    return found('api', detail, facts);
  } catch (e) {
    return failed('api', `${where}: ${apiError(e)}`);
  } finally {
    clearTimeout(timer);
  }
}

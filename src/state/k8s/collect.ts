// Every name source at once, merged into one K8sFacts with each source's
// report. No source can stop or stall a trace: each has a deadline, and any
// exception becomes that source's error report.
import type { K8sFacts, NameSource } from '../../model/k8s.js';
import { mergeK8sFacts } from '../../model/k8s-merge.js';
import { apiSource } from './api.js';
import { cniCacheSource } from './cni-cache.js';
import { containerdSource } from './containerd.js';
import { crictlSource } from './crictl.js';
import { kubeProxySource } from './kube-proxy.js';
import { type SourceResult, errorText, failed, toFacts } from './source.js';

export interface CollectOptions {
  /** --kubeconfig; else $KUBECONFIG, ~/.kube/config, the service account */
  kubeconfig?: string;
  /** containerd's socket (also crictl's endpoint when given); else $NETWHY_CONTAINERD_SOCK, /run/containerd/containerd.sock */
  containerdSocket?: string;
  /** else $NETWHY_CNI_CACHE, /var/lib/cni/results */
  cniCacheDir?: string;
  /** `iptables-save` texts already read (a snapshot's); else iptables-save and ip6tables-save run here */
  iptablesSave?: string[];
  /** `nft -j list ruleset` documents already read; else nft runs here */
  nftJson?: unknown[];
  /** ask the API server (default true); false for offline runs */
  api?: boolean;
  /** per-source deadline, ms (default 3000) */
  timeoutMs?: number;
}

/** A source that answers within its deadline, or an error report saying it did not. */
async function bounded(source: NameSource, ms: number, run: () => Promise<SourceResult>): Promise<SourceResult> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<SourceResult>((r) => {
    timer = setTimeout(() => r(failed(source, `no answer within ${ms} ms`)), ms);
    timer.unref();
  });
  try {
    return await Promise.race([run().catch((e) => failed(source, errorText(e))), late]);
  } finally {
    clearTimeout(timer);
  }
}

export async function collectK8sFacts(opts: CollectOptions = {}): Promise<K8sFacts> {
  const t = opts.timeoutMs ?? 3000;
  // The sources' own timeouts come first; this margin only catches one that forgot its own.
  const cap = t + 1000;
  const results = await Promise.all([
    bounded('containerd', cap, () => containerdSource({ socket: opts.containerdSocket, timeoutMs: t })),
    bounded('crictl', cap, () => crictlSource({ endpoint: opts.containerdSocket, timeoutMs: t })),
    bounded('cni-cache', cap, () => cniCacheSource(opts.cniCacheDir)),
    bounded('kube-proxy-rules', cap, () => kubeProxySource({ iptablesSave: opts.iptablesSave, nftJson: opts.nftJson, timeoutMs: t })),
    opts.api === false
      ? Promise.resolve<SourceResult>({ report: { source: 'api', status: 'absent', detail: 'not asked (offline)' } })
      : bounded('api', cap, () => apiSource({ kubeconfig: opts.kubeconfig, timeoutMs: t })),
  ]);
  return mergeK8sFacts(results.map(toFacts));
}

// Kubernetes names for a command's output: the options every command shares,
// and the one call that asks the name sources (src/state/k8s) what they know.
import type { Command } from 'commander';
import type { K8sFacts } from '../model/k8s.js';
import type { Snapshot } from '../state/snapshot.js';

export interface NameOptions {
  /** false with --no-names */
  names?: boolean;
  kubeconfig?: string;
  containerdSocket?: string;
  cniCache?: string;
}

/** --kubeconfig, --containerd-socket, --cni-cache, --no-names on a command. */
export function addNameOptions(cmd: Command): Command {
  return cmd
    .option('--kubeconfig <file>', 'ask this cluster\'s API server for pod, Service and node names (default: $KUBECONFIG, ~/.kube/config, or the in-cluster service account; never required)')
    .option('--containerd-socket <path>', 'the containerd socket whose k8s.io containers name pods (default: $NETWHY_CONTAINERD_SOCK or /run/containerd/containerd.sock)')
    .option('--cni-cache <dir>', 'the CNI result cache that names pods by address and netns (default: $NETWHY_CNI_CACHE or /var/lib/cni/results)')
    .option('--no-names', 'do not look up Kubernetes names');
}

/**
 * What the name sources know, with kube-proxy's rules read from the state
 * snapshots already taken; undefined with --no-names. Never throws: a source
 * that is missing or fails is a report in the facts (netwhy doctor shows them).
 */
export async function gatherNames(opts: NameOptions, snapshots: Snapshot[] = []): Promise<K8sFacts | undefined> {
  if (opts.names === false) return undefined;
  // kube-proxy writes its IPv6 Services' rules with ip6tables: their comments name them too.
  const saves = snapshots.flatMap((s) => [s.iptablesSave, s.ip6tablesSave].filter((x): x is string => !!x));
  const nft = snapshots.flatMap((s) => (s.nftJson ? [s.nftJson] : []));
  // No snapshot with rules: kube-proxy's source reads this namespace's own.
  const rules = saves.length || nft.length ? { iptablesSave: saves, nftJson: nft } : {};
  // Loaded here, not at start-up: the sources and their parsers are only needed when names are.
  const { collectK8sFacts } = await import('../state/k8s/collect.js');
  return collectK8sFacts({ kubeconfig: opts.kubeconfig, containerdSocket: opts.containerdSocket, cniCacheDir: opts.cniCache, ...rules });
}

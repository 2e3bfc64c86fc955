// Which netfilter front-ends are live in a namespace, and which kube-proxy
// mode its rules show: read from a snapshot, so each rule is evaluated by one
// front-end only (an iptables-nft table is an nft table: netwhy evaluates it
// by its iptables-save form). Pure over the snapshot.
import { parseNftRuleset } from './nft-json.js';
import type { Snapshot } from '../snapshot.js';

export interface NetfilterBackends {
  netns: string;
  /** iptables rules in the kernel's legacy xtables (iptables-legacy) */
  iptablesLegacy: boolean;
  /** iptables rules held as nf_tables tables (iptables-nft) */
  iptablesNft: boolean;
  /** native nftables tables (family and name), not made by iptables-nft */
  nftTables: string[];
  /** the kube-proxy mode its rules show; null when none */
  kubeProxy: 'iptables' | 'ipvs' | 'nftables' | null;
  /** what could not be read */
  unread: string[];
}

/** Rules beyond the empty built-in chains iptables-save prints for every table. */
function hasRules(save: string | null): boolean {
  return !!save && /^(\[\d+:\d+\] )?-A /m.test(save); // iptables-save -c puts [packets:bytes] first
}

export function netfilterBackends(snap: Snapshot): NetfilterBackends {
  const unread: string[] = [];
  const saves = [snap.iptablesSave, snap.ip6tablesSave ?? null];
  const ruled = saves.some(hasRules);
  let nftTables: string[] = [];
  let kubeProxyNft = false;
  if (snap.nftJson) {
    try {
      const rs = parseNftRuleset(snap.nftJson);
      nftTables = rs.tables.filter((t) => !t.iptablesNft).map((t) => `${t.family} ${t.name}`);
      kubeProxyNft = rs.tables.some((t) => t.name === 'kube-proxy' && (t.family === 'ip' || t.family === 'ip6'));
    } catch (e) {
      unread.push(`nft -j list ruleset: ${(e as Error).message}`);
    }
  } else {
    unread.push('nft -j list ruleset');
  }
  if (snap.iptablesSave === null) unread.push('iptables-save');
  const all = saves.filter((s): s is string => !!s).join('\n');
  // kube-proxy's IPVS mode keeps its ipsets and the dummy device holding the Service IPs.
  const ipvsMode = /\bKUBE-CLUSTER-IP\b/.test(`${snap.ipsetSave ?? ''}\n${all}`) || snap.links.some((l) => l.name === 'kube-ipvs0');
  const iptablesMode = /^(\[\d+:\d+\] )?-A KUBE-SERVICES .*-j KUBE-SVC-/m.test(all);
  return {
    netns: snap.netns,
    iptablesLegacy: ruled && snap.iptablesBackend === 'legacy',
    iptablesNft: ruled && snap.iptablesBackend === 'nf_tables',
    nftTables,
    kubeProxy: kubeProxyNft ? 'nftables' : ipvsMode ? 'ipvs' : iptablesMode ? 'iptables' : null,
    unread,
  };
}

/** One line for people: `nw-node1: iptables-nft, nft tables ip kube-proxy; kube-proxy mode nftables`. */
export function backendsText(b: NetfilterBackends): string {
  const fronts = [b.iptablesLegacy && 'iptables-legacy', b.iptablesNft && 'iptables-nft', b.nftTables.length && `nft tables ${b.nftTables.join(', ')}`].filter(Boolean);
  const mode = b.kubeProxy ? `; kube-proxy mode ${b.kubeProxy}` : '; no kube-proxy rules';
  return `${b.netns}: ${fronts.length ? fronts.join(', ') : 'no netfilter rules'}${mode}${b.unread.length ? ` (not read: ${b.unread.join('; ')})` : ''}`;
}

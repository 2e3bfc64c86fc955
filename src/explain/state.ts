// Captured snapshots as the rules see them.
import type { Snapshot } from '../state/snapshot.js';
import type { NetfilterEvaluator, NetnsState } from './types.js';

export function netnsState(s: Snapshot, netfilter?: NetfilterEvaluator): NetnsState {
  return {
    name: s.netns,
    sysctl: (key) => s.sysctl[key],
    addrs: s.addrs.map((a) => ({ dev: a.dev, address: a.address, prefixlen: a.prefixlen, secondary: a.secondary })),
    routes: s.routes.map((r) => ({ table: r.table, dst: r.dst, dev: r.dev, gateway: r.gateway, type: r.type })),
    netfilter,
    errors: s.errors,
  };
}

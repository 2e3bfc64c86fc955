// Captured snapshots as the rules see them.
import type { NetnsNames } from '../kernel/netns.js';
import { netfilterEvaluator } from '../state/netfilter.js';
import { type Snapshot, SnapshotCache } from '../state/snapshot.js';
import { recordPkt } from '../journey.js';
import type { Flow } from './flows.js';
import type { NetfilterEvaluator, NetnsState } from './types.js';

export function netnsState(s: Snapshot, netfilter?: NetfilterEvaluator, insertFailedBefore?: number): NetnsState {
  return {
    insertFailed: { before: insertFailedBefore, after: s.conntrack?.insertFailed },
    name: s.netns,
    sysctl: (key) => s.sysctl[key],
    addrs: s.addrs.map((a) => ({ dev: a.dev, address: a.address, prefixlen: a.prefixlen, secondary: a.secondary })),
    links: s.links.map((l) => ({ name: l.name, kind: l.kind, master: l.master, mtu: l.mtu, up: l.up })),
    routes: s.routes.map((r) => ({ table: r.table, dst: r.dst, family: r.family, dev: r.dev, gateway: r.gateway, type: r.type })),
    neigh: s.neigh?.map((n) => ({ dst: n.dst, dev: n.dev, lladdr: n.lladdr, state: n.state })),
    netfilter,
    conntrack: s.conntrack ? { invalid: s.conntrack.invalid, drop: s.conntrack.drop, earlyDrop: s.conntrack.earlyDrop } : undefined,
    ipvs: s.ipvs ?? null,
    errors: s.errors,
  };
}

/**
 * Namespace state for live verdicts: a namespace is read only when a flow to
 * judge touched it, and at most once per ttlMs (every flow judged meanwhile
 * shares that snapshot), so a storm of drops costs one snapshot, not one each.
 */
export class LiveStates {
  private readonly cache: SnapshotCache;
  private readonly states = new Map<number, NetnsState>();
  /** One view per snapshot: the cache hands the same snapshot out for seconds, parse its ruleset once. */
  private readonly views = new WeakMap<Snapshot, NetnsState>();

  constructor(private readonly names: NetnsNames, ttlMs = 3000) {
    this.cache = new SnapshotCache(ttlMs);
  }

  /** Capture (or reuse) the state of every named namespace the flows touched. */
  async load(flows: Flow[]): Promise<void> {
    const inodes = new Set<number>();
    for (const f of flows) for (const j of f.journeys) for (const r of j.records) inodes.add(recordPkt(r)?.netns ?? 0);
    inodes.delete(0);
    await Promise.all(
      [...inodes].map(async (ino) => {
        const name = this.names.name(ino);
        if (/^\d+$/.test(name)) return;
        try {
          const snap = await this.cache.get(name);
          let view = this.views.get(snap);
          if (!view) this.views.set(snap, (view = netnsState(snap, netfilterEvaluator(snap))));
          this.states.set(ino, view);
        } catch {
          this.states.delete(ino); // gone: rules answer unknown
        }
      }),
    );
  }

  get(inode: number): NetnsState | undefined {
    return this.states.get(inode);
  }
}

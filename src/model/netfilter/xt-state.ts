// The packet and what the walk of iptables' tables has gathered so far: matches read it, targets
// rewrite it (mark, ctmark, NAT, conntrack state), the walker adds the trail and uncertainties.
import { parseIp } from '../ip.js';
import type { Hook, PacketContext } from '../netfilter.js';
import type { IpSet } from './ipset.js';
import type { MatchState } from './xt-match/index.js';
import type { EvalOptions, NatRewrite, TrailEntry, Uncertainty } from './xt-result.js';

export interface State extends MatchState {
  uncertainAs: 'match' | 'nomatch';
  trail: TrailEntry[];
  uncertain: Uncertainty[];
  nat: NatRewrite[];
}

export function initialState(sets: Map<string, IpSet>, hook: Hook, pkt: PacketContext, opts: EvalOptions): State {
  const src = parseIp(pkt.src);
  const dst = parseIp(pkt.dst);
  if (!src || !dst) throw new TypeError(`PacketContext needs IP addresses, got src=${pkt.src} dst=${pkt.dst}`);
  return {
    hook,
    pkt: { ...pkt, ctstate: [...pkt.ctstate], localAddrs: [...pkt.localAddrs] },
    src,
    dst,
    mark: pkt.markUnknown ? null : pkt.mark >>> 0,
    ctmark: pkt.ctmark ?? null,
    sets,
    uncertainAs: opts.uncertainAs ?? 'match',
    trail: [],
    uncertain: [],
    nat: [],
  };
}

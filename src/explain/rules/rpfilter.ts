// rp_filter: the reverse-path check looked the packet's source up as a
// destination and the route back does not leave by the device the packet came
// in on (strict, 1) or there is no route back at all (loose, 2). The value in
// force is max(conf.all.rp_filter, conf.<dev>.rp_filter): 1 = strict, 2 = loose.
import { isReversePathCheck } from '../../model/route.js';
import { confKey } from '../../state/parsers.js';
import type { ExplainRule } from '../types.js';

export function effectiveRpFilter(all: number, dev: number): number {
  return Math.max(all, dev);
}

const MODE = ['off', 'strict', 'loose'];

export const rpFilterRule: ExplainRule = {
  name: 'rp-filter',
  reasons: ['IP_RPFILTER'],
  explain({ drop, journey, state, netnsName }) {
    const st = state(drop.pkt.netns);
    if (!st) return null;
    const ns = netnsName(drop.pkt.netns);
    const iif = drop.pkt.dev;
    const src = drop.pkt.tuple.src;
    const all = Number(st.sysctl('net.ipv4.conf.all.rp_filter') ?? NaN);
    const dev = Number(st.sysctl(confKey(iif, 'rp_filter')) ?? NaN);
    if (Number.isNaN(all) || Number.isNaN(dev)) return null;
    const eff = effectiveRpFilter(all, dev);
    if (eff === 0) return null; // off now: cannot have been this, unless it changed
    const rev = journey.records.find((r) => r.kind === 'fib' && isReversePathCheck(r) && r.dst === src && r.ts <= drop.ts);
    const key = all >= dev ? 'net.ipv4.conf.all.rp_filter' : `net.ipv4.conf.${iif}.rp_filter`;
    const evidence = [`packet ${src} > ${drop.pkt.tuple.dst} arrived on ${iif} in ${ns}`];
    let backDev: string | undefined;
    if (rev && rev.kind === 'fib') {
      if (rev.err === 0) {
        backDev = rev.nhDev;
        evidence.push(`reverse-path lookup of ${src} (table ${rev.table}): the route back leaves by ${rev.nhDev}${rev.gw ? ` via ${rev.gw}` : ''}, not by ${iif}`);
      } else {
        evidence.push(`reverse-path lookup of ${src} (table ${rev.table}) found no route back`);
      }
    } else {
      evidence.push(`no reverse-path lookup was seen for ${src}`);
    }
    evidence.push(`rp_filter in force on ${iif} = max(conf.all.rp_filter=${all}, conf.${iif}.rp_filter=${dev}) = ${eff} (${MODE[eff] ?? eff}${eff === 1 ? ': the route back must leave by the arrival device' : ': any route back will do'})`);
    evidence.push('dropped with IP_RPFILTER (fib_validate_source refused the source)');
    const fix = eff === 1
      ? `make the path symmetric (the route to ${src} should leave by ${iif}${backDev ? `, not ${backDev}` : ''}), or switch ${iif} to loose mode: sysctl -w net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.${iif}.rp_filter=2 in ${ns} (the larger of the two is in force, so lowering only one does nothing)`
      : `add a route back to ${src} in ${ns}: loose mode only needs some route to the source`;
    return { cause: { type: 'sysctl', ref: key, value: String(eff === all ? all : dev), netns: ns }, evidence, fix };
  },
};

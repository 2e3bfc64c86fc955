// What a FIB lookup record means: its result in words, and whether it was a
// reverse-path check rather than a forward lookup.
import { AF_INET6, FibFlag, type FibRecord } from '../abi.js';
import { parseAddrRange, parseIp, rangeContains } from './ip.js';
import type { RouteInfo } from './netns.js';

const ERRNO: Record<number, string> = { 11: 'EAGAIN', 101: 'ENETUNREACH', 113: 'EHOSTUNREACH', 22: 'EINVAL', 3: 'ESRCH', 13: 'EACCES' };

/**
 * fib_validate_source() looks the received packet's source up as a
 * destination, with no oif and no protocol (an ICMP error or TCP reset sent
 * back to that source sets its protocol). Its iif is loopback for local
 * delivery but the forward route's device when forwarding, so it says nothing.
 */
export function isReversePathCheck(r: FibRecord): boolean {
  if ((r.flags & FibFlag.TIED_REVERSE) === 0) return false;
  // IPv6 has no rp_filter: the reverse lookup is ip6tables -m rpfilter's (or
  // nft fib saddr . iif's), from loopback with the packet's protocol, and an
  // oif when strict (ip6t_rpfilter.c rpfilter_lookup_reverse6).
  if (r.family === AF_INET6) return r.iif === 1;
  return r.oif === 0 && r.proto === 0;
}

export function routeResult(err: number, nhDev: string, gw: string | null): string {
  if (err === 0) return gw ? `via ${gw} dev ${nhDev || '?'}` : `dev ${nhDev || '?'}`;
  if (err === -11) return 'no match in this table';
  return `error ${ERRNO[-err] ?? err}`;
}

/** A route's family: as captured (ip -4 / ip -6), else from its destination or gateway. */
export function routeFamily(route: RouteInfo): 4 | 6 | undefined {
  if (route.family) return route.family;
  if (route.dst !== 'default') return parseAddrRange(route.dst)?.family;
  return route.gateway ? parseIp(route.gateway)?.family : undefined;
}

/** The prefix length by which a route covers addr, or -1. Only a route of addr's family covers it. */
function coversLen(route: RouteInfo, addr: string): number {
  const a = parseIp(addr);
  if (!a) return -1;
  if (route.dst === 'default') return routeFamily(route) === a.family ? 0 : -1;
  const r = parseAddrRange(route.dst);
  return r && rangeContains(r, a) ? r.prefix ?? -1 : -1;
}

/** The most specific route of a table that covers addr. */
export function bestRoute(routes: RouteInfo[], addr: string, table = 'main'): RouteInfo | undefined {
  let best: RouteInfo | undefined;
  let bestLen = -1;
  for (const r of routes) {
    if (r.table !== table) continue;
    const len = coversLen(r, addr);
    if (len > bestLen) {
      best = r;
      bestLen = len;
    }
  }
  return best;
}

const REJECT_TYPES = new Set(['unreachable', 'blackhole', 'prohibit', 'throw']);

/** What a reverse-path check decided: ok or not and why, or why it cannot be decided. */
export type ReversePath = { ok: boolean; why: string } | { unknown: string };

export interface ReversePathQuery {
  src: string;
  /** the device the packet came in on; absent when not known */
  iif?: string;
  loose: boolean;
  acceptLocal: boolean;
}

/**
 * ip6tables -m rpfilter (ip6t_rpfilter.c rpfilter_mt, rpfilter_lookup_reverse6) on
 * captured state: the source is looked up as a destination, with the arrival
 * device as oif when strict (so among routes of the longest prefix one by that
 * device wins). It passes when the route leaves by the arrival device, or
 * with --loose when any route exists; a reject route or no route fails; a
 * local source passes only with --accept-local. Packets from loopback and
 * from :: pass. Policy routing (ip -6 rule beyond local, main, default) is
 * not modelled: then it cannot be decided.
 */
export function ipv6ReversePath(q: ReversePathQuery, routes: RouteInfo[], localAddrs: string[], rules: { priority: number; table: string; action?: string; src?: string; dst?: string; fwmark?: string; iif?: string; oif?: string }[] | undefined): ReversePath {
  const src = parseIp(q.src);
  if (!src || src.family !== 6) return { unknown: `${q.src} is not an IPv6 address` };
  if (q.iif === undefined) return { unknown: 'the input interface is not known' };
  if (q.iif === 'lo') return { ok: true, why: 'it came in on lo: rpfilter passes loopback traffic' };
  if (src.value === 0n) return { ok: true, why: 'its source is :: (rpfilter leaves it to the forward path)' };
  const standard = (r: (typeof rules & {})[number]) =>
    !r.action && !r.src && !r.dst && !r.fwmark && !r.iif && !r.oif && ['local', 'main', 'default'].includes(r.table);
  if (!rules?.length) return { unknown: 'the IPv6 policy rules (ip -6 rule) were not captured' };
  const odd = rules.find((r) => !standard(r));
  if (odd) return { unknown: `policy routing (ip -6 rule priority ${odd.priority}) is not modelled` };
  if (localAddrs.some((a) => { const l = parseIp(a); return l?.family === 6 && l.value === src.value; })) {
    return { ok: q.acceptLocal, why: `${q.src} is an address of this host${q.acceptLocal ? ' (--accept-local)' : ': rpfilter refuses a local source without --accept-local'}` };
  }
  const linkLocal = (src.value >> 118n) === 0x3fan; // fe80::/10
  for (const table of ['main', 'default']) {
    let best: RouteInfo[] = [];
    let bestLen = -1;
    for (const r of routes) {
      if (r.table !== table || routeFamily(r) !== 6) continue;
      if (linkLocal && r.dev !== q.iif) continue; // a link-local source is looked up on the arrival device only
      const len = coversLen(r, q.src);
      if (len > bestLen) [best, bestLen] = [[r], len];
      else if (len === bestLen && len >= 0) best.push(r);
    }
    if (!best.length) continue;
    const route = (!q.loose || linkLocal ? best.find((r) => r.dev === q.iif) : undefined) ?? best[0];
    const text = `${route.type === 'unicast' ? '' : `${route.type} `}${route.dst}${route.gateway ? ` via ${route.gateway}` : ''}${route.dev ? ` dev ${route.dev}` : ''}`;
    if (REJECT_TYPES.has(route.type)) return { ok: false, why: `the route back to ${q.src} is ${text} (table ${table}): rpfilter refuses it` };
    if (route.dev === undefined) return { unknown: `the route back to ${q.src} (${text}, table ${table}) names no single device` };
    if (route.dev === q.iif) return { ok: true, why: `the route back to ${q.src} is ${text} (table ${table}): it leaves by ${q.iif}, where the packet came in` };
    if (q.loose) return { ok: true, why: `the route back to ${q.src} is ${text} (table ${table}): --loose takes any route back` };
    return { ok: false, why: `the route back to ${q.src} is ${text} (table ${table}): it leaves by ${route.dev}, not by ${q.iif} where the packet came in` };
  }
  return { ok: false, why: `there is no route back to ${q.src}` };
}

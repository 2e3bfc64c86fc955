// What a FIB lookup record means: its result in words, and whether it was a
// reverse-path check rather than a forward lookup.
import { AF_INET6, FibFlag, type FibRecord } from '../abi.js';

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

// Sentences of evidence, shared by the rules.
import { type FibRecord, type SockRecord, type Tuple } from '../abi.js';
import { TCP_CLOSE, errnoText, tcpStateName } from '../model/socket.js';
import type { Flow } from './flows.js';
import type { RouteInfo } from '../model/netns.js';
import type { Journey } from '../journey.js';
import { endpointText } from '../model/ip.js';
import { hasPorts, protoName } from '../model/protocols.js';
import { isReversePathCheck, routeResult } from '../model/route.js';

export function tupleText(t: Tuple): string {
  return `${protoName(t.proto)} ${endpointText(hasPorts(t.proto) ? t : { src: t.src, dst: t.dst })}`;
}

export function lookupText(f: FibRecord, netns: string): string {
  const what = isReversePathCheck(f) ? `reverse-path lookup of ${f.dst}` : `route lookup ${f.src === '0.0.0.0' || f.src === '::' ? '' : `${f.src} > `}${f.dst}`;
  return `${what} in ${netns} (table ${f.table}): ${routeResult(f.err, f.nhDev, f.gw)}`;
}

/** The route lookups of a journey before a time, oldest first. */
export function lookupsBefore(j: Journey, ts: number): FibRecord[] {
  return j.records.filter((r): r is FibRecord => r.kind === 'fib' && r.ts <= ts);
}

/** What a flow's socket went through (connect() on): "the socket went SYN_SENT → CLOSE after 3.0 s: ...". */
export function socketEvidence(flow: Flow): string[] {
  const socks = flow.journeys.flatMap((j) => j.records).filter((r): r is SockRecord => r.kind === 'sock').sort((a, b) => a.ts - b.ts);
  if (!socks.length) return [];
  const t0 = socks[0].ts;
  const states = [tcpStateName(socks[0].oldstate), ...socks.map((s) => tcpStateName(s.newstate))].join(' → ');
  const last = socks[socks.length - 1];
  const out = [`the socket went ${states}${socks.length > 1 ? ` in ${((last.ts - t0) / 1e9).toFixed(1)} s` : ''}`];
  if (last.newstate === TCP_CLOSE && last.err) out.push(`connect() failed with ${errnoText(last.err)}`);
  else if (last.errSoft) out.push(`the socket's last soft error: ${errnoText(last.errSoft)}`);
  return out;
}

/** A namespace's main routing table as `ip route` lists it, on one line: "10.0.0.0/24 dev eth0; default via 10.0.0.1 dev eth0". */
export function mainTableText(routes: RouteInfo[], family?: 4 | 6): string {
  const main = routes.filter((r) => r.table === 'main' && (family === undefined || r.family !== (family === 4 ? 6 : 4)));
  return main.length ? main.map((r) => `${r.type === 'unicast' ? '' : `${r.type} `}${r.dst}${r.gateway ? ` via ${r.gateway}` : ''}${r.dev ? ` dev ${r.dev}` : ''}`).join('; ') : '(empty)';
}

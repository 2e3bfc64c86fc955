// Sentences of evidence, shared by the rules.
import { type FibRecord, type Tuple } from '../abi.js';
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

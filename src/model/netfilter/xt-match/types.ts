// What every match unit of xt-match/ shares: the packet as the walk holds it, and a match's answer.
import type { Family } from '../../ip.js';
import type { Hook, PacketContext } from '../../netfilter.js';
import type { IpSet } from '../ipset.js';
import type { Tri } from '../walk.js';
import type { Condition } from '../xt-ruleset.js';

/** The packet as rules see it at this point of the walk (targets rewrite it on the way). */
export interface MatchState {
  hook: Hook;
  pkt: PacketContext;
  src: { family: Family; value: bigint };
  dst: { family: Family; value: bigint };
  /** null: a target made the mark unknowable */
  mark: number | null;
  ctmark: number | null;
  sets: Map<string, IpSet>;
}

/** A condition's answer before its `!`; a set match also names the member that matched. */
export interface CondResult {
  t: Tri;
  why?: string;
  member?: string;
  memberLine?: number;
  via?: string;
}

/** One match kind's evaluator. */
export type CondEval<K extends Condition['kind']> = (c: Extract<Condition, { kind: K }>, st: MatchState) => CondResult;

export const yes: CondResult = { t: 'yes' };
export const no: CondResult = { t: 'no' };
export const tri = (b: boolean): CondResult => (b ? yes : no);
export const unknown = (why: string): CondResult => ({ t: 'unknown', why });

/** `eth+` names every device starting with `eth`. */
export function ifaceMatches(pattern: string, dev: string): boolean {
  return pattern.endsWith('+') ? dev.startsWith(pattern.slice(0, -1)) : dev === pattern;
}

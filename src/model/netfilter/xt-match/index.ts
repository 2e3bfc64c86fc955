// iptables' matches, one small unit per kind, and a rule's conditions taken together: the first
// that fails makes the rule not match; what cannot be known is listed, with why.
import type { SetMatchInfo } from '../xt-result.js';
import type { Condition, Rule } from '../xt-ruleset.js';
import { addr, addrtype, iprange } from './addr.js';
import { ctproto, ctstate, mark } from './conntrack.js';
import { iface, physdev } from './iface.js';
import { fragment, icmp, port, proto, tcpflags } from './l4.js';
import { notUnderstood, opaque, rpfilter, statistic } from './other.js';
import { set } from './set.js';
import type { CondEval, CondResult, MatchState } from './types.js';

export type { MatchState } from './types.js';

const MATCHES: { [K in Condition['kind']]: CondEval<K> } = {
  proto,
  addr,
  iface,
  fragment,
  port,
  tcpflags,
  set,
  addrtype,
  ctstate,
  ctproto,
  mark,
  icmp,
  iprange,
  statistic,
  physdev,
  rpfilter,
  opaque,
  unknown: notUnderstood,
};

/** A condition's answer before its `!`. */
export function evalCondition(c: Condition, st: MatchState): CondResult {
  return (MATCHES[c.kind] as CondEval<Condition['kind']>)(c, st);
}

/** A condition's answer with its `!` applied (an unknown stays unknown). */
function judged(c: Condition, st: MatchState): CondResult {
  const r = evalCondition(c, st);
  return c.neg && r.t !== 'unknown' ? { ...r, t: r.t === 'yes' ? 'no' : 'yes' } : r;
}

export interface RuleMatch {
  result: 'match' | 'nomatch';
  reasons: string[];
  statistic: boolean;
  setMatches: SetMatchInfo[];
}

/** Does the packet meet every condition of the rule? Uncertain conditions are listed in `reasons`. */
export function matchRule(rule: Rule, st: MatchState): RuleMatch {
  const reasons: string[] = [];
  const setMatches: SetMatchInfo[] = [];
  let statistic = false;
  for (const c of rule.conditions) {
    if (c.kind === 'statistic') {
      statistic = true;
      continue;
    }
    const r = judged(c, st);
    if (r.t === 'no') return { result: 'nomatch', reasons: [], statistic: false, setMatches: [] };
    if (r.t === 'unknown') reasons.push(`${c.text}: ${r.why}`);
    if (r.t === 'yes' && c.kind === 'set') {
      setMatches.push({
        set: c.set,
        member: c.neg ? null : r.member ?? null,
        flags: c.flags,
        negated: c.neg,
        ...(r.via ? { via: r.via } : {}),
        ...(!c.neg && r.memberLine !== undefined ? { memberLine: r.memberLine } : {}),
      });
    }
  }
  return { result: 'match', reasons, statistic, setMatches };
}

/** How the packet fares against one rule's conditions: the first it fails, else what is uncertain. */
export function firstMiss(rule: Rule, st: MatchState): { miss?: Condition; uncertain?: string } {
  const reasons: string[] = [];
  for (const c of rule.conditions) {
    if (c.kind === 'statistic') continue;
    const r = judged(c, st);
    if (r.t === 'no') return { miss: c };
    if (r.t === 'unknown') reasons.push(`${c.text}: ${r.why}`);
  }
  return reasons.length ? { uncertain: reasons.join('; ') } : {};
}

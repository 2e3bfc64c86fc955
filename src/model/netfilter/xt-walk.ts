// The iptables walker: a packet through a hook's tables in the kernel's order, each table's base
// chain run by the chain machine both walkers share (walk.ts), each rule's conditions by the
// match units of xt-match/, its target by xt-targets.ts. It names the rule (and ipset member)
// that decided, the trail of rules that matched, and what it could not know: a rule with an
// uncertain match is taken as matching (or not, by EvalOptions.uncertainAs) and listed in
// `uncertain` with the assumption made. Pure code: no IO.
import type { Hook, PacketContext } from '../netfilter.js';
import type { IpSet } from './ipset.js';
import { MAX_DEPTH, MAX_STEPS, type Move, walkChains } from './walk.js';
import { firstMiss, matchRule } from './xt-match/index.js';
import type { Decision, EvalOptions, HookResult, TableOutcome, Uncertainty } from './xt-result.js';
import { type Chain, type Condition, HOOK_TABLES, type Rule, type Ruleset, type Table, type Verdict } from './xt-ruleset.js';
import { type State, initialState } from './xt-state.js';
import { applyTarget } from './xt-targets.js';

/** How the packet fares against one rule's conditions: the first it fails, else what is uncertain. */
export function ruleMiss(rule: Rule, sets: Map<string, IpSet>, hook: Hook, pkt: PacketContext): { miss?: Condition; uncertain?: string } {
  return firstMiss(rule, initialState(sets, hook, pkt, {}));
}

export function evaluateHook(
  rs: Ruleset,
  sets: Map<string, IpSet>,
  hook: Hook,
  pkt: PacketContext,
  opts: EvalOptions = {},
): HookResult {
  const st = initialState(sets, hook, pkt, opts);
  const tables: TableOutcome[] = [];
  let final: { verdict: Verdict; decision: Decision } | undefined;
  const accepts: Decision[] = [];
  for (const tn of HOOK_TABLES[hook]) {
    if (opts.tables && !opts.tables.includes(tn)) continue;
    const table = rs.tables.get(tn);
    const base = table?.chains.get(hook);
    if (!table) {
      tables.push({ table: tn, skipped: 'table not in the ruleset' });
      continue;
    }
    if (!base) {
      tables.push({ table: tn, skipped: `table has no ${hook} chain` });
      continue;
    }
    if (tn === 'nat' && !st.pkt.ctstate.includes('NEW')) {
      tables.push({
        table: tn,
        skipped: st.pkt.ctstate.includes('UNTRACKED')
          ? 'untracked packets are never NATed'
          : 'nat rules see only the first packet of a connection (ctstate NEW); later packets follow the NAT decided then',
      });
      continue;
    }
    const out = runTable(table, base, st);
    tables.push({ table: tn, verdict: out.verdict, decision: out.decision });
    if (out.verdict !== 'ACCEPT') {
      final = out;
      break;
    }
    accepts.push(out.decision);
  }
  // An accepted packet passed every table: name the last rule that accepted (or NATed) it, else the
  // filter table's policy (the one people set), else the last policy.
  const accepted =
    [...accepts].reverse().find((d) => d.kind === 'rule') ??
    accepts.find((d) => d.kind === 'policy' && d.table === 'filter') ??
    accepts[accepts.length - 1];
  const decidedBy: Decision = final?.decision ??
    accepted ?? { kind: 'none', reason: `no table has a ${hook} chain, so netfilter accepts` };
  const verdict: Verdict = final?.verdict ?? 'ACCEPT';
  const packet: PacketContext = { ...st.pkt, mark: st.mark ?? pkt.mark, markUnknown: st.mark === null ? true : undefined };
  if (packet.markUnknown === undefined) delete packet.markUnknown;
  if (st.ctmark !== null) packet.ctmark = st.ctmark;
  const decidingEntry = decidedBy.kind === 'rule' ? [...st.trail].reverse().find((t) => t.rule === decidedBy.rule) : undefined;
  const result: HookResult = {
    hook,
    verdict,
    decidedBy,
    setMatches: decidingEntry?.setMatches ?? [],
    nat: st.nat,
    trail: st.trail,
    tables,
    uncertain: st.uncertain,
    certain: st.uncertain.length === 0,
    packet,
  };
  if (decidedBy.kind === 'rule' && decidedBy.rule.target?.kind === 'reject') result.rejectWith = decidedBy.rule.target.with;
  return result;
}


type TableEnd = { verdict: Verdict; decision: Decision };

function runTable(table: Table, base: Chain, st: State): TableEnd {
  const policy = (viaReturn?: Rule): TableEnd => {
    const p = base.policy ?? 'ACCEPT';
    return { verdict: p, decision: { kind: 'policy', table: table.name, chain: base.name, policy: p, verdict: p, viaReturn } };
  };
  const byRule = (rule: Rule, verdict: Verdict): TableEnd => ({ verdict, decision: { kind: 'rule', table: table.name, chain: rule.chain, rule, verdict } });
  const end = (rule: Rule, verdict: Verdict): Move<Chain, TableEnd> => ({ kind: 'end', result: byRule(rule, verdict) });
  const uncertain = (rule: Rule, reason: string, assumed: Uncertainty['assumed']) =>
    st.uncertain.push({ table: table.name, chain: rule.chain, rule, reason, assumed });
  return walkChains<Chain, Rule, TableEnd>(base, {
    policy: (_at, returnedBy) => policy(returnedBy),
    tooManySteps(rule) {
      uncertain(rule, `gave up after ${MAX_STEPS} rules (a jump loop?)`, 'stop');
      return byRule(rule, 'UNKNOWN');
    },
    rule(rule, at) {
      const m = matchRule(rule, st);
      if (m.result === 'nomatch') return { kind: 'next' };
      // LOG/NFLOG change nothing: an uncertain match of one (a rate limit) does not make the verdict uncertain.
      if (m.reasons.length > 0 && rule.target?.kind === 'passive') return { kind: 'next' };
      if (m.reasons.length > 0) {
        if (st.uncertainAs === 'nomatch') {
          uncertain(rule, m.reasons.join('; '), 'no match');
          return { kind: 'next' };
        }
        uncertain(rule, m.reasons.join('; '), 'match');
      }
      if (m.statistic) {
        uncertain(rule, '-m statistic picks this rule only for some packets (random or nth); treated as matching', 'match');
      }
      const trail = (effect: string) =>
        st.trail.push({ table: table.name, chain: rule.chain, rule, effect, setMatches: m.setMatches });
      const t = rule.target;
      if (!t) {
        trail('matched (no target: counts only)');
        return { kind: 'next' };
      }
      if (t.kind === 'chain') {
        if (!t.goto && at.depth >= MAX_DEPTH) {
          uncertain(rule, `jumps nest deeper than ${MAX_DEPTH} chains (a jump loop?)`, 'stop');
          return end(rule, 'UNKNOWN');
        }
        trail(`${t.goto ? 'goto' : 'jump'} ${t.chain}`);
        return { kind: 'call', chain: table.chains.get(t.chain)!, goto: t.goto };
      }
      if (t.kind === 'return') {
        const caller = at.caller;
        trail(caller ? `return to ${caller.name}` : `return from built-in chain ${base.name}: policy ${base.policy}`);
        return { kind: 'return' };
      }
      const verdict = applyTarget(t, rule, table.name, st, trail, uncertain);
      return verdict ? end(rule, verdict) : { kind: 'next' };
    },
  });
}

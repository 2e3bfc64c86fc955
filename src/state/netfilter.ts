// The iptables ruleset and ipsets of a snapshot as an evaluator the rules can ask.
import type { Hook, NatFinding, NetfilterEvaluator, NetfilterFinding, NetfilterPacket, RuleView } from '../model/netfilter.js';
import { parseIpsetSave, type IpSet } from './ipset.js';
import { type HookResult, type Ruleset, type TableName, evaluateHook, parseIptablesSave, ruleMiss } from './iptables.js';
import type { Snapshot } from './snapshot.js';

function decision(r: HookResult): Pick<NetfilterFinding, 'table' | 'chain' | 'rule' | 'packets'> {
  const d = r.decidedBy;
  if (d.kind === 'rule') return { table: d.table, chain: d.chain, rule: d.rule.text, packets: d.rule.counters?.packets };
  if (d.kind === 'policy') return { table: d.table, chain: d.chain, rule: `:${d.chain} ${d.policy} (the chain's policy)` };
  return { table: '?', chain: '?', rule: d.reason };
}

/** The set member that sent the packet where it died: the deciding rule's, else the latest on the way. */
function setMember(r: HookResult): { name: string; member: string } | undefined {
  const positive = [...r.setMatches, ...[...r.trail].reverse().flatMap((t) => t.setMatches)].find((m) => !m.negated && m.member);
  return positive ? { name: positive.set, member: positive.member! } : undefined;
}

/**
 * Build an evaluator from a snapshot; undefined when there is no ruleset. A
 * ruleset or ipset dump that does not parse is noted in the snapshot's
 * errors, so the verdict's evidence says why no rule was named.
 */
export function netfilterEvaluator(snap: Snapshot): NetfilterEvaluator | undefined {
  if (!snap.iptablesSave) return undefined;
  let rs: Ruleset;
  try {
    rs = parseIptablesSave(snap.iptablesSave);
  } catch (e) {
    snap.errors.push(`iptables-save of ${snap.netns} could not be read: ${(e as Error).message}`);
    return undefined;
  }
  let sets = new Map<string, IpSet>();
  if (snap.ipsetSave) {
    try {
      sets = parseIpsetSave(snap.ipsetSave);
    } catch (e) {
      snap.errors.push(`ipset save of ${snap.netns} could not be read: ${(e as Error).message}`);
    }
  }
  const localAddrs = snap.addrs.map((a) => a.address);
  const run = (hook: Hook, p: NetfilterPacket) => evaluateHook(rs, sets, hook, { ...p, localAddrs });
  return {
    backend: `iptables (${snap.iptablesBackend ?? 'unknown backend'})`,
    evaluate(hook, p) {
      const r = run(hook, p);
      return {
        verdict: r.verdict,
        ...decision(r),
        ipset: setMember(r),
        uncertain: r.uncertain.map((u) => `${u.table}/${u.chain} rule ${u.rule.index}: ${u.reason} (assumed ${u.assumed})`),
        trail: r.trail.map((t) => `${t.chain}: ${t.effect}`),
        steps: r.trail.map((t) => ({
          table: t.table,
          chain: t.chain,
          rule: t.rule.text,
          ...(t.rule.comment !== undefined ? { comment: t.rule.comment } : {}),
          ...(t.rule.target?.kind === 'chain' ? { jump: t.rule.target.chain } : {}),
          ...(['accept', 'drop', 'reject'].includes(t.rule.target?.kind ?? '') ? { final: true } : {}),
        })),
      };
    },
    chainRules(table, chain, hook, p) {
      const c = rs.tables.get(table as TableName)?.chains.get(chain);
      if (!c) return undefined;
      return c.rules.map((rule): RuleView => {
        const m = ruleMiss(rule, sets, hook, { ...p, localAddrs });
        const miss = m.miss && { text: m.miss.text, ...(m.miss.kind === 'set' ? { set: { name: m.miss.set, dirs: m.miss.flags, negated: m.miss.neg } } : {}) };
        return {
          rule: rule.text,
          ...(rule.comment !== undefined ? { comment: rule.comment } : {}),
          ...(rule.target ? { target: rule.target.name } : {}),
          ...(miss ? { miss } : {}),
          ...(m.uncertain ? { uncertain: m.uncertain } : {}),
        };
      });
    },
    natRules(first, p) {
      // A new connection's NAT: DNAT at PREROUTING (OUTPUT for a local sender),
      // then, with the mark and address that left, SNAT/MASQUERADE at POSTROUTING.
      const before = run(first, p);
      const after = run('POSTROUTING', { ...before.packet, iif: undefined });
      const found = (r: HookResult, kinds: string[]): NatFinding | undefined => {
        const n = r.nat.find((x) => kinds.includes(x.kind));
        return n && { rule: n.rule.text, table: n.table, chain: n.chain, to: n.to ?? undefined };
      };
      return { dnat: found(before, ['dnat', 'redirect']), snat: found(after, ['snat', 'masquerade']) };
    },
  };
}

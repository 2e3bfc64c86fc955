// The iptables and ip6tables rulesets and ipsets of a snapshot as an evaluator the rules can ask.
// A packet is evaluated against the ruleset of its own family.
import { ipFamily } from '../model/ip.js';
import { ipv6ReversePath, type ReversePathQuery } from '../model/route.js';
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
 * errors, so the verdict's evidence says why no rule was named. An IPv6
 * packet goes to the ip6tables ruleset, an IPv4 one to the iptables ruleset;
 * a family whose ruleset is missing gets no verdict (the finding says so).
 */
export function netfilterEvaluator(snap: Snapshot): NetfilterEvaluator | undefined {
  let sets = new Map<string, IpSet>();
  if (snap.ipsetSave) {
    try {
      sets = parseIpsetSave(snap.ipsetSave);
    } catch (e) {
      snap.errors.push(`ipset save of ${snap.netns} could not be read: ${(e as Error).message}`);
    }
  }
  const backend = snap.iptablesBackend ?? 'unknown backend';
  const v4 = familyEvaluator(snap, snap.iptablesSave, 'iptables', sets, `iptables (${backend})`);
  const v6 = familyEvaluator(snap, snap.ip6tablesSave ?? null, 'ip6tables', sets, `ip6tables (${backend})`);
  if (!v4 && !v6) return undefined;
  const pick = (p: NetfilterPacket): NetfilterEvaluator | undefined => (ipFamily(p.src) === 6 ? v6 : v4);
  const none = (p: NetfilterPacket): NetfilterFinding => ({
    verdict: 'UNKNOWN', table: '?', chain: '?', rule: `no ${ipFamily(p.src) === 6 ? 'ip6tables' : 'iptables'} ruleset was captured in ${snap.netns}`,
    uncertain: [], trail: [], steps: [],
  });
  return {
    backend: v4?.backend ?? v6!.backend,
    backendFor: (family) => (family === 6 ? v6 : v4)?.backend ?? (family === 6 ? 'ip6tables' : 'iptables'),
    evaluate: (hook, p) => pick(p)?.evaluate(hook, p) ?? none(p),
    chainRules: (table, chain, hook, p) => pick(p)?.chainRules(table, chain, hook, p),
    natRules: (first, p) => pick(p)?.natRules(first, p) ?? {},
  };
}

/** The evaluator of one family's ruleset (iptables-save or ip6tables-save text). */
function familyEvaluator(snap: Snapshot, save: string | null, tool: string, sets: Map<string, IpSet>, backend: string): NetfilterEvaluator | undefined {
  if (!save) return undefined;
  let rs: Ruleset;
  try {
    rs = parseIptablesSave(save);
  } catch (e) {
    snap.errors.push(`${tool}-save of ${snap.netns} could not be read: ${(e as Error).message}`);
    return undefined;
  }
  const localAddrs = snap.addrs.map((a) => a.address);
  // -m rpfilter is decided from the captured IPv6 routes; IPv4's (ipt_rpfilter) is not modelled.
  const reverse = tool === 'ip6tables' ? (q: ReversePathQuery) => ipv6ReversePath(q, snap.routes, localAddrs, snap.rules.filter((r) => r.family === 6)) : undefined;
  const run = (hook: Hook, p: NetfilterPacket, notes?: string[]) =>
    evaluateHook(rs, sets, hook, {
      ...p,
      localAddrs,
      ...(reverse && { reversePath: (q: ReversePathQuery) => { const r = reverse(q); if ('why' in r) notes?.push(`-m rpfilter: ${r.why}`); return r; } }),
    });
  return {
    backend,
    evaluate(hook, p) {
      const notes: string[] = [];
      const r = run(hook, p, notes);
      return {
        ...(notes.length ? { notes: [...new Set(notes)] } : {}),
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
        const m = ruleMiss(rule, sets, hook, { ...p, localAddrs, ...(reverse && { reversePath: reverse }) });
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

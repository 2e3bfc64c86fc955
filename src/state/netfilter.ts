// A snapshot's netfilter rules as one evaluator the rules can ask: iptables'
// tables (from iptables-save, with ipsets) and native nftables base chains
// (from nft -j), run in the kernel's order at each hook: by priority, each
// table once. A table iptables-nft made is evaluated by its iptables-save
// form, never twice. A packet meets the ruleset of its own family: iptables or
// ip6tables (nft's ip/ip6/inet tables sort themselves by family in the walker).
import { ipFamily } from '../model/ip.js';
import { ipv6ReversePath, type ReversePathQuery } from '../model/route.js';
import type { Hook, NatFinding, NetfilterEvaluator, NetfilterFinding, NetfilterPacket, PacketContext, RuleView } from '../model/netfilter.js';
import { type NftChainResult, baseChainsAt, walkBaseChain } from '../model/netfilter/nft-walk.js';
import { policyRef, ruleRef } from '../model/netfilter/nft-text.js';
import { type NftRule, type NftRuleset, type NftTable, iptablesPriority } from '../model/netfilter/ruleset.js';
import type { IpSet } from '../model/netfilter/ipset.js';
import type { HookResult } from '../model/netfilter/xt-result.js';
import { HOOK_TABLES, type Ruleset, type TableName } from '../model/netfilter/xt-ruleset.js';
import { evaluateHook, ruleMiss } from '../model/netfilter/xt-walk.js';
import { parseIpsetSave } from './netfilter/ipset-save.js';
import { parseIptablesSave } from './netfilter/iptables-save.js';
import { parseNftRuleset } from './netfilter/nft-json.js';
import type { Snapshot } from './snapshot.js';

/** A rule's own counter (`counter packets N bytes M` among its statements). */
export function nftRuleCounter(r: NftRule): number | undefined {
  for (const e of r.expr) {
    const c = e.counter as { packets?: unknown } | undefined;
    if (c && typeof c.packets === 'number') return c.packets;
  }
  return undefined;
}

/** An nft base chain's walk as a finding. */
function nftFinding(r: NftChainResult): NetfilterFinding {
  const t = r.table;
  const rule = r.rule;
  const packets = rule ? nftRuleCounter(rule) : undefined;
  return {
    verdict: r.verdict,
    table: `${t.family} ${t.name}`,
    chain: rule?.chain ?? r.base.name,
    rule: rule ? ruleRef(rule) : policyRef(r.base),
    ...(packets !== undefined ? { packets } : {}),
    uncertain: r.uncertain,
    trail: r.path,
    steps: r.steps.map((s) => ({
      table: `${t.family} ${t.name}`,
      chain: s.rule.chain,
      rule: ruleRef(s.rule),
      ...(s.rule.comment !== undefined ? { comment: s.rule.comment } : {}),
      ...(s.jump ? { jump: s.jump } : {}),
      ...(s.final ? { final: true } : {}),
    })),
    source: 'nft',
    nft: {
      family: t.family,
      table: t.name,
      chain: rule?.chain ?? r.base.name,
      ...(rule?.handle !== undefined ? { handle: rule.handle } : {}),
      path: r.path,
      ...(r.element ? { element: r.element } : {}),
      ...(rule ? {} : { policy: true }),
    },
  };
}

/** The nftables ruleset of a snapshot, or undefined (none, or unreadable: noted in errors). */
function nftRuleset(snap: Snapshot): NftRuleset | undefined {
  if (!snap.nftJson) return undefined;
  try {
    const rs = parseNftRuleset(snap.nftJson);
    return rs.tables.some((t) => t.chains.size) ? rs : undefined;
  } catch (e) {
    snap.errors.push(`nft -j list ruleset of ${snap.netns} could not be read: ${(e as Error).message}`);
    return undefined;
  }
}

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
export function netfilterEvaluator(snap: Snapshot, before?: { iptablesSave?: string | null; nftJson?: unknown }): NetfilterEvaluator | undefined {
  const ev = evaluatorOf(snap);
  return ev && before ? withCountersBefore(ev, before) : ev;
}

/**
 * The deciding rule's counter as it was before the command, so only its own growth confirms it.
 * A rule missing from the earlier reading (added since) started at 0; a front-end not read
 * then gives no reading at all.
 */
function withCountersBefore(ev: NetfilterEvaluator, before: { iptablesSave?: string | null; nftJson?: unknown }): NetfilterEvaluator {
  let ipt: Map<string, number> | undefined;
  let nft: Map<string, number> | undefined;
  try {
    if (before.iptablesSave) {
      const rs = parseIptablesSave(before.iptablesSave);
      ipt = new Map();
      for (const t of rs.tables.values()) for (const c of t.chains.values()) for (const r of c.rules) if (r.counters) ipt.set(`${r.table} ${r.text}`, r.counters.packets);
    }
  } catch {
    ipt = undefined;
  }
  try {
    if (before.nftJson) {
      nft = new Map();
      for (const t of parseNftRuleset(before.nftJson).tables) {
        for (const c of t.chains.values()) for (const r of c.rules) if (r.handle !== undefined) nft.set(`${t.family} ${t.name} ${c.name} ${r.handle}`, nftRuleCounter(r) ?? 0);
      }
    }
  } catch {
    nft = undefined;
  }
  return {
    ...ev,
    evaluate(hook, p) {
      const f = ev.evaluate(hook, p);
      if (f.packets === undefined) return f;
      const n = f.nft;
      const was = n ? (nft && (nft.get(`${n.family} ${n.table} ${n.chain} ${n.handle}`) ?? 0)) : ipt && (ipt.get(`${f.table} ${f.rule}`) ?? 0);
      return was === undefined ? f : { ...f, packetsBefore: was };
    },
  };
}

function evaluatorOf(snap: Snapshot): NetfilterEvaluator | undefined {
  const sets = ipsets(snap);
  const nft = nftRuleset(snap);
  const forFamily = (family: 4 | 6): NetfilterEvaluator | undefined => {
    const ipt = family === 6
      ? iptablesEvaluator(snap, snap.ip6tablesSave ?? null, 'ip6tables', sets)
      : iptablesEvaluator(snap, snap.iptablesSave, 'iptables', sets);
    if (!nft) return ipt;
    // iptables-save shows the tables iptables-nft made (nf_tables backend): those are evaluated there.
    const viaIptables = (t: NftTable) => !!ipt && t.iptablesNft && snap.iptablesBackend === 'nf_tables';
    return combined(ipt, nft, viaIptables, snap.addrs.map((a) => a.address));
  };
  const v4 = forFamily(4);
  const v6 = forFamily(6);
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

/** The snapshot's ipsets (both families); one that does not parse is noted in its errors. */
function ipsets(snap: Snapshot): Map<string, IpSet> {
  if (!snap.ipsetSave) return new Map();
  try {
    return parseIpsetSave(snap.ipsetSave);
  } catch (e) {
    snap.errors.push(`ipset save of ${snap.netns} could not be read: ${(e as Error).message}`);
    return new Map();
  }
}

type Stage = { prio: number; iptables?: TableName; nft?: ReturnType<typeof baseChainsAt>[number] };

/** iptables' tables and nft's base chains at one hook, in the kernel's order. */
function stagesAt(ipt: IptablesEvaluator | undefined, nft: NftRuleset, skip: (t: NftTable) => boolean, hook: Hook, p: Pick<PacketContext, 'src' | 'ctstate'>): Stage[] {
  const stages: Stage[] = [];
  if (ipt) {
    for (const tn of HOOK_TABLES[hook]) {
      if (ipt.rs.tables.get(tn)?.chains.get(hook)) stages.push({ prio: iptablesPriority(tn, hook), iptables: tn });
    }
  }
  for (const b of baseChainsAt(nft, hook, p, skip)) stages.push({ prio: b.chain.base!.prio, nft: b });
  return stages.sort((a, b) => a.prio - b.prio); // stable: iptables first at a tie
}

function combined(ipt: IptablesEvaluator | undefined, nft: NftRuleset, skip: (t: NftTable) => boolean, localAddrs: string[]): NetfilterEvaluator {
  /** Every stage in order until one drops; the packet as each left it goes on to the next. */
  const run = (hook: Hook, p: NetfilterPacket): { finding: NetfilterFinding; packet: PacketContext; nat: (NatFinding & { kind: string })[] } => {
    let packet: PacketContext = { ...p, localAddrs };
    const uncertain: string[] = [];
    const trail: string[] = [];
    const steps: NetfilterFinding['steps'] = [];
    const nat: (NatFinding & { kind: string })[] = [];
    let last: NetfilterFinding | undefined;
    for (const st of stagesAt(ipt, nft, skip, hook, packet)) {
      let f: NetfilterFinding;
      if (st.iptables) {
        const notes: string[] = [];
        const r = evaluateHook(ipt!.rs, ipt!.sets, hook, ipt!.context(packet, notes), { tables: [st.iptables] });
        f = ipt!.finding(r, notes);
        packet = { ...r.packet, localAddrs };
        for (const n of r.nat) nat.push({ kind: n.kind, rule: n.rule.text, table: n.table, chain: n.chain, to: n.to ?? undefined, source: 'iptables' });
      } else {
        const r = walkBaseChain(st.nft!.table, st.nft!.chain, packet);
        f = nftFinding(r);
        packet = { ...r.packet, localAddrs };
        for (const n of r.nat) nat.push({ kind: n.kind, rule: ruleRef(n.rule), table: `${n.rule.family} ${n.rule.table}`, chain: n.rule.chain, to: n.to, source: 'nft' });
      }
      uncertain.push(...f.uncertain);
      trail.push(...f.trail);
      steps.push(...f.steps);
      if (f.verdict !== 'ACCEPT') return { finding: { ...f, uncertain, trail: f.source === 'nft' ? f.trail : trail, steps }, packet, nat };
      if (f.steps.some((s) => s.final) || !last) last = f;
    }
    const base: NetfilterFinding = last ?? { verdict: 'ACCEPT', table: '?', chain: '?', rule: `no table has a ${hook} chain, so netfilter accepts`, uncertain: [], trail: [], steps: [] };
    return { finding: { ...base, uncertain, trail, steps }, packet, nat };
  };
  return {
    // "and nftables" only when a native table is there besides the ones iptables-nft made
    backend: !ipt ? 'nftables' : nft.tables.some((t) => t.chains.size && !skip(t)) ? `${ipt.backend} and nftables` : ipt.backend,
    evaluate: (hook, p) => run(hook, p).finding,
    chainRules: (table, chain, hook, p) => ipt?.chainRules(table, chain, hook, p),
    natRules(first, p) {
      const before = run(first, p);
      const { localAddrs: _, ...moved } = before.packet;
      const after = run('POSTROUTING', { ...moved, iif: undefined });
      const found = (nat: (NatFinding & { kind: string })[], kinds: string[]): NatFinding | undefined => {
        const hit = nat.find((n) => kinds.includes(n.kind));
        if (!hit) return undefined;
        const { kind: _, ...f } = hit;
        return f;
      };
      return { dnat: found(before.nat, ['dnat', 'redirect']), snat: found(after.nat, ['snat', 'masquerade']) };
    },
  };
}

interface IptablesEvaluator extends NetfilterEvaluator {
  rs: Ruleset;
  sets: Map<string, IpSet>;
  context(p: NetfilterPacket, notes: string[]): PacketContext;
  finding(r: HookResult, notes: string[]): NetfilterFinding;
}

/** The evaluator of one family's ruleset (iptables-save or ip6tables-save text). */
function iptablesEvaluator(snap: Snapshot, save: string | null, tool: 'iptables' | 'ip6tables', sets: Map<string, IpSet>): IptablesEvaluator | undefined {
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
  /** The packet as the evaluator needs it; what -m rpfilter decided is noted in notes. */
  const context = (p: NetfilterPacket, notes: string[]): PacketContext => ({
    ...p,
    localAddrs,
    ...(reverse && { reversePath: (q: ReversePathQuery) => { const r = reverse(q); if ('why' in r) notes.push(`-m rpfilter: ${r.why}`); return r; } }),
  });
  const run = (hook: Hook, p: NetfilterPacket, notes: string[] = []) => evaluateHook(rs, sets, hook, context(p, notes));
  const finding = (r: HookResult, notes: string[]): NetfilterFinding => ({
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
  });
  return {
    rs,
    sets,
    context,
    finding,
    backend: `${tool} (${snap.iptablesBackend ?? 'unknown backend'})`,
    evaluate(hook, p) {
      const notes: string[] = [];
      return finding(run(hook, p, notes), notes);
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

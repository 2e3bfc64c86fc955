// The nft walker: a packet through one base chain of an nftables table, the
// way nft_do_chain runs it (jump/goto/return, verdict maps, policies, NAT
// statements), and the base chains of a hook in priority order. A rule whose
// expression cannot be evaluated does not match, and the walk says so in
// `uncertain`, naming the expression: never a guessed match.
import type { Hook, PacketContext } from '../netfilter.js';
import { type Val, type WalkPacket, compare, findElement, valueOf } from './nft-match.js';
import { exprKind, exprText, valueText } from './nft-text.js';
import { NFT_HOOKS, type NftChain, type NftElement, type NftRule, type NftRuleset, type NftSet, type NftTable } from './ruleset.js';
import { parseIp } from '../ip.js';
import { MAX_DEPTH, MAX_STEPS, rewriteNat, walkChains } from './walk.js';

export type NftVerdict = 'ACCEPT' | 'DROP' | 'REJECT' | 'QUEUE';

/** The set or map element a rule matched. */
export interface MatchedElement {
  set: string;
  /** the element's key as nft prints it */
  key: string;
  comment?: string;
  /** a map element's value (`goto reject-chain`) */
  value?: string;
}

export interface NftStep {
  rule: NftRule;
  /** `jump service-endpoints-check`, `drop`, `dnat to 10.244.2.2:80` */
  effect: string;
  element?: MatchedElement;
  /** the chain it jumped or went to */
  jump?: string;
  final?: boolean;
}

export interface NftNat {
  kind: 'dnat' | 'snat' | 'masquerade' | 'redirect';
  rule: NftRule;
  to?: string;
}

export interface NftChainResult {
  table: NftTable;
  base: NftChain;
  verdict: NftVerdict;
  /** the rule that decided; absent when the chain's policy did */
  rule?: NftRule;
  /** the element that sent the packet where it ended (the deciding rule's, else the last on the way) */
  element?: MatchedElement;
  /** the chains (and `@maps`) that led to the decision: `filter-forward → service-endpoints-check → @no-endpoint-services → reject-chain` */
  path: string[];
  steps: NftStep[];
  uncertain: string[];
  nat: NftNat[];
  packet: PacketContext;
  /** the mark as it left, null when it became unknowable */
  mark: number | null;
}

/** Statements that change nothing the walk decides on. */
const PASSIVE = new Set(['counter', 'log', 'notrack', 'quota', 'set', 'ct helper', 'ct timeout', 'ct expectation', 'synproxy', 'dup', 'secmark']);

type Outcome =
  | { kind: 'next' } // rule did not match, or matched without a verdict
  | { kind: 'verdict'; verdict: 'accept' | 'drop' | 'reject' | 'queue' | 'return'; effect: string }
  | { kind: 'jump' | 'goto'; target: string; effect: string };

interface Walk {
  table: NftTable;
  w: WalkPacket;
  uncertain: string[];
  nat: NftNat[];
  steps: NftStep[];
}

function where(r: NftRule): string {
  return `table ${r.family} ${r.table} chain ${r.chain}${r.handle !== undefined ? ` handle ${r.handle}` : ''}`;
}

function elementText(setName: string, e: NftElement, value?: unknown): MatchedElement {
  return { set: setName, key: valueText(e.key), ...(e.comment !== undefined ? { comment: e.comment } : {}), ...(value !== undefined ? { value: valueText(value) } : {}) };
}

function verdictOf(v: unknown): Outcome | undefined {
  const k = exprKind(v);
  const a = (v as Record<string, Record<string, unknown> | null>)?.[k ?? ''];
  if (k === 'accept' || k === 'drop' || k === 'return') return { kind: 'verdict', verdict: k, effect: k };
  if (k === 'jump' || k === 'goto') return { kind: k, target: String(a?.target), effect: `${k} ${a?.target}` };
  if (k === 'continue') return { kind: 'next' };
  return undefined;
}

/** Run one rule's expressions in order; what the rule did. */
function runRule(rule: NftRule, walk: Walk, sets: (n: string) => NftSet | undefined): { out: Outcome; element?: MatchedElement; via?: string } {
  const { w } = walk;
  let element: MatchedElement | undefined;
  const skip = (why: string): { out: Outcome } => {
    walk.uncertain.push(`${where(rule)}: ${why}; the rule was taken as not matching`);
    return { out: { kind: 'next' } };
  };
  for (const e of rule.expr) {
    const k = exprKind(e) ?? '?';
    const a = (e as Record<string, Record<string, unknown>>)[k];
    if (PASSIVE.has(k)) continue;
    switch (k) {
      case 'match': {
        const g = valueOf(a.left, w);
        if ('absent' in g) return { out: { kind: 'next' } };
        if ('unknown' in g) return skip(`cannot evaluate ${g.unknown} in "${exprText(e)}"`);
        const op = String(a.op ?? '==');
        const t = compare(op, g.v, a.right, sets);
        if (t === 'no') return { out: { kind: 'next' } };
        if (t === 'unknown') return skip(`cannot compare with ${valueText(a.right)} in "${exprText(e)}"`);
        if ((op === '==' || op === 'in') && typeof a.right === 'string' && a.right.startsWith('@')) {
          const s = sets(a.right.slice(1));
          const hit = s && findElement(g.v, s.elements, sets).element;
          if (hit) element = elementText(s.name, hit);
        }
        continue;
      }
      case 'limit':
        return skip(`"${exprText(e)}" depends on the packet rate`);
      case 'mangle': {
        const key = a.key as Record<string, Record<string, unknown>>;
        if (exprKind(key) === 'meta' && key.meta.key === 'mark') {
          const g = valueOf(a.value, w);
          w.mark = 'v' in g && g.v.k === 'num' ? g.v.n >>> 0 : typeof a.value === 'number' ? a.value >>> 0 : null;
          if (w.mark === null) walk.uncertain.push(`${where(rule)}: "${exprText(e)}" made the mark unknown`);
          continue;
        }
        if (exprKind(key) === 'ct' && key.ct.key === 'mark') continue; // the conntrack mark is only read back by later packets
        return skip(`unknown statement "${exprText(e)}"`);
      }
      case 'vmap': {
        const g = valueOf(a.key, w);
        if ('absent' in g) return { out: { kind: 'next' } };
        const data = a.data;
        const named = typeof data === 'string' && data.startsWith('@') ? sets(data.slice(1)) : undefined;
        const elements: NftElement[] = named
          ? named.elements
          : ((data as Record<string, unknown>)?.set as unknown[] | undefined ?? []).map((x) => (Array.isArray(x) ? { key: x[0], value: x[1] } : { key: x }));
        if (typeof data === 'string' && !named) return skip(`verdict map ${data} is not in the ruleset`);
        let hit: NftElement | undefined;
        if ('unknown' in g) {
          if (!/^numgen /.test(g.unknown) || elements.length === 0) return skip(`cannot evaluate ${g.unknown} in "${exprText(e)}"`);
          // kube-proxy spreads over endpoints with numgen random: the kernel chose one
          hit = elements[0];
          walk.uncertain.push(`${where(rule)}: ${g.unknown} between ${elements.length} branches; assumed the first (${valueText(hit.value)})`);
        } else {
          const f = findElement(g.v as Val, elements, sets);
          if (!f.element && f.unknown) return skip(`cannot compare with the elements of ${valueText(data)}`);
          hit = f.element;
        }
        if (!hit) return { out: { kind: 'next' } };
        element = elementText(named ? named.name : 'anonymous map', hit, hit.value);
        const v = verdictOf(hit.value);
        if (!v) return skip(`verdict map element value ${valueText(hit.value)}`);
        return { out: v, element, via: named ? `@${named.name}` : undefined };
      }
      case 'accept':
      case 'drop':
      case 'return':
      case 'jump':
      case 'goto':
      case 'continue':
        return { out: verdictOf(e)!, element };
      case 'reject':
        return { out: { kind: 'verdict', verdict: 'reject', effect: exprText(e) }, element };
      case 'queue':
        return { out: { kind: 'verdict', verdict: 'queue', effect: exprText(e) }, element };
      case 'dnat':
      case 'snat':
      case 'masquerade':
      case 'redirect': {
        const to = natTo(a);
        walk.nat.push({ kind: k, rule, ...(to ? { to } : {}) });
        applyNat(k, a, w, walk, rule);
        return { out: { kind: 'verdict', verdict: 'accept', effect: exprText(e) }, element };
      }
      case 'xt':
        return skip(`iptables-nft compat expression "${exprText(e)}" (evaluated from iptables-save instead)`);
      default:
        return skip(`unknown expression "${exprText(e)}"`);
    }
  }
  return { out: { kind: 'next' }, element };
}

function natTo(a: Record<string, unknown> | null | undefined): string | undefined {
  if (!a) return undefined;
  const addr = a.addr !== undefined ? valueText(a.addr) : '';
  const port = a.port !== undefined ? valueText(a.port) : '';
  return addr || port ? `${addr}${port ? `:${port}` : ''}` : undefined;
}

function applyNat(kind: string, a: Record<string, unknown> | null, w: WalkPacket, walk: Walk, rule: NftRule): void {
  const p = w.pkt;
  const addr = typeof a?.addr === 'string' && parseIp(a.addr) ? a.addr : undefined;
  const port = typeof a?.port === 'number' ? a.port : undefined;
  if ((a?.addr !== undefined && !addr) || (a?.port !== undefined && port === undefined)) {
    walk.uncertain.push(`${where(rule)}: ${kind} to a computed or ranged address (${natTo(a)}): the new address is not computed`);
  }
  rewriteNat(p, kind === 'dnat' || kind === 'redirect' ? 'dst' : 'src', addr, port);
}

/** Run the packet through one base chain of a table. */
export function walkBaseChain(table: NftTable, base: NftChain, pkt: PacketContext): NftChainResult {
  const w: WalkPacket = { pkt: { ...pkt, ctstate: [...pkt.ctstate] }, family: parseIp(pkt.src)?.family === 6 ? 6 : 4, mark: pkt.markUnknown ? null : pkt.mark >>> 0 };
  const walk: Walk = { table, w, uncertain: [], nat: [], steps: [] };
  const sets = (n: string) => table.sets.get(n);
  let lastElement: MatchedElement | undefined;
  const policy = (): NftVerdict => (base.base?.policy === 'drop' ? 'DROP' : 'ACCEPT');
  const finish = (path: string[], verdict: NftVerdict, rule?: NftRule, element?: MatchedElement): NftChainResult => ({
    table,
    base,
    verdict,
    ...(rule ? { rule } : {}),
    ...((element ?? lastElement) ? { element: element ?? lastElement } : {}),
    path,
    steps: walk.steps,
    uncertain: walk.uncertain,
    nat: walk.nat,
    packet: { ...w.pkt, mark: w.mark ?? pkt.mark, ...(w.mark === null ? { markUnknown: true } : {}) },
    mark: w.mark,
  });
  // Each frame's labels in the path: the chain, and the map that led there.
  return walkChains<NftChain, NftRule, NftChainResult>(
    base,
    {
      policy: (at, returnedBy) => finish(at.path(), policy(), returnedBy),
      tooManySteps(rule, at) {
        walk.uncertain.push(`${where(rule)}: gave up after ${MAX_STEPS} rules (a loop?); assumed accept`);
        return finish(at.path(), 'ACCEPT');
      },
      rule(rule, at) {
        const { out, element, via } = runRule(rule, walk, sets);
        if (out.kind === 'next') return { kind: 'next' };
        if (element) lastElement = element;
        const step: NftStep = { rule, effect: out.effect, ...(element ? { element } : {}) };
        walk.steps.push(step);
        if (out.kind !== 'verdict') {
          const next = table.chains.get(out.target);
          step.jump = out.target;
          if (!next || at.depth + 1 >= MAX_DEPTH) {
            walk.uncertain.push(`${where(rule)}: ${out.effect}: ${next ? 'too deep' : 'no such chain'}; assumed it returned`);
            return { kind: 'next' };
          }
          // goto replaces the frame, so a return goes back to the chain that jumped; the path keeps it
          return { kind: 'call', chain: next, goto: out.kind === 'goto', labels: [...(via ? [via] : []), next.name] };
        }
        if (out.verdict === 'return') return { kind: 'return' };
        step.final = true;
        const verdict: NftVerdict = out.verdict === 'accept' ? 'ACCEPT' : out.verdict === 'drop' ? 'DROP' : out.verdict === 'reject' ? 'REJECT' : 'QUEUE';
        return { kind: 'end', result: finish([...at.path(), ...(via ? [via] : [])], verdict, rule, element) };
      },
    },
    [base.name],
  );
}

/** Does a table of this family see a packet of that IP family at the IP hooks? */
export function familySees(table: NftTable, family: 4 | 6): boolean {
  return table.family === 'inet' || (table.family === 'ip' && family === 4) || (table.family === 'ip6' && family === 6);
}

/** The base chains at an IP hook that see the packet, in priority order (nat chains only for a new connection). */
export function baseChainsAt(rs: NftRuleset, hook: Hook, pkt: Pick<PacketContext, 'src' | 'ctstate'>, skip: (t: NftTable) => boolean = () => false): { table: NftTable; chain: NftChain }[] {
  const family = parseIp(pkt.src)?.family === 6 ? 6 : 4;
  const out: { table: NftTable; chain: NftChain }[] = [];
  for (const table of rs.tables) {
    if (!familySees(table, family) || skip(table)) continue;
    for (const chain of table.chains.values()) {
      const b = chain.base;
      if (!b || NFT_HOOKS[b.hook] !== hook) continue;
      if (b.type === 'nat' && !pkt.ctstate.includes('NEW')) continue;
      out.push({ table, chain });
    }
  }
  return out.sort((a, b) => a.chain.base!.prio - b.chain.base!.prio);
}

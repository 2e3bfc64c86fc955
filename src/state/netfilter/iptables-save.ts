// `iptables-save [-c]` parser: the text into the common model of model/netfilter/xt-ruleset.ts.
// Tables, chain declarations and rule lines are read here; a rule's words are read by
// iptables-args.ts (matches: iptables-modules.ts, targets: iptables-targets.ts).
//
// What cannot be evaluated is kept, not refused: rules whose syntax we do not understand are
// marked `unevaluable`. A line that is not iptables-save at all is an IptablesParseError naming
// the line. Pure code: no IO.
import { NetwhyError } from '../../errors.js';
import { BUILTIN_CHAINS, type Counters, type Rule, type Ruleset, type Table, type TableName } from '../../model/netfilter/xt-ruleset.js';
import { parseRuleArgs } from './iptables-args.js';
import { type PendingTarget, resolveTarget } from './iptables-targets.js';
import { eachSaveLine, splitArgs } from './syntax.js';

export class IptablesParseError extends NetwhyError {
  constructor(
    readonly reason: string,
    readonly line: number,
    readonly text: string,
  ) {
    super(`iptables-save line ${line}: ${reason}: ${JSON.stringify(text)}`);
    this.name = 'IptablesParseError';
  }
}

const TABLE_NAMES = new Set<string>(['raw', 'mangle', 'nat', 'filter', 'security']);

interface PendingRule {
  rule: Rule;
  target: PendingTarget | null;
  /** -I CHAIN [n]: 1-based insert position, else append */
  insertAt?: number;
}

interface OpenTable {
  table: Table;
  rules: PendingRule[];
  raw: string;
}

export function parseIptablesSave(text: string): Ruleset {
  const rs: Ruleset = { tables: new Map() };
  let open: OpenTable | null = null;
  eachSaveLine(text, IptablesParseError, ({ no: lineNo, raw, text: t, fail }, lines) => {
    if (t.startsWith('*')) {
      if (open) {
        fail(`table ${open.table.name} (line ${open.table.line}) has no COMMIT before the next table`);
      }
      const name = t.slice(1).trim();
      if (!TABLE_NAMES.has(name)) fail(`unknown table ${JSON.stringify(name)}`);
      open = { table: { name: name as TableName, line: lineNo, chains: new Map() }, rules: [], raw };
    } else if (t === 'COMMIT') {
      if (!open) fail('COMMIT outside a table');
      commitTable(open!, lines);
      // Like iptables-restore without --noflush: a table given twice is replaced.
      rs.tables.set(open!.table.name, open!.table);
      open = null;
    } else if (t.startsWith(':')) {
      if (!open) fail('chain declaration outside a table (no *table line before it)');
      parseChainLine(open!.table, t, lineNo, fail);
    } else if (t.startsWith('[') || t.startsWith('-')) {
      if (!open) fail('rule outside a table (no *table line before it)');
      open!.rules.push(parseRuleLine(open!.table, t, lineNo, fail));
    } else {
      fail('not a table, chain, rule, COMMIT or comment line');
    }
  });
  const left = open as OpenTable | null;
  if (left) {
    throw new IptablesParseError(`table ${left.table.name} has no COMMIT`, left.table.line, left.raw);
  }
  return rs;
}

export function parseCounters(s: string): Counters | null {
  const m = /^\[(\d+):(\d+)\]$/.exec(s);
  return m ? { packets: Number(m[1]), bytes: Number(m[2]) } : null;
}

function parseChainLine(table: Table, t: string, lineNo: number, fail: (r: string) => never): void {
  const words = t.slice(1).split(/\s+/);
  const [name, policy, counterText, ...extra] = words;
  if (!name) fail('chain declaration without a name');
  if (policy === undefined) fail(`chain ${name} has no policy (ACCEPT, DROP or -)`);
  if (extra.length > 0) fail('unexpected words after the chain counters');
  let counters: Counters | undefined;
  if (counterText !== undefined) {
    const c = parseCounters(counterText);
    if (!c) fail(`bad counters ${counterText}`);
    counters = c!;
  }
  const builtin = (BUILTIN_CHAINS[table.name] as readonly string[]).includes(name);
  if (builtin && policy !== 'ACCEPT' && policy !== 'DROP') {
    fail(`built-in chain ${name} needs policy ACCEPT or DROP, not ${policy}`);
  }
  if (!builtin && policy !== '-') {
    fail(`user chain ${name} cannot have a policy (${policy}); ${name} is not a built-in chain of table ${table.name}`);
  }
  if (table.chains.has(name)) fail(`chain ${name} declared twice in table ${table.name}`);
  table.chains.set(name, {
    table: table.name,
    name,
    builtin,
    policy: builtin ? (policy as 'ACCEPT' | 'DROP') : null,
    counters,
    line: lineNo,
    rules: [],
  });
}

function parseRuleLine(table: Table, t: string, lineNo: number, fail: (r: string) => never): PendingRule {
  let counters: Counters | undefined;
  let text = t;
  if (t.startsWith('[')) {
    const m = /^(\[[^\]]*\])\s+(.*)$/.exec(t);
    if (!m) fail('counters without a rule after them');
    const c = parseCounters(m![1]);
    if (!c) fail(`bad counters ${m![1]}`);
    counters = c!;
    text = m![2].trim();
  }
  const split = splitArgs(text);
  if (!split.ok) fail(split.reason);
  const words = (split as { words: string[] }).words;
  const cmd = words[0];
  if (cmd !== '-A' && cmd !== '--append' && cmd !== '-I' && cmd !== '--insert') {
    fail(`expected -A CHAIN or -I CHAIN, found ${JSON.stringify(cmd)}`);
  }
  const chainName = words[1];
  if (chainName === undefined || chainName.startsWith('-') || chainName === '!') fail(`${cmd} without a chain name`);
  if (!table.chains.has(chainName)) fail(`chain ${chainName} is not declared in table ${table.name}`);
  let rest = words.slice(2);
  let insertAt: number | undefined;
  if (cmd === '-I' || cmd === '--insert') {
    insertAt = 1;
    if (rest.length > 0 && /^\d+$/.test(rest[0])) {
      insertAt = Number(rest[0]);
      if (insertAt < 1) fail('insert position must be 1 or more');
      rest = rest.slice(1);
    }
  }
  const parsed = parseRuleArgs(rest, fail);
  if (parsed.counters) {
    if (counters) fail('counters given twice ([..] prefix and -c)');
    counters = parsed.counters;
  }
  const rule: Rule = {
    table: table.name,
    chain: chainName,
    index: 0,
    line: lineNo,
    text,
    counters,
    conditions: parsed.conditions,
    target: null,
    comment: parsed.comment,
  };
  const reasons = parsed.conditions.filter((c) => c.kind === 'unknown').map((c) => (c as { why: string }).why);
  if (reasons.length > 0) rule.unevaluable = reasons.join('; ');
  return { rule, target: parsed.target, insertAt };
}

/** At COMMIT: order rules (for -I), number them and resolve -j/-g against the table's chains. */
function commitTable(open: OpenTable, lines: string[]): void {
  const { table } = open;
  for (const p of open.rules) {
    const chain = table.chains.get(p.rule.chain)!;
    if (p.insertAt !== undefined) {
      if (p.insertAt > chain.rules.length + 1) {
        throw new IptablesParseError(`insert position ${p.insertAt} is past the end of chain ${chain.name}`, p.rule.line, lines[p.rule.line - 1]);
      }
      chain.rules.splice(p.insertAt - 1, 0, p.rule);
    } else {
      chain.rules.push(p.rule);
    }
    if (p.target) {
      const target = resolveTarget(table, p.target);
      if (target === 'bad-goto') {
        throw new IptablesParseError(`goto (-g) to ${p.target.name}, which is not a chain of table ${table.name}`, p.rule.line, lines[p.rule.line - 1].replace(/\r$/, ''));
      }
      p.rule.target = target;
      if (target.kind === 'unknown') {
        p.rule.unevaluable = p.rule.unevaluable ? `${p.rule.unevaluable}; ${target.why}` : target.why;
      }
    }
  }
  for (const chain of table.chains.values()) chain.rules.forEach((r, i) => (r.index = i + 1));
}

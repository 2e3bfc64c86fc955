// The lab's field scenarios (lab/scenarios.json) and the judgement of an
// explanation against one: pure, so `netwhy lab run`, the lab tests and the
// unit tests share it. The only IO is reading the JSON file.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../errors.js';
import type { ExplainDoc, FlowDoc } from '../explain/document.js';
import type { Cause } from '../explain/types.js';
import { PACKAGE_ROOT } from '../native.js';

export const SCENARIOS_FILE = join(PACKAGE_ROOT, 'lab', 'scenarios.json');

/** A NAT step the judged flow must show (fields left out are not compared). */
export interface ExpectedNat {
  kind: string;
  netns: string;
  to: Record<string, string | number>;
  by: { type: string; ref?: string };
}

export interface ScenarioExpect {
  /** What the client sees: success, or timeout / refused / unreachable (netwhy: dropped). */
  outcome: string;
  /** The client's exit status (the explain document's exitCode). */
  exitCode: number;
  /** The client's exit status before the fault is applied. */
  baselineExitCode?: number;
  /** A string the client prints on its standard output. */
  stdoutIncludes?: string;
  /** The namespace netwhy places the verdict in (verdict.where.netns); null: no drop location. */
  verdictNetns: string | null;
  /** The device of the drop (verdict.where.dev). */
  verdictDev?: string;
  /** The kernel's drop reason there (verdict.where.reason). */
  dropReason?: string;
  /** An nstat counter that must grow in verdictNetns while the client runs. */
  counter?: string;
  /** The cause netwhy must name; null: none (a delivered flow). */
  cause: Partial<Cause> | null;
  /** Lines the verdict's evidence must hold, each matching one line; `*` stands for any text, a run of spaces for one. */
  evidenceIncludes?: string[];
  /** Every NAT step of the judged flow, in order. */
  nat?: ExpectedNat[];
}

export interface Scenario {
  name: string;
  /** Needs kube-proxy's IPVS mode, so a kernel with IPVS. */
  ipvs?: boolean;
  description: string;
  fault: string;
  client: { netns: string; argv: string[] };
  expect: ScenarioExpect;
}

/** What was measured around the client, beyond the explain document (lab run, the lab tests). */
export interface ClientRun {
  /** The client's standard output (a superset of it will do: the check looks for a substring). */
  stdout?: string;
  /** expect.counter in expect.verdictNetns just before and just after the client ran. */
  counter?: { name: string; netns: string; before: number | null; after: number | null } | null;
  /** The client's exit status with the lab up and the fault not yet applied. */
  baselineExitCode?: number | null;
}

export function loadScenarios(file = SCENARIOS_FILE): Scenario[] {
  return (JSON.parse(readFileSync(file, 'utf8')) as { scenarios: Scenario[] }).scenarios;
}

export function findScenario(name: string, all = loadScenarios()): Scenario {
  const s = all.find((x) => x.name === name);
  if (!s) throw new UsageError(`no lab scenario '${name}'`, `netwhy lab list shows: ${all.map((x) => x.name).join(', ')}`);
  return s;
}

/** netwhy's outcome for a scenario's expected client outcome. */
const OUTCOME: Record<string, string> = { success: 'delivered', timeout: 'dropped', refused: 'dropped', unreachable: 'dropped' };

/** The keys of `expect`, each checked by checkVerdict; true: every scenario must have it. */
const EXPECT_KEYS: Record<keyof ScenarioExpect, boolean> = {
  outcome: true,
  exitCode: true,
  baselineExitCode: false,
  stdoutIncludes: false,
  verdictNetns: true,
  verdictDev: false,
  dropReason: false,
  counter: false,
  cause: true,
  evidenceIncludes: false,
  nat: false,
};

/** The Cause fields an expected cause may name, each compared with the verdict's. */
const CAUSE_KEYS: (keyof Cause)[] = ['type', 'ref', 'value', 'netns', 'ipset', 'k8s'];

const show = (v: unknown): string => (v === undefined ? 'none' : JSON.stringify(v));

/** Keys of `expect` that no check knows, and checked keys that are missing. */
export function expectKeyProblems(e: ScenarioExpect): string[] {
  const problems: string[] = [];
  for (const k of Object.keys(e)) if (!(k in EXPECT_KEYS)) problems.push(`expect.${k} is not a known expectation (nothing would check it)`);
  for (const [k, required] of Object.entries(EXPECT_KEYS)) if (required && !(k in e)) problems.push(`expect.${k} is missing`);
  if (e.cause) for (const k of Object.keys(e.cause)) if (!CAUSE_KEYS.includes(k as keyof Cause)) problems.push(`expect.cause.${k} is not a field of netwhy's cause (${CAUSE_KEYS.join(', ')})`);
  return problems;
}

/** Does `actual` hold every field of `want` (recursively), with the same value? */
function holds(actual: unknown, want: unknown): boolean {
  if (want !== null && typeof want === 'object') {
    if (actual === null || typeof actual !== 'object') return false;
    return Object.entries(want).every(([k, v]) => holds((actual as Record<string, unknown>)[k], v));
  }
  return actual === want;
}

const squeeze = (t: string): string => t.replace(/\s+/g, ' ');

/** One evidence line matching `pattern`, where `*` stands for any text and a run of spaces for one. */
function evidenceHas(lines: string[], pattern: string): boolean {
  const parts = squeeze(pattern).split('*');
  return lines.map(squeeze).some((line) => {
    let at = 0;
    for (const p of parts) {
      const i = line.indexOf(p, at);
      if (i < 0) return false;
      at = i + p.length;
    }
    return true;
  });
}

/** The flow a scenario is judged by: a client may open several connections, a failure scenario is judged by its failing one. */
export function judgedFlow(s: Scenario, doc: ExplainDoc): FlowDoc | undefined {
  const delivered = (OUTCOME[s.expect.outcome] ?? s.expect.outcome) === 'delivered';
  return delivered ? doc.flows[0] : doc.flows.find((f) => f.verdict.outcome !== 'delivered') ?? doc.flows[0];
}

/**
 * Does the explanation (and what was measured around the client) say what the
 * scenario expects? Every key of `expect` is checked; an unknown one is a
 * problem, and so is an expectation whose measurement `run` does not carry.
 */
export function checkVerdict(s: Scenario, doc: ExplainDoc, run: ClientRun = {}): { ok: boolean; problems: string[] } {
  const e = s.expect;
  const problems = expectKeyProblems(e);
  if (e.exitCode !== undefined && doc.exitCode !== e.exitCode) problems.push(`the client exited ${show(doc.exitCode)}, expected ${e.exitCode}`);
  if (e.stdoutIncludes !== undefined) {
    if (run.stdout === undefined) problems.push(`stdoutIncludes: the client's output was not captured`);
    else if (!run.stdout.includes(e.stdoutIncludes)) problems.push(`the client's output has no ${JSON.stringify(e.stdoutIncludes)}`);
  }
  if (e.baselineExitCode !== undefined) {
    if (run.baselineExitCode === undefined) problems.push('baselineExitCode: the client was not run without the fault');
    else if (run.baselineExitCode !== e.baselineExitCode) problems.push(`without the fault the client exited ${show(run.baselineExitCode)}, expected ${e.baselineExitCode}`);
  }
  if (e.counter !== undefined) {
    const c = run.counter;
    if (!c) problems.push(`counter: ${e.counter} was not measured`);
    else if (c.name !== e.counter || c.netns !== e.verdictNetns) problems.push(`counter: measured ${c.name} in ${c.netns}, expected ${e.counter} in ${e.verdictNetns}`);
    else if (c.before === null || c.after === null || !(c.after > c.before)) problems.push(`counter ${e.counter} in ${c.netns} did not grow while the client ran (${show(c.before)} → ${show(c.after)})`);
  }

  const flow = judgedFlow(s, doc);
  if (!flow) return { ok: false, problems: [...problems, 'no flow was traced'] };
  const v = flow.verdict;
  const want = OUTCOME[e.outcome] ?? e.outcome;
  if (v.outcome !== want) problems.push(`outcome ${v.outcome}, expected ${want}`);
  if (e.verdictNetns !== undefined && (v.where?.netns ?? null) !== e.verdictNetns) problems.push(`verdict in ${show(v.where?.netns ?? null)}, expected ${show(e.verdictNetns)}`);
  if (e.verdictDev !== undefined && v.where?.dev !== e.verdictDev) problems.push(`verdict on device ${show(v.where?.dev)}, expected ${show(e.verdictDev)}`);
  if (e.dropReason !== undefined && v.where?.reason !== e.dropReason) problems.push(`drop reason ${show(v.where?.reason)}, expected ${show(e.dropReason)}`);

  if (e.cause === null) {
    if (v.cause.type !== 'unknown') problems.push(`cause ${v.cause.type} ${v.cause.ref}, expected none`);
  } else if (e.cause) {
    for (const k of CAUSE_KEYS) {
      const w = e.cause[k];
      if (w !== undefined && !(holds(v.cause[k], w) && holds(w, v.cause[k]))) problems.push(`cause.${k} ${show(v.cause[k])}, expected ${show(w)}`);
    }
  }
  for (const p of e.evidenceIncludes ?? []) if (!evidenceHas(v.evidence, p)) problems.push(`no evidence line matches ${JSON.stringify(p)}`);

  if (e.nat) {
    const got = flow.nat;
    if (got.length !== e.nat.length) problems.push(`${got.length} NAT step(s) (${got.map((n) => `${n.kind} in ${n.netns}`).join(', ') || 'none'}), expected ${e.nat.length}`);
    e.nat.forEach((n, i) => {
      if (got[i] && !holds(got[i], n)) problems.push(`nat[${i}] ${JSON.stringify(got[i])}, expected ${JSON.stringify(n)}`);
    });
  }
  return { ok: problems.length === 0, problems };
}

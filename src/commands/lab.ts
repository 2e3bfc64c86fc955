// netwhy lab: the built-in lab of network namespaces (lab/lab.sh) and its
// field scenarios, each explained by netwhy.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EnvironmentError, NetwhyError, UsageError } from '../errors.js';
import type { ExplainDoc } from '../explain/document.js';
import type { Cause } from '../explain/types.js';
import { PACKAGE_ROOT } from '../native.js';
import { requireTracing } from '../preflight.js';
import { runExplainCaptured } from './explain.js';
import type { Io } from './trace.js';

export const LAB_DIR = join(PACKAGE_ROOT, 'lab');

export interface Scenario {
  name: string;
  /** Needs kube-proxy's IPVS mode, so a kernel with IPVS. */
  ipvs?: boolean;
  description: string;
  fault: string;
  client: { netns: string; argv: string[] };
  expect: { outcome: string; cause: (Partial<Cause> & Record<string, unknown>) | null };
}

export function loadScenarios(file = join(LAB_DIR, 'scenarios.json')): Scenario[] {
  return (JSON.parse(readFileSync(file, 'utf8')) as { scenarios: Scenario[] }).scenarios;
}

export function findScenario(name: string, all = loadScenarios()): Scenario {
  const s = all.find((x) => x.name === name);
  if (!s) throw new UsageError(`no lab scenario '${name}'`, `netwhy lab list shows: ${all.map((x) => x.name).join(', ')}`);
  return s;
}

/** netwhy's outcome for a scenario's expected client outcome. */
const OUTCOME: Record<string, string> = { success: 'delivered', timeout: 'dropped', refused: 'dropped', unreachable: 'dropped' };

/** Does the explanation say what the scenario expects? Pure: the lab tests use it. */
export function checkVerdict(s: Scenario, doc: ExplainDoc): { ok: boolean; problems: string[] } {
  const problems: string[] = [];
  const want = OUTCOME[s.expect.outcome] ?? s.expect.outcome;
  // A client may open several connections: a failure scenario is judged by its failing flows.
  const flow = want === 'delivered' ? doc.flows[0] : doc.flows.find((f) => f.verdict.outcome !== 'delivered') ?? doc.flows[0];
  const v = flow?.verdict;
  if (!v) return { ok: false, problems: ['no flow was traced'] };
  if (v.outcome !== want) problems.push(`outcome ${v.outcome}, expected ${want}`);
  const c = s.expect.cause;
  if (c) {
    for (const k of ['type', 'ref', 'value', 'netns'] as const) {
      if (c[k] !== undefined && v.cause[k] !== c[k]) problems.push(`cause.${k} ${JSON.stringify(v.cause[k])}, expected ${JSON.stringify(c[k])}`);
    }
  }
  return { ok: problems.length === 0, problems };
}

function labSh(args: string[], io: Io, quiet = false): void {
  const r = spawnSync('bash', [join(LAB_DIR, 'lab.sh'), ...args], { encoding: 'utf8' });
  if (!quiet && r.stdout) io.err.write(r.stdout);
  if (r.status !== 0) {
    io.err.write(r.stderr ?? '');
    throw new NetwhyError(`lab.sh ${args.join(' ')} failed (exit ${r.status})`);
  }
}

export function runLabList(io: Io): number {
  for (const s of loadScenarios()) io.out.write(`${s.name.padEnd(18)} ${s.description}\n${''.padEnd(18)} fault: ${s.fault}\n`);
  return 0;
}

export function runLabUpDown(what: 'up' | 'down', io: Io): number {
  if (process.getuid?.() !== 0) throw new NetwhyError('the lab creates network namespaces: run it as root', 3);
  labSh([what], io);
  return 0;
}

export interface LabRunOptions {
  json?: boolean;
  keep?: boolean;
  /** Run in the microVM (Debian 6.1 kernel with IPVS). */
  vm?: boolean;
}

export const VM_MODULES = ['ip_vs', 'ip_vs_rr', 'ip_vs_wrr', 'ip_vs_sh', 'nf_conntrack', 'dummy', 'br_netfilter'];

/** The same `netwhy lab run` inside the microVM; its output passes through. */
async function runInMicroVm(name: string, opts: LabRunOptions, io: Io): Promise<number> {
  const { runInVm } = await import('../vm/runner.js');
  io.err.write(`lab: booting the microVM (Debian 6.1 kernel with IPVS) for ${name}; this takes a while under emulation\n`);
  const args = [process.execPath, join(PACKAGE_ROOT, 'dist/cli.js'), 'lab', 'run', name, ...(opts.json ? ['--json'] : [])];
  const r = await runInVm({ command: args, modules: VM_MODULES, timeoutMs: 300_000 });
  io.out.write(r.stdout);
  io.err.write(r.stderr);
  io.err.write(`lab: microVM ${r.kernel} (${r.accel}), ${(r.totalMs / 1000).toFixed(1)} s\n`);
  return r.exitCode;
}

export async function runLabRun(name: string, opts: LabRunOptions, io: Io = { out: process.stdout, err: process.stderr }): Promise<number> {
  const s = findScenario(name);
  if (opts.vm) return runInMicroVm(name, opts, io);
  if (s.ipvs && !existsSync('/proc/net/ip_vs')) {
    throw new EnvironmentError(`scenario ${name} needs IPVS, which this kernel does not have (no /proc/net/ip_vs)`, `run it in the microVM: netwhy lab run --vm ${name}, or modprobe ip_vs ip_vs_rr`);
  }
  requireTracing();
  labSh(['down'], io, true); // a clean slate, also after a crash
  let doc: ExplainDoc | undefined;
  try {
    io.err.write(`lab: ${s.name}: ${s.description}\nlab: fault: ${s.fault}\n`);
    labSh(s.ipvs ? ['up', '--ipvs'] : ['up'], io, true);
    labSh(['apply', s.name], io, true);
    const argv = ['ip', 'netns', 'exec', s.client.netns, ...s.client.argv];
    io.err.write(`lab: running ${s.client.argv.join(' ')} in ${s.client.netns} under netwhy explain\n\n`);
    doc = await runExplainCaptured(argv, { json: opts.json, live: !opts.json, settle: 500, ringMb: 8 }, io);
  } finally {
    if (!opts.keep) labSh(['down'], io, true);
  }
  const check = checkVerdict(s, doc);
  io.err.write(check.ok ? `\nlab: ${s.name}: netwhy's verdict matches the scenario\n` : `\nlab: ${s.name}: verdict differs from the scenario: ${check.problems.join('; ')}\n`);
  return check.ok ? 0 : 1;
}

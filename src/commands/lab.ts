// netwhy lab: the built-in lab of network namespaces (lab/lab.sh) and its
// field scenarios, each explained by netwhy.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { EnvironmentError, NetwhyError } from '../errors.js';
import type { ExplainDoc } from '../explain/document.js';
import { type ClientRun, type Scenario, checkVerdict, findScenario, loadScenarios } from '../lab/scenarios.js';
import { PACKAGE_ROOT } from '../native.js';
import { requireTracing } from '../preflight.js';
import { runExplainCaptured } from './explain.js';
import type { Io } from './trace.js';

export const LAB_DIR = join(PACKAGE_ROOT, 'lab');

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

/** An nstat counter's absolute value in a lab namespace; null when nstat cannot say. */
function nstatValue(netns: string, counter: string): number | null {
  const r = spawnSync('ip', ['netns', 'exec', netns, 'nstat', '-asz', counter], { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) return null;
  const line = r.stdout.split('\n').find((l) => l.split(/\s+/)[0] === counter);
  return line ? Number(line.split(/\s+/)[1]) : 0; // -z lists zeros, but an unknown counter is absent
}

/** The lab plays the container runtime: its CNI result cache and containerd live under its state directory (lab/lib.sh). */
export function labNameSources(): { cniCache: string; containerdSocket: string } {
  const state = process.env.NW_LAB_STATE_DIR || '/run/netwhy-lab';
  return { cniCache: join(state, 'cni/results'), containerdSocket: join(state, 'containerd/containerd.sock') };
}

/** The client once, outside netwhy, to see what it does before the fault (expect.baselineExitCode). */
function baselineExitCode(s: Scenario, io: Io): number | null {
  const r = spawnSync('ip', ['netns', 'exec', s.client.netns, ...s.client.argv], { encoding: 'utf8', timeout: 60_000 });
  const code = r.error || r.signal ? null : r.status;
  io.err.write(`lab: before the fault the client exits ${code ?? `by ${r.signal ?? r.error?.message}`}${s.expect.baselineExitCode !== undefined ? ` (expected ${s.expect.baselineExitCode})` : ''}\n`);
  return code;
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
  const run: ClientRun = {};
  const { counter, verdictNetns } = s.expect;
  try {
    io.err.write(`lab: ${s.name}: ${s.description}\nlab: fault: ${s.fault}\n`);
    labSh(s.ipvs ? ['up', '--ipvs'] : ['up'], io, true);
    if (s.expect.baselineExitCode !== undefined) run.baselineExitCode = baselineExitCode(s, io);
    labSh(['apply', s.name], io, true);
    const argv = ['ip', 'netns', 'exec', s.client.netns, ...s.client.argv];
    io.err.write(`lab: running ${s.client.argv.join(' ')} in ${s.client.netns} under netwhy explain\n\n`);
    const out: Buffer[] = [];
    const before = counter && verdictNetns ? nstatValue(verdictNetns, counter) : null;
    doc = await runExplainCaptured(argv, { json: opts.json, live: !opts.json, settle: 500, ringMb: 8, onCommandStdout: (c) => out.push(c), ...labNameSources() }, io);
    if (counter && verdictNetns) run.counter = { name: counter, netns: verdictNetns, before, after: nstatValue(verdictNetns, counter) };
    run.stdout = Buffer.concat(out).toString('utf8');
  } finally {
    if (!opts.keep) labSh(['down'], io, true);
  }
  // What was measured besides the document: with --json one line (stdout stays the document) that the lab tests read.
  if (opts.json) io.err.write(`\nlab: measured ${JSON.stringify(run)}\n`);
  else if (run.counter) io.err.write(`\nlab: ${run.counter.name} in ${run.counter.netns}: ${run.counter.before ?? '?'} before the client, ${run.counter.after ?? '?'} after\n`);
  const check = checkVerdict(s, doc, run);
  io.err.write(check.ok ? `\nlab: ${s.name}: netwhy's verdict matches the scenario\n` : `\nlab: ${s.name}: verdict differs from the scenario: ${check.problems.join('; ')}\n`);
  return check.ok ? 0 : 1;
}

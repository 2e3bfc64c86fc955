// Small helpers the benchmarks share: child processes that are always reaped,
// lines from a stream, statistics, /proc and bpftool readings.
import { type ChildProcess, type SpawnOptions, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function median(xs: number[]): number {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

/** "median (min–max over n runs)" of a figure's runs, for a note. */
export function spread(xs: number[], fmt: (v: number) => string = (v) => v.toFixed(2)): string {
  if (!xs.length) return 'no runs';
  return `median ${fmt(median(xs))}, ${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))} over ${xs.length} runs`;
}

/** Run to completion; throws with stderr when the command fails. */
export function run(cmd: string, args: string[], opts: { input?: string; allowFail?: boolean } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input: opts.input, stdio: ['pipe', 'pipe', 'pipe'] });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0 && !opts.allowFail) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr.trim()}`);
  return r.stdout;
}

export function which(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

// Every child the bench starts, so an interrupted bench can still reap them.
const children = new Set<ChildProcess>();

export function spawnTracked(cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  children.add(child);
  child.on('exit', () => children.delete(child));
  child.on('error', () => children.delete(child));
  return child;
}

export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((r) => child.once('exit', (code) => r(code)));
}

/** Signal, wait up to graceMs, then SIGKILL. Resolves whether it stopped in time. */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGINT', graceMs = 3000): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true;
  const done = exited(child);
  child.kill(signal);
  const inTime = await Promise.race([done.then(() => true), sleep(graceMs).then(() => false)]);
  if (!inTime) {
    child.kill('SIGKILL');
    await done;
  }
  return inTime;
}

/** Synchronous last resort (process 'exit'): SIGKILL whatever is still running. */
export function killAllChildren(): void {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** Call onLine for each complete line the stream yields. */
export function onLines(stream: Readable | null, onLine: (line: string) => void): void {
  if (!stream) return;
  let rest = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    rest += chunk;
    let nl: number;
    while ((nl = rest.indexOf('\n')) >= 0) {
      onLine(rest.slice(0, nl));
      rest = rest.slice(nl + 1);
    }
  });
}

/** Count newlines only: cheap enough to read a fast event stream. */
export function countLines(stream: Readable | null): { n: number } {
  const c = { n: 0 };
  stream?.on('data', (chunk: Buffer) => {
    let i = -1;
    while ((i = chunk.indexOf(10, i + 1)) >= 0) c.n++;
  });
  return c;
}

/** Resolve when pred() holds (checked every 20 ms), false after ms. */
export async function until(pred: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (pred()) return true;
    await sleep(20);
  }
  return pred();
}

/** Peak resident set (VmHWM) and current RSS of a process, in MiB. */
export function memoryOf(pid: number): { hwm: number; rss: number } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
    return { hwm: kb('VmHWM') / 1024, rss: kb('VmRSS') / 1024 };
  } catch {
    return undefined;
  }
}

/** CPU seconds (user + system) a process has used, all threads. */
export function cpuSecondsOf(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return NaN;
  }
}

export interface ProgStat {
  id: number;
  type: string;
  name: string;
  runTimeNs: number;
  runCnt: number;
}

/** Loaded BPF programs with their run-time statistics (kernel.bpf_stats_enabled). */
export function progStats(): ProgStat[] {
  try {
    const progs = JSON.parse(run('bpftool', ['-j', 'prog', 'show'])) as Record<string, unknown>[];
    return progs.map((p) => ({
      id: Number(p.id),
      type: String(p.type),
      name: String(p.name ?? ''),
      runTimeNs: Number(p.run_time_ns ?? 0),
      runCnt: Number(p.run_cnt ?? 0),
    }));
  } catch {
    return [];
  }
}

/** Average ns per run of the programs pick() selects, between two readings. */
export function nsPerRun(before: ProgStat[], after: ProgStat[], pick: (p: ProgStat) => boolean): { ns: number; runs: number } {
  const prev = new Map(before.map((p) => [p.id, p]));
  let ns = 0;
  let runs = 0;
  for (const p of after) {
    if (!pick(p)) continue;
    const b = prev.get(p.id);
    ns += p.runTimeNs - (b?.runTimeNs ?? 0);
    runs += p.runCnt - (b?.runCnt ?? 0);
  }
  return { ns: runs ? ns / runs : NaN, runs };
}
